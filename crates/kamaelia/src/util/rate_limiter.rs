//! RateLimiter: passes bytes on no faster than a rate, paced by the file reader's token bucket.

use axon::{Component, Control, ControlWatch, Undelivered, CONTROL, INBOX, OUTBOX, SIGNAL};
use bytes::Bytes;
use tokio::time::Instant;

use crate::file::TokenBucket;

axon::box_table! {
    /// RateLimiter's boxes, declared once, as data: the builder declares them from here.
    const BOXES: RateLimiterBoxes {
        inbox: INBOX => "bytes to pass on, in order",
        control: CONTROL => "`ProducerFinished` after every byte queued before it has gone; `ShutdownMicroprocess` at once; `Error`/`Notice` pass on to `signal`",
        outbox: OUTBOX => "the same bytes, unchanged, at most `rate` bytes per second on average",
        signal: SIGNAL => "errors and notices from `control`, then the final message received there",
    }
}

/// The largest burst a [`RateLimiter`] allows unless told otherwise: 64 KiB.
pub const DEFAULT_BURST: u64 = 64 * 1024;

/// Passes `Bytes` from `inbox` to `outbox` at no more than `rate` bytes per second on average.
/// Turn it into a [`Component`] with `.into()`.
///
/// Kamaelia paces inside its readers (`ByteRate_RequestControl` prompting a
/// `PromptedFileReader`); this is the same pacing as a stage of its own, for sources that have
/// none, such as a [`ConsoleReader`](crate::ConsoleReader) reading standard input.
///
/// # Example
///
/// ```
/// use axon::{Component, Control, Inbox, Scheduler};
/// use bytes::Bytes;
/// use kamaelia::util::RateLimiter;
/// use kamaelia::{OneShot, Pipeline};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // 1 MB/s: a small message goes at once (the bucket starts with one burst).
/// let paced = Pipeline::new([
///     OneShot::new(Bytes::from_static(b"hello")).into(),
///     RateLimiter::new(1_000_000).into(),
/// ])?;
/// let sink = Inbox::<Bytes>::standalone("sink", 4);
/// let signal = Inbox::<Control>::standalone("signal", 4);
/// axon::link_refs(&paced.boxref("outbox")?, &sink.boxref())?;
/// axon::link_refs(&paced.boxref("signal")?, &signal.boxref())?;
///
/// let report = Scheduler::new().run(async { paced.activate(); }).await;
/// assert!(report.is_ok());
/// assert_eq!(sink.recv().await, "hello");
/// assert!(signal.recv().await.is_producer_finished());
/// # Ok(())
/// # }
/// ```
///
/// # How it works
///
/// Each message waits until a token bucket filling at `rate` bytes per second holds its size,
/// then goes on unchanged (never split or merged). The bucket counts in exact integers (no
/// floating point, no rounding lost), starts with one burst and holds at most two, so the first
/// messages go at once, a timer that wakes late is credited to the next message, and after a
/// stall downstream the limiter catches up by at most one burst. A message larger than the
/// bucket goes when the bucket is full and leaves a debt that later messages wait out, so the
/// average holds whatever the message sizes. Waiting is a tokio sleep, never a busy loop.
///
/// # Inboxes
///
/// | name | type | meaning |
/// |------|------|---------|
/// | `inbox` | `Bytes` | bytes to pass on, in order |
/// | `control` | [`Control`] | `ProducerFinished` after every byte queued before it has gone; `ShutdownMicroprocess` at once; `Error`/`Notice` pass on to `signal` |
///
/// # Outboxes
///
/// | name | type | meaning |
/// |------|------|---------|
/// | `outbox` | `Bytes` | the same bytes, unchanged, at most `rate` bytes per second on average |
/// | `signal` | [`Control`] | errors and notices from `control`, then the final message received there |
///
/// # Shutdown
///
/// As docs/semantics.md §5 says: `ProducerFinished` on `control` is passed on after every
/// message queued before it (still paced); `ShutdownMicroprocess` ends it at once, dropping
/// what is queued, even while it waits for the bucket or for room downstream.
///
/// # Errors
///
/// None of its own. If the component `outbox` is linked to has ended, messages are dropped
/// until the final message arrives.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    rate: u64,
    burst: u64,
}

impl RateLimiter {
    /// A limiter passing at most `rate` bytes per second on average (0 counts as 1), with
    /// bursts of [`DEFAULT_BURST`].
    pub fn new(rate: u64) -> Self {
        RateLimiter {
            rate,
            burst: DEFAULT_BURST,
        }
    }

    /// How many bytes may go at once after a quiet spell (0 counts as 1). Smaller is smoother,
    /// larger is kinder to large messages.
    #[must_use]
    pub fn burst(mut self, bytes: u64) -> Self {
        self.burst = bytes;
        self
    }
}

impl From<RateLimiter> for Component {
    fn from(limiter: RateLimiter) -> Component {
        let mut b = Component::build("RateLimiter");
        let inbox = b.inbox_from::<Bytes>(BOXES.inbox);
        let control = b.control_from(BOXES.control);
        let outbox = b.outbox_from::<Bytes>(BOXES.outbox);
        let signal = b.signal_from(BOXES.signal);
        b.main(move |_cx| async move {
            let mut watch = ControlWatch::new(&control, &signal);
            let mut bucket = TokenBucket::new(limiter.rate, limiter.burst, Instant::now());
            'messages: loop {
                if watch.shutdown_requested() || (watch.stopping() && inbox.is_empty()) {
                    break;
                }
                let d = tokio::select! {
                    biased;
                    c = watch.control().recv() => {
                        watch.handle(c).await;
                        continue;
                    }
                    d = inbox.recv() => d,
                };
                let n = d.len() as u64;
                while let Some(wait) = bucket.take(n, Instant::now()) {
                    tokio::select! {
                        biased;
                        c = watch.control().recv() => {
                            watch.handle(c).await;
                            if watch.shutdown_requested() {
                                break 'messages;
                            }
                        }
                        () = tokio::time::sleep(wait) => {}
                    }
                }
                match watch.send(&outbox, d).await {
                    // Nobody takes the bytes any more: drop them until told to finish.
                    Ok(()) | Err(Undelivered::Closed) => {}
                    Err(Undelivered::Shutdown) => break,
                }
            }
            watch.finish(Control::producer_finished());
            Ok(())
        })
    }
}
