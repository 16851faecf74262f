//! The appservice transaction body (`PUT /_matrix/app/v1/transactions/{txnId}`) as a protocol
//! type: parsing only, no I/O. Events stay `Raw` so one odd event never fails the whole
//! transaction.

use ruma::{events::AnyTimelineEvent, serde::Raw};
use serde::Deserialize;

/// An ephemeral event (typing, receipt, presence), kept as JSON: the bridge reads few of them.
pub type EphemeralEvent = serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
pub struct Transaction {
    pub events: Vec<Raw<AnyTimelineEvent>>,
    #[serde(default)]
    ephemeral: Option<Vec<EphemeralEvent>>,
    /// Synapse sends ephemeral events under this unstable key too when the registration asks
    /// for `de.sorunome.msc2409.push_ephemeral`; they are the same events.
    #[serde(default, rename = "de.sorunome.msc2409.ephemeral")]
    msc2409_ephemeral: Option<Vec<EphemeralEvent>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TxnError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("body is not a transaction: {0}")]
    BadJson(String),
}

impl Transaction {
    pub fn parse(body: &[u8]) -> Result<Self, TxnError> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| TxnError::NotJson(e.to_string()))?;
        serde_json::from_value(value).map_err(|e| TxnError::BadJson(e.to_string()))
    }

    /// The ephemeral events, taken once even when both keys carry them.
    pub fn ephemeral(&self) -> &[EphemeralEvent] {
        self.ephemeral
            .as_deref()
            .or(self.msc2409_ephemeral.as_deref())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = r#"{"type":"m.room.message","event_id":"$e1","room_id":"!r:x","sender":"@a:x",
        "origin_server_ts":1,"content":{"msgtype":"m.text","body":"hi"}}"#;

    #[test]
    fn ephemeral_under_both_keys_is_taken_once() {
        let typing = r#"{"type":"m.typing","room_id":"!r:x","content":{"user_ids":["@a:x"]}}"#;
        let body = format!(
            r#"{{"events":[{EVENT}],"ephemeral":[{typing}],"de.sorunome.msc2409.ephemeral":[{typing}]}}"#
        );
        let t = Transaction::parse(body.as_bytes()).unwrap();
        assert_eq!(t.events.len(), 1);
        assert_eq!(t.ephemeral().len(), 1);
        let only_unstable =
            format!(r#"{{"events":[],"de.sorunome.msc2409.ephemeral":[{typing}]}}"#);
        assert_eq!(
            Transaction::parse(only_unstable.as_bytes())
                .unwrap()
                .ephemeral()
                .len(),
            1
        );
    }

    #[test]
    fn malformed_bodies_are_told_apart() {
        assert!(matches!(
            Transaction::parse(b"{nope"),
            Err(TxnError::NotJson(_))
        ));
        assert!(matches!(
            Transaction::parse(br#"{"evts":[]}"#),
            Err(TxnError::BadJson(_))
        ));
        assert!(matches!(
            Transaction::parse(br#"{"events":{}}"#),
            Err(TxnError::BadJson(_))
        ));
    }

    #[test]
    fn unknown_event_shapes_do_not_fail_the_transaction() {
        let body = format!(r#"{{"events":[{EVENT},{{"type":"org.example.odd","weird":true}}]}}"#);
        assert_eq!(Transaction::parse(body.as_bytes()).unwrap().events.len(), 2);
    }
}
