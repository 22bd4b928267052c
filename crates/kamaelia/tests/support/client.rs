//! Driving a TcpClient from a test: standalone boxes wired to every one of its boxes, the
//! scheduler run on a task, and helpers to read its `signal` the way the contract says (any
//! number of errors and notices, then exactly one final message).
//!
//! Included by the `internet` tests and the client tests that run alone in their process
//! with `#[path = "support/client.rs"] mod client;`.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use axon::{Control, Handle, Inbox, Outbox, RunReport, Scheduler};
use bytes::Bytes;
use kamaelia::internet::{HowDied, TlsSettings, Trust};
use kamaelia::{MakeSsl, SslReady, TcpClient};
use rand::{Rng, RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use kamaelia_test::pki::TestPki;

/// A running TcpClient and the test's ends of its boxes.
pub struct Running {
    /// Feeds the client's `inbox`.
    pub input: Outbox<Bytes>,
    /// Feeds the client's `control`.
    pub control: Outbox<Control>,
    /// Feeds the client's `makessl`.
    pub makessl: Outbox<MakeSsl>,
    /// The client's `outbox`.
    pub out: Inbox<Bytes>,
    /// The client's `signal`.
    pub signal: Inbox<Control>,
    /// The client's `sslready`.
    pub sslready: Inbox<SslReady>,
    /// The client, for `stop()`.
    pub handle: Handle,
    /// The scheduler's run, which ends when the client has ended.
    pub done: JoinHandle<RunReport>,
}

/// How big the test's inboxes are, in messages.
pub const OUT_CAPACITY: usize = 64;

/// Wires `client` to standalone boxes and runs it on its own scheduler.
pub async fn start(client: TcpClient) -> Running {
    wire(client, OUT_CAPACITY).run().await
}

/// [`start`], with the test's `outbox` sink holding `out_capacity` messages.
pub async fn start_with(client: TcpClient, out_capacity: usize) -> Running {
    wire(client, out_capacity).run().await
}

/// A TcpClient wired to the test's boxes, not yet running: what is sent to its inboxes now
/// waits in them (up to their capacity) until it runs.
pub struct Wired {
    component: axon::Component,
    /// Feeds the client's `inbox`.
    pub input: Outbox<Bytes>,
    /// Feeds the client's `control`.
    pub control: Outbox<Control>,
    /// Feeds the client's `makessl`.
    pub makessl: Outbox<MakeSsl>,
    out: Inbox<Bytes>,
    signal: Inbox<Control>,
    sslready: Inbox<SslReady>,
}

/// Wires `client` (a TcpClient, or a component with its boxes) to standalone boxes without
/// running it.
pub fn wire(client: impl Into<axon::Component>, out_capacity: usize) -> Wired {
    let c: axon::Component = client.into();
    let input = Outbox::<Bytes>::standalone("feed");
    let control = Outbox::<Control>::standalone("control feed");
    let makessl = Outbox::<MakeSsl>::standalone("makessl feed");
    let out = Inbox::<Bytes>::standalone("out", out_capacity);
    let signal = Inbox::<Control>::standalone("signal", 4096);
    let sslready = Inbox::<SslReady>::standalone("sslready", 16);
    axon::link_refs(&input.boxref(), &c.boxref("inbox").unwrap()).unwrap();
    axon::link_refs(&control.boxref(), &c.boxref("control").unwrap()).unwrap();
    axon::link_refs(&makessl.boxref(), &c.boxref("makessl").unwrap()).unwrap();
    axon::link_refs(&c.boxref("outbox").unwrap(), &out.boxref()).unwrap();
    axon::link_refs(&c.boxref("signal").unwrap(), &signal.boxref()).unwrap();
    axon::link_refs(&c.boxref("sslready").unwrap(), &sslready.boxref()).unwrap();
    Wired {
        component: c,
        input,
        control,
        makessl,
        out,
        signal,
        sslready,
    }
}

impl Wired {
    /// Runs the client on its own scheduler, on a task.
    pub async fn run(self) -> Running {
        let Wired {
            component,
            input,
            control,
            makessl,
            out,
            signal,
            sslready,
        } = self;
        let (tx, rx) = oneshot::channel();
        let done = tokio::spawn(async move {
            Scheduler::new()
                .run(async move {
                    let _ = tx.send(component.activate());
                })
                .await
        });
        let handle = rx.await.unwrap();
        Running {
            input,
            control,
            makessl,
            out,
            signal,
            sslready,
            handle,
            done,
        }
    }
}

/// What the client's `signal` carried, in order, split at its one final message.
#[derive(Debug)]
pub struct Signals {
    /// Errors and notices, in order.
    pub before: Vec<Control>,
    /// The one final message.
    pub last: Control,
}

impl Signals {
    /// The errors of type `E`, in order.
    pub fn errors<E: std::error::Error + 'static>(&self) -> Vec<&E> {
        self.before
            .iter()
            .filter_map(|c| c.error_ref::<E>())
            .collect()
    }

    /// All `Control::Error`s, whatever their type.
    pub fn error_count(&self) -> usize {
        self.before
            .iter()
            .filter(|c| matches!(c, Control::Error(_)))
            .count()
    }

    /// The notices of payload type `P`.
    pub fn notices<P: 'static>(&self) -> Vec<&P> {
        self.before
            .iter()
            .filter(|c| matches!(c, Control::Notice(_)))
            .filter_map(|c| c.payload::<P>())
            .collect()
    }

    /// How the connection ended, from the final message's detail.
    pub fn how(&self) -> &HowDied {
        self.last
            .payload::<HowDied>()
            .unwrap_or_else(|| panic!("final message without HowDied: {:?}", self.last))
    }
}

impl Running {
    /// Waits for the `Connected` notice (other messages before it are dropped).
    pub async fn wait_connected(&self) {
        loop {
            let c = self.signal.recv().await;
            if c.payload::<kamaelia::internet::Connected>().is_some() {
                return;
            }
        }
    }

    /// Waits for the next message on `signal` that is not a notice of type `Connected`.
    pub async fn next_signal(&self) -> Control {
        loop {
            let c = self.signal.recv().await;
            if c.payload::<kamaelia::internet::Connected>().is_none() {
                return c;
            }
        }
    }

    /// Waits for the client (and its scheduler) to end, checks that the run reported no
    /// failure and that `signal` carried exactly one final message, last; returns it all.
    pub async fn finish(self) -> (Signals, Inbox<Bytes>) {
        let (signals, out, _) = self.finish_all().await;
        (signals, out)
    }

    /// [`Running::finish`], also handing back the `sslready` sink.
    pub async fn finish_all(self) -> (Signals, Inbox<Bytes>, Inbox<SslReady>) {
        let report = self.done.await.unwrap();
        assert!(report.is_ok(), "failures: {:?}", report.failures);
        let all: Vec<Control> = std::iter::from_fn(|| self.signal.try_recv()).collect();
        (split_signals(all), self.out, self.sslready)
    }

    /// [`Running::finish`], also collecting everything left on `outbox`.
    pub async fn finish_collect(self) -> (Signals, Vec<u8>) {
        let (signals, out) = self.finish().await;
        let mut got = Vec::new();
        while let Some(b) = out.try_recv() {
            got.extend_from_slice(&b);
        }
        (signals, got)
    }
}

/// Splits what a `signal` carried at its final message, checking there is exactly one, last.
pub fn split_signals(mut all: Vec<Control>) -> Signals {
    let finals = all.iter().filter(|c| c.is_final()).count();
    assert_eq!(finals, 1, "expected exactly one final message, got {all:?}");
    let last = all.pop().unwrap();
    assert!(
        last.is_final(),
        "the final message is not last: {all:?} then {last:?}"
    );
    Signals { before: all, last }
}

/// TLS settings trusting only `pki`'s CA.
pub fn trusting(pki: &TestPki) -> TlsSettings {
    TlsSettings::new().with_trust(Trust::Certificates(vec![pki.ca_der()]))
}

/// A seeded generator, so a failing run can be repeated (the seed is printed).
pub fn rng() -> rand::rngs::StdRng {
    let seed = rand::thread_rng().gen();
    eprintln!("rng seed {seed}");
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// `len` pseudo-random bytes seeded from `rng` (see [`kamaelia_test::random_bytes`]).
pub fn random_bytes(rng: &mut impl RngCore, len: usize) -> Bytes {
    kamaelia_test::random_bytes(rng.next_u64(), len).into()
}

/// Sends `data` into `input` in random-size pieces (1 byte to 128 KiB), as zero-copy slices.
pub async fn feed_random_chunks(input: &Outbox<Bytes>, data: Bytes, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut at = 0;
    while at < data.len() {
        let n = rng.gen_range(1..=128 * 1024).min(data.len() - at);
        input.send(data.slice(at..at + n)).await.unwrap();
        at += n;
    }
}

/// Reads `out` until `len` bytes have arrived; returns their SHA-256.
pub async fn hash_exactly(out: &Inbox<Bytes>, len: usize) -> [u8; 32] {
    let mut hasher = Sha256::new();
    let mut got = 0;
    while got < len {
        let b = out.recv().await;
        got += b.len();
        hasher.update(&b);
    }
    assert_eq!(got, len, "more bytes than expected");
    hasher.finalize().into()
}

/// The number of open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// This process's resident set size, in bytes (VmRSS).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmRSS value");
    kib * 1024
}

/// Polls `cond` every few milliseconds until it holds (for state with no event to wait on,
/// such as a kernel counter); the caller bounds it with a timeout.
pub async fn until(mut cond: impl FnMut() -> bool) {
    while !cond() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The path of example `name` (built here if `cargo test` has not built it).
pub fn example_bin(name: &str) -> Option<std::path::PathBuf> {
    Some(kamaelia_test::examples::example_bin("kamaelia", name))
}

/// A TLS server from the first byte that echoes, and sends `()` on the returned channel each
/// time a handshake completes.
pub async fn tls_echo_notifying(
    config: std::sync::Arc<rustls::ServerConfig>,
) -> (
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<()>,
    kamaelia_test::AbortOnDrop<()>,
) {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            conns.spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let _ = tx.send(());
                let (mut rd, mut wr) = tokio::io::split(tls);
                if tokio::io::copy(&mut rd, &mut wr).await.is_ok() {
                    let _ = wr.shutdown().await;
                }
            });
        }
    });
    (addr, rx, kamaelia_test::AbortOnDrop(task))
}

/// Checks that `bytes` is a sequence of whole TLS records (content types 20..=23, legacy
/// versions 3.1..=3.3) and returns how many; panics otherwise.
pub fn tls_records(bytes: &[u8]) -> usize {
    let mut at = 0;
    let mut n = 0;
    while at < bytes.len() {
        assert!(bytes.len() - at >= 5, "a truncated record header at {at}");
        let (ty, major, minor) = (bytes[at], bytes[at + 1], bytes[at + 2]);
        assert!(
            (20..=23).contains(&ty),
            "not a TLS record type at {at}: {ty}"
        );
        assert!(
            major == 3 && (1..=3).contains(&minor),
            "not a TLS version at {at}"
        );
        let len = u16::from_be_bytes([bytes[at + 3], bytes[at + 4]]) as usize;
        at += 5 + len;
        n += 1;
    }
    assert_eq!(at, bytes.len(), "the last record is truncated");
    n
}

/// The test harness's name for test `name` in the module `module` (its `module_path!()`): the
/// path without the crate's name, as `--exact` wants it.
pub fn test_name(module: &str, name: &str) -> String {
    match module.split_once("::") {
        Some((_crate, path)) => format!("{path}::{name}"),
        None => name.to_owned(),
    }
}

/// Runs `program args...` (which runs one test of this binary as a child) with
/// [`output_of`], and panics with its output unless that one test passed.
pub async fn child_test_passes(program: impl AsRef<std::ffi::OsStr>, args: &[&std::ffi::OsStr]) {
    let out = output_of(program, args).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `program args...` to completion off the runtime, killed by coreutils `timeout` if it
/// runs longer than the test bound.
pub async fn output_of(
    program: impl AsRef<std::ffi::OsStr>,
    args: &[&std::ffi::OsStr],
) -> std::process::Output {
    let mut cmd = std::process::Command::new("timeout");
    cmd.arg(format!("{}", kamaelia_test::TEST_TIMEOUT.as_secs()))
        .arg(program)
        .args(args)
        .env("KAMAELIA_CLIENT_CHILD", "1");
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("run the child process")
}
