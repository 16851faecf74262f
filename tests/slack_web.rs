//! The Slack Web API client against the Slack emulator: scopes, errors, rate limits and
//! pacing, pagination, the file upload and download flow, and apps.connections.open.

use std::time::{Duration, Instant};

use slack_bridge::config::Secret;
use slack_bridge::ids::{ChannelId, UserId};
use slack_bridge::slack::types::ConversationKind;
use slack_bridge::slack::web::{
    ClientOptions, HistoryQuery, Pacing, PostMessage, Rate, RetryPolicy, SlackClient, SlackError,
    UpdateMessage, UploadRequest,
};
use slack_emulator::{BodyKind, ChannelKind, Emulator, TokenKind, Workspace};

/// Fast pacing and short retry waits so tests take seconds, not minutes.
fn test_options() -> ClientOptions {
    ClientOptions {
        pacing: Pacing::unlimited(),
        retry: RetryPolicy {
            max_attempts: 5,
            default_retry_after: Duration::from_millis(100),
            max_retry_after: Duration::from_secs(5),
        },
        page_size: 7,
        ..Default::default()
    }
}

fn client_with(emu: &Emulator, options: ClientOptions) -> SlackClient {
    SlackClient::with_options(
        &emu.api_url(),
        Secret::new(emu.bot_token()),
        Secret::new(emu.app_token()),
        options,
    )
    .expect("client")
}

fn client(emu: &Emulator) -> SlackClient {
    client_with(emu, test_options())
}

fn texts(emu: &Emulator, channel: &str) -> Vec<String> {
    emu.messages(channel)
        .iter()
        .map(|m| m["text"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn auth_test_reports_identity_and_granted_scopes() {
    let emu = Emulator::start(Workspace::demo()).await;
    emu.set_scopes(&["chat:write", "files:read", "users:read"]);
    let authed = client(&emu).auth_test().await.unwrap();
    assert_eq!(authed.info.user_id, emu.bot_user_id());
    assert_eq!(authed.info.team_id, emu.team_id());
    assert_eq!(authed.info.bot_id.as_deref(), Some(emu.bot_id().as_str()));
    let scopes: Vec<&str> = authed.scopes.iter().map(String::as_str).collect();
    assert_eq!(scopes, ["chat:write", "files:read", "users:read"]);
    assert!(authed.has_scope("files:read"));
    assert_eq!(
        authed.missing_scopes(&["chat:write", "reactions:write"]),
        ["reactions:write"]
    );
    let call = &emu.calls("auth.test")[0];
    assert!(call.token_in_header);
    assert_eq!(call.token_kind, TokenKind::Bot);
}

#[tokio::test]
async fn missing_scope_names_the_scope_and_the_fix() {
    let emu = Emulator::start(Workspace::demo()).await;
    emu.remove_scopes(&["chat:write"]);
    let general = ChannelId::from(emu.channel_id("general").unwrap());
    let err = client(&emu)
        .chat_post_message(&PostMessage::new(&general, "hi"))
        .await
        .unwrap_err();
    assert!(err.is_missing_scope(), "{err:?}");
    assert_eq!(err.needed_scope(), Some("chat:write"));
    assert!(!err.is_auth_dead());
    let msg = err.to_string();
    assert!(msg.contains("chat:write"), "{msg}");
    assert!(msg.contains("reinstall"), "{msg}");

    emu.remove_scopes(&["users:read"]);
    let err = client(&emu).users_list(None, 10).await.unwrap_err();
    assert_eq!(err.needed_scope(), Some("users:read"), "{err}");
}

#[tokio::test]
async fn http_429_is_retried_after_retry_after() {
    let emu = Emulator::start(Workspace::demo()).await;
    let general = ChannelId::from(emu.channel_id("general").unwrap());
    let before = emu.messages(&general).len();
    emu.rate_limit("chat.postMessage", 2, 1);
    let start = Instant::now();
    let posted = client(&emu)
        .chat_post_message(&PostMessage::new(&general, "after the storm"))
        .await
        .unwrap();
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(1950), "{elapsed:?}");
    assert_eq!(posted.channel, general);
    let calls = emu.calls("chat.postMessage");
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0].status, 429);
    assert_eq!(calls[2].status, 200);
    assert_eq!(calls[2].body_kind, BodyKind::Form);
    let msgs = emu.messages(&general);
    assert_eq!(msgs.len(), before + 1);
    assert_eq!(msgs.last().unwrap()["text"], "after the storm");
    assert_eq!(
        msgs.last().unwrap()["ts"].as_str(),
        Some(posted.ts.as_str())
    );
}

#[tokio::test]
async fn rate_limit_gives_up_after_the_attempt_limit() {
    let emu = Emulator::start(Workspace::demo()).await;
    let mut options = test_options();
    options.retry.max_attempts = 3;
    emu.rate_limit("users.info", 10, 0);
    let alice = UserId::from(emu.user_id("alice").unwrap());
    let err = client_with(&emu, options)
        .users_info(&alice)
        .await
        .unwrap_err();
    assert!(err.is_rate_limited(), "{err:?}");
    assert_eq!(emu.calls("users.info").len(), 3);

    // `ok:false, error:ratelimited` without a header counts too, with the default wait.
    emu.clear_faults();
    emu.fail_next("users.info", 1, "ratelimited");
    let u = client(&emu).users_info(&alice).await.unwrap();
    assert_eq!(u.name, "alice");
}

#[tokio::test]
async fn posts_to_one_channel_are_paced_and_keep_their_order() {
    let mut ws = Workspace::demo();
    let bot = ws.bot_user_id().to_string();
    let pace = ws.add_channel("pace", false, &[&bot]);
    let emu = Emulator::start(ws).await;
    let mut options = test_options();
    options.pacing.post_message_per_channel = Rate::per_second(20).with_burst(3);
    let slack = client_with(&emu, options);

    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..30 {
        let slack = slack.clone();
        let channel = pace.clone();
        tasks.push(tokio::spawn(async move {
            slack
                .chat_post_message(&PostMessage::new(channel, format!("msg {i}")))
                .await
        }));
        // Each task reaches the channel's queue before the next one is spawned, so the
        // call order is the spawn order.
        tokio::task::yield_now().await;
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let elapsed = start.elapsed();
    // 3 free, then one per 50 ms.
    assert!(elapsed >= Duration::from_millis(1300), "{elapsed:?}");
    let want: Vec<String> = (0..30).map(|i| format!("msg {i}")).collect();
    assert_eq!(texts(&emu, &pace), want);
}

#[tokio::test]
async fn pagination_collects_every_page() {
    let mut ws = Workspace::demo();
    let bot = ws.bot_user_id().to_string();
    let mut people = Vec::new();
    for i in 0..40 {
        people.push(ws.add_user(&format!("user{i}"), &format!("User {i}")));
    }
    for i in 0..45 {
        ws.add_channel(&format!("chan-{i}"), false, &[]);
    }
    // Private channels without the bot are filtered after paging, leaving short pages.
    for i in 0..10 {
        ws.add_channel(&format!("hidden-{i}"), true, &[people[0].as_str()]);
    }
    let mut crowd: Vec<&str> = people.iter().map(String::as_str).collect();
    crowd.push(&bot);
    let crowded = ChannelId::from(ws.add_channel("crowded", false, &crowd));
    let emu = Emulator::start(ws).await;
    let slack = client(&emu);

    let public = slack
        .conversations_list_all(&[ConversationKind::Channel])
        .await
        .unwrap();
    let want_public = emu.with_workspace(|w| {
        w.channels()
            .iter()
            .filter(|c| c.kind == ChannelKind::Public)
            .count()
    });
    assert!(want_public > 45);
    assert_eq!(public.len(), want_public);
    assert!(public.iter().all(|c| c.kind() == ConversationKind::Channel));
    assert!(emu.calls("conversations.list").len() >= want_public / 7);

    let all = slack.conversations_list_all(&[]).await.unwrap();
    let want_all = emu.with_workspace(|w| {
        w.channels()
            .iter()
            .filter(|c| c.kind == ChannelKind::Public || w.bot_is_member(c))
            .count()
    });
    assert_eq!(all.len(), want_all);
    assert!(all.iter().any(|c| c.kind() == ConversationKind::Im));
    assert!(all.iter().any(|c| c.kind() == ConversationKind::Mpim));
    assert!(all.iter().any(|c| c.kind() == ConversationKind::Private));

    let users = slack.users_list_all().await.unwrap();
    assert_eq!(users.len(), emu.with_workspace(|w| w.users().len()));
    assert!(users.iter().any(|u| u.name == "user39"));

    let members = slack.conversations_members_all(&crowded).await.unwrap();
    assert_eq!(members.len(), 41);
    assert_eq!(members, emu.members(&crowded));
}

#[tokio::test]
async fn dead_tokens_are_recognised() {
    let emu = Emulator::start(Workspace::demo()).await;
    let bogus = SlackClient::with_options(
        &emu.api_url(),
        Secret::new("xoxb-0-0-nope"),
        Secret::new("xapp-nope"),
        test_options(),
    )
    .unwrap();
    let err = bogus.auth_test().await.unwrap_err();
    assert!(err.is_auth_dead(), "{err:?}");
    assert_eq!(err.code(), Some("invalid_auth"));
    assert!(err.to_string().contains("log in again"), "{err}");
    let err = bogus.apps_connections_open().await.unwrap_err();
    assert!(err.is_auth_dead(), "{err:?}");

    let slack = client(&emu);
    emu.fail_next("auth.test", 1, "account_inactive");
    assert!(slack.auth_test().await.unwrap_err().is_auth_dead());
    slack.auth_test().await.unwrap();

    emu.revoke_bot_token();
    let err = slack.auth_test().await.unwrap_err();
    assert_eq!(err.code(), Some("token_revoked"));
    assert!(err.is_auth_dead());

    // Ordinary failures are not mistaken for dead tokens.
    let err = client(&emu)
        .conversations_info(&"C0NOPE".into())
        .await
        .unwrap_err();
    assert!(err.is_auth_dead(), "revoked token still fails everything");
    let emu2 = Emulator::start(Workspace::demo()).await;
    let err = client(&emu2)
        .conversations_info(&"C0NOPE".into())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("channel_not_found"));
    assert!(!err.is_auth_dead());
}

#[tokio::test]
async fn upload_share_and_download_a_file() {
    let emu = Emulator::start(Workspace::demo()).await;
    let general = ChannelId::from(emu.channel_id("general").unwrap());
    let slack = client(&emu);
    let bytes = b"hello from matrix, thirty bytes".to_vec();

    let file = slack
        .upload_file(UploadRequest {
            filename: "hello.txt".into(),
            title: Some("Hello".into()),
            bytes: bytes.clone(),
            channel_id: Some(general.clone()),
            initial_comment: Some("a file".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(file.title, "Hello");
    assert_eq!(emu.file_bytes(&file.id).unwrap(), bytes);

    let get_url = &emu.calls("files.getUploadURLExternal")[0];
    assert_eq!(get_url.body_kind, BodyKind::Form);
    assert_eq!(get_url.param("filename").as_deref(), Some("hello.txt"));
    assert_eq!(get_url.param("length"), Some(bytes.len().to_string()));

    // The share lands asynchronously as a file_share message.
    let shared = emu
        .wait_for(Duration::from_secs(5), |e| {
            e.messages(&general).into_iter().find(|m| {
                m["files"]
                    .as_array()
                    .is_some_and(|fs| fs.iter().any(|f| f["id"] == file.id.as_str()))
            })
        })
        .await
        .expect("file_share message");
    assert_eq!(shared["text"], "a file");

    let info = slack.files_info(&file.id).await.unwrap();
    assert_eq!(info.name, "hello.txt");
    let url = info.download_url().unwrap().to_string();
    assert_eq!(slack.download_file(&url).await.unwrap(), bytes);
    let private = info.url_private.clone().unwrap();
    assert_eq!(slack.download_file(&private).await.unwrap(), bytes);

    // A bad token gets Slack's sign-in page, which must not pass for the file.
    let bogus = SlackClient::new(
        &emu.api_url(),
        Secret::new("xoxb-wrong"),
        Secret::new("xapp-wrong"),
    )
    .unwrap();
    let err = bogus.download_file(&url).await.unwrap_err();
    assert!(matches!(err, SlackError::FileAuth { .. }), "{err:?}");
    assert!(err.to_string().contains("files:read"), "{err}");

    // So does a token without files:read.
    emu.remove_scopes(&["files:read"]);
    let err = slack.download_file(&url).await.unwrap_err();
    assert!(matches!(err, SlackError::FileAuth { .. }), "{err:?}");
}

#[tokio::test]
async fn apps_connections_open_returns_a_socket_url() {
    let emu = Emulator::start(Workspace::demo()).await;
    let url = client(&emu).apps_connections_open().await.unwrap();
    assert!(url.starts_with("ws://"), "{url}");
    assert!(url.contains("/link/?ticket="), "{url}");
    let call = &emu.calls("apps.connections.open")[0];
    assert_eq!(call.token_kind, TokenKind::App);
    assert!(call.token_in_header);
    assert_eq!(call.body_kind, BodyKind::None);
    assert_eq!(call.http_method, "POST");
}

#[tokio::test]
async fn everyday_methods_round_trip() {
    let emu = Emulator::start(Workspace::demo()).await;
    let slack = client(&emu);
    let general = ChannelId::from(emu.channel_id("general").unwrap());
    let alice = UserId::from(emu.user_id("alice").unwrap());

    let team = slack.team_info().await.unwrap();
    assert_eq!(team.id, emu.team_id());
    assert!(team.icon.best().is_some());

    let info = slack.conversations_info(&general).await.unwrap();
    assert_eq!(info.name, "general");
    assert_eq!(info.topic.value, "Company-wide announcements");
    assert_eq!(info.num_members, Some(5));
    assert!(info.bot_is_member());

    let joined = slack
        .conversations_join(&emu.channel_id("not-bridged").unwrap().into())
        .await
        .unwrap();
    assert!(joined.bot_is_member());

    let user = slack.users_info(&alice).await.unwrap();
    assert_eq!(user.real_name, "Alice Liddell");
    assert!(user.profile.best_image().is_some());

    let bot = slack.bots_info(&emu.bot_id().into()).await.unwrap();
    assert_eq!(bot.app_id.as_deref(), Some(emu.app_id().as_str()));

    let emoji = slack.emoji_list().await.unwrap();
    assert_eq!(emoji["pp"], "alias:partyparrot");

    let history = slack
        .conversations_history(&HistoryQuery {
            channel: general.clone(),
            limit: Some(10),
            ..Default::default()
        })
        .await
        .unwrap();
    let root = history
        .messages
        .iter()
        .find(|m| m.reply_count.unwrap_or(0) > 0)
        .expect("the demo thread")
        .clone();
    let thread = slack
        .conversations_replies(&general, &root.ts, None, None)
        .await
        .unwrap();
    assert_eq!(thread.items[0].ts, root.ts);
    assert!(thread.items[1].is_thread_reply());

    let posted = slack
        .chat_post_message(&PostMessage {
            thread_ts: Some(root.ts.clone()),
            username: Some("Dan (Matrix)".into()),
            icon_url: Some("https://example.com/dan.png".into()),
            blocks: Some(
                serde_json::json!([{"type":"section","text":{"type":"mrkdwn","text":"*hi*"}}]),
            ),
            ..PostMessage::new(&general, "hi")
        })
        .await
        .unwrap();
    let stored = emu.message(&general, &posted.ts).unwrap();
    assert_eq!(stored["username"], "Dan (Matrix)");
    assert_eq!(stored["thread_ts"].as_str(), Some(root.ts.as_str()));

    let updated = slack
        .chat_update(&UpdateMessage {
            channel: general.clone(),
            ts: posted.ts.clone(),
            text: "hi again".into(),
            blocks: None,
        })
        .await
        .unwrap();
    assert_eq!(updated.ts, posted.ts);
    assert_eq!(
        emu.message(&general, &posted.ts).unwrap()["text"],
        "hi again"
    );

    slack
        .reactions_add(&general, &root.ts, ":thumbsup:")
        .await
        .unwrap();
    let reactions = &emu.message(&general, &root.ts).unwrap()["reactions"];
    assert!(
        reactions
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "thumbsup")
    );
    slack
        .reactions_remove(&general, &root.ts, "thumbsup")
        .await
        .unwrap();
    let err = slack
        .reactions_remove(&general, &root.ts, "thumbsup")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("no_reaction"));

    slack.chat_delete(&general, &posted.ts).await.unwrap();
    assert!(emu.message(&general, &posted.ts).is_none());
    for call in emu.all_calls() {
        assert!(call.token_in_header, "{}", call.method);
        assert_ne!(call.body_kind, BodyKind::Json, "{}", call.method);
    }
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn download_redirects_keep_the_token_on_slack_hosts_only() {
    use std::sync::{Arc, Mutex};

    use axum::http::{HeaderMap, StatusCode, header};
    use axum::routing::get;

    // A foreign host that records whether it was sent a token.
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let seen2 = seen.clone();
    let foreign = serve(axum::Router::new().route(
        "/cdn/file.bin",
        get(move |h: HeaderMap| {
            let seen = seen2.clone();
            async move {
                let auth = h
                    .get(header::AUTHORIZATION)
                    .map(|v| v.to_str().unwrap().to_string());
                seen.lock().unwrap().push(auth);
                (
                    [(header::CONTENT_TYPE, "application/octet-stream")],
                    b"cdn bytes".to_vec(),
                )
            }
        }),
    ))
    .await;
    // The "Slack" host: the configured API host, which redirects.
    let to_foreign = format!("{foreign}/cdn/file.bin");
    let slack_host = serve(
        axum::Router::new()
            .route(
                "/files-pri/T-F1/moved.bin",
                get(move || {
                    let to = to_foreign.clone();
                    async move { (StatusCode::FOUND, [(header::LOCATION, to)]) }
                }),
            )
            .route(
                "/files-pri/T-F2/secret.png",
                get(|| async {
                    (
                        StatusCode::FOUND,
                        [(header::LOCATION, "/?redir=%2Ffiles-pri%2FT-F2%2Fsecret.png")],
                    )
                }),
            ),
    )
    .await;
    let slack = SlackClient::new(
        &format!("{slack_host}/api"),
        Secret::new("xoxb-secret"),
        Secret::new("xapp-secret"),
    )
    .unwrap();

    let bytes = slack
        .download_file(&format!("{slack_host}/files-pri/T-F1/moved.bin"))
        .await
        .unwrap();
    assert_eq!(bytes, b"cdn bytes");
    assert_eq!(
        *seen.lock().unwrap(),
        [None],
        "token leaked to a foreign host"
    );

    let err = slack
        .download_file(&format!("{slack_host}/files-pri/T-F2/secret.png"))
        .await
        .unwrap_err();
    assert!(matches!(err, SlackError::FileAuth { .. }), "{err:?}");

    // A file that really is HTML is fine when the caller says so.
    let emu = Emulator::start(Workspace::demo()).await;
    let general = ChannelId::from(emu.channel_id("general").unwrap());
    let alice = UserId::from(emu.user_id("alice").unwrap());
    let id = emu
        .share_file(
            &alice,
            &general,
            "page.html",
            b"<html></html>".to_vec(),
            "text/html",
        )
        .unwrap();
    let file = client(&emu).files_info(&id).await.unwrap();
    let got = client(&emu)
        .download_file_expecting(file.download_url().unwrap(), Some(&file.mimetype))
        .await
        .unwrap();
    assert_eq!(got, b"<html></html>");
}
