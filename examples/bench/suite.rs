//! `--suite`: the bridge's goals, each measured against its baseline in the same run.
//!
//! Two bridges run one after the other, each a child process with a Synapse of its own that
//! also holds the registration of the bare appservice (`direct.rs`):
//!
//! - **10 channels**, Alice in each. Her ghost is warmed up (registered, in every portal)
//!   before anything is timed, and the direct ghost likewise in 10 rooms of its own.
//!   - *Slack → Matrix throughput* (1 channel, then 10): Alice posts every message at once on
//!     the emulator; the time runs until the last message of each room is in Synapse (watched
//!     one room at a time, every 100 ms); then every message is checked to have arrived once
//!     and in order. Baseline: the direct ghost sends the same messages straight into its own
//!     rooms (one sender per room, the rooms concurrently, as the bridge's per-portal queues
//!     do), timed the same way.
//!   - *CPU per bridged message*: the bridge's utime + stime (`/proc/<pid>/stat`) over both
//!     bridge runs, per message; beside it Synapse's over the same intervals.
//!   - *Socket Mode ack latency*: the emulator's ack records of the 10-channel burst.
//!   - *Matrix → Slack* (10 channels, then 1): the owner sends into the portals; the time runs
//!     from the first send to the last chat.postMessage the emulator accepted. The emulator
//!     itself paces nothing (it answers 429 only to scripted faults), so the baseline is Slack's
//!     documented limit for chat.postMessage: 1 message per second per channel (short bursts
//!     allowed); the 429 count is every chat.postMessage answered 429 meanwhile.
//! - **500 channels** the bot is alone in, plus a channel of 2,000 people it is not in, with
//!   the initial backfill off (`initial_messages: 0`; with it on, the empty channels' history
//!   calls, paced at conversations.history's 50 a minute, would hold the last portal's live
//!   messages back by ten minutes).
//!   - *Initial sync*: from starting the bridge until every portal has its room in the
//!     bridge's database. Baseline: the direct appservice creates the space and the same
//!     rooms, with the bridge's createRoom bodies, and links each into the space.
//!   - *Peak RSS*: the bot then joins the crowd's channel; its member sync registers the 2,000
//!     ghosts (profiles from one users.list) and joins them; then each of them posts once, and
//!     the bridge's `VmHWM` is read once every message arrived.
//!
//! `--quick` runs the same with smaller sizes (see [`QUICK`]), so its rows are not the goals'
//! sizes; they check the machinery.

use std::{
    error::Error,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use testkit::{FixtureError, TestClient};

use super::{
    CHANNELS, DbKind, Plan, Setup, backlog, channel_name, check_run, cpu_time, direct,
    direct::Direct, mib, post, room_of, rss_kib, setup, text, texts_of_room, wait_every,
    wait_until,
};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

pub struct Options {
    pub quick: bool,
    pub json: bool,
    pub db: DbKind,
    /// Also run the backlog of this many events.
    pub backlog: Option<usize>,
}

/// How much each row moves.
struct Sizes {
    /// Slack → Matrix messages into 1 channel, and over 10 (also the ack burst).
    s2m_one: usize,
    s2m_ten: usize,
    /// Matrix → Slack messages over 10 channels, and into 1.
    m2s_ten: usize,
    m2s_one: usize,
    /// Channels of the initial sync.
    portals: usize,
    /// People who post once each, after the initial sync.
    crowd: usize,
}

const FULL: Sizes = Sizes {
    s2m_one: 300,
    s2m_ten: 500,
    m2s_ten: 100,
    m2s_one: 60,
    portals: 500,
    crowd: 2_000,
};

const QUICK: Sizes = Sizes {
    s2m_one: 100,
    s2m_ten: 200,
    m2s_ten: 100,
    m2s_one: 20,
    portals: 100,
    crowd: 200,
};

/// The goals.
const THROUGHPUT_RATIO: f64 = 0.97;
const CPU_MS_PER_MSG: f64 = 0.4;
const ACK_P50_MS: f64 = 5.0;
const ACK_MAX_MS: f64 = 50.0;
const SYNC_RATIO: f64 = 0.9;
const M2S_TEN_PER_S: f64 = 9.5;
/// "1.0 msg/s": what rounds to it.
const M2S_ONE_PER_S: f64 = 0.95;
const RSS_KIB: u64 = 20 * 1024;
/// Slack's chat.postMessage limit per channel, in messages per second.
const SLACK_PER_CHANNEL_PER_S: f64 = 1.0;

/// How often a waiting run looks at the homeserver.
const POLL: Duration = Duration::from_millis(100);

const BACKFILL_OFF: (&str, &str) = ("    initial_messages: 50\n", "    initial_messages: 0\n");

/// One row of the table.
struct Row {
    name: String,
    bridge: String,
    baseline: String,
    ratio: Option<f64>,
    goal: &'static str,
    met: bool,
    /// The row's numbers, for `--json`.
    numbers: Value,
}

pub async fn run(o: Options) -> Result<()> {
    let sizes = if o.quick { QUICK } else { FULL };
    let started = Instant::now();
    let mut rows = Vec::new();
    let synapse = ten_channels(&sizes, o.db, &mut rows).await?;
    many_channels(&sizes, o.db, &mut rows).await?;
    if let Some(events) = o.backlog {
        let report = backlog(events, o.db).await?;
        report.print();
        rows.push(rss_row(
            format!("peak RSS after a backlog of {events} events over {CHANNELS} channels"),
            report.hwm,
        ));
    }
    let elapsed = started.elapsed();
    let title = format!(
        "slack-bridge bench --suite{}: database {}, Synapse {synapse}, {:.0} s",
        if o.quick { " --quick" } else { "" },
        o.db.name(),
        elapsed.as_secs_f64()
    );
    let table = table(&title, &rows);
    if o.json {
        eprint!("{table}");
        let doc = json!({
            "quick": o.quick,
            "database": o.db.name(),
            "synapse": synapse,
            "elapsed_s": elapsed.as_secs_f64(),
            "rows": rows.iter().map(|r| json!({
                "row": r.name,
                "bridge": r.bridge,
                "baseline": r.baseline,
                "ratio": r.ratio,
                "goal": r.goal,
                "met": r.met,
                "numbers": r.numbers,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{table}");
    }
    Ok(())
}

fn table(title: &str, rows: &[Row]) -> String {
    let mut out = format!("\n{title}\n\n| row | bridge | baseline | ratio | goal | met |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.name,
            r.bridge,
            r.baseline,
            r.ratio.map_or("—".into(), |x| format!("{x:.2}")),
            r.goal,
            if r.met { "yes" } else { "**no**" }
        ));
    }
    let met = rows.iter().filter(|r| r.met).count();
    out.push_str(&format!("\n{met} of {} goals met.\n", rows.len()));
    out
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// `n / d` per second.
fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// Runs `rows` on a bridge set up by `plan`, then stops it whatever happened.
async fn with_setup<T>(
    plan: Plan,
    db: DbKind,
    rows: impl AsyncFnOnce(&Setup) -> Result<T>,
) -> Result<T> {
    let s = setup(plan, db).await?;
    let result = rows(&s).await;
    if result.is_err() {
        say!(
            "failed; the bridge's log ends with:\n{}",
            log_tail(&s.dir.path().join("bridge.log"))
        );
    }
    s.finish().await;
    result
}

fn log_tail(path: &std::path::Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// CPU time used so far by the bridge and by Synapse.
fn cpu(s: &Setup) -> Result<[Duration; 2]> {
    let synapse = s.synapse.pid().ok_or("Synapse is not running")?;
    Ok([
        cpu_time(s.pid).ok_or("cannot read the bridge's CPU time")?,
        cpu_time(synapse).ok_or("cannot read Synapse's CPU time")?,
    ])
}

/// `after - before`, per process.
fn used(before: [Duration; 2], after: [Duration; 2]) -> [Duration; 2] {
    [after[0] - before[0], after[1] - before[1]]
}

/// Waits until each room's newest messages include its text, looking at one room at a time,
/// so that watching costs the homeserver little.
async fn arrived(you: &TestClient, want: &[(String, String)]) -> Result<()> {
    for (room, body) in want {
        wait_every(
            &format!("{body:?} in {room}"),
            Duration::from_secs(1800),
            POLL,
            async || {
                let events = you.messages(room, 5).await.ok()?;
                events
                    .iter()
                    .any(|e| e["content"]["body"] == body.as_str())
                    .then_some(())
            },
        )
        .await?;
    }
    Ok(())
}

/// The last text of each room in a run of `n` over `rooms`.
fn last_texts(rooms: &[String], n: usize, tag: &str) -> Vec<(String, String)> {
    rooms
        .iter()
        .enumerate()
        .filter_map(|(ri, room)| {
            let last = texts_of_room(tag, n, rooms.len(), ri).pop()?;
            Some((room.clone(), last))
        })
        .collect()
}

/// Slack → Matrix through the bridge: Alice posts `n` messages over `channels` at once; the
/// time until all of them are in their rooms. Checks each arrived once and in order.
async fn s2m_bridge(
    s: &Setup,
    channels: &[String],
    rooms: &[String],
    n: usize,
    tag: &str,
) -> Result<Duration> {
    let started = Instant::now();
    for i in 0..n {
        post(
            &s.emu,
            &s.alice,
            &channels[i % channels.len()],
            &text(tag, i),
        )?;
    }
    arrived(&s.you, &last_texts(rooms, n, tag)).await?;
    let took = started.elapsed();
    check_run(&s.you, rooms, tag, n).await?;
    Ok(took)
}

/// The baseline: the direct ghost sends the same `n` messages straight into `rooms`, one
/// sender per room, the rooms concurrently; timed like [`s2m_bridge`].
async fn s2m_direct(
    d: &Direct,
    you: &TestClient,
    ghost: &str,
    rooms: &[String],
    n: usize,
    tag: &str,
) -> Result<Duration> {
    let started = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for (ri, room) in rooms.iter().enumerate() {
        let (d, room, ghost) = (d.clone(), room.clone(), ghost.to_owned());
        let texts = texts_of_room(tag, n, rooms.len(), ri);
        senders.spawn(async move {
            for t in &texts {
                d.send_text(&room, &ghost, t).await?;
            }
            Ok::<(), FixtureError>(())
        });
    }
    while let Some(sent) = senders.join_next().await {
        sent??;
    }
    arrived(you, &last_texts(rooms, n, tag)).await?;
    Ok(started.elapsed())
}

/// Matrix → Slack: the owner sends `n` messages over `rooms`; the time from the first send
/// until the emulator accepted the `n`th chat.postMessage, and how many it answered 429.
async fn m2s(s: &Setup, rooms: &[String], n: usize, tag: &str) -> Result<(Duration, usize)> {
    let before = s.emu.calls("chat.postMessage").len();
    let accepted = || {
        s.emu.calls("chat.postMessage")[before..]
            .iter()
            .filter(|c| {
                c.status == 200
                    && c.response["ok"] == true
                    && c.param("text").is_some_and(|t| t.contains(tag))
            })
            .count()
    };
    let started = Instant::now();
    for i in 0..n {
        s.you
            .send_text(&rooms[i % rooms.len()], &text(tag, i))
            .await?;
    }
    let took = wait_every(
        &format!("{n} posts of {tag:?} on Slack"),
        Duration::from_secs(900),
        Duration::from_millis(20),
        async || (accepted() >= n).then(|| started.elapsed()),
    )
    .await?;
    let limited = s.emu.calls("chat.postMessage")[before..]
        .iter()
        .filter(|c| c.status == 429)
        .count();
    Ok((took, limited))
}

fn throughput_row(name: String, n: usize, bridge: Duration, direct: Duration) -> Row {
    let (b, d) = (rate(n, bridge), rate(n, direct));
    let ratio = b / d;
    Row {
        name,
        bridge: format!("{b:.1} msg/s ({:.1} s)", secs(bridge)),
        baseline: format!("{d:.1} msg/s ({:.1} s), direct", secs(direct)),
        ratio: Some(ratio),
        goal: "≥ 0.97 × direct",
        met: ratio >= THROUGHPUT_RATIO,
        numbers: json!({
            "messages": n,
            "bridge_s": secs(bridge), "bridge_msg_per_s": b,
            "direct_s": secs(direct), "direct_msg_per_s": d,
        }),
    }
}

fn rss_row(name: String, hwm: u64) -> Row {
    Row {
        name,
        bridge: format!("{} VmHWM", mib(hwm)),
        baseline: "—".into(),
        ratio: None,
        goal: "≤ 20 MiB",
        met: hwm <= RSS_KIB,
        numbers: json!({"vm_hwm_kib": hwm}),
    }
}

/// The 10-channel bridge: throughput both ways, CPU and acks. Returns Synapse's version.
async fn ten_channels(z: &Sizes, db: DbKind, rows: &mut Vec<Row>) -> Result<String> {
    let mut plan = Plan::channels(CHANNELS);
    plan.direct = true;
    with_setup(plan, db, async |s| {
        ten_channel_rows(s, z, rows).await?;
        Ok(s.synapse.version().to_owned())
    })
    .await
}

async fn ten_channel_rows(s: &Setup, z: &Sizes, rows: &mut Vec<Row>) -> Result<()> {
    let d = s.direct.as_ref().ok_or("no direct appservice")?;
    let you = &s.you;
    let rooms = s.rooms().await?;
    for room in &rooms {
        you.join(room).await?;
    }
    // Alice's ghost registered and in every portal, the direct ghost in its rooms.
    for channel in &s.channels {
        post(&s.emu, &s.alice, channel, "warm-up")?;
    }
    let warm: Vec<(String, String)> = rooms
        .iter()
        .map(|r| (r.clone(), "warm-up".to_owned()))
        .collect();
    arrived(you, &warm).await?;
    let ghost = d.register("alice").await?;
    let mut direct_rooms = Vec::new();
    for i in 0..CHANNELS {
        let name = format!("direct-{i:03}");
        let body =
            direct::portal_request(&d.alias(&name), &name, "", &[you.user_id(), ghost.as_str()]);
        let room = d.create_room(&body).await?;
        d.join(&room, &ghost).await?;
        you.join(&room).await?;
        direct_rooms.push(room);
    }

    let (one, ten) = (z.s2m_one, z.s2m_ten);
    say!("Slack → Matrix, {one} messages into 1 channel");
    let c0 = cpu(s)?;
    let bridge_one = s2m_bridge(s, &s.channels[..1], &rooms[..1], one, "s2m-one").await?;
    let c1 = cpu(s)?;
    let direct_one = s2m_direct(d, you, &ghost, &direct_rooms[..1], one, "s2m-one").await?;
    let c2 = cpu(s)?;
    say!("Slack → Matrix, {ten} messages over {CHANNELS} channels");
    let acks_before = s.emu.acks().len();
    let bridge_ten = s2m_bridge(s, &s.channels, &rooms, ten, "s2m-ten").await?;
    let c3 = cpu(s)?;
    let acks = s.emu.acks().split_off(acks_before);
    let direct_ten = s2m_direct(d, you, &ghost, &direct_rooms, ten, "s2m-ten").await?;
    let c4 = cpu(s)?;

    rows.push(throughput_row(
        format!("Slack → Matrix throughput, 1 channel ({one} msgs)"),
        one,
        bridge_one,
        direct_one,
    ));
    rows.push(throughput_row(
        format!("Slack → Matrix throughput, {CHANNELS} channels ({ten} msgs)"),
        ten,
        bridge_ten,
        direct_ten,
    ));

    let [bridge_a, synapse_a] = used(c0, c1);
    let [bridge_b, synapse_b] = used(c2, c3);
    let [_, synapse_direct_a] = used(c1, c2);
    let [_, synapse_direct_b] = used(c3, c4);
    let msgs = (one + ten) as f64;
    let per_msg = |d: Duration| d.as_secs_f64() * 1000.0 / msgs;
    let (bridge_ms, synapse_ms) = (per_msg(bridge_a + bridge_b), per_msg(synapse_a + synapse_b));
    rows.push(Row {
        name: format!("bridge CPU per bridged message ({} msgs)", one + ten),
        bridge: format!("{bridge_ms:.3} ms/msg"),
        baseline: format!("{synapse_ms:.3} ms/msg, Synapse"),
        ratio: Some(bridge_ms / synapse_ms),
        goal: "≤ 0.4 ms/msg",
        met: bridge_ms <= CPU_MS_PER_MSG,
        numbers: json!({
            "messages": one + ten,
            "bridge_cpu_s": secs(bridge_a + bridge_b),
            "synapse_cpu_s": secs(synapse_a + synapse_b),
            "bridge_ms_per_msg": bridge_ms,
            "synapse_ms_per_msg": synapse_ms,
            "synapse_ms_per_msg_direct": per_msg(synapse_direct_a + synapse_direct_b),
        }),
    });

    let mut latencies: Vec<f64> = acks
        .iter()
        .map(|a| a.latency.as_secs_f64() * 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let (p50, max) = match latencies.len() {
        0 => return Err("the emulator recorded no acks".into()),
        n => (latencies[n.div_ceil(2) - 1], latencies[n - 1]),
    };
    rows.push(Row {
        name: format!("Socket Mode ack latency, {ten}-message burst"),
        bridge: format!(
            "p50 {p50:.2} ms, max {max:.2} ms ({} acks)",
            latencies.len()
        ),
        baseline: "—".into(),
        ratio: None,
        goal: "p50 ≤ 5 ms, max ≤ 50 ms",
        met: p50 <= ACK_P50_MS && max <= ACK_MAX_MS,
        numbers: json!({"acks": latencies.len(), "p50_ms": p50, "max_ms": max}),
    });

    let (n10, n1) = (z.m2s_ten, z.m2s_one);
    say!("Matrix → Slack, {n10} messages over {CHANNELS} channels");
    let (ten_took, ten_429) = m2s(s, &rooms, n10, "m2s-ten").await?;
    // Every channel's share of Slack's limit back before the next run.
    tokio::time::sleep(Duration::from_secs(5)).await;
    say!("Matrix → Slack, {n1} messages into 1 channel");
    let (one_took, one_429) = m2s(s, &rooms[..1], n1, "m2s-one").await?;
    let slack_ten = SLACK_PER_CHANNEL_PER_S * CHANNELS as f64;
    let r10 = rate(n10, ten_took);
    rows.push(Row {
        name: format!("Matrix → Slack, {n10} messages over {CHANNELS} channels"),
        bridge: format!("{r10:.2} msg/s ({:.1} s), {ten_429} × 429", secs(ten_took)),
        baseline: format!("{slack_ten:.1} msg/s, Slack's 1/s per channel"),
        ratio: Some(r10 / slack_ten),
        goal: "≥ 9.5 msg/s, zero 429s",
        met: r10 >= M2S_TEN_PER_S && ten_429 == 0,
        numbers: json!({
            "messages": n10, "s": secs(ten_took), "msg_per_s": r10, "http_429": ten_429,
            "slack_msg_per_s": slack_ten,
        }),
    });
    let r1 = rate(n1, one_took);
    rows.push(Row {
        name: format!("Matrix → Slack, 1 channel ({n1} msgs)"),
        bridge: format!("{r1:.2} msg/s ({:.1} s), {one_429} × 429", secs(one_took)),
        baseline: "—".into(),
        ratio: None,
        goal: "1.0 msg/s, zero 429s",
        met: r1 >= M2S_ONE_PER_S && one_429 == 0,
        numbers: json!({"messages": n1, "s": secs(one_took), "msg_per_s": r1, "http_429": one_429}),
    });
    Ok(())
}

/// The many-channel bridge: the initial sync, then the crowd, then the peak memory.
async fn many_channels(z: &Sizes, db: DbKind, rows: &mut Vec<Row>) -> Result<()> {
    // The ghosts' avatars are not thumbnailed at upload: that is Synapse's work, most of the
    // time the crowd's ghosts take, and no part of what this bridge measures.
    let mut synapse_extra = serde_json::Map::new();
    synapse_extra.insert("dynamic_thumbnails".into(), true.into());
    synapse_extra.insert("thumbnail_sizes".into(), json!([]));
    let plan = Plan {
        channels: z.portals,
        alice_in_channels: false,
        crowd: z.crowd,
        synapse_extra,
        direct: true,
        config_edits: &[BACKFILL_OFF],
    };
    with_setup(plan, db, async |s| many_channel_rows(s, z, rows).await).await
}

async fn many_channel_rows(s: &Setup, z: &Sizes, rows: &mut Vec<Row>) -> Result<()> {
    let d = s.direct.as_ref().ok_or("no direct appservice")?;
    let you = &s.you;
    let n = z.portals;

    say!("the same {n} rooms and the space, straight");
    let started = Instant::now();
    let team_name = s.emu.team_name();
    let space = d
        .create_room(&direct::space_request(
            &d.alias("space"),
            &team_name,
            &[you.user_id()],
        ))
        .await?;
    for i in 0..n {
        let name = channel_name(i);
        let body = direct::portal_request(&d.alias(&name), &name, "", &[you.user_id()]);
        let room = d.create_room(&body).await?;
        d.add_to_space(&space, &room).await?;
    }
    let direct_took = started.elapsed();
    let (b, dr) = (rate(n, s.synced_in), rate(n, direct_took));
    rows.push(Row {
        name: format!("initial sync, {n} channels → {n} portal rooms"),
        bridge: format!("{b:.2} rooms/s ({:.1} s)", secs(s.synced_in)),
        baseline: format!("{dr:.2} rooms/s ({:.1} s), direct", secs(direct_took)),
        ratio: Some(b / dr),
        goal: "≥ 0.9 × direct",
        met: b / dr >= SYNC_RATIO,
        numbers: json!({
            "rooms": n,
            "bridge_s": secs(s.synced_in), "bridge_rooms_per_s": b,
            "direct_s": secs(direct_took), "direct_rooms_per_s": dr,
        }),
    });

    let crowd = s.crowd_channel.as_deref().ok_or("no crowd")?;
    say!(
        "the bot joins the channel of {} people; their ghosts",
        s.crowd.len()
    );
    let started = Instant::now();
    let team = s.emu.team_id();
    s.emu
        .join(&s.emu.bot_user_id(), crowd)
        .map_err(|e| format!("{e:?}"))?;
    let room = wait_until("the crowd's portal", Duration::from_secs(600), async || {
        room_of(&s.db_uri, &team, crowd).await.ok()
    })
    .await?;
    you.join(&room).await?;
    wait_until(
        "every portal's members",
        Duration::from_secs(3600),
        async || {
            let store = slack_bridge::store::Store::connect(&s.db_uri, 1)
                .await
                .ok()?;
            let pending = store.portals_pending_members(&team.as_str().into()).await;
            store.close().await;
            pending.ok()?.is_empty().then_some(())
        },
    )
    .await?;
    let ghosts = you
        .joined_members(&room)
        .await?
        .iter()
        .filter(|m| m.starts_with("@slack_"))
        .count();
    say!(
        "{ghosts} ghosts in {:.1} s; each posts once",
        secs(started.elapsed())
    );
    for (i, person) in s.crowd.iter().enumerate() {
        post(&s.emu, person, crowd, &text("crowd", i))?;
    }
    let rooms = [room];
    arrived(you, &last_texts(&rooms, s.crowd.len(), "crowd")).await?;
    check_run(you, &rooms, "crowd", s.crowd.len()).await?;
    let (_, hwm) = rss_kib(s.pid).ok_or("cannot read the bridge's memory")?;
    let mut row = rss_row(
        format!("peak RSS, {} portals and {ghosts} ghosts who posted", n + 1),
        hwm,
    );
    row.numbers["portals"] = (n + 1).into();
    row.numbers["ghosts"] = ghosts.into();
    row.numbers["idle_after_sync_kib"] = s.idle.into();
    rows.push(row);
    Ok(())
}
