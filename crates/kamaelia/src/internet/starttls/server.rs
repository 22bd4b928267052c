//! The server side: a line splitter for the protocols' commands ([`Lines`]), and the one driver
//! the server components share, run as a TcpServer protocol.

use std::time::Duration;

use axon::{Component, Control, ControlWatch, Outbox, SendError, CONTROL, INBOX, OUTBOX, SIGNAL};
use bytes::{Bytes, BytesMut};

use super::error::{Client, DialogueError};
use super::replay::HandshakeReplay;
use crate::internet::{Limits, MakeSsl, SslReady};

/// The longest command line a server dialogue accepts, end of line included (RFC 5321 allows
/// 1000 bytes for an SMTP command line; this is generous). A longer line ends the connection.
pub const MAX_COMMAND_LINE: usize = 8 * 1024;

/// The most a server component holds between the STARTTLS command and the end of the switch
/// (bytes the client pipelined after the command: its handshake, normally a few KiB). More ends
/// the connection.
pub const MAX_HELD: usize = 64 * 1024;

/// What a command line asks the server to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Not a command: echoed (or discarded) as data.
    Pass,
    /// Answer with these bytes.
    Reply(Bytes),
    /// Answer with these bytes and switch to TLS right after them.
    Switch(Bytes),
    /// Answer with these bytes and end the session.
    Quit(Bytes),
}

/// A protocol's server side of the plaintext dialogue: what it says, and how it answers each
/// line (with its line ending).
pub(crate) trait ServerDialogue: Send + 'static {
    /// The greeting, sent when the connection comes up.
    fn greeting(&self) -> &'static [u8];
    /// The answer to one line.
    fn answer(&mut self, line: &[u8]) -> Answer;
    /// Said before dropping a client that did not ask for STARTTLS in time.
    fn timed_out(&self) -> &'static [u8];
    /// Said before dropping a client whose line is too long.
    fn too_long(&self) -> &'static [u8];
}

/// The settings every server component shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerOptions {
    pub(crate) echo: bool,
    pub(crate) peer: Client,
    pub(crate) plaintext_limit: Option<Duration>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            echo: true,
            peer: Client(None),
            plaintext_limit: None,
        }
    }
}

axon::box_table! {
    /// The server components' boxes, declared once, as data: the builder declares them from here.
    const BOXES: ServerBoxes {
        inbox: INBOX => "bytes from the client",
        control: CONTROL => "the connection's signal: its final message ends the session after what it delivered",
        outbox: OUTBOX => "bytes to the client: replies, then the echo",
        signal: SIGNAL => "a DialogueError when the client is dropped, then one final message",
        makessl: "makessl" => "switches the connection to TLS, with the reply and the count of bytes consumed",
        sslready: "sslready" => "the switch is done, and how many bytes the connection replayed",
    }
}

/// Where a server component is in its session.
enum Phase<D> {
    /// Plaintext: lines.
    Plain(Lines<D>),
    /// makessl sent; bytes that arrive now were the client's handshake (or later data).
    Switching(BytesMut),
    /// TLS: replayed handshake bytes go, the rest is data.
    Tls(HandshakeReplay),
}

/// A server component named `name`, speaking `proto` (see
/// [`SmtpStartTlsServer`](super::SmtpStartTlsServer) for how it works).
pub(crate) fn component<D: ServerDialogue>(
    name: &'static str,
    proto: D,
    opts: ServerOptions,
) -> Component {
    let ServerOptions {
        echo,
        peer,
        plaintext_limit,
    } = opts;
    let mut b = Component::build(name);
    let inbox = b
        .inbox_from::<Bytes>(BOXES.inbox)
        .limit_bytes(Limits::default().receive_bytes);
    let control = b.control_from(BOXES.control);
    let outbox = b.outbox_from::<Bytes>(BOXES.outbox);
    let signal = b.signal_from(BOXES.signal);
    let makessl = b.outbox_from::<MakeSsl>(BOXES.makessl);
    let sslready = b.inbox_from::<SslReady>(BOXES.sslready);
    b.main(move |cx| async move {
        let label: std::sync::Arc<str> = cx.label().into();
        let (timed_out, too_long) = (proto.timed_out(), proto.too_long());
        let fail = |e: DialogueError, reply: &'static [u8]| {
            drop_client(&outbox, &signal, label.clone(), e, reply)
        };
        outbox.send(Bytes::from_static(proto.greeting())).await?;
        // With no limit, a deadline that never comes (a year is as good as never here).
        let limit = plaintext_limit.unwrap_or(Duration::from_secs(365 * 24 * 3600));
        let deadline = tokio::time::Instant::now() + limit;
        let mut phase = Phase::Plain(Lines::new(proto, echo));
        let mut out = Vec::new();
        let mut watch = ControlWatch::new(&control, &signal);
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline), if matches!(phase, Phase::Plain(_)) => {
                    let e = DialogueError::PlaintextTimeout { peer, after: limit };
                    fail(e, timed_out).await;
                    return Ok(());
                }
                r = sslready.recv(), if matches!(phase, Phase::Switching(_)) => {
                    if let Phase::Switching(held) = &mut phase {
                        phase = switched(&r, std::mem::take(held), echo, &outbox).await?;
                    }
                }
                d = inbox.recv() => {
                    match &mut phase {
                        Phase::Tls(replay) => {
                            if let Some(d) = replay.strip(d) {
                                if echo {
                                    outbox.send(d).await?;
                                }
                            }
                        }
                        Phase::Switching(held) => {
                            if held.len() + d.len() > MAX_HELD {
                                fail(DialogueError::TooMuchBeforeHandshake { peer }, b"").await;
                                return Ok(());
                            }
                            held.extend_from_slice(&d);
                        }
                        Phase::Plain(lines) => {
                            let fed = lines.feed(&d, &mut out);
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
                                fail(e, too_long).await;
                                return Ok(());
                            }
                            if switching {
                                let rest = lines.take_rest();
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
                    watch.handle(c).await;
                    if watch.stopping() {
                        // The connection sent sslready before any data it decrypted, so a
                        // switch in progress has finished by the time it says it is done.
                        if let Phase::Switching(held) = &mut phase {
                            if let Some(r) = sslready.try_recv() {
                                phase = switched(&r, std::mem::take(held), echo, &outbox).await?;
                            }
                        }
                        if let (Phase::Tls(replay), false) = (&mut phase, watch.shutdown_requested()) {
                            while let Some(d) = inbox.try_recv() {
                                if let Some(d) = replay.strip(d) {
                                    if echo {
                                        outbox.send(d).await?;
                                    }
                                }
                            }
                        }
                        watch.finish(Control::producer_finished());
                        return Ok(());
                    }
                }
            }
        }
    })
}

/// Says why on the connection (`reply`, if any) and on `signal`, then finishes: the
/// connection closes.
async fn drop_client(
    outbox: &Outbox<Bytes>,
    signal: &Outbox<Control>,
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
async fn switched<D>(
    ready: &SslReady,
    held: BytesMut,
    echo: bool,
    outbox: &Outbox<Bytes>,
) -> Result<Phase<D>, SendError<Bytes>> {
    let (replay, data) = HandshakeReplay::start(ready.replayed, held);
    if echo && !data.is_empty() {
        outbox.send(data).await?;
    }
    Ok(Phase::Tls(replay))
}

/// What the plaintext dialogue asks the component to do, in order.
#[derive(Debug)]
pub(crate) enum Out {
    /// Send these bytes to the client.
    Data(Bytes),
    /// Switch to TLS (the reply travels with the request).
    Switch(MakeSsl),
    /// End the session (after the data before it).
    Quit,
}

/// A line longer than [`MAX_COMMAND_LINE`]: the dialogue cannot go on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LineTooLong;

/// The plaintext dialogue of a server component, without sockets: bytes in, [`Out`]s out.
///
/// Linear in what it is fed: each byte is scanned for a newline once, lines leave the buffer by
/// `split_to` (no copying of what follows), and consecutive echoed lines leave as one message.
/// It holds at most one partial line of [`MAX_COMMAND_LINE`] bytes between calls.
pub(crate) struct Lines<D> {
    proto: D,
    /// Unanswered bytes: `buf[..run]` are whole lines to echo (or discard), then a partial
    /// line.
    buf: BytesMut,
    /// The length of the run of whole lines to echo (or discard) at the front of `buf`.
    run: usize,
    /// Where to look for the next newline: `buf[run..scanned]` has none.
    scanned: usize,
    /// Bytes of whole lines taken so far (for [`MakeSsl::with_consumed`]).
    pub(crate) consumed: u64,
    echo: bool,
    /// Set by STARTTLS or QUIT: nothing more is answered.
    pub(crate) done: bool,
}

impl<D: ServerDialogue> Lines<D> {
    pub(crate) fn new(proto: D, echo: bool) -> Self {
        Lines {
            proto,
            buf: BytesMut::new(),
            run: 0,
            scanned: 0,
            consumed: 0,
            echo,
            done: false,
        }
    }

    /// Bytes held between calls.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.buf.len()
    }

    /// Takes `data`, pushes what to do onto `out`, and stops after a switch or a quit (the rest
    /// stays for [`Lines::take_rest`]). `Err` when a line is too long; `out` then holds what
    /// was answered before it.
    pub(crate) fn feed(&mut self, data: &[u8], out: &mut Vec<Out>) -> Result<(), LineTooLong> {
        self.buf.extend_from_slice(data);
        if self.done {
            return Ok(());
        }
        while let Some(i) = self.buf[self.scanned..].iter().position(|&c| c == b'\n') {
            let end = self.scanned + i + 1;
            let len = end - self.run;
            if len > MAX_COMMAND_LINE {
                self.flush_run(out);
                return Err(LineTooLong);
            }
            self.consumed += len as u64;
            let answer = self.proto.answer(&self.buf[self.run..end]);
            if answer == Answer::Pass {
                self.run = end;
                self.scanned = end;
                continue;
            }
            self.flush_run(out);
            // The command itself is answered, not echoed.
            drop(self.buf.split_to(len));
            self.scanned = 0;
            match answer {
                Answer::Pass => {}
                Answer::Reply(r) => out.push(Out::Data(r)),
                Answer::Switch(r) => {
                    self.done = true;
                    out.push(Out::Switch(
                        MakeSsl::new().with_reply(r).with_consumed(self.consumed),
                    ));
                    return Ok(());
                }
                Answer::Quit(r) => {
                    self.done = true;
                    out.push(Out::Data(r));
                    out.push(Out::Quit);
                    return Ok(());
                }
            }
        }
        self.scanned = self.buf.len();
        let partial = self.buf.len() - self.run;
        self.flush_run(out);
        if partial > MAX_COMMAND_LINE {
            return Err(LineTooLong);
        }
        Ok(())
    }

    /// What was received after the last answered line (after STARTTLS: the client's
    /// pipelined bytes).
    pub(crate) fn take_rest(&mut self) -> BytesMut {
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

/// True if `line` (surrounding whitespace ignored) starts with `word`, any case.
pub(crate) fn starts_with_word(line: &[u8], word: &[u8]) -> bool {
    let t = line.trim_ascii();
    t.len() >= word.len() && t[..word.len()].eq_ignore_ascii_case(word)
}

/// True if `line` (surrounding whitespace ignored) is `word`, any case.
pub(crate) fn is_word(line: &[u8], word: &[u8]) -> bool {
    line.trim_ascii().eq_ignore_ascii_case(word)
}

/// The builder every server component shares: `new`, `echo`, `peer`, `plaintext_limit`, and
/// the conversion into a [`Component`] speaking `$dialogue`.
macro_rules! server_component {
    ($name:ident, $dialogue:expr) => {
        impl $name {
            /// A server that echoes what the client sends outside the dialogue, with no limit
            /// on the plaintext phase, for a client it does not name.
            pub fn new() -> Self {
                $name {
                    opts: $crate::internet::starttls::server::ServerOptions::default(),
                }
            }

            /// Echo (`true`, the default) or discard what the client sends outside the
            /// dialogue, before and after the switch.
            #[must_use]
            pub fn echo(mut self, echo: bool) -> Self {
                self.opts.echo = echo;
                self
            }

            /// Names the client in errors (a TcpServer's `ConnectionInfo::peer`).
            #[must_use]
            pub fn peer(mut self, peer: std::net::SocketAddr) -> Self {
                self.opts.peer = $crate::internet::starttls::Client(Some(peer));
                self
            }

            /// Bounds the whole plaintext phase, from the greeting to STARTTLS, counted from
            /// the connection (`None`: no bound).
            #[must_use]
            pub fn plaintext_limit(mut self, limit: Option<std::time::Duration>) -> Self {
                self.opts.plaintext_limit = limit;
                self
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<$name> for axon::Component {
            fn from(s: $name) -> axon::Component {
                $crate::internet::starttls::server::component(stringify!($name), $dialogue, s.opts)
            }
        }
    };
}
pub(crate) use server_component;
