//! ConnectedSocketAdapter: the component that owns one connection.
//!
//! Split by role: this file is the component (its options, boxes and docs); `state` is the
//! connection's state as plain types, tested without sockets; `driver` runs one connection
//! over any byte stream; `rewind` is the stream that can be handed back bytes (STARTTLS);
//! `read_buffer` is the buffer reads go into.

mod driver;
mod read_buffer;
mod rewind;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axon::{Component, CONTROL, INBOX, OUTBOX, SIGNAL};
use tokio::io::{AsyncRead, AsyncWrite};

use super::TlsSettings;
pub(in crate::internet) use driver::{final_message, Boxes, Connection, MAKESSL};
use state::{State, Timeouts};

/// The default of each direction of [`Limits`]: 256 KiB.
pub const DEFAULT_LIMIT_BYTES: usize = 256 * 1024;

/// How many bytes a connection may hold in each direction.
///
/// `send_bytes` bounds the CSA's `inbox` (and a [`super::TcpClient`]'s own `inbox`, which its
/// connection reads once up) and, separately, the queue of messages taken from it that the socket has
/// not accepted yet. `receive_bytes` bounds one read from the socket and the box the data is
/// delivered into when it belongs to the connection (the CSA's own `outbox` buffer, a
/// TcpClient's `outbox`, [`super::EchoProtocol`]'s and [`super::DiscardProtocol`]'s
/// `inbox`). A component that receives from a connection bounds its own inbox; the connection
/// waits for room there.
///
/// A box admits a message while it holds fewer bytes than its limit, so it holds at most the
/// limit plus one message (one read: at most half of `receive_bytes`). A connection of
/// [`super::TcpServer`] with [`super::EchoProtocol`] holds a few times the limit at most,
/// whatever its peer does: with the defaults, about 1.05 MiB of server memory per client that
/// floods and never reads (`tests/internet_server_flood_memory.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes waiting to be sent: the inbox, and the queue ahead of the socket (each).
    pub send_bytes: usize,
    /// Bytes received and not yet taken by the receiver; one read asks for half of it at most
    /// (and never more than 256 KiB).
    pub receive_bytes: usize,
}

impl Default for Limits {
    /// [`DEFAULT_LIMIT_BYTES`] (256 KiB) each direction.
    fn default() -> Self {
        Limits {
            send_bytes: DEFAULT_LIMIT_BYTES,
            receive_bytes: DEFAULT_LIMIT_BYTES,
        }
    }
}

/// How a [`ConnectedSocketAdapter`] behaves: built with [`CsaOptions::default`] and the
/// setters, given to [`ConnectedSocketAdapter::with_config`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct CsaOptions {
    /// What ProducerFinished does.
    pub on_finish: OnFinish,
    /// Runs the TLS handshake before any data (a server speaking TLS from the first byte).
    pub tls_first: bool,
    /// Ends the connection with [`TcpError::IdleTimeout`](crate::internet::TcpError::IdleTimeout) when no byte moved either way for
    /// this long (default: never).
    pub idle_timeout: Option<Duration>,
    /// The idle timeout while the connection is still in plaintext and may switch to TLS
    /// (a STARTTLS server's dialogue); the shorter of the two applies (default: none).
    pub plaintext_timeout: Option<Duration>,
    /// Byte bounds in each direction.
    pub limits: Limits,
}

impl CsaOptions {
    /// What ProducerFinished does (default [`OnFinish::Close`]).
    pub fn on_finish(mut self, on_finish: OnFinish) -> Self {
        self.on_finish = on_finish;
        self
    }

    /// Whether the TLS handshake comes before any data (default false).
    pub fn tls_first(mut self, on: bool) -> Self {
        self.tls_first = on;
        self
    }

    /// The idle timeout (default none).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The idle timeout before a switch to TLS (default none).
    pub fn plaintext_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.plaintext_timeout = timeout;
        self
    }

    /// The byte bounds (default [`Limits::default`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

/// What a connection does when it receives ProducerFinished.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnFinish {
    /// Send everything queued, then close the connection (Kamaelia's default).
    #[default]
    Close,
    /// Send everything queued, shut the write side, and keep delivering what the peer sends
    /// until it closes (Kamaelia's `wait_for_serverclose`, done right).
    HalfClose,
    /// Send everything queued but leave the write side open, and keep delivering what the peer
    /// sends until it closes; then close. For request/response peers that hang up on a
    /// half-close before they answer (`kamaelia connect --no-shutdown`).
    KeepOpen,
}

/// Which side of a TLS handshake this end plays when `makessl` arrives.
#[derive(Clone, Debug)]
pub enum TlsRole {
    /// A client verifying the server's certificate for `host` (or the settings' server name).
    Client {
        /// Trust, name and timeout.
        settings: TlsSettings,
        /// The host connected to.
        host: String,
    },
    /// A server presenting a certificate.
    Server {
        /// The server configuration.
        config: Arc<rustls::ServerConfig>,
        /// How long a handshake may take.
        timeout: Duration,
    },
}

/// What a connection needs to switch to TLS on `makessl`. A client's settings are shared by
/// every client of one configuration (and by all clients left at the default), so this holds
/// a pointer to them and its host, not a copy of the settings. A connection keeps it boxed
/// (most never switch), except a client at the default settings, which keeps its host alone
/// (`driver::Kept`).
#[derive(Clone)]
pub(in crate::internet) enum TlsKept {
    /// A client verifying the server's certificate for `host` (or the settings' server name).
    Client {
        /// Trust, name and timeout.
        settings: Arc<TlsSettings>,
        /// The host connected to (shared with the client's settings).
        host: Arc<str>,
    },
    /// A server presenting a certificate.
    Server {
        /// The server configuration.
        config: Arc<rustls::ServerConfig>,
        /// How long a handshake may take, in nanoseconds ([`TlsKept::server`]): eight bytes
        /// where a `Duration` takes sixteen, so that the record is 24 bytes (a client's, beside
        /// it, is two pointers and a length), a 32-byte block, not a 48-byte one.
        timeout_nanos: u64,
    },
}

impl TlsKept {
    /// A server's record: `timeout` saturates at `u64::MAX` nanoseconds (584 years: no
    /// deadline, as a longer one was).
    pub(in crate::internet) fn server(
        config: Arc<rustls::ServerConfig>,
        timeout: Duration,
    ) -> Self {
        TlsKept::Server {
            config,
            timeout_nanos: u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX),
        }
    }
}

impl From<TlsRole> for TlsKept {
    fn from(role: TlsRole) -> TlsKept {
        match role {
            TlsRole::Client { settings, host } => TlsKept::Client {
                settings: Arc::new(settings),
                host: host.into(),
            },
            TlsRole::Server { config, timeout } => TlsKept::server(config, timeout),
        }
    }
}

/// The component that owns one established connection: it writes what arrives on `inbox`,
/// sends what it reads on `outbox`, and switches to TLS on `makessl` (Kamaelia's
/// ConnectedSocketAdapter). [`super::TcpServer`] makes one per connection; [`super::TcpClient`]
/// (and `SingleServer`, `UnixClient`) runs the same loop itself, with its own boxes, instead of
/// making one. Programs rarely make one themselves.
///
/// # Example
///
/// ```
/// use axon::{Control, Inbox, Outbox, Scheduler};
/// use bytes::Bytes;
/// use kamaelia::internet::{ConnectedSocketAdapter, OnFinish};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let client = tokio::net::TcpStream::connect(listener.local_addr()?).await?;
/// let (mut server, _) = listener.accept().await?;
/// let peer = client.peer_addr()?;
/// let csa = ConnectedSocketAdapter::new(client, peer, None, OnFinish::Close);
///
/// let feed = Outbox::<Bytes>::standalone("feed");
/// let stop = Outbox::<Control>::standalone("stop");
/// axon::link_refs(&feed.boxref(), &csa.boxref("inbox")?)?;
/// axon::link_refs(&stop.boxref(), &csa.boxref("control")?)?;
/// feed.send(Bytes::from_static(b"hello")).await?;
/// stop.send(Control::producer_finished()).await?;
/// let report = Scheduler::new().run(async { csa.activate(); }).await;
/// assert!(report.is_ok());
/// let mut got = Vec::new();
/// server.read_to_end(&mut got).await?;
/// assert_eq!(got, b"hello");
/// # server.shutdown().await?;
/// # Ok(())
/// # }
/// ```
///
/// # How it works
///
/// One task reads and writes the socket concurrently: it reads only while `outbox` has room
/// (so a slow consumer stops the reading and TCP's flow control reaches the sender) and takes
/// messages from `inbox` only as fast as the socket accepts them (so a slow network fills
/// `inbox` and upstream waits). On `makessl` it first writes everything already queued, in
/// plaintext, then runs the TLS handshake; what arrives on `inbox` meanwhile waits and goes out
/// encrypted.
///
/// Every place that holds a connection's bytes is bounded in bytes by [`Limits`] (256 KiB each
/// direction by default): `inbox`, the queue of messages taken from it ahead of the socket (it
/// stops taking while that queue is at the limit), each read (half the receive limit at most,
/// up to 256 KiB), and its own `outbox` buffer while unlinked. Once `outbox` is
/// linked, the receiving component's inbox bounds what waits there, and the connection stops
/// reading while it is full. Reads start at 1 KiB and grow while they fill; after a second
/// with nothing read, a grown buffer is let go. Over TCP or a Unix socket the connection waits
/// for the socket to be readable before it takes a buffer, and a read that drains the socket
/// gives a small buffer back with the data, so an idle connection holds none, whatever its
/// last burst was (under TLS, or over another byte stream, it keeps about 1 KiB).
///
/// With an idle timeout ([`CsaOptions::idle_timeout`], or a STARTTLS server's
/// [`CsaOptions::plaintext_timeout`] before the switch) a timer watches for a period with no
/// byte read from or written to the socket. The same timer does the one-second check for the
/// read buffer; it exists only while one of them is needed and is reset lazily, at most once
/// per period, so it costs a busy connection next to nothing.
///
/// # Inboxes
///
/// | name | type | meaning |
/// |---|---|---|
/// | `inbox` | `Bytes` | data to send (bounded by the send limit) |
/// | `control` | `Control` | ProducerFinished: send what is queued, then close (or half-close); ShutdownMicroprocess: close now |
/// | `makessl` | [`MakeSsl`](crate::internet::MakeSsl) | switch to TLS |
///
/// # Outboxes
///
/// | name | type | meaning |
/// |---|---|---|
/// | `outbox` | `Bytes` | data received |
/// | `signal` | `Control` | errors (a failed TLS client handshake: PeerCertificates first), PeerHalfClosed, then Transferred and ShutdownCsa as notices when it ends |
/// | `sslready` | [`SslReady`](crate::internet::SslReady) | the TLS version and cipher suite, once the handshake is done |
/// | `CreatorFeedback` | `Control` | SocketShutdown saying how the connection ended |
///
/// A [`TcpServer`](crate::internet::TcpServer)'s connection has no `CreatorFeedback`: the
/// server gives it a sender straight into its protocol's `control` instead (and declares
/// `makessl` and `sslready` only for a protocol that has them).
///
/// # Shutdown
///
/// ProducerFinished: everything queued in `inbox` is written, then the write side is shut (TLS:
/// close_notify first); with [`OnFinish::Close`] it ends there, with [`OnFinish::HalfClose`] it
/// keeps reading until the peer closes. With [`OnFinish::KeepOpen`] the write side stays open
/// (anything still arriving on `inbox` is sent) and it keeps reading until the peer closes,
/// then closes and ends with [`HowDied::Finished`](crate::internet::HowDied::Finished). ShutdownMicroprocess: it closes at once and
/// [`HowDied::Shutdown`](crate::internet::HowDied::Shutdown) counts what was dropped.
///
/// The peer's half-close (its FIN, or TLS close_notify) ends only the receive side: it is
/// announced with [`PeerHalfClosed`](crate::internet::PeerHalfClosed) and sending goes on until `inbox`'s producer finishes.
/// Under TLS this holds too: rustls keeps encrypting and sending after it has received the
/// peer's close_notify (TLS 1.3 half-close; TLS 1.2 peers usually close the socket as well, and
/// then the next write fails as below).
///
/// When it ends, in every case, it closes `inbox` (senders get `Closed` from then on) and sends
/// [`Transferred`](crate::internet::Transferred) on `signal`: bytes sent, received, and `unsent`, which counts everything
/// taken from `inbox` or still queued in it that never reached the socket, so that
/// `sent + unsent` is every byte that was handed to it.
///
/// # Errors
///
/// A reset, a broken pipe, another I/O error, a TLS failure or an idle timeout
/// ([`TcpError::IdleTimeout`](crate::internet::TcpError::IdleTimeout)) is sent on `signal` as a [`TcpError`](crate::internet::TcpError) and ends the connection;
/// [`SocketShutdown`](crate::internet::SocketShutdown) carries it as [`HowDied::Failed`](crate::internet::HowDied::Failed). A peer that has closed entirely makes
/// the next write fail with [`TcpError::Reset`](crate::internet::TcpError::Reset) or [`TcpError::BrokenPipe`](crate::internet::TcpError::BrokenPipe). `makessl` on a
/// connection already using TLS is an error on `signal` (`TlsError::AlreadyTls`) and the
/// connection carries on.
#[derive(Debug)]
pub struct ConnectedSocketAdapter;

impl ConnectedSocketAdapter {
    /// A component owning `stream` (connected to `peer`). With `tls`, `makessl` switches to TLS
    /// in that role; without, `makessl` is refused with an error.
    ///
    /// `stream` is any byte stream: a TCP stream, a Unix socket, an in-memory
    /// `tokio::io::duplex` pipe. `peer` names the other end in errors.
    #[allow(clippy::new_ret_no_self)]
    pub fn new<S>(
        stream: S,
        peer: SocketAddr,
        tls: Option<TlsRole>,
        on_finish: OnFinish,
    ) -> Component
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        Self::with_options(stream, peer, tls, on_finish, false)
    }

    /// As [`ConnectedSocketAdapter::new`]; with `tls_first`, the TLS handshake runs before any
    /// data (a server speaking TLS from the first byte).
    pub fn with_options<S>(
        stream: S,
        peer: SocketAddr,
        tls: Option<TlsRole>,
        on_finish: OnFinish,
        tls_first: bool,
    ) -> Component
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let options = CsaOptions::default()
            .on_finish(on_finish)
            .tls_first(tls_first);
        Self::with_config(stream, peer, tls, options)
    }

    /// A component owning `stream` (connected to `peer`), set up by `options`: what
    /// ProducerFinished does, TLS first or on `makessl`, idle timeouts and byte limits.
    pub fn with_config<S>(
        stream: S,
        peer: SocketAddr,
        tls: Option<TlsRole>,
        options: CsaOptions,
    ) -> Component
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let links = ServerLinks {
            makessl: true,
            sslready: true,
            tells_protocol: false,
            outbox_linked: false,
        };
        Self::for_server(stream, peer, tls, options, links, Feedback::Declared)
    }

    /// As [`ConnectedSocketAdapter::with_config`], for a server that knows what its protocol
    /// links to the connection: see [`ServerLinks`].
    pub(in crate::internet) fn for_server<S>(
        stream: S,
        peer: SocketAddr,
        tls: Option<TlsRole>,
        options: CsaOptions,
        links: ServerLinks,
        feedback: Feedback,
    ) -> Component
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let limits = options.limits;
        let mut b = Component::build("ConnectedSocketAdapter");
        let inbox = b.inbox_from(BOXES.inbox).limit_bytes(limits.send_bytes);
        // Its server links its `control`, and its protocol `makessl` and `sslready` if it has
        // them: none is rare. `sslready` is found by name when a handshake is done.
        let control = b.control_from(BOXES.control).into();
        let makessl = match links.makessl {
            true => b.inbox_from(BOXES.makessl).into(),
            false => axon::RareInbox::none(),
        };
        // Bounded in bytes for what it keeps while unlinked; once linked, the bound of the
        // inbox it is linked to applies. An outbox the server links before the connection
        // starts, and nothing can unlink, never keeps anything: no bound (a 32-byte block per
        // connection).
        let outbox = if links.outbox_linked {
            b.outbox_from(BOXES.outbox)
        } else {
            b.outbox_from(BOXES.outbox)
                .limit_bytes(limits.receive_bytes)
        };
        let signal = b.signal_from(BOXES.signal);
        if links.sslready {
            b.outbox_from::<crate::internet::SslReady>(BOXES.sslready);
        }
        let feedback = match feedback {
            Feedback::Declared => Some(b.outbox_from(BOXES.feedback)),
            Feedback::Into(sender) => sender,
        };
        let boxes = Boxes {
            inbox,
            control,
            makessl,
            outbox,
            signal,
            feedback,
            // Its own, where `sslready` is found, once it runs (`Connection::starts`).
            rare: axon::RareBoxes::none(),
        };
        // The connection is made here, and the routine's closure holds it: its loop is the
        // main routine itself, made in the closure's place, so the block holds one copy of the
        // connection's state. (Made in the closure instead, the closure held what it is made
        // from, the stream, the address, the TLS role and the options: 320 bytes, more than the
        // connection's future, in the block the connection then lives in.)
        let mut conn = connection(boxes, stream, peer, tls.map(Into::into), &options);
        if links.tells_protocol {
            conn.tells_protocol();
        }
        b.main(move |cx| {
            // The idle timeout counts from when the connection starts, as when it was made here.
            conn.starts(cx.rare_boxes());
            // The routine is the connection's own block: see `Connection::run`.
            conn.run()
        })
    }
}

/// How a server connection's adapter tells its protocol (or the protocol's supervisor) that
/// the peer has finished or how the connection ended.
pub(in crate::internet) enum Feedback {
    /// Through its own `CreatorFeedback` outbox, declared, for whoever builds it to link.
    Declared,
    /// Straight into the inbox the server gives ([`axon::BoxRef::sender`]; none: there is
    /// nobody to tell), with no box of its own: a server wires it once and never relinks it,
    /// and a declared outbox linked there cost a store and a table entry per connection.
    Into(Option<axon::Outbox<axon::Control>>),
}

/// What a server's protocol links to its connection's adapter, which declares only the boxes
/// something can use: a box costs a store (an 80-byte block and a table entry) per connection.
#[derive(Clone, Copy, Debug)]
pub(in crate::internet) struct ServerLinks {
    /// The protocol has a `makessl` outbox, linked to the adapter's: `makessl` is declared
    /// and waited on. Without it the adapter has none (a server speaking TLS from the first
    /// byte runs its handshake without one).
    pub(in crate::internet) makessl: bool,
    /// The protocol has an `sslready` inbox, linked from the adapter's: `sslready` is
    /// declared and says when a handshake is done. Without it the adapter has none.
    pub(in crate::internet) sslready: bool,
    /// The adapter's feedback ([`Feedback`]) goes to the protocol's `control` and carries one
    /// ProducerFinished, when the peer has finished sending or the connection has ended,
    /// instead of [`SocketShutdown`](crate::internet::SocketShutdown): the server needs no
    /// supervisor per connection to tell it.
    pub(in crate::internet) tells_protocol: bool,
    /// The protocol has an `inbox`: the adapter's `outbox` is linked to it before the
    /// connection starts, and only the server holds the adapter's boxes, so nothing can
    /// unlink it. It then keeps nothing itself and needs no byte bound of its own (the
    /// protocol's inbox's bound applies); without it, it is bounded, as for any adapter.
    pub(in crate::internet) outbox_linked: bool,
}

/// A connection over `stream` driven with `boxes`, set up by `options`: the CSA's, or a
/// client-shaped component's that drives its connection itself (`TcpClient`, `SingleServer`,
/// `UnixClient`: one component, one set of boxes, one future per connection).
pub(in crate::internet) fn connection<S>(
    boxes: Boxes,
    stream: S,
    peer: SocketAddr,
    tls: Option<TlsKept>,
    options: &CsaOptions,
) -> Connection<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let server_starttls = !options.tls_first && matches!(tls, Some(TlsKept::Server { .. }));
    let timeouts = Timeouts {
        idle: options.idle_timeout,
        plaintext: options.plaintext_timeout,
    };
    let state = State::new(options.on_finish, timeouts);
    Connection::new(
        boxes,
        stream,
        peer,
        tls,
        state,
        server_starttls,
        options.limits,
        options.tls_first,
    )
}

axon::box_table! {
    /// The CSA's boxes, declared once: the builder declares them from here, and a test checks the
    /// rustdoc tables against the declarations.
    const BOXES: CsaBoxes {
        inbox: INBOX => "data to send (bounded by the send limit)",
        control: CONTROL => "ProducerFinished: send what is queued, then close (or half-close); ShutdownMicroprocess: close now",
        makessl: "makessl" => "switch to TLS",
        outbox: OUTBOX => "data received",
        signal: SIGNAL => "errors (a failed TLS client handshake: PeerCertificates first), PeerHalfClosed, then Transferred and ShutdownCsa as notices when it ends",
        sslready: "sslready" => "the TLS version and cipher suite, once the handshake is done",
        feedback: "CreatorFeedback" => "SocketShutdown saying how the connection ended",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axon::{Control, Inbox};
    use tokio::net::{TcpListener, TcpStream};

    /// A TCP pair: ours, theirs, and our peer's address.
    async fn pair() -> (TcpStream, TcpStream, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let theirs = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (ours, peer) = listener.accept().await.unwrap();
        (ours, theirs, peer)
    }

    /// The block an adapter's routine lives in is the connection's future and a tag: at most
    /// 288 bytes in a debug build since session 15 (280 in a release build, a 288-byte chunk:
    /// the connection's run owns it, `Connection::run`, rather than a block that owns it
    /// driving it by reference: 304 before, which fails here); 304 since session 14 (its three outbox handles 16 bytes each,
    /// not 8: a linked outbox keeps no store, axon's `slot.rs`); 280 bytes (a 288-byte chunk)
    /// in a debug build since session 12 (272 in a release build). Before, the connection was made in the routine's closure, which held what it is
    /// made from (320 bytes, then the larger of the two), and the connection was 304 bytes
    /// (the block 344, a 352-byte chunk): fails on that code.
    #[tokio::test]
    async fn an_adapter_lives_in_a_block_of_its_connection_s_size() {
        let (ours, _theirs, peer) = pair().await;
        let block = ConnectedSocketAdapter::new(ours, peer, None, OnFinish::Close).routine_size();
        eprintln!("the adapter's block: {block} bytes");
        assert!(block <= 288, "the block: {block} bytes");
    }

    /// The connection is made where the adapter is built, and its idle timeout still counts
    /// from when it starts: built, then started 8 s later (paused time), a 10 s timeout ends it
    /// 10 s after its start, not 2 s.
    #[tokio::test(start_paused = true)]
    async fn an_adapter_s_idle_timeout_counts_from_its_start() {
        let (ours, _theirs, peer) = pair().await;
        let after = Duration::from_secs(10);
        let options = CsaOptions::default().idle_timeout(Some(after));
        let csa = ConnectedSocketAdapter::with_config(ours, peer, None, options);
        let seen = Inbox::<Control>::standalone("seen", 64);
        axon::link_refs(&csa.boxref(SIGNAL).unwrap(), &seen.boxref()).unwrap();
        tokio::time::advance(Duration::from_secs(8)).await;
        let started = tokio::time::Instant::now();
        crate::internet::tcp_client::tests::run_to_its_end(csa).await;
        let ended = started.elapsed();
        assert!(ended >= after, "timed out {ended:?} after its start");
        let mut timeouts = Vec::new();
        while let Some(c) = seen.try_recv() {
            if let Some(e) = c.error_ref::<crate::internet::TcpError>() {
                timeouts.push(e.to_string());
            }
        }
        let expected = crate::internet::TcpError::IdleTimeout { peer, after }.to_string();
        assert_eq!(timeouts, [expected]);
    }
}
