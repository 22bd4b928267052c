//! IMAP STARTTLS (RFC 3501 §6.2.1): the client's dialogue up to the tagged `OK` after
//! `a1 STARTTLS`, and a server that speaks just enough IMAP for a STARTTLS client.

use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::client::{client_component, ClientDialogue, Lines, Step};
use super::error::StartTlsError;
use super::server::{server_component, Answer, ServerDialogue, ServerOptions};

/// The client side of IMAP STARTTLS: the `* OK` greeting, `a1 STARTTLS`, its tagged `OK`, then
/// TLS. Turn it into a [`Component`](axon::Component) with `.into()`.
///
/// Wired like [`SmtpStartTlsClient`](super::SmtpStartTlsClient) (same boxes, same example with
/// `ImapStartTlsClient::new()` and port 143).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use axon::Component;
/// use kamaelia::internet::{ImapStartTlsClient};
///
/// // Wired between the user's side and a TcpClient as SmtpStartTlsClient's example shows.
/// let c: Component = ImapStartTlsClient::new().timeout(Duration::from_secs(10)).into();
/// assert!(c.boxref("makessl").is_ok() && c.boxref("touser").is_ok());
/// ```
///
/// # Example
///
/// ```
/// use axon::Component;
/// use kamaelia::internet::{ImapStartTlsServer, TcpServer};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // With `.starttls(&identity)` on the server, as SmtpStartTlsServer's example shows.
/// let server = TcpServer::bind("127.0.0.1:0", |info| ImapStartTlsServer::new().peer(info.peer).into())?;
/// # let _ = server;
/// let c: Component = ImapStartTlsServer::new().echo(false).into();
/// assert!(c.boxref("makessl").is_ok() && c.boxref("sslready").is_ok());
/// # Ok(())
/// # }
/// ```
///
/// # How it works
///
/// As [`SmtpStartTlsClient`](super::SmtpStartTlsClient), with this dialogue: the greeting must
/// be `* OK`; after `a1 STARTTLS` untagged `* ` lines are read and skipped until `a1 OK`, the
/// go-ahead. A `* BYE` at any point ends the dialogue at once
/// ([`StartTlsError::Bye`]), instead of waiting for a tagged reply that will not come.
///
#[doc = include_str!("client_boxes.md")]
#[derive(Debug, Clone)]
pub struct ImapStartTlsClient {
    timeout: Duration,
}

client_component!(ImapStartTlsClient, Lines::new(ImapClient::Greeting));

/// Where an IMAP client's dialogue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImapClient {
    /// Waiting for `* OK`.
    Greeting,
    /// `a1 STARTTLS` sent: waiting for `a1 OK`.
    StartTls,
}

impl ClientDialogue for ImapClient {
    fn on_line(&mut self, line: &str) -> Step {
        let unexpected = |step| {
            Step::Fail(StartTlsError::Unexpected {
                step,
                line: line.to_string(),
            })
        };
        if line.starts_with("* BYE") {
            return Step::Fail(StartTlsError::Bye {
                line: line.to_string(),
            });
        }
        match self {
            ImapClient::Greeting if line.starts_with("* OK") => {
                *self = ImapClient::StartTls;
                Step::Send(Bytes::from_static(b"a1 STARTTLS\r\n"))
            }
            ImapClient::Greeting => unexpected("the greeting"),
            ImapClient::StartTls if line.starts_with("* ") => Step::Read,
            ImapClient::StartTls if line.starts_with("a1 OK") => Step::Switch,
            ImapClient::StartTls => unexpected("STARTTLS"),
        }
    }
}

/// A TcpServer protocol that speaks just enough IMAP for a STARTTLS client, then echoes (or
/// discards). Turn it into a [`Component`](axon::Component) with `.into()`.
///
/// Set up like [`SmtpStartTlsServer`](super::SmtpStartTlsServer) (same builder, same boxes).
///
/// # How it works
///
/// It greets with `* OK [CAPABILITY IMAP4rev1 STARTTLS]`, answers `tag CAPABILITY` with the
/// same capabilities and `tag OK`, `tag STARTTLS` with `tag OK Begin TLS negotiation now` and
/// the switch (as the SMTP server does: the count of bytes consumed travels with
/// [`MakeSsl`](crate::MakeSsl), the replayed handshake bytes are dropped), and `tag LOGOUT`
/// with `* BYE` and `tag OK`, which ends the session. Other lines are echoed (or discarded),
/// with the same bounds as the SMTP server.
///
#[doc = include_str!("server_boxes.md")]
#[derive(Debug, Clone)]
pub struct ImapStartTlsServer {
    opts: ServerOptions,
}

server_component!(ImapStartTlsServer, ImapServer);

/// The IMAP server's dialogue: every tagged command is answered on its own.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ImapServer;

/// What an IMAP command line asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ImapCommand {
    Capability,
    StartTls,
    Logout,
    Other,
}

impl ImapCommand {
    /// The tag and the command `line` holds (any case, surrounding whitespace ignored).
    pub(crate) fn of(line: &[u8]) -> (&[u8], Self) {
        let mut words = line.trim_ascii().splitn(2, |&c| c == b' ');
        let tag = words.next().unwrap_or_default();
        let cmd = words.next().unwrap_or_default().trim_ascii();
        let is = |w: &[u8]| cmd.eq_ignore_ascii_case(w);
        let command = if tag.is_empty() {
            ImapCommand::Other
        } else if is(b"CAPABILITY") {
            ImapCommand::Capability
        } else if is(b"STARTTLS") {
            ImapCommand::StartTls
        } else if is(b"LOGOUT") {
            ImapCommand::Logout
        } else {
            ImapCommand::Other
        };
        (tag, command)
    }
}

/// `first` (if any), then `tag` and `rest`, as one reply.
fn tagged(first: &[u8], tag: &[u8], rest: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(first.len() + tag.len() + rest.len() + 1);
    b.extend_from_slice(first);
    b.extend_from_slice(tag);
    b.extend_from_slice(b" ");
    b.extend_from_slice(rest);
    b.freeze()
}

impl ServerDialogue for ImapServer {
    fn greeting(&self) -> &'static [u8] {
        b"* OK [CAPABILITY IMAP4rev1 STARTTLS] kamaelia ready\r\n"
    }

    fn answer(&mut self, line: &[u8]) -> Answer {
        let (tag, command) = ImapCommand::of(line);
        match command {
            ImapCommand::Capability => Answer::Reply(tagged(
                b"* CAPABILITY IMAP4rev1 STARTTLS\r\n",
                tag,
                b"OK CAPABILITY completed\r\n",
            )),
            ImapCommand::StartTls => {
                Answer::Switch(tagged(b"", tag, b"OK Begin TLS negotiation now\r\n"))
            }
            ImapCommand::Logout => Answer::Quit(tagged(
                b"* BYE kamaelia logging out\r\n",
                tag,
                b"OK LOGOUT completed\r\n",
            )),
            ImapCommand::Other => Answer::Pass,
        }
    }

    fn timed_out(&self) -> &'static [u8] {
        b"* BYE timed out waiting for STARTTLS\r\n"
    }

    fn too_long(&self) -> &'static [u8] {
        b"* BYE line too long\r\n"
    }
}
