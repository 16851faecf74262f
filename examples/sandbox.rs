//! The sandbox: a local homeserver (Synapse, or tuwunel with `--homeserver tuwunel`), the Slack
//! emulator with a demo workspace, and the bridge on SQLite, all on this machine, so a newcomer
//! can watch Slack and Matrix talk in one command:
//!
//! ```sh
//! cargo run --example sandbox
//! cargo run --example sandbox -- --homeserver tuwunel
//! ```
//!
//! It prints a Matrix user and password for any Matrix client and a curl line that posts as a
//! Slack user. Ctrl-C stops everything. `--smoke` posts one message each way, checks that it
//! arrived, and exits (the test suite runs it like that).

mod common;

use std::{error::Error, time::Duration};

use serde_json::json;
use slack_bridge::{Bridge, config::Config, config::Mode};
use slack_emulator::{Emulator, Workspace};
use testkit::{Homeserver, HomeserverConfig, HomeserverKind};

const SERVER_NAME: &str = "sandbox.local";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match sandbox().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sandbox: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn sandbox() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let kind = homeserver_kind(&args)?;
    let dir = tempfile::Builder::new()
        .prefix("slack-bridge-sandbox-")
        .tempdir()?;
    eprintln!(
        "sandbox: starting the Slack emulator, {kind} and the bridge (data in {})",
        dir.path().display()
    );

    let mut ws = Workspace::demo();
    // The demo app is installed with every scope the bridge asks for in its manifest.
    ws.set_scopes(&slack_bridge::slack::manifest::bot_scope_names());
    let emu = Emulator::start(ws).await;
    let common::LocalSetup {
        config_path,
        registration_path,
        hs_port,
        ..
    } = common::write_config(dir.path(), SERVER_NAME, &emu, "you")?;

    let homeserver = Homeserver::start(
        kind,
        HomeserverConfig {
            server_name: SERVER_NAME.into(),
            registrations: vec![registration_path.clone()],
            port: Some(hs_port),
            ..HomeserverConfig::default()
        },
    )
    .await?;
    let password = slack_bridge::config::secret::random_token(16)?;
    let you = homeserver.register_user("you", &password, true).await?;

    let config = Config::load(&config_path, Mode::Run)?;
    slack_bridge::logging::init(&config.logging)?;
    let listener = slack_bridge::bind(&config).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let bridge = tokio::spawn(slack_bridge::run(
        Bridge::new(config, registration_path, listener),
        async {
            let _ = stop_rx.await;
        },
    ));

    let general = emu
        .channel_id("general")
        .ok_or("demo workspace has #general")?;
    let alice = emu.user_id("alice").ok_or("demo workspace has alice")?;
    println!();
    println!(
        "Matrix homeserver: http://127.0.0.1:{hs_port}  ({})",
        homeserver.describe()
    );
    println!("  user:     @you:{SERVER_NAME}");
    println!("  password: {password}");
    println!(
        "  (log in with any Matrix client; accept the invites to #general, #random, … and the Acme Demo space)"
    );
    println!();
    println!(
        "Slack emulator: {}/_emulator/  (tokens and IDs: {}/_emulator/info)",
        emu.base_url(),
        emu.base_url()
    );
    println!("Post to #general as Slack user alice:");
    println!(
        "  curl -s -X POST {}/_emulator/post -H 'content-type: application/json' -d '{}'",
        emu.base_url(),
        json!({"user": alice, "channel": general, "text": "Hello from Slack!"})
    );
    println!("See what the bridge posted to Slack:");
    println!("  curl -s {}/_emulator/messages/general", emu.base_url());
    println!();

    let result = if smoke {
        smoke_test(&emu, &you, &general, &alice).await
    } else {
        println!("Press Ctrl-C to stop.");
        tokio::signal::ctrl_c().await?;
        Ok(())
    };
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), bridge).await;
    drop(homeserver);
    emu.shutdown();
    eprintln!("sandbox: stopped");
    result
}

/// `--homeserver synapse|tuwunel` (or `--homeserver=…`); Synapse when absent.
fn homeserver_kind(args: &[String]) -> Result<HomeserverKind, Box<dyn Error>> {
    let mut value: Option<&str> = None;
    for (i, arg) in args.iter().enumerate() {
        if arg == "--homeserver" {
            value = Some(
                args.get(i + 1)
                    .map(String::as_str)
                    .ok_or("--homeserver needs a value: synapse or tuwunel")?,
            );
        } else if let Some(v) = arg.strip_prefix("--homeserver=") {
            value = Some(v);
        }
    }
    match value {
        None => Ok(HomeserverKind::Synapse),
        Some(v) => HomeserverKind::parse(v)
            .ok_or_else(|| format!("--homeserver {v}: expected synapse or tuwunel").into()),
    }
}

/// One message each way, as a user would check it.
async fn smoke_test(
    emu: &Emulator,
    you: &testkit::TestClient,
    general: &str,
    alice: &str,
) -> Result<(), Box<dyn Error>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    // Incremental sync, as a client does (Synapse caches repeated initial syncs).
    let mut since: Option<String> = None;
    let room = loop {
        let path = match &since {
            Some(token) => format!(
                "/_matrix/client/v3/sync?timeout=1000&since={}",
                testkit::enc(token)
            ),
            None => "/_matrix/client/v3/sync?timeout=0".to_owned(),
        };
        let sync = you.get(&path).await.unwrap_or_default();
        if let Some(next) = sync["next_batch"].as_str() {
            since = Some(next.to_owned());
        }
        // Invites carry a stripped state with the room name.
        let found = sync["rooms"]["invite"].as_object().and_then(|invites| {
            invites.iter().find_map(|(room, v)| {
                let events = v["invite_state"]["events"].as_array()?;
                events
                    .iter()
                    .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "#general")
                    .then(|| room.clone())
            })
        });
        if let Some(r) = found {
            break r;
        }
        if tokio::time::Instant::now() > deadline {
            return Err("no invite to #general arrived".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    you.join(&room).await?;
    emu.post_message(alice, general, "Hello from Slack!")
        .map_err(|e| format!("{e:?}"))?;
    you.wait_for_text(&room, "Hello from Slack!", Duration::from_secs(60))
        .await?;
    you.send_text(&room, "Hello from Matrix!").await?;
    emu.wait_for_calls("chat.postMessage", 1, Duration::from_secs(60))
        .await;
    let posted = emu
        .messages(general)
        .iter()
        .any(|m| m["text"] == "Hello from Matrix!");
    if !posted {
        return Err("the Matrix message did not reach Slack".into());
    }
    println!("sandbox smoke test: OK (Slack → Matrix and Matrix → Slack)");
    Ok(())
}
