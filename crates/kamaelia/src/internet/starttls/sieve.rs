//! ManageSieve STARTTLS (RFC 5804 §2.2): the client's dialogue up to `OK` after `STARTTLS`.

use std::time::Duration;

use bytes::Bytes;

use super::client::{client_component, ClientDialogue, Lines, Step};
use super::error::StartTlsError;

/// The client side of ManageSieve STARTTLS (RFC 5804): the capability greeting ending in
/// `OK`, `STARTTLS`, its `OK`, then TLS. Turn it into a [`Component`](axon::Component) with
/// `.into()`.
///
/// Wired like [`SmtpStartTlsClient`](super::SmtpStartTlsClient) (same boxes, same example with
/// `SieveStartTlsClient::new()` and port 4190).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use axon::Component;
/// use kamaelia::internet::SieveStartTlsClient;
///
/// // Wired between the user's side and a TcpClient as SmtpStartTlsClient's example shows.
/// let c: Component = SieveStartTlsClient::new().timeout(Duration::from_secs(10)).into();
/// assert!(c.boxref("makessl").is_ok() && c.boxref("touser").is_ok());
/// ```
///
/// # How it works
///
/// As [`SmtpStartTlsClient`](super::SmtpStartTlsClient), with this dialogue: the greeting is
/// a list of quoted capabilities (`"IMPLEMENTATION" "…"`, `"STARTTLS"`; case does not matter)
/// ending with an `OK` line; `"STARTTLS"` must be among them
/// ([`StartTlsError::NotOffered`] otherwise). `STARTTLS` must then be answered with `OK`, the
/// go-ahead; `NO` fails with [`StartTlsError::Refused`], `BYE` with [`StartTlsError::Bye`].
///
#[doc = include_str!("client_boxes.md")]
#[derive(Debug, Clone)]
pub struct SieveStartTlsClient {
    timeout: Duration,
}

client_component!(
    SieveStartTlsClient,
    Lines::new(SieveClient::Greeting { offered: false })
);

/// Where a ManageSieve client's dialogue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SieveClient {
    /// Reading the capabilities up to `OK`; `offered` once one is `"STARTTLS"`.
    Greeting {
        /// A capability line said STARTTLS.
        offered: bool,
    },
    /// `STARTTLS` sent: waiting for `OK`.
    StartTls,
}

/// The response a line starts with (`OK`, `NO`, `BYE`, in any case), if it is one.
fn response(line: &str) -> Option<&'static str> {
    let word = line.split([' ', '(']).next().unwrap_or("");
    ["OK", "NO", "BYE"]
        .into_iter()
        .find(|r| word.eq_ignore_ascii_case(r))
}

impl ClientDialogue for SieveClient {
    fn on_line(&mut self, line: &str) -> Step {
        let step = match self {
            SieveClient::Greeting { .. } => "the greeting",
            SieveClient::StartTls => "STARTTLS",
        };
        match (*self, response(line)) {
            (SieveClient::Greeting { offered }, None) if line.starts_with('"') => {
                let name = line.get(..10).unwrap_or("");
                *self = SieveClient::Greeting {
                    offered: offered || name.eq_ignore_ascii_case("\"STARTTLS\""),
                };
                Step::Read
            }
            (SieveClient::Greeting { offered: true }, Some("OK")) => {
                *self = SieveClient::StartTls;
                Step::Send(Bytes::from_static(b"STARTTLS\r\n"))
            }
            (SieveClient::Greeting { offered: false }, Some("OK")) => {
                Step::Fail(StartTlsError::NotOffered)
            }
            (SieveClient::StartTls, Some("OK")) => Step::Switch,
            (_, Some("NO")) => Step::Fail(StartTlsError::Refused {
                step,
                reply: line.to_string(),
            }),
            (_, Some("BYE")) => Step::Fail(StartTlsError::Bye {
                line: line.to_string(),
            }),
            _ => Step::Fail(StartTlsError::Unexpected {
                step,
                line: line.to_string(),
            }),
        }
    }
}
