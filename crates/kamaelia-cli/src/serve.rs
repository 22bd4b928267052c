//! `kamaelia serve`: a TcpServer whose protocol echoes or discards, plain, TLS from the first
//! byte (`--cert --key`) or switched by STARTTLS (`--starttls`, see [`StartTlsServer`]).
//!
//! Nothing a client does can make it hold more than a bounded amount per connection: the
//! connection's boxes are bounded in bytes (the default [`Limits`], 256 KiB each way), a
//! connection with no traffic either way for `--idle-timeout` is closed, and the STARTTLS
//! dialogue caps its lines ([`MAX_LINE`]), what it holds while switching ([`MAX_HELD`]) and
//! its own duration ([`DEFAULT_PLAINTEXT_TIMEOUT`], or the idle timeout if shorter). Event
//! lines go through [`Events`], which never blocks serving, and nothing is kept about a
//! connection once it has ended.

use std::fmt;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use axon::{link_refs, Component, Control, ErrorMessage, Inbox};
use bytes::{Bytes, BytesMut};
use kamaelia::internet::{
    DiscardProtocol, EchoProtocol, Limits, Listening, TcpError, TcpServer, TlsError,
    DEFAULT_PLAINTEXT_TIMEOUT,
};
use kamaelia::{MakeSsl, SslReady};

use crate::errors::{judge, tcp_error, Verdict};
use crate::events::Events;
use crate::flags::{Output, ServeConfig};
use crate::session;

/// The longest line the STARTTLS dialogue accepts, end of line included (RFC 5321 allows 1000
/// bytes for a command line; this is generous). A longer line ends the connection.
pub(crate) const MAX_LINE: usize = 8 * 1024;

/// The most a [`StartTlsServer`] holds between STARTTLS and the end of the switch (bytes the
/// client pipelined after the command: its handshake, normally a few KiB). More ends the
/// connection.
pub(crate) const MAX_HELD: usize = 64 * 1024;

/// Runs `serve` until Ctrl-C and returns the exit status (130 when interrupted).
pub(crate) fn main(cfg: ServeConfig, output: Output) -> anyhow::Result<u8> {
    session::run(|_sched| async move {
        let events = Events::new(output);
        let discard = cfg.discard;
        let starttls = cfg.tls.as_ref().is_some_and(|t| t.starttls);
        // The whole plaintext dialogue, not just a quiet spell in it, is bounded: a client
        // trickling a byte now and then cannot keep a connection before TLS for ever.
        let plaintext_limit = Some(cfg.idle_timeout.map_or(DEFAULT_PLAINTEXT_TIMEOUT, |t| {
            t.min(DEFAULT_PLAINTEXT_TIMEOUT)
        }));
        let server = match TcpServer::bind(&cfg.bind.to_string(), move |info| {
            events.line(format_args!("connection from {}", info.peer));
            if starttls {
                StartTlsServer::for_client(!discard, Client(Some(info.peer)), plaintext_limit)
            } else if discard {
                DiscardProtocol::new()
            } else {
                EchoProtocol::new()
            }
        }) {
            Ok(s) => s,
            Err(e) => {
                events.failure(tcp_error(&e));
                return Ok(1);
            }
        };
        // Said in --help: the library's default limits, 256 KiB each way per connection.
        let server = server
            .limits(Limits::default())
            .idle_timeout(cfg.idle_timeout);
        let server = match &cfg.tls {
            None => server,
            Some(t) if t.starttls => server.starttls(&t.identity)?,
            Some(t) => server.tls(&t.identity)?,
        };
        let addr = server.local_addr();
        print_address(addr)?;
        let server: Component = server.into();
        let signal = Inbox::<Control>::standalone("server signal", 64);
        link_refs(&server.boxref("signal")?, &signal.boxref())?;
        server.activate();
        loop {
            let c = signal.recv().await;
            events.signal("signal", &c);
            if let Some(Listening(a)) = c.payload::<Listening>() {
                events.line(format_args!("listening on {a}"));
            } else if let Control::Error(e) = &c {
                // One connection's failure ends only that connection.
                events.line(format_args!("connection failed: {}", describe(e)));
            }
            if c.is_final() {
                events.line("stopped");
                return Ok(if axon::interrupted() { 130 } else { 0 });
            }
        }
    })
}

/// The one line on stdout, for scripts: the address actually bound. A reader that has gone
/// (`serve 0 | true`) is not an error: serving goes on, as `connect` goes on when its output
/// is closed.
fn print_address(addr: SocketAddr) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{addr}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// A connection's failure in plain words, from the server's side: the peer is the client.
fn describe(e: &ErrorMessage) -> String {
    if let Some(d) = e.downcast_ref::<DialogueError>() {
        return d.to_string();
    }
    if let Some(TcpError::Tls(t)) = e.downcast_ref::<TcpError>() {
        if let Some(line) = client_tls_error(t) {
            return line;
        }
    }
    match judge(e) {
        Verdict::Failed(line) => line,
        Verdict::StdoutClosed => e.to_string(),
    }
}

/// The TLS failures whose client-side wording ("the server did not answer in TLS") would blame
/// the wrong end.
fn client_tls_error(t: &TlsError) -> Option<String> {
    Some(match t {
        TlsError::NotTls => {
            "TLS handshake failed: the client did not speak TLS (plaintext or garbage)".into()
        }
        TlsError::ClosedWithoutCloseNotify => {
            "TLS handshake failed: the client closed the connection during it".into()
        }
        TlsError::HandshakeFailed(why) => format!("TLS handshake with the client failed: {why}"),
        TlsError::HandshakeTimeout(after) => format!(
            "TLS handshake failed: the client did not finish it within {} s",
            after.as_secs_f64()
        ),
        _ => return None,
    })
}

/// The client a [`StartTlsServer`] talks to, for messages: its address when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Client(pub(crate) Option<SocketAddr>);

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("the client"),
        }
    }
}

/// Why a [`StartTlsServer`] dropped its client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum DialogueError {
    /// The client sent a line longer than [`MAX_LINE`] (or that many bytes without a newline).
    LineTooLong {
        /// The client.
        peer: Client,
    },
    /// The client sent more than [`MAX_HELD`] bytes after STARTTLS before the switch was done.
    TooMuchBeforeHandshake {
        /// The client.
        peer: Client,
    },
    /// The client did not reach STARTTLS (or QUIT) within the plaintext phase's limit.
    PlaintextTimeout {
        /// The client.
        peer: Client,
        /// The limit.
        after: Duration,
    },
}

impl fmt::Display for DialogueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialogueError::LineTooLong { peer } => write!(
                f,
                "{peer} sent a line longer than {MAX_LINE} bytes before STARTTLS; dropped it"
            ),
            DialogueError::TooMuchBeforeHandshake { peer } => write!(
                f,
                "{peer} sent more than {MAX_HELD} bytes between STARTTLS and the TLS handshake; \
                 dropped it"
            ),
            DialogueError::PlaintextTimeout { peer, after } => write!(
                f,
                "{peer} did not ask for STARTTLS within {} s; dropped it",
                after.as_secs_f64()
            ),
        }
    }
}

impl std::error::Error for DialogueError {}

/// A protocol that speaks just enough SMTP for a STARTTLS client, then echoes (or discards).
///
/// It greets with `220`, answers `EHLO`/`HELO` with `250 STARTTLS`, and answers `STARTTLS` by
/// sending [`MakeSsl`] with the reply `220 Ready to start TLS` and the count of bytes it consumed
/// up to the end of the command ([`MakeSsl::with_consumed`]): the connection hands everything
/// after them to the TLS handshake, and `sslready` says how many of those bytes this protocol
/// must drop from what it has not read yet. `QUIT` ends the session. Other plaintext lines are
/// echoed; after the switch every byte is echoed (or discarded).
///
/// Bounded whatever the client sends: lines of at most [`MAX_LINE`] bytes, at most
/// [`MAX_HELD`] bytes held during the switch, an inbox bounded in bytes, and (when given) a
/// limit on the whole plaintext phase, counted from the connection. Breaking one sends an error on `signal` (a
/// [`DialogueError`], which the connection forwards to the server's `signal`), then
/// ProducerFinished: the connection closes. Parsing is linear in the bytes received.
///
/// Boxes: `inbox`/`outbox` (`Bytes`), `control`/`signal`, `makessl` (`MakeSsl`) and `sslready`
/// (`SslReady`), linked to the connection's by the TcpServer.
pub(crate) struct StartTlsServer;

/// Where a [`StartTlsServer`] is in its session.
enum Phase {
    /// Plaintext SMTP: lines.
    Plain(Dialogue),
    /// makessl sent; bytes that arrive now were the client's handshake (or later data).
    Switching(BytesMut),
    /// TLS: `drop` more bytes are replayed handshake bytes, the rest is data.
    Tls { drop: usize },
}

impl StartTlsServer {
    /// A protocol with no limit on the plaintext phase, for a client it does not name.
    #[allow(clippy::new_ret_no_self)]
    pub(crate) fn new(echo: bool) -> Component {
        Self::for_client(echo, Client(None), None)
    }

    /// A protocol for the connection from `peer`; `plaintext_limit` bounds the time from the
    /// greeting to STARTTLS.
    pub(crate) fn for_client(
        echo: bool,
        peer: Client,
        plaintext_limit: Option<Duration>,
    ) -> Component {
        let mut b = Component::build("StartTlsServer");
        let inbox = b
            .inbox::<Bytes>("inbox", "bytes from the client")
            .limit_bytes(Limits::default().receive_bytes);
        let control = b.control();
        let outbox = b.outbox::<Bytes>("outbox", "bytes to the client");
        let signal = b.signal();
        let makessl = b.outbox::<MakeSsl>("makessl", "switches the connection to TLS");
        let sslready = b.inbox::<SslReady>("sslready", "the switch is done");
        b.main(move |cx| async move {
            let label = cx.label().clone();
            let fail = |e: DialogueError, reply: &'static [u8]| {
                drop_client(&outbox, &signal, label.clone(), e, reply)
            };
            outbox
                .send(Bytes::from_static(b"220 kamaelia ESMTP ready\r\n"))
                .await?;
            // With no limit, a deadline that never comes (a year is as good as never here).
            let limit = plaintext_limit.unwrap_or(Duration::from_secs(365 * 24 * 3600));
            let deadline = tokio::time::Instant::now() + limit;
            let mut phase = Phase::Plain(Dialogue::new(echo));
            let mut out = Vec::new();
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline), if matches!(phase, Phase::Plain(_)) => {
                        let e = DialogueError::PlaintextTimeout { peer, after: limit };
                        fail(e, b"421 timed out waiting for STARTTLS\r\n").await;
                        return Ok(());
                    }
                    r = sslready.recv(), if matches!(phase, Phase::Switching(_)) => {
                        if let Phase::Switching(held) = &mut phase {
                            phase = switched(r, held, echo, &outbox).await?;
                        }
                    }
                    d = inbox.recv() => {
                        match &mut phase {
                            Phase::Tls { drop } => {
                                let n = (*drop).min(d.len());
                                *drop -= n;
                                if echo && n < d.len() {
                                    outbox.send(d.slice(n..)).await?;
                                }
                            }
                            Phase::Switching(held) => {
                                if held.len() + d.len() > MAX_HELD {
                                    fail(DialogueError::TooMuchBeforeHandshake { peer }, b"").await;
                                    return Ok(());
                                }
                                held.extend_from_slice(&d);
                            }
                            Phase::Plain(dialogue) => {
                                let fed = dialogue.feed(&d, &mut out);
                                let mut switching = false;
                                for o in out.drain(..) {
                                    match o {
                                        Out::Data(d) => outbox.send(d).await?,
                                        Out::Switch(m) => {
                                            makessl.send(m).await?;
                                            switching = true;
                                        }
                                        Out::Quit => {
                                            signal.send(Control::producer_finished()).await?;
                                            return Ok(());
                                        }
                                    }
                                }
                                if fed.is_err() {
                                    let e = DialogueError::LineTooLong { peer };
                                    fail(e, b"500 line too long\r\n").await;
                                    return Ok(());
                                }
                                if switching {
                                    let rest = dialogue.take_rest();
                                    if rest.len() > MAX_HELD {
                                        fail(DialogueError::TooMuchBeforeHandshake { peer }, b"").await;
                                        return Ok(());
                                    }
                                    phase = Phase::Switching(rest);
                                }
                            }
                        }
                    }
                    c = control.recv() => {
                        if c.is_final() {
                            // The connection sent sslready before any data it decrypted, so a
                            // switch in progress has finished by the time it says it is done.
                            if let Phase::Switching(held) = &mut phase {
                                if let Some(r) = sslready.try_recv() {
                                    phase = switched(r, held, echo, &outbox).await?;
                                }
                            }
                            if let Phase::Tls { mut drop } = phase {
                                while let Some(d) = inbox.try_recv() {
                                    let n = drop.min(d.len());
                                    drop -= n;
                                    if echo && n < d.len() {
                                        outbox.send(d.slice(n..)).await?;
                                    }
                                }
                            }
                            let _ = signal.send(c).await;
                            return Ok(());
                        }
                        let _ = signal.send(c).await;
                    }
                }
            }
        })
    }
}

/// Says why on the connection (`reply`, if any) and on `signal`, then finishes: the
/// connection closes.
async fn drop_client(
    outbox: &axon::Outbox<Bytes>,
    signal: &axon::Outbox<Control>,
    label: std::sync::Arc<str>,
    e: DialogueError,
    reply: &'static [u8],
) {
    if !reply.is_empty() {
        let _ = outbox.send(Bytes::from_static(reply)).await;
    }
    let _ = signal.send(Control::error(label, e)).await;
    let _ = signal.send(Control::producer_finished()).await;
}

/// The switch is done: of the bytes held since the command, the first `replayed` were the
/// client's handshake (the connection gave them to TLS); the rest, if any, is data.
async fn switched(
    ready: SslReady,
    held: &mut BytesMut,
    echo: bool,
    outbox: &axon::Outbox<Bytes>,
) -> Result<Phase, axon::SendError<Bytes>> {
    let replayed = usize::try_from(ready.replayed).unwrap_or(usize::MAX);
    let drop = replayed.saturating_sub(held.len());
    let keep = held.split_off(replayed.min(held.len()));
    held.clear();
    if echo && !keep.is_empty() {
        outbox.send(keep.freeze()).await?;
    }
    Ok(Phase::Tls { drop })
}

/// What the plaintext dialogue asks the component to do, in order.
#[derive(Debug)]
enum Out {
    /// Send these bytes to the client.
    Data(Bytes),
    /// Switch to TLS (the reply travels with the request).
    Switch(MakeSsl),
    /// End the session (after the data before it).
    Quit,
}

/// The plaintext SMTP dialogue of a [`StartTlsServer`], without sockets: bytes in, [`Out`]s out.
///
/// Linear in what it is fed: each byte is scanned for a newline once, lines leave the buffer by
/// `split_to` (no copying of what follows), and consecutive echoed lines leave as one message.
/// It holds at most one partial line of [`MAX_LINE`] bytes between calls.
struct Dialogue {
    /// Unanswered bytes: `buf[..run]` are whole lines to echo (or discard), then a partial
    /// line.
    buf: BytesMut,
    /// The length of the run of whole lines to echo (or discard) at the front of `buf`.
    run: usize,
    /// Where to look for the next newline: `buf[run..scanned]` has none.
    scanned: usize,
    /// Bytes of whole lines taken so far (for [`MakeSsl::with_consumed`]).
    consumed: u64,
    echo: bool,
    /// Set by STARTTLS or QUIT: nothing more is answered.
    done: bool,
}

/// A line longer than [`MAX_LINE`]: the dialogue cannot go on.
#[derive(Debug, PartialEq, Eq)]
struct LineTooLong;

/// What a line asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Command {
    Hello,
    StartTls,
    Quit,
    Other,
}

impl Dialogue {
    fn new(echo: bool) -> Self {
        Dialogue {
            buf: BytesMut::new(),
            run: 0,
            scanned: 0,
            consumed: 0,
            echo,
            done: false,
        }
    }

    /// Takes `data`, pushes what to do onto `out`, and stops after STARTTLS or QUIT (the rest
    /// stays for [`Dialogue::take_rest`]). `Err` when a line is too long; `out` then holds what
    /// was answered before it.
    fn feed(&mut self, data: &[u8], out: &mut Vec<Out>) -> Result<(), LineTooLong> {
        if self.done {
            self.buf.extend_from_slice(data);
            return Ok(());
        }
        self.buf.extend_from_slice(data);
        while let Some(i) = self.buf[self.scanned..].iter().position(|&c| c == b'\n') {
            let end = self.scanned + i + 1;
            let len = end - self.run;
            if len > MAX_LINE {
                self.flush_run(out);
                return Err(LineTooLong);
            }
            self.consumed += len as u64;
            let cmd = command(&self.buf[self.run..end]);
            if cmd == Command::Other {
                self.run = end;
                self.scanned = end;
                continue;
            }
            self.flush_run(out);
            // The command itself is answered, not echoed.
            drop(self.buf.split_to(len));
            self.scanned = 0;
            match cmd {
                Command::Other => {}
                Command::Hello => out.push(Out::Data(Bytes::from_static(
                    b"250-kamaelia\r\n250 STARTTLS\r\n",
                ))),
                Command::StartTls => {
                    self.done = true;
                    out.push(Out::Switch(
                        MakeSsl::new()
                            .with_reply("220 Ready to start TLS\r\n")
                            .with_consumed(self.consumed),
                    ));
                    return Ok(());
                }
                Command::Quit => {
                    self.done = true;
                    out.push(Out::Data(Bytes::from_static(b"221 bye\r\n")));
                    out.push(Out::Quit);
                    return Ok(());
                }
            }
        }
        self.scanned = self.buf.len();
        let partial = self.buf.len() - self.run;
        self.flush_run(out);
        if partial > MAX_LINE {
            return Err(LineTooLong);
        }
        Ok(())
    }

    /// What was received after the last answered line (after STARTTLS: the client's
    /// pipelined bytes).
    fn take_rest(&mut self) -> BytesMut {
        self.run = 0;
        self.scanned = 0;
        self.buf.split()
    }

    /// Sends the run of whole lines at the front of the buffer as one message (or drops it).
    fn flush_run(&mut self, out: &mut Vec<Out>) {
        if self.run > 0 {
            let run = self.buf.split_to(self.run);
            if self.echo {
                out.push(Out::Data(run.freeze()));
            }
            self.scanned -= self.run;
            self.run = 0;
        }
    }
}

/// The command a line holds (case-insensitive, surrounding whitespace ignored).
fn command(line: &[u8]) -> Command {
    let t = line.trim_ascii();
    let starts = |word: &[u8]| t.len() >= word.len() && t[..word.len()].eq_ignore_ascii_case(word);
    if starts(b"EHLO") || starts(b"HELO") {
        Command::Hello
    } else if t.eq_ignore_ascii_case(b"STARTTLS") {
        Command::StartTls
    } else if t.eq_ignore_ascii_case(b"QUIT") {
        Command::Quit
    } else {
        Command::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `chunks` to a dialogue; returns the bytes it sent, the consumed count of a switch
    /// (if any), whether it quit, and whether it failed with a line too long.
    fn run(echo: bool, chunks: &[&[u8]]) -> (Vec<u8>, Option<u64>, bool, bool) {
        let mut d = Dialogue::new(echo);
        let mut out = Vec::new();
        let (mut sent, mut switch, mut quit) = (Vec::new(), None, false);
        let mut failed = false;
        for c in chunks {
            failed = d.feed(c, &mut out).is_err();
            for o in out.drain(..) {
                match o {
                    Out::Data(b) => sent.extend_from_slice(&b),
                    Out::Switch(_) => switch = Some(d.consumed),
                    Out::Quit => quit = true,
                }
            }
            if failed || switch.is_some() || quit {
                break;
            }
        }
        (sent, switch, quit, failed)
    }

    #[test]
    fn the_dialogue_answers_echoes_and_switches() {
        let (sent, switch, quit, failed) = run(
            true,
            &[
                b"ehlo x\r\nhel",
                b"lo\r\nwor",
                b"ld\nSTARTTLS\r\n",
                b"client hello",
            ],
        );
        assert_eq!(sent, b"250-kamaelia\r\n250 STARTTLS\r\nhello\r\nworld\n");
        assert_eq!(switch, Some(31));
        assert!(!quit && !failed);
        let (sent, _, quit, _) = run(false, &[b"a\nb\nquit\n"]);
        assert_eq!(sent, b"221 bye\r\n");
        assert!(quit);
    }

    #[test]
    fn what_follows_starttls_is_kept_for_the_handshake() {
        let mut d = Dialogue::new(true);
        let mut out = Vec::new();
        d.feed(b"STARTTLS\r\n\x16\x03\x01", &mut out).unwrap();
        assert!(matches!(out.as_slice(), [Out::Switch(_)]));
        assert_eq!(&d.take_rest()[..], b"\x16\x03\x01");
    }

    #[test]
    fn a_line_longer_than_the_cap_fails_whole_or_in_pieces() {
        let long = vec![b'a'; MAX_LINE + 1];
        assert!(run(true, &[&long]).3);
        let mut line = vec![b'a'; MAX_LINE];
        line.push(b'\n');
        assert!(run(true, &[&line]).3);
        let ok = vec![b'a'; MAX_LINE - 1];
        let (sent, _, _, failed) = run(true, &[b"x\n", &ok, b"\n"]);
        assert!(!failed);
        assert_eq!(sent.len(), 2 + MAX_LINE);
        // A partial line at the cap fails as soon as it passes it, across chunks.
        assert!(run(true, &[&ok, b"ab"]).3);
    }

    /// A line-by-line parse of the whole input: the reference for the chunked one.
    fn reference(echo: bool, input: &[u8]) -> (Vec<u8>, Option<u64>, bool, bool) {
        let (mut sent, mut consumed) = (Vec::new(), 0u64);
        for line in input.split_inclusive(|&c| c == b'\n') {
            if line.len() > MAX_LINE {
                return (sent, None, false, true);
            }
            if line.last() != Some(&b'\n') {
                break;
            }
            consumed += line.len() as u64;
            match command(line) {
                Command::Hello => sent.extend_from_slice(b"250-kamaelia\r\n250 STARTTLS\r\n"),
                Command::StartTls => return (sent, Some(consumed), false, false),
                Command::Quit => {
                    sent.extend_from_slice(b"221 bye\r\n");
                    return (sent, None, true, false);
                }
                Command::Other if echo => sent.extend_from_slice(line),
                Command::Other => {}
            }
        }
        (sent, None, false, false)
    }

    fn input() -> impl Strategy<Value = Vec<u8>> {
        let word = prop_oneof![
            Just(b"EHLO me\r\n".to_vec()),
            Just(b"starttls\n".to_vec()),
            Just(b"QUIT\r\n".to_vec()),
            Just(b"\n".to_vec()),
            Just(vec![b'z'; MAX_LINE - 1]),
            Just(vec![b'z'; MAX_LINE]),
            proptest::collection::vec(any::<u8>(), 0..64),
        ];
        proptest::collection::vec(word, 0..12).prop_map(|w| w.concat())
    }

    proptest! {
        /// Any bytes in any chunking: the same answers as a line-by-line parse, a clean
        /// failure exactly when a line passes the cap, never a panic, and never more held
        /// between chunks than a line.
        #[test]
        fn any_chunking_answers_like_a_line_by_line_parse(
            echo in any::<bool>(),
            data in input(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut at: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
            at.extend([0, data.len()]);
            at.sort_unstable();
            let chunks: Vec<&[u8]> = at.windows(2).map(|w| &data[w[0]..w[1]]).collect();
            let mut d = Dialogue::new(echo);
            let mut out = Vec::new();
            for c in &chunks {
                let failed = d.feed(c, &mut out).is_err();
                prop_assert!(failed || d.done || d.buf.len() <= MAX_LINE);
                if failed || d.done {
                    break;
                }
            }
            prop_assert_eq!(run(echo, &chunks), reference(echo, &data));
        }
    }
}
