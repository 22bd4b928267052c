//! The messages the network components send and take, and their error type.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{ConnectError, TlsError, TlsInfo};

/// The message for a `makessl` inbox: switch this connection to TLS now.
///
/// A client needs nothing more than `MakeSsl::new()` (or `MakeSsl::default()`). A STARTTLS
/// *server* may give the plaintext reply to write just before the switch (e.g. `220 Ready`) and
/// any bytes it already read past the STARTTLS command (the start of the client's ClientHello),
/// so that nothing the client sent is lost and no read happens between the reply and the switch.
/// A server protocol should say how many delivered bytes it consumed ([`MakeSsl::with_consumed`]):
/// the connection then hands the handshake everything it delivered after them, even bytes it read
/// while the `makessl` message was on its way.
#[derive(Clone, Debug, Default)]
pub struct MakeSsl {
    /// Plaintext written (and flushed) immediately before the handshake starts.
    pub reply: Option<Bytes>,
    /// Bytes already read from the peer that belong to the TLS handshake (server side only).
    pub pushback: Bytes,
    /// How many bytes of what the connection delivered the protocol consumed before asking for
    /// the switch (server side only). Everything the connection delivered after them, including
    /// bytes it read while this message was on its way, is given to the handshake. Preferred
    /// over `pushback`, which cannot include bytes delivered after the protocol built it.
    pub consumed: Option<u64>,
}

impl MakeSsl {
    /// A plain request to switch to TLS.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `reply` in plaintext just before the switch (server side STARTTLS).
    pub fn with_reply(mut self, reply: impl Into<Bytes>) -> Self {
        self.reply = Some(reply.into());
        self
    }

    /// Feeds `bytes` to the handshake before anything read from the socket (server side).
    pub fn with_pushback(mut self, bytes: impl Into<Bytes>) -> Self {
        self.pushback = bytes.into();
        self
    }

    /// Says the protocol consumed the first `bytes` bytes the connection delivered (up to the
    /// end of its STARTTLS command); the rest goes to the handshake (server side).
    pub fn with_consumed(mut self, bytes: u64) -> Self {
        self.consumed = Some(bytes);
        self
    }
}

/// Sent once on `sslready` when the TLS handshake has completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SslReady {
    /// What the handshake agreed on: version, cipher suite, ALPN.
    pub info: TlsInfo,
    /// On a STARTTLS server, how many bytes the connection had delivered in plaintext after
    /// those the protocol consumed, and handed to the handshake instead
    /// ([`MakeSsl::with_consumed`]). The protocol drops that many bytes of plaintext it has not
    /// consumed yet: they were the client's handshake, not data. Zero everywhere else.
    pub replayed: u64,
    /// How many bytes the connection had delivered on `outbox`, in plaintext, before the
    /// switch; everything it delivers after them was decrypted. The two boxes carry no order
    /// between them, so a component that has taken fewer bytes from `outbox` than this when
    /// `sslready` arrives knows that the next ones were read in plaintext (for a STARTTLS
    /// client: after the server's go-ahead, a possible injection).
    pub plaintext: u64,
}

/// A notice on `signal`: the connection is up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connected {
    /// The address connected to.
    pub peer: SocketAddr,
    /// Our end.
    pub local: SocketAddr,
}

/// A notice on `signal`: the peer has finished sending (its FIN, or TLS close_notify). The
/// receive side is over; sending continues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerHalfClosed {
    /// True if a TLS peer closed without close_notify: what was received may be truncated.
    pub truncation_possible: bool,
}

/// A notice on `signal` when a connection ends: how many bytes went each way, and how many that
/// were handed to it were never sent.
///
/// A [`super::ConnectedSocketAdapter`] sends it once, after any error and before
/// [`ShutdownCsa`]; a [`super::TcpClient`] passes it on before its final message (and sends
/// one of its own, with nothing sent, if it never connected). With it a program can say "sent 3
/// of 5 MB" instead of "failed".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transferred {
    /// Plaintext bytes the socket (or the TLS layer) accepted and flushed.
    pub sent: u64,
    /// Plaintext bytes delivered on `outbox`.
    pub received: u64,
    /// Bytes taken from `inbox`, or still queued in it, that never reached the socket: zero
    /// after a clean finish; what was dropped when the connection failed or was shut down.
    pub unsent: u64,
}

/// A notice on a TcpServer's `signal`: it is listening.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listening(pub SocketAddr);

/// How a connection ended; carried by [`SocketShutdown`] and by the final message's detail.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum HowDied {
    /// ProducerFinished: everything queued was sent and the connection closed cleanly.
    Finished,
    /// The peer closed and there was nothing more to send.
    PeerClosed,
    /// ShutdownMicroprocess (or stop()): closed promptly; what was still queued was dropped.
    Shutdown {
        /// Messages dropped from the send queue.
        dropped_messages: usize,
        /// Bytes in those messages (and in a partly written one).
        dropped_bytes: usize,
    },
    /// It failed; the error was also sent on `signal`.
    Failed(TcpError),
}

impl fmt::Display for HowDied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HowDied::Finished => f.write_str("finished"),
            HowDied::PeerClosed => f.write_str("closed by the peer"),
            HowDied::Shutdown {
                dropped_messages: 0,
                ..
            } => f.write_str("shut down"),
            HowDied::Shutdown {
                dropped_messages,
                dropped_bytes,
            } => write!(
                f,
                "shut down, dropping {dropped_messages} queued messages ({dropped_bytes} bytes)"
            ),
            HowDied::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

/// Sent by a [`super::ConnectedSocketAdapter`] on `CreatorFeedback` when it ends (Kamaelia's
/// `socketShutdown`).
#[derive(Clone, Debug)]
pub struct SocketShutdown(pub HowDied);

/// Sent by a [`super::ConnectedSocketAdapter`] on `signal` when it ends (Kamaelia's
/// `shutdownCSA`).
#[derive(Clone, Debug)]
pub struct ShutdownCsa;

/// What went wrong with a connection. Travels on `signal` as `Control::Error`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum TcpError {
    /// Connecting failed: the name did not resolve, the connection was refused, the attempt
    /// timed out; see [`ConnectError`].
    Connect(ConnectError),
    /// The peer reset the connection (ECONNRESET).
    Reset {
        /// The peer.
        peer: SocketAddr,
    },
    /// Writing to a connection the peer has closed (EPIPE).
    BrokenPipe {
        /// The peer.
        peer: SocketAddr,
    },
    /// Another I/O error on an established connection.
    Io {
        /// The peer.
        peer: SocketAddr,
        /// The error.
        source: Arc<io::Error>,
    },
    /// TLS could not be started or failed; see [`TlsError`].
    Tls(TlsError),
    /// No byte moved either way (read from or written to the socket) for `after`: the idle
    /// timeout of [`super::TcpClient::idle_timeout`], [`super::TcpServer::idle_timeout`] or
    /// [`super::CsaOptions`], or a STARTTLS server's plaintext-phase timeout.
    IdleTimeout {
        /// The peer.
        peer: SocketAddr,
        /// How long the connection had been quiet.
        after: Duration,
    },
    /// A Unix socket could not be connected to (no such file, refused, permission, timed out).
    UnixConnect {
        /// The socket's path.
        path: std::path::PathBuf,
        /// Why.
        source: Arc<io::Error>,
    },
    /// A server could not listen on its address.
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: Arc<io::Error>,
    },
}

impl TcpError {
    pub(crate) fn io(peer: SocketAddr, e: io::Error) -> TcpError {
        match e.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
                TcpError::Reset { peer }
            }
            io::ErrorKind::BrokenPipe => TcpError::BrokenPipe { peer },
            _ => TcpError::Io {
                peer,
                source: Arc::new(e),
            },
        }
    }
}

impl fmt::Display for TcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TcpError::Connect(e) => fmt::Display::fmt(e, f),
            TcpError::Reset { peer } => write!(f, "connection reset by peer {peer}"),
            TcpError::BrokenPipe { peer } => {
                write!(
                    f,
                    "broken pipe: {peer} closed the connection while we were sending"
                )
            }
            TcpError::Io { peer, source } => {
                write!(f, "i/o error on the connection to {peer}: {source}")
            }
            TcpError::Tls(e) => fmt::Display::fmt(e, f),
            TcpError::IdleTimeout { peer, after } => write!(
                f,
                "no traffic either way for {after:?} on the connection to {peer}, so it was closed"
            ),
            TcpError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            TcpError::UnixConnect { path, source } => write!(
                f,
                "cannot connect to the Unix socket {}: {source}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for TcpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TcpError::Connect(e) => e.source(),
            TcpError::Tls(e) => e.source(),
            TcpError::Io { source, .. }
            | TcpError::Bind { source, .. }
            | TcpError::UnixConnect { source, .. } => Some(&**source),
            TcpError::Reset { .. } | TcpError::BrokenPipe { .. } | TcpError::IdleTimeout { .. } => {
                None
            }
        }
    }
}

impl From<ConnectError> for TcpError {
    fn from(e: ConnectError) -> Self {
        TcpError::Connect(e)
    }
}

impl From<TlsError> for TcpError {
    fn from(e: TlsError) -> Self {
        TcpError::Tls(e)
    }
}
