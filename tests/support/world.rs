//! The end-to-end world: the Slack emulator, a real homeserver, the bridge's config for both,
//! and the owner's Matrix account, with the waits the end-to-end tests share.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use slack_bridge::store::Store;
use slack_emulator::{Emulator, Workspace};
use testkit::{HomeserverKind, TestClient};

use super::{
    TestDb,
    bridge::{DOMAIN, Env, EnvOptions},
};

/// The owner of the declarative login.
pub const OWNER: &str = "dan";
/// How long a test waits for one thing to happen.
pub const WAIT: Duration = Duration::from_secs(30);

pub async fn poll<T>(what: &str, timeout: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub struct World {
    pub env: Env,
    pub emu: Emulator,
    pub owner: TestClient,
    _db: Option<TestDb>,
}

/// Emulator + the homeserver `hs` + the owner's account (`@dan`); the bridge configured with
/// a declarative login owned by the owner. The bridge itself is started by the test.
pub async fn world(hs: HomeserverKind, ws: Workspace) -> World {
    world_with(hs, ws, None, true, Vec::new()).await
}

/// [`world`] on a chosen database (`None`: SQLite), with or without the declarative login,
/// and with extra `bridge.permissions` entries.
pub async fn world_with(
    hs: HomeserverKind,
    ws: Workspace,
    db: Option<TestDb>,
    declarative: bool,
    permissions: Vec<(String, String)>,
) -> World {
    world_with_env(
        ws,
        db,
        declarative,
        EnvOptions {
            homeserver: hs,
            permissions,
            ..EnvOptions::default()
        },
    )
    .await
}

/// [`world_with`] from the env's options (a proxied registration URL, an admin-room
/// registration, …); the emulator's address, the database and the login are filled in.
pub async fn world_with_env(
    ws: Workspace,
    db: Option<TestDb>,
    declarative: bool,
    opts: EnvOptions,
) -> World {
    let emu = Emulator::start(ws).await;
    let env = Env::start_with(EnvOptions {
        database: db.as_ref().map(|d| d.uri.clone()),
        slack_api_url: Some(emu.api_url()),
        login: declarative.then(|| {
            (
                emu.bot_token(),
                emu.app_token(),
                format!("@{OWNER}:{DOMAIN}"),
            )
        }),
        ..opts
    })
    .await;
    let owner = env.hs.register_user(OWNER, "pw-dan", false).await.unwrap();
    World {
        env,
        emu,
        owner,
        _db: db,
    }
}

impl World {
    /// The bridge's database, unlocked with its encryption key.
    pub async fn store(&self) -> Option<Store> {
        let config = self.env.config();
        let store = Store::connect(config.database.uri(), 1).await.ok()?;
        slack_bridge::unlock(&store, &config).await.ok()
    }

    /// The room of a Slack channel, once the bridge has created it.
    pub async fn room_of(&self, channel: &str) -> String {
        poll(
            &format!("a portal room for {channel}"),
            Duration::from_secs(60),
            async || {
                let store = self.store().await?;
                let p = store
                    .get_portal(&self.emu.team_id().into(), &channel.into())
                    .await
                    .ok()??;
                store.close().await;
                p.room_id.map(|r| r.to_string())
            },
        )
        .await
    }

    /// The room of a channel, joined by the owner.
    pub async fn joined_room_of(&self, channel: &str) -> String {
        let room = self.room_of(channel).await;
        self.owner.join(&room).await.unwrap();
        room
    }

    pub async fn ghost_row(&self, user: &str) -> Option<slack_bridge::store::Ghost> {
        let store = self.store().await?;
        let g = store
            .get_ghost(&self.emu.team_id().into(), &user.into())
            .await
            .ok()?;
        store.close().await;
        g
    }

    pub async fn space(&self) -> String {
        poll("the workspace space", WAIT, async || {
            let store = self.store().await?;
            let l = store.get_login(&self.emu.team_id().into()).await.ok()??;
            store.close().await;
            l.space_room_id.map(|r| r.to_string())
        })
        .await
    }

    pub fn ghost(&self, user: &str) -> String {
        format!(
            "@slack_{}-{}:{DOMAIN}",
            self.emu.team_id().to_lowercase(),
            user.to_lowercase()
        )
    }

    /// The owner's management room.
    pub async fn management_room(&self) -> String {
        management_room_of(&self.owner).await
    }

    /// Sends `text` as the owner and returns the bot's first message after it.
    pub async fn command(&self, room: &str, text: &str) -> Value {
        let sent = self.owner.send_text(room, text).await.unwrap();
        wait_after(&self.owner, room, &sent, |e| e["sender"] == bot().as_str())
            .await
            .unwrap_or_else(|| panic!("the bot never answered `{text}` in {room}"))
    }

    /// The owner's `login` command with the emulator's tokens, in `room`; returns the
    /// command's event id.
    pub async fn send_login(&self, room: &str) -> String {
        self.owner
            .send_text(
                room,
                &format!("login {} {}", self.emu.app_token(), self.emu.bot_token()),
            )
            .await
            .unwrap()
    }

    /// [`Self::send_login`], then waits for the bot's "Logged in to the Slack workspace
    /// <name>"; returns the command's id.
    pub async fn login_by_command(&self, room: &str) -> String {
        let sent = self.send_login(room).await;
        let done = format!("Logged in to the Slack workspace {}", self.emu.team_name());
        self.owner
            .wait_for_event(room, |e| body(e).contains(&done), WAIT)
            .await
            .unwrap();
        sent
    }

    /// The bridge's `/metrics` text (served on the appservice listener).
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://127.0.0.1:{}/metrics", self.env.as_port))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// How often the bridge posted `text` to `channel` on Slack.
    pub fn posted(&self, channel: &str, text: &str) -> usize {
        self.slack_texts(channel)
            .iter()
            .filter(|t| *t == text)
            .count()
    }

    /// Texts the bridge posted to `channel` on Slack.
    pub fn slack_texts(&self, channel: &str) -> Vec<String> {
        self.emu
            .messages(channel)
            .iter()
            .filter_map(|m| m["text"].as_str().map(str::to_owned))
            .collect()
    }

    /// Waits until the bridge has posted `text` to Slack.
    pub async fn wait_for_post(&self, text: &str) -> slack_emulator::RecordedCall {
        poll(
            &format!("chat.postMessage with {text:?}"),
            WAIT,
            async || {
                self.emu
                    .calls("chat.postMessage")
                    .into_iter()
                    .find(|c| c.param("text").as_deref() == Some(text))
            },
        )
        .await
    }
}

/// `user`'s management room: a DM with the bot, as Element creates it, once the bot has
/// greeted.
pub async fn management_room_of(user: &TestClient) -> String {
    let dm = user
        .create_room_with(
            &json!({"is_direct": true, "preset": "trusted_private_chat", "invite": [bot()]}),
        )
        .await
        .unwrap();
    user.wait_for_event(
        &dm,
        |e| e["sender"] == bot().as_str() && e["type"] == "m.room.message",
        WAIT,
    )
    .await
    .unwrap_or_else(|e| panic!("the bot never greeted in the management room: {e}"));
    dm
}

pub fn bot() -> String {
    format!("@slackbot:{DOMAIN}")
}

pub fn body(e: &Value) -> &str {
    e["content"]["body"].as_str().unwrap_or_default()
}

/// The first `m.room.message` after event `after` that matches `pred`, within [`WAIT`].
pub async fn wait_after(
    client: &TestClient,
    room: &str,
    after: &str,
    pred: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let events = client.messages(room, 100).await.ok()?;
        let start = events
            .iter()
            .position(|e| e["event_id"] == after)
            .map_or(0, |i| i + 1);
        if let Some(e) = events[start..]
            .iter()
            .find(|e| e["type"] == "m.room.message" && pred(e))
        {
            return Some(e.clone());
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
