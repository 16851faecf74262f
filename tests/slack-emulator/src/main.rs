//! `slack-emulator` binary: runs the emulator standalone for a sandbox, printing the tokens and
//! URLs a bridge config needs; the `/_emulator/` JSON API drives it from curl.

use std::time::Duration;

use clap::Parser;
use slack_emulator::{Config, Emulator, SocketConfig, Workspace};

/// A local stand-in for Slack (Web API + Socket Mode) for testing slack-bridge.
#[derive(Debug, Parser)]
#[command(name = "slack-emulator", version, about)]
struct Cli {
    /// Port to listen on at 127.0.0.1 (0 picks a free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Start with a demo workspace: a few channels, users and a little history.
    #[arg(long)]
    demo: bool,
    /// Team ID of the (non-demo) workspace.
    #[arg(long, default_value = "T0TEAM0001")]
    team_id: String,
    /// Team name of the (non-demo) workspace.
    #[arg(long, default_value = "Acme")]
    team_name: String,
    /// Socket Mode ack deadline before an envelope is redelivered, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    ack_timeout_ms: u64,
    /// How long a socket told to refresh stays open before it is closed, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    refresh_grace_ms: u64,
    /// Lift the 15-message cap on conversations.history/replies page size.
    #[arg(long)]
    no_history_cap: bool,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let ws = if cli.demo {
        Workspace::demo()
    } else {
        Workspace::new(&cli.team_id, &cli.team_name)
    };
    let config = Config {
        port: cli.port,
        socket: SocketConfig {
            ack_timeout: Duration::from_millis(cli.ack_timeout_ms),
            refresh_grace: Duration::from_millis(cli.refresh_grace_ms),
            ..SocketConfig::default()
        },
        history_limit_cap: if cli.no_history_cap { None } else { Some(15) },
        ..Config::default()
    };
    let emu = match Emulator::start_with(ws, config).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("Error: cannot listen on 127.0.0.1:{}: {e}", cli.port);
            std::process::exit(1);
        }
    };
    println!("slack-emulator listening on {}", emu.base_url());
    println!("  api_url:      {}", emu.api_url());
    println!("  bot_token:    {}", emu.bot_token());
    println!("  app_token:    {}", emu.app_token());
    println!("  team_id:      {}", emu.team_id());
    println!("  bot_user_id:  {}", emu.bot_user_id());
    println!("  bot_id:       {}", emu.bot_id());
    println!("  app_id:       {}", emu.app_id());
    let (client_id, client_secret) = emu.oauth_client();
    println!("  client_id:    {client_id}");
    println!("  client_secret: {client_secret}");
    emu.with_workspace(|w| {
        for c in w.channels().iter() {
            let kind = format!("{:?}", c.kind).to_lowercase();
            let member = if w.bot_is_member(c) { "bot member" } else { "" };
            println!("  channel {:<12} {:<8} {:<28} {member}", c.id, kind, c.name);
        }
        for u in w.users().iter() {
            println!("  user    {:<12} {}", u.id, u.name);
        }
    });
    println!(
        "  control API:  {}/_emulator/ (GET for the route list)",
        emu.base_url()
    );
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
