//! PostgreSQL's SSLRequest (protocol 3.0, "SSL Session Encryption"): 8 bytes out, one byte
//! back.

use std::time::Duration;

use bytes::Bytes;

use super::client::{client_component, Frame, Framed, Step};
use super::error::{printable, StartTlsError};

/// The client side of PostgreSQL's TLS: the 8-byte SSLRequest as soon as connected, the
/// server's one-byte answer `S`, then TLS. Turn it into a [`Component`](axon::Component) with
/// `.into()`.
///
/// Wired like [`SmtpStartTlsClient`](super::SmtpStartTlsClient) (same boxes, same example with
/// `PostgresStartTlsClient::new()` and port 5432).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use axon::Component;
/// use kamaelia::internet::PostgresStartTlsClient;
///
/// // Wired between the user's side and a TcpClient as SmtpStartTlsClient's example shows.
/// let c: Component = PostgresStartTlsClient::new().timeout(Duration::from_secs(10)).into();
/// assert!(c.boxref("makessl").is_ok() && c.boxref("touser").is_ok());
/// ```
///
/// # How it works
///
/// As [`SmtpStartTlsClient`](super::SmtpStartTlsClient), with a binary dialogue of one
/// frame: when the connection is up it sends the SSLRequest (length 8, code 80877103), and
/// reads one byte. `S` is the go-ahead, and any byte after it in the same read or before the
/// handshake is refused as injection (the flaw of CVE-2021-23214/23222); `N` (the server has
/// TLS off) fails with [`StartTlsError::NotOffered`]; `E` (an error message, from a server too
/// old to know the request) with [`StartTlsError::Refused`]; anything else with
/// [`StartTlsError::Unexpected`].
///
#[doc = include_str!("client_boxes.md")]
#[derive(Debug, Clone)]
pub struct PostgresStartTlsClient {
    timeout: Duration,
}

client_component!(PostgresStartTlsClient, PostgresClient);

/// The SSLRequest: length 8, then the code 1234 << 16 | 5679.
pub(crate) const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// A PostgreSQL client's dialogue: one request, one byte back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PostgresClient;

impl Framed for PostgresClient {
    fn opening(&mut self) -> Option<Bytes> {
        Some(Bytes::from_static(&SSL_REQUEST))
    }

    fn on_bytes(&mut self, unread: &[u8]) -> Frame {
        let Some(&first) = unread.first() else {
            return Frame::More;
        };
        let step = match first {
            b'S' => Step::Switch,
            b'N' => Step::Fail(StartTlsError::NotOffered),
            b'E' => Step::Fail(StartTlsError::Refused {
                step: "SSLRequest",
                reply: printable(&unread[1..]),
            }),
            other => Step::Fail(StartTlsError::Unexpected {
                step: "SSLRequest",
                line: printable(&[other]),
            }),
        };
        Frame::Took(1, step)
    }
}
