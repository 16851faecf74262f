//! Child-process plumbing: spawning Synapse so it can never outlive the test binary, and stopping it.
//!
//! Three layers make sure no Synapse is left behind:
//! 1. `Synapse`'s `Drop` (runs on panic unwind too) sends SIGTERM, then SIGKILL, to the process group;
//! 2. each child is the leader of its own process group, so anything it forks is killed with it;
//! 3. `PR_SET_PDEATHSIG(SIGKILL)` makes the kernel kill the child when its parent goes away, which
//!    covers `panic = "abort"`, a SIGKILLed test binary, and statics (the shared instance) that Rust
//!    never drops at exit.
//!
//! The kernel ties the parent-death signal to the *thread* that forked, not to the process. Test
//! harness threads (and tokio blocking-pool threads) end long before the process does, so a child
//! forked from one would be killed at a random moment. All spawns are therefore funnelled through a
//! single spawner thread that lives as long as the process.

// pre_exec, kill(2) and the liveness checks are libc calls; each block says why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

type SpawnReply = mpsc::Sender<io::Result<Child>>;

/// Spawns `cmd` from the process-lifetime spawner thread, in a new process group, with
/// `PR_SET_PDEATHSIG(SIGKILL)`.
pub(crate) fn spawn_guarded(mut cmd: Command) -> io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    cmd.process_group(0);
    // SAFETY: the hook only calls async-signal-safe functions (prctl, getppid) and allocates
    // nothing, as required between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl; then nobody would ever signal us.
            if libc::getppid() != parent {
                return Err(io::Error::other("test process exited while spawning"));
            }
            Ok(())
        });
    }

    static SPAWNER: OnceLock<Mutex<mpsc::Sender<(Command, SpawnReply)>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<(Command, SpawnReply)>();
        std::thread::Builder::new()
            .name("testkit-spawner".into())
            .spawn(move || {
                // The static keeps `tx` alive, so this loop (and the thread) lasts until exit.
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("testkit: cannot start the process spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("testkit spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("testkit spawner thread dropped the request"))?
}

/// Sends `signal` to the whole process group led by `child`. Errors (group already gone) are
/// irrelevant to callers, which always check the child's status afterwards.
pub(crate) fn signal_group(child: &Child, signal: libc::c_int) {
    let pgid = child.id() as libc::pid_t;
    // SAFETY: plain syscall; a negative pid addresses the process group we created in spawn_guarded.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Blocking stop: SIGTERM, wait up to `grace`, then SIGKILL. Used from `Drop`, where nothing async
/// is available. Returns the exit status if it could be collected.
pub(crate) fn stop_blocking(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        // The leader is gone, but make sure no straggler of its group survives.
        signal_group(child, libc::SIGKILL);
        return Some(status);
    }
    signal_group(child, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            signal_group(child, libc::SIGKILL);
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    signal_group(child, libc::SIGKILL);
    child.wait().ok()
}

/// Async flavour of [`stop_blocking`], so a test's runtime keeps serving (e.g. a mock appservice)
/// while Synapse shuts down gracefully.
pub(crate) async fn stop_async(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        signal_group(child, libc::SIGKILL);
        return Some(status);
    }
    signal_group(child, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            signal_group(child, libc::SIGKILL);
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    signal_group(child, libc::SIGKILL);
    // After SIGKILL the reap is immediate; a short blocking wait is fine.
    child.wait().ok()
}

/// How a homeserver's start ended.
pub(crate) enum Startup {
    /// `GET url` answered 2xx.
    Serving,
    /// The process exited first.
    Exited(ExitStatus),
    /// Neither within `timeout`; the process was stopped.
    TimedOut,
}

/// Polls `GET url` (the homeserver's `/_matrix/client/versions`) every 50 ms until it answers
/// 2xx, the child exits, or `timeout` passes (then the child is stopped).
pub(crate) async fn wait_until_serving(
    child: &mut Child,
    http: &reqwest::Client,
    url: &str,
    timeout: Duration,
    grace: Duration,
) -> Startup {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Startup::Exited(status);
        }
        let probe = http.get(url).timeout(Duration::from_secs(2)).send().await;
        if matches!(&probe, Ok(r) if r.status().is_success()) {
            return Startup::Serving;
        }
        if started.elapsed() > timeout {
            stop_async(child, grace).await;
            return Startup::TimedOut;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// True if a process with this pid exists (used to find fixture dirs of dead test runs).
pub(crate) fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Cryptographically random bytes from the kernel, for secrets and the signing-key seed.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    let mut filled = 0;
    while filled < N {
        // SAFETY: writes at most N - filled bytes into our buffer.
        let rc = unsafe {
            libc::getrandom(
                buf[filled..].as_mut_ptr().cast(),
                N - filled,
                0, // blocking until the pool is initialised, which it always is after boot
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            panic!("testkit: getrandom failed: {err}");
        }
        filled += rc as usize;
    }
    buf
}

/// Lowercase hex of random bytes.
pub(crate) fn random_hex<const N: usize>() -> String {
    random_bytes::<N>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
