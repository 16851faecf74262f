//! Socket Mode against a real WebSocket client: frame shapes, acks, redelivery, refresh,
//! connection limits, single delivery, tickets and revocation.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn assert_hello(h: &Value, app_id: &str) {
    assert_eq!(h["type"], "hello");
    has(h, "num_connections", "number");
    has(h, "debug_info", "object");
    has(&h["debug_info"], "host", "string");
    has(&h["debug_info"], "build_number", "number");
    has(&h["debug_info"], "approximate_connection_time", "number");
    assert_eq!(h["connection_info"]["app_id"], app_id);
}

fn assert_envelope(e: &Value) {
    assert_eq!(e["type"], "events_api");
    has(e, "envelope_id", "string");
    assert_eq!(e["envelope_id"].as_str().unwrap().len(), 36);
    has(e, "payload", "object");
    assert_eq!(e["accepts_response_payload"], false);
    has(e, "retry_attempt", "number");
    has(e, "retry_reason", "string");
}

#[tokio::test]
async fn hello_envelope_ack_and_no_redelivery() {
    let f = fixture().await;
    let mut s = f.connect().await;
    let hello = s.next(SEC).await.expect("hello");
    assert_hello(&hello, &f.emu.app_id());
    assert_eq!(hello["num_connections"], 1);

    let ts = f
        .emu
        .post_message(&f.alice, &f.general, "hi <@U0BOGUS01>")
        .unwrap();
    let env = s.next(SEC).await.expect("envelope");
    assert_envelope(&env);
    assert_eq!(env["retry_attempt"], 0);
    assert_eq!(env["retry_reason"], "");
    assert_eq!(env["payload"]["event"]["ts"], ts.as_str());
    s.ack(&env).await;

    // Well past the 300 ms ack timeout: nothing comes again.
    assert!(s.next_event(Duration::from_millis(900)).await.is_none());
    let acks = f.emu.acks();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].envelope_id, env["envelope_id"].as_str().unwrap());
    assert_eq!(
        acks[0].event_id.as_deref(),
        env["payload"]["event_id"].as_str()
    );
    assert!(acks[0].latency < Duration::from_secs(1));
    assert_eq!(f.emu.deliveries().len(), 1);
}

#[tokio::test]
async fn missing_ack_is_redelivered_with_retry_attempt_1() {
    let f = fixture().await;
    let mut s = f.connect().await;
    s.next(SEC).await.expect("hello");
    f.emu.post_message(&f.alice, &f.general, "one").unwrap();
    let first = s.next_event(SEC).await.unwrap();
    let retry = s
        .next_event(SEC)
        .await
        .expect("redelivery after the ack timeout");
    assert_envelope(&retry);
    assert_eq!(retry["retry_attempt"], 1);
    assert_eq!(retry["retry_reason"], "timeout");
    assert_eq!(retry["payload"]["event_id"], first["payload"]["event_id"]);
    assert_ne!(retry["envelope_id"], first["envelope_id"]);
    s.ack(&retry).await;
    assert!(s.next_event(Duration::from_millis(700)).await.is_none());
    assert_eq!(f.emu.acks()[0].retry_attempt, 1);
}

#[tokio::test]
async fn all_three_ack_forms_are_accepted() {
    let f = fixture().await;
    let mut s = f.connect().await;
    s.next(SEC).await.unwrap();
    for form in 0..3 {
        f.emu.post_message(&f.alice, &f.general, "x").unwrap();
        let env = s.next_event(SEC).await.unwrap();
        let id = env["envelope_id"].clone();
        let ack = match form {
            0 => json!({"envelope_id": id}),
            1 => json!({"envelope_id": id, "payload": {}}),
            _ => json!({"envelope_id": id, "payload": {"text": "I got it!"}}),
        };
        s.send(ack).await;
    }
    assert!(f.emu.wait_for_acks(3, SEC).await.is_some());
    assert!(s.next_event(Duration::from_millis(700)).await.is_none());
    assert_eq!(f.emu.acks()[2].payload, Some(json!({"text": "I got it!"})));
}

#[tokio::test]
async fn drop_acks_forces_redelivery_then_gives_up() {
    let f = fixture().await;
    f.emu.set_max_retries(2);
    f.emu.drop_acks(true);
    let mut s = f.connect().await;
    s.next(SEC).await.unwrap();
    f.emu.post_message(&f.alice, &f.general, "x").unwrap();
    for attempt in 0..3 {
        let env = s.next_event(SEC).await.unwrap();
        assert_eq!(env["retry_attempt"], attempt);
        s.ack(&env).await;
    }
    assert!(s.next_event(Duration::from_millis(700)).await.is_none());
    assert!(f.emu.events()[0].given_up);
    assert!(f.emu.acks().is_empty());
    assert_eq!(f.emu.all_acks().len(), 3);
}

#[tokio::test]
async fn redeliver_knob_resends_an_acked_event() {
    let f = fixture().await;
    let mut s = f.connect().await;
    s.next(SEC).await.unwrap();
    f.emu.post_message(&f.alice, &f.general, "x").unwrap();
    let env = s.next_event(SEC).await.unwrap();
    s.ack(&env).await;
    f.emu.wait_for_acks(1, SEC).await.unwrap();
    assert!(
        f.emu
            .redeliver(env["payload"]["event_id"].as_str().unwrap())
    );
    let again = s.next_event(SEC).await.unwrap();
    assert_eq!(again["payload"]["event_id"], env["payload"]["event_id"]);
    assert_eq!(again["retry_attempt"], 1);
}

#[tokio::test]
async fn tickets_are_single_use_and_token_must_be_in_header() {
    let f = fixture().await;
    let url = f.open_url().await;
    assert!(url.starts_with("ws://127.0.0.1:"));
    assert!(url.contains("/link/?ticket="));
    assert!(url.contains(&format!("app_id={}", f.emu.app_id())));
    let _s = Sock::connect(&url).await.expect("first use");
    assert!(Sock::connect(&url).await.is_err(), "reused ticket refused");

    // Token as a POST parameter is not accepted.
    let app = f.emu.app_token();
    let r = f
        .api_token("apps.connections.open", None, &[("token", &app)])
        .await;
    assert_eq!(r.body["ok"], false);
    // The bot token is the wrong kind.
    let r = f.api("apps.connections.open", &[]).await;
    assert_eq!(r.body["error"], "not_allowed_token_type");
    // And the app token cannot call bot methods.
    let r = f.api_token("auth.test", Some(&app), &[]).await;
    assert_eq!(r.body["error"], "not_allowed_token_type");
}

#[tokio::test]
async fn each_event_goes_to_exactly_one_connection() {
    let f = fixture().await;
    // The sockets are drained one after another: no ack may time out meanwhile (a
    // redelivery to another socket is right, but not what this checks).
    f.emu.set_ack_timeout(Duration::from_secs(60));
    let mut socks = Vec::new();
    for _ in 0..3 {
        let mut s = f.connect().await;
        s.next(SEC).await.unwrap();
        socks.push(s);
    }
    assert_eq!(f.emu.connection_count(), 3);
    for i in 0..6 {
        f.emu
            .post_message(&f.alice, &f.general, &format!("m{i}"))
            .unwrap();
    }
    let mut seen = Vec::new();
    for s in socks.iter_mut() {
        while let Some(env) = s.next_event(Duration::from_millis(150)).await {
            s.ack(&env).await;
            seen.push(env["payload"]["event_id"].as_str().unwrap().to_string());
        }
    }
    let mut uniq = seen.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(seen.len(), uniq.len(), "no event delivered twice");
    // 6 messages; each is one event (no threads here).
    assert_eq!(uniq.len(), 6);
}

#[tokio::test]
async fn refresh_requested_keeps_old_socket_briefly_and_loses_nothing() {
    let f = fixture().await;
    let mut old = f.connect().await;
    old.next(SEC).await.unwrap();
    f.emu.post_message(&f.alice, &f.general, "pending").unwrap();
    let pending = old.next_event(SEC).await.unwrap(); // never acked on the old socket
    assert_eq!(f.emu.disconnect_all("refresh_requested"), 1);
    let d = old.next(SEC).await.unwrap();
    assert_eq!(d["type"], "disconnect");
    assert_eq!(d["reason"], "refresh_requested");
    has(&d["debug_info"], "host", "string");

    // New socket first, as a good client does; new events go only there.
    let mut new = f.connect().await;
    let hello = new.next(SEC).await.unwrap();
    assert_eq!(hello["num_connections"], 2);
    f.emu.post_message(&f.alice, &f.general, "after").unwrap();
    let mut got = Vec::new();
    while let Some(env) = new.next_event(Duration::from_millis(1500)).await {
        new.ack(&env).await;
        got.push(env);
        if got.len() == 2 {
            break;
        }
    }
    // The old socket closes after the grace period.
    assert!(old.next(SEC).await.is_none());
    assert!(old.closed);
    assert!(f.emu.wait_for_connections(1, SEC).await);
    let ids: Vec<&Value> = got.iter().map(|e| &e["payload"]["event_id"]).collect();
    assert!(
        ids.contains(&&pending["payload"]["event_id"]),
        "pending event redelivered"
    );
    let redelivered = got
        .iter()
        .find(|e| e["payload"]["event_id"] == pending["payload"]["event_id"])
        .unwrap();
    assert_eq!(redelivered["retry_attempt"], 1);
}

#[tokio::test]
async fn eleventh_connection_gets_too_many_websockets() {
    let f = fixture().await;
    let mut socks = Vec::new();
    for _ in 0..10 {
        let mut s = f.connect().await;
        s.next(SEC).await.unwrap();
        socks.push(s);
    }
    let mut extra = f.connect().await;
    let hello = extra.next(SEC).await.unwrap();
    assert_eq!(hello["num_connections"], 11);
    let d = extra.next(SEC).await.unwrap();
    assert_eq!(d["type"], "disconnect");
    assert_eq!(d["reason"], "too_many_websockets");
    assert!(extra.next(SEC).await.is_none());
    assert!(f.emu.wait_for_connections(10, SEC).await);
    for s in socks.iter_mut() {
        assert!(s.next(Duration::from_millis(50)).await.is_none());
        assert!(!s.closed);
    }
}

#[tokio::test]
async fn server_sends_websocket_pings() {
    let f = fixture_with(|c| c.socket.ping_interval = Duration::from_millis(100)).await;
    let mut s = f.connect().await;
    s.next(SEC).await.unwrap();
    assert!(s.next(Duration::from_millis(450)).await.is_none());
    assert!(s.pings >= 2, "got {} pings", s.pings);
}

#[tokio::test]
async fn revoking_the_app_token_closes_sockets() {
    let f = fixture().await;
    let mut s = f.connect().await;
    s.next(SEC).await.unwrap();
    f.emu.revoke_app_token();
    assert!(s.next(SEC).await.is_none());
    assert!(s.closed);
    let app = f.emu.app_token();
    let r = f.api_token("apps.connections.open", Some(&app), &[]).await;
    assert_eq!(r.body["error"], "invalid_auth");
}

#[tokio::test]
async fn events_wait_for_a_connection() {
    let f = fixture().await;
    f.emu
        .post_message(&f.alice, &f.general, "while offline")
        .unwrap();
    let mut s = f.connect().await;
    assert_eq!(s.next(SEC).await.unwrap()["type"], "hello");
    let env = s.next_event(SEC).await.unwrap();
    assert_eq!(env["payload"]["event"]["text"], "while offline");
}

#[tokio::test]
async fn oversized_acks_are_dropped() {
    let f = fixture().await;
    let mut s = f.connect().await;
    s.next(SEC).await.unwrap();
    f.emu.post_message(&f.alice, &f.general, "x").unwrap();
    let env = s.next_event(SEC).await.unwrap();
    let big = "x".repeat(21 * 1024);
    s.send(json!({"envelope_id": env["envelope_id"], "payload": {"text": big}}))
        .await;
    let again = s.next_event(SEC).await.expect("redelivered");
    assert_eq!(again["retry_attempt"], 1);
}

/// Reads `s` until the connection ends: true if the server sent a close frame, false if the
/// connection just went away. Any other frame is a failure.
async fn ends_with_close_frame(s: &mut Sock) -> bool {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match tokio::time::timeout(SEC, s.ws.next()).await.expect("ends") {
            Some(Ok(Message::Close(_))) => return true,
            Some(Ok(Message::Text(t))) => panic!("unexpected frame {t}"),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return false,
        }
    }
}

#[tokio::test]
async fn close_sockets_drops_connections_and_the_app_can_come_back() {
    let f = fixture().await;
    let mut a = f.connect().await;
    let mut b = f.connect().await;
    a.next(SEC).await.unwrap();
    b.next(SEC).await.unwrap();
    f.emu.close_sockets();
    // Like a network drop: no `disconnect` frame, no close frame.
    assert!(!ends_with_close_frame(&mut a).await);
    assert!(!ends_with_close_frame(&mut b).await);
    assert!(f.emu.wait_for_connections(0, SEC).await);

    // A fault on apps.connections.open keeps the app out until it is cleared.
    f.emu
        .fault("apps.connections.open")
        .forever()
        .http_status(503);
    let app = f.emu.app_token();
    let r = f.api_token("apps.connections.open", Some(&app), &[]).await;
    assert_eq!(r.status, 503);
    f.emu.clear_faults();
    let mut c = f.connect().await;
    assert_eq!(c.next(SEC).await.unwrap()["num_connections"], 1);
    f.emu.post_message(&f.alice, &f.general, "back").unwrap();
    let env = c.next_event(SEC).await.unwrap();
    assert_eq!(env["payload"]["event"]["text"], "back");
}

#[tokio::test]
async fn events_generated_while_disconnected_can_be_dropped() {
    let f = fixture().await;
    f.emu.drop_events_while_disconnected(true);
    let mut s = f.connect().await;
    s.next(SEC).await.unwrap();
    f.emu
        .post_message(&f.alice, &f.general, "in flight")
        .unwrap();
    let in_flight = s.next_event(SEC).await.unwrap(); // never acked on this socket
    f.emu.close_sockets();
    assert!(f.emu.wait_for_connections(0, SEC).await);

    let ts = f
        .emu
        .post_message(&f.alice, &f.general, "while offline")
        .unwrap();
    let dropped = f.emu.dropped_events();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].payload["event"]["ts"], ts.as_str());
    let lost = dropped[0].event_id.clone();
    assert!(f.emu.events().iter().all(|e| e.event_id != lost));
    assert_eq!(f.emu.pending_events(), 1, "only the in-flight event waits");

    // After reconnecting: the in-flight event is redelivered, the dropped one never comes.
    let mut s = f.connect().await;
    s.next(SEC).await.unwrap();
    f.emu
        .post_message(&f.alice, &f.general, "back online")
        .unwrap();
    let mut got = Vec::new();
    while !got
        .iter()
        .any(|e: &Value| e["event"]["text"] == "back online")
    {
        let env = s.next_event(SEC).await.expect("an event");
        s.ack(&env).await;
        got.push(env["payload"].clone());
    }
    assert!(
        got.iter()
            .any(|e| e["event_id"] == in_flight["payload"]["event_id"])
    );
    assert!(got.iter().all(|e| e["event_id"] != lost.as_str()));
    assert!(f.emu.deliveries().iter().all(|d| d.event_id != lost));
    assert_eq!(f.emu.dropped_events().len(), 1);
}
