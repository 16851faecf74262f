//! Slack identities and how they map to Matrix: ghost user IDs, message txn ids and
//! timestamps. Mappings are frozen once stored; these functions only make new ones.

/// The ghost localpart of a Slack user (or bot): `{userid}` in the template becomes the
/// lowercase `<team id>-<user id>`.
pub fn ghost_localpart(template: &str, team_id: &str, user_id: &str) -> String {
    let id = format!("{team_id}-{user_id}").to_lowercase();
    template.replace("{userid}", &id)
}

pub fn ghost_mxid(template: &str, domain: &str, team_id: &str, user_id: &str) -> String {
    format!("@{}:{domain}", ghost_localpart(template, team_id, user_id))
}

/// The alias localpart of a portal room (`channel_id` = the Slack conversation) or, with
/// `channel_id` None, of the workspace's space: the ghost template with `{userid}` replaced by
/// the lowercase `<team id>-<channel id>` (or `<team id>`). Rooms are created with this alias,
/// so a creation repeated after a crash finds the first room instead of making a second.
pub fn room_alias_localpart(template: &str, team_id: &str, channel_id: Option<&str>) -> String {
    match channel_id {
        Some(c) => ghost_localpart(template, team_id, c),
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
pub fn message_txn_id(team_id: &str, channel_id: &str, ts: &str, part: u32) -> String {
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
            ghost_localpart("slack_{userid}", "T0TEAM", "U123ABC"),
            "slack_t0team-u123abc"
        );
        assert_eq!(
            ghost_mxid("slack_{userid}", "example.org", "T1", "B9"),
            "@slack_t1-b9:example.org"
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
            message_txn_id("T1", "C1", "1700000000.000100", 0),
            "slack-T1-C1-1700000000.000100-0"
        );
    }
}
