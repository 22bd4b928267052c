//! Issue 10 §3 in the library: client certificates (both sides), ALPN, the chain the server
//! presented (even when untrusted), and each TLS failure typed and in plain words. The peers are
//! rustls configured here, or `openssl s_server` / `s_client` (which alone will serve a
//! SHA-1-signed or RSA-1024 certificate, or speak TLS 1.1).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kamaelia::internet::{
    classify, HandshakeFailure, KeyAlgorithm, NotInCommon, PeerCertificates, PeerRole, ServerTls,
    TlsError, TlsInfo, TlsSettings, Trust,
};
use kamaelia::TcpClient;
use kamaelia_test::openssl::{self, Legacy, LegacyPki, SServer};
use kamaelia_test::pki::{ChainPki, TempFile, TestPki};
use kamaelia_test::servers::accept_one;
use kamaelia_test::{bounded, with_timeout};
use rustls::server::WebPkiClientVerifier;
use rustls::CertificateError;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::client::{self, trusting};

/// A rustls server configuration (built here, not by the library) presenting `pki`'s leaf,
/// requiring a client certificate from `client_ca` if given, accepting `alpn`.
fn rustls_server(
    chain: Vec<CertificateDer<'static>>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
    client_ca: Option<CertificateDer<'static>>,
    alpn: &[&[u8]],
) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca).unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// One TLS connection accepted with `config`: the handshake's outcome (the client's chain as
/// the server saw it), then an echo of what arrives until EOF.
async fn one_rustls_connection(
    config: Arc<rustls::ServerConfig>,
) -> (
    u16,
    kamaelia_test::AbortOnDrop<Result<usize, rustls::Error>>,
) {
    accept_one(move |stream| async move {
        match TlsAcceptor::from(config).accept(stream).await {
            Ok(mut tls) => {
                let presented = tls.get_ref().1.peer_certificates().map_or(0, <[_]>::len);
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = tls.read(&mut buf).await {
                    if tls.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                Ok(presented)
            }
            Err(e) => Err(e
                .get_ref()
                .and_then(|e| e.downcast_ref::<rustls::Error>())
                .cloned()
                .unwrap_or(rustls::Error::General(e.to_string()))),
        }
    })
    .await
}

/// A PKI whose CA has another name than the test's: a CA of the same name would be taken for
/// the issuer, and the chain would fail on its signature rather than its issuer.
fn stranger() -> TestPki {
    TestPki::generate("Stranger", &["localhost"], false).unwrap()
}

async fn connect(
    settings: &TlsSettings,
    port: u16,
) -> Result<
    (tokio_rustls::client::TlsStream<TcpStream>, TlsInfo),
    (TlsError, Option<PeerCertificates>),
> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    settings.connect_with_chain("localhost", tcp).await
}

/// What the client sees on its first read after the handshake (under TLS 1.3, a server's
/// verdict on the client certificate arrives there).
async fn first_read(
    stream: &mut tokio_rustls::client::TlsStream<TcpStream>,
) -> Result<Vec<u8>, TlsError> {
    let mut buf = vec![0u8; 64];
    match stream.read(&mut buf).await {
        Ok(n) => Ok(buf[..n].to_vec()),
        Err(e) => Err(classify(&e)),
    }
}

// Client certificates.

#[tokio::test]
async fn a_client_certificate_from_pem_files_is_presented_and_accepted() {
    bounded(async {
        let pki = TestPki::new();
        let (cert, key) = pki.write_client_pem("client.test");
        let config = rustls_server(pki.chain_der(), pki.key_der(), Some(pki.ca_der()), &[]);
        let (port, server) = one_rustls_connection(config).await;
        let settings = trusting(&pki)
            .with_client_cert_pem_files(cert.path(), key.path())
            .unwrap();
        assert!(settings.has_client_cert());
        let (mut stream, info) = connect(&settings, port).await.unwrap();
        assert!(
            info.client_cert_requested && info.client_cert_configured,
            "{info:?}"
        );
        stream.write_all(b"mutual").await.unwrap();
        assert_eq!(first_read(&mut stream).await.unwrap(), b"mutual");
        drop(stream);
        assert_eq!(
            (&mut { server }.0).await.unwrap(),
            Ok(1),
            "the server saw one client certificate"
        );
    })
    .await;
}

#[tokio::test]
async fn a_server_requiring_a_certificate_is_named_when_none_is_configured() {
    bounded(async {
        let pki = TestPki::new();
        let config = rustls_server(pki.chain_der(), pki.key_der(), Some(pki.ca_der()), &[]);
        let (port, server) = one_rustls_connection(config).await;
        // TLS 1.3: this side's handshake finishes before the server's verdict, and says that
        // the server asked.
        let (mut stream, info) = connect(&trusting(&pki), port).await.unwrap();
        assert!(
            info.client_cert_requested && !info.client_cert_configured,
            "{info:?}"
        );
        let err = first_read(&mut stream).await.unwrap_err();
        assert!(
            matches!(
                err,
                TlsError::HandshakeFailed(HandshakeFailure::ClientCertificateRequired)
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "the TLS handshake failed: the server requires a client certificate"
        );
        assert_eq!(
            (&mut { server }.0).await.unwrap(),
            Err(rustls::Error::NoCertificatesPresented)
        );
    })
    .await;
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused_in_words() {
    bounded(async {
        let pki = TestPki::new();
        let stranger = stranger();
        let (chain, key) = stranger.client_identity("client.test");
        let config = rustls_server(pki.chain_der(), pki.key_der(), Some(pki.ca_der()), &[]);
        let (port, server) = one_rustls_connection(config).await;
        let settings = trusting(&pki).with_client_cert(chain, key);
        let (mut stream, _) = connect(&settings, port).await.unwrap();
        let err = first_read(&mut stream).await.unwrap_err();
        match &err {
            TlsError::HandshakeFailed(HandshakeFailure::CertificateRefused(alert)) => {
                assert!(
                    err.to_string()
                        .contains("the server refused our certificate"),
                    "{err}"
                );
                assert_eq!(*alert, rustls::AlertDescription::UnknownCA);
            }
            other => panic!("expected a refused certificate, got {other:?}"),
        }
        assert!(matches!(
            (&mut { server }.0).await.unwrap(),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ));
    })
    .await;
}

/// The library's server side (`ServerTls::with_client_ca`) against `openssl s_client`: no
/// certificate, one from another CA, one from the CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_a_client_ca_judges_openssl_clients() {
    let Some(_) = openssl::available().then_some(()) else {
        return;
    };
    with_timeout(Duration::from_secs(60), async {
        let pki = TestPki::new();
        let stranger = stranger();
        let (chain_pem, key_pem) = pki.write_server_pem();
        let server = ServerTls::from_pem_files(chain_pem.path(), key_pem.path())
            .unwrap()
            .with_client_ca_pem_file(pki.write_ca_pem().path())
            .unwrap();
        let cases: [(Option<(TempFile, TempFile)>, &str); 3] = [
            (
                None,
                "the TLS handshake failed: the client presented no certificate, and one is \
                 required",
            ),
            (
                Some(stranger.write_client_pem("stranger.test")),
                "the client's certificate is not trusted: the chain does not reach a trusted CA",
            ),
            (Some(pki.write_client_pem("friend.test")), "accepted"),
        ];
        for (identity, want) in cases {
            let s = server.clone();
            let (port, accepted) =
                accept_one(move |stream| async move { s.accept(stream).await }).await;
            let args: Vec<String> = match &identity {
                None => vec![],
                Some((c, k)) => vec![
                    "-cert".into(),
                    c.path().display().to_string(),
                    "-key".into(),
                    k.path().display().to_string(),
                ],
            };
            let client = tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                openssl::s_client(
                    ([127, 0, 0, 1], port).into(),
                    &args,
                    b"",
                    Duration::from_secs(20),
                )
            });
            let got = match (&mut { accepted }.0).await.unwrap() {
                Ok((_, info)) => {
                    assert_eq!(info.peer_chain.0.len(), 1, "the client's own certificate");
                    "accepted".to_owned()
                }
                Err(e) => e.words(PeerRole::Client),
            };
            assert!(got.starts_with(want), "{got:?} should start with {want:?}");
            client.await.unwrap();
        }
    })
    .await;
}

// ALPN.

#[tokio::test]
async fn alpn_agrees_on_the_servers_choice_or_says_none_is_in_common() {
    bounded(async {
        let pki = TestPki::new();
        let config = rustls_server(pki.chain_der(), pki.key_der(), None, &[b"http/1.1"]);
        let (port, _server) = one_rustls_connection(config.clone()).await;
        let offering =
            |list: &[&[u8]]| trusting(&pki).with_alpn(list.iter().map(|p| p.to_vec()).collect());
        let (_, info) = connect(&offering(&[b"h2", b"http/1.1"]), port)
            .await
            .unwrap();
        assert_eq!(info.alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert!(info.to_string().ends_with(", ALPN http/1.1"), "{info}");

        let (port, server) = one_rustls_connection(config).await;
        let (err, _) = connect(&offering(&[b"h2"]), port).await.unwrap_err();
        assert!(
            matches!(
                err,
                TlsError::HandshakeFailed(HandshakeFailure::NoApplicationProtocol)
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("no ALPN protocol in common"),
            "{err}"
        );
        assert_eq!(
            (&mut { server }.0).await.unwrap(),
            Err(rustls::Error::NoApplicationProtocol)
        );
    })
    .await;
}

// The chain the server presented.

#[tokio::test]
async fn the_chain_is_kept_on_success_and_shown_when_untrusted() {
    bounded(async {
        let pki = TestPki::new();
        let config = rustls_server(pki.chain_der(), pki.key_der(), None, &[]);
        let (port, _s) = one_rustls_connection(config.clone()).await;
        let (_, info) = connect(&trusting(&pki), port).await.unwrap();
        assert_eq!(info.peer_chain.0, pki.chain_der());
        assert_eq!(info.key_exchange_group.as_deref(), Some("X25519"));

        // Untrusted: the error comes with the chain, read into what a person checks.
        let (port, _s) = one_rustls_connection(config).await;
        let (err, chain) = connect(&trusting(&stranger()), port).await.unwrap_err();
        assert!(matches!(
            err,
            TlsError::UntrustedCertificate(CertificateError::UnknownIssuer)
        ));
        let chain = chain.expect("the chain, though untrusted");
        assert_eq!(chain.0, pki.chain_der());
        let leaf = &chain.summaries()[0];
        assert_eq!(leaf.subject, "CN=Kamaelia test server");
        assert_eq!(leaf.issuer, "CN=Kamaelia test CA");
        assert_eq!(
            leaf.subject_alt_names,
            ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]
        );
        assert_eq!(leaf.key.algorithm, KeyAlgorithm::Ec);
        assert!(leaf.not_before < leaf.not_after);
        let digest = kamaelia_test::sha256(&pki.chain_der()[0]);
        let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(leaf.sha256, hex.join(":"));
    })
    .await;
}

/// A TcpClient whose handshake fails sends the server's chain as a notice before the error.
#[tokio::test]
async fn a_tcp_client_signals_the_untrusted_chain_before_the_error() {
    bounded(async {
        let pki = TestPki::new();
        let config = rustls_server(pki.chain_der(), pki.key_der(), None, &[]);
        let (port, _s) = one_rustls_connection(config).await;
        let c = client::start(TcpClient::new("127.0.0.1", port).tls(trusting(&stranger()))).await;
        c.makessl.send(kamaelia::MakeSsl::new()).await.unwrap();
        c.input.send(Bytes::from_static(b"x")).await.unwrap();
        let (signals, _) = c.finish().await;
        let chains = signals.notices::<PeerCertificates>();
        assert_eq!(chains.len(), 1, "{signals:?}");
        assert_eq!(chains[0].0, pki.chain_der());
        assert!(signals
            .errors::<kamaelia::TcpError>()
            .iter()
            .any(|e| matches!(
                e,
                kamaelia::TcpError::Tls(TlsError::UntrustedCertificate(_))
            )));
    })
    .await;
}

// Each failure in plain words.

async fn failure_against(config: Arc<rustls::ServerConfig>, settings: &TlsSettings) -> TlsError {
    let (port, _s) = one_rustls_connection(config).await;
    connect(settings, port).await.map(|_| ()).unwrap_err().0
}

#[tokio::test]
async fn an_expired_certificate_says_when_it_expired() {
    bounded(async {
        let pki = TestPki::expired();
        let config = rustls_server(pki.chain_der(), pki.key_der(), None, &[]);
        let err = failure_against(config, &trusting(&pki)).await;
        assert!(matches!(
            err,
            TlsError::UntrustedCertificate(CertificateError::ExpiredContext { .. })
        ));
        assert_eq!(
            err.to_string(),
            "the server's certificate is not trusted: it expired on 2001-01-01 00:00:00 UTC"
        );
    })
    .await;
}

#[tokio::test]
async fn a_missing_intermediate_is_suspected_and_a_full_chain_works() {
    bounded(async {
        let pki = ChainPki::new();
        let settings = TlsSettings::new().with_trust(Trust::Certificates(vec![pki.root_der()]));
        let err = failure_against(pki.server_config(false), &settings).await;
        assert!(
            err.to_string()
                .ends_with("the chain does not reach a trusted CA (is an intermediate missing?)"),
            "{err}"
        );
        let (port, _s) = one_rustls_connection(pki.server_config(true)).await;
        let (_, info) = connect(&settings, port).await.unwrap();
        assert_eq!(info.peer_chain.0.len(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_certificate_with_its_name_only_in_cn_is_named_as_such() {
    bounded(async {
        let pki = TestPki::cn_only();
        let config = rustls_server(pki.chain_der(), pki.key_der(), None, &[]);
        let err = failure_against(config, &trusting(&pki)).await;
        match &err {
            TlsError::NoSubjectAltName { common_names, .. } => {
                assert_eq!(common_names, &["localhost"]);
            }
            other => panic!("expected NoSubjectAltName, got {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "the server's certificate has no subjectAltName; names in CN are not accepted \
             (CN=localhost)"
        );
    })
    .await;
}

/// An openssl s_server presenting `pki`'s leaf (at security level 0, so it will); the error
/// of a client trusting `pki`'s CA, or `None` if it connected (or without openssl).
async fn against_openssl(pki: &LegacyPki, extra: &[&str]) -> Option<Result<TlsInfo, TlsError>> {
    let mut args = vec![
        "-naccept",
        "1",
        "-cert",
        pki.cert.path().to_str().unwrap(),
        "-key",
        pki.key.path().to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let server = tokio::task::spawn_blocking({
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            SServer::start(&args)
        }
    })
    .await
    .unwrap()?;
    let settings = TlsSettings::new().with_trust(Trust::PemFile(pki.ca.path().to_path_buf()));
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
    Some(
        settings
            .connect("localhost", tcp)
            .await
            .map(|(_, info)| info),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sha1_signed_and_rsa_1024_certificates_from_openssl_are_named() {
    with_timeout(Duration::from_secs(60), async {
        let Some(sha1) = LegacyPki::generate(Legacy::Sha1Signed) else {
            return;
        };
        let lax = ["-cipher", "DEFAULT:@SECLEVEL=0"];
        let err = against_openssl(&sha1, &lax).await.unwrap().unwrap_err();
        assert_eq!(
            err.to_string(),
            "the server's certificate is not trusted: it is signed with SHA-1, which is not \
             accepted"
        );

        let weak = LegacyPki::generate(Legacy::Rsa1024).unwrap();
        let err = against_openssl(&weak, &lax).await.unwrap().unwrap_err();
        match &err {
            TlsError::WeakKey(key) => {
                assert_eq!((key.algorithm, key.bits), (KeyAlgorithm::Rsa, 1024))
            }
            other => panic!("expected WeakKey, got {other:?}"),
        }
        assert!(
            err.to_string().contains("key is too weak (RSA 1024 bits"),
            "{err}"
        );

        // The same server with an ordinary certificate: the peer itself is not the problem.
        let fine = LegacyPki::generate(Legacy::Rsa2048).unwrap();
        let info = against_openssl(&fine, &lax).await.unwrap().unwrap();
        assert_eq!(info.peer_chain.summaries()[0].key.bits, 2048);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_version_or_suite_in_common_with_openssl_is_said_so() {
    with_timeout(Duration::from_secs(60), async {
        let Some(pki) = LegacyPki::generate(Legacy::Rsa2048) else {
            return;
        };
        // Only CBC suites, which rustls does not offer.
        let err = against_openssl(&pki, &["-tls1_2", "-cipher", "AES128-SHA"])
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(
                err,
                TlsError::HandshakeFailed(HandshakeFailure::NothingInCommon(_))
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("no TLS version / cipher suite / key-exchange group in common"),
            "{err}"
        );
        // Only TLS 1.1.
        let err = against_openssl(&pki, &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"])
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(
                err,
                TlsError::HandshakeFailed(HandshakeFailure::NothingInCommon(
                    NotInCommon::Version | NotInCommon::Unknown
                ))
            ),
            "{err:?}"
        );
    })
    .await;
}

// The server's side.

#[tokio::test]
async fn an_encrypted_key_is_refused_as_encrypted() {
    let pki = TestPki::new();
    let (chain, key) = pki.write_server_pem();
    let Some(encrypted) = openssl::encrypted_key(key.path()) else {
        return;
    };
    let want = "the key is encrypted; give an unencrypted key";
    let err = ServerTls::from_pem_files(chain.path(), encrypted.path()).unwrap_err();
    assert!(err.to_string().contains(want), "{err}");
    let err = TlsSettings::new()
        .with_client_cert_pem_files(chain.path(), encrypted.path())
        .unwrap_err();
    assert!(err.to_string().contains(want), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_names_plaintext_and_tls_1_1_clients() {
    with_timeout(Duration::from_secs(60), async {
        let pki = TestPki::new();
        let server = pki.server_tls();
        let s = server.clone();
        let (port, accepted) =
            accept_one(move |stream| async move { s.accept(stream).await }).await;
        let mut plain = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        plain
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let err = (&mut { accepted }.0).await.unwrap().unwrap_err();
        assert!(matches!(err, TlsError::NotTls), "{err:?}");
        assert_eq!(err.words(PeerRole::Client), "the client did not speak TLS");

        if !openssl::available() {
            return;
        }
        let s = server.clone();
        let (port, accepted) =
            accept_one(move |stream| async move { s.accept(stream).await }).await;
        let client = tokio::task::spawn_blocking(move || {
            openssl::s_client(
                ([127, 0, 0, 1], port).into(),
                &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"],
                b"",
                Duration::from_secs(20),
            )
        });
        let err = (&mut { accepted }.0).await.unwrap().unwrap_err();
        assert!(
            matches!(
                err,
                TlsError::HandshakeFailed(HandshakeFailure::ClientTooOld)
            ),
            "{err:?}"
        );
        assert!(
            err.words(PeerRole::Client)
                .contains("the client offered only TLS 1.1 or older"),
            "{err}"
        );
        client.await.unwrap();
    })
    .await;
}
