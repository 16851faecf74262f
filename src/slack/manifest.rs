//! The Slack app manifest the bridge needs: every bot scope and event at once, with Socket
//! Mode on, so a workspace admin approves the app a single time. Also what breaks without each
//! scope, for the startup check.

use serde_json::json;

/// Bot scopes and what each is for.
pub const BOT_SCOPES: &[(&str, &str)] = &[
    ("channels:history", "messages of public channels"),
    ("channels:read", "listing public channels, names and topics"),
    ("channels:join", "joining public channels"),
    ("chat:write", "posting Matrix messages to Slack"),
    (
        "chat:write.customize",
        "showing the Matrix sender's name and avatar on relayed messages",
    ),
    ("emoji:read", "custom emoji"),
    ("files:read", "files shared on Slack"),
    ("files:write", "files sent from Matrix"),
    ("groups:history", "messages of private channels"),
    ("groups:read", "listing private channels"),
    ("im:history", "messages of direct messages"),
    ("im:read", "listing direct messages"),
    ("im:write", "opening direct messages"),
    ("mpim:history", "messages of group direct messages"),
    ("mpim:read", "listing group direct messages"),
    ("mpim:write", "opening group direct messages"),
    ("pins:read", "pinned messages"),
    ("reactions:read", "reactions made on Slack"),
    ("reactions:write", "reactions made on Matrix"),
    ("team:read", "the workspace's name for its Matrix space"),
    ("users:read", "names and avatars of Slack users"),
    ("usergroups:read", "mentions of user groups"),
];

/// The scope names alone, in manifest order.
pub fn bot_scope_names() -> Vec<&'static str> {
    BOT_SCOPES.iter().map(|(s, _)| *s).collect()
}

/// Bot events the bridge handles (each needs one of the scopes above).
pub const BOT_EVENTS: &[&str] = &[
    "message.channels",
    "message.groups",
    "message.im",
    "message.mpim",
    "reaction_added",
    "reaction_removed",
    "member_joined_channel",
    "member_left_channel",
    "channel_created",
    "channel_rename",
    "channel_archive",
    "channel_unarchive",
    "channel_deleted",
    "group_rename",
    "group_archive",
    "group_unarchive",
    "pin_added",
    "pin_removed",
    "user_change",
    "team_join",
    "emoji_changed",
    "file_shared",
    "file_deleted",
];

/// What the bridge cannot do without `scope`.
pub fn scope_purpose(scope: &str) -> &'static str {
    BOT_SCOPES
        .iter()
        .find(|(s, _)| *s == scope)
        .map(|(_, p)| *p)
        .unwrap_or("used by the bridge")
}

/// Missing scopes for an operator: each with what breaks without it.
pub fn describe_missing(missing: &[&str]) -> String {
    missing
        .iter()
        .map(|s| format!("{s} (without it: {})", scope_purpose(s)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The manifest as YAML, with the steps around it as comments.
pub fn yaml(app_name: &str) -> String {
    let manifest = json!({
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": app_name,
            "description": "Bridges this Slack workspace with Matrix",
        },
        "features": {
            "app_home": {
                "home_tab_enabled": false,
                "messages_tab_enabled": true,
                "messages_tab_read_only_enabled": false,
            },
            "bot_user": {"display_name": app_name, "always_online": true},
        },
        "oauth_config": {"scopes": {"bot": bot_scope_names()}},
        "settings": {
            "event_subscriptions": {"bot_events": BOT_EVENTS},
            "interactivity": {"is_enabled": false},
            "org_deploy_enabled": false,
            "socket_mode_enabled": true,
            "token_rotation_enabled": false,
        },
    });
    let body = serde_yaml::to_string(&manifest).expect("a JSON value always serialises");
    format!(
        "# Slack app manifest for slack-bridge. At https://api.slack.com/apps: Create New App →\n\
         # From an app manifest → paste this. Then:\n\
         #  1. Basic Information → App-Level Tokens → generate one with the connections:write scope\n\
         #     (xapp-…; manifests cannot create it).\n\
         #  2. Install the app to the workspace → copy the Bot User OAuth Token (xoxb-…).\n\
         #  3. Give both to the bridge: `login <xapp-…> <xoxb-…>` in a DM with the bridge bot, or\n\
         #     slack.logins in config.yaml. Invite the bot to the channels to bridge.\n\
         {body}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_its_scope() {
        let needs = |event: &str| match event {
            "message.channels" => "channels:history",
            "message.groups" => "groups:history",
            "message.im" => "im:history",
            "message.mpim" => "mpim:history",
            "reaction_added" | "reaction_removed" => "reactions:read",
            "member_joined_channel"
            | "member_left_channel"
            | "channel_created"
            | "channel_rename"
            | "channel_archive"
            | "channel_unarchive"
            | "channel_deleted" => "channels:read",
            "group_rename" | "group_archive" | "group_unarchive" => "groups:read",
            "pin_added" | "pin_removed" => "pins:read",
            "user_change" | "team_join" => "users:read",
            "emoji_changed" => "emoji:read",
            "file_shared" | "file_deleted" => "files:read",
            other => panic!("no scope known for {other}"),
        };
        for e in BOT_EVENTS {
            assert!(
                bot_scope_names().contains(&needs(e)),
                "{e} needs {}",
                needs(e)
            );
        }
    }

    #[test]
    fn manifest_is_a_socket_mode_app_with_everything() {
        let text = yaml("Matrix Bridge");
        let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(
            v["settings"]["socket_mode_enabled"],
            serde_yaml::Value::Bool(true)
        );
        assert_eq!(
            v["display_information"]["name"].as_str(),
            Some("Matrix Bridge")
        );
        let scopes: Vec<&str> = v["oauth_config"]["scopes"]["bot"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|s| s.as_str())
            .collect();
        assert_eq!(scopes, bot_scope_names());
        assert!(
            v["settings"]["event_subscriptions"]
                .get("request_url")
                .is_none()
        );
        assert!(text.contains("connections:write"));
    }
}
