//! Events API payload shapes delivered over Socket Mode (slack-protocol.md §2), including the
//! bot's own echoes and the membership rule.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// Connects, acks everything, and returns the inner events that arrive within `wait`.
async fn collect(s: &mut Sock, wait: Duration) -> Vec<Value> {
    let mut out = Vec::new();
    while let Some(env) = s.next_event(wait).await {
        s.ack(&env).await;
        out.push(env["payload"].clone());
    }
    out
}

async fn connected(f: &Fixture) -> Sock {
    let mut s = f.connect().await;
    assert_eq!(s.next(SEC).await.unwrap()["type"], "hello");
    s
}

const W: Duration = Duration::from_millis(250);

#[tokio::test]
async fn event_callback_wrapper_shape() {
    let f = fixture().await;
    let mut s = connected(&f).await;
    f.emu.post_message(&f.alice, &f.general, "hello").unwrap();
    let p = &collect(&mut s, W).await[0];
    assert_eq!(p["type"], "event_callback");
    assert_eq!(p["team_id"], "T0TEAM0001");
    assert_eq!(p["context_team_id"], "T0TEAM0001");
    assert!(p["context_enterprise_id"].is_null());
    assert_eq!(p["api_app_id"], f.emu.app_id());
    has(p, "token", "string");
    assert!(p["event_id"].as_str().unwrap().starts_with("Ev0"));
    has(p, "event_time", "number");
    has(p, "event_context", "string");
    assert_eq!(p["is_ext_shared_channel"], false);
    let a = &p["authorizations"][0];
    assert_eq!(a["team_id"], "T0TEAM0001");
    assert_eq!(a["user_id"], f.emu.bot_user_id());
    assert_eq!(a["is_bot"], true);
    assert_eq!(a["is_enterprise_install"], false);
    assert!(a["enterprise_id"].is_null());
}

#[tokio::test]
async fn user_message_has_text_blocks_and_client_msg_id() {
    let f = fixture().await;
    let mut s = connected(&f).await;
    let ts = f
        .emu
        .post_message(&f.alice, &f.general, &format!("<@{}> *hi* there", f.bob))
        .unwrap();
    let ev = &collect(&mut s, W).await[0]["event"];
    assert_eq!(ev["type"], "message");
    assert!(ev.get("subtype").is_none());
    assert_eq!(ev["user"], f.alice.as_str());
    assert_eq!(ev["ts"], ts.as_str());
    assert_eq!(ev["event_ts"], ts.as_str());
    assert_eq!(ev["channel"], f.general.as_str());
    assert_eq!(ev["channel_type"], "channel");
    assert_eq!(ev["team"], "T0TEAM0001");
    assert_eq!(ev["client_msg_id"].as_str().unwrap().len(), 36);
    assert!(is_ts(&ev["ts"]));
    let b = &ev["blocks"][0];
    assert_eq!(b["type"], "rich_text");
    has(b, "block_id", "string");
    let els = &b["elements"][0]["elements"];
    assert_eq!(els[0], json!({"type": "user", "user_id": f.bob}));
    assert_eq!(
        els[2],
        json!({"type": "text", "text": "hi", "style": {"bold": true}})
    );
}

#[tokio::test]
async fn channel_types_and_membership_filter() {
    let f = fixture().await;
    let mut s = connected(&f).await;
    f.emu
        .post_message(&f.alice, &f.outside, "not for the bot")
        .unwrap();
    f.emu.post_message(&f.alice, &f.secret, "g").unwrap();
    f.emu.post_message(&f.alice, &f.dm, "d").unwrap();
    f.emu.post_message(&f.alice, &f.mpim, "m").unwrap();
    let evs = collect(&mut s, W).await;
    let types: Vec<&str> = evs
        .iter()
        .map(|p| p["event"]["channel_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["group", "im", "mpim"]);
}

#[tokio::test]
async fn thread_reply_me_edit_delete_shapes() {
    let f = fixture().await;
    let mut s = connected(&f).await;
    let root = f.emu.post_message(&f.alice, &f.general, "root").unwrap();
    let reply = f.emu.reply(&f.bob, &f.general, &root, "child").unwrap();
    f.emu.me_message(&f.alice, &f.general, "waves").unwrap();
    let edit_ts = f.emu.edit(&f.alice, &f.general, &root, "root v2").unwrap();
    f.emu.delete(&f.bob, &f.general, &reply).unwrap();
    let evs: Vec<Value> = collect(&mut s, W)
        .await
        .into_iter()
        .map(|p| p["event"].clone())
        .collect();

    let r = evs.iter().find(|e| e["ts"] == reply.as_str()).unwrap();
    assert_eq!(r["thread_ts"], root.as_str());
    assert_eq!(r["parent_user_id"], f.alice.as_str());

    let me = evs.iter().find(|e| e["subtype"] == "me_message").unwrap();
    assert_eq!(me["text"], "waves");
    assert_eq!(me["user"], f.alice.as_str());

    let changed: Vec<&Value> = evs
        .iter()
        .filter(|e| e["subtype"] == "message_changed")
        .collect();
    // Parent summary update after the reply, the edit, and the update after the delete.
    let edit = changed
        .iter()
        .find(|e| e["ts"] == edit_ts.as_str())
        .unwrap();
    assert_eq!(edit["hidden"], true);
    assert_eq!(edit["message"]["text"], "root v2");
    assert_eq!(edit["message"]["ts"], root.as_str());
    assert_eq!(edit["message"]["edited"]["user"], f.alice.as_str());
    assert_eq!(edit["message"]["edited"]["ts"], edit_ts.as_str());
    assert_eq!(edit["previous_message"]["text"], "root");
    assert_eq!(edit["channel"], f.general.as_str());
    has(edit, "event_ts", "string");
    let parent_update = changed[0];
    assert_eq!(parent_update["message"]["reply_count"], 1);
    assert_eq!(
        parent_update["message"]["text"],
        parent_update["previous_message"]["text"]
    );

    let del = evs
        .iter()
        .find(|e| e["subtype"] == "message_deleted")
        .unwrap();
    assert_eq!(del["hidden"], true);
    assert_eq!(del["deleted_ts"], reply.as_str());
    assert_eq!(del["previous_message"]["text"], "child");
    has(del, "event_ts", "string");
}

#[tokio::test]
async fn reactions_members_channels_users_shapes() {
    let f = fixture().await;
    let mut s = connected(&f).await;
    let ts = f.emu.post_message(&f.alice, &f.general, "x").unwrap();
    f.emu.react(&f.bob, &f.general, &ts, "thumbsup").unwrap();
    f.emu.unreact(&f.bob, &f.general, &ts, "thumbsup").unwrap();
    f.emu.leave(&f.bob, &f.general).unwrap();
    f.emu.invite(&f.alice, &f.bob, &f.general).unwrap();
    f.emu.rename_channel(&f.alice, &f.general, "lobby").unwrap();
    f.emu.set_topic(&f.alice, &f.general, "new topic").unwrap();
    let created = f.emu.create_channel(&f.alice, "fresh", false).unwrap();
    f.emu
        .update_profile(
            &f.alice,
            slack_emulator::ProfileUpdate {
                display_name: Some("ally".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let evs: Vec<Value> = collect(&mut s, W)
        .await
        .into_iter()
        .map(|p| p["event"].clone())
        .collect();
    let by = |t: &str| evs.iter().find(|e| e["type"] == t).unwrap().clone();
    let sub = |t: &str| evs.iter().find(|e| e["subtype"] == t).unwrap().clone();

    let ra = by("reaction_added");
    assert_eq!(ra["user"], f.bob.as_str());
    assert_eq!(ra["reaction"], "thumbsup");
    assert_eq!(ra["item_user"], f.alice.as_str());
    assert_eq!(
        ra["item"],
        json!({"type": "message", "channel": f.general, "ts": ts})
    );
    has(&ra, "event_ts", "string");
    assert_eq!(by("reaction_removed")["reaction"], "thumbsup");

    let left = by("member_left_channel");
    assert_eq!(left["user"], f.bob.as_str());
    assert_eq!(left["channel_type"], "C");
    assert_eq!(left["team"], "T0TEAM0001");
    let joined = by("member_joined_channel");
    assert_eq!(joined["inviter"], f.alice.as_str());
    assert_eq!(sub("channel_leave")["user"], f.bob.as_str());
    assert_eq!(sub("channel_join")["inviter"], f.alice.as_str());

    let rn = by("channel_rename");
    assert_eq!(rn["channel"]["id"], f.general.as_str());
    assert_eq!(rn["channel"]["name"], "lobby");
    has(&rn["channel"], "created", "number");
    let cn = sub("channel_name");
    assert_eq!(cn["old_name"], "general");
    assert_eq!(cn["name"], "lobby");

    let topic = sub("channel_topic");
    assert_eq!(topic["topic"], "new topic");
    assert!(
        topic["text"]
            .as_str()
            .unwrap()
            .contains("set the channel topic: new topic")
    );

    let cc = by("channel_created");
    assert_eq!(cc["channel"]["id"], created.as_str());
    assert_eq!(cc["channel"]["name"], "fresh");
    assert_eq!(cc["channel"]["creator"], f.alice.as_str());

    let uc = by("user_change");
    assert_eq!(uc["user"]["id"], f.alice.as_str());
    assert_eq!(uc["user"]["profile"]["display_name"], "ally");
    has(&uc, "cache_ts", "number");
    has(&uc, "event_ts", "string");
}

#[tokio::test]
async fn file_share_shapes() {
    let f = fixture().await;
    let mut s = connected(&f).await;
    let png = slack_emulator::util::avatar_png("e7392d", 32);
    let fid = f
        .emu
        .share_file(&f.alice, &f.general, "pic.png", png.clone(), "image/png")
        .unwrap();
    let evs: Vec<Value> = collect(&mut s, W)
        .await
        .into_iter()
        .map(|p| p["event"].clone())
        .collect();
    let m = evs.iter().find(|e| e["type"] == "message").unwrap();
    assert_eq!(m["subtype"], "file_share");
    assert_eq!(m["upload"], true);
    assert_eq!(m["display_as_bot"], false);
    assert_eq!(m["user"], f.alice.as_str());
    let file = &m["files"][0];
    assert_eq!(file["id"], fid.as_str());
    assert_eq!(file["mimetype"], "image/png");
    assert_eq!(file["filetype"], "png");
    assert_eq!(file["size"], png.len());
    assert_eq!(file["original_w"], 32);
    has(file, "thumb_360", "string");
    has(file, "url_private", "string");
    let fs = evs.iter().find(|e| e["type"] == "file_shared").unwrap();
    assert_eq!(fs["file_id"], fid.as_str());
    assert_eq!(fs["channel_id"], f.general.as_str());
    assert_eq!(fs["user_id"], f.alice.as_str());
    assert_eq!(fs["file"], json!({"id": fid}));

    // The thumbnail needs the token too.
    let thumb = file["thumb_360"]
        .as_str()
        .unwrap()
        .trim_start_matches(&f.emu.base_url())
        .to_string();
    let r = f.get(&thumb, Some(&f.emu.bot_token())).await;
    assert_eq!(r.bytes().await.unwrap().to_vec(), png);
}

#[tokio::test]
async fn bot_actions_echo_back_with_bot_id() {
    let f = fixture().await;
    let mut s = connected(&f).await;
    let r = f
        .api(
            "chat.postMessage",
            &[("channel", &f.general), ("text", "from matrix")],
        )
        .await;
    let ts = r.body["ts"].as_str().unwrap().to_string();
    f.api(
        "chat.postMessage",
        &[
            ("channel", &f.general),
            ("text", "relayed"),
            ("username", "Bob (Matrix)"),
        ],
    )
    .await;
    f.api(
        "chat.update",
        &[("channel", &f.general), ("ts", &ts), ("text", "edited")],
    )
    .await;
    f.api(
        "reactions.add",
        &[
            ("channel", &f.general),
            ("timestamp", &ts),
            ("name", "eyes"),
        ],
    )
    .await;
    f.api("chat.delete", &[("channel", &f.general), ("ts", &ts)])
        .await;
    let evs: Vec<Value> = collect(&mut s, W)
        .await
        .into_iter()
        .map(|p| p["event"].clone())
        .collect();
    let bot_id = f.emu.bot_id();
    let plain = &evs[0];
    assert_eq!(plain["type"], "message");
    assert!(plain.get("subtype").is_none());
    assert_eq!(plain["bot_id"], bot_id.as_str());
    assert_eq!(plain["app_id"], f.emu.app_id());
    assert_eq!(plain["user"], f.emu.bot_user_id());
    has(plain, "bot_profile", "object");
    let custom = &evs[1];
    assert_eq!(custom["subtype"], "bot_message");
    assert_eq!(custom["username"], "Bob (Matrix)");
    assert_eq!(custom["bot_id"], bot_id.as_str());
    let changed = &evs[2];
    assert_eq!(changed["subtype"], "message_changed");
    assert_eq!(changed["message"]["bot_id"], bot_id.as_str());
    assert_eq!(changed["message"]["text"], "edited");
    let ra = &evs[3];
    assert_eq!(ra["type"], "reaction_added");
    assert_eq!(ra["user"], f.emu.bot_user_id());
    let del = &evs[4];
    assert_eq!(del["subtype"], "message_deleted");
    assert_eq!(del["previous_message"]["bot_id"], bot_id.as_str());
}

#[tokio::test]
async fn bot_upload_echoes_as_file_share() {
    let f = fixture().await;
    let mut s = connected(&f).await;
    let b = f
        .api(
            "files.getUploadURLExternal",
            &[("filename", "a.txt"), ("length", "2")],
        )
        .await
        .body;
    f.http
        .post(b["upload_url"].as_str().unwrap())
        .body("hi")
        .send()
        .await
        .unwrap();
    let files = json!([{"id": b["file_id"]}]).to_string();
    f.api(
        "files.completeUploadExternal",
        &[("files", &files), ("channel_id", &f.general)],
    )
    .await;
    let evs: Vec<Value> = collect(&mut s, Duration::from_millis(400))
        .await
        .into_iter()
        .map(|p| p["event"].clone())
        .collect();
    let m = evs.iter().find(|e| e["type"] == "message").unwrap();
    assert_eq!(m["subtype"], "file_share");
    assert_eq!(m["bot_id"], f.emu.bot_id());
    assert_eq!(m["files"][0]["id"], b["file_id"]);
    assert!(evs.iter().any(|e| e["type"] == "file_shared"));
}

#[tokio::test]
async fn bot_joining_sees_its_own_member_joined_channel() {
    let f = fixture().await;
    let mut s = connected(&f).await;
    f.api("conversations.join", &[("channel", &f.outside)])
        .await;
    let evs = collect(&mut s, W).await;
    let j = evs
        .iter()
        .find(|p| p["event"]["type"] == "member_joined_channel")
        .unwrap();
    assert_eq!(j["event"]["user"], f.emu.bot_user_id());
    assert!(j["event"].get("inviter").is_none());
}

#[tokio::test]
async fn unsubscribed_events_are_not_sent() {
    let f = fixture().await;
    f.emu.set_bot_events(&["reaction_added"]);
    let mut s = connected(&f).await;
    let ts = f.emu.post_message(&f.alice, &f.general, "x").unwrap();
    f.emu.react(&f.bob, &f.general, &ts, "tada").unwrap();
    let evs = collect(&mut s, W).await;
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0]["event"]["type"], "reaction_added");
}
