//! Scripted Web API faults: per-channel scope, bare HTTP statuses, "forever", and faults that
//! apply the call and then fail or stall its response.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use slack_emulator::FaultBody;

#[tokio::test]
async fn channel_scoped_rate_limit_and_error_only_hit_that_channel() {
    let f = fixture().await;
    f.emu
        .rate_limit_channel("chat.postMessage", &f.general, 1, 4);
    // Scoped by name; calls naming the channel by ID must match too.
    f.emu
        .fail_next_channel("chat.postMessage", "#random", 1, "is_archived");

    let r = f
        .api("chat.postMessage", &[("channel", &f.secret), ("text", "x")])
        .await;
    assert_eq!(r.body["ok"], true, "other channels are untouched");

    let r = f
        .api(
            "chat.postMessage",
            &[("channel", &f.general), ("text", "x")],
        )
        .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.headers["retry-after"], "4");
    let r = f
        .api(
            "chat.postMessage",
            &[("channel", &f.general), ("text", "x")],
        )
        .await;
    assert_eq!(r.body["ok"], true, "the scoped fault counted down");

    let r = f
        .api("chat.postMessage", &[("channel", &f.random), ("text", "x")])
        .await;
    assert_eq!(r.body, json!({"ok": false, "error": "is_archived"}));
    assert_eq!(
        f.emu.messages(&f.random).len(),
        0,
        "a failed call posts nothing"
    );

    // A user ID stands for the DM with them.
    f.emu
        .fault("chat.postMessage")
        .channel(&f.alice)
        .error("fatal_error");
    let r = f
        .api("chat.postMessage", &[("channel", &f.dm), ("text", "x")])
        .await;
    assert_eq!(r.body["error"], "fatal_error");

    let labels: Vec<_> = f
        .emu
        .calls("chat.postMessage")
        .into_iter()
        .map(|c| c.fault)
        .collect();
    assert_eq!(
        labels,
        vec![
            None,
            Some("rate_limit:4".into()),
            None,
            Some("error:is_archived".into()),
            Some("error:fatal_error".into()),
        ]
    );
}

#[tokio::test]
async fn http_status_fault_answers_without_running_the_method() {
    let f = fixture().await;
    f.emu.fail_status("chat.postMessage", 2, 503);
    let before = f.emu.messages(&f.general).len();
    for _ in 0..2 {
        let r = f
            .api(
                "chat.postMessage",
                &[("channel", &f.general), ("text", "x")],
            )
            .await;
        assert_eq!(r.status, 503);
        assert!(
            r.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let raw = r.body["_raw"].as_str().expect("not JSON");
        assert!(raw.contains("503 Service Unavailable"), "{raw}");
    }
    assert_eq!(f.emu.messages(&f.general).len(), before, "nothing posted");
    let r = f
        .api(
            "chat.postMessage",
            &[("channel", &f.general), ("text", "x")],
        )
        .await;
    assert_eq!(r.body["ok"], true);

    let calls = f.emu.calls("chat.postMessage");
    assert_eq!(calls[0].status, 503);
    assert_eq!(calls[0].fault.as_deref(), Some("http_status:503"));
    assert!(calls[0].applied_response.is_none());

    // Empty body, scoped to one channel.
    f.emu
        .fault("reactions.add")
        .channel(&f.general)
        .body(FaultBody::Empty)
        .http_status(502);
    let ts = f.emu.post_message(&f.alice, &f.general, "hi").unwrap();
    let r = f
        .api(
            "reactions.add",
            &[
                ("channel", &f.general),
                ("timestamp", &ts),
                ("name", "tada"),
            ],
        )
        .await;
    assert_eq!(r.status, 502);
    assert_eq!(r.body["_raw"], "");
    assert!(r.headers.get("content-type").is_none());
    assert!(f.emu.message(&f.general, &ts).unwrap()["reactions"].is_null());
}

#[tokio::test]
async fn forever_faults_last_until_cleared() {
    let f = fixture().await;
    f.emu.fault("team.info").forever().http_status(500);
    f.emu
        .fault("auth.test")
        .times(slack_emulator::FOREVER)
        .error("service_unavailable");
    for _ in 0..25 {
        assert_eq!(f.api("team.info", &[]).await.status, 500);
        assert_eq!(
            f.api("auth.test", &[]).await.body["error"],
            "service_unavailable"
        );
    }
    let listed = f.emu.faults();
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .all(|x| x.remaining == slack_emulator::FOREVER)
    );
    f.emu.clear_faults();
    assert!(f.emu.faults().is_empty());
    assert_eq!(f.api("team.info", &[]).await.body["ok"], true);
    assert_eq!(f.api("auth.test", &[]).await.body["ok"], true);
}

#[tokio::test]
async fn apply_then_fail_posts_emits_and_answers_5xx() {
    let f = fixture().await;
    let mut sock = f.connect().await;
    sock.next(SEC).await.unwrap(); // hello
    f.emu.apply_then_fail("chat.postMessage", 1, 503);
    let r = f
        .api(
            "chat.postMessage",
            &[("channel", &f.general), ("text", "applied anyway")],
        )
        .await;
    assert_eq!(r.status, 503);
    assert!(r.body["_raw"].as_str().unwrap().contains("503"));

    let msgs = f.emu.messages(&f.general);
    let posted = msgs.last().unwrap();
    assert_eq!(posted["text"], "applied anyway");
    let env = sock.next_event(LONG).await.expect("message event");
    assert_eq!(env["payload"]["event"]["text"], "applied anyway");
    assert_eq!(env["payload"]["event"]["ts"], posted["ts"]);

    let call = &f.emu.calls("chat.postMessage")[0];
    assert_eq!(call.status, 503);
    assert_eq!(call.fault.as_deref(), Some("apply_then_status:503"));
    let real = call.applied_response.as_ref().unwrap();
    assert_eq!(real["ok"], true);
    assert_eq!(real["ts"], posted["ts"]);

    // Any method: update, react, delete each apply and then fail.
    let ts = posted["ts"].as_str().unwrap().to_string();
    f.emu.apply_then_fail("chat.update", 1, 500);
    f.emu.apply_then_fail("reactions.add", 1, 502);
    f.emu.apply_then_fail("chat.delete", 1, 504);
    let r = f
        .api(
            "chat.update",
            &[("channel", &f.general), ("ts", &ts), ("text", "edited")],
        )
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(f.emu.message(&f.general, &ts).unwrap()["text"], "edited");
    let r = f
        .api(
            "reactions.add",
            &[
                ("channel", &f.general),
                ("timestamp", &ts),
                ("name", "tada"),
            ],
        )
        .await;
    assert_eq!(r.status, 502);
    assert_eq!(
        f.emu.message(&f.general, &ts).unwrap()["reactions"][0]["name"],
        "tada"
    );
    let r = f
        .api("chat.delete", &[("channel", &f.general), ("ts", &ts)])
        .await;
    assert_eq!(r.status, 504);
    assert!(f.emu.message(&f.general, &ts).is_none());
}

#[tokio::test]
async fn apply_then_fail_can_be_scoped_to_a_channel() {
    let f = fixture().await;
    f.emu
        .fault("chat.postMessage")
        .channel("general")
        .apply_then_status(503);
    let r = f
        .api("chat.postMessage", &[("channel", &f.random), ("text", "r")])
        .await;
    assert_eq!(r.status, 200);
    let r = f
        .api(
            "chat.postMessage",
            &[("channel", &f.general), ("text", "g")],
        )
        .await;
    assert_eq!(r.status, 503);
    assert_eq!(f.emu.messages(&f.general).last().unwrap()["text"], "g");
}

#[tokio::test]
async fn apply_then_delay_records_first_and_holds_no_lock() {
    let f = fixture().await;
    f.emu
        .apply_then_delay("chat.postMessage", 1, Duration::from_millis(1500));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = impatient
        .post(format!("{}/chat.postMessage", f.emu.api_url()))
        .bearer_auth(f.emu.bot_token())
        .form(&[("channel", f.general.as_str()), ("text", "slow")])
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(1400));
    // The client gave up, but the call happened and is already recorded.
    let calls = f.emu.calls("chat.postMessage");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].fault.as_deref(), Some("apply_then_delay:1500ms"));
    assert_eq!(calls[0].response["ok"], true);
    assert_eq!(f.emu.messages(&f.general).last().unwrap()["text"], "slow");

    // A patient client gets the real response after the delay, and other calls (and the
    // workspace) stay usable meanwhile.
    f.emu
        .apply_then_delay("chat.postMessage", 1, Duration::from_millis(700));
    let started = Instant::now();
    let slow = {
        let http = f.http.clone();
        let url = format!("{}/chat.postMessage", f.emu.api_url());
        let token = f.emu.bot_token();
        let channel = f.general.clone();
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .form(&[("channel", channel.as_str()), ("text", "slow 2")])
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        })
    };
    f.emu
        .wait_for_calls("chat.postMessage", 2, SEC)
        .await
        .expect("recorded before the delay ends");
    assert!(started.elapsed() < Duration::from_millis(600));
    let h = f
        .api("conversations.history", &[("channel", &f.general)])
        .await;
    assert_eq!(h.body["ok"], true);
    f.emu
        .post_message(&f.alice, &f.general, "meanwhile")
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "nothing waited"
    );
    let body = slow.await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert_eq!(body["ok"], true);
    assert_eq!(body["message"]["text"], "slow 2");
}

/// Delays are tokio sleeps: under a paused clock an hour-long hold passes at once (a blocking
/// sleep would hang here, and one holding a lock would stall the concurrent call).
#[tokio::test(start_paused = true)]
async fn apply_then_delay_follows_the_tokio_clock() {
    let f = fixture().await;
    f.emu
        .apply_then_delay("chat.postMessage", 1, Duration::from_secs(3600));
    let virtual_start = tokio::time::Instant::now();
    let real_start = Instant::now();
    let args = [("channel", f.general.as_str()), ("text", "later")];
    let (slow, quick) = tokio::join!(f.api("chat.postMessage", &args), async {
        f.emu
            .wait_for_calls("chat.postMessage", 1, LONG)
            .await
            .unwrap();
        f.api("auth.test", &[]).await
    });
    assert_eq!(slow.body["ok"], true);
    assert_eq!(quick.body["ok"], true);
    assert!(virtual_start.elapsed() >= Duration::from_secs(3600));
    assert!(real_start.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn history_tier1_allows_one_call_per_interval_per_method() {
    // Without the configured page cap, Tier 1 still caps pages at 15.
    let f = fixture_with(|c| c.history_limit_cap = None).await;
    let root = f.emu.post_message(&f.alice, &f.general, "root").unwrap();
    for i in 0..20 {
        let n = i.to_string();
        f.emu.post_message(&f.alice, &f.general, &n).unwrap();
        f.emu.reply(&f.bob, &f.general, &root, &n).unwrap();
    }
    f.emu.set_history_tier1(Some(Duration::from_secs(2)));
    let history = [("channel", f.general.as_str()), ("limit", "100")];
    let r = f.api("conversations.history", &history).await;
    assert_eq!(r.body["ok"], true);
    assert_eq!(r.body["messages"].as_array().unwrap().len(), 15);
    assert_eq!(r.body["has_more"], true);
    let r = f.api("conversations.history", &history).await;
    assert_eq!(r.status, 429);
    // Whole seconds, rounded up: the 2 s interval has barely begun.
    let history_wait = r.headers["retry-after"].to_str().unwrap().to_string();
    assert!(
        ["1", "2"].contains(&history_wait.as_str()),
        "{history_wait}"
    );
    assert_eq!(r.body, json!({"ok": false, "error": "ratelimited"}));

    // conversations.replies has its own allowance; the root tops every page.
    let replies = [
        ("channel", f.general.as_str()),
        ("ts", root.as_str()),
        ("limit", "100"),
    ];
    let r = f.api("conversations.replies", &replies).await;
    assert_eq!(r.body["ok"], true);
    let page = r.body["messages"].as_array().unwrap();
    assert_eq!(page.len(), 15);
    assert_eq!(page[0]["ts"], root.as_str());
    let cursor = r.body["response_metadata"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let next = [replies[0], replies[1], ("cursor", cursor.as_str())];
    let r = f.api("conversations.replies", &next).await;
    assert_eq!(r.status, 429);
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let r = f.api("conversations.replies", &next).await;
    assert_eq!(r.body["ok"], true, "accepted after Retry-After");
    let page = r.body["messages"].as_array().unwrap();
    assert_eq!(page.len(), 1 + 20 - 14);
    assert_eq!(page[0]["ts"], root.as_str());

    let seen = |m: &str| -> Vec<(u16, Option<String>)> {
        f.emu
            .calls(m)
            .into_iter()
            .map(|c| (c.status, c.fault))
            .collect()
    };
    assert_eq!(
        seen("conversations.history"),
        [
            (200, None),
            (429, Some(format!("rate_limit:{history_wait}")))
        ]
    );
    assert_eq!(
        seen("conversations.replies"),
        [
            (200, None),
            (429, Some(format!("rate_limit:{wait}"))),
            (200, None)
        ]
    );
}

#[tokio::test]
async fn history_tier1_sub_second_interval_and_off() {
    let f = fixture().await;
    f.emu.set_history_tier1(Some(Duration::from_millis(300)));
    let history = [("channel", f.general.as_str())];
    assert_eq!(f.api("conversations.history", &history).await.status, 200);
    let r = f.api("conversations.history", &history).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.headers["retry-after"], "1", "rounded up, never 0");
    // Other methods are not limited.
    for _ in 0..3 {
        assert_eq!(f.api("conversations.info", &history).await.status, 200);
    }
    f.emu.set_history_tier1(None);
    for _ in 0..3 {
        assert_eq!(f.api("conversations.history", &history).await.status, 200);
    }
}
