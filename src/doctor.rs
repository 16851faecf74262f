//! `slack-bridge doctor`: every startup check, run without starting the bridge, each reported
//! with its outcome so the operator sees all that is wrong in one go: the config, the
//! database, the homeserver, and for every Slack login (declared in the config or stored)
//! its bot token, granted scopes, app-level token and whether Slack sends it events.
//! `--json` prints the same checks as one object.

use std::{collections::BTreeSet, path::Path, sync::Arc};

use serde::Serialize;
use tokio::sync::Notify;

use crate::{
    Error, bind,
    config::{Config, Mode, Secret},
    ids::TeamId,
    matrix::{self, MatrixClient, appservice::AppserviceState},
    matrix_client, server,
    slack::{manifest, web::SlackClient},
    store::{LoginState, Store},
};

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: String,
    pub ok: bool,
    pub detail: String,
    /// The Slack workspace a login check is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// For the scope check: each missing scope and what breaks without it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_scopes: Vec<MissingScope>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MissingScope {
    pub scope: String,
    pub breaks: String,
}

/// Collects the checks, printing each as it completes unless the output is JSON.
struct Report {
    json: bool,
    checks: Vec<Check>,
}

impl Report {
    fn add(&mut self, check: Check) {
        if !self.json {
            let mark = if check.ok { "ok  " } else { "FAIL" };
            if check.detail.is_empty() {
                println!("[{mark}] {}", check.check);
            } else {
                println!("[{mark}] {}: {}", check.check, check.detail);
            }
        }
        self.checks.push(check);
    }

    fn push(&mut self, ok: bool, what: &str, detail: impl Into<String>) {
        self.add(Check {
            check: what.to_owned(),
            ok,
            detail: detail.into(),
            team: None,
            missing_scopes: Vec::new(),
        });
    }

    fn note(&self, text: &str) {
        if !self.json {
            println!("       ({text})");
        }
    }

    fn failures(&self) -> usize {
        self.checks.iter().filter(|c| !c.ok).count()
    }

    fn finish(self) -> Result<(), Error> {
        let failures = self.failures();
        if self.json {
            let out = serde_json::json!({"ok": failures == 0, "checks": self.checks});
            println!(
                "{}",
                serde_json::to_string_pretty(&out).expect("plain JSON")
            );
        } else if failures == 0 {
            println!("All checks passed.");
        }
        if failures == 0 {
            Ok(())
        } else {
            Err(Error::Doctor(format!("{failures} check(s) failed (above)")))
        }
    }
}

/// Runs the checks, printing each (or, with `json`, all of them at the end as one object);
/// fails when any failed.
pub async fn run(config_path: &Path, registration: &Path, json: bool) -> Result<(), Error> {
    let mut report = Report {
        json,
        checks: Vec::new(),
    };
    let config = match Config::load(config_path, Mode::Run) {
        Ok(c) => {
            report.push(true, "config", config_path.display().to_string());
            c
        }
        Err(e) => {
            report.push(false, "config", e.to_string());
            return report.finish();
        }
    };
    let store = match Store::connect(config.database.uri(), 1).await {
        Ok(s) => {
            let v = s.schema_version().await.unwrap_or_default();
            report.push(
                true,
                "database",
                format!(
                    "{} ({:?}, schema version {v})",
                    config.database.display_uri(),
                    s.dialect()
                ),
            );
            Some(s)
        }
        Err(e) => {
            report.push(false, "database", e.to_string());
            None
        }
    };
    let store = match store {
        Some(store) => key_check(&mut report, &config, store).await,
        None => None,
    };
    let matrix = homeserver_checks(&mut report, &config, registration, store.as_ref()).await?;
    slack_checks(&mut report, &config, store.as_ref(), matrix.as_deref()).await;
    if let Some(store) = store {
        store.close().await;
    }
    report.finish()
}

/// The encryption key: present and the one the database's secrets are sealed with (or none
/// yet, for a database that has nothing sealed). Returns the store unlocked, or `None` when
/// its secrets cannot be read.
async fn key_check(report: &mut Report, config: &Config, store: Store) -> Option<Store> {
    let what = "encryption key";
    let key_file = config.database.key_file();
    match crate::crypto::load(&config.database) {
        Err(e) => report.push(false, what, e.to_string()),
        Ok(None) => match store.is_sealed().await {
            Ok(false) => {
                report.push(
                    true,
                    what,
                    format!(
                        "none yet; the first start (or -g) creates {}",
                        key_file.display()
                    ),
                );
                return Some(store);
            }
            Ok(true) => report.push(
                false,
                what,
                crate::store::StoreError::KeyMissing {
                    path: key_file.display().to_string(),
                }
                .to_string(),
            ),
            Err(e) => report.push(false, what, e.to_string()),
        },
        Ok(Some((key, origin))) => match store.unlock(&key, &origin.to_string()).await {
            Ok(unlocked) => {
                report.push(true, what, format!("{origin} opens the stored secrets"));
                return Some(unlocked);
            }
            Err(e) => report.push(false, what, e.to_string()),
        },
    }
    store.close().await;
    None
}

/// The homeserver checks; returns the client when the homeserver accepted the as_token.
async fn homeserver_checks(
    report: &mut Report,
    config: &Config,
    registration: &Path,
    store: Option<&Store>,
) -> Result<Option<Arc<MatrixClient>>, Error> {
    let client = Arc::new(matrix_client(config)?);
    match matrix::checks::homeserver(&client, registration).await {
        Ok(()) => report.push(
            true,
            "homeserver",
            format!(
                "{} accepts the as_token of {}",
                config.homeserver.address,
                client.bot()
            ),
        ),
        Err(e) => {
            report.push(false, "homeserver", e.to_string());
            return Ok(None);
        }
    }
    // Listen like the bridge would, unless a running bridge already does: then the ping
    // reaches that one, which proves the same thing.
    let listener = match (bind(config).await, store) {
        (Ok(l), Some(store)) => Some((l, store.clone())),
        (Ok(_), None) => None,
        (Err(e), _) => {
            report.note(&format!("listener: {e}; pinging whatever listens there"));
            None
        }
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let server = listener.map(|(listener, store)| {
        let state = AppserviceState::new(config, store, Arc::new(Notify::new()));
        let limits = &config.appservice.limits;
        // Only what the homeserver's ping needs: no /metrics.
        let metrics = crate::config::MetricsConfig {
            enabled: false,
            listen: None,
        };
        let routes = server::routes(state, client.clone(), None, &metrics, limits);
        server::spawn(listener, routes.appservice, limits.clone(), stop.clone())
    });
    match matrix::checks::ping(&client, &config.appservice.address).await {
        Ok(rtt) => report.push(
            true,
            "appservice ping",
            format!(
                "the homeserver reached the bridge at {} ({} ms)",
                config.appservice.address,
                rtt.as_millis()
            ),
        ),
        Err(e) => report.push(false, "appservice ping", e.to_string()),
    }
    stop.cancel();
    if let Some(server) = server {
        let _ = server.await;
    }
    Ok(Some(client))
}

/// A login to check: where it comes from and its tokens.
struct LoginToCheck {
    label: String,
    bot_token: Secret,
    app_token: Secret,
    /// The stored login's team, when it is one.
    team_id: Option<TeamId>,
}

async fn slack_checks(
    report: &mut Report,
    config: &Config,
    store: Option<&Store>,
    matrix: Option<&MatrixClient>,
) {
    let mut logins = Vec::new();
    for (i, declared) in config.slack.logins.iter().enumerate() {
        match (&declared.bot_token, &declared.app_token) {
            (Some(bot), Some(app)) => logins.push(LoginToCheck {
                label: format!("slack.logins.{i}"),
                bot_token: bot.clone(),
                app_token: app.clone(),
                team_id: None,
            }),
            _ => report.push(
                false,
                &format!("slack.logins.{i}"),
                "needs both bot_token and app_token (inline, *_file or SLACK_BRIDGE_LOGINS_<n>_*)",
            ),
        }
    }
    if let Some(store) = store {
        match store.list_logins().await {
            Ok(stored) => {
                for l in stored {
                    match l.state {
                        LoginState::Ok => logins.push(LoginToCheck {
                            label: format!("stored login {} ({})", l.team_name, l.team_id),
                            bot_token: l.bot_token.clone(),
                            app_token: l.app_token.clone(),
                            team_id: Some(l.team_id.clone()),
                        }),
                        LoginState::Invalid => report.add(Check {
                            check: format!("stored login {} ({})", l.team_name, l.team_id),
                            ok: false,
                            detail: format!(
                                "marked invalid: {}; its owner {} must log in again (`login <app token> <bot token>`)",
                                l.state_reason.as_deref().unwrap_or("no reason recorded"),
                                l.owner_mxid
                            ),
                            team: Some(l.team_id.to_string()),
                            missing_scopes: Vec::new(),
                        }),
                        LoginState::LoggedOut => {}
                    }
                }
            }
            Err(e) => report.push(false, "stored logins", e.to_string()),
        }
    }
    if logins.is_empty() {
        report.note("no Slack login is configured or stored: nothing to check on the Slack side");
    }
    // A declared login is also stored once the bridge ran: check each workspace once.
    let mut seen = BTreeSet::new();
    for login in logins {
        if let Some(team) = &login.team_id
            && seen.contains(team)
        {
            continue;
        }
        if let Some(team) = check_login(report, config, store, matrix, &login).await {
            seen.insert(team);
        }
    }
}

/// Checks one login; returns its team id when the bot token works.
async fn check_login(
    report: &mut Report,
    config: &Config,
    store: Option<&Store>,
    matrix: Option<&MatrixClient>,
    login: &LoginToCheck,
) -> Option<TeamId> {
    let check = |what: &str, team: Option<&str>, ok: bool, detail: String| Check {
        check: format!("{}: {what}", login.label),
        ok,
        detail,
        team: team.map(str::to_owned),
        missing_scopes: Vec::new(),
    };
    let slack = match SlackClient::new(
        &config.slack.api_url,
        login.bot_token.clone(),
        login.app_token.clone(),
    ) {
        Ok(s) => s,
        Err(e) => {
            report.add(check("slack client", None, false, e.to_string()));
            return None;
        }
    };
    let authed = match slack.auth_test().await {
        Ok(a) => a,
        Err(e) => {
            let fix = if e.is_auth_dead() {
                "the bot token (xoxb-…) is revoked or wrong: reinstall the app to the workspace and use its new Bot User OAuth Token"
            } else {
                "check slack.api_url and the network"
            };
            report.add(check(
                "bot token (auth.test)",
                login.team_id.as_deref(),
                false,
                format!("{e}; {fix}"),
            ));
            return None;
        }
    };
    let team = authed.info.team_id.clone();
    report.add(check(
        "bot token (auth.test)",
        Some(&team),
        true,
        format!(
            "workspace {} ({team}), bot user {} ({})",
            authed.info.team, authed.info.user, authed.info.user_id
        ),
    ));
    let missing = authed.missing_scopes(&manifest::bot_scope_names());
    let mut scopes = check(
        "scopes",
        Some(&team),
        missing.is_empty(),
        if missing.is_empty() {
            format!(
                "all {} scopes of `slack-bridge manifest` are granted",
                manifest::BOT_SCOPES.len()
            )
        } else {
            format!(
                "{} missing: {}. Add them under OAuth & Permissions (or paste `slack-bridge manifest` into the app's manifest) and reinstall the app",
                missing.len(),
                manifest::describe_missing(&missing)
            )
        },
    );
    scopes.missing_scopes = missing
        .iter()
        .map(|s| MissingScope {
            scope: (*s).to_owned(),
            breaks: manifest::scope_purpose(s).to_owned(),
        })
        .collect();
    report.add(scopes);
    match slack.apps_connections_open().await {
        Ok(url) => {
            let (ok, detail) = match socket_hello(url).await {
                Ok(()) => (
                    true,
                    "opens Socket Mode connections, and Slack says hello on one".to_owned(),
                ),
                Err(e) => (
                    false,
                    format!(
                        "apps.connections.open works, but the Socket Mode connection does not: {e}. Check that outbound WebSockets (wss://, port 443) are allowed"
                    ),
                ),
            };
            report.add(check(
                "app token (apps.connections.open)",
                Some(&team),
                ok,
                detail,
            ))
        }
        Err(e) => report.add(check(
            "app token (apps.connections.open)",
            Some(&team),
            false,
            format!(
                "{e}: the app-level token (xapp-…) does not open Socket Mode connections; it may be revoked or lack connections:write. Generate one under Basic Information → App-Level Tokens with connections:write, and turn Socket Mode on"
            ),
        )),
    }
    if let (Some(store), Some(matrix)) = (store, matrix) {
        let bot = crate::bridge::event_watch::OwnBot {
            user_id: authed.info.user_id.clone(),
            bot_id: authed.info.bot_id.clone().unwrap_or_default(),
        };
        let every = config.slack.event_check_interval();
        let events =
            crate::bridge::event_watch::check_stored(&slack, store, matrix, &team, &bot, every)
                .await;
        match events {
            Some((ok, detail)) => report.add(check("events", Some(&team), ok, detail)),
            None => report.note(&format!(
                "{}: events not judged: no bridged channel has a message posted since its room was created",
                login.label
            )),
        }
    } else {
        report.note(&format!(
            "{}: events not judged: that needs the database and the homeserver",
            login.label
        ));
    }
    Some(team)
}

/// Connects to a Socket Mode URL and waits for Slack's `hello`, then closes. Nothing is
/// acked: an event Slack sends this connection meanwhile is redelivered to the bridge's.
async fn socket_hello(url: String) -> Result<(), String> {
    use crate::slack::{
        frames::{self, Frame},
        socket::{SocketConnector, TungsteniteConnector},
    };
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let wait = std::time::Duration::from_secs(10);
    let (mut sink, mut stream) = tokio::time::timeout(wait, TungsteniteConnector.connect(url))
        .await
        .map_err(|_| "connecting timed out after 10 s".to_owned())??;
    let outcome = tokio::time::timeout(wait, async {
        while let Some(message) = stream.next().await {
            match message.map_err(|e| e.to_string())? {
                Message::Text(text) => {
                    return match frames::parse(&text) {
                        Ok(Frame::Hello { .. }) => Ok(()),
                        Ok(Frame::Disconnect { reason }) => {
                            Err(format!("Slack closed it at once ({reason})"))
                        }
                        Ok(_) | Err(_) => Err(format!("the first frame is not hello: {text}")),
                    };
                }
                Message::Close(frame) => {
                    return Err(format!("Slack closed it at once ({frame:?})"));
                }
                _ => {}
            }
        }
        Err("Slack closed it without a hello".to_owned())
    })
    .await
    .unwrap_or_else(|_| Err("no hello within 10 s".to_owned()));
    let _ = sink.close().await;
    outcome
}
