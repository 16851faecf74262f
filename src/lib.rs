//! slack-bridge: a Matrix appservice bridge between Slack (Socket Mode) and Matrix.
//!
//! Map of the crate:
//! - [`cli`]: the command line; [`config`]: typed config, secrets, validation, in-place edits;
//! - [`registration`]: the appservice registration and `-g`;
//! - [`store`]: the database (SQLite or PostgreSQL) with versioned migrations;
//! - [`logging`]: tracing setup.

pub mod cli;
pub mod config;
pub mod logging;
pub mod registration;
pub mod store;

use std::future::Future;

use config::{Config, ConfigError, Mode};
use registration::RegistrationError;
use store::{Store, StoreError};

/// Everything that can stop the bridge or one of its commands; each message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Registration(#[from] RegistrationError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Logging(#[from] logging::LogError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Executes a parsed command line.
pub fn execute(cli: cli::Cli) -> Result<(), Error> {
    if cli.generate_registration {
        let report = registration::generate(&cli.config, &cli.registration)?;
        println!(
            "Wrote {} (sender_localpart: {}).",
            report.registration_path.display(),
            report.sender_localpart
        );
        if report.generated_tokens.is_empty() {
            println!("Kept the tokens already set in {}.", cli.config.display());
        } else {
            println!(
                "Generated {} and saved them in {}.",
                report.generated_tokens.join(" and "),
                cli.config.display()
            );
        }
        println!(
            "Next: install the registration in your homeserver and restart the homeserver (see README: Registering)."
        );
        return Ok(());
    }
    match cli.command.unwrap_or(cli::Command::Run) {
        cli::Command::ValidateConfig => {
            Config::load(&cli.config, Mode::Run)?;
            println!("{}: OK", cli.config.display());
            Ok(())
        }
        cli::Command::Run => {
            let config = Config::load(&cli.config, Mode::Run)?;
            logging::init(&config.logging)?;
            let rt = tokio::runtime::Runtime::new().map_err(Error::Runtime)?;
            rt.block_on(run(config, shutdown_signal()))
        }
    }
}

/// Resolves on SIGINT or SIGTERM (systemd's stop).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Runs the bridge until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    tracing::debug!(?config, "effective configuration");
    let store = Store::connect(config.database.uri(), config.database.max_connections).await?;
    tracing::info!(
        dialect = ?store.dialect(),
        schema = store.known_version(),
        "database ready"
    );
    shutdown.await;
    tracing::info!("shutting down");
    store.close().await;
    Ok(())
}
