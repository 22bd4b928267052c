//! An echo server: a `TcpServer` on 127.0.0.1 that gives every connection an `EchoProtocol`,
//! with the server's `signal` wired to a small component that reports connection errors.
//!
//! ```sh
//! cargo run -p kamaelia --example echo_server -- 1601   # port; 0 (the default) picks one
//! # elsewhere: nc 127.0.0.1 1601
//! ```
//!
//! It prints the address it listens on, then serves until Ctrl-C (which `axon::run` turns into
//! ShutdownMicroprocess: the listener and every connection close, and the program exits 0).
//! Exits 1 if a component failed, 2 on bad arguments or if it cannot listen.

use std::io::Write;
use std::process::ExitCode;

use axon::{link_refs, Component};
use kamaelia::internet::{EchoProtocol, Listening};
use kamaelia::TcpServer;

fn main() -> ExitCode {
    let port = match port_from_args() {
        Ok(port) => port,
        Err(message) => {
            eprintln!("echo_server: {message}");
            eprintln!("usage: echo_server [PORT]");
            return ExitCode::from(2);
        }
    };
    let server = match TcpServer::bind(&format!("127.0.0.1:{port}"), |_| EchoProtocol::new()) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("echo_server: {e}");
            return ExitCode::from(2);
        }
    };
    println!("listening on {}", server.local_addr());
    // Flushed now so a script waiting for the address sees it; a closed stdout is not an error.
    let _ = std::io::stdout().flush();

    let server = Component::from(server);
    let reporter = signal_reporter();
    let wired = server
        .boxref("signal")
        .and_then(|signal| link_refs(&signal, &reporter.boxref("control")?));
    if let Err(e) = wired {
        eprintln!("echo_server: {e}");
        return ExitCode::from(2);
    }
    let report = match axon::run(async move {
        server.activate();
        reporter.activate();
    }) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("echo_server: could not start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    for failure in &report.failures {
        eprintln!("echo_server: {failure}");
    }
    if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn port_from_args() -> Result<u16, String> {
    let mut args = std::env::args().skip(1);
    let port = match args.next() {
        None => 0,
        Some(arg) => arg
            .parse()
            .map_err(|_| format!("{arg:?} is not a port number (0 to 65535)"))?,
    };
    if let Some(extra) = args.next() {
        return Err(format!("unexpected argument {extra:?}"));
    }
    Ok(port)
}

/// Takes what the server sends on `signal`: reports connection errors on standard error and
/// ends with the server's final message.
fn signal_reporter() -> Component {
    let mut b = Component::build("SignalReporter");
    let control = b.control();
    b.main(move |_| async move {
        loop {
            let c = control.recv().await;
            if c.is_final() {
                return Ok(());
            }
            if c.payload::<Listening>().is_none() {
                eprintln!("echo_server: {c}");
            }
        }
    })
}
