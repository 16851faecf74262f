//! History: a new portal starts with its channel's newest messages (backfill), and after the
//! bridge was away (stopped, or its socket down) each portal fetches what Slack has since the
//! newest message bridged there (catch-up).
//!
//! Both run inside the portal's own Slack → Matrix queue, as a task stored in the Slack inbox
//! like an event: live events of that portal wait behind it (nothing is reordered), other
//! portals go on. A portal whose initial backfill is pending runs it before its next event,
//! whichever comes first. History messages go through the same handling as live ones
//! (ghosts, files, threads, txn ids), so a message that also arrives over the socket, or was
//! sent before a crash, lands once. Progress is stored per portal: a restart in the middle
//! fetches the same messages again and sends only the ones not yet bridged.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use ruma::{OwnedRoomId, RoomId};
use serde::{Deserialize, Serialize};

use super::{BridgeError, Core, LoginRuntime, Result, from_slack};
use crate::{
    ids::{ChannelId, TeamId, Ts},
    slack::{
        events::{MessageEvent, ReactionEvent, ReactionItem, SlackEvent},
        types::Message,
        web::HistoryQuery,
    },
    store::{HistoryRun, NewSlackEvent, Store, now_ms, slack_queue},
};

/// Inbox entries whose event id starts with this are the bridge's own tasks, not Slack's.
pub const TASK_PREFIX: &str = "task:";
/// Largest history page asked for (Slack's advice; it may answer with fewer).
const PAGE: u32 = 200;
/// Known threads looked at during a catch-up for replies posted meanwhile (their roots are
/// older than the gap, so the channel history does not show them).
const KNOWN_THREADS: i64 = 3;
/// Only threads active this recently are looked at.
const KNOWN_THREAD_AGE: Duration = Duration::from_secs(24 * 3600);
/// Bridged messages a catch-up fetches again, for the edits and reactions they got.
const OVERLAP: i64 = 10;
/// A page that took longer than this makes the fetch log its progress.
const SLOW_PAGE: Duration = Duration::from_secs(3);

/// A history task, as stored in the Slack inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub task: TaskKind,
    pub channel: ChannelId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    /// A new portal's initial backfill (a no-op once done).
    Backfill,
    /// Fetch what Slack has after the newest bridged message.
    CatchUp,
}

/// Which portals have no pending backfill (so live events skip the database look), and
/// which are running one (so the messages it sends do not start it again).
#[derive(Default)]
pub struct Registry {
    settled: Mutex<HashSet<String>>,
    running: Mutex<HashSet<String>>,
}

struct Running<'a> {
    registry: &'a Registry,
    key: String,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.registry
            .running
            .lock()
            .expect("history")
            .remove(&self.key);
    }
}

impl Registry {
    fn start(&self, key: &str) -> Option<Running<'_>> {
        if self.settled.lock().expect("history").contains(key)
            || !self.running.lock().expect("history").insert(key.to_owned())
        {
            return None;
        }
        Some(Running {
            registry: self,
            key: key.to_owned(),
        })
    }

    fn settle(&self, key: &str) {
        self.settled.lock().expect("history").insert(key.to_owned());
    }

    fn unsettle(&self, key: &str) {
        self.settled.lock().expect("history").remove(key);
    }
}

/// Stores history tasks for `channels` of a team in the Slack inbox (one transaction) and
/// wakes their queues: each runs after what its queue holds and before what arrives next.
/// A backfill task is stored once per portal; every catch-up is a new task.
pub async fn enqueue(
    store: &Store,
    waker: &super::queue::QueueWaker,
    team_id: &TeamId,
    channels: &[ChannelId],
    kind: TaskKind,
) -> Result<()> {
    if channels.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let rows: Vec<(String, String)> = channels
        .iter()
        .map(|c| {
            let id = match kind {
                TaskKind::Backfill => format!("{TASK_PREFIX}backfill:{team_id}:{c}"),
                TaskKind::CatchUp => format!("{TASK_PREFIX}catch-up:{team_id}:{c}:{now}"),
            };
            let task = Task {
                task: kind,
                channel: c.clone(),
            };
            (id, serde_json::to_string(&task).unwrap_or_default())
        })
        .collect();
    let events: Vec<NewSlackEvent<'_>> = rows
        .iter()
        .zip(channels)
        .map(|((id, payload), c)| NewSlackEvent {
            event_id: id,
            team_id,
            channel_id: Some(c),
            payload,
        })
        .collect();
    store.insert_slack_events(&events).await?;
    for c in channels {
        waker.wake(slack_queue(team_id, Some(c)));
    }
    Ok(())
}

/// Queues a catch-up for every portal of a team (on start, and when its socket reconnects
/// after a gap); with `bridge.backfill.catchup_max` 0, only for portals whose backfill a
/// restart interrupted. Returns how many.
pub async fn catch_up_all(
    store: &Store,
    waker: &super::queue::QueueWaker,
    team_id: &TeamId,
    catchup_max: u32,
) -> Result<usize> {
    let channels: Vec<ChannelId> = if catchup_max == 0 {
        // No catch-up, but a backfill a restart interrupted still resumes.
        store
            .pending_backfills(team_id)
            .await?
            .into_iter()
            .map(|b| b.channel_id)
            .collect()
    } else {
        store
            .list_portals(team_id)
            .await?
            .into_iter()
            .filter(|p| p.room_id.is_some())
            .map(|p| p.channel_id)
            .collect()
    };
    enqueue(store, waker, team_id, &channels, TaskKind::CatchUp).await?;
    Ok(channels.len())
}

/// A portal was just created: record its history state (an initial backfill to do, unless
/// turned off) before the portal itself, so no crash leaves a portal that never backfills.
pub async fn on_portal_created(core: &Core, team_id: &TeamId, channel: &ChannelId) -> Result<()> {
    let pending = core.config.bridge.backfill.initial_messages > 0;
    // Catch-up of a portal that never bridged a message starts at its creation.
    let created = Ts::from(format!("{}.000000", now_ms() / 1000));
    core.store
        .insert_backfill(team_id, channel, pending, &created)
        .await?;
    if pending {
        core.history.unsettle(&slack_queue(team_id, Some(channel)));
    }
    Ok(())
}

/// Queues the initial backfill of a new portal, for when it was created outside its queue.
pub async fn queue_backfill(core: &Core, team_id: &TeamId, channel: &ChannelId) -> Result<()> {
    if core.config.bridge.backfill.initial_messages == 0 {
        return Ok(());
    }
    enqueue(
        &core.store,
        &core.inbound,
        team_id,
        std::slice::from_ref(channel),
        TaskKind::Backfill,
    )
    .await
}

/// Runs a stored task. It looks at the stored state itself, whatever live events found: a
/// portal created by the login's sync while its queue was handling an event may have been
/// taken for one without a backfill.
pub async fn run_task(core: &Arc<Core>, rt: &Arc<LoginRuntime>, task: &Task) -> Result<()> {
    core.history
        .unsettle(&slack_queue(rt.team_id(), Some(&task.channel)));
    before_live(core, rt, &task.channel).await?;
    if task.task == TaskKind::CatchUp {
        catch_up(core, rt, &task.channel).await?;
    }
    Ok(())
}

/// Runs the portal's initial backfill if it is pending: called before any event of the
/// portal is handled, and right after a portal is created for a live message.
pub async fn before_live(
    core: &Arc<Core>,
    rt: &Arc<LoginRuntime>,
    channel: &ChannelId,
) -> Result<()> {
    let key = slack_queue(rt.team_id(), Some(channel));
    let Some(_running) = core.history.start(&key) else {
        return Ok(());
    };
    if let Some(b) = core.store.get_backfill(rt.team_id(), channel).await?
        && b.initial_pending()
    {
        backfill(core, rt, channel, b.until_ts.as_ref()).await?;
    }
    core.history.settle(&key);
    Ok(())
}

/// The portal's name for logs and notices (`#general`), or its channel id.
async fn label(
    core: &Core,
    team: &TeamId,
    channel: &ChannelId,
) -> Result<(String, Option<OwnedRoomId>)> {
    let portal = core.store.get_portal(team, channel).await?;
    let room = portal.as_ref().and_then(|p| p.room_id.clone());
    let name = portal
        .map(|p| p.name)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| channel.to_string());
    Ok((name, room))
}

#[tracing::instrument(name = "backfill", skip_all, fields(team = %rt.team_id(), channel = %channel))]
async fn backfill(
    core: &Arc<Core>,
    rt: &Arc<LoginRuntime>,
    channel: &ChannelId,
    until: Option<&Ts>,
) -> Result<()> {
    let cfg = &core.config.bridge.backfill;
    let team = rt.team_id();
    let (name, room) = label(core, team, channel).await?;
    let started = Instant::now();
    let mut fetch = Fetch::new(core, rt, channel, &name, HistoryRun::Backfill);
    let fetched = match fetch.history(None, until, true, cfg.initial_messages).await {
        Ok(f) => f,
        Err(e) => return history_unavailable(core, rt, channel, (&name, room.as_deref()), e).await,
    };
    if until.is_none()
        && let Some(newest) = fetched.messages.first()
    {
        // Fixed now: a restart fetches the same messages, not the ones arriving meanwhile.
        core.store
            .set_backfill_until(team, channel, &newest.ts)
            .await?;
    }
    let newest = until
        .cloned()
        .or_else(|| fetched.messages.first().map(|m| m.ts.clone()))
        .unwrap_or_default();
    let messages = match fetch
        .with_threads(fetched.messages, None, cfg.thread_replies as usize, &[])
        .await
    {
        Ok(m) => m,
        Err(e) => return history_unavailable(core, rt, channel, (&name, room.as_deref()), e).await,
    };
    let total = messages.len() as i64;
    let bridged = send(core, rt, channel, &messages, HistoryRun::Backfill).await?;
    core.store
        .finish_history_run(team, channel, total, total, bridged, &newest)
        .await?;
    tracing::info!(%team, %channel, portal = %name, messages = total, bridged, took_s = started.elapsed().as_secs(), "backfill done");
    Ok(())
}

/// A history call Slack refused for good (a missing scope, a channel the bot cannot read):
/// the room is told and the portal goes on without history. Retryable failures propagate,
/// and the queue tries again.
async fn history_unavailable(
    core: &Arc<Core>,
    rt: &Arc<LoginRuntime>,
    channel: &ChannelId,
    (name, room): (&str, Option<&RoomId>),
    e: BridgeError,
) -> Result<()> {
    if e.is_retryable() {
        return Err(e);
    }
    let team = rt.team_id();
    tracing::warn!(%team, %channel, portal = %name, error = %e, "Slack's history of this conversation is not available; the portal goes on without it");
    if let Some(room) = room {
        // Once per portal, also when recording the outcome below fails and the task reruns.
        super::from_matrix::notice(
            core,
            room,
            &format!("history-unavailable-{team}-{channel}"),
            &format!("Earlier Slack messages of this conversation could not be fetched: {e}"),
        )
        .await;
    }
    core.store
        .finish_history_run(team, channel, 0, 0, 0, &Ts::default())
        .await?;
    Ok(())
}

#[tracing::instrument(name = "catch-up", skip_all, fields(team = %rt.team_id(), channel = %channel))]
async fn catch_up(core: &Arc<Core>, rt: &Arc<LoginRuntime>, channel: &ChannelId) -> Result<()> {
    let cfg = &core.config.bridge.backfill;
    if cfg.catchup_max == 0 {
        return Ok(());
    }
    let team = rt.team_id();
    let (name, room) = label(core, team, channel).await?;
    let Some(room) = room else {
        return Ok(());
    };
    let state = core.store.get_backfill(team, channel).await?;
    let newest_bridged = core.store.newest_message_ts(team, channel).await?;
    let Some(oldest) = [newest_bridged, state.and_then(|b| b.caught_up_ts)]
        .into_iter()
        .flatten()
        .max_by_key(Ts::key)
    else {
        // Never bridged anything, and from before history was tracked: nothing to go by.
        return Ok(());
    };
    // The last few bridged messages are fetched again: Slack's history shows the edits and
    // reactions they got meanwhile.
    let overlap = core
        .store
        .recent_top_level(team, channel, OVERLAP)
        .await?
        .pop()
        .filter(|ts| ts.key() <= oldest.key());
    let started = Instant::now();
    let mut fetch = Fetch::new(core, rt, channel, &name, HistoryRun::CatchUp);
    let fetched = match &overlap {
        Some(from) => {
            let max = cfg.catchup_max + OVERLAP as u32;
            fetch.history(Some(from), None, true, max).await
        }
        None => {
            fetch
                .history(Some(&oldest), None, false, cfg.catchup_max)
                .await
        }
    };
    let fetched = match fetched {
        Ok(f) => f,
        Err(e) if e.is_retryable() => return Err(e),
        Err(e) => {
            // The bot left, the channel is gone: nothing to catch up on, nothing to retry.
            tracing::warn!(%team, %channel, portal = %name, error = %e, "cannot catch up on this conversation's history");
            return Ok(());
        }
    };
    let newest = fetched
        .messages
        .first()
        .map(|m| m.ts.clone())
        .unwrap_or_default();
    let truncated = fetched.truncated;
    let known = known_threads(core, team, channel).await?;
    let messages = fetch
        .with_threads(fetched.messages, Some(&oldest), usize::MAX, &known)
        .await?;
    let total = messages.len() as i64;
    let bridged = send(core, rt, channel, &messages, HistoryRun::CatchUp).await?;
    if truncated {
        super::from_matrix::notice(
            core,
            &room,
            &format!("catch-up-truncated-{team}-{channel}-{oldest}"),
            &format!(
                "While the bridge was away, more than {} messages were posted in this Slack conversation: the newest {} are bridged, the older ones are only on Slack (bridge.backfill.catchup_max).",
                cfg.catchup_max, cfg.catchup_max
            ),
        )
        .await;
    }
    core.store
        .finish_history_run(team, channel, total, total, bridged, &newest)
        .await?;
    if total > 0 {
        tracing::info!(%team, %channel, portal = %name, messages = total, bridged, took_s = started.elapsed().as_secs(), "catch-up done");
    }
    Ok(())
}

/// The portal's threads with bridged activity in the last day: (root ts, newest bridged ts).
async fn known_threads(core: &Core, team: &TeamId, channel: &ChannelId) -> Result<Vec<(Ts, Ts)>> {
    let since = (now_ms() / 1000).saturating_sub(KNOWN_THREAD_AGE.as_secs() as i64);
    Ok(core
        .store
        .recent_threads(team, channel, KNOWN_THREADS)
        .await?
        .into_iter()
        .filter(|(_, newest)| newest.key() >= Ts::from(format!("{since}")).key())
        .collect())
}

/// Sends history messages (oldest first) through the live handling, with their reactions;
/// a message bridged before only gets the edits Slack shows. Returns how many were new.
async fn send(
    core: &Arc<Core>,
    rt: &Arc<LoginRuntime>,
    channel: &ChannelId,
    messages: &[Message],
    run: HistoryRun,
) -> Result<i64> {
    let team = rt.team_id();
    let total = messages.len() as i64;
    let mut bridged = 0;
    for (i, m) in messages.iter().enumerate() {
        let known = !core
            .store
            .get_message(team, channel, &m.ts)
            .await?
            .is_empty();
        let event = MessageEvent::from_history(channel, m.clone());
        // Parts bridged before are skipped (a crash between a message's text and its files
        // leaves the files to send); of a known message, only an edit can be new, and
        // on_changed skips edits already bridged.
        let mut result = from_slack::handle_event(core, rt, SlackEvent::Message(event)).await;
        if result.is_ok() && known && m.edited.is_some() {
            result = from_slack::apply_edit(core, rt, channel, m).await;
        }
        match result {
            Ok(()) => {}
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => {
                tracing::warn!(%team, %channel, ts = %m.ts, error = %e, "a message from Slack's history cannot be bridged; skipped")
            }
        }
        if !known
            && !core
                .store
                .get_message(team, channel, &m.ts)
                .await?
                .is_empty()
        {
            bridged += 1;
            core.metrics.from_history(run, 1);
        }
        for r in &m.reactions {
            for user in r.users.iter().filter(|u| **u != rt.login.bot_user_id) {
                let reaction = ReactionEvent {
                    user: user.clone(),
                    reaction: r.name.clone(),
                    item: ReactionItem {
                        kind: "message".into(),
                        channel: Some(channel.to_owned()),
                        ts: Some(m.ts.clone()),
                        ..ReactionItem::default()
                    },
                    item_user: m.user.clone(),
                    event_ts: m.ts.clone(),
                };
                match from_slack::handle_event(core, rt, SlackEvent::ReactionAdded(reaction)).await
                {
                    Ok(()) => {}
                    Err(e) if e.is_retryable() => return Err(e),
                    Err(e) => {
                        tracing::warn!(%team, %channel, ts = %m.ts, reaction = %r.name, error = %e, "a reaction from Slack's history cannot be bridged; skipped")
                    }
                }
            }
        }
        if (i + 1) % 10 == 0 {
            core.store
                .set_history_progress(team, channel, run, i as i64 + 1, total)
                .await?;
        }
    }
    Ok(bridged)
}

/// What a history fetch found: newest first.
struct Fetched {
    messages: Vec<Message>,
    /// Slack had more than the limit.
    truncated: bool,
}

/// The history calls of one run, with their progress log.
struct Fetch<'a> {
    core: &'a Core,
    rt: &'a LoginRuntime,
    channel: &'a ChannelId,
    name: &'a str,
    run: HistoryRun,
    started: Instant,
}

impl<'a> Fetch<'a> {
    fn new(
        core: &'a Core,
        rt: &'a LoginRuntime,
        channel: &'a ChannelId,
        name: &'a str,
        run: HistoryRun,
    ) -> Self {
        Self {
            core,
            rt,
            channel,
            name,
            run,
            started: Instant::now(),
        }
    }

    /// Logs and stores how far the fetch got; the time left is estimated from the pace so
    /// far (Slack's Tier 1 history limit makes it a minute a page).
    async fn progress(&self, got: usize, wanted: usize, pages: u32) {
        let elapsed = self.started.elapsed();
        if elapsed >= SLOW_PAGE && got < wanted {
            let per_message = elapsed.as_secs_f64() / got.max(1) as f64;
            let left = Duration::from_secs_f64(per_message * (wanted - got) as f64);
            tracing::info!(
                team = %self.rt.team_id(),
                channel = %self.channel,
                pages,
                "{} {}: {got}/{wanted}, ~{} left",
                self.run.as_str(),
                self.name,
                approx(left)
            );
        }
        let store = &self.core.store;
        if let Err(e) = store
            .set_history_progress(
                self.rt.team_id(),
                self.channel,
                self.run,
                got as i64,
                wanted as i64,
            )
            .await
        {
            tracing::debug!(error = %e, "cannot store history progress");
        }
    }

    /// Up to `max` top-level messages after `oldest` or before `latest` (or at them, with
    /// `inclusive`), newest first, page by page.
    async fn history(
        &mut self,
        oldest: Option<&Ts>,
        latest: Option<&Ts>,
        inclusive: bool,
        max: u32,
    ) -> Result<Fetched> {
        let max = max as usize;
        let mut q = HistoryQuery {
            channel: self.channel.clone(),
            oldest: oldest.cloned(),
            latest: latest.cloned(),
            inclusive,
            ..HistoryQuery::default()
        };
        let mut messages: Vec<Message> = Vec::new();
        let mut pages = 0;
        loop {
            q.limit = Some(PAGE.min((max - messages.len()).max(1) as u32));
            let page = self.rt.slack.conversations_history(&q).await?;
            pages += 1;
            messages.extend(page.messages);
            if messages.len() >= max {
                let truncated = messages.len() > max || page.has_more;
                messages.truncate(max);
                return Ok(Fetched {
                    messages,
                    truncated,
                });
            }
            match page.next_cursor {
                Some(c) if page.has_more && !c.is_empty() => q.cursor = Some(c),
                _ => {
                    return Ok(Fetched {
                        messages,
                        truncated: false,
                    });
                }
            }
            self.progress(messages.len(), max, pages).await;
        }
    }

    /// The messages with their threads' replies (the newest `per_thread` of each, after
    /// `oldest` when given), plus the new replies of `known` threads, oldest first.
    async fn with_threads(
        &mut self,
        top: Vec<Message>,
        oldest: Option<&Ts>,
        per_thread: usize,
        known: &[(Ts, Ts)],
    ) -> Result<Vec<Message>> {
        let after = |ts: &Ts, bound: Option<&Ts>| bound.is_none_or(|b| ts.key() > b.key());
        let mut threads: Vec<(Ts, Option<Ts>)> = top
            .iter()
            .filter(|m| m.reply_count.unwrap_or(0) > 0 && !m.is_thread_reply())
            .filter(|m| m.latest_reply.as_ref().is_none_or(|l| after(l, oldest)))
            .map(|m| (m.ts.clone(), oldest.cloned()))
            .collect();
        for (root, newest) in known {
            if !threads.iter().any(|(r, _)| r == root) {
                threads.push((root.clone(), Some(newest.clone())));
            }
        }
        let mut all: BTreeMap<u128, Message> = top.into_iter().map(|m| (m.ts.key(), m)).collect();
        for (root, bound) in threads {
            let mut replies = self.replies(&root).await?;
            replies.retain(|r| r.ts != root && after(&r.ts, bound.as_ref()));
            let skip = replies.len().saturating_sub(per_thread);
            for r in replies.into_iter().skip(skip) {
                all.entry(r.ts.key()).or_insert(r);
            }
        }
        Ok(all.into_values().collect())
    }

    /// Every reply of a thread, oldest first (the root repeats on each page).
    async fn replies(&self, root: &Ts) -> Result<Vec<Message>> {
        let mut cursor: Option<String> = None;
        let mut out = Vec::new();
        loop {
            let page = self
                .rt
                .slack
                .conversations_replies(self.channel, root, cursor.as_deref(), Some(PAGE))
                .await?;
            out.extend(page.items.into_iter().filter(|m| m.ts != *root));
            match page.next_cursor {
                Some(c) if !c.is_empty() => cursor = Some(c),
                _ => return Ok(out),
            }
        }
    }
}

/// "6 min", "40 s": a rough duration for a progress log.
fn approx(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 120 {
        format!("{} min", s.div_ceil(60))
    } else {
        format!("{s} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rough_durations() {
        assert_eq!(approx(Duration::from_secs(40)), "40 s");
        assert_eq!(approx(Duration::from_secs(330)), "6 min");
    }

    #[test]
    fn tasks_round_trip() {
        let t = Task {
            task: TaskKind::CatchUp,
            channel: "C1".into(),
        };
        let s = serde_json::to_string(&t).unwrap();
        assert_eq!(s, r#"{"task":"catch-up","channel":"C1"}"#);
        assert_eq!(serde_json::from_str::<Task>(&s).unwrap(), t);
    }
}
