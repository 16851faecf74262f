//! The baselines' bare appservice: this program with a registration of its own in the same
//! Synapse (`url: null`, so Synapse pushes it nothing), its own ghosts (`@direct_…`) and
//! aliases (`#direct_…`), doing over the client-server API what the bridge would do, with
//! nothing in between: no Slack, no database, no queue.

use std::{
    error::Error,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use reqwest::Method;
use serde_json::{Value, json};
use testkit::{FixtureError, TestClient, enc};

/// Localpart prefix of the appservice's ghosts and aliases.
const PREFIX: &str = "direct_";

/// Writes `direct-registration.yaml` into `dir`; returns its path and the as_token.
pub fn write_registration(
    dir: &Path,
    server_name: &str,
) -> Result<(PathBuf, String), Box<dyn Error>> {
    let as_token = super::random_hex(24);
    let server = server_name.replace('.', "\\.");
    let yaml = format!(
        "id: bench-direct\n\
         url: null\n\
         as_token: {as_token}\n\
         hs_token: {hs_token}\n\
         sender_localpart: {PREFIX}bot\n\
         rate_limited: false\n\
         namespaces:\n\
         \x20 users:\n\
         \x20   - exclusive: true\n\
         \x20     regex: '@{PREFIX}.*:{server}'\n\
         \x20 aliases:\n\
         \x20   - exclusive: true\n\
         \x20     regex: '#{PREFIX}.*:{server}'\n\
         \x20 rooms: []\n",
        hs_token = super::random_hex(24),
    );
    let path = dir.join("direct-registration.yaml");
    std::fs::write(&path, yaml)?;
    Ok((path, as_token))
}

/// The bare appservice, acting as its bot or, with `?user_id=`, as one of its ghosts.
#[derive(Clone)]
pub struct Direct {
    bot: TestClient,
    server_name: String,
    /// Makes transaction IDs unique across runs.
    run: String,
    txn: Arc<AtomicU64>,
}

impl Direct {
    pub fn new(base_url: &str, server_name: &str, as_token: &str) -> Direct {
        Direct {
            bot: TestClient::new(base_url, format!("@{PREFIX}bot:{server_name}"), as_token),
            server_name: server_name.to_owned(),
            run: super::random_hex(4),
            txn: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The Matrix ID of the ghost called `name`.
    pub fn ghost(&self, name: &str) -> String {
        format!("@{PREFIX}{name}:{}", self.server_name)
    }

    /// An alias localpart in the appservice's namespace.
    pub fn alias(&self, name: &str) -> String {
        format!("{PREFIX}{name}")
    }

    /// Registers the ghost called `name` (as the bridge registers its ghosts); returns its ID.
    pub async fn register(&self, name: &str) -> Result<String, FixtureError> {
        self.bot
            .post(
                "/_matrix/client/v3/register",
                &json!({"type": "m.login.application_service", "username": format!("{PREFIX}{name}")}),
            )
            .await?;
        Ok(self.ghost(name))
    }

    /// `POST /createRoom` as the appservice's bot; returns the room ID.
    pub async fn create_room(&self, body: &Value) -> Result<String, FixtureError> {
        self.bot.create_room_with(body).await
    }

    /// `user` (a ghost, invited) joins `room`.
    pub async fn join(&self, room: &str, user: &str) -> Result<(), FixtureError> {
        self.bot
            .post(
                &format!(
                    "/_matrix/client/v3/join/{}?user_id={}",
                    enc(room),
                    enc(user)
                ),
                &json!({}),
            )
            .await
            .map(drop)
    }

    /// `user` (a ghost) sends an `m.text`.
    pub async fn send_text(&self, room: &str, user: &str, body: &str) -> Result<(), FixtureError> {
        let txn = self.txn.fetch_add(1, Ordering::Relaxed);
        self.bot
            .request(
                Method::PUT,
                &format!(
                    "/_matrix/client/v3/rooms/{}/send/m.room.message/bench-{}-{txn}?user_id={}",
                    enc(room),
                    self.run,
                    enc(user)
                ),
                Some(&json!({"msgtype": "m.text", "body": body})),
            )
            .await
            .map(drop)
    }

    /// Links `room` into `space` (`m.space.child`, via this server), as the bridge does.
    pub async fn add_to_space(&self, space: &str, room: &str) -> Result<(), FixtureError> {
        self.bot
            .send_state(
                space,
                "m.space.child",
                room,
                &json!({"via": [self.server_name]}),
            )
            .await
            .map(drop)
    }
}

/// The createRoom body of a workspace's space, as the bridge sends it (src/bridge/portal.rs,
/// `ensure_space`): named after the workspace, topic'd, private (`private_chat`: join rule
/// invite, Synapse's default power levels), of type `m.space`, the owners invited.
pub fn space_request(alias: &str, team_name: &str, invite: &[&str]) -> Value {
    json!({
        "room_alias_name": alias,
        "name": team_name,
        "topic": format!("Slack workspace {team_name}"),
        "invite": invite,
        "visibility": "private",
        "preset": "private_chat",
        "creation_content": {"type": "m.space"},
    })
}

/// The createRoom body of a public channel's portal, as the bridge sends it
/// (`ensure_portal_from`): `#name`, the channel's topic when it has one, private
/// (`private_chat`), the owners invited.
pub fn portal_request(alias: &str, name: &str, topic: &str, invite: &[&str]) -> Value {
    let mut body = json!({
        "room_alias_name": alias,
        "name": format!("#{name}"),
        "invite": invite,
        "visibility": "private",
        "preset": "private_chat",
    });
    if !topic.is_empty() {
        body["topic"] = topic.into();
    }
    body
}
