//! `kamaelia serve`: a TcpServer whose protocol echoes or discards, plain, TLS from the first
//! byte (`--cert --key`) or switched by STARTTLS (`--starttls`, see [`StartTlsServer`]).

use std::io::Write as _;

use axon::{link_refs, Component, Control, Inbox};
use bytes::Bytes;
use kamaelia::internet::{DiscardProtocol, EchoProtocol, Listening, TcpServer};
use kamaelia::{MakeSsl, SslReady};

use crate::errors::{judge, Verdict};
use crate::events::Events;
use crate::flags::{Output, ServeConfig};
use crate::session;

/// Runs `serve` until Ctrl-C and returns the exit status.
pub(crate) fn main(cfg: ServeConfig, output: Output) -> anyhow::Result<u8> {
    session::run(|_sched| async move {
        let events = Events::new(output);
        let discard = cfg.discard;
        let starttls = cfg.tls.as_ref().is_some_and(|t| t.starttls);
        let server = match TcpServer::bind(&cfg.bind.to_string(), move |info| {
            events.line(format_args!("connection from {}", info.peer));
            if starttls {
                StartTlsServer::new(!discard)
            } else if discard {
                DiscardProtocol::new()
            } else {
                EchoProtocol::new()
            }
        }) {
            Ok(s) => s,
            Err(e) => {
                events.failure(crate::errors::tcp_error(&e));
                return Ok(1);
            }
        };
        let server = match &cfg.tls {
            None => server,
            Some(t) if t.starttls => server.starttls(&t.identity)?,
            Some(t) => server.tls(&t.identity)?,
        };
        let addr = server.local_addr();
        // The one line on stdout, for scripts: the address actually bound.
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{addr}")?;
        stdout.flush()?;
        drop(stdout);
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
                if let Verdict::Failed(line) = judge(e) {
                    events.line(format_args!("connection failed: {line}"));
                }
            }
            if c.is_final() {
                events.line("stopped");
                return Ok(0);
            }
        }
    })
}

/// A protocol that speaks just enough SMTP for a STARTTLS client, then echoes (or discards).
///
/// It greets with `220`, answers `EHLO`/`HELO` with `250 STARTTLS`, and answers `STARTTLS` by
/// sending [`MakeSsl`] with the reply `220 Ready to start TLS` and the count of bytes it consumed
/// up to the end of the command ([`MakeSsl::with_consumed`]): the connection hands everything
/// after them to the TLS handshake, and `sslready` says how many of those bytes this protocol
/// must drop from what it has not read yet. `QUIT` ends the session. Other plaintext lines are
/// echoed; after the switch every byte is echoed (or discarded).
///
/// Boxes: `inbox`/`outbox` (`Bytes`), `control`/`signal`, `makessl` (`MakeSsl`) and `sslready`
/// (`SslReady`), linked to the connection's by the TcpServer.
pub(crate) struct StartTlsServer;

/// Where a [`StartTlsServer`] is in its session.
enum Phase {
    /// Plaintext SMTP: lines.
    Plain,
    /// makessl sent; bytes that arrive now were the client's handshake (or later data).
    Switching,
    /// TLS: `drop` more bytes are replayed handshake bytes, the rest is data.
    Tls { drop: usize },
}

impl StartTlsServer {
    #[allow(clippy::new_ret_no_self)]
    pub(crate) fn new(echo: bool) -> Component {
        let mut b = Component::build("StartTlsServer");
        let inbox = b.inbox::<Bytes>("inbox", "bytes from the client");
        let control = b.control();
        let outbox = b.outbox::<Bytes>("outbox", "bytes to the client");
        let signal = b.signal();
        let makessl = b.outbox::<MakeSsl>("makessl", "switches the connection to TLS");
        let sslready = b.inbox::<SslReady>("sslready", "the switch is done");
        b.main(move |_cx| async move {
            outbox
                .send(Bytes::from_static(b"220 kamaelia ESMTP ready\r\n"))
                .await?;
            let mut phase = Phase::Plain;
            let mut buf: Vec<u8> = Vec::new();
            let mut consumed: u64 = 0;
            loop {
                tokio::select! {
                    r = sslready.recv(), if matches!(phase, Phase::Switching) => {
                        phase = switched(r, &mut buf, echo, &outbox).await?;
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
                            Phase::Switching => buf.extend_from_slice(&d),
                            Phase::Plain => {
                                buf.extend_from_slice(&d);
                                for o in smtp_lines(&mut buf, &mut consumed, echo) {
                                    match o {
                                        Out::Data(d) => outbox.send(d).await?,
                                        Out::Switch(m) => {
                                            makessl.send(m).await?;
                                            phase = Phase::Switching;
                                        }
                                        Out::Quit => {
                                            signal.send(Control::producer_finished()).await?;
                                            return Ok(());
                                        }
                                    }
                                }
                            }
                        }
                    }
                    c = control.recv() => {
                        if c.is_final() {
                            // The connection sent sslready before any data it decrypted, so a
                            // switch in progress has finished by the time it says it is done.
                            if matches!(phase, Phase::Switching) {
                                if let Some(r) = sslready.try_recv() {
                                    phase = switched(r, &mut buf, echo, &outbox).await?;
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

/// The switch is done: of the bytes held since the command, the first `replayed` were the
/// client's handshake (the connection gave them to TLS); the rest, if any, is data.
async fn switched(
    ready: SslReady,
    held: &mut Vec<u8>,
    echo: bool,
    outbox: &axon::Outbox<Bytes>,
) -> Result<Phase, axon::SendError<Bytes>> {
    let replayed = usize::try_from(ready.1).unwrap_or(usize::MAX);
    let drop = replayed.saturating_sub(held.len());
    let keep = held.split_off(replayed.min(held.len()));
    held.clear();
    if echo && !keep.is_empty() {
        outbox.send(Bytes::from(keep)).await?;
    }
    Ok(Phase::Tls { drop })
}

/// Answers the complete SMTP lines in `buf` (removing them and counting them in `consumed`);
/// stops after STARTTLS or QUIT.
fn smtp_lines(buf: &mut Vec<u8>, consumed: &mut u64, echo: bool) -> Vec<Out> {
    let mut out = Vec::new();
    while let Some(end) = buf.iter().position(|&c| c == b'\n') {
        let line: Vec<u8> = buf.drain(..=end).collect();
        *consumed += line.len() as u64;
        let cmd = String::from_utf8_lossy(&line).trim().to_ascii_uppercase();
        if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
            out.push(Out::Data(Bytes::from_static(
                b"250-kamaelia\r\n250 STARTTLS\r\n",
            )));
        } else if cmd == "STARTTLS" {
            out.push(Out::Switch(
                MakeSsl::new()
                    .with_reply("220 Ready to start TLS\r\n")
                    .with_consumed(*consumed),
            ));
            return out;
        } else if cmd == "QUIT" {
            out.push(Out::Data(Bytes::from_static(b"221 bye\r\n")));
            out.push(Out::Quit);
            return out;
        } else if echo {
            out.push(Out::Data(Bytes::from(line)));
        }
    }
    out
}

enum Out {
    Data(Bytes),
    Switch(MakeSsl),
    Quit,
}
