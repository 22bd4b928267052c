//! Why a STARTTLS dialogue failed, on the client side and on the server side.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use super::client::{MAX_REPLY_LINE, MAX_REPLY_LINES, MAX_REPLY_PACKET};
use super::server::{MAX_COMMAND_LINE, MAX_HELD};
use crate::internet::TlsError;

/// Why a client-side STARTTLS dialogue (or a [`TlsGate`](super::TlsGate)) gave up. Sent on the
/// component's `connevents` outbox as a `Control::Error`, before it closes the connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StartTlsError {
    /// The server answered with something other than what the protocol expects.
    Unexpected {
        /// The step of the dialogue that was answered.
        step: &'static str,
        /// The server's line, without its line ending.
        line: String,
    },
    /// The server does not offer STARTTLS.
    NotOffered,
    /// The server sent bytes after its go-ahead, before the handshake: they were not protected
    /// by TLS, so the switch is refused ([`TlsError::PlaintextInjection`]).
    Tls(TlsError),
    /// TLS from the first byte: the server sent bytes in plaintext before the handshake (it
    /// does not speak TLS on this port, or something is injecting). They are never shown.
    PlaintextBeforeTls {
        /// How many bytes arrived.
        bytes: usize,
    },
    /// The dialogue did not finish in time, counted from the moment the connection was up.
    TimedOut(Duration),
    /// A reply line was longer than [`MAX_REPLY_LINE`].
    LineTooLong,
    /// The server sent more than [`MAX_REPLY_LINES`] reply lines.
    TooManyLines,
    /// The server said goodbye (IMAP `* BYE`) instead of answering.
    Bye {
        /// The server's line.
        line: String,
    },
    /// The connection closed during the dialogue.
    Closed,
    /// The server said no to the request for TLS (FTP `534`, IRC `691`, NNTP `580`, Sieve
    /// `NO`, XMPP `<failure/>`, an LDAP result code, a MySQL error packet).
    Refused {
        /// What was refused (`AUTH TLS`, `STARTTLS`, `the connection`).
        step: &'static str,
        /// The server's answer, in words.
        reply: String,
    },
    /// A binary protocol's reply packet announced more than [`MAX_REPLY_PACKET`] bytes.
    PacketTooLong {
        /// The length the packet announced.
        length: u64,
    },
    /// A binary protocol's reply could not be read as the protocol says it is.
    Malformed {
        /// The step of the dialogue that was answered.
        step: &'static str,
        /// What is wrong with it.
        what: String,
    },
    /// A stream protocol (XMPP) sent more than this many bytes without the answer looked for.
    TooMuchData {
        /// The limit, in bytes.
        limit: usize,
    },
}

impl fmt::Display for StartTlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartTlsError::Unexpected { step, line } => {
                write!(f, "STARTTLS failed: unexpected reply to {step}: {line:?}")
            }
            StartTlsError::NotOffered => {
                f.write_str("STARTTLS failed: the server does not offer it")
            }
            StartTlsError::Tls(e) => fmt::Display::fmt(e, f),
            StartTlsError::PlaintextBeforeTls { bytes } => write!(
                f,
                "TLS handshake failed: the server sent {bytes} plaintext bytes before TLS \
                 started; not shown (not a TLS server, or an injection)"
            ),
            StartTlsError::TimedOut(after) => write!(
                f,
                "STARTTLS failed: timed out after {} s",
                after.as_secs_f64()
            ),
            StartTlsError::LineTooLong => write!(
                f,
                "STARTTLS failed: a reply line is longer than {MAX_REPLY_LINE} bytes"
            ),
            StartTlsError::TooManyLines => write!(
                f,
                "STARTTLS failed: the server sent more than {MAX_REPLY_LINES} reply lines"
            ),
            StartTlsError::Bye { line } => {
                write!(f, "STARTTLS failed: the server said goodbye: {line:?}")
            }
            StartTlsError::Closed => {
                f.write_str("STARTTLS failed: the server closed the connection")
            }
            StartTlsError::Refused { step, reply } => {
                write!(f, "STARTTLS failed: the server refused {step}: {reply:?}")
            }
            StartTlsError::PacketTooLong { length } => write!(
                f,
                "STARTTLS failed: the server announced a {length}-byte reply; the limit is \
                 {MAX_REPLY_PACKET} bytes"
            ),
            StartTlsError::Malformed { step, what } => {
                write!(f, "STARTTLS failed: malformed reply to {step}: {what}")
            }
            StartTlsError::TooMuchData { limit } => write!(
                f,
                "STARTTLS failed: the server sent more than {limit} bytes without answering"
            ),
        }
    }
}

impl std::error::Error for StartTlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartTlsError::Tls(e) => Some(e),
            _ => None,
        }
    }
}

/// The client a STARTTLS server component talks to, for messages: its address when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Client(pub Option<SocketAddr>);

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("the client"),
        }
    }
}

/// Why a STARTTLS server component dropped its client. Sent on its `signal` (the connection
/// forwards it to the TcpServer's `signal`), then ProducerFinished closes the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DialogueError {
    /// The client sent a line longer than [`MAX_COMMAND_LINE`] (or that many bytes without a
    /// newline).
    LineTooLong {
        /// The client.
        peer: Client,
    },
    /// The client sent more than [`MAX_HELD`] bytes after STARTTLS before the switch was done.
    TooMuchBeforeHandshake {
        /// The client.
        peer: Client,
    },
    /// The client did not reach STARTTLS (or QUIT) within the plaintext phase's limit.
    PlaintextTimeout {
        /// The client.
        peer: Client,
        /// The limit.
        after: Duration,
    },
    /// The client quit before STARTTLS: nothing of the user's was sent
    /// ([`StartTlsServerLayer`](super::StartTlsServerLayer) only; a server protocol answers
    /// QUIT and closes).
    QuitBeforeTls {
        /// The client.
        peer: Client,
    },
}

impl fmt::Display for DialogueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialogueError::LineTooLong { peer } => write!(
                f,
                "{peer} sent a line longer than {MAX_COMMAND_LINE} bytes before STARTTLS; \
                 dropped it"
            ),
            DialogueError::TooMuchBeforeHandshake { peer } => write!(
                f,
                "{peer} sent more than {MAX_HELD} bytes between STARTTLS and the TLS handshake; \
                 dropped it"
            ),
            DialogueError::PlaintextTimeout { peer, after } => write!(
                f,
                "{peer} did not ask for STARTTLS within {} s; dropped it",
                after.as_secs_f64()
            ),
            DialogueError::QuitBeforeTls { peer } => {
                write!(f, "{peer} quit before STARTTLS; nothing was sent to it")
            }
        }
    }
}

impl std::error::Error for DialogueError {}

/// Up to 200 bytes of `b` as text, for a message: control bytes escaped.
pub(crate) fn printable(b: &[u8]) -> String {
    let b = &b[..b.len().min(200)];
    b.iter()
        .flat_map(|&c| std::ascii::escape_default(c))
        .map(char::from)
        .collect()
}
