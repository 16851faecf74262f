//! A bridge next to a real homeserver (Synapse or tuwunel): config and registration generated
//! the way an operator would (`-g`), the homeserver started with that registration (Synapse's
//! `app_service_config_files`, tuwunel's `[global.appservice.<id>]`), and the bridge run
//! in-process.

use std::path::PathBuf;

use slack_bridge::{
    Bridge,
    config::{Config, Mode},
};
use testkit::{Homeserver, HomeserverConfig, HomeserverKind};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tracing::Instrument;

pub const DOMAIN: &str = "test.local";

/// A free port for a server that is stopped and started again on it (the bridge, the homeserver).
/// Ports from `testkit::free_port` come from the ephemeral range, where an outgoing connection of a
/// parallel test can take the port while the server is down; these come from below it. A port is
/// handed out once per test process: a server may bind it long after it was picked (the bridge
/// binds once its homeserver is up), and meanwhile no parallel test may pick it too.
pub fn restartable_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let mut b = [0u8; 2];
        getrandom::fill(&mut b).unwrap();
        let port = 20_000 + u16::from_le_bytes(b) % 12_000;
        let mut taken = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if !taken.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.insert(port);
            return port;
        }
    }
}

/// What an environment is made of; `registration_url_port` lets a test point the registration
/// somewhere else than where the bridge listens (a proxy, or nothing).
#[derive(Default)]
pub struct EnvOptions {
    /// The homeserver to run (default Synapse).
    pub homeserver: HomeserverKind,
    pub registration_url_port: Option<u16>,
    /// Database URI for the bridge (default: a SQLite file in the env's dir).
    pub database: Option<String>,
    /// Slack Web API base URL (the emulator's).
    pub slack_api_url: Option<String>,
    /// A declarative login: (bot token, app token, owner MXID).
    pub login: Option<(String, String, String)>,
    /// Extra `bridge.permissions` entries.
    pub permissions: Vec<(String, String)>,
    /// Extra homeserver.yaml keys for Synapse.
    pub synapse_extra: serde_json::Map<String, serde_json::Value>,
    /// Let the homeserver rate-limit the appservice's users (the registration's `rate_limited`).
    pub rate_limited: bool,
    /// Text replacements in the generated registration before the homeserver reads it.
    pub registration_edits: Vec<(String, String)>,
    /// tuwunel only: register the appservice in the admin room after start (as continuwuity
    /// operators must) instead of in the config file.
    pub register_in_admin_room: bool,
    /// Register a second appservice that may act as every local user (no URL, so nothing is
    /// pushed to it) and give its as_token to the bridge as the double-puppet secret.
    pub double_puppet: bool,
}

/// The double-puppet appservice's registration, as the README tells operators to write it.
fn double_puppet_registration(as_token: &str) -> String {
    let hs_token = slack_bridge::config::secret::random_token(32).unwrap();
    let domain = DOMAIN.replace('.', "\\.");
    format!(
        "id: doublepuppet\nurl: null\nas_token: {as_token}\nhs_token: {hs_token}\nsender_localpart: doublepuppet\nrate_limited: false\nnamespaces:\n  users:\n  - regex: '^@.*:{domain}$'\n    exclusive: false\n"
    )
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub registration_path: PathBuf,
    pub hs: Homeserver,
    pub as_port: u16,
}

impl Env {
    pub async fn start(homeserver: HomeserverKind) -> Env {
        Self::start_with(EnvOptions {
            homeserver,
            ..EnvOptions::default()
        })
        .await
    }

    pub async fn start_with(opts: EnvOptions) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let hs_port = restartable_port();
        let as_port = restartable_port();
        let url_port = opts.registration_url_port.unwrap_or(as_port);
        let example = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.yaml"),
        )
        .unwrap();
        let database = opts
            .database
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}/bridge.db", dir.path().display()));
        let mut text = example
            .replacen("  domain: example.com", &format!("  domain: {DOMAIN}"), 1)
            .replacen(
                "  address: http://127.0.0.1:8008",
                &format!("  address: http://127.0.0.1:{hs_port}"),
                1,
            )
            .replacen(
                "  address: http://127.0.0.1:29319",
                &format!("  address: http://127.0.0.1:{url_port}"),
                1,
            )
            .replacen("  port: 29319", &format!("  port: {as_port}"), 1)
            .replacen(
                "  uri: sqlite://slack-bridge.db",
                &format!("  uri: {database}"),
                1,
            )
            .replace("\"example.com\": user", &format!("\"{DOMAIN}\": user"));
        if let Some(api) = &opts.slack_api_url {
            text = text.replacen(
                "  api_url: https://slack.com/api",
                &format!("  api_url: {api}"),
                1,
            );
        }
        if let Some((bot, app, owner)) = &opts.login {
            text = text.replacen(
                "  logins: []",
                &format!("  logins:\n    - bot_token: {bot}\n      app_token: {app}\n      owner: \"{owner}\""),
                1,
            );
        }
        for (who, level) in &opts.permissions {
            text = text.replacen(
                "  permissions:\n",
                &format!("  permissions:\n    \"{who}\": {level}\n"),
                1,
            );
        }
        let mut extra_registrations = Vec::new();
        if opts.double_puppet {
            let token = slack_bridge::config::secret::random_token(32).unwrap();
            let path = dir.path().join("doublepuppet.yaml");
            std::fs::write(&path, double_puppet_registration(&token)).unwrap();
            extra_registrations.push(path);
            text = text.replacen(
                "    secrets: {}",
                &format!("    secrets: {{\"{DOMAIN}\": \"as_token:{token}\"}}"),
                1,
            );
        }
        let config_path = dir.path().join("config.yaml");
        let registration_path = dir.path().join("registration.yaml");
        std::fs::write(&config_path, text).unwrap();
        slack_bridge::registration::generate(&config_path, &registration_path).unwrap();
        let mut edits = opts.registration_edits.clone();
        if opts.rate_limited {
            edits.push(("rate_limited: false".into(), "rate_limited: true".into()));
        }
        if !edits.is_empty() {
            let mut reg = std::fs::read_to_string(&registration_path).unwrap();
            for (from, to) in &edits {
                assert!(
                    reg.contains(from.as_str()),
                    "registration has no {from:?}:\n{reg}"
                );
                reg = reg.replace(from.as_str(), to);
            }
            std::fs::write(&registration_path, reg).unwrap();
        }
        let in_config = !opts.register_in_admin_room;
        let hs = Homeserver::start(
            opts.homeserver,
            HomeserverConfig {
                server_name: DOMAIN.into(),
                registrations: if in_config {
                    [vec![registration_path.clone()], extra_registrations].concat()
                } else {
                    extra_registrations
                },
                port: Some(hs_port),
                synapse_extra: opts.synapse_extra.clone(),
                ..HomeserverConfig::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", opts.homeserver));
        if !in_config {
            let yaml = std::fs::read_to_string(&registration_path).unwrap();
            hs.as_tuwunel()
                .expect("Synapse has no admin room: register_in_admin_room is for tuwunel")
                .register_appservice_in_admin_room(&yaml)
                .await
                .unwrap_or_else(|e| panic!("admin-room registration failed: {e}"));
        }
        Env {
            dir,
            config_path,
            registration_path,
            hs,
            as_port,
        }
    }

    pub fn config(&self) -> Config {
        Config::load(&self.config_path, Mode::Run).unwrap()
    }

    /// Rewrites one line of config.yaml (for tests of misconfiguration).
    pub fn edit_config(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.config_path).unwrap();
        assert!(text.contains(from), "config has no {from:?}");
        std::fs::write(&self.config_path, text.replacen(from, to, 1)).unwrap();
    }

    /// The whole bridge, in this process.
    pub async fn run_bridge_full(&self) -> RunningBridge {
        let listener = TcpListener::bind(("127.0.0.1", self.as_port))
            .await
            .unwrap();
        let bridge = Bridge::new(self.config(), self.registration_path.clone(), listener);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(
            async {
                let r = slack_bridge::run(bridge, async {
                    let _ = rx.await;
                })
                .await;
                // What the binary would print before exiting, for the failing test's log.
                if let Err(e) = &r {
                    tracing::error!(target: "slack_bridge::test", error = %e, "the bridge stopped with an error");
                }
                r
            }
            .instrument(super::logs::bridge_span()),
        );
        RunningBridge {
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// A client acting as the bridge bot (the as_token's user).
    pub async fn bot_client(&self) -> testkit::TestClient {
        let token = self.config().appservice.as_token.unwrap();
        self.hs.client_with_token(token.expose()).await.unwrap()
    }
}

pub struct RunningBridge {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), slack_bridge::Error>>>,
}

impl RunningBridge {
    pub async fn stop(mut self) -> Result<(), slack_bridge::Error> {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap()
    }

    /// Whether the bridge task has ended (startup failure).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }
}
