//! makessl on a live TcpClient connection: what sslready says, which bytes go out in plaintext
//! and which encrypted, makessl before the connection is up, ProducerFinished arriving during
//! the handshake, close_notify on finish, TLS over IPv6.

use crate::client;
use std::sync::Arc;

use crate::client::{start, trusting};
use axon::Control;
use bytes::Bytes;
use kamaelia::internet::HowDied;
use kamaelia::{MakeSsl, SslReady, TcpClient};
use kamaelia_test::bounded;
use kamaelia_test::pki::TestPki;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

/// A server that reads `plain_len` plaintext bytes, tells the test the ClientHello has
/// arrived, waits for `go`, completes the handshake, and returns (plaintext, what it read
/// under TLS until close_notify).
async fn starttls_sink(
    config: Arc<rustls::ServerConfig>,
    bind: &str,
    plain_len: usize,
) -> (
    std::net::SocketAddr,
    oneshot::Receiver<()>,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<(Vec<u8>, Vec<u8>)>,
) {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (hello_tx, hello_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut plain = vec![0u8; plain_len];
        s.read_exact(&mut plain).await.unwrap();
        s.readable().await.unwrap();
        let _ = hello_tx.send(());
        let _ = go_rx.await;
        let mut tls = TlsAcceptor::from(config).accept(s).await.unwrap();
        let mut secret = Vec::new();
        // read_to_end succeeds only on close_notify: a bare FIN is an error under TLS.
        tls.read_to_end(&mut secret).await.unwrap();
        (plain, secret)
    });
    (addr, hello_rx, go_tx, task)
}

/// Data queued before makessl goes out in plaintext first; data sent during the handshake waits
/// and goes out encrypted; sslready carries the version and suite; ProducerFinished sent
/// during the handshake takes effect after it (close_notify, then the end).
#[tokio::test]
async fn plaintext_before_encrypted_during_and_producer_finished_during_the_handshake() {
    bounded(async {
        let pki = TestPki::new();
        let (addr, hello, go, server) = starttls_sink(pki.server_config(), "127.0.0.1:0", 6).await;
        let c = start(TcpClient::new("127.0.0.1", addr.port()).tls(trusting(&pki))).await;
        // Once connected, data sent before makessl goes out in plaintext first (before the
        // connection is up, a queued makessl runs first instead).
        c.wait_connected().await;
        c.input.send(Bytes::from_static(b"PLAIN\n")).await.unwrap();
        c.makessl.send(MakeSsl::new()).await.unwrap();
        hello.await.unwrap();
        c.input
            .send(Bytes::from_static(b"secret-1 "))
            .await
            .unwrap();
        c.input.send(Bytes::from_static(b"secret-2")).await.unwrap();
        c.control.send(Control::producer_finished()).await.unwrap();
        go.send(()).unwrap();
        let (s, _, ready) = c.finish_all().await;
        assert!(matches!(s.how(), HowDied::Finished), "{s:?}");
        assert_eq!(s.error_count(), 0, "{s:?}");
        let SslReady { info, .. } = ready.try_recv().expect("sslready");
        assert_eq!(info.version, "TLSv1.3");
        assert!(info.cipher_suite.starts_with("TLS13_"), "{info:?}");
        let (plain, secret) = server.await.unwrap();
        assert_eq!(plain, b"PLAIN\n");
        assert_eq!(secret, b"secret-1 secret-2");
    })
    .await;
}

/// makessl, data and ProducerFinished all sent before the connection is up (the page's SSL
/// example with piped input): TLS is started first, so the queued data goes out encrypted,
/// then the connection closes with close_notify.
#[tokio::test]
async fn makessl_and_producer_finished_before_connecting_start_tls_then_close() {
    bounded(async {
        let pki = TestPki::new();
        let (addr, hello, go, server) = starttls_sink(pki.server_config(), "127.0.0.1:0", 0).await;
        let w = client::wire(
            TcpClient::new("127.0.0.1", addr.port()).tls(trusting(&pki)),
            16,
        );
        w.makessl.send(MakeSsl::new()).await.unwrap();
        w.input.send(Bytes::from_static(b"queued")).await.unwrap();
        w.control.send(Control::producer_finished()).await.unwrap();
        let c = w.run().await;
        hello.await.unwrap();
        go.send(()).unwrap();
        let (s, _, ready) = c.finish_all().await;
        assert!(matches!(s.how(), HowDied::Finished), "{s:?}");
        assert_eq!(s.error_count(), 0, "{s:?}");
        assert!(ready.try_recv().is_some());
        let (plain, secret) = server.await.unwrap();
        // Nothing went out in plaintext: "queued" was sent under TLS.
        assert!(plain.is_empty());
        assert_eq!(secret, b"queued");
    })
    .await;
}

#[tokio::test]
async fn tls_over_ipv6_verifies_the_ip_address() {
    bounded(async {
        let pki = TestPki::new();
        let (addr, hello, go, server) = starttls_sink(pki.server_config(), "[::1]:0", 0).await;
        let c = start(TcpClient::new("::1", addr.port()).tls(trusting(&pki))).await;
        c.makessl.send(MakeSsl::new()).await.unwrap();
        hello.await.unwrap();
        go.send(()).unwrap();
        let SslReady { info, .. } = c.sslready.recv().await;
        assert_eq!(info.version, "TLSv1.3");
        c.input.send(Bytes::from_static(b"over v6")).await.unwrap();
        c.control.send(Control::producer_finished()).await.unwrap();
        let (s, _) = c.finish().await;
        assert!(matches!(s.how(), HowDied::Finished), "{s:?}");
        assert_eq!(server.await.unwrap().1, b"over v6");
    })
    .await;
}

/// The name verified can differ from the host connected to (and is sent as SNI).
#[tokio::test]
async fn server_name_override_is_verified() {
    bounded(async {
        let pki = TestPki::with_names(&["service.example"]);
        let (addr, hello, go, server) = starttls_sink(pki.server_config(), "127.0.0.1:0", 0).await;
        let c = start(
            TcpClient::new("127.0.0.1", addr.port())
                .tls(trusting(&pki).with_server_name("service.example")),
        )
        .await;
        c.makessl.send(MakeSsl::new()).await.unwrap();
        hello.await.unwrap();
        go.send(()).unwrap();
        let _ = c.sslready.recv().await;
        c.input.send(Bytes::from_static(b"named")).await.unwrap();
        c.control.send(Control::producer_finished()).await.unwrap();
        let (s, _) = c.finish().await;
        assert!(matches!(s.how(), HowDied::Finished), "{s:?}");
        assert_eq!(server.await.unwrap().1, b"named");
    })
    .await;
}
