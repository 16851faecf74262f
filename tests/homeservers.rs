//! The rows of `reference/homeservers.md` checked against the real servers, on Synapse and on
//! tuwunel (`synapse::…`, `tuwunel::…`): what each homeserver does where they differ, asserted
//! as observed, next to what the bridge does about it. Where the vendored tuwunel (1.4.6)
//! behaves otherwise than the 1.7+ sources the reference was read from, the comment says so.
//!
//! The appservice here is a recorder, not the bridge: it answers every homeserver call and
//! keeps it, so a test can see what the homeserver sent (and how it authenticated).
//!
//! Every difference found, and where it is covered (`synapse::` / `tuwunel::` variants):
//! - bot user not created for a config-file registration (tuwunel < 1.6.0): every tuwunel
//!   test (the bridge registers it), `matrix.rs` `a_bot_user_the_homeserver_did_not_create_is_explained`;
//! - admin-room registration, effective without a restart: `matrix.rs`
//!   `an_admin_room_registration_works_without_a_restart`, testkit `tests/tuwunel.rs`;
//! - hs_token in the query, no user query: `homeserver_calls_and_the_user_query` here;
//! - every event to every appservice (tuwunel < 1.5.1 per the reference; not seen on 1.4.6):
//!   `events_of_rooms_the_appservice_is_not_in`;
//! - no ephemeral events: `ephemeral_events_are_an_extra`;
//! - whoami of unknown ghosts, uppercase localparts, unknown tokens:
//!   `registration_whoami_and_token_answers`;
//! - `?ts=`, txnId scope across rooms: `timestamps_and_transaction_ids`;
//! - legacy vs authenticated media, `m.upload.size`: `media_endpoints`, `matrix.rs`
//!   `ghosts_rooms_messages_edits_reactions_redactions_and_media`;
//! - rate limits: `rate_limits_on_appservice_users`, `matrix.rs`
//!   `rate_limited_sends_are_retried_until_they_pass` (Synapse);
//! - held transactions after a bridge outage (no retry timer, no flush on ping) and the
//!   ping's error: `matrix.rs` `a_message_reaches_the_bridge_layer_exactly_once_through_errors_and_outages`,
//!   `a_homeserver_that_cannot_reach_the_bridge_is_diagnosed`;
//! - duplicate annotations accepted: `matrix.rs` `ghosts_rooms_messages_edits_reactions_redactions_and_media`;
//! - the errcode repeated in the error text: `src/matrix/client.rs` unit test.

mod support;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{Request, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use support::bridge::{DOMAIN, Env, EnvOptions, restartable_port};
use testkit::{HomeserverKind, TestClient, enc};

on_both_homeservers!(
    homeserver_calls_and_the_user_query,
    events_of_rooms_the_appservice_is_not_in,
    ephemeral_events_are_an_extra,
    registration_whoami_and_token_answers,
    timestamps_and_transaction_ids,
    media_endpoints,
    rate_limits_on_appservice_users,
);

/// One call the homeserver made to the appservice.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    query: String,
    bearer: Option<String>,
    body: Value,
}

#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<Call>>,
}

impl Recorder {
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Waits until a transaction carried an event with this body.
    async fn wait_for_body(&self, body: &str) -> Call {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(c) = self.calls().into_iter().find(|c| {
                c.body["events"]
                    .as_array()
                    .is_some_and(|es| es.iter().any(|e| e["content"]["body"] == body))
            }) {
                return c;
            }
            assert!(
                Instant::now() < deadline,
                "no transaction carried {body:?}; calls: {:?}",
                self.calls()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn record(State(r): State<Arc<Recorder>>, req: Request) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let bytes = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let user_query = path.starts_with("/_matrix/app/v1/users/");
    r.calls.lock().unwrap().push(Call {
        method,
        path,
        query,
        bearer,
        body,
    });
    if user_query {
        // "No such user": the homeserver must not create it on our behalf.
        return (
            StatusCode::NOT_FOUND,
            "{\"errcode\":\"M_NOT_FOUND\",\"error\":\"no such ghost\"}",
        )
            .into_response();
    }
    (StatusCode::OK, "{}").into_response()
}

/// A homeserver whose registration points at a recorder instead of the bridge.
async fn recorded(hs: HomeserverKind) -> (Env, Arc<Recorder>, TestClient) {
    let port = restartable_port();
    let recorder = Arc::new(Recorder::default());
    let app = Router::new().fallback(record).with_state(recorder.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    // A tight message limit on Synapse, so `rate_limited: false` is what lets ghosts burst.
    let mut synapse_extra = serde_json::Map::new();
    synapse_extra.insert(
        "rc_message".into(),
        json!({"per_second": 0.1, "burst_count": 10}),
    );
    let env = Env::start_with(EnvOptions {
        homeserver: hs,
        registration_url_port: Some(port),
        synapse_extra,
        ..EnvOptions::default()
    })
    .await;
    let bot = appservice(&env, None);
    // The bridge registers its bot at start; so do we (tuwunel 1.4.6 does not create it).
    register(&bot, "slackbot").await.unwrap_or_default();
    (env, recorder, bot)
}

fn as_token(env: &Env) -> String {
    env.config()
        .appservice
        .as_token
        .unwrap()
        .expose()
        .to_owned()
}

/// A client with the as_token, masquerading as `user` when given.
fn appservice(env: &Env, user: Option<&str>) -> TestClient {
    let bot = format!("@slackbot:{DOMAIN}");
    TestClient::new(env.hs.base_url(), user.unwrap_or(&bot), as_token(env))
}

/// `POST /register` with `m.login.application_service`; the errcode when refused.
async fn register(client: &TestClient, localpart: &str) -> Result<(), String> {
    client
        .post(
            "/_matrix/client/v3/register",
            &json!({"type": "m.login.application_service", "username": localpart, "inhibit_login": true}),
        )
        .await
        .map(drop)
        .map_err(|e| e.errcode().unwrap_or("?").to_owned())
}

fn masq(path: &str, user: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}user_id={}", enc(user))
}

/// hs_token: Synapse sends it as a Bearer header; tuwunel as `?access_token=` (and, in 1.7+,
/// the header too). The bridge accepts both (tests/matrix.rs, appservice API). User query:
/// Synapse asks `GET /_matrix/app/v1/users/{id}` when a user invites an unknown ghost; tuwunel
/// never asks. The bridge registers every ghost before inviting or mentioning it, so it never
/// depends on the query.
async fn homeserver_calls_and_the_user_query(hs: HomeserverKind) {
    let (env, recorder, bot) = recorded(hs).await;
    let hs_token = env
        .config()
        .appservice
        .hs_token
        .unwrap()
        .expose()
        .to_owned();
    let alice = env.hs.register_unique_user("alice").await.unwrap();
    let room = alice.create_room().await.unwrap();
    alice.invite(&room, bot.user_id()).await.unwrap();
    bot.join(&room).await.unwrap();
    let nobody = format!("@slack_t9-nobody:{DOMAIN}");
    // Whatever the invite's outcome (Synapse lets it through after the query's 404).
    let _ = alice.invite(&room, &nobody).await;
    alice.send_text(&room, "after the invite").await.unwrap();
    let txn = recorder.wait_for_body("after the invite").await;
    assert_eq!(txn.method, "PUT");
    match hs {
        HomeserverKind::Synapse => {
            assert_eq!(txn.bearer.as_deref(), Some(hs_token.as_str()), "{txn:?}");
        }
        HomeserverKind::Tuwunel => {
            assert!(
                txn.query.contains(&format!("access_token={hs_token}")),
                "tuwunel puts the hs_token in the query: {txn:?}"
            );
        }
    }
    let queried: Vec<Call> = recorder
        .calls()
        .into_iter()
        .filter(|c| c.path.starts_with("/_matrix/app/v1/users/"))
        .collect();
    match hs {
        HomeserverKind::Synapse => {
            assert!(
                queried.iter().any(|c| c.path.contains("slack_t9-nobody")),
                "Synapse asked about the unknown ghost: {queried:?}"
            );
        }
        HomeserverKind::Tuwunel => {
            assert!(queried.is_empty(), "tuwunel never queries: {queried:?}");
        }
    }
    // What the bridge does instead: register first, then invite; that works on both.
    let ghost = format!("@slack_t9-somebody:{DOMAIN}");
    register(&bot, "slack_t9-somebody").await.unwrap();
    bot.invite(&room, &ghost).await.unwrap();
    appservice(&env, Some(&ghost))
        .post(
            &masq(
                &format!("/_matrix/client/v3/rooms/{}/join", enc(&room)),
                &ghost,
            ),
            &json!({}),
        )
        .await
        .unwrap();
    assert!(alice.joined_members(&room).await.unwrap().contains(&ghost));
}

/// Only events of rooms the appservice's users are in reach it. The reference says tuwunel
/// before 1.5.1 sent every event to every appservice; the vendored 1.4.6 does not, here.
async fn events_of_rooms_the_appservice_is_not_in(hs: HomeserverKind) {
    let (env, recorder, bot) = recorded(hs).await;
    let alice = env.hs.register_unique_user("alice").await.unwrap();
    let alone = alice.create_room().await.unwrap();
    alice
        .send_text(&alone, "nobody of the bridge here")
        .await
        .unwrap();
    let shared = alice.create_room().await.unwrap();
    alice.invite(&shared, bot.user_id()).await.unwrap();
    bot.join(&shared).await.unwrap();
    alice.send_text(&shared, "the bot is here").await.unwrap();
    recorder.wait_for_body("the bot is here").await;
    let leaked = recorder.calls().iter().any(|c| {
        c.body["events"].as_array().is_some_and(|es| {
            es.iter()
                .any(|e| e["content"]["body"] == "nobody of the bridge here")
        })
    });
    assert!(!leaked, "{hs} sent an unrelated room's event");
}

/// `receive_ephemeral`: Synapse pushes typing notifications to the appservice; tuwunel 1.4.6
/// pushes none (typing and receipts only from 1.6.1, continuwuity never). The bridge reads no
/// ephemeral event for anything essential.
async fn ephemeral_events_are_an_extra(hs: HomeserverKind) {
    let (env, recorder, bot) = recorded(hs).await;
    let alice = env.hs.register_unique_user("alice").await.unwrap();
    let room = alice.create_room().await.unwrap();
    alice.invite(&room, bot.user_id()).await.unwrap();
    bot.join(&room).await.unwrap();
    alice
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/typing/{}",
                enc(&room),
                enc(alice.user_id())
            ),
            &json!({"typing": true, "timeout": 30000}),
        )
        .await
        .unwrap();
    alice.send_text(&room, "typed this").await.unwrap();
    recorder.wait_for_body("typed this").await;
    let typing_seen = || {
        recorder.calls().iter().any(|c| {
            ["ephemeral", "de.sorunome.msc2409.ephemeral"]
                .iter()
                .any(|k| {
                    c.body[k]
                        .as_array()
                        .is_some_and(|es| es.iter().any(|e| e["type"] == "m.typing"))
                })
        })
    };
    match hs {
        HomeserverKind::Synapse => {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !typing_seen() {
                assert!(Instant::now() < deadline, "Synapse pushed no typing event");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        HomeserverKind::Tuwunel => {
            // The message went out after the typing notification; had 1.4.6 pushed EDUs, the
            // notification would have come with it or before.
            assert!(!typing_seen(), "{:?}", recorder.calls());
        }
    }
}

/// Ghost registration, `whoami` and tokens.
async fn registration_whoami_and_token_answers(hs: HomeserverKind) {
    let (env, _recorder, bot) = recorded(hs).await;
    // Registering twice: M_USER_IN_USE on both; the bridge counts it as success.
    register(&bot, "slack_t1-u1").await.unwrap();
    assert_eq!(
        register(&bot, "slack_t1-u1").await,
        Err("M_USER_IN_USE".into())
    );
    // An uppercase localpart: Synapse lets an appservice register it as it is (a user distinct
    // from the lowercase one), tuwunel lowercases it (the same user). The bridge's localparts
    // are lowercase (`slack_<team>-<user>` lowercased, tests in src/ids.rs), so both agree.
    assert_eq!(register(&bot, "slack_T1-UPPER").await, Ok(()));
    let lower = register(&bot, "slack_t1-upper").await;
    match hs {
        HomeserverKind::Synapse => assert_eq!(lower, Ok(()), "a second, distinct user"),
        HomeserverKind::Tuwunel => assert_eq!(lower, Err("M_USER_IN_USE".into())),
    }
    // whoami for a ghost nobody registered: Synapse 403, tuwunel 1.4.6 404 (1.7.1+: 200).
    // The bridge never uses whoami to decide whether a ghost exists.
    let err = appservice(&env, None)
        .get(&masq(
            "/_matrix/client/v3/account/whoami",
            &format!("@slack_t1-never:{DOMAIN}"),
        ))
        .await
        .unwrap_err();
    let expected = match hs {
        HomeserverKind::Synapse => (403, "M_FORBIDDEN"),
        HomeserverKind::Tuwunel => (404, "M_NOT_FOUND"),
    };
    assert_eq!(
        (err.status(), err.errcode()),
        (Some(expected.0), Some(expected.1)),
        "{err}"
    );
    // An unknown as_token: 401 M_UNKNOWN_TOKEN on both (the bridge's diagnosis: tests/matrix.rs).
    let stranger = TestClient::new(env.hs.base_url(), "", "not-a-token");
    let err = stranger.whoami().await.unwrap_err();
    assert_eq!(
        (err.status(), err.errcode()),
        (Some(401), Some("M_UNKNOWN_TOKEN")),
        "{err}"
    );
    let err = register(&stranger, "slack_t1-x").await.unwrap_err();
    assert_eq!(err, "M_UNKNOWN_TOKEN");
}

/// `?ts=` on send and state, and what a reused client txnId does. Synapse keys its txnId cache
/// by path (room included) and appservice; tuwunel by (user, device, txnId) with no room, so
/// the same id in another room returns the first room's event. The bridge's txn ids are unique
/// across the appservice (team, channel, ts, part).
async fn timestamps_and_transaction_ids(hs: HomeserverKind) {
    let (env, _recorder, bot) = recorded(hs).await;
    let ghost = format!("@slack_t1-ts:{DOMAIN}");
    register(&bot, "slack_t1-ts").await.unwrap();
    let as_ghost = appservice(&env, Some(&ghost));
    let mut rooms = Vec::new();
    for _ in 0..2 {
        let room = as_ghost
            .post(
                &masq("/_matrix/client/v3/createRoom", &ghost),
                &json!({"preset": "private_chat"}),
            )
            .await
            .unwrap()["room_id"]
            .as_str()
            .unwrap()
            .to_owned();
        rooms.push(room);
    }
    let send = |room: &str, txn: &str, ts: u64| {
        masq(
            &format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}?ts={ts}",
                enc(room)
            ),
            &ghost,
        )
    };
    let body = json!({"msgtype": "m.text", "body": "at a fixed time"});
    let first = as_ghost
        .put(&send(&rooms[0], "same-txn", 1_600_000_000_001), &body)
        .await
        .unwrap()["event_id"]
        .clone();
    let event = as_ghost
        .get(&masq(
            &format!(
                "/_matrix/client/v3/rooms/{}/event/{}",
                enc(&rooms[0]),
                enc(first.as_str().unwrap())
            ),
            &ghost,
        ))
        .await
        .unwrap();
    assert_eq!(event["origin_server_ts"], 1_600_000_000_001u64);
    // State with ?ts= too.
    let state = as_ghost
        .put(
            &masq(
                &format!(
                    "/_matrix/client/v3/rooms/{}/state/m.room.topic/?ts=1600000000002",
                    enc(&rooms[0])
                ),
                &ghost,
            ),
            &json!({"topic": "timed"}),
        )
        .await
        .unwrap()["event_id"]
        .clone();
    let event = as_ghost
        .get(&masq(
            &format!(
                "/_matrix/client/v3/rooms/{}/event/{}",
                enc(&rooms[0]),
                enc(state.as_str().unwrap())
            ),
            &ghost,
        ))
        .await
        .unwrap();
    assert_eq!(event["origin_server_ts"], 1_600_000_000_002u64);
    // The same txnId in the other room.
    let second = as_ghost
        .put(&send(&rooms[1], "same-txn", 1_600_000_000_003), &body)
        .await
        .unwrap()["event_id"]
        .clone();
    match hs {
        HomeserverKind::Synapse => assert_ne!(second, first, "a new event in the other room"),
        HomeserverKind::Tuwunel => {
            assert_eq!(second, first, "tuwunel returns the first room's event")
        }
    }
}

/// Media: upload on v3, download through authenticated media with the as_token on both;
/// tuwunel answers the legacy download 403 (`allow_legacy_media = false`), Synapse 404 for media
/// uploaded since authenticated media is on. `m.upload.size` is in the v1 config on both.
async fn media_endpoints(hs: HomeserverKind) {
    let (env, _recorder, _bot) = recorded(hs).await;
    let http = reqwest::Client::new();
    let base = env.hs.base_url();
    let token = as_token(&env);
    let up: Value = http
        .post(format!("{base}/_matrix/media/v3/upload?filename=a.txt"))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("hello media")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mxc = up["content_uri"].as_str().unwrap();
    let (server, id) = mxc.trim_start_matches("mxc://").split_once('/').unwrap();
    let v1 = http
        .get(format!(
            "{base}/_matrix/client/v1/media/download/{server}/{id}"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(v1.status(), 200);
    assert_eq!(v1.text().await.unwrap(), "hello media");
    let legacy = http
        .get(format!("{base}/_matrix/media/v3/download/{server}/{id}"))
        .send()
        .await
        .unwrap();
    let expected = match hs {
        HomeserverKind::Synapse => 404,
        HomeserverKind::Tuwunel => 403,
    };
    assert_eq!(legacy.status().as_u16(), expected);
    let config: Value = http
        .get(format!("{base}/_matrix/client/v1/media/config"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(config["m.upload.size"].as_u64().is_some(), "{config}");
}

/// Rate limits on appservice users: Synapse enforces them unless the registration says
/// `rate_limited: false` (tests/matrix.rs `rate_limited_sends_are_retried_until_they_pass`);
/// tuwunel parses the flag and never enforces it. `-g` always writes `rate_limited: false`.
async fn rate_limits_on_appservice_users(hs: HomeserverKind) {
    let (env, _recorder, bot) = recorded(hs).await;
    let reg = std::fs::read_to_string(&env.registration_path).unwrap();
    assert!(reg.contains("rate_limited: false"), "{reg}");
    let ghost = format!("@slack_t1-burst:{DOMAIN}");
    register(&bot, "slack_t1-burst").await.unwrap();
    let as_ghost = appservice(&env, Some(&ghost));
    let room = as_ghost
        .post(&masq("/_matrix/client/v3/createRoom", &ghost), &json!({}))
        .await
        .unwrap()["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // `recorded` set Synapse's rc_message to a burst of 10: 30 at once pass only unlimited.
    for i in 0..30 {
        as_ghost
            .put(
                &masq(
                    &format!(
                        "/_matrix/client/v3/rooms/{}/send/m.room.message/burst-{i}",
                        enc(&room)
                    ),
                    &ghost,
                ),
                &json!({"msgtype": "m.text", "body": format!("burst {i}")}),
            )
            .await
            .unwrap_or_else(|e| panic!("message {i} was limited: {e}"));
    }
}
