//! The bridge layer: logins, portals, ghosts, and the two directions of message flow.
//!
//! [`Core`] is the state every part shares. Slack events come out of the durable Slack inbox
//! and are handled per portal, in order, different portals in parallel
//! ([`from_slack`]); Matrix events come from the transaction inbox ([`from_matrix`]).
//! Room and ghost creation are serialised per key so concurrent events never create one twice.

pub mod commands;
pub mod event_watch;
pub mod from_matrix;
pub mod from_slack;
pub mod ghost;
pub mod login;
pub mod portal;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex, RwLock},
};

use tokio::sync::{Notify, OwnedMutexGuard};

use crate::{
    config::Config,
    matrix::{MatrixClient, MatrixError, Namespace},
    slack::web::SlackError,
    store::{Store, StoreError},
};

pub use login::LoginRuntime;

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("homeserver: {0}")]
    Matrix(#[from] MatrixError),
    #[error("slack: {0}")]
    Slack(#[from] SlackError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("no active slack login for team {0}")]
    NoLogin(String),
    /// Something this depends on is starting up; try again shortly.
    #[error("not ready: {0}")]
    NotReady(String),
    #[error("{0}")]
    Other(String),
}

impl BridgeError {
    /// Whether trying again later can help (an outage), as opposed to a permanent refusal.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Matrix(MatrixError::Unreachable { .. }) => true,
            Self::Matrix(MatrixError::Api { status, .. }) => *status == 429 || *status >= 500,
            Self::Matrix(_) => false,
            Self::Slack(e) => e.is_retryable(),
            Self::Store(e) => e.is_transient(),
            Self::NotReady(_) => true,
            Self::NoLogin(_) | Self::Other(_) => false,
        }
    }
}

pub type Result<T, E = BridgeError> = std::result::Result<T, E>;

/// Everything the bridge parts share.
pub struct Core {
    pub config: Config,
    pub store: Store,
    pub matrix: Arc<MatrixClient>,
    pub namespace: Namespace,
    /// Running logins by team id.
    pub logins: RwLock<BTreeMap<String, Arc<LoginRuntime>>>,
    /// Woken when a Slack event is stored.
    pub slack_inbox: Arc<Notify>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// (room, user) pairs known to be joined, to skip the invite + join round trips.
    joined: Mutex<HashSet<(String, String)>>,
}

impl Core {
    pub fn new(config: Config, store: Store, matrix: Arc<MatrixClient>) -> Arc<Self> {
        let namespace = Namespace::from_config(&config);
        Arc::new(Self {
            config,
            store,
            matrix,
            namespace,
            logins: RwLock::new(BTreeMap::new()),
            slack_inbox: Arc::new(Notify::new()),
            locks: Mutex::new(HashMap::new()),
            joined: Mutex::new(HashSet::new()),
        })
    }

    /// Serialises work on one key (a portal, a ghost) across tasks.
    pub async fn lock(&self, key: String) -> OwnedMutexGuard<()> {
        let m = self
            .locks
            .lock()
            .expect("locks")
            .entry(key)
            .or_default()
            .clone();
        m.lock_owned().await
    }

    pub fn login(&self, team_id: &str) -> Option<Arc<LoginRuntime>> {
        self.logins.read().expect("logins").get(team_id).cloned()
    }

    pub fn all_logins(&self) -> Vec<Arc<LoginRuntime>> {
        self.logins
            .read()
            .expect("logins")
            .values()
            .cloned()
            .collect()
    }

    pub fn is_joined(&self, room: &str, user: &str) -> bool {
        self.joined
            .lock()
            .expect("joined")
            .contains(&(room.to_owned(), user.to_owned()))
    }

    /// Forgets a membership the homeserver no longer confirms (the ghost was kicked).
    pub fn forget_joined(&self, room: &str, user: &str) {
        self.joined
            .lock()
            .expect("joined")
            .remove(&(room.to_owned(), user.to_owned()));
    }

    pub fn mark_joined(&self, room: &str, user: &str) {
        self.joined
            .lock()
            .expect("joined")
            .insert((room.to_owned(), user.to_owned()));
    }

    pub fn ghost_mxid(&self, team_id: &str, user_id: &str) -> String {
        crate::ids::ghost_mxid(
            &self.config.appservice.username_template,
            &self.config.homeserver.domain,
            team_id,
            user_id,
        )
    }
}
