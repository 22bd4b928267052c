//! Unix domain sockets: [`UnixClient`] (a TcpClient for a socket path) and the listening
//! socket that [`super::SingleServer::bind_unix`] uses, on the same byte-stream
//! ConnectedSocketAdapter as TCP.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axon::{BoxDecl, Component, Context, ControlWatch, MainResult, CONTROL, INBOX, OUTBOX, SIGNAL};

use super::csa::{CsaOptions, Limits, OnFinish};
use super::messages::TcpError;
use super::selector::Selector;
use super::tcp_client::{announce, end_unconnected, run_connected, Boxes, ClientBoxes, Declared};
use super::DEFAULT_CONNECT_TIMEOUT;

/// The address a Unix socket's connection reports as its peer and local end in
/// [`super::Connected`] and in errors: `0.0.0.0:0`, since a Unix socket has no IP address
/// (the connection's messages carry a [`SocketAddr`]).
pub fn unix_peer() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
}

/// A Unix socket file this process made by listening: removed when dropped.
#[derive(Debug)]
pub(super) struct UnixSocketFile(PathBuf);

impl Drop for UnixSocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Listens on the Unix socket `path` (non-blocking). A file already there is refused, unless it
/// is a socket that nobody listens on (a connection to it is refused): that one is left over
/// from a server that ended, and is replaced.
pub(super) fn bind_unix(
    path: PathBuf,
) -> Result<(std::os::unix::net::UnixListener, UnixSocketFile), TcpError> {
    use std::os::unix::fs::FileTypeExt as _;
    let bind_err = |e: io::Error| TcpError::Bind {
        addr: path.display().to_string(),
        source: Arc::new(e),
    };
    if let Ok(meta) = std::fs::symlink_metadata(&path) {
        if !meta.file_type().is_socket() {
            return Err(bind_err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a file that is not a socket is already there",
            )));
        }
        match std::os::unix::net::UnixStream::connect(&path) {
            Ok(_) => {
                return Err(bind_err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another server is listening on it",
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(&path).map_err(bind_err)?;
            }
            Err(e) => return Err(bind_err(e)),
        }
    }
    let listener = std::os::unix::net::UnixListener::bind(&path).map_err(bind_err)?;
    listener.set_nonblocking(true).map_err(bind_err)?;
    Ok((listener, UnixSocketFile(path)))
}

/// Connects to the Unix socket `path` within `timeout`.
async fn connect_unix(path: &Path, timeout: Duration) -> Result<tokio::net::UnixStream, TcpError> {
    let failed = |e: io::Error| TcpError::UnixConnect {
        path: path.to_path_buf(),
        source: Arc::new(e),
    };
    match tokio::time::timeout(timeout, tokio::net::UnixStream::connect(path)).await {
        Ok(r) => r.map_err(failed),
        Err(_) => Err(failed(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {} s", timeout.as_secs_f64()),
        ))),
    }
}

/// A client of a Unix domain socket (socat's `UNIX-CONNECT`): a [`super::TcpClient`] whose
/// connection is to a socket path instead of a host and port, with the same boxes, messages
/// and half-close contract.
///
/// # Example
///
/// ```
/// use kamaelia::internet::UnixClient;
/// use kamaelia::Pipeline;
/// use tokio::io::AsyncReadExt;
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("unixclient-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("sock");
/// # let _ = std::fs::remove_file(&path);
/// let listener = tokio::net::UnixListener::bind(&path)?;
/// let server = tokio::spawn(async move {
///     let (mut s, _) = listener.accept().await.unwrap();
///     let mut got = Vec::new();
///     s.read_to_end(&mut got).await.unwrap();
///     got
/// });
/// let report = axon::Scheduler::new()
///     .run(async {
///         Pipeline::new([
///             kamaelia::util::OneShot::new(bytes::Bytes::from_static(b"hello")).into(),
///             UnixClient::new(&path).into(),
///         ])
///         .expect("wiring")
///         .activate();
///     })
///     .await;
/// assert!(report.is_ok());
/// assert_eq!(server.await?, b"hello");
/// # std::fs::remove_file(&path)?;
/// # Ok(())
/// # }
/// ```
///
/// # How it works
///
/// When activated it connects to the path (within the connect timeout, honouring `control`
/// meanwhile), then runs the connection exactly as TcpClient does: itself, with its own boxes
/// (the [`super::ConnectedSocketAdapter`]'s loop over the Unix stream, without a component of
/// its own, so no `_socketFeedback` or `_csaControl` to wire one), a [`super::Connected`] notice (whose addresses are [`unix_peer`]: a Unix socket
/// has none), the connection's notices, one final message. There is no TLS over a Unix socket:
/// `makessl` is refused with an error and the connection carries on.
///
/// Its `inbox` and `outbox` are bounded in bytes by [`Limits`] (256 KiB each direction by
/// default), as are the connection's queues.
///
/// # Inboxes
///
/// | name | type | meaning |
/// |---|---|---|
/// | `inbox` | `Bytes` | data to send to the server |
/// | `control` | `Control` | ProducerFinished: send what is queued, then close; ShutdownMicroprocess: close now |
/// | `makessl` | [`super::MakeSsl`] | refused: no TLS over a Unix socket |
///
/// # Outboxes
///
/// | name | type | meaning |
/// |---|---|---|
/// | `outbox` | `Bytes` | data received from the server |
/// | `signal` | `Control` | Connected, errors, PeerHalfClosed, Transferred, then one final message |
/// | `sslready` | [`super::SslReady`] | never sent |
///
/// # Shutdown
///
/// As [`super::TcpClient`]: ProducerFinished sends what is queued and closes (or half-closes
/// with [`OnFinish::HalfClose`], or keeps the write side open with [`OnFinish::KeepOpen`]);
/// ShutdownMicroprocess closes promptly. The final message carries the [`super::HowDied`].
///
/// # Errors
///
/// [`TcpError::UnixConnect`] when the path cannot be connected to (no such file, refused,
/// permission, timed out); on the connection, as TcpClient.
#[derive(Clone, Debug)]
pub struct UnixClient {
    path: PathBuf,
    connect_timeout: Duration,
    on_finish: OnFinish,
    idle_timeout: Option<Duration>,
    limits: Limits,
}

/// The UnixClient's boxes: a TcpClient's.
const BOXES: ClientBoxes = ClientBoxes {
    inbox: BoxDecl::new(INBOX, "data to send to the server"),
    control: BoxDecl::new(
        CONTROL,
        "ProducerFinished: send what is queued, then close; ShutdownMicroprocess: close now",
    ),
    makessl: BoxDecl::new("makessl", "refused: no TLS over a Unix socket"),
    outbox: BoxDecl::new(OUTBOX, "data received from the server"),
    signal: BoxDecl::new(
        SIGNAL,
        "Connected, errors, PeerHalfClosed, Transferred, then one final message",
    ),
    sslready: BoxDecl::new("sslready", "never sent"),
};

impl UnixClient {
    /// A client for the Unix socket at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        UnixClient {
            path: path.into(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            on_finish: OnFinish::Close,
            idle_timeout: None,
            limits: Limits::default(),
        }
    }

    /// Gives up connecting after `timeout` (default 60 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// What ProducerFinished does (default [`OnFinish::Close`]).
    pub fn on_finish(mut self, on_finish: OnFinish) -> Self {
        self.on_finish = on_finish;
        self
    }

    /// Ends the connection with [`TcpError::IdleTimeout`] when no byte has moved either way
    /// for `timeout` (default `None`: never).
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

impl From<UnixClient> for Component {
    fn from(cfg: UnixClient) -> Component {
        let mut b = Component::build("UnixClient");
        let boxes = Boxes::declare(&mut b, &BOXES, cfg.limits);
        b.main(move |cx| run(cfg, boxes, cx))
    }
}

async fn run(cfg: UnixClient, b: Declared, cx: Context) -> MainResult {
    let label = cx.label().clone();
    let (selector, _) = Selector::get_or_create(cx.services())?;
    // Its `control` is watched from the start: made now (rare for a TcpClient, which polls it
    // by hand).
    let mut b = b.start(&cx);
    let mut watch = ControlWatch::new(b.control.inbox(&b.rare, CONTROL), &b.signal);
    let connecting = {
        let (path, timeout) = (cfg.path.clone(), cfg.connect_timeout);
        selector
            .handle()
            .spawn(async move { connect_unix(&path, timeout).await })
    };
    tokio::pin!(connecting);
    let stream = loop {
        tokio::select! {
            r = &mut connecting => break r,
            c = watch.control().recv() => {
                watch.handle(c).await;
                if watch.shutdown_requested() {
                    connecting.abort();
                    end_unconnected(&b, label, None).await;
                    return Ok(());
                }
            }
        }
    };
    let stream = match stream {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            end_unconnected(&b, label, Some(e)).await;
            return Ok(());
        }
        Err(join) => {
            let e = TcpError::UnixConnect {
                path: cfg.path.clone(),
                source: Arc::new(io::Error::other(join.to_string())),
            };
            end_unconnected(&b, label, Some(e)).await;
            return Ok(());
        }
    };
    let options = CsaOptions::default()
        .on_finish(cfg.on_finish)
        .idle_timeout(cfg.idle_timeout)
        .limits(cfg.limits);
    let stopping = watch.stopping();
    let peer = unix_peer();
    drop(cx);
    if let Some(wait) = announce(&b.signal, peer, peer) {
        wait.await;
    }
    run_connected(b, stream, peer, None, options, stopping).await
}
