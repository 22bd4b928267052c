//! The server side of a STARTTLS dialogue as a layer between a connection and its user
//! (`kamaelia listen --starttls`), where the server components are a TcpServer's protocol.

use std::time::Duration;

use axon::{BoxDecl, Component, Control, ControlWatch, SendError, CONTROL, INBOX, OUTBOX, SIGNAL};
use bytes::{Bytes, BytesMut};

use super::client::{Boxes, ClientBoxes};
use super::error::{Client, DialogueError};
use super::imap::ImapServer;
use super::pop3::Pop3Server;
use super::replay::HandshakeReplay;
use super::server::{Lines, Out, ServerDialogue, MAX_HELD};
use super::smtp::SmtpServer;
use crate::internet::{Connected, PeerHalfClosed};

/// The layer's boxes: the client components' names, so that one wiring serves both sides,
/// described from the server's side.
const BOXES: ClientBoxes = ClientBoxes {
    inbox: BoxDecl::new(INBOX, "bytes from the user, held until TLS is up"),
    control: BoxDecl::new(
        CONTROL,
        "the user's side's signal: its final message is passed on after its bytes",
    ),
    fromserver: BoxDecl::new("fromserver", "bytes from the connection (the client's)"),
    connsignal: BoxDecl::new("connsignal", "the connection's signal"),
    sslready: BoxDecl::new("sslready", "the connection's TLS details"),
    outbox: BoxDecl::new(
        OUTBOX,
        "bytes to the connection: the dialogue's replies, then the user's bytes",
    ),
    signal: BoxDecl::new(
        SIGNAL,
        "to the connection's control: the user's final message, or ProducerFinished when the client is dropped",
    ),
    touser: BoxDecl::new("touser", "the client's bytes once TLS is up"),
    connevents: BoxDecl::new(
        "connevents",
        "the connection's signal, passed on, with a DialogueError before it when the client is dropped",
    ),
    makessl: BoxDecl::new(
        "makessl",
        "asks the connection to switch to TLS, with the reply and the count of bytes consumed",
    ),
    tlsready: BoxDecl::new("tlsready", "the TLS details, passed on"),
};

/// The server side of SMTP's, IMAP's or POP3's STARTTLS between one accepted connection and a
/// user: the greeting and the dialogue in plaintext, then TLS, then the client's bytes to the
/// user and the user's bytes to the client (`kamaelia listen --starttls`).
///
/// # Example
///
/// ```no_run
/// use kamaelia::internet::{ServerTls, SingleServer, StartTlsServerLayer};
/// use kamaelia::{ConsoleEchoer, ConsoleReader, Graphline};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let identity = ServerTls::from_pem_files("cert.pem", "key.pem")?;
/// let session = Graphline::new()
///     .component("SOURCE", ConsoleReader::new())
///     .component("LAYER", StartTlsServerLayer::smtp())
///     .component("CONNECTION", SingleServer::bind("127.0.0.1:2525")?.starttls(&identity)?)
///     .component("ECHO", ConsoleEchoer::new())
///     .link(("SOURCE", "outbox"), ("LAYER", "inbox"))
///     .link(("SOURCE", "signal"), ("LAYER", "control"))
///     .link(("LAYER", "outbox"), ("CONNECTION", "inbox"))
///     .link(("LAYER", "signal"), ("CONNECTION", "control"))
///     .link(("LAYER", "makessl"), ("CONNECTION", "makessl"))
///     .link(("CONNECTION", "outbox"), ("LAYER", "fromserver"))
///     .link(("CONNECTION", "signal"), ("LAYER", "connsignal"))
///     .link(("CONNECTION", "sslready"), ("LAYER", "sslready"))
///     .link(("LAYER", "touser"), ("ECHO", "inbox"))
///     .link(("LAYER", "connevents"), ("ECHO", "control"))
///     .build()?;
/// # let _ = session;
/// # Ok(())
/// # }
/// ```
///
/// # How it works
///
/// It speaks the same dialogue as [`SmtpStartTlsServer`](super::SmtpStartTlsServer) (and the
/// IMAP and POP3 ones), with the same caps: the greeting when the connection's `Connected`
/// notice arrives, lines of at most [`MAX_COMMAND_LINE`](super::MAX_COMMAND_LINE), at most
/// [`MAX_HELD`] bytes held during the switch, the plaintext limit counted from `Connected`.
/// Lines that are not the protocol's commands are not passed on before TLS: only what the
/// client sends under TLS reaches the user. STARTTLS is answered through `makessl` (the reply
/// travels with the request, with the count of bytes consumed, so the client's handshake is
/// given to TLS). Once `sslready` has come the layer relays both ways; the user's bytes wait
/// (in its bounded inbox) until then, so nothing of the user's leaves in plaintext.
///
#[doc = include_str!("server_layer_boxes.md")]
#[derive(Debug, Clone)]
pub struct StartTlsServerLayer {
    proto: Proto,
    peer: Client,
    plaintext_limit: Option<Duration>,
}

#[derive(Debug, Clone, Copy)]
enum Proto {
    Smtp,
    Imap,
    Pop3,
}

impl StartTlsServerLayer {
    fn new(proto: Proto) -> Self {
        StartTlsServerLayer {
            proto,
            peer: Client(None),
            plaintext_limit: None,
        }
    }

    /// SMTP's: 220 greeting, EHLO, STARTTLS, 220.
    pub fn smtp() -> Self {
        Self::new(Proto::Smtp)
    }

    /// IMAP's: `* OK` greeting, CAPABILITY, `a1 STARTTLS`, `a1 OK`.
    pub fn imap() -> Self {
        Self::new(Proto::Imap)
    }

    /// POP3's: `+OK` greeting, CAPA, STLS, `+OK`.
    pub fn pop3() -> Self {
        Self::new(Proto::Pop3)
    }

    /// Names the client in errors.
    #[must_use]
    pub fn peer(mut self, peer: std::net::SocketAddr) -> Self {
        self.peer = Client(Some(peer));
        self
    }

    /// Bounds the whole plaintext phase, from the greeting to STARTTLS, counted from the
    /// connection (`None`, the default: no bound).
    #[must_use]
    pub fn plaintext_limit(mut self, limit: Option<Duration>) -> Self {
        self.plaintext_limit = limit;
        self
    }
}

impl From<StartTlsServerLayer> for Component {
    fn from(l: StartTlsServerLayer) -> Component {
        match l.proto {
            Proto::Smtp => layer("StartTlsServerLayer", SmtpServer, l.peer, l.plaintext_limit),
            Proto::Imap => layer("StartTlsServerLayer", ImapServer, l.peer, l.plaintext_limit),
            Proto::Pop3 => layer("StartTlsServerLayer", Pop3Server, l.peer, l.plaintext_limit),
        }
    }
}

/// Where the layer is.
enum Phase<D> {
    /// Not connected yet, or speaking the plaintext dialogue.
    Plain(Lines<D>),
    /// makessl sent; bytes that arrive now were the client's handshake (or later data).
    Switching(BytesMut),
    /// TLS: replayed handshake bytes go, the rest is the client's data.
    Tls(HandshakeReplay),
    /// The client was dropped (or quit): waiting for the connection to end.
    Dropped,
}

fn layer<D: ServerDialogue>(
    name: &'static str,
    proto: D,
    peer: Client,
    plaintext_limit: Option<Duration>,
) -> Component {
    let mut b = Component::build(name);
    let boxes = Boxes::declare(&mut b, &BOXES);
    b.main(move |cx| async move {
        let label: std::sync::Arc<str> = cx.label().into();
        // Sends fail only when nobody is linked, which a wired layer always is.
        let _ = run(proto, peer, plaintext_limit, boxes, label).await;
        Ok(())
    })
}

async fn run<D: ServerDialogue>(
    proto: D,
    peer: Client,
    plaintext_limit: Option<Duration>,
    b: Boxes,
    label: std::sync::Arc<str>,
) -> Result<(), SendError<Bytes>> {
    let (greeting, timed_out, too_long) = (proto.greeting(), proto.timed_out(), proto.too_long());
    // With no limit, a deadline that never comes (a year is as good as never here).
    let limit = plaintext_limit.unwrap_or(Duration::from_secs(365 * 24 * 3600));
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    let mut connected = false;
    let mut phase = Phase::Plain(Lines::new(proto, false));
    let mut out = Vec::new();
    // The user's side's control (docs/semantics.md §5): its final message waits until TLS is
    // up and its bytes have gone (ShutdownMicroprocess goes at once); None once it has gone.
    let mut watch = Some(ControlWatch::new(&b.control, &b.signal));
    let dropped = |e: DialogueError, reply: &'static [u8]| drop_client(&b, label.clone(), e, reply);
    loop {
        let tls = matches!(phase, Phase::Tls(_));
        if let Some(w) =
            watch.take_if(|w| w.shutdown_requested() || (w.stopping() && tls && b.inbox.is_empty()))
        {
            w.finish(Control::producer_finished());
        }
        tokio::select! {
            biased;
            r = b.sslready.recv(), if matches!(phase, Phase::Switching(_)) => {
                if let Phase::Switching(held) = &mut phase {
                    let (replay, data) = HandshakeReplay::start(r.replayed, std::mem::take(held));
                    let _ = b.tlsready.send(r).await;
                    if !data.is_empty() {
                        b.to_user.send(data).await?;
                    }
                    phase = Phase::Tls(replay);
                }
            }
            c = b.conn_signal.recv() => {
                // What the connection delivered before its half-close or final message goes
                // first (under TLS; in plaintext it was the dialogue's).
                if c.is_final() || c.payload::<PeerHalfClosed>().is_some() {
                    if let Phase::Tls(replay) = &mut phase {
                        while let Some(d) = b.from_server.try_recv() {
                            if let Some(d) = replay.strip(d) {
                                let _ = b.to_user.send(d).await;
                            }
                        }
                    }
                }
                if c.payload::<Connected>().is_some() && !connected {
                    connected = true;
                    deadline.as_mut().reset(tokio::time::Instant::now() + limit);
                    b.outbox.send(Bytes::from_static(greeting)).await?;
                }
                let last = c.is_final();
                let _ = b.conn_events.send(c).await;
                if last {
                    return Ok(());
                }
            }
            c = b.control.recv() => crate::internet::handle_control(watch.as_mut(), &b.signal, c).await,
            d = b.from_server.recv(), if !matches!(phase, Phase::Dropped) => match &mut phase {
                Phase::Tls(replay) => {
                    if let Some(d) = replay.strip(d) {
                        b.to_user.send(d).await?;
                    }
                }
                Phase::Switching(held) => {
                    if held.len() + d.len() > MAX_HELD {
                        dropped(DialogueError::TooMuchBeforeHandshake { peer }, b"").await;
                        (phase, watch) = (Phase::Dropped, None);
                    } else {
                        held.extend_from_slice(&d);
                    }
                }
                Phase::Plain(lines) => {
                    let fed = lines.feed(&d, &mut out);
                    let mut next = None;
                    for o in out.drain(..) {
                        match o {
                            Out::Data(d) => b.outbox.send(d).await?,
                            Out::Switch(m) => {
                                let _ = b.makessl.send(m).await;
                                next = Some(Phase::Switching(lines.take_rest()));
                            }
                            Out::Quit => {
                                let e = DialogueError::QuitBeforeTls { peer };
                                dropped(e, b"").await;
                                next = Some(Phase::Dropped);
                            }
                        }
                    }
                    if fed.is_err() && next.is_none() {
                        dropped(DialogueError::LineTooLong { peer }, too_long).await;
                        next = Some(Phase::Dropped);
                    }
                    if let Some(Phase::Switching(rest)) = &next {
                        if rest.len() > MAX_HELD {
                            dropped(DialogueError::TooMuchBeforeHandshake { peer }, b"").await;
                            next = Some(Phase::Dropped);
                        }
                    }
                    if let Some(n) = next {
                        if matches!(n, Phase::Dropped) {
                            watch = None;
                        }
                        phase = n;
                    }
                }
                Phase::Dropped => {}
            },
            d = b.inbox.recv(), if tls && watch.is_some() => b.outbox.send(d).await?,
            () = &mut deadline, if connected && matches!(phase, Phase::Plain(_)) => {
                let e = DialogueError::PlaintextTimeout { peer, after: limit };
                dropped(e, timed_out).await;
                (phase, watch) = (Phase::Dropped, None);
            }
        }
    }
}

/// Says why to the client (`reply`, if any) and to the user (on `connevents`), then closes the
/// connection after the reply; the user's bytes are not sent.
async fn drop_client(
    b: &Boxes,
    label: std::sync::Arc<str>,
    e: DialogueError,
    reply: &'static [u8],
) {
    if !reply.is_empty() {
        let _ = b.outbox.send(Bytes::from_static(reply)).await;
    }
    let _ = b.conn_events.send(Control::error(label, e)).await;
    let _ = b.signal.send(Control::producer_finished()).await;
}
