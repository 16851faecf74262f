//! systemd's service notification protocol (`sd_notify`), for `Type=notify` units: `READY=1`
//! once the startup checks have passed, `STATUS=` lines for `systemctl status`, and
//! `WATCHDOG=1` pings when the unit sets `WatchdogSec=`. Outside systemd (no `NOTIFY_SOCKET`)
//! every call does nothing.
//!
//! The protocol is one datagram per message on the Unix socket named by `NOTIFY_SOCKET`
//! (a path, or `@name` for the abstract namespace), so a few lines of std do it.

use std::{os::unix::net::UnixDatagram, time::Duration};

/// Sends `state` (newline-separated `KEY=value` assignments) to systemd. Returns whether it
/// was sent; failures are logged at debug level only, since a notification is never worth
/// stopping the bridge for.
pub fn send(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    match send_to(&path, state) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %e, "cannot notify systemd");
            false
        }
    }
}

fn send_to(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &addr)?;
            return Ok(());
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = name;
            return Err(std::io::Error::other("abstract sockets need Linux"));
        }
    }
    socket.send_to(state.as_bytes(), path)?;
    Ok(())
}

/// The service is up: its startup checks passed. `status` says what it is doing.
pub fn ready(status: &str) -> bool {
    send(&format!("READY=1\nSTATUS={}", one_line(status)))
}

/// A line for `systemctl status`.
pub fn status(status: &str) -> bool {
    send(&format!("STATUS={}", one_line(status)))
}

/// The service is stopping.
pub fn stopping() -> bool {
    send("STOPPING=1\nSTATUS=shutting down")
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// How often to ping the watchdog: half the interval systemd asked for in `WATCHDOG_USEC`,
/// when that request is meant for this process (`WATCHDOG_PID` absent or ours).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Pings the watchdog from the async runtime for as long as the runtime runs, so a wedged
/// runtime stops the pings and systemd restarts the bridge. Does nothing without
/// `WATCHDOG_USEC`.
pub fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let every = watchdog_interval()?;
    tracing::info!(
        interval_ms = every.as_millis() as u64,
        "pinging the systemd watchdog"
    );
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            send("WATCHDOG=1");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_one_datagram_per_message_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        send_to(path.as_os_str(), "READY=1\nSTATUS=up").unwrap();
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=up");
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        let name = format!("slack-bridge-test-{}", std::process::id());
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        send_to(std::ffi::OsStr::new(&format!("@{name}")), "WATCHDOG=1").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }

    #[test]
    fn status_is_kept_on_one_line() {
        assert_eq!(one_line("a\nb\r"), "a b ");
    }
}
