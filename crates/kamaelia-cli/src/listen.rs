//! `kamaelia listen`: connect's console session around a [`SingleServer`] instead of a
//! TcpClient (nc -l).
//!
//! ```text
//! Graphline(
//!     SOURCE     = ConsoleReader(),                 stdin (--crlf: Pipeline(ConsoleReader(), Meter))
//!     CONNECTION = SingleServer(addr or --unix),    one connection; TLS from the first byte with --cert
//!     ECHO       = ConsoleEchoer(),                 stdout, byte-exact
//!     LAYER      = StartTlsServerLayer::smtp() …    --starttls only: the dialogue, then TLS
//! )
//! ```
//!
//! `listening on ADDR` goes to stderr before anything else, even with `-q`: stdout carries the
//! data, and scripts need the address (PORT 0 picks a free one).

use kamaelia::internet::{OnFinish, SingleServer, StartTlsServerLayer, DEFAULT_PLAINTEXT_TIMEOUT};

use crate::errors::tcp_error;
use crate::events::Events;
use crate::flags::{ListenConfig, ListenOn, Output, ServerStartTlsProto};

/// Runs `listen` and returns the exit status.
pub(crate) fn main(cfg: ListenConfig, output: Output) -> anyhow::Result<u8> {
    let events = Events::new(output);
    let bound = match &cfg.on {
        ListenOn::Tcp(addr) => SingleServer::bind(&addr.to_string()),
        ListenOn::Unix(path) => SingleServer::bind_unix(path),
    };
    let server = match bound.and_then(|s| match (&cfg.tls, cfg.starttls) {
        (Some(identity), Some(_)) => s.starttls(identity),
        (Some(identity), None) => s.tls(identity),
        (None, _) => Ok(s),
    }) {
        Ok(s) => s,
        Err(e) => {
            events.failure(tcp_error(&e));
            return Ok(1);
        }
    };
    let shown = match (&cfg.on, server.local_addr()) {
        (ListenOn::Unix(path), _) => path.display().to_string(),
        (ListenOn::Tcp(addr), local) => local.unwrap_or(*addr).to_string(),
    };
    // Printed whatever -q says: scripts wait for it.
    events.failure(format_args!("listening on {shown}"));
    let on_finish = if cfg.keep_open {
        OnFinish::KeepOpen
    } else {
        OnFinish::HalfClose
    };
    let server = server.on_finish(on_finish).idle_timeout(cfg.idle_timeout);
    let unix = match &cfg.on {
        ListenOn::Unix(path) => Some(path.clone()),
        ListenOn::Tcp(_) => None,
    };
    let hint = !cfg.keep_open;
    // The STARTTLS dialogue's whole plaintext phase is bounded, as serve's is.
    let plaintext_limit = Some(cfg.idle_timeout.map_or(DEFAULT_PLAINTEXT_TIMEOUT, |t| {
        t.min(DEFAULT_PLAINTEXT_TIMEOUT)
    }));
    let layer = cfg.starttls.map(|proto| {
        let layer = match proto {
            ServerStartTlsProto::Smtp => StartTlsServerLayer::smtp(),
            ServerStartTlsProto::Imap => StartTlsServerLayer::imap(),
            ServerStartTlsProto::Pop3 => StartTlsServerLayer::pop3(),
        };
        (layer.plaintext_limit(plaintext_limit).into(), true)
    });
    crate::connect::console(server.into(), cfg.crlf, layer, output, move |o| {
        o.accepted()
            .hint_no_shutdown(hint)
            .unix_path(unix.as_deref())
    })
}
