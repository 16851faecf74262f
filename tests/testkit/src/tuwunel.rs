//! The `Tuwunel` fixture: the conduwuit-family homeserver our users run, from the vendored build
//! (`../shared/vendor/tuwunel/tuwunel.gz`, unpacked into `<target>/tuwunel/` on first use) or the
//! binary named by [`TUWUNEL_BIN_ENV`]. Each fixture has its own temp dir (TOML config, RocksDB
//! database, log), a free port, appservice registrations as `[global.appservice.<id>]` tables
//! (read only at start) or registered later in the admin room, and users created through
//! `/register` with a registration token, the way a real tuwunel is operated.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{http_client, send_json, string_field};
use crate::process::{
    Startup, random_hex, spawn_guarded, stop_async, stop_blocking, wait_until_serving,
};
use crate::synapse::{free_port, sweep_stale_dirs_with, write_file};
use crate::venv::{last_lines, target_dir, workspace_root};
use crate::{FixtureError, TestClient};

/// An unpacked tuwunel binary to use instead of the vendored archive.
pub const TUWUNEL_BIN_ENV: &str = "TESTKIT_TUWUNEL_BIN";
/// Set to keep the temp dir (config, database, log) after the fixture is dropped.
pub const KEEP_TUWUNEL_DIR_ENV: &str = "TESTKIT_KEEP_TUWUNEL_DIR";
/// tuwunel answers `/versions` 1–2 s after start on an idle box; a box busy compiling is slower.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(5);
const ERROR_LOG_LINES: usize = 40;
const DIR_PREFIX: &str = "testkit-tuwunel-";
/// How long the admin room may take to answer a command.
const ADMIN_REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The vendored archive: `<workspace>/../shared/vendor/tuwunel/tuwunel.gz`, next to the repo.
pub fn tuwunel_archive() -> PathBuf {
    let root = workspace_root();
    root.parent()
        .unwrap_or(&root)
        .join("shared")
        .join("vendor")
        .join("tuwunel")
        .join("tuwunel.gz")
}

/// The tuwunel binary to run: [`TUWUNEL_BIN_ENV`] if set, else the vendored archive unpacked
/// (once, atomically) to `<target>/tuwunel/tuwunel`. The error names both places.
pub fn tuwunel_binary() -> Result<PathBuf, FixtureError> {
    static FOUND: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut found = FOUND.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(path) = found.as_ref() {
        return Ok(path.clone());
    }
    let missing = |detail: String| FixtureError::TuwunelMissing {
        env: TUWUNEL_BIN_ENV,
        archive: tuwunel_archive(),
        detail,
    };
    let path = if let Some(bin) = std::env::var_os(TUWUNEL_BIN_ENV).filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        if !bin.is_file() {
            return Err(missing(format!(
                "{TUWUNEL_BIN_ENV}={} is not a file",
                bin.display()
            )));
        }
        bin
    } else {
        let archive = tuwunel_archive();
        let archive_meta = fs::metadata(&archive)
            .map_err(|e| missing(format!("{} is not readable ({e})", archive.display())))?;
        let dir = target_dir().join("tuwunel");
        let bin = dir.join("tuwunel");
        // Fresh when it is at least as new as the archive it came from.
        let fresh = fs::metadata(&bin)
            .and_then(|m| Ok(m.modified()? >= archive_meta.modified()?))
            .unwrap_or(false);
        if !fresh {
            unpack(&archive, &dir, &bin).map_err(missing)?;
        }
        bin
    };
    *found = Some(path.clone());
    Ok(path)
}

/// `gunzip -c archive > dir/tuwunel.partial.<pid>`, chmod +x, rename: concurrent test binaries
/// never run a half-written file.
fn unpack(archive: &Path, dir: &Path, bin: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let partial = dir.join(format!("tuwunel.partial.{}", std::process::id()));
    let out = fs::File::create(&partial)
        .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    let status = Command::new("gunzip")
        .arg("-c")
        .arg(archive)
        .stdout(out)
        .status()
        .map_err(|e| format!("cannot run gunzip to unpack {}: {e}", archive.display()))?;
    if !status.success() {
        let _ = fs::remove_file(&partial);
        return Err(format!("gunzip -c {} failed ({status})", archive.display()));
    }
    fs::set_permissions(&partial, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", partial.display()))?;
    fs::rename(&partial, bin).map_err(|e| format!("rename to {}: {e}", bin.display()))
}

/// Whether a tuwunel test can run here. `None` after a loud NOT RUN line when the binary is
/// missing locally; a panic when `CI` is set, because CI must run every homeserver variant.
pub fn tuwunel_or_skip(test: &str) -> Option<PathBuf> {
    match tuwunel_binary() {
        Ok(bin) => Some(bin),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("{test}: the tuwunel variant must run in CI: {e}")
        }
        Err(e) => {
            // Straight to stderr: the test harness captures `eprintln!` of passing tests, and
            // this line must be seen.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n!!! {test}: tuwunel variant NOT RUN: {e} !!!\n"
            );
            None
        }
    }
}

/// How to start a [`Tuwunel`].
#[derive(Debug, Clone)]
pub struct TuwunelConfig {
    /// The `server_name`. Default `test.local`.
    pub server_name: String,
    /// Appservice registration YAML files, written into the config as `[global.appservice.<id>]`
    /// tables (tuwunel reads them only at start).
    pub registrations: Vec<PathBuf>,
    /// Port on 127.0.0.1; `None` picks a free one. Kept across restarts.
    pub port: Option<u16>,
    /// Extra `[global]` lines (`key = value` TOML), appended last.
    pub extra_global: Vec<String>,
}

impl Default for TuwunelConfig {
    fn default() -> Self {
        TuwunelConfig {
            server_name: "test.local".into(),
            registrations: Vec::new(),
            port: None,
            extra_global: Vec::new(),
        }
    }
}

/// A running (or stopped, restartable) tuwunel on 127.0.0.1 with its own database.
///
/// Its first user, `@admin:<server_name>`, is registered at start: the first user of a tuwunel
/// is the server admin and sits in `#admins:<server_name>`, where [`admin_command`] talks to the
/// server bot. Dropping the fixture stops the process group and deletes the temp dir.
///
/// [`admin_command`]: Self::admin_command
#[derive(Debug)]
pub struct Tuwunel {
    server_name: String,
    port: u16,
    port_was_chosen: bool,
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
    config_path: PathBuf,
    log_path: PathBuf,
    binary: PathBuf,
    version: String,
    registration_token: String,
    registrations: Vec<PathBuf>,
    extra_global: Vec<String>,
    child: Option<Child>,
    admin: Option<TestClient>,
    http: reqwest::Client,
}

impl Tuwunel {
    /// Writes a fresh config, starts tuwunel, waits for `/versions` and registers the admin.
    pub async fn start(cfg: TuwunelConfig) -> Result<Tuwunel, FixtureError> {
        for registration in &cfg.registrations {
            if !registration.is_file() {
                return Err(FixtureError::RegistrationMissing(registration.clone()));
            }
        }
        let binary = tokio::task::spawn_blocking(tuwunel_binary)
            .await
            .map_err(|e| FixtureError::io("tuwunel unpack task", std::io::Error::other(e)))??;
        let version = binary_version(&binary);
        static SWEEP: Once = Once::new();
        SWEEP.call_once(|| sweep_stale_dirs_with(DIR_PREFIX));
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
            .tempdir()
            .map_err(|e| FixtureError::io("creating the tuwunel temp dir", e))?;
        let dir_path = dir.path().to_path_buf();
        let mut tuwunel = Tuwunel {
            server_name: cfg.server_name,
            port: cfg.port.unwrap_or_else(free_port),
            port_was_chosen: cfg.port.is_none(),
            config_path: dir_path.join("tuwunel.toml"),
            log_path: dir_path.join("tuwunel.log"),
            dir: Some(dir),
            dir_path,
            binary,
            version,
            registration_token: random_hex::<16>(),
            registrations: cfg.registrations,
            extra_global: cfg.extra_global,
            child: None,
            admin: None,
            http: http_client(false),
        };
        tuwunel.write_config()?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match tuwunel.launch().await {
                Err(FixtureError::StartupExited { log_tail, .. })
                    if tuwunel.port_was_chosen
                        && attempts < 3
                        && (log_tail.contains("Address already in use")
                            || log_tail.contains("AddrInUse")) =>
                {
                    tuwunel.port = free_port();
                    tuwunel.write_config()?;
                }
                Err(e) => return Err(e),
                Ok(()) => break,
            }
        }
        let admin = tuwunel.register_plain("admin", &random_hex::<12>()).await?;
        tuwunel.admin = Some(admin);
        Ok(tuwunel)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `tuwunel --version`, e.g. `1.4.6`.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir_path
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The token users register with (`m.login.registration_token`).
    pub fn registration_token(&self) -> &str {
        &self.registration_token
    }

    /// The server admin (the first user), a member of `#admins:<server_name>`.
    pub fn admin(&self) -> &TestClient {
        self.admin
            .as_ref()
            .expect("the admin is registered at start")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops tuwunel (SIGTERM to its process group, SIGKILL after 5 s), keeping data and port.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_async(&mut child, STOP_GRACE).await;
        }
    }

    /// Starts tuwunel again on the same database and port.
    pub async fn restart(&mut self) -> Result<(), FixtureError> {
        self.stop().await;
        self.launch().await
    }

    /// The last `lines` lines of tuwunel's output.
    pub fn log_tail(&self, lines: usize) -> String {
        fs::read_to_string(&self.log_path)
            .map(|log| last_lines(&log, lines))
            .unwrap_or_else(|e| format!("(no log at {}: {e})", self.log_path.display()))
    }

    /// Registers `localpart` through `/register` with the registration token (the UIA stage
    /// `m.login.registration_token`); `admin` then makes them a server admin in the admin room.
    pub async fn register_user(
        &self,
        localpart: &str,
        password: &str,
        admin: bool,
    ) -> Result<TestClient, FixtureError> {
        let client = self.register_plain(localpart, password).await?;
        if admin {
            let reply = self
                .admin_command(&format!("users make-user-admin {}", client.user_id()))
                .await?;
            if !reply.to_lowercase().contains("admin") {
                return Err(FixtureError::AdminCommand {
                    command: "users make-user-admin".into(),
                    reply,
                });
            }
        }
        Ok(client)
    }

    /// A non-admin user named `<prefix>_<random>`.
    pub async fn register_unique_user(&self, prefix: &str) -> Result<TestClient, FixtureError> {
        let localpart = format!("{}_{}", prefix.to_ascii_lowercase(), random_hex::<5>());
        self.register_user(&localpart, &random_hex::<12>(), false)
            .await
    }

    /// A client for an existing token (e.g. the as_token); the user ID comes from `whoami`.
    pub async fn client_with_token(&self, access_token: &str) -> Result<TestClient, FixtureError> {
        let user_id = TestClient::new(self.base_url(), "", access_token)
            .whoami()
            .await?;
        Ok(TestClient::new(self.base_url(), user_id, access_token))
    }

    /// Registers an appservice the way operators of continuwuity and many tuwunel setups do: the
    /// admin sends `!admin appservices register` and the registration YAML in a code block to
    /// `#admins`. Effective at once. Returns the server bot's answer.
    pub async fn register_appservice_in_admin_room(
        &self,
        registration_yaml: &str,
    ) -> Result<String, FixtureError> {
        let command = format!(
            "appservices register\n```\n{}\n```",
            registration_yaml.trim_end()
        );
        let reply = self.admin_command(&command).await?;
        if reply.contains("registered") {
            Ok(reply)
        } else {
            Err(FixtureError::AdminCommand {
                command: "appservices register".into(),
                reply,
            })
        }
    }

    /// Sends `!admin <command>` in `#admins:<server_name>` as the admin and returns the server
    /// bot's first answer after it.
    pub async fn admin_command(&self, command: &str) -> Result<String, FixtureError> {
        let admin = self.admin();
        let room = admin.join(&format!("#admins:{}", self.server_name)).await?;
        let sent = admin.send_text(&room, &format!("!admin {command}")).await?;
        let started = Instant::now();
        loop {
            let events = admin.messages(&room, 50).await?;
            let after = events
                .iter()
                .position(|e| e["event_id"] == sent.as_str())
                .map_or(0, |i| i + 1);
            if let Some(reply) = events[after..]
                .iter()
                .find(|e| e["type"] == "m.room.message" && e["sender"] != admin.user_id())
            {
                return Ok(reply["content"]["body"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned());
            }
            if started.elapsed() > ADMIN_REPLY_TIMEOUT {
                return Err(FixtureError::Timeout {
                    what: format!("the admin room to answer `!admin {command}`"),
                    secs: started.elapsed().as_secs_f64(),
                    last_seen: format!("{} events in {room}", events.len()),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `/register` with the UIA dance: the first call returns the session, the second completes
    /// the `m.login.registration_token` stage.
    async fn register_plain(
        &self,
        localpart: &str,
        password: &str,
    ) -> Result<TestClient, FixtureError> {
        let url = format!("{}/_matrix/client/v3/register", self.base_url());
        let mut body = json!({"username": localpart, "password": password});
        let session = match send_json(&self.http, Method::POST, &url, None, Some(&body)).await {
            Err(FixtureError::Matrix {
                status: 401,
                body: text,
                ..
            }) => serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["session"].as_str().map(str::to_owned))
                .ok_or_else(|| FixtureError::UnexpectedResponse {
                    method: "POST".into(),
                    url: url.clone(),
                    detail: format!("a 401 without a UIA session: {text}"),
                })?,
            Err(e) => return Err(e),
            Ok(reply) => {
                return Err(FixtureError::UnexpectedResponse {
                    method: "POST".into(),
                    url,
                    detail: format!("registered without the registration token: {reply}"),
                });
            }
        };
        body["auth"] = json!({
            "type": "m.login.registration_token",
            "token": self.registration_token,
            "session": session,
        });
        let reply = send_json(&self.http, Method::POST, &url, None, Some(&body)).await?;
        let user_id = string_field(&reply, "user_id", "POST /register")?;
        let token = string_field(&reply, "access_token", "POST /register")?;
        let device = reply["device_id"].as_str().map(str::to_owned);
        Ok(TestClient::new(self.base_url(), user_id, token).with_device(device))
    }

    async fn launch(&mut self) -> Result<(), FixtureError> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| FixtureError::io(format!("opening {}", self.log_path.display()), e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| FixtureError::io("duplicating the log handle", e))?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg("-c")
            .arg(&self.config_path)
            .current_dir(&self.dir_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // tuwunel merges TUWUNEL_* / CONDUWUIT_* / CONDUIT_* variables into its config.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if ["TUWUNEL_", "CONDUWUIT_", "CONDUIT_"]
                .iter()
                .any(|p| key.starts_with(p))
                || key == "RUST_LOG"
            {
                cmd.env_remove(key.as_ref());
            }
        }
        let child = spawn_guarded(cmd)
            .map_err(|e| FixtureError::io(format!("starting {}", self.binary.display()), e))?;
        self.child = Some(child);
        let url = format!("{}/_matrix/client/versions", self.base_url());
        let child = self.child.as_mut().expect("child was just set");
        match wait_until_serving(child, &self.http, &url, STARTUP_TIMEOUT, STOP_GRACE).await {
            Startup::Serving => Ok(()),
            Startup::Exited(status) => {
                self.child = None;
                Err(FixtureError::StartupExited {
                    server: "tuwunel",
                    status: status.to_string(),
                    log_tail: self.log_tail(ERROR_LOG_LINES),
                })
            }
            Startup::TimedOut => {
                self.child = None;
                Err(FixtureError::StartupTimeout {
                    server: "tuwunel",
                    url,
                    secs: STARTUP_TIMEOUT.as_secs(),
                    log_tail: self.log_tail(ERROR_LOG_LINES),
                })
            }
        }
    }

    fn write_config(&self) -> Result<(), FixtureError> {
        let mut text = String::new();
        let q = toml_str;
        text.push_str("[global]\n");
        for (key, value) in [
            ("server_name", q(&self.server_name)),
            (
                "database_path",
                q(&self.dir_path.join("db").display().to_string()),
            ),
            ("address", format!("[{}]", q("127.0.0.1"))),
            ("port", self.port.to_string()),
            ("allow_registration", "true".into()),
            ("registration_token", q(&self.registration_token)),
            ("allow_federation", "false".into()),
            ("trusted_servers", "[]".into()),
            ("new_user_displayname_suffix", q("")),
            ("allow_legacy_media", "false".into()),
            ("log", q("info")),
            ("log_colors", "false".into()),
            ("rocksdb_direct_io", "false".into()),
        ] {
            text.push_str(&format!("{key} = {value}\n"));
        }
        for line in &self.extra_global {
            text.push_str(line);
            text.push('\n');
        }
        for registration in &self.registrations {
            let yaml = fs::read_to_string(registration)
                .map_err(|e| FixtureError::io(format!("reading {}", registration.display()), e))?;
            text.push_str(&registration_toml(&yaml).map_err(|e| {
                FixtureError::io(
                    format!("converting {} to TOML", registration.display()),
                    std::io::Error::other(e),
                )
            })?);
        }
        write_file(&self.config_path, &text)
    }
}

impl Drop for Tuwunel {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_blocking(&mut child, STOP_GRACE);
        }
        if std::env::var_os(KEEP_TUWUNEL_DIR_ENV).is_some()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            crate::venv::progress(&format!("kept tuwunel dir {}", kept.display()));
        }
    }
}

/// A TOML basic string. JSON string escapes are a subset of TOML's (serde_json never writes
/// `\/`), so the JSON encoding is a valid TOML string.
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serialises")
}

/// An appservice registration (the YAML a homeserver is given) as tuwunel's
/// `[global.appservice.<id>]` table, with `[[global.appservice.<id>.users]]` (and aliases, rooms)
/// namespace entries.
pub fn registration_toml(yaml: &str) -> Result<String, String> {
    let reg: Value = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
    let id = reg["id"]
        .as_str()
        .ok_or("the registration has no string `id`")?;
    let table = format!("global.appservice.{}", toml_str(id));
    let mut out = format!("\n[{table}]\n");
    for key in [
        "url",
        "as_token",
        "hs_token",
        "sender_localpart",
        "rate_limited",
        "receive_ephemeral",
    ] {
        match &reg[key] {
            Value::String(s) => out.push_str(&format!("{key} = {}\n", toml_str(s))),
            Value::Bool(b) => out.push_str(&format!("{key} = {b}\n")),
            Value::Null => {}
            other => return Err(format!("`{key}` has an unexpected value {other}")),
        }
    }
    for kind in ["users", "aliases", "rooms"] {
        for ns in reg["namespaces"][kind].as_array().into_iter().flatten() {
            let regex = ns["regex"]
                .as_str()
                .ok_or_else(|| format!("a `{kind}` namespace has no regex"))?;
            let exclusive = ns["exclusive"].as_bool().unwrap_or(false);
            out.push_str(&format!(
                "[[{table}.{kind}]]\nexclusive = {exclusive}\nregex = {}\n",
                toml_str(regex)
            ));
        }
    }
    Ok(out)
}

/// `tuwunel --version` → `1.4.6` (the whole output when it has an unexpected shape).
fn binary_version(binary: &Path) -> String {
    Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .map(|v| v.strip_prefix("tuwunel ").map(str::to_owned).unwrap_or(v))
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_becomes_a_config_table() {
        let yaml = "id: slack\nurl: http://127.0.0.1:29319\nas_token: a\"b\nhs_token: h\nsender_localpart: slackbot\nnamespaces:\n  users:\n  - exclusive: true\n    regex: ^@slack_.*:test\\.local$\n  aliases: []\nrate_limited: false\nreceive_ephemeral: true\n";
        let toml = registration_toml(yaml).unwrap();
        assert_eq!(
            toml,
            "\n[global.appservice.\"slack\"]\nurl = \"http://127.0.0.1:29319\"\nas_token = \"a\\\"b\"\nhs_token = \"h\"\nsender_localpart = \"slackbot\"\nrate_limited = false\nreceive_ephemeral = true\n[[global.appservice.\"slack\".users]]\nexclusive = true\nregex = \"^@slack_.*:test\\\\.local$\"\n"
        );
    }
}
