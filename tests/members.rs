//! Members and the channel's life: every Slack member of a bridged channel has a ghost in its
//! room, filled in the background without holding up messages, and kept in step as people
//! join and leave; archiving, deleting and pins of the channel show in the room — the Slack emulator,
//! a real homeserver and the bridge, on SQLite; on Synapse and on tuwunel.

mod support;

use std::time::{Duration, Instant};

use slack_emulator::Workspace;
use support::world::{WAIT, World, body, bot, poll, world};
use testkit::HomeserverKind;

on_both_homeservers!(
    a_big_channel_gets_every_member_without_holding_up_others,
    joins_and_leaves_follow_slack,
    a_portal_slack_refuses_members_for_does_not_hold_back_the_others,
    archive_unarchive_and_delete_show_in_the_room,
    pins_follow_slack,
);

/// How many people the big channel has (besides the bot).
const BIG: usize = 300;

/// A 300-member channel: every member's ghost ends up joined to its room, while a message in
/// another channel arrives at once.
async fn a_big_channel_gets_every_member_without_holding_up_others(hs: HomeserverKind) {
    let mut ws = Workspace::demo();
    let mut members: Vec<String> = (0..BIG)
        .map(|i| ws.add_user(&format!("member{i:03}"), &format!("Member {i}")))
        .collect();
    members.push(ws.bot_user_id().to_owned());
    let refs: Vec<&str> = members.iter().map(String::as_str).collect();
    let big = ws.add_channel("big", false, &refs);
    let w = world(hs, ws).await;
    let bridge = w.env.run_bridge_full().await;
    let room = w.room_of(&big).await;
    let general = w.emu.channel_id("general").unwrap();
    let general_room = w.joined_room_of(&general).await;

    let alice = w.emu.user_id("alice").unwrap();
    let sent = Instant::now();
    w.emu
        .post_message(&alice, &general, "not held back by the big channel")
        .unwrap();
    w.owner
        .wait_for_text(&general_room, "not held back by the big channel", WAIT)
        .await
        .unwrap();
    let took = sent.elapsed();

    let bot_client = w.env.bot_client().await;
    let joined = poll(
        "every member of #big joined",
        Duration::from_secs(300),
        async || {
            let joined = bot_client.joined_members(&room).await.ok()?;
            (joined.len() > BIG).then_some(joined)
        },
    )
    .await;
    for m in &members[..BIG] {
        assert!(joined.contains(&w.ghost(m)), "{m}'s ghost is in the room");
    }
    assert!(
        took < Duration::from_secs(8),
        "the message in #general took {took:?} while #big was filling"
    );
    bridge.stop().await.unwrap();
}

/// Someone joins a channel on Slack: their ghost joins the room; they leave: it leaves.
async fn joins_and_leaves_follow_slack(hs: HomeserverKind) {
    let mut ws = Workspace::demo();
    let erin = ws.add_user("erin", "Erin Hunt");
    let w = world(hs, ws).await;
    let bridge = w.env.run_bridge_full().await;
    let random = w.emu.channel_id("random").unwrap();
    let room = w.room_of(&random).await;
    let bot_client = w.env.bot_client().await;
    let ghost = w.ghost(&erin);
    let is_member = async |want: bool| {
        poll(
            &format!(
                "erin's ghost {} the room",
                if want { "in" } else { "out of" }
            ),
            WAIT,
            async || {
                let joined = bot_client.joined_members(&room).await.ok()?;
                (joined.contains(&ghost) == want).then_some(())
            },
        )
        .await
    };
    w.emu.join(&erin, &random).unwrap();
    is_member(true).await;
    w.emu.leave(&erin, &random).unwrap();
    is_member(false).await;
    // Joining again works too.
    w.emu.join(&erin, &random).unwrap();
    is_member(true).await;
    bridge.stop().await.unwrap();
}

/// The level needed to send messages in the room.
async fn events_default(w: &World, room: &str) -> i64 {
    let pl = w
        .env
        .bot_client()
        .await
        .state_event(room, "m.room.power_levels", "")
        .await
        .unwrap();
    pl["events_default"].as_i64().unwrap_or(0)
}

/// Waits for the bot's notice containing `text`.
async fn notice_with(w: &World, room: &str, text: &str) -> serde_json::Value {
    w.owner
        .wait_for_event(
            room,
            |e| e["sender"] == bot().as_str() && body(e).contains(text),
            WAIT,
        )
        .await
        .unwrap()
}

/// Archived on Slack: a notice, and nobody but the bot can post; unarchived: a notice, and
/// the owner's messages reach Slack again; deleted: a notice, and read-only for good.
async fn archive_unarchive_and_delete_show_in_the_room(hs: HomeserverKind) {
    let w = world(hs, Workspace::demo()).await;
    let bridge = w.env.run_bridge_full().await;
    let random = w.emu.channel_id("random").unwrap();
    let room = w.joined_room_of(&random).await;
    let alice = w.emu.user_id("alice").unwrap();

    w.emu.archive_channel(&alice, &random, true).unwrap();
    notice_with(&w, &room, "archived on Slack").await;
    assert_eq!(events_default(&w, &room).await, 100, "read-only");
    assert!(
        w.owner.send_text(&room, "into the archive").await.is_err(),
        "the homeserver refuses messages in an archived portal"
    );

    w.emu.archive_channel(&alice, &random, false).unwrap();
    notice_with(&w, &room, "unarchived on Slack").await;
    assert_eq!(events_default(&w, &room).await, 0, "open again");
    w.owner.send_text(&room, "back again").await.unwrap();
    w.wait_for_post("back again").await;

    w.emu.delete_channel(&random).unwrap();
    notice_with(&w, &room, "deleted on Slack").await;
    assert_eq!(events_default(&w, &room).await, 100, "read-only for good");
    let events = w.owner.messages(&room, 100).await.unwrap();
    let notices = events
        .iter()
        .filter(|e| e["sender"] == bot().as_str() && body(e).contains("on Slack:"))
        .count();
    assert_eq!(notices, 3, "one notice per change");
    bridge.stop().await.unwrap();
}

/// Pinning messages on Slack pins their events in the room; unpinning unpins exactly that one.
async fn pins_follow_slack(hs: HomeserverKind) {
    let w = world(hs, Workspace::demo()).await;
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;
    let alice = w.emu.user_id("alice").unwrap();
    let mut ids = Vec::new();
    let mut tss = Vec::new();
    for text in ["pin me", "pin me too"] {
        tss.push(w.emu.post_message(&alice, &general, text).unwrap());
        let e = w.owner.wait_for_text(&room, text, WAIT).await.unwrap();
        ids.push(e["event_id"].as_str().unwrap().to_owned());
    }
    let bot_client = w.env.bot_client().await;
    let pinned = async |want: Vec<&str>| {
        poll(&format!("pinned events {want:?}"), WAIT, async || {
            let state = bot_client
                .state_event(&room, "m.room.pinned_events", "")
                .await
                .ok()?;
            let now: Vec<&str> = state["pinned"]
                .as_array()?
                .iter()
                .filter_map(|v| v.as_str())
                .collect();
            (now == want).then_some(())
        })
        .await
    };
    w.emu.pin(&alice, &general, &tss[0]).unwrap();
    pinned(vec![&ids[0]]).await;
    w.emu.pin(&alice, &general, &tss[1]).unwrap();
    pinned(vec![&ids[0], &ids[1]]).await;
    w.emu.unpin(&alice, &general, &tss[0]).unwrap();
    pinned(vec![&ids[1]]).await;
    bridge.stop().await.unwrap();
}

/// Slack refusing one channel's member list for good (#general, synced first) holds
/// back no other portal: the rest get their members.
async fn a_portal_slack_refuses_members_for_does_not_hold_back_the_others(hs: HomeserverKind) {
    let w = world(hs, Workspace::demo()).await;
    let general = w.emu.channel_id("general").unwrap();
    let random = w.emu.channel_id("random").unwrap();
    w.emu
        .fault("conversations.members")
        .channel(&general)
        .forever()
        .error("not_in_channel");
    let bridge = w.env.run_bridge_full().await;
    let room = w.room_of(&random).await;
    let bot_client = w.env.bot_client().await;
    let carol = w.ghost(&w.emu.user_id("carol").unwrap());
    poll("#random's members despite #general", WAIT, async || {
        let joined = bot_client.joined_members(&room).await.ok()?;
        joined.contains(&carol).then_some(())
    })
    .await;
    bridge.stop().await.unwrap();
}
