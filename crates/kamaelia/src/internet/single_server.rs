//! SingleServer: listens, accepts one connection, and is then that connection (Kamaelia's
//! `Kamaelia.Internet.SingleServer`), with the boxes and messages of a TcpClient.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axon::{BoxDecl, Component, Context, Control, ControlWatch, MainResult, CONTROL, INBOX};
use axon::{OUTBOX, SIGNAL};

use super::csa::{CsaOptions, Limits, OnFinish, TlsKept};
use super::messages::{Listening, TcpError};
use super::selector::Selector;
use super::tcp_client::{announce, end_unconnected, run_connected, Boxes, ClientBoxes, Declared};
use super::unix::{bind_unix, unix_peer, UnixSocketFile};
use super::{ServerTls, DEFAULT_HANDSHAKE_TIMEOUT};

/// The socket a [`SingleServer`] listens on.
#[derive(Debug)]
enum Socket {
    Tcp(std::net::TcpListener, SocketAddr),
    Unix(std::os::unix::net::UnixListener, UnixSocketFile),
}

/// A server for one connection (Kamaelia's SingleServer): it listens when made, accepts the
/// first connection, stops listening, and from then on behaves as a [`super::TcpClient`] does
/// for its connection: send to its `inbox` to send to the client, pick up what the client sends
/// on its `outbox`. `kamaelia listen` is this component between the console's reader and
/// echoer (nc -l).
///
/// # Example
///
/// ```
/// use axon::{link_refs, Inbox, Scheduler, OUTBOX};
/// use bytes::Bytes;
/// use kamaelia::internet::SingleServer;
/// use tokio::io::AsyncWriteExt;
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = SingleServer::bind("127.0.0.1:0")?;
/// let addr = server.local_addr().expect("a TCP address");
/// let server: axon::Component = server.into();
/// let got = Inbox::<Bytes>::standalone("received", 16);
/// link_refs(&server.boxref(OUTBOX)?, &got.boxref())?;
/// let sched = Scheduler::new();
/// let running = sched.run(async move { server.activate(); });
/// let client = async {
///     let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
///     s.write_all(b"hello").await.unwrap();
///     let mut all = Vec::new();
///     while all.len() < 5 {
///         all.extend_from_slice(&got.recv().await);
///     }
///     assert_eq!(all, b"hello");
/// };
/// tokio::select! { _ = running => unreachable!(), _ = client => {} }
/// sched.shutdown_all();
/// # Ok(())
/// # }
/// ```
///
/// # How it works
///
/// The socket is bound and listening when [`SingleServer::bind`] (or
/// [`SingleServer::bind_unix`]) returns, so the address is known, and a bind failure is an
/// error, before activation. Once activated it sends [`Listening`] (TCP only), waits for one
/// connection (honouring `control` meanwhile), closes the listening socket (a later connection
/// is refused) and then runs the connection exactly as a TcpClient runs its own: itself, with
/// its own boxes (the [`super::ConnectedSocketAdapter`]'s loop, without a component of its
/// own, so no `_socketFeedback` or `_csaControl` to wire one), [`super::Connected`] with the
/// client's address, the connection's notices, one final message. With
/// [`SingleServer::tls`] the connection speaks TLS from the first byte; `sslready` says when
/// the handshake is done.
///
/// Its `inbox` and `outbox` are bounded in bytes by [`Limits`] (256 KiB each direction by
/// default), as are the connection's queues.
///
/// # Inboxes
///
/// | name | type | meaning |
/// |---|---|---|
/// | `inbox` | `Bytes` | data to send to the client |
/// | `control` | `Control` | ProducerFinished: send what is queued, then close; ShutdownMicroprocess: close now |
/// | `makessl` | [`super::MakeSsl`] | switch the connection to TLS, with [`SingleServer::starttls`] |
///
/// # Outboxes
///
/// | name | type | meaning |
/// |---|---|---|
/// | `outbox` | `Bytes` | data received from the client |
/// | `signal` | `Control` | Listening, Connected, errors, PeerHalfClosed, Transferred, then one final message |
/// | `sslready` | [`super::SslReady`] | TLS negotiated (version, cipher suite) |
///
/// # Shutdown
///
/// As [`super::TcpClient`]: ProducerFinished (even before a client has connected) sends what is
/// queued once connected and then closes, or half-closes and waits with
/// [`OnFinish::HalfClose`], or keeps the write side open with [`OnFinish::KeepOpen`]; the
/// client's half-close ends only what it sends. ShutdownMicroprocess closes promptly, also
/// while waiting for a client. The final message carries the [`super::HowDied`].
///
/// # Errors
///
/// [`SingleServer::bind`] fails with [`TcpError::Bind`]. On the connection, as TcpClient: reset,
/// broken pipe, a TLS failure ([`TcpError::Tls`]), the idle timeout; each on `signal` as
/// `Control::Error` before the final message.
#[derive(Debug)]
pub struct SingleServer {
    socket: Socket,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// TLS only when `makessl` asks.
    starttls: bool,
    on_finish: OnFinish,
    idle_timeout: Option<Duration>,
    limits: Limits,
}

/// The SingleServer's boxes: a TcpClient's, said from the server's side.
const BOXES: ClientBoxes = ClientBoxes {
    inbox: BoxDecl::new(INBOX, "data to send to the client"),
    control: BoxDecl::new(
        CONTROL,
        "ProducerFinished: send what is queued, then close; ShutdownMicroprocess: close now",
    ),
    makessl: BoxDecl::new(
        "makessl",
        "switch the connection to TLS, with [`SingleServer::starttls`]",
    ),
    outbox: BoxDecl::new(OUTBOX, "data received from the client"),
    signal: BoxDecl::new(
        SIGNAL,
        "Listening, Connected, errors, PeerHalfClosed, Transferred, then one final message",
    ),
    sslready: BoxDecl::new("sslready", "TLS negotiated (version, cipher suite)"),
};

impl SingleServer {
    /// Binds and listens on `addr` (e.g. `"127.0.0.1:0"` or `"[::1]:9000"`).
    pub fn bind(addr: &str) -> Result<SingleServer, TcpError> {
        let listener = super::tcp_server::listen(addr)?;
        let local = listener.local_addr().map_err(|e| TcpError::Bind {
            addr: addr.to_string(),
            source: Arc::new(e),
        })?;
        Ok(Self::on(Socket::Tcp(listener, local)))
    }

    /// Binds and listens on the Unix socket `path`. A file already at `path` is refused,
    /// unless it is a socket that nobody listens on (left by a server that ended): that one is
    /// replaced. The socket file is removed when the server is dropped.
    pub fn bind_unix(path: impl Into<PathBuf>) -> Result<SingleServer, TcpError> {
        let (listener, file) = bind_unix(path.into())?;
        Ok(Self::on(Socket::Unix(listener, file)))
    }

    fn on(socket: Socket) -> SingleServer {
        SingleServer {
            socket,
            tls: None,
            starttls: false,
            on_finish: OnFinish::Close,
            idle_timeout: None,
            limits: Limits::default(),
        }
    }

    /// The TCP address it listens on (None for a Unix socket).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.socket {
            Socket::Tcp(_, a) => Some(*a),
            Socket::Unix(..) => None,
        }
    }

    /// Speaks TLS from the first byte, presenting `tls`.
    pub fn tls(mut self, tls: &ServerTls) -> Result<SingleServer, TcpError> {
        self.tls = Some(tls.server_config()?);
        self.starttls = false;
        Ok(self)
    }

    /// Speaks plaintext until `makessl` asks for TLS (STARTTLS, for example from a
    /// [`StartTlsServerLayer`](super::StartTlsServerLayer)), then TLS presenting `tls`.
    pub fn starttls(mut self, tls: &ServerTls) -> Result<SingleServer, TcpError> {
        self.tls = Some(tls.server_config()?);
        self.starttls = true;
        Ok(self)
    }

    /// What ProducerFinished does (default [`OnFinish::Close`]).
    pub fn on_finish(mut self, on_finish: OnFinish) -> Self {
        self.on_finish = on_finish;
        self
    }

    /// Ends the connection with [`TcpError::IdleTimeout`] when no byte has moved either way
    /// for `timeout` once a client is connected (default `None`: never).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Byte bounds for each direction (default [`Limits::default`], 256 KiB each).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

impl From<SingleServer> for Component {
    fn from(server: SingleServer) -> Component {
        let mut b = Component::build("SingleServer");
        let boxes = Boxes::declare(&mut b, &BOXES, server.limits);
        b.main(move |cx| run(server, boxes, cx))
    }
}

async fn run(server: SingleServer, b: Declared, cx: Context) -> MainResult {
    let label = cx.label().clone();
    let (selector, _) = Selector::get_or_create(cx.services())?;
    // Its `control` is watched from the start: made now (rare for a TcpClient, which polls it
    // by hand).
    let mut b = b.start(&cx);
    let mut watch = ControlWatch::new(b.control.inbox(&b.rare, CONTROL), &b.signal);
    let role = server
        .tls
        .as_ref()
        .map(|config| TlsKept::server(config.clone(), DEFAULT_HANDSHAKE_TIMEOUT));
    let options = CsaOptions::default()
        .on_finish(server.on_finish)
        .tls_first(role.is_some() && !server.starttls)
        .idle_timeout(server.idle_timeout)
        .limits(server.limits);
    match server.socket {
        Socket::Tcp(listener, local) => {
            let listener = {
                let _enter = selector.handle().enter();
                tokio::net::TcpListener::from_std(listener)?
            };
            let _ = b.signal.send(Control::notice(Listening(local))).await;
            let accepted = accept_one(&mut watch, || listener.accept()).await;
            drop(listener);
            let Some((stream, peer)) = accepted else {
                end_unconnected(&b, label, None).await;
                return Ok(());
            };
            let stopping = watch.stopping();
            drop(cx);
            if let Ok(local) = stream.local_addr() {
                if let Some(wait) = announce(&b.signal, peer, local) {
                    wait.await;
                }
            }
            run_connected(b, stream, peer, role, options, stopping).await
        }
        Socket::Unix(listener, file) => {
            let listener = {
                let _enter = selector.handle().enter();
                tokio::net::UnixListener::from_std(listener)?
            };
            let accepted = accept_one(&mut watch, || listener.accept()).await;
            drop(listener);
            drop(file);
            let Some((stream, _)) = accepted else {
                end_unconnected(&b, label, None).await;
                return Ok(());
            };
            let stopping = watch.stopping();
            let peer = unix_peer();
            drop(cx);
            if let Some(wait) = announce(&b.signal, peer, peer) {
                wait.await;
            }
            run_connected(b, stream, peer, role, options, stopping).await
        }
    }
}

/// Waits for one connection from `accept`, handling `control` meanwhile; None after
/// ShutdownMicroprocess. A failed accept (out of descriptors and the like) is said and tried
/// again after a pause.
async fn accept_one<T, F, Fut>(watch: &mut ControlWatch<'_>, mut accept: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::io::Result<T>>,
{
    loop {
        tokio::select! {
            c = watch.control().recv() => {
                watch.handle(c).await;
                if watch.shutdown_requested() {
                    return None;
                }
            }
            r = accept() => match r {
                Ok(ok) => return Some(ok),
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}
