//! Small loopback servers for tests. Each binds port 0 and stops when its handle is dropped.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::AbortOnDrop;

/// A running test server; dropping it stops the server and its connections.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    _task: AbortOnDrop<()>,
}

/// What a sink read from its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkReport {
    /// Bytes read before EOF or an error.
    pub bytes: u64,
    /// SHA-256 of those bytes.
    pub sha256: [u8; 32],
    /// The error that ended the connection, if it did not end with EOF.
    pub error: Option<io::ErrorKind>,
}

/// Accepts one connection on 127.0.0.1, reads it to the end and reports what it read.
pub async fn sink_server() -> (TestServer, oneshot::Receiver<SinkReport>) {
    sink_server_on("127.0.0.1:0").await
}

/// [`sink_server`], bound to `bind` (e.g. `"[::1]:0"`).
pub async fn sink_server_on(bind: &str) -> (TestServer, oneshot::Receiver<SinkReport>) {
    reading_server(bind, None).await
}

/// A sink that reads `chunk` bytes at a time with a pause after each read, so its peer meets
/// backpressure.
pub async fn slow_reader_server(
    chunk: usize,
    pause: Duration,
) -> (TestServer, oneshot::Receiver<SinkReport>) {
    reading_server("127.0.0.1:0", Some((chunk, pause))).await
}

/// Echoes every connection on 127.0.0.1 until its peer closes.
pub async fn echo_server() -> TestServer {
    echo_server_on("127.0.0.1:0").await
}

/// [`echo_server`], bound to `bind` (e.g. `"[::1]:0"`).
pub async fn echo_server_on(bind: &str) -> TestServer {
    serve_each(bind, |stream| async move {
        let _ = echo(stream).await;
    })
    .await
}

/// Speaks TLS from the first byte with `config` and echoes the decrypted bytes.
pub async fn tls_echo_server(config: Arc<ServerConfig>) -> TestServer {
    let acceptor = TlsAcceptor::from(config);
    serve_each("127.0.0.1:0", move |stream| {
        let acceptor = acceptor.clone();
        async move {
            if let Ok(tls) = acceptor.accept(stream).await {
                let _ = echo(tls).await;
            }
        }
    })
    .await
}

/// Sends `greeting` as soon as a client connects, then echoes.
pub async fn speaks_first_server(greeting: Vec<u8>) -> TestServer {
    let greeting = Arc::new(greeting);
    serve_each("127.0.0.1:0", move |mut stream| {
        let greeting = Arc::clone(&greeting);
        async move {
            if stream.write_all(&greeting).await.is_ok() {
                let _ = echo(stream).await;
            }
        }
    })
    .await
}

/// Answers the first bytes it reads with `reply` in plaintext (as an HTTP server answers a TLS
/// ClientHello), then keeps the connection open until the peer closes.
pub async fn plaintext_server(reply: &'static [u8]) -> TestServer {
    serve_each("127.0.0.1:0", move |mut stream| async move {
        let mut buf = [0u8; 4096];
        if matches!(stream.read(&mut buf).await, Ok(n) if n > 0)
            && stream.write_all(reply).await.is_ok()
        {
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
        }
    })
    .await
}

/// Accepts and reads, never writes: a handshake against it can only time out.
pub async fn silent_server() -> TestServer {
    serve_each("127.0.0.1:0", |mut stream| async move {
        let mut buf = [0u8; 4096];
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await
}

/// Accepts one connection on 127.0.0.1 and runs `peer` on it: a peer written in the test.
/// Returns the port and the peer's task, aborted when dropped; await its `.0` for what `peer`
/// returned, so that the peer's own assertions count.
pub async fn accept_one<F, Fut, T>(peer: F) -> (u16, AbortOnDrop<T>)
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        peer(stream).await
    });
    (port, AbortOnDrop(task))
}

/// Runs `handle` on every connection accepted on `bind`.
async fn serve_each<F, Fut>(bind: &str, handle: F) -> TestServer
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            connections.spawn(handle(stream));
        }
    });
    TestServer {
        addr,
        _task: AbortOnDrop(task),
    }
}

async fn reading_server(
    bind: &str,
    slow: Option<(usize, Duration)>,
) -> (TestServer, oneshot::Receiver<SinkReport>) {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (report_tx, report_rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        let mut buf = vec![0u8; slow.map_or(64 * 1024, |(chunk, _)| chunk.max(1))];
        let error = loop {
            match stream.read(&mut buf).await {
                Ok(0) => break None,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    bytes += n as u64;
                }
                Err(err) => break Some(err.kind()),
            }
            if let Some((_, pause)) = slow {
                tokio::time::sleep(pause).await;
            }
        };
        let _ = report_tx.send(SinkReport {
            bytes,
            sha256: hasher.finalize().into(),
            error,
        });
    });
    (
        TestServer {
            addr,
            _task: AbortOnDrop(task),
        },
        report_rx,
    )
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> io::Result<u64> {
    let (mut read, mut write) = tokio::io::split(stream);
    let copied = tokio::io::copy(&mut read, &mut write).await?;
    write.shutdown().await?;
    Ok(copied)
}
