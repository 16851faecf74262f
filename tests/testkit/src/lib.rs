//! Shared test fixtures for slack-bridge: real homeservers (Synapse, tuwunel) and a small Matrix
//! client. [`Homeserver`] starts either kind behind one interface.
//!
//! # Quick start
//! ```no_run
//! # async fn demo() -> Result<(), testkit::FixtureError> {
//! use testkit::{Synapse, SynapseConfig};
//! // A homeserver of your own, with the bridge's registration (it must exist before start):
//! let synapse = Synapse::start(SynapseConfig {
//!     registrations: vec!["/tmp/registration.yaml".into()],
//!     ..SynapseConfig::default()
//! })
//! .await?;
//! let alice = synapse.register_user("alice", "secret", false).await?;
//! let room = alice.create_room().await?;
//! alice.send_text(&room, "hello").await?;
//!
//! // tuwunel, or either one behind one handle (registrations go into its config file):
//! let hs = testkit::Homeserver::start(
//!     testkit::HomeserverKind::Tuwunel,
//!     testkit::HomeserverConfig::default(),
//! )
//! .await?;
//! let carol = hs.register_unique_user("carol").await?;
//!
//! // Or, for tests that need no registration, the lazily started process-wide instance:
//! let shared = testkit::shared_synapse().await?;
//! let bob = shared.register_unique_user("bob").await?;
//! # Ok(()) }
//! ```
//!
//! # How Synapse gets there
//! The first use creates a Python venv in `<target>/synapse-venv` and `pip install`s
//! [`SYNAPSE_REQUIREMENT`] (a minute or two; progress goes to stderr). Later runs reuse it. A
//! file lock serialises concurrent test binaries, and a venv is only used once its completion
//! marker exists. Without python3 or its venv module, [`Synapse::start`] fails with a message
//! naming the package to install. Environment knobs: [`venv::VENV_ENV`] (use an existing venv),
//! [`venv::PYTHON_ENV`] (interpreter for creating it), [`KEEP_DIR_ENV`] (keep data dirs).
//!
//! # How tuwunel gets there
//! [`tuwunel_binary`] unpacks the vendored `../shared/vendor/tuwunel/tuwunel.gz` (next to the
//! repository) into `<target>/tuwunel/tuwunel` once, or uses [`TUWUNEL_BIN_ENV`]. Tests gate on
//! [`tuwunel_or_skip`]: a loud NOT RUN line without the binary, a failure under `CI`.
//!
//! # Lifetime
//! Each [`Synapse`] owns a temp dir and one process. Dropping it (also during a panic) stops the
//! process; the process also dies with the test binary (parent-death signal), so nothing is left
//! running after `cargo test`, even when aborted.

mod client;
mod error;
mod homeserver;
mod process;
mod synapse;
mod tuwunel;
pub mod venv;

pub use client::{TestClient, enc};
pub use error::FixtureError;
pub use homeserver::{Homeserver, HomeserverConfig, HomeserverKind};
pub use synapse::{KEEP_DIR_ENV, Synapse, SynapseConfig, free_port};
pub use tuwunel::{
    KEEP_TUWUNEL_DIR_ENV, TUWUNEL_BIN_ENV, Tuwunel, TuwunelConfig, registration_toml,
    tuwunel_archive, tuwunel_binary, tuwunel_or_skip,
};
pub use venv::SYNAPSE_REQUIREMENT;

/// Alias for readers who look for a "user" type: a [`TestClient`] acts as one Matrix user.
pub type MatrixUser = TestClient;

/// A process-wide Synapse (`server_name` `test.local`, no appservice registrations), started on
/// first use and shared by every test in the binary. Register users with
/// [`Synapse::register_unique_user`] so tests don't collide.
///
/// It is never dropped (statics aren't); the parent-death signal kills it when the test binary
/// exits, and its temp dir is swept by the next run. Tests that must stop, restart or register an
/// appservice need their own [`Synapse::start`].
pub async fn shared_synapse() -> Result<&'static Synapse, FixtureError> {
    static SHARED: tokio::sync::OnceCell<Synapse> = tokio::sync::OnceCell::const_new();
    SHARED
        .get_or_try_init(|| Synapse::start(SynapseConfig::default()))
        .await
}
