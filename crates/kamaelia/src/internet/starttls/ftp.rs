//! FTP's TLS (RFC 4217 §4): the client's dialogue up to `234` after `AUTH TLS`.

use std::time::Duration;

use bytes::Bytes;

use super::client::{client_component, ClientDialogue, Lines, Step};
use super::error::StartTlsError;

/// The client side of FTP's TLS (RFC 4217): the `220` greeting, `AUTH TLS`, its `234`, then
/// TLS on the control connection. Turn it into a [`Component`](axon::Component) with
/// `.into()`.
///
/// Wired like [`SmtpStartTlsClient`](super::SmtpStartTlsClient) (same boxes, same example with
/// `FtpStartTlsClient::new()` and port 21).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use axon::Component;
/// use kamaelia::internet::FtpStartTlsClient;
///
/// // Wired between the user's side and a TcpClient as SmtpStartTlsClient's example shows.
/// let c: Component = FtpStartTlsClient::new().timeout(Duration::from_secs(10)).into();
/// assert!(c.boxref("makessl").is_ok() && c.boxref("touser").is_ok());
/// ```
///
/// # How it works
///
/// As [`SmtpStartTlsClient`](super::SmtpStartTlsClient), with this dialogue: the greeting's
/// last line (`220 `; `220-` continuation lines and a `120` "ready soon" are read and
/// skipped) must be `220`; then `AUTH TLS` is sent and its last line must be `234`, the
/// go-ahead. A `4xx` or `5xx` answer (`534 Policy requires SSL`, `502 not implemented`) fails
/// with [`StartTlsError::Refused`].
///
#[doc = include_str!("client_boxes.md")]
#[derive(Debug, Clone)]
pub struct FtpStartTlsClient {
    timeout: Duration,
}

client_component!(FtpStartTlsClient, Lines::new(FtpClient::Greeting));

/// Where an FTP client's dialogue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FtpClient {
    /// Waiting for the last line of the `220` greeting.
    Greeting,
    /// `AUTH TLS` sent: waiting for `234`.
    Auth,
}

/// The code of a reply's last line (`ddd ` or a bare `ddd`); `None` for a continuation line.
pub(crate) fn final_code(line: &str) -> Option<u16> {
    let b = line.as_bytes();
    let digits = b.len() >= 3 && b[..3].iter().all(u8::is_ascii_digit);
    if digits && matches!(b.get(3), None | Some(b' ')) {
        line[..3].parse().ok()
    } else {
        None
    }
}

impl ClientDialogue for FtpClient {
    fn on_line(&mut self, line: &str) -> Step {
        let Some(code) = final_code(line) else {
            return Step::Read;
        };
        match self {
            FtpClient::Greeting if code == 120 => Step::Read,
            FtpClient::Greeting if code == 220 => {
                *self = FtpClient::Auth;
                Step::Send(Bytes::from_static(b"AUTH TLS\r\n"))
            }
            FtpClient::Greeting => Step::Fail(StartTlsError::Unexpected {
                step: "the greeting",
                line: line.to_string(),
            }),
            FtpClient::Auth if code == 234 => Step::Switch,
            FtpClient::Auth if (400..600).contains(&code) => Step::Fail(StartTlsError::Refused {
                step: "AUTH TLS",
                reply: line.to_string(),
            }),
            FtpClient::Auth => Step::Fail(StartTlsError::Unexpected {
                step: "AUTH TLS",
                line: line.to_string(),
            }),
        }
    }
}
