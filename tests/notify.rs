//! The bridge under systemd's eyes: a fake `NOTIFY_SOCKET` sees `STATUS=` lines, `READY=1`
//! only once the startup checks passed (never when they fail), `WATCHDOG=1` pings when
//! `WATCHDOG_USEC` asks for them, the Slack connection, and `STOPPING=1`; stderr given as the "journal"
//! (`JOURNAL_STREAM`) gets JSON logs naming the config, database and homeserver.

mod support;

use std::{
    io::Read,
    os::unix::{fs::MetadataExt, net::UnixDatagram},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use support::bridge::{Env, EnvOptions};

const BIN: &str = env!("CARGO_BIN_EXE_slack-bridge");

/// What the fake systemd received, in order.
struct FakeSystemd {
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    received: Vec<String>,
}

impl FakeSystemd {
    fn new() -> FakeSystemd {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        FakeSystemd {
            socket,
            _dir: dir,
            path,
            received: Vec::new(),
        }
    }

    /// Receives until `pred` holds for a message (returning its index) or the deadline.
    fn wait_for(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> usize {
        self.wait_until(what, timeout, |all| all.iter().position(|m| pred(m)))
    }

    /// Receives until `done` returns something for what arrived so far, or the deadline.
    fn wait_until<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[String]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = done(&self.received) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "systemd never got {what}; it got {:?}",
                self.received
            );
            let mut buf = [0u8; 4096];
            if let Ok(n) = self.socket.recv(&mut buf) {
                self.received
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }

    /// Everything still queued, without waiting.
    fn drain(&mut self) {
        self.socket.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.socket.recv(&mut buf) {
            self.received
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        self.socket.set_nonblocking(false).unwrap();
    }
}

/// Starts the bridge binary as systemd would: NOTIFY_SOCKET, WATCHDOG_USEC, and stderr on
/// a stream named by JOURNAL_STREAM. Returns the child and its collected stderr.
fn start(env: &Env, systemd: &FakeSystemd, watchdog: Duration) -> (Child, Arc<Mutex<String>>) {
    let (mut reader, writer) = std::io::pipe().unwrap();
    let meta = std::fs::metadata(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&writer)
    ))
    .unwrap();
    let child = Command::new(BIN)
        .arg("-c")
        .arg(&env.config_path)
        .arg("-r")
        .arg(&env.registration_path)
        .env_remove("RUST_LOG")
        .env("NOTIFY_SOCKET", &systemd.path)
        .env("WATCHDOG_USEC", watchdog.as_micros().to_string())
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(writer)
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (child, log)
}

fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the bridge did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_after_the_checks_then_watchdog_pings() {
    let emu = slack_emulator::Emulator::start(slack_emulator::Workspace::demo()).await;
    let env = Env::start_with(EnvOptions {
        slack_api_url: Some(emu.api_url()),
        login: Some((
            emu.bot_token(),
            emu.app_token(),
            format!("@dan:{}", support::bridge::DOMAIN),
        )),
        ..EnvOptions::default()
    })
    .await;
    let mut systemd = FakeSystemd::new();
    let (mut child, log) = start(&env, &systemd, Duration::from_millis(400));
    let ready = tokio::task::block_in_place(|| {
        systemd.wait_for("READY=1", Duration::from_secs(60), |m| {
            m.lines().any(|l| l == "READY=1")
        })
    });
    // Everything before READY=1 was a status line about starting.
    let before = &systemd.received[..ready];
    assert!(
        before.iter().any(|m| m.contains("STATUS=starting")),
        "{before:?}"
    );
    assert!(before.iter().all(|m| !m.contains("READY")), "{before:?}");
    assert!(
        systemd.received[ready].contains("STATUS=running; 1 Slack login(s) started"),
        "{:?}",
        systemd.received[ready]
    );
    // `systemctl status` follows the Slack connection.
    tokio::task::block_in_place(|| {
        systemd.wait_for(
            "the Slack connection in STATUS=",
            Duration::from_secs(30),
            |m| m == "STATUS=1 of 1 Slack login(s) connected",
        )
    });
    // The checks had passed when READY=1 was sent: their log lines were written before it
    // (the bridge logs, then notifies, so the pipe already holds them; the reader thread
    // may need a moment to copy them out). That READY=1 depends on the checks is shown by
    // `no_ready_when_a_startup_check_fails`.
    for line in [
        "homeserver accepted the as_token",
        "homeserver reached the bridge (appservice ping)",
    ] {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !log.lock().unwrap().contains(line) {
            assert!(
                Instant::now() < deadline,
                "{line:?} not logged before READY=1:\n{}",
                log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Then the watchdog is fed, repeatedly.
    tokio::task::block_in_place(|| {
        systemd.wait_until(
            "three WATCHDOG=1 after READY=1",
            Duration::from_secs(10),
            |all| {
                let pings = all[ready..].iter().filter(|m| *m == "WATCHDOG=1").count();
                (pings >= 3).then_some(())
            },
        )
    });
    tokio::task::block_in_place(|| {
        // SIGTERM, as systemctl stop does.
        Command::new("kill")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        let status = wait_exit(&mut child, Duration::from_secs(30));
        assert!(status.success(), "{status:?}");
        systemd.drain();
    });
    assert!(
        systemd.received.iter().any(|m| m.contains("STOPPING=1")),
        "{:?}",
        systemd.received
    );

    // Under the "journal" the logs are JSON, and the first names what this process uses.
    let text = log.lock().unwrap().clone();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap())
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"));
    assert_eq!(first["message"], "starting slack-bridge", "{first}");
    assert_eq!(
        first["config"],
        env.config_path.to_str().unwrap(),
        "{first}"
    );
    assert!(
        first["database"].as_str().unwrap().starts_with("sqlite://"),
        "{first}"
    );
    assert!(
        first["homeserver"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"),
        "{first}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_ready_when_a_startup_check_fails() {
    // The registration points at a port nothing listens on: the appservice ping fails.
    let env = Env::start_with(EnvOptions {
        registration_url_port: Some(testkit::free_port()),
        ..EnvOptions::default()
    })
    .await;
    let mut systemd = FakeSystemd::new();
    let (mut child, log) = start(&env, &systemd, Duration::from_secs(10));
    let status = tokio::task::block_in_place(|| {
        let status = wait_exit(&mut child, Duration::from_secs(120));
        systemd.drain();
        status
    });
    assert_eq!(status.code(), Some(1), "{}", log.lock().unwrap());
    assert!(
        systemd
            .received
            .iter()
            .any(|m| m.contains("STATUS=starting")),
        "{:?}",
        systemd.received
    );
    assert!(
        systemd.received.iter().all(|m| !m.contains("READY=1")),
        "READY=1 although the ping failed: {:?}",
        systemd.received
    );
}
