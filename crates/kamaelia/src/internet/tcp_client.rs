//! TcpClient: Kamaelia's Simple TCP Client.

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use axon::{
    Component, ComponentBuilder, Context, Control, Inbox, MainResult, Outbox, RareBoxes, RareInbox,
    TrySendError, CONTROL, INBOX, OUTBOX, SIGNAL,
};
use bytes::Bytes;
use futures_util::future::{Either, FutureExt};
use std::future::Future as _;
use std::task::{Context as TaskContext, Poll};
use tokio::time::Instant;

use super::csa::{self, connection, final_message, CsaOptions, Limits, OnFinish, TlsKept, MAKESSL};
use super::messages::{Connected, HowDied, MakeSsl, SslReady, TcpError, Transferred};
use super::selector::Selector;
use super::tls::default_tls;
use super::{connect, ConnectError, Family, TlsSettings};

/// Kamaelia's default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// A component with a TCP connection to a server (Kamaelia.Internet.TCPClient). Send to its
/// `inbox` to send data to the server; pick up data received from the server on its `outbox`.
///
/// # Example
///
/// Sending the contents of a file to a server (the page's first example):
///
/// ```
/// use kamaelia::{Pipeline, RateControlledFileReader, TcpClient};
/// # use tokio::io::AsyncReadExt;
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let port = listener.local_addr()?.port();
/// # let dir = std::env::temp_dir().join(format!("tcpclient-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # let myfile = dir.join("myfile");
/// # std::fs::write(&myfile, b"the contents of myfile")?;
/// # let server = tokio::spawn(async move {
/// #     let (mut s, _) = listener.accept().await.unwrap();
/// #     let mut got = Vec::new();
/// #     s.read_to_end(&mut got).await.unwrap();
/// #     got
/// # });
/// let report = axon::Scheduler::new()
///     .run(async {
///         Pipeline::new([
///             RateControlledFileReader::new(&myfile).rate(100_000).into(),
///             TcpClient::new("127.0.0.1", port).into(),
///         ])
///         .expect("wiring")
///         .activate();
///     })
///     .await;
/// assert!(report.is_ok());
/// # assert_eq!(server.await?, b"the contents of myfile");
/// # Ok(())
/// # }
/// ```
///
/// Switching to TLS (the page's SSL example) is a Graphline with a [`crate::OneShot`] of
/// [`MakeSsl`] into `makessl`; see [`crate::Graphline`] and `examples/ssl_console.rs`.
///
/// # How it works
///
/// When activated it waits for the optional delay (a timer, not a busy wait), then resolves the
/// host without blocking and connects, trying every address and racing IPv6 and IPv4 (Happy
/// Eyeballs, RFC 8305); the connect timeout bounds all of it. Control messages are honoured
/// during the delay and while connecting. The socket is created on the runtime of the
/// `"selector"` service, which it looks up in the registry (Kamaelia's Coordinating Assistant
/// Tracker) and creates on first use.
///
/// Once connected it drives the connection itself, with its own boxes: it runs the loop of a
/// [`ConnectedSocketAdapter`](super::ConnectedSocketAdapter) (CSA) in its own task, where
/// Kamaelia made a CSA child and wired the client's `inbox`, `makessl` and `control` through
/// to it and the CSA's `outbox`, `sslready` and `signal` back (one component, one set of boxes
/// and one future per connection instead of two; what goes in and comes out is the same).
/// Kamaelia's two private boxes to that child, `_socketFeedback` and `_csaControl`, are not
/// declared: there is no child to wire them to, and a box costs a store per connection.
/// `control`, `makessl` and `sslready` are rare boxes (`docs/semantics.md` §1): boxes in full,
/// whose stores are made when something first links or sends to them, so a client that nothing
/// links them to holds none. Everything sent to `inbox`
/// before the connection was up is sent first, in order — after the TLS handshake if a
/// `makessl` was queued too (as in the page's SSL example, where OneShot sends it at once), so
/// that nothing queued goes out in plaintext. When the connection has ended it sends exactly
/// one final message on `signal`.
///
/// *Our additions*: `family`, `tls` settings, `nodelay`, `on_finish` (Kamaelia's
/// `wait_for_serverclose`, and [`OnFinish::KeepOpen`]), `idle_timeout`, byte `limits`; typed
/// errors; a [`Connected`] notice and a [`Transferred`] notice; [`HowDied`] in the final
/// message; certificate verification on `makessl`.
///
/// Its own `inbox` and `outbox` are bounded in bytes by [`Limits`] (256 KiB each direction by
/// default) as well as in messages, so what waits for the connection to come up, and what it
/// receives while its `outbox` is not linked, is bounded too; the connection's own boxes and
/// queues get the same limits (see [`ConnectedSocketAdapter`](super::ConnectedSocketAdapter)).
///
/// # Inboxes
///
/// | name | type | meaning |
/// |---|---|---|
/// | `inbox` | `Bytes` | data to send to the server |
/// | `control` | `Control` | ProducerFinished: send what is queued, then close; ShutdownMicroprocess: close now |
/// | `makessl` | [`MakeSsl`] | switch the connection to TLS |
///
/// # Outboxes
///
/// | name | type | meaning |
/// |---|---|---|
/// | `outbox` | `Bytes` | data received from the server |
/// | `signal` | `Control` | Connected, errors (a failed TLS handshake: PeerCertificates first), PeerHalfClosed, Transferred, then one final message |
/// | `sslready` | [`SslReady`] | TLS negotiated (version, cipher suite) |
///
/// # Shutdown
///
/// ProducerFinished (at any time, even before the connection is up): everything queued is sent,
/// then the connection closes (TLS: close_notify first), or with [`OnFinish::HalfClose`] the
/// write side is shut and what the server sends is still delivered until it closes, or with
/// [`OnFinish::KeepOpen`] the write side stays open and what the server sends is delivered
/// until it closes. The server's half-close ends only what it sends: the upload goes on until
/// `inbox`'s producer finishes.
/// ShutdownMicroprocess (or [`axon::Handle::stop`]) in any phase closes promptly; queued data is
/// dropped and the final message's [`HowDied::Shutdown`] says how much. The final message is
/// ShutdownMicroprocess after a shutdown and ProducerFinished otherwise, each carrying the
/// [`HowDied`] as its detail. Just before it comes one [`Transferred`] notice: the connection's
/// counts, or, if it never connected, what was queued and dropped as `unsent`.
///
/// # Errors
///
/// Each failure is a [`TcpError`] on `signal` as `Control::Error`, then the final message: the
/// name did not resolve, the connection was refused or timed out ([`TcpError::Connect`]), reset by
/// the peer, broken pipe, a TLS failure with its reason ([`TcpError::Tls`]), no traffic for the
/// idle timeout ([`TcpError::IdleTimeout`]). A clean close by the server is not an error. A
/// huge `delay`, `connect_timeout` or `idle_timeout` (even [`Duration::MAX`]) is never a panic:
/// a deadline the clock cannot hold is dropped, or (a connect to an IP literal with no delay,
/// kept small) put 100 years off, past any client's life.
#[derive(Clone, Debug)]
pub struct TcpClient {
    /// Shared, not copied, with the connection's TLS record: the one allocation made where the
    /// client is built lives as long as the connection (no copy at connect time, and no block
    /// freed on the worker that would be a hole in the builder's heap).
    host: Arc<str>,
    port: u16,
    /// Shared (changed copy-on-write): a client is built on one thread and run on another,
    /// and what it carries from one to the other (this and its boxes) is freed there, a hole
    /// in the builder's heap; a client at the defaults carries a pointer, not 80 bytes. The
    /// client is held through its connect, in the block its connection then lives in: 32
    /// bytes with its TLS settings in here, 40 with them beside (the cost: a client with TLS
    /// settings of its own carries a copy of its options, as one with any other option does).
    options: Arc<Options>,
}

/// The rest of a [`TcpClient`]'s settings.
#[derive(Clone, Debug)]
struct Options {
    /// Shared by the clients cloned from this one, and by every client left at the default:
    /// each connection keeps a pointer to them for a `makessl` most never get.
    tls: Arc<TlsSettings>,
    delay: Duration,
    connect_timeout: Duration,
    family: Family,
    nodelay: bool,
    on_finish: OnFinish,
    idle_timeout: Option<Duration>,
    limits: Limits,
}

/// The hosts clients keep, shared: most connections go to a few servers, and a string of its
/// own per client was a block as long as its connection lived (48 bytes for `"127.0.0.1"`),
/// made where the client was built. At most 1,024 hosts of at most 256 bytes (a DNS name is
/// at most 253): 256 KiB, whatever strings a program is given.
static HOSTS: axon::SharedNames = axon::SharedNames::new(1024, 256);

/// The default options, made once per process and shared by every client left at them.
fn default_options() -> Arc<Options> {
    static DEFAULT: std::sync::OnceLock<Arc<Options>> = std::sync::OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            Arc::new(Options {
                tls: default_tls(),
                delay: Duration::ZERO,
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                family: Family::Any,
                nodelay: false,
                on_finish: OnFinish::Close,
                idle_timeout: None,
                limits: Limits::default(),
            })
        })
        .clone()
}

impl TcpClient {
    /// A client for `host` (a name, or an IPv4 or IPv6 literal) and `port`.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        TcpClient {
            host: HOSTS.get(&host.into()),
            port,
            options: default_options(),
        }
    }

    /// The options, to change (copied first if shared).
    fn options_mut(&mut self) -> &mut Options {
        Arc::make_mut(&mut self.options)
    }

    /// Waits `delay` after activation before connecting (default none).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.options_mut().delay = delay;
        self
    }

    /// Gives up connecting after `timeout` (default 60 s, as Kamaelia).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.options_mut().connect_timeout = timeout;
        self
    }

    /// Uses only one address family (default: both, raced).
    pub fn family(mut self, family: Family) -> Self {
        self.options_mut().family = family;
        self
    }

    /// TLS settings used on `makessl` (default: the built-in Mozilla roots, verifying `host`).
    pub fn tls(mut self, settings: TlsSettings) -> Self {
        self.options_mut().tls = Arc::new(settings);
        self
    }

    /// Sets TCP_NODELAY on the connection.
    pub fn nodelay(mut self, on: bool) -> Self {
        self.options_mut().nodelay = on;
        self
    }

    /// What ProducerFinished does (default [`OnFinish::Close`]).
    pub fn on_finish(mut self, on_finish: OnFinish) -> Self {
        // Options shared with other clients are copied only to change (a Relay sets its
        // client's to what it usually is already).
        if self.options.on_finish != on_finish {
            self.options_mut().on_finish = on_finish;
        }
        self
    }

    /// Ends the connection with [`TcpError::IdleTimeout`] when no byte has moved either way
    /// for `timeout` once it is up (default `None`: never). Connecting has its own timeout.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.options_mut().idle_timeout = timeout;
        self
    }

    /// Byte bounds for each direction (default [`Limits::default`], 256 KiB each): the
    /// client's `inbox` and `outbox` and its connection's queues.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.options_mut().limits = limits;
        self
    }

    /// Kamaelia's `wait_for_serverclose`: [`OnFinish::HalfClose`] when true.
    pub fn wait_for_server_close(self, on: bool) -> Self {
        self.on_finish(if on {
            OnFinish::HalfClose
        } else {
            OnFinish::Close
        })
    }
}

/// The boxes of a client-shaped component (TcpClient, SingleServer, UnixClient) as its
/// routine holds them. `control`, `makessl` and `sslready` are rare boxes (made when first
/// used: an idle client that nothing links them to holds none of their stores); `sslready` is
/// found through `rare` when a handshake is done.
pub(super) struct Boxes {
    pub(super) inbox: Inbox<Bytes>,
    pub(super) control: RareInbox<Control>,
    pub(super) makessl: RareInbox<MakeSsl>,
    pub(super) outbox: Outbox<Bytes>,
    pub(super) signal: Outbox<Control>,
    pub(super) rare: RareBoxes,
}

/// The boxes as declared, before the routine starts (the rare ones are reached through the
/// component's block, which exists only once it is built).
pub(super) struct Declared {
    inbox: Inbox<Bytes>,
    control: RareInbox<Control>,
    makessl: RareInbox<MakeSsl>,
    outbox: Outbox<Bytes>,
    signal: Outbox<Control>,
}

impl Declared {
    /// The boxes as the routine started by `cx` holds them.
    pub(super) fn start(self, cx: &Context) -> Boxes {
        Boxes {
            inbox: self.inbox,
            control: self.control,
            makessl: self.makessl,
            outbox: self.outbox,
            signal: self.signal,
            rare: cx.rare_boxes(),
        }
    }
}

impl Boxes {
    /// Polls `control` (made when something first links or sends to it). A method, so that a
    /// closure that polls it holds one reference to the boxes, not one per field it reads.
    fn poll_control(&mut self, cx: &mut TaskContext<'_>) -> Poll<Control> {
        self.control.poll_recv(&self.rare, CONTROL, cx)
    }

    /// The boxes its connection is driven with once up: the client's own.
    fn into_connection(self) -> csa::Boxes {
        csa::Boxes {
            inbox: self.inbox,
            control: self.control,
            makessl: self.makessl,
            outbox: self.outbox,
            signal: self.signal,
            feedback: None,
            rare: self.rare,
        }
    }

    /// Declares the boxes from `table`, `inbox` and `outbox` bounded in bytes by `limits`.
    /// Kamaelia's `_socketFeedback` and `_csaControl` (its wiring to a CSA child) are not
    /// declared: the connection is driven here, with no child.
    pub(super) fn declare(
        b: &mut ComponentBuilder,
        table: &ClientBoxes,
        limits: Limits,
    ) -> Declared {
        let inbox = b.inbox_from(table.inbox).limit_bytes(limits.send_bytes);
        let control = b.rare_control_from(table.control);
        let makessl = b.rare_inbox_from(table.makessl);
        let outbox = b
            .outbox_from(table.outbox)
            .limit_bytes(limits.receive_bytes);
        let signal = b.signal_from(table.signal);
        b.rare_outbox_from::<SslReady>(table.sslready);
        Declared {
            inbox,
            control,
            makessl,
            outbox,
            signal,
        }
    }
}

axon::box_table! {
    /// The client's boxes, declared once: the builder declares them from here, and a test checks
    /// the rustdoc tables against the declarations.
    pub(super) const BOXES: ClientBoxes {
        inbox: INBOX => "data to send to the server",
        control: CONTROL => "ProducerFinished: send what is queued, then close; ShutdownMicroprocess: close now",
        makessl: "makessl" => "switch the connection to TLS",
        outbox: OUTBOX => "data received from the server",
        signal: SIGNAL => "Connected, errors (a failed TLS handshake: PeerCertificates first), PeerHalfClosed, Transferred, then one final message",
        sslready: "sslready" => "TLS negotiated (version, cipher suite)",
    }
}

impl From<TcpClient> for Component {
    fn from(cfg: TcpClient) -> Component {
        let mut b = Component::build("TcpClient");
        let boxes = Boxes::declare(&mut b, &BOXES, cfg.options.limits);
        b.main_then(move |cx| connect_phase(cfg, boxes, cx))
    }
}

/// A client's main routine is in two phases ([`ComponentBuilder::main_then`]), one block for
/// its whole life: it connects ([`connect_phase`]), which ends here: with the connection's
/// future, made in the place the connecting state had, or with the routine's result when
/// there is no connection. The connecting state is about the size of the
/// connection's (344 bytes each in a release build), so a connect costs no block of its own:
/// a burst of connecting clients held one each (744 bytes) and freed it once connected, leaving
/// holes in the heap that the smaller blocks allocated after it did not fill. A poll of the
/// connection is the runtime's test of the phase and the connection's own poll (as a
/// `connect_phase(..).then(connected)` routine it went through the combinator's layer too).
#[allow(clippy::type_complexity)] // the first phase's output, as it hands it to the builder
fn connected(
    connecting: Result<Option<(Boxes, Up)>, axon::BoxError>,
) -> ControlFlow<MainResult, impl std::future::Future<Output = MainResult> + Send + 'static> {
    match connecting {
        Ok(Some((b, (stream, peer, role, options, stopping)))) => ControlFlow::Continue(
            run_connected(b, stream, peer, Some(role), options, stopping),
        ),
        Ok(None) => ControlFlow::Break(Ok(())),
        Err(e) => ControlFlow::Break(Err(e)),
    }
}

/// What happened while waiting for the connection.
enum Early {
    Shutdown,
    Failed(TcpError),
}

/// A connection that is up and announced, ready for [`run_connected`]: the stream, the peer's
/// address, the TLS role, the connection's options, and whether ProducerFinished came before.
type Up = (tokio::net::TcpStream, SocketAddr, TlsKept, CsaOptions, bool);

/// The address a client connects to in its own future: an IP literal of its family, with no
/// delay first, on the selector's runtime (`here`); `None` for the rest (boxed).
fn literal_here(cfg: &TcpClient, here: bool) -> Option<SocketAddr> {
    let o = &cfg.options;
    if here && o.delay.is_zero() {
        super::connect::literal_of(&cfg.host, cfg.port, o.family)
    } else {
        None
    }
}

/// Connects; `None` once the client has ended without a connection (its final message sent).
///
/// A plain function returning the future: an `async fn` would hold its arguments twice (as
/// arguments and as the locals they move to). The usual case (an IP literal, no delay, the
/// selector's runtime) holds the attempt, its deadline and little else, no more than the
/// connection will (the size test); the others are boxed.
#[allow(clippy::manual_async_fn)] // on purpose: see above
fn connect_phase(
    cfg: TcpClient,
    b: Declared,
    cx: Context,
) -> impl std::future::Future<
    Output = ControlFlow<
        MainResult,
        impl std::future::Future<Output = MainResult> + Send + 'static,
    >,
> + Send {
    let mut b = b.start(&cx);
    // Nothing of the context is kept: the client starts no children, its errors read its label
    // from its boxes, and its scheduler, for its services (the selector), is the current one
    // while its routine is polled (`Scheduler::current`). The whole context was 24 bytes in
    // the block the connection lives in, the scheduler alone 8.
    drop(cx);
    async move {
        // On the selector's own runtime (the usual case) the attempt runs in this task; only a
        // selector on another runtime gets a task of its own there. A task per connection would
        // be memory held at the peak of a burst of connections, for nothing. (The selector is
        // not kept through the wait: looked up again by the rare connects that need it.)
        let here = {
            let sched = axon::Scheduler::current();
            let (selector, _) = match Selector::get_or_create(sched.services()) {
                Ok(selector) => selector,
                Err(e) => return connected(Err(e.into())),
            };
            tokio::runtime::Handle::try_current().is_ok_and(|h| h.id() == selector.handle().id())
        };
        // Control before the connection is up, as a ControlWatch would take it (errors and
        // notices passed on, ProducerFinished noted here, ShutdownMicroprocess ends the wait);
        // from then on the connection's loop reads it.
        let mut stopping = false;
        // What a wait ends with is taken apart before anything else is awaited, and the
        // address is found again after the wait rather than kept through it: the connecting
        // state holds the attempt and its deadline and little else (the size test).
        let outcome = match literal_here(&cfg, here) {
            Some(addr) => 'attempt: {
                // A timeout too long for the clock (e.g. 1e19 s) is no deadline at all: one
                // past this client's life.
                let deadline = Instant::now()
                    .checked_add(cfg.options.connect_timeout)
                    .unwrap_or_else(|| Instant::now() + NO_DEADLINE);
                // Started here, and the attempt waits for the stream alone: what failed at once
                // (the socket, or the connect) is said without a slot for it in the state.
                let stream = match super::connect::start_connect(addr) {
                    Ok(stream) => stream,
                    Err(e) => break 'attempt Err(connect_failed(super::connect::failed(addr, e))),
                };
                let mut attempt = std::pin::pin!(tokio::time::timeout_at(
                    deadline,
                    super::connect::Connecting::new(stream)
                ));
                loop {
                    // Written out here rather than with `with_control`: its future would hold
                    // the references again, beside the attempt.
                    let c = match std::future::poll_fn(|cx| {
                        if let Poll::Ready(r) = attempt.as_mut().poll(cx) {
                            return Poll::Ready(Ok(r));
                        }
                        b.poll_control(cx).map(Err)
                    })
                    .await
                    {
                        Ok(r) => break attempted(&cfg, r),
                        Err(c) => c,
                    };
                    // Rare, and it may wait for room on `signal`: boxed.
                    let early = Box::pin(control_while_connecting(&b, &mut stopping, c)).await;
                    if let Some(early) = early {
                        break Err(early);
                    }
                }
            }
            None => Box::pin(connect_elsewhere(&cfg, &mut b, &mut stopping, here)).await,
        };
        // `outcome` is moved whole (a local moved only in part would be kept through the
        // wait below), and nothing in this match waits: what may wait is boxed, with what it
        // needs, and awaited after it (a match whose arm awaits keeps what it matched on).
        let rest = match failure_of(outcome) {
            Ok((stream, peer)) => match announced(cfg, b, stream, peer, stopping) {
                Ok(up) => return connected(Ok(Some(up))),
                Err(waiting) => Either::Left(waiting),
            },
            // Boxed: a client connecting holds this state at the peak of a burst of connects.
            Err(failure) => {
                let label = b.signal.id().owner;
                Either::Right(Box::pin(async move {
                    end_unconnected(&b, label, failure).await;
                    None
                }))
            }
        };
        connected(Ok(rest.await))
    }
}

/// A client connected: what its connection is made from, once [`Connected`] is announced.
/// Announced here, in the connecting state, rather than in the connection's future, whose
/// every byte an idle connection holds. When `signal` has no room (rare) the wait is boxed
/// with what the connection is made from, and handed back to await.
#[allow(clippy::type_complexity)] // a phase's output, as the builder hands it over
fn announced(
    cfg: TcpClient,
    mut b: Boxes,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    stopping: bool,
) -> Result<
    (Boxes, Up),
    std::pin::Pin<Box<impl std::future::Future<Output = Option<(Boxes, Up)>> + Send + 'static>>,
> {
    if cfg.options.nodelay {
        let _ = stream.set_nodelay(true);
    }
    let local = stream.local_addr().ok();
    // A makessl that was queued before the connection was up runs first: whatever else was
    // queued cannot be ordered against it (they are different boxes), so none of it may go out
    // in plaintext.
    let tls_first = b.makessl.try_recv(&b.rare, MAKESSL).is_some();
    let up = up(cfg, b, stream, peer, tls_first, stopping);
    match local.and_then(|local| try_announce(&up.0.signal, peer, local)) {
        None => Ok(up),
        Some(notice) => Err(Box::pin(async move {
            let _ = up.0.signal.send(notice).await;
            Some(up)
        })),
    }
}

/// What a connect that did not end with a stream passes on: `None` after a shutdown.
fn failure_of<T>(connected: Result<T, Early>) -> Result<T, Option<TcpError>> {
    connected.map_err(|early| match early {
        Early::Shutdown => None,
        Early::Failed(e) => Some(e),
    })
}

/// What a connected client's connection is made from.
fn up(
    cfg: TcpClient,
    b: Boxes,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    tls_first: bool,
    stopping: bool,
) -> (Boxes, Up) {
    // The settings and the host are shared (pointers), not copied: most connections never use
    // them.
    let role = TlsKept::Client {
        settings: cfg.options.tls.clone(),
        host: cfg.host.clone(),
    };
    let options = CsaOptions::default()
        .on_finish(cfg.options.on_finish)
        .tls_first(tls_first)
        .idle_timeout(cfg.options.idle_timeout)
        .limits(cfg.options.limits);
    (b, (stream, peer, role, options, stopping))
}

/// How far off a deadline too far for the clock is put: past any client's life.
const NO_DEADLINE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The end of an attempt at `cfg`'s IP literal: the stream and the address (found again from
/// `cfg`, as before the attempt: it is not kept through the wait), or the error as [`connect`]
/// reports it.
fn attempted(
    cfg: &TcpClient,
    r: Result<std::io::Result<tokio::net::TcpStream>, tokio::time::error::Elapsed>,
) -> Result<(tokio::net::TcpStream, SocketAddr), Early> {
    let o = &cfg.options;
    let addr = super::connect::literal_of(&cfg.host, cfg.port, o.family);
    match (r, addr) {
        (Ok(Ok(stream)), Some(addr)) => Ok((stream, addr)),
        (Ok(Err(e)), Some(addr)) => Err(connect_failed(super::connect::failed(addr, e))),
        (Err(_elapsed), _) => Err(connect_failed(ConnectError::TimedOut {
            host: cfg.host.to_string(),
            port: cfg.port,
            after: o.connect_timeout,
        })),
        // Not reached: `cfg` has not changed since it gave the address.
        (Ok(_), None) => Err(connect_failed(ConnectError::NoAddresses {
            host: cfg.host.to_string(),
            family: o.family,
        })),
    }
}

/// A connect's failure as the client reports it.
fn connect_failed(e: ConnectError) -> Early {
    Early::Failed(TcpError::Connect(e))
}

/// A control message `c` that came while connecting, taken as a ControlWatch would take it:
/// ShutdownMicroprocess ends the wait, ProducerFinished is noted in `stopping`, anything else
/// is passed on to `signal` (rare, and it may wait for room: boxed).
async fn control_while_connecting(b: &Boxes, stopping: &mut bool, c: Control) -> Option<Early> {
    if c.is_shutdown() {
        return Some(Early::Shutdown);
    }
    if c.is_final() {
        *stopping = true;
    } else {
        let _ = Box::pin(b.signal.send(c)).await;
    }
    None
}

/// The connect to `cfg`'s host, its error as the client reports it.
fn connect_to(
    cfg: &TcpClient,
) -> impl std::future::Future<Output = Result<(tokio::net::TcpStream, SocketAddr), Early>> + '_ {
    let o = &cfg.options;
    connect(&cfg.host, cfg.port, o.family, o.connect_timeout)
        .map(|r| r.map_err(|e| Early::Failed(TcpError::Connect(e))))
}

/// Polls `poll` until it is ready while honouring control messages, as an
/// [`axon::ControlWatch`] would: errors and notices are passed on to `signal`, ProducerFinished is
/// noted in `stopping`, and ShutdownMicroprocess ends the wait. A plain function returning the
/// future, which holds its three arguments once; `control` is polled through a fresh future
/// each time (cancel safe: one that is not ready keeps this task's waker).
#[allow(clippy::manual_async_fn)] // on purpose: see above
fn with_control<'a, T: 'a>(
    b: &'a mut Boxes,
    stopping: &'a mut bool,
    mut poll: impl FnMut(&mut TaskContext<'_>) -> Poll<T> + 'a,
) -> impl std::future::Future<Output = Result<T, Early>> + 'a {
    async move {
        loop {
            let c = match std::future::poll_fn(|cx| {
                if let Poll::Ready(r) = poll(cx) {
                    return Poll::Ready(Ok(r));
                }
                b.poll_control(cx).map(Err)
            })
            .await
            {
                Ok(r) => return Ok(r),
                Err(c) => c,
            };
            if let Some(early) = control_while_connecting(b, stopping, c).await {
                return Err(early);
            }
        }
    }
}

/// Polls `attempt`, pinned by the caller, under [`with_control`].
fn attempt_with_control<'a, T: 'a, F: std::future::Future<Output = Result<T, Early>> + 'a>(
    b: &'a mut Boxes,
    stopping: &'a mut bool,
    mut attempt: std::pin::Pin<&'a mut F>,
) -> impl std::future::Future<Output = Result<T, Early>> + 'a {
    with_control(b, stopping, move |cx| attempt.as_mut().poll(cx)).map(|r| r.and_then(|r| r))
}

/// The connect with a delay first, or to a name, or on a selector's runtime other than this
/// task's (the attempt then runs in a task there).
async fn connect_elsewhere(
    cfg: &TcpClient,
    b: &mut Boxes,
    stopping: &mut bool,
    here: bool,
) -> Result<(tokio::net::TcpStream, SocketAddr), Early> {
    if !cfg.options.delay.is_zero() {
        let sleep = std::pin::pin!(tokio::time::sleep(cfg.options.delay).map(Ok));
        attempt_with_control(b, stopping, sleep).await?;
    }
    if here {
        return attempt_with_control(b, stopping, std::pin::pin!(connect_to(cfg))).await;
    }
    let (host, port, family, timeout) = (
        cfg.host.clone(),
        cfg.port,
        cfg.options.family,
        cfg.options.connect_timeout,
    );
    // Looked up again (it was there a moment ago), rather than kept through every connect;
    // the scheduler is the current one while the client's routine is polled.
    let selector = match Selector::get_or_create(axon::Scheduler::current().services()) {
        Ok((selector, _)) => selector,
        Err(e) => {
            return Err(connect_failed(ConnectError::Interrupted {
                host: cfg.host.to_string(),
                port: cfg.port,
                reason: e.to_string(),
            }))
        }
    };
    let task = selector
        .handle()
        .spawn(async move { connect(&host, port, family, timeout).await });
    let _abort_on_drop = AbortOnDrop(task.abort_handle());
    let joined = async {
        match task.await {
            Ok(Ok(ok)) => Ok(ok),
            Ok(Err(e)) => Err(Early::Failed(TcpError::Connect(e))),
            Err(join) => Err(Early::Failed(TcpError::Connect(
                ConnectError::Interrupted {
                    host: cfg.host.to_string(),
                    port: cfg.port,
                    reason: join.to_string(),
                },
            ))),
        }
    };
    attempt_with_control(b, stopping, std::pin::pin!(joined)).await
}

/// The part of a client-shaped component (TcpClient, SingleServer, UnixClient) after its
/// stream is up and [`Connected`] announced ([`announce`]): it drives the connection itself,
/// with its own boxes (the ConnectedSocketAdapter's loop, `csa::Connection`, without a CSA
/// component beside it), takes a ProducerFinished taken before (`stopping`), and ends with one
/// final message carrying the [`HowDied`].
///
/// The future owns the connection and is made by a plain function: an `async fn` would hold
/// its arguments twice in its state (as arguments and as the locals they move to), and this
/// future lives as long as the connection.
///
/// It takes no [`Context`]: the connection has no children to start and its errors read its
/// label from its boxes, so a caller that holds one (SingleServer, UnixClient) drops it first,
/// and the connection's future does not keep it. Nor does it announce the connection: the
/// announcement's wait, when `signal` has no room, was a slot in this future for the
/// connection's life (8 bytes, and a word of padding beside the loop's state).
pub(super) fn run_connected<S>(
    b: Boxes,
    stream: S,
    peer: SocketAddr,
    role: Option<TlsKept>,
    options: CsaOptions,
    stopping: bool,
) -> impl std::future::Future<Output = MainResult> + Send + 'static
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // Made here, before the future: what it is made from (the stream, the TLS role, the
    // options) is not kept beside it for the whole connection.
    let mut conn = connection(b.into_connection(), stream, peer, role, &options);
    // Kamaelia threw the data queued before ProducerFinished away here; it goes out once
    // connected, then the connection closes.
    if stopping {
        conn.producer_finished();
    }
    conn.ends_with_final_message();
    conn.run()
}

/// Announces [`Connected`] on `signal`, before the connection is driven: from then on, data
/// sent before a makessl goes out in plaintext first. Sent at once when `signal` has room (the
/// usual case: no allocation, and `None`); otherwise the wait to await, boxed, so that the
/// state that awaits it does not hold the two addresses.
pub(super) fn announce(
    signal: &Outbox<Control>,
    peer: SocketAddr,
    local: SocketAddr,
) -> Option<std::pin::Pin<Box<impl std::future::Future<Output = ()> + Send + 'static>>> {
    let notice = try_announce(signal, peer, local)?;
    let signal = signal.clone();
    Some(Box::pin(async move {
        let _ = signal.send(notice).await;
    }))
}

/// Sends [`Connected`] on `signal` if it has room; the notice back if it must wait for room.
fn try_announce(signal: &Outbox<Control>, peer: SocketAddr, local: SocketAddr) -> Option<Control> {
    match signal.try_send(Control::notice(Connected { peer, local })) {
        Ok(()) | Err(TrySendError::Closed(_)) => None,
        Err(TrySendError::Full(notice) | TrySendError::Unlinked(notice)) => Some(notice),
    }
}

/// Ends a client-shaped component that never got its stream: passes the error on (if any),
/// refuses and counts what was queued, and sends the final message.
pub(super) async fn end_unconnected(
    b: &Boxes,
    label: impl Into<Arc<str>>,
    failure: Option<TcpError>,
) {
    match failure {
        None => {
            let (dropped_messages, dropped_bytes) = drop_queued(&b.inbox, &b.signal).await;
            let how = HowDied::Shutdown {
                dropped_messages,
                dropped_bytes,
            };
            final_message(&b.signal, how).await;
        }
        Some(e) => {
            let _ = b.signal.send(Control::error(label, e.clone())).await;
            drop_queued(&b.inbox, &b.signal).await;
            final_message(&b.signal, HowDied::Failed(e)).await;
        }
    }
}

/// Ends without a connection: refuses and counts what was queued, and says so in a
/// [`Transferred`] notice. Returns the messages and bytes dropped.
async fn drop_queued(inbox: &Inbox<Bytes>, signal: &Outbox<Control>) -> (usize, usize) {
    inbox.close();
    let (mut dropped_messages, mut dropped_bytes) = (0, 0);
    while let Some(d) = inbox.try_recv() {
        dropped_messages += 1;
        dropped_bytes += d.len();
    }
    let transferred = Transferred {
        sent: 0,
        received: 0,
        unsent: dropped_bytes as u64,
    };
    let _ = signal.send(Control::notice(transferred)).await;
    (dropped_messages, dropped_bytes)
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A client carries its host, port and one shared pointer from where it is built to where
    /// it runs (its options and TLS settings, shared while at the defaults): what it carries is
    /// freed there, a hole in the builder's heap. 32 bytes since session 12 (the TLS settings
    /// in the options; it is held through its connect, in the block its connection lives in),
    /// 40 before: fails on that code.
    #[test]
    fn a_client_is_small_and_shares_its_defaults() {
        let size = std::mem::size_of::<TcpClient>();
        assert!(size <= 32, "TcpClient: {size} bytes");
        let (a, b) = (TcpClient::new("a", 1), TcpClient::new("b", 2));
        assert!(Arc::ptr_eq(&a.options, &b.options));
        let c = b.clone().nodelay(true);
        assert!(!Arc::ptr_eq(&c.options, &b.options));
        assert!(c.options.nodelay && !b.options.nodelay);
        assert!(Arc::ptr_eq(&c.options.tls, &default_tls()));
        let own = b.clone().tls(TlsSettings::new());
        assert!(!Arc::ptr_eq(&own.options.tls, &default_tls()));
        assert!(
            Arc::ptr_eq(&b.options.tls, &default_tls()),
            "the default changed"
        );
    }

    /// Runs `component` under a scheduler of its own until it ends (at most 30 s); the run
    /// must report no failure.
    pub(in crate::internet) async fn run_to_its_end(component: Component) {
        let sched = axon::Scheduler::new();
        let run = sched.run(async {
            component.activate();
        });
        let report = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("the client ends within 30 s");
        assert!(report.is_ok(), "{report:?}");
    }

    /// A client is one block for its whole life: its main routine connects, then makes the
    /// connection's future in the place the connecting state had; the connecting state (the
    /// attempt at an IP literal and its deadline, the boxes, the settings) fits in that block,
    /// and the block is the connection's future and a tag. Before session 9 the connecting
    /// state was a block of its own (744 bytes in a release build, against the connection's
    /// 392) that a burst of connecting clients each held and then freed, leaving holes in the
    /// heap; before session 10 the routine's closure was boxed apart from its future (88
    /// bytes), made where the client was built and freed where it ran. Either fails here. The
    /// block is at most 376 bytes in a debug build (360 in a release build, a 368-byte chunk of
    /// the allocator) since neither phase keeps the context and the connection keeps no label;
    /// 392 (376, a 384-byte chunk) before: that fails here too. Since session 12 it is at most
    /// 280 bytes in either build (a 288-byte chunk): the connection is 72 bytes smaller
    /// (`csa/driver.rs`), the connection's future keeps no slot for the `Connected` notice's
    /// wait (the connecting state announces it), the attempt at an IP literal waits on a
    /// future of 40 bytes, not 104 (`connect::Connecting`), and the connecting state keeps
    /// no scheduler and a client of 32 bytes, not 40. Fails on the code before (376). Since
    /// session 14 at most 304 (a 320-byte chunk): the connection's three outbox handles are
    /// 16 bytes each, not 8 (a linked outbox keeps no store, axon's `slot.rs`: two 80-byte
    /// stores fewer for this component). Since session 15 at most 288 in a debug build (280
    /// in a release build, a 288-byte chunk: 304 before, which fails here): the connection's
    /// run owns the connection rather than driving it by reference (`Connection::run`), and
    /// the phases keep one tag, not three (`ComponentBuilder::main_then`).
    #[tokio::test]
    async fn a_client_connects_in_the_block_its_connection_lives_in() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut b = Component::build("TcpClient");
        let boxes = Boxes::declare(&mut b, &BOXES, Limits::default());
        let sizes = b.main(move |cx| async move {
            let connecting = connect_phase(TcpClient::new("127.0.0.1", port), boxes, cx);
            let connecting_size = std::mem::size_of_val(&connecting);
            let ControlFlow::Continue(connected) = connecting.await else {
                return Err("no connection".into());
            };
            let _ = tx.send((connecting_size, std::mem::size_of_val(&connected)));
            Ok(())
        });
        run_to_its_end(sizes).await;
        let (connecting, connected) = rx.await.unwrap_or((usize::MAX, 0));
        // The block a TcpClient runs in, as the runtime holds it from when it is built.
        let block = Component::from(TcpClient::new("127.0.0.1", port)).routine_size();
        eprintln!("connecting {connecting}, connected {connected}, the block {block} bytes");
        assert!(
            connecting <= block,
            "connecting ({connecting} bytes) is not in the block ({block})"
        );
        assert!(
            block <= connecting.max(connected) + 8,
            "the block ({block} bytes) is not the larger phase's ({connecting}, {connected}) and a tag"
        );
        assert!(block <= 288, "the block: {block} bytes");
    }

    /// What `client` said on `signal` in a run to its end against `server` (a task that
    /// accepts one connection), once the server's task has ended too (within 10 s).
    async fn signals_of_a_run(
        client: Component,
        server: tokio::task::JoinHandle<()>,
    ) -> Vec<Control> {
        let seen = Inbox::<Control>::standalone("seen", 64);
        axon::link_refs(&client.boxref(SIGNAL).unwrap(), &seen.boxref()).unwrap();
        run_to_its_end(client).await;
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the server accepts within 10 s")
            .unwrap();
        std::iter::from_fn(|| seen.try_recv()).collect()
    }

    /// A server task that accepts one connection on `listener`, reads the 2 bytes
    /// [`said_hi`] queues, and resets it: the client's connect has finished (it has written),
    /// so the reset is its connection's error, never its connect's.
    fn resets_once_it_has_read_hi(
        listener: tokio::net::TcpListener,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut hi = [0; 2];
            stream.read_exact(&mut hi).await.unwrap();
            stream.set_zero_linger().unwrap();
            drop(stream);
        })
    }

    /// `client` with `hi` queued in its `inbox`, to send once it has connected.
    fn said_hi(client: TcpClient) -> Component {
        let client = Component::from(client);
        let feed = Outbox::<Bytes>::standalone("feed");
        axon::link_refs(&feed.boxref(), &client.boxref(INBOX).unwrap()).unwrap();
        feed.try_send(Bytes::from_static(b"hi")).unwrap();
        client
    }

    /// What a client said on `signal` that these tests look at.
    #[derive(Debug)]
    enum Said {
        Connected,
        /// An error, and the component it names.
        Error(String, TcpError),
    }

    /// The `Connected` notices and errors `client` sent, in order, in a run to its end against
    /// `server`.
    async fn said(client: Component, server: tokio::task::JoinHandle<()>) -> Vec<Said> {
        let mut said = Vec::new();
        for c in signals_of_a_run(client, server).await {
            if c.payload::<Connected>().is_some() {
                said.push(Said::Connected);
            }
            if let Control::Error(e) = &c {
                let tcp = e.downcast_ref::<TcpError>().cloned();
                said.push(Said::Error(
                    e.component().to_string(),
                    tcp.expect("a TcpError"),
                ));
            }
        }
        said
    }

    /// A connection's errors name its client: the connection reads the label from the owner of
    /// its boxes when it reports one, rather than keeping it (24 bytes in every connection's
    /// block). The server resets only once it has read what the client sent, so the error is
    /// the connection's every time: the test this replaces (a server resetting as it accepted)
    /// raced the connect and, 250 runs of 250 on this machine (quiet and loaded), saw the
    /// connect fail instead (`ConnectError::Other`, reset), a path of its own.
    #[tokio::test]
    async fn a_connections_error_names_its_client() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = resets_once_it_has_read_hi(listener);
        let client = said_hi(TcpClient::new("127.0.0.1", port));
        let label = client.label().to_string();
        let said = said(client, server).await;
        assert!(
            matches!(said.as_slice(), [Said::Connected, Said::Error(who, TcpError::Reset { .. })] if *who == label),
            "{said:?}"
        );
    }

    /// A connect's error names its client too (`end_unconnected` reads the label from the
    /// client's boxes): a port nobody listens on refuses it, every time.
    #[tokio::test]
    async fn a_connects_error_names_its_client() {
        let closed = kamaelia_test::net::closed_port("127.0.0.1");
        let server = tokio::spawn(async {});
        let client = Component::from(TcpClient::new("127.0.0.1", closed.port()));
        let label = client.label().to_string();
        let said = said(client, server).await;
        assert!(
            matches!(said.as_slice(), [Said::Error(who, TcpError::Connect(ConnectError::Refused { addr }))] if *who == label && *addr == closed),
            "{said:?}"
        );
    }

    /// An IPv6 connection's peer, which the connection keeps boxed (an IPv4 one in 6 bytes
    /// beside its flags), is the address its `Connected` notice and its errors name: a server
    /// on ::1 that resets the connection once it has read what the client sent (so the connect
    /// has finished, and the reset is the connection's error, not the connect's).
    #[tokio::test]
    async fn an_ipv6_connections_notice_and_error_name_its_peer() {
        let Ok(listener) = tokio::net::TcpListener::bind("[::1]:0").await else {
            eprintln!("no IPv6 loopback here: skipped");
            return;
        };
        let addr = listener.local_addr().unwrap();
        let server = resets_once_it_has_read_hi(listener);
        let client = said_hi(TcpClient::new("::1", addr.port()));
        let (mut connected, mut errors) = (Vec::new(), Vec::new());
        for c in signals_of_a_run(client, server).await {
            if let Some(n) = c.payload::<Connected>() {
                connected.push(n.peer);
            }
            if let Control::Error(e) = &c {
                errors.push(e.downcast_ref::<TcpError>().cloned());
            }
        }
        assert_eq!(connected, [addr]);
        assert!(
            matches!(errors.as_slice(), [Some(TcpError::Reset { peer })] if *peer == addr),
            "{errors:?}"
        );
    }

    /// Clients of one host share its name: a string per client was a 48-byte block for
    /// `"127.0.0.1"`, held as long as its connection. Fails on the old code (each client had
    /// its own copy). The table's bounds are `axon::SharedNames`' (tested there).
    #[test]
    fn clients_of_one_host_share_its_name() {
        let (a, b) = (
            TcpClient::new("127.0.0.1", 1),
            TcpClient::new(String::from("127.0.0.1"), 2),
        );
        assert!(Arc::ptr_eq(&a.host, &b.host), "one string for one host");
        let c = TcpClient::new("127.0.0.2", 1);
        assert_eq!((&*a.host, &*c.host), ("127.0.0.1", "127.0.0.2"));
        assert!(HOSTS.len() <= 1024);
    }

    /// A client declares the boxes its connection uses, and not Kamaelia's `_socketFeedback`
    /// and `_csaControl` (its wiring to a CSA child it does not have): six boxes, not eight.
    /// SingleServer and UnixClient declare the same list.
    #[test]
    fn a_client_declares_the_boxes_its_connection_uses() {
        let names =
            |c: Component| -> Vec<String> { c.boxes().map(|b| b.name.to_string()).collect() };
        let list = [INBOX, CONTROL, "makessl", OUTBOX, SIGNAL, "sslready"];
        assert_eq!(names(TcpClient::new("localhost", 1).into()), list);
        let server = super::super::SingleServer::bind("127.0.0.1:0").unwrap();
        assert_eq!(names(server.into()), list);
        assert_eq!(
            names(super::super::UnixClient::new("/nonexistent").into()),
            list
        );
    }
}
