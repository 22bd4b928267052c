//! `kamaelia send --tls` of a file end to end (issue 11, goal 2's path): the built program, a
//! rustls server in this process that records every byte the client put on the wire. The
//! connection handshakes before it takes anything (TLS from the first byte, with no TlsGate
//! between the file and the connection): the first byte on the wire is a TLS record's, the
//! file arrives whole under TLS and closed with close_notify, and a server that is not trusted
//! sees no byte of the file.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use kamaelia_test::pki::TestPki;
use kamaelia_test::sha256;
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use support::certs::Pki;
use support::servers::{self, Received};
use support::{args, run, Input, TempDir};

const LIMIT: Duration = Duration::from_secs(60);

/// The socket, keeping a copy of every byte read from it.
struct Recording {
    sock: TcpStream,
    wire: Arc<Mutex<Vec<u8>>>,
}

impl Read for Recording {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.sock.read(buf)?;
        self.wire.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl Write for Recording {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sock.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.sock.flush()
    }
}

/// What the server saw of one connection: the plaintext it read under TLS (to close_notify,
/// or to the first error), and every byte the client sent on the wire.
struct Seen {
    plaintext: Received,
    clean_close: bool,
    wire: Vec<u8>,
}

/// A TLS server with `config` that reads each connection to its end, then sends close_notify
/// and closes; reports what it saw.
fn recording_tls_server(config: Arc<ServerConfig>) -> (SocketAddr, mpsc::Receiver<Seen>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let addr = servers::serve_each("127.0.0.1:0", move |sock| {
        let wire = Arc::new(Mutex::new(Vec::new()));
        let rec = Recording {
            sock,
            wire: wire.clone(),
        };
        let mut tls = StreamOwned::new(ServerConnection::new(config.clone()).unwrap(), rec);
        let mut clean_close = false;
        let plaintext = servers::read_all(ReadToClose {
            tls: &mut tls,
            clean: &mut clean_close,
        });
        tls.conn.send_close_notify();
        let _ = tls.flush();
        let _ = tls.sock.sock.shutdown(std::net::Shutdown::Both);
        let wire = std::mem::take(&mut *wire.lock().unwrap());
        let _ = tx.lock().unwrap().send(Seen {
            plaintext,
            clean_close,
            wire,
        });
    });
    (addr, rx)
}

/// Reads a TLS stream, noting whether it ended with the peer's close_notify (`Ok(0)`).
struct ReadToClose<'a> {
    tls: &'a mut StreamOwned<ServerConnection, Recording>,
    clean: &'a mut bool,
}

impl Read for ReadToClose<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.tls.read(buf)?;
        if n == 0 {
            *self.clean = true;
        }
        Ok(n)
    }
}

/// A file whose every 64 KiB holds `marker`, so that any piece of it sent in plaintext shows.
fn marked_file(dir: &TempDir, len: usize, marker: &[u8]) -> (std::path::PathBuf, Vec<u8>) {
    let mut data = support::random_bytes(len);
    for at in (0..len.saturating_sub(marker.len())).step_by(64 * 1024) {
        data[at..at + marker.len()].copy_from_slice(marker);
    }
    (dir.write("upload", &data), data)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// What the client put on the wire starts with a TLS handshake record and holds no piece of
/// the file ([`MARKER`]) in plaintext.
fn assert_encrypted_from_the_start(wire: &[u8]) {
    assert_eq!(wire.first(), Some(&0x16), "a TLS handshake record first");
    assert!(!contains(wire, MARKER), "no byte of the file in plaintext");
}

const MARKER: &[u8] = b"PLAINTEXT-MARKER-0123456789";

/// `kamaelia send --tls --ca CA 127.0.0.1 PORT FILE`, trusting `pki`'s CA.
fn send_tls(pki: &Pki, addr: SocketAddr, file: &std::path::Path) -> support::Run {
    let port = addr.port().to_string();
    let ca = pki.ca_pem.to_str().unwrap();
    let argv = ["send", "--tls", "--ca", ca, "127.0.0.1", &port];
    let mut cmd = args(&argv);
    cmd.arg(file);
    run(cmd, Input::Bytes(Vec::new()), LIMIT)
}

#[test]
fn send_tls_of_a_file_is_encrypted_from_the_first_byte_and_arrives_whole() {
    let pki = Pki::new();
    let (addr, seen) = recording_tls_server(pki.server_config());
    let dir = TempDir::new("send-tls");
    // Several chunks and reads, and a short last one.
    let (file, data) = marked_file(&dir, 3 * 1024 * 1024 + 12_345, MARKER);
    let r = send_tls(&pki, addr, &file);
    // What the reader counted (it has no Meter behind it with --tls): the input ended, all of
    // it sent.
    r.expect_code(0)
        .expect_stderr("TLS established")
        .expect_stderr(&format!("input ended ({} bytes sent)", data.len()))
        .expect_stderr(&format!("sent {} bytes", data.len()));
    let seen = seen.recv_timeout(LIMIT).expect("the server's report");
    assert_eq!(seen.plaintext.bytes, data.len() as u64, "{}", r.stderr);
    assert_eq!(seen.plaintext.sha256, sha256(&data));
    assert!(seen.clean_close, "the upload ends with close_notify");
    assert_encrypted_from_the_start(&seen.wire);
}

#[test]
fn send_tls_to_an_untrusted_server_sends_nothing_of_the_file() {
    let trusted = Pki::new();
    // A server whose certificate another CA signed.
    let other = Pki::from(TestPki::new());
    let (addr, seen) = recording_tls_server(other.server_config());
    let dir = TempDir::new("send-tls-untrusted");
    let (file, _) = marked_file(&dir, 256 * 1024, MARKER);
    let r = send_tls(&trusted, addr, &file);
    r.expect_code(1).expect_stderr("sent 0 bytes");
    assert!(
        r.stderr.contains("certificate") || r.stderr.contains("CA"),
        "{}",
        r.stderr
    );
    let seen = seen.recv_timeout(LIMIT).expect("the server's report");
    assert_eq!(seen.plaintext.bytes, 0);
    assert_encrypted_from_the_start(&seen.wire);
}
