//! Conversations in full: edits, deletes, reactions and threads, as a Matrix user sees them
//! and as Slack receives them — the Slack emulator, a real homeserver and the bridge, on
//! SQLite and PostgreSQL (`synapse::sqlite::…`, `tuwunel::postgres::…`).

mod support;

use serde_json::{Value, json};
use slack_emulator::Workspace;
use support::{
    TestDb,
    bridge::DOMAIN,
    world::{WAIT, World, body, bot, poll, world_with},
};
use testkit::HomeserverKind;

on_every_homeserver_and_database!(
    slack_edits_and_deletes_reach_matrix_once,
    slack_reactions_reach_matrix_once,
    slack_threads_reach_matrix_as_threads,
    matrix_edits_deletes_and_reactions_reach_slack,
    matrix_threads_and_replies_reach_slack_threads,
    redeliveries_and_a_restart_change_nothing,
    room_mentions_both_ways,
    custom_emoji_reactions_both_ways,
    rich_content_both_ways,
);

async fn setup(hs: HomeserverKind, db: Option<TestDb>) -> World {
    world_with(hs, Workspace::demo(), db, true, Vec::new()).await
}

/// The owner's view of the room's latest events, oldest first.
async fn timeline(w: &World, room: &str) -> Vec<Value> {
    w.owner.messages(room, 300).await.unwrap()
}

/// Posts `text` as alice and waits until it is in the room: everything sent before it in the
/// channel has been handled (one channel's events are bridged in order).
async fn sentinel(w: &World, channel: &str, room: &str, text: &str) {
    let alice = w.emu.user_id("alice").unwrap();
    w.emu.post_message(&alice, channel, text).unwrap();
    w.owner.wait_for_text(room, text, WAIT).await.unwrap();
}

fn replacements<'a>(events: &'a [Value], of: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| {
            e["type"] == "m.room.message"
                && e["content"]["m.relates_to"]["rel_type"] == "m.replace"
                && e["content"]["m.relates_to"]["event_id"] == of
        })
        .collect()
}

/// Edit, edit again, then delete one Slack message: one `m.replace` per edit from the same
/// ghost, then the message redacted. An unfurl, a thread reply (its root's summary changes)
/// and a redelivered edit produce no `m.replace`.
async fn slack_edits_and_deletes_reach_matrix_once(hs: HomeserverKind, db: Option<TestDb>) {
    let w = setup(hs, db).await;
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;
    let alice = w.emu.user_id("alice").unwrap();
    let ghost = w.ghost(&alice);

    let ts = w
        .emu
        .post_message(&alice, &general, "see https://example.com typo helo")
        .unwrap();
    let original = w
        .owner
        .wait_for_text(&room, "see https://example.com typo helo", WAIT)
        .await
        .unwrap();
    let original_id = original["event_id"].as_str().unwrap().to_owned();

    w.emu
        .unfurl(&general, &ts, "https://example.com", "Example Domain")
        .unwrap();
    w.emu.reply(&alice, &general, &ts, "a reply").unwrap();
    w.emu
        .edit(
            &alice,
            &general,
            &ts,
            "see https://example.com typo *hello*",
        )
        .unwrap();
    sentinel(&w, &general, &room, "after the first edit").await;
    let events = timeline(&w, &room).await;
    let edits = replacements(&events, &original_id);
    assert_eq!(edits.len(), 1, "one m.replace for one edit: {edits:#?}");
    let edit = edits[0];
    assert_eq!(edit["sender"], ghost.as_str(), "edited by the same ghost");
    let new = &edit["content"]["m.new_content"];
    assert_eq!(new["body"], "see https://example.com typo hello");
    assert!(
        new["formatted_body"]
            .as_str()
            .is_some_and(|f| f.contains("<strong>hello</strong>")),
        "the edit is formatted like a message: {new}"
    );
    assert_eq!(
        edit["content"]["body"],
        "* see https://example.com typo hello"
    );

    // The edit event again (Slack retrying it): nothing new.
    let edit_event = w
        .emu
        .events()
        .into_iter()
        .rev()
        .find(|e| e.payload["event"]["subtype"] == "message_changed")
        .unwrap();
    assert!(w.emu.redeliver(&edit_event.event_id));
    w.emu
        .edit(
            &alice,
            &general,
            &ts,
            "see https://example.com typo hello world",
        )
        .unwrap();
    sentinel(&w, &general, &room, "after the second edit").await;
    let events = timeline(&w, &room).await;
    let edits = replacements(&events, &original_id);
    assert_eq!(edits.len(), 2, "one m.replace per edit: {edits:#?}");
    assert_eq!(
        edits[1]["content"]["m.new_content"]["body"],
        "see https://example.com typo hello world"
    );

    w.emu.delete(&alice, &general, &ts).unwrap();
    sentinel(&w, &general, &room, "after the delete").await;
    let events = timeline(&w, &room).await;
    let redactions: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "m.room.redaction" && e["redacts"] == original_id.as_str())
        .collect();
    assert_eq!(redactions.len(), 1, "the message is redacted once");
    assert_eq!(redactions[0]["sender"], ghost.as_str());
    let now = w.owner.event(&room, &original_id).await.unwrap();
    assert!(
        now["content"].as_object().is_some_and(|c| c.is_empty()),
        "the original is redacted: {now}"
    );
    bridge.stop().await.unwrap();
}

/// 👍 by name and by alias, a skin tone, and a removal: each Slack reaction one annotation
/// with the right emoji, the same emoji twice from one user once, the removal a redaction of
/// exactly that annotation.
async fn slack_reactions_reach_matrix_once(hs: HomeserverKind, db: Option<TestDb>) {
    let w = setup(hs, db).await;
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;
    let alice = w.emu.user_id("alice").unwrap();
    let bob = w.emu.user_id("bob").unwrap();

    let ts = w.emu.post_message(&alice, &general, "react to me").unwrap();
    let msg = w
        .owner
        .wait_for_text(&room, "react to me", WAIT)
        .await
        .unwrap();
    let msg_id = msg["event_id"].as_str().unwrap().to_owned();

    w.emu.react(&bob, &general, &ts, "thumbsup").unwrap();
    w.emu.react(&bob, &general, &ts, "+1").unwrap();
    w.emu
        .react(&alice, &general, &ts, "thumbsup::skin-tone-3")
        .unwrap();
    w.emu.react(&alice, &general, &ts, "tada").unwrap();
    sentinel(&w, &general, &room, "after the reactions").await;
    let annotations = |events: &[Value]| -> Vec<(String, String, String)> {
        events
            .iter()
            .filter(|e| {
                e["type"] == "m.reaction" && e["content"]["m.relates_to"]["event_id"] == *msg_id
            })
            .map(|e| {
                (
                    e["sender"].as_str().unwrap().to_owned(),
                    e["content"]["m.relates_to"]["key"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                    e["event_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let events = timeline(&w, &room).await;
    let got: Vec<(String, String)> = annotations(&events)
        .into_iter()
        .map(|(s, k, _)| (s, k))
        .collect();
    assert_eq!(
        got,
        [
            (w.ghost(&bob), "👍".to_owned()),
            (w.ghost(&alice), "👍🏼".to_owned()),
            (w.ghost(&alice), "🎉".to_owned()),
        ],
        "one annotation per emoji and user"
    );

    w.emu.unreact(&alice, &general, &ts, "tada").unwrap();
    sentinel(&w, &general, &room, "after the removal").await;
    let events = timeline(&w, &room).await;
    let tada = annotations(&events)
        .into_iter()
        .find(|(_, k, _)| k == "🎉")
        .map(|(_, _, id)| id);
    // A redacted annotation loses its relation; find the redaction instead.
    let redacted: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "m.room.redaction")
        .collect();
    assert!(tada.is_none(), "the 🎉 annotation is redacted");
    assert_eq!(redacted.len(), 1, "exactly one annotation redacted");
    assert_eq!(redacted[0]["sender"], w.ghost(&alice).as_str());
    assert_eq!(annotations(&events).len(), 2, "the others stay");
    bridge.stop().await.unwrap();
}

/// A Slack thread: the replies are in a Matrix thread on the root, each falling back to a
/// reply to the thread's previous message; a broadcast reply is in the thread and, as a reply
/// to the root, in the main timeline; a reply to a message the bridge never saw still lands.
async fn slack_threads_reach_matrix_as_threads(hs: HomeserverKind, db: Option<TestDb>) {
    let w = setup(hs, db).await;
    let general = w.emu.channel_id("general").unwrap();
    let alice = w.emu.user_id("alice").unwrap();
    let bob = w.emu.user_id("bob").unwrap();
    // History from before the bridge (no event for it), and no backfill: never bridged, as
    // a root older than the backfill window.
    let unseen = w
        .emu
        .with_workspace(|ws| ws.seed_message(&general, &alice, "old news", 3600));
    w.env
        .edit_config("    initial_messages: 50", "    initial_messages: 0");
    let bridge = w.env.run_bridge_full().await;
    let room = w.joined_room_of(&general).await;

    let root_ts = w.emu.post_message(&alice, &general, "thread root").unwrap();
    let root = w
        .owner
        .wait_for_text(&room, "thread root", WAIT)
        .await
        .unwrap();
    let root_id = root["event_id"].as_str().unwrap().to_owned();
    w.emu.reply(&bob, &general, &root_ts, "reply 1").unwrap();
    w.emu.reply(&alice, &general, &root_ts, "reply 2").unwrap();
    w.emu
        .reply_broadcast(&bob, &general, &root_ts, "reply 3, also to the channel")
        .unwrap();
    w.emu
        .reply(&bob, &general, &unseen, "late reply to old news")
        .unwrap();
    sentinel(&w, &general, &room, "after the thread").await;

    let events = timeline(&w, &room).await;
    let by_body = |b: &str| -> Vec<&Value> { events.iter().filter(|e| body(e) == b).collect() };
    let r1 = by_body("reply 1");
    let r2 = by_body("reply 2");
    assert_eq!((r1.len(), r2.len()), (1, 1));
    let rel1 = &r1[0]["content"]["m.relates_to"];
    assert_eq!(rel1["rel_type"], "m.thread");
    assert_eq!(rel1["event_id"], root_id.as_str());
    assert_eq!(rel1["is_falling_back"], true);
    assert_eq!(rel1["m.in_reply_to"]["event_id"], root_id.as_str());
    let rel2 = &r2[0]["content"]["m.relates_to"];
    assert_eq!(rel2["rel_type"], "m.thread");
    assert_eq!(rel2["event_id"], root_id.as_str());
    assert_eq!(
        rel2["m.in_reply_to"]["event_id"], r1[0]["event_id"],
        "the fallback replies to the thread's previous message"
    );

    let r3 = by_body("reply 3, also to the channel");
    assert_eq!(r3.len(), 2, "a broadcast is in the thread and the timeline");
    assert_eq!(r3[0]["content"]["m.relates_to"]["rel_type"], "m.thread");
    assert_eq!(
        r3[1]["content"]["m.relates_to"],
        serde_json::json!({"m.in_reply_to": {"event_id": root_id}}),
        "in the main timeline as a reply to the root"
    );
    assert_eq!(r3[1]["sender"], w.ghost(&bob).as_str());

    let late = by_body("late reply to old news");
    assert_eq!(late.len(), 1, "a reply to an unbridged root still lands");
    assert!(late[0]["content"].get("m.relates_to").is_none());
    bridge.stop().await.unwrap();
}

/// The reactions Slack shows on a message: `(name, users)`.
fn slack_reactions(w: &World, channel: &str, ts: &str) -> Vec<(String, Vec<String>)> {
    let m = w.emu.message(channel, ts).unwrap_or_default();
    m["reactions"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    let users = r["users"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|u| u.as_str().unwrap().to_owned())
                        .collect();
                    (r["name"].as_str().unwrap().to_owned(), users)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// From Matrix: an edit updates the Slack message, a redaction deletes it, reactions (skin
/// tone, U+FE0F, the same emoji from two users) become the bot's Slack reactions, and
/// redacting them removes a reaction once no Matrix user keeps it. Their echoes change
/// nothing in the room.
async fn matrix_edits_deletes_and_reactions_reach_slack(hs: HomeserverKind, db: Option<TestDb>) {
    let w = setup(hs, db).await;
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;
    let alice = w.emu.user_id("alice").unwrap();
    let bot_user = w.emu.bot_user_id();

    let helo = w.owner.send_text(&room, "helo").await.unwrap();
    let posted = w.wait_for_post("helo").await;
    let ts = posted.response["ts"].as_str().unwrap().to_owned();
    w.owner
        .send_event(
            &room,
            "m.room.message",
            &json!({
                "msgtype": "m.text",
                "body": "* hello",
                "m.new_content": {"msgtype": "m.text", "body": "hello **there**",
                    "format": "org.matrix.custom.html", "formatted_body": "hello <b>there</b>"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": helo},
            }),
        )
        .await
        .unwrap();
    poll("the edit on Slack", WAIT, async || {
        (w.emu.message(&general, &ts)?["text"] == "hello *there*").then_some(())
    })
    .await;
    let updates = w.emu.calls("chat.update");
    assert_eq!(updates.len(), 1, "one chat.update for one edit");
    assert_eq!(updates[0].param("ts").as_deref(), Some(ts.as_str()));
    assert_eq!(
        updates[0].param("channel").as_deref(),
        Some(general.as_str())
    );

    // Reactions on a Slack message.
    let slack_ts = w.emu.post_message(&alice, &general, "react here").unwrap();
    let target = w
        .owner
        .wait_for_text(&room, "react here", WAIT)
        .await
        .unwrap();
    let target = target["event_id"].as_str().unwrap().to_owned();
    let react = async |client: &testkit::TestClient, key: &str| {
        client
            .send_event(
                &room,
                "m.reaction",
                &json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}}),
            )
            .await
            .unwrap()
    };
    let eve = w
        .env
        .hs
        .register_user("eve", "pw-eve", false)
        .await
        .unwrap();
    w.env
        .bot_client()
        .await
        .invite(&room, eve.user_id())
        .await
        .unwrap();
    eve.join(&room).await.unwrap();
    react(&w.owner, "👍🏽").await;
    react(&w.owner, "❤\u{fe0f}").await;
    let owner_tada = react(&w.owner, "🎉").await;
    let eve_tada = react(&eve, "🎉").await;
    react(&w.owner, "not an emoji").await;
    let notice = w
        .owner
        .wait_for_event(
            &room,
            |e| e["sender"] == bot().as_str() && body(e).contains("not an emoji"),
            WAIT,
        )
        .await
        .unwrap();
    assert!(body(&notice).contains("Slack has no emoji"), "{notice}");
    let want = |names: &[&str]| -> Vec<(String, Vec<String>)> {
        names
            .iter()
            .map(|n| (n.to_string(), vec![bot_user.clone()]))
            .collect()
    };
    poll("the reactions on Slack", WAIT, async || {
        (slack_reactions(&w, &general, &slack_ts) == want(&["+1::skin-tone-4", "heart", "tada"]))
            .then_some(())
    })
    .await;

    // 🎉 stays while eve keeps hers, and goes with it.
    w.owner.redact(&room, &owner_tada, None).await.unwrap();
    w.owner.send_text(&room, "sentinel 1").await.unwrap();
    w.wait_for_post("sentinel 1").await;
    assert_eq!(
        slack_reactions(&w, &general, &slack_ts),
        want(&["+1::skin-tone-4", "heart", "tada"]),
        "eve still reacts with 🎉"
    );
    eve.redact(&room, &eve_tada, None).await.unwrap();
    poll("🎉 removed on Slack", WAIT, async || {
        (slack_reactions(&w, &general, &slack_ts) == want(&["+1::skin-tone-4", "heart"]))
            .then_some(())
    })
    .await;

    // Deleting the Matrix message deletes it on Slack, once; the echo redacts nothing more.
    w.owner.redact(&room, &helo, None).await.unwrap();
    poll("the delete on Slack", WAIT, async || {
        w.emu.message(&general, &ts).is_none().then_some(())
    })
    .await;
    w.emu.post_message(&alice, &general, "sentinel 2").unwrap();
    w.owner
        .wait_for_text(&room, "sentinel 2", WAIT)
        .await
        .unwrap();
    let events = timeline(&w, &room).await;
    let redactions = events
        .iter()
        .filter(|e| e["type"] == "m.room.redaction" && e["redacts"] == helo.as_str())
        .count();
    assert_eq!(redactions, 1, "only the owner's redaction");
    let ghost_edits = events
        .iter()
        .filter(|e| {
            e["content"]["m.relates_to"]["rel_type"] == "m.replace"
                && e["sender"] != w.owner.user_id()
        })
        .count();
    assert_eq!(
        ghost_edits, 0,
        "the echo of chat.update is not bridged back"
    );
    assert_eq!(w.emu.calls("chat.delete").len(), 1);
    assert_eq!(
        w.emu.calls("reactions.add").len(),
        4,
        "👍🏽, ❤️, and 🎉 from each user (the second answered already_reacted)"
    );
    bridge.stop().await.unwrap();
}

/// From Matrix: a thread reply goes to the Slack thread of its root; a rich reply to a Slack
/// message starts (or joins) that message's thread.
async fn matrix_threads_and_replies_reach_slack_threads(hs: HomeserverKind, db: Option<TestDb>) {
    let w = setup(hs, db).await;
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;
    let alice = w.emu.user_id("alice").unwrap();

    let root_ts = w.emu.post_message(&alice, &general, "slack root").unwrap();
    let root = w
        .owner
        .wait_for_text(&room, "slack root", WAIT)
        .await
        .unwrap();
    let root_id = root["event_id"].as_str().unwrap().to_owned();
    let reply_ts = w
        .emu
        .reply(&alice, &general, &root_ts, "slack reply")
        .unwrap();
    let reply = w
        .owner
        .wait_for_text(&room, "slack reply", WAIT)
        .await
        .unwrap();
    let lone_ts = w
        .emu
        .post_message(&alice, &general, "lone message")
        .unwrap();
    let lone = w
        .owner
        .wait_for_text(&room, "lone message", WAIT)
        .await
        .unwrap();

    // Sends `body` and returns the post whose text is its last paragraph.
    let send = async |body: &str, relates_to: Value| {
        w.owner
            .send_event(
                &room,
                "m.room.message",
                &json!({"msgtype": "m.text", "body": body, "m.relates_to": relates_to}),
            )
            .await
            .unwrap();
        w.wait_for_post(body.rsplit("\n\n").next().unwrap()).await
    };
    let in_thread = send(
        "matrix in thread",
        json!({"rel_type": "m.thread", "event_id": root_id, "is_falling_back": true,
               "m.in_reply_to": {"event_id": reply["event_id"]}}),
    )
    .await;
    assert_eq!(
        in_thread.param("thread_ts").as_deref(),
        Some(root_ts.as_str())
    );
    let to_reply = send(
        "matrix reply to a reply",
        json!({"m.in_reply_to": {"event_id": reply["event_id"]}}),
    )
    .await;
    assert_eq!(
        to_reply.param("thread_ts").as_deref(),
        Some(root_ts.as_str()),
        "a reply to a thread reply joins that thread"
    );
    let to_lone = send(
        "> <@alice> lone message\n\nmatrix reply to lone",
        json!({"m.in_reply_to": {"event_id": lone["event_id"]}}),
    )
    .await;
    assert_eq!(
        to_lone.param("thread_ts").as_deref(),
        Some(lone_ts.as_str()),
        "a reply to a message starts its thread, without the quoted fallback"
    );
    let replies: Vec<String> = w
        .emu
        .messages(&general)
        .iter()
        .filter(|m| m["thread_ts"] == root_ts.as_str() && m["ts"] != root_ts.as_str())
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect();
    assert!(
        replies.len() >= 3,
        "in Slack's thread: {replies:?} (reply {reply_ts})"
    );
    bridge.stop().await.unwrap();
}

/// Everything above with every Slack event delivered several times (no acks) and the bridge
/// stopped in the middle, while both sides go on: each Slack change shows once in Matrix, and
/// each Matrix change reaches Slack once.
async fn redeliveries_and_a_restart_change_nothing(hs: HomeserverKind, db: Option<TestDb>) {
    let mut ws = Workspace::demo();
    let erin = ws.add_user("erin", "Erin Hunt");
    let w = world_with(hs, ws, db, true, Vec::new()).await;
    w.emu.set_ack_timeout(std::time::Duration::from_millis(300));
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;
    let alice = w.emu.user_id("alice").unwrap();
    let bob = w.emu.user_id("bob").unwrap();
    w.emu.drop_acks(true);

    // Before the restart, both ways.
    let m1 = w.emu.post_message(&alice, &general, "m1").unwrap();
    let m1_event = w.owner.wait_for_text(&room, "m1", WAIT).await.unwrap();
    let m1_event = m1_event["event_id"].as_str().unwrap().to_owned();
    w.emu.edit(&alice, &general, &m1, "m1 edited").unwrap();
    w.emu.react(&bob, &general, &m1, "tada").unwrap();
    w.emu.reply(&bob, &general, &m1, "r1").unwrap();
    let m2 = w.emu.post_message(&alice, &general, "m2").unwrap();
    let mx1 = w.owner.send_text(&room, "mx1").await.unwrap();
    let mx1_ts = w.wait_for_post("mx1").await.response["ts"]
        .as_str()
        .unwrap()
        .to_owned();
    w.owner
        .send_event(
            &room,
            "m.room.message",
            &json!({"msgtype": "m.text", "body": "* mx1 edited",
                    "m.new_content": {"msgtype": "m.text", "body": "mx1 edited"},
                    "m.relates_to": {"rel_type": "m.replace", "event_id": mx1}}),
        )
        .await
        .unwrap();
    w.owner
        .send_event(
            &room,
            "m.reaction",
            &json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": m1_event, "key": "👍"}}),
        )
        .await
        .unwrap();
    sentinel(&w, &general, &room, "before the restart").await;
    poll("the Matrix changes on Slack", WAIT, async || {
        let edited = w.emu.message(&general, &mx1_ts)?["text"] == "mx1 edited";
        let reacted = !slack_reactions(&w, &general, &m1).is_empty();
        (edited && reacted).then_some(())
    })
    .await;
    // The channel's members, pins, topic and life, redelivered too: a stale `channel_archive`
    // handled after the `channel_unarchive` would leave the room read-only.
    w.emu.join(&erin, &general).unwrap();
    w.emu.pin(&alice, &general, &m1).unwrap();
    w.emu.set_topic(&alice, &general, "topic one").unwrap();
    w.emu.archive_channel(&alice, &general, true).unwrap();
    w.emu.archive_channel(&alice, &general, false).unwrap();
    sentinel(&w, &general, &room, "lifecycle done").await;

    // While the bridge is down, both sides go on.
    bridge.stop().await.unwrap();
    w.emu.delete(&alice, &general, &m2).unwrap();
    w.emu.unreact(&bob, &general, &m1, "tada").unwrap();
    w.emu
        .edit(&alice, &general, &m1, "m1 edited twice")
        .unwrap();
    w.owner.redact(&room, &mx1, None).await.unwrap();
    w.emu.leave(&erin, &general).unwrap();
    w.emu.unpin(&alice, &general, &m1).unwrap();
    let m3 = w.emu.post_message(&alice, &general, "m3").unwrap();
    w.emu.pin(&alice, &general, &m3).unwrap();
    w.emu
        .rename_channel(&alice, &general, "town-square")
        .unwrap();
    let bridge = w.env.run_bridge_full().await;
    // A homeserver may hold what it could not deliver until the next event (tuwunel): send one.
    w.owner.send_text(&room, "after the restart").await.unwrap();
    w.wait_for_post("after the restart").await;
    sentinel(&w, &general, &room, "all caught up").await;
    poll("the delete on Slack", WAIT, async || {
        w.emu.message(&general, &mx1_ts).is_none().then_some(())
    })
    .await;
    w.emu.drop_acks(false);
    sentinel(&w, &general, &room, "the end").await;

    let events = timeline(&w, &room).await;
    let count = |f: &dyn Fn(&Value) -> bool| events.iter().filter(|e| f(e)).count();
    assert_lifecycle_once(&w, &room, &events, &w.ghost(&erin)).await;
    // Redacted events lose their body: m2's event is the bridge's record of it.
    let store = w.store().await.unwrap();
    let m2_event = store
        .get_message(
            &w.emu.team_id().into(),
            &general.as_str().into(),
            &m2.as_str().into(),
        )
        .await
        .unwrap()
        .first()
        .map(|r| r.event_id.clone());
    store.close().await;
    assert_eq!(count(&|e| body(e) == "m1"), 1, "m1 once");
    assert_eq!(count(&|e| body(e) == "r1"), 1, "r1 once");
    assert_eq!(
        replacements(&events, &m1_event).len(),
        2,
        "two edits, once each"
    );
    let bobs: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "m.reaction" && e["sender"] == w.ghost(&bob).as_str())
        .collect();
    assert_eq!(bobs.len(), 1, "bob's reaction added once");
    assert!(
        bobs[0]["content"].as_object().is_some_and(|c| c.is_empty()),
        "and redacted: {}",
        bobs[0]
    );
    let ghost_redactions =
        count(&|e| e["type"] == "m.room.redaction" && e["sender"] != w.owner.user_id());
    assert_eq!(ghost_redactions, 2, "m2 and bob's 🎉 redacted, once each");
    let m2_event = m2_event.expect("m2 reached Matrix");
    assert_eq!(
        count(&|e| e["type"] == "m.room.redaction" && e["redacts"] == m2_event.as_str()),
        1,
        "m2 is redacted once"
    );
    assert_eq!(
        w.emu
            .calls("chat.postMessage")
            .iter()
            .filter(|c| c.param("text").as_deref() == Some("mx1"))
            .count(),
        1
    );
    assert_eq!(w.emu.calls("chat.update").len(), 1, "one edit from Matrix");
    assert_eq!(
        w.emu.calls("reactions.add").len(),
        1,
        "one reaction from Matrix"
    );
    assert_eq!(
        w.emu.calls("chat.delete").len(),
        1,
        "one delete from Matrix"
    );
    assert_eq!(
        count(&|e| e["type"] == "m.room.message"
            && e["sender"] == w.ghost(&alice).as_str()
            && body(e).starts_with("mx1")),
        0,
        "no echo of the Matrix message"
    );
    bridge.stop().await.unwrap();
}

/// What the soak test's members, pins, topic, rename and archive left in the room: each
/// change once, and the room as Slack left it (erin gone, m3 pinned, open for messages).
async fn assert_lifecycle_once(w: &World, room: &str, events: &[Value], erin: &str) {
    let count = |f: &dyn Fn(&Value) -> bool| events.iter().filter(|e| f(e)).count();
    // Erin joined once and left once: her membership changes, invites aside, with repeats
    // (a profile update is a `join` after a `join`) folded.
    let mut erins: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "m.room.member" && e["state_key"] == erin)
        .filter_map(|e| e["content"]["membership"].as_str())
        .filter(|m| *m != "invite")
        .collect();
    erins.dedup();
    assert_eq!(erins, ["join", "leave"], "erin's membership in the room");
    let notices =
        |text: &str| count(&|e: &Value| e["sender"] == bot().as_str() && body(e).contains(text));
    assert_eq!(notices("was archived on Slack"), 1, "one archive notice");
    assert_eq!(
        notices("was unarchived on Slack"),
        1,
        "one unarchive notice"
    );
    assert_eq!(
        count(&|e| e["type"] == "m.room.topic" && e["content"]["topic"] == "topic one"),
        1,
        "the topic set once"
    );
    assert_eq!(
        count(&|e| e["type"] == "m.room.name" && e["content"]["name"] == "#town-square"),
        1,
        "the rename applied once"
    );
    let bot_client = w.env.bot_client().await;
    let state = async |kind: &str| bot_client.state_event(room, kind, "").await.unwrap();
    let pl = state("m.room.power_levels").await;
    assert_eq!(
        pl["events_default"].as_i64().unwrap_or(0),
        0,
        "open for messages after the unarchive"
    );
    let m3 = events
        .iter()
        .find(|e| body(e) == "m3")
        .expect("m3 reached Matrix");
    assert_eq!(
        state("m.room.pinned_events").await["pinned"],
        json!([m3["event_id"]]),
        "m1 unpinned, m3 pinned"
    );
    assert_eq!(state("m.room.name").await["name"], "#town-square");
}

/// A user group from Slack mentions its members; `@here` / `@channel` / `@everyone` from
/// Slack are `@room` (with `m.mentions.room`); `@room` from the login's owner is `@channel`
/// on Slack, from a relayed user it stays text (`bridge.relay.allow_room_mentions` is off by
/// default).
async fn room_mentions_both_ways(hs: HomeserverKind, db: Option<TestDb>) {
    let w = setup(hs, db).await;
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;
    let alice = w.emu.user_id("alice").unwrap();
    let bob = w.emu.user_id("bob").unwrap();
    let carol = w.emu.user_id("carol").unwrap();

    // A user group: its handle, and every member in m.mentions.
    let devs = w.emu.add_usergroup("devs", "Developers", &[&bob, &carol]);
    w.emu
        .post_message(
            &alice,
            &general,
            &format!("<!subteam^{devs}|@devs> deploy time"),
        )
        .unwrap();
    let e = w
        .owner
        .wait_for_text(&room, "@devs deploy time", WAIT)
        .await
        .unwrap();
    let mut mentioned: Vec<&str> = e["content"]["m.mentions"]["user_ids"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    mentioned.sort_unstable();
    let mut want = [w.ghost(&bob), w.ghost(&carol)];
    want.sort_unstable();
    assert_eq!(mentioned, want, "{e}");

    w.emu
        .post_message(&alice, &general, "<!here> standup in 5")
        .unwrap();
    let e = w
        .owner
        .wait_for_text(&room, "@room standup in 5", WAIT)
        .await
        .unwrap();
    assert_eq!(e["content"]["m.mentions"]["room"], true, "{e}");

    let room_mention =
        |body: &str| json!({"msgtype": "m.text", "body": body, "m.mentions": {"room": true}});
    w.owner
        .send_event(&room, "m.room.message", &room_mention("@room lunch!"))
        .await
        .unwrap();
    w.wait_for_post("<!channel> lunch!").await;
    let eve = w
        .env
        .hs
        .register_user("eve", "pw-eve", false)
        .await
        .unwrap();
    w.env
        .bot_client()
        .await
        .invite(&room, eve.user_id())
        .await
        .unwrap();
    eve.join(&room).await.unwrap();
    eve.send_event(&room, "m.room.message", &room_mention("@room look at me"))
        .await
        .unwrap();
    w.wait_for_post("@room look at me").await;
    bridge.stop().await.unwrap();
}

/// A workspace's custom emoji: a Slack reaction with it (or an alias of it) is an annotation
/// keyed by its uploaded image with the shortcode beside it, its removal a redaction; that
/// annotation from Matrix is the same custom emoji on Slack.
async fn custom_emoji_reactions_both_ways(hs: HomeserverKind, db: Option<TestDb>) {
    let w = setup(hs, db).await;
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&[0u8; 64]);
    w.emu.add_emoji_image("blobcat", png);
    w.emu.add_emoji("bc", "alias:blobcat");
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;
    let alice = w.emu.user_id("alice").unwrap();
    let bob = w.emu.user_id("bob").unwrap();

    let ts = w.emu.post_message(&alice, &general, "custom?").unwrap();
    let msg = w.owner.wait_for_text(&room, "custom?", WAIT).await.unwrap();
    let msg_id = msg["event_id"].as_str().unwrap().to_owned();
    w.emu.react(&bob, &general, &ts, "blobcat").unwrap();
    w.emu.react(&alice, &general, &ts, "bc").unwrap();
    sentinel(&w, &general, &room, "after the custom reactions").await;
    let events = timeline(&w, &room).await;
    let annotations: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["type"] == "m.reaction" && e["content"]["m.relates_to"]["event_id"] == *msg_id
        })
        .collect();
    assert_eq!(annotations.len(), 2, "{annotations:#?}");
    let key = annotations[0]["content"]["m.relates_to"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(key.starts_with("mxc://"), "keyed by the image: {key}");
    assert_eq!(
        annotations[0]["content"]["com.beeper.reaction.shortcode"],
        ":blobcat:"
    );
    assert_eq!(
        annotations[1]["content"]["m.relates_to"]["key"],
        key.as_str(),
        "the alias is the same image, uploaded once"
    );
    assert_eq!(annotations[0]["sender"], w.ghost(&bob).as_str());

    // In the text, the custom emoji is its image inline, the same upload.
    w.emu
        .post_message(&alice, &general, "look :blobcat: here")
        .unwrap();
    let inline = w
        .owner
        .wait_for_text(&room, "look :blobcat: here", WAIT)
        .await
        .unwrap();
    let html = inline["content"]["formatted_body"]
        .as_str()
        .unwrap_or_default();
    assert!(
        html.contains("data-mx-emoticon") && html.contains(&format!("src=\"{key}\"")),
        "{inline}"
    );

    w.emu.unreact(&bob, &general, &ts, "blobcat").unwrap();
    sentinel(&w, &general, &room, "after the custom removal").await;
    let events = timeline(&w, &room).await;
    let bobs_id = annotations[0]["event_id"].as_str().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "m.room.redaction" && e["redacts"] == bobs_id),
        "bob's custom reaction is redacted"
    );

    // From Matrix, on a message of its own: the image's key is the custom emoji on Slack.
    let mine = w.owner.send_text(&room, "mine").await.unwrap();
    let mine_ts = w.wait_for_post("mine").await.response["ts"]
        .as_str()
        .unwrap()
        .to_owned();
    w.owner
        .send_event(
            &room,
            "m.reaction",
            &json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": mine, "key": key}}),
        )
        .await
        .unwrap();
    poll("the custom reaction on Slack", WAIT, async || {
        let r = slack_reactions(&w, &general, &mine_ts);
        (r == [("blobcat".to_owned(), vec![w.emu.bot_user_id()])]).then_some(())
    })
    .await;
    bridge.stop().await.unwrap();
}

/// Beyond text: a shared Slack message is a quote with its author and link, a permalink to a
/// bridged message a link to its event (and a Matrix link to it its permalink), a huddle a notice
/// from whoever started it; a Matrix location is text with its geo: URI, an unknown msgtype
/// its body — nothing is dropped.
async fn rich_content_both_ways(hs: HomeserverKind, db: Option<TestDb>) {
    let w = setup(hs, db).await;
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;
    let alice = w.emu.user_id("alice").unwrap();
    let bob = w.emu.user_id("bob").unwrap();

    w.emu
        .post_attachments(
            &bob,
            &general,
            "worth a read",
            json!([{"is_share": true, "is_msg_unfurl": true, "author_name": "Alice",
                    "author_id": alice, "text": "the plan for *Q3*",
                    "from_url": "https://acme.slack.com/archives/C1/p1700000000000100",
                    "fallback": "[Nov 14] Alice: the plan for Q3", "ts": "1700000000.000100"}]),
        )
        .unwrap();
    let e = w
        .owner
        .wait_for_event(&room, |e| body(e).starts_with("worth a read"), WAIT)
        .await
        .unwrap();
    assert_eq!(
        body(&e),
        "worth a read\n> Alice: the plan for Q3\n> Original message (https://acme.slack.com/archives/C1/p1700000000000100)"
    );
    // A permalink to a bridged message links its Matrix event.
    let target_ts = w.emu.post_message(&alice, &general, "link to me").unwrap();
    let target = w
        .owner
        .wait_for_text(&room, "link to me", WAIT)
        .await
        .unwrap();
    let permalink = format!(
        "https://acme.slack.com/archives/{general}/p{}",
        target_ts.replace('.', "")
    );
    w.emu
        .post_message(&bob, &general, &format!("see <{permalink}|this>"))
        .unwrap();
    let e = w
        .owner
        .wait_for_event(&room, |e| body(e).starts_with("see this"), WAIT)
        .await
        .unwrap();
    let html = e["content"]["formatted_body"].as_str().unwrap_or_default();
    let event_id = target["event_id"].as_str().unwrap();
    assert!(
        html.contains(&format!("https://matrix.to/#/{room}/{event_id}")),
        "{html}"
    );
    w.emu.start_huddle(&alice, &general).unwrap();
    let e = w
        .owner
        .wait_for_event(&room, |e| body(e).contains("huddle"), WAIT)
        .await
        .unwrap();
    assert_eq!(e["content"]["msgtype"], "m.notice");
    assert_eq!(e["sender"], w.ghost(&alice).as_str());

    // And back: a Matrix link to that message is its Slack permalink.
    let matrix_link = format!("https://matrix.to/#/{room}/{event_id}?via={DOMAIN}");
    w.owner
        .send_event(
            &room,
            "m.room.message",
            &json!({"msgtype": "m.text", "body": format!("back to {matrix_link}"),
                    "format": "org.matrix.custom.html",
                    "formatted_body": format!("back to <a href=\"{matrix_link}\">that</a>")}),
        )
        .await
        .unwrap();
    let domain = w.emu.with_workspace(|ws| ws.domain().to_owned());
    let back = format!(
        "back to <https://{domain}.slack.com/archives/{general}/p{}|that>",
        target_ts.replace('.', "")
    );
    w.wait_for_post(&back).await;
    w.owner
        .send_event(
            &room,
            "m.room.message",
            &json!({"msgtype": "m.location", "body": "Office", "geo_uri": "geo:51.5008,0.1247"}),
        )
        .await
        .unwrap();
    w.wait_for_post("📍 Office (geo:51.5008,0.1247)").await;
    w.owner
        .send_event(
            &room,
            "m.room.message",
            &json!({"msgtype": "org.example.poll", "body": "Poll: pizza or pasta?"}),
        )
        .await
        .unwrap();
    w.wait_for_post("Poll: pizza or pasta?").await;
    bridge.stop().await.unwrap();
}
