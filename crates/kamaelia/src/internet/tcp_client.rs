//! TcpClient: Kamaelia's Simple TCP Client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axon::{
    Component, ComponentBuilder, Context, Control, ControlWatch, Detail, Inbox, MainResult, Outbox,
    TrySendError, CONTROL, INBOX, OUTBOX, SIGNAL,
};
use bytes::Bytes;
use futures_util::future::FutureExt;

use super::csa::{self, connection, CsaOptions, Limits, OnFinish, TlsKept};
use super::messages::{Connected, HowDied, MakeSsl, SslReady, TcpError, Transferred};
use super::selector::Selector;
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
/// Everything sent to `inbox`
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
/// huge `delay`, `connect_timeout` or `idle_timeout` (even [`Duration::MAX`]) means no
/// deadline, never a panic.
#[derive(Clone, Debug)]
pub struct TcpClient {
    /// Shared, not copied, with the connection's TLS record: the one allocation made where the
    /// client is built lives as long as the connection (no copy at connect time, and no block
    /// freed on the worker that would be a hole in the builder's heap).
    host: Arc<str>,
    port: u16,
    /// Shared by the clients cloned from this one, and by every client left at the default:
    /// each connection keeps a pointer to them for a `makessl` most never get.
    tls: Arc<TlsSettings>,
    /// Shared likewise (changed copy-on-write): a client is built on one thread and run on
    /// another, and what it carries from one to the other (this and its boxes) is freed there,
    /// a hole in the builder's heap; a client at the defaults carries a pointer, not 80 bytes.
    options: Arc<Options>,
}

/// The rest of a [`TcpClient`]'s settings.
#[derive(Clone, Debug)]
struct Options {
    delay: Duration,
    connect_timeout: Duration,
    family: Family,
    nodelay: bool,
    on_finish: OnFinish,
    idle_timeout: Option<Duration>,
    limits: Limits,
}

/// The default options, made once per process and shared by every client left at them.
fn default_options() -> Arc<Options> {
    static DEFAULT: std::sync::OnceLock<Arc<Options>> = std::sync::OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            Arc::new(Options {
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
            host: Arc::from(host.into()),
            port,
            tls: default_tls(),
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
        self.tls = Arc::new(settings);
        self
    }

    /// Sets TCP_NODELAY on the connection.
    pub fn nodelay(mut self, on: bool) -> Self {
        self.options_mut().nodelay = on;
        self
    }

    /// What ProducerFinished does (default [`OnFinish::Close`]).
    pub fn on_finish(mut self, on_finish: OnFinish) -> Self {
        self.options_mut().on_finish = on_finish;
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

/// The default TLS settings, made once per process and shared by every client left at them
/// (one root store and session cache for all of them, as for clones of one client).
fn default_tls() -> Arc<TlsSettings> {
    static DEFAULT: std::sync::OnceLock<Arc<TlsSettings>> = std::sync::OnceLock::new();
    DEFAULT.get_or_init(|| Arc::new(TlsSettings::new())).clone()
}

/// The boxes of a client-shaped component (TcpClient, SingleServer, UnixClient).
pub(super) struct Boxes {
    pub(super) inbox: Inbox<Bytes>,
    pub(super) control: Inbox<Control>,
    pub(super) makessl: Inbox<MakeSsl>,
    pub(super) outbox: Outbox<Bytes>,
    pub(super) signal: Outbox<Control>,
    pub(super) sslready: Outbox<SslReady>,
}

impl Boxes {
    /// The boxes its connection is driven with once up: the client's own.
    fn into_connection(self) -> csa::Boxes {
        csa::Boxes {
            inbox: self.inbox,
            control: self.control,
            makessl: Some(self.makessl),
            outbox: self.outbox,
            signal: self.signal,
            sslready: Some(self.sslready),
            feedback: None,
        }
    }

    /// Declares the boxes from `table`, `inbox` and `outbox` bounded in bytes by `limits`.
    /// Kamaelia's `_socketFeedback` and `_csaControl` (its wiring to a CSA child) are not
    /// declared: the connection is driven here, with no child.
    pub(super) fn declare(b: &mut ComponentBuilder, table: &ClientBoxes, limits: Limits) -> Self {
        let inbox = b.inbox_from(table.inbox).limit_bytes(limits.send_bytes);
        let control = b.control_from(table.control);
        let makessl = b.inbox_from(table.makessl);
        let outbox = b
            .outbox_from(table.outbox)
            .limit_bytes(limits.receive_bytes);
        let signal = b.signal_from(table.signal);
        let sslready = b.outbox_from(table.sslready);
        Boxes {
            inbox,
            control,
            makessl,
            outbox,
            signal,
            sslready,
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
        b.main(move |cx| {
            // Connecting (the settings, the resolver, Happy Eyeballs) is boxed and freed once
            // the connection is up: the part that lives as long as the connection holds the
            // boxes and the context, not the settings.
            let connecting = Box::pin(connect_phase(cfg, boxes, cx));
            async move {
                // Awaiting the box consumes it: the connecting state is freed here, before the
                // connection's is allocated, so a client holds one or the other, never both
                // (the main future itself is two pointers). The match ends before the
                // connection's future is awaited, so what it was made from (the stream, the
                // TLS role, the options) is not kept beside it.
                let connected = match connecting.await? {
                    None => return Ok(()),
                    Some((b, cx, (stream, addrs, role, options, stopping))) => Box::pin(
                        run_connected(b, cx, stream, addrs, Some(role), options, stopping),
                    ),
                };
                connected.await
            }
        })
    }
}

/// What happened while waiting for the connection.
enum Early {
    Shutdown,
    Failed(TcpError),
}

/// A connection that is up, ready for [`run_connected`]: the stream, its two addresses, the TLS
/// role, the connection's options, and whether ProducerFinished came before.
type Up = (
    tokio::net::TcpStream,
    (SocketAddr, Option<SocketAddr>),
    TlsKept,
    CsaOptions,
    bool,
);

/// Connects; `None` once the client has ended without a connection (its final message sent).
///
/// A plain function returning the future: an `async fn` would hold its arguments twice (as
/// arguments and as the locals they move to).
#[allow(clippy::manual_async_fn)] // on purpose: see above
fn connect_phase(
    cfg: TcpClient,
    b: Boxes,
    cx: Context,
) -> impl std::future::Future<Output = Result<Option<(Boxes, Context, Up)>, axon::BoxError>> + Send
{
    async move {
        let (selector, _) = Selector::get_or_create(cx.services())?;
        // Control before the connection is up; from then on the connection's loop reads it.
        let mut watch = ControlWatch::new(&b.control, &b.signal);
        // On the selector's own runtime (the usual case) the attempt runs in this task; only a
        // selector on another runtime gets a task of its own there. A task per connection would
        // be memory held at the peak of a burst of connections, for nothing.
        let here =
            tokio::runtime::Handle::try_current().is_ok_and(|h| h.id() == selector.handle().id());
        // This whole future is boxed by the client's main routine and freed once connected, so the
        // connect's state goes with it; the usual case (no delay, on the selector's runtime) is
        // inline and the others boxed, so that what a burst of connecting clients holds at once,
        // and frees (a hole in the heap until something of that size comes), is small.
        let connected = if here && cfg.options.delay.is_zero() {
            drop(selector);
            with_control(&mut watch, std::pin::pin!(connect_to(&cfg))).await
        } else {
            Box::pin(connect_elsewhere(&cfg, &mut watch, selector, here)).await
        };

        let (stream, peer) = match connected {
            Ok(ok) => ok,
            // Boxed: a client connecting holds this state at the peak of a burst of connects.
            Err(Early::Shutdown) => {
                Box::pin(end_unconnected(&b, cx.label().clone(), None)).await;
                return Ok(None);
            }
            Err(Early::Failed(e)) => {
                Box::pin(end_unconnected(&b, cx.label().clone(), Some(e))).await;
                return Ok(None);
            }
        };
        if cfg.options.nodelay {
            let _ = stream.set_nodelay(true);
        }
        let local = stream.local_addr().ok();
        // The settings and the host are shared (pointers), not copied: most connections never use
        // them.
        let role = TlsKept::Client {
            settings: cfg.tls.clone(),
            host: cfg.host.clone(),
        };
        // A makessl that was queued before the connection was up runs first: whatever else was
        // queued cannot be ordered against it (they are different boxes), so none of it may go out
        // in plaintext.
        let tls_first = b.makessl.try_recv().is_some();
        let options = CsaOptions::default()
            .on_finish(cfg.options.on_finish)
            .tls_first(tls_first)
            .idle_timeout(cfg.options.idle_timeout)
            .limits(cfg.options.limits);
        let stopping = watch.stopping();
        drop(watch);
        Ok(Some((
            b,
            cx,
            (stream, (peer, local), role, options, stopping),
        )))
    }
}

/// The connect to `cfg`'s host, its error as the client reports it.
fn connect_to(
    cfg: &TcpClient,
) -> impl std::future::Future<Output = Result<(tokio::net::TcpStream, SocketAddr), Early>> + '_ {
    let o = &cfg.options;
    connect(&cfg.host, cfg.port, o.family, o.connect_timeout)
        .map(|r| r.map_err(|e| Early::Failed(TcpError::Connect(e))))
}

/// Runs `attempt` while honouring control messages (a shutdown ends the wait). The attempt is
/// pinned by the caller, so that this future holds a pointer to it, not a second copy.
async fn with_control<T, F>(
    watch: &mut ControlWatch<'_>,
    mut attempt: std::pin::Pin<&mut F>,
) -> Result<T, Early>
where
    F: std::future::Future<Output = Result<T, Early>>,
{
    loop {
        tokio::select! {
            r = &mut attempt => return r,
            c = watch.control().recv() => {
                Box::pin(watch.handle(c)).await;
                if watch.shutdown_requested() {
                    return Err(Early::Shutdown);
                }
            }
        }
    }
}

/// The connect with a delay first, or on a selector's runtime other than this task's (the
/// attempt then runs in a task there).
async fn connect_elsewhere(
    cfg: &TcpClient,
    watch: &mut ControlWatch<'_>,
    selector: Arc<Selector>,
    here: bool,
) -> Result<(tokio::net::TcpStream, SocketAddr), Early> {
    if !cfg.options.delay.is_zero() {
        let sleep = std::pin::pin!(tokio::time::sleep(cfg.options.delay).map(Ok));
        with_control(watch, sleep).await?;
    }
    if here {
        return with_control(watch, std::pin::pin!(connect_to(cfg))).await;
    }
    let (host, port, family, timeout) = (
        cfg.host.clone(),
        cfg.port,
        cfg.options.family,
        cfg.options.connect_timeout,
    );
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
    with_control(watch, std::pin::pin!(joined)).await
}

/// The part of a client-shaped component (TcpClient, SingleServer, UnixClient) after its
/// stream is up: it drives the connection itself, with its own boxes (the ConnectedSocketAdapter's
/// loop, `csa::Connection`, without a CSA component beside it), takes a ProducerFinished taken
/// before (`stopping`), announces [`Connected`], and ends with one final message carrying the
/// [`HowDied`].
///
/// The future owns the connection and is made by a plain function: an `async fn` would hold
/// its arguments twice in its state (as arguments and as the locals they move to), and this
/// future lives as long as the connection.
pub(super) fn run_connected<S>(
    b: Boxes,
    cx: Context,
    stream: S,
    (peer, local): (SocketAddr, Option<SocketAddr>),
    role: Option<TlsKept>,
    options: CsaOptions,
    stopping: bool,
) -> impl std::future::Future<Output = MainResult> + Send + 'static
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let tls_first = options.tls_first;
    // Made here, before the future: what it is made from (the stream, the TLS role, the
    // options) is not kept beside it for the whole connection.
    let mut conn = connection(
        cx.label().clone(),
        b.into_connection(),
        stream,
        peer,
        role,
        &options,
    );
    // Not kept: the connection has no children to start, and its label is all it needs.
    drop(cx);
    // Kamaelia threw the data queued before ProducerFinished away here; it goes out once
    // connected, then the connection closes.
    if stopping {
        conn.producer_finished();
    }
    // Announced before the connection is driven: from here on, data sent before a makessl
    // goes out in plaintext first. Sent at once when `signal` has room (the usual case: no
    // allocation); otherwise the wait is made here and boxed, so the future does not keep the
    // two addresses for the connection's life.
    let announce = local.and_then(|local| {
        let notice = Control::notice(Connected { peer, local });
        match conn.signal().try_send(notice) {
            Ok(()) | Err(TrySendError::Closed(_)) => None,
            Err(TrySendError::Full(notice) | TrySendError::Unlinked(notice)) => {
                let signal = conn.signal().clone();
                Some(Box::pin(async move {
                    let _ = signal.send(notice).await;
                }))
            }
        }
    });
    async move {
        if let Some(announce) = announce {
            announce.await;
        }
        let how = conn.drive(tls_first).await;
        Box::pin(final_message(conn.signal(), how)).await;
        Ok(())
    }
}

/// Ends a client-shaped component that never got its stream: passes the error on (if any),
/// refuses and counts what was queued, and sends the final message.
pub(super) async fn end_unconnected(b: &Boxes, label: axon::Label, failure: Option<TcpError>) {
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

async fn final_message(signal: &Outbox<Control>, how: HowDied) {
    let detail = Some(Detail::new(how.clone()));
    let msg = match how {
        HowDied::Shutdown { .. } => Control::ShutdownMicroprocess { detail },
        _ => Control::ProducerFinished { detail },
    };
    let _ = signal.send(msg).await;
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client carries its host, port and two shared pointers from where it is built to where
    /// it runs (its options and TLS settings, shared while at the defaults): what it carries is
    /// freed there, a hole in the builder's heap.
    #[test]
    fn a_client_is_small_and_shares_its_defaults() {
        let size = std::mem::size_of::<TcpClient>();
        assert!(size <= 40, "TcpClient: {size} bytes");
        let (a, b) = (TcpClient::new("a", 1), TcpClient::new("b", 2));
        assert!(Arc::ptr_eq(&a.options, &b.options));
        let c = b.clone().nodelay(true);
        assert!(!Arc::ptr_eq(&c.options, &b.options));
        assert!(c.options.nodelay && !b.options.nodelay);
    }

    /// What a connecting client holds, boxed, until it is connected (a burst of clients holds
    /// it all at once, then frees it: holes in the heap): the connect to an IP literal and its
    /// deadline inline, the rest (a delay, a resolution, a race, a selector elsewhere) boxed,
    /// and no argument held twice. 1,248 bytes in a release build before (744 after); the
    /// bound is a debug build's layout, with room.
    #[tokio::test]
    async fn a_connecting_client_holds_little() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut b = Component::build("TcpClient");
        let boxes = Boxes::declare(&mut b, &BOXES, Limits::default());
        let c = b.main(move |cx| async move {
            let connecting = connect_phase(TcpClient::new("127.0.0.1", 1), boxes, cx);
            let _ = tx.send(std::mem::size_of_val(&connecting));
            Ok(())
        });
        let report = axon::Scheduler::new()
            .run(async {
                c.activate();
            })
            .await;
        assert!(report.is_ok());
        let size = rx.await.unwrap_or(usize::MAX);
        eprintln!("connecting: {size} bytes");
        assert!(size <= 900, "connecting: {size} bytes");
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
