//! After a burst, an idle connection does not keep a read buffer the size of its last read
//! (issue 8: +63 KiB of RSS per idle connection after a 2 MB burst). Alone in its test binary,
//! so nothing else moves the process's RSS while it measures.

#[path = "support/client.rs"]
mod client;
#[path = "support/server.rs"]
mod server;
mod support;

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
/// What an idle connection may cost the server, buffers and all.
const PER_CONNECTION: u64 = 40 * 1024;

/// Sends `BURST` bytes and reads the echo back, leaving the connection open.
async fn burst(addr: std::net::SocketAddr) -> TcpStream {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_after_a_burst_give_their_read_buffers_back() {
    with_timeout(Duration::from_secs(120), async {
        let server =
            RunningServer::start(TcpServer::bind("127.0.0.1:0", |_| EchoProtocol::new()).unwrap())
                .await;
        // A few bursts first, so the allocator's and runtime's own growth is in the baseline.
        for _ in 0..WAVE {
            drop(burst(server.addr).await);
        }
        let before = rss_bytes();
        let mut idle = Vec::new();
        for _ in 0..CONNECTIONS / WAVE {
            let wave: Vec<_> = (0..WAVE).map(|_| burst(server.addr)).collect();
            idle.extend(futures_util::future::join_all(wave).await);
        }
        let after = rss_bytes();
        let per = after.saturating_sub(before) / CONNECTIONS as u64;
        eprintln!(
            "{CONNECTIONS} idle connections after a {BURST}-byte echo each: server RSS {} -> {} KiB, {} KiB per connection",
            before >> 10,
            after >> 10,
            per >> 10
        );
        assert!(per <= PER_CONNECTION, "{} KiB per idle connection", per >> 10);
        drop(idle);
        let (report, _) = server.stop().await;
        assert!(report.is_ok(), "{:?}", report.failures);
    })
    .await;
}
