//! The TCPClient page's SSL example: a console connected to a server over TLS, switched on by
//! a `OneShot` sending to the client's `makessl` inbox.
//!
//! The page's Python:
//!
//! ```text
//! Graphline(
//!        MAKESSL = OneShot(" make ssl "),
//!        CONSOLE = ConsoleReader(),
//!        ECHO = ConsoleEchoer(),
//!        CONNECTION = TCPClient("kamaelia.svn.sourceforge.net", 443),
//!        linkages = {
//!            ("MAKESSL", "outbox"): ("CONNECTION", "makessl"),
//!            ("CONSOLE", "outbox"): ("CONNECTION", "inbox"),
//!            ("CONNECTION", "outbox"): ("ECHO", "inbox"),
//!        }
//! )
//! ```
//!
//! What you type goes to the server; what the server sends is printed. For example, against
//! a public HTTPS server (verified with the built-in Mozilla roots):
//!
//! ```sh
//! cargo run -p kamaelia --example ssl_console -- example.com 443
//! # wait for "TLS established", then type: HEAD / HTTP/1.0 <Enter> Host: example.com <Enter> <Enter>
//! ```
//!
//! or against a server with a private CA: `ssl_console localhost 8443 --ca ca.pem`.
//!
//! As on the page, `makessl` and `inbox` are separate boxes with no order between them: input
//! that is already waiting when the switch happens is sent before it, in plaintext (that is
//! what STARTTLS protocols need). So type once "TLS established" is printed; do not pipe
//! input in.
//!
//! Beyond the page (marked *ours* below): the console's `signal` goes to the connection's
//! `control`, so the end of input half-closes the connection, and the client keeps printing
//! replies until the server closes (`wait_for_server_close(true)`); the connection's `signal`
//! goes to the echoer's `control`, so the program ends when the connection does. The
//! negotiated TLS version and cipher suite are printed on standard error.
//!
//! Exits 0 after a clean close, 1 if the connection or TLS failed (each error is printed on
//! standard error), 2 on a usage error.

use std::path::PathBuf;
use std::process::ExitCode;

use axon::{Control, Inbox};
use kamaelia::internet::{TlsSettings, Trust};
use kamaelia::{graphline, ConsoleEchoer, ConsoleReader, MakeSsl, OneShot, SslReady, TcpClient};

const USAGE: &str = "usage: ssl_console HOST PORT [--ca FILE]";

struct Args {
    host: String,
    port: u16,
    ca: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("ssl_console: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut tls = TlsSettings::new();
    if let Some(ca) = args.ca {
        tls = tls.with_trust(Trust::PemFile(ca));
    }

    let system = graphline! {
        MAKESSL = OneShot::new(MakeSsl::new()),
        CONSOLE = ConsoleReader::new(),
        ECHO = ConsoleEchoer::new(),
        CONNECTION = TcpClient::new(args.host, args.port)
            .tls(tls)
            .wait_for_server_close(true),
        linkages = {
            ("MAKESSL", "outbox"): ("CONNECTION", "makessl"),
            ("CONSOLE", "outbox"): ("CONNECTION", "inbox"),
            ("CONNECTION", "outbox"): ("ECHO", "inbox"),
            // Ours: end of input finishes the connection, the connection's end the echoer.
            ("CONSOLE", "signal"): ("CONNECTION", "control"),
            ("CONNECTION", "signal"): ("ECHO", "control"),
            ("CONNECTION", "sslready"): ("", "sslready"),
        }
    };
    let system = match system {
        Ok(system) => system,
        Err(e) => {
            eprintln!("ssl_console: {e}");
            return ExitCode::from(2);
        }
    };
    // The Graphline's `signal` carries the children's errors (the connection's, forwarded by
    // the echoer), then its final message.
    let signal = Inbox::<Control>::standalone("signal", 1024);
    let ready = Inbox::<SslReady>::standalone("sslready", 4);
    let wired = system
        .boxref("signal")
        .and_then(|s| axon::link_refs(&s, &signal.boxref()))
        .and_then(|_| system.boxref("sslready"))
        .and_then(|s| axon::link_refs(&s, &ready.boxref()));
    if let Err(e) = wired {
        eprintln!("ssl_console: {e}");
        return ExitCode::from(2);
    }

    let report = match axon::run(async move {
        tokio::spawn(async move {
            let SslReady { info, .. } = ready.recv().await;
            eprintln!("ssl_console: TLS established: {info}");
        });
        system.activate();
    }) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("ssl_console: could not start the runtime: {e}");
            return ExitCode::from(2);
        }
    };

    let mut failed = !report.is_ok();
    while let Some(c) = signal.try_recv() {
        if let Control::Error(e) = &c {
            failed = true;
            eprintln!("ssl_console: {}", chain(e.error()));
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn parse(mut raw: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut ca = None;
    while let Some(arg) = raw.next() {
        if arg == "--ca" {
            ca = Some(PathBuf::from(raw.next().ok_or("--ca needs a file")?));
        } else {
            positional.push(arg);
        }
    }
    let [host, port]: [String; 2] = positional
        .try_into()
        .map_err(|_| "expected HOST PORT".to_string())?;
    let port = port
        .parse()
        .map_err(|_| format!("not a port number: {port:?}"))?;
    Ok(Args { host, port, ca })
}

/// An error and its sources, on one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        line.push_str(&format!(": {c}"));
        cause = c.source();
    }
    line
}
