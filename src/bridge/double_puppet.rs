//! Double puppeting on the Matrix side: what a Slack user who linked their Matrix account
//! (`login-user`) writes in Slack appears in Matrix from that account, not from their ghost.
//! The bridge acts as them through a second appservice of their homeserver whose user
//! namespace covers its users (`bridge.double_puppet.secrets`: `as_token:…` per domain), the
//! way mautrix bridges do. Without a secret for their server the ghost stays.
//!
//! What such a puppet sends carries [`SOURCE_KEY`] in its content, so the transaction that
//! brings it back to the bridge is recognised as the bridge's own and never goes to Slack.

use std::{collections::BTreeMap, sync::Arc};

use ruma::{OwnedUserId, RoomId, UserId};
use serde_json::Value;

use super::{Core, Result};
use crate::{config::Config, ids, matrix::client::MatrixClient, store::LoginState};

/// The content key marking an event the bridge sent as a user's double puppet (mautrix's).
pub const SOURCE_KEY: &str = "fi.mau.double_puppet_source";

/// The value of [`SOURCE_KEY`]: this bridge's appservice id.
pub fn source(config: &Config) -> &str {
    &config.appservice.id
}

/// One client per homeserver domain with a secret, each authenticated with that domain's
/// double-puppet as_token.
pub fn clients(config: &Config, bot: &UserId) -> BTreeMap<String, Arc<MatrixClient>> {
    let dp = &config.bridge.double_puppet;
    dp.secrets
        .keys()
        .filter_map(|domain| {
            let token = dp.as_token(domain)?;
            let base = if domain == &config.homeserver.domain {
                config.homeserver.address.clone()
            } else {
                dp.servers.get(domain)?.clone()
            };
            let client = MatrixClient::new(&base, token, &config.appservice.id, bot.to_owned());
            Some((domain.clone(), Arc::new(client)))
        })
        .collect()
}

/// Whether an event's content says this bridge sent it as a double puppet.
pub fn is_ours(config: &Config, content: Option<&Value>) -> bool {
    content
        .and_then(|c| c.get(SOURCE_KEY))
        .and_then(Value::as_str)
        .is_some_and(|s| s == source(config))
}

/// `content` marked as sent by this bridge's double puppet.
pub fn mark(config: &Config, mut content: Value) -> Value {
    if let Some(map) = content.as_object_mut() {
        map.insert(SOURCE_KEY.to_owned(), Value::from(source(config)));
    }
    content
}

/// A Slack user's own Matrix account, with the client that acts as it.
#[derive(Clone)]
pub struct Puppet {
    pub mxid: OwnedUserId,
    pub client: Arc<MatrixClient>,
}

/// The double puppet of `user`: the Matrix user who linked that Slack account (a link that
/// still works), when their homeserver has a secret.
pub async fn of(core: &Core, team: &ids::TeamId, user: &ids::UserId) -> Result<Option<Puppet>> {
    if core.double_puppets.is_empty() {
        return Ok(None);
    }
    let Some(login) = core.store.user_login_by_slack(team, user).await? else {
        return Ok(None);
    };
    if login.state != LoginState::Ok {
        return Ok(None);
    }
    let domain = login.mxid.server_name().as_str();
    Ok(core.double_puppets.get(domain).map(|client| Puppet {
        mxid: login.mxid.clone(),
        client: client.clone(),
    }))
}

/// Makes sure the puppet is in `room`: the bot invites (an error when it is there already),
/// the user joins through the double-puppet appservice.
pub async fn ensure_joined(core: &Core, room: &RoomId, puppet: &Puppet) -> Result<()> {
    if core.is_joined(room, &puppet.mxid) {
        return Ok(());
    }
    if let Err(e) = puppet.client.join(Some(&puppet.mxid), room).await {
        tracing::debug!(%room, user = %puppet.mxid, error = %e, "double puppet cannot join yet; inviting");
        match core.matrix.invite(None, room, &puppet.mxid).await {
            Ok(()) => {}
            Err(e) if e.errcode() == Some("M_FORBIDDEN") => {}
            Err(e) => return Err(e.into()),
        }
        puppet.client.join(Some(&puppet.mxid), room).await?;
    }
    core.mark_joined(room, &puppet.mxid);
    Ok(())
}
