//! Scale: 2,000 concurrent clients against one TcpServer, each echoing a message while all the
//! others are connected.
//!
//! That needs over 4,000 descriptors (both ends of every connection live in this process). If
//! the soft RLIMIT_NOFILE is lower, the test runs itself again in a child process under
//! `ulimit -S -n`, which may raise the soft limit up to the hard one (`unsafe_code` is
//! forbidden, so it cannot call `setrlimit` itself).

#[path = "support/server.rs"]
mod server;
mod support;

use std::sync::Arc;
use std::time::Duration;

use kamaelia::internet::{EchoProtocol, TcpServer};
use server::RunningServer;
use support::with_timeout;
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
            rerun_with_limit(DESCRIPTORS_NEEDED);
            return;
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(with_timeout(Duration::from_secs(30), scale()));
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
fn rerun_with_limit(limit: u64) {
    let exe = std::env::current_exe().unwrap();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -S -n "$1" && shift && exec "$@""#)
        .arg("sh")
        .arg(limit.to_string())
        .arg(exe)
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_GUARD, "1")
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the test under a raised descriptor limit failed: {status}"
    );
}
