//! `kamaelia send`: the page's Pipeline, `RateControlledFileReader -> TcpClient`, with a
//! `ConsoleEchoer` for what the server says, wired as a grouped Graphline (one task for all
//! of them, see `session::graphline_fed`). The reader counts what it sends itself
//! ([`RateControlledFileReader::count`]); only what it cannot count goes through a `Meter`
//! (standard input, and `--crlf`, which changes the bytes on the way).
//!
//! ```text
//! Graphline(SOURCE = RateControlledFileReader(file, rate), CONNECTION = TcpClient(host, port),
//!           ECHO = ConsoleEchoer)
//! Graphline(FEED = ConsoleReader | RateControlledFileReader, SOURCE = Meter, CONNECTION, ECHO)
//!                                                                  # stdin, or --crlf
//! ```
//!
//! With `--tls` to a TCP host the connection itself handshakes before it takes any data, with
//! no TlsGate in front of it; with `--starttls` (or TLS through a proxy or to a Unix socket)
//! the protocol's layer sits between the source and the connection. Standard input (`-`) is
//! read by a `ConsoleReader` in chunk mode, paced by a `RateLimiter` when `--rate` is given.
//!
//! At the end a summary line on stderr: `sent N bytes (size) in T, R/s (from connecting until
//! the connection closed)`, timed from the session's start, before connecting, to the
//! connection's end; see `Summary::lasted` for why not from the `Connected` notice, and
//! `time_span` for what the end is (and the words that say so) when the server closed its side
//! first, or the connection failed or was stopped. `T` is `2.99 s`, or below a second `15 ms`. The rate is given only for a transfer of a tenth of a second or more
//! (`progress::RATED_AFTER`: a shorter one measures the set-up and the kernel's buffering, and
//! a 1-byte send would read as megabytes per second). Without a connection the line says so
//! instead of giving a time.

use axon::Component;
use kamaelia::internet::{HowDied, Limits, DEFAULT_LIMIT_BYTES};
use kamaelia::util::{RateLimiter, DEFAULT_BURST};
use kamaelia::{ConsoleEchoer, ConsoleReader, Pipeline, RateControlledFileReader, ReadMode};
use std::sync::Arc;

use crate::events::Events;
use crate::flags::{Output, SendConfig, Source};
use crate::progress::{duration_text, human, summary_rate, Counts, Meter, ProgressBar};
use crate::session::{self, Observer, ServerFinished, Summary};

/// What each queue on the way to the connection holds, with `--tls`, `--starttls` or
/// neither: one default chunk (the connection's inbox and its queue ahead of the socket; a
/// meter's inbox and the library's TlsGate hold one chunk too, where there is one). A file
/// sent as it is (without `--crlf`) to a TCP host, plain or with `--tls`, has neither meter
/// nor gate: the reader, reading a chunk only once the connection has room for it, feeds the
/// connection directly. rustls
/// copies each chunk into its records, and a chunk that waited behind a megabyte of other
/// queued chunks is cold in the CPU's cache by then; one chunk per queue is enough to keep
/// the socket fed. Measured on 256 MiB to the benchmark's TLS sink, sender pinned to CPU 0
/// and sink to CPU 1, in three sets of 30, 40 and 50 alternating runs: CPU (task-clock)
/// median 1.142, 1.130, 1.121x base-send's with the default queues, 1.112, 1.113, 1.104x with
/// these (a small gain, within each set's spread, but in every set); perf samples in rustls's
/// copy of the plaintext -32%, in the kernel's copy of the file into our buffers -16%; peak
/// RSS 8.9 -> 8.35 MiB.
///
/// A regular file is also read one such chunk at a time with TLS
/// ([`RateControlledFileReader::read_size`]), not 256 KiB: each buffer is read into again as
/// soon as its own chunk has been encrypted, while it is still in the CPU's cache, and no
/// chunk waits behind the rest of its block. Measured on 1 GiB to the benchmark's TLS sink,
/// pinned as above, perf samples normalised by the AES routine's (the same work in every
/// run; three alternating runs each): the kernel's copy of the file 1.59-1.99 -> 1.24-1.56,
/// user space 0.61-0.74 -> 0.49-0.58 (base-send 1.41-1.67 and 0.29-0.31); CPU (median of 24
/// alternating rounds of 256 MiB) 148 -> 136 ms, base-send 136 ms. Four times the reads,
/// and 0.7M more instructions per 64 MiB (callgrind), are cheaper than the colder buffers.
///
/// Plain sends take the same queues and reads (session 12): with the default ones (256 KiB
/// reads, 256 KiB queues) the kernel's copy of the file into our buffers ran at half
/// base-send's speed on this machine, whose buffer of 64 KiB is read into again while it is
/// in the cache (`strace -c`: 4,098 reads at 181 us against base-send's 16,392 at 22 us), and
/// `send` of 1 GiB took 1.8-2.2x base-send's wall time; with these, 1.03-1.16x (figure 1,
/// `kamaelia-bench --kamaelia DIR --only 1 --rounds 3`, two runs each, alternating), user CPU
/// +0.02-0.04 s a GiB for four times the chunks.
///
/// Session 14 took the meter out of a plain send of a file (the reader counts, as with TLS)
/// and ran a plain send as the same grouped Graphline as a TLS one (one task): per 64 KiB
/// chunk 4,710 -> 2,666 instructions with the reader's buffers no longer allocating (callgrind,
/// 64 MiB to the benchmark's sink, less a 1 KiB send's), one queue of 64 KiB fewer between
/// the file and the socket, and `epoll_wait` 808 -> 275 calls a GiB (tokio looks for I/O every
/// 61 task polls: three a chunk before, one now). docs/perf-session14.md
/// has the profile and the measurements.
const QUEUE_BYTES: usize = 64 * 1024;

/// The connection's limits, with TLS or not: [`QUEUE_BYTES`] to send, the default to receive.
const SEND_LIMITS: Limits = Limits {
    send_bytes: QUEUE_BYTES,
    receive_bytes: DEFAULT_LIMIT_BYTES,
};

/// Runs `send` and returns the exit status.
pub(crate) fn main(cfg: SendConfig, output: Output) -> anyhow::Result<u8> {
    session::run_single(|_sched| async move {
        let counts = Arc::new(Counts::default());
        // A file sent as it is (no --crlf), with TLS or not, is counted by its reader, with no
        // Meter between it and the connection (see RateControlledFileReader::count and
        // QUEUE_BYTES).
        let mut counted = false;
        let (reader, total): (Component, Option<u64>) = match cfg.source {
            Source::File { path, file, size } => {
                let mut r = RateControlledFileReader::from_file(file, path).rate(cfg.rate);
                // A chunk at a time, with TLS or not (see QUEUE_BYTES).
                r = r.read_size(QUEUE_BYTES);
                if !cfg.endpoint.crlf {
                    r = r.count(counts.clone());
                    counted = true;
                }
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
        let meter = || Meter::with_inbox(counts.clone(), cfg.endpoint.crlf, QUEUE_BYTES);
        let client = session::client_with(&cfg.endpoint, SEND_LIMITS)?;
        // One grouped Graphline with TLS or without (session::graphline_fed): the reader, the
        // connection and the echoer share one task, so handing a chunk on is a member's wake-up
        // inside it, not a trip through tokio's run queue (see QUEUE_BYTES).
        let (feed, source) = if counted {
            (None, reader)
        } else {
            (Some(reader), meter())
        };
        let session =
            session::graphline_fed(feed, source, client, ConsoleEchoer::new(), &cfg.endpoint)?;
        let events = Events::new(output);
        let observer = Observer::attach(&session, events)?
            .counts(counts.clone(), total)
            .show_cert(cfg.endpoint.show_cert)
            .via_proxy(cfg.endpoint.proxy.is_some());
        let bar = ProgressBar::start("send", counts.clone(), total);
        let summary = session::drive(session, observer).await;
        bar.finish();
        // What the socket took, as the connection counted it (what left the meter otherwise).
        let sent = summary
            .transferred
            .as_ref()
            .map_or_else(|| counts.handed_on(), |t| t.sent);
        if summary.peer.is_some() {
            let lasted = summary.lasted();
            let (span, rated) = time_span(&summary);
            let rate = if rated {
                summary_rate(sent, lasted)
            } else {
                String::new()
            };
            events.failure(format_args!(
                "sent {sent} bytes ({}) in {}{rate} ({span})",
                human(sent),
                duration_text(lasted),
            ));
        } else {
            events.failure(format_args!(
                "sent {sent} bytes ({}): no connection was made",
                human(sent)
            ));
        }
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

/// What the summary's time runs to, in plain words, and whether a rate over it means anything.
///
/// It always starts before connecting ([`Summary::lasted`]). It ends when the connection
/// ended, which is the server's close only if the server still had its side open when we
/// half-closed ours. A server that closed its side first (`/tmp/slack14/peer.py halfclose`)
/// is not waited for: the connection ends as soon as the kernel has taken our last byte, and
/// up to the socket buffers' worth (megabytes over loopback) may still be on its way. Measured
/// before this was said: 20 MB to such a peer reading 4 MB/s, "in 3.94 s, 5.08 MB/s" while
/// the peer read for 5.00 s; 4 MB at 2 MB/s, "in 0.00 s" while the peer read for 2.00 s.
/// After a failure or a stop the bytes counted were taken by the kernel, not necessarily
/// delivered (the failure line says how many were not): no rate either.
fn time_span(s: &Summary) -> (&'static str, bool) {
    if s.failure.is_some() {
        ("from connecting until the connection failed", false)
    } else if matches!(s.how, Some(HowDied::Shutdown { .. })) || session::interrupted() {
        ("from connecting until it was stopped", false)
    } else if s.server_finished == Some(ServerFinished::BeforeInputEnded) {
        (
            "to the last byte handed to the kernel: the server had closed its side first, \
             so when it read them is not known",
            false,
        )
    } else {
        ("from connecting until the connection closed", true)
    }
}
