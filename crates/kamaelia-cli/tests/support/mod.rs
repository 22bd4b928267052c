//! Helpers for driving the built `kamaelia` program: a command runner with a deadline, small
//! blocking servers on loopback (plain, TLS, fake SMTP), and certificates made at test time.

#![allow(dead_code, unreachable_pub)]

pub mod certs;
pub mod hostile;
pub mod servers;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The program under test.
pub fn kamaelia() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kamaelia"));
    c.env_remove("RUST_LOG");
    c
}

/// What a finished run produced.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
    /// From before the child was spawned to when its exit was seen: never shorter than its
    /// life, however late this process ran.
    pub elapsed: Duration,
    /// When its exit was seen (at or after it exited).
    pub ended: Instant,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    /// Panics with the whole stderr unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            code,
            "exit status; stderr:\n{}\nstdout: {:?}",
            self.stderr,
            String::from_utf8_lossy(&self.stdout[..self.stdout.len().min(500)])
        );
        self
    }

    /// Panics unless stderr contains `text`.
    pub fn expect_stderr(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "stderr should contain {text:?}; it was:\n{}",
            self.stderr
        );
        self
    }
}

/// What to do with the child's standard input.
pub enum Input {
    /// Write these bytes, then close it (EOF).
    Bytes(Vec<u8>),
    /// Write these bytes and keep it open until the child exits.
    KeepOpen(Vec<u8>),
}

/// A running child whose output is being collected.
pub struct Running {
    child: Child,
    started: Instant,
    out: JoinHandle<Vec<u8>>,
    err: JoinHandle<Vec<u8>>,
    input: Option<JoinHandle<Option<std::process::ChildStdin>>>,
}

/// Starts `cmd` with `input` on stdin, collecting stdout and stderr.
pub fn start(mut cmd: Command, input: Input) -> Running {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Read before the spawn: the child may run for a while before this thread does again (a
    // clock read after the spawn and the collectors' threads started once measured 491 ms of
    // a life of at least 500).
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn kamaelia");
    let mut stdin = child.stdin.take().expect("stdin");
    let (data, keep) = match input {
        Input::Bytes(b) => (b, false),
        Input::KeepOpen(b) => (b, true),
    };
    let input = std::thread::spawn(move || {
        // The child may exit (and close the pipe) before reading everything.
        let _ = stdin.write_all(&data);
        let _ = stdin.flush();
        keep.then_some(stdin)
    });
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    Running {
        child,
        started,
        out,
        err,
        input: Some(input),
    }
}

impl Running {
    /// Waits for the child to exit within `limit`; kills it and panics if it does not.
    pub fn finish(mut self, limit: Duration) -> Run {
        let left = limit.saturating_sub(self.started.elapsed());
        let Some(status) = exit_within(&mut self.child, left) else {
            let err = self.err.join().unwrap_or_default();
            panic!(
                "kamaelia did not exit within {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&err)
            );
        };
        let ended = Instant::now();
        let elapsed = ended - self.started;
        // Drop the kept-open stdin only now, so the child saw it open the whole time.
        drop(self.input.take().and_then(|h| h.join().ok()));
        Run {
            status,
            stdout: self.out.join().unwrap_or_default(),
            stderr: String::from_utf8_lossy(&self.err.join().unwrap_or_default()).into_owned(),
            elapsed,
            ended,
        }
    }

    /// Reads the first line of stdout (for `serve`, which prints its address) without waiting
    /// for the child to exit. Only valid before [`Running::finish`]; consumes the collector.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` to completion with `input`, bounded by `limit`.
pub fn run(cmd: Command, input: Input, limit: Duration) -> Run {
    start(cmd, input).finish(limit)
}

/// `kamaelia ARGS...`.
pub fn args(list: &[&str]) -> Command {
    let mut c = kamaelia();
    c.args(list);
    c
}

/// A directory for a test's files, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "kamaelia-cli-test-{}-{name}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `contents` to `name` in the directory and returns its path.
    pub fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `n` random bytes (every byte value likely present), from a fresh seed.
pub fn random_bytes(n: usize) -> Vec<u8> {
    kamaelia_test::random_bytes(rand::random(), n)
}

/// The path of `tool` if it is installed; otherwise prints why the caller skips it.
pub fn peer_tool(tool: &str) -> Option<PathBuf> {
    let out = Command::new("which").arg(tool).output().ok()?;
    if out.status.success() {
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !path.is_empty() {
            return Some(PathBuf::from(path));
        }
    }
    eprintln!("skipping the {tool} case: {tool} is not installed");
    None
}

/// A port that was free a moment ago, for a peer tool that must be told where to listen.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (bounded) until something listens on 127.0.0.1:`port`, without connecting to it (a
/// peer tool that serves one connection would take the probe for its client).
pub fn wait_listening(port: u16, limit: Duration) {
    let needle = format!("0100007F:{port:04X} 00000000:0000 0A");
    let started = Instant::now();
    while started.elapsed() < limit {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        if table.contains(&needle) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("nothing listened on port {port} within {limit:?}");
}

/// Waits for a peer tool to exit within `limit`; kills it and panics if it does not.
pub fn wait_child(child: &mut Child, limit: Duration) -> ExitStatus {
    exit_within(child, limit)
        .unwrap_or_else(|| panic!("the peer tool did not exit within {limit:?}"))
}

/// Waits for `child` to exit within `limit` (polled every 10 ms: a child's exit has no event to
/// wait on here); kills and reaps it and returns `None` if it does not.
pub fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// SHA-256 of a file.
pub fn sha256_file(path: &Path) -> servers::Received {
    servers::read_all(std::fs::File::open(path).unwrap())
}

/// A tokio runtime for the test peers written with tokio (kamaelia-test's servers and proxies),
/// for the length of a test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A child process killed when dropped, so a failing test leaves no server behind.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `connect --starttls PROTO --ca CA [EXTRA] --servername localhost 127.0.0.1 ADDR`.
pub fn starttls_args<'a>(
    pki: &'a certs::Pki,
    proto: &'a str,
    addr: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut v = vec![
        "connect",
        "--starttls",
        proto,
        "--ca",
        pki.ca_pem.to_str().unwrap(),
    ];
    v.extend_from_slice(extra);
    v.extend_from_slice(&["--servername", "localhost", "127.0.0.1", addr]);
    v
}
