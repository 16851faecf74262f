//! The validation pass: every problem in a config, collected in one go so the operator fixes
//! them all at once instead of one per restart.

use super::{Config, GENERATE, PLACEHOLDER_DOMAIN, Problem};

/// What the config is about to be used for; generating a registration is the one time the
/// tokens may still read `generate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Run,
    Generate,
}

fn push(problems: &mut Vec<Problem>, key: &str, message: impl Into<String>) {
    problems.push(Problem {
        key: key.to_owned(),
        line: None,
        message: message.into(),
    });
}

pub fn validate(config: &Config, mode: Mode, problems: &mut Vec<Problem>) {
    let hs = &config.homeserver;
    if hs.domain == PLACEHOLDER_DOMAIN {
        push(
            problems,
            "homeserver.domain",
            "still the placeholder `example.com`; set it to your homeserver's server_name",
        );
    } else if ruma::ServerName::parse(&hs.domain).is_err() {
        push(
            problems,
            "homeserver.domain",
            format!("`{}` is not a valid Matrix server name", hs.domain),
        );
    }
    check_http_url(problems, "homeserver.address", &hs.address);

    let a = &config.appservice;
    check_http_url(problems, "appservice.address", &a.address);
    if a.id.is_empty() {
        push(problems, "appservice.id", "must not be empty");
    }
    if a.hostname.parse::<std::net::IpAddr>().is_err() && a.hostname != "localhost" {
        push(
            problems,
            "appservice.hostname",
            format!(
                "`{}` is not an IP address to listen on; use 127.0.0.1 (or 0.0.0.0 / :: for all interfaces)",
                a.hostname
            ),
        );
    }
    if !(1..=65535).contains(&a.port) {
        push(
            problems,
            "appservice.port",
            format!("{} is not a TCP port (1-65535)", a.port),
        );
    }
    if mode == Mode::Run {
        for (key, token, file) in [
            ("appservice.as_token", &a.as_token, &a.as_token_file),
            ("appservice.hs_token", &a.hs_token, &a.hs_token_file),
        ] {
            match token.as_ref().map(|t| t.expose()) {
                // An unreadable *_file was reported already.
                None if file.is_some() => {}
                None | Some("") => push(
                    problems,
                    key,
                    "not set; run `slack-bridge -g` to generate the registration and the tokens",
                ),
                Some(GENERATE) => push(
                    problems,
                    key,
                    "still `generate`; run `slack-bridge -g` to generate the registration and the tokens",
                ),
                Some(_) => {}
            }
        }
    }
    if a.as_token.as_ref().is_some_and(|t| t.expose() != GENERATE) && a.as_token == a.hs_token {
        push(
            problems,
            "appservice.hs_token",
            "must differ from as_token, or the homeserver and the bridge cannot tell each other apart",
        );
    }
    let template_ok = a.username_template.matches("{userid}").count() == 1;
    if !template_ok {
        push(
            problems,
            "appservice.username_template",
            format!(
                "`{}` must contain `{{userid}}` exactly once",
                a.username_template
            ),
        );
    }
    check_localpart(problems, "appservice.bot.username", &a.bot.username);
    if template_ok {
        let literal = a.username_template.replace("{userid}", "");
        check_localpart(problems, "appservice.username_template", &literal);
        if crate::registration::template_matches(&a.username_template, &a.bot.username) {
            push(
                problems,
                "appservice.bot.username",
                format!(
                    "`{}` matches the ghost template `{}`; the bot and a Slack user could collide, pick a name outside it",
                    a.bot.username, a.username_template
                ),
            );
        }
    }
    let l = &a.limits;
    if l.max_body_bytes < 1024 * 1024 {
        push(
            problems,
            "appservice.limits.max_body_bytes",
            format!(
                "{} is below 1 MiB (1048576); the homeserver's transactions would be refused",
                l.max_body_bytes
            ),
        );
    }
    for (key, d) in [
        ("appservice.limits.header_timeout", l.header_timeout),
        ("appservice.limits.request_timeout", l.request_timeout),
    ] {
        if d < std::time::Duration::from_secs(1) {
            push(
                problems,
                key,
                format!("{} is below 1s", humantime::format_duration(d)),
            );
        }
    }
    if l.max_connections == 0 {
        push(
            problems,
            "appservice.limits.max_connections",
            "must be at least 1",
        );
    }
    if !a.bot.avatar.is_empty() && !a.bot.avatar.starts_with("mxc://") {
        push(
            problems,
            "appservice.bot.avatar",
            "must be an mxc:// URI or empty",
        );
    }

    let db = &config.database;
    let uri = db.uri();
    if !(uri.starts_with("sqlite:")
        || uri.starts_with("postgres://")
        || uri.starts_with("postgresql://"))
    {
        push(
            problems,
            "database.uri",
            "must start with sqlite:// (embedded) or postgres:// (production)",
        );
    }
    if db.max_connections == 0 {
        push(problems, "database.max_connections", "must be at least 1");
    }

    check_http_url(problems, "slack.api_url", &config.slack.api_url);
    for (i, login) in config.slack.logins.iter().enumerate() {
        let base = format!("slack.logins.{i}");
        check_token(
            problems,
            &format!("{base}.bot_token"),
            login.bot_token.as_ref(),
            "xoxb-",
            "bot token",
        );
        check_token(
            problems,
            &format!("{base}.app_token"),
            login.app_token.as_ref(),
            "xapp-",
            "app-level token",
        );
        check_user_id(problems, &format!("{base}.owner"), &login.owner);
    }
    check_oauth(problems, &config.slack.oauth);

    check_double_puppet(problems, config);

    let b = &config.bridge;
    if b.command_prefix.trim().is_empty() {
        push(problems, "bridge.command_prefix", "must not be empty");
    }
    if !b.relay.public_media_url.is_empty() {
        check_http_url(
            problems,
            "bridge.relay.public_media_url",
            &b.relay.public_media_url,
        );
    }
    for key in b.permissions.keys() {
        let ok = key == "*"
            || (key.starts_with('@') && ruma::UserId::parse(key.as_str()).is_ok())
            || (!key.starts_with('@') && ruma::ServerName::parse(key.as_str()).is_ok());
        if !ok {
            push(
                problems,
                "bridge.permissions",
                format!("`{key}` is neither `*`, a server name nor a Matrix user ID"),
            );
        }
    }
    for (i, user) in b.invite.iter().enumerate() {
        check_user_id(problems, &format!("bridge.invite.{i}"), user);
    }

    if let Some(listen) = &config.metrics.listen
        && listen.parse::<std::net::SocketAddr>().is_err()
    {
        push(
            problems,
            "metrics.listen",
            format!("`{listen}` is not an address to listen on (ip:port, e.g. 127.0.0.1:9110)"),
        );
    }
    if tracing_subscriber::EnvFilter::try_new(&config.logging.level).is_err() {
        push(
            problems,
            "logging.level",
            format!(
                "`{}` is not a level (error, warn, info, debug, trace) or filter directive",
                config.logging.level
            ),
        );
    }
}

fn check_http_url(problems: &mut Vec<Problem>, key: &str, value: &str) {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        Ok(u) => push(
            problems,
            key,
            format!(
                "`{value}` must be an http:// or https:// URL with a host (got scheme `{}`)",
                u.scheme()
            ),
        ),
        Err(e) => push(problems, key, format!("`{value}` is not a valid URL: {e}")),
    }
}

/// `bridge.double_puppet`: every secret an appservice's `as_token:`, for the bridge's own
/// homeserver or one whose address `servers` gives.
fn check_double_puppet(problems: &mut Vec<Problem>, config: &Config) {
    let dp = &config.bridge.double_puppet;
    for (domain, secret) in &dp.secrets {
        let key = format!("bridge.double_puppet.secrets.{domain}");
        if dp.as_token(domain).is_none() {
            let shown = if secret.expose().starts_with(super::DOUBLE_PUPPET_AS_TOKEN) {
                "an empty token"
            } else {
                "something else"
            };
            push(
                problems,
                &key,
                format!(
                    "must be `as_token:<token>` (the as_token of an appservice registered on {domain} whose user namespace covers its users), not {shown}"
                ),
            );
        }
        if domain != &config.homeserver.domain && !dp.servers.contains_key(domain) {
            push(
                problems,
                &key,
                format!(
                    "{domain} is not this bridge's homeserver ({}): add its client-server URL under bridge.double_puppet.servers",
                    config.homeserver.domain
                ),
            );
        }
    }
    for (domain, url) in &dp.servers {
        check_http_url(
            problems,
            &format!("bridge.double_puppet.servers.{domain}"),
            url,
        );
    }
}

/// `slack.oauth` is all or nothing: a client id needs its secret and a redirect URL, which
/// Slack only accepts over https.
fn check_oauth(problems: &mut Vec<Problem>, o: &super::OAuthConfig) {
    let secret = o.client_secret.as_ref().is_some_and(|s| !s.is_empty());
    if !o.is_configured() {
        if secret || !o.redirect_url.is_empty() {
            push(
                problems,
                "slack.oauth.client_id",
                "missing while slack.oauth has other settings; copy the Client ID from the app's Basic Information → App Credentials",
            );
        }
        return;
    }
    if !secret {
        push(
            problems,
            "slack.oauth.client_secret",
            "missing: copy the Client Secret from the app's Basic Information → App Credentials (or set client_secret_file)",
        );
    }
    match url::Url::parse(&o.redirect_url) {
        Ok(u) if u.scheme() == "https" && u.host().is_some() => {}
        Ok(_) => push(
            problems,
            "slack.oauth.redirect_url",
            format!(
                "`{}` must be an https:// URL: Slack refuses other redirect URLs",
                o.redirect_url
            ),
        ),
        Err(_) if o.redirect_url.is_empty() => push(
            problems,
            "slack.oauth.redirect_url",
            "missing: set an https:// URL and add it under OAuth & Permissions → Redirect URLs (nothing has to answer there)",
        ),
        Err(e) => push(
            problems,
            "slack.oauth.redirect_url",
            format!("`{}` is not a valid URL: {e}", o.redirect_url),
        ),
    }
}

fn check_localpart(problems: &mut Vec<Problem>, key: &str, localpart: &str) {
    let ok = !localpart.is_empty()
        && localpart
            .chars()
            .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '=' | '-' | '/' | '+'));
    if !ok {
        push(
            problems,
            key,
            format!(
                "`{localpart}` is not a valid Matrix localpart (lowercase a-z, 0-9, . _ = - / +)"
            ),
        );
    }
}

fn check_user_id(problems: &mut Vec<Problem>, key: &str, value: &str) {
    if ruma::UserId::parse(value).is_err() {
        push(
            problems,
            key,
            format!("`{value}` is not a Matrix user ID like @alice:example.org"),
        );
    }
}

fn check_token(
    problems: &mut Vec<Problem>,
    key: &str,
    token: Option<&super::Secret>,
    prefix: &str,
    what: &str,
) {
    match token {
        None => push(
            problems,
            key,
            format!(
                "missing: give the Slack {what} ({prefix}…) inline, as {key}_file, or in the environment"
            ),
        ),
        Some(t) if !t.expose().starts_with(prefix) => push(
            problems,
            key,
            format!("does not look like a Slack {what}: it should start with `{prefix}`"),
        ),
        Some(_) => {}
    }
}
