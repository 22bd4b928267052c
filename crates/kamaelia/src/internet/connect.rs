//! Opening a TCP connection to a host name: resolution, Happy Eyeballs, one deadline.
//!
//! # How it works
//!
//! [`connect`] resolves the host with [`tokio::net::lookup_host`] (so the runtime is never
//! blocked; IP literals, bracketed or not, skip the resolver), keeps the addresses of the
//! requested [`Family`], and orders them as RFC 8305 section 4 asks: families interleaved,
//! starting with the family of the first address the resolver returned. Attempts then start one
//! after another, each [`CONNECTION_ATTEMPT_DELAY`] after the previous one started, or at once
//! when the previous one fails. The first attempt to succeed wins and the others are dropped,
//! which closes their sockets. One deadline bounds resolution and every attempt.
//!
//! # Errors
//!
//! When every attempt fails the error reported is the most informative one: a refusal (the host
//! is there, the port is closed) over an unusual local error over an unreachable network. See
//! [`ConnectError`].

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::future::{Either, FutureExt};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, Instant};

/// How long an attempt runs alone before the next address is tried too (RFC 8305 section 5
/// recommends 250 ms).
pub const CONNECTION_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Which address family [`connect`] may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Family {
    /// IPv4 and IPv6, raced by Happy Eyeballs.
    #[default]
    Any,
    /// IPv4 addresses only.
    V4,
    /// IPv6 addresses only.
    V6,
}

impl Family {
    /// Whether `addr` belongs to this family.
    pub fn matches(self, addr: &SocketAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => addr.is_ipv4(),
            Family::V6 => addr.is_ipv6(),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Any => "any",
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// Why [`connect`] could not open a connection.
///
/// `Clone` so it can travel in messages; the underlying [`io::Error`]s are shared.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ConnectError {
    /// The resolver failed: the name does not exist or no resolver answered.
    Resolve {
        /// The host name as given.
        host: String,
        /// The resolver's error.
        source: Arc<io::Error>,
    },
    /// The name resolved, but to no address of the requested family.
    NoAddresses {
        /// The host name as given.
        host: String,
        /// The family that was asked for.
        family: Family,
    },
    /// Every attempt was refused, or at least one was and the others failed less informatively.
    Refused {
        /// The first address that refused.
        addr: SocketAddr,
    },
    /// The deadline passed before resolution and an attempt completed.
    TimedOut {
        /// The host name as given.
        host: String,
        /// The port.
        port: u16,
        /// The deadline that passed.
        after: Duration,
    },
    /// No route to the network or host of every address tried.
    Unreachable {
        /// The first unreachable address.
        addr: SocketAddr,
        /// The operating system's error.
        source: Arc<io::Error>,
    },
    /// An attempt failed for another reason (permissions, no local address, ...).
    Other {
        /// The address being connected to.
        addr: SocketAddr,
        /// The operating system's error.
        source: Arc<io::Error>,
    },
    /// The task connecting ended without an answer: it panicked, or the runtime it ran on
    /// (the [`super::Selector`]'s) shut down; or a client that connects on a selector's
    /// runtime could not find or make the selector. No address was connected to.
    Interrupted {
        /// The host name as given.
        host: String,
        /// The port.
        port: u16,
        /// Why the task ended.
        reason: String,
    },
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Resolve { host, .. } => write!(f, "could not resolve host {host:?}"),
            ConnectError::NoAddresses { host, family } => {
                write!(f, "host {host:?} has no {family} address")
            }
            ConnectError::Refused { addr } => write!(f, "connection to {addr} refused"),
            ConnectError::TimedOut { host, port, after } => {
                write!(f, "connecting to {host}:{port} timed out after {after:?}")
            }
            ConnectError::Unreachable { addr, .. } => write!(f, "{addr} is unreachable"),
            ConnectError::Other { addr, .. } => write!(f, "could not connect to {addr}"),
            ConnectError::Interrupted { host, port, reason } => {
                write!(f, "connecting to {host}:{port} was interrupted: {reason}")
            }
        }
    }
}

impl StdError for ConnectError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            ConnectError::Resolve { source, .. }
            | ConnectError::Unreachable { source, .. }
            | ConnectError::Other { source, .. } => Some(source.as_ref()),
            ConnectError::NoAddresses { .. }
            | ConnectError::Refused { .. }
            | ConnectError::TimedOut { .. }
            | ConnectError::Interrupted { .. } => None,
        }
    }
}

/// Connects to `host`:`port`, trying every address of `family` (Happy Eyeballs when both
/// families are allowed), all within `timeout`.
///
/// `host` is a name or an IP literal; an IPv6 literal may be bracketed (`"[::1]"`). Returns the
/// stream and the address it connected to.
pub fn connect(
    host: &str,
    port: u16,
    family: Family,
    timeout: Duration,
) -> impl Future<Output = Result<(TcpStream, SocketAddr), ConnectError>> + Send + '_ {
    // An IP literal of the family asked for has one address and no resolver: it is tried
    // in this future, and the state of a resolution and a race is boxed for the names that
    // need it. A burst of callers holds this future all at once, and each frees it once
    // connected (a freed block is a hole in the heap until something of its size comes), so
    // it is written to hold no more than the connect and its deadline. (TcpClient connects to
    // a literal in its own block instead, `tcp_client.rs`.)
    match literal_of(host, port, family) {
        // Lazy, as an `async fn` is: nothing (the clock, the timer) before the first poll, so
        // the future can be made outside a runtime and its deadline runs from when it starts.
        Some(addr) => Either::Left(
            futures_util::future::lazy(move |_| connect_literal(host, addr, timeout)).flatten(),
        ),
        _ => Either::Right(Box::pin(connect_resolving(host, port, family, timeout))),
    }
}

/// [`connect`] to an IP literal's one address: a plain function, not an `async fn` (which
/// would hold its arguments twice, as arguments and as the locals they move to).
fn connect_literal(
    host: &str,
    addr: SocketAddr,
    timeout: Duration,
) -> impl Future<Output = Result<(TcpStream, SocketAddr), ConnectError>> + Send + '_ {
    let connected =
        move |r: io::Result<TcpStream>| r.map(|s| (s, addr)).map_err(|e| failed(addr, e));
    // A timeout too long for the clock (e.g. 1e19 s) is no deadline at all.
    match Instant::now().checked_add(timeout) {
        Some(deadline) => Either::Left(tokio::time::timeout_at(deadline, connect_one(addr)).map(
            move |r| match r {
                Ok(r) => connected(r),
                Err(_elapsed) => Err(ConnectError::TimedOut {
                    host: host.to_owned(),
                    port: addr.port(),
                    after: timeout,
                }),
            },
        )),
        None => Either::Right(connect_one(addr).map(connected)),
    }
}

/// [`connect`] by resolving `host` (any name, or a literal of another family than asked).
async fn connect_resolving(
    host: &str,
    port: u16,
    family: Family,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), ConnectError> {
    // A timeout too long for the clock (e.g. 1e19 s) is no deadline at all.
    let deadline = Instant::now().checked_add(timeout);
    let attempt = async {
        let addrs = resolve(host, port).await?;
        let addrs: Vec<SocketAddr> = addrs.into_iter().filter(|a| family.matches(a)).collect();
        if addrs.is_empty() {
            return Err(ConnectError::NoAddresses {
                host: host.to_owned(),
                family,
            });
        }
        // One address (an IP literal, or a name with one address) has nothing to race: the
        // race's state (its timer, the attempts in flight) is boxed, for the names that need
        // it, so that a connect in progress, which a burst of clients holds all at once, is
        // small.
        match addrs[..] {
            [addr] => attempt(addr)
                .await
                .1
                .map(|s| (s, addr))
                .map_err(|e| most_informative(vec![(addr, e)])),
            _ => Box::pin(race(&interleave(addrs), CONNECTION_ATTEMPT_DELAY)).await,
        }
    };
    let Some(deadline) = deadline else {
        return attempt.await;
    };
    match tokio::time::timeout_at(deadline, attempt).await {
        Ok(result) => result,
        Err(_elapsed) => Err(ConnectError::TimedOut {
            host: host.to_owned(),
            port,
            after: timeout,
        }),
    }
}

/// Connects to the first of `addrs` to answer, in the order given, staggered by
/// [`CONNECTION_ATTEMPT_DELAY`], all within `timeout`.
///
/// For callers that resolved the addresses themselves; [`connect`] is this after resolution
/// and RFC 8305 ordering. A timeout is reported against the first address; an empty `addrs`
/// gives [`ConnectError::NoAddresses`].
pub async fn connect_addrs(
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), ConnectError> {
    let Some(first) = addrs.first() else {
        return Err(ConnectError::NoAddresses {
            host: String::new(),
            family: Family::Any,
        });
    };
    match tokio::time::timeout(timeout, race(addrs, CONNECTION_ATTEMPT_DELAY)).await {
        Ok(result) => result,
        Err(_elapsed) => Err(ConnectError::TimedOut {
            host: first.ip().to_string(),
            port: first.port(),
            after: timeout,
        }),
    }
}

/// One attempt at `addr`: a socket of its family, connected. The socket is made here, so this
/// is called where the attempt starts: in a future's poll, on the runtime whose reactor is to
/// wait for it (an `async fn`'s body, a `lazy`).
pub(super) fn connect_one(
    addr: SocketAddr,
) -> Either<Connecting, std::future::Ready<io::Result<TcpStream>>> {
    match start_connect(addr) {
        Ok(stream) => Either::Left(Connecting::new(stream)),
        Err(e) => Either::Right(std::future::ready(Err(e))),
    }
}

/// A connect started by [`start_connect`], waited for: the stream once it is writable (the
/// connect has finished, either way) and reports no error. Written by hand: the system calls
/// of `TcpSocket::connect`'s future, in 40 bytes (the stream, while it is waited for) where
/// that future (in a lazy start) was 104. A burst of connecting clients holds one each, and a TcpClient holds it in
/// the block its connection then lives in, so that block is the larger of the two. (A
/// `TcpStream::connect`, which takes a list of addresses, was 168.)
pub(super) struct Connecting(Option<TcpStream>);

impl Connecting {
    pub(super) fn new(stream: TcpStream) -> Connecting {
        Connecting(Some(stream))
    }
}

impl Future for Connecting {
    type Output = io::Result<TcpStream>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = &mut self.get_mut().0;
        let Some(stream) = this else {
            return Poll::Ready(Err(io::Error::other(
                "a connection attempt polled after it finished",
            )));
        };
        let failed = match std::task::ready!(stream.poll_write_ready(cx)) {
            Err(e) => Some(e),
            Ok(()) => stream.take_error().unwrap_or_else(Some),
        };
        Poll::Ready(match (failed, this.take()) {
            (Some(e), _) => Err(e),
            (None, Some(stream)) => Ok(stream),
            // Not reached: `this` held the stream just above.
            (None, None) => Err(io::Error::other("a connection attempt lost its socket")),
        })
    }
}

/// Starts a connect to `addr` as `TcpSocket::connect` does: a non-blocking socket (close on
/// exec), `connect` (in progress, or done), the socket registered with this runtime's reactor
/// (so it is called in a future's poll). [`Connecting`] waits for it to finish.
pub(super) fn start_connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM.nonblocking(),
        Some(socket2::Protocol::TCP),
    )?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    TcpStream::from_std(socket.into())
}

/// What [`connect`] reports when its one attempt, at `addr`, failed with `e`.
pub(super) fn failed(addr: SocketAddr, e: io::Error) -> ConnectError {
    most_informative(vec![(addr, e)])
}

/// `host`'s address if it is an IP literal of `family`: [`connect`] tries it without a
/// resolver.
pub(super) fn literal_of(host: &str, port: u16, family: Family) -> Option<SocketAddr> {
    literal(host, port).filter(|addr| family.matches(addr))
}

/// `host`'s address if it is an IP literal (an IPv6 one bracketed or not).
fn literal(host: &str, port: u16) -> Option<SocketAddr> {
    bare(host)
        .parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, port))
}

/// `host` without the brackets of an IPv6 literal.
fn bare(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Resolves `host` without blocking the runtime; IP literals never reach the resolver.
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, ConnectError> {
    if let Some(addr) = literal(host, port) {
        return Ok(vec![addr]);
    }
    let bare = bare(host);
    match tokio::net::lookup_host((bare, port)).await {
        Ok(addrs) => Ok(addrs.collect()),
        Err(source) => Err(ConnectError::Resolve {
            host: host.to_owned(),
            source: Arc::new(source),
        }),
    }
}

/// Orders addresses as RFC 8305 section 4 asks: duplicates removed, families alternating,
/// starting with the family of the first address, order within a family kept.
fn interleave(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let mut unique: Vec<SocketAddr> = Vec::with_capacity(addrs.len());
    for addr in addrs {
        if !unique.contains(&addr) {
            unique.push(addr);
        }
    }
    let Some(first_is_v6) = unique.first().map(SocketAddr::is_ipv6) else {
        return unique;
    };
    let (primary, secondary): (Vec<_>, Vec<_>) =
        unique.into_iter().partition(|a| a.is_ipv6() == first_is_v6);
    let mut ordered = Vec::with_capacity(primary.len() + secondary.len());
    let mut primary = primary.into_iter();
    let mut secondary = secondary.into_iter();
    loop {
        match (primary.next(), secondary.next()) {
            (None, None) => return ordered,
            (p, s) => ordered.extend(p.into_iter().chain(s)),
        }
    }
}

/// One connection attempt, labelled with its address.
async fn attempt(addr: SocketAddr) -> (SocketAddr, io::Result<TcpStream>) {
    (addr, connect_one(addr).await)
}

/// Races connection attempts to `addrs` (tried in order, `stagger` apart or at once after a
/// failure) and returns the first success; losers are dropped. Has no deadline of its own.
async fn race(
    addrs: &[SocketAddr],
    stagger: Duration,
) -> Result<(TcpStream, SocketAddr), ConnectError> {
    let mut remaining = addrs.iter().copied();
    let mut in_flight = FuturesUnordered::new();
    let mut failures: Vec<(SocketAddr, io::Error)> = Vec::new();
    let mut next_start = Instant::now();
    let mut timer = pin!(sleep_until(next_start));
    let mut exhausted = false;

    loop {
        if !exhausted && (in_flight.is_empty() || Instant::now() >= next_start) {
            match remaining.next() {
                Some(addr) => {
                    in_flight.push(attempt(addr));
                    next_start = Instant::now() + stagger;
                    timer.as_mut().reset(next_start);
                }
                None => exhausted = true,
            }
            continue;
        }
        if in_flight.is_empty() {
            return Err(most_informative(failures));
        }
        tokio::select! {
            Some((addr, result)) = in_flight.next() => match result {
                Ok(stream) => return Ok((stream, addr)),
                Err(err) => {
                    failures.push((addr, err));
                    // RFC 8305 section 5: a failure starts the next attempt without waiting.
                    next_start = Instant::now();
                }
            },
            () = &mut timer, if !exhausted => {}
        }
    }
}

/// How informative a failed attempt is; higher wins.
fn rank(err: &io::Error) -> u8 {
    match classify_io(err) {
        Failure::Refused => 3,
        Failure::Other => 2,
        Failure::Unreachable => 1,
    }
}

/// What an attempt's error means to a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Refused,
    Unreachable,
    Other,
}

fn classify_io(err: &io::Error) -> Failure {
    // `HostUnreachable` and `NetworkUnreachable` are stable since Rust 1.83, before the
    // crate's rust-version (1.86).
    match err.kind() {
        io::ErrorKind::ConnectionRefused => Failure::Refused,
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => Failure::Unreachable,
        _ => Failure::Other,
    }
}

/// Picks the failure to report: the best-ranked, the earliest among equals.
fn most_informative(failures: Vec<(SocketAddr, io::Error)>) -> ConnectError {
    let mut best: Option<(SocketAddr, io::Error)> = None;
    for (addr, err) in failures {
        let better = match &best {
            Some((_, kept)) => rank(&err) > rank(kept),
            None => true,
        };
        if better {
            best = Some((addr, err));
        }
    }
    let Some((addr, err)) = best else {
        // `race` only reports failures after starting at least one attempt; an empty address
        // list is rejected before it.
        return ConnectError::NoAddresses {
            host: String::new(),
            family: Family::Any,
        };
    };
    match classify_io(&err) {
        Failure::Refused => ConnectError::Refused { addr },
        Failure::Unreachable => ConnectError::Unreachable {
            addr,
            source: Arc::new(err),
        },
        Failure::Other => ConnectError::Other {
            addr,
            source: Arc::new(err),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The connect to an IP literal, which a burst of clients holds all at once, holds the
    /// attempt and its deadline and little else (the resolver and the race are boxed; no
    /// argument is held twice; one address, not `TcpStream::connect`'s list; the attempt
    /// written by hand, [`Connecting`], 40 bytes where `TcpSocket::connect`'s was 104): 256
    /// bytes in a debug build since session 12, 336 (312 in a release build) before, 376
    /// before that, 520 before that. The bound is a debug build's layout, below the 336 bytes
    /// before (fails on that code).
    #[tokio::test]
    async fn a_connect_to_an_ip_literal_is_small() {
        // Made outside any runtime, as an `async fn`'s future can be: nothing happens before
        // its first poll.
        let made = std::thread::spawn(|| {
            drop(connect("127.0.0.1", 1, Family::Any, Duration::from_secs(1)));
        });
        assert!(
            made.join().is_ok(),
            "connect() did work before its first poll"
        );
        let f = connect("127.0.0.1", 1, Family::Any, Duration::from_secs(1));
        let size = std::mem::size_of_val(&f);
        let one = std::mem::size_of::<Connecting>();
        eprintln!("connect: {size} bytes, one attempt {one}");
        assert!(one <= 40, "one attempt: {one} bytes");
        assert!(size <= 256, "connect: {size} bytes");
    }
    use std::future::Future;
    use tokio::net::{TcpListener, TcpSocket};

    #[test]
    fn unreachable_hosts_and_networks_are_told_by_their_error_kind() {
        let kind = |k: io::ErrorKind| classify_io(&io::Error::from(k));
        assert_eq!(kind(io::ErrorKind::ConnectionRefused), Failure::Refused);
        assert_eq!(kind(io::ErrorKind::HostUnreachable), Failure::Unreachable);
        assert_eq!(
            kind(io::ErrorKind::NetworkUnreachable),
            Failure::Unreachable
        );
        assert_eq!(kind(io::ErrorKind::TimedOut), Failure::Other);
        // The raw errno, as a failed connect reports it (EHOSTUNREACH on Linux).
        #[cfg(target_os = "linux")]
        assert_eq!(
            classify_io(&io::Error::from_raw_os_error(113)),
            Failure::Unreachable
        );
    }

    const TEST_TIMEOUT: Duration = Duration::from_secs(10);

    async fn bounded<F: Future>(f: F) -> F::Output {
        tokio::time::timeout(TEST_TIMEOUT, f)
            .await
            .expect("test exceeded its time bound")
    }

    fn v4(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// A port on `ip` where nothing listens: bound, then released.
    async fn closed_port(ip: &str) -> SocketAddr {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        addr
    }

    /// A listener whose accept queue is full and never drained: Linux drops further SYNs, so a
    /// connect to it hangs. Keep the returned values alive for as long as it must hang.
    async fn hanging_listener() -> (SocketAddr, TcpListener, Vec<TcpStream>) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(v4("127.0.0.1:0")).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..16 {
            match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => fillers.push(stream),
                Ok(Err(err)) => panic!("filling the accept queue failed: {err}"),
                Err(_still_pending) => return (addr, listener, fillers),
            }
        }
        panic!("the accept queue never filled; this test needs Linux SYN-drop behaviour");
    }

    #[test]
    fn interleave_starts_with_the_first_family_and_alternates() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let input = vec![
            a("[::1]:1"),
            a("[::2]:1"),
            a("[::3]:1"),
            a("10.0.0.1:1"),
            a("[::1]:1"),
            a("10.0.0.2:1"),
        ];
        let expected = vec![
            a("[::1]:1"),
            a("10.0.0.1:1"),
            a("[::2]:1"),
            a("10.0.0.2:1"),
            a("[::3]:1"),
        ];
        assert_eq!(interleave(input), expected);

        let v4_first = vec![a("10.0.0.1:1"), a("[::1]:1"), a("10.0.0.2:1")];
        assert_eq!(
            interleave(v4_first),
            vec![a("10.0.0.1:1"), a("[::1]:1"), a("10.0.0.2:1")]
        );
        assert!(interleave(Vec::new()).is_empty());
    }

    #[test]
    fn refusal_outranks_other_errors() {
        let failures = vec![
            (
                v4("127.0.0.1:1"),
                io::Error::from(io::ErrorKind::PermissionDenied),
            ),
            (
                v4("127.0.0.1:2"),
                io::Error::from(io::ErrorKind::ConnectionRefused),
            ),
            (
                v4("127.0.0.1:3"),
                io::Error::from(io::ErrorKind::ConnectionRefused),
            ),
        ];
        match most_informative(failures) {
            ConnectError::Refused { addr } => assert_eq!(addr, v4("127.0.0.1:2")),
            other => panic!("expected refused, got {other:?}"),
        }
    }

    #[test]
    fn errors_display_lowercase_and_chain_sources() {
        let err = ConnectError::Other {
            addr: v4("127.0.0.1:9"),
            source: Arc::new(io::Error::from(io::ErrorKind::PermissionDenied)),
        };
        assert_eq!(err.to_string(), "could not connect to 127.0.0.1:9");
        assert!(err.source().is_some());
        let err = ConnectError::NoAddresses {
            host: "localhost".into(),
            family: Family::V6,
        };
        assert_eq!(err.to_string(), "host \"localhost\" has no IPv6 address");
        assert!(err.clone().source().is_none());
    }

    #[tokio::test]
    async fn connects_to_ipv4_loopback() {
        bounded(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let (_stream, addr) = connect("127.0.0.1", port, Family::Any, TEST_TIMEOUT)
                .await
                .unwrap();
            assert_eq!(addr, listener.local_addr().unwrap());
            let (_server, peer) = listener.accept().await.unwrap();
            assert!(peer.ip().is_loopback());
        })
        .await;
    }

    #[tokio::test]
    async fn connects_to_bracketed_ipv6_loopback() {
        bounded(async {
            let listener = TcpListener::bind("[::1]:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            for host in ["[::1]", "::1"] {
                let (_stream, addr) = connect(host, port, Family::Any, TEST_TIMEOUT)
                    .await
                    .unwrap();
                assert_eq!(addr, listener.local_addr().unwrap());
                listener.accept().await.unwrap();
            }
        })
        .await;
    }

    #[tokio::test]
    async fn family_filter_leaves_no_address() {
        bounded(async {
            let err = connect("::1", 1, Family::V4, TEST_TIMEOUT)
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    ConnectError::NoAddresses {
                        family: Family::V4,
                        ..
                    }
                ),
                "{err:?}"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn closed_port_is_refused() {
        bounded(async {
            let closed = closed_port("127.0.0.1").await;
            let err = connect("127.0.0.1", closed.port(), Family::Any, TEST_TIMEOUT)
                .await
                .unwrap_err();
            match err {
                ConnectError::Refused { addr } => assert_eq!(addr, closed),
                other => panic!("expected refused, got {other:?}"),
            }
        })
        .await;
    }

    #[tokio::test]
    async fn every_address_refused_reports_refused() {
        bounded(async {
            let addrs = [closed_port("127.0.0.1").await, closed_port("::1").await];
            let err = connect_addrs(&addrs, TEST_TIMEOUT).await.unwrap_err();
            match err {
                ConnectError::Refused { addr } => assert_eq!(addr, addrs[0]),
                other => panic!("expected refused, got {other:?}"),
            }
        })
        .await;
    }

    #[tokio::test]
    async fn refused_address_falls_through_at_once() {
        bounded(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let good = listener.local_addr().unwrap();
            let addrs = [closed_port("127.0.0.1").await, good];
            let started = Instant::now();
            let (_stream, addr) = connect_addrs(&addrs, TEST_TIMEOUT).await.unwrap();
            assert_eq!(addr, good);
            // A failure starts the next attempt without waiting out the stagger.
            assert!(
                started.elapsed() < CONNECTION_ATTEMPT_DELAY,
                "{:?}",
                started.elapsed()
            );
        })
        .await;
    }

    #[tokio::test]
    async fn hanging_address_is_overtaken_after_the_stagger() {
        bounded(async {
            let (hanging, _listener, _fillers) = hanging_listener().await;
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let good = listener.local_addr().unwrap();
            let started = Instant::now();
            let (_stream, addr) = connect_addrs(&[hanging, good], TEST_TIMEOUT).await.unwrap();
            let elapsed = started.elapsed();
            assert_eq!(addr, good);
            assert!(elapsed >= CONNECTION_ATTEMPT_DELAY, "{elapsed:?}");
            assert!(elapsed < CONNECTION_ATTEMPT_DELAY * 4, "{elapsed:?}");
        })
        .await;
    }

    #[tokio::test]
    async fn timeout_bounds_every_attempt() {
        bounded(async {
            let (hanging, _listener, _fillers) = hanging_listener().await;
            let timeout = Duration::from_millis(300);
            let started = Instant::now();
            let err = connect("127.0.0.1", hanging.port(), Family::V4, timeout)
                .await
                .unwrap_err();
            let elapsed = started.elapsed();
            match err {
                ConnectError::TimedOut { port, after, .. } => {
                    assert_eq!(port, hanging.port());
                    assert_eq!(after, timeout);
                }
                other => panic!("expected a timeout, got {other:?}"),
            }
            assert!(elapsed >= timeout, "{elapsed:?}");
            assert!(elapsed < timeout * 4, "{elapsed:?}");
        })
        .await;
    }

    #[tokio::test]
    async fn dual_stack_falls_back_to_the_family_that_listens() {
        bounded(async {
            // Only IPv6 listens on this port: whichever family comes first, the IPv4 attempt is
            // refused (or never needed) and the IPv6 one wins.
            let listener = TcpListener::bind("[::1]:0").await.unwrap();
            let good = listener.local_addr().unwrap();
            let refused = SocketAddr::new("127.0.0.1".parse().unwrap(), good.port());
            for addrs in [[refused, good], [good, refused]] {
                let ordered = interleave(addrs.to_vec());
                let (_stream, addr) = connect_addrs(&ordered, TEST_TIMEOUT).await.unwrap();
                assert_eq!(addr, good);
            }
        })
        .await;
    }

    #[tokio::test]
    async fn localhost_resolves_and_connects() {
        bounded(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let (_stream, addr) = connect("localhost", port, Family::V4, TEST_TIMEOUT)
                .await
                .unwrap();
            assert_eq!(addr, listener.local_addr().unwrap());
        })
        .await;
    }
}
