//! ConnectedSocketAdapter: the component that owns one connection.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use axon::{Component, Control, Inbox, Outbox};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_rustls::{client, server, TlsAcceptor};

use super::conn::Rewind;
use super::messages::{
    HowDied, MakeSsl, PeerHalfClosed, ShutdownCsa, SocketShutdown, SslReady, TcpError, Transferred,
};
use super::{classify, handshake, TlsError, TlsInfo, TlsSettings};

/// The most one read asks for.
const READ_CHUNK: usize = 256 * 1024;
/// What the first read of a connection asks for: an idle connection holds only this much.
const FIRST_READ: usize = 1024;
/// How many messages are taken from `inbox` ahead of the socket (one vectored write).
const WRITE_BATCH: usize = 64;
/// A connection that has read nothing for this long lets go of a read buffer grown past
/// [`FIRST_READ`], so an idle connection does not keep the size of its last burst. (Letting go
/// at once whenever a read finds nothing ready would cost a fresh allocation, faulted in, for
/// every time a busy connection drains its socket: 40% of the receive throughput.)
const QUIET_AFTER: Duration = Duration::from_secs(1);

/// The default of each direction of [`Limits`]: 256 KiB.
pub const DEFAULT_LIMIT_BYTES: usize = 256 * 1024;

/// How many bytes a connection may hold in each direction.
///
/// `send_bytes` bounds the CSA's `inbox` (and a [`super::TcpClient`]'s own `inbox` before the
/// connection is up) and, separately, the queue of messages taken from it that the socket has
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
    /// Ends the connection with [`TcpError::IdleTimeout`] when no byte moved either way for
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

/// The component that owns one established connection: it writes what arrives on `inbox`,
/// sends what it reads on `outbox`, and switches to TLS on `makessl` (Kamaelia's
/// ConnectedSocketAdapter). [`super::TcpClient`] and [`super::TcpServer`] make one per
/// connection; programs rarely make one themselves.
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
/// with nothing read, a grown buffer is let go, so an idle connection holds about 1 KiB
/// whatever its last burst was.
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
/// | `inbox` | `Bytes` | data to send (bounded by [`Limits::send_bytes`]) |
/// | `control` | `Control` | ProducerFinished: send what is queued, then close (or half-close); ShutdownMicroprocess: close now |
/// | `makessl` | [`MakeSsl`] | switch to TLS |
///
/// # Outboxes
///
/// | name | type | meaning |
/// |---|---|---|
/// | `outbox` | `Bytes` | data received |
/// | `signal` | `Control` | errors, [`PeerHalfClosed`], then [`Transferred`] and [`ShutdownCsa`] as notices when it ends |
/// | `sslready` | [`SslReady`] | the TLS version and cipher suite, once the handshake is done |
/// | `CreatorFeedback` | `Control` | [`SocketShutdown`] saying how the connection ended |
///
/// # Shutdown
///
/// ProducerFinished: everything queued in `inbox` is written, then the write side is shut (TLS:
/// close_notify first); with [`OnFinish::Close`] it ends there, with [`OnFinish::HalfClose`] it
/// keeps reading until the peer closes. With [`OnFinish::KeepOpen`] the write side stays open
/// (anything still arriving on `inbox` is sent) and it keeps reading until the peer closes,
/// then closes and ends with [`HowDied::Finished`]. ShutdownMicroprocess: it closes at once and
/// [`HowDied::Shutdown`] counts what was dropped.
///
/// The peer's half-close (its FIN, or TLS close_notify) ends only the receive side: it is
/// announced with [`PeerHalfClosed`] and sending goes on until `inbox`'s producer finishes.
/// Under TLS this holds too: rustls keeps encrypting and sending after it has received the
/// peer's close_notify (TLS 1.3 half-close; TLS 1.2 peers usually close the socket as well, and
/// then the next write fails as below).
///
/// When it ends, in every case, it closes `inbox` (senders get `Closed` from then on) and sends
/// [`Transferred`] on `signal`: bytes sent, received, and `unsent`, which counts everything
/// taken from `inbox` or still queued in it that never reached the socket, so that
/// `sent + unsent` is every byte that was handed to it.
///
/// # Errors
///
/// A reset, a broken pipe, another I/O error, a TLS failure or an idle timeout
/// ([`TcpError::IdleTimeout`]) is sent on `signal` as a [`TcpError`] and ends the connection;
/// [`SocketShutdown`] carries it as [`HowDied::Failed`]. A peer that has closed entirely makes
/// the next write fail with [`TcpError::Reset`] or [`TcpError::BrokenPipe`]. `makessl` on a
/// connection already using TLS is an error on `signal` (`TlsError::AlreadyTls`) and the
/// connection carries on.
#[derive(Debug)]
pub struct ConnectedSocketAdapter;

impl ConnectedSocketAdapter {
    /// A component owning `stream` (connected to `peer`). With `tls`, `makessl` switches to TLS
    /// in that role; without, `makessl` is refused with an error.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(
        stream: TcpStream,
        peer: SocketAddr,
        tls: Option<TlsRole>,
        on_finish: OnFinish,
    ) -> Component {
        Self::with_options(stream, peer, tls, on_finish, false)
    }

    /// As [`ConnectedSocketAdapter::new`]; with `tls_first`, the TLS handshake runs before any
    /// data (a server speaking TLS from the first byte).
    pub fn with_options(
        stream: TcpStream,
        peer: SocketAddr,
        tls: Option<TlsRole>,
        on_finish: OnFinish,
        tls_first: bool,
    ) -> Component {
        let options = CsaOptions::default()
            .on_finish(on_finish)
            .tls_first(tls_first);
        Self::with_config(stream, peer, tls, options)
    }

    /// A component owning `stream` (connected to `peer`), set up by `options`: what
    /// ProducerFinished does, TLS first or on `makessl`, idle timeouts and byte limits.
    pub fn with_config(
        stream: TcpStream,
        peer: SocketAddr,
        tls: Option<TlsRole>,
        options: CsaOptions,
    ) -> Component {
        let tls_first = options.tls_first;
        let server_starttls = !tls_first && matches!(tls, Some(TlsRole::Server { .. }));
        let limits = options.limits;
        let mut b = Component::build("ConnectedSocketAdapter");
        let boxes = Boxes {
            inbox: b
                .inbox("inbox", "data to send")
                .limit_bytes(limits.send_bytes),
            control: b.control(),
            makessl: b.inbox("makessl", "switch this connection to TLS"),
            outbox: b
                .outbox("outbox", "data received")
                .limit_bytes(limits.receive_bytes),
            signal: b.signal(),
            sslready: b.outbox("sslready", "TLS negotiated: version and cipher suite"),
            feedback: b.outbox("CreatorFeedback", "SocketShutdown when the connection ends"),
        };
        b.main(move |cx| async move {
            let label = cx.label().clone();
            let now = Instant::now();
            let mut conn = Connection {
                label: label.clone(),
                b: boxes,
                peer,
                tls,
                on_finish: options.on_finish,
                halves: Some(tokio::io::split(Conn::Plain(Rewind::new(stream)))),
                outq: VecDeque::new(),
                outq_bytes: 0,
                needs_flush: false,
                recv_open: true,
                send_open: true,
                finishing: false,
                is_tls: false,
                history: History {
                    keep: server_starttls,
                    ..History::default()
                },
                limits: options.limits,
                idle: options.idle_timeout,
                plaintext_idle: options.plaintext_timeout,
                counts: Counts::default(),
                last_activity: now,
                timer: None,
                armed: None,
            };
            let how = conn.run(tls_first).await;
            if let HowDied::Failed(e) = &how {
                let _ = conn
                    .b
                    .signal
                    .send(Control::error(label.clone(), e.clone()))
                    .await;
            }
            conn.close(&how).await;
            let transferred = conn.transferred();
            let _ = conn.b.signal.send(Control::notice(transferred)).await;
            let _ = conn
                .b
                .feedback
                .send(Control::notice(SocketShutdown(how)))
                .await;
            let _ = conn.b.signal.send(Control::notice(ShutdownCsa)).await;
            Ok(())
        })
    }
}

struct Boxes {
    inbox: Inbox<Bytes>,
    control: Inbox<Control>,
    makessl: Inbox<MakeSsl>,
    outbox: Outbox<Bytes>,
    signal: Outbox<Control>,
    sslready: Outbox<SslReady>,
    feedback: Outbox<Control>,
}

struct Connection {
    label: Arc<str>,
    b: Boxes,
    peer: SocketAddr,
    tls: Option<TlsRole>,
    on_finish: OnFinish,
    halves: Option<(ReadHalf<Conn>, WriteHalf<Conn>)>,
    /// Messages taken from `inbox`, not yet fully written; the front one may be partly written.
    outq: VecDeque<Bytes>,
    /// The bytes in `outq`; nothing more is taken from `inbox` while it is at the send limit.
    outq_bytes: usize,
    needs_flush: bool,
    recv_open: bool,
    send_open: bool,
    finishing: bool,
    is_tls: bool,
    /// STARTTLS servers: what was delivered on `outbox` lately, so a protocol can hand back
    /// what followed its command ([`MakeSsl::with_consumed`]).
    history: History,
    limits: Limits,
    idle: Option<Duration>,
    plaintext_idle: Option<Duration>,
    counts: Counts,
    /// When a byte last moved either way (the idle timeout counts from here).
    last_activity: Instant,
    /// One timer for the idle timeout and the quiet check, made only when needed and reset
    /// lazily: it may fire early, and is then set again for the deadline as it stands.
    timer: Option<Pin<Box<Sleep>>>,
    armed: Option<Instant>,
}

/// What [`Transferred`] reports, counted as the connection runs.
#[derive(Default)]
struct Counts {
    /// Accepted by the socket or the TLS layer.
    written: u64,
    /// Of those, flushed to the socket.
    flushed: u64,
    received: u64,
    /// Taken from `inbox` and thrown away (shutdown).
    dropped: u64,
}

/// The last bytes delivered in plaintext, with their offset in the stream.
#[derive(Default)]
struct History {
    keep: bool,
    chunks: VecDeque<Bytes>,
    start: u64,
    end: u64,
}

/// How much of the delivered plaintext a STARTTLS server keeps for replay.
const HISTORY_LIMIT: u64 = 256 * 1024;

impl History {
    fn record(&mut self, chunk: &Bytes) {
        if !self.keep {
            return;
        }
        self.end += chunk.len() as u64;
        self.chunks.push_back(chunk.clone());
        while self.end - self.start > HISTORY_LIMIT {
            let Some(front) = self.chunks.pop_front() else {
                break;
            };
            self.start += front.len() as u64;
        }
    }

    /// Everything delivered after the first `consumed` bytes.
    fn after(&self, consumed: u64) -> Result<Bytes, TlsError> {
        if consumed < self.start || consumed > self.end {
            return Err(TlsError::Config(format!(
                "makessl says {consumed} bytes were consumed, but bytes {}..{} are all that can be handed back",
                self.start, self.end
            )));
        }
        let mut skip = consumed - self.start;
        let mut out = Vec::with_capacity((self.end - consumed) as usize);
        for c in &self.chunks {
            let len = c.len() as u64;
            if skip >= len {
                skip -= len;
                continue;
            }
            out.extend_from_slice(&c[skip as usize..]);
            skip = 0;
        }
        Ok(out.into())
    }
}

enum Event {
    Control(Control),
    MakeSsl(MakeSsl),
    Read(io::Result<usize>),
    Wrote(io::Result<usize>),
    Flushed(io::Result<()>),
    Data(Bytes),
    Timer,
}

impl Connection {
    /// The connection's loop. The TLS switch and the closing flush are boxed when they run: the
    /// handshake's state is large, and a loop that held it inline would cost every idle
    /// connection that much memory.
    async fn run(&mut self, tls_first: bool) -> HowDied {
        if tls_first {
            if let Err(how) = Box::pin(self.start_tls(MakeSsl::new(), true)).await {
                return how;
            }
        }
        let mut rb = ReadBuffer::new(self.limits.receive_bytes, Instant::now());
        loop {
            // A makessl that arrived before the close is honoured first (it may have been sent
            // before ProducerFinished; separate boxes carry no order between them).
            if self.finishing
                && self.send_open
                && self.outq.is_empty()
                && self.b.inbox.is_empty()
                && self.b.makessl.is_empty()
            {
                if self.on_finish == OnFinish::KeepOpen {
                    // Everything is sent; the write side stays open until the peer closes.
                    if !self.recv_open && !self.needs_flush {
                        return HowDied::Finished;
                    }
                } else {
                    if let Err(how) = Box::pin(self.shut_write()).await {
                        return how;
                    }
                    if self.on_finish == OnFinish::Close {
                        return HowDied::Finished;
                    }
                }
            }
            if !self.send_open && !self.recv_open {
                return if self.finishing {
                    HowDied::Finished
                } else {
                    HowDied::PeerClosed
                };
            }
            self.arm(rb.quiet_at());
            let take_more = self.takes_more();
            let Some((rd, wr)) = self.halves.as_mut() else {
                return HowDied::Failed(TcpError::Tls(TlsError::NotConnected));
            };
            let b = &self.b;
            let ev = tokio::select! {
                c = b.control.recv() => Event::Control(c),
                m = b.makessl.recv() => Event::MakeSsl(m),
                r = read_when_ready(&b.outbox, rd, &mut rb), if self.recv_open => Event::Read(r),
                r = write_or_flush(wr, &self.outq), if !self.outq.is_empty() || self.needs_flush => r,
                d = b.inbox.recv(), if take_more => Event::Data(d),
                () = expiry(&mut self.timer), if self.armed.is_some() => Event::Timer,
            };
            match ev {
                Event::Control(c) => {
                    if c.is_shutdown() {
                        return self.shutdown_now();
                    } else if c.is_producer_finished() {
                        self.finishing = true;
                    } else {
                        let _ = self.b.signal.send(c).await;
                    }
                }
                Event::MakeSsl(m) => {
                    if self.is_tls || !self.send_open {
                        let e = if self.is_tls {
                            TlsError::AlreadyTls
                        } else {
                            TlsError::NotConnected
                        };
                        let _ = self
                            .b
                            .signal
                            .send(Control::error(self.label.clone(), TcpError::Tls(e)))
                            .await;
                    } else if let Err(how) = Box::pin(self.start_tls(m, false)).await {
                        return how;
                    }
                }
                Event::Read(Ok(0)) => {
                    self.last_activity = Instant::now();
                    self.peer_closed(false).await;
                }
                Event::Read(Ok(n)) => {
                    self.last_activity = Instant::now();
                    let chunk = rb.filled(n, self.last_activity);
                    self.deliver(chunk).await;
                    // A receiver that took its time is no reason to call the connection idle.
                    self.last_activity = Instant::now();
                }
                Event::Read(Err(e)) => {
                    if self.is_tls && e.kind() == io::ErrorKind::UnexpectedEof {
                        self.peer_closed(true).await;
                    } else {
                        return HowDied::Failed(self.error(e));
                    }
                }
                Event::Wrote(Ok(n)) => {
                    consume(&mut self.outq, n);
                    self.outq_bytes -= n;
                    self.wrote(n);
                    self.needs_flush = true;
                }
                Event::Wrote(Err(e)) | Event::Flushed(Err(e)) => {
                    return HowDied::Failed(self.error(e));
                }
                Event::Flushed(Ok(())) => {
                    self.needs_flush = false;
                    self.counts.flushed = self.counts.written;
                }
                Event::Data(d) => {
                    self.queue(d);
                    // Take what else is queued now, up to a batch, for one vectored write.
                    while self.takes_more() {
                        match self.b.inbox.try_recv() {
                            Some(d) => self.queue(d),
                            None => break,
                        }
                    }
                }
                Event::Timer => {
                    self.armed = None;
                    let now = Instant::now();
                    if let Some(after) = self.idle_limit() {
                        let deadline = self.last_activity.checked_add(after);
                        if deadline.is_some_and(|d| d <= now) {
                            return HowDied::Failed(TcpError::IdleTimeout {
                                peer: self.peer,
                                after,
                            });
                        }
                    }
                    rb.release_if_quiet(now);
                }
            }
        }
    }

    /// Whether to take more from `inbox`: the write side is open and the queue ahead of the
    /// socket has room for another message and is under the send limit. An empty queue always
    /// takes one message, so a limit of 0 still makes progress.
    fn takes_more(&self) -> bool {
        self.send_open
            && self.outq.len() < WRITE_BATCH
            && (self.outq.is_empty() || self.outq_bytes < self.limits.send_bytes)
    }

    fn queue(&mut self, d: Bytes) {
        if !d.is_empty() {
            self.outq_bytes += d.len();
            self.outq.push_back(d);
        }
    }

    /// Counts `n` bytes accepted by the socket (plain TCP: sent) or the TLS layer.
    fn wrote(&mut self, n: usize) {
        self.counts.written += n as u64;
        if !self.is_tls {
            self.counts.flushed = self.counts.written;
        }
        self.last_activity = Instant::now();
    }

    /// The idle timeout that applies now: the plaintext one counts only before TLS.
    fn idle_limit(&self) -> Option<Duration> {
        let plaintext = if self.is_tls {
            None
        } else {
            self.plaintext_idle
        };
        match (self.idle, plaintext) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sets the timer for the earliest deadline: the idle timeout, if there is one, and `quiet`
    /// (when a grown read buffer is let go). A deadline that overflows the clock is no
    /// deadline.
    fn arm(&mut self, quiet: Option<Instant>) {
        let idle = self
            .idle_limit()
            .and_then(|d| self.last_activity.checked_add(d));
        let next = match (idle, quiet) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(next) = next else {
            self.armed = None;
            return;
        };
        // Activity only moves deadlines later: an earlier timer fires, finds time left, and is
        // set again, so a busy connection resets its timer at most once per period.
        if self.armed.is_some_and(|a| a <= next) {
            return;
        }
        match self.timer.as_mut() {
            Some(t) => t.as_mut().reset(next),
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(next))),
        }
        self.armed = Some(next);
    }

    /// A deadline for a phase that moves no data the loop sees (a flush, the closing
    /// handshake): the idle timeout from now, or never.
    fn idle_deadline(&self) -> impl std::future::Future<Output = Duration> + 'static {
        let limit = self.idle_limit();
        let at = limit.and_then(|d| Instant::now().checked_add(d));
        async move {
            match (at, limit) {
                (Some(at), Some(limit)) => {
                    tokio::time::sleep_until(at).await;
                    limit
                }
                _ => std::future::pending().await,
            }
        }
    }

    /// What went each way, and what was handed over but never sent. Closes `inbox` first, so
    /// nothing can arrive after it is counted.
    fn transferred(&mut self) -> Transferred {
        self.b.inbox.close();
        while let Some(d) = self.b.inbox.try_recv() {
            self.counts.dropped += d.len() as u64;
        }
        let queued: u64 = self.outq.iter().map(|b| b.len() as u64).sum();
        let c = &self.counts;
        Transferred {
            sent: c.flushed,
            received: c.received,
            unsent: c.dropped + queued + (c.written - c.flushed),
        }
    }

    fn error(&self, e: io::Error) -> TcpError {
        if self.is_tls {
            match classify(&e) {
                TlsError::Io(_) => TcpError::io(self.peer, e),
                other => TcpError::Tls(other),
            }
        } else {
            TcpError::io(self.peer, e)
        }
    }

    async fn deliver(&mut self, chunk: Bytes) {
        self.history.record(&chunk);
        let n = chunk.len() as u64;
        match self.b.outbox.try_send(chunk) {
            Ok(()) => self.counts.received += n,
            Err(axon::TrySendError::Closed(_)) => {
                tracing::warn!(peer = %self.peer, "received data has nowhere to go: the receiving component has ended; no longer reading");
                self.recv_open = false;
            }
            Err(e) => {
                if self.b.outbox.send(e.into_inner()).await.is_err() {
                    self.recv_open = false;
                } else {
                    self.counts.received += n;
                }
            }
        }
    }

    async fn peer_closed(&mut self, truncation_possible: bool) {
        self.recv_open = false;
        let _ = self
            .b
            .signal
            .send(Control::notice(PeerHalfClosed {
                truncation_possible,
            }))
            .await;
    }

    fn shutdown_now(&mut self) -> HowDied {
        let mut dropped_messages = self.outq.len();
        let mut dropped_bytes: usize = self.outq.iter().map(Bytes::len).sum();
        while let Some(d) = self.b.inbox.try_recv() {
            dropped_messages += 1;
            dropped_bytes += d.len();
        }
        self.outq.clear();
        self.outq_bytes = 0;
        self.counts.dropped += dropped_bytes as u64;
        HowDied::Shutdown {
            dropped_messages,
            dropped_bytes,
        }
    }

    /// Writes everything queued, then shuts the write side (TLS: close_notify, then FIN).
    async fn shut_write(&mut self) -> Result<(), HowDied> {
        self.send_open = false;
        let idle = self.idle_deadline();
        let Some((_, wr)) = self.halves.as_mut() else {
            return Ok(());
        };
        let b = &self.b;
        let shut = async {
            wr.flush().await?;
            wr.shutdown().await
        };
        // Already finishing: a further ProducerFinished changes nothing.
        let mut finished = true;
        let peer = self.peer;
        tokio::select! {
            r = shut => {
                r.map_err(|e| HowDied::Failed(TcpError::io(peer, e)))?;
                self.counts.flushed = self.counts.written;
                Ok(())
            }
            () = wait_shutdown(&b.control, &b.signal, &mut finished) => Err(self.shutdown_now()),
            after = idle => Err(HowDied::Failed(TcpError::IdleTimeout { peer, after })),
        }
    }

    /// Flushes plaintext, checks nothing unread is pending (client), and runs the handshake.
    async fn start_tls(&mut self, m: MakeSsl, first: bool) -> Result<(), HowDied> {
        let Some(role) = self.tls.clone() else {
            return Err(HowDied::Failed(TcpError::Tls(TlsError::Config(
                "this connection has no TLS configuration".into(),
            ))));
        };
        // Everything queued before makessl goes out in plaintext first, unless TLS comes first
        // (then nothing has been taken from the inbox yet, and all of it waits for TLS).
        if !first {
            while let Some(d) = self.b.inbox.try_recv() {
                self.outq.push_back(d);
            }
        }
        if let Some(reply) = m.reply {
            self.outq.push_back(reply);
        }
        let Some((rd, mut wr)) = self.halves.take() else {
            return Err(HowDied::Failed(TcpError::Tls(TlsError::NotConnected)));
        };
        let peer = self.peer;
        let idle = self.idle_deadline();
        let outq = &mut self.outq;
        let mut wrote = 0;
        let flush = async {
            while !outq.is_empty() {
                let n = write_some(&mut wr, outq).await?;
                consume(outq, n);
                wrote += n;
            }
            wr.flush().await
        };
        let b = &self.b;
        let mut finished = false;
        let flushed = tokio::select! {
            r = flush => r.map_err(|e| Some(HowDied::Failed(TcpError::io(peer, e)))),
            () = wait_shutdown(&b.control, &b.signal, &mut finished) => Err(None),
            after = idle => Err(Some(HowDied::Failed(TcpError::IdleTimeout { peer, after }))),
        };
        self.outq_bytes = self.outq.iter().map(Bytes::len).sum();
        self.wrote(wrote);
        match flushed {
            Ok(()) => self.counts.flushed = self.counts.written,
            Err(Some(how)) => return Err(how),
            Err(None) => return Err(self.shutdown_now()),
        }
        self.finishing |= finished;
        self.needs_flush = false;
        let conn = rd.unsplit(wr);
        let Conn::Plain(mut sock) = conn else {
            return Err(HowDied::Failed(TcpError::Tls(TlsError::AlreadyTls)));
        };
        // A STARTTLS server's handshake starts with what the client sent after the command.
        let (replay, replayed) = match m.consumed {
            Some(consumed) => match self.history.after(consumed) {
                Ok(r) => {
                    let n = r.len() as u64;
                    (r, n)
                }
                Err(e) => return Err(HowDied::Failed(TcpError::Tls(e))),
            },
            None => (m.pushback, 0),
        };
        let handshake = async {
            match role {
                TlsRole::Client { settings, host } => {
                    match sock.pending() {
                        Ok(Some(0)) => {}
                        Ok(Some(bytes)) => return Err(TlsError::PlaintextInjection { bytes }),
                        Ok(None) => return Err(TlsError::NotConnected),
                        Err(e) => return Err(TlsError::Io(Arc::new(e))),
                    }
                    let name = settings.server_name_for(&host)?;
                    let config = settings.client_config()?;
                    let s = handshake(config, name, sock, settings.handshake_timeout()).await?;
                    let info = TlsInfo::from_common_state(s.get_ref().1);
                    Ok((Conn::Client(Box::new(s)), info))
                }
                TlsRole::Server { config, timeout } => {
                    sock.push_front(replay);
                    let accept = TlsAcceptor::from(config).accept(sock);
                    let s = match tokio::time::timeout(timeout, accept).await {
                        Err(_) => return Err(TlsError::HandshakeTimeout(timeout)),
                        Ok(Err(e)) => return Err(classify(&e)),
                        Ok(Ok(s)) => s,
                    };
                    let info = TlsInfo::from_common_state(s.get_ref().1);
                    Ok((Conn::Server(Box::new(s)), info))
                }
            }
        };
        let mut finished = false;
        let b = &self.b;
        let result = tokio::select! {
            r = handshake => r,
            () = wait_shutdown(&b.control, &b.signal, &mut finished) => return Err(self.shutdown_now()),
        };
        self.finishing |= finished;
        match result {
            Ok((conn, info)) => {
                self.is_tls = true;
                self.history = History::default();
                self.halves = Some(tokio::io::split(conn));
                let info = info.unwrap_or_else(|| TlsInfo {
                    version: "unknown".into(),
                    cipher_suite: "unknown".into(),
                    alpn: None,
                });
                let _ = self.b.sslready.send(SslReady { info, replayed }).await;
                Ok(())
            }
            Err(e) => Err(HowDied::Failed(TcpError::Tls(e))),
        }
    }

    /// Closes the connection; after a clean finish it was shut already, except with
    /// [`OnFinish::KeepOpen`], which shuts it here after the peer has closed.
    async fn close(&mut self, how: &HowDied) {
        if let Some((rd, wr)) = self.halves.take() {
            let mut conn = rd.unsplit(wr);
            let open = self.send_open && matches!(how, HowDied::Finished);
            if open || matches!(how, HowDied::PeerClosed) {
                let _ = tokio::time::timeout(Duration::from_secs(5), conn.shutdown()).await;
            }
            drop(conn);
        }
    }
}

/// Waits for ShutdownMicroprocess on `control`, forwarding errors and notices and noting
/// ProducerFinished in `finished` (it takes effect once the flush or handshake is over).
async fn wait_shutdown(control: &Inbox<Control>, signal: &Outbox<Control>, finished: &mut bool) {
    loop {
        let c = control.recv().await;
        if c.is_shutdown() {
            return;
        }
        if c.is_producer_finished() {
            *finished = true;
        } else {
            let _ = signal.send(c).await;
        }
    }
}

/// Waits for the timer, if there is one.
async fn expiry(timer: &mut Option<Pin<Box<Sleep>>>) {
    match timer.as_mut() {
        Some(t) => t.as_mut().await,
        None => std::future::pending().await,
    }
}

/// The buffer a connection reads into.
///
/// Reads start small and double while they fill the buffer, so an idle connection holds 1 KiB
/// and a busy one reads up to half the receive limit (at most 256 KiB) at a time. Half, so that
/// a box holding just under its limit and then admitting one more read stays within one and a
/// half times the limit. After [`QUIET_AFTER`] with nothing read, a grown buffer is let go and
/// reads start small again.
struct ReadBuffer {
    buf: BytesMut,
    want: usize,
    max: usize,
    last_read: Instant,
}

impl ReadBuffer {
    fn new(receive_limit: usize, now: Instant) -> Self {
        let max = (receive_limit / 2).clamp(1, READ_CHUNK);
        ReadBuffer {
            buf: BytesMut::new(),
            want: FIRST_READ.min(max),
            max,
            last_read: now,
        }
    }

    /// Reserves room for the next read. Done just before the read: by then the chunks split
    /// off earlier have usually been consumed and dropped, so `reserve` takes the same
    /// allocation back instead of allocating (and faulting in) fresh memory for every read.
    fn prepare(&mut self) -> bytes::buf::Limit<&mut BytesMut> {
        if self.buf.capacity() < self.want {
            self.buf.reserve(self.want);
        }
        (&mut self.buf).limit(self.want)
    }

    /// Takes the `n` bytes just read, at `now`; a read that filled the buffer doubles the next.
    fn filled(&mut self, n: usize, now: Instant) -> Bytes {
        self.last_read = now;
        if n == self.want {
            self.want = (self.want * 2).min(self.max);
        }
        self.buf.split().freeze()
    }

    /// When a grown buffer is to be let go, if it has grown.
    fn quiet_at(&self) -> Option<Instant> {
        if self.want > FIRST_READ {
            self.last_read.checked_add(QUIET_AFTER)
        } else {
            None
        }
    }

    /// Lets go of a grown buffer if nothing has been read for [`QUIET_AFTER`].
    fn release_if_quiet(&mut self, now: Instant) {
        if self.quiet_at().is_some_and(|at| at <= now) {
            self.buf = BytesMut::new();
            self.want = FIRST_READ.min(self.max);
        }
    }

    /// The bytes reserved now.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.buf.capacity()
    }
}

/// Waits for room in `outbox`, then reads into `rb` (see [`ReadBuffer::prepare`]).
async fn read_when_ready(
    outbox: &Outbox<Bytes>,
    rd: &mut ReadHalf<Conn>,
    rb: &mut ReadBuffer,
) -> io::Result<usize> {
    outbox.ready().await;
    rd.read_buf(&mut rb.prepare()).await
}

/// Writes from `outq` if it has anything, else flushes (TLS keeps records buffered).
async fn write_or_flush(wr: &mut WriteHalf<Conn>, outq: &VecDeque<Bytes>) -> Event {
    if outq.is_empty() {
        Event::Flushed(wr.flush().await)
    } else {
        Event::Wrote(write_some(wr, outq).await)
    }
}

async fn write_some(wr: &mut WriteHalf<Conn>, outq: &VecDeque<Bytes>) -> io::Result<usize> {
    let slices: Vec<IoSlice<'_>> = outq
        .iter()
        .take(WRITE_BATCH)
        .map(|b| IoSlice::new(b))
        .collect();
    let n = wr.write_vectored(&slices).await?;
    if n == 0 {
        return Err(io::ErrorKind::WriteZero.into());
    }
    Ok(n)
}

fn consume(outq: &mut VecDeque<Bytes>, mut n: usize) {
    while n > 0 {
        let Some(front) = outq.front_mut() else {
            return;
        };
        if front.len() <= n {
            n -= front.len();
            outq.pop_front();
        } else {
            front.advance(n);
            n = 0;
        }
    }
}

/// Plain TCP, or TLS as a client or a server.
enum Conn {
    Plain(Rewind),
    Client(Box<client::TlsStream<Rewind>>),
    Server(Box<server::TlsStream<Rewind>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Client(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Conn::Server(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Client(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Conn::Server(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Client(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Conn::Server(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Client(s) => s.is_write_vectored(),
            Conn::Server(s) => s.is_write_vectored(),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Client(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Conn::Server(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Client(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Conn::Server(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After a burst the buffer has grown to the largest read; a second with nothing read lets
    /// it go, and reads start small again. (Before, an idle connection kept its last burst's
    /// buffer for ever.)
    #[test]
    fn a_quiet_connection_lets_go_of_its_grown_read_buffer() {
        let t0 = Instant::now();
        let mut rb = ReadBuffer::new(DEFAULT_LIMIT_BYTES, t0);
        assert_eq!(rb.quiet_at(), None, "a small buffer has nothing to let go");
        // A burst: every read fills what it asked for.
        for _ in 0..10 {
            let mut room = rb.prepare();
            let n = room.remaining_mut();
            room.put_bytes(7, n);
            drop(rb.filled(n, t0));
        }
        let _ = rb.prepare();
        assert_eq!(rb.want, DEFAULT_LIMIT_BYTES / 2);
        assert!(rb.held() >= DEFAULT_LIMIT_BYTES / 2);
        assert_eq!(rb.quiet_at(), t0.checked_add(QUIET_AFTER));

        rb.release_if_quiet(t0 + QUIET_AFTER / 2);
        assert!(rb.held() >= DEFAULT_LIMIT_BYTES / 2, "let go too early");
        rb.release_if_quiet(t0 + QUIET_AFTER);
        assert_eq!(rb.held(), 0);
        assert_eq!(rb.quiet_at(), None);
        let _ = rb.prepare();
        assert_eq!(rb.held(), FIRST_READ);
    }

    #[test]
    fn reads_are_at_most_half_the_receive_limit_and_at_least_one_byte() {
        let t0 = Instant::now();
        assert_eq!(ReadBuffer::new(64 * 1024, t0).max, 32 * 1024);
        assert_eq!(ReadBuffer::new(16 << 20, t0).max, READ_CHUNK);
        let tiny = ReadBuffer::new(0, t0);
        assert_eq!((tiny.max, tiny.want), (1, 1));
    }
}
