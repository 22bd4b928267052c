//! TcpServer: listens, and gives each connection a ConnectedSocketAdapter and a protocol.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axon::{
    link_refs, Component, Context, Control, ControlWatch, Group, Inbox, MainResult, Outbox,
    TrySendError, CONTROL, INBOX, OUTBOX, SIGNAL,
};
use futures_util::stream::{FuturesUnordered, StreamExt};

use super::csa::{
    ConnectedSocketAdapter, CsaOptions, Feedback, Limits, OnFinish, ServerLinks, TlsRole,
};
use super::messages::{Listening, PeerHalfClosed, SocketShutdown, TcpError};
use super::selector::Selector;
use super::unix::{bind_unix, UnixSocketFile};
use super::{unix_peer, ServerTls, DEFAULT_HANDSHAKE_TIMEOUT};

/// What a protocol factory learns about a new connection.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// Our address.
    pub local: SocketAddr,
}

type Factory = Arc<dyn Fn(&ConnectionInfo) -> Component + Send + Sync>;

/// How long a STARTTLS server's connection may stay quiet before it has switched to TLS,
/// unless [`TcpServer::plaintext_timeout`] says otherwise: 60 s. Half-open plaintext
/// connections cannot pile up for ever.
pub const DEFAULT_PLAINTEXT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone)]
enum TlsMode {
    None,
    FromStart(Arc<rustls::ServerConfig>),
    StartTls(Arc<rustls::ServerConfig>),
}

/// A TCP server (Kamaelia's TCPServer with ServerCore's protocol handling): listens on an
/// address, and for each connection makes a [`ConnectedSocketAdapter`] and a protocol component
/// from a factory, wired to each other.
///
/// # Example
///
/// ```
/// use kamaelia::internet::{EchoProtocol, TcpServer};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = TcpServer::bind("127.0.0.1:0", |_| EchoProtocol::new())?;
/// let addr = server.local_addr();
/// let sched = axon::Scheduler::new();
/// let running = sched.run(async { server.activate(); });
/// let client = async {
///     let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
///     s.write_all(b"ping").await.unwrap();
///     s.shutdown().await.unwrap();
///     let mut got = Vec::new();
///     s.read_to_end(&mut got).await.unwrap();
///     assert_eq!(got, b"ping");
/// };
/// tokio::select! { _ = running => unreachable!(), _ = client => {} }
/// sched.shutdown_all();
/// # Ok(())
/// # }
/// ```
///
/// # How it works
///
/// The socket is bound and listening when [`TcpServer::bind`] returns, so the bound address
/// (port 0 picks a free one) is known before activation and a bind failure is an error there.
/// For each connection it makes a CSA and a protocol and links, as ServerCore does, the
/// protocol's `outbox` into the CSA's `inbox`, the CSA's `outbox` into the protocol's `inbox`
/// and the protocol's `signal` into the CSA's `control`; a protocol with a `makessl` outbox or a
/// `sslready` inbox is linked to the CSA's too (the CSA declares those two boxes only for a
/// protocol that has them: nothing else could use them), and a protocol with a `connevents` inbox (a
/// [`super::Relay`]) gets a copy of every message on the CSA's `signal`. When the peer finishes sending, or the
/// connection ends, the protocol gets ProducerFinished on `control`: from the CSA itself
/// (which sends it straight into the protocol's `control`: a server's CSA declares no
/// `CreatorFeedback`), or, for a protocol with `connevents`, from a small supervisor of that
/// connection (the CSA's feedback goes straight into the supervisor's inbox). Every connection's `signal` goes
/// to one events inbox of the server, which passes connection errors on; once the CSA and the
/// protocol have both ended the server lets go of them. A CSA that failed (the runtime reports
/// it on its `signal`) could not tell its protocol, so the server does: a failing CSA cannot
/// leave its protocol behind.
///
/// With [`TcpServer::tls`] every connection speaks TLS from the first byte; with
/// [`TcpServer::starttls`] a protocol switches its connection by sending [`super::MakeSsl`]
/// (with the plaintext reply and any bytes it read past its STARTTLS command, so nothing the
/// client sent is lost). A STARTTLS connection that has not switched yet is closed after
/// [`DEFAULT_PLAINTEXT_TIMEOUT`] (60 s) without traffic, unless
/// [`TcpServer::plaintext_timeout`] says otherwise, so half-open plaintext connections cannot
/// pile up; [`TcpServer::idle_timeout`] sets one for every connection (none by default).
///
/// Each connection's boxes and queues are bounded in bytes by [`TcpServer::limits`] (256 KiB
/// each direction by default; see [`ConnectedSocketAdapter`]), and [`super::EchoProtocol`]'s
/// and [`super::DiscardProtocol`]'s inboxes by the same default: an echo connection whose
/// client floods and never reads holds about 1 MiB of the server's memory, not more.
///
/// A connection's [`super::Transferred`] notice is not forwarded: a server's `signal` would
/// carry one per connection for ever.
///
/// # Inboxes
///
/// | name | type | meaning |
/// |---|---|---|
/// | `control` | `Control` | ProducerFinished or ShutdownMicroprocess: stop listening and close every connection |
///
/// # Outboxes
///
/// | name | type | meaning |
/// |---|---|---|
/// | `signal` | `Control` | Listening, connection errors, then one final message |
///
/// # Shutdown
///
/// A final message on `control` closes the listener, sends ShutdownMicroprocess to every
/// connection, waits for them and their protocols to end, and is forwarded on `signal`.
///
/// # Errors
///
/// [`TcpServer::bind`] fails with [`TcpError::Bind`]. Errors on a connection (reset, TLS
/// failure, [`TcpError::IdleTimeout`]) are sent on `signal` as `Control::Error` and end only
/// that connection.
pub struct TcpServer {
    listener: Option<StdListener>,
    addr: SocketAddr,
    factory: Factory,
    tls: TlsMode,
    on_finish: OnFinish,
    idle_timeout: Option<Duration>,
    plaintext_timeout: Option<Duration>,
    limits: Limits,
    max_connections: usize,
}

impl fmt::Debug for TcpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tls = match self.tls {
            TlsMode::None => "none",
            TlsMode::FromStart(_) => "from the start",
            TlsMode::StartTls(_) => "STARTTLS",
        };
        f.debug_struct("TcpServer")
            .field("addr", &self.addr)
            .field("listening", &self.listener.is_some())
            .field("tls", &tls)
            .field("on_finish", &self.on_finish)
            .field("idle_timeout", &self.idle_timeout)
            .field("plaintext_timeout", &self.plaintext_timeout)
            .field("limits", &self.limits)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl TcpServer {
    /// Binds and listens on `addr` (e.g. `"127.0.0.1:0"` or `"[::1]:8443"`); each connection
    /// gets a protocol made by `factory`.
    pub fn bind<F>(addr: &str, factory: F) -> Result<TcpServer, TcpError>
    where
        F: Fn(&ConnectionInfo) -> Component + Send + Sync + 'static,
    {
        let listener = listen(addr)?;
        let addr = listener.local_addr().map_err(|e| TcpError::Bind {
            addr: addr.to_string(),
            source: Arc::new(e),
        })?;
        Ok(Self::on(
            StdListener::Tcp(listener),
            addr,
            Arc::new(factory),
        ))
    }

    /// Binds and listens on the Unix socket `path`; each connection gets a protocol made by
    /// `factory` (its [`ConnectionInfo`] carries [`super::unix_peer`] for both addresses, as
    /// does [`TcpServer::local_addr`]). A file already at `path` is refused, unless it is a
    /// socket nobody listens on (left by a server that ended): that one is replaced. The socket
    /// file is removed when the server ends. No [`Listening`] notice is sent: it carries a TCP
    /// address.
    pub fn bind_unix<F>(
        path: impl Into<std::path::PathBuf>,
        factory: F,
    ) -> Result<TcpServer, TcpError>
    where
        F: Fn(&ConnectionInfo) -> Component + Send + Sync + 'static,
    {
        let (listener, file) = bind_unix(path.into())?;
        Ok(Self::on(
            StdListener::Unix(listener, file),
            unix_peer(),
            Arc::new(factory),
        ))
    }

    fn on(listener: StdListener, addr: SocketAddr, factory: Factory) -> TcpServer {
        TcpServer {
            listener: Some(listener),
            addr,
            factory,
            tls: TlsMode::None,
            on_finish: OnFinish::Close,
            idle_timeout: None,
            plaintext_timeout: Some(DEFAULT_PLAINTEXT_TIMEOUT),
            limits: Limits::default(),
            max_connections: usize::MAX,
        }
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Speaks TLS from the first byte of every connection.
    pub fn tls(mut self, tls: &ServerTls) -> Result<TcpServer, TcpError> {
        self.tls = TlsMode::FromStart(tls.server_config()?);
        Ok(self)
    }

    /// Lets protocols switch a connection to TLS with [`super::MakeSsl`] (STARTTLS).
    pub fn starttls(mut self, tls: &ServerTls) -> Result<TcpServer, TcpError> {
        self.tls = TlsMode::StartTls(tls.server_config()?);
        Ok(self)
    }

    /// What each connection does on ProducerFinished from its protocol (default close).
    pub fn on_finish(mut self, on_finish: OnFinish) -> TcpServer {
        self.on_finish = on_finish;
        self
    }

    /// Ends a connection with [`TcpError::IdleTimeout`] (reported on `signal`) when no byte
    /// has moved either way for `timeout` (default `None`: never).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> TcpServer {
        self.idle_timeout = timeout;
        self
    }

    /// With [`TcpServer::starttls`]: the idle timeout of a connection that has not switched to
    /// TLS yet (default [`DEFAULT_PLAINTEXT_TIMEOUT`], 60 s; `None`: only
    /// [`TcpServer::idle_timeout`] applies). The shorter of the two applies before the switch.
    pub fn plaintext_timeout(mut self, timeout: Option<Duration>) -> TcpServer {
        self.plaintext_timeout = timeout;
        self
    }

    /// Byte bounds for each connection (default [`Limits::default`], 256 KiB each direction).
    /// A protocol bounds its own inbox; [`super::EchoProtocol`] and
    /// [`super::DiscardProtocol`] use the default limits.
    pub fn limits(mut self, limits: Limits) -> TcpServer {
        self.limits = limits;
        self
    }

    /// Serves at most `n` connections at once (default: no limit). While `n` are open no
    /// other is accepted: new ones wait in the listening socket's backlog (4096) until one
    /// ends, and beyond that the kernel leaves them unanswered.
    pub fn max_connections(mut self, n: usize) -> TcpServer {
        self.max_connections = n.max(1);
        self
    }

    /// Activates the server.
    pub fn activate(self) -> axon::Handle {
        Component::from(self).activate()
    }
}

/// The socket a server listens on, before activation.
#[derive(Debug)]
enum StdListener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener, UnixSocketFile),
}

/// The socket a running server listens on (a Unix one with its file, removed when dropped).
enum Listener {
    Tcp(tokio::net::TcpListener),
    // The file is only held, to be removed when the listener is dropped.
    Unix(tokio::net::UnixListener, #[allow(dead_code)] UnixSocketFile),
}

/// A connection just accepted.
enum Accepted {
    Tcp(tokio::net::TcpStream, SocketAddr),
    Unix(tokio::net::UnixStream),
}

impl Listener {
    async fn accept(&self) -> std::io::Result<Accepted> {
        match self {
            Listener::Tcp(l) => l.accept().await.map(|(s, peer)| Accepted::Tcp(s, peer)),
            Listener::Unix(l, _) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
        }
    }
}

/// A non-blocking listening socket on `addr` (`SO_REUSEADDR`; IPv6 only on an IPv6 address),
/// with a backlog of 4096.
pub(super) fn listen(addr: &str) -> Result<std::net::TcpListener, TcpError> {
    let bind_err = |e: std::io::Error| TcpError::Bind {
        addr: addr.to_string(),
        source: Arc::new(e),
    };
    let sa: SocketAddr = addr.parse().map_err(|e: std::net::AddrParseError| {
        bind_err(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    })?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(sa),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .map_err(bind_err)?;
    socket.set_reuse_address(true).map_err(bind_err)?;
    if sa.is_ipv6() {
        socket.set_only_v6(true).map_err(bind_err)?;
    }
    socket.bind(&sa.into()).map_err(bind_err)?;
    socket.listen(4096).map_err(bind_err)?;
    socket.set_nonblocking(true).map_err(bind_err)?;
    Ok(socket.into())
}

axon::box_table! {
    /// The server's boxes, declared once: the builder declares them from here, and a test checks
    /// the rustdoc tables against the declarations.
    const BOXES: ServerBoxes {
        control: CONTROL => "ProducerFinished or ShutdownMicroprocess: stop listening and close every connection",
        signal: SIGNAL => "Listening, connection errors, then one final message",
    }
}

impl From<TcpServer> for Component {
    fn from(server: TcpServer) -> Component {
        let mut b = Component::build("TcpServer");
        let control = b.control_from(BOXES.control);
        let signal = b.signal_from(BOXES.signal);
        b.main(move |cx| run(server, control, signal, cx))
    }
}

async fn run(
    mut server: TcpServer,
    control: Inbox<Control>,
    signal: Outbox<Control>,
    cx: Context,
) -> MainResult {
    let label: Arc<str> = cx.label().into();
    let (selector, _) = Selector::get_or_create(cx.services())?;
    let listener = {
        let std_listener = server
            .listener
            .take()
            .ok_or("the listener was already taken")?;
        let _enter = selector.handle().enter();
        match std_listener {
            StdListener::Tcp(l) => Listener::Tcp(tokio::net::TcpListener::from_std(l)?),
            StdListener::Unix(l, file) => {
                Listener::Unix(tokio::net::UnixListener::from_std(l)?, file)
            }
        }
    };
    if let Listener::Tcp(_) = listener {
        let _ = signal.send(Control::notice(Listening(server.addr))).await;
    }
    // A watcher of each connection until it has ended, polled by this task (each woken on
    // its own), not a task per connection. It holds the connection's CSA, to stop it when the
    // server stops; how many there are is how many connections are open.
    let mut watchers = FuturesUnordered::new();
    // What every connection's CSA says on its `signal` (but a Relay's, which has a
    // supervisor of its own): the errors are passed on, the rest is of no interest here.
    let events = Inbox::<Control>::standalone("connection events", EVENTS_CAPACITY);
    // A connection's error that found `signal` full: it waits here for room, in its own
    // branch, so a slow reader of `signal` never holds up accepting, control or the other
    // branches; meanwhile `events` is not read (its bound holds the connections back).
    let mut held: Option<Control> = None;
    let mut watch = ControlWatch::new(&control, &signal);
    while !watch.stopping() {
        tokio::select! {
            c = watch.control().recv() => watch.handle(c).await,
            () = signal.ready(), if held.is_some() => held = held.take().and_then(|c| pass_on(&signal, &label, c)),
            c = events.recv(), if held.is_none() => held = on_event(&signal, &label, c),
            accepted = listener.accept(), if watchers.len() < server.max_connections => match accepted {
                Ok(accepted) => {
                    let started = match accepted {
                        Accepted::Tcp(stream, peer) => {
                            let info = ConnectionInfo { peer, local: server.addr };
                            start_connection(&cx, &server, stream, &info, &events)
                        }
                        Accepted::Unix(stream) => {
                            let info = ConnectionInfo { peer: unix_peer(), local: server.addr };
                            start_connection(&cx, &server, stream, &info, &events)
                        }
                    };
                    match started {
                        Ok((csa, proto, supervised)) => {
                            // Held inline by the set that polls it: no box of its own. A
                            // supervisor (a Relay's: rare, and larger) is boxed, so that every
                            // other connection's watcher is two handles and a flag.
                            let watcher = match supervised {
                                None => Watcher::Plain { csa, proto, csa_ended: false },
                                Some((own_events, to_events)) => {
                                    let (signal, label) = (signal.clone(), label.clone());
                                    Watcher::Supervised {
                                        csa: csa.clone(),
                                        supervisor: Box::pin(supervise(own_events, to_events, signal, label, (csa, proto))),
                                    }
                                }
                            };
                            watchers.push(watcher);
                        }
                        Err(e) => {
                            report(&signal, &label, Control::error(label.clone(), e)).await;
                        }
                    }
                }
                Err(e) => {
                    // Out of descriptors and the like: report, back off, keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // A connection has ended: its watcher, and with it its handles, is gone.
            Some(()) = watchers.next() => {}
        }
    }
    drop(listener);
    for watcher in watchers.iter() {
        watcher.csa().stop();
    }
    // Each watcher returns once its CSA and protocol have both ended; meanwhile the ending
    // connections still report (and must find room to).
    loop {
        tokio::select! {
            ended = watchers.next() => if ended.is_none() { break },
            () = signal.ready(), if held.is_some() => held = held.take().and_then(|c| pass_on(&signal, &label, c)),
            c = events.recv(), if held.is_none() => held = on_event(&signal, &label, c),
        }
    }
    // The connections have all ended: what is held, and any error still in `events` (sent
    // just before its connection's end was seen), goes out now without waiting, as the final
    // message does (at most the events inbox's bound of small messages past `signal`'s).
    for c in held
        .into_iter()
        .chain(std::iter::from_fn(|| events.try_recv()))
    {
        if matches!(c, Control::Error(_)) {
            let _ = signal.force_send(c);
        }
    }
    // Forced: the final message must not wait on a signal nobody reads.
    watch.finish(Control::producer_finished());
    Ok(())
}

/// How many messages the connections' shared events inbox holds: each connection sends a
/// few on its `signal` in its life, and the server takes them as they come.
const EVENTS_CAPACITY: usize = 1024;

/// A message a connection's CSA sent on its `signal`: an error is passed on (a CSA that
/// failed has its error sent there by the runtime), the rest (PeerHalfClosed, Transferred,
/// ShutdownCsa, a failed CSA's final message) concerns only the connection. Returns the
/// error if `signal` has no room for it now (the caller holds it until there is).
fn on_event(signal: &Outbox<Control>, label: &Arc<str>, c: Control) -> Option<Control> {
    if let Control::Error(e) = &c {
        tracing::debug!(server = %label, "connection error: {e}");
        return pass_on(signal, label, c);
    }
    None
}

/// [`report`] without waiting: `c` back if `signal` is full.
fn pass_on(signal: &Outbox<Control>, label: &str, c: Control) -> Option<Control> {
    match signal.try_send(c) {
        Ok(()) | Err(TrySendError::Closed(_)) => None,
        Err(TrySendError::Full(c)) => Some(c),
        Err(TrySendError::Unlinked(c)) => {
            tracing::warn!(server = %label, "signal is not linked and its buffer is full; dropped: {c}");
            None
        }
    }
}

/// Sends a notice or an error on `signal` without letting a signal that nobody reads stall
/// the server: a full destination is waited for (backpressure), but when nothing is linked and
/// the outbox's own buffer is full the message is dropped, with a warning.
async fn report(signal: &Outbox<Control>, label: &str, c: Control) {
    if let Some(c) = pass_on(signal, label, c) {
        let _ = signal.send(c).await;
    }
}

/// A connection started: its CSA and protocol, and for a protocol that watches its
/// connection (a Relay), what its own supervisor reads and passes on.
type Started = (
    axon::Handle,
    axon::Handle,
    Option<(Inbox<Control>, Option<Outbox<Control>>)>,
);

fn start_connection<S>(
    cx: &Context,
    server: &TcpServer,
    stream: S,
    info: &ConnectionInfo,
    events: &Inbox<Control>,
) -> Result<Started, axon::WiringError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (role, tls_first) = match &server.tls {
        TlsMode::None => (None, false),
        TlsMode::FromStart(c) => (Some(server_role(c)), true),
        TlsMode::StartTls(c) => (Some(server_role(c)), false),
    };
    let plaintext_timeout = match server.tls {
        TlsMode::StartTls(_) => server.plaintext_timeout,
        TlsMode::None | TlsMode::FromStart(_) => None,
    };
    let options = CsaOptions::default()
        .on_finish(server.on_finish)
        .tls_first(tls_first)
        .idle_timeout(server.idle_timeout)
        .plaintext_timeout(plaintext_timeout)
        .limits(server.limits);
    let proto = (server.factory)(info);
    let connevents = proto.boxref("connevents");
    // A protocol that watches its connection (a Relay) has a supervisor of the connection's
    // own, whose inbox takes the adapter's events; any other is told by the adapter itself.
    let own_events = connevents
        .is_ok()
        .then(|| Inbox::<Control>::standalone("connection events", 16));
    // Where the adapter says that the peer has finished or how the connection ended: sent
    // straight there, with no `CreatorFeedback` box of its own (a store and a table entry
    // per connection). A protocol without `control` cannot be told.
    let feedback_to = match &own_events {
        Some(events) => Some(events.boxref()),
        None => proto.boxref(CONTROL).ok(),
    };
    let feedback = match feedback_to {
        None => None,
        Some(to) => {
            Some(
                to.sender::<Control>()
                    .ok_or_else(|| axon::WiringError::TypeMismatch {
                        src: axon::BoxId {
                            owner: "ConnectedSocketAdapter".into(),
                            name: "CreatorFeedback".into(),
                            direction: axon::Direction::Out,
                            message_type: std::any::type_name::<Control>(),
                        },
                        dst: to.id(),
                    })?,
            )
        }
    };
    let csa = ConnectedSocketAdapter::for_server(
        stream,
        info.peer,
        role,
        options,
        links(&proto),
        Feedback::Into(feedback),
    );
    if let Ok(out) = proto.boxref(OUTBOX) {
        link_refs(&out, &csa.boxref(INBOX)?)?;
    }
    if let Ok(inb) = proto.boxref(INBOX) {
        link_refs(&csa.boxref(OUTBOX)?, &inb)?;
    }
    if let Ok(sig) = proto.boxref(SIGNAL) {
        link_refs(&sig, &csa.boxref(CONTROL)?)?;
    }
    if let Ok(m) = proto.boxref("makessl") {
        link_refs(&m, &csa.boxref("makessl")?)?;
    }
    if let Ok(r) = proto.boxref("sslready") {
        link_refs(&csa.boxref("sslready")?, &r)?;
    }
    let supervised = match (connevents, own_events) {
        // A protocol that watches its connection (a Relay) gets a copy of every event, from
        // a supervisor of the connection's own: the CSA's events in, the protocol's control
        // and `connevents` out.
        (Ok(e), Some(own_events)) => {
            link_refs(&csa.boxref(SIGNAL)?, &own_events.boxref())?;
            let out = Outbox::<Control>::standalone("to protocol's connevents");
            link_refs(&out.boxref(), &e)?;
            Some((own_events, Some(out)))
        }
        // The connection tells the protocol itself, and its errors go to the server's one
        // events inbox: nothing per connection but a watcher of its end.
        _ => {
            link_refs(&csa.boxref(SIGNAL)?, &events.boxref())?;
            None
        }
    };
    // The connection's adapter and protocol share one task (docs/semantics.md §10).
    let handles = cx.activate_group(Group::new().with(csa).with(proto));
    // Two members were added, so there are two handles.
    let [csa, proto]: [axon::Handle; 2] = handles.try_into().expect("one handle per member");
    Ok((csa, proto, supervised))
}

/// What `proto` links to its connection's adapter: `makessl` and `sslready` when it has the
/// boxes (the adapter declares them only then), whether the adapter tells it the
/// connection's end itself (every protocol but one that watches its connection: see
/// `supervise`), and whether the adapter's `outbox` is linked to its `inbox`
/// ([`start_connection`] links it before the connection starts, or refuses the connection).
fn links(proto: &Component) -> ServerLinks {
    ServerLinks {
        makessl: proto.boxref("makessl").is_ok(),
        sslready: proto.boxref("sslready").is_ok(),
        tells_protocol: proto.boxref("connevents").is_err(),
        outbox_linked: proto.boxref(INBOX).is_ok(),
    }
}

/// The server's watch on one connection, until its CSA and then its protocol have both ended
/// and the server can let go of them (and count the connection no more). It keeps the CSA's
/// handle where the server reaches it, to stop it when the server stops.
///
/// `Plain`: the CSA tells the protocol ProducerFinished itself; a CSA that failed (panicked)
/// could not, so the protocol is told here then. `Supervised`: a protocol that watches its
/// connection (a Relay) has a supervisor ([`supervise`]), boxed: rare, and larger.
///
/// Written by hand (two handles and a flag, with no `async` state beside them): the server
/// holds one for every connection, in its node of the set that polls them (before, an `async`
/// block of 64 bytes and a map from the connection's number to its CSA's handle).
enum Watcher<S> {
    Plain {
        csa: axon::Handle,
        proto: axon::Handle,
        csa_ended: bool,
    },
    Supervised {
        csa: axon::Handle,
        supervisor: std::pin::Pin<Box<S>>,
    },
}

impl<S> Watcher<S> {
    /// The connection's CSA.
    fn csa(&self) -> &axon::Handle {
        match self {
            Watcher::Plain { csa, .. } | Watcher::Supervised { csa, .. } => csa,
        }
    }
}

impl<S: std::future::Future<Output = ()>> std::future::Future for Watcher<S> {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        match self.get_mut() {
            Watcher::Plain {
                csa,
                proto,
                csa_ended,
            } => {
                if !*csa_ended {
                    let exit = std::task::ready!(csa.poll_join(cx));
                    *csa_ended = true;
                    if exit.failure.is_some() {
                        proto.send_control(Control::producer_finished());
                    }
                }
                proto.poll_join(cx).map(drop)
            }
            Watcher::Supervised { supervisor, .. } => supervisor.as_mut().poll(cx),
        }
    }
}

/// Watches a connection: passes its errors on, tells the protocol ProducerFinished when the
/// peer has finished sending or the connection has ended, and returns once the CSA and the
/// protocol have both ended, so the server can let go of them.
///
/// The connection has ended when the CSA says so ([`SocketShutdown`]) or when a final message
/// arrives on its `signal`, which only the runtime sends, for a CSA that failed (panicked) and
/// will say nothing more.
///
/// One of these waits for every connection the server holds, so the state it waits in is
/// kept small: the protocol is told through its handle (no outbox linked to it), and what is
/// rare (reporting an error, the final joins) is boxed.
// Written out on purpose: see the comment in the body.
#[allow(clippy::manual_async_fn)]
fn supervise(
    events: Inbox<Control>,
    to_events: Option<Outbox<Control>>,
    signal: Outbox<Control>,
    label: Arc<str>,
    (csa, proto): (axon::Handle, axon::Handle),
) -> impl std::future::Future<Output = ()> + Send {
    // A plain function returning a block that owns its values: an `async fn` would keep its
    // arguments twice (as arguments and as the locals they move to).
    async move {
        let mut told = false;
        loop {
            let c = events.recv().await;
            if let Some(out) = &to_events {
                let _ = Box::pin(out.send(c.clone())).await;
            }
            let ended = c.payload::<SocketShutdown>().is_some() || c.is_final();
            if ended || c.payload::<PeerHalfClosed>().is_some() {
                if !told {
                    told = true;
                    proto.send_control(Control::producer_finished());
                }
                if ended {
                    break;
                }
            } else if let Control::Error(e) = &c {
                tracing::debug!(server = %label, "connection error: {e}");
                Box::pin(report(&signal, &label, c)).await;
            }
        }
        Box::pin(async {
            csa.join().await;
            proto.join().await;
        })
        .await;
    }
}

fn server_role(config: &Arc<rustls::ServerConfig>) -> TlsRole {
    TlsRole::Server {
        config: config.clone(),
        timeout: DEFAULT_HANDSHAKE_TIMEOUT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::internet::EchoProtocol;
    use axon::Scheduler;
    use bytes::Bytes;

    /// A stand-in for a CSA that fails (panics; a real CSA has no input that makes it panic)
    /// with the CSA's boxes, an EchoProtocol feeding it, and the CSA's `signal` into `events`;
    /// `feedback_to_protocol` links `CreatorFeedback` to the protocol's `control` (as for a
    /// connection that tells its protocol itself), else into `events` too. Returns the two
    /// handles once activated, and the run.
    async fn failing_connection(
        events: &Inbox<Control>,
        feedback_to_protocol: bool,
    ) -> (
        (axon::Handle, axon::Handle),
        tokio::task::JoinHandle<axon::RunReport>,
    ) {
        let mut b = Component::build("FailingCsa");
        let _inbox = b.inbox::<Bytes>(INBOX, "data to send");
        let _signal = b.signal();
        let _feedback = b.outbox::<Control>("CreatorFeedback", "how it ended");
        let csa = b.main(|_| async { panic!("a connection component that fails") });
        let proto = EchoProtocol::new();
        let link = |a: axon::BoxRef, b: axon::BoxRef| link_refs(&a, &b).unwrap();
        link(proto.boxref(OUTBOX).unwrap(), csa.boxref(INBOX).unwrap());
        link(csa.boxref(SIGNAL).unwrap(), events.boxref());
        let feedback_to = if feedback_to_protocol {
            proto.boxref(CONTROL).unwrap()
        } else {
            events.boxref()
        };
        link(csa.boxref("CreatorFeedback").unwrap(), feedback_to);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let run = tokio::spawn(async move {
            Scheduler::new()
                .run(async move {
                    let _ = tx.send((csa.activate(), proto.activate()));
                })
                .await
        });
        (rx.await.unwrap(), run)
    }

    /// The run ended with the stand-in's panic as its one failure (the protocol ended
    /// normally), and the failure reached the server's `signal` as a connection error.
    async fn only_the_stand_in_failed(
        run: tokio::task::JoinHandle<axon::RunReport>,
        errors: &Inbox<Control>,
    ) {
        let report = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("everything ended")
            .unwrap();
        assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
        assert!(report.failures[0].component.starts_with("FailingCsa"));
        assert!(matches!(errors.try_recv(), Some(Control::Error(_))));
    }

    /// The names of the boxes `c` declares.
    fn box_names(c: &Component) -> Vec<String> {
        c.boxes().map(|b| b.name.to_string()).collect()
    }

    /// A server connection's adapter declares `makessl` and `sslready` only when its protocol
    /// has the box to link to them: an EchoProtocol's connection (every plaintext or TLS
    /// server's but a STARTTLS protocol's) has neither, saving two box stores per connection;
    /// a protocol with a `makessl` outbox and an `sslready` inbox gets both. It declares no
    /// `CreatorFeedback`: the server gives it a sender straight into the protocol's `control`
    /// (or its supervisor's inbox), saving another; built on its own it has one.
    #[tokio::test]
    async fn a_server_connection_declares_makessl_and_sslready_only_for_a_protocol_that_links_them()
    {
        let peer: SocketAddr = ([127, 0, 0, 1], 1).into();
        let adapter = |proto: &Component| {
            let (pipe, _) = tokio::io::duplex(64);
            let to_protocol = proto
                .boxref(CONTROL)
                .ok()
                .and_then(|c| c.sender::<Control>());
            ConnectedSocketAdapter::for_server(
                pipe,
                peer,
                None,
                CsaOptions::default(),
                links(proto),
                Feedback::Into(to_protocol),
            )
        };
        let echo = EchoProtocol::new();
        assert_eq!(box_names(&adapter(&echo)), [INBOX, CONTROL, OUTBOX, SIGNAL]);
        let (pipe, _) = tokio::io::duplex(64);
        let alone = ConnectedSocketAdapter::with_config(pipe, peer, None, CsaOptions::default());
        assert_eq!(
            box_names(&alone).last().map(String::as_str),
            Some("CreatorFeedback")
        );

        let mut b = Component::build("StartTlsLike");
        let _: Outbox<crate::internet::MakeSsl> = b.outbox("makessl", "switch to TLS");
        let _: Inbox<crate::internet::SslReady> = b.inbox("sslready", "TLS is up");
        let starttls = b.main(|_| async { Ok(()) });
        assert_eq!(
            box_names(&adapter(&starttls)),
            [INBOX, CONTROL, "makessl", OUTBOX, SIGNAL, "sslready",]
        );
    }

    /// A server connection's adapter whose `outbox` the server links to the protocol's inbox
    /// keeps nothing there and holds no byte bound for it; for a protocol without an inbox the
    /// outbox keeps what the connection reads, bounded in bytes as any adapter's.
    #[tokio::test]
    async fn a_server_connection_s_outbox_linked_to_its_protocol_has_no_byte_bound_of_its_own() {
        let peer: SocketAddr = ([127, 0, 0, 1], 1).into();
        let limits = Limits::default();
        let big = || Bytes::from(vec![0_u8; limits.receive_bytes + 1]);
        let outbox_of = |proto: &Component| {
            let (pipe, _) = tokio::io::duplex(64);
            let csa = ConnectedSocketAdapter::for_server(
                pipe,
                peer,
                None,
                CsaOptions::default().limits(limits),
                links(proto),
                Feedback::Into(None),
            );
            csa.outbox::<Bytes>(OUTBOX).unwrap()
        };
        // Unlinked here, so both keep what is sent: the first message always goes in, the
        // second only where there is no byte bound.
        let echo = outbox_of(&EchoProtocol::new());
        assert!(echo.try_send(big()).is_ok() && echo.try_send(big()).is_ok());
        let no_inbox = outbox_of(&Component::build("Mute").main(|_| async { Ok(()) }));
        assert!(no_inbox.try_send(big()).is_ok());
        assert!(matches!(
            no_inbox.try_send(big()),
            Err(axon::TrySendError::Unlinked(_))
        ));
    }

    /// A connection whose CSA fails sends no SocketShutdown: the runtime sends its error and a
    /// final message on its `signal`. The supervisor (a Relay's connection) must take that as
    /// the end, tell the protocol, and return once both have ended, so the server lets go of
    /// them (before, it waited for a SocketShutdown for ever).
    /// A server's events inbox, and its `signal` linked to an inbox the test reads.
    fn server_boxes() -> (Inbox<Control>, Inbox<Control>, Outbox<Control>) {
        let events = Inbox::<Control>::standalone("connection events", 16);
        let errors = Inbox::<Control>::standalone("server signal", 16);
        let signal = Outbox::<Control>::standalone(SIGNAL);
        link_refs(&signal.boxref(), &errors.boxref()).unwrap();
        (events, errors, signal)
    }

    #[tokio::test]
    async fn a_failed_csa_ends_its_supervisor_and_its_protocol() {
        let (events, errors, signal) = server_boxes();
        let ((csa, proto), run) = failing_connection(&events, false).await;
        let supervised = supervise(events, None, signal, "TcpServer".into(), (csa, proto));
        tokio::time::timeout(Duration::from_secs(10), supervised)
            .await
            .expect("the supervisor ended");
        only_the_stand_in_failed(run, &errors).await;
    }

    /// The same for a connection that tells its protocol itself (every protocol but a
    /// Relay's): a CSA that fails cannot tell it, so the server's watcher of its end does, the
    /// protocol ends, and the watcher returns; the runtime's error on the CSA's `signal`
    /// reaches the server's events inbox, which passes it on.
    #[tokio::test]
    async fn a_failed_csa_that_tells_its_protocol_ends_its_watcher_and_its_protocol() {
        let (events, errors, signal) = server_boxes();
        let ((csa, proto), run) = failing_connection(&events, true).await;
        let watcher: Watcher<std::future::Ready<()>> = Watcher::Plain {
            csa: csa.clone(),
            proto,
            csa_ended: false,
        };
        // The server holds one per connection, in its node of the set that polls them: the
        // two handles and a flag (it was an `async` block of 64 bytes, beside a map entry).
        let size = std::mem::size_of_val(&watcher);
        assert!(size <= 24, "a connection's watcher: {size} bytes");
        assert_eq!(watcher.csa().id(), csa.id());
        tokio::time::timeout(Duration::from_secs(10), watcher)
            .await
            .expect("the watcher ended");
        let label: Arc<str> = "TcpServer".into();
        while let Some(c) = events.try_recv() {
            assert!(on_event(&signal, &label, c).is_none(), "signal has room");
        }
        only_the_stand_in_failed(run, &errors).await;
    }
}
