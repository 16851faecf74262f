//! End-to-end tests of the Synapse fixture: these start real Synapse processes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use testkit::{FixtureError, Synapse, SynapseConfig, free_port, shared_synapse};

const AS_TOKEN: &str = "as_token_testkit_0123456789";
const HS_TOKEN: &str = "hs_token_testkit_0123456789";
const WAIT: Duration = Duration::from_secs(10);

/// A hand-written bridge registration, as the bridge's `-g` would produce it.
fn write_registration(dir: &Path, with_url: bool) -> PathBuf {
    let url = if with_url {
        format!("url: http://127.0.0.1:{}\n", free_port())
    } else {
        String::new()
    };
    let yaml = format!(
        "id: slack\n\
         {url}\
         as_token: {AS_TOKEN}\n\
         hs_token: {HS_TOKEN}\n\
         sender_localpart: slackbot\n\
         rate_limited: false\n\
         namespaces:\n  \
           users:\n    \
             - exclusive: true\n      \
               regex: '@slack_.*:test\\.local'\n  \
           aliases: []\n  \
           rooms: []\n"
    );
    let path = dir.join("registration.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// True if some process has `needle` in its command line.
fn process_running(needle: &Path) -> bool {
    Command::new("pgrep")
        .arg("-f")
        .arg(needle)
        .stdout(Stdio::null())
        .status()
        .expect("pgrep (procps) must be installed for this test")
        .success()
}

/// Waits for the process with `needle` in its command line to disappear.
fn wait_gone(needle: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !process_running(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[tokio::test]
async fn appservice_registration_is_loaded() {
    let regdir = tempfile::tempdir().unwrap();
    let registration = write_registration(regdir.path(), true);
    let started = Instant::now();
    let synapse = Synapse::start(SynapseConfig {
        registrations: vec![registration],
        ..SynapseConfig::default()
    })
    .await
    .expect("synapse starts");
    eprintln!(
        "synapse {} started in {:.2} s",
        synapse.version(),
        started.elapsed().as_secs_f64()
    );

    let versions: serde_json::Value =
        reqwest::get(format!("{}/_matrix/client/versions", synapse.base_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert!(
        versions["versions"]
            .as_array()
            .is_some_and(|v| !v.is_empty())
    );

    let bot = synapse.client_with_token(AS_TOKEN).await.unwrap();
    assert_eq!(bot.user_id(), "@slackbot:test.local");
    assert_eq!(bot.whoami().await.unwrap(), "@slackbot:test.local");

    // The exclusive namespace is enforced, which proves Synapse parsed our regex.
    let err = synapse
        .register_user("slack_u1", "pw", false)
        .await
        .unwrap_err();
    assert_eq!(err.errcode(), Some("M_EXCLUSIVE"), "{err}");
}

#[tokio::test]
async fn two_users_exchange_a_message() {
    let synapse = shared_synapse().await.expect("shared synapse starts");
    let alice = synapse.register_unique_user("alice").await.unwrap();
    let bob = synapse.register_unique_user("bob").await.unwrap();
    assert!(alice.user_id().ends_with(":test.local"));

    let room = alice.create_room().await.unwrap();
    alice.invite(&room, bob.user_id()).await.unwrap();
    assert_eq!(bob.join(&room).await.unwrap(), room);
    let event_id = alice.send_text(&room, "hello bob").await.unwrap();

    let seen = bob.wait_for_text(&room, "hello bob", WAIT).await.unwrap();
    assert_eq!(seen["event_id"], event_id.as_str());
    assert_eq!(seen["sender"], alice.user_id());

    let messages = bob.messages(&room, 10).await.unwrap();
    assert_eq!(messages.last().unwrap()["event_id"], event_id.as_str());

    let event = bob.event(&room, &event_id).await.unwrap();
    assert_eq!(event["content"]["body"], "hello bob");

    let state = bob.state(&room).await.unwrap();
    assert!(state.iter().any(|e| e["type"] == "m.room.member"
        && e["state_key"] == bob.user_id()
        && e["content"]["membership"] == "join"));
    let create = bob.state_event(&room, "m.room.create", "").await.unwrap();
    assert!(create.is_object());

    assert!(bob.joined_rooms().await.unwrap().contains(&room));
    let mut members = alice.joined_members(&room).await.unwrap();
    members.sort();
    let mut expected = vec![alice.user_id().to_owned(), bob.user_id().to_owned()];
    expected.sort();
    assert_eq!(members, expected);
}

#[tokio::test]
async fn wait_for_event_times_out_with_a_summary() {
    let synapse = shared_synapse().await.expect("shared synapse starts");
    let carol = synapse.register_unique_user("carol").await.unwrap();
    let room = carol.create_room().await.unwrap();
    carol.send_text(&room, "something else").await.unwrap();
    let err = carol
        .wait_for_text(&room, "never sent", Duration::from_millis(300))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, FixtureError::Timeout { .. }), "{message}");
    assert!(message.contains("something else"), "{message}");
}

#[tokio::test]
async fn rate_limits_are_relaxed() {
    // Synapse's default rc_message allows a burst of 10; 40 quick sends prove the override works.
    let synapse = shared_synapse().await.expect("shared synapse starts");
    let dave = synapse.register_unique_user("dave").await.unwrap();
    let room = dave.create_room().await.unwrap();
    for i in 0..40 {
        dave.send_text(&room, &format!("burst {i}")).await.unwrap();
    }
    // Default rc_room_creation allows 10 in a burst, rc_joins/rc_invites similar.
    for _ in 0..12 {
        dave.create_room().await.unwrap();
    }
}

#[tokio::test]
async fn restart_keeps_port_and_data() {
    let mut synapse = Synapse::start(SynapseConfig::default()).await.unwrap();
    let port = synapse.port();
    let erin = synapse.register_user("erin", "pw", false).await.unwrap();
    let room = erin.create_room().await.unwrap();
    erin.send_text(&room, "before outage").await.unwrap();

    synapse.stop().await;
    assert!(!synapse.is_running());
    assert!(!process_running(synapse.config_path()));
    let err = erin.joined_rooms().await.unwrap_err();
    assert!(matches!(err, FixtureError::Http { .. }), "{err}");

    let started = Instant::now();
    synapse.restart().await.unwrap();
    eprintln!("warm restart took {:.2} s", started.elapsed().as_secs_f64());
    assert_eq!(synapse.port(), port);
    assert!(synapse.is_running());
    // The old access token and room survive: same database.
    assert!(erin.joined_rooms().await.unwrap().contains(&room));
    erin.wait_for_text(&room, "before outage", WAIT)
        .await
        .unwrap();
    erin.send_text(&room, "after outage").await.unwrap();

    // restart() on a running server stops it first.
    synapse.restart().await.unwrap();
    erin.wait_for_text(&room, "after outage", WAIT)
        .await
        .unwrap();
}

#[tokio::test]
async fn drop_leaves_no_process() {
    let synapse = Synapse::start(SynapseConfig::default()).await.unwrap();
    let config = synapse.config_path().to_path_buf();
    let data_dir = synapse.data_dir().to_path_buf();
    assert!(process_running(&config));
    let started = Instant::now();
    drop(synapse);
    eprintln!("drop took {:.2} s", started.elapsed().as_secs_f64());
    assert!(!process_running(&config), "synapse survived drop");
    assert!(!data_dir.exists(), "data dir not removed");
}

#[test]
fn panic_in_a_test_stops_synapse() {
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let synapse = Synapse::start(SynapseConfig::default()).await.unwrap();
            tx.send(synapse.config_path().to_path_buf()).unwrap();
            panic!("simulated test failure with synapse running");
        })
    })
    .join();
    assert!(outcome.is_err(), "the thread should have panicked");
    let config = rx.recv().unwrap();
    assert!(!process_running(&config), "synapse survived the panic");
}

/// Helper for `killed_test_process_takes_synapse_along`: run only as its child process.
#[tokio::test]
#[ignore = "helper: started by killed_test_process_takes_synapse_along"]
async fn helper_start_and_hang() {
    if std::env::var_os("TESTKIT_HELPER").is_none() {
        return;
    }
    let synapse = Synapse::start(SynapseConfig::default()).await.unwrap();
    println!("CONFIG={}", synapse.config_path().display());
    tokio::time::sleep(Duration::from_secs(300)).await;
}

#[test]
fn killed_test_process_takes_synapse_along() {
    // SIGKILL skips every destructor; only the parent-death signal can clean up here.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_start_and_hang",
            "--ignored",
            "--nocapture",
        ])
        .env("TESTKIT_HELPER", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let config = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("CONFIG=").map(PathBuf::from))
        .expect("helper printed its config path");
    assert!(process_running(&config));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        wait_gone(&config, Duration::from_secs(5)),
        "synapse outlived its SIGKILLed parent"
    );
}

#[tokio::test]
async fn invalid_registration_shows_the_log_tail() {
    let regdir = tempfile::tempdir().unwrap();
    let registration = write_registration(regdir.path(), false);
    let err = Synapse::start(SynapseConfig {
        registrations: vec![registration],
        ..SynapseConfig::default()
    })
    .await
    .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, FixtureError::StartupExited { .. }),
        "{message}"
    );
    assert!(message.contains("'url'"), "{message}");
}

#[tokio::test]
async fn missing_registration_is_reported_before_start() {
    let err = Synapse::start(SynapseConfig {
        registrations: vec!["/nonexistent/registration.yaml".into()],
        ..SynapseConfig::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, FixtureError::RegistrationMissing(_)), "{err}");
}

#[tokio::test]
async fn custom_server_name_and_fixed_port() {
    let port = free_port();
    let synapse = Synapse::start(SynapseConfig {
        server_name: "other.test".into(),
        port: Some(port),
        extra_config: json!({ "enable_authenticated_media": true })
            .as_object()
            .unwrap()
            .clone(),
        ..SynapseConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(synapse.port(), port);
    assert_eq!(synapse.server_name(), "other.test");
    let admin = synapse.register_user("root", "pw", true).await.unwrap();
    assert_eq!(admin.user_id(), "@root:other.test");
    // Only admins may use the admin API: proves `admin: true` went through the MAC.
    let me = admin
        .get("/_synapse/admin/v2/users/@root:other.test")
        .await
        .unwrap();
    assert_eq!(me["admin"], true);
}

#[tokio::test]
async fn occupied_fixed_port_is_reported() {
    // The same log line drives start()'s retry when a port it picked itself was taken.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let err = Synapse::start(SynapseConfig {
        port: Some(port),
        ..SynapseConfig::default()
    })
    .await
    .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("Address already in use"), "{message}");
}
