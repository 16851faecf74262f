//! The README's first quick-start command: the sandbox example starts a homeserver (Synapse by
//! default, tuwunel with `--homeserver tuwunel`), the emulator and the bridge, and one message
//! makes it each way (`--smoke`); on both homeservers (`synapse::…`, `tuwunel::…`).

mod support;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use testkit::HomeserverKind;

on_both_homeservers!(the_sandbox_bridges_a_message_each_way);

async fn the_sandbox_bridges_a_message_each_way(hs: HomeserverKind) {
    tokio::task::spawn_blocking(move || run_smoke(hs))
        .await
        .unwrap();
}

fn run_smoke(hs: HomeserverKind) {
    // `cargo test` builds the examples next to the test binaries: target/<profile>/examples.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let sandbox = profile_dir.join("examples").join("sandbox");
    assert!(
        sandbox.exists(),
        "{} is missing: build it with `cargo build --example sandbox`",
        sandbox.display()
    );
    let mut cmd = Command::new(&sandbox);
    cmd.arg("--smoke");
    // Synapse is the default: its variant runs the README's command as it is.
    if hs != HomeserverKind::Synapse {
        cmd.args(["--homeserver", hs.name()]);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the sandbox did not finish its smoke test within 5 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sandbox failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("user:     @you:sandbox.local"), "{stdout}");
    assert!(stdout.contains("password: "), "{stdout}");
    assert!(stdout.contains("curl -s -X POST"), "{stdout}");
    assert!(stdout.contains("sandbox smoke test: OK"), "{stdout}");
    assert!(
        stdout.contains("Matrix homeserver: http://127.0.0.1:")
            && stdout.contains(&format!("({} ", hs.name())),
        "{stdout}"
    );
    assert!(stderr.contains("sandbox: stopped"), "{stderr}");
}
