//! SMTP STARTTLS (RFC 3207): the client's dialogue up to `220` after `STARTTLS`, and a server
//! that speaks just enough SMTP for a STARTTLS client.

use std::time::Duration;

use bytes::Bytes;

use super::client::{client_component, ClientDialogue, Lines, Step};
use super::error::StartTlsError;
use super::server::{
    is_word, server_component, starts_with_word, Answer, ServerDialogue, ServerOptions,
};

/// The client side of SMTP STARTTLS: greeting, `EHLO`, `STARTTLS`, then TLS. Turn it into a
/// [`Component`](axon::Component) with `.into()`.
///
/// It sits between the user's side (a console, a file) and a
/// [`TcpClient`](crate::TcpClient), speaks the plaintext dialogue with the server, sends
/// [`MakeSsl`](crate::MakeSsl) on `makessl` when the server agrees, and then relays both
/// directions under TLS. Nothing from the user leaves before TLS is up.
///
/// # Example
///
/// ```no_run
/// use kamaelia::internet::{SmtpStartTlsClient, TcpClient, TlsSettings};
/// use kamaelia::{ConsoleEchoer, ConsoleReader, Graphline};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let session = Graphline::new()
///     .component("SOURCE", ConsoleReader::new())
///     .component("SMTP", SmtpStartTlsClient::new())
///     .component("CONNECTION", TcpClient::new("mail.example.com", 587).tls(TlsSettings::new()))
///     .component("ECHO", ConsoleEchoer::new())
///     .link(("SOURCE", "outbox"), ("SMTP", "inbox"))
///     .link(("SOURCE", "signal"), ("SMTP", "control"))
///     .link(("SMTP", "outbox"), ("CONNECTION", "inbox"))
///     .link(("SMTP", "signal"), ("CONNECTION", "control"))
///     .link(("SMTP", "makessl"), ("CONNECTION", "makessl"))
///     .link(("CONNECTION", "outbox"), ("SMTP", "fromserver"))
///     .link(("CONNECTION", "signal"), ("SMTP", "connsignal"))
///     .link(("CONNECTION", "sslready"), ("SMTP", "sslready"))
///     .link(("SMTP", "touser"), ("ECHO", "inbox"))
///     .link(("SMTP", "connevents"), ("ECHO", "control"))
///     .build()?;
/// # let _ = session;
/// # Ok(())
/// # }
/// ```
///
/// # How it works
///
/// Both directions pass through it: user -> `inbox` -> `outbox` -> connection, and
/// connection -> `fromserver` -> `touser`; the connection's `signal` comes in on `connsignal`
/// and leaves on `connevents`, so the component ends with the connection. The server's bytes
/// are cut into lines (linear in what arrives, at most [`MAX_REPLY_LINE`](super::MAX_REPLY_LINE)
/// bytes a line and [`MAX_REPLY_LINES`](super::MAX_REPLY_LINES) lines) and fed to a state
/// machine, one enum state per step: the `220` greeting (continuation lines allowed), `EHLO
/// kamaelia` and its `250` lines (STARTTLS must be among them), then `STARTTLS` and its `220`
/// (a `4xx`/`5xx` answer, `454 TLS not available`, fails with
/// [`StartTlsError::Refused`]).
/// Any byte the server sends after that go-ahead and before TLS is refused as injection: it
/// was not protected. The clock for the whole dialogue starts at `Connected`, not before.
/// Once `sslready` arrives it relays both directions, each without waiting on the other.
///
#[doc = include_str!("client_boxes.md")]
#[derive(Debug, Clone)]
pub struct SmtpStartTlsClient {
    timeout: Duration,
}

client_component!(SmtpStartTlsClient, Lines::new(SmtpClient::Greeting));

/// The client side of LMTP STARTTLS (RFC 2033, RFC 3207): SMTP's dialogue with `LHLO` for
/// `EHLO`: greeting, `LHLO`, `STARTTLS`, then TLS. Turn it into a
/// [`Component`](axon::Component) with `.into()`.
///
/// Wired like [`SmtpStartTlsClient`] (same boxes, same example with `LmtpStartTlsClient::new()`
/// and port 24).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use axon::Component;
/// use kamaelia::internet::LmtpStartTlsClient;
///
/// // Wired between the user's side and a TcpClient as SmtpStartTlsClient's example shows.
/// let c: Component = LmtpStartTlsClient::new().timeout(Duration::from_secs(10)).into();
/// assert!(c.boxref("makessl").is_ok() && c.boxref("touser").is_ok());
/// ```
///
/// # How it works
///
/// As [`SmtpStartTlsClient`], with `LHLO kamaelia` where SMTP says `EHLO kamaelia`: the `220`
/// greeting, the `250` lines of the `LHLO` reply (STARTTLS must be among them, or the dialogue
/// fails with [`StartTlsError::NotOffered`]), then `STARTTLS` and its `220`.
///
#[doc = include_str!("client_boxes.md")]
#[derive(Debug, Clone)]
pub struct LmtpStartTlsClient {
    timeout: Duration,
}

client_component!(
    LmtpStartTlsClient,
    Lines::new(LmtpClient(SmtpClient::Greeting))
);

/// Where an SMTP client's dialogue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SmtpClient {
    /// Waiting for the last line of the `220` greeting.
    Greeting,
    /// `EHLO` sent: reading its `250` lines; `offered` once one says STARTTLS.
    Ehlo {
        /// A `250` line said STARTTLS.
        offered: bool,
    },
    /// `STARTTLS` sent: waiting for `220`.
    StartTls,
}

impl ClientDialogue for SmtpClient {
    fn on_line(&mut self, line: &str) -> Step {
        self.step(line, "EHLO")
    }
}

/// LMTP's client dialogue (RFC 2033 §4.1): SMTP's, with `LHLO` for `EHLO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LmtpClient(pub(crate) SmtpClient);

impl ClientDialogue for LmtpClient {
    fn on_line(&mut self, line: &str) -> Step {
        self.0.step(line, "LHLO")
    }
}

impl SmtpClient {
    /// The next step after `line`, greeting with `hello` (`EHLO` or `LHLO`).
    fn step(&mut self, line: &str, hello: &'static str) -> Step {
        let unexpected = |step| {
            Step::Fail(StartTlsError::Unexpected {
                step,
                line: line.to_string(),
            })
        };
        match *self {
            SmtpClient::Greeting => match reply(line, "220") {
                Some(true) => Step::Read,
                Some(false) => {
                    *self = SmtpClient::Ehlo { offered: false };
                    Step::Send(Bytes::from(format!("{hello} kamaelia\r\n")))
                }
                None => unexpected("the greeting"),
            },
            SmtpClient::Ehlo { offered } => match reply(line, "250") {
                Some(more) => {
                    let keyword = line.get(4..).unwrap_or("").trim();
                    let offered = offered || keyword.eq_ignore_ascii_case("STARTTLS");
                    if more {
                        *self = SmtpClient::Ehlo { offered };
                        Step::Read
                    } else if offered {
                        *self = SmtpClient::StartTls;
                        Step::Send(Bytes::from_static(b"STARTTLS\r\n"))
                    } else {
                        Step::Fail(StartTlsError::NotOffered)
                    }
                }
                None => unexpected(hello),
            },
            SmtpClient::StartTls => match reply(line, "220") {
                Some(false) => Step::Switch,
                _ if matches!(line.as_bytes().first(), Some(b'4' | b'5')) => {
                    Step::Fail(StartTlsError::Refused {
                        step: "STARTTLS",
                        reply: line.to_string(),
                    })
                }
                _ => unexpected("STARTTLS"),
            },
        }
    }
}

/// `Some(true)` for a continuation line (`250-...`), `Some(false)` for the last (`250 ...` or a
/// bare `250`), `None` for another code.
fn reply(line: &str, code: &str) -> Option<bool> {
    let rest = line.strip_prefix(code)?;
    match rest.as_bytes().first() {
        Some(b'-') => Some(true),
        Some(b' ') | None => Some(false),
        _ => None,
    }
}

/// A TcpServer protocol that speaks just enough SMTP for a STARTTLS client, then echoes (or
/// discards). Turn it into a [`Component`](axon::Component) with `.into()`.
///
/// # Example
///
/// ```
/// use kamaelia::internet::{SmtpStartTlsServer, TcpServer};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
/// # let key = rustls::pki_types::PrivateKeyDer::Pkcs8(made.key_pair.serialize_der().into());
/// # let identity = kamaelia::internet::ServerTls::from_der(vec![made.cert.der().clone()], key);
/// // Each connection gets its own dialogue, naming its client in errors.
/// let server = TcpServer::bind("127.0.0.1:0", |info| {
///     SmtpStartTlsServer::new().peer(info.peer).into()
/// })?
/// .starttls(&identity)?;
/// # let _ = server;
/// # Ok(())
/// # }
/// ```
///
/// # How it works
///
/// It greets with `220`, answers `EHLO`/`HELO` with `250 STARTTLS`, and answers `STARTTLS` by
/// sending [`MakeSsl`](crate::MakeSsl) with the reply `220 Ready to start TLS` and the count of
/// bytes it consumed up to the end of the command
/// ([`MakeSsl::with_consumed`](crate::MakeSsl::with_consumed)): the connection hands everything
/// after them to the TLS handshake, and `sslready` says how many of those bytes this protocol
/// must drop from what it has not read yet ([`HandshakeReplay`](super::HandshakeReplay)).
/// `QUIT` ends the session. Other plaintext lines are echoed; after the switch every byte is
/// echoed (or discarded).
///
/// Bounded whatever the client sends: lines of at most
/// [`MAX_COMMAND_LINE`](super::MAX_COMMAND_LINE) bytes, at most [`MAX_HELD`](super::MAX_HELD)
/// bytes held during the switch, an inbox bounded in bytes, and (when given) a limit on the
/// whole plaintext phase, counted from the connection. Parsing is linear in the bytes received.
///
#[doc = include_str!("server_boxes.md")]
#[derive(Debug, Clone)]
pub struct SmtpStartTlsServer {
    opts: ServerOptions,
}

server_component!(SmtpStartTlsServer, SmtpServer);

/// The SMTP server's dialogue: every line is answered on its own.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SmtpServer;

/// What an SMTP command line asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SmtpCommand {
    Hello,
    StartTls,
    Quit,
    Other,
}

impl SmtpCommand {
    /// The command `line` holds (any case, surrounding whitespace ignored).
    pub(crate) fn of(line: &[u8]) -> Self {
        if starts_with_word(line, b"EHLO") || starts_with_word(line, b"HELO") {
            SmtpCommand::Hello
        } else if is_word(line, b"STARTTLS") {
            SmtpCommand::StartTls
        } else if is_word(line, b"QUIT") {
            SmtpCommand::Quit
        } else {
            SmtpCommand::Other
        }
    }
}

impl ServerDialogue for SmtpServer {
    fn greeting(&self) -> &'static [u8] {
        b"220 kamaelia ESMTP ready\r\n"
    }

    fn answer(&mut self, line: &[u8]) -> Answer {
        match SmtpCommand::of(line) {
            SmtpCommand::Hello => {
                Answer::Reply(Bytes::from_static(b"250-kamaelia\r\n250 STARTTLS\r\n"))
            }
            SmtpCommand::StartTls => {
                Answer::Switch(Bytes::from_static(b"220 Ready to start TLS\r\n"))
            }
            SmtpCommand::Quit => Answer::Quit(Bytes::from_static(b"221 bye\r\n")),
            SmtpCommand::Other => Answer::Pass,
        }
    }

    fn timed_out(&self) -> &'static [u8] {
        b"421 timed out waiting for STARTTLS\r\n"
    }

    fn too_long(&self) -> &'static [u8] {
        b"500 line too long\r\n"
    }
}
