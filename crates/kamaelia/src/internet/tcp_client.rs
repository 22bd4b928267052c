//! TcpClient: Kamaelia's Simple TCP Client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axon::{
    link_refs, BoxRef, Component, ComponentBuilder, Context, Control, ControlWatch, Detail, Inbox,
    MainResult, Outbox, CONTROL, INBOX, OUTBOX, SIGNAL,
};
use bytes::Bytes;
use futures_util::future::{Either, FutureExt};

use super::csa::{ConnectedSocketAdapter, CsaOptions, Limits, OnFinish, TlsRole};
use super::messages::{
    Connected, HowDied, MakeSsl, ShutdownCsa, SocketShutdown, SslReady, TcpError, Transferred,
};
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
/// Once connected it creates a [`ConnectedSocketAdapter`] (CSA) and wires it as the page says:
/// its own `inbox`, `makessl` and `control` pass straight through to the CSA's, the CSA's
/// `outbox` and `sslready` come out as its own, and the CSA's `CreatorFeedback` (and `signal`)
/// feed its `_socketFeedback`. Everything sent to `inbox` before the connection was up moves to
/// the CSA in order and is sent first — after the TLS handshake if a `makessl` was queued too
/// (as in the page's SSL example, where OneShot sends it at once), so that nothing queued goes
/// out in plaintext. It then waits for the CSA's [`SocketShutdown`] and sends
/// exactly one final message on `signal`.
///
/// *Our additions*: `family`, `tls` settings, `nodelay`, `on_finish` (Kamaelia's
/// `wait_for_serverclose`, and [`OnFinish::KeepOpen`]), `idle_timeout`, byte `limits`; typed
/// errors; a [`Connected`] notice and a [`Transferred`] notice; [`HowDied`] in the final
/// message; certificate verification on `makessl`.
///
/// Its own `inbox` and `outbox` are bounded in bytes by [`Limits`] (256 KiB each direction by
/// default) as well as in messages, so what waits for the connection to come up, and what it
/// receives while its `outbox` is not linked, is bounded too; the connection's own boxes and
/// queues get the same limits (see [`ConnectedSocketAdapter`]).
///
/// # Inboxes
///
/// | name | type | meaning |
/// |---|---|---|
/// | `inbox` | `Bytes` | data to send to the server |
/// | `control` | `Control` | ProducerFinished: send what is queued, then close; ShutdownMicroprocess: close now |
/// | `makessl` | [`MakeSsl`] | switch the connection to TLS |
/// | `_socketFeedback` | `Control` | the ConnectedSocketAdapter's signal and CreatorFeedback |
///
/// # Outboxes
///
/// | name | type | meaning |
/// |---|---|---|
/// | `outbox` | `Bytes` | data received from the server |
/// | `signal` | `Control` | Connected, errors (a failed TLS handshake: PeerCertificates first), PeerHalfClosed, Transferred, then one final message |
/// | `sslready` | [`SslReady`] | TLS negotiated (version, cipher suite) |
/// | `_csaControl` | `Control` | ProducerFinished taken before the connection was up, passed on to it |
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
/// counts, or, if it never connected, what was queued and dropped as `unsent`. (Only if the
/// connection's component itself failed is there none; its error is on `signal` instead.)
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
    host: String,
    port: u16,
    delay: Duration,
    connect_timeout: Duration,
    family: Family,
    tls: TlsSettings,
    nodelay: bool,
    on_finish: OnFinish,
    idle_timeout: Option<Duration>,
    limits: Limits,
}

impl TcpClient {
    /// A client for `host` (a name, or an IPv4 or IPv6 literal) and `port`.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        TcpClient {
            host: host.into(),
            port,
            delay: Duration::ZERO,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            family: Family::Any,
            tls: TlsSettings::new(),
            nodelay: false,
            on_finish: OnFinish::Close,
            idle_timeout: None,
            limits: Limits::default(),
        }
    }

    /// Waits `delay` after activation before connecting (default none).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Gives up connecting after `timeout` (default 60 s, as Kamaelia).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Uses only one address family (default: both, raced).
    pub fn family(mut self, family: Family) -> Self {
        self.family = family;
        self
    }

    /// TLS settings used on `makessl` (default: the built-in Mozilla roots, verifying `host`).
    pub fn tls(mut self, settings: TlsSettings) -> Self {
        self.tls = settings;
        self
    }

    /// Sets TCP_NODELAY on the connection.
    pub fn nodelay(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }

    /// What ProducerFinished does (default [`OnFinish::Close`]).
    pub fn on_finish(mut self, on_finish: OnFinish) -> Self {
        self.on_finish = on_finish;
        self
    }

    /// Ends the connection with [`TcpError::IdleTimeout`] when no byte has moved either way
    /// for `timeout` once it is up (default `None`: never). Connecting has its own timeout.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Byte bounds for each direction (default [`Limits::default`], 256 KiB each): the
    /// client's `inbox` and `outbox` and its connection's queues.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
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

/// The boxes of a client-shaped component (TcpClient, SingleServer, UnixClient).
pub(super) struct Boxes {
    pub(super) inbox: Inbox<Bytes>,
    pub(super) control: Inbox<Control>,
    pub(super) makessl: Inbox<MakeSsl>,
    pub(super) feedback: Inbox<Control>,
    pub(super) outbox: Outbox<Bytes>,
    pub(super) signal: Outbox<Control>,
    pub(super) sslready: Outbox<SslReady>,
    pub(super) csa_control: Outbox<Control>,
}

impl Boxes {
    /// Declares the boxes from `table`, `inbox` and `outbox` bounded in bytes by `limits`.
    pub(super) fn declare(b: &mut ComponentBuilder, table: &ClientBoxes, limits: Limits) -> Self {
        Boxes {
            inbox: b.inbox_from(table.inbox).limit_bytes(limits.send_bytes),
            control: b.control_from(table.control),
            makessl: b.inbox_from(table.makessl),
            feedback: b.inbox_from(table.feedback),
            outbox: b
                .outbox_from(table.outbox)
                .limit_bytes(limits.receive_bytes),
            signal: b.signal_from(table.signal),
            sslready: b.outbox_from(table.sslready),
            csa_control: b.outbox_from(table.csa_control),
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
        feedback: "_socketFeedback" => "the ConnectedSocketAdapter's signal and CreatorFeedback",
        outbox: OUTBOX => "data received from the server",
        signal: SIGNAL => "Connected, errors (a failed TLS handshake: PeerCertificates first), PeerHalfClosed, Transferred, then one final message",
        sslready: "sslready" => "TLS negotiated (version, cipher suite)",
        csa_control: "_csaControl" => "ProducerFinished taken before the connection was up, passed on to it",
    }
}

impl From<TcpClient> for Component {
    fn from(cfg: TcpClient) -> Component {
        let mut b = Component::build("TcpClient");
        let boxes = Boxes::declare(&mut b, &BOXES, cfg.limits);
        // One connection, one task: the CSA runs beside the client (docs/semantics.md §10).
        b.hosts_group();
        b.main(move |cx| {
            // Connecting (the settings, the resolver, Happy Eyeballs) is boxed and freed once
            // the connection is up: the part that lives as long as the connection holds the
            // boxes, the context and the CSA's handle, not the settings.
            let connecting = Box::pin(connect_phase(cfg, boxes, cx));
            async move {
                // Awaiting the box consumes it: the connecting state is freed here. The match
                // ends before the connection's future is awaited, so what it was made from
                // (the stream, the TLS role, the options) is not kept beside it.
                let connected = match connecting.await? {
                    None => return Ok(()),
                    Some((b, cx, (stream, addrs, role, options, stopping))) => {
                        run_connected(b, cx, stream, addrs, Some(role), options, stopping)
                    }
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
/// role, the CSA's options, and whether ProducerFinished came before.
type Up = (
    tokio::net::TcpStream,
    (SocketAddr, Option<SocketAddr>),
    TlsRole,
    CsaOptions,
    bool,
);

/// Connects; `None` once the client has ended without a connection (its final message sent).
async fn connect_phase(
    cfg: TcpClient,
    b: Boxes,
    cx: Context,
) -> Result<Option<(Boxes, Context, Up)>, axon::BoxError> {
    let label = cx.label().clone();
    let (selector, _) = Selector::get_or_create(cx.services())?;
    // Control before the connection is up; from then on `control` is linked to the CSA's.
    let mut watch = ControlWatch::new(&b.control, &b.signal);

    // Boxed, so the resolver and Happy Eyeballs state is freed once connected instead of
    // staying inline in this (long-lived) task for the whole connection.
    let connected = Box::pin(async {
        if !cfg.delay.is_zero() {
            let sleep = tokio::time::sleep(cfg.delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    c = watch.control().recv() => {
                        watch.handle(c).await;
                        if watch.shutdown_requested() {
                            return Err(Early::Shutdown);
                        }
                    }
                }
            }
        }
        let (host, port, family, timeout) =
            (cfg.host.clone(), cfg.port, cfg.family, cfg.connect_timeout);
        let attempt = async move { connect(&host, port, family, timeout).await };
        // On the selector's own runtime (the usual case) the attempt runs in this task; only a
        // selector on another runtime gets a task of its own there. A task per connection
        // would be memory held at the peak of a burst of connections, for nothing.
        let here =
            tokio::runtime::Handle::try_current().is_ok_and(|h| h.id() == selector.handle().id());
        let (task, _abort_on_drop) = if here {
            (
                Either::Left(attempt.map(Ok::<_, tokio::task::JoinError>)),
                None,
            )
        } else {
            let task = selector.handle().spawn(attempt);
            let abort = AbortOnDrop(task.abort_handle());
            (Either::Right(task), Some(abort))
        };
        tokio::pin!(task);
        loop {
            tokio::select! {
                r = &mut task => {
                    return match r {
                        Ok(Ok(ok)) => Ok(ok),
                        Ok(Err(e)) => Err(Early::Failed(TcpError::Connect(e))),
                        Err(join) => Err(Early::Failed(TcpError::Connect(
                            ConnectError::Interrupted {
                                host: cfg.host.clone(),
                                port: cfg.port,
                                reason: join.to_string(),
                            },
                        ))),
                    };
                }
                c = watch.control().recv() => {
                    watch.handle(c).await;
                    if watch.shutdown_requested() {
                        return Err(Early::Shutdown);
                    }
                }
            }
        }
    })
    .await;

    let (stream, peer) = match connected {
        Ok(ok) => ok,
        Err(Early::Shutdown) => {
            end_unconnected(&b, label, None).await;
            return Ok(None);
        }
        Err(Early::Failed(e)) => {
            end_unconnected(&b, label, Some(e)).await;
            return Ok(None);
        }
    };
    if cfg.nodelay {
        let _ = stream.set_nodelay(true);
    }
    let local = stream.local_addr().ok();
    let role = TlsRole::Client {
        settings: cfg.tls.clone(),
        host: cfg.host.clone(),
    };
    // A makessl that was queued before the connection was up runs first: whatever else was
    // queued cannot be ordered against it (they are different boxes), so none of it may go out
    // in plaintext.
    let tls_first = b.makessl.try_recv().is_some();
    let options = CsaOptions::default()
        .on_finish(cfg.on_finish)
        .tls_first(tls_first)
        .idle_timeout(cfg.idle_timeout)
        .limits(cfg.limits);
    let stopping = watch.stopping();
    Ok(Some((
        b,
        cx,
        (stream, (peer, local), role, options, stopping),
    )))
}

/// The part of a client-shaped component (TcpClient, SingleServer, UnixClient) after its
/// stream is up: makes the CSA, wires it as the page describes, passes on a ProducerFinished
/// taken before (`stopping`), announces [`Connected`], relays the CSA's signal and ends with
/// one final message carrying the [`HowDied`].
///
/// The future owns the boxes and the context and is made by a plain function: an `async fn`
/// would hold its arguments twice in its state (as arguments and as the locals they move to),
/// and this future lives as long as the connection.
pub(super) fn run_connected<S>(
    b: Boxes,
    cx: Context,
    stream: S,
    (peer, local): (SocketAddr, Option<SocketAddr>),
    role: Option<TlsRole>,
    options: CsaOptions,
    stopping: bool,
) -> impl std::future::Future<Output = MainResult> + Send + 'static
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // The CSA is made, wired and started here, before the future: what it is made from (the
    // stream, the TLS role, the options) is not kept for the whole connection in the state
    // of the future that waits for it to end.
    // A wiring error is boxed now, not kept at its full size beside the connection.
    let started =
        start_csa(&b, &cx, stream, peer, role, options, stopping).map_err(axon::BoxError::from);
    async move {
        // Borrowed, not moved out: a moved copy would be kept beside the original.
        let csa = match &started {
            Ok(csa) => csa,
            Err(_) => return started.map(|_| ()),
        };
        // Announced once the CSA owns the connection: from here on, data sent before a makessl
        // goes out in plaintext first.
        if let Some(local) = local {
            let connected = Control::notice(Connected { peer, local });
            let _ = Box::pin(b.signal.send(connected)).await;
        }
        relay_until_closed(&b, csa, &peer).await;
        // The component's context lives as long as its connection.
        drop(cx);
        Ok(())
    }
}

/// Makes the CSA, wires it as the page describes, passes on a ProducerFinished taken before
/// (`stopping`) and starts it beside its client (docs/semantics.md §10: a client that hosts a
/// group shares its task with its CSA).
fn start_csa<S>(
    b: &Boxes,
    cx: &Context,
    stream: S,
    peer: SocketAddr,
    role: Option<TlsRole>,
    options: CsaOptions,
    stopping: bool,
) -> Result<axon::Handle, axon::WiringError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let csa = ConnectedSocketAdapter::with_config(stream, peer, role, options);
    wire(b, &csa)?;
    // Kamaelia threw the data queued before ProducerFinished away here; it goes out once
    // connected, then the connection closes. The CSA's control is empty and open, so this
    // never has to wait.
    if stopping {
        let _ = b.csa_control.force_send(Control::producer_finished());
    }
    Ok(cx.activate_beside(csa))
}

/// The connection's life once up: passes the CSA's errors and notices on, then sends the
/// final message once it has ended.
async fn relay_until_closed(b: &Boxes, csa: &axon::Handle, peer: &SocketAddr) {
    // An idle connection waits in this loop for as long as it lives, so what happens rarely
    // (passing a notice on, the wrap-up) is boxed and does not widen the state it waits in.
    let how = loop {
        let c = b.feedback.recv().await;
        if let Some(SocketShutdown(how)) = c.payload::<SocketShutdown>() {
            break how.clone();
        }
        if c.payload::<ShutdownCsa>().is_some() {
            continue;
        }
        if c.is_final() {
            // Only the runtime sends a final message on a CSA's signal: the CSA failed (its
            // error came just before and was passed on) and will say nothing more.
            break HowDied::Failed(TcpError::Io {
                peer: *peer,
                source: Arc::new(std::io::Error::other(
                    "the component owning the connection failed",
                )),
            });
        }
        let _ = Box::pin(b.signal.send(c)).await;
    };
    Box::pin(wrap_up(b, csa, how)).await;
}

/// Once the CSA has said how the connection ended: waits for it to end, passes on what it
/// still said, and sends the final message.
async fn wrap_up(b: &Boxes, csa: &axon::Handle, how: HowDied) {
    csa.join().await;
    // Anything the CSA sent on its signal after SocketShutdown (ShutdownCsa) is internal.
    while let Some(c) = b.feedback.try_recv() {
        if c.payload::<ShutdownCsa>().is_none() && !c.is_final() {
            let _ = b.signal.send(c).await;
        }
    }
    final_message(&b.signal, how).await;
}

/// Ends a client-shaped component that never got its stream: passes the error on (if any),
/// refuses and counts what was queued, and sends the final message.
pub(super) async fn end_unconnected(b: &Boxes, label: Arc<str>, failure: Option<TcpError>) {
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

/// Links the client to its new CSA as the page describes.
fn wire(b: &Boxes, csa: &Component) -> Result<(), axon::WiringError> {
    let pairs: [(BoxRef, BoxRef); 8] = [
        (b.inbox.boxref(), csa.boxref(INBOX)?),
        (b.makessl.boxref(), csa.boxref("makessl")?),
        (b.control.boxref(), csa.boxref(CONTROL)?),
        (b.csa_control.boxref(), csa.boxref(CONTROL)?),
        (csa.boxref(OUTBOX)?, b.outbox.boxref()),
        (csa.boxref("sslready")?, b.sslready.boxref()),
        (csa.boxref("CreatorFeedback")?, b.feedback.boxref()),
        (csa.boxref(SIGNAL)?, b.feedback.boxref()),
    ];
    for (src, dst) in &pairs {
        link_refs(src, dst)?;
    }
    Ok(())
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
