//! The bridge as the operator runs it: the `slack-bridge` binary in its own process, so tests
//! can SIGKILL it mid-work (a crash) or SIGTERM it (systemd's stop) and watch what follows.

use std::{
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use super::bridge::Env;

pub struct BridgeProcess {
    child: Option<Child>,
    log: std::path::PathBuf,
}

impl BridgeProcess {
    /// Starts the bridge with the env's config and waits until it serves `/ready` (its
    /// startup checks passed); panics with its log when it exits first.
    pub async fn start(env: &Env) -> BridgeProcess {
        Self::start_logging(env, "slack_bridge=debug,info").await
    }

    /// [`Self::start`] with `RUST_LOG` set to `filter`.
    pub async fn start_logging(env: &Env, filter: &str) -> BridgeProcess {
        let n = std::fs::read_dir(env.dir.path()).map_or(0, |d| d.count());
        let log = env.dir.path().join(format!("bridge-{n}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_slack-bridge"))
            .arg("-c")
            .arg(&env.config_path)
            .arg("-r")
            .arg(&env.registration_path)
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start the slack-bridge binary");
        let mut p = BridgeProcess {
            child: Some(child),
            log,
        };
        let url = format!("http://127.0.0.1:{}/health", env.as_port);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = p.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the bridge exited at start ({status}):\n{}", p.log_text());
            }
            if reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "the bridge did not come up:\n{}",
                p.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The process ID, while it runs.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: a crash, no chance to finish anything.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then the exit status (SIGKILL after 30 s).
    pub async fn terminate(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the bridge ignored SIGTERM for 30 s:\n{}", self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM and a clean exit (status 0).
    pub async fn stop_and_check_exit(self) {
        let log = self.log.clone();
        let status = self.terminate().await;
        assert!(
            status.success(),
            "the bridge exited with {status}:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
