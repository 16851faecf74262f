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

/// User scopes a linked Slack user grants (`login-user`), and what each is for: acting as
/// them in the conversations they are in.
pub const USER_SCOPES: &[(&str, &str)] = &[
    (
        "chat:write",
        "posting, editing and deleting messages as the linked user",
    ),
    ("reactions:write", "reacting as the linked user"),
    ("files:write", "sharing files as the linked user"),
    (
        "channels:history",
        "finding the linked user's posts in public channels",
    ),
    (
        "groups:history",
        "finding the linked user's posts in private channels",
    ),
    (
        "im:history",
        "finding the linked user's posts in direct messages",
    ),
    (
        "mpim:history",
        "finding the linked user's posts in group direct messages",
    ),
    ("channels:read", "the public channels the linked user is in"),
    ("groups:read", "the private channels the linked user is in"),
    ("im:read", "the linked user's direct messages"),
    ("mpim:read", "the linked user's group direct messages"),
    ("users:read", "who the linked user is"),
];

/// The user scope names alone, in manifest order.
pub fn user_scope_names() -> Vec<&'static str> {
    USER_SCOPES.iter().map(|(s, _)| *s).collect()
}

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

/// The manifest as YAML, with the steps around it as comments. `redirect_url` is
/// `slack.oauth.redirect_url`, where Slack sends a user who approved `login-user`.
pub fn yaml(app_name: &str, redirect_url: Option<&str>) -> String {
    let mut oauth = json!({"scopes": {"bot": bot_scope_names(), "user": user_scope_names()}});
    if let Some(url) = redirect_url {
        oauth["redirect_urls"] = json!([url]);
    }
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
        "oauth_config": oauth,
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
         #  4. For `login-user` (Matrix users posting as their own Slack account): copy the\n\
         #     Client ID and Client Secret into slack.oauth, and set slack.oauth.redirect_url\n\
         #     (listed under redirect_urls below once it is set).\n\
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
        let text = yaml("Matrix Bridge", Some("https://bridge.example.org/slack"));
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
        let user: Vec<&str> = v["oauth_config"]["scopes"]["user"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|s| s.as_str())
            .collect();
        assert_eq!(user, user_scope_names());
        assert_eq!(
            v["oauth_config"]["redirect_urls"][0].as_str(),
            Some("https://bridge.example.org/slack")
        );
        let without: serde_yaml::Value =
            serde_yaml::from_str(&yaml("Matrix Bridge", None)).unwrap();
        assert!(without["oauth_config"].get("redirect_urls").is_none());
        assert!(
            v["settings"]["event_subscriptions"]
                .get("request_url")
                .is_none()
        );
        assert!(text.contains("connections:write"));
    }
}
