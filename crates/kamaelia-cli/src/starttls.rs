//! `TlsLayer`: a component between the console and a TcpClient that holds the console's bytes
//! until TLS is up, and for `--starttls` first speaks the protocol's plaintext dialogue.
//!
//! # How it works
//!
//! Both directions pass through it: console -> `inbox` -> `outbox` -> connection, and
//! connection -> `fromserver` -> `toconsole` -> echoer; the connection's `signal` comes in on
//! `connsignal` and leaves on `connevents` (to the echoer's `control`), so the layer ends with
//! the connection. In [`LayerMode::Gate`] (`--tls`, the page's `OneShot(MakeSsl)` does the
//! switching) it only holds the console's bytes until `sslready`: without it, bytes typed (or
//! piped) before the handshake would be sent in plaintext. In [`LayerMode::Dialogue`] it reads
//! the server's lines, answers them as [`Dialogue`] says, sends [`MakeSsl`] on `makessl` when
//! the server agrees, and refuses (injection) if the server sent anything past its go-ahead.
//! Once `sslready` arrives it relays both directions, each without waiting on the other.
//!
//! # Inboxes
//!
//! | name | type | meaning |
//! |---|---|---|
//! | `inbox` | `Bytes` | bytes from the console, held until TLS is up |
//! | `control` | `Control` | the console's signal: its final message is passed on after its bytes |
//! | `fromserver` | `Bytes` | bytes from the connection |
//! | `connsignal` | `Control` | the connection's signal |
//! | `sslready` | `SslReady` | the connection's TLS details |
//!
//! # Outboxes
//!
//! | name | type | meaning |
//! |---|---|---|
//! | `outbox` | `Bytes` | bytes to the connection |
//! | `signal` | `Control` | to the connection's control: the console's final message, or errors then ShutdownMicroprocess |
//! | `toconsole` | `Bytes` | the server's bytes once TLS is up |
//! | `connevents` | `Control` | the connection's signal, passed on |
//! | `makessl` | `MakeSsl` | asks the connection to switch to TLS (dialogue mode) |
//! | `tlsready` | `SslReady` | the TLS details, passed on |

use std::fmt;
use std::time::Duration;

use axon::{Component, Control, Inbox, Outbox, TrySendError};
use bytes::Bytes;
use kamaelia::internet::Connected;
use kamaelia::{MakeSsl, SslReady};

use crate::flags::StartTlsProto;

/// The longest reply line accepted before the switch.
const MAX_LINE: usize = 8192;
/// The most reply lines accepted over the whole dialogue (a real EHLO reply has a few dozen).
const MAX_LINES: usize = 512;

/// What the layer does before TLS is up.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LayerMode {
    /// Hold the console's bytes until `sslready` (someone else sends `makessl`).
    Gate,
    /// Speak this protocol up to its STARTTLS, then send `makessl`; the server has this long
    /// for the whole dialogue, counted from the moment the connection is up.
    Dialogue(StartTlsProto, Duration),
}

/// Why a STARTTLS dialogue failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum StartTlsError {
    /// The server answered with something other than what the protocol expects.
    Unexpected { step: &'static str, line: String },
    /// The server does not offer STARTTLS.
    NotOffered,
    /// The server sent bytes after its go-ahead, before the handshake.
    Injection { bytes: usize },
    /// `--tls`: the server sent bytes in plaintext before the handshake (it does not speak TLS
    /// on this port, or something is injecting).
    PlaintextBeforeTls { bytes: usize },
    /// The dialogue did not finish in time.
    TimedOut(Duration),
    /// A reply line was absurdly long.
    LineTooLong,
    /// The server sent more reply lines than any dialogue needs.
    TooManyLines,
    /// The server said goodbye (IMAP `* BYE`) instead of answering.
    Bye { line: String },
    /// The connection closed during the dialogue.
    Closed,
}

impl fmt::Display for StartTlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartTlsError::Unexpected { step, line } => {
                write!(f, "STARTTLS failed: unexpected reply to {step}: {line:?}")
            }
            StartTlsError::NotOffered => {
                f.write_str("STARTTLS failed: the server does not offer it")
            }
            StartTlsError::Injection { bytes } => write!(
                f,
                "refusing to start TLS: the server sent {bytes} bytes after its go-ahead \
                 (possible injection)"
            ),
            StartTlsError::PlaintextBeforeTls { bytes } => write!(
                f,
                "TLS handshake failed: the server sent {bytes} plaintext bytes before TLS \
                 started; not shown (not a TLS server, or an injection)"
            ),
            StartTlsError::TimedOut(after) => write!(
                f,
                "STARTTLS failed: timed out after {} s",
                after.as_secs_f64()
            ),
            StartTlsError::LineTooLong => write!(
                f,
                "STARTTLS failed: a reply line is longer than {MAX_LINE} bytes"
            ),
            StartTlsError::TooManyLines => write!(
                f,
                "STARTTLS failed: the server sent more than {MAX_LINES} reply lines"
            ),
            StartTlsError::Bye { line } => {
                write!(f, "STARTTLS failed: the server said goodbye: {line:?}")
            }
            StartTlsError::Closed => {
                f.write_str("STARTTLS failed: the server closed the connection")
            }
        }
    }
}

impl std::error::Error for StartTlsError {}

/// What the dialogue wants done after a line from the server.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Keep reading.
    Read,
    /// Send these bytes, then keep reading.
    Send(&'static [u8]),
    /// The server agreed: switch to TLS now.
    Switch,
    /// Give up.
    Fail(StartTlsError),
}

/// The plaintext part of a STARTTLS protocol as a state machine over reply lines (without their
/// line ending). No sockets: [`TlsLayer`] feeds it.
#[derive(Debug)]
pub(crate) struct Dialogue {
    proto: StartTlsProto,
    state: u8,
    offered: bool,
}

impl Dialogue {
    pub(crate) fn new(proto: StartTlsProto) -> Self {
        Dialogue {
            proto,
            state: 0,
            offered: false,
        }
    }

    pub(crate) fn on_line(&mut self, line: &str) -> Step {
        let unexpected = |step| {
            Step::Fail(StartTlsError::Unexpected {
                step,
                line: line.to_string(),
            })
        };
        match (self.proto, self.state) {
            (StartTlsProto::Smtp, 0) => match smtp_reply(line, "220") {
                Some(true) => Step::Read,
                Some(false) => {
                    self.state = 1;
                    Step::Send(b"EHLO kamaelia\r\n")
                }
                None => unexpected("the greeting"),
            },
            (StartTlsProto::Smtp, 1) => match smtp_reply(line, "250") {
                Some(more) => {
                    let keyword = line.get(4..).unwrap_or("").trim();
                    if keyword.eq_ignore_ascii_case("STARTTLS") {
                        self.offered = true;
                    }
                    if more {
                        Step::Read
                    } else if self.offered {
                        self.state = 2;
                        Step::Send(b"STARTTLS\r\n")
                    } else {
                        Step::Fail(StartTlsError::NotOffered)
                    }
                }
                None => unexpected("EHLO"),
            },
            (StartTlsProto::Smtp, _) => match smtp_reply(line, "220") {
                Some(false) => Step::Switch,
                _ => unexpected("STARTTLS"),
            },
            (StartTlsProto::Imap, _) if line.starts_with("* BYE") => {
                Step::Fail(StartTlsError::Bye {
                    line: line.to_string(),
                })
            }
            (StartTlsProto::Imap, 0) => {
                if line.starts_with("* OK") {
                    self.state = 1;
                    Step::Send(b"a1 STARTTLS\r\n")
                } else {
                    unexpected("the greeting")
                }
            }
            (StartTlsProto::Imap, _) => {
                if line.starts_with("* ") {
                    Step::Read
                } else if line.starts_with("a1 OK") {
                    Step::Switch
                } else {
                    unexpected("STARTTLS")
                }
            }
            (StartTlsProto::Pop3, 0) => {
                if line.starts_with("+OK") {
                    self.state = 1;
                    Step::Send(b"STLS\r\n")
                } else {
                    unexpected("the greeting")
                }
            }
            (StartTlsProto::Pop3, _) => {
                if line.starts_with("+OK") {
                    Step::Switch
                } else {
                    unexpected("STLS")
                }
            }
        }
    }
}

/// The dialogue fed with the server's bytes as they come, cut anywhere: complete lines go to
/// the [`Dialogue`], a partial line waits (at most [`MAX_LINE`] bytes), and the whole costs
/// time linear in what was received. No sockets: [`TlsLayer`] feeds it and does what it says.
#[derive(Debug)]
pub(crate) struct Talk {
    dialogue: Dialogue,
    buf: Vec<u8>,
    /// Where the unread part of `buf` starts.
    start: usize,
    /// How far `buf` has been searched for a line end.
    scanned: usize,
    lines: usize,
    done: bool,
}

/// What to do after the bytes given to [`Talk::feed`].
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Said {
    /// Send these, in order.
    pub(crate) send: Vec<&'static [u8]>,
    /// Then switch to TLS (send `makessl`).
    pub(crate) switch: bool,
}

impl Talk {
    pub(crate) fn new(proto: StartTlsProto) -> Self {
        Talk {
            dialogue: Dialogue::new(proto),
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            lines: 0,
            done: false,
        }
    }

    /// Takes bytes from the server. After the go-ahead (`switch`), any byte at all, in the same
    /// read or a later one, is refused as injection: it was not protected by TLS.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Result<Said, StartTlsError> {
        if self.done {
            return Err(StartTlsError::Injection { bytes: data.len() });
        }
        // Drop what was read before; what is left is one partial line, at most MAX_LINE.
        self.buf.drain(..self.start);
        self.scanned -= self.start;
        self.start = 0;
        self.buf.extend_from_slice(data);
        let mut said = Said::default();
        while let Some(i) = self.buf[self.scanned..].iter().position(|&c| c == b'\n') {
            let end = self.scanned + i + 1;
            let raw = &self.buf[self.start..end];
            self.start = end;
            self.scanned = end;
            self.lines += 1;
            if self.lines > MAX_LINES {
                return Err(StartTlsError::TooManyLines);
            }
            if raw.len() > MAX_LINE {
                return Err(StartTlsError::LineTooLong);
            }
            let line = String::from_utf8_lossy(raw);
            let line = line.trim_end_matches(['\r', '\n']);
            tracing::debug!(line, "starttls: server");
            match self.dialogue.on_line(line) {
                Step::Read => {}
                Step::Send(bytes) => said.send.push(bytes),
                Step::Switch => {
                    self.done = true;
                    let rest = self.buf.len() - self.start;
                    if rest > 0 {
                        return Err(StartTlsError::Injection { bytes: rest });
                    }
                    said.switch = true;
                    return Ok(said);
                }
                Step::Fail(e) => return Err(e),
            }
        }
        self.scanned = self.buf.len();
        if self.buf.len() - self.start > MAX_LINE {
            return Err(StartTlsError::LineTooLong);
        }
        Ok(said)
    }
}

/// `Some(true)` for a continuation line (`250-...`), `Some(false)` for the last (`250 ...` or a
/// bare `250`), `None` for another code.
fn smtp_reply(line: &str, code: &str) -> Option<bool> {
    let rest = line.strip_prefix(code)?;
    match rest.as_bytes().first() {
        Some(b'-') => Some(true),
        Some(b' ') | None => Some(false),
        _ => None,
    }
}

/// The component: see the module documentation.
pub(crate) struct TlsLayer;

struct Boxes {
    inbox: Inbox<Bytes>,
    control: Inbox<Control>,
    from_server: Inbox<Bytes>,
    conn_signal: Inbox<Control>,
    sslready: Inbox<SslReady>,
    outbox: Outbox<Bytes>,
    signal: Outbox<Control>,
    to_console: Outbox<Bytes>,
    conn_events: Outbox<Control>,
    makessl: Outbox<MakeSsl>,
    tlsready: Outbox<SslReady>,
}

impl TlsLayer {
    #[allow(clippy::new_ret_no_self)]
    pub(crate) fn new(mode: LayerMode) -> Component {
        let mut b = Component::build("TlsLayer");
        let boxes = Boxes {
            inbox: b.inbox("inbox", "bytes from the console, held until TLS is up"),
            control: b.control(),
            from_server: b.inbox("fromserver", "bytes from the connection"),
            conn_signal: b.inbox("connsignal", "the connection's signal"),
            sslready: b.inbox("sslready", "the connection's TLS details"),
            outbox: b.outbox("outbox", "bytes to the connection"),
            signal: b.signal(),
            to_console: b.outbox("toconsole", "the server's bytes once TLS is up"),
            conn_events: b.outbox("connevents", "the connection's signal, passed on"),
            makessl: b.outbox("makessl", "asks the connection to switch to TLS"),
            tlsready: b.outbox("tlsready", "the TLS details, passed on"),
        };
        b.main(move |cx| async move {
            let label = cx.label().to_string();
            run(mode, boxes, label).await;
            Ok(())
        })
    }
}

/// Where the layer is.
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

async fn run(mode: LayerMode, b: Boxes, label: String) {
    let (mut phase, mut talk, limit) = match mode {
        LayerMode::Gate => (Phase::Waiting, None, Duration::ZERO),
        LayerMode::Dialogue(p, limit) => (Phase::Talking, Some(Talk::new(p)), limit),
    };
    // The dialogue's clock starts when the connection is up (Connected), not before: a
    // `--delay` or a slow connect is not the server's time.
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    let mut clock_running = false;
    // The console's final message, kept until its bytes have been passed on.
    let mut console_final: Option<Control> = None;
    let mut final_sent = false;
    let mut up: Option<Bytes> = None;
    let mut down: Option<Bytes> = None;
    loop {
        let relaying = matches!(phase, Phase::Relaying);
        if relaying && up.is_none() && b.inbox.is_empty() && !final_sent {
            if let Some(c) = console_final.take() {
                let _ = b.signal.send(c).await;
                final_sent = true;
            }
        }
        tokio::select! {
            // sslready before the server's bytes: TLS data can only follow it (see below).
            biased;
            r = b.sslready.recv() => {
                let _ = b.tlsready.send(r).await;
                if matches!(phase, Phase::Waiting) {
                    phase = Phase::Relaying;
                }
            }
            c = b.conn_signal.recv() => {
                if c.is_final() {
                    // The connection sent everything it received before its final message.
                    if let Some(d) = down.take() {
                        let _ = b.to_console.send(d).await;
                    }
                    while let Some(d) = b.from_server.try_recv() {
                        if relaying {
                            let _ = b.to_console.send(d).await;
                        }
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
                }
                let _ = b.conn_events.send(c).await;
            }
            c = b.control.recv() => {
                if c.is_shutdown() {
                    let _ = b.signal.send(c).await;
                    final_sent = true;
                } else if c.is_final() {
                    console_final.get_or_insert(c);
                } else {
                    let _ = b.signal.send(c).await;
                }
            }
            d = b.from_server.recv(), if down.is_none() && !matches!(phase, Phase::Failed) => {
                if relaying {
                    down = offer(&b.to_console, d);
                    continue;
                }
                let Some(talk) = talk.as_mut() else {
                    // Gate mode: the connection sends sslready before any byte it decrypts, and
                    // sslready is looked at first, so these bytes were read in plaintext before
                    // TLS (a makessl that reached the connection after the server had spoken).
                    // They are never shown as if they were protected.
                    let e = StartTlsError::PlaintextBeforeTls { bytes: d.len() };
                    fail(&b, &label, e, &mut phase, &mut final_sent).await;
                    continue;
                };
                // After the go-ahead the connection sends sslready before any byte read under
                // TLS, and sslready is looked at first: these bytes were read in plaintext,
                // after the go-ahead. Talk refuses them as injection (never a second switch).
                match talk.feed(&d) {
                    Ok(said) => {
                        for bytes in said.send {
                            tracing::debug!(line = %String::from_utf8_lossy(bytes).trim_end(), "starttls: client");
                            let _ = b.outbox.send(Bytes::from_static(bytes)).await;
                        }
                        if said.switch {
                            let _ = b.makessl.send(MakeSsl::new()).await;
                            phase = Phase::Waiting;
                        }
                    }
                    Err(e) => fail(&b, &label, e, &mut phase, &mut final_sent).await,
                }
            }
            _ = b.to_console.ready(), if down.is_some() && relaying => {
                if let Some(d) = down.take() {
                    down = offer(&b.to_console, d);
                }
            }
            d = b.inbox.recv(), if relaying && up.is_none() && !final_sent => {
                up = offer(&b.outbox, d);
            }
            _ = b.outbox.ready(), if up.is_some() => {
                if let Some(d) = up.take() {
                    up = offer(&b.outbox, d);
                }
            }
            () = &mut deadline, if clock_running && matches!(phase, Phase::Talking) => {
                fail(&b, &label, StartTlsError::TimedOut(limit), &mut phase, &mut final_sent).await;
            }
        }
    }
}

/// Sends `d` if there is room now; otherwise hands it back to be retried when there is.
fn offer(out: &Outbox<Bytes>, d: Bytes) -> Option<Bytes> {
    match out.try_send(d) {
        Ok(()) | Err(TrySendError::Closed(_)) => None,
        Err(TrySendError::Full(d) | TrySendError::Unlinked(d)) => Some(d),
    }
}

/// Reports `e` and closes the connection; the layer then waits for the connection to end.
async fn fail(b: &Boxes, label: &str, e: StartTlsError, phase: &mut Phase, final_sent: &mut bool) {
    *phase = Phase::Failed;
    let _ = b.conn_events.send(Control::error(label, e)).await;
    if !*final_sent {
        *final_sent = true;
        let _ = b.signal.send(Control::shutdown()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_lines(proto: StartTlsProto, lines: &[&str]) -> Vec<Step> {
        let mut d = Dialogue::new(proto);
        lines.iter().map(|l| d.on_line(l)).collect()
    }

    #[test]
    fn smtp_greets_ehlos_and_switches_on_220() {
        let steps = run_lines(
            StartTlsProto::Smtp,
            &[
                "220-mail.test ESMTP",
                "220 ready",
                "250-mail.test",
                "250-STARTTLS",
                "250 8BITMIME",
                "220 go ahead",
            ],
        );
        assert_eq!(
            steps,
            vec![
                Step::Read,
                Step::Send(b"EHLO kamaelia\r\n"),
                Step::Read,
                Step::Read,
                Step::Send(b"STARTTLS\r\n"),
                Step::Switch,
            ]
        );
    }

    #[test]
    fn smtp_without_starttls_or_with_a_refusal_fails() {
        let steps = run_lines(StartTlsProto::Smtp, &["220 hi", "250 mail.test"]);
        assert_eq!(steps[1], Step::Fail(StartTlsError::NotOffered));
        let steps = run_lines(
            StartTlsProto::Smtp,
            &["220 hi", "250 STARTTLS", "454 TLS not available"],
        );
        assert!(matches!(
            steps[2],
            Step::Fail(StartTlsError::Unexpected { .. })
        ));
        let steps = run_lines(StartTlsProto::Smtp, &["554 go away"]);
        assert!(matches!(steps[0], Step::Fail(_)));
    }

    #[test]
    fn imap_and_pop3_switch_on_their_ok() {
        let steps = run_lines(
            StartTlsProto::Imap,
            &[
                "* OK IMAP4rev1 ready",
                "* CAPABILITY IMAP4rev1",
                "a1 OK begin TLS",
            ],
        );
        assert_eq!(steps[0], Step::Send(b"a1 STARTTLS\r\n"));
        assert_eq!(steps[1], Step::Read);
        assert_eq!(steps[2], Step::Switch);
        let steps = run_lines(StartTlsProto::Pop3, &["+OK POP3 ready", "+OK begin TLS"]);
        assert_eq!(steps, vec![Step::Send(b"STLS\r\n"), Step::Switch]);
        let steps = run_lines(StartTlsProto::Pop3, &["+OK", "-ERR no"]);
        assert!(matches!(steps[1], Step::Fail(_)));
    }

    const SMTP_TO_GO_AHEAD: &[u8] = b"220 hi\r\n250-mail.test\r\n250 STARTTLS\r\n220 go ahead\r\n";

    #[test]
    fn talk_cuts_lines_anywhere_and_switches_once() {
        let mut t = Talk::new(StartTlsProto::Smtp);
        let mut sent = Vec::new();
        let mut switched = 0;
        for b in SMTP_TO_GO_AHEAD {
            let said = t.feed(&[*b]).unwrap();
            sent.extend(said.send);
            switched += usize::from(said.switch);
        }
        assert_eq!(sent, [&b"EHLO kamaelia\r\n"[..], b"STARTTLS\r\n"]);
        assert_eq!(switched, 1);
    }

    #[test]
    fn bytes_after_the_go_ahead_are_injection_in_the_same_read_or_a_later_one() {
        let mut t = Talk::new(StartTlsProto::Smtp);
        let mut same = SMTP_TO_GO_AHEAD.to_vec();
        same.extend_from_slice(b"250 evil\r\n");
        assert_eq!(t.feed(&same), Err(StartTlsError::Injection { bytes: 10 }));

        let mut t = Talk::new(StartTlsProto::Smtp);
        assert!(t.feed(SMTP_TO_GO_AHEAD).unwrap().switch);
        // A complete line would once have been read as a second go-ahead (a second makessl);
        // a partial one was dropped without a word.
        assert_eq!(
            t.feed(b"220 again\r\n"),
            Err(StartTlsError::Injection { bytes: 11 })
        );
        assert_eq!(t.feed(b"x"), Err(StartTlsError::Injection { bytes: 1 }));
    }

    #[test]
    fn endless_continuation_lines_end_the_dialogue() {
        let mut t = Talk::new(StartTlsProto::Smtp);
        t.feed(b"220 hi\r\n").unwrap();
        let chunk = b"250-x\r\n".repeat(8192);
        let mut result = Ok(Said::default());
        for _ in 0..100 {
            result = t.feed(&chunk);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(StartTlsError::TooManyLines));
        assert!(t.lines <= MAX_LINES + 1);
    }

    #[test]
    fn a_line_without_end_is_cut_off_at_the_cap() {
        let mut t = Talk::new(StartTlsProto::Pop3);
        let mut result = Ok(Said::default());
        for _ in 0..(MAX_LINE / 1000 + 2) {
            result = t.feed(&[b'+'; 1000]);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(StartTlsError::LineTooLong));
    }

    #[test]
    fn imap_bye_before_the_tagged_reply_fails_at_once() {
        let steps = run_lines(StartTlsProto::Imap, &["* OK ready", "* BYE shutting down"]);
        assert_eq!(
            steps[1],
            Step::Fail(StartTlsError::Bye {
                line: "* BYE shutting down".into()
            })
        );
        let steps = run_lines(StartTlsProto::Imap, &["* BYE too busy"]);
        assert!(matches!(steps[0], Step::Fail(StartTlsError::Bye { .. })));
    }

    fn protocol() -> impl proptest::strategy::Strategy<Value = StartTlsProto> {
        proptest::prop_oneof![
            proptest::strategy::Just(StartTlsProto::Smtp),
            proptest::strategy::Just(StartTlsProto::Imap),
            proptest::strategy::Just(StartTlsProto::Pop3),
        ]
    }

    /// Server bytes: plausible reply lines and arbitrary bytes, mixed.
    fn server_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let line = prop_oneof![
            Just(b"220 hi\r\n".to_vec()),
            Just(b"220-more\r\n".to_vec()),
            Just(b"250-STARTTLS\r\n".to_vec()),
            Just(b"250 STARTTLS\r\n".to_vec()),
            Just(b"250-x\r\n".to_vec()),
            Just(b"* OK ready\r\n".to_vec()),
            Just(b"* CAPABILITY x\r\n".to_vec()),
            Just(b"* BYE\r\n".to_vec()),
            Just(b"a1 OK go\r\n".to_vec()),
            Just(b"+OK\r\n".to_vec()),
            Just(b"-ERR\r\n".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..64),
            Just(vec![b'x'; 9000]),
        ];
        proptest::collection::vec(line, 0..40).prop_map(|v| v.concat())
    }

    proptest::proptest! {
        /// Whatever the server sends, cut wherever, the dialogue asks to switch at most once,
        /// or fails with a reason; it never panics, and never holds more than one line.
        #[test]
        fn any_server_bytes_give_a_result_or_a_clear_error(
            proto in protocol(),
            bytes in server_bytes(),
            cuts in proptest::collection::vec(1usize..5000, 1..20),
        ) {
            let mut t = Talk::new(proto);
            let mut at = 0;
            let mut switches = 0;
            let mut sent = 0;
            for n in cuts.iter().cycle() {
                if at >= bytes.len() {
                    break;
                }
                let end = (at + n).min(bytes.len());
                match t.feed(&bytes[at..end]) {
                    Ok(said) => {
                        proptest::prop_assert!(t.buf.len() - t.start <= MAX_LINE);
                        sent += said.send.len();
                        switches += usize::from(said.switch);
                    }
                    Err(e) => {
                        proptest::prop_assert!(!e.to_string().is_empty());
                        break;
                    }
                }
                at = end;
            }
            proptest::prop_assert!(switches <= 1);
            proptest::prop_assert!(sent <= 2);
            proptest::prop_assert!(t.lines <= MAX_LINES + 1);
        }
    }

    /// `--tls` (Gate mode): bytes the connection delivers before `sslready` were read in
    /// plaintext (the server spoke before a late makessl reached the connection). They must
    /// never reach the console, even when the connection then ends; the layer fails the session.
    #[tokio::test]
    async fn gate_refuses_plaintext_that_arrives_before_tls() {
        use axon::{link_refs, Scheduler};
        let layer = TlsLayer::new(LayerMode::Gate);
        let from_server = Outbox::<Bytes>::standalone("server");
        let conn_signal = Outbox::<Control>::standalone("conn signal");
        let console = Inbox::<Bytes>::standalone("console", 8);
        let events = Inbox::<Control>::standalone("events", 8);
        let to_conn = Inbox::<Control>::standalone("to conn", 8);
        let r = |n: &str| layer.boxref(n).unwrap();
        link_refs(&from_server.boxref(), &r("fromserver")).unwrap();
        link_refs(&conn_signal.boxref(), &r("connsignal")).unwrap();
        link_refs(&r("toconsole"), &console.boxref()).unwrap();
        link_refs(&r("connevents"), &events.boxref()).unwrap();
        link_refs(&r("signal"), &to_conn.boxref()).unwrap();
        from_server
            .send(Bytes::from_static(b"this is not TLS\r\n"))
            .await
            .unwrap();
        let sched = Scheduler::new();
        let run = sched.run(async {
            layer.activate();
            let e = events.recv().await;
            let text = e.to_string();
            assert!(text.contains("plaintext bytes before TLS"), "{text}");
            assert!(
                to_conn.recv().await.is_shutdown(),
                "the connection is closed"
            );
            conn_signal
                .send(Control::producer_finished())
                .await
                .unwrap();
        });
        tokio::time::timeout(std::time::Duration::from_secs(10), run)
            .await
            .expect("the layer ends");
        assert!(
            console.try_recv().is_none(),
            "plaintext reached the console"
        );
    }
}
