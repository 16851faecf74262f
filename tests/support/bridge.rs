//! A bridge next to a real Synapse: config and registration generated the way an operator
//! would (`-g`), Synapse started with that registration, and the bridge run in-process.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use ruma::{events::AnyTimelineEvent, serde::Raw};
use slack_bridge::{
    Bridge,
    config::{Config, Mode},
    matrix::inbox::{BoxFuture, MatrixEventSink, SinkError},
};
use testkit::{Synapse, SynapseConfig, free_port};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub const DOMAIN: &str = "test.local";

/// What an environment is made of; `registration_url_port` lets a test point the registration
/// somewhere else than where the bridge listens (a proxy, or nothing).
pub struct EnvOptions {
    pub registration_url_port: Option<u16>,
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub registration_path: PathBuf,
    pub synapse: Synapse,
    pub as_port: u16,
}

impl Env {
    pub async fn start() -> Env {
        Self::start_with(EnvOptions {
            registration_url_port: None,
        })
        .await
    }

    pub async fn start_with(opts: EnvOptions) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let hs_port = free_port();
        let as_port = free_port();
        let url_port = opts.registration_url_port.unwrap_or(as_port);
        let example = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.yaml"),
        )
        .unwrap();
        let text = example
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
                &format!("  uri: sqlite://{}/bridge.db", dir.path().display()),
                1,
            )
            .replace("\"example.com\": user", &format!("\"{DOMAIN}\": user"));
        let config_path = dir.path().join("config.yaml");
        let registration_path = dir.path().join("registration.yaml");
        std::fs::write(&config_path, text).unwrap();
        slack_bridge::registration::generate(&config_path, &registration_path).unwrap();
        let synapse = Synapse::start(SynapseConfig {
            server_name: DOMAIN.into(),
            registrations: vec![registration_path.clone()],
            port: Some(hs_port),
            ..SynapseConfig::default()
        })
        .await
        .unwrap_or_else(|e| panic!("cannot start Synapse: {e}"));
        Env {
            dir,
            config_path,
            registration_path,
            synapse,
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

    pub async fn run_bridge(&self, sink: Arc<dyn MatrixEventSink>) -> RunningBridge {
        let listener = TcpListener::bind(("127.0.0.1", self.as_port))
            .await
            .unwrap();
        let bridge =
            Bridge::new(self.config(), self.registration_path.clone(), listener).with_sink(sink);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(slack_bridge::run(bridge, async {
            let _ = rx.await;
        }));
        RunningBridge {
            stop: Some(tx),
            task: Some(task),
        }
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

/// Records every Matrix event the bridge layer receives.
#[derive(Default)]
pub struct RecordingSink {
    pub events: Mutex<Vec<serde_json::Value>>,
}

impl RecordingSink {
    pub fn bodies(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
            .collect()
    }

    pub async fn wait_for_body(&self, body: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.bodies().iter().any(|b| b == body) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the bridge layer never received {body:?}; it got {:?}",
                self.bodies()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl MatrixEventSink for RecordingSink {
    fn handle_event<'a>(
        &'a self,
        _txn_id: &'a str,
        event: &'a Raw<AnyTimelineEvent>,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let v: serde_json::Value = event.deserialize_as_unchecked().unwrap();
            self.events.lock().unwrap().push(v);
            Ok(())
        })
    }
}
