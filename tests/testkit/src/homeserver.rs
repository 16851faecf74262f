//! One handle for either test homeserver, so a test written once runs on Synapse and on tuwunel:
//! [`HomeserverKind`] picks the server, [`Homeserver`] offers what both can do (users through
//! their own registration API, stop/restart, tokens, logs).

use std::path::{Path, PathBuf};

use crate::{FixtureError, Synapse, SynapseConfig, TestClient, Tuwunel, TuwunelConfig};

/// Which homeserver a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HomeserverKind {
    /// Synapse from the cached venv.
    #[default]
    Synapse,
    /// tuwunel (conduwuit family) from the vendored build.
    Tuwunel,
}

impl HomeserverKind {
    /// `synapse` or `tuwunel`, as in test names and `--homeserver`.
    pub fn name(self) -> &'static str {
        match self {
            HomeserverKind::Synapse => "synapse",
            HomeserverKind::Tuwunel => "tuwunel",
        }
    }

    /// Parses `synapse` / `tuwunel`.
    pub fn parse(name: &str) -> Option<HomeserverKind> {
        match name.to_ascii_lowercase().as_str() {
            "synapse" => Some(HomeserverKind::Synapse),
            "tuwunel" => Some(HomeserverKind::Tuwunel),
            _ => None,
        }
    }

    /// Whether `test` can run on this kind here: Synapse always (it is installed on demand);
    /// tuwunel when its binary is found, else a loud NOT RUN line (or a panic under `CI`), see
    /// [`crate::tuwunel_or_skip`].
    pub fn available_for(self, test: &str) -> bool {
        match self {
            HomeserverKind::Synapse => true,
            HomeserverKind::Tuwunel => crate::tuwunel_or_skip(test).is_some(),
        }
    }
}

impl std::fmt::Display for HomeserverKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How to start a [`Homeserver`] of either kind.
#[derive(Debug, Clone)]
pub struct HomeserverConfig {
    pub server_name: String,
    /// Appservice registration YAML files: Synapse's `app_service_config_files`, tuwunel's
    /// `[global.appservice.<id>]` tables. Both read them only at start.
    pub registrations: Vec<PathBuf>,
    pub port: Option<u16>,
    /// Extra homeserver.yaml keys (Synapse only).
    pub synapse_extra: serde_json::Map<String, serde_json::Value>,
    /// Extra `[global]` TOML lines (tuwunel only).
    pub tuwunel_extra: Vec<String>,
}

impl Default for HomeserverConfig {
    fn default() -> Self {
        HomeserverConfig {
            server_name: "test.local".into(),
            registrations: Vec::new(),
            port: None,
            synapse_extra: serde_json::Map::new(),
            tuwunel_extra: Vec::new(),
        }
    }
}

/// A running Synapse or tuwunel.
#[derive(Debug)]
pub enum Homeserver {
    Synapse(Synapse),
    Tuwunel(Tuwunel),
}

macro_rules! both {
    ($self:expr, $hs:ident => $e:expr) => {
        match $self {
            Homeserver::Synapse($hs) => $e,
            Homeserver::Tuwunel($hs) => $e,
        }
    };
}

impl Homeserver {
    pub async fn start(
        kind: HomeserverKind,
        cfg: HomeserverConfig,
    ) -> Result<Homeserver, FixtureError> {
        Ok(match kind {
            HomeserverKind::Synapse => Homeserver::Synapse(
                Synapse::start(SynapseConfig {
                    server_name: cfg.server_name,
                    registrations: cfg.registrations,
                    port: cfg.port,
                    extra_config: cfg.synapse_extra,
                })
                .await?,
            ),
            HomeserverKind::Tuwunel => Homeserver::Tuwunel(
                Tuwunel::start(TuwunelConfig {
                    server_name: cfg.server_name,
                    registrations: cfg.registrations,
                    port: cfg.port,
                    extra_global: cfg.tuwunel_extra,
                })
                .await?,
            ),
        })
    }

    pub fn kind(&self) -> HomeserverKind {
        match self {
            Homeserver::Synapse(_) => HomeserverKind::Synapse,
            Homeserver::Tuwunel(_) => HomeserverKind::Tuwunel,
        }
    }

    /// `synapse 1.x.y` / `tuwunel 1.4.6`.
    pub fn describe(&self) -> String {
        format!("{} {}", self.kind(), both!(self, hs => hs.version()))
    }

    pub fn base_url(&self) -> String {
        both!(self, hs => hs.base_url())
    }

    pub fn server_name(&self) -> &str {
        both!(self, hs => hs.server_name())
    }

    pub fn port(&self) -> u16 {
        both!(self, hs => hs.port())
    }

    pub fn data_dir(&self) -> &Path {
        both!(self, hs => hs.data_dir())
    }

    pub fn log_tail(&self, lines: usize) -> String {
        both!(self, hs => hs.log_tail(lines))
    }

    pub fn is_running(&mut self) -> bool {
        both!(self, hs => hs.is_running())
    }

    pub async fn stop(&mut self) {
        both!(self, hs => hs.stop().await)
    }

    pub async fn restart(&mut self) -> Result<(), FixtureError> {
        both!(self, hs => hs.restart().await)
    }

    /// A user with a password: Synapse's shared-secret admin API, tuwunel's `/register` with
    /// its registration token.
    pub async fn register_user(
        &self,
        localpart: &str,
        password: &str,
        admin: bool,
    ) -> Result<TestClient, FixtureError> {
        both!(self, hs => hs.register_user(localpart, password, admin).await)
    }

    pub async fn register_unique_user(&self, prefix: &str) -> Result<TestClient, FixtureError> {
        both!(self, hs => hs.register_unique_user(prefix).await)
    }

    pub async fn client_with_token(&self, access_token: &str) -> Result<TestClient, FixtureError> {
        both!(self, hs => hs.client_with_token(access_token).await)
    }

    pub fn as_synapse(&self) -> Option<&Synapse> {
        match self {
            Homeserver::Synapse(s) => Some(s),
            Homeserver::Tuwunel(_) => None,
        }
    }

    pub fn as_tuwunel(&self) -> Option<&Tuwunel> {
        match self {
            Homeserver::Tuwunel(t) => Some(t),
            Homeserver::Synapse(_) => None,
        }
    }
}
