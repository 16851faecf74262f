//! The bridge end to end: the Slack emulator, a real homeserver and the bridge, on Synapse and
//! tuwunel, each on SQLite and on PostgreSQL (`synapse::sqlite::…`, `tuwunel::postgres::…` in
//! the test output).

mod support;

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::{Value, json};
use slack_emulator::Workspace;
use support::{
    TestDb,
    bridge::{DOMAIN, Env},
    world::{OWNER, management_room_of, poll, world_with},
};
use testkit::HomeserverKind;

const BIN: &str = env!("CARGO_BIN_EXE_slack-bridge");

on_every_homeserver_and_database!(
    channels_become_rooms_in_a_space_once,
    messages_flow_both_ways_exactly_once,
    a_homeserver_outage_delays_but_loses_nothing,
    a_killed_bridge_loses_and_doubles_nothing,
    login_through_the_management_room,
    a_login_stored_before_encryption_still_works,
);

fn bodies(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect()
}

async fn channels_become_rooms_in_a_space_once(hs: HomeserverKind, db: Option<TestDb>) {
    let mut ws = Workspace::new("T0FIFTY", "Fifty Corp");
    let alice = ws.add_user("alice", "Alice Liddell");
    let bot = ws.bot_user_id().to_owned();
    let mut channels = Vec::new();
    for i in 0..50 {
        channels.push(ws.add_channel(&format!("chan-{i:02}"), i % 10 == 9, &[&alice, &bot]));
    }
    ws.add_channel("bot-not-here", false, &[&alice]);
    let w = world_with(hs, ws, db, true, vec![]).await;
    for (i, c) in channels.iter().enumerate() {
        w.emu
            .set_topic(&alice, c, &format!("topic of {i}"))
            .unwrap();
    }
    let bridge = w.env.run_bridge_full().await;
    let config = w.env.config();
    let count = poll(
        "50 portals with rooms",
        Duration::from_secs(120),
        async || {
            let store = slack_bridge::store::Store::connect(config.database.uri(), 1)
                .await
                .ok()?;
            let portals = store.list_portals(&"T0FIFTY".into()).await.ok()?;
            store.close().await;
            let with_rooms = portals.iter().filter(|p| p.room_id.is_some()).count();
            (with_rooms == 50).then_some(with_rooms)
        },
    )
    .await;
    assert_eq!(count, 50);

    let bot_client = w.env.bot_client().await;
    let space = {
        let store = slack_bridge::store::Store::connect(config.database.uri(), 1)
            .await
            .unwrap();
        let store = slack_bridge::unlock(&store, &config).await.unwrap();
        store
            .get_login(&"T0FIFTY".into())
            .await
            .unwrap()
            .unwrap()
            .space_room_id
            .unwrap()
            .to_string()
    };
    // Every room: its name and topic, the owner invited, and a child of the space.
    let children = poll("50 space children", Duration::from_secs(60), async || {
        let state = bot_client.state(&space).await.ok()?;
        let kids: Vec<String> = state
            .iter()
            .filter(|e| e["type"] == "m.space.child")
            .filter_map(|e| e["state_key"].as_str().map(str::to_owned))
            .collect();
        (kids.len() == 50).then_some(kids)
    })
    .await;
    for (i, c) in channels.iter().enumerate() {
        let room = w.room_of(c).await;
        assert!(children.contains(&room), "{room} is in the space");
        let name = bot_client
            .state_event(&room, "m.room.name", "")
            .await
            .unwrap();
        let expected = if i % 10 == 9 {
            format!("chan-{i:02}")
        } else {
            format!("#chan-{i:02}")
        };
        assert_eq!(name["name"], expected.as_str());
        let topic = bot_client
            .state_event(&room, "m.room.topic", "")
            .await
            .unwrap();
        assert_eq!(topic["topic"], format!("topic of {i}").as_str());
        let member = bot_client
            .state_event(&room, "m.room.member", w.owner.user_id())
            .await
            .unwrap();
        assert_eq!(member["membership"], "invite");
    }
    let before = bot_client.joined_rooms().await.unwrap().len();
    assert_eq!(before, 51, "50 portals and the space");

    // A restart creates nothing new: the sync runs again, and once it has reached a channel
    // added meanwhile (the last one it lists), only that one got a room.
    bridge.stop().await.unwrap();
    let zed = w.emu.add_user("zed-restart", "Zed Restart");
    let late = w
        .emu
        .add_channel("added-while-down", false, &[&zed, &w.emu.bot_user_id()]);
    let bridge = w.env.run_bridge_full().await;
    w.room_of(&late).await;
    assert_eq!(bot_client.joined_rooms().await.unwrap().len(), before + 1);
    bridge.stop().await.unwrap();
}

async fn messages_flow_both_ways_exactly_once(hs: HomeserverKind, db: Option<TestDb>) {
    let ws = Workspace::demo();
    let w = world_with(hs, ws, db, true, vec![]).await;
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let alice = w.emu.user_id("alice").unwrap();
    let room = w.room_of(&general).await;
    w.owner.join(&room).await.unwrap();

    // Slack → Matrix.
    let ts = w
        .emu
        .post_message(&alice, &general, "hello *matrix*")
        .unwrap();
    let event = w
        .owner
        .wait_for_text(&room, "hello matrix", Duration::from_secs(30))
        .await
        .unwrap();
    let ghost = format!(
        "@slack_{}-{}:{DOMAIN}",
        w.emu.team_id().to_lowercase(),
        alice.to_lowercase()
    );
    assert_eq!(event["sender"], ghost.as_str());
    assert_eq!(
        event["origin_server_ts"].as_u64().unwrap(),
        slack_bridge::ids::ts_to_millis(&ts).unwrap()
    );
    assert!(
        event["content"]["formatted_body"]
            .as_str()
            .unwrap()
            .contains("<strong>matrix</strong>")
    );
    let member = w
        .owner
        .state_event(&room, "m.room.member", &ghost)
        .await
        .unwrap();
    // Slack's display_name ("alice" in the demo workspace) wins over the real name.
    assert_eq!(member["displayname"], "alice");

    // Matrix → Slack.
    w.owner.send_text(&room, "hello slack").await.unwrap();
    let posted = poll("chat.postMessage", Duration::from_secs(30), async || {
        let calls = w.emu.calls("chat.postMessage");
        (!calls.is_empty()).then_some(calls)
    })
    .await;
    assert_eq!(posted[0].param("text").as_deref(), Some("hello slack"));
    assert_eq!(
        posted[0].param("username").as_deref(),
        Some(OWNER),
        "relay names the sender"
    );

    // Sentinels after the echoes: per-portal order means that once they are through, so are
    // the echoes (Slack's copy of our post, the homeserver's copy of the ghost's message).
    w.emu
        .post_message(&alice, &general, "slack sentinel")
        .unwrap();
    w.owner
        .wait_for_text(&room, "slack sentinel", Duration::from_secs(30))
        .await
        .unwrap();
    w.owner.send_text(&room, "matrix sentinel").await.unwrap();
    w.wait_for_post("matrix sentinel").await;
    assert_eq!(
        w.emu.calls("chat.postMessage").len(),
        2,
        "the ghosts' messages were not sent back to Slack"
    );
    let texts: Vec<String> = w
        .emu
        .messages(&general)
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(texts.iter().filter(|t| *t == "hello slack").count(), 1);
    assert_eq!(texts.iter().filter(|t| *t == "hello *matrix*").count(), 1);
    let in_room = bodies(&w.owner.messages(&room, 100).await.unwrap());
    assert_eq!(
        in_room.iter().filter(|b| *b == "hello slack").count(),
        1,
        "{in_room:?}"
    );
    assert_eq!(
        in_room.iter().filter(|b| *b == "hello matrix").count(),
        1,
        "{in_room:?}"
    );
    bridge.stop().await.unwrap();
}

async fn a_homeserver_outage_delays_but_loses_nothing(hs: HomeserverKind, db: Option<TestDb>) {
    let ws = Workspace::demo();
    let mut w = world_with(hs, ws, db, true, vec![]).await;
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let bob = w.emu.user_id("bob").unwrap();
    let room = w.room_of(&general).await;
    w.owner.join(&room).await.unwrap();
    w.emu
        .post_message(&bob, &general, "before the outage")
        .unwrap();
    w.owner
        .wait_for_text(&room, "before the outage", Duration::from_secs(30))
        .await
        .unwrap();

    w.env.hs.stop().await;
    for i in 0..20 {
        w.emu
            .post_message(&bob, &general, &format!("during the outage {i:02}"))
            .unwrap();
    }
    // Every envelope was acked: Slack considers them delivered.
    w.emu
        .wait_for(Duration::from_secs(10), |e| {
            (e.pending_events() == 0).then_some(())
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.env.hs.restart().await.unwrap();

    w.owner
        .wait_for_text(&room, "during the outage 19", Duration::from_secs(90))
        .await
        .unwrap();
    let got: Vec<String> = bodies(&w.owner.messages(&room, 200).await.unwrap())
        .into_iter()
        .filter(|b| b.starts_with("during the outage"))
        .collect();
    let expected: Vec<String> = (0..20)
        .map(|i| format!("during the outage {i:02}"))
        .collect();
    assert_eq!(got, expected, "all 20, in order, once");
    bridge.stop().await.unwrap();
}

fn spawn_bridge(env: &Env) -> Child {
    Command::new(BIN)
        .args([
            "-c",
            env.config_path.to_str().unwrap(),
            "-r",
            env.registration_path.to_str().unwrap(),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

async fn a_killed_bridge_loses_and_doubles_nothing(hs: HomeserverKind, db: Option<TestDb>) {
    let ws = Workspace::demo();
    let w = world_with(hs, ws, db, true, vec![]).await;
    let mut child = spawn_bridge(&w.env);
    let general = w.emu.channel_id("general").unwrap();
    let carol = w.emu.user_id("carol").unwrap();
    let room = w.room_of(&general).await;
    w.owner.join(&room).await.unwrap();
    let emu = w.emu.clone();
    let (general2, carol2) = (general.clone(), carol.clone());
    let poster = tokio::spawn(async move {
        for i in 0..40 {
            emu.post_message(&carol2, &general2, &format!("stream {i:02}"))
                .unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    w.owner
        .wait_for_text(&room, "stream 05", Duration::from_secs(30))
        .await
        .unwrap();
    // SIGKILL: no shutdown path runs.
    child.kill().unwrap();
    child.wait().unwrap();
    poster.await.unwrap();
    let mut child = spawn_bridge(&w.env);
    w.owner
        .wait_for_text(&room, "stream 39", Duration::from_secs(90))
        .await
        .unwrap();
    // A sentinel after the stream: once it is in, a redelivered duplicate would be too.
    w.emu
        .post_message(&carol, &general, "end of the stream")
        .unwrap();
    w.owner
        .wait_for_text(&room, "end of the stream", Duration::from_secs(30))
        .await
        .unwrap();
    let got: Vec<String> = bodies(&w.owner.messages(&room, 300).await.unwrap())
        .into_iter()
        .filter(|b| b.starts_with("stream "))
        .collect();
    let expected: Vec<String> = (0..40).map(|i| format!("stream {i:02}")).collect();
    assert_eq!(got, expected, "nothing lost, nothing doubled, in order");
    child.kill().unwrap();
    child.wait().unwrap();
}

async fn login_through_the_management_room(hs: HomeserverKind, db: Option<TestDb>) {
    let ws = Workspace::demo();
    let eve_id = format!("@eve:{DOMAIN}");
    let w = world_with(hs, ws, db, false, vec![(eve_id.clone(), "relay".into())]).await;
    let bridge = w.env.run_bridge_full().await;

    let dm = management_room_of(&w.owner).await;
    w.owner.send_text(&dm, "bogus").await.unwrap();
    w.owner
        .wait_for_event(
            &dm,
            |e| {
                e["content"]["body"]
                    .as_str()
                    .is_some_and(|b| b.contains("Unknown command `bogus`"))
            },
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let login = w.login_by_command(&dm).await;
    let redacted = w.owner.event(&dm, &login).await.unwrap();
    assert_eq!(
        redacted["content"],
        json!({}),
        "the message with the tokens is redacted"
    );
    // Nor do the tokens stay in the transaction inbox once it is handled.
    let bot_token = w.emu.bot_token();
    let uri = w.env.config().database.uri().to_owned();
    let sql = format!("SELECT COUNT(*) FROM hs_inbox WHERE body LIKE '%{bot_token}%'");
    poll(
        "the inbox to forget the login message",
        Duration::from_secs(30),
        async || (support::raw_count(&uri, &sql).await == 0).then_some(()),
    )
    .await;
    let general = w.emu.channel_id("general").unwrap();
    w.room_of(&general).await;
    // Nor anywhere else in the database: the stored login's tokens are sealed.
    for token in [w.emu.bot_token(), w.emu.app_token()] {
        assert_eq!(
            support::places_holding(&uri, &token).await,
            Vec::<String>::new(),
            "where the token is readable in the database"
        );
    }

    // A relay-only user is refused, with the reason.
    let eve = w
        .env
        .hs
        .register_user("eve", "pw-eve", false)
        .await
        .unwrap();
    let eve_dm = management_room_of(&eve).await;
    eve.send_text(
        &eve_dm,
        &format!("login {} {}", w.emu.app_token(), w.emu.bot_token()),
    )
    .await
    .unwrap();
    eve.wait_for_event(
        &eve_dm,
        |e| {
            e["content"]["body"]
                .as_str()
                .is_some_and(|b| b.contains("needs the `user` permission; you have `relay`"))
        },
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    bridge.stop().await.unwrap();
}

/// A login stored by a release from before encryption (its tokens in plain text, no key):
/// the next start creates the key, seals the tokens, and the login works as it did.
async fn a_login_stored_before_encryption_still_works(hs: HomeserverKind, db: Option<TestDb>) {
    let w = world_with(hs, Workspace::demo(), db, false, vec![]).await;
    let bridge = w.env.run_bridge_full().await;
    let dm = management_room_of(&w.owner).await;
    let (bot, app) = (w.emu.bot_token(), w.emu.app_token());
    w.owner
        .send_text(&dm, &format!("login {app} {bot}"))
        .await
        .unwrap();
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;
    bridge.stop().await.unwrap();

    let config = w.env.config();
    let uri = config.database.uri().to_owned();
    support::raw_exec(
        &uri,
        &format!(
            "UPDATE logins SET bot_token = '{bot}', app_token = '{app}'; DELETE FROM key_check"
        ),
    )
    .await;
    assert!(
        support::places_holding(&uri, &bot)
            .await
            .contains(&"logins.bot_token".to_owned()),
        "the search finds a plain token"
    );
    std::fs::remove_file(config.database.key_file()).unwrap();

    let bridge = w.env.run_bridge_full().await;
    let alice = w.emu.user_id("alice").unwrap();
    w.emu
        .post_message(&alice, &general, "after the upgrade")
        .unwrap();
    w.owner
        .wait_for_text(&room, "after the upgrade", support::world::WAIT)
        .await
        .unwrap();
    w.owner.send_text(&room, "and back").await.unwrap();
    w.wait_for_post("and back").await;
    assert!(config.database.key_file().exists(), "a new key file");
    for token in [bot, app] {
        assert_eq!(
            support::places_holding(&uri, &token).await,
            Vec::<String>::new(),
            "the plain tokens were sealed"
        );
    }
    bridge.stop().await.unwrap();
}
