//! POP3 STLS (RFC 2595 §4): the client's dialogue up to `+OK` after `STLS`, and a server that
//! speaks just enough POP3 for an STLS client.

use std::time::Duration;

use bytes::Bytes;

use super::client::{client_component, ClientDialogue, Lines, Step};
use super::error::StartTlsError;
use super::server::{is_word, server_component, Answer, ServerDialogue, ServerOptions};

/// The client side of POP3 STLS: the `+OK` greeting, `STLS`, its `+OK`, then TLS. Turn it into
/// a [`Component`](axon::Component) with `.into()`.
///
/// Wired like [`SmtpStartTlsClient`](super::SmtpStartTlsClient) (same boxes, same example with
/// `Pop3StartTlsClient::new()` and port 110).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use axon::Component;
/// use kamaelia::internet::{Pop3StartTlsClient};
///
/// // Wired between the user's side and a TcpClient as SmtpStartTlsClient's example shows.
/// let c: Component = Pop3StartTlsClient::new().timeout(Duration::from_secs(10)).into();
/// assert!(c.boxref("makessl").is_ok() && c.boxref("touser").is_ok());
/// ```
///
/// # Example
///
/// ```
/// use axon::Component;
/// use kamaelia::internet::{Pop3StartTlsServer, TcpServer};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // With `.starttls(&identity)` on the server, as SmtpStartTlsServer's example shows.
/// let server = TcpServer::bind("127.0.0.1:0", |info| Pop3StartTlsServer::new().peer(info.peer).into())?;
/// # let _ = server;
/// let c: Component = Pop3StartTlsServer::new().echo(false).into();
/// assert!(c.boxref("makessl").is_ok() && c.boxref("sslready").is_ok());
/// # Ok(())
/// # }
/// ```
///
/// # How it works
///
/// As [`SmtpStartTlsClient`](super::SmtpStartTlsClient), with this dialogue: the greeting must
/// be `+OK`, then `STLS` is sent and its answer must be `+OK`, the go-ahead; `-ERR` or anything
/// else fails with [`StartTlsError::Unexpected`].
///
#[doc = include_str!("client_boxes.md")]
#[derive(Debug, Clone)]
pub struct Pop3StartTlsClient {
    timeout: Duration,
}

client_component!(Pop3StartTlsClient, Lines::new(Pop3Client::Greeting));

/// Where a POP3 client's dialogue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pop3Client {
    /// Waiting for `+OK`.
    Greeting,
    /// `STLS` sent: waiting for `+OK`.
    Stls,
}

impl ClientDialogue for Pop3Client {
    fn on_line(&mut self, line: &str) -> Step {
        let ok = line.starts_with("+OK");
        match self {
            Pop3Client::Greeting if ok => {
                *self = Pop3Client::Stls;
                Step::Send(Bytes::from_static(b"STLS\r\n"))
            }
            Pop3Client::Stls if ok => Step::Switch,
            Pop3Client::Greeting | Pop3Client::Stls => Step::Fail(StartTlsError::Unexpected {
                step: if *self == Pop3Client::Greeting {
                    "the greeting"
                } else {
                    "STLS"
                },
                line: line.to_string(),
            }),
        }
    }
}

/// A TcpServer protocol that speaks just enough POP3 for an STLS client, then echoes (or
/// discards). Turn it into a [`Component`](axon::Component) with `.into()`.
///
/// Set up like [`SmtpStartTlsServer`](super::SmtpStartTlsServer) (same builder, same boxes).
///
/// # How it works
///
/// It greets with `+OK`, answers `CAPA` with a list that holds `STLS`, `STLS` with `+OK Begin
/// TLS negotiation` and the switch (as the SMTP server does), and `QUIT` with `+OK bye`, which
/// ends the session. Other lines are echoed (or discarded), with the same bounds as the SMTP
/// server.
///
#[doc = include_str!("server_boxes.md")]
#[derive(Debug, Clone)]
pub struct Pop3StartTlsServer {
    opts: ServerOptions,
}

server_component!(Pop3StartTlsServer, Pop3Server);

/// The POP3 server's dialogue: every line is answered on its own.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pop3Server;

/// What a POP3 command line asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pop3Command {
    Capa,
    Stls,
    Quit,
    Other,
}

impl Pop3Command {
    /// The command `line` holds (any case, surrounding whitespace ignored).
    pub(crate) fn of(line: &[u8]) -> Self {
        if is_word(line, b"CAPA") {
            Pop3Command::Capa
        } else if is_word(line, b"STLS") {
            Pop3Command::Stls
        } else if is_word(line, b"QUIT") {
            Pop3Command::Quit
        } else {
            Pop3Command::Other
        }
    }
}

impl ServerDialogue for Pop3Server {
    fn greeting(&self) -> &'static [u8] {
        b"+OK kamaelia ready\r\n"
    }

    fn answer(&mut self, line: &[u8]) -> Answer {
        match Pop3Command::of(line) {
            Pop3Command::Capa => Answer::Reply(Bytes::from_static(b"+OK\r\nSTLS\r\n.\r\n")),
            Pop3Command::Stls => {
                Answer::Switch(Bytes::from_static(b"+OK Begin TLS negotiation\r\n"))
            }
            Pop3Command::Quit => Answer::Quit(Bytes::from_static(b"+OK bye\r\n")),
            Pop3Command::Other => Answer::Pass,
        }
    }

    fn timed_out(&self) -> &'static [u8] {
        b"-ERR timed out waiting for STLS\r\n"
    }

    fn too_long(&self) -> &'static [u8] {
        b"-ERR line too long\r\n"
    }
}
