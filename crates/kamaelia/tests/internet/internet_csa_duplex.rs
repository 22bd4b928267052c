//! The ConnectedSocketAdapter over an in-memory `tokio::io::duplex` pipe: the driver is generic
//! over the byte stream, so the same component serves TCP, Unix sockets and pipes. Plain and
//! TLS (both ends CSAs), and `ServerTls::accept` mirroring `TlsSettings::connect`.

use std::net::SocketAddr;
use std::time::Duration;

use axon::{Control, Inbox, Outbox, Scheduler};
use bytes::Bytes;
use kamaelia::internet::{
    ConnectedSocketAdapter, CsaOptions, OnFinish, PeerHalfClosed, ServerTls, SslReady, TlsRole,
    TlsSettings, Transferred, Trust,
};
use kamaelia_test::bounded;
use kamaelia_test::pki::TestPki;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A duplex pipe has no address; errors name this one.
fn pipe_peer() -> SocketAddr {
    ([127, 0, 0, 1], 1).into()
}

fn trusting(pki: &TestPki) -> TlsSettings {
    TlsSettings::new().with_trust(Trust::Certificates(vec![pki.ca_der()]))
}

/// Test-side boxes linked to a CSA.
struct Ends {
    feed: Outbox<Bytes>,
    stop: Outbox<Control>,
    received: Inbox<Bytes>,
    signal: Inbox<Control>,
    ready: Inbox<SslReady>,
}

fn wire(csa: &axon::Component) -> Ends {
    let ends = Ends {
        feed: Outbox::standalone("feed"),
        stop: Outbox::standalone("stop"),
        received: Inbox::standalone("received", 64),
        signal: Inbox::standalone("signal", 64),
        ready: Inbox::standalone("ready", 4),
    };
    let link = |a, b| axon::link_refs(&a, &b).unwrap();
    link(ends.feed.boxref(), csa.boxref("inbox").unwrap());
    link(ends.stop.boxref(), csa.boxref("control").unwrap());
    link(csa.boxref("outbox").unwrap(), ends.received.boxref());
    link(csa.boxref("signal").unwrap(), ends.signal.boxref());
    link(csa.boxref("sslready").unwrap(), ends.ready.boxref());
    ends
}

/// Collects what arrived on `received` until the CSA's last notice.
async fn drain(ends: &Ends) -> (Vec<u8>, Transferred, bool) {
    let mut got = Vec::new();
    let mut half_closed = false;
    loop {
        tokio::select! {
            biased;
            d = ends.received.recv() => got.extend_from_slice(&d),
            c = ends.signal.recv() => {
                if c.payload::<PeerHalfClosed>().is_some() {
                    half_closed = true;
                }
                if let Some(t) = c.payload::<Transferred>() {
                    while let Some(d) = ends.received.try_recv() {
                        got.extend_from_slice(&d);
                    }
                    return (got, t.clone(), half_closed);
                }
                assert!(!matches!(c, Control::Error(_)), "{c:?}");
            }
        }
    }
}

#[tokio::test]
async fn plain_bytes_both_ways_over_a_duplex_pipe() {
    bounded(async {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let csa = ConnectedSocketAdapter::new(ours, pipe_peer(), None, OnFinish::HalfClose);
        let ends = wire(&csa);
        let peer = tokio::spawn(async move {
            theirs.write_all(b"from the peer").await.unwrap();
            theirs.shutdown().await.unwrap();
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).await.unwrap();
            got
        });
        // Larger than the pipe's buffer, so writes wait for the peer as they would on TCP.
        let big = Bytes::from(vec![7u8; 64 * 1024]);
        ends.feed.send(big.clone()).await.unwrap();
        ends.stop.send(Control::producer_finished()).await.unwrap();
        let report = Scheduler::new()
            .run(async {
                csa.activate();
                let (got, t, half_closed) = drain(&ends).await;
                assert_eq!(got, b"from the peer");
                assert!(half_closed, "the peer's shutdown is a half-close");
                assert_eq!((t.sent, t.received, t.unsent), (64 * 1024, 13, 0));
            })
            .await;
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(peer.await.unwrap(), big);
    })
    .await;
}

#[tokio::test]
async fn tls_between_two_adapters_over_a_duplex_pipe() {
    bounded(async {
        let pki = TestPki::new();
        let (a, b) = tokio::io::duplex(4096);
        let client_role = TlsRole::Client {
            settings: trusting(&pki),
            host: "localhost".into(),
        };
        let server_role = TlsRole::Server {
            config: pki.server_config(),
            timeout: Duration::from_secs(5),
        };
        let first = |on_finish| CsaOptions::default().tls_first(true).on_finish(on_finish);
        let client = ConnectedSocketAdapter::with_config(
            a,
            pipe_peer(),
            Some(client_role),
            first(OnFinish::HalfClose),
        );
        let server = ConnectedSocketAdapter::with_config(
            b,
            pipe_peer(),
            Some(server_role),
            first(OnFinish::Close),
        );
        let (c, s) = (wire(&client), wire(&server));
        c.feed
            .send(Bytes::from_static(b"hello over TLS"))
            .await
            .unwrap();
        c.stop.send(Control::producer_finished()).await.unwrap();
        let report = Scheduler::new()
            .run(async {
                client.activate();
                server.activate();
                let SslReady {
                    info,
                    replayed,
                    plaintext,
                } = c.ready.recv().await;
                assert_eq!(info.version, "TLSv1.3");
                assert_eq!((replayed, plaintext), (0, 0), "TLS from the first byte");
                assert_eq!(s.ready.recv().await.info.version, "TLSv1.3");
                // The server echoes what it got, then finishes after its peer's close_notify.
                let mut got = Vec::new();
                while got.len() < 14 {
                    got.extend_from_slice(&s.received.recv().await);
                }
                assert_eq!(got, b"hello over TLS");
                s.feed.send(Bytes::from(got)).await.unwrap();
                s.stop.send(Control::producer_finished()).await.unwrap();
                let (back, t, _) = drain(&c).await;
                assert_eq!(back, b"hello over TLS");
                assert_eq!((t.sent, t.received, t.unsent), (14, 14, 0));
                let (_, t, half_closed) = drain(&s).await;
                assert!(half_closed);
                assert_eq!((t.sent, t.received, t.unsent), (14, 14, 0));
            })
            .await;
        assert!(report.is_ok(), "{report:?}");
    })
    .await;
}

#[tokio::test]
async fn server_accept_mirrors_client_connect() {
    bounded(async {
        let pki = TestPki::new();
        let (a, b) = tokio::io::duplex(4096);
        let server = ServerTls::from_der(pki.chain_der(), pki.key_der());
        let accepting = tokio::spawn(async move {
            let (mut s, info) = server.accept(b).await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
            s.shutdown().await.unwrap();
            info
        });
        let (mut c, info) = trusting(&pki).connect("localhost", a).await.unwrap();
        c.write_all(b"ping").await.unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"ping");
        assert_eq!(accepting.await.unwrap(), info);
    })
    .await;
}
