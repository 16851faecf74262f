//! Files from Slack, as a Matrix user sees them: one event per file with the right msgtype,
//! `info` and thumbnail, the caption as its own text event, the bytes identical when
//! downloaded back from the homeserver, and a notice naming the file wherever it cannot be
//! carried. The Slack emulator, a real homeserver and the bridge, on SQLite and PostgreSQL
//! (`synapse::sqlite::…`, `tuwunel::postgres::…`).

mod support;

use serde_json::{Value, json};
use slack_emulator::{FileSpec, Workspace};
use support::{
    TestDb,
    process::BridgeProcess,
    world::{WAIT, World, body, poll, world_with},
};
use testkit::HomeserverKind;

on_every_homeserver_and_database!(
    slack_files_reach_matrix_as_media,
    files_that_cannot_be_carried_are_named,
    deleted_and_redelivered_files_change_matrix_once,
    matrix_files_reach_slack_once,
    sigkill_mid_transfer_leaves_each_file_once,
);

async fn setup(hs: HomeserverKind, db: Option<TestDb>) -> World {
    world_with(hs, Workspace::demo(), db, true, Vec::new()).await
}

/// A PNG of `w`×`h` pixels of one colour.
fn png(w: u32, h: u32) -> Vec<u8> {
    let rgb: Vec<u8> = (0..w * h)
        .flat_map(|i| [(i % 251) as u8, 40, 200])
        .collect();
    slack_emulator::util::encode_png(w, h, &rgb)
}

/// Bytes that are not any real format, `n` of them, all different from the next file's.
fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

/// The room's messages from `sender` posted during the test, oldest first: the demo
/// workspace's history (backfilled into new portals) is at least ten minutes old.
async fn from(w: &World, room: &str, sender: &str) -> Vec<Value> {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - 600_000;
    w.owner
        .messages(room, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e["type"] == "m.room.message" && e["sender"] == sender)
        .filter(|e| e["origin_server_ts"].as_u64().is_some_and(|t| t > since))
        .collect()
}

/// Waits until `n` messages from `sender` are in the room and returns them.
async fn wait_for_messages(w: &World, room: &str, sender: &str, n: usize) -> Vec<Value> {
    support::world::poll(&format!("{n} messages from {sender}"), WAIT, async || {
        Some(from(w, room, sender).await).filter(|m| m.len() >= n)
    })
    .await
}

fn by_body<'a>(events: &'a [Value], b: &str) -> &'a Value {
    events
        .iter()
        .find(|e| body(e) == b)
        .unwrap_or_else(|| panic!("no event with body {b:?} among {events:#?}"))
}

/// Waits for a message from the bridge bot matching `f`.
async fn bot_notice(w: &World, room: &str, f: impl Fn(&Value) -> bool) -> Value {
    let bot = support::world::bot();
    w.owner
        .wait_for_event(room, |e| e["sender"] == bot.as_str() && f(e), WAIT)
        .await
        .unwrap()
}

/// Downloads an event's file back from the homeserver and compares it with what Slack has.
async fn assert_same_bytes(w: &World, event: &Value, expected: &[u8]) {
    let mxc = event["content"]["url"].as_str().expect("a media url");
    let (got, _) = w.owner.download(mxc).await.unwrap();
    assert_eq!(got.len(), expected.len(), "size of {mxc}");
    assert!(got == expected, "the bytes of {mxc} differ from Slack's");
}

/// A PNG with a caption, a PDF, an MP4 and a message of three files in a thread: one event
/// per file with its msgtype, `info` and thumbnail, the caption as text, identical bytes.
async fn slack_files_reach_matrix_as_media(hs: HomeserverKind, db: Option<TestDb>) {
    let w = setup(hs, db).await;
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;
    let alice = w.emu.user_id("alice").unwrap();
    let ghost = w.ghost(&alice);

    let image = png(40, 30);
    let (_, image_ts) = w
        .emu
        .share_file_with(
            &alice,
            &general,
            "chart.png",
            image.clone(),
            "image/png",
            "the *new* chart",
            None,
        )
        .unwrap();
    let pdf = bytes(300_000, 7);
    w.emu
        .share_file(
            &alice,
            &general,
            "report.pdf",
            pdf.clone(),
            "application/pdf",
        )
        .unwrap();
    let video = bytes(120_000, 9);
    let mut clip = FileSpec::new("clip.mp4", "video/mp4", video.clone());
    clip.duration_ms = Some(4_500);
    w.emu
        .share_files(&alice, &general, vec![clip], "", None)
        .unwrap();
    let log = bytes(5_000, 3);
    let voice = bytes(20_000, 5);
    let small = png(8, 8);
    w.emu
        .share_files(
            &alice,
            &general,
            vec![
                FileSpec::new("one.png", "image/png", small.clone()),
                FileSpec::new("build.log", "text/plain", log.clone()),
                FileSpec::new("voice.ogg", "audio/ogg", voice.clone()),
            ],
            "three at once",
            Some(&image_ts),
        )
        .unwrap();

    // caption, chart, pdf, clip, "three at once", one.png, build.log, voice.ogg
    let events = wait_for_messages(&w, &room, &ghost, 8).await;
    let caption = by_body(&events, "the new chart");
    assert_eq!(caption["content"]["msgtype"], "m.text");
    let chart = by_body(&events, "chart.png");
    assert_eq!(chart["content"]["msgtype"], "m.image", "{chart}");
    let info = &chart["content"]["info"];
    assert_eq!(info["mimetype"], "image/png");
    assert_eq!(info["size"], image.len());
    assert_eq!(
        (info["w"].as_u64(), info["h"].as_u64()),
        (Some(40), Some(30))
    );
    let thumb = info["thumbnail_url"].as_str().expect("a thumbnail");
    assert!(thumb.starts_with("mxc://"), "{info}");
    assert!(info["thumbnail_info"]["mimetype"].is_string(), "{info}");
    assert_same_bytes(&w, chart, &image).await;
    assert!(
        caption["origin_server_ts"] == chart["origin_server_ts"],
        "caption and file carry Slack's timestamp"
    );
    let order: Vec<&str> = events.iter().map(body).collect();
    let at = |b: &str| order.iter().position(|x| *x == b).unwrap();
    assert!(
        at("the new chart") < at("chart.png"),
        "the caption first: {order:?}"
    );

    let report = by_body(&events, "report.pdf");
    assert_eq!(report["content"]["msgtype"], "m.file");
    assert_eq!(report["content"]["info"]["mimetype"], "application/pdf");
    assert_eq!(report["content"]["info"]["size"], pdf.len());
    assert_same_bytes(&w, report, &pdf).await;

    let clip = by_body(&events, "clip.mp4");
    assert_eq!(clip["content"]["msgtype"], "m.video");
    assert_eq!(clip["content"]["info"]["duration"], 4_500);
    assert!(
        clip["content"]["info"]["thumbnail_url"].is_string(),
        "a video gets its still as thumbnail: {clip}"
    );
    assert_same_bytes(&w, clip, &video).await;

    // The three files and their caption are in the chart's thread.
    // The thread's root is the root message's first event: its caption.
    let root = &caption["event_id"];
    for b in ["three at once", "one.png", "build.log", "voice.ogg"] {
        let e = by_body(&events, b);
        assert_eq!(e["content"]["m.relates_to"]["rel_type"], "m.thread", "{e}");
        assert_eq!(&e["content"]["m.relates_to"]["event_id"], root, "{e}");
    }
    assert_eq!(by_body(&events, "one.png")["content"]["msgtype"], "m.image");
    assert_eq!(
        by_body(&events, "build.log")["content"]["msgtype"],
        "m.file"
    );
    assert_eq!(
        by_body(&events, "voice.ogg")["content"]["msgtype"],
        "m.audio"
    );
    assert_same_bytes(&w, by_body(&events, "one.png"), &small).await;
    assert_same_bytes(&w, by_body(&events, "build.log"), &log).await;
    assert_same_bytes(&w, by_body(&events, "voice.ogg"), &voice).await;

    // A caption edit replaces the caption, not the file.
    w.emu
        .edit(&alice, &general, &image_ts, "the *newer* chart")
        .unwrap();
    let replaced = w
        .owner
        .wait_for_event(
            &room,
            |e| e["content"]["m.new_content"]["body"] == "the newer chart",
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(replaced["content"]["m.relates_to"]["rel_type"], "m.replace");
    assert_eq!(
        replaced["content"]["m.relates_to"]["event_id"],
        caption["event_id"]
    );
    assert_eq!(replaced["sender"], ghost.as_str());
    let chart_id = &chart["event_id"];
    let edits_of_file = w
        .owner
        .messages(&room, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| {
            e["content"]["m.relates_to"]["event_id"] == *chart_id
                && e["content"]["m.relates_to"]["rel_type"] == "m.replace"
        })
        .count();
    assert_eq!(edits_of_file, 0, "the file itself is not edited");
    bridge.stop().await.unwrap();
}

/// An external file, a file only files.info describes, a file over the homeserver's upload
/// limit, and files without `files:read`: each named in the room, nothing else uploaded.
async fn files_that_cannot_be_carried_are_named(hs: HomeserverKind, db: Option<TestDb>) {
    let w = setup(hs, db).await;
    w.env.edit_config("    retry_for: 1h", "    retry_for: 5s");
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;
    let alice = w.emu.user_id("alice").unwrap();
    let ghost = w.ghost(&alice);

    let mut doc = FileSpec::new(
        "Roadmap",
        "application/vnd.google-apps.document",
        Vec::new(),
    );
    doc.external_url = Some("https://docs.google.com/document/d/abc".into());
    let connect_bytes = bytes(2_000, 11);
    let mut connect = FileSpec::new("shared.txt", "text/plain", connect_bytes.clone());
    connect.check_file_info = true;
    w.emu
        .share_files(&alice, &general, vec![doc, connect], "", None)
        .unwrap();
    let events = wait_for_messages(&w, &room, &ghost, 2).await;
    let roadmap = events
        .iter()
        .find(|e| body(e).starts_with("Roadmap"))
        .expect("the external file is named");
    assert_eq!(roadmap["content"]["msgtype"], "m.notice");
    assert!(
        body(roadmap).contains("https://docs.google.com/document/d/abc"),
        "{roadmap}"
    );
    let shared = by_body(&events, "shared.txt");
    assert_eq!(
        shared["content"]["msgtype"], "m.file",
        "fetched through files.info"
    );
    assert_same_bytes(&w, shared, &connect_bytes).await;
    assert!(!w.emu.calls("files.info").is_empty());

    // Over the homeserver's limit: named with its size and link, never downloaded.
    let config = w
        .owner
        .get("/_matrix/client/v1/media/config")
        .await
        .unwrap();
    let limit = config["m.upload.size"].as_u64().expect("an upload limit") as usize;
    w.emu
        .share_file(
            &alice,
            &general,
            "huge.bin",
            vec![0u8; limit + 1],
            "application/octet-stream",
        )
        .unwrap();
    let events = wait_for_messages(&w, &room, &ghost, 3).await;
    let huge = events
        .iter()
        .find(|e| body(e).starts_with("huge.bin"))
        .expect("the big file is named");
    assert_eq!(huge["content"]["msgtype"], "m.notice");
    assert!(
        body(huge).contains("larger than the homeserver accepts"),
        "{huge}"
    );
    assert!(
        body(huge).contains("/files/"),
        "with its Slack link: {huge}"
    );

    // Downloads failing for longer than `bridge.outbound.retry_for`: the message is given up
    // with a notice naming the file and why.
    w.emu.fault("files.download").forever().http_status(503);
    w.emu
        .share_file(
            &alice,
            &general,
            "flaky.pdf",
            bytes(3_000, 2),
            "application/pdf",
        )
        .unwrap();
    let notice = bot_notice(&w, &room, |e| {
        body(e).contains("flaky.pdf") && body(e).contains("could not be bridged")
    })
    .await;
    assert!(body(&notice).contains("503"), "the reason: {notice}");
    w.emu.clear_faults();

    // Without files:read Slack answers downloads with its sign-in page: a notice names
    // the scope and no HTML is uploaded.
    w.emu.remove_scopes(&["files:read"]);
    w.emu
        .share_file(&alice, &general, "photo.png", png(4, 4), "image/png")
        .unwrap();
    let events = wait_for_messages(&w, &room, &ghost, 4).await;
    let photo = events
        .iter()
        .find(|e| body(e).starts_with("photo.png"))
        .expect("the unreadable file is named");
    assert_eq!(photo["content"]["msgtype"], "m.notice", "{photo}");
    assert!(body(photo).contains("files:read"), "{photo}");
    assert!(
        events
            .iter()
            .all(|e| e["content"]["url"].is_null() || body(e) == "shared.txt"),
        "nothing but the readable file was uploaded: {events:#?}"
    );
    bridge.stop().await.unwrap();
}

/// Deleting a file on Slack redacts its event and leaves the caption; every event delivered
/// several times and a restart of the bridge leave one event per file.
async fn deleted_and_redelivered_files_change_matrix_once(hs: HomeserverKind, db: Option<TestDb>) {
    let w = setup(hs, db).await;
    w.emu.set_ack_timeout(std::time::Duration::from_millis(300));
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;
    let alice = w.emu.user_id("alice").unwrap();
    let ghost = w.ghost(&alice);
    w.emu.drop_acks(true);

    let (ids, _) = w
        .emu
        .share_files(
            &alice,
            &general,
            vec![
                FileSpec::new("a.png", "image/png", png(6, 6)),
                FileSpec::new("b.txt", "text/plain", bytes(1_000, 1)),
            ],
            "two files",
            None,
        )
        .unwrap();
    let events = wait_for_messages(&w, &room, &ghost, 3).await;
    let a = by_body(&events, "a.png")["event_id"].clone();
    w.emu.delete_file(&ids[0]).unwrap();
    let redacted = support::world::poll("the deleted file's event redacted", WAIT, async || {
        let e = w.owner.event(&room, a.as_str().unwrap()).await.ok()?;
        e["content"]
            .as_object()
            .is_some_and(|c| c.is_empty())
            .then_some(e)
    })
    .await;
    assert!(
        redacted["unsigned"]["redacted_because"].is_object(),
        "{redacted}"
    );

    // Redeliveries meanwhile, then a restart with the redeliveries still coming.
    support::world::poll(
        "Slack redelivering the unacked envelopes",
        WAIT,
        async || {
            w.emu
                .deliveries()
                .iter()
                .any(|d| d.retry_attempt >= 1)
                .then_some(())
        },
    )
    .await;
    bridge.stop().await.unwrap();
    let bridge = w.env.run_bridge_full().await;
    w.emu.drop_acks(false);
    let alice_id = alice.clone();
    w.emu.post_message(&alice_id, &general, "after").unwrap();
    w.owner.wait_for_text(&room, "after", WAIT).await.unwrap();

    let events = from(&w, &room, &ghost).await;
    for b in ["two files", "b.txt", "after"] {
        assert_eq!(
            events.iter().filter(|e| body(e) == b).count(),
            1,
            "{b} once: {events:#?}"
        );
    }
    let a_events: Vec<&Value> = events.iter().filter(|e| e["event_id"] == a).collect();
    assert_eq!(a_events.len(), 1);
    assert!(
        events
            .iter()
            .filter(|e| e["content"]["msgtype"] == "m.image")
            .count()
            == 0,
        "the deleted image was not bridged again: {events:#?}"
    );
    let redactions = w
        .owner
        .messages(&room, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e["type"] == "m.room.redaction" && e["redacts"] == a)
        .count();
    assert_eq!(redactions, 1, "the file's event is redacted once");
    bridge.stop().await.unwrap();
}

/// The uploads the bridge completed (whatever Slack answered): (file id, call) in order.
fn shared_files(w: &World) -> Vec<(String, slack_emulator::RecordedCall)> {
    w.emu
        .calls("files.completeUploadExternal")
        .into_iter()
        .map(|c| {
            let files: Value = serde_json::from_str(&c.param("files").unwrap()).unwrap();
            (files[0]["id"].as_str().unwrap().to_owned(), c)
        })
        .collect()
}

/// A PNG, a PDF with a caption in a thread, and a sticker from Matrix: each reaches Slack once
/// through the external upload with identical bytes, the right channel, thread and comment,
/// even when Slack's answer to the completion is lost; no echo comes back; redacting the
/// image deletes it on Slack.
async fn matrix_files_reach_slack_once(hs: HomeserverKind, db: Option<TestDb>) {
    let w = setup(hs, db).await;
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;
    let alice = w.emu.user_id("alice").unwrap();
    let root_ts = w.emu.post_message(&alice, &general, "the thread").unwrap();
    let root = w
        .owner
        .wait_for_text(&room, "the thread", WAIT)
        .await
        .unwrap();

    let image = png(20, 10);
    let image_mxc = w
        .owner
        .upload(image.clone(), "image/png", "chart.png")
        .await
        .unwrap();
    // The completion is applied, then answered 503: the retry finds it through files.info
    // (the share, which would also tell, comes only later).
    w.emu
        .apply_then_fail("files.completeUploadExternal", 1, 503);
    w.emu
        .set_file_share_delay(std::time::Duration::from_secs(4));
    let image_event = w
        .owner
        .send_event(
            &room,
            "m.room.message",
            &json!({"msgtype": "m.image", "body": "chart.png", "url": image_mxc,
                    "info": {"mimetype": "image/png", "size": image.len(), "w": 20, "h": 10}}),
        )
        .await
        .unwrap();
    let pdf = bytes(250_000, 21);
    let pdf_mxc = w
        .owner
        .upload(pdf.clone(), "application/pdf", "report.pdf")
        .await
        .unwrap();
    let pdf_event = w
        .owner
        .send_event(
            &room,
            "m.room.message",
            &json!({"msgtype": "m.file", "body": "the report", "filename": "report.pdf",
                    "url": pdf_mxc, "info": {"mimetype": "application/pdf", "size": pdf.len()},
                    "m.relates_to": {"rel_type": "m.thread", "event_id": root["event_id"],
                                     "is_falling_back": true,
                                     "m.in_reply_to": {"event_id": root["event_id"]}}}),
        )
        .await
        .unwrap();
    let sticker = png(12, 12);
    let sticker_mxc = w
        .owner
        .upload(sticker.clone(), "image/png", "wave.png")
        .await
        .unwrap();
    w.owner
        .send_event(
            &room,
            "m.sticker",
            &json!({"body": "wave", "url": sticker_mxc, "info": {"mimetype": "image/png", "w": 12, "h": 12}}),
        )
        .await
        .unwrap();
    w.owner.send_text(&room, "files sent").await.unwrap();
    w.wait_for_post("files sent").await;
    let shared = support::world::poll("three files shared on Slack", WAIT, async || {
        Some(shared_files(&w)).filter(|s| s.len() >= 3)
    })
    .await;
    assert_eq!(shared.len(), 3, "each file completed once");
    assert_eq!(
        w.emu.calls("files.getUploadURLExternal").len(),
        3,
        "and uploaded once, the lost answer included"
    );
    assert!(
        !w.emu.calls("files.info").is_empty(),
        "the lost answer was checked with files.info"
    );
    let by_title = |t: &str| {
        shared
            .iter()
            .find(|(_, c)| c.param("files").unwrap().contains(t))
            .unwrap_or_else(|| panic!("{t} not shared"))
    };
    for (name, expected) in [
        ("chart.png", &image),
        ("report.pdf", &pdf),
        ("wave.png", &sticker),
    ] {
        let (id, call) = by_title(name);
        assert_eq!(
            call.param("channel_id").as_deref(),
            Some(general.as_str()),
            "{name}"
        );
        let got = w.emu.file_bytes(id).expect("the file is on Slack");
        assert!(got == *expected, "{name}: the bytes on Slack differ");
    }
    let (_, pdf_call) = by_title("report.pdf");
    assert_eq!(
        pdf_call.param("thread_ts").as_deref(),
        Some(root_ts.as_str())
    );
    let comment = pdf_call.param("initial_comment").unwrap_or_default();
    assert!(comment.contains("the report"), "the caption: {comment}");
    let localpart = w
        .owner
        .user_id()
        .trim_start_matches('@')
        .split(':')
        .next()
        .unwrap();
    assert!(
        comment.contains(localpart),
        "the relayed sender is named: {comment}"
    );
    assert_eq!(by_title("chart.png").1.param("thread_ts"), None);
    assert!(
        w.emu.calls("files.upload").is_empty(),
        "never the retired files.upload"
    );

    // No echo of the shares comes back to Matrix.
    let events = w.owner.messages(&room, 100).await.unwrap();
    let echoes = events
        .iter()
        .filter(|e| e["sender"] != w.owner.user_id() && e["content"]["url"].is_string())
        .count();
    assert_eq!(echoes, 0, "no echo: {events:#?}");

    // Redacting the image deletes its Slack message, once its share's ts is known.
    let (image_file, _) = by_title("chart.png");
    let share_ts = support::world::poll("the image's share on Slack", WAIT, async || {
        w.emu
            .messages(&general)
            .into_iter()
            .find(|m| {
                m["files"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|f| f["id"] == image_file.as_str()))
            })
            .and_then(|m| m["ts"].as_str().map(str::to_owned))
    })
    .await;
    // The echoes map the shares; a marker after them proves they were handled.
    let (pdf_file, _) = by_title("report.pdf");
    poll("the report's share on Slack", WAIT, async || {
        let f = w.emu.file_json(pdf_file)?;
        f["shares"]
            .as_object()
            .is_some_and(|s| !s.is_empty())
            .then_some(())
    })
    .await;
    w.emu
        .post_message(&alice, &general, "after the shares")
        .unwrap();
    w.owner
        .wait_for_text(&room, "after the shares", WAIT)
        .await
        .unwrap();
    w.owner.redact(&room, &image_event, None).await.unwrap();
    support::world::poll("chat.delete of the image's share", WAIT, async || {
        w.emu
            .calls("chat.delete")
            .into_iter()
            .find(|c| c.param("ts").as_deref() == Some(share_ts.as_str()))
    })
    .await;

    // Editing the report's caption edits its share's comment.
    w.owner
        .send_event(
            &room,
            "m.room.message",
            &json!({"msgtype": "m.file", "body": "* the new report", "filename": "report.pdf", "url": pdf_mxc,
                    "m.new_content": {"msgtype": "m.file", "body": "the new report",
                                      "filename": "report.pdf", "url": pdf_mxc},
                    "m.relates_to": {"rel_type": "m.replace", "event_id": pdf_event}}),
        )
        .await
        .unwrap();
    let update = poll("chat.update of the report's comment", WAIT, async || {
        w.emu.calls("chat.update").into_iter().find(|c| {
            c.param("text")
                .is_some_and(|t| t.contains("the new report"))
        })
    })
    .await;
    assert_eq!(update.response["ok"], true, "{:?}", update.response);
    let share_ts = w.emu.file_json(pdf_file).and_then(|f| {
        f["shares"]["public"][general.as_str()][0]["ts"]
            .as_str()
            .map(str::to_owned)
    });
    assert_eq!(update.param("ts"), share_ts, "the share's ts");
    bridge.stop().await.unwrap();
}

/// SIGKILL of the bridge binary in the middle of a file download from Slack, and right after
/// it asked Slack for an upload URL for a Matrix file, then a restart: each file is once on
/// the other side, byte for byte.
async fn sigkill_mid_transfer_leaves_each_file_once(hs: HomeserverKind, db: Option<TestDb>) {
    let w = setup(hs, db).await;
    let mut bridge = BridgeProcess::start(&w.env).await;
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;
    let alice = w.emu.user_id("alice").unwrap();
    let ghost = w.ghost(&alice);

    // Slack → Matrix: 2 MB at 500 kB/s, killed after the download started.
    let slow = bytes(2_000_000, 13);
    w.emu.set_download_rate(Some(500_000));
    let file = w
        .emu
        .share_file(
            &alice,
            &general,
            "slow.bin",
            slow.clone(),
            "application/octet-stream",
        )
        .unwrap();
    poll("the download started", WAIT, async || {
        w.emu.downloads().contains(&file).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    bridge.kill();
    w.emu.set_download_rate(None);

    // Matrix → Slack: killed once the upload URL was asked for.
    let mut bridge_again = BridgeProcess::start(&w.env).await;
    let up = bytes(1_500_000, 17);
    let mxc = w
        .owner
        .upload(up.clone(), "application/octet-stream", "up.bin")
        .await
        .unwrap();
    w.emu.apply_then_delay(
        "files.completeUploadExternal",
        1,
        std::time::Duration::from_secs(5),
    );
    w.owner
        .send_event(
            &room,
            "m.room.message",
            &json!({"msgtype": "m.file", "body": "up.bin", "url": mxc, "info": {"size": up.len()}}),
        )
        .await
        .unwrap();
    poll("the completion asked for", WAIT, async || {
        (!w.emu.calls("files.completeUploadExternal").is_empty()).then_some(())
    })
    .await;
    bridge_again.kill();
    let bridge = BridgeProcess::start(&w.env).await;
    // Events after the restart (tuwunel pushes held transactions with the next event).
    w.owner.send_text(&room, "matrix sentinel").await.unwrap();
    w.wait_for_post("matrix sentinel").await;
    w.emu
        .post_message(&alice, &general, "slack sentinel")
        .unwrap();
    w.owner
        .wait_for_text(&room, "slack sentinel", WAIT)
        .await
        .unwrap();

    let events = from(&w, &room, &ghost).await;
    let slow_events: Vec<&Value> = events.iter().filter(|e| body(e) == "slow.bin").collect();
    assert_eq!(slow_events.len(), 1, "the Slack file once: {events:#?}");
    assert_same_bytes(&w, slow_events[0], &slow).await;
    let on_slack: Vec<Value> = w
        .emu
        .messages(&general)
        .into_iter()
        .filter(|m| {
            m["files"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f["name"] == "up.bin"))
        })
        .collect();
    assert_eq!(
        on_slack.len(),
        1,
        "the Matrix file once on Slack: {on_slack:#?}"
    );
    let id = on_slack[0]["files"][0]["id"].as_str().unwrap();
    assert!(w.emu.file_bytes(id).unwrap() == up, "its bytes");
    bridge.stop_and_check_exit().await;
}
