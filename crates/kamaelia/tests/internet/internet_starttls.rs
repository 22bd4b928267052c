//! The STARTTLS components over real sockets on 127.0.0.1, for each protocol: our client
//! component against our server component, our client against a server written here, and a
//! client written here against our server. The dialogues themselves are tested without
//! sockets in the library (`internet::starttls::tests`).

use crate::server::RunningServer;
use axon::{link_refs, Component, Control, Inbox, Scheduler, CONTROL, INBOX, OUTBOX, SIGNAL};
use bytes::Bytes;
use kamaelia::internet::{
    ImapStartTlsClient, ImapStartTlsServer, Pop3StartTlsClient, Pop3StartTlsServer,
    SmtpStartTlsClient, SmtpStartTlsServer, SslReady, TcpClient, TcpServer, TlsSettings, Trust,
};
use kamaelia::OneShot;
use kamaelia_test::bounded;
use kamaelia_test::pki::TestPki;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

#[derive(Debug, Clone, Copy)]
enum Proto {
    Smtp,
    Imap,
    Pop3,
}

const PROTOS: [Proto; 3] = [Proto::Smtp, Proto::Imap, Proto::Pop3];

fn client_component(p: Proto) -> Component {
    match p {
        Proto::Smtp => SmtpStartTlsClient::new().into(),
        Proto::Imap => ImapStartTlsClient::new().into(),
        Proto::Pop3 => Pop3StartTlsClient::new().into(),
    }
}

fn server_component(p: Proto, peer: std::net::SocketAddr) -> Component {
    match p {
        Proto::Smtp => SmtpStartTlsServer::new().peer(peer).into(),
        Proto::Imap => ImapStartTlsServer::new().peer(peer).into(),
        Proto::Pop3 => Pop3StartTlsServer::new().peer(peer).into(),
    }
}

/// Client settings trusting only `pki`'s CA, for the name `localhost`.
fn settings(pki: &TestPki) -> TlsSettings {
    TlsSettings::new()
        .with_trust(Trust::Certificates(vec![pki.ca_der()]))
        .with_server_name("localhost")
}

/// Our server component for `p` behind a STARTTLS TcpServer with `pki`'s identity.
async fn start_server(p: Proto, pki: &TestPki) -> RunningServer {
    let server = TcpServer::bind("127.0.0.1:0", move |info| server_component(p, info.peer))
        .unwrap()
        .starttls(&pki.server_tls())
        .unwrap();
    RunningServer::start(server).await
}

/// What a client session saw: the bytes it passed to the user, the TLS details, and the
/// connection's signal as passed on (with any STARTTLS error).
pub(crate) struct Seen {
    pub(crate) to_user: Vec<u8>,
    pub(crate) ready: Option<SslReady>,
    pub(crate) events: Vec<Control>,
}

/// Our client component for `p` between a OneShot of `input` and a TcpClient to `port`
/// trusting `pki`, run until the connection ends.
async fn client_session(p: Proto, pki: &TestPki, port: u16, input: &'static [u8]) -> Seen {
    session_with(client_component(p), pki, port, input).await
}

/// A STARTTLS client component (`layer`) between a OneShot of `input` and a TcpClient to
/// `port` trusting `pki`, run until the connection ends.
pub(crate) async fn session_with(
    layer: Component,
    pki: &TestPki,
    port: u16,
    input: &'static [u8],
) -> Seen {
    let tls = settings(pki);
    let source: Component = OneShot::new(Bytes::from_static(input)).into();
    let conn: Component = TcpClient::new("127.0.0.1", port)
        .tls(tls)
        .wait_for_server_close(true)
        .into();
    let to_user = Inbox::<Bytes>::standalone("to user", 64);
    let events = Inbox::<Control>::standalone("events", 64);
    let ready = Inbox::<SslReady>::standalone("ready", 4);
    let l = |c: &Component, a: &str, d: &Component, b: &str| {
        link_refs(&c.boxref(a).unwrap(), &d.boxref(b).unwrap()).unwrap();
    };
    l(&source, OUTBOX, &layer, INBOX);
    l(&source, SIGNAL, &layer, CONTROL);
    l(&layer, OUTBOX, &conn, INBOX);
    l(&layer, SIGNAL, &conn, CONTROL);
    l(&layer, "makessl", &conn, "makessl");
    l(&conn, OUTBOX, &layer, "fromserver");
    l(&conn, SIGNAL, &layer, "connsignal");
    l(&conn, "sslready", &layer, "sslready");
    link_refs(&layer.boxref("touser").unwrap(), &to_user.boxref()).unwrap();
    link_refs(&layer.boxref("connevents").unwrap(), &events.boxref()).unwrap();
    link_refs(&layer.boxref("tlsready").unwrap(), &ready.boxref()).unwrap();
    let report = Scheduler::new()
        .run(async move {
            source.activate();
            layer.activate();
            conn.activate();
        })
        .await;
    assert!(report.is_ok(), "{:?}", report.failures);
    let mut seen = Seen {
        to_user: Vec::new(),
        ready: ready.try_recv(),
        events: Vec::new(),
    };
    while let Some(d) = to_user.try_recv() {
        seen.to_user.extend_from_slice(&d);
    }
    while let Some(c) = events.try_recv() {
        seen.events.push(c);
    }
    seen
}

pub(crate) fn no_errors(seen: &Seen, what: &str) {
    for c in &seen.events {
        assert!(!matches!(c, Control::Error(_)), "{what}: {c}");
    }
    let info = &seen.ready.as_ref().expect("TLS came up").info;
    assert_eq!(info.version, "TLSv1.3", "{what}");
}

/// Our client against our server: the dialogue, the switch, and the data echoed under TLS.
#[tokio::test]
async fn our_client_against_our_server_for_each_protocol() {
    bounded(async {
        let pki = TestPki::new();
        for p in PROTOS {
            let running = start_server(p, &pki).await;
            let seen = client_session(p, &pki, running.addr.port(), b"hello under TLS\r\n").await;
            no_errors(&seen, &format!("{p:?}"));
            assert_eq!(seen.to_user, b"hello under TLS\r\n", "{p:?}");
            let (report, _) = running.stop().await;
            assert!(report.is_ok(), "{p:?}: {:?}", report.failures);
        }
    })
    .await;
}

/// A server's side of a dialogue, written here: its greeting, then for each line the client
/// must send, the reply; the last reply is the go-ahead.
struct Script {
    greeting: &'static [u8],
    steps: &'static [(&'static [u8], &'static [u8])],
}

fn script(p: Proto) -> Script {
    match p {
        Proto::Smtp => Script {
            greeting: b"220-peer.test ESMTP\r\n220 hello\r\n",
            steps: &[
                (
                    b"EHLO kamaelia\r\n",
                    b"250-peer.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
                ),
                (b"STARTTLS\r\n", b"220 2.0.0 go ahead\r\n"),
            ],
        },
        Proto::Imap => Script {
            greeting: b"* OK [CAPABILITY IMAP4rev1 STARTTLS] peer ready\r\n",
            steps: &[(
                b"a1 STARTTLS\r\n",
                b"* NOTE untagged first\r\na1 OK begin\r\n",
            )],
        },
        Proto::Pop3 => Script {
            greeting: b"+OK peer ready\r\n",
            steps: &[(b"STLS\r\n", b"+OK begin\r\n")],
        },
    }
}

/// Reads one line (to `\n`) a byte at a time, so nothing after it is taken from the socket.
async fn read_line(s: &mut TcpStream) -> Vec<u8> {
    let mut line = Vec::new();
    while line.last() != Some(&b'\n') {
        line.push(s.read_u8().await.expect("a line from the client"));
    }
    line
}

/// Our client against a server written here: after the go-ahead the peer takes the TLS
/// handshake, reads the client's data, answers, and closes when the client has finished.
#[tokio::test]
async fn our_client_against_a_peer_written_here_for_each_protocol() {
    bounded(async {
        let pki = TestPki::new();
        for p in PROTOS {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let acceptor = TlsAcceptor::from(pki.server_config());
            let peer = kamaelia_test::AbortOnDrop(tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let sc = script(p);
                s.write_all(sc.greeting).await.unwrap();
                for (want, reply) in sc.steps {
                    assert_eq!(read_line(&mut s).await, *want, "{p:?}");
                    s.write_all(reply).await.unwrap();
                }
                let mut tls = acceptor.accept(s).await.unwrap();
                let mut got = Vec::new();
                tls.read_to_end(&mut got).await.unwrap();
                tls.write_all(b"got it\r\n").await.unwrap();
                tls.shutdown().await.unwrap();
                got
            }));
            let seen = client_session(p, &pki, port, b"data from the client\r\n").await;
            no_errors(&seen, &format!("{p:?}"));
            assert_eq!(seen.to_user, b"got it\r\n", "{p:?}");
            let got = (&mut { peer }.0).await.unwrap();
            assert_eq!(got, b"data from the client\r\n", "{p:?}");
        }
    })
    .await;
}

/// A client's side of a dialogue, written here: the command that asks for TLS, and the line
/// that ends the server's go-ahead.
fn client_script(p: Proto) -> (&'static [u8], &'static [u8]) {
    match p {
        Proto::Smtp => (b"EHLO me\r\nSTARTTLS\r\n", b"220 Ready to start TLS\r\n"),
        Proto::Imap => (b"x1 STARTTLS\r\n", b"x1 OK Begin TLS negotiation now\r\n"),
        Proto::Pop3 => (b"STLS\r\n", b"+OK Begin TLS negotiation\r\n"),
    }
}

/// A client written here against our server: greeting, the command, the go-ahead, then
/// tokio-rustls; the data comes back echoed under TLS.
#[tokio::test]
async fn a_client_written_here_against_our_server_for_each_protocol() {
    bounded(async {
        let pki = TestPki::new();
        let connector = TlsConnector::from(settings(&pki).client_config().unwrap());
        for p in PROTOS {
            let running = start_server(p, &pki).await;
            let mut s = TcpStream::connect(running.addr).await.unwrap();
            let (command, go_ahead) = client_script(p);
            s.write_all(command).await.unwrap();
            // Everything up to and including the go-ahead is plaintext.
            loop {
                let line = read_line(&mut s).await;
                if line == go_ahead {
                    break;
                }
            }
            let name = ServerName::try_from("localhost").unwrap();
            let mut tls = connector.connect(name, s).await.unwrap();
            tls.write_all(b"echo me\r\n").await.unwrap();
            let mut back = [0u8; 9];
            tls.read_exact(&mut back).await.unwrap();
            assert_eq!(&back, b"echo me\r\n", "{p:?}");
            tls.shutdown().await.unwrap();
            let mut rest = Vec::new();
            tls.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty(), "{p:?}: {rest:?}");
            let (report, _) = running.stop().await;
            assert!(report.is_ok(), "{p:?}: {:?}", report.failures);
        }
    })
    .await;
}

/// A server written here that sends a line after its go-ahead, in the same segment: the
/// client refuses to switch (one error for both TLS paths, `TlsError::PlaintextInjection`),
/// closes the connection, and shows the user nothing.
#[tokio::test]
async fn bytes_after_the_go_ahead_are_refused_as_injection() {
    use kamaelia::internet::{StartTlsError, TlsError};
    bounded(async {
        let pki = TestPki::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _peer = kamaelia_test::AbortOnDrop(tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"220 hi\r\n").await.unwrap();
            read_line(&mut s).await;
            s.write_all(b"250 STARTTLS\r\n").await.unwrap();
            read_line(&mut s).await;
            s.write_all(b"220 go ahead\r\n250 injected\r\n")
                .await
                .unwrap();
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest).await;
        }));
        let seen = client_session(Proto::Smtp, &pki, port, b"secret\r\n").await;
        assert!(seen.ready.is_none());
        assert!(seen.to_user.is_empty());
        let refused = seen
            .events
            .iter()
            .find_map(|c| c.error_ref::<StartTlsError>());
        match refused {
            Some(StartTlsError::Tls(TlsError::PlaintextInjection { bytes })) => {
                assert_eq!(*bytes, 14);
            }
            other => panic!("expected an injection refusal, got {other:?}"),
        }
    })
    .await;
}
