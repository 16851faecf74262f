//! Socket Mode frames as protocol types (no I/O): what Slack sends over the WebSocket and the
//! ack we send back. Parsing is tolerant: an unknown frame type is kept, never an error, and
//! anything carrying an `envelope_id` can be acked.

use serde::Deserialize;
use serde_json::Value;

use super::events::SlackEvent;
use crate::ids::ChannelId;

/// A server → client frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// First frame of a connection; events flow only after it.
    Hello { num_connections: Option<u64> },
    /// The server is about to close this connection (`warning`, `refresh_requested`,
    /// `too_many_websockets`, `link_disabled`, …).
    Disconnect { reason: String },
    /// An Events API delivery.
    EventsApi(Envelope),
    /// Any other envelope (interactive, slash command, unknown): acked, not bridged.
    OtherEnvelope { kind: String, envelope_id: String },
    /// A frame of an unknown type without an envelope id.
    Unknown { kind: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub envelope_id: String,
    pub retry_attempt: u64,
    pub retry_reason: String,
    /// The Events API outer payload (`event_callback`), kept as JSON for the durable inbox.
    pub payload: Value,
}

impl Envelope {
    /// The key Slack's redeliveries share: the payload's `event_id`; an envelope without one
    /// (not an `event_callback`) falls back to its envelope id.
    pub fn dedupe_key(&self) -> String {
        self.payload
            .get("event_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("envelope:{}", self.envelope_id))
    }

    pub fn team_id(&self) -> Option<&str> {
        self.payload.get("team_id").and_then(Value::as_str)
    }

    /// The conversation the inner event belongs to, which decides its portal queue; the
    /// same answer the bridge layer gets from [`SlackEvent::channel`].
    pub fn channel_id(&self) -> Option<ChannelId> {
        let event = self.payload.get("event")?;
        SlackEvent::from_value(event.clone())
            .channel()
            .map(ChannelId::from)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("socket mode frame is not a JSON object with a type: {0}")]
pub struct FrameError(pub String);

#[derive(Deserialize)]
struct RawFrame {
    #[serde(rename = "type")]
    kind: String,
    envelope_id: Option<String>,
    reason: Option<String>,
    num_connections: Option<u64>,
    #[serde(default)]
    retry_attempt: Option<u64>,
    #[serde(default)]
    retry_reason: Option<String>,
    #[serde(default)]
    payload: Value,
}

pub fn parse(text: &str) -> Result<Frame, FrameError> {
    let raw: RawFrame = serde_json::from_str(text).map_err(|e| FrameError(e.to_string()))?;
    Ok(match (raw.kind.as_str(), raw.envelope_id) {
        ("hello", _) => Frame::Hello {
            num_connections: raw.num_connections,
        },
        ("disconnect", _) => Frame::Disconnect {
            reason: raw.reason.unwrap_or_default(),
        },
        ("events_api", Some(envelope_id)) => Frame::EventsApi(Envelope {
            envelope_id,
            retry_attempt: raw.retry_attempt.unwrap_or(0),
            retry_reason: raw.retry_reason.unwrap_or_default(),
            payload: raw.payload,
        }),
        (kind, Some(envelope_id)) => Frame::OtherEnvelope {
            kind: kind.to_owned(),
            envelope_id,
        },
        (kind, None) => Frame::Unknown {
            kind: kind.to_owned(),
        },
    })
}

/// The ack for an envelope: `{"envelope_id": …}`.
pub fn ack(envelope_id: &str) -> String {
    serde_json::json!({ "envelope_id": envelope_id }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_with_and_without_details() {
        let full = r#"{"type":"hello","num_connections":2,"debug_info":{"host":"applink-111-xxx","build_number":10,"approximate_connection_time":18060},"connection_info":{"app_id":"A111"}}"#;
        assert_eq!(
            parse(full).unwrap(),
            Frame::Hello {
                num_connections: Some(2)
            }
        );
        assert_eq!(
            parse(r#"{"type":"hello"}"#).unwrap(),
            Frame::Hello {
                num_connections: None
            }
        );
    }

    #[test]
    fn disconnect_reasons() {
        for reason in [
            "warning",
            "refresh_requested",
            "too_many_websockets",
            "link_disabled",
        ] {
            let text = format!(
                r#"{{"type":"disconnect","reason":"{reason}","debug_info":{{"host":"applink-2"}}}}"#
            );
            assert_eq!(
                parse(&text).unwrap(),
                Frame::Disconnect {
                    reason: reason.into()
                }
            );
        }
    }

    #[test]
    fn events_api_envelope() {
        let text = r#"{"envelope_id":"cda4159a-72a5-4744-aba3-4d66eb52682b",
            "payload":{"token":"x","team_id":"T111","api_app_id":"A111","type":"event_callback",
              "event_id":"Ev111","event_time":1700000000,
              "event":{"type":"message","channel":"C111","user":"U111","text":"hi","ts":"1700000000.000100"}},
            "type":"events_api","accepts_response_payload":false,"retry_attempt":1,"retry_reason":"timeout"}"#;
        let Frame::EventsApi(env) = parse(text).unwrap() else {
            panic!()
        };
        assert_eq!(env.envelope_id, "cda4159a-72a5-4744-aba3-4d66eb52682b");
        assert_eq!(
            (env.retry_attempt, env.retry_reason.as_str()),
            (1, "timeout")
        );
        assert_eq!(env.dedupe_key(), "Ev111");
        assert_eq!(env.team_id(), Some("T111"));
        assert_eq!(env.channel_id().as_deref(), Some("C111"));
    }

    #[test]
    fn channel_of_reactions_and_channel_objects() {
        let env = |event: &str| Envelope {
            envelope_id: "e".into(),
            retry_attempt: 0,
            retry_reason: String::new(),
            payload: serde_json::from_str(&format!(r#"{{"event_id":"Ev1","event":{event}}}"#))
                .unwrap(),
        };
        assert_eq!(
            env(r#"{"type":"reaction_added","item":{"type":"message","channel":"C2","ts":"1.2"}}"#)
                .channel_id()
                .as_deref(),
            Some("C2")
        );
        assert_eq!(
            env(r#"{"type":"channel_rename","channel":{"id":"C3","name":"x"}}"#)
                .channel_id()
                .as_deref(),
            Some("C3")
        );
        assert_eq!(
            env(r#"{"type":"user_change","user":{"id":"U1"}}"#).channel_id(),
            None
        );
    }

    #[test]
    fn other_envelopes_and_unknown_frames_are_not_errors() {
        let slash = r#"{"envelope_id":"1d3c","type":"slash_commands","accepts_response_payload":true,"payload":{"command":"/x"}}"#;
        assert_eq!(
            parse(slash).unwrap(),
            Frame::OtherEnvelope {
                kind: "slash_commands".into(),
                envelope_id: "1d3c".into()
            }
        );
        assert_eq!(
            parse(r#"{"type":"brand_new"}"#).unwrap(),
            Frame::Unknown {
                kind: "brand_new".into()
            }
        );
        assert!(parse("not json").is_err());
        assert!(parse(r#"{"no_type":1}"#).is_err());
    }

    #[test]
    fn envelope_without_event_id_dedupes_on_envelope() {
        let text =
            r#"{"envelope_id":"E9","type":"events_api","payload":{"type":"app_rate_limited"}}"#;
        let Frame::EventsApi(env) = parse(text).unwrap() else {
            panic!()
        };
        assert_eq!(env.dedupe_key(), "envelope:E9");
        assert_eq!(ack("E9"), r#"{"envelope_id":"E9"}"#);
    }
}
