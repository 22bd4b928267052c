//! TcpClient's shutdown in every phase (delay, connecting, TLS handshake, transfer), stop()
//! from outside, makessl twice, half-close both ways, and a server that speaks first. Each
//! ends with exactly one final message on `signal`.

use crate::client;
use std::time::Duration;

use crate::client::{start, trusting, Signals};
use axon::{Control, Inbox, Outbox};
use bytes::Bytes;
use futures_util::FutureExt;
use kamaelia::internet::{Connected, HowDied, PeerHalfClosed, TlsError};
use kamaelia::{MakeSsl, TcpClient, TcpError};
use kamaelia_test::bounded;
use kamaelia_test::pki::TestPki;
use kamaelia_test::servers::speaks_first_server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Checks the final message is ShutdownMicroprocess saying what was dropped; returns that.
fn shut_down(s: &Signals) -> (usize, usize) {
    assert!(s.last.is_shutdown(), "{:?}", s.last);
    assert_eq!(s.error_count(), 0, "{s:?}");
    match s.how() {
        HowDied::Shutdown {
            dropped_messages,
            dropped_bytes,
        } => (*dropped_messages, *dropped_bytes),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn shutdown_during_the_delay_ends_promptly_and_counts_queued_data() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let started = Instant::now();
        let c = start(TcpClient::new("127.0.0.1", port).delay(Duration::from_secs(30))).await;
        for _ in 0..3 {
            c.input.send(Bytes::from_static(b"queued")).await.unwrap();
        }
        c.control.send(Control::shutdown()).await.unwrap();
        let (s, _) = c.finish().await;
        assert_eq!(shut_down(&s), (3, 18));
        assert!(s.notices::<Connected>().is_empty());
        assert!(started.elapsed() < Duration::from_secs(5));
        // It never connected.
        assert!(listener.accept().now_or_never().is_none());
    })
    .await;
}

#[tokio::test]
async fn shutdown_while_connecting_ends_promptly() {
    bounded(async {
        // A full accept queue: the SYN is dropped, the connect hangs.
        let hanging = kamaelia_test::net::full_backlog();
        let addr = hanging.addr;
        let started = Instant::now();
        let c = start(TcpClient::new("127.0.0.1", addr.port())).await;
        c.input
            .send(Bytes::from_static(b"never sent"))
            .await
            .unwrap();
        c.control.send(Control::shutdown()).await.unwrap();
        let (s, _) = c.finish().await;
        assert_eq!(shut_down(&s), (1, 10));
        assert!(s.notices::<Connected>().is_empty());
        assert!(started.elapsed() < Duration::from_secs(5));
    })
    .await;
}

#[tokio::test]
async fn shutdown_during_the_tls_handshake_ends_promptly() {
    bounded(async {
        let pki = TestPki::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (hello_tx, hello_rx) = oneshot::channel();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let mut hello_tx = Some(hello_tx);
            let mut total = 0;
            // Silent: reads the ClientHello, answers nothing.
            while let Ok(n @ 1..) = s.read(&mut buf).await {
                total += n;
                if let Some(tx) = hello_tx.take() {
                    let _ = tx.send(());
                }
            }
            total
        });
        let c = start(
            TcpClient::new("127.0.0.1", port)
                .tls(trusting(&pki).with_handshake_timeout(Duration::from_secs(60))),
        )
        .await;
        c.makessl.send(MakeSsl::new()).await.unwrap();
        hello_rx.await.unwrap();
        let started = Instant::now();
        c.control.send(Control::shutdown()).await.unwrap();
        let (s, _, ready) = c.finish_all().await;
        shut_down(&s);
        assert!(ready.try_recv().is_none());
        assert!(started.elapsed() < Duration::from_secs(5));
        // The server sees the connection close.
        assert!(server.await.unwrap() > 0);
    })
    .await;
}

/// A server that accepts and does not read until told; then reads to the end and reports
/// how many bytes it got.
async fn late_reader() -> (u16, oneshot::Sender<()>, tokio::task::JoinHandle<u64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (go_tx, go_rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let _ = go_rx.await;
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        while let Ok(n @ 1..) = s.read(&mut buf).await {
            total += n as u64;
        }
        total
    });
    (port, go_tx, task)
}

/// Sends 64 KiB messages into `input` until nothing moves: the socket is full, and so is the
/// client's inbox (bounded at 256 KiB, far less than the socket buffers, so an inbox that is
/// full for a moment says nothing about the socket). Returns how much was sent.
async fn fill(input: &axon::Outbox<Bytes>) -> usize {
    let mut sent = 0;
    loop {
        let chunk = Bytes::from(vec![3u8; 64 * 1024]);
        // No event says "the socket is full": a send that waits this long is taken as it.
        match tokio::time::timeout(Duration::from_millis(300), input.send(chunk)).await {
            Ok(r) => {
                r.unwrap();
                sent += 64 * 1024;
            }
            Err(_) => return sent,
        }
    }
}

#[tokio::test]
async fn shutdown_during_transfer_drops_and_counts_what_was_queued() {
    bounded(async {
        let (port, go, server) = late_reader().await;
        let c = start(TcpClient::new("127.0.0.1", port)).await;
        let sent = fill(&c.input).await;
        c.control.send(Control::shutdown()).await.unwrap();
        let (s, _) = c.finish().await;
        let (messages, bytes) = shut_down(&s);
        assert!(messages > 0 && bytes > 0, "{s:?}");
        // Every byte handed over was either sent or is counted as unsent.
        let t = s.notices::<kamaelia::internet::Transferred>();
        assert_eq!(t.len(), 1, "{s:?}");
        assert_eq!(t[0].sent + t[0].unsent, sent as u64, "{:?}", t[0]);
        assert!(t[0].unsent >= bytes as u64, "{:?}", t[0]);
        let _ = go.send(());
        let received = server.await.unwrap() as usize;
        // What arrived and what was dropped account for everything, less what sat in the
        // socket buffer when it closed.
        assert!(received + bytes <= sent, "{received} + {bytes} > {sent}");
    })
    .await;
}

/// Kamaelia's stop(), from outside: the socket is closed (the server sees the end) and the
/// final message still arrives.
#[tokio::test]
async fn stop_from_outside_closes_the_socket_and_sends_the_final_message() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let r = s.read_to_end(&mut got).await;
            (got, r.is_ok())
        });
        let c = start(TcpClient::new("127.0.0.1", port)).await;
        c.input.send(Bytes::from_static(b"hello")).await.unwrap();
        let connected = c.signal.recv().await;
        assert!(connected.payload::<Connected>().is_some(), "{connected:?}");
        assert!(c.handle.stop());
        let (s, _) = c.finish().await;
        shut_down(&s);
        let (got, _clean) = server.await.unwrap();
        assert!(got.is_empty() || got == b"hello", "{got:?}");
    })
    .await;
}

#[tokio::test]
async fn makessl_twice_is_an_error_and_the_connection_keeps_working() {
    bounded(async {
        let pki = TestPki::new();
        let (addr, mut handshakes, _server) = client::tls_echo_notifying(pki.server_config()).await;
        let c = start(TcpClient::new("127.0.0.1", addr.port()).tls(trusting(&pki))).await;
        c.makessl.send(MakeSsl::new()).await.unwrap();
        let kamaelia::SslReady { info, .. } = c.sslready.recv().await;
        assert_eq!(info.version, "TLSv1.3");
        handshakes.recv().await.unwrap();
        c.makessl.send(MakeSsl::new()).await.unwrap();
        let e = c.next_signal().await;
        assert!(
            matches!(
                e.error_ref::<TcpError>(),
                Some(TcpError::Tls(TlsError::AlreadyTls))
            ),
            "{e:?}"
        );
        c.input
            .send(Bytes::from_static(b"still works"))
            .await
            .unwrap();
        assert_eq!(c.out.recv().await, "still works");
        c.control.send(Control::producer_finished()).await.unwrap();
        let (s, _, ready) = c.finish_all().await;
        assert!(s.last.is_producer_finished());
        assert!(matches!(s.how(), HowDied::Finished), "{s:?}");
        assert!(ready.try_recv().is_none(), "only one sslready");
    })
    .await;
}

/// The server half-closes first: the client reports PeerHalfClosed, and can still send.
#[tokio::test]
async fn server_half_close_ends_receiving_only() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"bye").await.unwrap();
            s.shutdown().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            got
        });
        let c = start(TcpClient::new("127.0.0.1", port)).await;
        assert_eq!(c.out.recv().await, "bye");
        let n = c.next_signal().await;
        assert_eq!(
            n.payload::<PeerHalfClosed>(),
            Some(&PeerHalfClosed {
                truncation_possible: false
            })
        );
        c.input
            .send(Bytes::from_static(b"still sending"))
            .await
            .unwrap();
        c.control.send(Control::producer_finished()).await.unwrap();
        let (s, _) = c.finish().await;
        assert!(matches!(s.how(), HowDied::Finished), "{s:?}");
        assert_eq!(server.await.unwrap(), b"still sending");
    })
    .await;
}

/// The client half-closes first (ProducerFinished with wait_for_server_close): the server
/// sees the end of the request, replies, and the client delivers the reply before ending.
#[tokio::test]
async fn client_half_close_keeps_receiving_until_the_server_closes() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            let reply = [b"reply to ".as_slice(), &got].concat();
            s.write_all(&reply).await.unwrap();
            s.shutdown().await.unwrap();
        });
        let c = start(TcpClient::new("127.0.0.1", port).wait_for_server_close(true)).await;
        c.input.send(Bytes::from_static(b"request")).await.unwrap();
        c.control.send(Control::producer_finished()).await.unwrap();
        let (s, got) = c.finish_collect().await;
        server.await.unwrap();
        assert_eq!(got, b"reply to request");
        assert!(s.last.is_producer_finished());
        assert!(matches!(s.how(), HowDied::Finished), "{s:?}");
        assert_eq!(s.notices::<PeerHalfClosed>().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_server_that_speaks_first_is_heard() {
    bounded(async {
        let server = speaks_first_server(b"220 welcome\r\n".to_vec()).await;
        let c = start(TcpClient::new("127.0.0.1", server.addr.port())).await;
        assert_eq!(c.out.recv().await, "220 welcome\r\n");
        c.input.send(Bytes::from_static(b"echo me")).await.unwrap();
        assert_eq!(c.out.recv().await, "echo me");
        c.control.send(Control::producer_finished()).await.unwrap();
        let (s, _) = c.finish().await;
        assert!(matches!(s.how(), HowDied::Finished), "{s:?}");
    })
    .await;
}

/// `signal` full when the connection comes up: the `Connected` notice waits for room instead of
/// being dropped, nothing is sent before it is announced, and it keeps its place on `signal`:
/// after what filled it, before `PeerHalfClosed` and the final message.
#[tokio::test]
async fn a_connected_notice_that_finds_signal_full_waits_and_keeps_its_place() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (quiet, was_quiet) = oneshot::channel();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            // Nothing arrives while the client waits for room to announce the connection
            // (the test reads `signal` only after this).
            let mut got = [0_u8; 5];
            let early = tokio::time::timeout(Duration::from_millis(300), s.read(&mut got)).await;
            assert!(early.is_err(), "data before Connected: {early:?}");
            let _ = quiet.send(());
            s.read_exact(&mut got).await.unwrap();
            s.write_all(&got).await.unwrap();
            s.shutdown().await.unwrap();
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).await.unwrap();
            (got, rest)
        });
        let client: axon::Component = TcpClient::new("127.0.0.1", port).into();
        let input = Outbox::<Bytes>::standalone("feed");
        let control = Outbox::<Control>::standalone("control feed");
        let out = Inbox::<Bytes>::standalone("out", 16);
        let signal = Inbox::<Control>::standalone("signal", 1);
        let filler = Outbox::<Control>::standalone("filler");
        axon::link_refs(&input.boxref(), &client.boxref("inbox").unwrap()).unwrap();
        axon::link_refs(&control.boxref(), &client.boxref("control").unwrap()).unwrap();
        axon::link_refs(&client.boxref("outbox").unwrap(), &out.boxref()).unwrap();
        axon::link_refs(&client.boxref("signal").unwrap(), &signal.boxref()).unwrap();
        axon::link_refs(&filler.boxref(), &signal.boxref()).unwrap();
        filler.try_send(Control::notice("first")).unwrap();
        input.try_send(Bytes::from_static(b"hello")).unwrap();
        let done = tokio::spawn(async move {
            axon::Scheduler::new()
                .run(async move {
                    client.activate();
                })
                .await
        });
        was_quiet.await.unwrap();
        let first = signal.recv().await;
        assert_eq!(first.payload::<&str>(), Some(&"first"), "{first:?}");
        let connected = signal.recv().await;
        assert!(connected.payload::<Connected>().is_some(), "{connected:?}");
        assert_eq!(&out.recv().await[..], b"hello");
        control.send(Control::producer_finished()).await.unwrap();
        let mut rest = Vec::new();
        loop {
            let m = signal.recv().await;
            let last = m.is_final();
            rest.push(m);
            if last {
                break;
            }
        }
        assert!(
            rest.iter().any(|m| m.payload::<PeerHalfClosed>().is_some()),
            "{rest:?}"
        );
        assert!(
            rest.iter().all(|m| m.payload::<Connected>().is_none()),
            "{rest:?}"
        );
        let (got, after) = server.await.unwrap();
        assert_eq!(&got, b"hello");
        assert!(after.is_empty(), "{after:?}");
        done.await.unwrap();
    })
    .await;
}
