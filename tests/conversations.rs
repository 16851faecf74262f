//! Conversations in full: edits, deletes, reactions and threads, as a Matrix user sees them
//! and as Slack receives them — the Slack emulator, a real homeserver and the bridge, on
//! SQLite and PostgreSQL (`synapse::sqlite::…`, `tuwunel::postgres::…`).

mod support;

use serde_json::Value;
use slack_emulator::Workspace;
use support::{
    TestDb,
    world::{WAIT, World, body, world_with},
};
use testkit::HomeserverKind;

on_every_homeserver_and_database!(
    slack_edits_and_deletes_reach_matrix_once,
    slack_reactions_reach_matrix_once,
    slack_threads_reach_matrix_as_threads,
);

async fn setup(hs: HomeserverKind, db: Option<TestDb>) -> World {
    world_with(hs, Workspace::demo(), db, true, Vec::new()).await
}

/// The owner's view of the room's latest events, oldest first.
async fn timeline(w: &World, room: &str) -> Vec<Value> {
    w.owner.messages(room, 100).await.unwrap()
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
    // History from before the bridge (no event for it): never bridged.
    let unseen = w
        .emu
        .with_workspace(|ws| ws.seed_message(&general, &alice, "old news", 3600));
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
