//! TLS handshakes over loopback with certificates made at test time.

use std::sync::Arc;
use std::time::Duration;

use kamaelia::internet::{classify, ServerTls, TlsError, TlsSettings, Trust};
use kamaelia_test::bounded;
use kamaelia_test::pki::{TempFile, TestPki};
use kamaelia_test::servers::{plaintext_server, silent_server, tls_echo_server};
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

fn trusting(pki: &TestPki) -> TlsSettings {
    TlsSettings::new().with_trust(Trust::Certificates(vec![pki.ca_der()]))
}

async fn tls_connect(
    settings: &TlsSettings,
    addr: std::net::SocketAddr,
    host: &str,
) -> Result<
    (
        tokio_rustls::client::TlsStream<TcpStream>,
        kamaelia::internet::TlsInfo,
    ),
    TlsError,
> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    settings.connect(host, tcp).await
}

#[tokio::test]
async fn trusted_certificate_handshakes_with_tls13() {
    bounded(async {
        let pki = TestPki::new();
        let server = tls_echo_server(pki.server_config()).await;
        for host in ["localhost", "127.0.0.1"] {
            let (mut stream, info) = tls_connect(&trusting(&pki), server.addr, host)
                .await
                .unwrap();
            assert_eq!(info.version, "TLSv1.3");
            assert!(
                info.cipher_suite.starts_with("TLS13_"),
                "{}",
                info.cipher_suite
            );
            stream.write_all(b"hello").await.unwrap();
            let mut back = [0u8; 5];
            stream.read_exact(&mut back).await.unwrap();
            assert_eq!(&back, b"hello");
        }
    })
    .await;
}

#[tokio::test]
async fn unknown_ca_is_untrusted() {
    bounded(async {
        let pki = TestPki::new();
        let stranger = TestPki::new();
        let server = tls_echo_server(pki.server_config()).await;
        let err = tls_connect(&trusting(&stranger), server.addr, "localhost")
            .await
            .unwrap_err();
        assert!(matches!(err, TlsError::UntrustedCertificate(_)), "{err:?}");
    })
    .await;
}

/// rustls's reason stays typed, so a caller can tell an expired certificate from others.
#[tokio::test]
async fn an_expired_certificate_can_be_matched_as_expired() {
    bounded(async {
        let pki = TestPki::expired();
        let server = tls_echo_server(pki.server_config()).await;
        let err = tls_connect(&trusting(&pki), server.addr, "localhost")
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                TlsError::UntrustedCertificate(rustls::CertificateError::Expired)
                    | TlsError::UntrustedCertificate(
                        rustls::CertificateError::ExpiredContext { .. }
                    )
            ),
            "{err:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn built_in_roots_do_not_trust_a_private_ca() {
    bounded(async {
        let pki = TestPki::new();
        let server = tls_echo_server(pki.server_config()).await;
        let err = tls_connect(&TlsSettings::new(), server.addr, "localhost")
            .await
            .unwrap_err();
        assert!(matches!(err, TlsError::UntrustedCertificate(_)), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn wrong_name_is_a_name_mismatch() {
    bounded(async {
        let pki = TestPki::with_names(&["other.test"]);
        let server = tls_echo_server(pki.server_config()).await;
        let err = tls_connect(&trusting(&pki), server.addr, "localhost")
            .await
            .unwrap_err();
        match err {
            TlsError::NameMismatch { expected } => {
                assert_eq!(expected.as_deref(), Some("localhost"))
            }
            other => panic!("expected a name mismatch, got {other:?}"),
        }
        // The override names what is verified.
        let settings = trusting(&pki).with_server_name("other.test");
        tls_connect(&settings, server.addr, "127.0.0.1")
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn plaintext_answer_is_not_tls() {
    bounded(async {
        let pki = TestPki::new();
        let server =
            plaintext_server(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await;
        let err = tls_connect(&trusting(&pki), server.addr, "localhost")
            .await
            .unwrap_err();
        assert!(matches!(err, TlsError::NotTls), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn silent_server_times_the_handshake_out() {
    bounded(async {
        let pki = TestPki::new();
        let server = silent_server().await;
        let timeout = Duration::from_millis(200);
        let settings = trusting(&pki).with_handshake_timeout(timeout);
        let started = Instant::now();
        let err = tls_connect(&settings, server.addr, "localhost")
            .await
            .unwrap_err();
        let elapsed = started.elapsed();
        assert!(
            matches!(err, TlsError::HandshakeTimeout(t) if t == timeout),
            "{err:?}"
        );
        assert!(elapsed >= timeout && elapsed < timeout * 5, "{elapsed:?}");
    })
    .await;
}

#[tokio::test]
async fn ca_from_a_pem_file_is_trusted() {
    bounded(async {
        let pki = TestPki::new();
        let server = tls_echo_server(pki.server_config()).await;
        let ca = pki.write_ca_pem();
        let settings = TlsSettings::new().with_trust(Trust::PemFile(ca.path().to_owned()));
        let (_stream, info) = tls_connect(&settings, server.addr, "localhost")
            .await
            .unwrap();
        assert_eq!(info.version, "TLSv1.3");
    })
    .await;
}

#[test]
fn missing_pem_file_is_a_config_error_naming_it() {
    let path = std::env::temp_dir().join("kamaelia-test-no-such-ca.pem");
    let err = TlsSettings::new()
        .with_trust(Trust::PemFile(path.clone()))
        .client_config()
        .unwrap_err();
    match &err {
        TlsError::Config(reason) => assert!(reason.contains(&*path.to_string_lossy()), "{reason}"),
        other => panic!("expected a config error, got {other:?}"),
    }
    assert!(err.to_string().starts_with("invalid TLS configuration"));
}

#[test]
fn pem_file_without_certificates_is_a_config_error() {
    let empty = TempFile::new("empty.pem", b"not a certificate\n");
    let err = TlsSettings::new()
        .with_trust(Trust::PemFile(empty.path().to_owned()))
        .client_config()
        .unwrap_err();
    assert!(
        matches!(&err, TlsError::Config(r) if r.contains("no certificates")),
        "{err:?}"
    );
}

#[tokio::test]
async fn server_identity_from_pem_files() {
    bounded(async {
        let pki = TestPki::new();
        let (chain, key) = pki.write_server_pem();
        let config = ServerTls::from_pem_files(chain.path(), key.path())
            .unwrap()
            .server_config()
            .unwrap();
        let server = tls_echo_server(config).await;
        tls_connect(&trusting(&pki), server.addr, "localhost")
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn closing_without_close_notify_is_reported() {
    bounded(async {
        let pki = TestPki::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(pki.server_config());
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await.unwrap();
            tls.write_all(b"partial").await.unwrap();
            tls.flush().await.unwrap();
            // Drop the TCP stream without a close_notify.
            let (tcp, _session) = tls.into_inner();
            drop(tcp);
        });
        let (mut stream, _info) = tls_connect(&trusting(&pki), addr, "localhost")
            .await
            .unwrap();
        let mut received = Vec::new();
        let err = stream.read_to_end(&mut received).await.unwrap_err();
        assert_eq!(received, b"partial");
        assert!(
            matches!(classify(&err), TlsError::ClosedWithoutCloseNotify),
            "{err:?}"
        );
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn client_certificate_is_presented_when_asked() {
    bounded(async {
        let pki = TestPki::new();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut client_roots = rustls::RootCertStore::empty();
        client_roots.add(pki.ca_der()).unwrap();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(client_roots), provider.clone())
                .build()
                .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(pki.chain_der(), pki.key_der())
            .unwrap();
        let server = tls_echo_server(Arc::new(config)).await;
        let (chain, key) = pki.client_identity("client.test");
        let settings = trusting(&pki).with_client_cert(chain, key);
        let (mut stream, _info) = tls_connect(&settings, server.addr, "localhost")
            .await
            .unwrap();
        // In TLS 1.3 the server judges the client certificate after the client's handshake
        // ends, so only an echo proves it was accepted.
        stream.write_all(b"mutual").await.unwrap();
        let mut back = [0u8; 6];
        stream.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"mutual");
    })
    .await;
}
