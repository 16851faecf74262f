//! What an operator sees about the Slack side: `doctor` naming missing scopes (with what
//! breaks) and a revoked app-level token, in text and `--json`; and a running bridge whose
//! Slack app sends no message events saying so, via `ping`, within two minutes of a new
//! Slack message in a portal channel.

mod support;

use std::{process::Command, time::Duration};

use serde_json::Value;
use slack_emulator::{Emulator, Workspace};
use support::world::{body, world};

const BIN: &str = env!("CARGO_BIN_EXE_slack-bridge");

/// A config with a declarative login against the emulator and a homeserver that is not
/// there (the Slack checks run regardless of the homeserver's).
fn doctor_config(dir: &std::path::Path, emu: &Emulator) -> std::path::PathBuf {
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.yaml"),
    )
    .unwrap();
    let dead = testkit::free_port();
    let text = example
        .replacen("  domain: example.com", "  domain: doctor.test", 1)
        .replacen(
            "  address: http://127.0.0.1:8008",
            &format!("  address: http://127.0.0.1:{dead}"),
            1,
        )
        .replacen("  as_token: generate", "  as_token: as-token-aaaaaaaa", 1)
        .replacen("  hs_token: generate", "  hs_token: hs-token-bbbbbbbb", 1)
        .replacen(
            "  uri: sqlite://slack-bridge.db",
            &format!("  uri: sqlite://{}/bridge.db", dir.display()),
            1,
        )
        .replacen(
            "  api_url: https://slack.com/api",
            &format!("  api_url: {}", emu.api_url()),
            1,
        )
        .replacen(
            "  logins: []",
            &format!(
                "  logins:\n    - bot_token: {}\n      app_token: {}\n      owner: \"@dan:doctor.test\"",
                emu.bot_token(),
                emu.app_token()
            ),
            1,
        );
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn doctor(config: &std::path::Path, json: bool) -> (Option<i32>, String) {
    let mut args = vec!["doctor", "-c", config.to_str().unwrap()];
    if json {
        args.push("--json");
    }
    let out = Command::new(BIN)
        .args(&args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn check<'a>(report: &'a Value, suffix: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"].as_str().is_some_and(|n| n.ends_with(suffix)))
        .unwrap_or_else(|| panic!("no check ending in {suffix:?} in {report:#}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_names_missing_scopes_and_a_revoked_app_token() {
    let emu = Emulator::start(Workspace::demo()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = doctor_config(dir.path(), &emu);
    // The app as `slack-bridge manifest` creates it.
    emu.set_scopes(&slack_bridge::slack::manifest::bot_scope_names());

    // A healthy Slack app: every Slack check passes (the absent homeserver still fails).
    let c = config.clone();
    let (code, out) = tokio::task::spawn_blocking(move || doctor(&c, true))
        .await
        .unwrap();
    assert_ne!(code, Some(0), "the homeserver check fails: {out}");
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(report["ok"], false);
    assert_eq!(check(&report, "homeserver")["ok"], false);
    let auth = check(&report, "bot token (auth.test)");
    assert_eq!(auth["ok"], true, "{auth}");
    assert_eq!(auth["team"], emu.team_id().as_str());
    assert!(
        auth["detail"]
            .as_str()
            .unwrap()
            .contains(&emu.bot_user_id()),
        "{auth}"
    );
    assert_eq!(check(&report, "scopes")["ok"], true);
    let app = check(&report, "app token (apps.connections.open)");
    assert_eq!(app["ok"], true, "{app}");
    assert!(
        app["detail"].as_str().unwrap().contains("Slack says hello"),
        "the Socket Mode connection itself was tried: {app}"
    );

    // Two scopes short and the app-level token revoked.
    emu.remove_scopes(&["chat:write.customize", "reactions:read"]);
    emu.revoke_app_token();
    let c = config.clone();
    let (code, out) = tokio::task::spawn_blocking(move || doctor(&c, true))
        .await
        .unwrap();
    assert_ne!(code, Some(0), "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let scopes = check(&report, "scopes");
    assert_eq!(scopes["ok"], false);
    let missing: Vec<(&str, &str)> = scopes["missing_scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["scope"].as_str().unwrap(), m["breaks"].as_str().unwrap()))
        .collect();
    assert_eq!(
        missing,
        [
            (
                "chat:write.customize",
                "showing the Matrix sender's name and avatar on relayed messages"
            ),
            ("reactions:read", "reactions made on Slack"),
        ]
    );
    let app = check(&report, "app token (apps.connections.open)");
    assert_eq!(app["ok"], false);
    let detail = app["detail"].as_str().unwrap();
    assert!(
        detail.contains("invalid_auth") && detail.contains("revoked"),
        "{detail}"
    );
    assert!(detail.contains("connections:write"), "{detail}");

    // The same in text, one line each.
    let c = config.clone();
    let (code, out) = tokio::task::spawn_blocking(move || doctor(&c, false))
        .await
        .unwrap();
    assert_ne!(code, Some(0), "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("slack.logins.0: scopes"))
        .unwrap_or_else(|| panic!("no scopes line in:\n{out}"));
    assert!(line.starts_with("[FAIL]"), "{line}");
    assert!(
        line.contains("chat:write.customize (without it: showing the Matrix sender's name"),
        "{line}"
    );
    assert!(line.contains("slack-bridge manifest"), "{line}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("[FAIL] slack.logins.0: app token")),
        "{out}"
    );
    // What could not be checked is said, not skipped in silence.
    assert!(
        out.contains(
            "slack.logins.0: events not judged: that needs the database and the homeserver"
        ),
        "{out}"
    );

    // A revoked bot token is named too.
    emu.revoke_bot_token();
    let c = config.clone();
    let (_, out) = tokio::task::spawn_blocking(move || doctor(&c, true))
        .await
        .unwrap();
    let report: Value = serde_json::from_str(&out).unwrap();
    let auth = check(&report, "bot token (auth.test)");
    assert_eq!(auth["ok"], false);
    assert!(
        auth["detail"].as_str().unwrap().contains("token_revoked"),
        "{auth}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slack_app_without_event_subscriptions_is_reported() {
    let w = world(testkit::HomeserverKind::Synapse, Workspace::demo()).await;
    w.env
        .edit_config("  event_check_interval: 60", "  event_check_interval: 1");
    // The app is installed and Socket Mode works, but no bot event is subscribed.
    w.emu.set_bot_events(&[]);
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    w.room_of(&general).await;
    let mgmt = w.management_room().await;
    let answer = w.command(&mgmt, "ping").await;
    assert!(
        !body(&answer).contains("not sending events"),
        "nothing is claimed before a message was missed: {}",
        body(&answer)
    );

    let alice = w.emu.user_id("alice").unwrap();
    w.emu
        .post_message(&alice, &general, "does anyone hear me?")
        .unwrap();
    let posted = std::time::Instant::now();
    let deadline = posted + Duration::from_secs(120);
    let report = loop {
        let answer = w.command(&mgmt, "ping").await;
        let text = body(&answer).to_owned();
        if text.contains("Slack is not sending events") {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "two minutes after a Slack message the bridge still does not say that Slack sends no events; ping says:\n{text}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert!(report.contains("message.channels"), "{report}");
    assert!(report.contains("slack-bridge manifest"), "{report}");
    assert!(report.contains(general.as_str()), "{report}");

    // doctor, next to the running bridge, finds the same from the store.
    let cfg = w.env.config_path.clone();
    let reg = w.env.registration_path.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["doctor", "--json", "-c"])
            .arg(&cfg)
            .arg("-r")
            .arg(&reg)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let events = check(&report, ": events");
    assert_eq!(events["ok"], false, "{events}");
    assert!(
        events["detail"]
            .as_str()
            .unwrap()
            .contains("message.channels"),
        "{events}"
    );

    // The operator subscribes the events (pastes the manifest): the next message arrives,
    // and ping stops claiming anything.
    w.emu
        .set_bot_events(slack_bridge::slack::manifest::BOT_EVENTS);
    w.emu.post_message(&alice, &general, "and now?").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let answer = w.command(&mgmt, "ping").await;
        if !body(&answer).contains("not sending events") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the finding never cleared after the events were subscribed: {}",
            body(&answer)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    bridge.stop().await.unwrap();
}
