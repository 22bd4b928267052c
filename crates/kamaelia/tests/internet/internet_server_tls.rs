//! TcpServer with TLS, against tokio-rustls clients trusting a CA made at test time: TLS from
//! the first byte (echo, an untrusting client, a plaintext client) and STARTTLS (the client's
//! ClientHello pipelined right behind its command, and the ordinary wait-for-220 flow).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use crate::server::{echo_through, RunningServer};
use axon::{Component, Control};
use bytes::{Bytes, BytesMut};
use kamaelia::internet::starttls::HandshakeReplay;
use kamaelia::internet::{EchoProtocol, MakeSsl, SslReady, TcpError, TcpServer, TlsError};
use kamaelia_test::bounded;
use kamaelia_test::pki::TestPki;
use kamaelia_test::{random_bytes, sha256};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A tokio-rustls connector trusting only `pki`'s CA.
fn connector(pki: &TestPki) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

async fn tls_client(pki: &TestPki, addr: SocketAddr) -> io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    connector(pki).connect(localhost(), tcp).await
}

async fn tls_server(pki: &TestPki) -> RunningServer {
    let server = TcpServer::bind("127.0.0.1:0", |_| EchoProtocol::new())
        .unwrap()
        .tls(&pki.server_tls())
        .unwrap();
    RunningServer::start(server).await
}

/// One message there and back over an open TLS connection.
async fn ping<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, msg: &[u8]) {
    s.write_all(msg).await.unwrap();
    s.flush().await.unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).await.unwrap();
    assert_eq!(back, msg);
}

/// The next error on the server's `signal`, as a TcpError.
async fn next_tcp_error(running: &RunningServer) -> TcpError {
    let msg = running.next_signal().await;
    msg.error_ref::<TcpError>()
        .unwrap_or_else(|| panic!("expected a TcpError on signal, got {msg}"))
        .clone()
}

#[tokio::test]
async fn tls_from_the_first_byte_echoes_exactly() {
    bounded(async {
        let pki = TestPki::new();
        let running = tls_server(&pki).await;
        let stream = tls_client(&pki, running.addr).await.unwrap();
        let (_, session) = stream.get_ref();
        assert_eq!(
            session.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        let data = random_bytes(3, 2 * 1024 * 1024 + 17);
        // The client's shutdown sends close_notify; the server echoes what is left, then
        // sends its own close_notify, so read_to_end sees a clean end.
        let got = echo_through(stream, &data, 3, 40_000).await;
        assert_eq!(sha256(&got), sha256(&data));
        running.wait_live(1).await;
        let (report, rest) = running.stop().await;
        assert!(report.is_ok(), "{:?}", report.failures);
        assert_eq!(rest.len(), 1, "no errors expected: {rest:?}");
    })
    .await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_fails_alone() {
    bounded(async {
        let pki = TestPki::new();
        let running = tls_server(&pki).await;
        let mut good = tls_client(&pki, running.addr).await.unwrap();
        ping(&mut good, b"before").await;

        let stranger = TestPki::new();
        let err = tls_client(&stranger, running.addr).await.unwrap_err();
        let inner = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>());
        assert!(
            matches!(inner, Some(rustls::Error::InvalidCertificate(_))),
            "{err}"
        );
        // The client's alert fails the server's handshake on that connection only.
        let e = next_tcp_error(&running).await;
        assert!(
            matches!(e, TcpError::Tls(TlsError::HandshakeFailed(_))),
            "{e:?}"
        );

        ping(&mut good, b"after").await;
        let mut another = tls_client(&pki, running.addr).await.unwrap();
        ping(&mut another, b"another").await;
        drop((good, another));
        let (report, _) = running.stop().await;
        assert!(report.is_ok(), "{:?}", report.failures);
    })
    .await;
}

#[tokio::test]
async fn a_plaintext_client_is_a_tls_error_and_the_server_serves_on() {
    bounded(async {
        let pki = TestPki::new();
        let running = tls_server(&pki).await;
        let mut plain = TcpStream::connect(running.addr).await.unwrap();
        plain
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let e = next_tcp_error(&running).await;
        assert!(matches!(e, TcpError::Tls(TlsError::NotTls)), "{e:?}");
        assert!(
            e.to_string().contains("did not speak TLS"),
            "{e}: the message names the problem"
        );
        // The server answers with an alert at most, and closes; never plaintext data.
        let mut answer = Vec::new();
        let _ = plain.read_to_end(&mut answer).await;
        assert!(answer.first().is_none_or(|b| *b == 0x15), "{answer:?}");

        let mut good = tls_client(&pki, running.addr).await.unwrap();
        ping(&mut good, b"still serving").await;
        drop(good);
        let (report, _) = running.stop().await;
        assert!(report.is_ok(), "{:?}", report.failures);
    })
    .await;
}

// ---- STARTTLS ----

const STARTTLS: &[u8] = b"STARTTLS\r\n";
const GO_AHEAD: &[u8] = b"220 go ahead\r\n";

/// What the STARTTLS protocol tells the test.
#[derive(Debug)]
enum Seen {
    /// A slow protocol has read the command and taken all that followed it.
    Command,
    Ready(SslReady),
    /// Plaintext arrived after makessl was sent: bytes the handshake never saw.
    LateBytes(usize),
}

/// A small STARTTLS server protocol: reads the line `STARTTLS\r\n`, asks its connection to
/// switch (replying `220 go ahead` and handing back whatever followed the line), waits for
/// `sslready`, then echoes. A `slow` one, after taking what followed the line, says so and
/// waits until more data has arrived before it asks (as a protocol busy elsewhere would).
fn starttls_protocol(seen: mpsc::UnboundedSender<Seen>, slow: bool) -> Component {
    let mut b = Component::build("StartTlsEcho");
    let inbox = b.inbox::<Bytes>("inbox", "data from the connection");
    let control = b.control();
    let outbox = b.outbox::<Bytes>("outbox", "data to the connection");
    let signal = b.signal();
    let makessl = b.outbox::<MakeSsl>("makessl", "switch the connection to TLS");
    let sslready = b.inbox::<SslReady>("sslready", "the TLS handshake is done");
    b.main(move |_| async move {
        let mut buf = BytesMut::new();
        let line_end = loop {
            tokio::select! {
                d = inbox.recv() => {
                    buf.extend_from_slice(&d);
                    if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                        break i + 2;
                    }
                }
                c = control.recv() => {
                    let _ = signal.send(c).await;
                    return Ok(());
                }
            }
        };
        let line = buf.split_to(line_end);
        if line != STARTTLS {
            return Err(format!("expected STARTTLS, got {line:?}").into());
        }
        // Anything else already delivered followed the command: the start of the handshake.
        while let Some(d) = inbox.try_recv() {
            buf.extend_from_slice(&d);
        }
        if slow {
            let _ = seen.send(Seen::Command);
            inbox.ready().await;
        }
        makessl
            .send(
                MakeSsl::new()
                    .with_reply(GO_AHEAD)
                    .with_consumed(line_end as u64),
            )
            .await?;
        // Everything after the command, delivered before or after makessl, was the client's
        // handshake: the connection replayed it, and SslReady says how much to drop here.
        let mut pending = buf;
        let ready = loop {
            tokio::select! {
                biased;
                r = sslready.recv() => break r,
                d = inbox.recv() => pending.extend_from_slice(&d),
                c = control.recv() => {
                    let _ = signal.send(c).await;
                    return Ok(());
                }
            }
        };
        // The library's one copy of the replay logic, as its STARTTLS servers use it.
        let (mut replay, data) = HandshakeReplay::start(ready.replayed, pending);
        let mut late = data.len();
        while replay.pending() > 0 {
            if let Some(d) = replay.strip(inbox.recv().await) {
                late += d.len();
            }
        }
        if late > 0 {
            let _ = seen.send(Seen::LateBytes(late));
        }
        let _ = seen.send(Seen::Ready(ready));
        loop {
            tokio::select! {
                d = inbox.recv() => outbox.send(d).await?,
                c = control.recv() => {
                    while let Some(d) = inbox.try_recv() {
                        outbox.send(d).await?;
                    }
                    let last = c.is_final();
                    let _ = signal.send(c).await;
                    if last {
                        return Ok(());
                    }
                }
            }
        }
    })
}

async fn starttls_server(
    pki: &TestPki,
    slow: bool,
) -> (RunningServer, mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let server = TcpServer::bind("127.0.0.1:0", move |_| starttls_protocol(tx.clone(), slow))
        .unwrap()
        .starttls(&pki.server_tls())
        .unwrap();
    (RunningServer::start(server).await, rx)
}

/// The client's socket under rustls: writes `prefix` in the same write as the first bytes
/// rustls writes (its ClientHello), drops the server's plaintext `skip` line before rustls
/// reads, and records every byte on the wire both ways.
struct StartTlsIo {
    inner: TcpStream,
    prefix: Vec<u8>,
    skip: &'static [u8],
    skipped: usize,
    wire: Vec<u8>,
}

impl StartTlsIo {
    fn new(inner: TcpStream, prefix: &[u8], skip: &'static [u8]) -> Self {
        Self {
            inner,
            prefix: prefix.to_vec(),
            skip,
            skipped: 0,
            wire: Vec::new(),
        }
    }
}

impl AsyncRead for StartTlsIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let mut tmp = [0u8; 4096];
            let want = buf.remaining().min(tmp.len());
            let mut rb = ReadBuf::new(&mut tmp[..want]);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            let got = rb.filled();
            if got.is_empty() {
                return Poll::Ready(Ok(()));
            }
            this.wire.extend_from_slice(got);
            let n = (this.skip.len() - this.skipped).min(got.len());
            if got[..n] != this.skip[this.skipped..this.skipped + n] {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("expected the plaintext reply {:?}, got {got:?}", this.skip),
                )));
            }
            this.skipped += n;
            if n < got.len() {
                buf.put_slice(&got[n..]);
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl AsyncWrite for StartTlsIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        while !this.prefix.is_empty() {
            let mut joined = this.prefix.clone();
            joined.extend_from_slice(buf);
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &joined))?;
            this.wire.extend_from_slice(&joined[..n]);
            let from_prefix = n.min(this.prefix.len());
            this.prefix.drain(..from_prefix);
            if n > from_prefix {
                return Poll::Ready(Ok(n - from_prefix));
            }
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.wire.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// How the client sends its STARTTLS command.
#[derive(Clone, Copy, Debug)]
enum Flow {
    /// The command and the ClientHello in one write: one segment, read by the server at once.
    OneWrite,
    /// The command, then at once (not waiting for the reply) the handshake, in two writes.
    Pipelined,
    /// The command, wait for `220 go ahead`, then the handshake.
    WaitForReply,
}

async fn starttls_round_trip(flow: Flow, slow_protocol: bool) {
    let pki = TestPki::new();
    let (running, mut seen) = starttls_server(&pki, slow_protocol).await;
    let mut tcp = TcpStream::connect(running.addr).await.unwrap();
    let io = match flow {
        Flow::OneWrite => StartTlsIo::new(tcp, STARTTLS, GO_AHEAD),
        Flow::Pipelined => {
            tcp.write_all(STARTTLS).await.unwrap();
            if slow_protocol {
                // The ClientHello goes out once the protocol has taken what followed the command.
                assert!(matches!(seen.recv().await, Some(Seen::Command)));
            }
            StartTlsIo::new(tcp, b"", GO_AHEAD)
        }
        Flow::WaitForReply => {
            tcp.write_all(STARTTLS).await.unwrap();
            let mut reply = [0u8; GO_AHEAD.len()];
            tcp.read_exact(&mut reply).await.unwrap();
            assert_eq!(&reply[..], GO_AHEAD);
            StartTlsIo::new(tcp, b"", b"")
        }
    };
    let client = tokio::spawn(async move {
        let mut tls = connector(&pki)
            .connect(localhost(), io)
            .await
            .unwrap_or_else(|e| panic!("{flow:?}: handshake failed: {e}"));
        let secret = b"a secret that must not cross the wire in plaintext ".repeat(200);
        ping(&mut tls, &secret).await;
        tls.shutdown().await.unwrap();
        let mut rest = Vec::new();
        tls.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        tls
    });
    // What the protocol saw decides first: lost handshake bytes would only show as a timeout.
    match seen.recv().await.unwrap() {
        Seen::Ready(SslReady { info, .. }) => {
            assert_eq!(info.version, "TLSv1.3");
            assert!(info.cipher_suite.starts_with("TLS13_"), "{info:?}");
        }
        Seen::Command => unreachable!("only a slow protocol says so, before the handshake"),
        Seen::LateBytes(n) => panic!(
            "{flow:?}: {n} bytes reached the protocol as plaintext after its command that the \
             connection did not hand to the handshake"
        ),
    }
    let tls = client.await.unwrap();
    let wire = &tls.get_ref().0.wire;
    assert!(
        !wire.windows(16).any(|w| w == b"a secret that mu"),
        "{flow:?}: the data crossed the wire in plaintext"
    );
    drop(tls);
    running.wait_live(1).await;
    let (report, rest) = running.stop().await;
    assert!(report.is_ok(), "{flow:?}: {:?}", report.failures);
    assert_eq!(rest.len(), 1, "{flow:?}: no errors expected: {rest:?}");
    assert!(matches!(rest[0], Control::ShutdownMicroprocess { .. }));
}

#[tokio::test]
async fn starttls_with_the_client_hello_in_the_same_segment_as_the_command() {
    bounded(starttls_round_trip(Flow::OneWrite, false)).await;
}

#[tokio::test]
async fn starttls_with_the_client_hello_pipelined_behind_the_command() {
    bounded(starttls_round_trip(Flow::Pipelined, false)).await;
}

#[tokio::test]
async fn starttls_waiting_for_the_reply_before_the_handshake() {
    bounded(starttls_round_trip(Flow::WaitForReply, false)).await;
}

/// The ClientHello arrives after the protocol took what followed its command but before its
/// connection switched: those bytes reached the protocol's inbox as plaintext, but the protocol
/// said how much it consumed (`MakeSsl::with_consumed`), so the connection hands everything
/// after that to the handshake.
#[tokio::test]
async fn starttls_with_the_client_hello_arriving_while_the_protocol_decides() {
    bounded(starttls_round_trip(Flow::Pipelined, true)).await;
}
