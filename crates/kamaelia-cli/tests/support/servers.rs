//! Blocking loopback servers, one thread per connection; each binds port 0.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// Accepts connections on `bind` and runs `each` on every one, in its own thread.
pub fn serve_each<F>(bind: &str, each: F) -> SocketAddr
where
    F: Fn(TcpStream) + Send + Sync + 'static,
{
    let listener = TcpListener::bind(bind).unwrap();
    let addr = listener.local_addr().unwrap();
    let each = Arc::new(each);
    thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let each = each.clone();
            thread::spawn(move || each(s));
        }
    });
    addr
}

/// Echoes each connection until EOF, then closes.
pub fn echo_server(bind: &str) -> SocketAddr {
    serve_each(bind, |s| {
        let _ = echo(&mut &s, &mut &s);
        let _ = s.shutdown(std::net::Shutdown::Write);
    })
}

fn echo(r: &mut impl Read, w: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            return Ok(n);
        }
        w.write_all(&buf[..k])?;
        w.flush()?;
        n += k as u64;
    }
}

/// Speaks TLS from the first byte and echoes until the client's close_notify, then sends its
/// own. With `close_notify: false` it closes the TCP connection without one.
pub fn tls_echo_server(config: Arc<ServerConfig>, close_notify: bool) -> SocketAddr {
    serve_each("127.0.0.1:0", move |s| {
        let conn = ServerConnection::new(config.clone()).unwrap();
        tls_echo(StreamOwned::new(conn, s), close_notify);
    })
}

/// Echoes under TLS until the client's close_notify (or an error), then sends its own
/// close_notify if asked, and closes.
pub fn tls_echo(mut tls: StreamOwned<ServerConnection, TcpStream>, close_notify: bool) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => {
                if tls.write_all(&buf[..k]).and_then(|()| tls.flush()).is_err() {
                    return;
                }
            }
        }
    }
    if close_notify {
        tls.conn.send_close_notify();
        let _ = tls.flush();
    }
    let _ = tls.sock.shutdown(std::net::Shutdown::Both);
}

/// A fake SMTP server: greeting, EHLO, STARTTLS, `220`, then TLS echo. `after_go_ahead` is
/// sent in plaintext right after the `220` (an injection when not empty).
pub fn smtp_server(config: Arc<ServerConfig>, after_go_ahead: &'static [u8]) -> SocketAddr {
    smtp_server_then(config, after_go_ahead, |tls| tls_echo(tls, true))
}

/// Like [`smtp_server`], but once TLS is up it acts like a real mail server that drops its
/// replies on a hang-up: it reads up to `QUIT`, and if the client then closes (close_notify or
/// FIN) within a second it hangs up without answering; otherwise it answers `221 bye` and
/// closes (close_notify, then FIN).
pub fn smtp_server_answering_quit(config: Arc<ServerConfig>) -> SocketAddr {
    smtp_server_then(config, b"", |mut tls| {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.ends_with(b"QUIT\r\n") {
            match tls.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(k) => got.extend_from_slice(&buf[..k]),
            }
        }
        // The server's own patience, not the test's synchronisation.
        tls.sock
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let hung_up = matches!(tls.read(&mut buf), Ok(0));
        if !hung_up {
            let _ = tls.write_all(b"221 bye\r\n");
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
        let _ = tls.sock.shutdown(std::net::Shutdown::Both);
    })
}

fn smtp_server_then(
    config: Arc<ServerConfig>,
    after_go_ahead: &'static [u8],
    then: fn(StreamOwned<ServerConnection, TcpStream>),
) -> SocketAddr {
    serve_each("127.0.0.1:0", move |s| {
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        let _ = w.write_all(b"220-fake.test ESMTP\r\n220 ready\r\n");
        line.clear();
        if r.read_line(&mut line).is_err() || !line.starts_with("EHLO ") {
            return;
        }
        let _ = w.write_all(b"250-fake.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
        line.clear();
        if r.read_line(&mut line).is_err() || line != "STARTTLS\r\n" {
            return;
        }
        let mut go = b"220 go ahead\r\n".to_vec();
        go.extend_from_slice(after_go_ahead);
        let _ = w.write_all(&go);
        if !after_go_ahead.is_empty() {
            // Keep the connection until the client gives up.
            let _ = r.read_to_end(&mut Vec::new());
            return;
        }
        assert!(
            r.buffer().is_empty(),
            "client sent data before the handshake"
        );
        let conn = ServerConnection::new(config.clone()).unwrap();
        then(StreamOwned::new(conn, s));
    })
}

/// Reads each connection to EOF, answers `got N`, and closes. Sends N on the channel.
pub fn sink_server() -> (SocketAddr, mpsc::Receiver<u64>) {
    let (addr, timed) = sink_server_timed();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (n, _) in timed {
            if tx.send(n).is_err() {
                break;
            }
        }
    });
    (addr, rx)
}

/// As [`sink_server`], and each connection's count comes with how long it lasted, from its
/// accept to the client's end of sending: the pace of what arrived, without the client
/// process's own start (slow under load) in it.
pub fn sink_server_timed() -> (SocketAddr, mpsc::Receiver<(u64, std::time::Duration)>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let addr = serve_each("127.0.0.1:0", move |mut s| {
        let accepted = std::time::Instant::now();
        let n = read_to_end_paced(&mut s, None, accepted);
        let lasted = accepted.elapsed();
        let _ = s.write_all(format!("got {n}\n").as_bytes());
        let _ = s.shutdown(std::net::Shutdown::Write);
        let _ = tx.lock().unwrap().send((n, lasted));
    });
    (addr, rx)
}

/// Reads `s` to its end (or an error) and returns how many bytes it read; with `rate`, no
/// faster than that many bytes a second counted from `since` (sleeping between reads).
pub fn read_to_end_paced(s: &mut impl Read, rate: Option<u64>, since: Instant) -> u64 {
    let mut n = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k as u64,
        }
        if let Some(rate) = rate {
            // Byte n is read no sooner than n / rate after `since`.
            let due = since + Duration::from_secs_f64(n as f64 / rate as f64);
            thread::sleep(due.saturating_duration_since(Instant::now()));
        }
    }
    n
}

/// Sends `greeting` and closes at once, without reading.
pub fn closing_server(greeting: &'static [u8]) -> SocketAddr {
    serve_each("127.0.0.1:0", move |mut s| {
        let _ = s.write_all(greeting);
        let _ = s.shutdown(std::net::Shutdown::Write);
        // Drain until the client closes so no RST is sent.
        let _ = s.read_to_end(&mut Vec::new());
    })
}

/// Sends `hi`, then resets the connection (SO_LINGER 0).
pub fn resetting_server() -> SocketAddr {
    serve_each("127.0.0.1:0", |mut s| {
        let _ = s.write_all(b"hi\n");
        thread::sleep(Duration::from_millis(200));
        let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
        drop(s);
    })
}

/// An address on 127.0.0.1 nobody listens on.
pub fn closed_port() -> SocketAddr {
    kamaelia_test::net::closed_port("127.0.0.1")
}

/// What a test peer read from one connection: how many bytes, and their SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub bytes: u64,
    pub sha256: [u8; 32],
}

/// Reads `r` to its end (or to an error), hashing as it goes.
pub fn read_all(mut r: impl Read) -> Received {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => {
                h.update(&buf[..k]);
                bytes += k as u64;
            }
        }
    }
    Received {
        bytes,
        sha256: h.finalize().into(),
    }
}

/// Sends `first`, shuts its write side at once (FIN: "I have finished sending") and keeps
/// reading to the end; reports what it read. With `first` empty it is a receive-only peer
/// (`ncat --recv-only`, `nc -N -l < /dev/null`).
pub fn half_closing_server(first: &'static [u8]) -> (SocketAddr, mpsc::Receiver<Received>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let addr = serve_each("127.0.0.1:0", move |mut s| {
        let _ = s.write_all(first);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let got = read_all(&s);
        let _ = tx.lock().unwrap().send(got);
    });
    (addr, rx)
}

/// Reads `limit` bytes, then closes the connection entirely while the client is still
/// sending (the client's next writes meet a reset). Reports how many bytes it read.
pub fn closing_mid_upload_server(limit: u64) -> (SocketAddr, mpsc::Receiver<u64>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let addr = serve_each("127.0.0.1:0", move |s| {
        let got = read_all((&s).take(limit));
        // Unread bytes in the receive queue make the close a reset.
        drop(s);
        let _ = tx.lock().unwrap().send(got.bytes);
    });
    (addr, rx)
}

/// Sends `greeting`, then answers the first line the client sends with `answer`, and keeps the
/// connection open until the client closes it.
pub fn scripted_server(greeting: &'static [u8], answer: &'static [u8]) -> SocketAddr {
    serve_each("127.0.0.1:0", move |s| {
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let _ = w.write_all(greeting);
        let mut line = String::new();
        if r.read_line(&mut line).is_ok() {
            let _ = w.write_all(answer);
        }
        let _ = r.read_to_end(&mut Vec::new());
    })
}

/// Greets like SMTP, then answers EHLO with `250-x` lines for ever (until the client goes).
pub fn endless_ehlo_server() -> SocketAddr {
    serve_each("127.0.0.1:0", |s| {
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let _ = w.write_all(b"220 hi\r\n");
        let mut line = String::new();
        if r.read_line(&mut line).is_err() {
            return;
        }
        let lines = b"250-x\r\n".repeat(4096);
        while w.write_all(&lines).is_ok() {}
    })
}

/// A request/response peer like aiosmtpd: it reads lines up to `QUIT`, and if the client then
/// half-closes within a second it hangs up without answering; if the client stays, it answers
/// every line (`250 <line>`) and closes. Reports whether it answered.
pub fn hangs_up_on_half_close_server() -> (SocketAddr, mpsc::Receiver<bool>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let addr = serve_each("127.0.0.1:0", move |s| {
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let quit = line.trim_end() == "QUIT";
            lines.push(line);
            if quit {
                break;
            }
        }
        // The server's own patience, not the test's synchronisation: a client that is still
        // there after a second wants its answers.
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let half_closed = matches!(r.read(&mut [0u8; 1]), Ok(0));
        if !half_closed {
            for line in &lines {
                let _ = w.write_all(format!("250 {}\r\n", line.trim_end()).as_bytes());
            }
        }
        drop(w);
        drop(r);
        drop(s);
        let _ = tx.lock().unwrap().send(!half_closed);
    });
    (addr, rx)
}

/// Keeps quiet for `quiet` after accepting, sends `byte`, then says nothing more and reads
/// until the client closes. Reports when it sent the byte, read just before the write: no
/// client can have received it earlier.
pub fn late_byte_server(quiet: Duration, byte: u8) -> (SocketAddr, mpsc::Receiver<Instant>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let addr = serve_each("127.0.0.1:0", move |mut s| {
        thread::sleep(quiet);
        let sent = Instant::now();
        if s.write_all(&[byte]).is_ok() {
            let _ = tx.lock().unwrap().send(sent);
        }
        let _ = read_all(&s);
    });
    (addr, rx)
}

/// Accepts, sends nothing, and reads until the client goes.
pub fn silent_server() -> SocketAddr {
    serve_each("127.0.0.1:0", |s| {
        let _ = read_all(&s);
    })
}
