//! The TCPClient page's first example: sending the contents of a file to a server.
//!
//! The page's Python:
//!
//! ```text
//! Pipeline( RateControlledFileReader("myfile", rate=100000),
//!           TCPClient("1.2.3.4", 1000),
//!         ).activate()
//! ```
//!
//! Run it against any TCP server, for example `nc -l 1000 > copy` in another terminal:
//!
//! ```sh
//! cargo run -p kamaelia --example send_file -- 127.0.0.1 1000 myfile
//! ```
//!
//! `--rate BYTES_PER_SEC` changes the page's 100000 bytes per second. The file's bytes are sent
//! in order, then the connection closes cleanly (Kamaelia's `producerFinished` flowing from the
//! reader's `signal` into the client's `control`).
//!
//! Exits 0 once the file has been sent and the connection closed, 1 if reading or sending
//! failed (each error is printed on standard error), 2 on a usage error.

use std::path::PathBuf;
use std::process::ExitCode;

use axon::{Control, Inbox};
use kamaelia::{pipeline, RateControlledFileReader, TcpClient};

const USAGE: &str = "usage: send_file HOST PORT FILE [--rate BYTES_PER_SEC]";

struct Args {
    host: String,
    port: u16,
    file: PathBuf,
    rate: u64,
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("send_file: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    let system = pipeline![
        RateControlledFileReader::new(&args.file).rate(args.rate),
        TcpClient::new(args.host, args.port),
    ];
    let system = match system {
        Ok(system) => system,
        Err(e) => {
            eprintln!("send_file: {e}");
            return ExitCode::from(2);
        }
    };
    // The Pipeline's `signal` is the client's: errors, then one final message.
    let signal = Inbox::<Control>::standalone("signal", 1024);
    if let Err(e) = system
        .boxref("signal")
        .and_then(|s| axon::link_refs(&s, &signal.boxref()))
    {
        eprintln!("send_file: {e}");
        return ExitCode::from(2);
    }

    let report = match axon::run(async move {
        system.activate();
    }) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("send_file: could not start the runtime: {e}");
            return ExitCode::from(2);
        }
    };

    let mut failed = !report.is_ok();
    while let Some(c) = signal.try_recv() {
        if let Control::Error(e) = &c {
            failed = true;
            eprintln!("send_file: {}", chain(e.error()));
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
    let mut rate = 100_000;
    while let Some(arg) = raw.next() {
        if arg == "--rate" {
            let value = raw.next().ok_or("--rate needs a value")?;
            rate = value
                .parse()
                .map_err(|_| format!("--rate: not a number of bytes per second: {value:?}"))?;
        } else {
            positional.push(arg);
        }
    }
    let [host, port, file]: [String; 3] = positional
        .try_into()
        .map_err(|_| "expected HOST PORT FILE".to_string())?;
    let port = port
        .parse()
        .map_err(|_| format!("not a port number: {port:?}"))?;
    Ok(Args {
        host,
        port,
        file: file.into(),
        rate,
    })
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
