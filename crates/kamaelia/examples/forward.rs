//! A port forwarder (socat `TCP-LISTEN,fork TCP:HOST:PORT`): a `TcpServer` on 127.0.0.1 whose
//! protocol, for every accepted connection, is a `Relay` running a `TcpClient` to the target.
//! Each relay's reports (opened; closed, with the bytes each way and how it ended) go to one
//! small component that prints them.
//!
//! ```sh
//! cargo run -p kamaelia --example forward -- 8080 example.com 80   # LISTEN_PORT HOST PORT
//! # elsewhere: printf 'GET / HTTP/1.0\r\nHost: example.com\r\n\r\n' | nc 127.0.0.1 8080
//! ```
//!
//! It prints the address it listens on, then relays until Ctrl-C. Exits 1 if a component
//! failed, 2 on bad arguments or if it cannot listen.

use std::io::Write;
use std::process::ExitCode;

use axon::{link_refs, Component};
use kamaelia::internet::{OnFinish, Relay, RelayClosed, RelayOpened};
use kamaelia::{TcpClient, TcpServer};

fn main() -> ExitCode {
    let (listen, host, port) = match args() {
        Ok(a) => a,
        Err(message) => {
            eprintln!("forward: {message}");
            eprintln!("usage: forward LISTEN_PORT HOST PORT");
            return ExitCode::from(2);
        }
    };
    let reporter = report_printer();
    let reports = match reporter.boxref("control") {
        Ok(r) => r,
        Err(e) => {
            eprintln!("forward: {e}");
            return ExitCode::from(2);
        }
    };
    let server = TcpServer::bind(&format!("127.0.0.1:{listen}"), move |info| {
        let relay: Component = Relay::new(TcpClient::new(host.clone(), port))
            .client(info.peer)
            .into();
        // A fresh relay's `report` outbox into the printer's inbox: this cannot fail.
        if let Ok(r) = relay.boxref("report") {
            let _ = link_refs(&r, &reports);
        }
        relay
    });
    let server = match server {
        // Each side's half-close goes through: the client's connection half-closes too.
        Ok(server) => server.on_finish(OnFinish::HalfClose),
        Err(e) => {
            eprintln!("forward: {e}");
            return ExitCode::from(2);
        }
    };
    println!("listening on {}", server.local_addr());
    let _ = std::io::stdout().flush();
    let report = match axon::run(async move {
        server.activate();
        reporter.activate();
    }) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("forward: could not start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    for failure in &report.failures {
        eprintln!("forward: {failure}");
    }
    if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn args() -> Result<(u16, String, u16), String> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [listen, host, port] = a.as_slice() else {
        return Err(format!("expected 3 arguments, got {}", a.len()));
    };
    let number = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| format!("{s:?} is not a port number (0 to 65535)"))
    };
    Ok((number(listen)?, host.clone(), number(port)?))
}

/// Prints each relay's RelayOpened and RelayClosed from its `control` inbox, which every
/// relay's `report` outbox feeds; it runs until the program is stopped.
fn report_printer() -> Component {
    let mut b = Component::build("ReportPrinter");
    let control = b.control();
    b.main(move |_| async move {
        loop {
            let c = control.recv().await;
            if c.is_shutdown() {
                return Ok(());
            }
            if let Some(o) = c.payload::<RelayOpened>() {
                eprintln!("forward: {o}");
            } else if let Some(closed) = c.payload::<RelayClosed>() {
                eprintln!("forward: {closed}");
            } else if let axon::Control::Error(e) = &c {
                eprintln!("forward: {e}");
            }
        }
    })
}
