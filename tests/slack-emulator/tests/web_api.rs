//! Web API shapes and rules, asserted against slack-protocol.md §5 (field names, types,
//! nesting), plus auth, scopes, faults, pagination and the upload/download flow.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn auth_errors_and_oauth_scopes_header() {
    let f = fixture().await;
    let r = f.api_token("auth.test", None, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"ok": false, "error": "not_authed"}));
    let r = f.api_token("auth.test", Some("xoxb-nope"), &[]).await;
    assert_eq!(r.body, json!({"ok": false, "error": "invalid_auth"}));
    // Token as a form parameter is fine for ordinary methods.
    let tok = f.emu.bot_token();
    let r = f.api_token("auth.test", None, &[("token", &tok)]).await;
    assert_eq!(r.body["ok"], true);
    let scopes = r.headers["x-oauth-scopes"].to_str().unwrap();
    assert!(scopes.contains("chat:write") && !scopes.contains(' '));
    let calls = f.emu.calls("auth.test");
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[2].token_kind, slack_emulator::TokenKind::Bot);
    assert!(!calls[2].token_in_header);

    f.emu.revoke_bot_token();
    let r = f.api("auth.test", &[]).await;
    assert_eq!(r.body["error"], "token_revoked");
}

#[tokio::test]
async fn auth_test_shape() {
    let f = fixture().await;
    let b = f.api("auth.test", &[]).await.body;
    for k in ["url", "team", "user", "team_id", "user_id", "bot_id"] {
        has(&b, k, "string");
    }
    has(&b, "is_enterprise_install", "bool");
    assert_eq!(b["user_id"], f.emu.bot_user_id());
    assert_eq!(b["bot_id"], f.emu.bot_id());
    assert_eq!(b["team_id"], "T0TEAM0001");
}

#[tokio::test]
async fn team_info_shape() {
    let f = fixture().await;
    let b = f.api("team.info", &[]).await.body;
    let t = &b["team"];
    for k in ["id", "name", "domain", "email_domain"] {
        has(t, k, "string");
    }
    has(t, "icon", "object");
    has(&t["icon"], "image_132", "string");
    has(&t["icon"], "image_default", "bool");
}

#[tokio::test]
async fn missing_scope_has_needed_and_provided() {
    let f = fixture().await;
    f.emu.remove_scopes(&["chat:write"]);
    let r = f
        .api(
            "chat.postMessage",
            &[("channel", &f.general), ("text", "x")],
        )
        .await;
    assert_eq!(r.body["error"], "missing_scope");
    assert_eq!(r.body["needed"], "chat:write");
    let provided = r.body["provided"].as_str().unwrap();
    assert!(provided.contains("channels:read") && !provided.contains("chat:write,"));
    assert!(
        !r.headers["x-oauth-scopes"]
            .to_str()
            .unwrap()
            .contains("chat:write,")
    );

    f.emu.remove_scopes(&["im:read"]);
    let r = f
        .api("conversations.list", &[("types", "public_channel,im")])
        .await;
    assert_eq!(r.body["needed"], "im:read");
}

#[tokio::test]
async fn rate_limit_and_fail_next() {
    let f = fixture().await;
    f.emu.rate_limit("chat.postMessage", 2, 7);
    f.emu.fail_next("chat.postMessage", 1, "not_in_channel");
    let args = [("channel", f.general.as_str()), ("text", "x")];
    for _ in 0..2 {
        let r = f.api("chat.postMessage", &args).await;
        assert_eq!(r.status, 429);
        assert_eq!(r.headers["retry-after"], "7");
        assert_eq!(r.body, json!({"ok": false, "error": "ratelimited"}));
    }
    let r = f.api("chat.postMessage", &args).await;
    assert_eq!(r.body, json!({"ok": false, "error": "not_in_channel"}));
    let r = f.api("chat.postMessage", &args).await;
    assert_eq!(r.body["ok"], true);
}

#[tokio::test]
async fn conversations_list_shape_visibility_and_pagination() {
    let f = fixture().await;
    let r = f
        .api(
            "conversations.list",
            &[
                ("types", "public_channel,private_channel,im,mpim"),
                ("limit", "2"),
            ],
        )
        .await;
    let b = &r.body;
    has(b, "channels", "array");
    has(&b["response_metadata"], "next_cursor", "string");
    let c = &b["channels"][0];
    for (k, t) in [
        ("id", "string"),
        ("name", "string"),
        ("is_channel", "bool"),
        ("is_group", "bool"),
        ("is_im", "bool"),
        ("is_mpim", "bool"),
        ("is_private", "bool"),
        ("created", "number"),
        ("creator", "string"),
        ("is_archived", "bool"),
        ("is_general", "bool"),
        ("name_normalized", "string"),
        ("is_member", "bool"),
        ("topic", "object"),
        ("purpose", "object"),
        ("previous_names", "array"),
        ("num_members", "number"),
    ] {
        has(c, k, t);
    }
    has(&c["topic"], "value", "string");
    has(&c["topic"], "last_set", "number");

    // Follow cursors to the end; pages may be short but the union is complete.
    let mut ids = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = f
            .api(
                "conversations.list",
                &[
                    ("types", "public_channel,private_channel,im,mpim"),
                    ("limit", "2"),
                    ("cursor", &cursor),
                ],
            )
            .await;
        for c in r.body["channels"].as_array().unwrap() {
            ids.push(c["id"].as_str().unwrap().to_string());
        }
        cursor = r.body["response_metadata"]["next_cursor"]
            .as_str()
            .unwrap()
            .to_string();
        if cursor.is_empty() {
            break;
        }
    }
    // The bot sees public channels (member or not) and its own private conversations.
    for id in [&f.general, &f.random, &f.secret, &f.outside, &f.dm, &f.mpim] {
        assert!(ids.contains(id), "{id} listed");
    }
    let im = f
        .api("conversations.info", &[("channel", &f.dm)])
        .await
        .body;
    assert_eq!(im["channel"]["is_im"], true);
    assert_eq!(im["channel"]["user"], f.alice.as_str());

    let r = f.api("conversations.list", &[("cursor", "garbage!")]).await;
    assert_eq!(r.body["error"], "invalid_cursor");
    let r = f.api("conversations.list", &[("types", "bogus")]).await;
    assert_eq!(r.body["error"], "invalid_types");
}

#[tokio::test]
async fn private_channels_are_hidden_from_non_members() {
    let f = fixture().await;
    let hidden = f
        .emu
        .add_channel("hidden", true, &[f.alice.as_str(), f.bob.as_str()]);
    for m in [
        "conversations.info",
        "conversations.history",
        "conversations.members",
    ] {
        let r = f.api(m, &[("channel", &hidden)]).await;
        assert_eq!(r.body["error"], "channel_not_found", "{m}");
    }
    let r = f
        .api("conversations.history", &[("channel", &f.outside)])
        .await;
    assert_eq!(r.body["error"], "not_in_channel");
}

#[tokio::test]
async fn conversations_members_shape() {
    let f = fixture().await;
    let b = f
        .api(
            "conversations.members",
            &[("channel", &f.general), ("limit", "2")],
        )
        .await
        .body;
    assert_eq!(b["members"].as_array().unwrap().len(), 2);
    assert!(b["members"][0].is_string());
    let cur = b["response_metadata"]["next_cursor"].as_str().unwrap();
    assert!(!cur.is_empty());
    let b2 = f
        .api(
            "conversations.members",
            &[("channel", &f.general), ("cursor", cur)],
        )
        .await
        .body;
    assert_eq!(b2["members"].as_array().unwrap().len(), 1);
    assert_eq!(b2["response_metadata"]["next_cursor"], "");
}

#[tokio::test]
async fn history_and_replies_shapes_with_cap_and_cursor() {
    let f = fixture().await;
    let root = f.emu.post_message(&f.alice, &f.general, "root").unwrap();
    let mut replies = Vec::new();
    for i in 0..3 {
        replies.push(
            f.emu
                .reply(&f.bob, &f.general, &root, &format!("r{i}"))
                .unwrap(),
        );
    }
    for i in 0..20 {
        f.emu
            .post_message(&f.alice, &f.general, &format!("m{i}"))
            .unwrap();
    }
    f.emu.react(&f.bob, &f.general, &root, "thumbsup").unwrap();
    // Default cap of 15 for non-Marketplace apps.
    let b = f
        .api(
            "conversations.history",
            &[("channel", &f.general), ("limit", "200")],
        )
        .await
        .body;
    let msgs = b["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 15);
    assert_eq!(b["has_more"], true);
    has(&b, "pin_count", "number");
    assert_eq!(msgs[0]["text"], "m19", "newest first");
    for m in msgs {
        has(m, "type", "string");
        assert!(is_ts(&m["ts"]));
        has(m, "user", "string");
        has(m, "text", "string");
    }
    let cur = b["response_metadata"]["next_cursor"].as_str().unwrap();
    let b2 = f
        .api(
            "conversations.history",
            &[("channel", &f.general), ("cursor", cur)],
        )
        .await
        .body;
    let msgs2 = b2["messages"].as_array().unwrap();
    assert_eq!(
        msgs2.len(),
        6,
        "m4..m0 and the root; replies are not in history"
    );
    assert_eq!(b2["has_more"], false);
    let rootm = msgs2.iter().find(|m| m["ts"] == root.as_str()).unwrap();
    assert_eq!(rootm["reply_count"], 3);
    assert_eq!(rootm["thread_ts"], root.as_str());
    assert_eq!(rootm["latest_reply"], replies[2].as_str());
    assert_eq!(rootm["reply_users"], json!([f.bob]));
    assert_eq!(rootm["reactions"][0]["name"], "thumbsup");
    assert_eq!(rootm["reactions"][0]["count"], 1);
    has(&rootm["reactions"][0], "users", "array");

    // oldest/latest bounds.
    let b3 = f
        .api(
            "conversations.history",
            &[
                ("channel", &f.general),
                ("oldest", &root),
                ("inclusive", "true"),
                ("latest", &root),
            ],
        )
        .await
        .body;
    assert_eq!(b3["messages"].as_array().unwrap().len(), 1);
    let r = f
        .api(
            "conversations.history",
            &[("channel", &f.general), ("latest", "abc")],
        )
        .await;
    assert_eq!(r.body["error"], "invalid_ts_latest");

    let b = f
        .api(
            "conversations.replies",
            &[("channel", &f.general), ("ts", &root), ("limit", "3")],
        )
        .await
        .body;
    let m = b["messages"].as_array().unwrap();
    assert_eq!(m[0]["ts"], root.as_str(), "parent first");
    assert_eq!(m.len(), 3);
    assert_eq!(m[1]["parent_user_id"], f.alice.as_str());
    assert_eq!(m[1]["thread_ts"], root.as_str());
    assert_eq!(b["has_more"], true);
    let cur = b["response_metadata"]["next_cursor"].as_str().unwrap();
    let b2 = f
        .api(
            "conversations.replies",
            &[
                ("channel", &f.general),
                ("ts", &root),
                ("limit", "3"),
                ("cursor", cur),
            ],
        )
        .await
        .body;
    let m2 = b2["messages"].as_array().unwrap();
    assert_eq!(m2[0]["ts"], root.as_str());
    assert_eq!(m2[1]["ts"], replies[2].as_str());
    let r = f
        .api(
            "conversations.replies",
            &[("channel", &f.general), ("ts", "1.000001")],
        )
        .await;
    assert_eq!(r.body["error"], "thread_not_found");
}

#[tokio::test]
async fn conversations_join_shape_and_warning() {
    let f = fixture().await;
    let b = f
        .api("conversations.join", &[("channel", &f.outside)])
        .await
        .body;
    assert_eq!(b["ok"], true);
    assert_eq!(b["channel"]["is_member"], true);
    assert!(b.get("warning").is_none());
    let b = f
        .api_json("conversations.join", json!({"channel": f.outside}))
        .await
        .body;
    assert_eq!(b["warning"], "already_in_channel");
    assert_eq!(
        b["response_metadata"]["warnings"],
        json!(["already_in_channel"])
    );
    let r = f.api("conversations.join", &[("channel", &f.mpim)]).await;
    assert_eq!(r.body["warning"], "already_in_channel");
}

#[tokio::test]
async fn users_and_bots_shapes() {
    let f = fixture().await;
    let b = f.api("users.info", &[("user", &f.alice)]).await.body;
    let u = &b["user"];
    for (k, t) in [
        ("id", "string"),
        ("team_id", "string"),
        ("name", "string"),
        ("deleted", "bool"),
        ("color", "string"),
        ("real_name", "string"),
        ("tz", "string"),
        ("tz_label", "string"),
        ("tz_offset", "number"),
        ("profile", "object"),
        ("is_admin", "bool"),
        ("is_owner", "bool"),
        ("is_bot", "bool"),
        ("is_app_user", "bool"),
        ("updated", "number"),
    ] {
        has(u, k, t);
    }
    let p = &u["profile"];
    for k in [
        "avatar_hash",
        "status_text",
        "status_emoji",
        "real_name",
        "display_name",
        "real_name_normalized",
        "display_name_normalized",
        "email",
        "image_24",
        "image_32",
        "image_48",
        "image_72",
        "image_192",
        "image_512",
        "image_original",
        "team",
    ] {
        has(p, k, "string");
    }
    // The avatar URL serves a real PNG.
    let url = p["image_72"].as_str().unwrap();
    let r = f.http.get(url).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "image/png");
    let png = r.bytes().await.unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert_eq!(slack_emulator::util::png_dimensions(&png), Some((72, 72)));

    let b = f.api("users.info", &[("user", "U0NOPE")]).await.body;
    assert_eq!(b["error"], "user_not_found");
    let b = f.api("users.list", &[("limit", "2")]).await.body;
    assert_eq!(b["members"].as_array().unwrap().len(), 2);
    has(&b["response_metadata"], "next_cursor", "string");
    let bot = f
        .api("users.info", &[("user", &f.emu.bot_user_id())])
        .await
        .body;
    assert_eq!(bot["user"]["is_bot"], true);
    assert_eq!(bot["user"]["profile"]["bot_id"], f.emu.bot_id());

    let b = f.api("bots.info", &[("bot", &f.emu.bot_id())]).await.body;
    let bo = &b["bot"];
    for k in ["id", "name", "app_id", "user_id"] {
        has(bo, k, "string");
    }
    has(bo, "deleted", "bool");
    has(bo, "updated", "number");
    has(&bo["icons"], "image_48", "string");
    assert_eq!(bo["app_id"], f.emu.app_id());

    f.emu.remove_scopes(&["users:read.email"]);
    let b = f.api("users.info", &[("user", &f.alice)]).await.body;
    assert!(b["user"]["profile"].get("email").is_none());
}

#[tokio::test]
async fn post_message_records_and_returns_shape() {
    let f = fixture().await;
    let blocks = json!([{"type":"rich_text","block_id":"x1","elements":[{"type":"rich_text_section","elements":[{"type":"text","text":"hi"}]}]}]);
    let r = f
        .api(
            "chat.postMessage",
            &[
                ("channel", &f.general),
                ("text", "hi"),
                ("blocks", &blocks.to_string()),
                ("username", "Alice (Matrix)"),
                ("icon_url", "https://example.org/a.png"),
            ],
        )
        .await;
    let b = &r.body;
    assert_eq!(b["ok"], true);
    assert_eq!(b["channel"], f.general.as_str());
    assert!(is_ts(&b["ts"]));
    let m = &b["message"];
    assert_eq!(m["type"], "message");
    assert_eq!(m["bot_id"], f.emu.bot_id());
    assert_eq!(m["app_id"], f.emu.app_id());
    assert_eq!(m["username"], "Alice (Matrix)");
    assert_eq!(m["icons"]["image_48"], "https://example.org/a.png");
    assert_eq!(m["blocks"], blocks);
    has(m, "bot_profile", "object");

    let call = &f.emu.calls("chat.postMessage")[0];
    assert_eq!(call.param("username").as_deref(), Some("Alice (Matrix)"));
    assert_eq!(
        call.param("icon_url").as_deref(),
        Some("https://example.org/a.png")
    );
    assert_eq!(call.param("text").as_deref(), Some("hi"));
    assert_eq!(call.body_kind, slack_emulator::BodyKind::Form);

    // Thread reply via JSON body, then it is in the thread.
    let ts = b["ts"].as_str().unwrap().to_string();
    let r = f
        .api_json(
            "chat.postMessage",
            json!({"channel": f.general, "text": "in thread", "thread_ts": ts}),
        )
        .await;
    assert_eq!(r.body["message"]["thread_ts"], ts.as_str());
    let call = &f.emu.calls("chat.postMessage")[1];
    assert_eq!(call.param("thread_ts").as_deref(), Some(ts.as_str()));
    assert_eq!(call.body_kind, slack_emulator::BodyKind::Json);
    let msgs = f.emu.messages(&f.general);
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["reply_count"], 1);

    // Errors.
    let r = f.api("chat.postMessage", &[("channel", &f.general)]).await;
    assert_eq!(r.body["error"], "no_text");
    let r = f
        .api("chat.postMessage", &[("channel", "C0NOPE"), ("text", "x")])
        .await;
    assert_eq!(r.body["error"], "channel_not_found");
    let r = f
        .api(
            "chat.postMessage",
            &[("channel", &f.general), ("blocks", "[{\"type\":\"nope\"}]")],
        )
        .await;
    assert_eq!(r.body["error"], "invalid_blocks");
    f.emu.remove_scopes(&["chat:write.public"]);
    let r = f
        .api(
            "chat.postMessage",
            &[("channel", &f.outside), ("text", "x")],
        )
        .await;
    assert_eq!(r.body["error"], "not_in_channel");
    f.emu.remove_scopes(&["chat:write.customize"]);
    let r = f
        .api(
            "chat.postMessage",
            &[("channel", &f.general), ("text", "x"), ("username", "u")],
        )
        .await;
    assert_eq!(r.body["error"], "missing_scope");
    assert_eq!(r.body["needed"], "chat:write.customize");
}

#[tokio::test]
async fn update_delete_and_reactions_shapes() {
    let f = fixture().await;
    let ts = f
        .api(
            "chat.postMessage",
            &[("channel", &f.general), ("text", "v1")],
        )
        .await
        .body["ts"]
        .as_str()
        .unwrap()
        .to_string();
    let b = f
        .api_json(
            "chat.update",
            json!({"channel": f.general, "ts": ts, "text": "v2"}),
        )
        .await
        .body;
    assert_eq!(b["ok"], true);
    assert_eq!(b["channel"], f.general.as_str());
    assert_eq!(b["ts"], ts.as_str());
    assert_eq!(b["text"], "v2");
    has(&b["message"], "text", "string");
    assert_eq!(
        f.emu.message(&f.general, &ts).unwrap()["edited"]["user"],
        f.emu.bot_user_id()
    );

    let people = f.emu.post_message(&f.alice, &f.general, "mine").unwrap();
    let r = f
        .api(
            "chat.update",
            &[("channel", &f.general), ("ts", &people), ("text", "x")],
        )
        .await;
    assert_eq!(r.body["error"], "cant_update_message");
    let r = f
        .api("chat.delete", &[("channel", &f.general), ("ts", &people)])
        .await;
    assert_eq!(r.body["error"], "cant_delete_message");

    let b = f
        .api(
            "reactions.add",
            &[
                ("channel", &f.general),
                ("timestamp", &people),
                ("name", "thumbsup"),
            ],
        )
        .await
        .body;
    assert_eq!(b, json!({"ok": true}));
    let b = f
        .api(
            "reactions.add",
            &[
                ("channel", &f.general),
                ("timestamp", &people),
                ("name", "thumbsup"),
            ],
        )
        .await
        .body;
    assert_eq!(b["error"], "already_reacted");
    let b = f
        .api(
            "reactions.add",
            &[
                ("channel", &f.general),
                ("timestamp", &people),
                ("name", ":tada:"),
            ],
        )
        .await
        .body;
    assert_eq!(b["error"], "invalid_name");
    let b = f
        .api(
            "reactions.remove",
            &[
                ("channel", &f.general),
                ("timestamp", &people),
                ("name", "thumbsup"),
            ],
        )
        .await
        .body;
    assert_eq!(b, json!({"ok": true}));
    let b = f
        .api(
            "reactions.remove",
            &[
                ("channel", &f.general),
                ("timestamp", &people),
                ("name", "thumbsup"),
            ],
        )
        .await
        .body;
    assert_eq!(b["error"], "no_reaction");

    let b = f
        .api("chat.delete", &[("channel", &f.general), ("ts", &ts)])
        .await
        .body;
    assert_eq!(b, json!({"ok": true, "channel": f.general, "ts": ts}));
    let b = f
        .api("chat.delete", &[("channel", &f.general), ("ts", &ts)])
        .await
        .body;
    assert_eq!(b["error"], "message_not_found");
}

#[tokio::test]
async fn file_upload_flow_and_download() {
    let f = fixture().await;
    // JSON is not accepted by files.getUploadURLExternal.
    let r = f
        .api_json(
            "files.getUploadURLExternal",
            json!({"filename": "a.txt", "length": 5}),
        )
        .await;
    assert_eq!(r.body["ok"], false);

    let b = f
        .api(
            "files.getUploadURLExternal",
            &[("filename", "hello.txt"), ("length", "11")],
        )
        .await
        .body;
    has(&b, "upload_url", "string");
    has(&b, "file_id", "string");
    let fid = b["file_id"].as_str().unwrap().to_string();
    let r = f
        .http
        .post(b["upload_url"].as_str().unwrap())
        .body("hello world")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(r.text().await.unwrap(), "OK - 11");

    let files = json!([{"id": fid, "title": "Greeting"}]).to_string();
    let b = f
        .api(
            "files.completeUploadExternal",
            &[
                ("files", &files),
                ("channel_id", &f.general),
                ("initial_comment", "see"),
            ],
        )
        .await
        .body;
    assert_eq!(b["ok"], true);
    let fo = &b["files"][0];
    assert_eq!(fo["id"], fid.as_str());
    assert_eq!(fo["title"], "Greeting");
    for k in [
        "name",
        "mimetype",
        "filetype",
        "url_private",
        "url_private_download",
        "permalink",
        "mode",
    ] {
        has(fo, k, "string");
    }
    has(fo, "size", "number");
    has(fo, "shares", "object");
    // Completing twice fails.
    let r = f
        .api("files.completeUploadExternal", &[("files", &files)])
        .await;
    assert_eq!(r.body["ok"], false);

    // The share lands asynchronously.
    let msg = f
        .emu
        .wait_for(LONG, |e| {
            e.messages(&f.general)
                .into_iter()
                .find(|m| m["subtype"] == "file_share")
        })
        .await
        .unwrap();
    assert_eq!(msg["text"], "see");
    assert_eq!(msg["files"][0]["id"], fid.as_str());
    let info = f.api("files.info", &[("file", &fid)]).await.body;
    assert_eq!(info["file"]["id"], fid.as_str());
    assert!(info["file"]["shares"]["public"][&f.general].is_array());

    // Download: the bot token gets bytes, no token gets a 200 login page.
    let url = fo["url_private_download"].as_str().unwrap().to_string();
    let path = url.trim_start_matches(&f.emu.base_url()).to_string();
    let r = f.get(&path, Some(&f.emu.bot_token())).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "hello world");
    let r = f.get(&path, None).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(r.text().await.unwrap().contains("<html"));
}

#[tokio::test]
async fn upload_length_must_match_and_urls_are_single_use() {
    let f = fixture().await;
    let b = f
        .api(
            "files.getUploadURLExternal",
            &[("filename", "x.bin"), ("length", "3")],
        )
        .await
        .body;
    let url = b["upload_url"].as_str().unwrap();
    let r = f.http.post(url).body("four").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = f.http.post(url).body("abc").send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "OK - 3");
    let r = f.http.post(url).body("abc").send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn emoji_list_shape() {
    let f = fixture().await;
    f.emu
        .add_emoji("partyparrot", "https://emoji.example.com/pp.gif");
    f.emu.add_emoji("pp", "alias:partyparrot");
    let b = f.api("emoji.list", &[]).await.body;
    assert_eq!(b["emoji"]["pp"], "alias:partyparrot");
    has(&b, "cache_ts", "string");
}

#[tokio::test]
async fn query_string_and_get_are_accepted() {
    let f = fixture().await;
    let r = f
        .http
        .get(format!(
            "{}/conversations.info?channel={}",
            f.emu.api_url(),
            f.general
        ))
        .header("authorization", format!("Bearer {}", f.emu.bot_token()))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["channel"]["id"], f.general.as_str());
    let r = f.api("no.such.method", &[]).await;
    assert_eq!(r.body["error"], "unknown_method");
    let _ = Duration::ZERO;
}

#[tokio::test]
async fn json_without_charset_warns() {
    let f = fixture().await;
    let r = f
        .http
        .post(format!("{}/auth.test", f.emu.api_url()))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", f.emu.bot_token()))
        .body("{}")
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["warning"], "missing_charset");
}
