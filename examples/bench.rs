//! Benchmarks of the bridge against a real Synapse and the Slack emulator, on this machine.
//!
//! ```sh
//! cargo run --release --example bench                    # the backlog run, 20,000 events
//! cargo run --release --example bench -- --events 2000   # a shorter one
//! cargo run --release --example bench -- --files 200     # a 200 MB file each way
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

mod common;

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
use testkit::{Synapse, SynapseConfig};

const SERVER_NAME: &str = "bench.local";
const CHANNELS: usize = 10;

#[derive(Parser)]
struct Args {
    /// Slack messages sent while the homeserver is down.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Instead of the backlog: move one file of this many MB each way.
    #[arg(long)]
    files: Option<u64>,
    /// Internal: run the bridge with this config (the child process).
    #[arg(long, num_args = 2, value_names = ["CONFIG", "REGISTRATION"])]
    as_bridge: Option<Vec<PathBuf>>,
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
    let rt = tokio::runtime::Runtime::new()?;
    match args.files {
        Some(mb) => rt.block_on(files(mb)),
        None => rt.block_on(backlog(args.events)),
    }
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
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Synapse, the emulator with `channels` channels and the bridge in a child process, every
/// portal room made.
struct Setup {
    dir: tempfile::TempDir,
    emu: Emulator,
    synapse: Synapse,
    you: testkit::TestClient,
    alice: String,
    channels: Vec<String>,
    db_uri: String,
    bridge: ChildBridge,
    pid: u32,
    idle: u64,
}

async fn setup(
    channels: usize,
    synapse_extra: serde_json::Map<String, serde_json::Value>,
) -> Result<Setup, Box<dyn Error>> {
    let dir = tempfile::Builder::new()
        .prefix("slack-bridge-bench-")
        .tempdir()?;
    let mut ws = Workspace::new("T0BENCH001", "Bench");
    let alice = ws.add_user("alice", "Alice");
    let bot = ws.bot_user_id().to_owned();
    let channels: Vec<String> = (0..channels)
        .map(|i| ws.add_channel(&format!("bench-{i}"), false, &[&alice, &bot]))
        .collect();
    ws.set_scopes(&slack_bridge::slack::manifest::bot_scope_names());
    let emu = Emulator::start(ws).await;
    let common::LocalSetup {
        config_path,
        registration_path,
        hs_port,
        db_uri,
        ..
    } = common::write_config(dir.path(), SERVER_NAME, &emu, "you")?;
    let synapse = Synapse::start(SynapseConfig {
        server_name: SERVER_NAME.into(),
        registrations: vec![registration_path.clone()],
        port: Some(hs_port),
        extra_config: synapse_extra,
    })
    .await?;
    let you = synapse
        .register_user("you", "bench-password", false)
        .await?;

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
    let portals = async || {
        let store = Store::connect(&db_uri, 1).await.ok()?;
        let n = store
            .list_portals(&team)
            .await
            .ok()?
            .iter()
            .filter(|p| p.room_id.is_some())
            .count();
        store.close().await;
        Some(n)
    };
    wait_until("the portal rooms", Duration::from_secs(300), async || {
        (portals().await? >= want).then_some(())
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle, _) = rss_kib(pid).ok_or("cannot read the bridge's memory")?;
    eprintln!("bench: {want} portals up, bridge idle at {}", mib(idle));
    Ok(Setup {
        dir,
        emu,
        synapse,
        you,
        alice,
        channels,
        db_uri,
        bridge,
        pid,
        idle,
    })
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

async fn backlog(events: usize) -> Result<(), Box<dyn Error>> {
    let Setup {
        dir,
        emu,
        mut synapse,
        you,
        alice,
        channels,
        db_uri,
        bridge,
        pid,
        idle,
    } = setup(CHANNELS, serde_json::Map::new()).await?;
    let team = emu.team_id();
    synapse.stop().await;
    let sent = Instant::now();
    for i in 0..events {
        let channel = &channels[i % CHANNELS];
        emu.post_message(&alice, channel, &format!("backlog {i:06}"))
            .map_err(|e| format!("{e:?}"))?;
    }
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
    eprintln!(
        "bench: {events} events stored in {:.1} s with the homeserver down; bridge at {}",
        stored_in.as_secs_f64(),
        mib(queued)
    );

    synapse.restart().await?;
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
    let mut checked = 0;
    for (ci, channel) in channels.iter().enumerate() {
        let room = room_of(&db_uri, &team, channel).await?;
        you.join(&room).await?;
        let mut got = Vec::new();
        let mut from: Option<String> = None;
        loop {
            let path = format!(
                "/_matrix/client/v3/rooms/{}/messages?dir=f&limit=1000{}",
                testkit::enc(&room),
                from.as_ref()
                    .map(|f| format!("&from={}", testkit::enc(f)))
                    .unwrap_or_default()
            );
            let page = you.get(&path).await?;
            for e in page["chunk"].as_array().into_iter().flatten() {
                if let Some(b) = e["content"]["body"].as_str()
                    && b.starts_with("backlog ")
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
        let want: Vec<String> = (ci..events)
            .step_by(CHANNELS)
            .map(|i| format!("backlog {i:06}"))
            .collect();
        if got != want {
            return Err(format!(
                "{channel}: {} messages arrived, {} expected, or out of order",
                got.len(),
                want.len()
            )
            .into());
        }
        checked += got.len();
    }
    println!();
    println!("| backlog of {events} Slack events over {CHANNELS} channels | value |");
    println!("|---|---|");
    println!(
        "| bridge RSS, idle with {CHANNELS} portals | {} |",
        mib(idle)
    );
    println!(
        "| bridge RSS, {events} events stored, homeserver down | {} (peak while storing {}) |",
        mib(queued),
        mib(queued_peak)
    );
    println!(
        "| bridge RSS, peak while delivering | {} (VmHWM over the whole run {}) |",
        mib(delivering_peak),
        mib(hwm)
    );
    println!(
        "| stored (socket → database) | {:.1} s, {:.0} events/s |",
        stored_in.as_secs_f64(),
        events as f64 / stored_in.as_secs_f64()
    );
    println!(
        "| delivered once the homeserver was back | {:.1} s, {:.1} events/s |",
        delivered_in.as_secs_f64(),
        events as f64 / delivered_in.as_secs_f64()
    );
    println!("| arrived once and in order | {checked} of {events} |");
    drop(bridge);
    drop(synapse);
    emu.shutdown();
    drop(dir);
    Ok(())
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

async fn files(mb: u64) -> Result<(), Box<dyn Error>> {
    let len = (mb * 1_000_000) as usize;
    let mut extra = serde_json::Map::new();
    extra.insert("max_upload_size".into(), format!("{}M", mb * 2 + 10).into());
    let Setup {
        dir,
        emu,
        synapse,
        you,
        alice,
        channels,
        db_uri,
        bridge,
        pid,
        idle,
    } = setup(1, extra).await?;
    let channel = &channels[0];
    let room = room_of(&db_uri, &emu.team_id(), channel).await?;
    you.join(&room).await?;
    let ghost = slack_bridge::ids::ghost_mxid(
        "slack_{userid}",
        SERVER_NAME,
        &emu.team_id().into(),
        &UserId::from(alice.as_str()),
    );

    // Slack → Matrix.
    let from_slack = pattern(len);
    emu.share_file(
        &alice,
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
    println!("| bridge RSS, idle | {} |", mib(idle));
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
    drop(bridge);
    drop(synapse);
    emu.shutdown();
    drop(dir);
    if !(s2m_same && m2s_same) {
        return Err("a file arrived with other bytes".into());
    }
    Ok(())
}
