//! slack-bridge: a Matrix appservice bridge between Slack (Socket Mode) and Matrix.
//!
//! Map of the crate:
//! - [`cli`]: the command line; [`config`]: typed config, secrets, validation, in-place edits;
//! - [`registration`]: the appservice registration and `-g`;
//! - [`store`]: the database (SQLite or PostgreSQL) with versioned migrations;
//! - [`logging`]: tracing setup;
//! - [`matrix`]: homeserver client, appservice API, transaction inbox, startup checks;
//! - [`server`]: the HTTP listeners (appservice API, `/health`, `/ready`, `/metrics`, the
//!   latter optionally on `metrics.listen`), served by hyper within `appservice.limits`
//!   (connection cap, header and request timeouts, body size checked before reading);
//! - [`doctor`]: every startup check, run without starting the bridge;
//! - [`notify`]: systemd's `sd_notify` (READY, STATUS, watchdog);
//! - [`slack`]: Slack wire types and the client's request/answer types ([`slack::types`],
//!   [`slack::requests`], no I/O); the Web API client [`slack::web`], one job per file
//!   (`error`, `pacing`: tier buckets and per-channel FIFO lanes, `transport`: the one
//!   request/retry path and file transfers, `methods`); Socket Mode ([`slack::socket`]);
//! - [`format`]: message formatting between Slack and Matrix, pure and linear in its input
//!   (HTML too deep or too large to parse goes as its plain body; `tests/fuzz.rs` checks);
//! - [`bridge`]: logins, portals, ghosts and both directions of message flow, through one
//!   durable queue per portal each way ([`bridge::queue`]); a new portal's backfill and the
//!   catch-up after a gap run as tasks in those queues ([`bridge::history`]); Matrix users
//!   who link their Slack account act there as themselves ([`bridge::user_login`]) and
//!   appear in Matrix as themselves ([`bridge::double_puppet`]);
//! - [`retry`]: the one backoff policy every retry loop uses;
//! - [`crypto`]: the encryption key and the sealing of stored Slack tokens; [`rotate_key`]:
//!   `slack-bridge rotate-key`;
//! - [`supervisor`]: owns every task, for a shutdown that leaves nothing running; each task
//!   logs in a `task` span under the bridge's (a login's under `login{team}`), queue items in
//!   `queue item{team, channel | room_id}`, transactions in `transaction{txn_id}`, stored
//!   Socket Mode envelopes in `envelopes{envelope_id, event_id}`, portal creation in
//!   `portal{team, channel}`, history runs in `backfill` / `catch-up{team, channel}`;
//! - [`metrics`]: the Prometheus registry behind `/metrics`;
//! - [`ids`]: Slack IDs as types (`TeamId`, `ChannelId`, `UserId`, `BotId`, `SenderId`, `Ts`)
//!   and how they map to Matrix ones; Matrix IDs are ruma's, parsed where they enter and
//!   stored as such.

pub mod bridge;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod doctor;
pub mod format;
pub mod ids;
pub mod logging;
pub mod matrix;
pub mod metrics;
pub mod notify;
pub mod registration;
pub mod retry;
pub mod rotate_key;
pub mod server;
pub mod slack;
pub mod store;
pub mod supervisor;

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc};

use config::{Config, ConfigError, Mode};
use matrix::{
    MatrixClient, appservice::AppserviceState, checks::CheckError, inbox::InboxProcessor,
};
use registration::RegistrationError;
use store::{Store, StoreError};
use tokio::{net::TcpListener, sync::Notify};

/// A boxed, sendable future: what the object-safe traits of the bridge (event sinks, socket
/// openers and connectors) return.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Everything that can stop the bridge or one of its commands; each message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Registration(#[from] RegistrationError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Logging(#[from] logging::LogError),
    #[error(transparent)]
    Check(#[from] CheckError),
    #[error(transparent)]
    Key(#[from] crypto::KeyError),
    #[error(
        "cannot listen on {addr} for the homeserver: {source}. Is another slack-bridge running? Otherwise change appservice.hostname/port (and appservice.address, then regenerate the registration)"
    )]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr} (metrics.listen) for /metrics and /ready: {source}")]
    MetricsListen {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Doctor(String),
    /// A command given what it cannot work with.
    #[error("{0}")]
    Usage(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// The exit status of a configuration error (sysexits' `EX_CONFIG`): restarting cannot help,
/// so a systemd unit lists it in `RestartPreventExitStatus=`. Every other failure exits 1.
pub const EXIT_CONFIG: u8 = 78;

impl Error {
    /// The process exit status for this error: [`EXIT_CONFIG`] when the operator must edit
    /// the config (or the environment that feeds it), 1 when trying again may work.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_)
            | Self::Registration(RegistrationError::Config(_) | RegistrationError::Key(_))
            | Self::Logging(_)
            | Self::Key(_)
            | Self::Store(StoreError::WrongKey { .. } | StoreError::KeyMissing { .. }) => {
                EXIT_CONFIG
            }
            _ => 1,
        }
    }
}

/// Executes a parsed command line.
pub fn execute(cli: cli::Cli) -> Result<(), Error> {
    if cli.generate_registration {
        let report = registration::generate(&cli.config, &cli.registration)?;
        println!(
            "Wrote {} (sender_localpart: {}).",
            report.registration_path.display(),
            report.sender_localpart
        );
        if !report.generated_files.is_empty() {
            println!(
                "Generated {} into their appservice.*_token_file.",
                report.generated_files.join(" and ")
            );
        }
        if let Some(key) = &report.generated_key {
            println!(
                "Generated the encryption key of the stored Slack tokens into {} (mode 0600); back it up with the database.",
                key.display()
            );
        }
        if report.generated_tokens.is_empty() {
            println!("Kept the tokens already set in {}.", cli.config.display());
        } else {
            println!(
                "Generated {} and saved them in {}.",
                report.generated_tokens.join(" and "),
                cli.config.display()
            );
        }
        println!(
            "Next: install the registration in your homeserver and restart the homeserver (see README: Registering)."
        );
        return Ok(());
    }
    match cli.command.unwrap_or(cli::Command::Run) {
        cli::Command::ValidateConfig => {
            Config::load(&cli.config, Mode::Run)?;
            println!("{}: OK", cli.config.display());
            Ok(())
        }
        cli::Command::Manifest { name } => {
            // The redirect URL comes from the config when there is a readable one.
            let redirect = Config::load(&cli.config, Mode::Generate)
                .ok()
                .map(|c| c.slack.oauth.redirect_url)
                .filter(|u| !u.is_empty());
            print!("{}", slack::manifest::yaml(&name, redirect.as_deref()));
            Ok(())
        }
        cli::Command::Doctor { json } => {
            let rt = tokio::runtime::Runtime::new().map_err(Error::Runtime)?;
            rt.block_on(doctor::run(&cli.config, &cli.registration, json))
        }
        cli::Command::RotateKey { new_key_file } => {
            let config = Config::load(&cli.config, Mode::Run)?;
            let rt = tokio::runtime::Runtime::new().map_err(Error::Runtime)?;
            let done = rt.block_on(rotate_key::run(&config, new_key_file.as_deref()))?;
            println!("{done}");
            Ok(())
        }
        cli::Command::Run => {
            let config = Config::load(&cli.config, Mode::Run)?;
            logging::init(&config.logging)?;
            log_startup(&config, &cli.config);
            let rt = tokio::runtime::Runtime::new().map_err(Error::Runtime)?;
            rt.block_on(async {
                // Stops with the bridge: a wedged runtime stops the pings, a stopped bridge too.
                let _watchdog =
                    notify::spawn_watchdog().map(tokio_util::task::AbortOnDropHandle::new);
                let listener = bind(&config).await?;
                run(
                    Bridge::new(config, cli.registration.clone(), listener),
                    shutdown_signal(),
                )
                .await
            })
        }
    }
}

/// The first lines an operator reads: which config, database, homeserver and logins this
/// process uses (never a secret).
fn log_startup(config: &Config, path: &std::path::Path) {
    let declared: Vec<String> = config
        .slack
        .logins
        .iter()
        .enumerate()
        .map(|(i, l)| format!("slack.logins.{i} (owner {})", l.owner))
        .collect();
    tracing::info!(
        version = cli::VERSION,
        config = %path.display(),
        database = %config.database.display_uri(),
        homeserver = %config.homeserver.address,
        domain = %config.homeserver.domain,
        listen = %format!("{}:{}", config.appservice.hostname, config.appservice.port),
        declared_logins = %if declared.is_empty() { "none".to_owned() } else { declared.join(", ") },
        "starting slack-bridge"
    );
}

/// Resolves on SIGINT or SIGTERM (systemd's stop).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Binds the appservice listener on `appservice.hostname:port`.
pub async fn bind(config: &Config) -> Result<TcpListener, Error> {
    let addr = format!(
        "{}:{}",
        config.appservice.hostname,
        config.appservice.listen_port()
    );
    TcpListener::bind(&addr)
        .await
        .map_err(|source| Error::Listen { addr, source })
}

/// What [`run`] needs: the config, where the registration lives (for messages), and the
/// bound listener (tests bind port 0).
pub struct Bridge {
    pub config: Config,
    pub registration_path: PathBuf,
    pub listener: TcpListener,
}

impl Bridge {
    pub fn new(config: Config, registration_path: PathBuf, listener: TcpListener) -> Self {
        Self {
            config,
            registration_path,
            listener,
        }
    }
}

/// The homeserver client for a config.
pub fn matrix_client(config: &Config) -> Result<MatrixClient, Error> {
    let bot = ruma::UserId::parse(config.bot_mxid())
        .map_err(|e| Error::Doctor(format!("bot user ID {} is invalid: {e}", config.bot_mxid())))?;
    let token = config
        .appservice
        .as_token
        .clone()
        .unwrap_or_else(|| config::Secret::new(""));
    Ok(MatrixClient::new(
        &config.homeserver.address,
        token,
        &config.appservice.id,
        bot,
    ))
}

/// `store` unlocked with the configured encryption key. A database that has none yet gets
/// a new key file; one whose secrets are sealed and whose key file is missing is refused
/// (a new key could not open them).
pub async fn unlock(store: &Store, config: &Config) -> Result<Store, Error> {
    let (key, origin) = match crypto::load(&config.database)? {
        Some(found) => found,
        None if store.is_sealed().await? => {
            return Err(StoreError::KeyMissing {
                path: config.database.key_file().display().to_string(),
            }
            .into());
        }
        None => {
            let (key, origin) = crypto::create(&config.database)?;
            tracing::warn!(
                key_file = %origin,
                "created the encryption key for the stored Slack tokens; back it up with the database: without it the logins cannot be read"
            );
            (key, origin)
        }
    };
    Ok(store.unlock(&key, &origin.to_string()).await?)
}

/// How long in-flight work may take to finish at shutdown.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the bridge until `shutdown` resolves: database, homeserver checks, the appservice
/// listener, the appservice ping, then the queues of both directions and the logins. Every
/// task belongs to one [`supervisor::Supervisor`]: when `shutdown` resolves, intake stops,
/// in-flight sends get [`SHUTDOWN_GRACE`] to finish, and nothing is left running after.
pub async fn run(bridge: Bridge, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let Bridge {
        config,
        registration_path,
        listener,
    } = bridge;
    tracing::debug!(?config, "effective configuration");
    notify::status("starting: database and homeserver checks");
    let store = Store::connect(config.database.uri(), config.database.max_connections).await?;
    let store = unlock(&store, &config).await?;
    tracing::info!(
        dialect = ?store.dialect(),
        schema = store.known_version(),
        "database ready"
    );
    let matrix = Arc::new(matrix_client(&config)?);
    matrix::checks::homeserver(&matrix, &registration_path).await?;
    tracing::info!(homeserver = %config.homeserver.address, bot = %matrix.bot(), "homeserver accepted the as_token");

    let sup = supervisor::Supervisor::new();
    let notify = Arc::new(Notify::new());
    let namespace = matrix::Namespace::from_config(&config);
    let state = AppserviceState::new(&config, store.clone(), notify.clone());
    let metrics = state.metrics.clone();
    let core = bridge::Core::new(
        config.clone(),
        store.clone(),
        matrix.clone(),
        metrics.clone(),
        sup.clone(),
    );
    let local: Option<SocketAddr> = listener.local_addr().ok();
    let routes = server::routes(
        state,
        matrix.clone(),
        Some(core.clone()),
        &config.metrics,
        &config.appservice.limits,
    );
    if let (Some(addr), Some(ops)) = (&config.metrics.listen, routes.ops) {
        let ops_listener =
            TcpListener::bind(addr)
                .await
                .map_err(|source| Error::MetricsListen {
                    addr: addr.clone(),
                    source,
                })?;
        let (limits, stop) = (config.appservice.limits.clone(), sup.stop_token().clone());
        sup.spawn("metrics listener", async move {
            server::serve(ops_listener, ops, &limits, stop).await;
        });
        tracing::info!(listen = %addr, "metrics listener started");
    }
    let (limits, stop) = (config.appservice.limits.clone(), sup.stop_token().clone());
    let app = routes.appservice;
    sup.spawn("appservice listener", async move {
        server::serve(listener, app, &limits, stop).await;
    });
    tracing::info!(listen = ?local, "appservice listener started");

    let result = async {
        let rtt = matrix::checks::ping(&matrix, &config.appservice.address).await?;
        tracing::info!(
            round_trip_ms = rtt.as_millis() as u64,
            "homeserver reached the bridge (appservice ping)"
        );
        if let Err(e) = matrix
            .set_display_name(matrix.bot(), &config.appservice.bot.displayname)
            .await
        {
            tracing::warn!(error = %e, "cannot set the bot's display name");
        }
        // Before any queue runs: the events of stored logins wait for them to start.
        bridge::login::expect_stored(&core).await?;
        core.start_queues();
        let processor = InboxProcessor {
            store: store.clone(),
            sink: Arc::new(bridge::from_matrix::MatrixSide(core.clone())),
            namespace,
            notify,
        };
        sup.spawn("transaction inbox", processor.run(sup.stop_token().clone()));
        bridge::login::start_all(&core).await;
        let logins = core.all_logins().len();
        tracing::info!(logins, "bridge running");
        notify::ready(&format!("running; {logins} Slack login(s) started"));
        Ok::<(), Error>(())
    }
    .await;
    if result.is_ok() {
        shutdown.await;
        tracing::info!("shutting down");
        notify::stopping();
    }
    if !sup.shutdown(SHUTDOWN_GRACE).await {
        tracing::warn!(
            "some work did not finish within the shutdown grace period; it resumes at the next start"
        );
    }
    core.clear_logins();
    drop(core);
    store.close().await;
    result
}
