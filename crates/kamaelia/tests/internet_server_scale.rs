//! Scale: 2,000 concurrent clients against one TcpServer, each echoing a message while all the
//! others are connected: once as plain tokio clients, once as 2,000 `TcpClient` components in
//! the same scheduler as the server.
//!
//! That needs over 4,000 descriptors (both ends of every connection live in this process). If
//! the soft RLIMIT_NOFILE is lower, the test runs itself again in a child process under
//! `ulimit -S -n`, which may raise the soft limit up to the hard one (`unsafe_code` is
//! forbidden, so it cannot call `setrlimit` itself).

#[path = "support/server.rs"]
mod server;

use std::sync::Arc;
use std::time::Duration;

use axon::Control;
use bytes::Bytes;
use kamaelia::internet::{EchoProtocol, TcpServer};
use kamaelia::TcpClient;
use kamaelia_test::with_timeout;
use server::RunningServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

const CLIENTS: usize = 2_000;
/// Both ends of every connection, plus the runtime's and the test harness's own.
const DESCRIPTORS_NEEDED: u64 = 2 * CLIENTS as u64 + 512;
const TEST_NAME: &str = "two_thousand_concurrent_clients_each_get_their_echo";
/// Set in the child process that runs with the raised limit.
const CHILD_GUARD: &str = "KAMAELIA_SCALE_TEST_CHILD";

#[test]
fn two_thousand_concurrent_clients_each_get_their_echo() {
    if needs_rerun(TEST_NAME) {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(with_timeout(Duration::from_secs(30), scale()));
}

/// 2,000 `TcpClient`s and the server in one scheduler: each sends its message, finishes
/// (half-close, `wait_for_server_close`), and gets exactly its own echo back before the server
/// closes; every client sends exactly one final message and nothing fails.
#[test]
fn two_thousand_tcp_clients_each_get_their_echo() {
    if needs_rerun("two_thousand_tcp_clients_each_get_their_echo") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(with_timeout(Duration::from_secs(60), async {
        let server = TcpServer::bind("127.0.0.1:0", |_| EchoProtocol::new()).unwrap();
        let port = server.local_addr().port();
        let sched = axon::Scheduler::new();
        let mut clients = Vec::new();
        let report = sched
            .run(async {
                let server = server.activate();
                for i in 0..CLIENTS {
                    let c: axon::Component = TcpClient::new("127.0.0.1", port)
                        .wait_for_server_close(true)
                        .into();
                    let feed = axon::Outbox::<Bytes>::standalone("feed");
                    let stop = axon::Outbox::<Control>::standalone("stop");
                    let out = axon::Inbox::<Bytes>::standalone("out", 16);
                    let signal = axon::Inbox::<Control>::standalone("signal", 16);
                    axon::link_refs(&feed.boxref(), &c.boxref("inbox").unwrap()).unwrap();
                    axon::link_refs(&stop.boxref(), &c.boxref("control").unwrap()).unwrap();
                    axon::link_refs(&c.boxref("outbox").unwrap(), &out.boxref()).unwrap();
                    axon::link_refs(&c.boxref("signal").unwrap(), &signal.boxref()).unwrap();
                    feed.send(Bytes::from(format!("hello from client {i}\n")))
                        .await
                        .unwrap();
                    stop.send(Control::producer_finished()).await.unwrap();
                    let handle = c.activate();
                    clients.push((i, handle, out, signal));
                }
                for (_, handle, _, _) in &clients {
                    handle.join().await;
                }
                server.stop();
            })
            .await;
        assert!(report.is_ok(), "{:?}", report.failures);
        for (i, _, out, signal) in &clients {
            let mut got = Vec::new();
            while let Some(b) = out.try_recv() {
                got.extend_from_slice(&b);
            }
            assert_eq!(
                got,
                format!("hello from client {i}\n").as_bytes(),
                "client {i}"
            );
            let msgs: Vec<Control> = std::iter::from_fn(|| signal.try_recv()).collect();
            let finals = msgs.iter().filter(|m| m.is_final()).count();
            assert_eq!(finals, 1, "client {i}: {msgs:?}");
            assert!(
                !msgs.iter().any(|m| matches!(m, Control::Error(_))),
                "client {i}: {msgs:?}"
            );
        }
    }));
}

/// True if this test was re-run in a child with a raised descriptor limit (and passed there).
fn needs_rerun(test: &str) -> bool {
    if let Some((soft, hard)) = descriptor_limits() {
        if soft < DESCRIPTORS_NEEDED {
            assert!(
                std::env::var_os(CHILD_GUARD).is_none(),
                "the soft descriptor limit is still {soft} after raising it"
            );
            assert!(
                hard >= DESCRIPTORS_NEEDED,
                "this test needs {DESCRIPTORS_NEEDED} descriptors; the hard limit is {hard}"
            );
            rerun_with_limit(test, DESCRIPTORS_NEEDED);
            return true;
        }
    }
    false
}

async fn scale() {
    let server = TcpServer::bind("127.0.0.1:0", |_| EchoProtocol::new()).unwrap();
    let running = RunningServer::start(server).await;
    let addr = running.addr;
    // Every client holds its connection open until all have their echo and the test has
    // looked at the server.
    let all_echoed = Arc::new(Barrier::new(CLIENTS + 1));
    let close_now = Arc::new(Barrier::new(CLIENTS + 1));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let all_echoed = Arc::clone(&all_echoed);
            let close_now = Arc::clone(&close_now);
            tokio::spawn(async move {
                let msg = format!("hello from client {i}\n");
                let mut c = TcpStream::connect(addr).await.map_err(|e| (i, e))?;
                c.write_all(msg.as_bytes()).await.map_err(|e| (i, e))?;
                let mut back = vec![0u8; msg.len()];
                c.read_exact(&mut back).await.map_err(|e| (i, e))?;
                assert_eq!(back, msg.as_bytes(), "client {i} got another's echo");
                all_echoed.wait().await;
                close_now.wait().await;
                c.shutdown().await.map_err(|e| (i, e))?;
                let mut rest = Vec::new();
                c.read_to_end(&mut rest).await.map_err(|e| (i, e))?;
                assert!(
                    rest.is_empty(),
                    "client {i}: {} bytes after its echo",
                    rest.len()
                );
                Ok::<(), (usize, std::io::Error)>(())
            })
        })
        .collect();
    all_echoed.wait().await;
    // Every connection is open at once: the server, and a CSA and a protocol per client.
    assert_eq!(running.sched.live(), 1 + 2 * CLIENTS);
    close_now.wait().await;
    let mut failed = Vec::new();
    for c in clients {
        if let Err((i, e)) = c.await.unwrap() {
            failed.push(format!("client {i}: {e}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} clients failed: {failed:?}",
        failed.len()
    );
    running.wait_live(1).await;
    let (report, rest) = running.stop().await;
    assert!(report.is_ok(), "{:?}", report.failures);
    assert_eq!(report.components, 1 + 2 * CLIENTS);
    assert_eq!(
        rest.len(),
        1,
        "no connection errors expected: {:?}",
        &rest[..rest.len().min(5)]
    );
}

/// The soft and hard RLIMIT_NOFILE from `/proc/self/limits`; `None` where that file does not
/// exist. "unlimited" reads as `u64::MAX`.
fn descriptor_limits() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut fields = line["Max open files".len()..].split_whitespace();
    let parse = |f: Option<&str>| match f? {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    };
    Some((parse(fields.next())?, parse(fields.next())?))
}

/// Runs this test alone in a child process whose soft descriptor limit is `limit`, and checks
/// that it passed.
fn rerun_with_limit(test: &str, limit: u64) {
    let exe = std::env::current_exe().unwrap();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -S -n "$1" && shift && exec "$@""#)
        .arg("sh")
        .arg(limit.to_string())
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_GUARD, "1")
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the test under a raised descriptor limit failed: {status}"
    );
}
