//! IRC STARTTLS (the IRCv3 `tls` extension): the client's dialogue up to `670` after
//! `STARTTLS`.

use std::time::Duration;

use bytes::Bytes;

use super::client::{client_component, ClientDialogue, Lines, Step};
use super::error::StartTlsError;

/// The client side of IRC STARTTLS (IRCv3 `tls`): `STARTTLS` as soon as connected, its `670`,
/// then TLS. Turn it into a [`Component`](axon::Component) with `.into()`.
///
/// Wired like [`SmtpStartTlsClient`](super::SmtpStartTlsClient) (same boxes, same example with
/// `IrcStartTlsClient::new()` and port 6667).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use axon::Component;
/// use kamaelia::internet::IrcStartTlsClient;
///
/// // Wired between the user's side and a TcpClient as SmtpStartTlsClient's example shows.
/// let c: Component = IrcStartTlsClient::new().timeout(Duration::from_secs(10)).into();
/// assert!(c.boxref("makessl").is_ok() && c.boxref("touser").is_ok());
/// ```
///
/// # How it works
///
/// As [`SmtpStartTlsClient`](super::SmtpStartTlsClient), except that the client speaks first:
/// `STARTTLS` leaves when the connection is up, before the server has said anything. Then the
/// server's lines are read, skipping notices and other messages, until a numeric reply that
/// decides: `670` is the go-ahead; `691` fails with [`StartTlsError::Refused`]; `421` (unknown
/// command) fails with [`StartTlsError::NotOffered`]; `451` (not registered) and an `ERROR`
/// line fail with [`StartTlsError::Refused`]. A server that says nothing at all (many do not
/// answer an unknown command before registration) meets the dialogue's timeout.
///
#[doc = include_str!("client_boxes.md")]
#[derive(Debug, Clone)]
pub struct IrcStartTlsClient {
    timeout: Duration,
}

client_component!(IrcStartTlsClient, Lines::new(IrcClient));

/// An IRC client's dialogue: one state, waiting for the numeric that answers STARTTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IrcClient;

impl ClientDialogue for IrcClient {
    fn opening(&mut self) -> Option<Bytes> {
        Some(Bytes::from_static(b"STARTTLS\r\n"))
    }

    fn on_line(&mut self, line: &str) -> Step {
        let mut words = line.split_ascii_whitespace();
        let mut command = words.next().unwrap_or("");
        if command.starts_with(':') {
            command = words.next().unwrap_or("");
        }
        let refused = |step| {
            Step::Fail(StartTlsError::Refused {
                step,
                reply: line.to_string(),
            })
        };
        match command {
            "670" => Step::Switch,
            "691" | "451" => refused("STARTTLS"),
            "421" => Step::Fail(StartTlsError::NotOffered),
            c if c.eq_ignore_ascii_case("ERROR") => refused("the connection"),
            _ => Step::Read,
        }
    }
}
