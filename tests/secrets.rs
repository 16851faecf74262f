//! No secret in any log line, at trace level for every crate: the bridge binary logs in by
//! command (once with wrong tokens), links a Slack user account through OAuth (after a refused
//! user token), brings that account's Slack message as the user's double puppet, moves files
//! both ways (with a failed download and a failed upload on the way), and its whole log is
//! searched for every token, the OAuth client secret and code, the double-puppet as_token, every
//! pre-signed upload URL, every private file URL and every Socket Mode URL it was handed.

mod support;

use serde_json::json;
use slack_emulator::Workspace;
use support::{
    bridge::EnvOptions,
    process::BridgeProcess,
    world::{WAIT, body, management_room_of, poll, wait_after, world_with_env},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_reaches_the_log_at_trace_level() {
    let opts = EnvOptions {
        double_puppet: true,
        ..EnvOptions::default()
    };
    let w = world_with_env(Workspace::demo(), None, false, opts).await;
    let (client_id, client_secret) = w.emu.oauth_client();
    w.env.edit_config(
        "    client_id: \"\"",
        &format!("    client_id: \"{client_id}\"\n    client_secret: \"{client_secret}\""),
    );
    let redirect = "https://bridge.example.org/slack-approved";
    w.env.edit_config(
        "    redirect_url: \"\"",
        &format!("    redirect_url: \"{redirect}\""),
    );
    let bridge = BridgeProcess::start_logging(&w.env, "trace").await;
    let dm = management_room_of(&w.owner).await;

    // A login with tokens Slack refuses, then the right one.
    let (wrong_bot, wrong_app) = (
        "xoxb-1-2-WRONGwrongWRONGwrong",
        "xapp-1-A1-3-WRONGwrongWRONGwrong",
    );
    let refused = w
        .command(&dm, &format!("login {wrong_app} {wrong_bot}"))
        .await;
    assert!(
        !body(&refused).contains("Logged in"),
        "wrong tokens were accepted: {refused}"
    );
    w.login_by_command(&dm).await;

    // A user token Slack refuses, then a Slack account linked through OAuth.
    let wrong_user = "xoxp-1-2-3-WRONGwrongWRONGwrong";
    let answer = async |text: String| {
        let sent = w.owner.send_text(&dm, &text).await.unwrap();
        wait_after(&w.owner, &dm, &sent, |e| {
            e["content"]["msgtype"] == "m.notice"
        })
        .await
        .expect("an answer")
    };
    let refused = answer(format!("login-user {wrong_user}")).await;
    assert!(body(&refused).contains("refused"), "{refused}");
    let code = w.emu.authorize_user("dave", &["chat:write"], redirect);
    let linked = answer(format!("login-user {redirect}?code={code}")).await;
    assert!(
        body(&linked).contains("Linked your Slack account"),
        "{linked}"
    );
    let user_token = w.emu.calls("oauth.v2.access")[0].response["authed_user"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;
    let alice = w.emu.user_id("alice").unwrap();

    // The linked account writes on Slack: it comes from the owner's account (the
    // double-puppet appservice's token).
    let dave = w.emu.user_id("dave").unwrap();
    w.emu
        .post_message(&dave, &general, "as my own account")
        .unwrap();
    let own = w
        .owner
        .wait_for_text(&room, "as my own account", WAIT)
        .await
        .unwrap();
    assert_eq!(own["sender"], w.owner.user_id());

    // Slack → Matrix: one file whose first download fails, one that goes through.
    w.emu.fail_status("files.download", 1, 500);
    for name in ["first.bin", "second.bin"] {
        w.emu
            .share_file(
                &alice,
                &general,
                name,
                vec![7; 5000],
                "application/octet-stream",
            )
            .unwrap();
        w.owner
            .wait_for_event(&room, |e| body(e) == name, WAIT)
            .await
            .unwrap();
    }

    // Matrix → Slack: one whose completion fails once, one that goes through.
    w.emu.fail_status("files.completeUploadExternal", 1, 500);
    for name in ["up-one.bin", "up-two.bin"] {
        let mxc = w
            .owner
            .upload(vec![9; 4000], "application/octet-stream", name)
            .await
            .unwrap();
        w.owner
            .send_event(
                &room,
                "m.room.message",
                &json!({"msgtype": "m.file", "body": name, "url": mxc, "info": {"size": 4000}}),
            )
            .await
            .unwrap();
        poll(&format!("{name} on Slack"), WAIT, async || {
            w.emu
                .messages(&general)
                .iter()
                .any(|m| m["files"][0]["name"] == name)
                .then_some(())
        })
        .await;
    }
    bridge.stop_and_check_exit().await;

    let log = std::fs::read_dir(w.env.dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("bridge-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    assert!(
        log.contains("TRACE"),
        "the log is at trace level:\n{}",
        &log[..log.len().min(2000)]
    );

    let config = w.env.config();
    let token = |t: Option<slack_bridge::config::Secret>| t.unwrap().expose().to_owned();
    let key_file = config.database.key_file();
    let mut secrets: Vec<(String, String)> = vec![
        ("the bot token".into(), w.emu.bot_token()),
        ("the app token".into(), w.emu.app_token()),
        ("a refused bot token".into(), wrong_bot.into()),
        ("a refused app token".into(), wrong_app.into()),
        ("a refused user token".into(), wrong_user.into()),
        ("a linked user's token".into(), user_token),
        ("the OAuth client secret".into(), client_secret),
        ("an OAuth code".into(), code),
        (
            "the as_token".into(),
            token(config.appservice.as_token.clone()),
        ),
        (
            "the hs_token".into(),
            token(config.appservice.hs_token.clone()),
        ),
        (
            "the encryption key".into(),
            std::fs::read_to_string(&key_file)
                .unwrap()
                .trim()
                .to_owned(),
        ),
    ];
    let puppet = &config.bridge.double_puppet.secrets["test.local"];
    let puppet = puppet.expose().strip_prefix("as_token:").unwrap();
    secrets.push(("the double-puppet as_token".into(), puppet.to_owned()));
    // (Dave's token has no files:write: his files go through the relay.)
    for call in w.emu.calls("files.getUploadURLExternal") {
        if let Some(url) = call.response["upload_url"].as_str() {
            secrets.push(("a pre-signed upload URL".into(), url.to_owned()));
        }
    }
    for call in w.emu.calls("apps.connections.open") {
        if let Some(url) = call.response["url"].as_str() {
            secrets.push(("a Socket Mode URL".into(), url.to_owned()));
        }
    }
    for m in w.emu.messages(&general) {
        for f in m["files"].as_array().into_iter().flatten() {
            for key in ["url_private", "url_private_download"] {
                if let Some(url) = f[key].as_str() {
                    secrets.push((format!("a file's {key}"), url.to_owned()));
                }
            }
        }
    }
    assert!(
        secrets
            .iter()
            .filter(|(what, _)| what.contains("upload URL"))
            .count()
            >= 2
            && secrets
                .iter()
                .filter(|(what, _)| what.contains("url_private"))
                .count()
                >= 8
            && secrets.iter().any(|(what, _)| what.contains("Socket Mode")),
        "the run handed the bridge upload, file and socket URLs: {secrets:#?}"
    );
    let leaks: Vec<String> = secrets
        .iter()
        .filter(|(_, s)| log.contains(s.as_str()))
        .map(|(what, s)| {
            let line = log.lines().find(|l| l.contains(s.as_str())).unwrap();
            let at = line.find(s.as_str()).unwrap();
            let from = line.floor_char_boundary(at.saturating_sub(400));
            let head = &line[..line.floor_char_boundary(600)];
            format!("{what} ({s}) in: {head} … {}", &line[from..])
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "secrets in the log:\n{}",
        leaks.join("\n")
    );
    // The login's socket logs under the login, not under the `login` command that started it.
    let plain = strip_ansi(&log);
    let socket_lines: Vec<&str> = plain
        .lines()
        .filter(|l| l.contains("task=\"slack socket\""))
        .collect();
    assert!(!socket_lines.is_empty(), "no socket log lines");
    for line in socket_lines {
        assert!(
            line.contains("login{team=") && !line.contains("queue item"),
            "{line}"
        );
    }
    // The private file paths, whatever their host.
    let private = log.lines().find(|l| l.contains("/files-pri/"));
    assert_eq!(private, None, "a private file path in the log");
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
