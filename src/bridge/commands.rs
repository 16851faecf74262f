//! Bot commands: in the management room (a DM with the bridge bot) as plain text, elsewhere
//! behind `bridge.command_prefix`. Permissions are enforced (`relay` < `user` < `admin`) and a
//! refused user is told which level the command needs.

use std::sync::Arc;

use ruma::RoomId;

use super::{BridgeError, Core, Result, from_matrix::notice, login};
use crate::{
    config::{PermissionLevel, Secret},
    slack::socket::SocketState,
    store::LoginState,
};

const HELP: &str = "\
Commands (in this DM as they are, in other rooms after the command prefix):
  help                          this list
  login <app token> <bot token> connect a Slack app (xapp-… with connections:write, xoxb-…); the message is redacted
  logout                        disconnect your Slack login
  ping                          state of the Slack connection(s) and of the homeserver
  list                          the bridged conversations of your login(s)";

/// The bot was invited: join, and make a direct chat the inviter's management room.
pub async fn on_bot_invite(
    core: &Arc<Core>,
    room: &str,
    sender: &str,
    is_direct: bool,
) -> Result<()> {
    let room_id = RoomId::parse(room).map_err(|e| BridgeError::Other(format!("room id: {e}")))?;
    core.matrix.join(None, &room_id).await?;
    if core.config.bridge.permission_of(sender).is_none() {
        // Say why once, then leave: the bot does not stay where it may not serve.
        notice(
            core,
            room,
            &format!("greeting-{room}"),
            "You are not allowed to use this bridge (bridge.permissions in the bridge config).",
        )
        .await;
        core.matrix.leave(None, &room_id).await?;
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
                "Hello! I am the Slack bridge bot. This is now your management room.\n\n{HELP}"
            ),
        )
        .await;
    }
    Ok(())
}

/// Tells a user something in their management room, if they have one.
pub async fn notify_owner(core: &Core, mxid: &str, text: &str) {
    if let Ok(Some(room)) = core.store.management_room_of(mxid).await {
        let txn = format!("notify-{}-{}", mxid, crate::store::now_ms());
        notice(core, &room, &txn, text).await;
    }
}

fn require(core: &Core, sender: &str, needed: PermissionLevel) -> Result<(), String> {
    match core.config.bridge.permission_of(sender) {
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
    room: &str,
    sender: &str,
    event_id: &str,
    text: &str,
) -> Result<()> {
    let reply_txn = format!("reply-{event_id}");
    let mut words = text.split_whitespace();
    let command = words.next().unwrap_or("help").to_lowercase();
    let args: Vec<&str> = words.collect();
    let needed = match command.as_str() {
        "help" => PermissionLevel::Relay,
        "ping" | "list" | "login" | "logout" => PermissionLevel::User,
        _ => PermissionLevel::Relay,
    };
    if command == "login" {
        // Whatever happens next, the tokens must not stay readable in the room.
        redact_tokens(core, room, event_id).await;
    }
    if let Err(why) = require(core, sender, needed) {
        notice(core, room, &reply_txn, &why).await;
        return Ok(());
    }
    let answer = match command.as_str() {
        "help" => HELP.to_owned(),
        "login" => login_command(core, sender, &args).await,
        "logout" => logout_command(core, sender).await?,
        "ping" => ping_command(core, sender).await,
        "list" => list_command(core, sender).await?,
        other => format!("Unknown command `{other}`. Send `help` for the list of commands."),
    };
    notice(core, room, &reply_txn, &answer).await;
    Ok(())
}

async fn redact_tokens(core: &Core, room: &str, event_id: &str) {
    let (Ok(room_id), Ok(event)) = (RoomId::parse(room), ruma::EventId::parse(event_id)) else {
        return;
    };
    if let Err(e) = core
        .matrix
        .redact(
            None,
            &room_id,
            &event,
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

async fn login_command(core: &Arc<Core>, sender: &str, args: &[&str]) -> String {
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

async fn logout_command(core: &Arc<Core>, sender: &str) -> Result<String> {
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
        core.logins.write().expect("logins").remove(rt.team_id());
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

async fn ping_command(core: &Arc<Core>, sender: &str) -> String {
    let mut lines = Vec::new();
    let is_admin = require(core, sender, PermissionLevel::Admin).is_ok();
    for rt in core.all_logins() {
        if rt.login.owner_mxid != sender && !is_admin {
            continue;
        }
        let state = match &*rt.socket.borrow() {
            SocketState::Connected => "connected".to_owned(),
            SocketState::Connecting => "connecting".to_owned(),
            SocketState::Reconnecting { attempt, reason } => {
                format!("reconnecting (attempt {attempt}: {reason})")
            }
            SocketState::Invalid(r) => format!("credentials invalid: {r}"),
            SocketState::Stopped => "stopped".to_owned(),
        };
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

async fn list_command(core: &Arc<Core>, sender: &str) -> Result<String> {
    let is_admin = require(core, sender, PermissionLevel::Admin).is_ok();
    let mut lines = Vec::new();
    for rt in core.all_logins() {
        if rt.login.owner_mxid != sender && !is_admin {
            continue;
        }
        let portals = core.store.list_portals(rt.team_id()).await?;
        lines.push(format!(
            "{} ({} conversations):",
            rt.login.team_name,
            portals.len()
        ));
        for p in portals {
            lines.push(format!(
                "  {} [{}] → {}",
                if p.name.is_empty() {
                    &p.channel_id
                } else {
                    &p.name
                },
                p.kind.as_str(),
                p.room_id.as_deref().unwrap_or("(no room yet)")
            ));
        }
    }
    if lines.is_empty() {
        lines.push("No bridged conversations.".into());
    }
    Ok(lines.join("\n"))
}
