//! Errors travelling on `signal`, in plain words: the one line a failed run prints.

use std::error::Error as StdError;
use std::io;

use axon::{ComponentFailure, ErrorMessage};
use kamaelia::internet::{
    certificate_problem, ConnectError, HandshakeFailure, ProxyError, StartTlsError, TcpError,
    TlsError, TlsInfo,
};
use kamaelia::{ConsoleError, FileReaderError};

/// What an error on `signal` means for the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Our standard output was closed by its reader: not an error (`| head`).
    StdoutClosed,
    /// The run failed; the line says why in plain words.
    Failed(String),
}

/// Reads an error message from any component and says what it means: the first error of a
/// kind it knows, walking the chain from the message itself through each `source()` (a
/// component's failure holds the error it returned).
pub(crate) fn judge(e: &ErrorMessage) -> Verdict {
    let err: &(dyn StdError + 'static) = e.error();
    if let Some(ConsoleError::BrokenPipe) = find::<ConsoleError>(err) {
        return Verdict::StdoutClosed;
    }
    let line = if let Some(tcp) = find::<TcpError>(err) {
        tcp_error(tcp)
    } else if let Some(s) = find::<StartTlsError>(err) {
        s.to_string()
    } else if let Some(p) = find::<ProxyError>(err) {
        p.to_string()
    } else if let Some(c) = find::<ConsoleError>(err) {
        with_sources(c)
    } else if let Some(r) = find::<FileReaderError>(err) {
        with_sources(r)
    } else if let Some(f) = find::<ComponentFailure>(err) {
        with_sources(f)
    } else {
        format!("{}: {}", e.component(), with_sources(err))
    };
    Verdict::Failed(line)
}

/// The first error of type `T` in `e`'s chain: `e` itself, then each `source()` in turn.
pub(crate) fn find<'a, T: StdError + 'static>(e: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(t) = c.downcast_ref::<T>() {
            return Some(t);
        }
        cause = c.source();
    }
    None
}

/// A [`TcpError`] in plain words, starting with the phrase a user would search for.
pub(crate) fn tcp_error(e: &TcpError) -> String {
    match e {
        TcpError::Connect(c) => connect_error(c),
        TcpError::Reset { peer } => format!("connection reset by peer ({peer})"),
        TcpError::BrokenPipe { peer } => {
            format!("connection closed by peer while sending (broken pipe, {peer})")
        }
        TcpError::Io { peer, source } => format!("i/o error on the connection to {peer}: {source}"),
        TcpError::Tls(t) => tls_error(t),
        TcpError::IdleTimeout { peer, after } => format!(
            "idle timeout: no traffic either way for {} s ({peer}), so the session was ended",
            after.as_secs_f64()
        ),
        other => with_sources(other),
    }
}

fn connect_error(e: &ConnectError) -> String {
    match e {
        ConnectError::Resolve { host, source } => format!("could not resolve {host} ({source})"),
        ConnectError::NoAddresses { host, family } => {
            format!("could not resolve {host} to an {family} address")
        }
        ConnectError::Refused { addr } => format!("connection refused by {addr}"),
        ConnectError::TimedOut { host, port, after } => format!(
            "timed out connecting to {host}:{port} after {} s",
            after.as_secs_f64()
        ),
        ConnectError::Unreachable { addr, .. } => format!("network unreachable: {addr}"),
        ConnectError::Other { addr, source } => format!("could not connect to {addr}: {source}"),
        other => with_sources(other),
    }
}

/// A client's TLS failure in plain words (the peer is the server).
pub(crate) fn tls_error(e: &TlsError) -> String {
    match e {
        TlsError::UntrustedCertificate(why) => format!(
            "TLS certificate not trusted: {}",
            certificate_problem(why, "the server's certificate")
        ),
        TlsError::WeakKey(_) => format!("TLS certificate not trusted: {e}"),
        TlsError::NoSubjectAltName { .. } => format!("TLS certificate name mismatch: {e}"),
        TlsError::HandshakeFailed(HandshakeFailure::ClientCertificateRequired) => format!(
            "TLS handshake failed: {} (use --cert/--key)",
            HandshakeFailure::ClientCertificateRequired
        ),
        TlsError::RenegotiationRefused => format!("TLS session ended: {e}"),
        TlsError::NameMismatch { expected: None } => "TLS certificate name mismatch".to_string(),
        TlsError::NameMismatch {
            expected: Some(expected),
        } => format!("TLS certificate name mismatch: not valid for {expected}"),
        TlsError::HandshakeFailed(why) => format!("TLS handshake failed: {why}"),
        TlsError::NotTls => "TLS handshake failed: the server did not answer in TLS".to_string(),
        TlsError::HandshakeTimeout(after) => format!(
            "TLS handshake failed: timed out after {} s",
            after.as_secs_f64()
        ),
        TlsError::PlaintextInjection { bytes } => format!(
            "TLS handshake failed: the server sent {bytes} plaintext bytes before the \
             handshake; refusing to switch (possible injection)"
        ),
        TlsError::Io(source) if source.kind() == io::ErrorKind::ConnectionReset => {
            "connection reset by peer (during TLS)".to_string()
        }
        TlsError::ClosedWithoutCloseNotify => {
            "TLS handshake failed: the server closed the connection".to_string()
        }
        // The server closed before the switch was handled (a makessl that arrived after the
        // connection was up and the server had already hung up).
        TlsError::NotConnected => {
            "TLS handshake failed: the server closed the connection before TLS started".to_string()
        }
        other => with_sources(other),
    }
}

/// The line for a connection that the server ended right after a TLS 1.3 handshake in which
/// it asked for a client certificate and got none: the server's refusal (its
/// certificate_required alert) may be lost when our next write meets the closed connection
/// first, so the asking is the evidence left. `None` for any other failure.
pub(crate) fn unanswered_certificate_request(
    e: &ErrorMessage,
    tls: Option<&TlsInfo>,
) -> Option<String> {
    let tls = tls.filter(|t| t.client_cert_requested && !t.client_cert_configured)?;
    let tcp = find::<TcpError>(e.error())?;
    let transport = matches!(
        tcp,
        TcpError::Reset { .. }
            | TcpError::BrokenPipe { .. }
            | TcpError::Tls(TlsError::Io(_) | TlsError::ClosedWithoutCloseNotify)
    );
    (transport && tls.version == "TLSv1.3").then(|| {
        format!(
            "the server ended the session after a TLS handshake in which it asked for a client \
             certificate and none was sent: it probably requires one (use --cert/--key) [{}]",
            tcp_error(tcp)
        )
    })
}

/// `error: cause: cause`, each source once.
pub(crate) fn with_sources(e: &(dyn StdError + 'static)) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn connection_failures_read_as_plain_words() {
        let addr = "127.0.0.1:9".parse().unwrap();
        let refused = TcpError::Connect(ConnectError::Refused { addr });
        assert!(tcp_error(&refused).starts_with("connection refused"));
        let timed = TcpError::Connect(ConnectError::TimedOut {
            host: "h".into(),
            port: 1,
            after: Duration::from_millis(500),
        });
        assert_eq!(tcp_error(&timed), "timed out connecting to h:1 after 0.5 s");
        let resolve = TcpError::Connect(ConnectError::Resolve {
            host: "nowhere.invalid".into(),
            source: Arc::new(io::Error::other("no such host")),
        });
        assert!(tcp_error(&resolve).starts_with("could not resolve nowhere.invalid"));
        assert!(tcp_error(&TcpError::Reset { peer: addr }).starts_with("connection reset by peer"));
    }

    #[test]
    fn tls_failures_name_their_kind() {
        let t = |e| tcp_error(&TcpError::Tls(e));
        assert!(t(TlsError::UntrustedCertificate(
            rustls::CertificateError::UnknownIssuer
        ))
        .starts_with("TLS certificate not trusted"));
        assert!(t(TlsError::NameMismatch {
            expected: Some("x".into())
        })
        .starts_with("TLS certificate name mismatch"));
        assert!(t(TlsError::NotTls).starts_with("TLS handshake failed"));
        assert!(t(TlsError::PlaintextInjection { bytes: 3 }).contains("injection"));
        assert!(t(TlsError::NotConnected).starts_with("TLS handshake failed: the server closed"));
    }

    /// A TLS 1.3 session ended by the server right after it asked for a certificate that was
    /// not sent reads as the likely refusal; nothing else does.
    #[test]
    fn an_unanswered_certificate_request_explains_a_closed_session() {
        let addr = "127.0.0.1:9".parse().unwrap();
        let info = |version: &str, requested: bool, configured: bool| {
            let mut i = TlsInfo::new(version, "TLS13_AES_256_GCM_SHA384");
            i.client_cert_requested = requested;
            i.client_cert_configured = configured;
            i
        };
        let broken = ErrorMessage::new("c", TcpError::BrokenPipe { peer: addr });
        let refused = ErrorMessage::new("c", TcpError::Connect(ConnectError::Refused { addr }));
        let cases = [
            (&broken, Some(info("TLSv1.3", true, false)), true),
            (&broken, Some(info("TLSv1.3", true, true)), false),
            (&broken, Some(info("TLSv1.3", false, false)), false),
            (&broken, Some(info("TLSv1.2", true, false)), false),
            (&broken, None, false),
            (&refused, Some(info("TLSv1.3", true, false)), false),
        ];
        for (e, tls, want) in cases {
            let line = unanswered_certificate_request(e, tls.as_ref());
            assert_eq!(line.is_some(), want, "{e:?} {tls:?}");
            if let Some(line) = line {
                assert!(
                    line.contains("it probably requires one (use --cert/--key)"),
                    "{line}"
                );
                assert!(line.contains("broken pipe"), "{line}");
            }
        }
    }

    /// Each row of issue 10's table of TLS errors, from the typed error to the line printed.
    #[test]
    fn tls_failures_read_as_plain_words() {
        use kamaelia::internet::{KeyAlgorithm, KeyDescription, NotInCommon};
        use rustls::pki_types::UnixTime;
        use rustls::{AlertDescription, CertificateError};
        let t = |e| tcp_error(&TcpError::Tls(e));
        let cases: Vec<(TlsError, &str)> = vec![
            (
                TlsError::UntrustedCertificate(CertificateError::ExpiredContext {
                    time: UnixTime::since_unix_epoch(Duration::from_secs(1_796_112_648)),
                    not_after: UnixTime::since_unix_epoch(Duration::from_secs(978_307_200)),
                }),
                "TLS certificate not trusted: the server's certificate expired on 2001-01-01 \
                 00:00:00 UTC",
            ),
            (
                TlsError::UntrustedCertificate(CertificateError::UnknownIssuer),
                "TLS certificate not trusted: the chain does not reach a trusted CA (is an \
                 intermediate missing?)",
            ),
            (
                TlsError::UntrustedCertificate(
                    CertificateError::UnsupportedSignatureAlgorithmContext {
                        // sha1WithRSAEncryption, NULL parameters
                        signature_algorithm_id: vec![
                            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05, 0x05,
                            0x00,
                        ],
                        supported_algorithms: vec![],
                    },
                ),
                "TLS certificate not trusted: the server's certificate is signed with SHA-1, \
                 which is not accepted",
            ),
            (
                TlsError::WeakKey(KeyDescription {
                    algorithm: KeyAlgorithm::Rsa,
                    bits: 1024,
                }),
                "TLS certificate not trusted: the server's certificate key is too weak (RSA \
                 1024 bits; at least 2048 bits are needed)",
            ),
            (
                TlsError::NoSubjectAltName {
                    expected: Some("localhost".into()),
                    common_names: vec!["localhost".into()],
                },
                "TLS certificate name mismatch: the server's certificate has no \
                 subjectAltName; names in CN are not accepted (CN=localhost)",
            ),
            (
                TlsError::HandshakeFailed(HandshakeFailure::NothingInCommon(NotInCommon::Unknown)),
                "TLS handshake failed: no TLS version / cipher suite / key-exchange group in \
                 common (the server answered handshake_failure)",
            ),
            (
                TlsError::HandshakeFailed(HandshakeFailure::NothingInCommon(NotInCommon::Version)),
                "TLS handshake failed: no TLS version in common",
            ),
            (
                TlsError::HandshakeFailed(HandshakeFailure::ClientCertificateRequired),
                "TLS handshake failed: the server requires a client certificate (use \
                 --cert/--key)",
            ),
            (
                TlsError::HandshakeFailed(HandshakeFailure::CertificateRefused(
                    AlertDescription::UnknownCA,
                )),
                "TLS handshake failed: the server refused our certificate (unknown_ca: it is \
                 not signed by a CA trusted there)",
            ),
            (
                TlsError::HandshakeFailed(HandshakeFailure::NoApplicationProtocol),
                "TLS handshake failed: no ALPN protocol in common (the protocols offered were \
                 refused)",
            ),
            (
                TlsError::RenegotiationRefused,
                "TLS session ended: the server asked to renegotiate TLS, which is refused (not \
                 supported), and then ended the connection",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(t(err), want);
        }
    }
}
