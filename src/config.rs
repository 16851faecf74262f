//! Typed configuration: the YAML schema of `config.yaml`, its defaults, loading with secret
//! resolution, and the validation pass that reports every problem at once.

pub mod edit;
pub mod locate;
pub mod secret;
mod validate;

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

pub use secret::{Secret, SecretSource};
pub use validate::Mode;

/// The prefix of every environment variable that can carry a secret.
pub const ENV_PREFIX: &str = "SLACK_BRIDGE_";

/// The value of `as_token`/`hs_token` that `-g` replaces with a fresh random token.
pub const GENERATE: &str = "generate";

/// The embedded default database, next to the working directory.
pub const DEFAULT_DATABASE_URI: &str = "sqlite://slack-bridge.db";

/// The encryption key file's name when `database.encryption_key_file` is unset; it sits
/// beside the config file.
pub const DEFAULT_KEY_FILE: &str = "slack-bridge.key";

/// Flow collections (`[…]`, `{…}`) nested deeper than this are refused unparsed.
const MAX_FLOW_NESTING: usize = 64;

/// The domain of the example config; running or generating with it is refused.
pub const PLACEHOLDER_DOMAIN: &str = "example.com";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    pub homeserver: HomeserverConfig,
    pub appservice: AppserviceConfig,
    pub database: DatabaseConfig,
    pub slack: SlackConfig,
    pub bridge: BridgeConfig,
    pub logging: LoggingConfig,
    pub metrics: MetricsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HomeserverConfig {
    /// Client-server API base URL the bridge calls.
    pub address: String,
    /// The homeserver's server_name; ghost and bot IDs end in `:domain`.
    pub domain: String,
}

impl Default for HomeserverConfig {
    fn default() -> Self {
        Self {
            address: "http://127.0.0.1:8008".into(),
            domain: PLACEHOLDER_DOMAIN.into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AppserviceConfig {
    pub id: String,
    /// URL the homeserver uses to reach the bridge; the registration's `url`.
    pub address: String,
    /// Address the appservice listener binds.
    pub hostname: String,
    /// Port the appservice listener binds. Kept wide so a bad value is a validation problem
    /// reported with the others rather than a parse failure.
    pub port: i64,
    pub as_token: Option<Secret>,
    pub as_token_file: Option<PathBuf>,
    pub hs_token: Option<Secret>,
    pub hs_token_file: Option<PathBuf>,
    pub bot: BotConfig,
    /// Ghost localpart template; `{userid}` becomes lowercase `<team id>-<user id>`.
    pub username_template: String,
    /// What the listener allows a client: body size, time, connections.
    pub limits: ListenerLimits,
    #[serde(skip)]
    pub as_token_source: SecretSource,
    #[serde(skip)]
    pub hs_token_source: SecretSource,
}

impl Default for AppserviceConfig {
    fn default() -> Self {
        Self {
            id: "slack".into(),
            address: "http://127.0.0.1:29319".into(),
            hostname: "127.0.0.1".into(),
            port: 29319,
            as_token: None,
            as_token_file: None,
            hs_token: None,
            hs_token_file: None,
            bot: BotConfig::default(),
            username_template: "slack_{userid}".into(),
            limits: ListenerLimits::default(),
            as_token_source: SecretSource::Absent,
            hs_token_source: SecretSource::Absent,
        }
    }
}

impl AppserviceConfig {
    /// The listener port, valid after validation.
    pub fn listen_port(&self) -> u16 {
        u16::try_from(self.port).unwrap_or(0)
    }
}

/// The appservice listener's limits, so that a client that is slow, large or many cannot
/// hold the bridge: the homeserver's own requests stay well inside every one of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ListenerLimits {
    /// Largest request body accepted; larger ones get 413 before they are read.
    pub max_body_bytes: u64,
    /// Time a client has to send a request's headers (also the idle time of a kept-alive
    /// connection): a client dribbling them is cut off.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Time a whole request may take, its body and the answer included: 408 after it.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Connections served at once; more wait, unaccepted, in the kernel's queue.
    pub max_connections: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            // Synapse sends at most 100 events + 100 ephemeral + 100 to-device entries per
            // transaction, each at most 64 KiB: this leaves room for all of them.
            max_body_bytes: 32 * 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_connections: 256,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BotConfig {
    pub username: String,
    pub displayname: String,
    /// An `mxc://` URI, or empty for no avatar.
    pub avatar: String,
}

impl Default for BotConfig {
    fn default() -> Self {
        Self {
            username: "slackbot".into(),
            displayname: "Slack bridge bot".into(),
            avatar: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    /// `sqlite://path` or `postgres://user@host/db`. Redacted in Debug because a password may
    /// sit inside it.
    pub uri: Option<Secret>,
    pub uri_file: Option<PathBuf>,
    /// A password spliced into a `postgres://` URI, so the URI itself can stay in the config.
    pub password_file: Option<PathBuf>,
    pub max_connections: u32,
    /// The key that seals the Slack tokens stored in the database (see [`crate::crypto`]);
    /// unset, `slack-bridge.key` beside the config file.
    pub encryption_key_file: Option<PathBuf>,
    /// `SLACK_BRIDGE_ENCRYPTION_KEY`, which takes the place of the key file.
    #[serde(skip)]
    pub encryption_key: Option<Secret>,
    #[serde(skip)]
    pub uri_source: SecretSource,
    /// Where the key file is when `encryption_key_file` is unset: beside the config file.
    #[serde(skip)]
    pub default_key_file: PathBuf,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            uri: None,
            uri_file: None,
            password_file: None,
            max_connections: 5,
            encryption_key_file: None,
            encryption_key: None,
            uri_source: SecretSource::Absent,
            default_key_file: PathBuf::from(DEFAULT_KEY_FILE),
        }
    }
}

impl DatabaseConfig {
    /// The encryption key file the bridge reads (or creates).
    pub fn key_file(&self) -> PathBuf {
        self.encryption_key_file
            .clone()
            .unwrap_or_else(|| self.default_key_file.clone())
    }

    pub fn uri(&self) -> &str {
        self.uri.as_ref().map(Secret::expose).unwrap_or_default()
    }

    /// The URI to show an operator: any password replaced by `***`.
    pub fn display_uri(&self) -> String {
        let uri = self.uri();
        match url::Url::parse(uri) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("***"));
                url.to_string()
            }
            Ok(_) => uri.to_owned(),
            // Not a URL: it may be anything, including a password; show only its scheme.
            Err(_) => format!(
                "{}://…",
                uri.split_once("://")
                    .map_or("unknown", |(scheme, _)| scheme)
            ),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SlackConfig {
    /// Web API base URL; tests point it at the emulator.
    pub api_url: String,
    pub logins: Vec<LoginConfig>,
    /// How long one Web API call may take; past it, the call's outcome counts as unknown (a
    /// post is then looked for on Slack before it is sent again).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Seconds between two looks at a portal's history for messages the socket never
    /// delivered (the Event Subscriptions check); 0 turns the check off.
    pub event_check_interval: u64,
    /// The Slack app's OAuth credentials, so Matrix users can link their own Slack account
    /// with `login-user`; without them a user can still paste a user token (`xoxp-…`).
    pub oauth: OAuthConfig,
}

impl Default for SlackConfig {
    fn default() -> Self {
        Self {
            api_url: "https://slack.com/api".into(),
            logins: Vec::new(),
            request_timeout: Duration::from_secs(30),
            event_check_interval: 60,
            oauth: OAuthConfig::default(),
        }
    }
}

/// `slack.oauth`: the app's Client ID and Client Secret (Basic Information → App
/// Credentials) and a redirect URL registered under OAuth & Permissions. Slack sends the user
/// there after they approve; nothing needs to answer at that address, because the user copies
/// the `code` from their browser's address bar back to the bridge.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct OAuthConfig {
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub client_secret_file: Option<PathBuf>,
    pub redirect_url: String,
}

impl OAuthConfig {
    /// Whether the code exchange of `login-user` is set up.
    pub fn is_configured(&self) -> bool {
        !self.client_id.is_empty()
    }
}

impl SlackConfig {
    /// [`Self::event_check_interval`] as a duration (zero: off).
    pub fn event_check_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.event_check_interval)
    }
}

/// A login declared in the config, so a deployment comes up with no chat steps.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LoginConfig {
    pub bot_token: Option<Secret>,
    pub bot_token_file: Option<PathBuf>,
    pub app_token: Option<Secret>,
    pub app_token_file: Option<PathBuf>,
    /// The Matrix user who owns this login and is invited to its portals.
    pub owner: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BridgeConfig {
    pub command_prefix: String,
    /// Keys: `*`, a server name, or a full MXID; the most specific match wins.
    pub permissions: BTreeMap<String, PermissionLevel>,
    pub relay: RelayConfig,
    /// Matrix users invited to every portal room.
    pub invite: Vec<String>,
    pub outbound: OutboundConfig,
    pub backfill: BackfillConfig,
    pub double_puppet: DoublePuppetConfig,
}

/// `bridge.double_puppet`: Slack messages of a user who linked their Slack account
/// (`login-user`) appear in Matrix from their own account instead of their ghost, through an
/// appservice of their homeserver that may act as its users (its `as_token`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DoublePuppetConfig {
    /// Per homeserver domain, `as_token:<token>` of that appservice.
    pub secrets: BTreeMap<String, Secret>,
    /// The same, read from files (one secret per file).
    pub secret_files: BTreeMap<String, PathBuf>,
    /// The client-server URL of other homeservers than the bridge's own (which is
    /// `homeserver.address`).
    pub servers: BTreeMap<String, String>,
}

/// What a double-puppet secret starts with.
pub const DOUBLE_PUPPET_AS_TOKEN: &str = "as_token:";

impl DoublePuppetConfig {
    /// The as_token for users of `domain`, when a secret is configured for it.
    pub fn as_token(&self, domain: &str) -> Option<Secret> {
        self.secrets
            .get(domain)?
            .expose()
            .strip_prefix(DOUBLE_PUPPET_AS_TOKEN)
            .filter(|t| !t.is_empty())
            .map(Secret::new)
    }
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            command_prefix: "!slack".into(),
            permissions: BTreeMap::from([("*".to_owned(), PermissionLevel::Relay)]),
            relay: RelayConfig::default(),
            invite: Vec::new(),
            outbound: OutboundConfig::default(),
            backfill: BackfillConfig::default(),
            double_puppet: DoublePuppetConfig::default(),
        }
    }
}

/// History: what a new portal starts with, and what is fetched after the bridge was away.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BackfillConfig {
    /// The newest messages a new portal gets from Slack's history; 0 turns backfill off.
    pub initial_messages: u32,
    /// Per backfilled thread, its newest replies.
    pub thread_replies: u32,
    /// After downtime, at most this many messages per portal are fetched (the newest).
    pub catchup_max: u32,
}

impl Default for BackfillConfig {
    fn default() -> Self {
        Self {
            initial_messages: 50,
            thread_replies: 20,
            catchup_max: 500,
        }
    }
}

/// How long the bridge keeps trying to deliver an event.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct OutboundConfig {
    /// An event that keeps failing for a reason that may pass (rate limits, server errors,
    /// network) is given up this long after its first attempt, and its room is told.
    #[serde(with = "humantime_serde")]
    pub retry_for: Duration,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            retry_for: Duration::from_secs(3600),
        }
    }
}

impl BridgeConfig {
    /// The permission of `user_id`: exact MXID, then its server name, then `*`.
    pub fn permission_of(&self, user_id: &str) -> Option<PermissionLevel> {
        let server = user_id.split_once(':').map(|(_, s)| s);
        self.permissions
            .get(user_id)
            .or_else(|| server.and_then(|s| self.permissions.get(s)))
            .or_else(|| self.permissions.get("*"))
            .copied()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PermissionLevel {
    /// May talk in portals through the relay.
    Relay,
    /// May log in with their own Slack app.
    User,
    /// May manage the bridge.
    Admin,
}

impl fmt::Display for PermissionLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Relay => "relay",
            Self::User => "user",
            Self::Admin => "admin",
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RelayConfig {
    pub enabled: bool,
    /// Public base URL serving media without authentication (`…/_matrix/media/v3/download`);
    /// relayed messages then show the sender's avatar. Empty: no avatars.
    pub public_media_url: String,
    /// Whether an `@room` of a relayed user becomes `@channel` on Slack (it notifies everyone
    /// in the channel). The login's owner and admins always may.
    pub allow_room_mentions: bool,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            public_media_url: String::new(),
            allow_room_mentions: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LoggingConfig {
    /// A tracing filter directive (`info`, `slack_bridge=debug,info`); `RUST_LOG` overrides it.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Auto,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `json` when stderr is systemd's journal (`JOURNAL_STREAM`), `pretty` otherwise.
    Auto,
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// `host:port` to serve `/metrics`, `/ready` and `/health` on instead of the appservice
    /// listener (which then keeps only `/health`); unset: the appservice listener serves them.
    pub listen: Option<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: None,
        }
    }
}

/// One thing wrong with a config, located by its dotted key and, where found, its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} (line {}): {}", self.key, line, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{}", problem_list(.path, .problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

fn problem_list(path: &Path, problems: &[Problem]) -> String {
    let mut out = format!(
        "config file {} has {} problem{}:",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        out.push_str("\n  - ");
        out.push_str(&p.to_string());
    }
    out
}

/// Reads the process environment; tests pass their own lookup instead.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Config {
    /// Reads, parses, resolves secrets and validates `path` for `mode`.
    pub fn load(path: &Path, mode: Mode) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text, path, mode, &process_env)
    }

    /// Parses `text` (the contents of `path`, used in messages), resolving secrets through
    /// `env`, and validates it for `mode`.
    pub fn from_yaml(
        text: &str,
        path: &Path,
        mode: Mode,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut unknown = Vec::new();
        // An empty file is an empty mapping, i.e. all defaults.
        let source = if text.trim().is_empty() { "{}" } else { text };
        if let Some(line) = locate::flow_nesting_beyond(source, MAX_FLOW_NESTING) {
            // The YAML parser takes time quadratic in this nesting: refuse before it starts.
            return Err(ConfigError::Parse {
                path: path.to_owned(),
                message: format!(
                    "`[` / `{{` nested more than {MAX_FLOW_NESTING} levels deep at line {line}"
                ),
            });
        }
        let de = serde_yaml::Deserializer::from_str(source);
        let mut config: Config = serde_ignored::deserialize(de, |p| {
            unknown.push(locate::segments(&p));
        })
        .map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;

        let mut problems: Vec<Problem> = unknown
            .into_iter()
            .map(|segments| Problem {
                line: locate::line_of(text, &segments),
                key: segments.join("."),
                message: "unknown key".into(),
            })
            .collect();
        config.database.default_key_file = path
            .parent()
            .unwrap_or(Path::new(""))
            .join(DEFAULT_KEY_FILE);
        config.resolve_secrets(env, &mut problems);
        validate::validate(&config, mode, &mut problems);
        for p in &mut problems {
            if p.line.is_none() {
                let segments: Vec<String> = p.key.split('.').map(str::to_owned).collect();
                p.line = locate::line_of(text, &segments);
            }
        }
        // Top to bottom, as the operator reads the file; problems without a line last.
        problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems,
            })
        }
    }

    /// Fills every secret from its environment variable, its `*_file`, or the inline value,
    /// in that order of precedence, recording a problem for an unreadable file or for a
    /// secret given both inline and as a file.
    fn resolve_secrets(
        &mut self,
        env: &dyn Fn(&str) -> Option<String>,
        problems: &mut Vec<Problem>,
    ) {
        let a = &mut self.appservice;
        a.as_token_source = resolve_one(
            &mut a.as_token,
            a.as_token_file.as_deref(),
            "appservice.as_token",
            "AS_TOKEN",
            env,
            problems,
        );
        a.hs_token_source = resolve_one(
            &mut a.hs_token,
            a.hs_token_file.as_deref(),
            "appservice.hs_token",
            "HS_TOKEN",
            env,
            problems,
        );
        let d = &mut self.database;
        d.uri_source = resolve_one(
            &mut d.uri,
            d.uri_file.as_deref(),
            "database.uri",
            "DATABASE_URI",
            env,
            problems,
        );
        if d.uri_source == SecretSource::Absent {
            d.uri = Some(Secret::new(DEFAULT_DATABASE_URI));
            d.uri_source = SecretSource::Inline;
        }
        d.encryption_key = env(&format!("{ENV_PREFIX}ENCRYPTION_KEY")).map(Secret::new);
        let mut password = None;
        resolve_one(
            &mut password,
            d.password_file.as_deref(),
            "database.password",
            "DATABASE_PASSWORD",
            env,
            problems,
        );
        if let (Some(password), Some(uri)) = (password, d.uri.as_ref()) {
            match with_password(uri.expose(), password.expose()) {
                Ok(joined) => d.uri = Some(Secret::new(joined)),
                Err(message) => problems.push(Problem {
                    key: "database.password_file".into(),
                    line: None,
                    message,
                }),
            }
        }
        let oauth = &mut self.slack.oauth;
        resolve_one(
            &mut oauth.client_secret,
            oauth.client_secret_file.as_deref(),
            "slack.oauth.client_secret",
            "OAUTH_CLIENT_SECRET",
            env,
            problems,
        );
        let dp = &mut self.bridge.double_puppet;
        let domains: std::collections::BTreeSet<String> = dp
            .secrets
            .keys()
            .chain(dp.secret_files.keys())
            .cloned()
            .collect();
        for domain in domains {
            let mut slot = dp.secrets.remove(&domain);
            let suffix: String = domain
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            resolve_one(
                &mut slot,
                dp.secret_files.get(&domain).map(PathBuf::as_path),
                &format!("bridge.double_puppet.secrets.{domain}"),
                &format!("DOUBLE_PUPPET_{suffix}"),
                env,
                problems,
            );
            if let Some(secret) = slot {
                dp.secrets.insert(domain, secret);
            }
        }
        for (i, login) in self.slack.logins.iter_mut().enumerate() {
            resolve_one(
                &mut login.bot_token,
                login.bot_token_file.as_deref(),
                &format!("slack.logins.{i}.bot_token"),
                &format!("LOGINS_{i}_BOT_TOKEN"),
                env,
                problems,
            );
            resolve_one(
                &mut login.app_token,
                login.app_token_file.as_deref(),
                &format!("slack.logins.{i}.app_token"),
                &format!("LOGINS_{i}_APP_TOKEN"),
                env,
                problems,
            );
        }
    }

    /// The bridge bot's full user ID.
    pub fn bot_mxid(&self) -> String {
        format!(
            "@{}:{}",
            self.appservice.bot.username, self.homeserver.domain
        )
    }
}

fn resolve_one(
    slot: &mut Option<Secret>,
    file: Option<&Path>,
    key: &str,
    env_suffix: &str,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) -> SecretSource {
    let inline_given = slot.as_ref().is_some_and(|s| !s.is_empty());
    if file.is_some()
        && slot
            .as_ref()
            .is_some_and(|s| !s.is_empty() && s.expose() != GENERATE)
    {
        problems.push(Problem {
            key: format!("{key}_file"),
            line: None,
            message: format!("{key} is also set inline; keep only one of the two"),
        });
    }
    if let Some(value) = env(&format!("{ENV_PREFIX}{env_suffix}")) {
        *slot = Some(Secret::new(value.trim_end_matches(['\n', '\r'])));
        return SecretSource::Env;
    }
    if let Some(file) = file {
        return match std::fs::read_to_string(file) {
            Ok(value) => {
                *slot = Some(Secret::new(value.trim_end_matches(['\n', '\r'])));
                SecretSource::File
            }
            Err(e) => {
                problems.push(Problem {
                    key: format!("{key}_file"),
                    line: None,
                    message: format!("cannot read {}: {e}", file.display()),
                });
                SecretSource::File
            }
        };
    }
    if inline_given {
        SecretSource::Inline
    } else {
        *slot = None;
        SecretSource::Absent
    }
}

/// Splices `password` into a `postgres://user@host/db` URI.
fn with_password(uri: &str, password: &str) -> Result<String, String> {
    let mut url = url::Url::parse(uri).map_err(|e| format!("database.uri is not a URL: {e}"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err("a database password only applies to a postgres:// uri".into());
    }
    url.set_password(Some(password))
        .map_err(|()| "database.uri has no user to attach the password to".to_owned())?;
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../config.example.yaml");

    fn parse(
        text: &str,
        mode: Mode,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        Config::from_yaml(text, Path::new("config.yaml"), mode, env)
    }

    fn problems(r: Result<Config, ConfigError>) -> Vec<Problem> {
        match r {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn example_config_parses_and_only_the_placeholder_domain_is_refused() {
        let p = problems(parse(EXAMPLE, Mode::Generate, &|_| None));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "homeserver.domain");
        let text = EXAMPLE.replace("domain: example.com", "domain: example.org");
        let c = parse(&text, Mode::Generate, &|_| None).unwrap();
        assert_eq!(c.appservice.bot.username, "slackbot");
        assert_eq!(c.appservice.listen_port(), 29319);
        assert_eq!(c.database.uri(), DEFAULT_DATABASE_URI);
        assert_eq!(
            c.bridge.permission_of("@admin:example.com"),
            Some(PermissionLevel::Admin)
        );
        assert_eq!(
            c.bridge.permission_of("@bob:example.com"),
            Some(PermissionLevel::User)
        );
        assert_eq!(
            c.bridge.permission_of("@eve:elsewhere.org"),
            Some(PermissionLevel::Relay)
        );
    }

    #[test]
    fn environment_beats_file_beats_inline() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hs");
        std::fs::write(&file, "from-file\n").unwrap();
        let text = format!(
            "homeserver: {{domain: example.org}}\nappservice:\n  as_token: inline-as\n  hs_token_file: {}\n",
            file.display()
        );
        let c = parse(&text, Mode::Run, &|_| None).unwrap();
        assert_eq!(
            c.appservice.as_token.as_ref().unwrap().expose(),
            "inline-as"
        );
        assert_eq!(
            c.appservice.hs_token.as_ref().unwrap().expose(),
            "from-file"
        );
        assert_eq!(c.appservice.hs_token_source, SecretSource::File);
        let env = |k: &str| (k == "SLACK_BRIDGE_HS_TOKEN").then(|| "from-env".to_owned());
        let c = parse(&text, Mode::Run, &env).unwrap();
        assert_eq!(c.appservice.hs_token.as_ref().unwrap().expose(), "from-env");
    }

    #[test]
    fn inline_and_file_together_is_a_problem() {
        let text = "homeserver: {domain: example.org}\nappservice:\n  as_token: a\n  as_token_file: /x\n  hs_token: b\n";
        let p = problems(parse(text, Mode::Run, &|_| None));
        assert!(
            p.iter()
                .any(|p| p.key == "appservice.as_token_file"
                    && p.message.contains("also set inline")),
            "{p:?}"
        );
    }

    #[test]
    fn listener_limits_and_metrics_listen_are_checked() {
        let base = "homeserver: {domain: example.org}\nappservice: {as_token: a, hs_token: b";
        let c = parse(&format!("{base}}}\n"), Mode::Run, &|_| None).unwrap();
        assert_eq!(c.appservice.limits.max_body_bytes, 32 * 1024 * 1024);
        assert_eq!(c.appservice.limits.header_timeout, Duration::from_secs(10));
        assert_eq!(c.metrics.listen, None);
        let c = parse(
            &format!("{base}, limits: {{header_timeout: 3s, max_connections: 8}}}}\nmetrics: {{listen: '[::1]:9110'}}\n"),
            Mode::Run,
            &|_| None,
        )
        .unwrap();
        assert_eq!(c.appservice.limits.header_timeout, Duration::from_secs(3));
        assert_eq!(c.appservice.limits.max_connections, 8);
        assert_eq!(c.metrics.listen.as_deref(), Some("[::1]:9110"));
        let p = problems(parse(
            &format!(
                "{base}, limits: {{max_body_bytes: 1000, header_timeout: 0s, request_timeout: 500ms, max_connections: 0}}}}\nmetrics: {{listen: 'localhost'}}\n"
            ),
            Mode::Run,
            &|_| None,
        ));
        let mut keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "appservice.limits.header_timeout",
                "appservice.limits.max_body_bytes",
                "appservice.limits.max_connections",
                "appservice.limits.request_timeout",
                "metrics.listen"
            ],
            "{p:?}"
        );
    }

    #[test]
    fn slack_oauth_is_all_or_nothing() {
        let base = "homeserver: {domain: example.org}\nappservice: {as_token: a, hs_token: b}\n";
        let c = parse(base, Mode::Run, &|_| None).unwrap();
        assert!(!c.slack.oauth.is_configured());
        let full = format!(
            "{base}slack:\n  oauth: {{client_id: '1.2', client_secret: s3cret, redirect_url: 'https://b.example.org/ok'}}\n"
        );
        let c = parse(&full, Mode::Run, &|_| None).unwrap();
        assert!(c.slack.oauth.is_configured());
        let env =
            |k: &str| (k == "SLACK_BRIDGE_OAUTH_CLIENT_SECRET").then(|| "from-env".to_owned());
        let c = parse(&full, Mode::Run, &env).unwrap();
        assert_eq!(c.slack.oauth.client_secret.unwrap().expose(), "from-env");
        let keys = |yaml: &str| -> Vec<String> {
            problems(parse(
                &format!("{base}slack:\n  oauth: {yaml}\n"),
                Mode::Run,
                &|_| None,
            ))
            .into_iter()
            .map(|p| p.key)
            .collect()
        };
        assert_eq!(keys("{client_secret: s}"), ["slack.oauth.client_id"]);
        assert_eq!(
            keys("{client_id: '1.2'}"),
            ["slack.oauth.client_secret", "slack.oauth.redirect_url"]
        );
        assert_eq!(
            keys("{client_id: '1.2', client_secret: s, redirect_url: 'http://b.example.org/'}"),
            ["slack.oauth.redirect_url"],
            "Slack takes https redirect URLs only"
        );
    }

    #[test]
    fn double_puppet_secrets_are_as_tokens_of_known_servers() {
        let base = "homeserver: {domain: example.org}\nappservice: {as_token: a, hs_token: b}\n";
        let with = |yaml: &str| format!("{base}bridge:\n  double_puppet: {yaml}\n");
        let c = parse(
            &with("{secrets: {example.org: 'as_token:t0k'}}"),
            Mode::Run,
            &|_| None,
        )
        .unwrap();
        let dp = &c.bridge.double_puppet;
        assert_eq!(dp.as_token("example.org").unwrap().expose(), "t0k");
        assert!(dp.as_token("other.org").is_none());
        assert!(!format!("{dp:?}").contains("t0k"), "secrets are not shown");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dp");
        std::fs::write(&file, "as_token:from-file\n").unwrap();
        let c = parse(
            &with(&format!(
                "{{secret_files: {{example.org: {}}}}}",
                file.display()
            )),
            Mode::Run,
            &|_| None,
        )
        .unwrap();
        assert_eq!(
            c.bridge
                .double_puppet
                .as_token("example.org")
                .unwrap()
                .expose(),
            "from-file"
        );

        let problems_of = |yaml: &str| -> Vec<(String, String)> {
            problems(parse(&with(yaml), Mode::Run, &|_| None))
                .into_iter()
                .map(|p| (p.key, p.message))
                .collect()
        };
        let p = problems_of("{secrets: {example.org: 'shared-secret'}}");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "bridge.double_puppet.secrets.example.org");
        assert!(p[0].1.contains("as_token:<token>"), "{p:?}");
        let p = problems_of("{secrets: {other.org: 'as_token:x'}}");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].1.contains("bridge.double_puppet.servers"), "{p:?}");
        let elsewhere =
            "{secrets: {other.org: 'as_token:x'}, servers: {other.org: 'https://m.other.org'}}";
        assert!(parse(&with(elsewhere), Mode::Run, &|_| None).is_ok());
    }

    #[test]
    fn deep_flow_nesting_is_refused_before_parsing() {
        let deep = format!(
            "homeserver:\n  domain: {}{}",
            "[".repeat(65),
            "]".repeat(65)
        );
        match parse(&deep, Mode::Run, &|_| None) {
            Err(ConfigError::Parse { message, .. }) => {
                assert!(
                    message.contains("nested more than 64") && message.contains("line 2"),
                    "{message}"
                )
            }
            other => panic!("{other:?}"),
        }
        // Brackets in quotes and comments are text.
        let text = format!(
            "homeserver: {{domain: example.org}} # {}\nappservice: {{as_token: \"{}\", hs_token: '{}'}}\n",
            "[".repeat(100),
            "{".repeat(100),
            "[".repeat(100)
        );
        let c = parse(&text, Mode::Run, &|_| None).unwrap();
        assert_eq!(c.appservice.as_token.unwrap().expose(), "{".repeat(100));
    }

    #[test]
    fn database_password_is_spliced_into_postgres_uri() {
        let text = "homeserver: {domain: example.org}\nappservice: {as_token: a, hs_token: b}\ndatabase:\n  uri: postgres://bridge@db.internal/slack\n";
        let env = |k: &str| (k == "SLACK_BRIDGE_DATABASE_PASSWORD").then(|| "p@ss".to_owned());
        let c = parse(text, Mode::Run, &env).unwrap();
        assert_eq!(
            c.database.uri(),
            "postgres://bridge:p%40ss@db.internal/slack"
        );
        assert_eq!(format!("{:?}", c.database).matches("p%40ss").count(), 0);
    }

    #[test]
    fn database_display_hides_the_password() {
        let text = "homeserver: {domain: example.org}\nappservice: {as_token: a, hs_token: b}\ndatabase:\n  uri: postgres://bridge:hunter2@db.internal/slack\n";
        let c = parse(text, Mode::Run, &|_| None).unwrap();
        assert_eq!(
            c.database.display_uri(),
            "postgres://bridge:***@db.internal/slack"
        );
        let c = parse(
            "homeserver: {domain: example.org}\nappservice: {as_token: a, hs_token: b}\n",
            Mode::Run,
            &|_| None,
        )
        .unwrap();
        assert_eq!(c.database.display_uri(), DEFAULT_DATABASE_URI);
    }

    #[test]
    fn type_errors_name_the_line() {
        let text = "homeserver:\n  domain: example.org\nmetrics:\n  enabled: maybe\n";
        match parse(text, Mode::Generate, &|_| None) {
            Err(ConfigError::Parse { message, .. }) => {
                assert!(
                    message.contains("metrics.enabled") && message.contains("line 4"),
                    "{message}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
