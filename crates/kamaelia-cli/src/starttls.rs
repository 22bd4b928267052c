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
use kamaelia::{MakeSsl, SslReady};

use crate::flags::StartTlsProto;

/// How long the server may take over the whole plaintext dialogue.
const DIALOGUE_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest reply line accepted before the switch.
const MAX_LINE: usize = 8192;

/// What the layer does before TLS is up.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LayerMode {
    /// Hold the console's bytes until `sslready` (someone else sends `makessl`).
    Gate,
    /// Speak this protocol up to its STARTTLS, then send `makessl`.
    Dialogue(StartTlsProto),
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
    /// The dialogue did not finish in time.
    TimedOut(Duration),
    /// A reply line was absurdly long.
    LineTooLong,
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
            StartTlsError::TimedOut(after) => write!(
                f,
                "STARTTLS failed: timed out after {} s",
                after.as_secs_f64()
            ),
            StartTlsError::LineTooLong => f.write_str("STARTTLS failed: a reply line is too long"),
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
    let (mut phase, mut dialogue) = match mode {
        LayerMode::Gate => (Phase::Waiting, None),
        LayerMode::Dialogue(p) => (Phase::Talking, Some(Dialogue::new(p))),
    };
    let deadline = tokio::time::sleep(DIALOGUE_TIMEOUT);
    tokio::pin!(deadline);
    let mut lines: Vec<u8> = Vec::new();
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
            r = b.sslready.recv() => {
                let _ = b.tlsready.send(r).await;
                if matches!(phase, Phase::Waiting) {
                    phase = Phase::Relaying;
                }
            }
            d = b.from_server.recv(), if down.is_none() && !matches!(phase, Phase::Failed) => {
                if relaying {
                    down = offer(&b.to_console, d);
                    continue;
                }
                let Some(dialogue) = dialogue.as_mut() else {
                    // Gate mode: nothing arrives before the handshake; keep it in order.
                    down = Some(d);
                    continue;
                };
                lines.extend_from_slice(&d);
                if let Err(e) = talk(dialogue, &mut lines, &mut phase, &b).await {
                    fail(&b, &label, e, &mut phase, &mut final_sent).await;
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
            () = &mut deadline, if matches!(phase, Phase::Talking) => {
                fail(&b, &label, StartTlsError::TimedOut(DIALOGUE_TIMEOUT), &mut phase, &mut final_sent).await;
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

/// Feeds complete lines to the dialogue and does what it says.
async fn talk(
    dialogue: &mut Dialogue,
    lines: &mut Vec<u8>,
    phase: &mut Phase,
    b: &Boxes,
) -> Result<(), StartTlsError> {
    while let Some(end) = lines.iter().position(|&c| c == b'\n') {
        let raw: Vec<u8> = lines.drain(..=end).collect();
        let line = String::from_utf8_lossy(&raw);
        let line = line.trim_end_matches(['\r', '\n']);
        tracing::debug!(line, "starttls: server");
        match dialogue.on_line(line) {
            Step::Read => {}
            Step::Send(bytes) => {
                tracing::debug!(line = %String::from_utf8_lossy(bytes).trim_end(), "starttls: client");
                let _ = b.outbox.send(Bytes::from_static(bytes)).await;
            }
            Step::Switch => {
                if !lines.is_empty() {
                    return Err(StartTlsError::Injection { bytes: lines.len() });
                }
                let _ = b.makessl.send(MakeSsl::new()).await;
                *phase = Phase::Waiting;
                return Ok(());
            }
            Step::Fail(e) => return Err(e),
        }
    }
    if lines.len() > MAX_LINE {
        return Err(StartTlsError::LineTooLong);
    }
    Ok(())
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
}
