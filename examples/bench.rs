//! Benchmarks of the bridge against a real Synapse and the Slack emulator, on this machine.
//!
//! ```sh
//! cargo run --release --example bench                    # the backlog run, 20,000 events
//! cargo run --release --example bench -- --events 2000   # a shorter one
//! cargo run --release --example bench -- --files 200     # a 200 MB file each way
//! cargo run --release --example bench -- --suite         # the table of goals, ~13 minutes
//! cargo run --release --example bench -- --suite --quick # the same, scaled down, ~3 minutes
//! cargo run --release --example bench -- --suite --json --db postgres
//! ```
//!
//! **Backlog**: the homeserver goes down while Slack keeps sending `--events` messages over 10
//! channels; the bridge stores them all, then the homeserver comes back and every message
//! must arrive, in order. The bridge runs in a child process of its own (this program started
//! again with `--as-bridge`), so the resident memory it prints is the bridge's alone: idle,
//! with the whole backlog stored, and its peak while delivering it.
//!
//! **Files** (`--files MB`): one file of that size from Slack to Matrix, then one from Matrix
//! to Slack; both must arrive byte for byte, and the bridge's resident memory is sampled
//! throughout: it streams files, so its peak stays far below the file's size.
//!
//! **Suite** (`--suite`): one table of the bridge's goals, each row measured against its
//! baseline in the same run (see `bench/suite.rs` for what each row does). The baselines come
//! from this program acting as a bare appservice of its own (`bench/direct.rs`: a second
//! registration in the same Synapse, its ghosts sending straight to the homeserver), from
//! Synapse's own CPU time, and from Slack's documented pacing of chat.postMessage. `--quick`
//! scales every size down for a check of the machinery; `--json` prints the same numbers as
//! JSON on stdout (the table then goes to stderr); `--events N` with `--suite` also runs the
//! backlog and adds a row with the bridge's peak memory after it.
//!
//! `--db sqlite|postgres` (every mode): the bridge's database. `postgres` uses the server of
//! `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`) and creates a fresh
//! database `bench_<random>` for each bridge it starts, dropped afterwards.
//!
//! Run it alone: the bridge, Synapse and this program share the machine's cores, and anything
//! else running shows in every number.

/// Progress on stderr, with the time since the program started.
macro_rules! say {
    ($($arg:tt)*) => {
        eprintln!("bench [{:6.1} s]: {}", $crate::since_start().as_secs_f64(), format!($($arg)*))
    };
}

mod common;
#[path = "bench/direct.rs"]
mod direct;
#[path = "bench/suite.rs"]
mod suite;

use std::{
    error::Error,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use clap::Parser;
use slack_bridge::{
    ids::{TeamId, UserId},
    store::Store,
};
use slack_emulator::{Emulator, Workspace};
use testkit::{Synapse, SynapseConfig, TestClient};

const SERVER_NAME: &str = "bench.local";
const CHANNELS: usize = 10;
const DEFAULT_EVENTS: usize = 20_000;

#[derive(Parser)]
struct Args {
    /// Slack messages sent while the homeserver is down (the backlog run; 20,000 unless given).
    /// With --suite: also run the backlog and report the bridge's peak memory after it.
    #[arg(long)]
    events: Option<usize>,
    /// Instead of the backlog: move one file of this many MB each way.
    #[arg(long, conflicts_with = "suite")]
    files: Option<u64>,
    /// Instead of the backlog: the table of goals, each against its baseline.
    #[arg(long)]
    suite: bool,
    /// With --suite: every size scaled down (about 3 minutes).
    #[arg(long, requires = "suite")]
    quick: bool,
    /// With --suite: the numbers as JSON on stdout (the table goes to stderr).
    #[arg(long, requires = "suite")]
    json: bool,
    /// The bridge's database.
    #[arg(long, value_enum, default_value_t = DbKind::Sqlite)]
    db: DbKind,
    /// Internal: run the bridge with this config (the child process).
    #[arg(long, num_args = 2, value_names = ["CONFIG", "REGISTRATION"])]
    as_bridge: Option<Vec<PathBuf>>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum DbKind {
    Sqlite,
    Postgres,
}

impl DbKind {
    fn name(self) -> &'static str {
        match self {
            DbKind::Sqlite => "sqlite",
            DbKind::Postgres => "postgres",
        }
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    if let Some(paths) = &args.as_bridge {
        let cli = slack_bridge::cli::Cli::parse_from([
            "slack-bridge".as_ref(),
            "-c".as_ref(),
            paths[0].as_os_str(),
            "-r".as_ref(),
            paths[1].as_os_str(),
        ]);
        return slack_bridge::execute(cli).map_err(Into::into);
    }
    since_start();
    let rt = tokio::runtime::Runtime::new()?;
    if args.suite {
        return rt.block_on(suite::run(suite::Options {
            quick: args.quick,
            json: args.json,
            db: args.db,
            backlog: args.events,
        }));
    }
    match args.files {
        Some(mb) => rt.block_on(files(mb, args.db)),
        None => {
            let events = args.events.unwrap_or(DEFAULT_EVENTS);
            let report = rt.block_on(backlog(events, args.db))?;
            report.print();
            Ok(())
        }
    }
}

/// Time since the program started.
fn since_start() -> Duration {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

/// Resident memory of a process in KiB: now (`VmRSS`) and its peak (`VmHWM`).
fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// CPU time (user + system, all threads) a process has used so far, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it start with field 3 (state), so
    // utime (field 14) and stime (field 15) are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

/// `sysconf(_SC_CLK_TCK)`, the unit of `/proc/<pid>/stat`'s times, as `getconf` reports it.
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// `bytes` random bytes in hex.
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the system's random source");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

struct ChildBridge(Child);

impl Drop for ChildBridge {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_until<T>(
    what: &str,
    timeout: Duration,
    f: impl AsyncFnMut() -> Option<T>,
) -> Result<T, Box<dyn Error>> {
    wait_every(what, timeout, Duration::from_millis(250), f).await
}

/// Calls `f` every `interval` until it returns a value.
async fn wait_every<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut f: impl AsyncFnMut() -> Option<T>,
) -> Result<T, Box<dyn Error>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        tokio::time::sleep(interval).await;
    }
}

/// The bridge's database for one run: a file in the run's directory, or a fresh PostgreSQL
/// database dropped by [`BridgeDb::remove`].
struct BridgeDb {
    uri: String,
    /// The server's URL as given and the database created on it.
    postgres: Option<(String, String)>,
}

impl BridgeDb {
    async fn create(kind: DbKind, sqlite_uri: &str) -> Result<BridgeDb, Box<dyn Error>> {
        use sqlx::Connection;
        if kind == DbKind::Sqlite {
            return Ok(BridgeDb {
                uri: sqlite_uri.to_owned(),
                postgres: None,
            });
        }
        let server = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!("bench_{}", random_hex(6));
        let mut conn = sqlx::PgConnection::connect(&server)
            .await
            .map_err(|e| format!("cannot connect to PostgreSQL at TEST_DATABASE_URL: {e}"))?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let mut uri = url::Url::parse(&server)?;
        uri.set_path(&format!("/{name}"));
        say!("created PostgreSQL database {name}");
        Ok(BridgeDb {
            uri: uri.to_string(),
            postgres: Some((server, name)),
        })
    }

    /// Drops the PostgreSQL database (the bridge must have stopped).
    async fn remove(&self) {
        use sqlx::Connection;
        let Some((server, name)) = &self.postgres else {
            return;
        };
        let dropped = async {
            let mut conn = sqlx::PgConnection::connect(server).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await?;
            conn.close().await
        }
        .await;
        if let Err(e) = dropped {
            say!("cannot drop the database {name}: {e}");
        }
    }
}

/// What a run's bridge starts with.
struct Plan {
    channels: usize,
    /// Alice is in every channel besides the bot (else the bot is alone in them).
    alice_in_channels: bool,
    /// People besides Alice, all in one more channel the bot is not in (yet).
    crowd: usize,
    synapse_extra: serde_json::Map<String, serde_json::Value>,
    /// Also register the bare appservice of the baselines with Synapse.
    direct: bool,
    /// Config lines replaced after the config is written, e.g. to turn the backfill off.
    config_edits: &'static [(&'static str, &'static str)],
}

impl Plan {
    fn channels(channels: usize) -> Plan {
        Plan {
            channels,
            alice_in_channels: true,
            crowd: 0,
            synapse_extra: serde_json::Map::new(),
            direct: false,
            config_edits: &[],
        }
    }
}

/// Synapse, the emulator with the plan's channels and the bridge in a child process, every
/// portal room made.
struct Setup {
    dir: tempfile::TempDir,
    emu: Emulator,
    synapse: Synapse,
    you: TestClient,
    alice: String,
    channels: Vec<String>,
    /// The crowd's people and their channel (see [`Plan::crowd`]).
    crowd: Vec<String>,
    crowd_channel: Option<String>,
    db: BridgeDb,
    db_uri: String,
    bridge: ChildBridge,
    pid: u32,
    idle: u64,
    /// From starting the bridge until every portal room existed.
    synced_in: Duration,
    direct: Option<direct::Direct>,
}

impl Setup {
    /// Stops everything and drops the run's database.
    async fn finish(self) {
        let Setup {
            dir,
            emu,
            synapse,
            db,
            bridge,
            ..
        } = self;
        drop(bridge);
        drop(synapse);
        emu.shutdown();
        db.remove().await;
        drop(dir);
    }

    /// The Matrix rooms of the channels' portals, in channel order.
    async fn rooms(&self) -> Result<Vec<String>, Box<dyn Error>> {
        let mut rooms = Vec::new();
        for channel in &self.channels {
            rooms.push(room_of(&self.db_uri, &self.emu.team_id(), channel).await?);
        }
        Ok(rooms)
    }
}

/// How many of the team's portals have a room.
async fn portal_rooms(db_uri: &str, team: &TeamId) -> Option<usize> {
    let store = Store::connect(db_uri, 1).await.ok()?;
    let n = store
        .list_portals(team)
        .await
        .ok()?
        .iter()
        .filter(|p| p.room_id.is_some())
        .count();
    store.close().await;
    Some(n)
}

async fn setup(plan: Plan, db: DbKind) -> Result<Setup, Box<dyn Error>> {
    let dir = tempfile::Builder::new()
        .prefix("slack-bridge-bench-")
        .tempdir()?;
    let mut ws = Workspace::new("T0BENCH001", "Bench");
    let alice = ws.add_user("alice", "Alice");
    let bot = ws.bot_user_id().to_owned();
    let members: Vec<&str> = if plan.alice_in_channels {
        vec![alice.as_str(), bot.as_str()]
    } else {
        vec![bot.as_str()]
    };
    let channels: Vec<String> = (0..plan.channels)
        .map(|i| ws.add_channel(&channel_name(i), false, &members))
        .collect();
    let crowd: Vec<String> = (0..plan.crowd)
        .map(|i| ws.add_user(&format!("user{i:05}"), &format!("User {i:05}")))
        .collect();
    let crowd_channel = (!crowd.is_empty()).then(|| {
        let members: Vec<&str> = crowd.iter().map(String::as_str).collect();
        ws.add_channel("crowd", false, &members)
    });
    ws.set_scopes(&slack_bridge::slack::manifest::bot_scope_names());
    let emu = Emulator::start(ws).await;
    let common::LocalSetup {
        config_path,
        registration_path,
        hs_port,
        db_uri: sqlite_uri,
        ..
    } = common::write_config(dir.path(), SERVER_NAME, &emu, "you")?;
    let bridge_db = BridgeDb::create(db, &sqlite_uri).await?;
    let db_uri = bridge_db.uri.clone();
    let mut config = std::fs::read_to_string(&config_path)?;
    let (uri_line, new_uri_line) = (
        format!("  uri: {sqlite_uri}\n"),
        format!("  uri: {db_uri}\n"),
    );
    for (from, to) in [(uri_line.as_str(), new_uri_line.as_str())]
        .into_iter()
        .chain(plan.config_edits.iter().copied())
    {
        if !config.contains(from) {
            return Err(format!("the bench's config has no line {from:?}").into());
        }
        config = config.replacen(from, to, 1);
    }
    std::fs::write(&config_path, config)?;
    let mut registrations = vec![registration_path.clone()];
    let direct_token = if plan.direct {
        let (path, token) = direct::write_registration(dir.path(), SERVER_NAME)?;
        registrations.push(path);
        Some(token)
    } else {
        None
    };
    let synapse = Synapse::start(SynapseConfig {
        server_name: SERVER_NAME.into(),
        registrations,
        port: Some(hs_port),
        extra_config: plan.synapse_extra,
    })
    .await?;
    let you = synapse
        .register_user("you", "bench-password", false)
        .await?;
    let direct =
        direct_token.map(|token| direct::Direct::new(&synapse.base_url(), SERVER_NAME, &token));

    let started = Instant::now();
    let child = Command::new(std::env::current_exe()?)
        .arg("--as-bridge")
        .arg(&config_path)
        .arg(&registration_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("bridge.log"))?)
        .spawn()?;
    let bridge = ChildBridge(child);
    let pid = bridge.0.id();
    let team: TeamId = emu.team_id().into();
    let want = channels.len();
    wait_until("the portal rooms", Duration::from_secs(900), async || {
        (portal_rooms(&db_uri, &team).await? >= want).then_some(())
    })
    .await?;
    let synced_in = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle, _) = rss_kib(pid).ok_or("cannot read the bridge's memory")?;
    say!(
        "{want} portals up in {:.1} s, bridge idle at {}",
        synced_in.as_secs_f64(),
        mib(idle)
    );
    Ok(Setup {
        dir,
        emu,
        synapse,
        you,
        alice,
        channels,
        crowd,
        crowd_channel,
        db: bridge_db,
        db_uri,
        bridge,
        pid,
        idle,
        synced_in,
        direct,
    })
}

/// The name of the bench's channel `i`.
fn channel_name(i: usize) -> String {
    format!("bench-{i:03}")
}

/// `user` posts `text` in `channel`.
fn post(emu: &Emulator, user: &str, channel: &str, text: &str) -> Result<(), Box<dyn Error>> {
    emu.post_message(user, channel, text)
        .map(drop)
        .map_err(|e| format!("posting in {channel}: {e:?}").into())
}

/// The Matrix room of a channel's portal.
async fn room_of(db_uri: &str, team: &str, channel: &str) -> Result<String, Box<dyn Error>> {
    let store = Store::connect(db_uri, 1).await?;
    let rooms = store.list_portals(&team.into()).await?;
    store.close().await;
    Ok(rooms
        .iter()
        .find(|p| p.channel_id == channel)
        .and_then(|p| p.room_id.as_ref().map(|r| r.to_string()))
        .ok_or("a portal without a room")?)
}

/// The text of message `i` of a run tagged `tag`.
fn text(tag: &str, i: usize) -> String {
    format!("{tag} {i:06}")
}

/// The texts of a run of `n` messages over `rooms` rooms (message `i` in room `i % rooms`)
/// that land in room `room`, in order.
fn texts_of_room(tag: &str, n: usize, rooms: usize, room: usize) -> Vec<String> {
    (room..n).step_by(rooms).map(|i| text(tag, i)).collect()
}

/// The bodies of a room's messages that start with `prefix`, oldest first.
async fn bodies(you: &TestClient, room: &str, prefix: &str) -> Result<Vec<String>, Box<dyn Error>> {
    let mut got = Vec::new();
    let mut from: Option<String> = None;
    loop {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=f&limit=1000{}",
            testkit::enc(room),
            from.as_ref()
                .map(|f| format!("&from={}", testkit::enc(f)))
                .unwrap_or_default()
        );
        let page = you.get(&path).await?;
        for e in page["chunk"].as_array().into_iter().flatten() {
            if let Some(b) = e["content"]["body"].as_str()
                && b.starts_with(prefix)
            {
                got.push(b.to_owned());
            }
        }
        match page["end"].as_str() {
            Some(end) if page["chunk"].as_array().is_some_and(|c| !c.is_empty()) => {
                from = Some(end.to_owned())
            }
            _ => break,
        }
    }
    Ok(got)
}

/// Checks that every message of a run of `n` tagged `tag` over `rooms` arrived once and in
/// order; returns how many did.
async fn check_run(
    you: &TestClient,
    rooms: &[String],
    tag: &str,
    n: usize,
) -> Result<usize, Box<dyn Error>> {
    let mut checked = 0;
    for (ri, room) in rooms.iter().enumerate() {
        let got = bodies(you, room, &format!("{tag} ")).await?;
        let want = texts_of_room(tag, n, rooms.len(), ri);
        if got != want {
            return Err(format!(
                "{room}: {} messages of {tag:?} arrived, {} expected, or out of order",
                got.len(),
                want.len()
            )
            .into());
        }
        checked += got.len();
    }
    Ok(checked)
}

/// What the backlog run measured.
struct BacklogReport {
    events: usize,
    idle: u64,
    queued: u64,
    queued_peak: u64,
    delivering_peak: u64,
    hwm: u64,
    stored_in: Duration,
    delivered_in: Duration,
    checked: usize,
}

impl BacklogReport {
    fn print(&self) {
        let events = self.events;
        println!();
        println!("| backlog of {events} Slack events over {CHANNELS} channels | value |");
        println!("|---|---|");
        println!(
            "| bridge RSS, idle with {CHANNELS} portals | {} |",
            mib(self.idle)
        );
        println!(
            "| bridge RSS, {events} events stored, homeserver down | {} (peak while storing {}) |",
            mib(self.queued),
            mib(self.queued_peak)
        );
        println!(
            "| bridge RSS, peak while delivering | {} (VmHWM over the whole run {}) |",
            mib(self.delivering_peak),
            mib(self.hwm)
        );
        println!(
            "| stored (socket → database) | {:.1} s, {:.0} events/s |",
            self.stored_in.as_secs_f64(),
            events as f64 / self.stored_in.as_secs_f64()
        );
        println!(
            "| delivered once the homeserver was back | {:.1} s, {:.1} events/s |",
            self.delivered_in.as_secs_f64(),
            events as f64 / self.delivered_in.as_secs_f64()
        );
        println!(
            "| arrived once and in order | {} of {events} |",
            self.checked
        );
    }
}

async fn backlog(events: usize, db: DbKind) -> Result<BacklogReport, Box<dyn Error>> {
    let mut s = setup(Plan::channels(CHANNELS), db).await?;
    let (pid, idle) = (s.pid, s.idle);
    s.synapse.stop().await;
    let sent = Instant::now();
    for i in 0..events {
        let channel = &s.channels[i % CHANNELS];
        post(&s.emu, &s.alice, channel, &text("backlog", i))?;
    }
    let db_uri = s.db_uri.clone();
    let pending = async || {
        let store = Store::connect(&db_uri, 1).await.ok()?;
        let d = store.inbox_depths().await.ok()?;
        store.close().await;
        Some(d.slack_pending)
    };
    let mut queued_peak = idle;
    wait_until("the backlog stored", Duration::from_secs(600), async || {
        queued_peak = queued_peak.max(rss_kib(pid)?.0);
        (pending().await? >= events as i64).then_some(())
    })
    .await?;
    let stored_in = sent.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (queued, _) = rss_kib(pid).ok_or("cannot read the bridge's memory")?;
    say!(
        "{events} events stored in {:.1} s with the homeserver down; bridge at {}",
        stored_in.as_secs_f64(),
        mib(queued)
    );

    s.synapse.restart().await?;
    let back = Instant::now();
    let mut delivering_peak = queued;
    wait_until(
        "the backlog delivered",
        Duration::from_secs(7200),
        async || {
            delivering_peak = delivering_peak.max(rss_kib(pid)?.0);
            (pending().await? == 0).then_some(())
        },
    )
    .await?;
    let delivered_in = back.elapsed();
    let (_, hwm) = rss_kib(pid).ok_or("cannot read the bridge's memory")?;

    // Every message arrived once, in order, in each room.
    let rooms = s.rooms().await?;
    for room in &rooms {
        s.you.join(room).await?;
    }
    let checked = check_run(&s.you, &rooms, "backlog", events).await?;
    s.finish().await;
    Ok(BacklogReport {
        events,
        idle,
        queued,
        queued_peak,
        delivering_peak,
        hwm,
        stored_in,
        delivered_in,
        checked,
    })
}

/// Bytes of a file that compress badly and differ from position to position.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Samples the bridge's resident memory until `done` returns a value.
async fn sampled<T>(
    pid: u32,
    what: &str,
    mut done: impl AsyncFnMut() -> Option<T>,
) -> Result<(T, u64, Duration), Box<dyn Error>> {
    let started = Instant::now();
    let mut peak = 0;
    let v = wait_until(what, Duration::from_secs(900), async || {
        peak = peak.max(rss_kib(pid)?.0);
        done().await
    })
    .await?;
    Ok((v, peak, started.elapsed()))
}

async fn files(mb: u64, db: DbKind) -> Result<(), Box<dyn Error>> {
    let len = (mb * 1_000_000) as usize;
    let mut plan = Plan::channels(1);
    plan.synapse_extra
        .insert("max_upload_size".into(), format!("{}M", mb * 2 + 10).into());
    let s = setup(plan, db).await?;
    let (emu, you, pid) = (&s.emu, &s.you, s.pid);
    let channel = &s.channels[0];
    let room = room_of(&s.db_uri, &emu.team_id(), channel).await?;
    you.join(&room).await?;
    let ghost = slack_bridge::ids::ghost_mxid(
        "slack_{userid}",
        SERVER_NAME,
        &emu.team_id().into(),
        &UserId::from(s.alice.as_str()),
    );

    // Slack → Matrix.
    let from_slack = pattern(len);
    emu.share_file(
        &s.alice,
        channel,
        "from-slack.bin",
        from_slack.clone(),
        "application/octet-stream",
    )
    .map_err(|e| format!("{e:?}"))?;
    let (mxc, s2m_peak, s2m_time) = sampled(pid, "the Slack file in Matrix", async || {
        let events = you.messages(&room, 20).await.ok()?;
        events
            .iter()
            .find(|e| e["content"]["msgtype"] == "m.file" && e["sender"] == ghost.as_str())
            .and_then(|e| e["content"]["url"].as_str().map(str::to_owned))
    })
    .await?;
    let (got, _) = you.download(&mxc).await?;
    let s2m_same = got == from_slack;
    drop(got);
    drop(from_slack);

    // Matrix → Slack.
    let from_matrix = pattern(len + 7);
    let up = you
        .upload(
            from_matrix.clone(),
            "application/octet-stream",
            "from-matrix.bin",
        )
        .await?;
    you.send_event(
        &room,
        "m.room.message",
        &serde_json::json!({"msgtype": "m.file", "body": "from-matrix.bin", "url": up,
                            "info": {"size": from_matrix.len()}}),
    )
    .await?;
    let (file, m2s_peak, m2s_time) = sampled(pid, "the Matrix file on Slack", async || {
        let call = emu
            .calls("files.completeUploadExternal")
            .into_iter()
            .next()?;
        let files: serde_json::Value = serde_json::from_str(&call.param("files")?).ok()?;
        files[0]["id"].as_str().map(str::to_owned)
    })
    .await?;
    let m2s_same = emu.file_bytes(&file).is_some_and(|b| b == from_matrix);
    let (_, hwm) = rss_kib(pid).ok_or("cannot read the bridge's memory")?;

    println!();
    println!("| one {mb} MB file each way | value |");
    println!("|---|---|");
    println!("| bridge RSS, idle | {} |", mib(s.idle));
    println!(
        "| Slack → Matrix: peak bridge RSS, time, bytes identical | {}, {:.1} s, {s2m_same} |",
        mib(s2m_peak),
        s2m_time.as_secs_f64()
    );
    println!(
        "| Matrix → Slack: peak bridge RSS, time, bytes identical | {}, {:.1} s, {m2s_same} |",
        mib(m2s_peak),
        m2s_time.as_secs_f64()
    );
    println!("| bridge VmHWM over the whole run | {} |", mib(hwm));
    s.finish().await;
    if !(s2m_same && m2s_same) {
        return Err("a file arrived with other bytes".into());
    }
    Ok(())
}
