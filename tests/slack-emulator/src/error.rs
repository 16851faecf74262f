//! The emulator's error type: a Slack-style error code such as `channel_not_found`, shared by
//! the Web API (where it becomes `{"ok":false,"error":…}`) and the test control surface.

/// A Slack error code (`channel_not_found`, `not_in_channel`, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}")]
pub struct Error {
    pub code: String,
}

impl Error {
    pub fn new(code: impl Into<String>) -> Self {
        Error { code: code.into() }
    }
}
