//! The peer's half-close ends only the receive direction (docs/semantics.md, issue 8 §1): the
//! upload goes on until its input ends, in plain TCP and under TLS. A peer that has closed
//! entirely fails the next write, and the `Transferred` notice accounts for every byte handed
//! to the client. `OnFinish::KeepOpen` keeps the write side open until the peer closes, and
//! the idle timeout ends a quiet connection. Peers are plain tokio sockets written here.

use crate::client;
use std::time::Duration;

use crate::client::{feed_random_chunks, random_bytes, rng, start, trusting, wire, Signals};
use axon::Control;
use bytes::Bytes;
use kamaelia::internet::{HowDied, OnFinish, Transferred};
use kamaelia::{MakeSsl, TcpClient, TcpError};
use kamaelia_test::pki::TestPki;
use kamaelia_test::servers::accept_one;
use kamaelia_test::with_timeout;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

const UPLOAD: usize = 20 * 1024 * 1024;
const GREETING: usize = 1000;
const LONG: Duration = Duration::from_secs(60);

/// The one `Transferred` notice on `signal`.
fn transferred(s: &Signals) -> Transferred {
    let t = s.notices::<Transferred>();
    assert_eq!(t.len(), 1, "expected one Transferred notice: {s:?}");
    t[0].clone()
}

/// What a half-closed peer reads from then on: the SHA-256 and length of all of it.
async fn read_all<S: AsyncRead + Unpin>(mut s: S) -> ([u8; 32], usize) {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        match s.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                total += n;
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("peer read failed: {e}"),
        }
    }
    (hasher.finalize().into(), total)
}

/// Uploads 20 MiB through `client` (after a `makessl` when `tls`), returns the signals, what
/// the client received, and the data's hash.
async fn upload(client: TcpClient, tls: bool) -> (Signals, Vec<u8>, [u8; 32]) {
    let data = random_bytes(&mut rng(), UPLOAD);
    let hash: [u8; 32] = Sha256::digest(&data).into();
    let w = wire(client, client::OUT_CAPACITY);
    if tls {
        w.makessl.send(MakeSsl::new()).await.unwrap();
    }
    let c = w.run().await;
    feed_random_chunks(&c.input, data, rng().next_u64()).await;
    c.control.send(Control::producer_finished()).await.unwrap();
    let (s, got) = c.finish_collect().await;
    (s, got, hash)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_half_close_ends_only_the_receive_direction() {
    with_timeout(LONG, async {
        let (port, peer) = accept_one(|mut s| async move {
            s.write_all(&[b'g'; GREETING]).await.unwrap();
            // SHUT_WR: finished sending, still reading.
            s.shutdown().await.unwrap();
            read_all(s).await
        })
        .await;
        let (s, got, hash) = upload(TcpClient::new("127.0.0.1", port), false).await;
        let (peer_hash, peer_len) = (&mut { peer }.0).await.unwrap();
        assert_eq!(
            peer_len, UPLOAD,
            "the peer received only part of the upload"
        );
        assert_eq!(peer_hash, hash);
        assert_eq!(got, vec![b'g'; GREETING]);
        assert!(matches!(s.how(), HowDied::Finished), "{:?}", s.how());
        assert_eq!(s.notices::<kamaelia::internet::PeerHalfClosed>().len(), 1);
        let t = transferred(&s);
        assert_eq!(
            t,
            Transferred {
                sent: UPLOAD as u64,
                received: GREETING as u64,
                unsent: 0
            }
        );
    })
    .await;
}

/// rustls lets a client write after it has received the server's close_notify (TLS 1.3
/// half-close), so the upload goes on under TLS too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_close_notify_ends_only_the_receive_direction_under_tls() {
    with_timeout(LONG, async {
        let pki = TestPki::new();
        let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config());
        let (port, peer) = accept_one(|s| async move {
            let mut tls = acceptor.accept(s).await.unwrap();
            tls.write_all(&[b'g'; GREETING]).await.unwrap();
            // close_notify, without closing the TCP connection: the server keeps reading.
            tls.get_mut().1.send_close_notify();
            tls.flush().await.unwrap();
            read_all(tls).await
        })
        .await;
        let client = TcpClient::new("127.0.0.1", port).tls(trusting(&pki));
        let (s, got, hash) = upload(client, true).await;
        let (peer_hash, peer_len) = (&mut { peer }.0).await.unwrap();
        assert_eq!(
            peer_len, UPLOAD,
            "the peer received only part of the upload"
        );
        assert_eq!(peer_hash, hash);
        assert_eq!(got, vec![b'g'; GREETING]);
        let half = s.notices::<kamaelia::internet::PeerHalfClosed>();
        assert_eq!(half.len(), 1, "{s:?}");
        assert!(!half[0].truncation_possible);
        assert!(matches!(s.how(), HowDied::Finished), "{:?}", s.how());
        assert_eq!(transferred(&s).sent, UPLOAD as u64);
        assert_eq!(transferred(&s).unsent, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_that_closed_entirely_fails_the_upload_and_every_byte_is_accounted_for() {
    with_timeout(LONG, async {
        let (port, _peer) = accept_one(|mut s| async move {
            let mut buf = vec![0u8; 100_000];
            s.read_exact(&mut buf).await.unwrap();
            // Closing with unread data sends a reset.
            drop(s);
        })
        .await;
        let c = start(TcpClient::new("127.0.0.1", port)).await;
        let mut handed: u64 = 0;
        let chunk = Bytes::from(vec![7u8; 64 * 1024]);
        // Far more than the socket buffers hold: the sends stop being accepted when it fails.
        for _ in 0..4096 {
            if c.input.send(chunk.clone()).await.is_err() {
                break;
            }
            handed += chunk.len() as u64;
        }
        let (s, _) = c.finish().await;
        let errors = s.errors::<TcpError>();
        assert!(
            matches!(
                errors.as_slice(),
                [TcpError::Reset { .. } | TcpError::BrokenPipe { .. }]
            ),
            "{s:?}"
        );
        assert!(matches!(s.how(), HowDied::Failed(_)), "{:?}", s.how());
        let t = transferred(&s);
        assert_eq!(t.sent + t.unsent, handed, "{t:?}, handed {handed}");
        // Usually some is unsent (queued when the write failed), but the reset may also be
        // seen by a read while nothing is queued.
        assert!(t.sent >= 100_000, "{t:?}");
        eprintln!("handed {handed} bytes: {t:?}");
    })
    .await;
}

/// `OnFinish::KeepOpen`: after ProducerFinished everything is sent, but no FIN follows; the
/// peer answers, closes, and only then does the client close.
#[tokio::test]
async fn keep_open_leaves_the_write_side_open_until_the_peer_closes() {
    with_timeout(Duration::from_secs(10), async {
        let (port, peer) = accept_one(|mut s| async move {
            let mut req = [0u8; 6];
            s.read_exact(&mut req).await.unwrap();
            assert_eq!(&req, b"QUIT\r\n");
            // A half-close would be here by now; nothing comes (a server that hangs up on EOF
            // before it answers would lose the reply).
            let mut more = [0u8; 1];
            let early = tokio::time::timeout(Duration::from_millis(300), s.read(&mut more)).await;
            assert!(early.is_err(), "the client half-closed: {early:?}");
            s.write_all(b"221 bye\r\n").await.unwrap();
            s.shutdown().await.unwrap();
            // Now the client closes too.
            assert_eq!(s.read(&mut more).await.unwrap(), 0);
        })
        .await;
        let c = start(TcpClient::new("127.0.0.1", port).on_finish(OnFinish::KeepOpen)).await;
        c.input.send(Bytes::from_static(b"QUIT\r\n")).await.unwrap();
        c.control.send(Control::producer_finished()).await.unwrap();
        let (s, got) = c.finish_collect().await;
        (&mut { peer }.0).await.unwrap();
        assert_eq!(got, b"221 bye\r\n");
        assert!(matches!(s.how(), HowDied::Finished), "{:?}", s.how());
        assert_eq!(
            transferred(&s),
            Transferred {
                sent: 6,
                received: 9,
                unsent: 0
            }
        );
    })
    .await;
}

#[tokio::test]
async fn idle_timeout_ends_a_connection_with_no_traffic() {
    with_timeout(Duration::from_secs(10), async {
        let (port, _peer) = accept_one(|mut s| async move {
            let mut buf = [0u8; 16];
            while s.read(&mut buf).await.unwrap_or(0) > 0 {}
        })
        .await;
        let after = Duration::from_millis(200);
        let started = std::time::Instant::now();
        let c = start(TcpClient::new("127.0.0.1", port).idle_timeout(Some(after))).await;
        c.input.send(Bytes::from_static(b"hi")).await.unwrap();
        let (s, _) = c.finish().await;
        assert!(started.elapsed() >= after);
        match s.errors::<TcpError>().as_slice() {
            [TcpError::IdleTimeout { after: a, .. }] => assert_eq!(*a, after),
            other => panic!("{other:?}"),
        }
        let text = s.errors::<TcpError>()[0].to_string();
        assert!(
            text.starts_with("no traffic either way for 200ms"),
            "{text}"
        );
        assert!(matches!(
            s.how(),
            HowDied::Failed(TcpError::IdleTimeout { .. })
        ));
        assert_eq!(transferred(&s).sent, 2);
    })
    .await;
}

/// Traffic in either direction keeps an idle timeout from firing: the peer sends a little
/// every 50 ms for well over the 300 ms timeout, then closes.
#[tokio::test]
async fn traffic_keeps_the_idle_timeout_away() {
    with_timeout(Duration::from_secs(10), async {
        let (port, _peer) = accept_one(|mut s| async move {
            for _ in 0..20 {
                s.write_all(b"tick").await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        let client = TcpClient::new("127.0.0.1", port)
            .idle_timeout(Some(Duration::from_millis(300)))
            .on_finish(OnFinish::HalfClose);
        let c = start(client).await;
        c.control.send(Control::producer_finished()).await.unwrap();
        let (s, got) = c.finish_collect().await;
        assert_eq!(s.error_count(), 0, "{s:?}");
        assert_eq!(got.len(), 80);
        assert!(matches!(s.how(), HowDied::Finished), "{:?}", s.how());
    })
    .await;
}

/// No Duration makes the client panic: a connect timeout or an idle timeout too long for the
/// clock means no deadline (issue 8 §2 item 12).
#[tokio::test]
async fn huge_durations_mean_no_deadline_and_never_panic() {
    with_timeout(Duration::from_secs(10), async {
        let (port, _peer) = accept_one(|mut s| async move {
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            s.write_all(&got).await.unwrap();
        })
        .await;
        let client = TcpClient::new("127.0.0.1", port)
            .connect_timeout(Duration::from_secs_f64(1e19))
            .idle_timeout(Some(Duration::MAX))
            .on_finish(OnFinish::HalfClose);
        let c = start(client).await;
        c.input.send(Bytes::from_static(b"ok")).await.unwrap();
        c.control.send(Control::producer_finished()).await.unwrap();
        let (s, got) = c.finish_collect().await;
        assert_eq!(got, b"ok");
        assert!(matches!(s.how(), HowDied::Finished), "{:?}", s.how());

        let closed = kamaelia_test::net::closed_port("127.0.0.1");
        let r = kamaelia::internet::connect(
            "127.0.0.1",
            closed.port(),
            kamaelia::internet::Family::Any,
            Duration::MAX,
        )
        .await;
        assert!(
            matches!(r, Err(kamaelia::internet::ConnectError::Refused { .. })),
            "{r:?}"
        );

        // A delay too long for the clock, then stopped.
        let c = start(TcpClient::new("127.0.0.1", port).delay(Duration::MAX)).await;
        c.handle.stop();
        let (s, _) = c.finish().await;
        assert!(matches!(s.how(), HowDied::Shutdown { .. }), "{:?}", s.how());
    })
    .await;
}
