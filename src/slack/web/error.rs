//! The Slack layer's one error type: every way a Web API call can fail, each message naming
//! what to do about it, and the questions callers ask of a failure (dead token? missing scope?
//! worth retrying? how long did Slack ask to wait?).

use std::time::Duration;

use serde_json::Value;

/// Error codes after which a token will never work again; the login must be replaced.
const AUTH_DEAD: &[&str] = &[
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "not_authed",
    "team_disabled",
    "user_removed_from_team",
];

#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    /// Slack answered `{"ok":false,"error":…}`.
    #[error("slack {method} failed with `{error}`{}", hint(.error))]
    Api {
        method: String,
        error: String,
        needed: Option<String>,
        provided: Option<String>,
    },
    /// `missing_scope`: the app's grant lacks what the method needs.
    #[error(
        "slack {method} needs the `{needed}` scope, which the bot token lacks (granted: {}); add it under OAuth & Permissions in the slack app settings and reinstall the app to the workspace",
        granted(.provided)
    )]
    MissingScope {
        method: String,
        needed: String,
        provided: String,
    },
    /// Still rate limited after every retry.
    #[error(
        "slack {method} is still rate limited after {attempts} attempts (last retry-after {}s); the bridge is sending more than slack allows, try again later",
        .retry_after.as_secs()
    )]
    RateLimited {
        method: String,
        attempts: u32,
        retry_after: Duration,
    },
    /// The request did not get a usable HTTP answer (`status` is `None` when no answer came
    /// at all: connection refused, timeout, TLS failure).
    #[error("cannot reach slack for {method}: {reason}")]
    Http {
        method: String,
        status: Option<u16>,
        reason: String,
    },
    /// The answer was not the JSON the method documents.
    #[error("cannot read slack's answer to {method}: {reason}")]
    Decode { method: String, reason: String },
    /// A private file URL answered with Slack's sign-in page instead of the file.
    #[error(
        "downloading a file from {host} returned slack's sign-in page instead of the file: the bot token is invalid or lacks the `files:read` scope; add files:read under OAuth & Permissions, reinstall the app and log in again"
    )]
    FileAuth { host: String },
    #[error("invalid slack url `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
}

fn hint(code: &str) -> &'static str {
    match code {
        c if AUTH_DEAD.contains(&c) => {
            "; the token is invalid, expired or revoked, or the app was uninstalled: reinstall the slack app and log in again with the new tokens"
        }
        "not_allowed_token_type" => {
            "; the wrong kind of token was used: the bot token starts with xoxb-, the app-level token with xapp-"
        }
        "missing_args" => "; a token or required argument is missing",
        "not_in_channel" => {
            "; invite the bot to the channel (or grant chat:write.public to post in public channels)"
        }
        "channel_not_found" => "; the conversation does not exist or the bot cannot see it",
        "is_archived" => "; the channel is archived; unarchive it in slack",
        "msg_too_long" | "msg_blocks_too_long" => "; the message is too long for slack",
        _ => "",
    }
}

fn granted(provided: &str) -> &str {
    if provided.is_empty() {
        "none"
    } else {
        provided
    }
}

impl SlackError {
    /// The Slack error code, when Slack sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            SlackError::Api { error, .. } => Some(error),
            SlackError::MissingScope { .. } => Some("missing_scope"),
            SlackError::RateLimited { .. } => Some("ratelimited"),
            _ => None,
        }
    }

    /// True when the token is dead for good (invalid, revoked, expired, uninstalled): retrying
    /// cannot help and the login has to be replaced.
    pub fn is_auth_dead(&self) -> bool {
        matches!(self, SlackError::Api { error, .. } if AUTH_DEAD.contains(&error.as_str()))
    }

    pub fn is_missing_scope(&self) -> bool {
        matches!(self, SlackError::MissingScope { .. })
    }

    /// The scope(s) Slack says are needed, comma-separated.
    pub fn needed_scope(&self) -> Option<&str> {
        match self {
            SlackError::MissingScope { needed, .. } => Some(needed),
            SlackError::Api { needed, .. } => needed.as_deref(),
            _ => None,
        }
    }

    pub fn is_rate_limited(&self) -> bool {
        matches!(self, SlackError::RateLimited { .. })
    }

    /// How long Slack last asked to wait, when the call gave up on a rate limit.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SlackError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Whether the same call may succeed later unchanged: network failures, server errors,
    /// Slack's transient error codes and exhausted rate limits. Not idempotent calls
    /// (chat.postMessage) may then have gone through; callers dedupe by their own records.
    pub fn is_retryable(&self) -> bool {
        match self {
            SlackError::Http { status, .. } => {
                status.is_none_or(|s| s >= 500 || s == 408 || s == 429)
            }
            SlackError::RateLimited { .. } => true,
            SlackError::Api { error, .. } => matches!(
                error.as_str(),
                "internal_error" | "fatal_error" | "request_timeout" | "service_unavailable"
            ),
            _ => false,
        }
    }
}

/// The error for an `{"ok":false,"error":code}` answer.
pub(super) fn api_error(method: &str, code: String, json: &Value) -> SlackError {
    let s = |k: &str| json.get(k).and_then(Value::as_str).map(str::to_string);
    if code == "missing_scope" {
        return SlackError::MissingScope {
            method: method.to_string(),
            needed: s("needed").unwrap_or_else(|| "(not named by slack)".into()),
            provided: s("provided").unwrap_or_default(),
        };
    }
    SlackError::Api {
        method: method.to_string(),
        error: code,
        needed: s("needed"),
        provided: s("provided"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn errors_name_their_fix() {
        let e = api_error(
            "chat.postMessage",
            "missing_scope".into(),
            &json!({"ok":false,"error":"missing_scope","needed":"chat:write","provided":"commands"}),
        );
        let msg = e.to_string();
        assert!(msg.contains("`chat:write`"), "{msg}");
        assert!(msg.contains("reinstall"), "{msg}");
        assert!(e.is_missing_scope());
        assert_eq!(e.needed_scope(), Some("chat:write"));
        assert!(!e.is_auth_dead());

        for code in AUTH_DEAD {
            let e = api_error("auth.test", code.to_string(), &json!({}));
            assert!(e.is_auth_dead(), "{code}");
            assert!(e.to_string().contains("log in again"), "{e}");
        }
        let e = api_error("chat.postMessage", "not_in_channel".into(), &json!({}));
        assert!(!e.is_auth_dead());
        assert_eq!(e.code(), Some("not_in_channel"));
        assert!(e.to_string().contains("invite the bot"));
        assert!(
            SlackError::FileAuth { host: "x".into() }
                .to_string()
                .contains("files:read")
        );
    }
}
