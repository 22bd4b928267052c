//! `kamaelia serve` as a child watched from outside (its RSS, CPU time and descriptors, read
//! from /proc), and hostile clients: floods, peers that never read, resets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStderr, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::kamaelia;

/// What happens to the server's stderr.
pub enum Stderr {
    /// Collected as it comes; see [`Served::wait_stderr`].
    Collect,
    /// A pipe nobody reads (until [`Served::start_reading`]).
    Unread,
    /// As [`Stderr::Unread`], and given to the server non-blocking, as a parent that set
    /// `O_NONBLOCK` on a descriptor it shares would hand it over.
    UnreadNonBlocking,
}

/// Sets `O_NONBLOCK` on stderr, then becomes the program named by its arguments.
const NONBLOCKING_STDERR: &str = "import fcntl, os, sys
fcntl.fcntl(2, fcntl.F_SETFL, fcntl.fcntl(2, fcntl.F_GETFL) | os.O_NONBLOCK)
os.execv(sys.argv[1], sys.argv[1:])";

/// A running `kamaelia serve 0 ARGS...`, killed when dropped.
pub struct Served {
    child: Child,
    /// The address it printed.
    pub addr: SocketAddr,
    /// The first line it printed (a Unix socket path for `serve --unix`).
    pub printed: String,
    unread: Option<ChildStderr>,
    err: Arc<(Mutex<String>, Condvar)>,
    reader: Option<JoinHandle<()>>,
}

impl Served {
    /// Starts the server and waits (at most 30 s) for the address on its stdout.
    pub fn start(extra: &[&str], stderr: Stderr) -> Served {
        let mut all = vec!["serve", "0"];
        all.extend_from_slice(extra);
        let s = Served::spawn(&all, stderr);
        assert!(
            s.printed.parse::<SocketAddr>().is_ok(),
            "serve prints its address"
        );
        s
    }

    /// Starts `kamaelia ARGS...` (a serving command) and waits (at most 30 s) for the first
    /// line on its stdout: an address (in `addr`), or a Unix socket path (`printed` only).
    pub fn spawn(all: &[&str], stderr: Stderr) -> Served {
        let mut cmd = kamaelia();
        if matches!(stderr, Stderr::UnreadNonBlocking) {
            let program = cmd.get_program().to_owned();
            cmd = std::process::Command::new("python3");
            cmd.env_remove("RUST_LOG")
                .args(["-c", NONBLOCKING_STDERR])
                .arg(program);
        }
        cmd.args(all)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn kamaelia");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server prints its address within 30 s");
        let printed = line.trim().to_string();
        let addr = printed
            .parse()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        let mut s = Served {
            unread: child.stderr.take(),
            child,
            addr,
            printed,
            err: Arc::new((Mutex::new(String::new()), Condvar::new())),
            reader: None,
        };
        if matches!(stderr, Stderr::Collect) {
            s.start_reading();
        }
        s
    }

    /// Starts the server with its stdout already closed by its reader (a socket whose other
    /// end is gone), and learns the address from its "listening on" line.
    pub fn start_with_stdout_closed(extra: &[&str]) -> Served {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        drop(ours);
        let mut cmd = kamaelia();
        cmd.args(["serve", "0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn kamaelia serve");
        let mut s = Served {
            unread: child.stderr.take(),
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            printed: String::new(),
            err: Arc::new((Mutex::new(String::new()), Condvar::new())),
            reader: None,
        };
        s.start_reading();
        let err = s.wait_stderr("listening on ", Duration::from_secs(30));
        s.addr = err
            .split("listening on ")
            .nth(1)
            .and_then(|l| l.lines().next())
            .and_then(|a| a.trim().parse().ok())
            .expect("the listening line names the address");
        s
    }

    /// Starts collecting stderr (for a server started with [`Stderr::Unread`]).
    pub fn start_reading(&mut self) {
        let Some(mut pipe) = self.unread.take() else {
            return;
        };
        let err = self.err.clone();
        self.reader = Some(std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                let n = pipe.read(&mut buf).unwrap_or(0);
                let (text, cv) = &*err;
                if n > 0 {
                    text.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
                cv.notify_all();
                if n == 0 {
                    return;
                }
            }
        }));
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in KiB (VmRSS).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// User plus system CPU time used so far.
    pub fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
    }

    /// Open file descriptors.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// Waits until `cond` holds of the server (checked every 20 ms: /proc has no event to wait
    /// on), panicking after `limit` with `what`.
    pub fn wait_until(&self, limit: Duration, what: &str, cond: impl Fn(&Served) -> bool) {
        let start = Instant::now();
        while !cond(self) {
            assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until stderr contains `text`; panics with stderr after `limit`.
    pub fn wait_stderr(&self, text: &str, limit: Duration) -> String {
        let (lock, cv) = &*self.err;
        let deadline = Instant::now() + limit;
        let mut err = lock.lock().unwrap();
        while !err.contains(text) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "stderr should contain {text:?}; it was:\n{err}"
            );
            err = cv.wait_timeout(err, left).unwrap().0;
        }
        err.clone()
    }

    /// What stderr has said so far.
    pub fn stderr(&self) -> String {
        self.err.0.lock().unwrap().clone()
    }

    /// Sends SIGINT (Ctrl-C).
    pub fn interrupt(&self) {
        let ok = std::process::Command::new("kill")
            .args(["-INT", &self.pid().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -INT failed");
    }

    /// Waits for the server to exit within `limit` (killing it and panicking if it does not);
    /// returns its status and everything it wrote on stderr.
    pub fn finish(mut self, limit: Duration) -> (ExitStatus, String) {
        let Some(status) = super::exit_within(&mut self.child, limit) else {
            panic!(
                "serve did not exit within {limit:?}; stderr:\n{}",
                self.stderr()
            );
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        (status, self.stderr())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}

/// A client connected to `addr`, every read and write bounded by `timeout`.
pub fn connect(addr: SocketAddr, timeout: Duration) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
    s.set_read_timeout(Some(timeout)).unwrap();
    s.set_write_timeout(Some(timeout)).unwrap();
    s
}

/// A client connected to `addr` with a receive buffer of about `rcvbuf` bytes (set before
/// connecting, so the window is small from the start): what the server sends backs up at once,
/// as it would over a slow network.
pub fn connect_small_window(addr: SocketAddr, rcvbuf: usize, timeout: Duration) -> TcpStream {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .expect("socket");
    sock.set_recv_buffer_size(rcvbuf).unwrap();
    sock.connect_timeout(&addr.into(), Duration::from_secs(10))
        .expect("connect");
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(timeout)).unwrap();
    s.set_write_timeout(Some(timeout)).unwrap();
    s
}

/// Closes with a reset (RST) instead of a FIN: linger on, timeout zero.
pub fn reset(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
}

/// Writes `chunk` again and again, never reading, until `max` bytes are written, a write
/// blocks for the stream's write timeout (the server has stopped taking bytes), or a write
/// fails. Returns the bytes written and whether it ended blocked.
pub fn flood(s: &mut TcpStream, chunk: &[u8], max: u64) -> (u64, bool) {
    let mut sent = 0u64;
    while sent < max {
        match s.write(chunk) {
            Ok(0) => break,
            Ok(n) => sent += n as u64,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (sent, true)
            }
            Err(_) => break,
        }
    }
    (sent, false)
}

/// Reads until `end` has been seen at the end of what was read, EOF, or an error; returns it.
pub fn read_until_end(s: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while !got.ends_with(end) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// Runs `f` on a thread while sampling the server's RSS every 10 ms; returns what `f`
/// returned and the highest RSS seen, in KiB.
pub fn peak_rss_while<T: Send + 'static>(
    server: &Served,
    f: impl FnOnce() -> T + Send + 'static,
) -> (T, u64) {
    let h = std::thread::spawn(f);
    let mut peak = server.rss_kib();
    while !h.is_finished() {
        peak = peak.max(server.rss_kib());
        std::thread::sleep(Duration::from_millis(10));
    }
    peak = peak.max(server.rss_kib());
    (h.join().expect("client thread"), peak)
}
