//! Errors travelling on `signal`, in plain words: the one line a failed run prints.

use std::error::Error as StdError;
use std::io;

use axon::{ComponentFailure, ErrorMessage};
use kamaelia::internet::{ConnectError, ProxyError, StartTlsError, TcpError, TlsError};
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

fn tls_error(e: &TlsError) -> String {
    match e {
        TlsError::UntrustedCertificate(why) => format!("TLS certificate not trusted: {why}"),
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
}
