//! After a burst, an idle connection does not keep a read buffer the size of its last read
//! (issue 8: +63 KiB of RSS per idle connection after a 2 MB burst): a second after its last
//! read it lets go of it. Alone in its test binary, so nothing else moves the process's RSS
//! while it measures.
//!
//! The allocator keeps what is freed, so RSS does not fall when the buffers are let go; it
//! shows in the next connections instead, which reuse that memory. A second set of connections
//! bursting while the first set idles costs (almost) nothing more when the first set's buffers
//! were let go, and one buffer each more when they were kept.

#[path = "support/client.rs"]
mod client;
#[path = "support/server.rs"]
mod server;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use client::rss_bytes;
use kamaelia::internet::{EchoProtocol, TcpServer};
use server::RunningServer;
use support::with_timeout;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 100;
const BURST: usize = 2_000_000;
const WAVE: usize = 10;
/// What each connection of the second set may add, buffers and all.
const PER_CONNECTION: u64 = 40 * 1024;
/// Longer than the CSA's quiet period (one second).
const QUIET: Duration = Duration::from_millis(1500);

/// Sends `BURST` bytes and reads the echo back, leaving the connection open.
async fn burst(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let data = vec![0x33u8; BURST];
    let write = async move {
        wr.write_all(&data).await.unwrap();
        wr
    };
    let read = async move {
        let mut back = vec![0u8; BURST];
        rd.read_exact(&mut back).await.unwrap();
        rd
    };
    let (wr, rd) = tokio::join!(write, read);
    rd.reunite(wr).unwrap()
}

/// `CONNECTIONS` connections, each after its burst, in waves of `WAVE`.
async fn bursts(addr: SocketAddr) -> Vec<TcpStream> {
    let mut idle = Vec::new();
    for _ in 0..CONNECTIONS / WAVE {
        let wave: Vec<_> = (0..WAVE).map(|_| burst(addr)).collect();
        idle.extend(futures_util::future::join_all(wave).await);
    }
    idle
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_after_a_burst_give_their_read_buffers_back() {
    with_timeout(Duration::from_secs(120), async {
        let server =
            RunningServer::start(TcpServer::bind("127.0.0.1:0", |_| EchoProtocol::new()).unwrap())
                .await;
        let start = rss_bytes();
        let first = bursts(server.addr).await;
        let after_first = rss_bytes();
        // The quiet period is the subject: there is no event to wait for.
        tokio::time::sleep(QUIET).await;
        let quiet = rss_bytes();
        let second = bursts(server.addr).await;
        let after_second = rss_bytes();
        let per = after_second.saturating_sub(quiet) / CONNECTIONS as u64;
        eprintln!(
            "server RSS {} KiB; {} KiB after {CONNECTIONS} connections echoed {BURST} bytes each; {} KiB once they were quiet; {} KiB after {CONNECTIONS} more: {} KiB per connection of the second set",
            start >> 10,
            after_first >> 10,
            quiet >> 10,
            after_second >> 10,
            per >> 10
        );
        assert!(per <= PER_CONNECTION, "{} KiB per connection", per >> 10);
        drop((first, second));
        let (report, _) = server.stop().await;
        assert!(report.is_ok(), "{:?}", report.failures);
    })
    .await;
}
