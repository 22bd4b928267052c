//! `kamaelia forward` (issue 10 §2) as a real process: 1,000 concurrent relayed connections
//! moving 1 MiB each way, half-close end to end, a refusing and a resetting target, a slow
//! reader (the forward process's RSS from /proc), TLS termination and origination. The
//! targets and clients are written here (tokio, std sockets, openssl).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kamaelia_test::sha256;
use support::certs::Pki;
use support::{kamaelia, random_bytes, runtime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(120);

/// A running `kamaelia forward ... 0 HOST PORT`, killed when dropped.
struct Forward {
    child: Child,
    addr: SocketAddr,
    err: Arc<Mutex<String>>,
}

impl Forward {
    fn start(extra: &[&str], target: SocketAddr) -> Forward {
        let mut cmd = kamaelia();
        cmd.arg("forward")
            .args(extra)
            .args(["0", &target.ip().to_string(), &target.port().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn kamaelia forward");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .parse()
            .expect("forward prints its address first");
        let err = Arc::new(Mutex::new(String::new()));
        let (e, mut stderr) = (err.clone(), child.stderr.take().unwrap());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                e.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Forward { child, addr, err }
    }

    fn wait_stderr(&self, text: &str, count: usize) -> String {
        let started = Instant::now();
        loop {
            let err = self.err.lock().unwrap().clone();
            if err.matches(text).count() >= count {
                return err;
            }
            assert!(
                started.elapsed() < LIMIT,
                "waiting for {count}× {text:?}:\n{err}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The tokio worker threads the forward process has now: its threads (/proc/PID/task) named as
    /// tokio names a multi-threaded runtime's workers (`tokio-rt-worker` in the tokio this
    /// workspace locks; in older releases `tokio-runtime-worker`, cut to 15 bytes by the kernel),
    /// not the event writer's or any other. A `current_thread` runtime has none: it runs on the
    /// main thread.
    fn workers(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.child.id()))
            .unwrap()
            .filter(|t| {
                let comm = t.as_ref().map(|t| t.path().join("comm")).unwrap();
                std::fs::read_to_string(comm)
                    .is_ok_and(|c| matches!(c.trim_end(), "tokio-rt-worker" | "tokio-runtime-w"))
            })
            .count()
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raises this process's descriptor limit to its hard limit; returns the soft limit now.
fn raise_fd_limit() -> u64 {
    let out = std::process::Command::new("sh")
        .args(["-c", "ulimit -Hn"])
        .output()
        .unwrap();
    let hard: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(1024);
    // No libc here: prlimit(1) sets this process's limit.
    let _ = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={hard}:{hard}"),
        ])
        .status();
    hard
}

/// An echo target: each connection sends back what it reads and closes after the client's
/// FIN. Returns its address.
async fn echo_target() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

#[test]
fn forward_relays_1000_concurrent_connections_of_1_mib_each_way_byte_exact() {
    let hard = raise_fd_limit();
    let n: usize = if hard >= 8192 {
        1000
    } else {
        (hard as usize / 5).min(1000)
    };
    let rt = runtime();
    let target = rt.block_on(echo_target());
    // The forward process inherits the raised limit.
    let f = Forward::start(&[], target);
    let addr = f.addr;
    let started = Instant::now();
    let ok = rt.block_on(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            tasks.spawn(async move {
                let data = kamaelia_test::random_bytes(i as u64, 1 << 20);
                let s = tokio::net::TcpStream::connect(addr).await.unwrap();
                let (mut r, mut w) = s.into_split();
                let want = sha256(&data);
                let writer = tokio::spawn(async move {
                    w.write_all(&data).await.unwrap();
                    w.shutdown().await.unwrap();
                });
                let mut got = Vec::with_capacity(1 << 20);
                r.read_to_end(&mut got).await.unwrap();
                writer.await.unwrap();
                sha256(&got) == want && got.len() == 1 << 20
            });
        }
        let mut ok = 0;
        while let Some(r) = tasks.join_next().await {
            ok += usize::from(r.unwrap());
        }
        ok
    });
    eprintln!(
        "{n} connections × 1 MiB each way in {:?}",
        started.elapsed()
    );
    assert_eq!(ok, n, "every connection byte-exact");
    f.wait_stderr("both sides closed", n);
}

/// The client's FIN reaches the target after all its bytes, and the target's answer after
/// it still comes back; then the target's FIN reaches the client while the client still
/// sends.
#[test]
fn forward_passes_half_close_end_to_end_both_ways() {
    let rt = runtime();
    // Target 1: reads to the client's FIN, then answers and closes.
    let (t1, got1) = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            s.write_all(b"answer after your FIN").await.unwrap();
            let _ = tx.send(got);
        });
        (addr, rx)
    });
    let f = Forward::start(&[], t1);
    let data = random_bytes(3_000_000);
    let mut c = TcpStream::connect(f.addr).unwrap();
    c.set_read_timeout(Some(LIMIT)).unwrap();
    c.write_all(&data).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    c.read_to_end(&mut answer).unwrap();
    assert_eq!(answer, b"answer after your FIN");
    let got = rt.block_on(async { tokio::time::timeout(LIMIT, got1).await.unwrap().unwrap() });
    assert_eq!(sha256(&got), sha256(&data));
    f.wait_stderr("both sides closed", 1);

    // Target 2: says hello and half-closes at once, then reads everything.
    let (t2, got2) = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(b"hello, I am done").await.unwrap();
            s.shutdown().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            let _ = tx.send(got);
        });
        (addr, rx)
    });
    let f = Forward::start(&[], t2);
    let mut c = TcpStream::connect(f.addr).unwrap();
    c.set_read_timeout(Some(LIMIT)).unwrap();
    let mut hello = Vec::new();
    c.read_to_end(&mut hello).unwrap();
    assert_eq!(hello, b"hello, I am done", "the target's FIN came through");
    c.write_all(&data).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let got = rt.block_on(async { tokio::time::timeout(LIMIT, got2).await.unwrap().unwrap() });
    assert_eq!(
        sha256(&got),
        sha256(&data),
        "the client still sent after it"
    );
    let err = f.wait_stderr("both sides closed", 1);
    assert!(
        err.contains("3000000 bytes to the target, 16 bytes to the client"),
        "{err}"
    );
}

#[test]
fn forward_closes_the_client_when_the_target_refuses_or_resets() {
    let refused = kamaelia_test::net::closed_port("127.0.0.1");
    let f = Forward::start(&[], refused);
    let mut c = TcpStream::connect(f.addr).unwrap();
    c.set_read_timeout(Some(LIMIT)).unwrap();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    assert!(got.is_empty());
    let err = f.wait_stderr("closed:", 1);
    assert!(
        err.contains("the target's side failed: connection refused"),
        "{err}"
    );

    // A target that reads a little, then resets.
    let rt = runtime();
    let target = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 1000];
            s.read_exact(&mut buf).await.unwrap();
            #[allow(deprecated)] // a reset is the point: SO_LINGER 0
            s.set_linger(Some(Duration::ZERO)).unwrap();
            drop(s);
        });
        addr
    });
    let f = Forward::start(&[], target);
    let mut c = TcpStream::connect(f.addr).unwrap();
    c.set_read_timeout(Some(LIMIT)).unwrap();
    let chunk = vec![7u8; 64 * 1024];
    let started = Instant::now();
    // Writes fail (or reading ends) once the relay has closed the client's side.
    loop {
        if c.write_all(&chunk).is_err() {
            break;
        }
        assert!(
            started.elapsed() < LIMIT,
            "the client side was never closed"
        );
        let _ = c.set_nonblocking(true);
        let mut b = [0u8; 16];
        let gone = matches!(c.read(&mut b), Ok(0) | Err(_))
            && !matches!(c.read(&mut b), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock);
        let _ = c.set_nonblocking(false);
        if gone {
            break;
        }
    }
    let err = f.wait_stderr("closed:", 1);
    assert!(
        err.contains("the target's side failed: connection reset"),
        "{err}"
    );
}

/// A client that sends fast and never reads, through a target that echoes: the relay's
/// boxes are bounded, so the forward process's memory stays small.
#[test]
fn forward_holds_a_fast_sender_back_when_the_reader_is_slow() {
    let rt = runtime();
    let target = rt.block_on(echo_target());
    let f = Forward::start(&[], target);
    let base = f.rss_kib();
    let mut c = TcpStream::connect(f.addr).unwrap();
    c.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    let chunk = vec![1u8; 64 * 1024];
    let mut sent = 0u64;
    let mut peak = base;
    while sent < 200_000_000 {
        if c.write_all(&chunk).is_err() {
            break; // held back: nothing is read on the way back
        }
        sent += chunk.len() as u64;
        peak = peak.max(f.rss_kib());
    }
    peak = peak.max(f.rss_kib());
    eprintln!("sent {sent} bytes before being held back; RSS {base} -> {peak} KiB");
    assert!(sent < 200_000_000, "the sender was never held back");
    assert!(
        peak < base + 32 * 1024,
        "RSS grew from {base} to {peak} KiB"
    );
}

/// TLS termination with openssl s_client as the client: the target's greeting reaches it
/// through TLS, and the target's close ends s_client's session.
#[test]
fn forward_terminates_tls_from_openssl_s_client() {
    let Some(openssl) = support::peer_tool("openssl") else {
        return;
    };
    let pki = Pki::new();
    let target = support::servers::closing_server(b"greeting through TLS\n");
    let (cert, key) = (
        pki.cert_pem.display().to_string(),
        pki.key_pem.display().to_string(),
    );
    let f = Forward::start(&["--cert", &cert, "--key", &key], target);
    let mut cmd = std::process::Command::new(openssl);
    cmd.args(["s_client", "-quiet", "-CAfile"])
        .arg(&pki.ca_pem)
        .args(["-verify_return_error", "-connect", &f.addr.to_string()]);
    let run = support::run(cmd, support::Input::KeepOpen(Vec::new()), LIMIT);
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "greeting through TLS\n",
        "{}",
        run.stderr
    );
    f.wait_stderr("both sides closed", 1);
}

/// TLS termination with a rustls client: 2 MB each way through TLS to a plain echo target.
#[test]
fn forward_terminates_tls_from_a_rustls_client_byte_exact() {
    use rustls_pki_types::pem::PemObject as _;
    let pki = Pki::new();
    let rt = runtime();
    let target = rt.block_on(echo_target());
    let (cert, key) = (
        pki.cert_pem.display().to_string(),
        pki.key_pem.display().to_string(),
    );
    let f = Forward::start(&["--cert", &cert, "--key", &key], target);
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_file(&pki.ca_pem).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let sock = TcpStream::connect(f.addr).unwrap();
    sock.set_read_timeout(Some(LIMIT)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let data = random_bytes(2_000_000);
    // Write and read in turns of 64 KiB.
    let mut got = Vec::new();
    for chunk in data.chunks(64 * 1024) {
        tls.write_all(chunk).unwrap();
        tls.flush().unwrap();
        // The echo of this chunk before the next: the relay holds nothing for long.
        while got.len() < offset_of(&data, chunk) {
            assert!(read_some(&mut tls, &mut got) > 0, "the echo stopped");
        }
    }
    tls.conn.send_close_notify();
    tls.flush().unwrap();
    while got.len() < data.len() {
        if read_some(&mut tls, &mut got) == 0 {
            break;
        }
    }
    assert_eq!(sha256(&got), sha256(&data));
}

/// The end of `chunk` within `data`.
fn offset_of(data: &[u8], chunk: &[u8]) -> usize {
    chunk.as_ptr() as usize - data.as_ptr() as usize + chunk.len()
}

fn read_some(r: &mut impl Read, into: &mut Vec<u8>) -> usize {
    let mut buf = [0u8; 16 * 1024];
    let n = r.read(&mut buf).unwrap_or(0);
    into.extend_from_slice(&buf[..n]);
    n
}

#[test]
fn forward_originates_tls_to_a_rustls_target() {
    let pki = Pki::new();
    let target = support::servers::tls_echo_server(pki.server_config(), true);
    let ca = pki.ca_pem.display().to_string();
    let f = Forward::start(&["--tls", "--ca", &ca, "--servername", "localhost"], target);
    let got = through(&f, b"plaintext in, TLS out");
    assert_eq!(got, b"plaintext in, TLS out");
    f.wait_stderr("both sides closed", 1);
}

/// `--target-cert/--target-key` present a client certificate to a target that requires one,
/// and `--target-alpn` offers ALPN to it: with both the bytes go through; without the
/// certificate, or with an ALPN protocol the target does not speak, the connection is closed
/// with nothing relayed and a line saying why.
#[test]
fn forward_presents_a_client_certificate_and_alpn_to_the_target() {
    let pki = Pki::new();
    let (cert, key) = pki.client_pem("forward.test");
    let target = support::servers::tls_echo_server(
        pki.server_config_requiring_client_cert(b"kamaelia-test"),
        true,
    );
    let ca = pki.ca_pem.display().to_string();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let tls = ["--tls", "--ca", &ca, "--servername", "localhost"];
    let identity = ["--target-cert", &cert, "--target-key", &key];
    let alpn = |p: &'static str| ["--target-alpn", p];

    let with_both = [&tls[..], &identity, &alpn("kamaelia-test")].concat();
    let f = Forward::start(&with_both, target);
    assert_eq!(through(&f, b"with a certificate"), b"with a certificate");
    f.wait_stderr("both sides closed", 1);

    let f = Forward::start(&tls, target);
    assert_eq!(through(&f, b"without one"), b"");
    let err = f.wait_stderr("closed:", 1);
    assert!(err.contains("client certificate"), "{err}");

    let wrong_alpn = [&tls[..], &identity, &alpn("other")].concat();
    let f = Forward::start(&wrong_alpn, target);
    assert_eq!(through(&f, b"wrong protocol"), b"");
    let err = f.wait_stderr("closed:", 1);
    assert!(err.contains("ALPN"), "{err}");
}

/// `--proxy`: each relayed connection reaches the target through an HTTP CONNECT or SOCKS5
/// proxy (written for the tests), byte-exact, with the half-close passed end to end.
#[test]
fn forward_relays_through_http_and_socks5_proxies() {
    use kamaelia_test::proxy::{TunnelKind, TunnelProxy};
    let rt = support::runtime();
    let echo = support::servers::echo_server("127.0.0.1:0");
    for (kind, scheme) in [(TunnelKind::Http, "http"), (TunnelKind::Socks5, "socks5")] {
        let proxy = rt.block_on(TunnelProxy::start(kind, None));
        let url = format!("{scheme}://127.0.0.1:{}", proxy.addr().port());
        let f = Forward::start(&["--proxy", &url], echo);
        let data = random_bytes(256 * 1024);
        assert!(through(&f, &data) == data, "{scheme}: the echo differs");
        f.wait_stderr("both sides closed", 1);
        assert_eq!(proxy.seen()[0].target, format!("127.0.0.1:{}", echo.port()));
    }
}

/// Both at once: TLS from the client (s_client would do; here a plain relay chain is enough
/// to show the two ends are independent), and STARTTLS towards a fake SMTP target.
#[test]
fn forward_speaks_starttls_smtp_to_the_target() {
    let pki = Pki::new();
    let target = support::servers::smtp_server(pki.server_config(), b"");
    let ca = pki.ca_pem.display().to_string();
    let f = Forward::start(&["--starttls", "smtp", "--ca", &ca], target);
    let got = through(&f, b"after STARTTLS\r\n");
    let err = f.wait_stderr("closed:", 1);
    assert_eq!(got, b"after STARTTLS\r\n", "{err}");
    assert!(err.contains("both sides closed"), "{err}");
}

/// `--threads N` relays on N worker threads (default one: the whole process is one thread),
/// byte-exact either way, with several connections open at once.
#[test]
fn forward_runs_on_the_threads_it_is_given() {
    let rt = runtime();
    let target = rt.block_on(echo_target());
    for (extra, want) in [(&[][..], 0), (&["--threads", "3"][..], 3)] {
        let f = Forward::start(extra, target);
        let data: Vec<Vec<u8>> = (0..4_u64)
            .map(|i| kamaelia_test::random_bytes(i, 256 << 10))
            .collect();
        // Connected and relayed while the threads are counted: each client sends its bytes,
        // and waits for the last of them back before it half-closes.
        let mut open: Vec<TcpStream> = Vec::new();
        for d in &data {
            let mut c = TcpStream::connect(f.addr).unwrap();
            c.set_read_timeout(Some(LIMIT)).unwrap();
            let w = c.try_clone().unwrap();
            let d2 = d.clone();
            let writer = std::thread::spawn(move || {
                let mut w = w;
                w.write_all(&d2).unwrap();
            });
            let mut got = vec![0; d.len()];
            c.read_exact(&mut got).unwrap();
            writer.join().unwrap();
            assert!(got == *d, "byte-exact through {extra:?}");
            open.push(c);
        }
        // No worker thread by default (a `current_thread` runtime), else as many as asked. A
        // thread takes its name when it first runs, which on a loaded machine can be after the
        // relaying above (failed once so under load: 2 of 3): looked at again until it agrees,
        // for at most the limit.
        let deadline = Instant::now() + LIMIT;
        let mut workers = f.workers();
        while workers != want && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            workers = f.workers();
        }
        assert_eq!(workers, want, "worker threads of `forward {extra:?}`");
        for c in &open {
            c.shutdown(Shutdown::Write).unwrap();
        }
        for mut c in open {
            let mut rest = Vec::new();
            c.read_to_end(&mut rest).unwrap();
            assert!(rest.is_empty());
        }
        f.wait_stderr("both sides closed", data.len());
    }
}

/// Sends `data` through the forward, half-closes, and reads to the end.
fn through(f: &Forward, data: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(f.addr).unwrap();
    c.set_read_timeout(Some(LIMIT)).unwrap();
    c.write_all(data).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    got
}

/// `--max-connections 1`: a second client waits in the backlog (it connects, but nothing is
/// relayed) until the first ends.
#[test]
fn forward_makes_connections_beyond_the_maximum_wait_in_the_backlog() {
    let rt = runtime();
    let target = rt.block_on(echo_target());
    let f = Forward::start(&["--max-connections", "1"], target);
    let mut first = TcpStream::connect(f.addr).unwrap();
    first.set_read_timeout(Some(LIMIT)).unwrap();
    first.write_all(b"one").unwrap();
    let mut b = [0u8; 3];
    first.read_exact(&mut b).unwrap();
    let mut second = TcpStream::connect(f.addr).unwrap();
    second.write_all(b"two").unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    assert!(
        second.read(&mut b).is_err(),
        "the second was relayed while the first was open"
    );
    first.shutdown(Shutdown::Write).unwrap();
    let _ = first.read_to_end(&mut Vec::new());
    second.set_read_timeout(Some(LIMIT)).unwrap();
    second.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"two");
}

/// `--idle-timeout`: a relayed connection with no traffic either way is closed, and the
/// closed line says why.
#[test]
fn forward_closes_an_idle_connection() {
    let rt = runtime();
    let target = rt.block_on(echo_target());
    let f = Forward::start(&["--idle-timeout", "0.5"], target);
    let mut c = TcpStream::connect(f.addr).unwrap();
    c.set_read_timeout(Some(LIMIT)).unwrap();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    let err = f.wait_stderr("closed:", 1);
    assert!(err.contains("no traffic"), "{err}");
}

/// Plaintext into the TLS-terminating port: the relay ends, and the closed line blames the
/// client in plain words.
#[test]
fn forward_says_when_a_client_does_not_speak_tls() {
    let pki = Pki::new();
    let rt = runtime();
    let target = rt.block_on(echo_target());
    let (cert, key) = (
        pki.cert_pem.display().to_string(),
        pki.key_pem.display().to_string(),
    );
    let f = Forward::start(&["--cert", &cert, "--key", &key], target);
    let got = through(&f, b"GET / HTTP/1.0\r\n\r\n");
    assert!(!got.starts_with(b"GET"), "plaintext was relayed: {got:?}");
    let err = f.wait_stderr("closed:", 1);
    assert!(err.contains("the client did not speak TLS"), "{err}");
}

/// `--json-events`: each relay's reports are JSON lines on stderr (RelayOpened, RelayClosed).
#[test]
fn forward_reports_each_connection_as_json_events() {
    let rt = runtime();
    let target = rt.block_on(echo_target());
    let f = Forward::start(&["--json-events"], target);
    assert_eq!(through(&f, b"json"), b"json");
    let err = f.wait_stderr("\"type\":\"RelayClosed\"", 1);
    assert!(err.contains("\"type\":\"RelayOpened\""), "{err}");
    assert!(
        !err.contains("kamaelia: opened"),
        "plain lines in JSON mode: {err}"
    );
}

/// A target that does not offer STARTTLS: the client's connection is closed and the closed
/// line says why.
#[test]
fn forward_reports_a_target_that_does_not_offer_starttls() {
    let target = support::servers::scripted_server(b"220 fake ESMTP\r\n", b"250 fake\r\n");
    let f = Forward::start(&["--starttls", "smtp"], target);
    let got = through(&f, b"never relayed\r\n");
    assert!(got.is_empty(), "{got:?}");
    let err = f.wait_stderr("closed:", 1);
    assert!(
        err.contains("the STARTTLS dialogue with the target failed"),
        "{err}"
    );
}

/// `forward --help` states the bounds the relay is built with (32 KiB boxes: the help said
/// 256 KiB, the library's default, after forward's own bounds had changed; a STARTTLS or
/// proxy layer's own), the threads, the connection limit and the exit status.
#[test]
fn forward_help_states_its_bounds() {
    let r = support::run(
        support::args(&["forward", "--help"]),
        support::Input::Bytes(Vec::new()),
        LIMIT,
    );
    r.expect_code(0);
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(!out.contains("at most 256 KiB each way"), "{out}");
    for text in [
        "32 KiB",
        "with --starttls or --proxy",
        "--threads",
        "--max-connections",
        "130",
    ] {
        assert!(out.contains(text), "--help should mention {text:?}:\n{out}");
    }
}
