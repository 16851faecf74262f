//! The Matrix side: the homeserver client, the appservice HTTP API the homeserver calls, the
//! durable transaction inbox, and the startup checks.

pub mod appservice;
pub mod checks;
pub mod client;
pub mod inbox;
pub mod txn;

pub use client::{MatrixClient, MatrixError};

/// Which Matrix users belong to this bridge (the bot and every ghost); their events are never
/// bridged back.
#[derive(Debug, Clone)]
pub struct Namespace {
    bot: String,
    prefix: String,
    suffix: String,
}

impl Namespace {
    pub fn from_config(config: &crate::config::Config) -> Self {
        let a = &config.appservice;
        let domain = &config.homeserver.domain;
        let (prefix, suffix) = a
            .username_template
            .split_once("{userid}")
            .unwrap_or((&a.username_template, ""));
        Self {
            bot: format!("@{}:{}", a.bot.username, domain),
            prefix: format!("@{prefix}"),
            suffix: format!("{suffix}:{domain}"),
        }
    }

    pub fn bot(&self) -> &str {
        &self.bot
    }

    pub fn is_ghost(&self, user_id: &str) -> bool {
        user_id.len() > self.prefix.len() + self.suffix.len()
            && user_id.starts_with(&self.prefix)
            && user_id.ends_with(&self.suffix)
    }

    pub fn is_ours(&self, user_id: &str) -> bool {
        user_id == self.bot || self.is_ghost(user_id)
    }
}
