//! Bot commands: in the management room (a DM with the bridge bot) as plain text, elsewhere
//! behind `bridge.command_prefix`. Permissions are enforced (`relay` < `user` < `admin`) and a
//! refused user is told which level the command needs.

use std::sync::Arc;

use ruma::{EventId, RoomId, UserId};

use super::{Core, Result, from_matrix::notice, login, user_login};
use crate::{
    config::{PermissionLevel, Secret},
    ids::ChannelId,
    store::{LoginState, QueueTable, now_ms, slack_queue},
};

/// The bot's commands. Their help, permission level and dispatch all come from here.
#[derive(Debug, clap::Parser)]
#[command(
    name = "command",
    no_binary_name = true,
    disable_help_flag = true,
    disable_help_subcommand = true,
    disable_version_flag = true
)]
enum Command {
    /// this list
    Help,
    /// connect a Slack app (xapp-… with connections:write, xoxb-…); the message is redacted
    Login {
        #[arg(value_name = "app token")]
        first: Option<String>,
        #[arg(value_name = "bot token")]
        second: Option<String>,
    },
    /// disconnect your Slack login
    Logout,
    /// link your own Slack account, to post as yourself (without an argument: how)
    LoginUser {
        #[arg(value_name = "code, address or user token")]
        arg: Option<String>,
    },
    /// unlink your Slack account; your messages go through the relay again
    LogoutUser,
    /// state of the Slack connection(s), the queues and the homeserver
    Ping,
    /// the bridged conversations of your login(s), their history, and what did not get through
    List,
    /// (in a portal room) fetch what Slack has after the newest bridged message
    Backfill,
}

impl Command {
    fn needs(&self) -> PermissionLevel {
        match self {
            Command::Help => PermissionLevel::Relay,
            Command::Login { .. }
            | Command::Logout
            | Command::LoginUser { .. }
            | Command::LogoutUser
            | Command::Ping
            | Command::List
            | Command::Backfill => PermissionLevel::User,
        }
    }
}

/// The command list, generated from [`Command`].
fn help() -> String {
    use clap::CommandFactory;
    let mut lines = vec![
        "Commands (in this DM as they are, in other rooms after the command prefix):".to_owned(),
    ];
    for sub in Command::command().get_subcommands() {
        let usage = std::iter::once(sub.get_name().to_owned())
            .chain(sub.get_positionals().map(|a| {
                let name = a
                    .get_value_names()
                    .and_then(|n| n.first())
                    .map_or_else(|| a.get_id().to_string(), ToString::to_string);
                format!("<{name}>")
            }))
            .collect::<Vec<_>>()
            .join(" ");
        let about = sub.get_about().map(ToString::to_string).unwrap_or_default();
        lines.push(format!("  {usage:<30}{about}"));
    }
    lines.join("\n")
}

/// The bot was invited: join, and make a direct chat the inviter's management room.
pub async fn on_bot_invite(
    core: &Arc<Core>,
    room: &RoomId,
    sender: &UserId,
    is_direct: bool,
) -> Result<()> {
    core.matrix.join(None, room).await?;
    if core.config.bridge.permission_of(sender.as_str()).is_none() {
        // Say why once, then leave: the bot does not stay where it may not serve.
        notice(
            core,
            room,
            &format!("greeting-{room}"),
            "You are not allowed to use this bridge (bridge.permissions in the bridge config).",
        )
        .await;
        core.matrix.leave(None, room).await?;
        return Ok(());
    }
    let portal = core.store.get_portal_by_room(room).await?;
    if portal.is_none() && (is_direct || core.store.management_room_of(sender).await?.is_none()) {
        core.store.set_management_room(sender, room).await?;
        notice(
            core,
            room,
            &format!("greeting-{room}"),
            &format!(
                "Hello! I am the Slack bridge bot. This is now your management room.\n\n{}",
                help()
            ),
        )
        .await;
    }
    Ok(())
}

/// Tells a user something in their management room, if they have one.
pub async fn notify_owner(core: &Core, mxid: &UserId, text: &str) {
    if let Ok(Some(room)) = core.store.management_room_of(mxid).await {
        let txn = format!("notify-{}-{}", mxid, crate::store::now_ms());
        notice(core, &room, &txn, text).await;
    }
}

fn require(core: &Core, sender: &UserId, needed: PermissionLevel) -> Result<(), String> {
    match core.config.bridge.permission_of(sender.as_str()) {
        Some(level) if level >= needed => Ok(()),
        Some(level) => Err(format!(
            "This command needs the `{needed}` permission; you have `{level}` (bridge.permissions in the bridge config)."
        )),
        None => Err(
            "You are not allowed to use this bridge (bridge.permissions in the bridge config)."
                .into(),
        ),
    }
}

/// Runs one command and answers in `room`.
pub async fn run(
    core: &Arc<Core>,
    room: &RoomId,
    sender: &UserId,
    event_id: &EventId,
    text: &str,
) -> Result<()> {
    let reply_txn = format!("reply-{event_id}");
    let words = shell_words::split(text)
        .unwrap_or_else(|_| text.split_whitespace().map(str::to_owned).collect());
    let first = words.first().map(|w| w.to_lowercase());
    let secret_inside = match first.as_deref() {
        Some("login") => true,
        Some("login-user") => words.len() > 1,
        _ => false,
    };
    if secret_inside {
        // Whatever happens next, tokens and codes must not stay readable in the room.
        redact_tokens(core, room, event_id).await;
    }
    let words = match &first {
        None => vec!["help".to_owned()],
        Some(f) => std::iter::once(f.clone())
            .chain(words.into_iter().skip(1))
            .collect(),
    };
    let command = match <Command as clap::Parser>::try_parse_from(&words) {
        Ok(c) => c,
        Err(e) => {
            let answer = match e.kind() {
                clap::error::ErrorKind::InvalidSubcommand => format!(
                    "Unknown command `{}`.\n\n{}",
                    first.unwrap_or_default(),
                    help()
                ),
                _ => format!(
                    "{}\n\n{}",
                    e.render().to_string().trim().trim_start_matches("error: "),
                    help()
                ),
            };
            notice(core, room, &reply_txn, &answer).await;
            return Ok(());
        }
    };
    if let Err(why) = require(core, sender, command.needs()) {
        notice(core, room, &reply_txn, &why).await;
        return Ok(());
    }
    let answer = match command {
        Command::Help => help(),
        Command::Login { first, second } => {
            let args: Vec<&str> = first.iter().chain(&second).map(String::as_str).collect();
            login_command(core, sender, &args).await
        }
        Command::Logout => logout_command(core, sender).await?,
        Command::LoginUser { arg } => user_login::command(core, sender, arg.as_deref()).await,
        Command::LogoutUser => user_login::logout(core, sender).await?,
        Command::Ping => ping_command(core, sender).await,
        Command::List => list_command(core, sender).await?,
        Command::Backfill => backfill_command(core, room, sender).await?,
    };
    notice(core, room, &reply_txn, &answer).await;
    Ok(())
}

pub(super) async fn redact_tokens(core: &Core, room: &RoomId, event_id: &EventId) {
    if let Err(e) = core
        .matrix
        .redact(
            None,
            room,
            event_id,
            &format!("redact-{event_id}"),
            Some("contained Slack tokens"),
        )
        .await
    {
        tracing::warn!(%room, error = %e, "cannot redact a login message");
        notice(
            core,
            room,
            &format!("redact-failed-{event_id}"),
            &format!(
                "I could not redact your message with the tokens ({e}); please delete it yourself."
            ),
        )
        .await;
    }
}

async fn login_command(core: &Arc<Core>, sender: &UserId, args: &[&str]) -> String {
    let app = args.iter().find(|a| a.starts_with("xapp-"));
    let bot = args.iter().find(|a| a.starts_with("xoxb-"));
    let (Some(app), Some(bot)) = (app, bot) else {
        return "Usage: login <app token> <bot token>: the app-level token starts with xapp- (scope connections:write), the bot token with xoxb-.".into();
    };
    let (app, bot) = (Secret::new(*app), Secret::new(*bot));
    match login::verify(core, &bot, &app, sender).await {
        Ok(l) => {
            if let Some(existing) = core.login(&l.team_id)
                && existing.login.owner_mxid != sender
                && require(core, sender, PermissionLevel::Admin).is_err()
            {
                return format!(
                    "The workspace {} is already logged in by {}.",
                    l.team_name, existing.login.owner_mxid
                );
            }
            if let Err(e) = core.store.upsert_login(&l).await {
                return format!("Login verified, but it could not be stored: {e}");
            }
            let stored = core
                .store
                .get_login(&l.team_id)
                .await
                .ok()
                .flatten()
                .unwrap_or(l.clone());
            if let Err(e) = login::start(core, stored).await {
                return format!("Login verified and stored, but it could not start: {e}");
            }
            format!(
                "Logged in to the Slack workspace {} ({}). Bridging its conversations now.",
                l.team_name, l.team_id
            )
        }
        Err(e) => format!("Login failed: {e}"),
    }
}

async fn logout_command(core: &Arc<Core>, sender: &UserId) -> Result<String> {
    let mine: Vec<_> = core
        .all_logins()
        .into_iter()
        .filter(|rt| rt.login.owner_mxid == sender)
        .collect();
    if mine.is_empty() {
        return Ok("You have no Slack login.".into());
    }
    let mut names = Vec::new();
    for rt in mine {
        rt.stop();
        core.login_gone(rt.team_id());
        core.store
            .set_login_state(
                rt.team_id(),
                LoginState::LoggedOut,
                Some("logged out by its owner"),
            )
            .await?;
        names.push(rt.login.team_name.clone());
    }
    Ok(format!("Logged out of {}.", names.join(", ")))
}

async fn ping_command(core: &Arc<Core>, sender: &UserId) -> String {
    let mut lines = Vec::new();
    let is_admin = require(core, sender, PermissionLevel::Admin).is_ok();
    for rt in core.all_logins() {
        if rt.login.owner_mxid != sender && !is_admin {
            continue;
        }
        let state = rt.health().describe();
        lines.push(format!(
            "Slack {} ({}): {state}",
            rt.login.team_name,
            rt.team_id()
        ));
        for finding in rt.events.findings() {
            lines.push(format!("  {finding}"));
        }
    }
    if let Ok(stored) = core.store.list_logins().await {
        for l in stored.iter().filter(|l| l.owner_mxid == sender || is_admin) {
            if l.state != LoginState::Ok {
                lines.push(format!(
                    "Slack {} ({}): {} ({})",
                    l.team_name,
                    l.team_id,
                    if l.state == LoginState::Invalid {
                        "invalid"
                    } else {
                        "logged out"
                    },
                    l.state_reason.as_deref().unwrap_or("")
                ));
            }
        }
    }
    if lines.is_empty() {
        lines.push("You have no Slack login. Use `login <app token> <bot token>`.".into());
    }
    for t in [QueueTable::SlackInbox, QueueTable::Outbox] {
        if let Ok(q) = core.store.queue_stats(t).await {
            let age = q
                .oldest_pending_ms
                .map(|o| format!(", oldest waiting {}s", (now_ms() - o).max(0) / 1000))
                .unwrap_or_default();
            lines.push(format!(
                "Queue {}: {} waiting{age}, {} given up",
                if t == QueueTable::Outbox {
                    "Matrix → Slack"
                } else {
                    "Slack → Matrix"
                },
                q.pending,
                q.failed
            ));
        }
    }
    match core.matrix.whoami(None).await {
        Ok(_) => lines.push(format!(
            "Homeserver {}: reachable",
            core.config.homeserver.address
        )),
        Err(e) => lines.push(format!(
            "Homeserver {}: {e}",
            core.config.homeserver.address
        )),
    }
    lines.join("\n")
}

async fn list_command(core: &Arc<Core>, sender: &UserId) -> Result<String> {
    let is_admin = require(core, sender, PermissionLevel::Admin).is_ok();
    let mut lines = Vec::new();
    // Given-up events per queue: Matrix → Slack by room, Slack → Matrix by team:channel.
    let mut failures = std::collections::HashMap::new();
    for t in [QueueTable::Outbox, QueueTable::SlackInbox] {
        for f in core.store.queue_failures(t).await? {
            failures.insert((t, f.queue.clone()), f);
        }
    }
    let failed = |t: QueueTable, queue: &str, what: &str| {
        failures.get(&(t, queue.to_owned())).map(|f| {
            format!(
                "; {} {what} not delivered (last: {})",
                f.failed,
                f.last_error.as_deref().unwrap_or("unknown")
            )
        })
    };
    for rt in core.all_logins() {
        if rt.login.owner_mxid != sender && !is_admin {
            continue;
        }
        let portals = core.store.list_portals(rt.team_id()).await?;
        let history: std::collections::HashMap<ChannelId, crate::store::Backfill> = core
            .store
            .list_backfills(rt.team_id())
            .await?
            .into_iter()
            .map(|b| (b.channel_id.clone(), b))
            .collect();
        lines.push(format!(
            "{} ({} conversations):",
            rt.login.team_name,
            portals.len()
        ));
        for p in portals {
            let room = p.room_id.as_ref().map_or("", |r| r.as_str());
            let problems = [
                failed(QueueTable::Outbox, room, "to Slack"),
                failed(
                    QueueTable::SlackInbox,
                    &slack_queue(&p.team_id, Some(&p.channel_id)),
                    "from Slack",
                ),
            ]
            .into_iter()
            .flatten()
            .collect::<String>();
            let history = history
                .get(&p.channel_id)
                .map(history_state)
                .unwrap_or_default();
            lines.push(format!(
                "  {} [{}] → {}{history}{problems}",
                if p.name.is_empty() {
                    p.channel_id.as_str()
                } else {
                    &p.name
                },
                p.kind.as_str(),
                p.room_id.as_ref().map_or("(no room yet)", |r| r.as_str())
            ));
        }
    }
    if lines.is_empty() {
        lines.push("No bridged conversations.".into());
    }
    Ok(lines.join("\n"))
}

/// A portal's history for `list`: "; backfill 30/50", "; 50 messages from history".
fn history_state(b: &crate::store::Backfill) -> String {
    let running = b.run_done < b.run_total;
    if b.initial_pending() {
        return match b.run.as_str() {
            "backfill" if b.run_total > 0 => format!("; backfill {}/{}", b.run_done, b.run_total),
            _ => "; backfill pending".to_owned(),
        };
    }
    let mut out = format!("; {} messages from history", b.bridged);
    if running && b.run == "catch-up" {
        out.push_str(&format!(", catching up {}/{}", b.run_done, b.run_total));
    }
    out
}

/// Queues a catch-up of the portal the command was sent in.
async fn backfill_command(core: &Arc<Core>, room: &RoomId, sender: &UserId) -> Result<String> {
    let Some(portal) = core.store.get_portal_by_room(room).await? else {
        return Ok("Send this in a portal room: it fetches that conversation's Slack messages after the newest one bridged.".into());
    };
    let owner = core
        .login(&portal.team_id)
        .map(|rt| rt.login.owner_mxid.clone());
    if owner.as_deref() != Some(sender) && require(core, sender, PermissionLevel::Admin).is_err() {
        return Ok(
            "Only the owner of this workspace's login or a bridge admin can do that.".into(),
        );
    }
    super::history::enqueue(
        &core.store,
        &core.inbound,
        &portal.team_id,
        std::slice::from_ref(&portal.channel_id),
        super::history::TaskKind::CatchUp,
    )
    .await?;
    Ok(
        "Catching up: Slack messages after the newest one bridged here will appear in order."
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn help_lists_every_command_with_its_arguments() {
        let h = help();
        for line in [
            "  help ",
            "  login <app token> <bot token> connect a Slack app",
            "  logout ",
            "  ping ",
            "  list ",
        ] {
            assert!(h.contains(line), "{line:?} in:\n{h}");
        }
    }

    #[test]
    fn commands_parse_from_one_definition() {
        let login = Command::try_parse_from(["login", "xapp-1", "xoxb-2"]).unwrap();
        assert!(
            matches!(&login, Command::Login { first: Some(a), second: Some(b) } if a == "xapp-1" && b == "xoxb-2")
        );
        assert_eq!(login.needs(), PermissionLevel::User);
        assert_eq!(
            Command::try_parse_from(["help"]).unwrap().needs(),
            PermissionLevel::Relay
        );
        let err = Command::try_parse_from(["bogus"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidSubcommand);
        assert!(Command::try_parse_from(["ping", "extra"]).is_err());
    }
}
