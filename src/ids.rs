//! Slack identities and how they map to Matrix: the ID newtypes the wire types carry, ghost
//! user IDs, portal aliases, message txn ids and timestamps. Mappings are frozen once stored;
//! these functions only make new ones. No I/O.
//!
//! Each Slack ID is its own type, so a channel can never be passed where a user is expected.
//! They are serde-transparent strings (what Slack sends is what is stored), and read as `&str`
//! wherever a plain string is enough (formatting, SQL binds, logs).

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

macro_rules! slack_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub(crate) String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<&String> for $name {
            fn from(s: &String) -> Self {
                Self(s.clone())
            }
        }

        impl From<&$name> for $name {
            fn from(id: &$name) -> Self {
                id.clone()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl From<&$name> for String {
            fn from(id: &$name) -> String {
                id.0.clone()
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<&$name> for $name {
            fn eq(&self, other: &&$name) -> bool {
                self.0 == other.0
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

slack_id!(
    /// A workspace (`T…`), or an Enterprise Grid organisation (`E…`).
    TeamId
);
slack_id!(
    /// A conversation: public (`C…`) or private channel (`G…`/`C…`), DM (`D…`), group DM.
    ChannelId
);
slack_id!(
    /// A person or a bot user (`U…`/`W…`).
    UserId
);
slack_id!(
    /// A bot integration (`B…`): the `bot_id` of a bot's message, not its user.
    BotId
);
slack_id!(
    /// Who wrote a message: a Slack user, or a bot that posts without one (its `bot_id`).
    SenderId
);
slack_id!(
    /// A message timestamp (`"1700000000.123456"`): unique per conversation, it is also the
    /// message's ID. Compare with [`Ts::key`], which orders like the time.
    Ts
);

/// What a ghost stands for: a Slack user, or a bot that posts without one.
pub trait GhostKey {
    fn ghost_key(&self) -> &str;
}

impl GhostKey for UserId {
    fn ghost_key(&self) -> &str {
        self
    }
}

impl GhostKey for BotId {
    fn ghost_key(&self) -> &str {
        self
    }
}

impl GhostKey for SenderId {
    fn ghost_key(&self) -> &str {
        self
    }
}

impl From<UserId> for SenderId {
    fn from(id: UserId) -> Self {
        Self(id.0)
    }
}

impl From<BotId> for SenderId {
    fn from(id: BotId) -> Self {
        Self(id.0)
    }
}

impl SenderId {
    /// The bot integration, for a sender that is one (`B…`).
    pub fn bot(&self) -> Option<BotId> {
        self.0.starts_with('B').then(|| BotId(self.0.clone()))
    }

    /// The user, for a sender that is not a bot integration.
    pub fn user(&self) -> Option<UserId> {
        (!self.0.starts_with('B')).then(|| UserId(self.0.clone()))
    }
}

impl Ts {
    /// Milliseconds since the epoch, for `?ts=` on Matrix sends.
    pub fn millis(&self) -> Option<u64> {
        ts_to_millis(self)
    }

    /// A number that orders like the timestamps (`"9.5"` before `"10.000001"`); 0 for
    /// anything that is not one.
    pub fn key(&self) -> u128 {
        ts_key(self)
    }
}

/// The ghost localpart of a Slack user (or bot): `{userid}` in the template becomes the
/// lowercase `<team id>-<user id>`.
pub fn ghost_localpart(template: &str, team_id: &TeamId, who: &impl GhostKey) -> String {
    let id = format!("{team_id}-{}", who.ghost_key()).to_lowercase();
    template.replace("{userid}", &id)
}

pub fn ghost_mxid(template: &str, domain: &str, team_id: &TeamId, who: &impl GhostKey) -> String {
    format!("@{}:{domain}", ghost_localpart(template, team_id, who))
}

/// The alias localpart of a portal room (`channel_id` = the Slack conversation) or, with
/// `channel_id` None, of the workspace's space: the ghost template with `{userid}` replaced by
/// the lowercase `<team id>-<channel id>` (or `<team id>`). Rooms are created with this alias,
/// so a creation repeated after a crash finds the first room instead of making a second.
pub fn room_alias_localpart(
    template: &str,
    team_id: &TeamId,
    channel_id: Option<&ChannelId>,
) -> String {
    match channel_id {
        Some(c) => template.replace("{userid}", &format!("{team_id}-{c}").to_lowercase()),
        None => template.replace("{userid}", &team_id.to_lowercase()),
    }
}

/// A Slack `ts` ("1700000000.123456") in milliseconds, for `?ts=` on Matrix sends.
pub fn ts_to_millis(ts: &str) -> Option<u64> {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, "0"));
    let secs: u64 = secs.parse().ok()?;
    let mut frac: String = frac.chars().take(3).collect();
    while frac.len() < 3 {
        frac.push('0');
    }
    Some(secs * 1000 + frac.parse::<u64>().ok()?)
}

/// A Slack ts as a number that orders like the timestamps (`"9.5"` before `"10.000001"`);
/// 0 for anything that is not one.
pub fn ts_key(ts: &str) -> u128 {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, ""));
    let Ok(secs) = secs.parse::<u128>() else {
        return 0;
    };
    let mut micros: String = frac.chars().take(6).collect();
    while micros.len() < 6 {
        micros.push('0');
    }
    secs * 1_000_000 + micros.parse::<u128>().unwrap_or(0)
}

/// The txn id of a Matrix event made from part `part` of a Slack message: unique across the
/// whole appservice (Synapse deduplicates per path and appservice), and the same on every
/// retry, so a retried send never duplicates.
pub fn message_txn_id(team_id: &TeamId, channel_id: &ChannelId, ts: &Ts, part: u32) -> String {
    format!("slack-{team_id}-{channel_id}-{ts}-{part}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_order_as_numbers() {
        assert!(ts_key("9.5") < ts_key("10.000001"));
        assert!(ts_key("1700000000.000100") < ts_key("1700000000.000101"));
        assert_eq!(ts_key("1700000000.5"), ts_key("1700000000.500000"));
        assert_eq!(ts_key("x"), 0);
    }

    #[test]
    fn ghost_ids_are_lowercase_team_and_user() {
        assert_eq!(
            ghost_localpart("slack_{userid}", &"T0TEAM".into(), &UserId::from("U123ABC")),
            "slack_t0team-u123abc"
        );
        assert_eq!(
            ghost_mxid(
                "slack_{userid}",
                "example.org",
                &"T1".into(),
                &BotId::from("B9")
            ),
            "@slack_t1-b9:example.org"
        );
    }

    #[test]
    fn ids_are_plain_strings_on_the_wire() {
        let c: ChannelId = serde_json::from_str("\"C0123\"").unwrap();
        assert_eq!(c, "C0123");
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"C0123\"");
        assert_eq!(
            room_alias_localpart("slack_{userid}", &"T1".into(), Some(&c)),
            "slack_t1-c0123"
        );
        assert_eq!(
            room_alias_localpart("slack_{userid}", &"T1".into(), None),
            "slack_t1"
        );
    }

    #[test]
    fn ts_conversion() {
        assert_eq!(ts_to_millis("1700000000.123456"), Some(1_700_000_000_123));
        assert_eq!(ts_to_millis("1700000000.1"), Some(1_700_000_000_100));
        assert_eq!(ts_to_millis("1700000000"), Some(1_700_000_000_000));
        assert_eq!(ts_to_millis("nope"), None);
    }

    #[test]
    fn txn_ids_are_deterministic() {
        assert_eq!(
            message_txn_id(&"T1".into(), &"C1".into(), &"1700000000.000100".into(), 0),
            "slack-T1-C1-1700000000.000100-0"
        );
    }
}
