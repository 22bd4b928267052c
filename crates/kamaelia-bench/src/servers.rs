//! The hand-written tokio servers every figure measures against: a sink, a pinger, an echo
//! server and a STARTTLS line echo. They serve the library's clients and the baselines
//! alike, so only the client side differs between the two.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Mutex};
use tokio_rustls::TlsAcceptor;

/// The size of the chunks the senders write and the readers read.
pub(crate) const CHUNK: usize = 64 * 1024;

/// How a server speaks on each connection.
#[derive(Clone)]
pub(crate) enum ServerTls {
    /// Plain TCP.
    Plain,
    /// TLS from the first byte.
    FromStart(Arc<ServerConfig>),
}

/// What a server reports per connection, in the order connections end.
pub(crate) struct Reports<T> {
    rx: Mutex<mpsc::UnboundedReceiver<io::Result<T>>>,
}

impl<T> Reports<T> {
    fn new() -> (mpsc::UnboundedSender<io::Result<T>>, Self) {
        let (tx, rx) = mpsc::unbounded_channel();
        (tx, Reports { rx: Mutex::new(rx) })
    }

    /// Forgets reports from earlier connections (a failed probe, say).
    pub(crate) async fn drain(&self) {
        let mut rx = self.rx.lock().await;
        while rx.try_recv().is_ok() {}
    }

    /// The next connection's report, within `limit`.
    pub(crate) async fn next(&self, limit: Duration) -> Result<T> {
        let mut rx = self.rx.lock().await;
        match tokio::time::timeout(limit, rx.recv()).await {
            Err(_) => Err(anyhow!("no connection ended within {limit:?}")),
            Ok(None) => Err(anyhow!("the server stopped")),
            Ok(Some(r)) => Ok(r?),
        }
    }
}

/// Reads every connection to its end and reports how many bytes came (a `discard` server).
pub(crate) async fn sink(tls: ServerTls) -> Result<(SocketAddr, Reports<u64>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, reports) = Reports::new();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let (tx, tls) = (tx.clone(), tls.clone());
            tokio::spawn(async move {
                let _ = tx.send(sink_connection(s, tls).await);
            });
        }
    });
    Ok((addr, reports))
}

async fn sink_connection(s: TcpStream, tls: ServerTls) -> io::Result<u64> {
    match tls {
        ServerTls::Plain => count_to_end(s).await,
        ServerTls::FromStart(config) => {
            count_to_end(TlsAcceptor::from(config).accept(s).await?).await
        }
    }
}

/// Plays `round_trips` 64-byte ping-pongs on every connection, timing each, then closes and
/// reports the round-trip times in microseconds.
pub(crate) async fn pinger(round_trips: usize) -> Result<(SocketAddr, Reports<Vec<f64>>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, reports) = Reports::new();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(ping_pong(s, round_trips).await);
            });
        }
    });
    Ok((addr, reports))
}

async fn ping_pong(mut s: TcpStream, round_trips: usize) -> io::Result<Vec<f64>> {
    s.set_nodelay(true)?;
    let ping = [0x70_u8; 64];
    let mut pong = [0_u8; 64];
    let mut rtts = Vec::with_capacity(round_trips);
    for _ in 0..round_trips {
        let t = Instant::now();
        s.write_all(&ping).await?;
        s.read_exact(&mut pong).await?;
        rtts.push(t.elapsed().as_secs_f64() * 1e6);
    }
    s.shutdown().await?;
    count_to_end(s).await?;
    Ok(rtts)
}

/// Sends back everything it receives, with TCP_NODELAY (an `echo` server).
pub(crate) async fn echo() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = s.set_nodelay(true);
                let mut buf = vec![0_u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = s.shutdown().await;
            });
        }
    });
    Ok(addr)
}

/// Figure 7's server: a plaintext line, `OK\n`, the TLS handshake, then one line echoed over
/// TLS; then it reads to the end.
pub(crate) async fn starttls_echo(config: Arc<ServerConfig>) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let config = config.clone();
            tokio::spawn(async move {
                let _ = starttls_session(s, config).await;
            });
        }
    });
    Ok(addr)
}

async fn starttls_session(mut s: TcpStream, config: Arc<ServerConfig>) -> io::Result<()> {
    read_line(&mut s).await?;
    s.write_all(b"OK\n").await?;
    let mut t = TlsAcceptor::from(config).accept(s).await?;
    let line = read_line(&mut t).await?;
    t.write_all(&line).await?;
    t.flush().await?;
    count_to_end(&mut t).await?;
    t.shutdown().await
}

/// Reads until a newline; the peer sends nothing more until it has an answer, so nothing past
/// the line is read.
pub(crate) async fn read_line<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut buf = [0_u8; 256];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        line.extend_from_slice(&buf[..n]);
        if line.ends_with(b"\n") {
            return Ok(line);
        }
    }
}

/// Reads to the end with a 256 KiB buffer and counts; a TLS peer closing without close_notify
/// still counts as the end.
pub(crate) async fn count_to_end<R: AsyncRead + Unpin>(mut r: R) -> io::Result<u64> {
    let mut buf = vec![0_u8; 4 * CHUNK];
    let mut total = 0;
    loop {
        match r.read(&mut buf).await {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(total),
            Err(e) => return Err(e),
        }
    }
}
