//! A counting pass-through component (`Meter`) and a hand-rolled progress bar for stderr.

use std::io::{IsTerminal, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axon::{Component, Control, TrySendError};
use bytes::Bytes;

use crate::crlf::Crlf;

/// What a [`Meter`] has counted, shared with whoever reports on the session.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// Bytes taken from the input.
    pub(crate) input: AtomicU64,
    /// Bytes handed on towards the connection (more than `input` with `--crlf`).
    pub(crate) handed_on: AtomicU64,
    /// The input has ended (its final message was passed on).
    pub(crate) input_ended: AtomicBool,
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

/// A pass-through that counts the bytes handed on, optionally turns LF into CRLF (`--crlf`)
/// and, if given a rate, paces them (used for standard input, which has no
/// RateControlledFileReader).
///
/// Boxes: `inbox` -> `outbox` (`Bytes`), `control` -> `signal` (a final message is passed on
/// after every byte queued before it; ShutdownMicroprocess at once).
pub(crate) struct Meter;

impl Meter {
    #[allow(clippy::new_ret_no_self)]
    pub(crate) fn new(counts: Arc<Counts>, rate: Option<u64>, crlf: bool) -> Component {
        let mut b = Component::build("Meter");
        let inbox = b.inbox::<Bytes>("inbox", "bytes to count and pass on");
        let control = b.control();
        let outbox = b.outbox::<Bytes>("outbox", "the same bytes");
        let signal = b.signal();
        let mut crlf = crlf.then(Crlf::default);
        b.main(move |_cx| async move {
            let start = Instant::now();
            let mut held: Option<Bytes> = None;
            let mut finishing: Option<Control> = None;
            loop {
                if held.is_none() {
                    if let Some(c) = finishing.take_if(|_| inbox.is_empty()) {
                        counts.input_ended.store(true, Ordering::Relaxed);
                        let _ = signal.send(c).await;
                        return Ok(());
                    }
                }
                tokio::select! {
                    biased;
                    c = control.recv() => {
                        if c.is_shutdown() {
                            let _ = signal.send(c).await;
                            return Ok(());
                        } else if c.is_final() {
                            finishing.get_or_insert(c);
                        } else {
                            let _ = signal.send(c).await;
                        }
                    }
                    _ = outbox.ready(), if held.is_some() => {
                        if let Some(d) = held.take() {
                            held = pass(&outbox, d, &counts);
                        }
                    }
                    d = inbox.recv(), if held.is_none() => {
                        if let Some(rate) = rate {
                            // Each byte may leave no earlier than its place at `rate` allows.
                            let due = counts.input() as f64 / rate as f64;
                            let wait = Duration::try_from_secs_f64(due)
                                .unwrap_or(Duration::MAX)
                                .saturating_sub(start.elapsed());
                            tokio::time::sleep(wait).await;
                        }
                        counts.input.fetch_add(d.len() as u64, Ordering::Relaxed);
                        let d = match crlf.as_mut() {
                            Some(c) => c.encode(d),
                            None => d,
                        };
                        held = pass(&outbox, d, &counts);
                    }
                }
            }
        })
    }
}

fn pass(outbox: &axon::Outbox<Bytes>, d: Bytes, counts: &Counts) -> Option<Bytes> {
    let n = d.len() as u64;
    match outbox.try_send(d) {
        Ok(()) => {
            counts.handed_on.fetch_add(n, Ordering::Relaxed);
            None
        }
        Err(TrySendError::Closed(_)) => None,
        Err(TrySendError::Full(d) | TrySendError::Unlinked(d)) => Some(d),
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
}
