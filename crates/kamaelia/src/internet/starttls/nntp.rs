//! NNTP STARTTLS (RFC 4642): the client's dialogue up to `382` after `STARTTLS`.

use std::time::Duration;

use bytes::Bytes;

use super::client::{client_component, ClientDialogue, Lines, Step};
use super::error::StartTlsError;

/// The client side of NNTP STARTTLS (RFC 4642): the `200`/`201` greeting, `CAPABILITIES`,
/// `STARTTLS`, its `382`, then TLS. Turn it into a [`Component`](axon::Component) with
/// `.into()`.
///
/// Wired like [`SmtpStartTlsClient`](super::SmtpStartTlsClient) (same boxes, same example with
/// `NntpStartTlsClient::new()` and port 119).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use axon::Component;
/// use kamaelia::internet::NntpStartTlsClient;
///
/// // Wired between the user's side and a TcpClient as SmtpStartTlsClient's example shows.
/// let c: Component = NntpStartTlsClient::new().timeout(Duration::from_secs(10)).into();
/// assert!(c.boxref("makessl").is_ok() && c.boxref("touser").is_ok());
/// ```
///
/// # How it works
///
/// As [`SmtpStartTlsClient`](super::SmtpStartTlsClient), with this dialogue: the greeting
/// must be `200` or `201` (`400`/`502`: [`StartTlsError::Refused`]); `CAPABILITIES` is sent,
/// and a `101` list up to its `.` line must hold `STARTTLS` ([`StartTlsError::NotOffered`]
/// otherwise); a server that does not know `CAPABILITIES` (an older one) is asked anyway, as
/// `openssl s_client` does. `STARTTLS` must then be answered with `382`, the go-ahead; `580`
/// and `502` fail with [`StartTlsError::Refused`].
///
#[doc = include_str!("client_boxes.md")]
#[derive(Debug, Clone)]
pub struct NntpStartTlsClient {
    timeout: Duration,
}

client_component!(NntpStartTlsClient, Lines::new(NntpClient::Greeting));

/// Where an NNTP client's dialogue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NntpClient {
    /// Waiting for `200` or `201`.
    Greeting,
    /// `CAPABILITIES` sent: waiting for `101`.
    Capabilities,
    /// Reading the capability list up to `.`; `offered` once a line says STARTTLS.
    Listing {
        /// A line said STARTTLS.
        offered: bool,
    },
    /// `STARTTLS` sent: waiting for `382`.
    StartTls,
}

const STARTTLS: &[u8] = b"STARTTLS\r\n";

impl ClientDialogue for NntpClient {
    fn on_line(&mut self, line: &str) -> Step {
        let code = line.get(..3).unwrap_or("");
        let refused = |step| {
            Step::Fail(StartTlsError::Refused {
                step,
                reply: line.to_string(),
            })
        };
        match *self {
            NntpClient::Greeting => match code {
                "200" | "201" => {
                    *self = NntpClient::Capabilities;
                    Step::Send(Bytes::from_static(b"CAPABILITIES\r\n"))
                }
                "400" | "502" => refused("the connection"),
                _ => Step::Fail(StartTlsError::Unexpected {
                    step: "the greeting",
                    line: line.to_string(),
                }),
            },
            NntpClient::Capabilities if code == "101" => {
                *self = NntpClient::Listing { offered: false };
                Step::Read
            }
            NntpClient::Capabilities => {
                // No capability list (an older server): ask anyway.
                *self = NntpClient::StartTls;
                Step::Send(Bytes::from_static(STARTTLS))
            }
            NntpClient::Listing { offered } if line == "." => {
                if offered {
                    *self = NntpClient::StartTls;
                    Step::Send(Bytes::from_static(STARTTLS))
                } else {
                    Step::Fail(StartTlsError::NotOffered)
                }
            }
            NntpClient::Listing { offered } => {
                let word = line.split_ascii_whitespace().next().unwrap_or("");
                *self = NntpClient::Listing {
                    offered: offered || word.eq_ignore_ascii_case("STARTTLS"),
                };
                Step::Read
            }
            NntpClient::StartTls => match code {
                "382" => Step::Switch,
                "580" | "502" | "483" => refused("STARTTLS"),
                _ => Step::Fail(StartTlsError::Unexpected {
                    step: "STARTTLS",
                    line: line.to_string(),
                }),
            },
        }
    }
}
