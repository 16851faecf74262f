//! What the sandbox and the benchmark share: a bridge config for a homeserver on this machine
//! and the Slack emulator, written from `config.example.yaml` the way an operator edits it,
//! and the registration generated with `-g`.

// Each example uses a part of it.
#![allow(dead_code)]

use std::{
    error::Error,
    path::{Path, PathBuf},
};

use slack_emulator::Emulator;
use testkit::free_port;

pub struct LocalSetup {
    pub config_path: PathBuf,
    pub registration_path: PathBuf,
    pub hs_port: u16,
    /// The bridge's SQLite database.
    pub db_uri: String,
}

/// Writes `config.yaml` and `registration.yaml` into `dir`: the homeserver `server_name` on a
/// free port, the bridge on another, SQLite in `dir`, the emulator's Web API, and a declared
/// login of the emulator's app owned by `@<owner>:<server_name>`.
pub fn write_config(
    dir: &Path,
    server_name: &str,
    emu: &Emulator,
    owner: &str,
) -> Result<LocalSetup, Box<dyn Error>> {
    let hs_port = free_port();
    let as_port = free_port();
    let config_path = dir.join("config.yaml");
    let registration_path = dir.join("registration.yaml");
    let db_uri = format!("sqlite://{}", dir.join("bridge.db").display());
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.yaml"))?;
    let login = format!(
        "  logins:\n    - bot_token: {}\n      app_token: {}\n      owner: \"@{owner}:{server_name}\"",
        emu.bot_token(),
        emu.app_token()
    );
    let text = example
        .replacen(
            "  domain: example.com",
            &format!("  domain: {server_name}"),
            1,
        )
        .replacen(
            "  address: http://127.0.0.1:8008",
            &format!("  address: http://127.0.0.1:{hs_port}"),
            1,
        )
        .replacen(
            "  address: http://127.0.0.1:29319",
            &format!("  address: http://127.0.0.1:{as_port}"),
            1,
        )
        .replacen("  port: 29319", &format!("  port: {as_port}"), 1)
        .replacen(
            "  uri: sqlite://slack-bridge.db",
            &format!("  uri: {db_uri}"),
            1,
        )
        .replacen(
            "  api_url: https://slack.com/api",
            &format!("  api_url: {}", emu.api_url()),
            1,
        )
        .replacen("  logins: []", &login, 1)
        .replace("\"example.com\": user", &format!("\"{server_name}\": user"))
        .replacen("  level: info", "  level: warn", 1);
    std::fs::write(&config_path, text)?;
    slack_bridge::registration::generate(&config_path, &registration_path)?;
    Ok(LocalSetup {
        config_path,
        registration_path,
        hs_port,
        db_uri,
    })
}
