//! The bridge layer: logins, portals, ghosts, and the two directions of message flow.
//!
//! [`Core`] is the state every part shares. Slack events come out of the durable Slack inbox
//! and are handled per portal, in order, different portals in parallel
//! ([`from_slack`]); Matrix events come from the transaction inbox ([`from_matrix`]).
//! Room and ghost creation are serialised per key so concurrent events never create one twice.

pub mod commands;
pub mod custom_emoji;
pub mod double_puppet;
pub mod event_watch;
pub mod files;
pub mod from_matrix;
pub mod from_slack;
pub mod ghost;
pub mod history;
pub mod lifecycle;
pub mod login;
pub mod members;
pub mod portal;
pub mod queue;
pub mod slack_inbox;
pub mod user_login;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex, RwLock},
};

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use tokio::sync::OwnedMutexGuard;

use crate::{
    config::{self, Config},
    ids::{ChannelId, TeamId, Ts},
    matrix::{MatrixClient, MatrixError, Namespace},
    metrics::Metrics,
    slack::web::{SlackClient, SlackError},
    store::{Store, StoreError},
    supervisor::Supervisor,
};

pub use login::LoginRuntime;

/// How long an edit made as a linked user waits for its Socket Mode echo.
const EXPECTED_EDIT_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// The texts edits made as linked users set, by message, until their echoes come.
#[derive(Default)]
struct ExpectedEdits(HashMap<(TeamId, ChannelId, Ts), Vec<(String, std::time::Instant)>>);

impl ExpectedEdits {
    /// Expects `text`; expectations older than [`EXPECTED_EDIT_TTL`] (an echo that never
    /// came) are dropped.
    fn expect(&mut self, key: (TeamId, ChannelId, Ts), text: &str, now: std::time::Instant) {
        self.0.retain(|_, texts| {
            texts.retain(|(_, at)| now.duration_since(*at) < EXPECTED_EDIT_TTL);
            !texts.is_empty()
        });
        self.0.entry(key).or_default().push((text.to_owned(), now));
    }

    /// Whether `text` was expected; that expectation and the ones before it (whose echoes
    /// Slack sent first) are used up.
    fn take(&mut self, key: &(TeamId, ChannelId, Ts), text: &str) -> bool {
        let Some(texts) = self.0.get_mut(key) else {
            return false;
        };
        let Some(i) = texts.iter().position(|(t, _)| t == text) else {
            return false;
        };
        texts.drain(..=i);
        if texts.is_empty() {
            self.0.remove(key);
        }
        true
    }
}

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

    /// How long the other side asked us to wait, when it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Matrix(MatrixError::Api {
                retry_after_ms: Some(ms),
                ..
            }) => Some(std::time::Duration::from_millis(*ms)),
            Self::Slack(e) => e.retry_after(),
            _ => None,
        }
    }

    /// The homeserver cannot be reached at all: every portal waits alike, so waiting does not
    /// count against an item's retry period.
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Matrix(MatrixError::Unreachable { .. }))
    }
}

pub type Result<T, E = BridgeError> = std::result::Result<T, E>;

/// A login as the bridge holds it.
enum LoginSlot {
    /// Stored as valid, not running yet (the bridge is starting): its events wait.
    Starting,
    Running(Arc<LoginRuntime>),
}

/// Everything the bridge parts share.
pub struct Core {
    pub config: Config,
    pub store: Store,
    pub matrix: Arc<MatrixClient>,
    /// Per homeserver domain, the client acting as that server's users (double puppeting).
    pub double_puppets: BTreeMap<String, Arc<MatrixClient>>,
    pub namespace: Namespace,
    /// Every login the bridge runs or is about to run, by team id: the one place that says
    /// whether a team's events can be handled now, later, or not at all.
    logins: RwLock<BTreeMap<TeamId, LoginSlot>>,
    /// Told which Slack → Matrix queue has new work.
    pub inbound: Arc<queue::QueueWaker>,
    /// Told which Matrix → Slack queue has new work.
    pub outbox: Arc<queue::QueueWaker>,
    pub metrics: Arc<Metrics>,
    /// Owns every task the bridge layer starts.
    pub sup: Supervisor,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The span the bridge runs in; long-lived tasks (a login's) hang under it rather than
    /// under whatever started them.
    pub span: tracing::Span,
    /// Which portals run or need no initial backfill.
    pub history: history::Registry,
    /// (room, user) pairs known to be joined, to skip the invite + join round trips.
    joined: Mutex<HashSet<(OwnedRoomId, OwnedUserId)>>,
    /// When a live Slack event last moved a ghost in or out of a room: a member sync that
    /// listed the channel before then must not undo it.
    membership_moves: Mutex<HashMap<(OwnedRoomId, OwnedUserId), std::time::Instant>>,
    /// Edits made on Slack with a linked user's token, by message: the text whose
    /// `message_changed` is their echo (it comes from the user, not the bot).
    expected_edits: Mutex<ExpectedEdits>,
    /// One Slack client per linked Matrix user and workspace, so Slack's pacing of their
    /// token is learned once and kept.
    user_clients: Mutex<HashMap<(TeamId, OwnedUserId), SlackClient>>,
}

impl Core {
    pub fn new(
        config: Config,
        store: Store,
        matrix: Arc<MatrixClient>,
        metrics: Arc<Metrics>,
        sup: Supervisor,
    ) -> Arc<Self> {
        let namespace = Namespace::from_config(&config);
        let double_puppets = double_puppet::clients(&config, matrix.bot());
        Arc::new(Self {
            config,
            store,
            matrix,
            double_puppets,
            namespace,
            logins: RwLock::new(BTreeMap::new()),
            inbound: Arc::default(),
            outbox: Arc::default(),
            metrics,
            sup,
            locks: Mutex::new(HashMap::new()),
            span: tracing::Span::current(),
            history: history::Registry::default(),
            joined: Mutex::new(HashSet::new()),
            membership_moves: Mutex::new(HashMap::new()),
            expected_edits: Mutex::default(),
            user_clients: Mutex::new(HashMap::new()),
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

    /// The retry policy of both directions' queues.
    pub fn retry_policy(&self) -> queue::RetryPolicy {
        queue::RetryPolicy {
            retry_for: self.config.bridge.outbound.retry_for,
            backoff: crate::retry::Backoff::new(
                std::time::Duration::from_millis(500),
                std::time::Duration::from_secs(60),
            ),
        }
    }

    /// Starts the queues of both directions (their schedulers and workers belong to `sup`).
    pub fn start_queues(self: &Arc<Self>) {
        let inbound = queue::Scheduler::new(
            from_slack::Inbound(self.clone()),
            self.store.clone(),
            self.retry_policy(),
            self.sup.clone(),
            self.inbound.clone(),
        );
        self.sup.spawn("slack → matrix queues", inbound.run());
        let outbound = queue::Scheduler::new(
            from_matrix::Outbound(self.clone()),
            self.store.clone(),
            self.retry_policy(),
            self.sup.clone(),
            self.outbox.clone(),
        );
        self.sup.spawn("matrix → slack queues", outbound.run());
    }

    /// The running login of a team, or why there is none: `NotReady` while a valid stored
    /// login is starting (retry later), `NoLogin` when there is no valid login at all.
    pub fn running_login(&self, team_id: &TeamId) -> Result<Arc<LoginRuntime>> {
        match self.logins.read().expect("logins").get(team_id) {
            Some(LoginSlot::Running(rt)) => Ok(rt.clone()),
            Some(LoginSlot::Starting) => Err(BridgeError::NotReady(format!(
                "slack login for team {team_id} is starting"
            ))),
            None => Err(BridgeError::NoLogin(team_id.to_string())),
        }
    }

    pub fn login(&self, team_id: &TeamId) -> Option<Arc<LoginRuntime>> {
        self.running_login(team_id).ok()
    }

    pub fn all_logins(&self) -> Vec<Arc<LoginRuntime>> {
        self.logins
            .read()
            .expect("logins")
            .values()
            .filter_map(|slot| match slot {
                LoginSlot::Running(rt) => Some(rt.clone()),
                LoginSlot::Starting => None,
            })
            .collect()
    }

    /// A valid stored login that is about to start: its events wait for it.
    pub fn login_starting(&self, team_id: &TeamId) {
        self.logins
            .write()
            .expect("logins")
            .entry(team_id.clone())
            .or_insert(LoginSlot::Starting);
    }

    pub fn login_running(&self, rt: Arc<LoginRuntime>) {
        self.logins
            .write()
            .expect("logins")
            .insert(rt.team_id().clone(), LoginSlot::Running(rt));
    }

    /// The team has no login any more (logged out, invalid, failed to start); returns the
    /// runtime that was running, to stop.
    pub fn login_gone(&self, team_id: &TeamId) -> Option<Arc<LoginRuntime>> {
        match self.logins.write().expect("logins").remove(team_id)? {
            LoginSlot::Running(rt) => Some(rt),
            LoginSlot::Starting => None,
        }
    }

    /// Forgets every login (shutdown).
    pub fn clear_logins(&self) {
        self.logins.write().expect("logins").clear();
    }

    pub fn is_joined(&self, room: &RoomId, user: &UserId) -> bool {
        self.joined
            .lock()
            .expect("joined")
            .contains(&(room.to_owned(), user.to_owned()))
    }

    /// Forgets a membership the homeserver no longer confirms (the ghost was kicked).
    pub fn forget_joined(&self, room: &RoomId, user: &UserId) {
        self.joined
            .lock()
            .expect("joined")
            .remove(&(room.to_owned(), user.to_owned()));
    }

    /// A live `member_joined_channel` / `member_left_channel` moved `user` (a ghost).
    pub fn note_membership_move(&self, room: &RoomId, user: &UserId) {
        self.membership_moves
            .lock()
            .expect("membership moves")
            .insert(
                (room.to_owned(), user.to_owned()),
                std::time::Instant::now(),
            );
    }

    /// Whether a live event moved `user` in or out of `room` after `since`.
    pub fn membership_moved_since(
        &self,
        room: &RoomId,
        user: &UserId,
        since: std::time::Instant,
    ) -> bool {
        self.membership_moves
            .lock()
            .expect("membership moves")
            .get(&(room.to_owned(), user.to_owned()))
            .is_some_and(|at| *at >= since)
    }

    /// The client acting as `mxid`'s linked Slack account with `token`: the one made
    /// before while the token is the same, so its pacing carries over.
    pub fn user_client(
        &self,
        team: &TeamId,
        mxid: &UserId,
        bot: &SlackClient,
        token: config::Secret,
    ) -> SlackClient {
        let mut clients = self.user_clients.lock().expect("user clients");
        let key = (team.clone(), mxid.to_owned());
        match clients.get(&key) {
            Some(c) if c.has_token(&token) => c.clone(),
            _ => {
                let c = bot.for_user(token);
                clients.insert(key, c.clone());
                c
            }
        }
    }

    /// The bridge is changing a message's text on Slack as a linked user.
    pub fn expect_edit(&self, team: &TeamId, channel: &ChannelId, ts: &Ts, text: &str) {
        let key = (team.clone(), channel.clone(), ts.clone());
        self.expected_edits.lock().expect("expected edits").expect(
            key,
            text,
            std::time::Instant::now(),
        );
    }

    /// Whether a `message_changed` to `text` is the echo of an [`Self::expect_edit`].
    pub fn is_expected_edit(
        &self,
        team: &TeamId,
        channel: &ChannelId,
        ts: &Ts,
        text: &str,
    ) -> bool {
        let key = (team.clone(), channel.clone(), ts.clone());
        self.expected_edits
            .lock()
            .expect("expected edits")
            .take(&key, text)
    }

    pub fn mark_joined(&self, room: &RoomId, user: &UserId) {
        self.joined
            .lock()
            .expect("joined")
            .insert((room.to_owned(), user.to_owned()));
    }

    /// The ghost of a Slack user or bot. An ID Slack sent that makes no valid Matrix ID is
    /// refused here, before anything is stored under it.
    pub fn ghost_mxid(
        &self,
        team_id: &TeamId,
        user_id: &impl crate::ids::GhostKey,
    ) -> Result<OwnedUserId> {
        let mxid = crate::ids::ghost_mxid(
            &self.config.appservice.username_template,
            &self.config.homeserver.domain,
            team_id,
            user_id,
        );
        OwnedUserId::try_from(mxid.as_str())
            .map_err(|e| BridgeError::Other(format!("ghost id {mxid}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_echoes_are_known_in_order_and_not_forever() {
        let key = || {
            (
                TeamId::from("T1"),
                ChannelId::from("C1"),
                Ts::from("1.000001"),
            )
        };
        let mut e = ExpectedEdits::default();
        let t0 = std::time::Instant::now();
        // Two quick edits: both echoes are known, in their order.
        e.expect(key(), "one", t0);
        e.expect(key(), "two", t0);
        assert!(e.take(&key(), "one"));
        assert!(!e.take(&key(), "one"), "used up");
        assert!(e.take(&key(), "two"));
        // An echo that is skipped (Slack sent only the last) uses up the earlier ones.
        e.expect(key(), "a", t0);
        e.expect(key(), "b", t0);
        assert!(e.take(&key(), "b"));
        assert!(!e.take(&key(), "a"));
        // Someone else's text is not an echo.
        e.expect(key(), "mine", t0);
        assert!(!e.take(&key(), "theirs"));
        // An expectation whose echo never came is gone after the TTL.
        e.expect(
            key(),
            "late",
            t0 + EXPECTED_EDIT_TTL + std::time::Duration::from_secs(1),
        );
        assert!(!e.take(&key(), "mine"));
        assert!(e.take(&key(), "late"));
    }
}
