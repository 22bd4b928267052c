//! `kamaelia connect`: the page's SSL Graphline with the real console.
//!
//! ```text
//! Graphline(
//!     SOURCE     = ConsoleReader(),                 stdin
//!     CONNECTION = TcpClient(host, port),           wait_for_server_close
//!     ECHO       = ConsoleEchoer(),                 stdout, byte-exact
//!     MAKESSL    = OneShot(MakeSsl),                --tls only
//!     LAYER      = TlsLayer,                        --tls / --starttls only
//! )
//! ```

use kamaelia::{ConsoleEchoer, ConsoleReader};

use crate::events::Events;
use crate::flags::{Endpoint, Output};
use crate::session::{self, Observer};

/// Runs `connect` and returns the exit status.
pub(crate) fn main(ep: Endpoint, output: Output) -> anyhow::Result<u8> {
    session::run(|_sched| async move {
        let g = session::graphline(
            ConsoleReader::new().into(),
            session::client(&ep),
            ConsoleEchoer::new(),
            ep.tls.as_ref(),
        )?;
        let observer = Observer::attach(&g, Events::new(output))?;
        let summary = session::drive(g, observer).await;
        Ok(summary.exit_code())
    })
}
