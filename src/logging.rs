//! Tracing setup: level and format from the config, `RUST_LOG` overriding the level.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LoggingConfig};

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("RUST_LOG=`{value}` is not a valid filter: {source}")]
    Filter {
        value: String,
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("cannot install the log subscriber: {0}")]
    Init(String),
}

/// Installs the global subscriber, writing to stderr (stdout stays clean for commands such as
/// `manifest` that print something to be piped).
pub fn init(cfg: &LoggingConfig) -> Result<(), LogError> {
    let value = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| cfg.level.clone());
    let filter = EnvFilter::try_new(&value).map_err(|source| LogError::Filter {
        value: value.clone(),
        source,
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    }
    .map_err(|e| LogError::Init(e.to_string()))
}
