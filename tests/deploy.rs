//! Deploying the way the users do: the NixOS module evaluated for real with nixpkgs'
//! `lib.evalModules` (Debian's `nix-instantiate`, offline, stubs for only the NixOS options
//! it sets), the unit and config it renders checked and the config run through
//! `slack-bridge -g` and `validate-config` as its ExecStartPre would; every file in `nix/`
//! parsing; and the plain systemd unit, and the module's unit, passing `systemd-analyze
//! verify`.
//!
//! Without `nix-instantiate`, nixpkgs' lib or `systemd-analyze`, these tests print a loud NOT
//! RUN line locally and fail under CI (`.ci/run` installs what they need).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_slack-bridge");
/// Overrides where nixpkgs' lib is (default: `../shared/vendor/nixpkgs-lib` beside the repo).
const LIB_ENV: &str = "SLACK_BRIDGE_NIXPKGS_LIB";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `Some(())` when `what` is there; otherwise says so loudly, and fails under CI.
fn require(test: &str, what: &str, present: bool) -> Option<()> {
    if present {
        return Some(());
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{test}: {what} is missing, so this deployment test cannot run; CI must run it (.ci/run installs it)"
        );
    }
    eprintln!("\n!!! {test}: NOT RUN: {what} is missing (bash .ci/run installs it) !!!\n");
    None
}

fn runs(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs a `nix-instantiate`, one at a time: parallel ones on a machine whose Nix database
/// does not exist yet fail with "SQLite database '/nix/var/nix/db/db.sqlite' is busy" while
/// the first creates it.
fn nix_instantiate(args: impl FnOnce(&mut Command) -> &mut Command) -> std::process::Output {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    args(&mut Command::new("nix-instantiate")).output().unwrap()
}

fn nix(test: &str) -> Option<()> {
    require(
        test,
        "nix-instantiate (Debian package nix-bin)",
        runs("nix-instantiate", "--version"),
    )
}

fn nixpkgs_lib(test: &str) -> Option<PathBuf> {
    let path = std::env::var_os(LIB_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/vendor/nixpkgs-lib"));
    let present = path.join("lib/default.nix").is_file();
    require(
        test,
        &format!(
            "nixpkgs' lib at {} (set {LIB_ENV} to its directory)",
            path.display()
        ),
        present,
    )?;
    Some(path.canonicalize().unwrap())
}

/// Evaluates the module with `scenario` (a NixOS module, as Nix text).
fn eval(lib: &Path, scenario: &str) -> Result<Value, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scenario.nix");
    std::fs::write(&file, scenario).unwrap();
    let out = nix_instantiate(|c| {
        c.args(["--eval", "--strict", "--json"])
            .arg(root().join("tests/nix/eval.nix"))
            .arg("--arg")
            .arg("lib")
            .arg(format!("import {}/lib", lib.display()))
            .arg("--arg")
            .arg("scenario")
            .arg(&file)
            .env("NIX_PATH", "")
    });
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

fn evaluated(test: &str, scenario: &str) -> Option<Value> {
    nix(test)?;
    let lib = nixpkgs_lib(test)?;
    Some(eval(&lib, scenario).unwrap_or_else(|e| panic!("{test}: evaluation failed:\n{e}")))
}

/// The machine the rendered config is tried on: the state directory and the credentials
/// systemd would provide, in a temp dir.
struct Machine {
    dir: tempfile::TempDir,
}

impl Machine {
    fn new() -> Machine {
        let dir = tempfile::tempdir().unwrap();
        for d in ["state", "credentials", "secrets"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        Machine { dir }
    }

    fn path(&self, p: &str) -> String {
        self.dir.path().join(p).display().to_string()
    }

    /// A secret file the operator (or sops-nix) put on the machine.
    fn secret(&self, name: &str, value: &str) -> String {
        let p = self.path(&format!("secrets/{name}"));
        std::fs::write(&p, value).unwrap();
        p
    }

    /// `text` with the unit's runtime paths moved into this machine.
    fn localise(&self, text: &str) -> String {
        text.replace(
            "/run/credentials/slack-bridge.service",
            &self.path("credentials"),
        )
        .replace("/var/lib/slack-bridge", &self.path("state"))
    }

    /// What systemd does with LoadCredential=name:path before the unit starts.
    fn load_credentials(&self, unit: &Value) {
        for c in unit["serviceConfig"]["LoadCredential"].as_array().unwrap() {
            let (name, from) = c.as_str().unwrap().split_once(':').unwrap();
            std::fs::copy(from, self.path(&format!("credentials/{name}"))).unwrap();
        }
    }

    /// Runs the unit's ExecStartPre (mkdir, `-g`, chmod) and then `validate-config` on the
    /// rendered config, as the unit would; returns the config's path here.
    fn start(&self, result: &Value) -> PathBuf {
        let unit = &result["units"]["slack-bridge"];
        self.load_credentials(unit);
        let config_in_unit = result["configFile"].as_str().unwrap();
        let config = self.dir.path().join("config.yaml");
        std::fs::write(
            &config,
            self.localise(result["configText"].as_str().unwrap()),
        )
        .unwrap();
        for pre in unit["serviceConfig"]["ExecStartPre"].as_array().unwrap() {
            let line = self
                .localise(pre.as_str().unwrap())
                .replace(config_in_unit, config.to_str().unwrap())
                .replace("/stub/slack-bridge/bin/slack-bridge", BIN)
                .replace("/stub/coreutils/bin/", "");
            let words: Vec<&str> = line.split_whitespace().collect();
            let out = Command::new(words[0])
                .args(&words[1..])
                .env_remove("RUST_LOG")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "ExecStartPre {line} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let out = Command::new(BIN)
            .arg("validate-config")
            .arg("-c")
            .arg(&config)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the config the module renders is refused:\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&config).unwrap()
        );
        config
    }
}

fn yaml(config: &Path) -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(config).unwrap()).unwrap()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

/// The hardening and lifecycle every rendered unit carries.
fn assert_hardened_notify_unit(unit: &Value, config_file: &str) {
    let sc = &unit["serviceConfig"];
    assert_eq!(sc["Type"], "notify", "{sc:#}");
    assert_eq!(sc["NotifyAccess"], "main");
    assert_eq!(sc["WatchdogSec"], "60s");
    assert_eq!(sc["Restart"], "on-failure");
    assert_eq!(
        sc["RestartPreventExitStatus"],
        slack_bridge::EXIT_CONFIG.to_string()
    );
    assert_eq!(
        sc["ExecStart"],
        format!(
            "/stub/slack-bridge/bin/slack-bridge -c {config_file} -r /var/lib/slack-bridge/appservice/registration.yaml"
        )
    );
    assert!(
        strings(&sc["ExecStartPre"])
            .iter()
            .any(|c| c.contains(" -g -c ")),
        "the registration is generated at start: {sc:#}"
    );
    assert_eq!(sc["User"], "slack-bridge");
    assert_eq!(sc["StateDirectory"], "slack-bridge");
    for (key, value) in [
        ("ProtectSystem", Value::from("strict")),
        ("ProtectHome", Value::from(true)),
        ("PrivateTmp", Value::from(true)),
        ("PrivateDevices", Value::from(true)),
        ("NoNewPrivileges", Value::from(true)),
        ("MemoryDenyWriteExecute", Value::from(true)),
        ("CapabilityBoundingSet", Value::from("")),
        ("RestrictNamespaces", Value::from(true)),
        ("LockPersonality", Value::from(true)),
        ("SystemCallArchitectures", Value::from("native")),
        ("UMask", Value::from("0077")),
    ] {
        assert_eq!(sc[key], value, "{key}");
    }
    assert_eq!(
        strings(&sc["RestrictAddressFamilies"]),
        ["AF_UNIX", "AF_INET", "AF_INET6"]
    );
    assert_eq!(strings(&sc["SystemCallFilter"])[0], "@system-service");
    assert!(strings(&unit["after"]).contains(&"slack-bridge-registration.service"));
}

#[test]
fn every_nix_file_parses() {
    let test = "every_nix_file_parses";
    if nix(test).is_none() {
        return;
    }
    let mut files: Vec<PathBuf> = ["nix", "tests/nix"]
        .iter()
        .flat_map(|d| std::fs::read_dir(root().join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    for f in &files {
        let out = nix_instantiate(|c| c.arg("--parse").arg(f));
        assert!(
            out.status.success(),
            "{} does not parse: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The OAuth client secret (for `login-user`) and the double-puppet secrets are files too:
/// credentials of the unit, named by path in the config, valid for the bridge.
#[test]
fn module_passes_the_oauth_and_double_puppet_secrets_as_credentials() {
    let test = "module_passes_the_oauth_and_double_puppet_secrets_as_credentials";
    let machine = Machine::new();
    let client = machine.secret("oauth_client_secret", "secret-oauth-client\n");
    let puppet = machine.secret("double_puppet", "as_token:secret-puppet-token\n");
    let Some(r) = evaluated(
        test,
        &format!(
            r#"{{
              services.slack-bridge = {{
                enable = true;
                settings.homeserver.domain = "example.org";
                settings.slack.oauth = {{ client_id = "1.2"; redirect_url = "https://b.example.org/ok"; }};
                database.createLocally = false;
                oauthClientSecretFile = "{client}";
                doublePuppetSecretFiles."example.org" = "{puppet}";
              }};
            }}"#
        ),
    ) else {
        return;
    };
    assert_eq!(r["failedAssertions"], Value::Array(vec![]));
    let unit = &r["units"]["slack-bridge"];
    assert_eq!(
        strings(&unit["serviceConfig"]["LoadCredential"]),
        [
            format!("double_puppet_example.org:{puppet}"),
            format!("oauth_client_secret:{client}"),
        ]
    );
    let text = r["configText"].as_str().unwrap();
    assert!(!text.contains("secret-"), "a secret in the store: {text}");
    let config = machine.start(&r);
    let y = yaml(&config);
    assert_eq!(
        y["slack"]["oauth"]["client_secret_file"].as_str().unwrap(),
        machine.path("credentials/oauth_client_secret")
    );
    assert_eq!(y["slack"]["oauth"]["client_id"], "1.2", "the settings stay");
    assert_eq!(
        y["bridge"]["double_puppet"]["secret_files"]["example.org"]
            .as_str()
            .unwrap(),
        machine.path("credentials/double_puppet_example.org")
    );
}

#[test]
fn module_with_sqlite_renders_a_hardened_unit_and_a_valid_config() {
    let test = "module_with_sqlite_renders_a_hardened_unit_and_a_valid_config";
    let machine = Machine::new();
    let bot = machine.secret("slack_bot_token", "xoxb-secret-bot-token\n");
    let app = machine.secret("slack_app_token", "xapp-secret-app-token\n");
    let Some(r) = evaluated(
        test,
        &format!(
            r#"{{
              services.slack-bridge = {{
                enable = true;
                settings.homeserver.domain = "example.org";
                settings.logging.level = "debug";
                database.createLocally = false;
                logins = [{{ botTokenFile = "{bot}"; appTokenFile = "{app}"; owner = "@dan:example.org"; }}];
              }};
            }}"#
        ),
    ) else {
        return;
    };
    assert_eq!(r["failedAssertions"], Value::Array(vec![]));
    let unit = &r["units"]["slack-bridge"];
    let config_file = r["configFile"].as_str().unwrap();
    assert_hardened_notify_unit(unit, config_file);
    // The Slack tokens reach the bridge as credentials, by path: never their contents.
    assert_eq!(
        strings(&unit["serviceConfig"]["LoadCredential"]),
        [
            format!("slack_app_token_0:{app}"),
            format!("slack_bot_token_0:{bot}")
        ]
    );
    let text = r["configText"].as_str().unwrap();
    assert!(!text.contains("secret"), "a secret in the store: {text}");
    assert!(!text.contains(&bot), "{text}");
    assert!(
        strings(&unit["requires"]) == ["slack-bridge-registration.service"],
        "no PostgreSQL without createLocally: {unit:#}"
    );
    assert_eq!(r["postgresql"], serde_json::json!({}));
    assert_eq!(r["users"]["users"]["slack-bridge"]["isSystemUser"], true);

    let config = machine.start(&r);
    let y = yaml(&config);
    assert_eq!(
        y["database"]["uri"].as_str().unwrap(),
        format!("sqlite://{}/slack-bridge.db", machine.path("state"))
    );
    assert_eq!(
        y["slack"]["logins"][0]["bot_token_file"].as_str().unwrap(),
        machine.path("credentials/slack_bot_token_0")
    );
    assert_eq!(y["logging"]["level"], "debug", "freeform keys pass through");
    assert_eq!(y["bridge"]["permissions"]["example.org"], "user");
    // ExecStartPre generated the tokens once into the state directory, and the registration.
    let as_token = std::fs::read_to_string(machine.path("state/as_token")).unwrap();
    assert!(as_token.len() >= 64);
    let reg = std::fs::read_to_string(machine.path("state/appservice/registration.yaml")).unwrap();
    assert!(reg.contains(&as_token), "{reg}");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| {
        std::fs::metadata(machine.path(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("state/appservice/registration.yaml"), 0o640);
    assert_eq!(mode("state/as_token"), 0o600);
    // And the key of the stored Slack tokens, beside the database.
    assert_eq!(
        y["database"]["encryption_key_file"].as_str().unwrap(),
        machine.path("state/slack-bridge.key")
    );
    assert_eq!(mode("state/slack-bridge.key"), 0o600);
    let key = std::fs::read_to_string(machine.path("state/slack-bridge.key")).unwrap();
    // A restart keeps them.
    machine.start(&r);
    assert_eq!(
        std::fs::read_to_string(machine.path("state/as_token")).unwrap(),
        as_token
    );
    assert_eq!(
        std::fs::read_to_string(machine.path("state/slack-bridge.key")).unwrap(),
        key
    );
}

#[test]
fn module_with_local_postgresql_uses_the_socket_and_peer_auth() {
    let test = "module_with_local_postgresql_uses_the_socket_and_peer_auth";
    let Some(r) = evaluated(
        test,
        r#"{
          services.slack-bridge = {
            enable = true;
            settings.homeserver.domain = "example.org";
            registerToSynapse = true;
          };
        }"#,
    ) else {
        return;
    };
    assert_eq!(r["failedAssertions"], Value::Array(vec![]));
    let pg = &r["postgresql"];
    assert_eq!(pg["enable"], true);
    assert_eq!(strings(&pg["ensureDatabases"]), ["slack-bridge"]);
    assert_eq!(pg["ensureUsers"][0]["name"], "slack-bridge");
    assert_eq!(pg["ensureUsers"][0]["ensureDBOwnership"], true);
    let unit = &r["units"]["slack-bridge"];
    assert_hardened_notify_unit(unit, r["configFile"].as_str().unwrap());
    assert!(strings(&unit["requires"]).contains(&"postgresql.service"));
    assert!(strings(&unit["after"]).contains(&"postgresql.service"));
    assert!(strings(&unit["after"]).contains(&"matrix-synapse.service"));

    // Synapse loads the registration, may read it, and starts after it exists.
    assert_eq!(
        strings(&r["synapse"]["app_service_config_files"]),
        ["/var/lib/slack-bridge/appservice/registration.yaml"]
    );
    let synapse = &r["units"]["matrix-synapse"];
    assert_eq!(
        strings(&synapse["serviceConfig"]["SupplementaryGroups"]),
        ["slack-bridge"]
    );
    assert!(strings(&synapse["after"]).contains(&"slack-bridge-registration.service"));

    let machine = Machine::new();
    let config = machine.start(&r);
    let uri = yaml(&config)["database"]["uri"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        uri, "postgres://slack-bridge@localhost/slack-bridge?host=/run/postgresql",
        "no password: peer authentication over the Unix socket"
    );
}

#[tokio::test]
async fn the_socket_uri_form_reaches_postgresql_over_its_unix_socket() {
    // The form the module writes (`postgres://user@localhost/db?host=<socket dir>`), pointed at
    // this machine's server with the test database's role. Only the socket can carry it:
    // nothing listens on a TCP port called /run/postgresql.
    use sqlx::Connection;
    let test = "the_socket_uri_form_reaches_postgresql_over_its_unix_socket";
    let dir = ["/run/postgresql", "/var/run/postgresql"]
        .into_iter()
        .find(|d| Path::new(d).join(".s.PGSQL.5432").exists());
    let Some(dir) = dir.map(str::to_owned).or_else(|| {
        require(test, "a PostgreSQL Unix socket (.s.PGSQL.5432)", false).map(|()| String::new())
    }) else {
        return;
    };
    let admin = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let admin = url::Url::parse(&admin).unwrap();
    let uri = format!(
        "postgres://{}@localhost{}?host={dir}",
        admin.username(),
        admin.path()
    );
    match sqlx::PgConnection::connect(&uri).await {
        Ok(mut conn) => {
            let one: i32 = sqlx::query_scalar("SELECT 1")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            assert_eq!(one, 1);
        }
        // A server whose socket authenticates by peer refuses this test's OS user: the
        // refusal itself came over the socket, which is what the form has to achieve.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("28000") => {
            eprintln!("{test}: the server answered over {dir} and refused {uri}: {e}");
        }
        Err(e) => panic!("{uri} does not reach PostgreSQL over its socket: {e}"),
    }
}

#[test]
fn module_hooks_up_tuwunel_and_refuses_what_would_leak_or_conflict() {
    let test = "module_hooks_up_tuwunel_and_refuses_what_would_leak_or_conflict";
    let Some(r) = evaluated(
        test,
        r#"{
          services.slack-bridge = {
            enable = true;
            settings.homeserver.domain = "example.org";
            database.createLocally = false;
            database.passwordFile = "/run/secrets/db_password";
            settings.database.uri = "postgres://bridge@db.internal/bridge";
            registerToTuwunel = true;
          };
        }"#,
    ) else {
        return;
    };
    assert_eq!(
        r["tuwunel"]["global"]["appservice_dir"],
        "/var/lib/slack-bridge/appservice"
    );
    let tuwunel = &r["units"]["tuwunel"];
    assert_eq!(
        strings(&tuwunel["serviceConfig"]["SupplementaryGroups"]),
        ["slack-bridge"]
    );
    let unit = &r["units"]["slack-bridge"];
    assert!(strings(&unit["after"]).contains(&"tuwunel.service"));
    assert_eq!(
        strings(&unit["serviceConfig"]["LoadCredential"]),
        ["database_password:/run/secrets/db_password"]
    );
    let text: Value = serde_json::from_str(r["configText"].as_str().unwrap()).unwrap();
    assert_eq!(
        text["database"]["password_file"],
        "/run/credentials/slack-bridge.service/database_password"
    );
    assert_eq!(
        text["database"]["uri"],
        "postgres://bridge@db.internal/bridge"
    );

    let lib = nixpkgs_lib(test).unwrap();
    // A Nix path literal would be copied into the world-readable store: refused.
    let err = eval(
        &lib,
        r#"{
          services.slack-bridge = {
            enable = true;
            settings.homeserver.domain = "example.org";
            logins = [{ botTokenFile = ./bot_token; appTokenFile = "/run/secrets/app"; owner = "@a:example.org"; }];
          };
        }"#,
    )
    .unwrap_err();
    assert!(err.contains("botTokenFile"), "{err}");
    // A local database and a URI at once is a configuration error.
    let r = eval(
        &lib,
        r#"{
          services.slack-bridge = {
            enable = true;
            settings.homeserver.domain = "example.org";
            settings.database.uri = "postgres://x@y/z";
          };
        }"#,
    )
    .unwrap();
    let failed = strings(&r["failedAssertions"]).join("\n");
    assert!(failed.contains("createLocally"), "{failed}");
    // Without a domain the module does not evaluate, naming the option.
    let err = eval(&lib, "{ services.slack-bridge.enable = true; }").unwrap_err();
    assert!(err.contains("homeserver.domain"), "{err}");
}

fn systemd_analyze(test: &str) -> Option<()> {
    require(
        test,
        "systemd-analyze (Debian package systemd)",
        runs("systemd-analyze", "--version"),
    )
}

/// `systemd-analyze verify` on `unit` (its binaries pointed at the built one) next to the
/// units it requires (`others`), and the exposure score of `systemd-analyze security`.
fn verify_unit(name: &str, unit: &str, others: &[(&str, String)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, unit).unwrap();
    for (other, text) in others {
        std::fs::write(dir.path().join(other), text).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .args(others.iter().map(|(o, _)| dir.path().join(o)))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim().is_empty(),
        "systemd-analyze verify {name}:\n{text}\n{unit}"
    );
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let score = text
        .lines()
        .find_map(|l| l.split("exposure level for ").nth(1))
        .unwrap_or_else(|| panic!("no score in:\n{text}"))
        .to_owned();
    eprintln!("systemd-analyze security {name}: {score}");
    score
}

fn exposure(score: &str) -> f64 {
    score
        .split(": ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read {score:?}"))
}

#[test]
fn the_plain_unit_verifies_and_is_well_hardened() {
    let test = "the_plain_unit_verifies_and_is_well_hardened";
    if systemd_analyze(test).is_none() {
        return;
    }
    let unit = std::fs::read_to_string(root().join("examples/systemd/slack-bridge.service"))
        .unwrap()
        .replace("/usr/local/bin/slack-bridge", BIN);
    for line in [
        "Type=notify",
        "RestartPreventExitStatus=78",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=",
        "SystemCallFilter=@system-service",
        "MemoryDenyWriteExecute=yes",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing");
    }
    let score = verify_unit("slack-bridge.service", &unit, &[]);
    assert!(exposure(&score) <= 2.0, "{score}");
}

/// The NixOS unit as NixOS writes it (lists as repeated lines, booleans as yes/no), with the
/// keys systemd older than 254 does not know left out.
fn render_unit(unit: &Value) -> String {
    let value = |v: &Value| match v {
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = String::from("[Unit]\n");
    for key in ["wants", "after", "requires", "before"] {
        let list = unit.get(key).map(strings).unwrap_or_default();
        if !list.is_empty() {
            let name = format!("{}{}", key[..1].to_uppercase(), &key[1..]);
            out.push_str(&format!("{name}={}\n", list.join(" ")));
        }
    }
    for (k, v) in unit
        .get("unitConfig")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        out.push_str(&format!("{k}={}\n", value(v)));
    }
    out.push_str("\n[Service]\n");
    for (k, v) in unit["serviceConfig"].as_object().unwrap() {
        if matches!(k.as_str(), "RestartSteps" | "RestartMaxDelaySec") {
            continue;
        }
        match v {
            Value::Array(items) => {
                for item in items {
                    out.push_str(&format!("{k}={}\n", value(item)));
                }
            }
            v => out.push_str(&format!("{k}={}\n", value(v))),
        }
    }
    out.push_str("\n[Install]\nWantedBy=multi-user.target\n");
    out.replace("/stub/slack-bridge/bin/slack-bridge", BIN)
        .replace("/stub/coreutils/bin/", "/usr/bin/")
}

#[test]
fn the_module_unit_verifies_too() {
    let test = "the_module_unit_verifies_too";
    if systemd_analyze(test).is_none() {
        return;
    }
    let Some(r) = evaluated(
        test,
        r#"{
          services.slack-bridge = {
            enable = true;
            settings.homeserver.domain = "example.org";
            logins = [{ botTokenFile = "/run/secrets/bot"; appTokenFile = "/run/secrets/app"; owner = "@a:example.org"; }];
          };
        }"#,
    ) else {
        return;
    };
    let unit = render_unit(&r["units"]["slack-bridge"]);
    let registration = render_unit(&r["units"]["slack-bridge-registration"]);
    // The local PostgreSQL the unit requires, as a stand-in where none is installed.
    let postgresql = "[Service]\nExecStart=/bin/true\n".to_owned();
    let score = verify_unit(
        "slack-bridge.service",
        &unit,
        &[
            ("slack-bridge-registration.service", registration),
            ("postgresql.service", postgresql),
        ],
    );
    assert!(exposure(&score) <= 2.0, "{score}");
}

#[test]
fn the_package_builds_the_bridge_from_cargo_lock_without_tests() {
    let test = "the_package_builds_the_bridge_from_cargo_lock_without_tests";
    if nix(test).is_none() {
        return;
    }
    let Some(lib) = nixpkgs_lib(test) else {
        return;
    };
    // rustPlatform.buildRustPackage stands in as the identity: what the package asks for.
    let expr = format!(
        r#"let
          lib = import {lib}/lib;
          p = import {root}/nix/package.nix {{ inherit lib; rustPlatform.buildRustPackage = a: a; gitRev = "0123abc"; }};
          d = import {root}/nix/default.nix {{ pkgs = {{ callPackage = f: args: import f ({{ inherit lib; rustPlatform.buildRustPackage = a: a; }} // args); }}; }};
        in {{
          inherit (p) pname version doCheck env cargoBuildFlags;
          mainProgram = p.meta.mainProgram;
          lockFile = baseNameOf (toString p.cargoLock.lockFile);
          source = p.src.name;
          defaultPname = d.package.pname;
          module = baseNameOf (toString d.module);
        }}"#,
        lib = lib.display(),
        root = root().display()
    );
    let out = nix_instantiate(|c| c.args(["--eval", "--strict", "--json", "-E", &expr]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["pname"], "slack-bridge");
    assert_eq!(p["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(p["doCheck"], false);
    assert_eq!(p["mainProgram"], "slack-bridge");
    assert_eq!(p["lockFile"], "Cargo.lock");
    assert_eq!(p["env"]["SLACK_BRIDGE_GIT_REV"], "0123abc");
    assert_eq!(
        strings(&p["cargoBuildFlags"]),
        ["--package", "slack-bridge"]
    );
    assert_eq!(p["source"], "slack-bridge-source");
    assert_eq!(p["defaultPname"], "slack-bridge");
    assert_eq!(p["module"], "module.nix");
}
