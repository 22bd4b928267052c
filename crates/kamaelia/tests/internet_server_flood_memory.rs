//! Clients that flood an echo server and never read hold a bounded amount of the server's
//! memory each (issue 8 §2 item 4): every box and queue of a connection is bounded in bytes.
//! Alone in its test binary, so nothing else moves the process's RSS while it measures.

#[path = "support/client.rs"]
mod client;
#[path = "support/server.rs"]
mod server;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use client::rss_bytes;
use kamaelia::internet::{EchoProtocol, TcpServer};
use kamaelia_test::{with_timeout, AbortOnDrop};
use server::RunningServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CLIENTS: usize = 20;
/// The bound per connection: five boxes and queues of the 256 KiB default, with slack for the
/// allocator.
const PER_CONNECTION: u64 = 3 * 1024 * 1024 / 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_flood_and_never_read_hold_a_bounded_amount_each() {
    with_timeout(Duration::from_secs(120), async {
        let server =
            RunningServer::start(TcpServer::bind("127.0.0.1:0", |_| EchoProtocol::new()).unwrap())
                .await;
        // One echo first, so the runtime's own allocations are in the baseline.
        let mut warm = TcpStream::connect(server.addr).await.unwrap();
        warm.write_all(b"warm").await.unwrap();
        let mut back = [0u8; 4];
        warm.read_exact(&mut back).await.unwrap();
        drop(warm);
        let before = rss_bytes();

        let pushed = Arc::new(AtomicU64::new(0));
        let chunk: &'static [u8] = &[0x5a; 64 * 1024];
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            let s = TcpStream::connect(server.addr).await.unwrap();
            let pushed = pushed.clone();
            clients.push(AbortOnDrop(tokio::spawn(async move {
                // Never reads: the echo fills the server's queues and then the sockets.
                let (_rd, mut wr) = s.into_split();
                while wr.write_all(chunk).await.is_ok() {
                    pushed.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
            })));
        }
        // Until every client is stuck: nothing moves for half a second (a kernel counter,
        // with no event to wait on).
        let mut last = 0;
        let mut still = 0;
        while still < 5 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = pushed.load(Ordering::Relaxed);
            still = if now == last { still + 1 } else { 0 };
            last = now;
        }
        let after = rss_bytes();
        let per = after.saturating_sub(before) / CLIENTS as u64;
        eprintln!(
            "{CLIENTS} flooding clients pushed {} MiB; server RSS {} -> {} KiB: {} KiB per connection",
            last >> 20,
            before >> 10,
            after >> 10,
            per >> 10
        );
        assert!(
            per <= PER_CONNECTION,
            "{} KiB per flooding connection",
            per >> 10
        );
        drop(clients);
        let (report, _) = server.stop().await;
        assert!(report.is_ok(), "{:?}", report.failures);
    })
    .await;
}
