//! `--starttls` beyond SMTP through the real program and real pipes: `connect` and `send` with
//! a line protocol (FTP), a binary one (PostgreSQL), XMPP with `--xmpphost`, and refusals,
//! each against a fake server written here that takes the TLS handshake with rustls after its
//! go-ahead; `serve --starttls imap|pop3|(smtp by default)` against `openssl s_client
//! -starttls`; and the usage errors of `--xmpphost`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};
use support::certs::Pki;
use support::hostile::{Served, Stderr};
use support::{args, run, servers, starttls_args, Input, TempDir};

const LIMIT: Duration = Duration::from_secs(30);

/// One step of a fake server's plaintext dialogue.
enum Act {
    /// Write these bytes.
    Send(&'static [u8]),
    /// Read one line, or up to and including this marker.
    Until(&'static [u8]),
    /// Read exactly this many bytes.
    Exactly(usize),
}

/// A fake server: the dialogue (what it read is sent on the channel), then TLS with `config`,
/// echoing until the client's close_notify, then its own close_notify.
fn fake(config: Arc<ServerConfig>, acts: &'static [Act]) -> (SocketAddr, mpsc::Receiver<Vec<u8>>) {
    let (tx, rx) = mpsc::channel();
    let addr = servers::serve_each("127.0.0.1:0", move |mut s| {
        s.set_read_timeout(Some(LIMIT)).unwrap();
        let mut heard = Vec::new();
        for act in acts {
            match act {
                Act::Send(b) => s.write_all(b).unwrap(),
                Act::Until(m) => {
                    let start = heard.len();
                    while !heard[start..].ends_with(m) {
                        let mut c = [0u8];
                        if s.read(&mut c).unwrap_or(0) == 0 {
                            let _ = tx.send(heard);
                            return;
                        }
                        heard.push(c[0]);
                    }
                }
                Act::Exactly(n) => {
                    let mut b = vec![0u8; *n];
                    if s.read_exact(&mut b).is_err() {
                        let _ = tx.send(heard);
                        return;
                    }
                    heard.extend_from_slice(&b);
                }
            }
        }
        let _ = tx.send(heard);
        let conn = ServerConnection::new(config.clone()).unwrap();
        servers::tls_echo(StreamOwned::new(conn, s), true);
    });
    (addr, rx)
}

const FTP: &[Act] = &[
    Act::Send(b"220-ftp.test\r\n220 ready\r\n"),
    Act::Until(b"\r\n"),
    Act::Send(b"234 AUTH TLS successful\r\n"),
];

const POSTGRES: &[Act] = &[Act::Exactly(8), Act::Send(b"S")];

const XMPP: &[Act] = &[
    Act::Until(b">"),
    Act::Send(
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' \
          id='1' from='chat.test' version='1.0'><stream:features>\
          <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>",
    ),
    Act::Until(b"/>"),
    Act::Send(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
];

fn port(addr: SocketAddr) -> String {
    addr.port().to_string()
}

/// `connect --starttls PROTO … --shutdown` with `input`, against `addr`.
fn connect(pki: &Pki, proto: &str, addr: SocketAddr, extra: &[&str], input: &[u8]) -> support::Run {
    let p = port(addr);
    let mut e = vec!["--shutdown"];
    e.extend_from_slice(extra);
    run(
        args(&starttls_args(pki, proto, &p, &e)),
        Input::Bytes(input.to_vec()),
        LIMIT,
    )
}

/// A line protocol: FTP's greeting, AUTH TLS, 234, then the user's bytes under TLS, echoed
/// byte-exact (the plaintext dialogue is not on stdout).
#[test]
fn connect_starttls_ftp_switches_after_auth_tls() {
    let pki = Pki::new();
    let (addr, heard) = fake(pki.server_config(), FTP);
    let r = connect(&pki, "ftp", addr, &[], b"USER anonymous\r\nQUIT\r\n");
    r.expect_code(0).expect_stderr("TLS established");
    assert_eq!(r.stdout, b"USER anonymous\r\nQUIT\r\n");
    assert_eq!(heard.recv_timeout(LIMIT).unwrap(), b"AUTH TLS\r\n");
}

/// A binary protocol: PostgreSQL's 8-byte SSLRequest, `S`, then TLS; 1 MiB of binary data
/// both ways, byte-exact, through `send`'s file reader as well as `connect`'s stdin.
#[test]
fn connect_and_send_starttls_postgres_switch_after_the_sslrequest() {
    let pki = Pki::new();
    let (addr, heard) = fake(pki.server_config(), POSTGRES);
    let data = support::random_bytes(1 << 20);
    let r = connect(&pki, "postgres", addr, &[], &data);
    r.expect_code(0).expect_stderr("TLS established");
    assert!(r.stdout == data, "the echo differs");
    assert_eq!(
        heard.recv_timeout(LIMIT).unwrap(),
        [0, 0, 0, 8, 4, 210, 22, 47]
    );

    let dir = TempDir::new("send-postgres");
    let file = dir.write("data", &data);
    let p = port(addr);
    let mut argv = starttls_args(&pki, "postgres", &p, &["--shutdown"]);
    argv[0] = "send";
    // send takes the file after the address.
    let file = file.to_str().unwrap().to_string();
    argv.push(&file);
    let r = run(args(&argv), Input::Bytes(Vec::new()), LIMIT);
    r.expect_code(0);
    assert_eq!(
        heard.recv_timeout(LIMIT).unwrap(),
        [0, 0, 0, 8, 4, 210, 22, 47]
    );
}

/// XMPP opens its stream to `--xmpphost` (the host by default, as s_client).
#[test]
fn connect_starttls_xmpp_opens_the_stream_to_xmpphost() {
    let pki = Pki::new();
    let (addr, heard) = fake(pki.server_config(), XMPP);
    let r = connect(
        &pki,
        "xmpp",
        addr,
        &["--xmpphost", "chat.test"],
        b"<presence/>",
    );
    r.expect_code(0).expect_stderr("TLS established");
    assert_eq!(r.stdout, b"<presence/>");
    let words = String::from_utf8(heard.recv_timeout(LIMIT).unwrap()).unwrap();
    assert!(
        words.contains("xmlns='jabber:client' to='chat.test'"),
        "{words}"
    );
    assert!(
        words.ends_with("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
        "{words}"
    );

    let r = connect(&pki, "xmpp-server", addr, &[], b"x");
    r.expect_code(0);
    let words = String::from_utf8(heard.recv_timeout(LIMIT).unwrap()).unwrap();
    assert!(
        words.contains("xmlns='jabber:server' to='127.0.0.1'"),
        "{words}"
    );
}

/// Refusals end the session with status 1 and the server's answer in plain words; nothing
/// reaches stdout.
#[test]
fn connect_starttls_refusals_exit_1_in_plain_words() {
    let pki = Pki::new();
    let cases: [(&str, &'static [Act], &str); 3] = [
        (
            "ftp",
            &[
                Act::Send(b"220 ready\r\n"),
                Act::Until(b"\r\n"),
                Act::Send(b"534 Policy requires SSL to be off\r\n"),
            ],
            "STARTTLS failed: the server refused AUTH TLS: \"534 Policy requires SSL to be off\"",
        ),
        (
            "postgres",
            &[Act::Exactly(8), Act::Send(b"N")],
            "STARTTLS failed: the server does not offer it",
        ),
        (
            "irc",
            &[
                Act::Until(b"\r\n"),
                Act::Send(b":irc.test 691 * :STARTTLS failure\r\n"),
            ],
            "STARTTLS failed: the server refused STARTTLS: \":irc.test 691 * :STARTTLS failure\"",
        ),
    ];
    for (proto, acts, says) in cases {
        let (addr, _heard) = fake(pki.server_config(), acts);
        let r = run(
            args(&starttls_args(&pki, proto, &port(addr), &[])),
            Input::KeepOpen(b"secret\r\n".to_vec()),
            LIMIT,
        );
        r.expect_code(1).expect_stderr(says);
        assert!(r.stdout.is_empty(), "{proto}");
    }
}

#[test]
fn xmpphost_is_only_for_xmpp() {
    for (argv, says) in [
        (
            &[
                "connect",
                "--starttls",
                "ftp",
                "--xmpphost",
                "a.test",
                "h",
                "1",
            ][..],
            "--xmpphost needs --starttls xmpp or xmpp-server",
        ),
        (
            &["connect", "--tls", "--xmpphost", "a.test", "h", "1"][..],
            "--starttls",
        ),
        (
            &[
                "connect",
                "--starttls",
                "xmpp",
                "--xmpphost",
                "a b",
                "h",
                "1",
            ][..],
            "is not a domain name",
        ),
        (&["connect", "--starttls", "gopher", "h", "1"][..], "ldap"),
    ] {
        let r = run(args(argv), Input::Bytes(Vec::new()), LIMIT);
        r.expect_code(2).expect_stderr(says);
    }
}

/// `openssl s_client -starttls PROTO` against `serve` at `addr`: s_client gets through the
/// dialogue, verifies the certificate, sends a line under TLS and prints the echo.
fn s_client_through(pki: &Pki, proto: &str, addr: SocketAddr) {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-brief",
            "-verify_return_error",
            "-starttls",
            proto,
        ])
        .args([
            "-connect",
            &addr.to_string(),
            "-verify_hostname",
            "localhost",
        ])
        .arg("-CAfile")
        .arg(&pki.ca_pem)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl runs");
    let _kill = KillOnDrop(child.id());
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello under TLS\n").unwrap();
    // The echo comes back under TLS; only then is stdin closed (s_client would otherwise
    // close the connection at EOF before reading it).
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + LIMIT;
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l == "hello under TLS") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = child.kill();
                let mut err = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                panic!("{proto}: no echo from serve; stdout {seen:?}; stderr {err}");
            }
        }
    }
    drop(stdin);
    assert!(
        support::exit_within(&mut child, LIMIT).is_some(),
        "{proto}: s_client exits"
    );
}

/// Kills a process by id when dropped (a failing test leaves no s_client behind).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.0.to_string())
            .stderr(Stdio::null())
            .status();
    }
}

/// `serve --starttls imap` and `--starttls pop3` answer openssl's STARTTLS clients, and
/// `--starttls` with no value is SMTP.
#[test]
fn serve_starttls_imap_pop3_and_default_smtp_answer_openssl_s_client() {
    let pki = Pki::new();
    for (value, s_client) in [
        (Some("imap"), "imap"),
        (Some("pop3"), "pop3"),
        (None, "smtp"),
    ] {
        let mut a = vec![
            "--cert",
            pki.cert_pem.to_str().unwrap(),
            "--key",
            pki.key_pem.to_str().unwrap(),
            "--starttls",
        ];
        a.extend(value);
        let served = Served::start(&a, Stderr::Collect);
        s_client_through(&pki, s_client, served.addr);
        // A client of another protocol is not answered as if it were this one.
        let mut c = TcpStream::connect(served.addr).unwrap();
        c.set_read_timeout(Some(LIMIT)).unwrap();
        let mut greeting = [0u8; 4];
        c.read_exact(&mut greeting).unwrap();
        let want: &[u8] = match s_client {
            "imap" => b"* OK",
            "pop3" => b"+OK ",
            _ => b"220 ",
        };
        assert_eq!(greeting, want, "{value:?}");
    }
}

/// aiosmtpd (a real SMTP/LMTP server, installed by `.ci/run`) with STARTTLS on a free port, as
/// SMTP requiring STARTTLS or as LMTP; it serves until its stdin closes. Returns it and its
/// port once it says it has started (its `Controller.start()` returned: listening and its own
/// test connection answered). Its port is picked by `free_port` (the Controller's start-up
/// check connects to the port it was given, so it cannot take port 0): if another process
/// took that port meanwhile, aiosmtpd exits before it says so, and another port is tried.
fn aiosmtpd(pki: &Pki, lmtp: bool) -> (support::KillOnDrop, u16) {
    for _ in 0..5 {
        let port = support::free_port();
        let mut child = aiosmtpd_on(pki, port, lmtp);
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
            let _ = tx.send(line);
        });
        let server = support::KillOnDrop(child);
        match rx.recv_timeout(LIMIT) {
            Ok(line) if line.trim() == "ready" => return (server, port),
            Ok(_) => continue,
            Err(_) => panic!("aiosmtpd did not start within {LIMIT:?}"),
        }
    }
    panic!("aiosmtpd could not start on five free ports");
}

fn aiosmtpd_on(pki: &Pki, port: u16, lmtp: bool) -> std::process::Child {
    const SCRIPT: &str = r#"
import ssl, sys
from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
class Handler:
    async def handle_DATA(self, server, session, envelope):
        return '250 OK'
class LmtpController(Controller):
    def factory(self):
        return LMTP(self.handler, **self.SMTP_kwargs)
cert, key, port, lmtp = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == 'lmtp'
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
# aiosmtpd's LMTP answers LHLO with 530 when STARTTLS is required, so it is only offered.
kind = LmtpController if lmtp else Controller
c = kind(Handler(), hostname='127.0.0.1', port=port, tls_context=ctx, require_starttls=not lmtp)
c.start()
print('ready', flush=True)
sys.stdin.read()
c.stop()
"#;
    Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(&pki.cert_pem)
        .arg(&pki.key_pem)
        .arg(port.to_string())
        .arg(if lmtp { "lmtp" } else { "smtp" })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs")
}

/// Against aiosmtpd: `--starttls smtp` and `--starttls lmtp` get through its dialogue and talk
/// to it under TLS; its answers to the piped commands come back, and it closes after QUIT.
#[test]
fn connect_starttls_smtp_and_lmtp_against_aiosmtpd() {
    let pki = Pki::new();
    for (proto, hello) in [("smtp", "EHLO me"), ("lmtp", "LHLO me")] {
        let (_server, port) = aiosmtpd(&pki, proto == "lmtp");
        let input = format!("{hello}\r\nNOOP\r\nQUIT\r\n").into_bytes();
        let p = port.to_string();
        let r = run(
            args(&starttls_args(&pki, proto, &p, &[])),
            Input::Bytes(input),
            LIMIT,
        );
        r.expect_code(0).expect_stderr("TLS established");
        let out = String::from_utf8_lossy(&r.stdout);
        assert!(out.starts_with("250-"), "{proto}: {out}");
        assert!(
            out.contains("\r\n250 OK\r\n") && out.ends_with("221 Bye\r\n"),
            "{proto}: {out}"
        );
    }
}
