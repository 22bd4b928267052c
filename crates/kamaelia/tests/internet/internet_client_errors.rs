//! TcpClient's failures: each is a typed `Control::Error` on `signal` (matched with
//! `error_ref::<TcpError>()`), then exactly one final message carrying `HowDied::Failed`.
//! Real sockets on loopback; the resolver failure runs in a child process with no network.

use crate::client;
use std::time::Duration;

use crate::client::{start, trusting, Signals};
use bytes::Bytes;
use kamaelia::internet::{ConnectError, HowDied, TlsError};
use kamaelia::{MakeSsl, TcpClient, TcpError};
use kamaelia_test::bounded;
use kamaelia_test::net::closed_port;
use kamaelia_test::pki::TestPki;
use kamaelia_test::proxy::{DirectionFaults, FaultProxy, Faults};
use kamaelia_test::servers::{echo_server, plaintext_server, tls_echo_server};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// The one TcpError on `signal`; checks the final message says the same failure.
fn only_error(s: &Signals) -> TcpError {
    let errors = s.errors::<TcpError>();
    assert_eq!(errors.len(), 1, "expected one TcpError: {s:?}");
    assert_eq!(s.error_count(), 1, "expected only one error: {s:?}");
    assert!(s.last.is_producer_finished(), "{:?}", s.last);
    assert!(matches!(s.how(), HowDied::Failed(_)), "{:?}", s.how());
    errors[0].clone()
}

#[tokio::test]
async fn refused_is_a_typed_connect_error_then_one_final_message() {
    bounded(async {
        for ip in ["127.0.0.1", "::1"] {
            let addr = closed_port(ip);
            let c = start(TcpClient::new(ip, addr.port())).await;
            let (s, _) = c.finish().await;
            match only_error(&s) {
                TcpError::Connect(ConnectError::Refused { addr: a }) => assert_eq!(a, addr),
                other => panic!("{other:?}"),
            }
            match s.how() {
                HowDied::Failed(TcpError::Connect(ConnectError::Refused { .. })) => {}
                other => panic!("{other:?}"),
            }
        }
    })
    .await;
}

/// Re-runs this test binary's `resolve_child` under `unshare -n` (an empty network namespace:
/// no resolver can answer), so the failure is the resolver's and fast.
#[tokio::test]
async fn unresolvable_name_is_a_typed_resolve_error() {
    if !kamaelia_test::unshare_works(&["-n"]) {
        eprintln!("SKIPPED: `unshare -n` is not available here (needs root or user namespaces)");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let child = client::test_name(module_path!(), "resolve_child");
    client::child_test_passes(
        "unshare",
        &[
            "-n".as_ref(),
            exe.as_os_str(),
            "--exact".as_ref(),
            child.as_ref(),
            "--ignored".as_ref(),
            "--nocapture".as_ref(),
        ],
    )
    .await;
}

/// The child half of the test above; does nothing unless run by it.
#[tokio::test]
#[ignore = "run by unresolvable_name_is_a_typed_resolve_error in a network namespace"]
async fn resolve_child() {
    if std::env::var_os("KAMAELIA_CLIENT_CHILD").is_none() {
        return;
    }
    bounded(async {
        let c = start(TcpClient::new("no-such-host.invalid", 80)).await;
        let (s, _) = c.finish().await;
        match only_error(&s) {
            TcpError::Connect(ConnectError::Resolve { host, .. }) => {
                assert_eq!(host, "no-such-host.invalid")
            }
            other => panic!("{other:?}"),
        }
    })
    .await;
}

/// The page's first example, run as a program in a network namespace, reports the resolver's
/// failure and exits 1.
#[tokio::test]
async fn send_file_example_reports_an_unresolvable_name() {
    let Some(bin) = client::example_bin("send_file") else {
        return;
    };
    if !kamaelia_test::unshare_works(&["-n"]) {
        eprintln!("SKIPPED: `unshare -n` is not available here");
        return;
    }
    let file = kamaelia_test::pki::TempFile::new("payload", b"hello");
    let out = client::output_of(
        "unshare",
        &[
            "-n".as_ref(),
            bin.as_os_str(),
            "no-such-host.invalid".as_ref(),
            "80".as_ref(),
            file.path().as_os_str(),
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("could not resolve host \"no-such-host.invalid\""),
        "{stderr}"
    );
}

#[tokio::test]
async fn connect_timeout_is_a_typed_error() {
    bounded(async {
        // A full accept queue: the SYN is dropped, the connect hangs.
        let hanging = kamaelia_test::net::full_backlog();
        let addr = hanging.addr;
        let timeout = Duration::from_millis(300);
        let started = tokio::time::Instant::now();
        let c = start(TcpClient::new("127.0.0.1", addr.port()).connect_timeout(timeout)).await;
        let (s, _) = c.finish().await;
        match only_error(&s) {
            TcpError::Connect(ConnectError::TimedOut { after, port, .. }) => {
                assert_eq!((after, port), (timeout, addr.port()))
            }
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(3));
    })
    .await;
}

#[tokio::test]
async fn reset_by_the_peer_mid_stream_is_a_typed_error() {
    bounded(async {
        let echo = echo_server().await;
        let proxy = FaultProxy::start(
            echo.addr,
            Faults::downstream(DirectionFaults::default().reset_after(1000)),
        )
        .await;
        let c = start(TcpClient::new("127.0.0.1", proxy.addr().port())).await;
        c.input.send(Bytes::from(vec![7u8; 4000])).await.unwrap();
        proxy.wait_reset(1).await;
        let (s, got) = c.finish_collect().await;
        assert!(matches!(only_error(&s), TcpError::Reset { .. }), "{s:?}");
        assert_eq!(got, vec![7u8; got.len()]);
        assert!(got.len() <= 1000);
    })
    .await;
}

/// The server stops reading, the client fills the socket and its inbox (its producer is
/// blocked), then the server resets the connection: the client's pending write fails.
#[tokio::test]
async fn reset_while_blocked_writing_is_a_typed_error_and_upstream_is_released() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (reset_tx, reset_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = reset_rx.await;
            stream.set_zero_linger().unwrap();
            drop(stream);
        });
        let c = start(TcpClient::new("127.0.0.1", addr.port())).await;
        let input = c.input.clone();
        let (blocked_tx, blocked_rx) = oneshot::channel();
        let feeder = tokio::spawn(async move {
            let mut blocked = Some(blocked_tx);
            let mut sent = 0usize;
            loop {
                let chunk = Bytes::from(vec![1u8; 64 * 1024]);
                let chunk = match input.try_send(chunk) {
                    Ok(()) => {
                        sent += 64 * 1024;
                        continue;
                    }
                    Err(axon::TrySendError::Full(chunk)) => {
                        if sent >= 1 << 20 {
                            if let Some(tx) = blocked.take() {
                                let _ = tx.send(());
                            }
                        }
                        chunk
                    }
                    Err(_) => return sent,
                };
                if input.send(chunk).await.is_err() {
                    return sent;
                }
                sent += 64 * 1024;
            }
        });
        blocked_rx.await.unwrap();
        reset_tx.send(()).unwrap();
        server.await.unwrap();
        let (s, _) = c.finish().await;
        let e = only_error(&s);
        assert!(
            matches!(e, TcpError::Reset { .. } | TcpError::BrokenPipe { .. }),
            "{e:?}"
        );
        // The producer is not left waiting on a client that has gone.
        feeder.await.unwrap();
    })
    .await;
}

/// Runs a client that asks for TLS at once against `addr` and returns its TLS error.
/// (makessl sent before the connection is up is honoured once connected.)
async fn tls_failure(client: TcpClient) -> TlsError {
    let c = start(client).await;
    c.makessl.send(MakeSsl::new()).await.unwrap();
    let (s, _, sslready) = c.finish_all().await;
    assert!(
        sslready.try_recv().is_none(),
        "sslready after a failed handshake"
    );
    match only_error(&s) {
        TcpError::Tls(e) => e,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn untrusted_certificate_is_a_typed_tls_error() {
    bounded(async {
        let pki = TestPki::new();
        let stranger = TestPki::new();
        let server = tls_echo_server(pki.server_config()).await;
        let client = TcpClient::new("127.0.0.1", server.addr.port()).tls(trusting(&stranger));
        let e = tls_failure(client).await;
        assert!(matches!(e, TlsError::UntrustedCertificate(_)), "{e:?}");
    })
    .await;
}

#[tokio::test]
async fn name_mismatch_is_a_typed_tls_error() {
    bounded(async {
        let pki = TestPki::with_names(&["other.example"]);
        let server = tls_echo_server(pki.server_config()).await;
        let client = TcpClient::new("127.0.0.1", server.addr.port()).tls(trusting(&pki));
        let e = tls_failure(client).await;
        match e {
            TlsError::NameMismatch { expected } => {
                assert_eq!(expected.as_deref(), Some("127.0.0.1"))
            }
            other => panic!("{other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn a_server_that_speaks_no_tls_is_a_typed_tls_error() {
    bounded(async {
        let pki = TestPki::new();
        let server = plaintext_server(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        let client = TcpClient::new("127.0.0.1", server.addr.port()).tls(trusting(&pki));
        let e = tls_failure(client).await;
        assert!(matches!(e, TlsError::NotTls), "{e:?}");
    })
    .await;
}

#[tokio::test]
async fn a_silent_server_is_a_handshake_timeout() {
    bounded(async {
        let pki = TestPki::new();
        let server = kamaelia_test::servers::silent_server().await;
        let timeout = Duration::from_millis(300);
        let client = TcpClient::new("127.0.0.1", server.addr.port())
            .tls(trusting(&pki).with_handshake_timeout(timeout));
        let e = tls_failure(client).await;
        match e {
            TlsError::HandshakeTimeout(after) => assert_eq!(after, timeout),
            other => panic!("{other:?}"),
        }
    })
    .await;
}

/// A server that records every byte it receives until the client closes, and tells the test
/// when the first TLS record header (0x16) has arrived after `prefix`. With `upstream`, it
/// relays both ways to that TLS server (so the handshake can fail on the certificate);
/// without, it stays silent (so the handshake times out).
async fn recording_server(
    prefix_len: usize,
    upstream: Option<std::net::SocketAddr>,
) -> (
    std::net::SocketAddr,
    oneshot::Receiver<()>,
    tokio::task::JoinHandle<Vec<u8>>,
) {
    use tokio::io::AsyncWriteExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (hello_tx, hello_rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (mut rd, wr) = stream.into_split();
        let mut up_write = None;
        let mut relay_down = None;
        if let Some(up) = upstream {
            let up = TcpStream::connect(up).await.unwrap();
            let (mut up_rd, up_wr) = up.into_split();
            up_write = Some(up_wr);
            let mut wr = wr;
            relay_down = Some(tokio::spawn(async move {
                let _ = tokio::io::copy(&mut up_rd, &mut wr).await;
                let _ = wr.shutdown().await;
            }));
        } else {
            std::mem::forget(wr);
        }
        let mut hello_tx = Some(hello_tx);
        let mut seen = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let already = seen.len();
                    seen.extend_from_slice(&buf[..n]);
                    // The plaintext prefix is for us; the TLS server gets only what follows.
                    let skip = prefix_len.saturating_sub(already).min(n);
                    if let Some(w) = up_write.as_mut() {
                        let _ = w.write_all(&buf[skip..n]).await;
                    }
                    if seen.len() > prefix_len {
                        if let Some(tx) = hello_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                }
            }
        }
        if let Some(r) = relay_down {
            r.abort();
        }
        seen
    });
    (addr, hello_rx, task)
}

/// After makessl, nothing goes out in plaintext, even when the handshake fails: data sent
/// during the handshake waits, and is dropped (and counted) when the connection closes.
#[tokio::test]
async fn nothing_is_sent_in_plaintext_after_makessl_when_the_handshake_fails() {
    bounded(async {
        let pki = TestPki::new();
        let stranger = TestPki::new();
        let real = tls_echo_server(pki.server_config()).await;
        let before = b"PLAIN-BEFORE\n";
        for (upstream, settings, want_timeout) in [
            (
                None,
                trusting(&pki).with_handshake_timeout(Duration::from_millis(500)),
                true,
            ),
            (Some(real.addr), trusting(&stranger), false),
        ] {
            let (addr, hello, recorded) = recording_server(before.len(), upstream).await;
            let c = start(TcpClient::new("127.0.0.1", addr.port()).tls(settings)).await;
            // Connected first: a makessl queued before the connection is up would run before
            // any queued data, and this test wants a plaintext prefix.
            c.wait_connected().await;
            c.input.send(Bytes::from_static(before)).await.unwrap();
            // Send makessl only once the plaintext is on its way, so "before" is before.
            c.makessl.send(MakeSsl::new()).await.unwrap();
            hello.await.unwrap();
            // The ClientHello is out: this is sent during the handshake.
            c.input
                .send(Bytes::from_static(b"SECRET-AFTER-MAKESSL"))
                .await
                .unwrap();
            let (s, _) = c.finish().await;
            match only_error(&s) {
                TcpError::Tls(TlsError::HandshakeTimeout(_)) => assert!(want_timeout),
                TcpError::Tls(TlsError::UntrustedCertificate(_)) => assert!(!want_timeout),
                other => panic!("{other:?}"),
            }
            let seen = recorded.await.unwrap();
            assert!(seen.starts_with(before), "{seen:?}");
            let records = client::tls_records(&seen[before.len()..]);
            assert!(records >= 1);
            assert!(
                !seen.windows(6).any(|w| w == b"SECRET"),
                "plaintext after makessl reached the server"
            );
        }
    })
    .await;
}

/// STARTTLS response injection: plaintext from the server that is still unread when the
/// switch happens makes the client refuse to switch.
#[tokio::test]
async fn plaintext_pending_at_makessl_is_refused() {
    bounded(async {
        use tokio::io::AsyncWriteExt;
        let pki = TestPki::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (inject_tx, inject_rx) = oneshot::channel::<()>();
        let (injected_tx, injected_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            stream.write_all(b"220 ready\r\n").await.unwrap();
            inject_rx.await.unwrap();
            stream.write_all(b"INJECTED").await.unwrap();
            injected_tx.send(()).unwrap();
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest).await;
            rest
        });
        // An outbox sink of one message: once the banner is in it the client stops reading,
        // so what the server sends next stays unread in the socket.
        let c = client::start_with(
            TcpClient::new("127.0.0.1", addr.port()).tls(trusting(&pki)),
            1,
        )
        .await;
        c.out.ready().await;
        inject_tx.send(()).unwrap();
        injected_rx.await.unwrap();
        c.makessl.send(MakeSsl::new()).await.unwrap();
        let (s, out) = c.finish().await;
        match only_error(&s) {
            TcpError::Tls(TlsError::PlaintextInjection { bytes }) => assert_eq!(bytes, 8),
            other => panic!("{other:?}"),
        }
        assert_eq!(out.try_recv().unwrap(), "220 ready\r\n");
        // No handshake was attempted: the server received nothing.
        assert!(server.await.unwrap().is_empty());
    })
    .await;
}
