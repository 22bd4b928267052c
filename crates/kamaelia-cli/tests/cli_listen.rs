//! `kamaelia listen` (issue 10 §1) as a real process with real pipes: receiving a file from
//! `kamaelia send` (plain and TLS), the peer tools (nc, ncat, socat) as its client, and a peer
//! that half-closes first.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use kamaelia_test::sha256;
use support::certs::Pki;
use support::{
    args, free_port, peer_tool, random_bytes, run, start, wait_listening, Input, TempDir,
};

const LIMIT: Duration = Duration::from_secs(240);

/// `listen PORT > out`, then `send 127.0.0.1 PORT file` of `size` bytes: byte-exact, both 0.
fn receive_a_file(size: usize, listen_extra: &[&str], send_extra: &[&str]) {
    let dir = TempDir::new("listen-file");
    let data = random_bytes(size);
    let file = dir.write("payload.bin", &data);
    let port = free_port().to_string();
    let mut listen = args(&["listen"]);
    listen.args(listen_extra).arg(&port);
    let listening = start(listen, Input::Bytes(Vec::new()));
    wait_listening(port.parse().unwrap(), Duration::from_secs(30));
    let mut send = args(&["send"]);
    send.args(send_extra).args(["127.0.0.1", &port]).arg(&file);
    let sent = run(send, Input::Bytes(Vec::new()), LIMIT);
    sent.expect_code(0);
    let got = listening.finish(LIMIT);
    got.expect_code(0)
        .expect_stderr(&format!("listening on 127.0.0.1:{port}"))
        .expect_stderr("connection from 127.0.0.1:");
    assert_eq!(got.stdout.len(), data.len(), "{}", got.stderr);
    assert_eq!(sha256(&got.stdout), sha256(&data), "byte-exact");
}

#[test]
fn listen_receives_100_mb_from_send_byte_exact() {
    receive_a_file(100_000_000, &[], &[]);
}

#[test]
fn listen_receives_a_file_over_tls_byte_exact() {
    let pki = Pki::new();
    let (cert, key, ca) = (
        pki.cert_pem.display().to_string(),
        pki.key_pem.display().to_string(),
        pki.ca_pem.display().to_string(),
    );
    receive_a_file(
        20_000_000,
        &["--cert", &cert, "--key", &key],
        &["--tls", "--ca", &ca],
    );
}

#[test]
fn listen_prints_its_address_even_when_quiet_and_nothing_else_on_stdout() {
    let port = free_port();
    let listening = start(
        args(&["-q", "listen", &port.to_string()]),
        Input::Bytes(b"to the peer".to_vec()),
    );
    wait_listening(port, Duration::from_secs(30));
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    c.write_all(b"from the peer").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"to the peer");
    let run = listening.finish(LIMIT);
    run.expect_code(0);
    assert_eq!(run.stdout, b"from the peer");
    assert_eq!(
        run.stderr.trim(),
        format!("kamaelia: listening on 127.0.0.1:{port}"),
        "-q leaves only the address line"
    );
}

/// The peer's FIN must not stop our upload: 5 MB of stdin reach a peer that half-closed
/// before reading any of it.
#[test]
fn listen_sends_all_its_input_to_a_peer_that_half_closed_first() {
    let data = random_bytes(5_000_000);
    let port = free_port();
    let listening = start(
        args(&["listen", &port.to_string()]),
        Input::Bytes(data.clone()),
    );
    wait_listening(port, Duration::from_secs(30));
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    c.write_all(b"bye").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    let run = listening.finish(LIMIT);
    run.expect_code(0)
        .expect_stderr("the peer finished sending");
    assert_eq!(run.stdout, b"bye");
    assert_eq!(sha256(&got), sha256(&data), "all of stdin reached the peer");
}

/// A second connection while the first is served is refused: the listening socket is closed
/// once one is accepted.
#[test]
fn listen_refuses_a_second_connection() {
    let port = free_port();
    let listening = start(
        args(&["listen", &port.to_string()]),
        Input::Bytes(Vec::new()),
    );
    wait_listening(port, Duration::from_secs(30));
    let mut first = TcpStream::connect(("127.0.0.1", port)).unwrap();
    first.write_all(b"first").unwrap();
    // Once the first is accepted nothing listens on the port any more.
    let started = std::time::Instant::now();
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
                break;
            }
            Ok(_) => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "still listening"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    drop(first);
    let run = listening.finish(LIMIT);
    assert_eq!(run.stdout, b"first");
}

/// nc, ncat and socat as the client: each sends its stdin and prints what listen sent.
#[test]
fn listen_with_nc_ncat_and_socat_as_the_client() {
    let cases: [(&str, &[&str]); 3] = [
        ("nc", &["-N", "127.0.0.1"]),
        ("ncat", &["127.0.0.1"]),
        ("socat", &["-t", "10", "-"]),
    ];
    for (tool, tool_args) in cases {
        let Some(path) = peer_tool(tool) else {
            continue;
        };
        let port = free_port();
        let listening = start(
            args(&["listen", &port.to_string()]),
            Input::Bytes(format!("from listen to {tool}\n").into_bytes()),
        );
        wait_listening(port, Duration::from_secs(30));
        let mut cmd = std::process::Command::new(path);
        cmd.args(tool_args);
        if tool == "socat" {
            cmd.arg(format!("TCP:127.0.0.1:{port}"));
        } else {
            cmd.arg(port.to_string());
        }
        let peer = run(
            cmd,
            Input::Bytes(format!("from {tool} to listen\n").into_bytes()),
            LIMIT,
        );
        peer.expect_code(0);
        assert_eq!(
            String::from_utf8_lossy(&peer.stdout),
            format!("from listen to {tool}\n"),
            "{tool}"
        );
        let got = listening.finish(LIMIT);
        got.expect_code(0);
        assert_eq!(
            String::from_utf8_lossy(&got.stdout),
            format!("from {tool} to listen\n"),
            "{tool}"
        );
    }
}

/// `--idle-timeout`: a peer that says nothing ends the session with exit status 1.
#[test]
fn listen_ends_an_idle_session() {
    let port = free_port();
    let listening = start(
        args(&["listen", "--idle-timeout", "0.5", &port.to_string()]),
        Input::KeepOpen(Vec::new()),
    );
    wait_listening(port, Duration::from_secs(30));
    let _silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let run = listening.finish(LIMIT);
    run.expect_code(1).expect_stderr("idle timeout");
}

/// TLS with a client that is not ours: a rustls client over a std socket sends 1 MB and
/// receives listen's 1 MB of stdin, both byte-exact.
#[test]
fn listen_over_tls_with_a_rustls_client_byte_exact() {
    use rustls_pki_types::pem::PemObject as _;
    let pki = Pki::new();
    let port = free_port();
    let upload = random_bytes(1_000_000);
    let listening = start(
        args(&[
            "listen",
            "--cert",
            &pki.cert_pem.display().to_string(),
            "--key",
            &pki.key_pem.display().to_string(),
            &port.to_string(),
        ]),
        Input::Bytes(upload.clone()),
    );
    wait_listening(port, Duration::from_secs(30));
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_file(&pki.ca_pem).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(LIMIT)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let download = random_bytes(1_000_000);
    tls.write_all(&download).unwrap();
    tls.conn.send_close_notify();
    tls.flush().unwrap();
    let mut got = Vec::new();
    let _ = tls.read_to_end(&mut got);
    let run = listening.finish(LIMIT);
    run.expect_code(0).expect_stderr("TLS established");
    assert_eq!(
        sha256(&got),
        sha256(&upload),
        "listen's stdin reached the client"
    );
    assert_eq!(
        sha256(&run.stdout),
        sha256(&download),
        "the client's bytes reached stdout"
    );
}

/// `listen --starttls PROTO` (the server side of the dialogue, then TLS) receiving a file
/// from `send --starttls PROTO`: byte-exact under TLS for each protocol. Both sides half-close
/// at the end (`--shutdown`: a STARTTLS session otherwise keeps its write side open).
#[test]
fn listen_starttls_receives_a_file_byte_exact_for_each_protocol() {
    let pki = Pki::new();
    let (cert, key, ca) = (
        pki.cert_pem.display().to_string(),
        pki.key_pem.display().to_string(),
        pki.ca_pem.display().to_string(),
    );
    for proto in ["smtp", "imap", "pop3"] {
        receive_a_file(
            2_000_000,
            &[
                "--starttls",
                proto,
                "--cert",
                &cert,
                "--key",
                &key,
                "--shutdown",
            ],
            &["--starttls", proto, "--ca", &ca, "--shutdown"],
        );
    }
}

/// `openssl s_client -starttls PROTO` as the peer of `listen --starttls PROTO`: its line
/// reaches listen's stdout, and listen's stdin reaches it, under TLS.
#[test]
fn listen_starttls_with_openssl_s_client_as_the_peer() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    if peer_tool("openssl").is_none() {
        eprintln!("skipped: openssl is not installed");
        return;
    }
    let pki = Pki::new();
    let (cert, key, ca) = (
        pki.cert_pem.display().to_string(),
        pki.key_pem.display().to_string(),
        pki.ca_pem.display().to_string(),
    );
    for proto in ["smtp", "imap", "pop3"] {
        let port = free_port().to_string();
        let mut listen = args(&["listen", "--starttls", proto]);
        listen.args(["--cert", &cert, "--key", &key]).arg(&port);
        let listening = start(listen, Input::Bytes(b"to the peer\n".to_vec()));
        wait_listening(port.parse().unwrap(), Duration::from_secs(30));
        let mut client = Command::new("openssl")
            // -no_ign_eof: the end of its stdin ends the session (-quiet alone ignores it).
            .args(["s_client", "-quiet", "-no_ign_eof", "-starttls", proto])
            .args(["-CAfile", &ca])
            .args([
                "-verify_return_error",
                "-connect",
                &format!("127.0.0.1:{port}"),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = client.stdin.take().unwrap();
        stdin.write_all(b"to listen\n").unwrap();
        let stdout = client.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("to the peer") {
                    let _ = tx.send(());
                    break;
                }
            }
        });
        let seen = rx.recv_timeout(LIMIT).is_ok();
        drop(stdin);
        let _ = support::exit_within(&mut client, Duration::from_secs(30));
        let _ = client.kill();
        let got = listening.finish(LIMIT);
        assert!(seen, "{proto}: s_client saw listen's stdin: {}", got.stderr);
        assert_eq!(got.stdout, b"to listen\n", "{proto}: {}", got.stderr);
        got.expect_stderr("TLS established");
    }
}

/// A peer that quits before STARTTLS: nothing of listen's input reaches it in plaintext,
/// and listen exits 1 saying so.
#[test]
fn listen_starttls_sends_nothing_to_a_peer_that_quits_before_tls() {
    let pki = Pki::new();
    let (cert, key) = (
        pki.cert_pem.display().to_string(),
        pki.key_pem.display().to_string(),
    );
    let port = free_port().to_string();
    let mut listen = args(&[
        "listen",
        "--starttls",
        "smtp",
        "--cert",
        &cert,
        "--key",
        &key,
    ]);
    listen.arg(&port);
    let listening = start(listen, Input::Bytes(b"SECRET from stdin\n".to_vec()));
    wait_listening(port.parse().unwrap(), Duration::from_secs(30));
    let mut peer = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
    peer.set_read_timeout(Some(LIMIT)).unwrap();
    peer.write_all(b"EHLO peer\r\nnot a command\r\nQUIT\r\n")
        .unwrap();
    // As an SMTP client does: close once the 221 has come.
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("221 ") {
        match peer.read(&mut buf).unwrap() {
            0 => break,
            n => seen.extend_from_slice(&buf[..n]),
        }
    }
    peer.shutdown(Shutdown::Write).unwrap();
    peer.read_to_end(&mut seen).unwrap();
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.starts_with("220 "), "{seen}");
    assert!(seen.contains("250 STARTTLS"), "{seen}");
    assert!(
        !seen.contains("SECRET"),
        "stdin leaked in plaintext: {seen}"
    );
    let got = listening.finish(LIMIT);
    got.expect_code(1).expect_stderr("quit before STARTTLS");
    assert!(got.stdout.is_empty(), "nothing before TLS reaches stdout");
}
