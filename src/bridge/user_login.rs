//! Slack user logins (`login-user`): a Matrix user links their own Slack account, through
//! Slack's OAuth v2 (the authorize URL, then the `code` pasted back) or by pasting a user
//! token, so their messages can reach Slack as them instead of through the relay. The token
//! is checked with auth.test, stored sealed, and dropped when Slack revokes it.

use std::sync::Arc;

use ruma::UserId;
use url::Url;

use super::{Core, Result, commands::notify_owner, login};
use crate::{
    config::Secret,
    ids::{self, TeamId},
    slack::{
        manifest,
        web::{SlackClient, SlackError},
    },
    store::{LoginState, UserLogin},
};

/// The scope a linked account cannot do without: posting as the user.
const REQUIRED_SCOPE: &str = "chat:write";

/// Slack's authorize page for the app, asking for the user scopes (none for the bot, which is
/// installed already). It lives beside the Web API: `https://slack.com/oauth/v2/authorize`.
pub fn authorize_url(core: &Core) -> Option<String> {
    let o = &core.config.slack.oauth;
    if !o.is_configured() {
        return None;
    }
    let api = core.config.slack.api_url.trim_end_matches('/');
    let base = api.strip_suffix("/api").unwrap_or(api);
    let mut url = Url::parse(&format!("{base}/oauth/v2/authorize")).ok()?;
    url.query_pairs_mut()
        .append_pair("client_id", &o.client_id)
        .append_pair("user_scope", &manifest::user_scope_names().join(","))
        .append_pair("redirect_uri", &o.redirect_url);
    Some(url.into())
}

/// What `login-user` answers: with no argument the way to link, else the outcome of linking
/// with the pasted code, redirect URL or user token.
pub async fn command(core: &Arc<Core>, sender: &UserId, arg: Option<&str>) -> String {
    let Some(arg) = arg.map(str::trim).filter(|a| !a.is_empty()) else {
        return instructions(core);
    };
    match link(core, sender, arg).await {
        Ok(answer) | Err(answer) => answer,
    }
}

fn instructions(core: &Core) -> String {
    let paste = "paste a user token instead: `login-user xoxp-…` (your Slack app → OAuth & Permissions → User OAuth Token)";
    match authorize_url(core) {
        Some(url) => format!(
            "To post as yourself on Slack, open {url} , approve the app, then send me `login-user <code>` with the code from the address Slack sends you to (or that whole address). Or {paste}."
        ),
        None => format!(
            "The bridge has no slack.oauth credentials, so linking through Slack's approval page is off; {paste}."
        ),
    }
}

/// The user token a pasted argument stands for: the token itself, or the token Slack gives for
/// an OAuth code (alone, or inside the redirect URL it came in).
async fn token_of(core: &Core, arg: &str) -> Result<Secret, String> {
    if arg.starts_with("xoxp-") {
        return Ok(Secret::new(arg));
    }
    if arg.starts_with("xox") {
        return Err(
            "That is not a user token: user tokens start with xoxp- (bot tokens, xoxb-, link a workspace with `login`).".into(),
        );
    }
    let o = &core.config.slack.oauth;
    let Some(secret) = o.client_secret.as_ref().filter(|_| o.is_configured()) else {
        return Err(
            "The bridge has no slack.oauth credentials, so it cannot exchange a code; paste a user token (xoxp-…) instead.".into(),
        );
    };
    let code = code_of(arg).ok_or_else(|| {
        "Send the code Slack put in the address after you approved (`…?code=…`), or that whole address.".to_owned()
    })?;
    let client =
        login::slack_client(core, &Secret::new(""), &Secret::new("")).map_err(|e| e.to_string())?;
    let access = client
        .oauth_v2_access(&o.client_id, secret, &code, &o.redirect_url)
        .await
        .map_err(|e| format!("Slack did not accept the code: {e}. Codes work once and for ten minutes; run `login-user` for a new approval link."))?;
    access.authed_user.access_token.ok_or_else(|| {
        "Slack answered without a user token: the app asked for no user scopes. Paste `slack-bridge manifest` into the app's manifest and try again.".to_owned()
    })
}

/// The `code` of an OAuth redirect URL, or the argument itself when it is a bare code.
fn code_of(arg: &str) -> Option<String> {
    if let Ok(url) = Url::parse(arg) {
        return url
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned());
    }
    let ok = arg
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    ok.then(|| arg.to_owned())
}

async fn link(core: &Arc<Core>, sender: &UserId, arg: &str) -> Result<String, String> {
    let token = token_of(core, arg).await?;
    let probe = login::slack_client(core, &token, &Secret::new("")).map_err(|e| e.to_string())?;
    let authed = probe
        .auth_test()
        .await
        .map_err(|e| format!("Slack refused the user token: {e}"))?;
    let info = &authed.info;
    if info.bot_id.is_some() {
        return Err(
            "That token belongs to a bot, not to you: use your user token (xoxp-…).".into(),
        );
    }
    let team = info.team_id.clone();
    let Some(rt) = core.login(&team) else {
        return Err(format!(
            "The Slack workspace {} ({team}) is not bridged here; its app must be logged in first (`login`).",
            info.team
        ));
    };
    if !authed.has_scope(REQUIRED_SCOPE) {
        return Err(format!(
            "The token lacks the {REQUIRED_SCOPE} scope, so nothing could be posted as you; approve the app with the scopes of `slack-bridge manifest`."
        ));
    }
    let store = &core.store;
    if let Some(other) = store
        .user_login_by_slack(&team, &info.user_id)
        .await
        .map_err(|e| e.to_string())?
        && other.mxid != sender
    {
        return Err(format!(
            "The Slack account {} is already linked to {}; they must `logout-user` first.",
            info.user, other.mxid
        ));
    }
    let scopes: Vec<&str> = authed.scopes.iter().map(String::as_str).collect();
    store
        .upsert_user_login(&UserLogin {
            mxid: sender.to_owned(),
            team_id: team.clone(),
            slack_user_id: info.user_id.clone(),
            token,
            scopes: scopes.join(","),
            state: LoginState::Ok,
            state_reason: None,
        })
        .await
        .map_err(|e| format!("Your Slack account was verified, but it could not be stored: {e}"))?;
    tracing::info!(team = %team, slack_user = %info.user_id, mxid = %sender, "slack user login linked");
    let missing = authed.missing_scopes(&manifest::user_scope_names());
    let mut answer = format!(
        "Linked your Slack account {} ({}) in {}: what you write in its portals now reaches Slack as you.",
        info.user, info.user_id, rt.login.team_name
    );
    if !missing.is_empty() {
        answer.push_str(&format!(
            " Not granted: {}; what needs them goes through the relay.",
            missing.join(", ")
        ));
    }
    Ok(answer)
}

/// `logout-user`: every Slack account the sender linked is unlinked.
pub async fn logout(core: &Core, sender: &UserId) -> Result<String> {
    let linked = core.store.user_logins_of(sender).await?;
    if linked.is_empty() {
        return Ok("You have no linked Slack account.".into());
    }
    for l in &linked {
        core.store.delete_user_login(sender, &l.team_id).await?;
        tracing::info!(team = %l.team_id, slack_user = %l.slack_user_id, mxid = %sender, "slack user login unlinked");
    }
    Ok(format!(
        "Unlinked {} Slack account(s); your messages go through the relay again. To revoke the token on Slack too, remove the app under your Slack profile → Settings → Apps.",
        linked.len()
    ))
}

/// `tokens_revoked` listed these users' tokens: their links stop, and each owner is told.
pub async fn revoked(core: &Core, team: &TeamId, users: &[ids::UserId]) -> Result<()> {
    for user in users {
        let Some(l) = core.store.user_login_by_slack(team, user).await? else {
            continue;
        };
        if l.state != LoginState::Ok {
            continue;
        }
        core.store
            .set_user_login_state(team, user, LoginState::Invalid, Some("revoked on Slack"))
            .await?;
        tracing::info!(%team, slack_user = %user, mxid = %l.mxid, "slack revoked a linked user's token");
        notify_owner(
            core,
            &l.mxid,
            "Slack revoked the token of your linked Slack account: your messages go through the relay again. Send `login-user` to link it anew.",
        )
        .await;
    }
    Ok(())
}

/// A client acting as `sender` on Slack, when they linked an account there that still works.
pub async fn client_of(
    core: &Core,
    slack: &SlackClient,
    team: &TeamId,
    sender: &UserId,
) -> Result<Option<SlackClient>> {
    Ok(core
        .store
        .get_user_login(sender, team)
        .await?
        .filter(|l| l.state == LoginState::Ok)
        .map(|l| core.user_client(team, sender, slack, l.token)))
}

/// Makes a Slack call as `sender`: with their linked account when they have one that works,
/// else (and when Slack answers one of `fallback` to it) with the bot. `call` is told which
/// (`true`: as them). A refused token ends the link, and the bot makes the call.
pub async fn as_user<T, F, Fut>(
    core: &Core,
    bot: &SlackClient,
    team: &TeamId,
    sender: &UserId,
    fallback: &[&str],
    call: F,
) -> Result<std::result::Result<T, SlackError>>
where
    F: Fn(SlackClient, bool) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, SlackError>>,
{
    if let Some(own) = client_of(core, bot, team, sender).await? {
        match call(own, true).await {
            Err(e) if e.is_auth_dead() => {
                token_refused(core, team, sender, &e.to_string()).await;
            }
            Err(e) if e.code().is_some_and(|c| fallback.contains(&c)) => {
                tracing::debug!(%team, mxid = %sender, error = %e, "the linked Slack account cannot do this; the bot does");
            }
            other => return Ok(other),
        }
    }
    Ok(call(bot.clone(), false).await)
}

/// Slack's answers to a linked account that is not in the conversation, or that was not
/// granted the scope (`reactions:write`, `files:write`): the relay does it instead.
pub const RELAY_INSTEAD: &[&str] = &["not_in_channel", "channel_not_found", "missing_scope"];

/// Changes a message on Slack as its author: the sender's linked account when they have one
/// (what it posted is only its own to change), and the bot for what the relay posted (before
/// they linked, or where their account could not post).
pub async fn as_author<T, F, Fut>(
    core: &Core,
    bot: &SlackClient,
    team: &TeamId,
    sender: &UserId,
    call: F,
) -> Result<std::result::Result<T, SlackError>>
where
    F: Fn(SlackClient) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, SlackError>>,
{
    let not_theirs = ["cant_update_message", "cant_delete_message"];
    as_user(core, bot, team, sender, &not_theirs, |c, _| call(c)).await
}

/// The Slack account `mxid` linked in `team`, while the link works.
pub async fn linked_account(
    core: &Core,
    team: &TeamId,
    mxid: &UserId,
) -> Result<Option<ids::UserId>> {
    Ok(core
        .store
        .get_user_login(mxid, team)
        .await?
        .filter(|l| l.state == LoginState::Ok)
        .map(|l| l.slack_user_id))
}

/// Whether `mxid` linked the Slack account `user` (a link that still works).
pub async fn is_linked(
    core: &Core,
    team: &TeamId,
    mxid: &UserId,
    user: &ids::UserId,
) -> Result<bool> {
    Ok(linked_account(core, team, mxid).await?.as_ref() == Some(user))
}

/// Slack refused a linked user's token while posting for them: the link stops, and they are
/// told; what they sent goes through the relay.
pub async fn token_refused(core: &Core, team: &TeamId, sender: &UserId, error: &str) {
    let Ok(Some(l)) = core.store.get_user_login(sender, team).await else {
        return;
    };
    let reason = format!("Slack refused the token: {error}");
    if let Err(e) = core
        .store
        .set_user_login_state(team, &l.slack_user_id, LoginState::Invalid, Some(&reason))
        .await
    {
        tracing::error!(%team, mxid = %sender, error = %e, "cannot record a refused user token");
        return;
    }
    tracing::info!(%team, slack_user = %l.slack_user_id, mxid = %sender, %error, "slack refused a linked user's token");
    notify_owner(
        core,
        sender,
        &format!(
            "Slack refused the token of your linked Slack account ({error}): your messages go through the relay again. Send `login-user` to link it anew."
        ),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::code_of;

    #[test]
    fn codes_come_alone_or_in_the_redirect_address() {
        assert_eq!(code_of("1234.5678.abcd").as_deref(), Some("1234.5678.abcd"));
        assert_eq!(
            code_of("https://bridge.example.org/slack?code=1234.5678.abcd&state=").as_deref(),
            Some("1234.5678.abcd")
        );
        assert_eq!(
            code_of("https://bridge.example.org/slack?error=access_denied"),
            None
        );
        assert_eq!(code_of("two words"), None);
    }
}
