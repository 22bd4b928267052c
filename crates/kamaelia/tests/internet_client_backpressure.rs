//! Backpressure both ways keeps memory bounded: a producer offering a TcpClient far more than
//! a slow server reads is held back, and a server sending faster than the client's consumer
//! takes is held back by TCP once the client stops reading. Memory is this process's VmRSS;
//! the tests in this file run one at a time so they do not measure each other.

#[path = "support/client.rs"]
mod client;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axon::Control;
use bytes::Bytes;
use client::{rss_bytes, start, start_with};
use kamaelia::TcpClient;
use kamaelia_test::with_timeout;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The memory bound on the whole test process.
const RSS_LIMIT: u64 = 300 << 20;
/// The most that may be in flight between producer and consumer: inboxes (64 messages of
/// 64 KiB each side), the CSA's write batch, and the kernel's socket buffers, with room.
const IN_FLIGHT_LIMIT: u64 = 64 << 20;
const CHUNK: usize = 64 * 1024;

/// Samples RSS every 10 ms while `fut` runs; returns its output and the largest sample.
async fn max_rss_during<F: std::future::Future>(fut: F) -> (F::Output, u64) {
    let mut max = rss_bytes();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tokio::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => return (out, max.max(rss_bytes())),
            _ = tick.tick() => max = max.max(rss_bytes()),
        }
    }
}

/// A producer offers 1 GiB in fresh 64 KiB messages to a server that pauses 1 ms after every
/// 256 KiB it reads. The whole GiB goes through, and at no time is the producer more than the
/// in-flight bound ahead of the reader, so it was held back all along; RSS stays under the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_offering_a_gigabyte_to_a_slow_server_is_held_back() {
    let _serial = SERIAL.lock().await;
    with_timeout(Duration::from_secs(60), async {
        const OFFERED: u64 = 1 << 30;
        const READ_UNTIL: u64 = OFFERED;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let read = Arc::new(AtomicU64::new(0));
        let sent = Arc::new(AtomicU64::new(0));
        let worst = Arc::new(AtomicU64::new(0));
        let server = {
            let (read, sent, worst) = (read.clone(), sent.clone(), worst.clone());
            tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 256 * 1024];
                while read.load(Ordering::SeqCst) < READ_UNTIL {
                    let n = s.read(&mut buf).await.unwrap();
                    assert!(n > 0);
                    let total = read.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                    let ahead = sent.load(Ordering::SeqCst).saturating_sub(total);
                    worst.fetch_max(ahead, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                // Kept open: closing with unread data would reset the connection.
                s
            })
        };
        let c = start(TcpClient::new("127.0.0.1", port)).await;
        let input = c.input.clone();
        let producer = {
            let sent = sent.clone();
            tokio::spawn(async move {
                while sent.load(Ordering::SeqCst) < OFFERED {
                    if input.send(Bytes::from(vec![0x5a; CHUNK])).await.is_err() {
                        return;
                    }
                    sent.fetch_add(CHUNK as u64, Ordering::SeqCst);
                }
            })
        };
        let (server_end, max_rss) = max_rss_during(async { server.await.unwrap() }).await;
        c.control.send(Control::shutdown()).await.unwrap();
        let (s, _) = c.finish().await;
        drop(server_end);
        assert!(s.last.is_shutdown(), "{s:?}");
        producer.await.unwrap();
        let (sent, read, worst) = (
            sent.load(Ordering::SeqCst),
            read.load(Ordering::SeqCst),
            worst.load(Ordering::SeqCst),
        );
        eprintln!("offered {sent}, read {read}, most ahead {worst}, max RSS {max_rss}");
        assert_eq!(sent, OFFERED);
        assert_eq!(read, OFFERED, "the server read everything offered");
        assert!(worst < IN_FLIGHT_LIMIT, "{worst} bytes ahead of the reader");
        assert!(max_rss < RSS_LIMIT, "RSS reached {max_rss}");
    })
    .await;
}

/// The server sends 256 MiB as fast as it can; the client's consumer pauses 1 ms after every
/// 16 messages. The client stops reading when its outbox is full, so the server is
/// held back by TCP, and RSS stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_server_and_a_slow_consumer_keep_memory_bounded() {
    let _serial = SERIAL.lock().await;
    with_timeout(Duration::from_secs(40), async {
        const TOTAL: u64 = 256 << 20;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let written = Arc::new(AtomicU64::new(0));
        let server = {
            let written = written.clone();
            tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let buf = vec![0xa5u8; CHUNK];
                while written.load(Ordering::SeqCst) < TOTAL {
                    s.write_all(&buf).await.unwrap();
                    written.fetch_add(CHUNK as u64, Ordering::SeqCst);
                }
                s.shutdown().await.unwrap();
            })
        };
        let c = start_with(TcpClient::new("127.0.0.1", port), 16).await;
        let consume = async {
            let mut got = 0u64;
            let mut worst = 0u64;
            let mut n = 0u64;
            while got < TOTAL {
                got += c.out.recv().await.len() as u64;
                worst = worst.max(written.load(Ordering::SeqCst).saturating_sub(got));
                n += 1;
                if n % 16 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            worst
        };
        let (worst, max_rss) = max_rss_during(consume).await;
        server.await.unwrap();
        // The server's FIN ends only the receive side (the bytes can all be consumed before the
        // connection reads the FIN, so wait for its notice); finishing then ends the client.
        loop {
            let sig = c.next_signal().await;
            assert!(
                !sig.is_final(),
                "ended before the server's FIN was seen: {sig:?}"
            );
            if sig
                .payload::<kamaelia::internet::PeerHalfClosed>()
                .is_some()
            {
                break;
            }
        }
        c.control.send(Control::producer_finished()).await.unwrap();
        let (s, _) = c.finish().await;
        assert!(s.last.is_producer_finished(), "{s:?}");
        assert!(s.notices::<kamaelia::internet::PeerHalfClosed>().is_empty());
        eprintln!("most ahead {worst}, max RSS {max_rss}");
        assert!(
            worst < IN_FLIGHT_LIMIT,
            "{worst} bytes ahead of the consumer"
        );
        assert!(max_rss < RSS_LIMIT, "RSS reached {max_rss}");
    })
    .await;
}
