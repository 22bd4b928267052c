//! Every byte arrives, in order, checked by SHA-256: bulk both ways at once with random chunk
//! sizes (plain, and with a TLS switch midway), ProducerFinished right after the last chunk
//! against a late reader, data and ProducerFinished queued before the connection is up, and
//! the fault-injecting proxy's fragments, delays and stalls.

use crate::client;
use std::sync::Arc;
use std::time::Duration;

use crate::client::{feed_random_chunks, hash_exactly, random_bytes, rng, start, trusting};
use axon::Control;
use bytes::Bytes;
use kamaelia::internet::HowDied;
use kamaelia::{MakeSsl, TcpClient};
use kamaelia_test::pki::TestPki;
use kamaelia_test::proxy::{DirectionFaults, FaultProxy, Faults};
use kamaelia_test::servers::{echo_server, sink_server};
use kamaelia_test::sha256;
use kamaelia_test::{bounded, with_timeout};
use rand::Rng;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The bulk size each way, as the issue asks. The transfer itself takes about 2 s in a debug
/// build on 2 cores; hashing in a debug build is most of the rest.
const BULK: usize = 64 << 20;

/// Reads `stream` to the end while writing `send` to it in random-size pieces, then shuts the
/// write side; returns the SHA-256 and length of what it read.
async fn read_and_send<S>(stream: S, send: Bytes, seed: u64) -> ([u8; 32], usize)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let reading = async {
        let mut h = Sha256::new();
        let mut n = 0;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let r = rd.read(&mut buf).await.unwrap();
            if r == 0 {
                break;
            }
            h.update(&buf[..r]);
            n += r;
        }
        (<[u8; 32]>::from(h.finalize()), n)
    };
    let writing = async {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
        let mut at = 0;
        while at < send.len() {
            let n = rng.gen_range(1..=128 * 1024).min(send.len() - at);
            wr.write_all(&send[at..at + n]).await.unwrap();
            at += n;
        }
        wr.shutdown().await.unwrap();
    };
    let (read, ()) = tokio::join!(reading, writing);
    read
}

/// Runs the client side of a bulk exchange: sends `up` in random chunks, then
/// ProducerFinished; hashes `down_len` bytes received; checks it ends Finished.
async fn client_bulk(c: client::Running, up: Bytes, down_len: usize, seed: u64) -> [u8; 32] {
    let input = c.input.clone();
    let control = c.control.clone();
    let feeder = tokio::spawn(async move {
        feed_random_chunks(&input, up, seed).await;
        control.send(Control::producer_finished()).await.unwrap();
    });
    let got = hash_exactly(&c.out, down_len).await;
    feeder.await.unwrap();
    let (s, _) = c.finish().await;
    assert!(matches!(s.how(), HowDied::Finished), "{s:?}");
    assert_eq!(s.error_count(), 0);
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_both_ways_at_once_with_random_chunks() {
    with_timeout(Duration::from_secs(60), async {
        let mut r = rng();
        let up = random_bytes(&mut r, BULK);
        let down = random_bytes(&mut r, BULK);
        let (up_sha, down_sha) = (sha256(&up), sha256(&down));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seed = r.gen();
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            read_and_send(s, down, seed).await
        });
        let started = std::time::Instant::now();
        let c = start(TcpClient::new("127.0.0.1", port).wait_for_server_close(true)).await;
        let got = client_bulk(c, up, BULK, seed ^ 1).await;
        assert_eq!(got, down_sha);
        assert_eq!(server.await.unwrap(), (up_sha, BULK));
        eprintln!(
            "bulk plain: {BULK} bytes each way in {:?}",
            started.elapsed()
        );
    })
    .await;
}

/// A STARTTLS-style exchange in plaintext, then makessl, then the bulk both ways under TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_both_ways_after_a_tls_switch_midway() {
    with_timeout(Duration::from_secs(60), async {
        let pki = TestPki::new();
        let config = pki.server_config();
        let mut r = rng();
        let size = BULK;
        let up = random_bytes(&mut r, size);
        let down = random_bytes(&mut r, size);
        let (up_sha, down_sha) = (sha256(&up), sha256(&down));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seed = r.gen();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut line = [0u8; 10];
            s.read_exact(&mut line).await.unwrap();
            assert_eq!(&line, b"STARTTLS\r\n");
            s.write_all(b"220 go\r\n").await.unwrap();
            let tls = TlsAcceptor::from(Arc::clone(&config))
                .accept(s)
                .await
                .unwrap();
            read_and_send(tls, down, seed).await
        });
        let started = std::time::Instant::now();
        let c = start(
            TcpClient::new("127.0.0.1", port)
                .tls(trusting(&pki))
                .wait_for_server_close(true),
        )
        .await;
        c.input
            .send(Bytes::from_static(b"STARTTLS\r\n"))
            .await
            .unwrap();
        assert_eq!(c.out.recv().await, "220 go\r\n");
        c.makessl.send(MakeSsl::new()).await.unwrap();
        let kamaelia::SslReady { info, .. } = c.sslready.recv().await;
        assert_eq!(info.version, "TLSv1.3");
        let got = client_bulk(c, up, size, seed ^ 1).await;
        assert_eq!(got, down_sha);
        assert_eq!(server.await.unwrap(), (up_sha, size));
        eprintln!("bulk tls: {size} bytes each way in {:?}", started.elapsed());
    })
    .await;
}

/// ProducerFinished sent right after the last chunk, to a server that starts reading only once
/// the client is blocked on it: everything still arrives before the close.
#[tokio::test]
async fn producer_finished_right_after_the_last_chunk_against_a_late_reader() {
    bounded(async {
        let mut r = rng();
        let data = random_bytes(&mut r, 8 << 20);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let _ = go_rx.await;
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            got
        });
        let c = start(TcpClient::new("127.0.0.1", port)).await;
        let (input, control) = (c.input.clone(), c.control.clone());
        let chunks: Vec<Bytes> = data.chunks(64 * 1024).map(|b| data.slice_ref(b)).collect();
        let feeder = tokio::spawn(async move {
            let mut go = Some(go_tx);
            for chunk in chunks {
                if let Err(axon::TrySendError::Full(chunk)) = input.try_send(chunk) {
                    // The client is blocked on the server: let it start reading now.
                    if let Some(go) = go.take() {
                        let _ = go.send(());
                    }
                    input.send(chunk).await.unwrap();
                }
            }
            control.send(Control::producer_finished()).await.unwrap();
            if let Some(go) = go.take() {
                let _ = go.send(());
            }
        });
        feeder.await.unwrap();
        let (s, _) = c.finish().await;
        assert!(matches!(s.how(), HowDied::Finished), "{s:?}");
        let got = server.await.unwrap();
        assert_eq!(got.len(), data.len());
        assert_eq!(sha256(&got), sha256(&data));
    })
    .await;
}

/// Data and ProducerFinished sent before the client even runs, and during its delay, are all
/// sent once connected, in order, then the connection closes.
#[tokio::test]
async fn data_and_producer_finished_queued_before_the_connection_is_up_all_arrive() {
    bounded(async {
        let mut r = rng();
        for delay in [Duration::ZERO, Duration::from_millis(200)] {
            let (sink, report) = sink_server().await;
            let data = random_bytes(&mut r, 40 * 1024 * 1024 / 1024);
            let w = client::wire(
                TcpClient::new("127.0.0.1", sink.addr.port()).delay(delay),
                16,
            );
            // Before it runs: up to the inbox's capacity.
            let pieces: Vec<Bytes> = data.chunks(1024).map(|b| data.slice_ref(b)).collect();
            let (early, late) = pieces.split_at(32);
            for p in early {
                w.input.send(p.clone()).await.unwrap();
            }
            let c = w.run().await;
            // During the delay (or the connect), the rest, then ProducerFinished.
            for p in late {
                c.input.send(p.clone()).await.unwrap();
            }
            c.control.send(Control::producer_finished()).await.unwrap();
            let (s, _) = c.finish().await;
            assert!(matches!(s.how(), HowDied::Finished), "{s:?}");
            let report = report.await.unwrap();
            assert_eq!(report.error, None);
            assert_eq!(report.bytes, data.len() as u64);
            assert_eq!(report.sha256, sha256(&data));
        }
    })
    .await;
}

/// Echoes `len` random bytes through a proxy with `faults` and checks they come back intact.
async fn echo_through(faults: Faults, len: usize) -> FaultProxy {
    let echo = echo_server().await;
    let proxy = FaultProxy::start(echo.addr, faults).await;
    let mut r = rng();
    let data = random_bytes(&mut r, len);
    let c = start(
        TcpClient::new("127.0.0.1", proxy.addr().port())
            .wait_for_server_close(true)
            .nodelay(true),
    )
    .await;
    let got = client_bulk(c, data.clone(), len, r.gen()).await;
    assert_eq!(got, sha256(&data));
    drop(echo);
    proxy
}

#[tokio::test]
async fn one_byte_fragments_both_ways_keep_integrity() {
    bounded(async {
        let fragment = DirectionFaults::default().fragment();
        let faults = Faults {
            to_upstream: fragment.clone(),
            to_client: fragment,
        };
        let proxy = echo_through(faults, 16 * 1024).await;
        assert_eq!(proxy.bytes_to_client(), 16 * 1024);
    })
    .await;
}

#[tokio::test]
async fn per_chunk_delays_both_ways_keep_integrity() {
    bounded(async {
        let delay = DirectionFaults::default().delay(Duration::from_millis(10));
        let faults = Faults {
            to_upstream: delay.clone(),
            to_client: delay,
        };
        echo_through(faults, 256 * 1024).await;
    })
    .await;
}

/// The proxy stops forwarding after 100 KiB; the transfer waits, and completes once released.
/// 64 MiB: more than the kernel can hold between the client and the stalled proxy (a 4 MiB send
/// buffer and a receive buffer that autotunes up to `tcp_rmem`'s 32 MiB here), so the client is
/// still sending while the proxy is stalled.
#[tokio::test]
async fn a_stall_then_release_completes() {
    bounded(async {
        let (sink, report) = sink_server().await;
        let proxy = FaultProxy::start(
            sink.addr,
            Faults::upstream(DirectionFaults::default().stall_after(100 * 1024)),
        )
        .await;
        let mut r = rng();
        let data = random_bytes(&mut r, BULK);
        let c = start(TcpClient::new("127.0.0.1", proxy.addr().port())).await;
        let (input, control) = (c.input.clone(), c.control.clone());
        let d = data.clone();
        let seed = r.gen();
        let feeder = tokio::spawn(async move {
            feed_random_chunks(&input, d, seed).await;
            control.send(Control::producer_finished()).await.unwrap();
        });
        proxy.wait_stalled(1).await;
        assert_eq!(proxy.bytes_to_upstream(), 100 * 1024);
        assert!(!c.handle.is_finished(), "finished while stalled");
        proxy.release();
        feeder.await.unwrap();
        let (s, _) = c.finish().await;
        assert!(matches!(s.how(), HowDied::Finished), "{s:?}");
        let report = report.await.unwrap();
        assert_eq!(report.bytes, data.len() as u64);
        assert_eq!(report.sha256, sha256(&data));
    })
    .await;
}
