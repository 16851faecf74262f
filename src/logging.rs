//! Tracing setup: level and format from the config, `RUST_LOG` overriding the level. The
//! default format is JSON when stderr is systemd's journal, so journald keeps the fields.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LoggingConfig};

/// Dependencies whose most verbose levels print what they carry, whatever filter the
/// operator asks for: tungstenite's trace prints every Socket Mode frame (private file URLs
/// in them).
const LEAKY_TARGETS: &[&str] = &["tungstenite=debug", "tokio_tungstenite=debug"];

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
    let mut filter = EnvFilter::try_new(&value).map_err(|source| LogError::Filter {
        value: value.clone(),
        source,
    })?;
    for cap in LEAKY_TARGETS {
        filter = filter.add_directive(cap.parse().expect("a valid directive"));
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match effective_format(cfg.format, under_journal()) {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        _ => builder.try_init(),
    }
    .map_err(|e| LogError::Init(e.to_string()))
}

/// The format to use: `auto` becomes `json` under the journal and `pretty` elsewhere.
pub fn effective_format(configured: LogFormat, journal: bool) -> LogFormat {
    match configured {
        LogFormat::Auto if journal => LogFormat::Json,
        LogFormat::Auto => LogFormat::Pretty,
        other => other,
    }
}

/// Whether stderr is connected to the journal: systemd sets `JOURNAL_STREAM=<dev>:<inode>`
/// for the stream it gives the service; a child whose stderr was redirected elsewhere
/// inherits the variable, so the device and inode are compared with stderr's own.
pub fn under_journal() -> bool {
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_json_only_under_the_journal() {
        assert_eq!(effective_format(LogFormat::Auto, true), LogFormat::Json);
        assert_eq!(effective_format(LogFormat::Auto, false), LogFormat::Pretty);
        assert_eq!(effective_format(LogFormat::Pretty, true), LogFormat::Pretty);
        assert_eq!(effective_format(LogFormat::Json, false), LogFormat::Json);
    }
}
