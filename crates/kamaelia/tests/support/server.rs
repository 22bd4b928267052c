//! Running a `TcpServer` under its own scheduler in a test, and plain clients for it.
//!
//! Included by the `internet` tests and the server tests that run alone in their process with
//! `#[path = "support/server.rs"] mod server;`.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;

use axon::{Control, Handle, Inbox, RunReport, Scheduler};
use kamaelia::internet::{Listening, TcpServer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Room for everything a server sends on `signal` in a test, so it never waits on us.
const SIGNAL_CAPACITY: usize = 100_000;

/// A server running under a scheduler of its own, with its `signal` collected.
pub struct RunningServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The server component.
    pub handle: Handle,
    /// Everything it sends on `signal`, after the [`Listening`] notice.
    pub signal: Inbox<Control>,
    /// The scheduler it runs under (its connections and protocols run there too).
    pub sched: Scheduler,
    run: Option<JoinHandle<RunReport>>,
}

impl RunningServer {
    /// Activates `server` and waits for its [`Listening`] notice, checking it names the bound
    /// address.
    pub async fn start(server: TcpServer) -> Self {
        Self::start_with_signal_room(server, SIGNAL_CAPACITY).await
    }

    /// [`RunningServer::start`] with room for only `capacity` messages on `signal` (which the
    /// test may then leave unread, as a slow reader would).
    pub async fn start_with_signal_room(server: TcpServer, capacity: usize) -> Self {
        let addr = server.local_addr();
        let component = axon::Component::from(server);
        let signal = Inbox::<Control>::standalone("server signal", capacity);
        axon::link_refs(&component.boxref("signal").unwrap(), &signal.boxref()).unwrap();
        let sched = Scheduler::new();
        let (tx, rx) = oneshot::channel();
        let run = tokio::spawn({
            let sched = sched.clone();
            async move {
                sched
                    .run(async move {
                        let _ = tx.send(component.activate());
                    })
                    .await
            }
        });
        let handle = rx.await.unwrap();
        let first = signal.recv().await;
        assert_eq!(
            first.payload::<Listening>(),
            Some(&Listening(addr)),
            "the first message on signal is {first}"
        );
        Self {
            addr,
            handle,
            signal,
            sched,
            run: Some(run),
        }
    }

    /// The next message on `signal`.
    pub async fn next_signal(&self) -> Control {
        self.signal.recv().await
    }

    /// Stops the server with ShutdownMicroprocess (`Handle::stop`), waits for the run to end,
    /// and returns its report with everything left on `signal`.
    pub async fn stop(mut self) -> (RunReport, Vec<Control>) {
        assert!(self.handle.stop(), "the server had already ended");
        self.finish().await
    }

    /// Waits for the run to end and returns its report with everything left on `signal`.
    pub async fn finish(&mut self) -> (RunReport, Vec<Control>) {
        let report = self.run.take().expect("finished twice").await.unwrap();
        let rest = std::iter::from_fn(|| self.signal.try_recv()).collect();
        (report, rest)
    }

    /// Waits until `n` components run under the scheduler.
    pub async fn wait_live(&self, n: usize) {
        self.sched.wait_live(n).await
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        // A test that failed half-way must not leave the server behind.
        if self.run.is_some() {
            self.sched.shutdown_all();
        }
    }
}

/// Writes `data` to `stream` in chunks of random sizes (up to `max_chunk`) while reading what
/// comes back, half-closes, and reads to the end. Returns what was read.
pub async fn echo_through<S>(stream: S, data: &[u8], seed: u64, max_chunk: usize) -> Vec<u8>
where
    S: AsyncRead + AsyncWrite,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let write = async {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut rest = data;
        while !rest.is_empty() {
            let n = rng.gen_range(1..=max_chunk).min(rest.len());
            wr.write_all(&rest[..n]).await.unwrap();
            rest = &rest[n..];
        }
        wr.shutdown().await.unwrap();
    };
    let read = async {
        let mut got = Vec::with_capacity(data.len());
        rd.read_to_end(&mut got).await.unwrap();
        got
    };
    let ((), got) = tokio::join!(write, read);
    got
}

/// The messages on `signal` that carry an error of type `E`.
pub fn errors_of<E: std::error::Error + Clone + 'static>(msgs: &[Control]) -> Vec<E> {
    msgs.iter()
        .filter_map(|c| c.error_ref::<E>())
        .cloned()
        .collect()
}

/// The path of example `name` (built here if `cargo test` has not built it).
pub fn example_bin(name: &str) -> Option<std::path::PathBuf> {
    Some(kamaelia_test::examples::example_bin("kamaelia", name))
}

/// A child process killed when this is dropped, so a failing test leaves nothing running.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
