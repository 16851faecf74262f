//! Logins: verifying a Slack app's tokens, storing them, and running what a login needs (the
//! Socket Mode connection and the initial portal sync). A login whose credentials die is
//! marked invalid with the reason and its owner is told.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use ruma::UserId;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{
    BridgeError, Core, Result,
    event_watch::{self, EventWatch, OwnBot, Watched},
    portal,
    slack_inbox::InboxStore,
};
use crate::{
    config::Secret,
    ids::TeamId,
    slack::{
        socket::{SocketConfig, SocketManager, SocketState, TungsteniteConnector, WebApiOpener},
        web::{ClientOptions, SlackClient},
    },
    store::{Login, LoginState},
};

/// A running login.
pub struct LoginRuntime {
    pub login: Login,
    pub slack: Arc<SlackClient>,
    pub socket: watch::Receiver<SocketState>,
    /// Since when the socket is not connected (None while it is).
    down_since: Arc<Mutex<Option<Instant>>>,
    /// Stops this login's tasks (a child of the bridge's stop token).
    stop: CancellationToken,
    /// Whether Slack sends this login's message events (the Event Subscriptions check).
    pub events: Arc<EventWatch>,
    /// Wakes the member sync (a portal was created).
    pub members_wake: Arc<tokio::sync::Notify>,
    /// The workspace's user groups, fetched when a message mentions one and kept a while.
    pub usergroups: tokio::sync::Mutex<Option<(Instant, Vec<crate::slack::types::Usergroup>)>>,
}

/// A login's connection, for `/ready` and `ping`.
#[derive(Debug, Clone)]
pub struct LoginHealth {
    pub state: SocketState,
    /// How long the socket has not been connected.
    pub down_for: Option<Duration>,
}

impl LoginHealth {
    pub fn describe(&self) -> String {
        let state = match &self.state {
            SocketState::Connected => "connected".to_owned(),
            SocketState::Connecting => "connecting".to_owned(),
            SocketState::Reconnecting { attempt, reason } => {
                format!("reconnecting (attempt {attempt}: {reason})")
            }
            SocketState::Invalid(r) => format!("credentials invalid: {r}"),
            SocketState::Stopped => "stopped".to_owned(),
        };
        match self.down_for {
            Some(d) if d >= Duration::from_secs(1) => {
                format!("{state}, not connected for {}s", d.as_secs())
            }
            _ => state,
        }
    }
}

/// How long fetched user groups are used before asking Slack again.
const USERGROUPS_TTL: Duration = Duration::from_secs(300);

impl LoginRuntime {
    /// The workspace's user groups (cached for [`USERGROUPS_TTL`]); empty when Slack refuses
    /// (no `usergroups:read`: mentions then keep the label Slack wrote).
    pub async fn usergroups(&self) -> Vec<crate::slack::types::Usergroup> {
        let mut cached = self.usergroups.lock().await;
        if let Some((at, groups)) = cached.as_ref()
            && at.elapsed() < USERGROUPS_TTL
        {
            return groups.clone();
        }
        let groups = match self.slack.usergroups_list().await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(team = %self.login.team_id, error = %e, "cannot list user groups; their mentions notify nobody on Matrix");
                Vec::new()
            }
        };
        *cached = Some((Instant::now(), groups.clone()));
        groups
    }

    pub fn team_id(&self) -> &TeamId {
        &self.login.team_id
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }

    pub fn health(&self) -> LoginHealth {
        LoginHealth {
            state: self.socket.borrow().clone(),
            down_for: self
                .down_since
                .lock()
                .expect("down_since")
                .map(|t| t.elapsed()),
        }
    }
}

pub fn slack_client(core: &Core, bot_token: &Secret, app_token: &Secret) -> Result<SlackClient> {
    let options = ClientOptions {
        request_timeout: core.config.slack.request_timeout,
        ..ClientOptions::default()
    };
    Ok(SlackClient::with_options(
        &core.config.slack.api_url,
        bot_token.clone(),
        app_token.clone(),
        options,
    )?)
}

/// Checks both tokens with Slack (auth.test for the bot token, apps.connections.open for the
/// app-level token) and returns the login they make, owned by `owner`.
pub async fn verify(
    core: &Core,
    bot_token: &Secret,
    app_token: &Secret,
    owner: &UserId,
) -> Result<Login> {
    let slack = slack_client(core, bot_token, app_token)?;
    let authed = slack.auth_test().await?;
    let missing = authed.missing_scopes(&crate::slack::manifest::bot_scope_names());
    let auth = &authed.info;
    if !missing.is_empty() {
        tracing::warn!(
            team = %auth.team_id,
            missing = %crate::slack::manifest::describe_missing(&missing),
            "the slack app lacks scopes; add them under OAuth & Permissions (or paste `slack-bridge manifest` into the app's manifest) and reinstall the app"
        );
    }
    let bot_id = auth.bot_id.clone().unwrap_or_default();
    let app_id = match (&auth.app_id, bot_id.is_empty()) {
        (Some(a), _) if !a.is_empty() => a.clone(),
        (_, false) => slack
            .bots_info(&bot_id)
            .await
            .map(|b| b.app_id.unwrap_or_default())
            .unwrap_or_default(),
        _ => String::new(),
    };
    slack.apps_connections_open().await.map_err(|e| {
        BridgeError::Other(format!(
            "the app-level token does not open Socket Mode connections ({e}); it needs the connections:write scope and Socket Mode turned on"
        ))
    })?;
    let team_name = slack
        .team_info()
        .await
        .map(|t| t.name)
        .unwrap_or_else(|_| auth.team.clone());
    Ok(Login {
        team_id: auth.team_id.clone(),
        team_name,
        bot_user_id: auth.user_id.clone(),
        bot_id,
        app_id,
        owner_mxid: owner.to_owned(),
        bot_token: bot_token.clone(),
        app_token: app_token.clone(),
        state: LoginState::Ok,
        state_reason: None,
        space_room_id: None,
    })
}

/// Starts the socket and the portal sync of a stored login, replacing a running one.
pub async fn start(core: &Arc<Core>, login: Login) -> Result<Arc<LoginRuntime>> {
    if let Some(old) = core.login(&login.team_id) {
        old.stop();
    }
    let slack = Arc::new(slack_client(core, &login.bot_token, &login.app_token)?);
    let metrics = core.metrics.clone();
    let events = Arc::new(EventWatch::default());
    let manager = SocketManager::new(
        login.team_id.clone(),
        Arc::new(WebApiOpener(slack.clone())),
        Arc::new(TungsteniteConnector),
        Arc::new(Watched {
            inner: InboxStore {
                store: core.store.clone(),
                team_id: login.team_id.clone(),
                waker: core.inbound.clone(),
                catchup_max: core.config.bridge.backfill.catchup_max,
            },
            watch: events.clone(),
        }),
        SocketConfig {
            on_ack: Some(Arc::new(move |d| metrics.slack_ack(d))),
            ..SocketConfig::default()
        },
    );
    let socket = manager.state();
    let stop = core.sup.stop_token().child_token();
    // The login's tasks log under it, not under the command or start-up that began them.
    let span = tracing::info_span!(parent: &core.span, "login", team = %login.team_id);
    let team = login.team_id.clone();
    let watch_core = core.clone();
    let token = stop.clone();
    core.sup.spawn_in(&span, "slack socket", async move {
        let final_state = manager.run(token.cancelled_owned()).await;
        if let SocketState::Invalid(reason) = final_state {
            mark_invalid(&watch_core, &team, &reason).await;
        }
    });
    // Follow the connection: for the operator's log, `/ready` and `systemctl status`.
    let team = login.team_id.clone();
    let status_core = core.clone();
    let mut state_rx = socket.clone();
    let down_since = Arc::new(Mutex::new(Some(Instant::now())));
    let down = down_since.clone();
    let token = stop.clone();
    core.sup.spawn_in(&span, "slack socket state", async move {
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                changed = state_rx.changed() => if changed.is_err() { return },
            }
            let s = state_rx.borrow_and_update().clone();
            let mut d = down.lock().expect("down_since");
            match (&s, *d) {
                (SocketState::Connected, _) => *d = None,
                (_, None) => *d = Some(Instant::now()),
                _ => {}
            }
            tracing::debug!(%team, state = ?s, "slack connection state");
            crate::notify::status(&status_line(&status_core));
        }
    });
    let every = core.config.slack.event_check_interval();
    if !every.is_zero() {
        let bot = OwnBot {
            user_id: login.bot_user_id.clone(),
            bot_id: login.bot_id.clone(),
        };
        let watch = event_watch::run(
            slack.clone(),
            core.store.clone(),
            login.team_id.clone(),
            bot,
            events.clone(),
            socket.clone(),
            every,
        );
        let token = stop.clone();
        core.sup
            .spawn_in(&span, "event subscriptions check", async move {
                tokio::select! {
                    _ = token.cancelled() => {}
                    _ = watch => {}
                }
            });
    }
    let runtime = Arc::new(LoginRuntime {
        login,
        slack,
        socket,
        down_since,
        stop: stop.clone(),
        events,
        members_wake: Arc::new(tokio::sync::Notify::new()),
        usergroups: tokio::sync::Mutex::new(None),
    });
    core.login_running(runtime.clone());
    // The socket may have connected before the login was listed: say it now.
    crate::notify::status(&status_line(core));
    core.sup.spawn_in(
        &span,
        "member sync",
        super::members::run(
            core.clone(),
            runtime.clone(),
            runtime.members_wake.clone(),
            stop.clone(),
        ),
    );
    let sync_core = core.clone();
    let sync_rt = runtime.clone();
    // Logout and shutdown stop the sync too: no rooms are created for a stopped login.
    core.sup.spawn_in(&span, "portal sync", async move {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = portal::sync_until_done(&sync_core, &sync_rt, &stop) => {}
        }
    });
    Ok(runtime)
}

/// The `STATUS=` line for systemd: how many of the running Slack logins are connected.
pub fn status_line(core: &Core) -> String {
    let logins = core.all_logins();
    let connected = logins
        .iter()
        .filter(|rt| matches!(&*rt.socket.borrow(), SocketState::Connected))
        .count();
    format!("{connected} of {} Slack login(s) connected", logins.len())
}

/// Marks a login's credentials dead, stops it, and tells its owner why.
pub async fn mark_invalid(core: &Arc<Core>, team_id: &TeamId, reason: &str) {
    tracing::error!(team = %team_id, %reason, "slack login is no longer valid; its owner must log in again");
    if let Err(e) = core
        .store
        .set_login_state(team_id, LoginState::Invalid, Some(reason))
        .await
    {
        tracing::error!(team = %team_id, error = %e, "cannot record the login state");
    }
    let runtime = core.login_gone(team_id);
    if let Some(rt) = runtime {
        // This may run inside the login's own socket task, which stop() aborts: tell the
        // owner first.
        super::commands::notify_owner(
            core,
            &rt.login.owner_mxid,
            &format!(
                "Your Slack login for {} stopped working: {reason}. Log in again with `login <app token> <bot token>`.",
                rt.login.team_name
            ),
        )
        .await;
        rt.stop();
    }
}

/// Marks every valid stored login as starting, so its events wait for it instead of being
/// refused while the bridge starts.
pub async fn expect_stored(core: &Core) -> Result<(), crate::store::StoreError> {
    for l in core.store.list_logins().await? {
        if l.state == LoginState::Ok {
            core.login_starting(&l.team_id);
        }
    }
    Ok(())
}

/// Starts the logins declared in the config (verifying and storing them) and every stored
/// login that is still valid.
pub async fn start_all(core: &Arc<Core>) {
    for (i, declared) in core.config.slack.logins.iter().enumerate() {
        let (Some(bot), Some(app)) = (&declared.bot_token, &declared.app_token) else {
            continue;
        };
        let owner = match UserId::parse(&declared.owner) {
            Ok(o) => o,
            Err(e) => {
                // Refused when the config is read; kept so no login is started without one.
                tracing::error!(login = i, error = %e, "slack.logins.{i}.owner is not a Matrix user ID");
                continue;
            }
        };
        match verify(core, bot, app, &owner).await {
            Ok(login) => {
                if let Err(e) = core.store.upsert_login(&login).await {
                    tracing::error!(login = i, error = %e, "cannot store a declared login");
                    continue;
                }
                tracing::info!(team = %login.team_id, name = %login.team_name, "declared slack login verified");
            }
            Err(e) => {
                tracing::error!(login = i, error = %e, "declared slack login (slack.logins.{i}) failed verification");
            }
        }
    }
    match core.store.list_logins().await {
        Ok(logins) => {
            for login in logins.into_iter().filter(|l| l.state == LoginState::Ok) {
                let login = match core.store.get_login(&login.team_id).await {
                    Ok(Some(l)) => l,
                    _ => login,
                };
                let team = login.team_id.clone();
                tracing::info!(%team, name = %login.team_name, owner = %login.owner_mxid, "starting slack login");
                if let Err(e) = start(core, login).await {
                    tracing::error!(%team, error = %e, "cannot start a slack login");
                    core.login_gone(&team);
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot read the stored logins"),
    }
}
