//! User tokens (`xoxp-…`): the OAuth v2 code exchange (oauth.v2.access and its errors), and Web
//! API calls acting as a person (auth.test, posts, edits, deletes, reactions, files,
//! visibility, scopes, revocation).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use slack_emulator::TokenKind;

const CB: &str = "https://bridge.example/oauth/callback";

/// oauth.v2.access with form parameters and no token.
async fn exchange(f: &Fixture, params: &[(&str, &str)]) -> Resp {
    f.api_token("oauth.v2.access", None, params).await
}

/// The app's credentials plus `code` and `redirect_uri`.
async fn exchange_code(f: &Fixture, code: &str, redirect_uri: &str) -> Resp {
    let (id, secret) = f.emu.oauth_client();
    exchange(
        f,
        &[
            ("client_id", &id),
            ("client_secret", &secret),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ],
    )
    .await
}

/// Events queued for the app of inner type `ty`.
fn app_events(f: &Fixture, ty: &str) -> Vec<Value> {
    f.emu
        .events()
        .into_iter()
        .map(|e| e.payload["event"].clone())
        .filter(|e| e["type"] == ty)
        .collect()
}

#[tokio::test]
async fn oauth_exchange_issues_a_user_token_with_the_approved_scopes() {
    let f = fixture().await;
    let (client_id, secret) = f.emu.oauth_client();
    let (id_a, id_b) = client_id.split_once('.').unwrap();
    assert!(id_a.len() == 10 && id_b.chars().all(|c| c.is_ascii_digit()));
    assert_eq!(secret.len(), 32);
    assert_eq!(f.emu.oauth_client(), (client_id, secret), "stable");

    let code = f
        .emu
        .authorize_user("alice", &["chat:write", "channels:history"], CB);
    let r = exchange_code(&f, &code, CB).await;
    assert_eq!(r.status, 200);
    let token = r.body["authed_user"]["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(token.starts_with("xoxp-"), "{token}");
    assert_eq!(
        r.body,
        json!({
            "ok": true,
            "app_id": f.emu.app_id(),
            "authed_user": {
                "id": f.alice,
                "scope": "channels:history,chat:write",
                "access_token": token,
                "token_type": "user",
            },
            "team": {"id": "T0TEAM0001", "name": "Acme"},
            "enterprise": null,
            "is_enterprise_install": false,
        })
    );
    let call = &f.emu.calls("oauth.v2.access")[0];
    assert_eq!(call.token_kind, TokenKind::None);
    assert_eq!(call.token_user, None);

    // The token works and grants exactly the approved scopes.
    let r = f.api_token("auth.test", Some(&token), &[]).await;
    assert_eq!(r.body["user_id"], f.alice.as_str());
    assert_eq!(
        r.headers["x-oauth-scopes"].to_str().unwrap(),
        "channels:history,chat:write"
    );
    let r = f
        .api_token("users.info", Some(&token), &[("user", &f.bob)])
        .await;
    assert_eq!(
        r.body,
        json!({"ok": false, "error": "missing_scope", "needed": "users:read",
               "provided": "channels:history,chat:write"})
    );
}

#[tokio::test]
async fn oauth_exchange_takes_client_credentials_by_http_basic_auth() {
    let f = fixture().await;
    let (id, secret) = f.emu.oauth_client();
    let code = f.emu.authorize_user(&f.bob, &["chat:write"], "");
    let basic = |id: &str, secret: &str| {
        let raw = format!("{id}:{secret}");
        format!(
            "Basic {}",
            slack_emulator::util::base64_encode(raw.as_bytes())
        )
    };
    let post = |auth: String| {
        f.http
            .post(format!("{}/oauth.v2.access", f.emu.api_url()))
            .header("authorization", auth)
            .form(&[("code", code.as_str())])
            .send()
    };
    let v: Value = post(basic(&id, "wrong"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v, json!({"ok": false, "error": "bad_client_secret"}));
    let v: Value = post(basic(&id, &secret))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["authed_user"]["id"], f.bob.as_str());
    assert_eq!(v["authed_user"]["scope"], "chat:write");
}

#[tokio::test]
async fn oauth_exchange_rejects_bad_client_credentials() {
    let f = fixture().await;
    let (id, secret) = f.emu.oauth_client();
    let code = f.emu.authorize_user(&f.alice, &["chat:write"], CB);
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[("code", &code)], "invalid_client_id"),
        (
            &[
                ("client_id", "1.2"),
                ("client_secret", &secret),
                ("code", &code),
            ],
            "invalid_client_id",
        ),
        (&[("client_id", &id), ("code", &code)], "bad_client_secret"),
        (
            &[
                ("client_id", &id),
                ("client_secret", "nope"),
                ("code", &code),
            ],
            "bad_client_secret",
        ),
        (
            &[
                ("client_id", &id),
                ("client_secret", &secret),
                ("code", &code),
                ("grant_type", "password"),
            ],
            "invalid_grant_type",
        ),
    ];
    for (params, error) in cases {
        let r = exchange(&f, params).await;
        assert_eq!(r.body, json!({"ok": false, "error": error}), "{params:?}");
    }
    // None of that used the code up.
    assert_eq!(exchange_code(&f, &code, CB).await.body["ok"], true);
}

#[tokio::test]
async fn oauth_code_is_invalid_when_unknown_missing_or_reused() {
    let f = fixture().await;
    let (id, secret) = f.emu.oauth_client();
    let r = exchange(&f, &[("client_id", &id), ("client_secret", &secret)]).await;
    assert_eq!(r.body, json!({"ok": false, "error": "invalid_code"}));
    let r = exchange_code(&f, "1234567890.1234567890123.abc", CB).await;
    assert_eq!(r.body, json!({"ok": false, "error": "invalid_code"}));

    let code = f.emu.authorize_user(&f.alice, &["chat:write"], CB);
    let first = exchange_code(&f, &code, CB).await;
    assert_eq!(first.body["ok"], true);
    let again = exchange_code(&f, &code, CB).await;
    assert_eq!(again.body, json!({"ok": false, "error": "invalid_code"}));
    // The token from the first exchange is unaffected.
    let token = first.body["authed_user"]["access_token"].as_str().unwrap();
    assert_eq!(
        f.api_token("auth.test", Some(token), &[]).await.body["ok"],
        true
    );
}

#[tokio::test(start_paused = true)]
async fn oauth_code_expires_after_ten_minutes() {
    let f = fixture().await;
    let code = f.emu.authorize_user(&f.alice, &["chat:write"], CB);
    assert_eq!(slack_emulator::OAUTH_CODE_TTL, Duration::from_secs(600));
    tokio::time::advance(Duration::from_secs(601)).await;
    let r = exchange_code(&f, &code, CB).await;
    assert_eq!(r.body, json!({"ok": false, "error": "invalid_code"}));
}

#[tokio::test]
async fn oauth_redirect_uri_must_match_the_authorize_request() {
    let f = fixture().await;
    let code = f.emu.authorize_user(&f.alice, &["chat:write"], CB);
    let r = exchange_code(&f, &code, "https://elsewhere.example/cb").await;
    assert_eq!(r.body, json!({"ok": false, "error": "bad_redirect_uri"}));
    // The failed attempt used the code up (the stricter reading).
    let r = exchange_code(&f, &code, CB).await;
    assert_eq!(r.body, json!({"ok": false, "error": "invalid_code"}));
    // Leaving redirect_uri out is allowed.
    let (id, secret) = f.emu.oauth_client();
    let code = f.emu.authorize_user(&f.alice, &["chat:write"], CB);
    let r = exchange(
        &f,
        &[
            ("client_id", &id),
            ("client_secret", &secret),
            ("code", &code),
        ],
    )
    .await;
    assert_eq!(r.body["ok"], true, "{}", r.body);
}

#[tokio::test]
async fn reauthorizing_replaces_the_old_user_token() {
    let f = fixture().await;
    let old = f.emu.user_token("alice", &["chat:write"]);
    assert_eq!(
        f.api_token("auth.test", Some(&old), &[]).await.body["ok"],
        true
    );
    let code = f
        .emu
        .authorize_user("alice", &["chat:write", "reactions:write"], CB);
    let r = exchange_code(&f, &code, CB).await;
    let new = r.body["authed_user"]["access_token"].as_str().unwrap();
    assert_ne!(new, old);
    let r = f.api_token("auth.test", Some(&old), &[]).await;
    assert_eq!(r.body, json!({"ok": false, "error": "invalid_auth"}));
    let r = f.api_token("auth.test", Some(new), &[]).await;
    assert_eq!(
        r.headers["x-oauth-scopes"].to_str().unwrap(),
        "chat:write,reactions:write"
    );
}

#[tokio::test]
async fn auth_test_with_a_user_token_names_the_user_and_no_bot() {
    let f = fixture().await;
    let token = f.emu.user_token(&f.alice, &["chat:write", "users:read"]);
    let r = f.api_token("auth.test", Some(&token), &[]).await;
    assert_eq!(
        r.body,
        json!({
            "ok": true,
            "url": format!("{}/", f.emu.base_url()),
            "team": "Acme",
            "user": "alice",
            "team_id": "T0TEAM0001",
            "user_id": f.alice,
            "is_enterprise_install": false,
        })
    );
    assert_eq!(
        r.headers["x-oauth-scopes"].to_str().unwrap(),
        "chat:write,users:read"
    );
    let call = &f.emu.calls("auth.test")[0];
    assert_eq!(call.token_kind, TokenKind::User);
    assert_eq!(call.token_user.as_deref(), Some(f.alice.as_str()));
    // A bot call records no user.
    f.api("auth.test", &[]).await;
    assert_eq!(f.emu.calls("auth.test")[1].token_user, None);
}

#[tokio::test]
async fn user_token_cannot_open_socket_mode_connections() {
    let f = fixture().await;
    let token = f.emu.user_token(&f.alice, &["connections:write"]);
    let r = f
        .api_token("apps.connections.open", Some(&token), &[])
        .await;
    assert_eq!(
        r.body,
        json!({"ok": false, "error": "not_allowed_token_type"})
    );
}

#[tokio::test]
async fn user_token_post_is_a_plain_message_by_the_user() {
    let f = fixture().await;
    let mut s = f.connect().await;
    assert_eq!(s.next(SEC).await.unwrap()["type"], "hello");
    let token = f.emu.user_token(&f.alice, &["chat:write"]);
    let metadata = json!({"event_type": "bridge_echo", "event_payload": {"id": "$ev1"}});
    let r = f
        .api_token(
            "chat.postMessage",
            Some(&token),
            &[
                ("channel", &f.general),
                ("text", "from matrix"),
                ("username", "Someone Else"),
                ("icon_emoji", ":ghost:"),
                ("metadata", &metadata.to_string()),
            ],
        )
        .await;
    assert_eq!(r.body["ok"], true, "{}", r.body);
    let ts = r.body["ts"].as_str().unwrap().to_string();
    let m = &r.body["message"];
    assert_eq!(m["user"], f.alice.as_str());
    assert_eq!(m["text"], "from matrix");
    assert_eq!(m["metadata"], metadata);
    for k in [
        "bot_id",
        "bot_profile",
        "app_id",
        "username",
        "icons",
        "subtype",
    ] {
        assert!(m.get(k).is_none(), "`{k}` in {m}");
    }
    let stored = f.emu.message(&f.general, &ts).unwrap();
    assert_eq!(stored["user"], f.alice.as_str());
    assert!(stored.get("bot_id").is_none());

    // The app sees a person's message, as for any post by alice.
    let env = s.next_event(LONG).await.expect("message event");
    s.ack(&env).await;
    let ev = &env["payload"]["event"];
    assert_eq!(ev["type"], "message");
    assert_eq!(ev["ts"], ts.as_str());
    assert_eq!(ev["user"], f.alice.as_str());
    assert_eq!(ev["channel"], f.general.as_str());
    for k in ["bot_id", "bot_profile", "app_id", "username", "subtype"] {
        assert!(ev.get(k).is_none(), "`{k}` in {ev}");
    }
}

#[tokio::test]
async fn user_token_posts_only_where_the_user_is_a_member() {
    let f = fixture().await;
    let token = f.emu.user_token(&f.bob, &["chat:write"]);
    let post = |channel: String| {
        let token = token.clone();
        let f = &f;
        async move {
            f.api_token(
                "chat.postMessage",
                Some(&token),
                &[("channel", &channel), ("text", "hi")],
            )
            .await
            .body
        }
    };
    // #random is public but bob is not in it; #secret and alice's DM with the bot are
    // private to others.
    assert_eq!(post(f.random.clone()).await["error"], "not_in_channel");
    assert_eq!(post(f.secret.clone()).await["error"], "channel_not_found");
    assert_eq!(post(f.dm.clone()).await["error"], "channel_not_found");
    assert_eq!(post(f.mpim.clone()).await["ok"], true);
    assert_eq!(post("#general".into()).await["ok"], true);
    // A user ID names the DM between bob and that user.
    let r = post(f.alice.clone()).await;
    assert_eq!(r["ok"], true, "{r}");
    let dm = r["channel"].as_str().unwrap().to_string();
    assert!(dm.starts_with('D') && dm != f.dm);
    let mut members = f.emu.members(&dm);
    members.sort();
    let mut want = vec![f.alice.clone(), f.bob.clone()];
    want.sort();
    assert_eq!(members, want);
    assert_eq!(post(f.alice.clone()).await["channel"], dm.as_str());
}

#[tokio::test]
async fn user_token_changes_only_the_users_own_messages() {
    let f = fixture().await;
    let bob = f.emu.user_token(&f.bob, &["chat:write"]);
    let alices = f.emu.post_message(&f.alice, &f.general, "alice's").unwrap();
    let bots = f
        .api(
            "chat.postMessage",
            &[("channel", &f.general), ("text", "bot's")],
        )
        .await;
    let bots = bots.body["ts"].as_str().unwrap().to_string();
    for ts in [&alices, &bots] {
        let args = [("channel", f.general.as_str()), ("ts", ts.as_str())];
        let r = f.api_token("chat.delete", Some(&bob), &args).await;
        assert_eq!(r.body, json!({"ok": false, "error": "cant_delete_message"}));
        let args = [
            ("channel", f.general.as_str()),
            ("ts", ts.as_str()),
            ("text", "x"),
        ];
        let r = f.api_token("chat.update", Some(&bob), &args).await;
        assert_eq!(r.body, json!({"ok": false, "error": "cant_update_message"}));
    }
    assert!(f.emu.message(&f.general, &alices).is_some());

    // Their own: edited and deleted as bob.
    let own = f.emu.post_message(&f.bob, &f.general, "mine").unwrap();
    let args = [
        ("channel", f.general.as_str()),
        ("ts", own.as_str()),
        ("text", "mine v2"),
    ];
    let r = f.api_token("chat.update", Some(&bob), &args).await;
    assert_eq!(r.body["ok"], true, "{}", r.body);
    let changed = app_events(&f, "message")
        .into_iter()
        .find(|e| e["subtype"] == "message_changed")
        .expect("message_changed");
    assert_eq!(changed["message"]["text"], "mine v2");
    assert_eq!(changed["message"]["edited"]["user"], f.bob.as_str());
    let args = [("channel", f.general.as_str()), ("ts", own.as_str())];
    let r = f.api_token("chat.delete", Some(&bob), &args).await;
    assert_eq!(r.body, json!({"ok": true, "channel": f.general, "ts": own}));
    assert!(f.emu.message(&f.general, &own).is_none());
    let deleted = app_events(&f, "message")
        .into_iter()
        .find(|e| e["subtype"] == "message_deleted")
        .expect("message_deleted");
    assert_eq!(deleted["previous_message"]["user"], f.bob.as_str());
}

#[tokio::test]
async fn user_token_reactions_are_the_users() {
    let f = fixture().await;
    let token = f.emu.user_token(&f.bob, &["reactions:write"]);
    let ts = f
        .emu
        .post_message(&f.alice, &f.general, "react to me")
        .unwrap();
    let args = [
        ("channel", f.general.as_str()),
        ("timestamp", ts.as_str()),
        ("name", "tada"),
    ];
    let r = f.api_token("reactions.add", Some(&token), &args).await;
    assert_eq!(r.body, json!({"ok": true}));
    let m = f.emu.message(&f.general, &ts).unwrap();
    assert_eq!(
        m["reactions"],
        json!([{"name": "tada", "users": [f.bob], "count": 1}])
    );
    let r = f.api_token("reactions.remove", Some(&token), &args).await;
    assert_eq!(r.body, json!({"ok": true}));
    let added = &app_events(&f, "reaction_added")[0];
    assert_eq!(added["user"], f.bob.as_str());
    assert_eq!(added["item_user"], f.alice.as_str());
    assert_eq!(
        app_events(&f, "reaction_removed")[0]["user"],
        f.bob.as_str()
    );
}

#[tokio::test]
async fn user_token_uploads_are_the_users_files() {
    let f = fixture().await;
    let token = f.emu.user_token(&f.alice, &["files:write", "files:read"]);
    let body = b"hello file".to_vec();
    let len = body.len().to_string();
    let r = f
        .api_token(
            "files.getUploadURLExternal",
            Some(&token),
            &[("filename", "note.txt"), ("length", &len)],
        )
        .await;
    let file_id = r.body["file_id"].as_str().unwrap().to_string();
    let url = r.body["upload_url"].as_str().unwrap().to_string();
    let up = f.http.post(&url).body(body).send().await.unwrap();
    assert_eq!(up.status(), 200);
    let files = json!([{"id": file_id, "title": "Note"}]).to_string();
    let r = f
        .api_token(
            "files.completeUploadExternal",
            Some(&token),
            &[
                ("files", &files),
                ("channel_id", &f.general),
                ("username", "ignored"),
            ],
        )
        .await;
    assert_eq!(r.body["ok"], true, "{}", r.body);
    assert_eq!(r.body["files"][0]["user"], f.alice.as_str());
    let share = f
        .emu
        .wait_for(LONG, |e| {
            e.messages(&f.general)
                .into_iter()
                .find(|m| m["subtype"] == "file_share")
        })
        .await
        .expect("file_share message");
    assert_eq!(share["user"], f.alice.as_str());
    assert!(share.get("bot_id").is_none() && share.get("username").is_none());
    assert_eq!(share["files"][0]["id"], file_id.as_str());
    let shared = &app_events(&f, "file_shared")[0];
    assert_eq!(shared["user_id"], f.alice.as_str());
    // The user token downloads it too.
    let dl = f
        .get(
            share["files"][0]["url_private"]
                .as_str()
                .unwrap()
                .trim_start_matches(&f.emu.base_url()),
            Some(&token),
        )
        .await;
    assert_eq!(dl.bytes().await.unwrap().as_ref(), b"hello file");
}

#[tokio::test]
async fn user_token_sees_private_conversations_only_as_a_member() {
    let f = fixture().await;
    let bob = f.emu.user_token(
        &f.bob,
        &[
            "channels:read",
            "groups:read",
            "im:read",
            "mpim:read",
            "channels:history",
            "groups:history",
            "im:history",
            "mpim:history",
        ],
    );
    for c in [&f.secret, &f.dm] {
        for method in ["conversations.info", "conversations.history"] {
            let r = f.api_token(method, Some(&bob), &[("channel", c)]).await;
            assert_eq!(
                r.body,
                json!({"ok": false, "error": "channel_not_found"}),
                "{method}"
            );
        }
    }
    let r = f
        .api_token("conversations.info", Some(&bob), &[("channel", &f.mpim)])
        .await;
    assert_eq!(r.body["channel"]["is_member"], true);
    let r = f
        .api_token("conversations.history", Some(&bob), &[("channel", &f.mpim)])
        .await;
    assert_eq!(r.body["ok"], true, "{}", r.body);
    // Public: visible, but history needs membership as for the bot.
    let r = f
        .api_token("conversations.info", Some(&bob), &[("channel", &f.random)])
        .await;
    assert_eq!(r.body["channel"]["is_member"], false);
    let r = f
        .api_token(
            "conversations.history",
            Some(&bob),
            &[("channel", &f.random)],
        )
        .await;
    assert_eq!(r.body["error"], "not_in_channel");
    let r = f
        .api_token(
            "conversations.list",
            Some(&bob),
            &[("types", "public_channel,private_channel,im,mpim")],
        )
        .await;
    let ids: Vec<&str> = r.body["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&f.mpim.as_str()) && ids.contains(&f.outside.as_str()));
    assert!(!ids.contains(&f.secret.as_str()) && !ids.contains(&f.dm.as_str()));
}

#[tokio::test]
async fn revoked_user_token_answers_token_revoked_and_the_app_is_told() {
    let f = fixture().await;
    let mut s = f.connect().await;
    assert_eq!(s.next(SEC).await.unwrap()["type"], "hello");
    let token = f.emu.user_token("alice", &["chat:write"]);
    f.emu.revoke_user_token("alice");
    let r = f.api_token("auth.test", Some(&token), &[]).await;
    assert_eq!(r.body, json!({"ok": false, "error": "token_revoked"}));
    let call = f.emu.calls("auth.test").pop().unwrap();
    assert_eq!(call.token_kind, TokenKind::User);
    assert_eq!(call.token_user.as_deref(), Some(f.alice.as_str()));
    // The bot token is unaffected.
    assert_eq!(f.api("auth.test", &[]).await.body["ok"], true);

    let env = s.next_event(LONG).await.expect("tokens_revoked");
    s.ack(&env).await;
    let ev = &env["payload"]["event"];
    assert_eq!(ev["type"], "tokens_revoked");
    assert_eq!(ev["tokens"], json!({"oauth": [f.alice], "bot": []}));
    assert!(is_ts(&ev["event_ts"]), "{ev}");
}

#[tokio::test]
async fn control_routes_issue_and_revoke_user_tokens() {
    let f = fixture().await;
    let ctl = |path: &str, body: Value| {
        f.http
            .post(format!("{}/_emulator{path}", f.emu.base_url()))
            .json(&body)
            .send()
    };
    let v: Value = ctl(
        "/oauth/user_token",
        json!({"user": "bob", "scopes": ["chat:write"]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let token = v["token"].as_str().unwrap().to_string();
    assert_eq!(
        f.api_token("auth.test", Some(&token), &[]).await.body["user_id"],
        f.bob.as_str()
    );
    let v: Value = ctl(
        "/oauth/authorize",
        json!({"user": f.alice, "scopes": ["chat:write"], "redirect_uri": CB}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let code = v["code"].as_str().unwrap();
    assert_eq!(exchange_code(&f, code, CB).await.body["ok"], true);
    let r = ctl(
        "/oauth/user_token",
        json!({"user": "nobody", "scopes": ["chat:write"]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let r = ctl("/faults/revoke", json!({"token": "user", "user": "bob"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = f.api_token("auth.test", Some(&token), &[]).await;
    assert_eq!(r.body["error"], "token_revoked");
    let v: Value = f.get("/_emulator/info", None).await.json().await.unwrap();
    assert_eq!(v["client_id"], f.emu.oauth_client().0.as_str());
}
