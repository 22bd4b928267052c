//! `kamaelia forward`: a TcpServer whose protocol is the library's [`Relay`], one per accepted
//! connection, each running a TcpClient to the target (socat `TCP-LISTEN,fork TCP:…`,
//! stunnel).
//!
//! ```text
//! TcpServer(bind, --cert/--key: TLS towards clients, max_connections,
//!           protocol = Relay(TcpClient(host, port, --tls: TLS towards the target)))
//! ```
//!
//! The bound address is the one line on stdout. Each relay's reports (opened, the target's
//! errors, closed with bytes each way and how it ended) come to one inbox here and become
//! event lines on stderr; `--json-events` prints them and the server's signal as JSON.
//!
//! It runs on one thread (a `current_thread` runtime, [`session::run_single`]), as the
//! hand-written relay it is measured against (figure 4) does: each relayed connection is one
//! task (the client's connection, the relay and the target's TcpClient: see [`Relay`]), and a
//! second worker thread only moved that task from one thread to the other at its wake-ups
//! (an eventfd write and a futex wake per chunk or so: `strace -f` of 64 MiB relayed) while
//! the sender and the receiver wanted the machine's CPUs. The cost: every relayed connection
//! shares that one thread (a 1 GiB relay took about a third of a CPU second in figure 4);
//! `--threads N` runs N worker threads instead ([`session::run_on`]), for many busy
//! connections at once.

use axon::{link_refs, Component, Control, Inbox};
use kamaelia::internet::{
    Limits, OnFinish, Relay, RelayClosed, RelayEnding, RelayOpened, TcpError, TcpServer,
};

use crate::errors::tcp_error;
use crate::events::Events;
use crate::flags::{ForwardConfig, Output, TlsMode};
use crate::serve::{client_tls_error, print_address};
use crate::session;

/// Each relayed connection's byte bounds, on both sides and each way: 32 KiB, so it reads
/// 16 KiB at a time and hands each chunk on while it is still in the CPU's cache (the bytes are
/// copied out of one socket and into the other; chunks of 128 KiB, with 256 KiB bounds, were
/// copied back from memory; base-relay's `copy_bidirectional` copies through 8 KiB). Figure 4
/// with every process on one CPU, where the wall time is the three processes' work: 1.06x and
/// 1.07x base-relay with 256 KiB bounds, 0.95x and 0.98x with these (0.77 s against 0.84 s
/// per GiB). The sockets' own buffers still carry the bulk of a transfer in flight.
const RELAY_LIMITS: Limits = Limits {
    send_bytes: 32 * 1024,
    receive_bytes: 32 * 1024,
};

/// Runs `forward` until Ctrl-C and returns the exit status (130 when interrupted).
pub(crate) fn main(cfg: ForwardConfig, output: Output) -> anyhow::Result<u8> {
    let threads = cfg.threads;
    session::run_on(threads, |_sched| async move {
        let events = Events::new(output);
        // Every relay reports here: opened and closed, and the target's errors.
        let reports = Inbox::<Control>::standalone("relay reports", 1024);
        let reports_ref = reports.boxref();
        let target = cfg.target.clone();
        let tls = matches!(target.tls, Some(TlsMode::Immediate(_)));
        // A proxied target's components are made the same way for each connection: checked
        // once here, before serving.
        if target.proxy.is_some() {
            session::client_with(&target, RELAY_LIMITS)?;
        }
        // A direct target's client is made once and cloned for each connection (its host,
        // options and TLS settings shared, not made again per connection).
        let direct = session::tcp_client_with(&target, RELAY_LIMITS);
        let server = TcpServer::bind(&cfg.bind.to_string(), move |info| {
            let relay = match &target.proxy {
                None => Relay::new(direct.clone()),
                // The TcpClient to the proxy half-closes (keep_open is false for forward's
                // target), so the relay's half-close passes through the tunnel. Made as checked
                // above, so it does not fail; if it did, the relay would fail with the error and
                // close the client, never connecting around the proxy.
                Some(_) => Relay::through(
                    session::client_with(&target, RELAY_LIMITS).unwrap_or_else(failed),
                ),
            };
            let relay = relay.client(info.peer).tls(tls);
            let relay: Component = match &target.tls {
                Some(TlsMode::StartTls(d, _, limit)) => {
                    relay.layer(session::starttls_client(d, *limit))
                }
                _ => relay,
            }
            .into();
            if let Ok(r) = relay.boxref("report") {
                // Cannot fail: a fresh component's outbox into a standalone inbox.
                let _ = link_refs(&r, &reports_ref);
            }
            relay
        });
        let server = match server {
            Ok(s) => s,
            Err(e) => {
                events.failure(tcp_error(&e));
                return Ok(1);
            }
        };
        let server = server
            .limits(RELAY_LIMITS)
            .on_finish(OnFinish::HalfClose)
            .idle_timeout(cfg.target.idle_timeout)
            .max_connections(cfg.max_connections);
        let server = match &cfg.server_tls {
            None => server,
            Some(identity) => server.tls(identity)?,
        };
        print_address(server.local_addr())?;
        let server: Component = server.into();
        let signal = Inbox::<Control>::standalone("server signal", 64);
        link_refs(&server.boxref(axon::SIGNAL)?, &signal.boxref())?;
        server.activate();
        loop {
            tokio::select! {
                c = signal.recv() => {
                    events.signal(axon::SIGNAL, &c);
                    if let Some(kamaelia::internet::Listening(a)) = c.payload() {
                        events.line(format_args!("listening on {a}"));
                    }
                    // A client connection's errors are named in its relay's closed line.
                    if c.is_final() {
                        drain(&reports, &events);
                        events.line("stopped");
                        return Ok(if session::interrupted() { 130 } else { 0 });
                    }
                }
                c = reports.recv() => report(&c, &events),
            }
        }
    })
}

/// What is left in the reports when the server has stopped.
fn drain(reports: &Inbox<Control>, events: &Events) {
    while let Some(c) = reports.try_recv() {
        report(&c, events);
    }
}

/// One relay report as an event line.
fn report(c: &Control, events: &Events) {
    events.signal("report", c);
    if let Some(o) = c.payload::<RelayOpened>() {
        events.line(o);
    } else if let Some(closed) = c.payload::<RelayClosed>() {
        let ending = match &closed.ending {
            RelayEnding::ClientFailed(e) => {
                // Said from the server's side: the peer here is the client.
                let why = match e {
                    TcpError::Tls(t) => client_tls_error(t),
                    _ => None,
                };
                format!(
                    "the client's side failed: {}",
                    why.unwrap_or_else(|| tcp_error(e))
                )
            }
            RelayEnding::TargetFailed(e) => format!("the target's side failed: {}", tcp_error(e)),
            RelayEnding::TargetDialogue(e) => {
                format!("the STARTTLS dialogue with the target failed: {e}")
            }
            other => other.to_string(),
        };
        let client = closed.client.map(|c| format!("{c}, ")).unwrap_or_default();
        events.line(format_args!(
            "closed: {client}{} bytes to the target, {} bytes to the client; {ending}",
            closed.to_target, closed.to_client
        ));
    }
}

/// A stand-in that fails at once with `e`: a relay through it fails and closes its client.
fn failed(e: anyhow::Error) -> Component {
    let e: axon::BoxError = e.into();
    Component::build("ProxyClient").main(move |_| async move { Err(e) })
}
