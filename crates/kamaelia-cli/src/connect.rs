//! `kamaelia connect`: the page's SSL Graphline with the real console.
//!
//! ```text
//! Graphline(
//!     SOURCE     = ConsoleReader(),                 stdin (--crlf: Pipeline(ConsoleReader(), Meter))
//!     CONNECTION = TcpClient(host, port),           wait_for_server_close
//!     ECHO       = ConsoleEchoer(),                 stdout, byte-exact
//!     MAKESSL    = OneShot(MakeSsl),                --tls only
//!     LAYER      = TlsGate() or the --starttls protocol's client component (SmtpStartTlsClient, …)
//! )
//! ```

use std::io::IsTerminal;

use std::sync::Arc;

use axon::Component;
use kamaelia::{ConsoleEchoer, ConsoleReader, Pipeline};

use crate::events::Events;
use crate::flags::{Endpoint, Output};
use crate::progress::{Counts, Meter};
use crate::session::{self, Observer};

/// Runs `connect` and returns the exit status.
pub(crate) fn main(ep: Endpoint, output: Output) -> anyhow::Result<u8> {
    let hint = !ep.keep_open;
    let unix = ep.unix.clone();
    let show_cert = ep.show_cert;
    let via_proxy = ep.proxy.is_some();
    console(
        session::client(&ep)?,
        ep.crlf,
        session::client_layer(ep.tls.as_ref()),
        output,
        move |o| {
            o.hint_no_shutdown(hint)
                .unix_path(unix.as_deref())
                .show_cert(show_cert)
                .via_proxy(via_proxy)
        },
    )
}

/// The console session `connect` and `listen` share: stdin (through a CRLF meter with
/// `crlf`) into `connection`, the connection into stdout, watched to the end by an observer
/// that `configure` sets up; returns the exit status.
pub(crate) fn console(
    connection: Component,
    crlf: bool,
    layer: Option<(Component, bool)>,
    output: Output,
    configure: impl FnOnce(Observer) -> Observer + Send + 'static,
) -> anyhow::Result<u8> {
    session::run_single(|_sched| async move {
        // A meter only for --crlf: each component on the way costs a relay some latency, and
        // the connection's own Transferred count is enough for the last line.
        let (source, counts): (Component, _) = if crlf {
            let counts = Arc::new(Counts::default());
            let source = Pipeline::new([
                ConsoleReader::new().into(),
                Meter::new(counts.clone(), true),
            ])?;
            (source, Some(counts))
        } else {
            (ConsoleReader::new().into(), None)
        };
        let g = session::graphline_with(source, connection, ConsoleEchoer::new(), layer)?;
        // Typed input ends with the other end's half-close (QUIT -> 221 -> close ends the
        // session); piped or redirected input is sent whole.
        let typed = std::io::stdin().is_terminal();
        let mut observer =
            configure(Observer::attach(&g, Events::new(output))?.end_when_server_finishes(typed));
        if let Some(counts) = counts {
            observer = observer.counts(counts, None);
        }
        let summary = session::drive(g, observer).await;
        Ok(summary.exit_code())
    })
}
