//! The `Synapse` fixture: writes a test homeserver config into a fresh temp dir, runs Synapse from
//! the cached venv, waits until it serves the client API, registers users, and stops it again.

use std::fs::{self, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha1::Sha1;

use crate::client::{http_client, send_json, string_field};
use crate::process::{
    Startup, pid_alive, random_bytes, random_hex, spawn_guarded, stop_async, stop_blocking,
    wait_until_serving,
};
use crate::venv::{ensure_venv, last_lines};
use crate::{FixtureError, TestClient};

/// How long Synapse may take to answer `/versions` (it needs ~1.2 s on an idle 2-core box; a box
/// busy compiling can be 10x slower).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Grace period between SIGTERM and SIGKILL (a clean shutdown takes ~1.2 s).
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Lines of log included in startup errors.
const ERROR_LOG_LINES: usize = 40;
/// Set to keep the temp dir (config, database, logs) after the fixture is dropped.
pub const KEEP_DIR_ENV: &str = "TESTKIT_KEEP_SYNAPSE_DIR";
/// Prefix of fixture temp dirs in the system temp dir: `testkit-synapse-<pid>-<random>`.
const DIR_PREFIX: &str = "testkit-synapse-";

/// How to start a [`Synapse`].
#[derive(Debug, Clone)]
pub struct SynapseConfig {
    /// The homeserver's `server_name` (user IDs end in `:server_name`). Default `test.local`.
    pub server_name: String,
    /// Appservice registration YAML files (`app_service_config_files`). They must exist before
    /// start: Synapse reads them only at startup, and an invalid one aborts startup.
    pub registrations: Vec<PathBuf>,
    /// Port of the client listener on 127.0.0.1; `None` picks a free one. Kept across restarts.
    pub port: Option<u16>,
    /// Extra top-level homeserver.yaml keys, applied last (they override the fixture's values),
    /// e.g. `experimental_features` or `use_appservice_legacy_authorization`.
    pub extra_config: serde_json::Map<String, Value>,
}

impl Default for SynapseConfig {
    fn default() -> Self {
        SynapseConfig {
            server_name: "test.local".into(),
            registrations: Vec::new(),
            port: None,
            extra_config: serde_json::Map::new(),
        }
    }
}

/// A running (or stopped, restartable) Synapse on 127.0.0.1 with its own data dir.
///
/// Dropping it stops the process (SIGTERM, then SIGKILL after 5 s) and deletes the data dir. The
/// process also dies with the test binary, however that ends (see `process.rs`).
#[derive(Debug)]
pub struct Synapse {
    server_name: String,
    port: u16,
    port_was_chosen: bool,
    /// `Option` only so `Drop` can keep it when [`KEEP_DIR_ENV`] is set.
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
    config_path: PathBuf,
    log_path: PathBuf,
    stdio_path: PathBuf,
    python: PathBuf,
    synapse_version: String,
    shared_secret: String,
    registrations: Vec<PathBuf>,
    extra_config: serde_json::Map<String, Value>,
    child: Option<Child>,
    http: reqwest::Client,
}

impl Synapse {
    /// Prepares the venv (first run: `pip install`, a minute or two), writes a fresh config and
    /// starts Synapse; returns once `/_matrix/client/versions` answers.
    pub async fn start(cfg: SynapseConfig) -> Result<Synapse, FixtureError> {
        for registration in &cfg.registrations {
            if !registration.is_file() {
                return Err(FixtureError::RegistrationMissing(registration.clone()));
            }
        }
        // pip and flock block for a long time; keep the test's runtime responsive meanwhile.
        let venv = tokio::task::spawn_blocking(ensure_venv)
            .await
            .map_err(|e| FixtureError::io("venv setup task", std::io::Error::other(e)))??;

        sweep_stale_dirs();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
            .tempdir()
            .map_err(|e| FixtureError::io("creating the Synapse temp dir", e))?;
        let dir_path = dir.path().to_path_buf();

        let mut synapse = Synapse {
            server_name: cfg.server_name,
            port: cfg.port.unwrap_or_else(free_port),
            port_was_chosen: cfg.port.is_none(),
            config_path: dir_path.join("homeserver.yaml"),
            log_path: dir_path.join("homeserver.log"),
            stdio_path: dir_path.join("synapse.stdio.log"),
            dir: Some(dir),
            dir_path,
            python: venv.python,
            synapse_version: venv.synapse_version,
            shared_secret: random_hex::<32>(),
            registrations: cfg
                .registrations
                .iter()
                .map(|p| fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
                .collect(),
            extra_config: cfg.extra_config,
            child: None,
            http: http_client(false),
        };
        synapse.write_static_files()?;
        synapse.write_config()?;

        // A port picked by free_port() can be grabbed by someone else before Synapse binds it;
        // on the first start (and only then) try again with another one.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match synapse.launch().await {
                Err(FixtureError::StartupExited { log_tail, .. })
                    if synapse.port_was_chosen
                        && attempts < 3
                        && log_tail.contains("Address already in use") =>
                {
                    synapse.port = free_port();
                    synapse.write_config()?;
                }
                other => return other.map(|()| synapse),
            }
        }
    }

    /// `http://127.0.0.1:<port>`: the client-server API base URL (give this to the bridge).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `server_name`, e.g. `test.local`.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// The client listener's port; stable across [`stop`](Self::stop)/[`restart`](Self::restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Installed Synapse version, e.g. `1.163.2`.
    pub fn version(&self) -> &str {
        &self.synapse_version
    }

    /// Path of the generated `homeserver.yaml` (unique per fixture; appears in Synapse's command
    /// line, so `pgrep -f <config_path>` finds the process).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The fixture's data dir (config, SQLite database, media, logs).
    pub fn data_dir(&self) -> &Path {
        &self.dir_path
    }

    /// Path of Synapse's log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The shared secret for `/_synapse/admin/v1/register`.
    pub fn registration_shared_secret(&self) -> &str {
        &self.shared_secret
    }

    /// PID of the running Synapse, if any.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the Synapse process is alive (false after [`stop`](Self::stop) or a crash).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops Synapse gracefully (SIGTERM, SIGKILL after 5 s), keeping its data and port for
    /// [`restart`](Self::restart). A no-op if it is not running.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_async(&mut child, STOP_GRACE).await;
        }
    }

    /// Starts Synapse again on the same data dir and port (stopping it first if it is running).
    /// Use it to simulate a homeserver outage: `stop()`, act, `restart()`.
    pub async fn restart(&mut self) -> Result<(), FixtureError> {
        self.stop().await;
        self.launch().await
    }

    /// The last `lines` lines of Synapse's log, followed by its stdout/stderr if that is not empty
    /// (Python tracebacks from before logging was set up land there).
    pub fn log_tail(&self, lines: usize) -> String {
        let mut tail = fs::read_to_string(&self.log_path)
            .map(|log| last_lines(&log, lines))
            .unwrap_or_else(|e| format!("(no log at {}: {e})", self.log_path.display()));
        if let Ok(stdio) = fs::read_to_string(&self.stdio_path)
            && !stdio.trim().is_empty()
        {
            tail.push_str("\n--- synapse stdout/stderr ---\n");
            tail.push_str(&last_lines(&stdio, lines));
        }
        tail
    }

    /// Registers a user with the shared-secret admin API and returns a client logged in as them.
    ///
    /// Localparts inside an appservice's exclusive namespace are refused (`M_EXCLUSIVE`). On the
    /// [shared instance](crate::shared_synapse), prefer
    /// [`register_unique_user`](Self::register_unique_user) to avoid collisions between tests.
    pub async fn register_user(
        &self,
        localpart: &str,
        password: &str,
        admin: bool,
    ) -> Result<TestClient, FixtureError> {
        let url = format!("{}/_synapse/admin/v1/register", self.base_url());
        let nonce_reply = send_json(&self.http, Method::GET, &url, None, None).await?;
        let nonce = string_field(&nonce_reply, "nonce", "GET /_synapse/admin/v1/register")?;
        let mac = registration_mac(&self.shared_secret, &nonce, localpart, password, admin);
        let body = json!({
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac,
        });
        let reply = send_json(&self.http, Method::POST, &url, None, Some(&body)).await?;
        let what = "POST /_synapse/admin/v1/register";
        let user_id = string_field(&reply, "user_id", what)?;
        let token = string_field(&reply, "access_token", what)?;
        let device = reply["device_id"].as_str().map(str::to_owned);
        Ok(TestClient::new(self.base_url(), user_id, token).with_device(device))
    }

    /// Registers a non-admin user named `<prefix>_<random>` with a random password.
    pub async fn register_unique_user(&self, prefix: &str) -> Result<TestClient, FixtureError> {
        let localpart = format!("{}_{}", prefix.to_ascii_lowercase(), random_hex::<5>());
        self.register_user(&localpart, &random_hex::<12>(), false)
            .await
    }

    /// A client for an existing token (e.g. the appservice's as_token); the user ID comes from
    /// `/account/whoami`.
    pub async fn client_with_token(&self, access_token: &str) -> Result<TestClient, FixtureError> {
        let mut client = TestClient::new(self.base_url(), "", access_token);
        let user_id = client.whoami().await?;
        client = TestClient::new(self.base_url(), user_id, access_token);
        Ok(client)
    }

    /// Spawns Synapse on the existing config and waits for `/versions`.
    async fn launch(&mut self) -> Result<(), FixtureError> {
        let stdio = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stdio_path)
            .map_err(|e| FixtureError::io(format!("opening {}", self.stdio_path.display()), e))?;
        let stdio_err = stdio
            .try_clone()
            .map_err(|e| FixtureError::io("duplicating the stdio log handle", e))?;
        let mut cmd = Command::new(&self.python);
        cmd.args(["-m", "synapse.app.homeserver", "-c"])
            .arg(&self.config_path)
            .current_dir(&self.dir_path)
            .stdin(Stdio::null())
            .stdout(stdio)
            .stderr(stdio_err);
        let child = spawn_guarded(cmd).map_err(|e| {
            FixtureError::io(
                format!(
                    "starting {} -m synapse.app.homeserver",
                    self.python.display()
                ),
                e,
            )
        })?;
        self.child = Some(child);

        let url = format!("{}/_matrix/client/versions", self.base_url());
        let child = self.child.as_mut().expect("child was just set");
        match wait_until_serving(child, &self.http, &url, STARTUP_TIMEOUT, STOP_GRACE).await {
            Startup::Serving => Ok(()),
            Startup::Exited(status) => {
                self.child = None;
                Err(FixtureError::StartupExited {
                    server: "synapse",
                    status: status.to_string(),
                    log_tail: self.log_tail(ERROR_LOG_LINES),
                })
            }
            Startup::TimedOut => {
                self.child = None;
                Err(FixtureError::StartupTimeout {
                    server: "synapse",
                    url,
                    secs: STARTUP_TIMEOUT.as_secs(),
                    log_tail: self.log_tail(ERROR_LOG_LINES),
                })
            }
        }
    }

    /// Files that never change across restarts: signing key and logging config.
    fn write_static_files(&self) -> Result<(), FixtureError> {
        // A signing key file is `ed25519 <key id> <unpadded base64 of a 32-byte seed>`; writing a
        // random seed ourselves is what `--generate-keys` does, minus 1.5 s of Python start-up.
        let key_id = &random_hex::<3>()[..4];
        let signing_key = format!(
            "ed25519 a_{key_id} {}\n",
            base64_unpadded(&random_bytes::<32>())
        );
        write_file(&self.dir_path.join("signing.key"), &signing_key)?;

        let log_config = json!({
            "version": 1,
            "formatters": {
                "precise": {
                    "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s"
                }
            },
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "precise",
                    "filename": self.log_path,
                    "encoding": "utf8",
                }
            },
            // INFO includes one access line per request, which is what you want when a bridge
            // test fails; it measurably costs nothing (see reference/matrix-appservice.md §3).
            "root": { "level": "INFO", "handlers": ["file"] },
            "loggers": { "synapse.storage.SQL": { "level": "WARNING" } },
            "disable_existing_loggers": false,
        });
        write_file(&self.dir_path.join("log.yaml"), &to_yaml(&log_config)?)
    }

    /// `homeserver.yaml`; rewritten only when the port changes.
    fn write_config(&self) -> Result<(), FixtureError> {
        let dir = &self.dir_path;
        // Effectively unlimited: tests fire requests in bursts far beyond Synapse's defaults
        // (e.g. rc_message is 0.2/s with a burst of 10).
        let unlimited = json!({ "per_second": 100000, "burst_count": 100000 });
        let mut config = json!({
            "server_name": self.server_name,
            "pid_file": dir.join("homeserver.pid"),
            "listeners": [{
                "port": self.port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": false,
                "x_forwarded": false,
                // `client` also serves /_synapse/admin; no `federation` resource.
                "resources": [{ "names": ["client"], "compress": false }],
            }],
            "database": {
                "name": "sqlite3",
                "args": { "database": dir.join("homeserver.db") },
            },
            "log_config": dir.join("log.yaml"),
            "media_store_path": dir.join("media_store"),
            "signing_key_path": dir.join("signing.key"),
            "registration_shared_secret": self.shared_secret,
            "macaroon_secret_key": random_hex::<32>(),
            "form_secret": random_hex::<32>(),
            "report_stats": false,
            "enable_registration": false,
            "enable_metrics": false,
            // Federation off: an empty whitelist refuses every remote server, and with no
            // trusted key servers Synapse never reaches out to matrix.org.
            "federation_domain_whitelist": [],
            "trusted_key_servers": [],
            "suppress_key_server_warning": true,
            "app_service_config_files": self.registrations,
            "rc_message": unlimited,
            "rc_registration": unlimited,
            "rc_registration_token_validity": unlimited,
            "rc_login": {
                "address": unlimited,
                "account": unlimited,
                "failed_attempts": unlimited,
            },
            "rc_admin_redaction": unlimited,
            "rc_joins": { "local": unlimited, "remote": unlimited },
            "rc_joins_per_room": unlimited,
            "rc_3pid_validation": unlimited,
            "rc_invites": {
                "per_room": unlimited,
                "per_user": unlimited,
                "per_issuer": unlimited,
            },
            "rc_third_party_invite": unlimited,
            "rc_media_create": unlimited,
            "rc_presence": { "per_user": unlimited },
            "rc_delayed_event_mgmt": unlimited,
            "rc_room_creation": unlimited,
            "rc_reports": unlimited,
            "rc_user_directory": unlimited,
            "rc_profile": unlimited,
            "rc_key_requests": unlimited,
        });
        let map = config.as_object_mut().expect("config is an object");
        for (key, value) in &self.extra_config {
            map.insert(key.clone(), value.clone());
        }
        write_file(&self.config_path, &to_yaml(&config)?)
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_blocking(&mut child, STOP_GRACE);
        }
        if std::env::var_os(KEEP_DIR_ENV).is_some()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            crate::venv::progress(&format!("kept Synapse dir {}", kept.display()));
        }
    }
}

/// A currently free TCP port on 127.0.0.1 (bound to port 0, read, released). Another process can
/// take it before you bind it; [`Synapse::start`] retries on that race.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("testkit: cannot bind 127.0.0.1:0 to find a free port")
}

/// The `mac` of the shared-secret registration API: hex HMAC-SHA1 keyed with the shared secret
/// over `nonce NUL user NUL password NUL ("admin" | "notadmin")`.
fn registration_mac(secret: &str, nonce: &str, user: &str, password: &str, admin: bool) -> String {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    for (i, part) in [nonce, user, password].iter().enumerate() {
        if i > 0 {
            mac.update(b"\0");
        }
        mac.update(part.as_bytes());
    }
    mac.update(b"\0");
    mac.update(if admin {
        b"admin" as &[u8]
    } else {
        b"notadmin"
    });
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Standard base64 without padding (the signing-key file format).
fn base64_unpadded(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn to_yaml(value: &Value) -> Result<String, FixtureError> {
    serde_yaml::to_string(value)
        .map_err(|e| FixtureError::io("serialising YAML", std::io::Error::other(e)))
}

pub(crate) fn write_file(path: &Path, content: &str) -> Result<(), FixtureError> {
    fs::write(path, content).map_err(|e| FixtureError::io(format!("writing {}", path.display()), e))
}

/// Removes fixture dirs left by test processes that died without dropping their fixture (SIGKILL,
/// abort, or the never-dropped shared instance). Once per process; best effort.
fn sweep_stale_dirs() {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| sweep_stale_dirs_with(DIR_PREFIX));
}

/// Removes `<temp>/<prefix><pid>-…` dirs whose process is gone.
pub(crate) fn sweep_stale_dirs_with(prefix: &str) {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !pid_alive(pid) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64_unpadded(b""), "");
        assert_eq!(base64_unpadded(b"f"), "Zg");
        assert_eq!(base64_unpadded(b"fo"), "Zm8");
        assert_eq!(base64_unpadded(b"foo"), "Zm9v");
        assert_eq!(base64_unpadded(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_unpadded(&[0xff, 0xfe]), "//4");
    }

    #[test]
    fn registration_mac_matches_python_hmac() {
        // python3 -c "import hmac,hashlib; print(hmac.new(b'secret', b'n\0alice\0pw\0notadmin',
        //   hashlib.sha1).hexdigest())"
        assert_eq!(
            registration_mac("secret", "n", "alice", "pw", false),
            "bed7b1c8bbb7b4e3701c0e2242bfeab2478b3713"
        );
    }

    #[test]
    fn free_port_is_bindable() {
        let port = free_port();
        assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());
    }
}
