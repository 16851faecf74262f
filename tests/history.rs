//! History: a new portal's backfill and the catch-up after the bridge was away, as a Matrix
//! user sees them, with the Slack emulator doing what Slack does to an app that is not
//! connected (events dropped, not queued) and, where asked, Slack's 2025 Tier 1 history
//! limits. Real homeservers, SQLite and PostgreSQL.

mod support;

use std::time::Duration;

use serde_json::Value;
use slack_emulator::Workspace;
use support::{
    TestDb,
    process::BridgeProcess,
    world::{WAIT, World, body, poll, world_with},
};
use testkit::HomeserverKind;

on_every_homeserver_and_database!(
    a_new_portal_starts_with_its_history_in_order,
    what_slack_sent_while_the_bridge_was_stopped_arrives_once,
    what_slack_sent_while_the_socket_was_down_arrives_once,
    a_kill_in_the_middle_of_a_backfill_sends_nothing_twice,
    tier1_history_limits_pace_the_backfill_not_the_other_portals,
);

/// One seeded history message: its text and ts.
#[derive(Debug, Clone)]
struct Seeded {
    ts: String,
    text: String,
}

/// The `history` channel: `n` top-level messages (alice and bob taking turns, a minute
/// apart, the newest 10 minutes ago), threads under the messages at `threads` (index, replies)
/// whose replies come a few seconds after their root, and a reaction from carol on message
/// `reacted`. Returns the workspace, the channel, the top-level messages and every reply.
fn history_workspace(
    n: usize,
    threads: &[(usize, usize)],
    reacted: usize,
) -> (Workspace, String, Vec<Seeded>, Vec<(usize, Seeded)>) {
    let mut ws = Workspace::demo();
    let id = |ws: &Workspace, name: &str| {
        ws.users()
            .iter()
            .find(|u| u.name == name)
            .unwrap()
            .id
            .clone()
    };
    let (alice, bob, carol) = (id(&ws, "alice"), id(&ws, "bob"), id(&ws, "carol"));
    let bot = ws.bot_user_id().to_owned();
    let channel = ws.add_channel("history", false, &[&alice, &bob, &carol, &bot]);
    let mut top = Vec::new();
    let mut replies = Vec::new();
    for i in 0..n {
        let secs_ago = 600 + (n - i) as u64 * 60;
        let user = if i % 2 == 0 { &alice } else { &bob };
        let text = format!("history {i:02}");
        let ts = ws.seed_message(&channel, user, &text, secs_ago);
        top.push(Seeded {
            ts: ts.clone(),
            text,
        });
        if let Some((_, count)) = threads.iter().find(|(at, _)| *at == i) {
            for r in 0..*count {
                let text = format!("reply {i:02}.{r:02}");
                let ts =
                    ws.seed_reply(&channel, &carol, &ts, text.clone(), secs_ago - 1 - r as u64);
                replies.push((i, Seeded { ts, text }));
            }
        }
    }
    ws.seed_reaction(&channel, &top[reacted].ts, &carol, "tada");
    (ws, channel, top, replies)
}

fn ts_key(ts: &str) -> (u64, u64) {
    let (s, f) = ts.split_once('.').unwrap_or((ts, "0"));
    (s.parse().unwrap(), f.parse().unwrap())
}

/// The room's messages from Slack ghosts (edits left out), oldest first.
async fn ghost_messages(w: &World, room: &str) -> Vec<Value> {
    w.owner
        .messages(room, 500)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| {
            e["type"] == "m.room.message"
                && e["sender"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("@slack_"))
                && e["content"]["m.relates_to"]["rel_type"] != "m.replace"
        })
        .collect()
}

fn bodies(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| body(e).to_owned()).collect()
}

/// Waits until the room holds a ghost message with `text`; returns the ghost messages.
async fn wait_for_ghost_text(w: &World, room: &str, text: &str) -> Vec<Value> {
    poll(&format!("{text:?} in the room"), WAIT * 2, async || {
        let events = ghost_messages(w, room).await;
        events.iter().any(|e| body(e) == text).then_some(events)
    })
    .await
}

/// The expected history of a new portal: the newest `keep` top-level messages, each with the
/// newest `per_thread` replies of its thread, in ts order.
fn expected_backfill(
    top: &[Seeded],
    replies: &[(usize, Seeded)],
    keep: usize,
    per_thread: usize,
) -> Vec<Seeded> {
    let first = top.len().saturating_sub(keep);
    let mut out: Vec<Seeded> = top[first..].to_vec();
    for i in first..top.len() {
        let mine: Vec<&Seeded> = replies
            .iter()
            .filter(|(at, _)| *at == i)
            .map(|(_, r)| r)
            .collect();
        let skip = mine.len().saturating_sub(per_thread);
        out.extend(mine.into_iter().skip(skip).cloned());
    }
    out.sort_by_key(|m| ts_key(&m.ts));
    out
}

/// A channel with 80 messages, 3 threads (one longer than `thread_replies`), a reaction and
/// a file: the new portal shows the newest 50 with their threads, in order, at Slack's
/// times, each once, and a live message posted while the backfill runs comes after them.
async fn a_new_portal_starts_with_its_history_in_order(hs: HomeserverKind, db: Option<TestDb>) {
    let (ws, channel, top, replies) = history_workspace(80, &[(20, 2), (60, 3), (75, 25)], 65);
    let w = world_with(hs, ws, db, true, Vec::new()).await;
    let alice = w.emu.user_id("alice").unwrap();
    let bob = w.emu.user_id("bob").unwrap();
    // A file shared while the bridge is not connected: Slack drops its event, so it exists
    // only in the history.
    w.emu.drop_events_while_disconnected(true);
    w.emu
        .share_file(
            &alice,
            &channel,
            "plan.pdf",
            b"%PDF-1.4 plan".to_vec(),
            "application/pdf",
        )
        .unwrap();
    // The first history page answers slowly, so the live message below is posted while the
    // backfill runs.
    w.emu
        .fault("conversations.history")
        .channel(&channel)
        .times(1)
        .apply_then_delay(Duration::from_secs(3));
    let _bridge = w.env.run_bridge_full().await;
    poll("the backfill's first history call", WAIT, async || {
        w.emu
            .calls("conversations.history")
            .iter()
            .any(|c| c.params["channel"] == channel.as_str())
            .then_some(())
    })
    .await;
    w.emu
        .post_message(&bob, &channel, "live during the backfill")
        .unwrap();

    let room = w.joined_room_of(&channel).await;
    let events = wait_for_ghost_text(&w, &room, "live during the backfill").await;
    // The file is the newest message: the newest 50 are it and history 31..79.
    let mut expected = expected_backfill(&top, &replies, 49, 20);
    let texts: Vec<String> = expected.iter().map(|m| m.text.clone()).collect();
    let mut want = texts.clone();
    want.push("plan.pdf".into());
    want.push("live during the backfill".into());
    assert_eq!(bodies(&events), want, "the room's messages, oldest first");
    assert_eq!(
        expected.len(),
        49 + 3 + 20,
        "history 60 has 3 replies and 75 the newest 20 of 25; 20's thread is too old"
    );

    // At Slack's times, and threads as threads.
    expected.push(Seeded {
        ts: String::new(),
        text: "plan.pdf".into(),
    });
    let by_text = |t: &str| events.iter().find(|e| body(e) == t).unwrap();
    for m in expected.iter().filter(|m| !m.ts.is_empty()) {
        let e = by_text(&m.text);
        let (s, f) = ts_key(&m.ts);
        assert_eq!(
            e["origin_server_ts"].as_u64(),
            Some(s * 1000 + f / 1000),
            "{} at its Slack time",
            m.text
        );
    }
    let root_60 = by_text("history 60")["event_id"].clone();
    for r in ["reply 60.00", "reply 60.01", "reply 60.02"] {
        let rel = &by_text(r)["content"]["m.relates_to"];
        assert_eq!(rel["rel_type"], "m.thread", "{r} in its thread");
        assert_eq!(rel["event_id"], root_60, "{r} in history 60's thread");
    }
    assert_eq!(by_text("plan.pdf")["content"]["msgtype"], "m.file");
    assert_eq!(by_text("history 31")["sender"], w.ghost(&bob));
    assert_eq!(by_text("history 32")["sender"], w.ghost(&alice));

    // The reaction from carol's ghost.
    let reacted = by_text("history 65")["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let carol = w.ghost(&w.emu.user_id("carol").unwrap());
    w.owner
        .wait_for_event(
            &room,
            |e| {
                e["type"] == "m.reaction"
                    && e["sender"] == carol.as_str()
                    && e["content"]["m.relates_to"]["event_id"] == reacted.as_str()
                    && e["content"]["m.relates_to"]["key"] == "🎉"
            },
            WAIT,
        )
        .await
        .unwrap();

    // DMs are backfilled too: the demo's DM from alice.
    let dm = w.joined_room_of(&w.emu.dm_id(&alice).unwrap()).await;
    let dm_events = wait_for_ghost_text(&w, &dm, "hi bot").await;
    assert_eq!(dm_events[0]["sender"], w.ghost(&alice));

    // `list` shows it, and /metrics counts it.
    let mgmt = w.management_room().await;
    let answer = w.command(&mgmt, "list").await;
    assert!(
        body(&answer).contains("#history") && body(&answer).contains("73 messages from history"),
        "{}",
        body(&answer)
    );
    let metrics = w.metrics().await;
    let backfilled: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("slack_bridge_history_messages_total{run=\"backfill\"} "))
        .unwrap_or_else(|| panic!("no backfill count in\n{metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert!(backfilled >= 73, "{backfilled} backfilled messages counted");

    // A live message that makes a portal (a channel the bridge had no room for) comes after
    // that channel's history, not before it.
    let bot = w.emu.bot_user_id();
    let late = w.emu.add_channel("late", false, &[&alice, &bob, &bot]);
    for (i, ago) in [(0, 300), (1, 200)] {
        w.emu
            .with_workspace(|ws| ws.seed_message(&late, &alice, &format!("late history {i}"), ago));
    }
    w.emu.post_message(&bob, &late, "makes the portal").unwrap();
    let late_room = w.joined_room_of(&late).await;
    let events = wait_for_ghost_text(&w, &late_room, "makes the portal").await;
    assert_eq!(
        bodies(&events),
        ["late history 0", "late history 1", "makes the portal"],
        "history first, then the live message, each once"
    );
}

/// Stops the bridge, posts in Slack while it is away (Slack drops those events), starts it
/// again: every message arrives once, in order, thread replies in their threads.
async fn what_slack_sent_while_the_bridge_was_stopped_arrives_once(
    hs: HomeserverKind,
    db: Option<TestDb>,
) {
    let w = world_with(hs, Workspace::demo(), db, true, Vec::new()).await;
    let general = w.emu.channel_id("general").unwrap();
    let alice = w.emu.user_id("alice").unwrap();
    let bridge = w.env.run_bridge_full().await;
    let room = w.joined_room_of(&general).await;
    let before = w
        .emu
        .post_message(&alice, &general, "before the stop")
        .unwrap();
    let events = wait_for_ghost_text(&w, &room, "before the stop").await;
    let before_id = events
        .iter()
        .find(|e| body(e) == "before the stop")
        .unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let welcome = welcome_ts(&w, &general);
    bridge.stop().await.unwrap();

    w.emu.drop_events_while_disconnected(true);
    // Meanwhile the last bridged message is edited and gets a reaction.
    w.emu
        .edit(&alice, &general, &before, "before the stop, edited")
        .unwrap();
    let bob = w.emu.user_id("bob").unwrap();
    w.emu.react(&bob, &general, &before, "eyes").unwrap();
    let want = post_while_away(&w, &general, &welcome, 30);
    assert!(
        w.emu.dropped_events().len() >= want.len() + 2,
        "Slack dropped the events of the time the bridge was away"
    );
    let _bridge = w.env.run_bridge_full().await;
    assert_arrive_once_in_order(&w, &room, "before the stop", &want).await;

    // The edit and the reaction Slack's history shows, once each.
    let all = w.owner.messages(&room, 500).await.unwrap();
    let edits: Vec<&Value> = all
        .iter()
        .filter(|e| {
            e["content"]["m.relates_to"]["rel_type"] == "m.replace"
                && e["content"]["m.relates_to"]["event_id"] == before_id.as_str()
        })
        .collect();
    assert_eq!(edits.len(), 1, "one m.replace for the edit made while away");
    assert_eq!(
        edits[0]["content"]["m.new_content"]["body"],
        "before the stop, edited"
    );
    let reactions = all
        .iter()
        .filter(|e| {
            e["type"] == "m.reaction"
                && e["sender"] == w.ghost(&bob).as_str()
                && e["content"]["m.relates_to"]["event_id"] == before_id.as_str()
        })
        .count();
    assert_eq!(reactions, 1, "the reaction added while away");
}

/// The same with the socket dropped (and kept down) instead of the process stopped.
async fn what_slack_sent_while_the_socket_was_down_arrives_once(
    hs: HomeserverKind,
    db: Option<TestDb>,
) {
    let w = world_with(hs, Workspace::demo(), db, true, Vec::new()).await;
    let general = w.emu.channel_id("general").unwrap();
    let alice = w.emu.user_id("alice").unwrap();
    let _bridge = w.env.run_bridge_full().await;
    let room = w.joined_room_of(&general).await;
    w.emu
        .post_message(&alice, &general, "before the drop")
        .unwrap();
    wait_for_ghost_text(&w, &room, "before the drop").await;
    let welcome = welcome_ts(&w, &general);

    w.emu.drop_events_while_disconnected(true);
    w.emu
        .fault("apps.connections.open")
        .forever()
        .http_status(503);
    w.emu.close_sockets();
    poll("the socket down", WAIT, async || {
        (w.emu.connection_count() == 0).then_some(())
    })
    .await;
    let want = post_while_away(&w, &general, &welcome, 30);
    assert!(!w.emu.dropped_events().is_empty());
    w.emu.clear_faults();
    assert_arrive_once_in_order(&w, &room, "before the drop", &want).await;

    // A message Slack never sent an event for, fetched on demand by `backfill` in the room.
    let bob = w.emu.user_id("bob").unwrap();
    w.emu
        .with_workspace(|ws| ws.seed_message(&general, &bob, "never sent as an event", 0));
    let answer = w.command(&room, "!slack backfill").await;
    assert!(
        body(&answer).starts_with("Catching up"),
        "{}",
        body(&answer)
    );
    let events = wait_for_ghost_text(&w, &room, "never sent as an event").await;
    assert_eq!(events.last().map(body), Some("never sent as an event"));
}

/// The demo's welcome thread root in #general, bridged by the backfill: a reply into it is
/// new activity in a thread whose root is older than the gap.
fn welcome_ts(w: &World, general: &str) -> String {
    w.emu
        .messages(general)
        .into_iter()
        .find(|m| m["text"].as_str().is_some_and(|t| t.starts_with("Welcome")))
        .unwrap()["ts"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Posts `n` messages, a reply to the 10th of them and one to `old_root`, as alice and bob;
/// returns their texts in order.
fn post_while_away(w: &World, channel: &str, old_root: &str, n: usize) -> Vec<String> {
    let alice = w.emu.user_id("alice").unwrap();
    let bob = w.emu.user_id("bob").unwrap();
    let mut want = Vec::new();
    let mut tenth = String::new();
    for i in 0..n {
        let user = if i % 2 == 0 { &alice } else { &bob };
        let text = format!("away {i:02}");
        let ts = w.emu.post_message(user, channel, &text).unwrap();
        want.push(text);
        if i == 9 {
            tenth = ts;
        }
    }
    w.emu
        .reply(&bob, channel, &tenth, "away reply to 09")
        .unwrap();
    want.push("away reply to 09".into());
    w.emu
        .reply(&alice, channel, old_root, "away reply to the welcome")
        .unwrap();
    want.push("away reply to the welcome".into());
    want
}

/// Everything in `want` arrives after `after`, in order, each once.
async fn assert_arrive_once_in_order(w: &World, room: &str, after: &str, want: &[String]) {
    let last = want.last().unwrap();
    wait_for_ghost_text(w, room, last).await;
    // A sentinel after all of them: anything still coming would come before it.
    let carol = w.emu.user_id("carol").unwrap();
    let general = w.emu.channel_id("general").unwrap();
    w.emu.post_message(&carol, &general, "sentinel").unwrap();
    let events = wait_for_ghost_text(w, room, "sentinel").await;
    let texts = bodies(&events);
    let start = texts.iter().position(|t| t == after).unwrap() + 1;
    let mut expected = want.to_vec();
    expected.push("sentinel".into());
    assert_eq!(texts[start..].to_vec(), expected, "after {after:?}");
    let in_thread = |t: &str| {
        events.iter().find(|e| body(e) == t).unwrap()["content"]["m.relates_to"]["rel_type"].clone()
    };
    assert_eq!(in_thread("away reply to 09"), "m.thread");
    assert_eq!(in_thread("away reply to the welcome"), "m.thread");
}

/// SIGKILL while a backfill is sending (files make it slow), then a restart: every message
/// of the history once, none missing.
async fn a_kill_in_the_middle_of_a_backfill_sends_nothing_twice(
    hs: HomeserverKind,
    db: Option<TestDb>,
) {
    let (ws, channel, top, replies) = history_workspace(30, &[(25, 3)], 28);
    let w = world_with(hs, ws, db, true, Vec::new()).await;
    let alice = w.emu.user_id("alice").unwrap();
    w.emu.drop_events_while_disconnected(true);
    let mut files = Vec::new();
    for i in 0..8 {
        let name = format!("file-{i}.bin");
        let bytes: Vec<u8> = (0..40_000u32).map(|b| (b % 251) as u8 ^ i).collect();
        w.emu
            .share_file(&alice, &channel, &name, bytes, "application/octet-stream")
            .unwrap();
        files.push(name);
    }
    // 40 kB at 100 kB/s: each file takes a while to carry.
    w.emu.set_download_rate(Some(100_000));
    let mut bridge = BridgeProcess::start(&w.env).await;
    let room = w.joined_room_of(&channel).await;
    poll("part of the backfill", WAIT * 2, async || {
        let n = ghost_messages(&w, &room).await.len();
        (n >= 5).then_some(())
    })
    .await;
    bridge.kill();
    let before = ghost_messages(&w, &room).await.len();
    assert!(
        before < 30 + 3 + files.len(),
        "killed before the backfill ended ({before} messages)"
    );
    w.emu.set_download_rate(None);
    let _bridge = BridgeProcess::start(&w.env).await;
    let mut want: Vec<String> = expected_backfill(&top, &replies, 50, 20)
        .into_iter()
        .map(|m| m.text)
        .collect();
    want.extend(files);
    let last = want.last().unwrap().clone();
    wait_for_ghost_text(&w, &room, &last).await;
    let bob = w.emu.user_id("bob").unwrap();
    w.emu.post_message(&bob, &channel, "sentinel").unwrap();
    let events = wait_for_ghost_text(&w, &room, "sentinel").await;
    want.push("sentinel".into());
    assert_eq!(bodies(&events), want, "each message once, in order");
}

/// Slack's 2025 limits for apps outside the Marketplace (1 history call per interval, 15
/// messages a page): the backfill still completes, paced instead of refused, while another
/// portal's live messages flow.
async fn tier1_history_limits_pace_the_backfill_not_the_other_portals(
    hs: HomeserverKind,
    db: Option<TestDb>,
) {
    let (ws, channel, top, replies) = history_workspace(60, &[(55, 2)], 50);
    let w = world_with(hs, ws, db, true, Vec::new()).await;
    w.emu.set_history_tier1(Some(Duration::from_secs(2)));
    let general = w.emu.channel_id("general").unwrap();
    let alice = w.emu.user_id("alice").unwrap();
    let bridge = BridgeProcess::start_logging(&w.env, "slack_bridge=info").await;
    let general_room = w.joined_room_of(&general).await;
    let room = w.joined_room_of(&channel).await;

    // Live messages in another portal arrive while the backfill is still going.
    let mut live_arrived = false;
    for i in 0..3 {
        let text = format!("live {i}");
        w.emu.post_message(&alice, &general, &text).unwrap();
        wait_for_ghost_text(&w, &general_room, &text).await;
        let backfilled = ghost_messages(&w, &room).await;
        live_arrived |= !backfilled.iter().any(|e| body(e) == "history 59");
    }
    assert!(
        live_arrived,
        "a live message of #general waited for the whole backfill of #history"
    );

    let want: Vec<String> = expected_backfill(&top, &replies, 50, 20)
        .into_iter()
        .map(|m| m.text)
        .collect();
    let events = wait_for_ghost_text(&w, &room, "history 59").await;
    assert_eq!(bodies(&events), want);
    // Paced to what Slack allows: after Slack showed the limit, no call was refused again.
    let calls = w.emu.calls("conversations.history");
    let refused: Vec<usize> = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| c.status == 429)
        .map(|(i, _)| i)
        .collect();
    let history_calls = calls
        .iter()
        .filter(|c| c.params["channel"] == channel.as_str() && c.status == 200)
        .count();
    assert!(history_calls >= 4, "50 messages at 15 a page");
    assert!(
        refused.len() <= 6,
        "{} of {} history calls refused: the bridge kept hitting the limit",
        refused.len(),
        calls.len()
    );
    let log = bridge.log_text();
    assert!(
        log.contains("backfill #history: ") && log.contains(" left"),
        "the backfill logs its progress and the time left:\n{log}"
    );
}
