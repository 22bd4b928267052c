//! A loopback TCP proxy that injects faults: 1-byte fragments, per-chunk delays, a reset after
//! N bytes, a stall after N bytes until released; and [`TunnelProxy`], a working HTTP CONNECT
//! or SOCKS5 proxy written for the tests.
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

/// Which protocol a [`TunnelProxy`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelKind {
    /// HTTP CONNECT; with credentials, `Proxy-Authorization: Basic` is required (407 otherwise).
    Http,
    /// SOCKS5; with credentials, username/password (RFC 1929) is required.
    Socks5,
}

/// A working proxy written for the tests, independent of the library's handshake code: it reads
/// the client's handshake, records it, checks the credentials if it has some, connects to the
/// target the client named (resolving names itself) and relays both ways, half-closes
/// included. Dropping it stops it and its connections.
pub struct TunnelProxy {
    addr: SocketAddr,
    seen: Arc<std::sync::Mutex<Vec<Seen>>>,
    _task: AbortOnDrop<()>,
}

/// What a [`TunnelProxy`] received from one client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// The HTTP request head, or the SOCKS5 messages concatenated, byte for byte.
    pub handshake: Vec<u8>,
    /// The target the client asked for, `host:port` (IPv6 in brackets).
    pub target: String,
}

impl TunnelProxy {
    /// Listens on 127.0.0.1 (port 0); `credentials` (user, password) are required if given.
    pub async fn start(kind: TunnelKind, credentials: Option<(&str, &str)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let creds = credentials.map(|(u, p)| (u.to_string(), p.to_string()));
        let task_seen = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            let accept_loop = async {
                while let Ok((client, _)) = listener.accept().await {
                    connections.spawn(tunnel(client, kind, creds.clone(), task_seen.clone()));
                }
            };
            let _ = tokio::time::timeout(PROXY_LIFETIME, accept_loop).await;
        });
        TunnelProxy {
            addr,
            seen,
            _task: AbortOnDrop(task),
        }
    }

    /// The address to connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What each client sent, in the order they finished their handshakes.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// One client of a [`TunnelProxy`]: handshake, then relay. Errors end the connection.
async fn tunnel(
    mut client: TcpStream,
    kind: TunnelKind,
    creds: Option<(String, String)>,
    seen: Arc<std::sync::Mutex<Vec<Seen>>>,
) {
    let mut record = Seen::default();
    let target = match kind {
        TunnelKind::Http => http_handshake(&mut client, creds.as_ref(), &mut record).await,
        TunnelKind::Socks5 => socks_handshake(&mut client, creds.as_ref(), &mut record).await,
    };
    let Some(target) = target else {
        seen.lock().unwrap().push(record);
        return;
    };
    record.target = target.clone();
    seen.lock().unwrap().push(record);
    let host_port = target.trim_start_matches('[').replacen("]:", ":", 1);
    let (host, port) = host_port.rsplit_once(':').unwrap();
    let port: u16 = port.parse().unwrap();
    let Ok(mut upstream) = TcpStream::connect((host, port)).await else {
        let _ = match kind {
            TunnelKind::Http => client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await,
            TunnelKind::Socks5 => client.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await,
        };
        return;
    };
    let ok: &[u8] = match kind {
        TunnelKind::Http => b"HTTP/1.1 200 Connection established\r\nProxy-Agent: test\r\n\r\n",
        TunnelKind::Socks5 => &[5, 0, 0, 1, 127, 0, 0, 1, 0, 0],
    };
    if client.write_all(ok).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// Reads an HTTP CONNECT head; answers 407 or 400 itself, else returns the target.
async fn http_handshake(
    client: &mut TcpStream,
    creds: Option<&(String, String)>,
    record: &mut Seen,
) -> Option<String> {
    while !record.handshake.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        if client.read(&mut b).await.ok()? == 0 || record.handshake.len() > 65536 {
            return None;
        }
        record.handshake.push(b[0]);
    }
    let head = String::from_utf8_lossy(&record.handshake).into_owned();
    let target = head
        .strip_prefix("CONNECT ")
        .and_then(|r| r.split_once(' '))
        .map(|(t, _)| t.to_string());
    let Some(target) = target else {
        let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        return None;
    };
    if let Some((u, p)) = creds {
        let want = format!("Basic {}", base64_for_tests(format!("{u}:{p}").as_bytes()));
        let given = head.lines().any(|l| {
            l.split_once(':').is_some_and(|(name, value)| {
                name.eq_ignore_ascii_case("proxy-authorization") && value.trim() == want
            })
        });
        if !given {
            let _ = client
                .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\n\r\n")
                .await;
            return None;
        }
    }
    Some(target)
}

/// Reads a SOCKS5 greeting, authentication and CONNECT; answers refusals itself, else returns
/// the target.
async fn socks_handshake(
    client: &mut TcpStream,
    creds: Option<&(String, String)>,
    record: &mut Seen,
) -> Option<String> {
    async fn take(c: &mut TcpStream, n: usize, record: &mut Seen) -> Option<Vec<u8>> {
        let mut b = vec![0u8; n];
        c.read_exact(&mut b).await.ok()?;
        record.handshake.extend_from_slice(&b);
        Some(b)
    }
    let head = take(client, 2, record).await?;
    let methods = take(client, usize::from(head[1]), record).await?;
    let want = if creds.is_some() { 2 } else { 0 };
    if head[0] != 5 || !methods.contains(&want) {
        let _ = client.write_all(&[5, 0xff]).await;
        return None;
    }
    client.write_all(&[5, want]).await.ok()?;
    if let Some((u, p)) = creds {
        let ver_len = take(client, 2, record).await?;
        let user = take(client, usize::from(ver_len[1]), record).await?;
        let plen = take(client, 1, record).await?;
        let pass = take(client, usize::from(plen[0]), record).await?;
        if user != u.as_bytes() || pass != p.as_bytes() {
            let _ = client.write_all(&[1, 1]).await;
            return None;
        }
        client.write_all(&[1, 0]).await.ok()?;
    }
    let req = take(client, 4, record).await?;
    let host = match req[3] {
        1 => {
            let a = take(client, 4, record).await?;
            std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string()
        }
        4 => {
            let a: [u8; 16] = take(client, 16, record).await?.try_into().ok()?;
            format!("[{}]", std::net::Ipv6Addr::from(a))
        }
        3 => {
            let n = take(client, 1, record).await?;
            String::from_utf8(take(client, usize::from(n[0]), record).await?).ok()?
        }
        _ => {
            let _ = client.write_all(&[5, 8, 0, 1, 0, 0, 0, 0, 0, 0]).await;
            return None;
        }
    };
    let port = take(client, 2, record).await?;
    Some(format!("{host}:{}", u16::from_be_bytes([port[0], port[1]])))
}

/// Base64 (RFC 4648, padded), written here so the fake proxy does not share the library's.
pub fn base64_for_tests(input: &[u8]) -> String {
    let table: Vec<char> = ('A'..='Z')
        .chain('a'..='z')
        .chain('0'..='9')
        .chain(['+', '/'])
        .collect();
    let mut bits = String::new();
    for b in input {
        bits.push_str(&format!("{b:08b}"));
    }
    let mut out = String::new();
    for chunk in bits.as_bytes().chunks(6) {
        let mut s = String::from_utf8(chunk.to_vec()).unwrap();
        while s.len() < 6 {
            s.push('0');
        }
        out.push(table[usize::from_str_radix(&s, 2).unwrap()]);
    }
    while out.len() % 4 != 0 {
        out.push('=');
    }
    out
}
