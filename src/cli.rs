//! The command line, mautrix-style: `-c config.yaml -r registration.yaml`, `-g` to generate
//! the registration, and subcommands for the operator's checks.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// `slack-bridge --version`: the release and the git revision it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SLACK_BRIDGE_GIT_REV"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "slack-bridge",
    version = VERSION,
    about = "A Matrix appservice bridge for Slack (Socket Mode)"
)]
pub struct Cli {
    /// Path to the bridge config.
    #[arg(
        short = 'c',
        long = "config",
        default_value = "config.yaml",
        global = true
    )]
    pub config: PathBuf,
    /// Path of the appservice registration (written by -g, read by nothing else).
    #[arg(
        short = 'r',
        long = "registration",
        default_value = "registration.yaml",
        global = true
    )]
    pub registration: PathBuf,
    /// Generate the registration (and any `generate` tokens in the config), then exit.
    #[arg(short = 'g', long = "generate-registration")]
    pub generate_registration: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the bridge (the default).
    Run,
    /// Check the config, list every problem, and exit.
    ValidateConfig,
    /// Print the Slack app manifest (every scope and event the bridge needs, Socket Mode on).
    Manifest {
        /// The app's name in Slack.
        #[arg(long, default_value = "Matrix Bridge")]
        name: String,
    },
    /// Run every startup check (config, database, homeserver, as_token, appservice ping, and
    /// for every Slack login its tokens, scopes and events) without starting the bridge, and
    /// report each. Exits non-zero when any check fails.
    Doctor {
        /// Print the checks as one JSON object instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Re-seal the stored Slack tokens under a new encryption key, in one transaction, then
    /// replace the key file with the new key. Stop the bridge first. Run it again if it was
    /// interrupted: it finishes what it started.
    RotateKey {
        /// Write the new key to this new file and leave the current key file alone (needed
        /// when the key comes from SLACK_BRIDGE_ENCRYPTION_KEY); point the config at it after.
        #[arg(long, value_name = "PATH")]
        new_key_file: Option<PathBuf>,
    },
}
