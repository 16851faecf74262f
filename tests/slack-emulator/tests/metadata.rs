//! Message metadata (Slack docs, "Using message metadata"): validation on chat.postMessage,
//! storage, history/replies only with `include_all_metadata=true`, Socket Mode events, and
//! chat.update's keep / replace / remove rules.

mod common;

use common::*;
use serde_json::{Value, json};

fn meta(event_type: &str) -> Value {
    json!({"event_type": event_type, "event_payload": {"matrix_event_id": "$abc:example.org", "n": 1}})
}

fn find<'a>(msgs: &'a Value, ts: &str) -> &'a Value {
    msgs.as_array()
        .unwrap()
        .iter()
        .find(|m| m["ts"] == ts)
        .unwrap_or_else(|| panic!("{ts} not in {msgs}"))
}

#[tokio::test]
async fn metadata_is_stored_and_only_returned_with_include_all_metadata() {
    let f = fixture().await;
    let md = meta("matrix_bridge_echo").to_string();
    let r = f
        .api(
            "chat.postMessage",
            &[("channel", &f.general), ("text", "root"), ("metadata", &md)],
        )
        .await;
    assert_eq!(r.body["ok"], true, "{}", r.body);
    assert_eq!(r.body["message"]["metadata"], meta("matrix_bridge_echo"));
    let root = r.body["ts"].as_str().unwrap().to_string();
    let md2 = meta("reply-kind").to_string();
    let r = f
        .api(
            "chat.postMessage",
            &[
                ("channel", &f.general),
                ("text", "reply"),
                ("thread_ts", &root),
                ("metadata", &md2),
            ],
        )
        .await;
    let reply = r.body["ts"].as_str().unwrap().to_string();
    assert_eq!(
        f.emu.message(&f.general, &root).unwrap()["metadata"],
        meta("matrix_bridge_echo"),
        "stored"
    );

    // Without the flag (absent or false) Slack leaves metadata out.
    for extra in [None, Some("false")] {
        let mut args = vec![("channel", f.general.as_str())];
        if let Some(v) = extra {
            args.push(("include_all_metadata", v));
        }
        let h = f.api("conversations.history", &args).await.body;
        assert!(find(&h["messages"], &root).get("metadata").is_none(), "{h}");
        args.push(("ts", &root));
        let t = f.api("conversations.replies", &args).await.body;
        for m in t["messages"].as_array().unwrap() {
            assert!(m.get("metadata").is_none(), "{m}");
        }
    }
    let h = f
        .api(
            "conversations.history",
            &[("channel", &f.general), ("include_all_metadata", "true")],
        )
        .await
        .body;
    assert_eq!(
        find(&h["messages"], &root)["metadata"],
        meta("matrix_bridge_echo")
    );
    let t = f
        .api(
            "conversations.replies",
            &[
                ("channel", &f.general),
                ("ts", &root),
                ("include_all_metadata", "true"),
            ],
        )
        .await
        .body;
    assert_eq!(
        find(&t["messages"], &root)["metadata"],
        meta("matrix_bridge_echo")
    );
    assert_eq!(find(&t["messages"], &reply)["metadata"], meta("reply-kind"));

    // JSON bodies carry it as an object (conversations.history takes JSON too).
    let r = f
        .api_json(
            "chat.postMessage",
            json!({"channel": f.random, "text": "j", "metadata": meta("json_kind")}),
        )
        .await;
    assert_eq!(r.body["ok"], true, "{}", r.body);
    let h = f
        .api_json(
            "conversations.history",
            json!({"channel": f.random, "include_all_metadata": true}),
        )
        .await
        .body;
    assert_eq!(h["messages"][0]["metadata"], meta("json_kind"));
}

#[tokio::test]
async fn metadata_is_validated_like_slack() {
    let f = fixture().await;
    let post = |md: String| {
        let f = &f;
        async move {
            f.api(
                "chat.postMessage",
                &[("channel", &f.general), ("text", "x"), ("metadata", &md)],
            )
            .await
            .body
        }
    };
    for bad in [
        "{not json".to_string(),
        "[]".to_string(),
        json!({"event_type": "t"}).to_string(),
        json!({"event_payload": {}}).to_string(),
        json!({"event_type": "t", "event_payload": "nope"}).to_string(),
        json!({"event_type": 7, "event_payload": {}}).to_string(),
        "{}".to_string(),
    ] {
        assert_eq!(
            post(bad.clone()).await,
            json!({"ok": false, "error": "invalid_metadata_format"}),
            "{bad}"
        );
    }
    assert!(f.emu.messages(&f.general).is_empty(), "nothing was posted");

    // An event_type with a period: posted, but the metadata is ignored with a warning.
    let b = post(meta("matrix.echo").to_string()).await;
    assert_eq!(b["ok"], true);
    assert_eq!(b["warning"], "invalid_metadata_schema");
    assert_eq!(
        b["response_metadata"]["warnings"],
        json!(["invalid_metadata_schema"])
    );
    assert!(b["message"].get("metadata").is_none());
    let ts = b["ts"].as_str().unwrap();
    assert!(
        f.emu
            .message(&f.general, ts)
            .unwrap()
            .get("metadata")
            .is_none()
    );
    // Hyphens and underscores are fine.
    let b = post(meta("a-b_C9").to_string()).await;
    assert!(b.get("warning").is_none(), "{b}");
    assert_eq!(b["message"]["metadata"]["event_type"], "a-b_C9");
}

#[tokio::test]
async fn socket_mode_message_event_carries_metadata() {
    let f = fixture().await;
    let mut sock = f.connect().await;
    sock.next(SEC).await.unwrap(); // hello
    let md = meta("matrix_bridge_echo").to_string();
    f.api(
        "chat.postMessage",
        &[("channel", &f.general), ("text", "hi"), ("metadata", &md)],
    )
    .await;
    let env = sock.next_event(LONG).await.expect("message event");
    let ev = &env["payload"]["event"];
    assert_eq!(ev["type"], "message");
    assert_eq!(ev["bot_id"], f.emu.bot_id());
    assert_eq!(ev["metadata"], meta("matrix_bridge_echo"));
    sock.ack(&env).await;

    // A post without metadata has none in its event.
    f.api(
        "chat.postMessage",
        &[("channel", &f.general), ("text", "plain")],
    )
    .await;
    let env = sock.next_event(LONG).await.expect("message event");
    assert_eq!(env["payload"]["event"]["text"], "plain");
    assert!(env["payload"]["event"].get("metadata").is_none());
}

#[tokio::test]
async fn chat_update_keeps_replaces_or_removes_metadata() {
    let f = fixture().await;
    let md = meta("first").to_string();
    let r = f
        .api(
            "chat.postMessage",
            &[("channel", &f.general), ("text", "v1"), ("metadata", &md)],
        )
        .await;
    let ts = r.body["ts"].as_str().unwrap().to_string();
    let update = |extra: Option<String>| {
        let f = &f;
        let ts = ts.clone();
        async move {
            let mut args = vec![
                ("channel", f.general.clone()),
                ("ts", ts),
                ("text", "v2".to_string()),
            ];
            if let Some(m) = extra {
                args.push(("metadata", m));
            }
            let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
            f.api("chat.update", &args).await.body
        }
    };
    let stored = |f: &Fixture| f.emu.message(&f.general, &ts).unwrap()["metadata"].clone();

    let b = update(None).await;
    assert_eq!(b["ok"], true, "{b}");
    assert_eq!(
        stored(&f),
        meta("first"),
        "kept without a metadata argument"
    );
    assert_eq!(b["message"]["metadata"], meta("first"));

    let b = update(Some(meta("second").to_string())).await;
    assert_eq!(b["ok"], true);
    assert_eq!(stored(&f), meta("second"), "replaced");

    let b = update(Some(meta("bad.type").to_string())).await;
    assert_eq!(b["warning"], "invalid_metadata_schema");
    assert_eq!(
        stored(&f),
        meta("second"),
        "an ignored schema keeps the old one"
    );

    let b = update(Some("{oops".into())).await;
    assert_eq!(b["error"], "invalid_metadata_format");

    let b = update(Some("{}".into())).await;
    assert_eq!(b["ok"], true);
    assert!(stored(&f).is_null(), "an empty object removes it");
}
