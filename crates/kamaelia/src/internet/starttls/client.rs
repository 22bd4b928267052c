//! The client side: a line feeder for the protocols' dialogues ([`Talk`]), and the one driver
//! the client components share, which sits between the user and a TcpClient.

use std::time::Duration;

use axon::{
    Component, ComponentBuilder, Control, ControlWatch, Inbox, Outbox, TrySendError, CONTROL,
    INBOX, OUTBOX, SIGNAL,
};
use bytes::Bytes;

use super::error::StartTlsError;
use crate::internet::{
    Connected, MakeSsl, PeerHalfClosed, SslReady, TlsError, DEFAULT_LIMIT_BYTES,
};

/// The longest reply line a client dialogue accepts before the switch.
pub const MAX_REPLY_LINE: usize = 8192;
/// The most reply lines a client dialogue accepts (a real EHLO reply has a few dozen).
pub const MAX_REPLY_LINES: usize = 512;
/// How long a client dialogue may take, counted from the moment the connection is up, unless
/// the component is told otherwise.
pub const DEFAULT_DIALOGUE_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest reply packet (a binary protocol's frame: MySQL's handshake, an LDAP message) a
/// client dialogue accepts before the switch.
pub const MAX_REPLY_PACKET: usize = 16 * 1024;

/// What a client dialogue wants done after a line (or a packet) from the server.
#[derive(Debug)]
pub(crate) enum Step {
    /// Keep reading.
    Read,
    /// Send these bytes, then keep reading.
    Send(Bytes),
    /// The server agreed: switch to TLS now.
    Switch,
    /// Send these bytes, then switch to TLS at once, without a go-ahead (MySQL's SSLRequest).
    SendThenSwitch(Bytes),
    /// Give up.
    Fail(StartTlsError),
}

/// The plaintext part of a line protocol's STARTTLS as a state machine over the server's reply
/// lines (without their line ending). No sockets: [`Lines`] cuts the lines, [`Talk`] feeds it.
pub(crate) trait ClientDialogue: Send + 'static {
    /// What to send as soon as the connection is up, for protocols where the client speaks
    /// first (IRC).
    fn opening(&mut self) -> Option<Bytes> {
        None
    }

    /// The next step after `line`.
    fn on_line(&mut self, line: &str) -> Step;
}

/// What a framed dialogue made of the unread bytes it was shown.
#[derive(Debug)]
pub(crate) enum Frame {
    /// Not a whole frame yet: wait for more bytes (they stay held).
    More,
    /// The first `n` bytes were a frame, and this is what to do about it.
    Took(usize, Step),
    /// The first `n` bytes can be dropped: they were looked at and matter no more (a stream
    /// protocol's text between the markers it looks for). Not counted as a frame.
    Skip(usize),
}

/// The plaintext part of any STARTTLS protocol as a state machine over the server's bytes, cut
/// into frames by the dialogue itself: lines ([`Lines`]), packets, or markers in a stream. It
/// must keep what it leaves unread small (a partial frame, within its own cap): [`Talk`] holds
/// it between reads.
pub(crate) trait Framed: Send + 'static {
    /// What to send as soon as the connection is up (PostgreSQL's SSLRequest, XMPP's stream
    /// header, LDAP's ExtendedRequest).
    fn opening(&mut self) -> Option<Bytes> {
        None
    }

    /// The unread bytes, from the start of a frame: a whole frame, or more wanted.
    fn on_bytes(&mut self, unread: &[u8]) -> Frame;
}

impl Framed for Box<dyn Framed> {
    fn opening(&mut self) -> Option<Bytes> {
        (**self).opening()
    }

    fn on_bytes(&mut self, unread: &[u8]) -> Frame {
        (**self).on_bytes(unread)
    }
}

/// A line dialogue as a framed one: cuts lines (each at most [`MAX_REPLY_LINE`] bytes), in time
/// linear in the bytes received, and hands them to the dialogue without their line ending.
#[derive(Debug, Clone)]
pub(crate) struct Lines<D> {
    dialogue: D,
    /// How far the current partial line has been searched for a line end.
    scanned: usize,
}

impl<D> Lines<D> {
    pub(crate) fn new(dialogue: D) -> Self {
        Lines {
            dialogue,
            scanned: 0,
        }
    }
}

impl<D: ClientDialogue> Framed for Lines<D> {
    fn opening(&mut self) -> Option<Bytes> {
        self.dialogue.opening()
    }

    fn on_bytes(&mut self, unread: &[u8]) -> Frame {
        let from = self.scanned.min(unread.len());
        let Some(i) = unread[from..].iter().position(|&c| c == b'\n') else {
            self.scanned = unread.len();
            if unread.len() > MAX_REPLY_LINE {
                return Frame::Took(0, Step::Fail(StartTlsError::LineTooLong));
            }
            return Frame::More;
        };
        let end = from + i + 1;
        self.scanned = 0;
        if end > MAX_REPLY_LINE {
            return Frame::Took(end, Step::Fail(StartTlsError::LineTooLong));
        }
        let line = String::from_utf8_lossy(&unread[..end]);
        let line = line.trim_end_matches(['\r', '\n']);
        tracing::debug!(line, "starttls: server");
        Frame::Took(end, self.dialogue.on_line(line))
    }
}

/// A dialogue fed with the server's bytes as they come, cut anywhere: whole frames go to the
/// dialogue, a partial one waits (within the dialogue's cap), and the whole costs time linear
/// in what was received.
#[derive(Debug)]
pub(crate) struct Talk<D> {
    dialogue: D,
    buf: Vec<u8>,
    /// Where the unread part of `buf` starts.
    start: usize,
    /// Frames (lines, packets) read so far.
    pub(crate) lines: usize,
    done: bool,
}

/// What to do after the bytes given to [`Talk::feed`].
#[derive(Debug, Default)]
pub(crate) struct Said {
    /// Send these, in order.
    pub(crate) send: Vec<Bytes>,
    /// Then switch to TLS (send `makessl`).
    pub(crate) switch: bool,
}

impl<D: ClientDialogue> Talk<Lines<D>> {
    /// A line dialogue's talk.
    #[cfg(test)]
    pub(crate) fn lines(dialogue: D) -> Self {
        Talk::new(Lines::new(dialogue))
    }
}

impl<D: Framed> Talk<D> {
    pub(crate) fn new(dialogue: D) -> Self {
        Talk {
            dialogue,
            buf: Vec::new(),
            start: 0,
            lines: 0,
            done: false,
        }
    }

    /// What to send once connected, if the client speaks first.
    pub(crate) fn opening(&mut self) -> Option<Bytes> {
        self.dialogue.opening()
    }

    /// Bytes held between calls: at most one partial frame.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Takes bytes from the server. After the go-ahead (`switch`), any byte at all, in the same
    /// read or a later one, is refused as injection: it was not protected by TLS.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Result<Said, StartTlsError> {
        if self.done {
            return Err(injection(data.len()));
        }
        // Drop what was read before; what is left is one partial frame.
        self.buf.drain(..self.start);
        self.start = 0;
        self.buf.extend_from_slice(data);
        let mut said = Said::default();
        while self.start < self.buf.len() {
            let step = match self.dialogue.on_bytes(&self.buf[self.start..]) {
                Frame::More => break,
                // Nothing dropped is nothing learnt: wait for more rather than loop.
                Frame::Skip(0) => break,
                Frame::Skip(n) => {
                    self.start = (self.start + n).min(self.buf.len());
                    continue;
                }
                Frame::Took(n, step) => {
                    self.start = (self.start + n).min(self.buf.len());
                    self.lines += 1;
                    if self.lines > MAX_REPLY_LINES {
                        return Err(StartTlsError::TooManyLines);
                    }
                    step
                }
            };
            match step {
                Step::Read => {}
                Step::Send(bytes) => said.send.push(bytes),
                Step::Switch | Step::SendThenSwitch(_) => {
                    if let Step::SendThenSwitch(bytes) = step {
                        said.send.push(bytes);
                    }
                    self.done = true;
                    let rest = self.buf.len() - self.start;
                    if rest > 0 {
                        return Err(injection(rest));
                    }
                    said.switch = true;
                    return Ok(said);
                }
                Step::Fail(e) => return Err(e),
            }
        }
        Ok(said)
    }
}

/// Bytes the server sent after its go-ahead and before TLS: one error for both TLS paths.
pub(crate) fn injection(bytes: usize) -> StartTlsError {
    StartTlsError::Tls(TlsError::PlaintextInjection { bytes })
}

axon::box_table! {
    /// The client components' boxes, declared once, as data: the builder declares them from here
    /// (the server layer declares the same boxes, described from its side).
    pub(crate) const BOXES: ClientBoxes {
        inbox: INBOX => "bytes from the user, held until TLS is up",
        control: CONTROL => "the user's side's signal: its final message is passed on after its bytes",
        fromserver: "fromserver" => "bytes from the connection",
        connsignal: "connsignal" => "the connection's signal",
        sslready: "sslready" => "the connection's TLS details",
        outbox: OUTBOX => "bytes to the connection",
        signal: SIGNAL => "to the connection's control: the user's final message, or ShutdownMicroprocess on failure",
        touser: "touser" => "the server's bytes once TLS is up",
        connevents: "connevents" => "the connection's signal, passed on, with a StartTlsError before it on failure",
        makessl: "makessl" => "asks the connection to switch to TLS",
        tlsready: "tlsready" => "the TLS details, passed on",
    }
}

/// Kamaelia's `OneShot(MakeSsl)` with a guard: the client side of TLS from the first byte.
///
/// A [`OneShot`](crate::OneShot) of [`MakeSsl`] linked to the connection's `makessl` does the
/// switching; the gate sits between the user and the connection and holds the user's bytes
/// until `sslready`, so that nothing typed (or piped) before the handshake leaves in plaintext,
/// and it refuses whatever the server sends before TLS ([`StartTlsError::PlaintextBeforeTls`]):
/// it is never shown as if it were protected.
///
/// # Example
///
/// ```no_run
/// use kamaelia::internet::{TcpClient, TlsGate, TlsSettings};
/// use kamaelia::{ConsoleEchoer, ConsoleReader, Graphline, MakeSsl, OneShot};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tls = TlsSettings::new();
/// let session = Graphline::new()
///     .component("SOURCE", ConsoleReader::new())
///     .component("GATE", TlsGate::new())
///     .component("MAKESSL", OneShot::new(MakeSsl::new()))
///     .component("CONNECTION", TcpClient::new("example.com", 443).tls(tls))
///     .component("ECHO", ConsoleEchoer::new())
///     .link(("SOURCE", "outbox"), ("GATE", "inbox"))
///     .link(("SOURCE", "signal"), ("GATE", "control"))
///     .link(("GATE", "outbox"), ("CONNECTION", "inbox"))
///     .link(("GATE", "signal"), ("CONNECTION", "control"))
///     .link(("MAKESSL", "outbox"), ("CONNECTION", "makessl"))
///     .link(("CONNECTION", "outbox"), ("GATE", "fromserver"))
///     .link(("CONNECTION", "signal"), ("GATE", "connsignal"))
///     .link(("CONNECTION", "sslready"), ("GATE", "sslready"))
///     .link(("GATE", "touser"), ("ECHO", "inbox"))
///     .link(("GATE", "connevents"), ("ECHO", "control"))
///     .build()?;
/// # let _ = session;
/// # Ok(())
/// # }
/// ```
///
/// # How it works
///
/// As the STARTTLS client components (see [`SmtpStartTlsClient`](super::SmtpStartTlsClient)),
/// without a dialogue: it waits for `sslready` from the start, and never sends `makessl`
/// itself.
///
#[doc = include_str!("client_boxes.md")]
#[derive(Debug, Clone, Default)]
pub struct TlsGate {}

impl TlsGate {
    /// A gate.
    pub fn new() -> Self {
        TlsGate {}
    }
}

impl From<TlsGate> for Component {
    fn from(_: TlsGate) -> Component {
        component("TlsGate", None, Duration::ZERO)
    }
}

/// The boxes every layer between a user and a connection declares, once: the client
/// components', and [`StartTlsServerLayer`](super::StartTlsServerLayer)'s under other words.
pub(crate) struct Boxes {
    pub(crate) inbox: Inbox<Bytes>,
    pub(crate) control: Inbox<Control>,
    pub(crate) from_server: Inbox<Bytes>,
    pub(crate) conn_signal: Inbox<Control>,
    pub(crate) sslready: Inbox<SslReady>,
    pub(crate) outbox: Outbox<Bytes>,
    pub(crate) signal: Outbox<Control>,
    pub(crate) to_user: Outbox<Bytes>,
    pub(crate) conn_events: Outbox<Control>,
    pub(crate) makessl: Outbox<MakeSsl>,
    pub(crate) tlsready: Outbox<SslReady>,
}

impl Boxes {
    /// Declares `table`'s boxes on `b`. Bounded in bytes as a connection's own inbox is: the
    /// user's bytes held until TLS, and the connection's on their way to the user, never more
    /// than 256 KiB each.
    pub(crate) fn declare(b: &mut ComponentBuilder, table: &ClientBoxes) -> Boxes {
        Self::declare_with(b, table, DEFAULT_LIMIT_BYTES)
    }

    /// [`Boxes::declare`] with the user's bytes (`inbox`) bounded by `inbox_limit` instead.
    fn declare_with(b: &mut ComponentBuilder, table: &ClientBoxes, inbox_limit: usize) -> Boxes {
        Boxes {
            inbox: b.inbox_from(table.inbox).limit_bytes(inbox_limit),
            control: b.control_from(table.control),
            from_server: b
                .inbox_from(table.fromserver)
                .limit_bytes(DEFAULT_LIMIT_BYTES),
            conn_signal: b.inbox_from(table.connsignal),
            sslready: b.inbox_from(table.sslready),
            outbox: b.outbox_from(table.outbox),
            signal: b.signal_from(table.signal),
            to_user: b.outbox_from(table.touser),
            conn_events: b.outbox_from(table.connevents),
            makessl: b.outbox_from(table.makessl),
            tlsready: b.outbox_from(table.tlsready),
        }
    }
}

/// A client component named `name`: with a dialogue, it speaks it within `limit` of the
/// connection coming up; without, it is a [`TlsGate`].
pub(crate) fn component(
    name: &'static str,
    dialogue: Option<Box<dyn Framed>>,
    limit: Duration,
) -> Component {
    let mut b = Component::build(name);
    let inbox_limit = if dialogue.is_some() {
        DEFAULT_LIMIT_BYTES
    } else {
        GATE_INBOX_BYTES
    };
    let boxes = Boxes::declare_with(&mut b, &BOXES, inbox_limit);
    b.main(move |cx| async move {
        let label = cx.label().to_string();
        run(dialogue.map(Talk::new), limit, boxes, label).await;
        Ok(())
    })
}

/// What a [`TlsGate`] holds of the user's bytes: one 64 KiB chunk (a box admits a message
/// while it holds less than its limit). Once TLS is up the gate only passes chunks on, and
/// every byte queued between a sender and the socket is a byte that goes cold in the CPU's
/// cache before rustls copies it into a record: `kamaelia send --tls` holds one chunk here
/// instead of four (kamaelia-cli's `send.rs` gives the measured effect of the tighter path).
const GATE_INBOX_BYTES: usize = 64 * 1024;

/// Where the component is.
enum Phase {
    /// Speaking the plaintext dialogue.
    Talking,
    /// Waiting for `sslready`.
    Waiting,
    /// Relaying both ways.
    Relaying,
    /// Failed: only passing on the connection's signal until it ends.
    Failed,
}

async fn run(mut talk: Option<Talk<Box<dyn Framed>>>, limit: Duration, b: Boxes, label: String) {
    let mut phase = if talk.is_some() {
        Phase::Talking
    } else {
        Phase::Waiting
    };
    // The dialogue's clock starts when the connection is up (Connected), not before: a delay
    // or a slow connect is not the server's time.
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    let mut clock_running = false;
    // The user's side's control (docs/semantics.md §5): its final message is kept until its
    // bytes have been passed on (ShutdownMicroprocess goes at once); `None` once it has gone.
    let mut watch = Some(ControlWatch::new(&b.control, &b.signal));
    let mut up: Option<Bytes> = None;
    let mut down: Option<Bytes> = None;
    // Bytes taken from the connection so far, and, once `sslready` has said how many it
    // delivered in plaintext, how many of those are still to come: they were read before TLS.
    let mut taken: u64 = 0;
    let mut plain_left: u64 = 0;
    loop {
        let relaying = matches!(phase, Phase::Relaying);
        let drained = relaying && up.is_none() && b.inbox.is_empty();
        if let Some(w) = watch.take_if(|w| w.shutdown_requested() || (w.stopping() && drained)) {
            w.finish(Control::producer_finished());
        }
        tokio::select! {
            // sslready before the server's bytes: TLS data can only follow it (see below).
            biased;
            r = b.sslready.recv() => {
                plain_left = r.plaintext.saturating_sub(taken);
                let _ = b.tlsready.send(r).await;
                if matches!(phase, Phase::Waiting) {
                    phase = Phase::Relaying;
                }
            }
            c = b.conn_signal.recv() => {
                // The connection sent everything it received before its final message, and
                // before its half-close: pass those bytes on first, so that neither overtakes
                // the data (a relay passes the half-close on as a FIN).
                let half_closed = relaying && c.payload::<PeerHalfClosed>().is_some();
                let mut injected = None;
                if c.is_final() || half_closed {
                    if let Some(d) = down.take() {
                        let _ = b.to_user.send(d).await;
                    }
                    while let Some(d) = b.from_server.try_recv() {
                        if relaying && plain_left > 0 {
                            injected = Some(plaintext_before_tls(talk.is_some(), plain_left));
                            break;
                        }
                        if relaying {
                            let _ = b.to_user.send(d).await;
                        }
                    }
                }
                if let Some(e) = injected.take_if(|_| !c.is_final()) {
                    fail(&b, &label, e, &mut phase, &mut watch).await;
                    continue;
                }
                if c.is_final() {
                    if let Some(e) = injected {
                        let _ = b.conn_events.send(Control::error(label.as_str(), e)).await;
                    }
                    if matches!(phase, Phase::Talking) {
                        let _ = b.conn_events.send(Control::error(label.as_str(), StartTlsError::Closed)).await;
                    }
                    let _ = b.conn_events.send(c).await;
                    return;
                }
                if c.payload::<Connected>().is_some() && !clock_running {
                    clock_running = true;
                    deadline.as_mut().reset(tokio::time::Instant::now() + limit);
                    // Protocols where the client speaks first: its first words go now.
                    if let Some(first) = talk.as_mut().and_then(Talk::opening) {
                        tracing::debug!(line = %String::from_utf8_lossy(&first).trim_end(), "starttls: client");
                        let _ = b.outbox.send(first).await;
                    }
                }
                let _ = b.conn_events.send(c).await;
            }
            c = b.control.recv() => crate::internet::handle_control(watch.as_mut(), &b.signal, c).await,
            d = b.from_server.recv(), if down.is_none() && !matches!(phase, Phase::Failed) => {
                taken += d.len() as u64;
                if relaying && plain_left > 0 {
                    // Taken after sslready, yet delivered before the switch: plaintext that the
                    // connection read after the go-ahead (or before a gate's TLS), which
                    // arrived here together with sslready. Never shown as if protected.
                    let e = plaintext_before_tls(talk.is_some(), plain_left);
                    fail(&b, &label, e, &mut phase, &mut watch).await;
                    continue;
                }
                if relaying {
                    down = offer(&b.to_user, d);
                    continue;
                }
                let Some(talk) = talk.as_mut() else {
                    // A gate: the connection sends sslready before any byte it decrypts, and
                    // sslready is looked at first, so these bytes were read in plaintext before
                    // TLS (a makessl that reached the connection after the server had spoken).
                    // They are never shown as if they were protected.
                    let e = StartTlsError::PlaintextBeforeTls { bytes: d.len() };
                    fail(&b, &label, e, &mut phase, &mut watch).await;
                    continue;
                };
                // After the go-ahead the connection sends sslready before any byte read under
                // TLS, and sslready is looked at first: these bytes were read in plaintext,
                // after the go-ahead. Talk refuses them as injection (never a second switch).
                match talk.feed(&d) {
                    Ok(said) => {
                        for bytes in said.send {
                            tracing::debug!(line = %String::from_utf8_lossy(&bytes).trim_end(), "starttls: client");
                            let _ = b.outbox.send(bytes).await;
                        }
                        if said.switch {
                            let _ = b.makessl.send(MakeSsl::new()).await;
                            phase = Phase::Waiting;
                        }
                    }
                    Err(e) => fail(&b, &label, e, &mut phase, &mut watch).await,
                }
            }
            _ = b.to_user.ready(), if down.is_some() && relaying => {
                if let Some(d) = down.take() {
                    down = offer(&b.to_user, d);
                }
            }
            d = b.inbox.recv(), if relaying && up.is_none() && watch.is_some() => {
                up = offer(&b.outbox, d);
            }
            _ = b.outbox.ready(), if up.is_some() => {
                if let Some(d) = up.take() {
                    up = offer(&b.outbox, d);
                }
            }
            () = &mut deadline, if clock_running && matches!(phase, Phase::Talking) => {
                fail(&b, &label, StartTlsError::TimedOut(limit), &mut phase, &mut watch).await;
            }
        }
    }
}

/// The error for `bytes` of plaintext found after `sslready`: an injection after the go-ahead
/// in a dialogue, plaintext before TLS at a gate.
fn plaintext_before_tls(dialogue: bool, bytes: u64) -> StartTlsError {
    let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
    if dialogue {
        StartTlsError::Tls(TlsError::PlaintextInjection { bytes })
    } else {
        StartTlsError::PlaintextBeforeTls { bytes }
    }
}

/// Sends `d` if there is room now; otherwise hands it back to be retried when there is.
fn offer(out: &Outbox<Bytes>, d: Bytes) -> Option<Bytes> {
    match out.try_send(d) {
        Ok(()) | Err(TrySendError::Closed(_)) => None,
        Err(TrySendError::Full(d) | TrySendError::Unlinked(d)) => Some(d),
    }
}

/// Reports `e` and closes the connection; the component then waits for the connection to end.
async fn fail(
    b: &Boxes,
    label: &str,
    e: StartTlsError,
    phase: &mut Phase,
    watch: &mut Option<ControlWatch<'_>>,
) {
    *phase = Phase::Failed;
    let _ = b.conn_events.send(Control::error(label, e)).await;
    if let Some(mut w) = watch.take() {
        // ShutdownMicroprocess, even if the user's side had finished: the connection closes.
        w.handle(Control::shutdown()).await;
        w.finish(Control::shutdown());
    }
}

/// The builder every client component shares: `new`, `timeout`, and the conversion into a
/// [`Component`] speaking `$dialogue`.
macro_rules! client_component {
    ($name:ident, $dialogue:expr) => {
        impl $name {
            /// A client with [`DEFAULT_DIALOGUE_TIMEOUT`](super::DEFAULT_DIALOGUE_TIMEOUT).
            pub fn new() -> Self {
                $name {
                    timeout: $crate::internet::starttls::DEFAULT_DIALOGUE_TIMEOUT,
                }
            }

            /// How long the server has for the whole dialogue, counted from `Connected`.
            #[must_use]
            pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
                self.timeout = timeout;
                self
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<$name> for axon::Component {
            fn from(c: $name) -> axon::Component {
                $crate::internet::starttls::client::component(
                    stringify!($name),
                    Some(Box::new($dialogue)),
                    c.timeout,
                )
            }
        }
    };
}
pub(crate) use client_component;

#[cfg(test)]
mod tests {
    use super::*;
    use axon::{link_refs, Scheduler, SIGNAL};

    /// Runs `c` with `check`, then ends its connection (ProducerFinished on `connsignal`) and
    /// waits, within 10 s, for `c` to end.
    async fn run_until_the_connection_ends(
        c: Component,
        conn_signal: &Outbox<Control>,
        check: impl std::future::Future<Output = ()>,
    ) {
        let sched = Scheduler::new();
        let run = sched.run(async {
            c.activate();
            check.await;
            conn_signal
                .send(Control::producer_finished())
                .await
                .unwrap();
        });
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the component ends");
    }

    /// TLS from the first byte: bytes the connection delivers before `sslready` were read in
    /// plaintext (the server spoke before a late makessl reached the connection). They must
    /// never reach the user, even when the connection then ends; the gate fails the session.
    #[tokio::test]
    async fn the_gate_refuses_plaintext_that_arrives_before_tls() {
        let gate: Component = TlsGate::new().into();
        let from_server = Outbox::<Bytes>::standalone("server");
        let conn_signal = Outbox::<Control>::standalone("conn signal");
        let user = Inbox::<Bytes>::standalone("user", 8);
        let events = Inbox::<Control>::standalone("events", 8);
        let to_conn = Inbox::<Control>::standalone("to conn", 8);
        let r = |n: &str| gate.boxref(n).unwrap();
        link_refs(&from_server.boxref(), &r("fromserver")).unwrap();
        link_refs(&conn_signal.boxref(), &r("connsignal")).unwrap();
        link_refs(&r("touser"), &user.boxref()).unwrap();
        link_refs(&r("connevents"), &events.boxref()).unwrap();
        link_refs(&r(SIGNAL), &to_conn.boxref()).unwrap();
        from_server
            .send(Bytes::from_static(b"this is not TLS\r\n"))
            .await
            .unwrap();
        run_until_the_connection_ends(gate, &conn_signal, async {
            let e = events.recv().await;
            let text = e.to_string();
            assert!(text.contains("plaintext bytes before TLS"), "{text}");
            assert!(
                to_conn.recv().await.is_shutdown(),
                "the connection is closed"
            );
        })
        .await;
        assert!(user.try_recv().is_none(), "plaintext reached the user");
    }

    /// docs/semantics.md §5 on the user's side: bytes and ProducerFinished wait for TLS and
    /// leave in that order; ShutdownMicroprocess leaves at once, even mid-dialogue.
    #[tokio::test]
    async fn the_users_final_message_follows_its_bytes_and_shutdown_goes_at_once() {
        use crate::internet::TlsInfo;
        for shutdown in [false, true] {
            let gate: Component = if shutdown {
                crate::internet::SmtpStartTlsClient::new().into()
            } else {
                TlsGate::new().into()
            };
            let user = Outbox::<Bytes>::standalone("user");
            let user_control = Outbox::<Control>::standalone("user control");
            let sslready = Outbox::<SslReady>::standalone("sslready");
            let conn_signal = Outbox::<Control>::standalone("conn signal");
            let to_conn = Inbox::<Bytes>::standalone("to conn", 8);
            let conn_control = Inbox::<Control>::standalone("conn control", 8);
            let r = |n: &str| gate.boxref(n).unwrap();
            link_refs(&user.boxref(), &r(INBOX)).unwrap();
            link_refs(&user_control.boxref(), &r(axon::CONTROL)).unwrap();
            link_refs(&sslready.boxref(), &r("sslready")).unwrap();
            link_refs(&conn_signal.boxref(), &r("connsignal")).unwrap();
            link_refs(&r(OUTBOX), &to_conn.boxref()).unwrap();
            link_refs(&r(SIGNAL), &conn_control.boxref()).unwrap();
            user.send(Bytes::from_static(b"typed early")).await.unwrap();
            let last = if shutdown {
                Control::shutdown()
            } else {
                Control::producer_finished()
            };
            user_control.send(last).await.unwrap();
            run_until_the_connection_ends(gate, &conn_signal, async {
                if shutdown {
                    // Still in the dialogue (not even connected): at once, and no byte sent.
                    assert!(conn_control.recv().await.is_shutdown());
                    assert!(to_conn.try_recv().is_none());
                } else {
                    tokio::task::yield_now().await;
                    assert!(conn_control.try_recv().is_none(), "held until TLS is up");
                    assert!(to_conn.try_recv().is_none(), "nothing before TLS");
                    let info = TlsInfo::new("TLSv1.3", "TLS13_AES_128_GCM_SHA256");
                    sslready
                        .send(SslReady {
                            info,
                            replayed: 0,
                            plaintext: 0,
                        })
                        .await
                        .unwrap();
                    assert_eq!(to_conn.recv().await, "typed early");
                    assert!(conn_control.recv().await.is_producer_finished());
                }
            })
            .await;
        }
    }

    /// The user's bytes wait in the gate until TLS is up, bounded in bytes (as a connection's
    /// own inbox is), not by a count of chunks that may each be megabytes.
    #[tokio::test]
    async fn what_the_user_queues_before_tls_is_bounded_in_bytes() {
        let gate: Component = TlsGate::new().into();
        let user = Outbox::<Bytes>::standalone("user");
        link_refs(&user.boxref(), &gate.boxref(INBOX).unwrap()).unwrap();
        let chunk = Bytes::from(vec![0u8; 64 * 1024]);
        let mut queued = 0;
        while user.try_send(chunk.clone()).is_ok() {
            queued += chunk.len();
            assert!(queued <= 4 << 20, "no bound in bytes");
        }
        assert!(
            (GATE_INBOX_BYTES..GATE_INBOX_BYTES + chunk.len()).contains(&queued),
            "{queued} bytes queued"
        );
    }

    /// Under TLS the connection sends the server's bytes, then its half-close; both queued
    /// before the component runs, with the user's box full: the half-close is passed on only
    /// after every byte (a relay turns it into a FIN, which must not overtake the data).
    #[tokio::test(flavor = "current_thread")]
    async fn the_servers_half_close_follows_its_bytes() {
        use crate::internet::TlsInfo;
        let gate: Component = TlsGate::new().into();
        let from_server = Outbox::<Bytes>::standalone("server");
        let sslready = Outbox::<SslReady>::standalone("sslready");
        let conn_signal = Outbox::<Control>::standalone("conn signal");
        let user = Inbox::<Bytes>::standalone("user", 1);
        let events = Inbox::<Control>::standalone("events", 8);
        let r = |n: &str| gate.boxref(n).unwrap();
        link_refs(&from_server.boxref(), &r("fromserver")).unwrap();
        link_refs(&sslready.boxref(), &r("sslready")).unwrap();
        link_refs(&conn_signal.boxref(), &r("connsignal")).unwrap();
        link_refs(&r("touser"), &user.boxref()).unwrap();
        link_refs(&r("connevents"), &events.boxref()).unwrap();
        sslready
            .try_send(SslReady {
                info: TlsInfo::new("TLSv1.3", "TLS13_AES_128_GCM_SHA256"),
                replayed: 0,
                plaintext: 0,
            })
            .unwrap();
        run_until_the_connection_ends(gate, &conn_signal, async {
            tokio::task::yield_now().await;
            crate::internet::layer_tests::half_close_follows_the_bytes(
                &from_server,
                &conn_signal,
                &user,
                &events,
            )
            .await;
        })
        .await;
    }

    /// The window the ordering of two boxes leaves: the server's go-ahead, then plaintext the
    /// connection read before it handled makessl, then `sslready`, all queued before the
    /// component runs again. `sslready` is looked at first, so only its count of plaintext
    /// bytes tells the component that the next bytes were not protected: they are refused as
    /// an injection and never reach the user.
    #[tokio::test(flavor = "current_thread")]
    async fn plaintext_queued_together_with_sslready_is_refused_as_injection() {
        use crate::internet::TlsInfo;
        let client: Component = crate::internet::SmtpStartTlsClient::new().into();
        let from_server = Outbox::<Bytes>::standalone("server");
        let sslready = Outbox::<SslReady>::standalone("sslready");
        let conn_signal = Outbox::<Control>::standalone("conn signal");
        let makessl = Inbox::<MakeSsl>::standalone("makessl", 4);
        let to_conn = Inbox::<Bytes>::standalone("to conn", 16);
        let user = Inbox::<Bytes>::standalone("user", 8);
        let events = Inbox::<Control>::standalone("events", 8);
        let r = |n: &str| client.boxref(n).unwrap();
        link_refs(&from_server.boxref(), &r("fromserver")).unwrap();
        link_refs(&sslready.boxref(), &r("sslready")).unwrap();
        link_refs(&conn_signal.boxref(), &r("connsignal")).unwrap();
        link_refs(&r("makessl"), &makessl.boxref()).unwrap();
        link_refs(&r(OUTBOX), &to_conn.boxref()).unwrap();
        link_refs(&r("touser"), &user.boxref()).unwrap();
        link_refs(&r("connevents"), &events.boxref()).unwrap();
        let dialogue: [&[u8]; 2] = [b"220 ready\r\n", b"250-x\r\n250 STARTTLS\r\n"];
        let go_ahead: &[u8] = b"220 go ahead\r\n";
        let injected: &[u8] = b"250 injected\r\n";
        run_until_the_connection_ends(client, &conn_signal, async {
            conn_signal
                .send(Control::notice(Connected {
                    peer: ([127, 0, 0, 1], 25).into(),
                    local: ([127, 0, 0, 1], 40000).into(),
                }))
                .await
                .unwrap();
            for d in dialogue {
                from_server.send(Bytes::from_static(d)).await.unwrap();
                assert!(!to_conn.recv().await.is_empty(), "EHLO, then STARTTLS");
            }
            from_server
                .send(Bytes::from_static(go_ahead))
                .await
                .unwrap();
            makessl.recv().await;
            // No await between these two: both are queued before the component runs again.
            let plaintext = dialogue
                .iter()
                .chain([&go_ahead, &injected])
                .map(|d| d.len());
            from_server.try_send(Bytes::from_static(injected)).unwrap();
            sslready
                .try_send(SslReady {
                    info: TlsInfo::new("TLSv1.3", "TLS13_AES_128_GCM_SHA256"),
                    replayed: 0,
                    plaintext: plaintext.sum::<usize>() as u64,
                })
                .unwrap();
            loop {
                let e = events.recv().await;
                if matches!(e, Control::Error(_)) {
                    let text = e.to_string();
                    assert!(text.contains("possible injection"), "{text}");
                    break;
                }
            }
        })
        .await;
        assert!(
            user.try_recv().is_none(),
            "the injected line reached the user"
        );
    }
}
