//! The Event Subscriptions check: a Slack app without `message.*` bot events still passes
//! auth.test and still opens Socket Mode, it just never sends a message. So while a login
//! runs, the bridge compares what its socket delivered since connecting with the newest
//! message of a portal's channel in `conversations.history`; a message that is in the history
//! for longer than a check interval but never came over the socket means Slack is not sending that
//! kind of event, and the operator is told which subscription to add.
//!
//! It stays cheap: at most [`LOOKS_PER_CHECK`] `conversations.history` calls per check
//! (every `slack.event_check_interval`), round-robin over the portals of the kinds (public,
//! private, DM, group DM) that have not yet been seen delivering a message, one of each kind
//! first. Once every kind has delivered, it makes no calls at all. `doctor` runs a one-shot
//! variant against the store ([`check_stored`]).

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use ruma::RoomId;
use tokio::sync::watch;

use crate::{
    BoxFuture,
    ids::{BotId, ChannelId, TeamId, Ts, UserId},
    matrix::MatrixClient,
    slack::{
        frames::Envelope,
        socket::{EnvelopeStore, SocketState},
        types::Message,
        web::{HistoryQuery, SlackClient},
    },
    store::{Portal, PortalKind, Store},
};

/// The bridge's own bot, whose posts are not evidence of anything.
#[derive(Debug, Clone, Default)]
pub struct OwnBot {
    pub user_id: UserId,
    pub bot_id: BotId,
}

impl OwnBot {
    fn wrote(&self, m: &Message) -> bool {
        (!self.bot_id.is_empty() && m.bot_id.as_ref() == Some(&self.bot_id))
            || (!self.user_id.is_empty() && m.user.as_ref() == Some(&self.user_id))
    }
}

/// The bot event a portal kind's messages need.
pub fn subscription(kind: PortalKind) -> &'static str {
    match kind {
        PortalKind::Channel => "message.channels",
        PortalKind::Private => "message.groups",
        PortalKind::Im => "message.im",
        PortalKind::Mpim => "message.mpim",
    }
}

const ALL_KINDS: [PortalKind; 4] = [
    PortalKind::Channel,
    PortalKind::Private,
    PortalKind::Im,
    PortalKind::Mpim,
];

/// Slack ts ("1700000000.000100") as a number, for ordering.
fn ts_value(ts: &str) -> f64 {
    ts.parse().unwrap_or(0.0)
}

fn now_secs() -> f64 {
    crate::store::now_ms() as f64 / 1000.0
}

/// What the socket of one login delivered, and what the watch found.
#[derive(Debug, Default)]
pub struct EventWatch {
    inner: Mutex<WatchState>,
}

#[derive(Debug, Default)]
struct WatchState {
    /// The stretches the socket was connected (Slack ts seconds): start, and end once it
    /// dropped; the newest last. A seamless refresh (the new socket up before the old one
    /// closed) is no gap. Only a message posted inside a stretch that lasted
    /// [`DELIVERY_MARGIN`] after it is evidence: Slack may not replay what it could not
    /// deliver while the socket was away.
    connected: VecDeque<(f64, Option<f64>)>,
    /// Newest message event ts delivered per channel.
    delivered: HashMap<ChannelId, f64>,
    /// The current finding, per portal kind.
    findings: BTreeMap<&'static str, String>,
}

/// How many portals one check looks at, at most.
pub const LOOKS_PER_CHECK: usize = 4;

/// How long the socket must have stayed up after a message was posted for its missing event
/// to count: Slack delivers within well under a second.
const DELIVERY_MARGIN: f64 = 5.0;

/// Connected stretches remembered; older ones are too old to matter for a check.
const STRETCHES_KEPT: usize = 16;

impl WatchState {
    /// Whether a message posted at `ts` was posted while the socket was up, and stayed up
    /// long enough after it for its event to have come.
    fn covered(&self, ts: f64) -> bool {
        self.connected
            .iter()
            .any(|(start, end)| *start < ts && end.is_none_or(|end| end - ts >= DELIVERY_MARGIN))
    }
}

impl EventWatch {
    /// Records an envelope the socket delivered. Only message events count: a reaction
    /// arriving proves the reaction subscription, not the `message.*` ones.
    pub fn delivered(&self, envelope: &Envelope) {
        let Some(event) = envelope.payload.get("event") else {
            return;
        };
        if event.get("type").and_then(|t| t.as_str()) != Some("message") {
            return;
        }
        let channel = event.get("channel").and_then(|c| c.as_str());
        let ts = event
            .get("event_ts")
            .or_else(|| event.get("ts"))
            .and_then(|t| t.as_str())
            .map(ts_value)
            .unwrap_or_else(now_secs);
        if let Some(channel) = channel {
            let mut s = self.inner.lock().expect("event watch");
            let e = s.delivered.entry(channel.into()).or_insert(0.0);
            *e = e.max(ts);
        }
    }

    /// The socket is up (`true`) or not at `now`: opens or closes a connected stretch.
    fn socket_up(&self, up: bool, now: f64) {
        let mut s = self.inner.lock().expect("event watch");
        let open = s.connected.back().is_some_and(|(_, end)| end.is_none());
        if up && !open {
            s.connected.push_back((now, None));
            if s.connected.len() > STRETCHES_KEPT {
                s.connected.pop_front();
            }
        } else if !up
            && open
            && let Some(last) = s.connected.back_mut()
        {
            last.1 = Some(now);
        }
    }

    /// Lines for `ping`: each portal kind whose messages Slack does not send.
    pub fn findings(&self) -> Vec<String> {
        self.inner
            .lock()
            .expect("event watch")
            .findings
            .values()
            .cloned()
            .collect()
    }

    /// Compares one portal's newest history message with the deliveries at time `now`: a
    /// message posted after the socket connected, more than `grace` ago, and never
    /// delivered, is a finding. Returns a new finding to log, once.
    fn judge(
        &self,
        portal: &Portal,
        newest: Option<&Message>,
        now: f64,
        grace: Duration,
    ) -> Option<String> {
        let kind = subscription(portal.kind);
        let mut s = self.inner.lock().expect("event watch");
        tracing::debug!(
            channel = %portal.channel_id,
            newest = newest.map(|m| m.ts.as_str()),
            connected = ?s.connected,
            delivered = s.delivered.get(&portal.channel_id).copied(),
            now,
            "event watch: looked at a portal"
        );
        let m = newest?;
        let ts = ts_value(&m.ts);
        if !s.covered(ts) {
            return None;
        }
        let delivered = s.delivered.get(&portal.channel_id).copied().unwrap_or(0.0);
        if delivered >= ts {
            s.findings.remove(kind);
            return None;
        }
        if now - ts < grace.as_secs_f64() {
            // Too fresh: its event may still be on its way.
            return None;
        }
        let text = not_sending(portal, &m.ts);
        let new = s.findings.get(kind) != Some(&text);
        s.findings.insert(kind, text.clone());
        new.then_some(text)
    }

    /// The portals still to look at: those of kinds that have not yet shown a delivered
    /// message, and of kinds with a finding (so it clears once messages arrive again),
    /// interleaved by kind so that a check covers every such kind.
    fn unproven<'a>(&self, portals: &'a [Portal]) -> Vec<&'a Portal> {
        let s = self.inner.lock().expect("event watch");
        let proven = |kind: PortalKind| {
            !s.findings.contains_key(subscription(kind))
                && portals
                    .iter()
                    .any(|q| q.kind == kind && s.delivered.contains_key(&q.channel_id))
        };
        let by_kind: Vec<Vec<&Portal>> = ALL_KINDS
            .iter()
            .filter(|k| !proven(**k))
            .map(|k| {
                portals
                    .iter()
                    .filter(|p| p.kind == *k && p.room_id.is_some())
                    .collect()
            })
            .collect();
        let longest = by_kind.iter().map(Vec::len).max().unwrap_or(0);
        (0..longest)
            .flat_map(|i| by_kind.iter().filter_map(move |list| list.get(i).copied()))
            .collect()
    }
}

/// How long a message may go undelivered before it counts: the check interval, within
/// 10 s to 60 s.
fn grace(every: Duration) -> Duration {
    every.clamp(Duration::from_secs(10), Duration::from_secs(60))
}

fn not_sending(portal: &Portal, ts: &Ts) -> String {
    let name = if portal.name.is_empty() {
        portal.channel_id.to_string()
    } else {
        portal.name.clone()
    };
    let sub = subscription(portal.kind);
    format!(
        "Slack is not sending events: {name} ({}, {}) has a message (ts {ts}) that never came over Socket Mode. Subscribe the app to the bot event {sub} (Event Subscriptions → Subscribe to bot events; all of message.channels, message.groups, message.im, message.mpim are needed), or paste `slack-bridge manifest` into the app's manifest, then reinstall the app",
        portal.kind.as_str(),
        portal.channel_id,
    )
}

/// An [`EnvelopeStore`] that tells the watch about each envelope before storing it.
pub struct Watched<S> {
    pub inner: S,
    pub watch: Arc<EventWatch>,
}

impl<S: EnvelopeStore> EnvelopeStore for Watched<S> {
    fn store<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<bool, String>> {
        self.watch.delivered(envelope);
        self.inner.store(envelope)
    }

    fn store_batch<'a>(
        &'a self,
        envelopes: &'a [Envelope],
    ) -> BoxFuture<'a, Result<Vec<bool>, String>> {
        for e in envelopes {
            self.watch.delivered(e);
        }
        self.inner.store_batch(envelopes)
    }

    fn connected_after_gap(&self) -> BoxFuture<'_, ()> {
        self.inner.connected_after_gap()
    }
}

/// The newest message of a channel that is evidence: not the bridge's own post.
async fn newest_message(
    slack: &SlackClient,
    channel: &ChannelId,
    bot: &OwnBot,
) -> Result<Option<Message>, String> {
    let history = slack
        .conversations_history(&HistoryQuery {
            channel: channel.to_owned(),
            limit: Some(10),
            ..HistoryQuery::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(history.messages.into_iter().find(|m| !bot.wrote(m)))
}

/// Watches a running login every `every` until the task is aborted.
pub async fn run(
    slack: Arc<SlackClient>,
    store: Store,
    team_id: TeamId,
    bot: OwnBot,
    watch: Arc<EventWatch>,
    mut socket: watch::Receiver<SocketState>,
    every: Duration,
) {
    let mut next = 0usize;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let is_up = |s: &SocketState| matches!(s, SocketState::Connected);
    watch.socket_up(is_up(&socket.borrow_and_update()), now_secs());
    loop {
        // Every change of the socket is followed as it happens, so the stretches are exact
        // however long the check interval.
        tokio::select! {
            _ = tick.tick() => {}
            changed = socket.changed() => {
                if changed.is_err() {
                    return; // the login's socket manager is gone
                }
                watch.socket_up(is_up(&socket.borrow_and_update()), now_secs());
                continue;
            }
        }
        if !is_up(&socket.borrow()) {
            continue;
        }
        let portals = match store.list_portals(&team_id).await {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(team = %team_id, error = %e, "event watch: cannot list portals");
                continue;
            }
        };
        let candidates = watch.unproven(&portals);
        if candidates.is_empty() {
            continue;
        }
        let looks = candidates.len().min(LOOKS_PER_CHECK);
        for i in 0..looks {
            let portal = candidates[(next + i) % candidates.len()];
            match newest_message(&slack, &portal.channel_id, &bot).await {
                Ok(newest) => {
                    if let Some(finding) =
                        watch.judge(portal, newest.as_ref(), now_secs(), grace(every))
                    {
                        tracing::error!(team = %team_id, channel = %portal.channel_id, "{finding}");
                    }
                }
                Err(e) => {
                    tracing::debug!(team = %team_id, channel = %portal.channel_id, error = %e, "event watch: cannot read the history")
                }
            }
        }
        next = (next + looks) % candidates.len();
    }
}

/// When a portal's room was created (its first event), in Slack ts seconds: history from
/// before then was never meant to be bridged.
async fn room_created_at(matrix: &MatrixClient, room_id: &RoomId) -> Option<f64> {
    use ruma::api::{Direction, client::message::get_message_events::v3::Request};
    let mut request = Request::new(room_id.to_owned(), Direction::Forward);
    request.limit = 1u32.into();
    let response = matrix.send(request, None).await.ok()?;
    let ts: ruma::MilliSecondsSinceUnixEpoch = response
        .chunk
        .first()?
        .get_field("origin_server_ts")
        .ok()??;
    Some(f64::from(ts.get()) / 1000.0)
}

/// How many portals of one kind `doctor` looks at before giving up on finding a message.
const DOCTOR_PORTALS_PER_KIND: usize = 5;

/// `doctor`'s variant, from the store: for each portal kind, whether the newest message of a
/// channel, posted after its room was created and longer than the grace of the check
/// interval `every` ago, was bridged.
/// `None` when there was nothing to judge; otherwise whether it passed and what was found.
pub async fn check_stored(
    slack: &SlackClient,
    store: &Store,
    matrix: &MatrixClient,
    team_id: &TeamId,
    bot: &OwnBot,
    every: Duration,
) -> Option<(bool, String)> {
    let grace = grace(every);
    let portals = store.list_portals(team_id).await.ok()?;
    let mut fine = Vec::new();
    let mut missed = Vec::new();
    for kind in ALL_KINDS {
        let of_kind = portals
            .iter()
            .filter(|p| p.kind == kind)
            .filter_map(|p| Some((p, p.room_id.as_deref()?)))
            .take(DOCTOR_PORTALS_PER_KIND);
        for (portal, room) in of_kind {
            let Ok(Some(m)) = newest_message(slack, &portal.channel_id, bot).await else {
                continue;
            };
            let ts = ts_value(&m.ts);
            if ts > now_secs() - grace.as_secs_f64() {
                continue;
            }
            match room_created_at(matrix, room).await {
                Some(created) if created < ts => {}
                _ => continue,
            }
            match store.get_message(team_id, &portal.channel_id, &m.ts).await {
                Ok(rows) if rows.is_empty() => missed.push(format!(
                    "{} (unless the bridge was stopped when that message was posted)",
                    not_sending(portal, &m.ts)
                )),
                Ok(_) => fine.push(subscription(kind)),
                Err(_) => continue,
            }
            break;
        }
    }
    if !missed.is_empty() {
        Some((false, missed.join("; ")))
    } else if !fine.is_empty() {
        Some((
            true,
            format!(
                "the newest messages were bridged ({} arrive)",
                fine.join(", ")
            ),
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn portal(kind: PortalKind, channel: &str) -> Portal {
        Portal {
            team_id: "T1".into(),
            channel_id: channel.into(),
            kind,
            room_id: Some("!r:x".try_into().unwrap()),
            name: "general".into(),
            topic: String::new(),
            dm_user_id: None,
        }
    }

    fn message(ts: &str, user: &str) -> Message {
        serde_json::from_value(json!({"type": "message", "ts": ts, "user": user, "text": "hi"}))
            .unwrap()
    }

    fn envelope(channel: &str, ts: &str) -> Envelope {
        Envelope {
            envelope_id: "e".into(),
            retry_attempt: 0,
            retry_reason: String::new(),
            payload: json!({"event": {"type": "message", "channel": channel, "ts": ts, "event_ts": ts}}),
        }
    }

    const GRACE: Duration = Duration::from_secs(10);

    #[test]
    fn an_undelivered_message_is_reported_once_its_grace_has_passed() {
        let w = EventWatch::default();
        w.socket_up(true, 100.0);
        let p = portal(PortalKind::Channel, "C1");
        let m = message("150.000100", "U1");
        assert_eq!(
            w.judge(&p, Some(&m), 155.0, GRACE),
            None,
            "its event may still be on its way"
        );
        let finding = w
            .judge(&p, Some(&m), 161.0, GRACE)
            .expect("undelivered after the grace");
        assert!(finding.contains("message.channels"), "{finding}");
        assert!(finding.contains("slack-bridge manifest"), "{finding}");
        assert!(finding.contains("C1"), "{finding}");
        assert_eq!(w.judge(&p, Some(&m), 170.0, GRACE), None, "logged once");
        assert_eq!(w.findings().len(), 1, "but still shown");
        // Once messages arrive, the finding clears.
        let newer = message("180.0", "U1");
        w.delivered(&envelope("C1", "180.0"));
        assert_eq!(w.judge(&p, Some(&newer), 200.0, GRACE), None);
        assert!(w.findings().is_empty());
    }

    #[test]
    fn a_delivered_message_is_no_finding() {
        let w = EventWatch::default();
        w.socket_up(true, 100.0);
        let p = portal(PortalKind::Im, "D1");
        w.delivered(&envelope("D1", "150.0"));
        assert_eq!(
            w.judge(&p, Some(&message("150.0", "U1")), 500.0, GRACE),
            None
        );
        assert!(w.findings().is_empty());
    }

    #[test]
    fn history_from_before_the_connection_proves_nothing() {
        let w = EventWatch::default();
        let p = portal(PortalKind::Private, "G1");
        let old = message("150.0", "U1");
        assert_eq!(
            w.judge(&p, Some(&old), 500.0, GRACE),
            None,
            "never connected"
        );
        w.socket_up(true, 200.0);
        assert_eq!(w.judge(&p, Some(&old), 500.0, GRACE), None);
        assert!(w.findings().is_empty());
    }

    #[test]
    fn a_gap_in_the_connection_excuses_only_what_was_posted_around_it() {
        let w = EventWatch::default();
        let p = portal(PortalKind::Channel, "C1");
        w.socket_up(true, 100.0);
        // A seamless refresh is no gap.
        w.socket_up(true, 120.0);
        w.socket_up(false, 200.0);
        w.socket_up(true, 230.0);
        // Posted while away, or just before the drop: not held against Slack.
        assert_eq!(
            w.judge(&p, Some(&message("210.0", "U1")), 500.0, GRACE),
            None
        );
        assert_eq!(
            w.judge(&p, Some(&message("198.0", "U1")), 500.0, GRACE),
            None
        );
        // Posted well before the drop: its event had time to come, and the reconnect does
        // not wipe that out.
        assert!(
            w.judge(&p, Some(&message("150.0", "U1")), 500.0, GRACE)
                .is_some()
        );
        // And after the reconnect, once its grace has passed.
        let w = EventWatch::default();
        w.socket_up(true, 100.0);
        w.socket_up(false, 200.0);
        w.socket_up(true, 230.0);
        assert!(
            w.judge(&p, Some(&message("240.0", "U1")), 260.0, GRACE)
                .is_some()
        );
    }

    #[test]
    fn a_kind_that_delivered_is_not_checked_again() {
        let w = EventWatch::default();
        w.socket_up(true, 100.0);
        let portals = vec![
            portal(PortalKind::Channel, "C1"),
            portal(PortalKind::Channel, "C2"),
            portal(PortalKind::Im, "D1"),
        ];
        // Interleaved by kind, so one check covers every kind.
        let order: Vec<&str> = w
            .unproven(&portals)
            .iter()
            .map(|p| p.channel_id.as_str())
            .collect();
        assert_eq!(order, ["C1", "D1", "C2"]);
        w.delivered(&envelope("C2", "120.0"));
        let left: Vec<&str> = w
            .unproven(&portals)
            .iter()
            .map(|p| p.channel_id.as_str())
            .collect();
        assert_eq!(left, ["D1"]);
        // A kind with a finding is looked at again until its messages arrive.
        w.inner
            .lock()
            .unwrap()
            .findings
            .insert("message.channels", "x".into());
        assert_eq!(w.unproven(&portals).len(), 3);
    }

    #[test]
    fn the_grace_follows_the_interval_within_bounds() {
        assert_eq!(grace(Duration::from_secs(1)), Duration::from_secs(10));
        assert_eq!(grace(Duration::from_secs(30)), Duration::from_secs(30));
        assert_eq!(grace(Duration::from_secs(600)), Duration::from_secs(60));
    }

    #[test]
    fn reactions_do_not_prove_message_events() {
        let w = EventWatch::default();
        w.delivered(&Envelope {
            envelope_id: "e".into(),
            retry_attempt: 0,
            retry_reason: String::new(),
            payload: json!({"event": {"type": "reaction_added", "item": {"channel": "C9", "ts": "1.0"}, "event_ts": "300.0"}}),
        });
        assert_eq!(w.inner.lock().unwrap().delivered.get("C9"), None);
    }
}
