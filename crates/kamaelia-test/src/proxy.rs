//! A loopback TCP proxy that injects faults: 1-byte fragments, per-chunk delays, a reset after
//! N bytes, a stall after N bytes until released.
//!
//! Each accepted connection gets its own upstream connection. The proxy stops when dropped or
//! after [`PROXY_LIFETIME`], whichever comes first, and takes its connections with it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::AbortOnDrop;

/// The longest a proxy runs, even if its test forgets it.
pub const PROXY_LIFETIME: Duration = Duration::from_secs(30);

/// Faults applied to the bytes flowing in one direction.
#[derive(Debug, Clone, Default)]
pub struct DirectionFaults {
    /// Forward one byte per write (with `TCP_NODELAY`, so the peer sees tiny segments).
    pub fragment: bool,
    /// Wait this long before every write.
    pub delay_per_chunk: Option<Duration>,
    /// After forwarding this many bytes, reset both sides (`SO_LINGER` 0, then close).
    pub reset_after: Option<u64>,
    /// After forwarding this many bytes, stop reading until [`FaultProxy::release`].
    pub stall_after: Option<u64>,
}

impl DirectionFaults {
    /// Forward one byte per write.
    pub fn fragment(mut self) -> Self {
        self.fragment = true;
        self
    }

    /// Wait `delay` before every write.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay_per_chunk = Some(delay);
        self
    }

    /// Reset the connection after `bytes`.
    pub fn reset_after(mut self, bytes: u64) -> Self {
        self.reset_after = Some(bytes);
        self
    }

    /// Stop reading after `bytes` until released.
    pub fn stall_after(mut self, bytes: u64) -> Self {
        self.stall_after = Some(bytes);
        self
    }
}

/// Faults for both directions.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Client to upstream.
    pub to_upstream: DirectionFaults,
    /// Upstream to client.
    pub to_client: DirectionFaults,
}

impl Faults {
    /// No faults: a plain relay.
    pub fn none() -> Self {
        Self::default()
    }

    /// These faults on the bytes the client sends.
    pub fn upstream(faults: DirectionFaults) -> Self {
        Self {
            to_upstream: faults,
            to_client: DirectionFaults::default(),
        }
    }

    /// These faults on the bytes the client receives.
    pub fn downstream(faults: DirectionFaults) -> Self {
        Self {
            to_upstream: DirectionFaults::default(),
            to_client: faults,
        }
    }
}

/// A running proxy; dropping it stops it and closes its connections.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _task: AbortOnDrop<()>,
}

struct Shared {
    release: watch::Sender<bool>,
    stalls: watch::Sender<u64>,
    resets: watch::Sender<u64>,
    to_upstream: AtomicU64,
    to_client: AtomicU64,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (port 0) and relays every connection to `upstream` with `faults`.
    pub async fn start(upstream: SocketAddr, faults: Faults) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            release: watch::Sender::new(false),
            stalls: watch::Sender::new(0),
            resets: watch::Sender::new(0),
            to_upstream: AtomicU64::new(0),
            to_client: AtomicU64::new(0),
        });
        let task_shared = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            let accept_loop = async {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        return;
                    };
                    connections.spawn(relay(
                        client,
                        upstream,
                        faults.clone(),
                        Arc::clone(&task_shared),
                    ));
                }
            };
            let _ = tokio::time::timeout(PROXY_LIFETIME, accept_loop).await;
            // Dropping `connections` here aborts every relay still running.
        });
        Self {
            addr,
            shared,
            _task: AbortOnDrop(task),
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Lets every stalled direction resume, now and for good.
    pub fn release(&self) {
        self.shared.release.send_replace(true);
    }

    /// Waits until `n` directions in total have reached their stall point.
    pub async fn wait_stalled(&self, n: u64) {
        let mut rx = self.shared.stalls.subscribe();
        let _ = rx.wait_for(|count| *count >= n).await;
    }

    /// Waits until `n` connections in total have been reset by the proxy.
    pub async fn wait_reset(&self, n: u64) {
        let mut rx = self.shared.resets.subscribe();
        let _ = rx.wait_for(|count| *count >= n).await;
    }

    /// Bytes forwarded so far from clients to the upstream.
    pub fn bytes_to_upstream(&self) -> u64 {
        self.shared.to_upstream.load(Ordering::SeqCst)
    }

    /// Bytes forwarded so far from the upstream to clients.
    pub fn bytes_to_client(&self) -> u64 {
        self.shared.to_client.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PumpEnd {
    /// The source finished; the destination got a FIN.
    Eof,
    /// A fault or an error: the whole connection is to be reset.
    Reset,
}

async fn relay(client: TcpStream, upstream: SocketAddr, faults: Faults, shared: Arc<Shared>) {
    let Ok(upstream) = TcpStream::connect(upstream).await else {
        let _ = client.set_zero_linger();
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let reset = {
        let up = pump(
            &mut client_read,
            &mut upstream_write,
            &faults.to_upstream,
            &shared.to_upstream,
            &shared,
        );
        let down = pump(
            &mut upstream_read,
            &mut client_write,
            &faults.to_client,
            &shared.to_client,
            &shared,
        );
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            tokio::select! {
                end = &mut up, if !up_done => {
                    up_done = true;
                    if end == PumpEnd::Reset { break true; }
                }
                end = &mut down, if !down_done => {
                    down_done = true;
                    if end == PumpEnd::Reset { break true; }
                }
            }
            if up_done && down_done {
                break false;
            }
        }
    };
    if reset {
        // Reunite rather than drop the halves: dropping a write half sends a FIN first, and
        // the peer would read a clean EOF before the reset.
        for (read, write) in [(client_read, client_write), (upstream_read, upstream_write)] {
            if let Ok(stream) = read.reunite(write) {
                let _ = stream.set_zero_linger();
            }
        }
        shared.resets.send_modify(|n| *n += 1);
    }
}

async fn pump(
    src: &mut OwnedReadHalf,
    dst: &mut OwnedWriteHalf,
    faults: &DirectionFaults,
    counter: &AtomicU64,
    shared: &Shared,
) -> PumpEnd {
    let mut buf = vec![0u8; 16 * 1024];
    let mut forwarded: u64 = 0;
    let mut stalled = false;
    loop {
        if let Some(limit) = faults.stall_after {
            if !stalled && forwarded >= limit {
                stalled = true;
                shared.stalls.send_modify(|n| *n += 1);
                let _ = shared
                    .release
                    .subscribe()
                    .wait_for(|released| *released)
                    .await;
            }
        }
        if faults.reset_after.is_some_and(|limit| forwarded >= limit) {
            return PumpEnd::Reset;
        }
        // Read no further than the next fault's threshold, so it triggers exactly there.
        let mut cap = buf.len() as u64;
        if let Some(limit) = faults.reset_after {
            cap = cap.min(limit - forwarded);
        }
        if let Some(limit) = faults.stall_after.filter(|_| !stalled) {
            cap = cap.min(limit - forwarded);
        }
        let cap = cap.max(1) as usize;
        let n = match src.read(&mut buf[..cap]).await {
            Ok(0) => {
                let _ = dst.shutdown().await;
                return PumpEnd::Eof;
            }
            Ok(n) => n,
            Err(_) => return PumpEnd::Reset,
        };
        let chunk_len = if faults.fragment { 1 } else { n };
        for chunk in buf[..n].chunks(chunk_len) {
            if let Some(delay) = faults.delay_per_chunk {
                tokio::time::sleep(delay).await;
            }
            if dst.write_all(chunk).await.is_err() {
                return PumpEnd::Reset;
            }
        }
        forwarded += n as u64;
        counter.fetch_add(n as u64, Ordering::SeqCst);
    }
}
