//! The `kamaelia` command-line program: `connect`, `send`, `serve`, `listen`, `forward` and `demo`, each built from
//! Kamaelia's components (see each module). Arguments become a validated [`flags::Config`]
//! before anything runs; `main` maps the outcome to an exit status: 0 success, 1 a connection or
//! TLS failure, 2 a usage error, 130 interrupted.

mod completions;
mod connect;
mod crlf;
mod demo;
mod errors;
mod events;
mod flags;
mod forward;
mod listen;
mod progress;
mod send;
mod serve;
mod session;

#[cfg(test)]
mod box_docs;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // clap prints usage errors itself and exits with status 2.
    let config = match flags::Args::parse().validate() {
        Ok(c) => c,
        Err(e) => {
            say(format_args!("kamaelia: {e}"));
            return ExitCode::from(2);
        }
    };
    out_of_line(|| init_tracing(config.output.verbose));
    let output = config.output;
    if matches!(
        config.mode,
        flags::Mode::Serve(_) | flags::Mode::Listen(_) | flags::Mode::Forward(_)
    ) {
        // A server's descriptors stay as they are from before its first connection on.
        events::prepare();
    }
    let result = match config.mode {
        flags::Mode::Connect(ep) => out_of_line(|| connect::main(ep, output)),
        flags::Mode::Send(cfg) => out_of_line(|| send::main(cfg, output)),
        flags::Mode::Serve(cfg) => out_of_line(|| serve::main(cfg, output)),
        flags::Mode::Listen(cfg) => out_of_line(|| listen::main(cfg, output)),
        flags::Mode::Forward(cfg) => out_of_line(|| forward::main(cfg, output)),
        flags::Mode::Demo => out_of_line(|| demo::main(output)),
        flags::Mode::Completions(shell) => completions::completions(shell)
            .map(|()| 0)
            .map_err(anyhow::Error::from),
        flags::Mode::Man => completions::man().map(|()| 0).map_err(anyhow::Error::from),
    };
    // Event lines are written by a thread: let the last ones out first (for a bounded time,
    // as stderr may never be read).
    events::flush(std::time::Duration::from_secs(2));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            say(format_args!("kamaelia: {}", chain(&e)));
            ExitCode::FAILURE
        }
    }
}

/// Runs `command` in a stack frame of its own. Inlined into `main`, every command's runtime
/// and session future (and the tracing subscriber's set-up) shared one frame of 35 KiB, which
/// `main` touched page by page on entry (a stack probe): page faults before the arguments were
/// even parsed, whichever command ran. Out of line, only what runs takes its frame.
#[inline(never)]
fn out_of_line<T>(command: impl FnOnce() -> T) -> T {
    command()
}

/// A line on stderr. Not `eprintln!`, which panics if stderr has gone (a closed pipe): the
/// exit status still says what happened.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The cause chain on one line, each cause once.
fn chain(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// `--verbose` gives debug on stderr and RUST_LOG sets the filter (one that cannot be read
/// gives errors and this program's warnings, the old default); without either, no subscriber
/// is set up, since nothing would reach it: nothing in the workspace logs an error, this program
/// logs no warnings, and components log their failures at warn, which the event lines already
/// say in plain words (a dependency's one error, rustls ending a TLS 1.2 connection whose keys
/// are exhausted, ends the session with a failure line as well). Setting it up (its registry,
/// the filter, the `log` bridge) was measurable in `kamaelia send`'s start-up (figure 5).
fn init_tracing(verbose: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = match EnvFilter::try_from_default_env() {
        Ok(filter) => filter,
        Err(_) if verbose => EnvFilter::new("debug"),
        Err(_) if std::env::var_os(EnvFilter::DEFAULT_ENV).is_some() => {
            EnvFilter::new("error,kamaelia_cli=warn")
        }
        Err(_) => return,
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(verbose)
        .init();
}
