//! The appservice listener faces a network: slow, large and many clients cannot hold it.
//! The bridge binary runs next to a real Synapse with small limits, and raw TCP clients do
//! what a hostile or broken client would.

mod support;

use std::time::{Duration, Instant};

use support::{bridge::Env, process::BridgeProcess};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The bridge with `max_connections: 32`, `header_timeout: 2s`, `request_timeout: 4s`, and
/// the operator's endpoints on a listener of their own.
async fn bridge() -> (Env, BridgeProcess, u16, String) {
    let env = Env::start(testkit::HomeserverKind::Synapse).await;
    let ops_port = support::bridge::restartable_port();
    env.edit_config("    header_timeout: 10s", "    header_timeout: 2s");
    env.edit_config("    request_timeout: 60s", "    request_timeout: 4s");
    env.edit_config("    max_connections: 256", "    max_connections: 32");
    env.edit_config(
        "  # listen: 127.0.0.1:9110",
        &format!("  listen: 127.0.0.1:{ops_port}"),
    );
    let hs_token = env
        .config()
        .appservice
        .hs_token
        .unwrap()
        .expose()
        .to_owned();
    // At trace level for every crate, so the hs_token check below covers hyper and axum too.
    let bridge = BridgeProcess::start_logging(&env, "trace").await;
    (env, bridge, ops_port, hs_token)
}

/// Sends `request` on a new connection and reads until the server closes it.
async fn exchange(port: u16, request: &[u8]) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(request).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: bridge\r\nConnection: close\r\n\r\n").into_bytes()
}

fn status(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"))
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/<pid>/fd (Linux)")
        .count()
}

/// Headers dribbled a byte a second are cut off after `header_timeout`, while the listener
/// keeps serving everyone else; 40 such clients (more than `max_connections`) at once do not
/// lock it up for longer than that either.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_clients_are_cut_off() {
    let (env, bridge, _, _) = bridge().await;
    let port = env.as_port;
    let request = get("/health");

    let dribble = |request: Vec<u8>| async move {
        let started = Instant::now();
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        for (sent, byte) in request.iter().enumerate() {
            if s.write_all(&[*byte]).await.is_err() {
                return (sent, started.elapsed());
            }
            // Closed by the server: a read returns at once with 0 bytes (or an error).
            let mut buf = [0u8; 256];
            if let Ok(r) = tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
                let n = r.unwrap_or(0);
                assert_eq!(
                    n,
                    0,
                    "the server answered a request it never got whole: {:?}",
                    String::from_utf8_lossy(&buf[..n])
                );
                return (sent + 1, started.elapsed());
            }
        }
        (request.len(), started.elapsed())
    };

    let one = tokio::spawn(dribble(request.clone()));
    // While it dribbles, a normal client is served.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ok = exchange(port, &request).await.unwrap();
    assert_eq!(status(&ok), 200, "{ok}");
    let (sent, took) = one.await.unwrap();
    assert!(
        sent < request.len(),
        "a client sending its headers at a byte a second was let finish ({sent} bytes, {took:?})"
    );

    let many: Vec<_> = (0..40)
        .map(|_| tokio::spawn(dribble(request.clone())))
        .collect();
    for task in many {
        let (sent, took) = task.await.unwrap();
        assert!(
            sent < request.len(),
            "a slow client held on ({sent} bytes, {took:?})"
        );
    }
    let ok = exchange(port, &request).await.unwrap();
    assert_eq!(status(&ok), 200, "{ok}");
    let log = bridge.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

/// 1,000 clients at once are all answered, while the bridge's open descriptors stay near
/// `max_connections` (the rest wait in the kernel's queue).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_requests_do_not_exhaust_descriptors() {
    let (env, bridge, _, _) = bridge().await;
    let port = env.as_port;
    let pid = bridge.pid();
    let before = open_descriptors(pid);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut most = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                most = most.max(open_descriptors(pid));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            most
        })
    };
    let clients: Vec<_> = (0..1000)
        .map(|_| tokio::spawn(async move { exchange(port, &get("/health")).await }))
        .collect();
    let mut answered = 0;
    let mut failures = Vec::new();
    for c in clients {
        match c.await.unwrap() {
            Ok(r) if r.starts_with("HTTP/1.1 200") => answered += 1,
            other => failures.push(format!("{other:?}")),
        }
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let most = watcher.await.unwrap();
    assert_eq!(
        answered,
        1000,
        "{} failed, e.g. {:?}\n{}",
        failures.len(),
        failures.first(),
        bridge.log_text()
    );
    assert!(
        most <= before + 32 + 16,
        "open descriptors rose from {before} to {most} with max_connections 32"
    );
    println!("descriptors: {before} before, at most {most} during 1,000 concurrent requests");
}

/// A body larger than `max_body_bytes` is refused before it is read: a declared 100 MB is
/// answered 413 after the headers, and one without a length is cut off at the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_huge_body_is_refused_unread() {
    let (env, bridge, _, hs_token) = bridge().await;
    let port = env.as_port;
    let head = |framing: &str| {
        format!(
            "PUT /_matrix/app/v1/transactions/huge HTTP/1.1\r\nHost: bridge\r\nAuthorization: Bearer {hs_token}\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
        )
    };

    // Declared: only the headers and a first 64 KiB are sent before the answer is read.
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(head("Content-Length: 104857600").as_bytes())
        .await
        .unwrap();
    s.write_all(&vec![b' '; 64 * 1024]).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out))
        .await
        .expect("an answer before the body was sent")
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert_eq!(status(&out), 413, "{out}");
    assert!(out.contains("M_TOO_LARGE"), "{out}");

    // Chunked: the writer streams up to 100 MB while the reader waits for the answer.
    let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut r, mut w) = s.into_split();
    let header = head("Transfer-Encoding: chunked");
    let writer = tokio::spawn(async move {
        w.write_all(header.as_bytes()).await?;
        let chunk = format!("100000\r\n{}\r\n", " ".repeat(0x100000));
        let mut sent = 0usize;
        for _ in 0..100 {
            w.write_all(chunk.as_bytes()).await?;
            sent += 0x100000;
        }
        Ok::<usize, std::io::Error>(sent)
    });
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), r.read_to_end(&mut out))
        .await
        .expect("an answer")
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert_eq!(status(&out), 413, "{out}");
    let written = writer.await.unwrap();
    assert!(written.is_err(), "all 100 MB were taken in: {written:?}");

    // Neither was stored; the listener serves on.
    let ok = exchange(port, &get("/health")).await.unwrap();
    assert_eq!(status(&ok), 200, "{ok}");
    assert!(!bridge.log_text().contains("transaction stored"));
}

/// A request whose body trickles in for longer than `request_timeout` is answered 408.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_that_takes_too_long_gets_408() {
    let (env, _bridge, _, hs_token) = bridge().await;
    let body = br#"{"events":[]}"#;
    let mut s = TcpStream::connect(("127.0.0.1", env.as_port))
        .await
        .unwrap();
    s.write_all(
        format!(
            "PUT /_matrix/app/v1/transactions/slow HTTP/1.1\r\nHost: bridge\r\nAuthorization: Bearer {hs_token}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    for byte in body {
        if s.write_all(&[*byte]).await.is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            answer.extend_from_slice(&buf[..n]);
            break;
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(
        status(&answer),
        408,
        "{answer} after {:?}",
        started.elapsed()
    );
}

/// With `metrics.listen`, `/metrics` and `/ready` move to their own address; the appservice
/// port keeps `/health` and answers the rest with a Matrix 404 that names nothing internal.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_operator_endpoints_move_to_metrics_listen() {
    let (env, bridge, ops, hs_token) = bridge().await;
    let asp = env.as_port;
    for (port, path, want) in [
        (ops, "/metrics", 200),
        (ops, "/ready", 200),
        (ops, "/health", 200),
        (asp, "/health", 200),
        (asp, "/metrics", 404),
        (asp, "/ready", 404),
        (ops, "/_matrix/app/v1/ping", 404),
    ] {
        let r = exchange(port, &get(path)).await.unwrap();
        assert_eq!(status(&r), want, "GET {path} on {port}: {r}");
        if want == 404 {
            assert!(r.contains("M_UNRECOGNIZED"), "{r}");
        }
    }
    let metrics = exchange(ops, &get("/metrics")).await.unwrap();
    assert!(metrics.contains("# EOF"), "{metrics}");
    // Wrong method, unknown path: Matrix errors, nothing about the server inside.
    for (port, request) in [
        (asp, get("/_matrix/app/v1/transactions/1")),
        (asp, get("/../../etc/passwd")),
        (
            ops,
            b"DELETE /metrics HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".to_vec(),
        ),
    ] {
        let r = exchange(port, &request).await.unwrap();
        let body = r.split("\r\n\r\n").nth(1).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{r}"));
        assert_eq!(v["errcode"], "M_UNRECOGNIZED", "{r}");
        for internal in ["axum", "hyper", "tokio", "src/", "panicked"] {
            assert!(!r.to_lowercase().contains(internal), "{internal} in {r}");
        }
    }
    // The hs_token, in the query as tuwunel sends it, is accepted and never logged.
    let r = exchange(
        asp,
        format!(
            "POST /_matrix/app/v1/ping?access_token={hs_token} HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(status(&r), 200, "{r}");
    let log = bridge.log_text();
    assert!(
        !log.contains(&hs_token),
        "the hs_token is in the log:\n{log}"
    );
}
