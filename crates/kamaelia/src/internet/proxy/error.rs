//! Why a proxy handshake failed, and why a proxy URL was refused.

use std::fmt;
use std::time::Duration;

use super::dialogue::{MAX_REPLY_BYTES, MAX_REPLY_LINE};

/// Why a [`ProxyClient`](super::ProxyClient) could not open its tunnel. Sent on the component's
/// `connevents` outbox as a `Control::Error`, before it closes the connection to the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyError {
    /// An HTTP proxy answered CONNECT with a status other than 2xx (and other than 407).
    Refused {
        /// The proxy's status line after the version, e.g. `403 Forbidden`.
        status: String,
    },
    /// A SOCKS5 proxy could not or would not connect to the target.
    SocksRefused(SocksReply),
    /// The proxy wants credentials and none were given (HTTP 407, or SOCKS5 accepting none of
    /// the offered methods).
    AuthRequired {
        /// What the proxy said.
        detail: String,
    },
    /// The proxy refused the credentials given.
    AuthFailed {
        /// What the proxy said.
        detail: String,
    },
    /// The proxy closed the connection before the tunnel was open.
    Closed,
    /// The proxy's reply is not what the protocol allows.
    Malformed(String),
    /// A line of an HTTP proxy's reply was longer than [`MAX_REPLY_LINE`] bytes.
    LineTooLong,
    /// An HTTP proxy's reply (status line and headers) was longer than [`MAX_REPLY_BYTES`].
    ReplyTooLong,
    /// The proxy did not open the tunnel in time, counted from the moment the connection to it
    /// was up.
    TimedOut(Duration),
    /// The request cannot be put into the protocol: a target name or a credential too long for
    /// SOCKS5 (255 bytes), or a target name with characters that would change an HTTP request.
    Unsendable(String),
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::Refused { status } => write!(f, "the proxy refused: {status}"),
            ProxyError::SocksRefused(r) => {
                write!(f, "the proxy could not open the tunnel: {r}")
            }
            ProxyError::AuthRequired { detail } => {
                write!(f, "the proxy requires authentication ({detail})")
            }
            ProxyError::AuthFailed { detail } => {
                write!(f, "the proxy refused the credentials ({detail})")
            }
            ProxyError::Closed => {
                f.write_str("the proxy closed the connection before the tunnel was open")
            }
            ProxyError::Malformed(what) => write!(f, "the proxy's reply is malformed: {what}"),
            ProxyError::LineTooLong => write!(
                f,
                "the proxy's reply has a line longer than {MAX_REPLY_LINE} bytes"
            ),
            ProxyError::ReplyTooLong => write!(
                f,
                "the proxy's reply is longer than {MAX_REPLY_BYTES} bytes without ending"
            ),
            ProxyError::TimedOut(after) => write!(
                f,
                "the proxy did not open the tunnel within {} s",
                after.as_secs_f64()
            ),
            ProxyError::Unsendable(why) => write!(f, "cannot ask the proxy: {why}"),
        }
    }
}

impl std::error::Error for ProxyError {}

/// A SOCKS5 reply code other than success (RFC 1928 §6), in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SocksReply {
    /// 1: general SOCKS server failure.
    GeneralFailure,
    /// 2: connection not allowed by ruleset.
    NotAllowed,
    /// 3: network unreachable.
    NetworkUnreachable,
    /// 4: host unreachable.
    HostUnreachable,
    /// 5: connection refused (by the target).
    ConnectionRefused,
    /// 6: TTL expired.
    TtlExpired,
    /// 7: command not supported.
    CommandNotSupported,
    /// 8: address type not supported.
    AddressTypeNotSupported,
    /// Any other code.
    Other(u8),
}

impl SocksReply {
    /// The reply for `code` (which is not 0, success).
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => SocksReply::GeneralFailure,
            2 => SocksReply::NotAllowed,
            3 => SocksReply::NetworkUnreachable,
            4 => SocksReply::HostUnreachable,
            5 => SocksReply::ConnectionRefused,
            6 => SocksReply::TtlExpired,
            7 => SocksReply::CommandNotSupported,
            8 => SocksReply::AddressTypeNotSupported,
            other => SocksReply::Other(other),
        }
    }

    /// The code on the wire.
    pub fn code(self) -> u8 {
        match self {
            SocksReply::GeneralFailure => 1,
            SocksReply::NotAllowed => 2,
            SocksReply::NetworkUnreachable => 3,
            SocksReply::HostUnreachable => 4,
            SocksReply::ConnectionRefused => 5,
            SocksReply::TtlExpired => 6,
            SocksReply::CommandNotSupported => 7,
            SocksReply::AddressTypeNotSupported => 8,
            SocksReply::Other(c) => c,
        }
    }
}

impl fmt::Display for SocksReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words = match self {
            SocksReply::GeneralFailure => "general failure",
            SocksReply::NotAllowed => "not allowed by the proxy's rules",
            SocksReply::NetworkUnreachable => "network unreachable",
            SocksReply::HostUnreachable => "host unreachable",
            SocksReply::ConnectionRefused => "connection refused by the target",
            SocksReply::TtlExpired => "TTL expired",
            SocksReply::CommandNotSupported => "CONNECT not supported",
            SocksReply::AddressTypeNotSupported => "address type not supported",
            SocksReply::Other(_) => "unknown reply code",
        };
        write!(f, "{words} (SOCKS5 reply {})", self.code())
    }
}

/// Why a proxy URL (`http://[user:pass@]host[:port]`, `socks5://…`) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyUrlError {
    /// The scheme is missing or not one of `http`, `socks5`, `socks5h`.
    Scheme(String),
    /// There is no host.
    NoHost,
    /// The port is not a number from 1 to 65535.
    Port(String),
    /// A `%` is not followed by two hex digits, or the decoded text is not UTF-8.
    Escape,
    /// Something follows the address (a path, a query).
    Trailing(String),
    /// A SOCKS5 user name or password is empty or longer than 255 bytes (RFC 1929).
    Credentials,
}

impl fmt::Display for ProxyUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyUrlError::Scheme(s) => write!(
                f,
                "proxy URL: unknown scheme {s:?} (use http://, socks5:// or socks5h://)"
            ),
            ProxyUrlError::NoHost => f.write_str("proxy URL: no host"),
            ProxyUrlError::Port(p) => write!(f, "proxy URL: {p:?} is not a port (1-65535)"),
            ProxyUrlError::Escape => {
                f.write_str("proxy URL: a %-escape in the user name or password is not valid")
            }
            ProxyUrlError::Trailing(t) => {
                write!(f, "proxy URL: unexpected {t:?} after host:port")
            }
            ProxyUrlError::Credentials => {
                f.write_str("proxy URL: a SOCKS5 user name and password are each 1 to 255 bytes")
            }
        }
    }
}

impl std::error::Error for ProxyUrlError {}
