//! The binary as an operator uses it: `-g`, `validate-config`, argument errors, and a run whose
//! log output must never contain a secret.

use std::{
    io::{BufRead, BufReader},
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use ruma::api::appservice::Registration;

const BIN: &str = env!("CARGO_BIN_EXE_slack-bridge");
/// The exit status of a configuration error (restarting cannot help; systemd units list it
/// in RestartPreventExitStatus=).
const EXIT_CONFIG: i32 = slack_bridge::EXIT_CONFIG as i32;

fn example() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.yaml"))
        .unwrap()
}

fn example_with_domain() -> String {
    example().replacen("  domain: example.com", "  domain: bridge.test", 1)
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `slack-bridge -g -c cfg -r reg`, which must succeed; the registration it wrote.
fn generate_ok(cfg: &Path, reg: &Path) -> Registration {
    let out = run(&[
        "-g",
        "-c",
        cfg.to_str().unwrap(),
        "-r",
        reg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_yaml::from_str(&std::fs::read_to_string(reg).unwrap()).unwrap()
}

fn yaml_token(text: &str, key: &str) -> String {
    let v: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
    v["appservice"][key].as_str().unwrap().to_owned()
}

#[test]
fn generate_registration_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    let reg = dir.path().join("registration.yaml");
    let original = example_with_domain();
    std::fs::write(&cfg, &original).unwrap();

    let out = run(&[
        "-g",
        "-c",
        cfg.to_str().unwrap(),
        "-r",
        reg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    let config_text = std::fs::read_to_string(&cfg).unwrap();
    let as_token = yaml_token(&config_text, "as_token");
    let hs_token = yaml_token(&config_text, "hs_token");
    for t in [&as_token, &hs_token] {
        assert!(t.len() >= 64, "token too short: {t}");
        assert!(
            t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
    assert_ne!(as_token, hs_token);

    // Only the two token values changed: every comment and line survived.
    let before: Vec<&str> = original.lines().collect();
    let after: Vec<&str> = config_text.lines().collect();
    assert_eq!(before.len(), after.len());
    let changed: Vec<(&str, &str)> = before
        .iter()
        .zip(&after)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| (*a, *b))
        .collect();
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert_eq!(
        changed[0],
        ("  as_token: generate", &*format!("  as_token: {as_token}"))
    );
    assert_eq!(
        changed[1],
        ("  hs_token: generate", &*format!("  hs_token: {hs_token}"))
    );

    let reg_text = std::fs::read_to_string(&reg).unwrap();
    let registration: Registration = serde_yaml::from_str(&reg_text).unwrap();
    assert_eq!(registration.sender_localpart, "slackbot");
    assert_eq!(registration.as_token, as_token);
    assert_eq!(registration.hs_token, hs_token);
    assert_eq!(registration.id, "slack");
    assert_eq!(registration.url.as_deref(), Some("http://127.0.0.1:29319"));
    assert_eq!(registration.rate_limited, Some(false));
    assert!(registration.receive_ephemeral);
    let users: Vec<(&str, bool)> = registration
        .namespaces
        .users
        .iter()
        .map(|n| (n.regex.as_str(), n.exclusive))
        .collect();
    assert_eq!(
        users,
        [
            (r"^@slack_.*:bridge\.test$", true),
            (r"^@slackbot:bridge\.test$", true)
        ]
    );
    let mode = std::fs::metadata(&reg).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "registration holds secrets");

    // A second -g keeps the tokens the homeserver already has.
    let out = run(&[
        "-g",
        "-c",
        cfg.to_str().unwrap(),
        "-r",
        reg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), config_text);
    let again: Registration =
        serde_yaml::from_str(&std::fs::read_to_string(&reg).unwrap()).unwrap();
    assert_eq!((again.as_token, again.hs_token), (as_token, hs_token));

    // The config is now complete for running.
    let out = run(&["validate-config", "-c", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn generate_refuses_placeholder_domain() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    let reg = dir.path().join("registration.yaml");
    std::fs::write(&cfg, example()).unwrap();
    let out = run(&[
        "-g",
        "-c",
        cfg.to_str().unwrap(),
        "-r",
        reg.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(EXIT_CONFIG),
        "a config error exits with EX_CONFIG"
    );
    let err = stderr(&out);
    assert!(err.starts_with("Error: "), "{err}");
    assert!(
        err.contains("homeserver.domain") && err.contains("placeholder"),
        "{err}"
    );
    assert!(!reg.exists(), "nothing written");
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), example());
}

#[test]
fn generate_uses_token_files_without_touching_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    let reg = dir.path().join("registration.yaml");
    let as_file = dir.path().join("as_token");
    std::fs::write(&as_file, "as-from-file-0123456789\n").unwrap();
    let text = example_with_domain().replace(
        "  as_token: generate",
        &format!("  as_token_file: {}", as_file.display()),
    );
    std::fs::write(&cfg, &text).unwrap();
    let registration = generate_ok(&cfg, &reg);
    assert_eq!(registration.as_token, "as-from-file-0123456789");
    let new_text = std::fs::read_to_string(&cfg).unwrap();
    assert!(new_text.contains(&format!("  as_token_file: {}", as_file.display())));
    assert_eq!(registration.hs_token, yaml_token(&new_text, "hs_token"));
}

#[test]
fn generate_creates_missing_token_files_once_and_keeps_them() {
    // As the NixOS module runs it: tokens in a state directory, the config read-only.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let cfg = dir.path().join("config.yaml");
    let reg = state.join("registration.yaml");
    let text = example_with_domain()
        .replace(
            "  as_token: generate",
            &format!("  as_token_file: {}/as_token", state.display()),
        )
        .replace(
            "  hs_token: generate",
            &format!("  hs_token_file: {}/hs_token", state.display()),
        );
    std::fs::write(&cfg, &text).unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o444)).unwrap();
    let generate = || {
        let registration = generate_ok(&cfg, &reg);
        (registration.as_token, registration.hs_token)
    };
    let (as_token, hs_token) = generate();
    assert!(as_token.len() >= 64 && hs_token.len() >= 64);
    assert_ne!(as_token, hs_token);
    for (name, token) in [("as_token", &as_token), ("hs_token", &hs_token)] {
        let path = state.join(name);
        assert_eq!(&std::fs::read_to_string(&path).unwrap(), token);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name} holds a secret");
    }
    assert_eq!(
        std::fs::read_to_string(&cfg).unwrap(),
        text,
        "config untouched"
    );
    // A restart runs -g again: the same tokens.
    assert_eq!(generate(), (as_token, hs_token));
}

fn validate(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, text).unwrap();
    let out = run(&["validate-config", "-c", cfg.to_str().unwrap()]);
    (out.status.code().unwrap(), stderr(&out))
}

/// A config that is valid for running, as the base of the negative cases.
fn runnable() -> String {
    example_with_domain()
        .replace("  as_token: generate", "  as_token: as-secret-aaaaaaaaaaaa")
        .replace("  hs_token: generate", "  hs_token: hs-secret-bbbbbbbbbbbb")
}

#[test]
fn validate_config_accepts_a_runnable_config() {
    let (code, err) = validate(&runnable());
    assert_eq!(code, 0, "{err}");
}

#[test]
fn validate_config_names_each_problem() {
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "unknown key",
            "  port: 29319\n",
            "  port: 29319\n  colour: blue\n",
            &["appservice.colour (line {}): unknown key"],
        ),
        (
            "placeholder domain",
            "  domain: bridge.test",
            "  domain: example.com",
            &["homeserver.domain (line {})", "placeholder"],
        ),
        (
            "malformed URL",
            "  address: http://127.0.0.1:8008",
            "  address: http//127.0.0.1:8008",
            &["homeserver.address (line {})", "not a valid URL"],
        ),
        (
            "missing {userid}",
            "username_template: slack_{userid}",
            "username_template: slack_user",
            &["appservice.username_template", "{userid}"],
        ),
        (
            "missing *_file",
            "  as_token: as-secret-aaaaaaaaaaaa",
            "  as_token_file: /nonexistent/as_token",
            &[
                "appservice.as_token_file",
                "cannot read /nonexistent/as_token",
            ],
        ),
        (
            "bad port",
            "  port: 29319",
            "  port: 70000",
            &["appservice.port", "70000"],
        ),
        (
            "tokens still generate",
            "  hs_token: hs-secret-bbbbbbbbbbbb",
            "  hs_token: generate",
            &["appservice.hs_token", "slack-bridge -g"],
        ),
        (
            "bot matched by the ghost template",
            "    username: slackbot",
            "    username: slack_bot",
            &["appservice.bot.username", "matches the ghost template"],
        ),
    ];
    for (what, from, to, expect) in cases {
        let text = runnable();
        assert!(text.contains(from), "{what}: base config lacks {from:?}");
        let changed = text.replacen(from, to, 1);
        // The line the operator has to look at: the last line of the replacement.
        let offset = changed.find(to).unwrap() + to.trim_end().len();
        let line = changed[..offset].lines().count();
        let (code, err) = validate(&changed);
        assert_eq!(code, EXIT_CONFIG, "{what}: {err}");
        assert!(err.starts_with("Error: "), "{what}: {err}");
        for e in *expect {
            let e = e.replace("{}", &line.to_string());
            assert!(err.contains(&e), "{what}: expected {e:?} in:\n{err}");
        }
    }
}

#[test]
fn validate_config_lists_all_problems_at_once() {
    let text = example()
        .replace("  port: 29319\n", "  port: 29319\n  colour: blue\n")
        .replace("  address: http://127.0.0.1:8008", "  address: not a url")
        .replace(
            "username_template: slack_{userid}",
            "username_template: slack_user",
        )
        .replace(
            "  as_token: generate",
            "  as_token_file: /nonexistent/as_token",
        );
    let (code, err) = validate(&text);
    assert_eq!(code, EXIT_CONFIG);
    for key in [
        "appservice.colour",
        "homeserver.domain",
        "homeserver.address",
        "appservice.username_template",
        "appservice.as_token_file",
        "appservice.hs_token",
    ] {
        assert!(err.contains(key), "expected {key} in:\n{err}");
    }
    assert!(err.contains("6 problems"), "{err}");
}

#[test]
fn argument_errors_and_version() {
    let out = run(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("Error: "), "{}", stderr(&out));
    let out = run(&["--version"]);
    assert!(out.status.success());
    let version = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    // The git revision it was built from, when built in a clone.
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match head {
        Some(rev) => assert!(
            version.contains(&format!("({rev})")),
            "{version} lacks {rev}"
        ),
        None => assert!(version.contains("(unknown revision)"), "{version}"),
    }
    let out = run(&["-c", "/nonexistent/config.yaml"]);
    assert_eq!(out.status.code(), Some(EXIT_CONFIG));
    let err = stderr(&out);
    assert!(
        err.starts_with("Error: cannot read config file /nonexistent/config.yaml"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
}

/// Runs the bridge with every kind of secret configured and debug logging, and asserts that
/// none of the secrets appears in anything it printed.
#[test]
fn secrets_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    let hs_file = dir.path().join("hs_token");
    let bot_file = dir.path().join("bot_token");
    let secrets = [
        "as-SECRET-1111111111111111",
        "hs-SECRET-2222222222222222",
        "xoxb-SECRET-3333333333",
        "xapp-SECRET-4444444444",
        "dbpassSECRET5555",
        // The encryption key, as SLACK_BRIDGE_ENCRYPTION_KEY carries it (32 bytes, base64).
        "U0VDUkVUa2V5LTAxMjM0NTY3ODlhYmNkZWZnaGlqa2w=",
    ];
    std::fs::write(&hs_file, secrets[1]).unwrap();
    std::fs::write(&bot_file, format!("{}\n", secrets[2])).unwrap();
    let db = dir.path().join("bridge.db");
    let text = runnable()
        .replace(
            "  as_token: as-secret-aaaaaaaaaaaa",
            &format!("  as_token: {}", secrets[0]),
        )
        .replace(
            "  hs_token: hs-secret-bbbbbbbbbbbb",
            &format!("  hs_token_file: {}", hs_file.display()),
        )
        .replace(
            "  uri: sqlite://slack-bridge.db",
            &format!("  uri: sqlite://{}", db.display()),
        )
        .replace(
            "  logins: []",
            &format!(
                "  logins:\n    - bot_token_file: {}\n      owner: \"@dan:bridge.test\"",
                bot_file.display()
            ),
        )
        .replace("  level: info", "  level: trace")
        // Nothing listens here: the run must fail by itself after logging its startup.
        .replace("http://127.0.0.1:8008", "http://127.0.0.1:9");
    std::fs::write(&cfg, text).unwrap();
    let child = Command::new(BIN)
        .args(["-c", cfg.to_str().unwrap()])
        .env("SLACK_BRIDGE_LOGINS_0_APP_TOKEN", secrets[3])
        .env("SLACK_BRIDGE_DATABASE_PASSWORD", secrets[4])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The database password only applies to postgres URIs, so that config is refused; run it
    // again without the password to get a full startup log.
    let first = child.wait_with_output().unwrap();
    let mut all = String::from_utf8_lossy(&first.stdout).into_owned() + &stderr(&first);
    assert!(all.contains("database.password"), "{all}");

    let mut child = Command::new(BIN)
        .args(["-c", cfg.to_str().unwrap()])
        .env("SLACK_BRIDGE_LOGINS_0_APP_TOKEN", secrets[3])
        .env("SLACK_BRIDGE_ENCRYPTION_KEY", secrets[5])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(err).lines() {
            lines.push(line.unwrap_or_default());
        }
        lines
    });
    // The run either fails by itself (homeserver unreachable) or, once its database exists,
    // gets stopped the way systemd stops it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut db_seen: Option<Instant> = None;
    while child.try_wait().unwrap().is_none() {
        if db.exists() {
            db_seen.get_or_insert_with(Instant::now);
        }
        if Instant::now() > deadline
            || db_seen.is_some_and(|t| t.elapsed() > Duration::from_secs(2))
        {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            child.wait().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let lines = reader.join().unwrap();
    all.push_str(&lines.join("\n"));
    assert!(
        all.contains("effective configuration"),
        "the run logged its config at debug level:\n{all}"
    );
    for s in secrets {
        assert!(
            !all.contains(s),
            "secret {s} leaked into the output:\n{all}"
        );
    }
    assert!(all.contains("***"), "secrets show as ***");
}

#[test]
fn manifest_prints_a_socket_mode_app_with_every_scope() {
    let out = run(&["manifest", "--name", "Acme Bridge"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(v["settings"]["socket_mode_enabled"].as_bool(), Some(true));
    assert_eq!(
        v["display_information"]["name"].as_str(),
        Some("Acme Bridge")
    );
    let scopes: Vec<&str> = v["oauth_config"]["scopes"]["bot"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    for needed in [
        "chat:write",
        "chat:write.customize",
        "channels:history",
        "im:history",
        "users:read",
    ] {
        assert!(scopes.contains(&needed), "{needed} in {scopes:?}");
    }
    let events = v["settings"]["event_subscriptions"]["bot_events"]
        .as_sequence()
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.as_str() == Some("message.channels"))
    );
    assert!(
        text.contains("connections:write"),
        "says how to make the app-level token"
    );
}

/// A config for `dir` (database and key file inside it) whose homeserver does not answer.
fn in_dir(dir: &Path) -> std::path::PathBuf {
    let cfg = dir.join("config.yaml");
    let text = runnable()
        .replace(
            "  uri: sqlite://slack-bridge.db",
            &format!("  uri: sqlite://{}", dir.join("bridge.db").display()),
        )
        .replace("http://127.0.0.1:8008", "http://127.0.0.1:9");
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// `doctor --json`'s encryption key check: whether it passed, and what it said.
fn key_check(cfg: &Path, env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["doctor", "--json", "-c", cfg.to_str().unwrap()])
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor --json: {e}: {}", stderr(&out)));
    let check = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "encryption key")
        .unwrap_or_else(|| panic!("no encryption key check in {v}"))
        .clone();
    (
        check["ok"].as_bool().unwrap(),
        check["detail"].as_str().unwrap().to_owned(),
    )
}

/// `run` until it fails by itself or gets past its database ("database ready", logged once
/// the key opened it; it is stopped there): (exit status, what it logged).
fn start(cfg: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .args(["-c", cfg.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let mut all = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                all.push_str(&line);
                all.push('\n');
                if line.contains("database ready") {
                    let _ = child.kill();
                    child.wait().unwrap();
                    return (None, all);
                }
            }
            // Its stderr closed: it exited.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                child.wait().unwrap();
                panic!("the bridge neither failed nor opened its database within 30 s:\n{all}");
            }
        }
    }
    let status = child.wait().unwrap();
    (status.code(), all)
}

/// The key of the stored tokens: `-g` creates it once (0600), a wrong or missing key stops
/// the start naming the file, `rotate-key` replaces it (and finishes a rotation that was
/// stopped between its commit and its rename), and the environment variable can carry it.
#[test]
fn the_encryption_key_is_created_checked_and_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = in_dir(dir.path());
    let reg = dir.path().join("registration.yaml");
    let key_file = dir.path().join("slack-bridge.key");
    let out = run(&[
        "-g",
        "-c",
        cfg.to_str().unwrap(),
        "-r",
        reg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&key_file.display().to_string()),
        "-g says where the key is"
    );
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let first = std::fs::read_to_string(&key_file).unwrap();
    generate_ok(&cfg, &reg);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), first, "kept");
    let (ok, detail) = key_check(&cfg, &[]);
    assert!(ok, "{detail}");

    // Rotated in place: a new key, and the database opens with it.
    let out = run(&["rotate-key", "-c", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rotated = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(rotated, first);
    assert!(!dir.path().join("slack-bridge.key.new").exists());
    let (ok, detail) = key_check(&cfg, &[]);
    assert!(ok, "{detail}");

    // The old key is refused, by doctor and at start, naming the file.
    std::fs::write(&key_file, &first).unwrap();
    let (ok, detail) = key_check(&cfg, &[]);
    assert!(
        !ok && detail.contains(&key_file.display().to_string()),
        "{detail}"
    );
    let (status, err) = start(&cfg);
    assert_eq!(status, Some(EXIT_CONFIG), "{err}");
    assert!(
        err.contains(&key_file.display().to_string()) && err.contains("another key"),
        "{err}"
    );
    std::fs::write(&key_file, &rotated).unwrap();
    let (status, err) = start(&cfg);
    assert_eq!(status, None, "past the key: {err}");

    // A rotation stopped after its commit, before its rename: run again, it finishes.
    let next = dir.path().join("next.key");
    let out = run(&[
        "rotate-key",
        "--new-key-file",
        next.to_str().unwrap(),
        "-c",
        cfg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        rotated,
        "untouched"
    );
    std::fs::rename(&next, dir.path().join("slack-bridge.key.new")).unwrap();
    assert!(!key_check(&cfg, &[]).0);
    let out = run(&["rotate-key", "-c", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("interrupted"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (ok, detail) = key_check(&cfg, &[]);
    assert!(ok, "{detail}");

    // The key from the environment instead of the file.
    let key = std::fs::read_to_string(&key_file).unwrap();
    std::fs::remove_file(&key_file).unwrap();
    let (ok, detail) = key_check(&cfg, &[]);
    assert!(!ok && detail.contains("does not exist"), "{detail}");
    let (status, err) = start(&cfg);
    assert_eq!(status, Some(EXIT_CONFIG), "{err}");
    assert!(!key_file.exists(), "no new key replaces the lost one");
    let env = [("SLACK_BRIDGE_ENCRYPTION_KEY", key.trim())];
    let (ok, detail) = key_check(&cfg, &env);
    assert!(ok, "{detail}");
    let out = Command::new(BIN)
        .args(["rotate-key", "-c", cfg.to_str().unwrap()])
        .envs(env)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--new-key-file"), "{}", stderr(&out));
}
