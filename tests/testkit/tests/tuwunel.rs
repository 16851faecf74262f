//! End-to-end tests of the tuwunel fixture: these start real tuwunel processes. Without the
//! binary they print a NOT RUN line (and fail under `CI`), like every tuwunel variant.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::{Tuwunel, TuwunelConfig, free_port, tuwunel_or_skip};

const WAIT: Duration = Duration::from_secs(10);

fn registration(dir: &Path, id: &str, localpart: &str, prefix: &str) -> (PathBuf, String) {
    let token = format!("as_{id}_0123456789");
    let yaml = format!(
        "id: {id}\n\
         url: http://127.0.0.1:{}\n\
         as_token: {token}\n\
         hs_token: hs_{id}_0123456789\n\
         sender_localpart: {localpart}\n\
         rate_limited: false\n\
         namespaces:\n  \
           users:\n    \
             - exclusive: true\n      \
               regex: '^@{prefix}_.*:test\\.local$'\n    \
             - exclusive: true\n      \
               regex: '^@{localpart}:test\\.local$'\n  \
           aliases: []\n  \
           rooms: []\n",
        free_port()
    );
    let path = dir.join(format!("{id}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    (path, token)
}

fn process_running(needle: &Path) -> bool {
    Command::new("pgrep")
        .arg("-f")
        .arg(needle)
        .stdout(Stdio::null())
        .status()
        .expect("pgrep (procps) must be installed for this test")
        .success()
}

/// Both ways of registering an appservice: the config table (read at start; the sender user is
/// not created by tuwunel < 1.6.0) and the admin room (effective at once, user created).
#[tokio::test]
async fn registrations_through_the_config_and_the_admin_room() {
    if tuwunel_or_skip("registrations_through_the_config_and_the_admin_room").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (file, file_token) = registration(dir.path(), "fromfile", "filebot", "ff");
    let started = Instant::now();
    let tuwunel = Tuwunel::start(TuwunelConfig {
        registrations: vec![file],
        ..TuwunelConfig::default()
    })
    .await
    .expect("tuwunel starts");
    eprintln!(
        "tuwunel {} started in {:.2} s",
        tuwunel.version(),
        started.elapsed().as_secs_f64()
    );
    // The first user is the admin and sits in #admins.
    let admin = tuwunel.admin();
    assert_eq!(admin.user_id(), "@admin:test.local");
    let admins = admin.join("#admins:test.local").await.unwrap();
    assert!(admin.joined_rooms().await.unwrap().contains(&admins));

    // The config-file registration is loaded: its namespace is exclusive.
    let err = tuwunel
        .register_user("ff_someone", "pw", false)
        .await
        .unwrap_err();
    assert_eq!(err.errcode(), Some("M_EXCLUSIVE"), "{err}");

    // The admin-room registration works at once, bot user included.
    let (_, yaml_token) = registration(dir.path(), "fromroom", "roombot", "rr");
    let yaml = std::fs::read_to_string(dir.path().join("fromroom.yaml")).unwrap();
    let reply = tuwunel
        .register_appservice_in_admin_room(&yaml)
        .await
        .unwrap();
    assert!(reply.contains("fromroom"), "{reply}");
    let bot = tuwunel.client_with_token(&yaml_token).await.unwrap();
    assert_eq!(bot.user_id(), "@roombot:test.local");

    // The config-file one answers for its token, once the bot registered itself (1.4.6).
    let file_bot = testkit::TestClient::new(tuwunel.base_url(), "", &file_token);
    if let Err(e) = file_bot.whoami().await {
        assert_eq!(e.errcode(), Some("M_NOT_FOUND"), "{e}");
        file_bot
            .post(
                "/_matrix/client/v3/register",
                &serde_json::json!({"type": "m.login.application_service", "username": "filebot"}),
            )
            .await
            .unwrap();
    }
    assert_eq!(file_bot.whoami().await.unwrap(), "@filebot:test.local");
}

#[tokio::test]
async fn users_talk_and_a_restart_keeps_the_data() {
    if tuwunel_or_skip("users_talk_and_a_restart_keeps_the_data").is_none() {
        return;
    }
    let mut tuwunel = Tuwunel::start(TuwunelConfig::default()).await.unwrap();
    let alice = tuwunel.register_unique_user("alice").await.unwrap();
    let bob = tuwunel.register_user("bob", "pw-bob", false).await.unwrap();
    let room = alice.create_room().await.unwrap();
    alice.invite(&room, bob.user_id()).await.unwrap();
    bob.join(&room).await.unwrap();
    alice.send_text(&room, "before restart").await.unwrap();
    let port = tuwunel.port();
    tuwunel.restart().await.unwrap();
    assert_eq!(tuwunel.port(), port);
    bob.wait_for_text(&room, "before restart", WAIT)
        .await
        .unwrap();
    bob.send_text(&room, "after restart").await.unwrap();
    alice
        .wait_for_text(&room, "after restart", WAIT)
        .await
        .unwrap();
}

#[tokio::test]
async fn drop_leaves_no_process_and_no_files() {
    if tuwunel_or_skip("drop_leaves_no_process_and_no_files").is_none() {
        return;
    }
    let tuwunel = Tuwunel::start(TuwunelConfig::default()).await.unwrap();
    let config = tuwunel.config_path().to_path_buf();
    let data_dir = tuwunel.data_dir().to_path_buf();
    assert!(process_running(&config));
    drop(tuwunel);
    assert!(!process_running(&config), "tuwunel survived drop");
    assert!(!data_dir.exists(), "data dir not removed");
}
