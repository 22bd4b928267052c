//! `kamaelia send`: the page's Pipeline, `RateControlledFileReader -> TcpClient`, with a
//! `Meter` counting the bytes between them and a `ConsoleEchoer` for what the server says.
//!
//! ```text
//! Pipeline(RateControlledFileReader(file, rate), Meter, TcpClient(host, port), ConsoleEchoer)
//! ```
//!
//! With `--tls` or `--starttls` the reader and meter become the source of the SSL Graphline
//! (see `session::graphline`). Standard input (`-`) is read by a `ConsoleReader` in chunk mode,
//! paced by a `RateLimiter` when `--rate` is given.

use std::sync::Arc;
use std::time::Instant;

use axon::Component;
use kamaelia::util::{RateLimiter, DEFAULT_BURST};
use kamaelia::{ConsoleEchoer, ConsoleReader, Pipeline, RateControlledFileReader, ReadMode};

use crate::events::Events;
use crate::flags::{Output, SendConfig, Source};
use crate::progress::{human, per_second, Counts, Meter, ProgressBar};
use crate::session::{self, Observer};

/// Runs `send` and returns the exit status.
pub(crate) fn main(cfg: SendConfig, output: Output) -> anyhow::Result<u8> {
    session::run_single(|_sched| async move {
        let counts = Arc::new(Counts::default());
        let (reader, total): (Component, Option<u64>) = match cfg.source {
            Source::File { path, file, size } => {
                let mut r = RateControlledFileReader::from_file(file, path).rate(cfg.rate);
                if let Some(n) = cfg.chunk_size {
                    r = r.chunk_size(n);
                }
                (r.into(), size)
            }
            Source::Stdin => {
                let mut r = ConsoleReader::new().read_mode(ReadMode::Chunks);
                if let Some(n) = cfg.chunk_size {
                    r = r.chunk_size(n);
                }
                // Standard input has no pacing of its own: the library's limiter paces it.
                let r: Component = match cfg.rate {
                    // A burst of one read, as the file reader's bucket holds one chunk.
                    Some(rate) => {
                        let burst = cfg.chunk_size.map_or(DEFAULT_BURST, |n| n as u64);
                        let limiter = RateLimiter::new(rate).burst(burst);
                        Pipeline::new([r.into(), limiter.into()])?
                    }
                    None => r.into(),
                };
                (r, None)
            }
        };
        let meter = Meter::new(counts.clone(), cfg.endpoint.crlf);
        let client = session::client(&cfg.endpoint)?;
        let session = match &cfg.endpoint.tls {
            None => Pipeline::new([reader, meter, client, ConsoleEchoer::new().into()])?,
            Some(tls) => session::graphline(
                Pipeline::new([reader, meter])?,
                client,
                ConsoleEchoer::new(),
                Some(tls),
            )?,
        };
        let events = Events::new(output);
        let observer = Observer::attach(&session, events)?
            .counts(counts.clone(), total)
            .show_cert(cfg.endpoint.show_cert)
            .via_proxy(cfg.endpoint.proxy.is_some());
        let started = Instant::now();
        let bar = ProgressBar::start("send", counts.clone(), total);
        let summary = session::drive(session, observer).await;
        bar.finish();
        // What the socket took, as the connection counted it (what left the meter otherwise).
        let sent = summary
            .transferred
            .as_ref()
            .map_or_else(|| counts.handed_on(), |t| t.sent);
        let since = summary.connected_at.unwrap_or(started);
        let elapsed = since.elapsed();
        events.failure(format_args!(
            "sent {sent} bytes ({}) in {:.2} s, {}/s",
            human(sent),
            elapsed.as_secs_f64(),
            human(per_second(sent, elapsed))
        ));
        let mut code = summary.exit_code();
        if code == 0 {
            if let Some(total) = total {
                let read = counts.input();
                if read < total && !summary.stdout_closed {
                    events.failure(format_args!(
                        "only {read} of {total} bytes were read and sent"
                    ));
                    code = 1;
                }
            }
        }
        Ok(code)
    })
}
