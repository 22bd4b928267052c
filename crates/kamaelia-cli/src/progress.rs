//! A counting pass-through component (`Meter`) and a hand-rolled progress bar for stderr.
//!
//! Why not indicatif (issue 10 §7 asked for it or for the reasons): the bar has nothing of its
//! own to count. It reads the `Counts` that the `Meter` keeps anyway for the last line's "N of M
//! bytes sent", so there is one count and the bar cannot disagree with the summary; indicatif
//! would keep a second counter, fed from the same place. It is drawn from a 100 ms tokio
//! interval on the session's runtime, only when stderr is a terminal, and the event lines
//! already clear its line before they print (`events.rs`), which is what indicatif's
//! `suspend`/`println` would be for. What indicatif adds beyond that (templates, multi-bars,
//! spinners, ETA smoothing) `send` does not use, and it would bring a dependency tree into the
//! program for 40 lines. Its cost, measured (debug build, loaded 2-core machine): 512 MiB sent
//! with `--rate 100M` to `serve --discard`, stderr on a pty (`script -qec`, about 108 redraws)
//! against stderr on /dev/null, three runs each: user+sys CPU 1.78, 1.82, 1.75 s with the bar,
//! 2.08, 1.88, 1.50 s without; the difference is below the noise.

use std::io::{IsTerminal, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axon::{Component, Control, ControlWatch, Undelivered, CONTROL, INBOX, OUTBOX, SIGNAL};
use bytes::Bytes;

use crate::crlf::Crlf;

/// What a [`Meter`] (or a file reader, through `SentCounter`) has counted, shared with whoever
/// reports on the session.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// Bytes taken from the input.
    pub(crate) input: AtomicU64,
    /// Bytes handed on towards the connection (more than `input` with `--crlf`).
    pub(crate) handed_on: AtomicU64,
    /// The input has ended (its final message was passed on).
    pub(crate) input_ended: AtomicBool,
}

/// The meter's counts, kept by a file reader itself when it has no Meter behind it (`send
/// --tls` of a file as it is): what it sends is taken from the input and handed on alike.
impl kamaelia::file::SentCounter for Counts {
    fn sent(&self, bytes: u64) {
        self.input.fetch_add(bytes, Ordering::Relaxed);
        self.handed_on.fetch_add(bytes, Ordering::Relaxed);
    }

    fn ended(&self) {
        self.input_ended.store(true, Ordering::Relaxed);
    }
}

impl Counts {
    pub(crate) fn input(&self) -> u64 {
        self.input.load(Ordering::Relaxed)
    }

    pub(crate) fn handed_on(&self) -> u64 {
        self.handed_on.load(Ordering::Relaxed)
    }

    pub(crate) fn input_ended(&self) -> bool {
        self.input_ended.load(Ordering::Relaxed)
    }
}

axon::box_table! {
    /// Meter's boxes, declared once, as data: the builder declares them from here.
    const BOXES: MeterBoxes {
        inbox: INBOX => "bytes to count and pass on",
        control: CONTROL => "a final message is passed on after every byte queued before it; `ShutdownMicroprocess` at once",
        outbox: OUTBOX => "the same bytes (LF turned into CRLF with `--crlf`)",
        signal: SIGNAL => "the final message received on `control`, or `ProducerFinished`",
    }
}

/// A pass-through that counts the bytes handed on and optionally turns LF into CRLF
/// (`--crlf`). Pacing, where asked for, is the library's `RateLimiter` in front of it.
///
/// # Inboxes
///
/// | name | type | meaning |
/// |---|---|---|
/// | `inbox` | `Bytes` | bytes to count and pass on |
/// | `control` | `Control` | a final message is passed on after every byte queued before it; `ShutdownMicroprocess` at once |
///
/// # Outboxes
///
/// | name | type | meaning |
/// |---|---|---|
/// | `outbox` | `Bytes` | the same bytes (LF turned into CRLF with `--crlf`) |
/// | `signal` | `Control` | the final message received on `control`, or `ProducerFinished` |
///
/// # Shutdown
///
/// docs/semantics.md §5 through `ControlWatch`.
pub(crate) struct Meter;

impl Meter {
    /// What a meter's inbox holds unless told otherwise: two default chunks.
    pub(crate) const INBOX_BYTES: usize = 128 * 1024;

    #[allow(clippy::new_ret_no_self)]
    pub(crate) fn new(counts: Arc<Counts>, crlf: bool) -> Component {
        Self::with_inbox(counts, crlf, Self::INBOX_BYTES)
    }

    /// A meter whose inbox holds up to `inbox_bytes` (a box admits a message while it holds
    /// less than its limit: 64 KiB is one default chunk, 128 KiB two).
    pub(crate) fn with_inbox(counts: Arc<Counts>, crlf: bool, inbox_bytes: usize) -> Component {
        let mut b = Component::build("Meter");
        // Bounded in bytes, like the connection's inbox behind it: a chunk or two keep the
        // stream going without holding megabytes (64 messages of 64 KiB) in between.
        let inbox = b.inbox_from::<Bytes>(BOXES.inbox).limit_bytes(inbox_bytes);
        let control = b.control_from(BOXES.control);
        let outbox = b.outbox_from::<Bytes>(BOXES.outbox);
        let signal = b.signal_from(BOXES.signal);
        let mut crlf = crlf.then(Crlf::default);
        b.main(move |_cx| async move {
            let mut watch = ControlWatch::new(&control, &signal);
            loop {
                if watch.shutdown_requested() || (watch.stopping() && inbox.is_empty()) {
                    break;
                }
                tokio::select! {
                    biased;
                    c = watch.control().recv() => watch.handle(c).await,
                    d = inbox.recv() => {
                        counts.input.fetch_add(d.len() as u64, Ordering::Relaxed);
                        let d = match crlf.as_mut() {
                            Some(c) => c.encode(d),
                            None => d,
                        };
                        let n = d.len() as u64;
                        match watch.send(&outbox, d).await {
                            Ok(()) => {
                                counts.handed_on.fetch_add(n, Ordering::Relaxed);
                            }
                            // Nobody takes the bytes any more: count them as read, not sent.
                            Err(Undelivered::Closed) => {}
                            Err(Undelivered::Shutdown) => break,
                        }
                    }
                }
            }
            if !watch.shutdown_requested() {
                counts.input_ended.store(true, Ordering::Relaxed);
            }
            watch.finish(Control::producer_finished());
            Ok(())
        })
    }
}

/// A progress bar redrawn on stderr every 100 ms while it lives, if stderr is a terminal.
pub(crate) struct ProgressBar {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ProgressBar {
    pub(crate) fn start(label: &'static str, counts: Arc<Counts>, total: Option<u64>) -> Self {
        if !std::io::stderr().is_terminal() {
            return ProgressBar { task: None };
        }
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let done = counts.input();
                let line = render(label, done, total, start.elapsed());
                let _ = write!(std::io::stderr().lock(), "\r{line}\x1b[K");
            }
        });
        ProgressBar { task: Some(task) }
    }

    /// Stops drawing and clears the line.
    pub(crate) fn finish(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }
}

impl Drop for ProgressBar {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

fn render(label: &str, done: u64, total: Option<u64>, elapsed: Duration) -> String {
    let rate = per_second(done, elapsed);
    match total {
        Some(total) if total > 0 => {
            const WIDTH: u64 = 30;
            let filled = (done.min(total) * WIDTH / total) as usize;
            format!(
                "{label} [{}{}] {:>3}% {} of {}  {}/s",
                "#".repeat(filled),
                ".".repeat(WIDTH as usize - filled),
                done.min(total) * 100 / total,
                human(done),
                human(total),
                human(rate),
            )
        }
        _ => format!("{label} {}  {}/s", human(done), human(rate)),
    }
}

/// The shortest transfer whose rate the summary prints (a tenth of a second). Below it the
/// time measured is mostly the connection's set-up and the kernel taking the bytes into its
/// socket buffers, not a transfer: a 1-byte send over loopback takes microseconds and would
/// read as megabytes per second. Such a summary gives the bytes and the time only.
pub(crate) const RATED_AFTER: Duration = Duration::from_millis(100);

/// The summary's rate, `", 1.00 MB/s"`, or nothing for a transfer shorter than
/// [`RATED_AFTER`].
pub(crate) fn summary_rate(bytes: u64, elapsed: Duration) -> String {
    if elapsed < RATED_AFTER {
        String::new()
    } else {
        format!(", {}/s", human(per_second(bytes, elapsed)))
    }
}

/// A summary's time: `2.99 s` from a second on, `15 ms` or `8.5 ms` below it. Hundredths of a
/// second are too coarse for a short transfer: a 20 MB send over loopback that took 15 ms read
/// `0.01 s`.
pub(crate) fn duration_text(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms >= 999.5 {
        format!("{:.2} s", d.as_secs_f64())
    } else if ms >= 9.95 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// Bytes per second over `elapsed`.
pub(crate) fn per_second(bytes: u64, elapsed: Duration) -> u64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        0
    } else {
        (bytes as f64 / secs) as u64
    }
}

/// `2.1 MB`, `950 kB`, `12 B` (SI units, as `--rate` takes them).
pub(crate) fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.2} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_bars_render() {
        assert_eq!(human(12), "12 B");
        assert_eq!(human(2_097_152), "2.10 MB");
        assert_eq!(human(950_000), "950.0 kB");
        let line = render("send", 50, Some(100), Duration::from_secs(1));
        assert!(line.contains(" 50%"), "{line}");
        assert!(line.contains("[###############...............]"), "{line}");
    }

    #[test]
    fn the_summary_rates_only_a_transfer_of_a_tenth_of_a_second_or_more() {
        // A 1-byte send over loopback: microseconds, no rate (it would read 200 kB/s).
        assert_eq!(summary_rate(1, Duration::from_micros(5)), "");
        assert_eq!(summary_rate(1 << 20, Duration::from_millis(99)), "");
        assert_eq!(
            summary_rate(100_000, Duration::from_millis(100)),
            ", 1.00 MB/s"
        );
        assert_eq!(
            summary_rate(3_000_000, Duration::from_secs_f64(2.99)),
            ", 1.00 MB/s"
        );
        assert_eq!(summary_rate(1, Duration::from_secs(5)), ", 0 B/s");
    }

    #[test]
    fn a_summary_time_keeps_its_precision_below_a_second() {
        assert_eq!(duration_text(Duration::from_micros(420)), "0.4 ms");
        assert_eq!(duration_text(Duration::from_micros(9_940)), "9.9 ms");
        assert_eq!(duration_text(Duration::from_micros(15_400)), "15 ms");
        assert_eq!(duration_text(Duration::from_micros(999_400)), "999 ms");
        assert_eq!(duration_text(Duration::from_micros(999_600)), "1.00 s");
        assert_eq!(duration_text(Duration::from_secs_f64(2.99)), "2.99 s");
    }
}
