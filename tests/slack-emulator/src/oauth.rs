//! The app's OAuth side: its client credentials, the one-time codes Slack's authorize page
//! hands out when a person approves the app (`/oauth/v2/authorize` with `user_scope=…`), their
//! exchange by oauth.v2.access, and the user tokens (`xoxp-…`) issued to people.
//!
//! A person holds at most one user token: a new grant replaces the old token, which is then
//! unknown (`invalid_auth`). A revoked token stays known, so it answers `token_revoked`.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use crate::model::UserId;
use crate::util;

/// How long a code can be exchanged after the person approved (Slack: 10 minutes). Measured
/// on the tokio clock, so a paused-clock test can pass it with `tokio::time::advance`.
pub const CODE_TTL: Duration = Duration::from_secs(600);

/// A user token and what it grants.
#[derive(Debug, Clone)]
pub(crate) struct UserToken {
    pub token: String,
    /// The person it acts as.
    pub user: UserId,
    /// The user scopes the person approved, exactly.
    pub scopes: BTreeSet<String>,
    pub revoked: bool,
}

/// An approval waiting for its exchange.
#[derive(Debug, Clone)]
struct Grant {
    code: String,
    user: UserId,
    scopes: BTreeSet<String>,
    /// The authorize request's `redirect_uri`; empty when it sent none.
    redirect_uri: String,
    issued: Instant,
    used: bool,
}

/// Client credentials, pending codes and issued user tokens of the one installed app.
#[derive(Debug)]
pub(crate) struct OAuth {
    pub client_id: String,
    pub client_secret: String,
    grants: Vec<Grant>,
    tokens: Vec<UserToken>,
}

impl OAuth {
    /// Fresh credentials shaped like Slack's: `<10 digits>.<12 digits>` and 32 hex digits.
    pub fn new() -> Self {
        OAuth {
            client_id: format!("{}.{}", util::random_digits(10), util::random_digits(12)),
            client_secret: util::random_hex(32),
            grants: Vec::new(),
            tokens: Vec::new(),
        }
    }

    /// `user` approved `scopes` for a redirect to `redirect_uri`; returns the code.
    pub fn authorize(
        &mut self,
        user: &str,
        scopes: &[&str],
        redirect_uri: &str,
        now: Instant,
    ) -> String {
        let code = format!(
            "{}.{}.{}",
            util::random_digits(10),
            util::random_digits(13),
            util::random_hex(64)
        );
        self.grants.push(Grant {
            code: code.clone(),
            user: user.to_string(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            redirect_uri: redirect_uri.to_string(),
            issued: now,
            used: false,
        });
        code
    }

    /// Checks the app's credentials as oauth.v2.access does: `invalid_client_id`, then
    /// `bad_client_secret` (absent values count as wrong).
    pub fn check_client(&self, id: Option<&str>, secret: Option<&str>) -> Result<(), &'static str> {
        if id != Some(self.client_id.as_str()) {
            return Err("invalid_client_id");
        }
        if secret != Some(self.client_secret.as_str()) {
            return Err("bad_client_secret");
        }
        Ok(())
    }

    /// Redeems `code` for a new user token. A code works once and within [`CODE_TTL`];
    /// otherwise `invalid_code`. A `redirect_uri` other than the authorize request's is
    /// `bad_redirect_uri`, and uses the code up (Slack's rule there is unknown; this is the
    /// stricter one).
    pub fn redeem(
        &mut self,
        code: Option<&str>,
        redirect_uri: Option<&str>,
        now: Instant,
    ) -> Result<UserToken, &'static str> {
        let g = self
            .grants
            .iter_mut()
            .find(|g| Some(g.code.as_str()) == code)
            .filter(|g| !g.used && now.saturating_duration_since(g.issued) < CODE_TTL)
            .ok_or("invalid_code")?;
        g.used = true;
        if redirect_uri.is_some_and(|r| r != g.redirect_uri) {
            return Err("bad_redirect_uri");
        }
        let (user, scopes) = (g.user.clone(), g.scopes.clone());
        Ok(self.issue(&user, scopes))
    }

    /// Issues `user` a token with `scopes`, replacing any token they had.
    pub fn issue(&mut self, user: &str, scopes: BTreeSet<String>) -> UserToken {
        let token = format!(
            "xoxp-{}-{}-{}-{}",
            util::random_digits(10),
            util::random_digits(13),
            util::random_digits(13),
            util::random_hex(32)
        );
        self.tokens.retain(|t| t.user != user);
        let t = UserToken {
            token,
            user: user.to_string(),
            scopes,
            revoked: false,
        };
        self.tokens.push(t.clone());
        t
    }

    /// The user token `token`, revoked or not.
    pub fn token(&self, token: &str) -> Option<&UserToken> {
        self.tokens.iter().find(|t| t.token == token)
    }

    /// Revokes `user`'s token; false when they hold no live one.
    pub fn revoke(&mut self, user: &str) -> bool {
        match self
            .tokens
            .iter_mut()
            .find(|t| t.user == user && !t.revoked)
        {
            Some(t) => {
                t.revoked = true;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CB: &str = "https://bridge.example/oauth";

    #[test]
    fn client_credentials_are_checked_id_first() {
        let o = OAuth::new();
        let (id, secret) = (o.client_id.clone(), o.client_secret.clone());
        assert_eq!(o.check_client(Some(&id), Some(&secret)), Ok(()));
        assert_eq!(
            o.check_client(None, Some(&secret)),
            Err("invalid_client_id")
        );
        assert_eq!(o.check_client(Some("1.2"), None), Err("invalid_client_id"));
        assert_eq!(o.check_client(Some(&id), None), Err("bad_client_secret"));
        assert_eq!(
            o.check_client(Some(&id), Some("00")),
            Err("bad_client_secret")
        );
        assert_eq!(id.split('.').map(str::len).collect::<Vec<_>>(), [10, 12]);
        assert_eq!(secret.len(), 32);
    }

    #[test]
    fn a_code_works_once_and_only_before_it_expires() {
        let mut o = OAuth::new();
        let t0 = Instant::now();
        let code = o.authorize("U1", &["chat:write"], CB, t0);
        let late = o.authorize("U2", &["chat:write"], CB, t0);
        let edge = o.authorize("U3", &["chat:write"], CB, t0);
        let ok = o.redeem(
            Some(&code),
            Some(CB),
            t0 + CODE_TTL - Duration::from_millis(1),
        );
        assert_eq!(ok.unwrap().user, "U1");
        assert_eq!(
            o.redeem(Some(&code), Some(CB), t0).unwrap_err(),
            "invalid_code"
        );
        assert_eq!(
            o.redeem(Some(&edge), None, t0 + CODE_TTL).unwrap_err(),
            "invalid_code"
        );
        assert_eq!(
            o.redeem(Some(&late), None, t0 + Duration::from_secs(3600))
                .unwrap_err(),
            "invalid_code"
        );
        assert_eq!(o.redeem(None, None, t0).unwrap_err(), "invalid_code");
        assert_eq!(
            o.redeem(Some("nope"), None, t0).unwrap_err(),
            "invalid_code"
        );
    }

    #[test]
    fn redirect_uri_must_match_when_given() {
        let mut o = OAuth::new();
        let now = Instant::now();
        let code = o.authorize("U1", &["chat:write"], CB, now);
        let err = o.redeem(Some(&code), Some("https://evil.example/"), now);
        assert_eq!(err.unwrap_err(), "bad_redirect_uri");
        // The failed exchange used the code up.
        assert_eq!(
            o.redeem(Some(&code), Some(CB), now).unwrap_err(),
            "invalid_code"
        );
        // Leaving redirect_uri out is fine; one sent when the authorize request had none is not.
        let code = o.authorize("U1", &["chat:write"], CB, now);
        assert!(o.redeem(Some(&code), None, now).is_ok());
        let code = o.authorize("U1", &["chat:write"], "", now);
        assert_eq!(
            o.redeem(Some(&code), Some(CB), now).unwrap_err(),
            "bad_redirect_uri"
        );
    }

    #[test]
    fn a_new_token_replaces_the_old_and_revoked_ones_stay_known() {
        let mut o = OAuth::new();
        let now = Instant::now();
        let code = o.authorize("U1", &["chat:write", "channels:history"], CB, now);
        let first = o.redeem(Some(&code), None, now).unwrap();
        assert!(first.token.starts_with("xoxp-"));
        let scopes: Vec<&str> = first.scopes.iter().map(String::as_str).collect();
        assert_eq!(scopes, ["channels:history", "chat:write"]);
        let second = o.issue("U1", ["reactions:write".to_string()].into());
        assert!(o.token(&first.token).is_none());
        assert_eq!(o.token(&second.token).unwrap().user, "U1");
        assert!(o.revoke("U1"));
        assert!(!o.revoke("U1"), "nothing live left to revoke");
        assert!(o.token(&second.token).unwrap().revoked);
    }
}
