//! The ten STARTTLS clients beyond SMTP/IMAP/POP3 (LMTP, FTP, XMPP as client and as server,
//! IRC, PostgreSQL, MySQL, NNTP, ManageSieve, LDAP) over real sockets on 127.0.0.1, each
//! against a fake server written here that speaks the protocol's real exchange and then TLS
//! with a `TestPki` certificate: the go-ahead, the refusal, and bytes after the go-ahead in the
//! same segment (injection). Each fake is itself checked against `openssl s_client
//! -starttls PROTO`, so that it is the protocol and not our reading of it.

use std::process::{Command, Stdio};
use std::sync::Arc;

use axon::{Component, Control};
use kamaelia::internet::{
    FtpStartTlsClient, IrcStartTlsClient, LdapStartTlsClient, LmtpStartTlsClient,
    MysqlStartTlsClient, NntpStartTlsClient, PostgresStartTlsClient, SieveStartTlsClient,
    StartTlsError, TlsError, XmppStartTlsClient,
};
use kamaelia_test::bounded;
use kamaelia_test::pki::TestPki;
use rustls::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::internet_starttls::{no_errors, session_with, Seen};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum P {
    Lmtp,
    Ftp,
    Xmpp,
    XmppServer,
    Irc,
    Postgres,
    Mysql,
    Nntp,
    Sieve,
    Ldap,
}

const ALL: [P; 10] = [
    P::Lmtp,
    P::Ftp,
    P::Xmpp,
    P::XmppServer,
    P::Irc,
    P::Postgres,
    P::Mysql,
    P::Nntp,
    P::Sieve,
    P::Ldap,
];

/// The name `openssl s_client -starttls` knows the protocol by.
fn s_client_name(p: P) -> &'static str {
    match p {
        P::Lmtp => "lmtp",
        P::Ftp => "ftp",
        P::Xmpp => "xmpp",
        P::XmppServer => "xmpp-server",
        P::Irc => "irc",
        P::Postgres => "postgres",
        P::Mysql => "mysql",
        P::Nntp => "nntp",
        P::Sieve => "sieve",
        P::Ldap => "ldap",
    }
}

fn client(p: P) -> Component {
    match p {
        P::Lmtp => LmtpStartTlsClient::new().into(),
        P::Ftp => FtpStartTlsClient::new().into(),
        P::Xmpp => XmppStartTlsClient::new("localhost").into(),
        P::XmppServer => XmppStartTlsClient::new("localhost")
            .server_to_server(true)
            .into(),
        P::Irc => IrcStartTlsClient::new().into(),
        P::Postgres => PostgresStartTlsClient::new().into(),
        P::Mysql => MysqlStartTlsClient::new().into(),
        P::Nntp => NntpStartTlsClient::new().into(),
        P::Sieve => SieveStartTlsClient::new().into(),
        P::Ldap => LdapStartTlsClient::new().into(),
    }
}

/// How the fake server ends its dialogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The go-ahead, then TLS.
    Go,
    /// The protocol's refusal.
    Refuse,
    /// The go-ahead with more bytes after it in the same write.
    Inject,
}

/// One step of a fake server's dialogue.
#[derive(Debug, Clone)]
enum Act {
    /// Write these bytes (in one write).
    Send(Vec<u8>),
    /// Read one line.
    Line,
    /// Read exactly this many bytes.
    Exactly(usize),
    /// Read up to and including this marker.
    Until(&'static [u8]),
}

/// A MySQL handshake packet (protocol 10), with or without CLIENT_SSL.
fn mysql_greeting(ssl: bool) -> Vec<u8> {
    let caps: u16 = if ssl { 0xffff } else { !0x0800 };
    let mut p = vec![10];
    p.extend_from_slice(b"8.0.36-fake\0");
    p.extend_from_slice(&9u32.to_le_bytes());
    p.extend_from_slice(b"12345678\0");
    p.extend_from_slice(&caps.to_le_bytes());
    p.extend_from_slice(&[0xff, 2, 0, 0xff, 0xdf, 21]);
    p.extend_from_slice(&[0; 10]);
    p.extend_from_slice(b"abcdefghijkl\0mysql_native_password\0");
    let mut packet = (p.len() as u32).to_le_bytes()[..3].to_vec();
    packet.push(0);
    packet.extend_from_slice(&p);
    packet
}

/// An LDAP ExtendedResponse (message ID 1) with this result code.
fn ldap_response(code: u8) -> Vec<u8> {
    let msg: &[u8] = if code == 0 { b"" } else { b"StartTLS refused" };
    let mut op = vec![0x0a, 1, code, 0x04, 0, 0x04, msg.len() as u8];
    op.extend_from_slice(msg);
    let mut content = vec![0x02, 1, 1, 0x78, op.len() as u8];
    content.extend_from_slice(&op);
    let mut m = vec![0x30, content.len() as u8];
    m.extend_from_slice(&content);
    m
}

const XMPP_OPEN: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='localhost' version='1.0'>\
    <stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>\
    </stream:features>";

/// The fake server's dialogue for `p` ending in `outcome`: what it reads and writes, the
/// last write being the go-ahead or the refusal. (MySQL has no go-ahead: the decision is in
/// the server's first packet, and the client's SSLRequest follows it.)
fn dialogue(p: P, outcome: Outcome) -> Vec<Act> {
    use Act::*;
    let s = |b: &[u8]| Send(b.to_vec());
    let (mut acts, go, refuse): (Vec<Act>, Vec<u8>, Vec<u8>) =
        match p {
            P::Lmtp => (
                vec![
                    s(b"220 lmtp.test LMTP ready\r\n"),
                    Line,
                    s(b"250-lmtp.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n"),
                    Line,
                ],
                b"220 2.0.0 Ready to start TLS\r\n".to_vec(),
                b"454 4.7.0 TLS not available due to local problem\r\n".to_vec(),
            ),
            P::Ftp => (
                vec![s(b"220-ftp.test\r\n220 ready\r\n"), Line],
                b"234 AUTH TLS successful\r\n".to_vec(),
                b"534 Policy denies TLS\r\n".to_vec(),
            ),
            P::Xmpp | P::XmppServer => (
                vec![Until(b">"), s(XMPP_OPEN), Until(b"/>")],
                b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>".to_vec(),
                b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>".to_vec(),
            ),
            P::Irc => (
                vec![Line],
                b":irc.test 670 * :STARTTLS successful, go ahead with TLS handshake\r\n".to_vec(),
                b":irc.test 691 * :STARTTLS failure\r\n".to_vec(),
            ),
            P::Postgres => (vec![Exactly(8)], b"S".to_vec(), b"N".to_vec()),
            P::Mysql => (vec![], mysql_greeting(true), mysql_greeting(false)),
            P::Nntp => (
                vec![
                    s(b"200 news.test ready\r\n"),
                    Line,
                    s(b"101 Capability list:\r\nVERSION 2\r\nREADER\r\nSTARTTLS\r\n.\r\n"),
                    Line,
                ],
                b"382 Continue with TLS negotiation\r\n".to_vec(),
                b"580 Can not initiate TLS negotiation\r\n".to_vec(),
            ),
            P::Sieve => (
                vec![
                s(b"\"IMPLEMENTATION\" \"fake\"\r\n\"SIEVE\" \"fileinto\"\r\n\"STARTTLS\"\r\n\
                    \"VERSION\" \"1.0\"\r\nOK \"ready\"\r\n"),
                Line,
            ],
                b"OK \"Begin TLS negotiation now\"\r\n".to_vec(),
                b"NO \"TLS is not available\"\r\n".to_vec(),
            ),
            P::Ldap => (vec![Exactly(31)], ldap_response(0), ldap_response(2)),
        };
    match outcome {
        Outcome::Go => acts.push(Send(go)),
        Outcome::Refuse => acts.push(Send(refuse)),
        Outcome::Inject => {
            let mut go = go;
            go.extend_from_slice(b"INJECTED\r\n");
            acts.push(Send(go));
        }
    }
    if p == P::Mysql && outcome == Outcome::Go {
        acts.push(Exactly(36));
    }
    acts
}

/// Reads one byte at a time until `done` says so (at most 8 KiB).
async fn read_until(s: &mut TcpStream, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut got = Vec::new();
    while !done(&got) && got.len() < 8192 {
        got.push(s.read_u8().await.expect("the client's bytes"));
    }
    got
}

/// What the fake server read in plaintext, and under TLS (for `Go`).
#[derive(Debug)]
struct Heard {
    plaintext: Vec<Vec<u8>>,
    under_tls: Vec<u8>,
}

/// Runs `p`'s fake server for one client: the dialogue; for `Go`, TLS, a line from the
/// client, `got it`, and a clean close; otherwise reads until the client closes.
async fn fake_server(
    listener: TcpListener,
    p: P,
    outcome: Outcome,
    identity: Arc<ServerConfig>,
) -> Heard {
    let (mut s, _) = listener.accept().await.unwrap();
    let mut heard = Heard {
        plaintext: Vec::new(),
        under_tls: Vec::new(),
    };
    for act in dialogue(p, outcome) {
        let got = match act {
            Act::Send(b) => {
                s.write_all(&b).await.unwrap();
                continue;
            }
            Act::Line => read_until(&mut s, |g| g.last() == Some(&b'\n')).await,
            Act::Exactly(n) => read_until(&mut s, |g| g.len() == n).await,
            Act::Until(m) => read_until(&mut s, |g| g.ends_with(m)).await,
        };
        heard.plaintext.push(got);
    }
    if outcome != Outcome::Go {
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
        heard.under_tls = rest;
        return heard;
    }
    let mut tls = TlsAcceptor::from(identity)
        .accept(s)
        .await
        .expect("the TLS handshake");
    while heard.under_tls.last() != Some(&b'\n') {
        match tls.read_u8().await {
            Ok(c) => heard.under_tls.push(c),
            Err(_) => break,
        }
    }
    tls.write_all(b"got it\r\n").await.unwrap();
    tls.shutdown().await.unwrap();
    heard
}

/// `p`'s fake server, with `pki`'s identity, on its own task.
fn spawn_fake(
    listener: TcpListener,
    p: P,
    outcome: Outcome,
    pki: &TestPki,
) -> kamaelia_test::AbortOnDrop<Heard> {
    let identity = pki.server_config();
    kamaelia_test::AbortOnDrop(tokio::spawn(fake_server(listener, p, outcome, identity)))
}

/// A listener on 127.0.0.1 and its port.
async fn listen() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// What our client must have sent in plaintext to `p`'s fake server.
fn our_words(p: P) -> Vec<Vec<u8>> {
    let header = |ns: &str| {
        format!(
            "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
             xmlns='jabber:{ns}' to='localhost' version='1.0'>"
        )
        .into_bytes()
    };
    let starttls = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>".to_vec();
    let mut ldap = vec![0x30, 0x1d, 0x02, 0x01, 0x01, 0x77, 0x18, 0x80, 0x16];
    ldap.extend_from_slice(b"1.3.6.1.4.1.1466.20037");
    match p {
        P::Lmtp => vec![b"LHLO kamaelia\r\n".to_vec(), b"STARTTLS\r\n".to_vec()],
        P::Ftp => vec![b"AUTH TLS\r\n".to_vec()],
        P::Xmpp => vec![header("client"), starttls],
        P::XmppServer => vec![header("server"), starttls],
        P::Irc => vec![b"STARTTLS\r\n".to_vec()],
        P::Postgres => vec![vec![0, 0, 0, 8, 4, 210, 22, 47]],
        P::Mysql => vec![],
        P::Nntp => vec![b"CAPABILITIES\r\n".to_vec(), b"STARTTLS\r\n".to_vec()],
        P::Sieve => vec![b"STARTTLS\r\n".to_vec()],
        P::Ldap => vec![ldap],
    }
}

/// Our client for `p` against `p`'s fake server ending in `outcome`, with `input` from the
/// user: what the session saw and what the fake heard. When the dialogue did not succeed,
/// TLS never came up and the user was shown nothing.
async fn against_fake(
    p: P,
    outcome: Outcome,
    pki: &TestPki,
    input: &'static [u8],
) -> (Seen, Heard) {
    let (listener, port) = listen().await;
    let server = spawn_fake(listener, p, outcome, pki);
    let seen = session_with(client(p), pki, port, input).await;
    let heard = (&mut { server }.0).await.unwrap();
    if outcome != Outcome::Go {
        assert!(seen.ready.is_none(), "{p:?}");
        assert!(seen.to_user.is_empty(), "{p:?}");
    }
    (seen, heard)
}

/// Our client against each fake server: the dialogue (its exact words), TLS 1.3, and data
/// both ways under TLS.
#[tokio::test]
async fn each_client_switches_to_tls_after_its_protocols_go_ahead() {
    bounded(async {
        let pki = TestPki::new();
        for p in ALL {
            let (seen, heard) =
                against_fake(p, Outcome::Go, &pki, b"data from the client\r\n").await;
            no_errors(&seen, &format!("{p:?}"));
            assert_eq!(seen.to_user, b"got it\r\n", "{p:?}");
            let mut words = heard.plaintext.clone();
            if p == P::Mysql {
                // The SSLRequest: 32 bytes, sequence 1, CLIENT_SSL set.
                let req = words.pop().expect("the SSLRequest");
                assert_eq!(req[..4], [32, 0, 0, 1]);
                assert_eq!(req[5] & 0x08, 0x08, "CLIENT_SSL");
            }
            assert_eq!(words, our_words(p), "{p:?}");
            assert_eq!(heard.under_tls, b"data from the client\r\n", "{p:?}");
        }
    })
    .await;
}

/// The StartTlsError a session reported, if any.
fn error(seen: &Seen) -> Option<&StartTlsError> {
    seen.events
        .iter()
        .find_map(|c| c.error_ref::<StartTlsError>())
}

/// Each fake server refuses: the client fails with the protocol's refusal in plain words,
/// never starts TLS, never shows the user a byte, and sends nothing of the user's.
#[tokio::test]
async fn each_client_reports_its_protocols_refusal() {
    bounded(async {
        let pki = TestPki::new();
        for p in ALL {
            let (seen, heard) = against_fake(p, Outcome::Refuse, &pki, b"secret\r\n").await;
            let e = error(&seen).unwrap_or_else(|| panic!("{p:?}: no error"));
            let ok = match p {
                P::Postgres | P::Mysql => matches!(e, StartTlsError::NotOffered),
                _ => matches!(e, StartTlsError::Refused { .. }),
            };
            assert!(ok, "{p:?}: {e}");
            assert!(e.to_string().starts_with("STARTTLS failed: "), "{p:?}: {e}");
            assert!(heard.under_tls.is_empty(), "{p:?}: {:?}", heard.under_tls);
            assert!(
                !seen
                    .events
                    .iter()
                    .any(|c| matches!(c, Control::Error(_))
                        && c.error_ref::<StartTlsError>().is_none()),
                "{p:?}: {:?}",
                seen.events
            );
        }
    })
    .await;
}

/// Each fake server sends bytes after its go-ahead in the same segment: the client refuses
/// to switch (`TlsError::PlaintextInjection` with their count), shows the user nothing, and
/// closes.
#[tokio::test]
async fn bytes_after_each_protocols_go_ahead_are_refused_as_injection() {
    bounded(async {
        let pki = TestPki::new();
        for p in ALL {
            let (seen, heard) = against_fake(p, Outcome::Inject, &pki, b"secret\r\n").await;
            match error(&seen) {
                Some(StartTlsError::Tls(TlsError::PlaintextInjection { bytes })) => {
                    assert_eq!(*bytes, 10, "{p:?}");
                }
                other => panic!("{p:?}: expected an injection refusal, got {other:?}"),
            }
            assert!(
                !heard.under_tls.windows(6).any(|w| w == b"secret"),
                "{p:?}: the user's bytes left in plaintext"
            );
        }
    })
    .await;
}

/// Each fake server against `openssl s_client -starttls PROTO`: s_client gets through the
/// dialogue, verifies the certificate, sends a line under TLS and prints the answer. This is
/// what makes the fakes (and so the tests above) the protocols and not our reading of them.
#[tokio::test]
async fn each_fake_server_satisfies_openssl_s_client() {
    bounded(async {
        let pki = TestPki::new();
        let ca = pki.write_ca_pem();
        for p in ALL {
            let (listener, port) = listen().await;
            let server = spawn_fake(listener, p, Outcome::Go, &pki);
            let ca = ca.path().to_owned();
            let out = tokio::task::spawn_blocking(move || {
                let mut cmd = Command::new("timeout");
                cmd.args([
                    "30",
                    "openssl",
                    "s_client",
                    "-quiet",
                    "-verify_return_error",
                ])
                .args(["-connect", &format!("127.0.0.1:{port}")])
                .args(["-starttls", s_client_name(p)])
                .args(["-verify_hostname", "localhost", "-servername", "localhost"])
                .arg("-CAfile")
                .arg(&ca);
                if matches!(p, P::Xmpp | P::XmppServer) {
                    cmd.args(["-xmpphost", "localhost"]);
                }
                let mut child = cmd
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("openssl runs");
                use std::io::Write;
                let mut stdin = child.stdin.take().unwrap();
                stdin.write_all(b"hello from s_client\n").unwrap();
                drop(stdin);
                child.wait_with_output().unwrap()
            })
            .await
            .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stdout.contains("got it"), "{p:?}: {stdout}\n{stderr}");
            let heard = (&mut { server }.0).await.unwrap();
            assert_eq!(heard.under_tls, b"hello from s_client\n", "{p:?}");
        }
    })
    .await;
}

/// A server that accepts and says nothing (many IRC servers do not answer an unknown command
/// before registration; a PostgreSQL port behind a black hole): the dialogue's clock, started
/// at `Connected`, ends it with `StartTlsError::TimedOut`.
#[tokio::test]
async fn a_silent_server_meets_the_dialogue_timeout() {
    use std::time::Duration;
    bounded(async {
        let pki = TestPki::new();
        let limit = Duration::from_millis(300);
        let clients: [Component; 2] = [
            IrcStartTlsClient::new().timeout(limit).into(),
            PostgresStartTlsClient::new().timeout(limit).into(),
        ];
        for layer in clients {
            let (listener, port) = listen().await;
            let _server = kamaelia_test::AbortOnDrop(tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest).await;
                rest
            }));
            let seen = session_with(layer, &pki, port, b"secret\r\n").await;
            assert!(seen.ready.is_none());
            match error(&seen) {
                Some(StartTlsError::TimedOut(after)) => assert_eq!(*after, limit),
                other => panic!("expected a timeout, got {other:?}"),
            }
        }
    })
    .await;
}
