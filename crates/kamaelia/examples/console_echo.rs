//! Copies standard input to standard output through two components: a `ConsoleReader` whose
//! `outbox` feeds a `ConsoleEchoer`, and whose `signal` tells the echoer when input has ended.
//!
//! ```sh
//! printf 'hello\n' | cargo run -p kamaelia --example console_echo
//! ```
//!
//! Exits 0 once everything read has been written, 1 if a component failed (the failures are
//! printed on standard error), 2 if the system could not be set up.

use std::process::ExitCode;

use axon::{link_refs, Component, WiringError};
use kamaelia::{ConsoleEchoer, ConsoleReader};

fn main() -> ExitCode {
    let (reader, echoer) = match wire() {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("console_echo: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match axon::run(async move {
        reader.activate();
        echoer.activate();
    }) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("console_echo: could not start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    if report.is_ok() {
        return ExitCode::SUCCESS;
    }
    for failure in &report.failures {
        // The failure's message already includes its direct source, so the chain starts after it.
        let mut line = failure.to_string();
        let mut cause = std::error::Error::source(&**failure).and_then(|e| e.source());
        while let Some(c) = cause {
            line.push_str(&format!(": {c}"));
            cause = c.source();
        }
        eprintln!("console_echo: {line}");
    }
    ExitCode::FAILURE
}

fn wire() -> Result<(Component, Component), WiringError> {
    let reader: Component = ConsoleReader::new().into();
    let echoer: Component = ConsoleEchoer::new().into();
    link_refs(&reader.boxref("outbox")?, &echoer.boxref("inbox")?)?;
    link_refs(&reader.boxref("signal")?, &echoer.boxref("control")?)?;
    Ok((reader, echoer))
}
