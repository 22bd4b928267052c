//! RateControlledFileReader against real files: exact content, the rate, errors on `signal`,
//! and shutdown part way through.

use std::error::Error as _;
use std::time::Duration;

use axon::{Component, ComponentFailure, Control, Inbox, Outbox, RunReport, Scheduler};
use bytes::Bytes;
use kamaelia::{FileReaderError, RateControlledFileReader};
use kamaelia_test::pki::TempFile;
use sha2::{Digest, Sha256};
use tokio::time::{timeout, Instant};

/// The bound on each test (virtual time in the paused tests, where it is also the hang detector).
const LIMIT: Duration = Duration::from_secs(60);

/// `n` random bytes.
fn random_bytes(n: usize) -> Vec<u8> {
    kamaelia_test::random_bytes(rand::random(), n)
}

/// What a run produced: the chunks on `outbox` and everything on `signal`.
struct Outcome {
    report: RunReport,
    chunks: Vec<Bytes>,
    signals: Vec<Control>,
}

/// Runs `reader` with its `outbox` and `signal` collected until its final message; `control`, if
/// given, is linked to the reader's `control` before it starts.
async fn run(reader: Component, control: Option<&Outbox<Control>>) -> Outcome {
    let sink = Inbox::<Bytes>::standalone("sink", 64);
    let signal = Inbox::<Control>::standalone("signal", 64);
    axon::link_refs(&reader.boxref("outbox").unwrap(), &sink.boxref()).unwrap();
    axon::link_refs(&reader.boxref("signal").unwrap(), &signal.boxref()).unwrap();
    if let Some(c) = control {
        axon::link_refs(&c.boxref(), &reader.boxref("control").unwrap()).unwrap();
    }
    let sched = Scheduler::new();
    let collect = async {
        let mut chunks = Vec::new();
        let mut signals = Vec::new();
        loop {
            tokio::select! {
                c = signal.recv() => {
                    let last = c.is_final();
                    signals.push(c);
                    if last {
                        // Data was sent before the final message, so it is all queued now.
                        while let Some(b) = sink.try_recv() {
                            chunks.push(b);
                        }
                        return (chunks, signals);
                    }
                }
                b = sink.recv() => chunks.push(b),
            }
        }
    };
    let (report, (chunks, signals)) = tokio::join!(
        sched.run(async {
            reader.activate();
        }),
        collect
    );
    Outcome {
        report,
        chunks,
        signals,
    }
}

/// Runs `reader` on a scheduler of its own beside `beside` (what the test does meanwhile), both
/// within [`LIMIT`]: the run's report and what `beside` returned.
async fn run_beside<T>(
    reader: Component,
    beside: impl std::future::Future<Output = T>,
) -> (RunReport, T) {
    let sched = Scheduler::new();
    let running = sched.run(async {
        reader.activate();
    });
    timeout(LIMIT, async { tokio::join!(running, beside) })
        .await
        .expect("the reader and the test's side ended within the limit")
}

/// The reader's own error inside the runtime's `Control::Error`.
fn reader_error(c: &Control) -> &FileReaderError {
    let failure = c
        .error_ref::<ComponentFailure>()
        .unwrap_or_else(|| panic!("expected an error on signal, got {c}"));
    failure
        .source()
        .and_then(|e| e.downcast_ref::<FileReaderError>())
        .unwrap_or_else(|| panic!("expected a FileReaderError, got {failure}"))
}

#[tokio::test]
async fn the_file_arrives_exactly_and_then_producer_finished() {
    let data = random_bytes(3 * 1024 * 1024 + 17);
    let file = TempFile::new("exact", &data);
    let reader = RateControlledFileReader::new(file.path()).rate(None).into();
    let out = timeout(LIMIT, run(reader, None)).await.unwrap();
    assert_delivered_exactly(&out, &data, 64 * 1024);
}

/// `out` is `data` exactly, in non-empty chunks of at most `max_chunk` bytes, and a clean end:
/// one ProducerFinished.
fn assert_delivered_exactly(out: &Outcome, data: &[u8], max_chunk: usize) {
    assert!(out.report.is_ok(), "{:?}", out.report.failures);
    assert!(out
        .chunks
        .iter()
        .all(|c| !c.is_empty() && c.len() <= max_chunk));
    let got = out.chunks.concat();
    assert_eq!(Sha256::digest(&got), Sha256::digest(data));
    assert!(got == data, "same digest, different bytes");
    assert_eq!(out.signals.len(), 1);
    assert!(out.signals[0].is_producer_finished());
}

/// A read size of one chunk (as `kamaelia send --tls` uses): the same bytes, in the same
/// chunks, each buffer reused as soon as its chunk has gone.
#[tokio::test]
async fn a_read_size_of_one_chunk_delivers_the_file_exactly() {
    let data = random_bytes(1024 * 1024 + 5);
    let file = TempFile::new("read-size", &data);
    let reader = RateControlledFileReader::new(file.path())
        .rate(None)
        .chunk_size(16 * 1024)
        .read_size(16 * 1024)
        .into();
    let out = timeout(LIMIT, run(reader, None)).await.unwrap();
    assert_delivered_exactly(&out, &data, 16 * 1024);
}

#[tokio::test]
async fn an_empty_file_sends_only_producer_finished() {
    let file = TempFile::new("empty", b"");
    let reader = RateControlledFileReader::new(file.path()).into();
    let out = timeout(LIMIT, run(reader, None)).await.unwrap();
    assert!(out.report.is_ok());
    assert!(out.chunks.is_empty());
    assert_eq!(out.signals.len(), 1);
    assert!(out.signals[0].is_producer_finished());
}

/// Paused time: the clock moves only when every task is waiting on a timer. The reads run on
/// tokio's blocking pool, which holds the paused clock still while they are in flight, so the
/// elapsed virtual time is exactly the time the reader chose to wait — no more, and (the lower
/// bound is the point) no less.
#[tokio::test(start_paused = true)]
async fn the_average_rate_holds_in_paused_time() {
    const SIZE: usize = 1_000_000;
    const RATE: u64 = 100_000;
    let data = random_bytes(SIZE);
    let file = TempFile::new("paused-rate", &data);
    let reader = RateControlledFileReader::new(file.path()).rate(RATE).into();
    let start = Instant::now();
    let out = timeout(LIMIT, run(reader, None)).await.unwrap();
    let elapsed = start.elapsed().as_secs_f64();

    assert!(out.report.is_ok());
    assert!(out.chunks.concat() == data);
    assert!(
        out.chunks.iter().all(|c| c.len() <= 1_000),
        "rate / 100 per chunk"
    );
    // Paused time is exact: the rate holds to within 15%.
    let expected = SIZE as f64 / RATE as f64;
    assert!(
        (elapsed - expected).abs() <= 0.15 * expected,
        "{SIZE} bytes at {RATE} B/s took {elapsed:.3}s, expected {expected:.3}s ± 15%"
    );
}

/// The same on the real clock, with a modest file: 200 kB at 400 kB/s is half a second.
#[tokio::test]
async fn the_average_rate_holds_in_real_time() {
    const SIZE: usize = 200_000;
    const RATE: u64 = 400_000;
    let data = random_bytes(SIZE);
    let file = TempFile::new("real-rate", &data);
    let reader = RateControlledFileReader::new(file.path()).rate(RATE).into();
    let start = std::time::Instant::now();
    let out = timeout(LIMIT, run(reader, None)).await.unwrap();
    let elapsed = start.elapsed().as_secs_f64();

    assert!(out.report.is_ok());
    assert!(out.chunks.concat() == data);
    // The exact rate is checked in paused time above. In real time the reader must never run
    // ahead of its rate; running behind is bounded loosely, as a loaded machine can hold any
    // task back (seen: 0.63 s for 0.50 s at load average 8).
    let expected = SIZE as f64 / RATE as f64;
    assert!(
        elapsed >= 0.85 * expected && elapsed <= 3.0 * expected,
        "{SIZE} bytes at {RATE} B/s took {elapsed:.3}s, expected {expected:.3}s \
         (at least 85%, at most 3x under load)"
    );
}

#[tokio::test]
async fn a_missing_file_is_an_error_on_signal_then_producer_finished() {
    let path = std::env::temp_dir().join(format!(
        "kamaelia-file-reader-{}-does-not-exist",
        std::process::id()
    ));
    let reader = RateControlledFileReader::new(&path).into();
    let out = timeout(LIMIT, run(reader, None)).await.unwrap();

    assert!(out.chunks.is_empty());
    assert_eq!(out.signals.len(), 2, "{:?}", out.signals);
    let err = reader_error(&out.signals[0]);
    assert!(matches!(err, FileReaderError::Open { .. }), "{err:?}");
    assert_eq!(err.path(), path);
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    let io = err
        .source()
        .and_then(|e| e.downcast_ref::<std::io::Error>());
    assert_eq!(io.map(|e| e.kind()), Some(std::io::ErrorKind::NotFound));
    assert!(out.signals[1].is_producer_finished());
    assert_eq!(out.report.failures.len(), 1);
}

#[tokio::test]
async fn a_directory_is_a_read_error() {
    let dir = std::env::temp_dir();
    let reader = RateControlledFileReader::new(&dir).into();
    let out = timeout(LIMIT, run(reader, None)).await.unwrap();
    let err = reader_error(&out.signals[0]);
    assert!(matches!(err, FileReaderError::Read { .. }), "{err:?}");
    assert!(out.signals[1].is_producer_finished());
}

#[tokio::test]
async fn a_zero_rate_is_an_error() {
    let file = TempFile::new("zero-rate", b"data");
    let reader = RateControlledFileReader::new(file.path()).rate(0).into();
    let out = timeout(LIMIT, run(reader, None)).await.unwrap();
    assert!(matches!(
        reader_error(&out.signals[0]),
        FileReaderError::ZeroRate { .. }
    ));
    assert!(out.chunks.is_empty());
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_it_mid_file_and_is_its_final_message() {
    const SIZE: usize = 1_000_000;
    let data = random_bytes(SIZE);
    let file = TempFile::new("shutdown", &data);
    let reader: Component = RateControlledFileReader::new(file.path())
        .rate(100_000)
        .into();
    let sink = Inbox::<Bytes>::standalone("sink", 64);
    let signal = Inbox::<Control>::standalone("signal", 64);
    let control = Outbox::<Control>::standalone("control");
    axon::link_refs(&reader.boxref("outbox").unwrap(), &sink.boxref()).unwrap();
    axon::link_refs(&reader.boxref("signal").unwrap(), &signal.boxref()).unwrap();
    axon::link_refs(&control.boxref(), &reader.boxref("control").unwrap()).unwrap();

    let start = Instant::now();
    let drive = async {
        // Once data flows, ask it to stop; then take what it sent until its final message.
        let mut got = vec![sink.recv().await];
        control.send(Control::notice("still going")).await.unwrap();
        control.send(Control::shutdown()).await.unwrap();
        let mut signals = Vec::new();
        loop {
            tokio::select! {
                c = signal.recv() => {
                    let last = c.is_final();
                    signals.push(c);
                    if last { break; }
                }
                b = sink.recv() => got.push(b),
            }
        }
        while let Some(b) = sink.try_recv() {
            got.push(b);
        }
        (got.concat(), signals)
    };
    let (report, (got, signals)) = run_beside(reader, drive).await;

    assert!(report.is_ok());
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert!(
        !got.is_empty() && got.len() < SIZE / 10,
        "{} bytes",
        got.len()
    );
    assert_eq!(got[..], data[..got.len()]);
    assert_eq!(signals.len(), 2, "{signals:?}");
    assert_eq!(signals[0].payload::<&str>(), Some(&"still going"));
    assert!(signals[1].is_shutdown());
}

#[tokio::test]
async fn from_file_reads_the_file_it_is_given_not_the_path() {
    let data = random_bytes(200_000);
    let file = TempFile::new("from-file", &data);
    let open = std::fs::File::open(file.path()).unwrap();
    // The path now names nothing: only the open file can be read.
    std::fs::remove_file(file.path()).unwrap();
    let reader = RateControlledFileReader::from_file(open, file.path())
        .rate(None)
        .into();
    let out = timeout(LIMIT, run(reader, None)).await.unwrap();
    assert!(out.report.is_ok(), "{:?}", out.report.failures);
    assert!(out.chunks.concat() == data);
    assert!(out.signals[0].is_producer_finished());
}

/// A [`SentCounter`] that keeps what it is told.
#[derive(Default)]
struct Counted {
    bytes: std::sync::atomic::AtomicU64,
    chunks: std::sync::atomic::AtomicU64,
    ended: std::sync::atomic::AtomicU64,
}

impl kamaelia::file::SentCounter for Counted {
    fn sent(&self, bytes: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.bytes.fetch_add(bytes, Relaxed);
        self.chunks.fetch_add(1, Relaxed);
    }
    fn ended(&self) {
        self.ended
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Counted {
    fn get(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.bytes.load(Relaxed),
            self.chunks.load(Relaxed),
            self.ended.load(Relaxed),
        )
    }
}

/// The counter is told every chunk that went on `outbox`, and once that the reader ended, at
/// end of file (as `kamaelia send --tls` counts a file with no Meter behind the reader).
#[tokio::test]
async fn a_counter_is_told_every_chunk_sent_and_the_end() {
    let data = random_bytes(1024 * 1024 + 5);
    let file = TempFile::new("counted", &data);
    let counted = std::sync::Arc::new(Counted::default());
    let reader = RateControlledFileReader::new(file.path())
        .rate(None)
        .read_size(64 * 1024)
        .count(counted.clone())
        .into();
    let out = timeout(LIMIT, run(reader, None)).await.unwrap();
    assert_delivered_exactly(&out, &data, 64 * 1024);
    assert_eq!(
        counted.get(),
        (data.len() as u64, out.chunks.len() as u64, 1)
    );
}

/// A failing reader has ended too (its error and ProducerFinished follow on `signal`), as a
/// Meter behind it would have seen.
#[tokio::test]
async fn a_counter_is_told_the_end_of_a_reader_that_failed() {
    let counted = std::sync::Arc::new(Counted::default());
    let reader = RateControlledFileReader::new(std::env::temp_dir())
        .count(counted.clone())
        .into();
    let out = timeout(LIMIT, run(reader, None)).await.unwrap();
    assert!(out.signals[1].is_producer_finished());
    assert_eq!(counted.get(), (0, 0, 1));
}

/// ShutdownMicroprocess is not an end of the input: the counter is told only what was sent.
#[tokio::test(start_paused = true)]
async fn a_counter_is_not_told_the_end_at_a_shutdown() {
    let data = random_bytes(1_000_000);
    let file = TempFile::new("counted-shutdown", &data);
    let counted = std::sync::Arc::new(Counted::default());
    let reader: Component = RateControlledFileReader::new(file.path())
        .rate(100_000)
        .count(counted.clone())
        .into();
    let control = Outbox::<Control>::standalone("control");
    let sink = Inbox::<Bytes>::standalone("sink", 64);
    axon::link_refs(&reader.boxref("outbox").unwrap(), &sink.boxref()).unwrap();
    axon::link_refs(&control.boxref(), &reader.boxref("control").unwrap()).unwrap();
    let drive = async {
        let first = sink.recv().await;
        control.send(Control::shutdown()).await.unwrap();
        first
    };
    let (report, first) = run_beside(reader, drive).await;
    assert!(report.is_ok());
    let mut got = first.len() as u64;
    while let Some(b) = sink.try_recv() {
        got += b.len() as u64;
    }
    let (bytes, _, ended) = counted.get();
    assert_eq!((bytes, ended), (got, 0));
    assert!(got < data.len() as u64);
}

/// A regular file's next block is read only once the receiver has room: with the receiver
/// holding one chunk it has not taken, the reader has read that chunk and no more (read ahead,
/// the next block would wait in its buffer, cold by the time it is sent).
#[tokio::test]
async fn a_block_is_read_only_once_the_receiver_has_room() {
    use std::io::Seek as _;
    const CHUNK: usize = 64 * 1024;
    let data = random_bytes(8 * CHUNK);
    let file = TempFile::new("room-first", &data);
    let open = std::fs::File::open(file.path()).unwrap();
    // The same open file: its offset says how much the reader has read.
    let mut offset = open.try_clone().unwrap();
    let reader: Component = RateControlledFileReader::from_file(open, file.path())
        .rate(None)
        .read_size(CHUNK)
        .into();
    let sink = Inbox::<Bytes>::standalone("sink", 1);
    axon::link_refs(&reader.boxref("outbox").unwrap(), &sink.boxref()).unwrap();
    let check = async {
        let first = sink.recv().await;
        // The sink holds the next chunk and takes no more; let the reader run on.
        while sink.is_empty() {
            tokio::task::yield_now().await;
        }
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        let read = offset.stream_position().unwrap();
        assert_eq!(
            read,
            2 * CHUNK as u64,
            "one chunk taken, one waiting, none read ahead"
        );
        let mut got = first.to_vec();
        loop {
            let b = sink.recv().await;
            got.extend_from_slice(&b);
            if got.len() == data.len() {
                break;
            }
        }
        got
    };
    let (report, got) = run_beside(reader, check).await;
    assert!(report.is_ok());
    assert!(got == data);
}

/// A counter that notes, when told the end, how many messages were already on `signal`.
struct EndOrder {
    signal: std::sync::Arc<Inbox<Control>>,
    queued_at_end: std::sync::Mutex<Option<usize>>,
}

impl kamaelia::file::SentCounter for EndOrder {
    fn sent(&self, _bytes: u64) {}
    fn ended(&self) {
        *self.queued_at_end.lock().unwrap() = Some(self.signal.len());
    }
}

/// SentCounter::ended is called before the reader's final message goes on `signal` (as the
/// Meter it replaced in `kamaelia send` noted the end before passing the final message on):
/// at end of file, nothing is on `signal` yet when the counter is told.
#[tokio::test]
async fn a_counter_is_told_the_end_before_the_final_message() {
    let data = random_bytes(100_000);
    let file = TempFile::new("end-order", &data);
    let signal = std::sync::Arc::new(Inbox::<Control>::standalone("signal", 64));
    let counter = std::sync::Arc::new(EndOrder {
        signal: signal.clone(),
        queued_at_end: std::sync::Mutex::new(None),
    });
    let reader: Component = RateControlledFileReader::new(file.path())
        .rate(None)
        .read_size(64 * 1024)
        .count(counter.clone())
        .into();
    let sink = Inbox::<Bytes>::standalone("sink", 64);
    axon::link_refs(&reader.boxref("outbox").unwrap(), &sink.boxref()).unwrap();
    axon::link_refs(&reader.boxref("signal").unwrap(), &signal.boxref()).unwrap();
    let report = timeout(
        LIMIT,
        Scheduler::new().run(async {
            reader.activate();
        }),
    )
    .await
    .unwrap();
    assert!(report.is_ok());
    assert_eq!(
        *counter.queued_at_end.lock().unwrap(),
        Some(0),
        "ProducerFinished was on signal before the counter was told the end"
    );
}

/// A reader waiting for room (a one-chunk block) whose receiver closes ends, with
/// OutboxClosed, instead of waiting for ever.
#[tokio::test]
async fn a_reader_waiting_for_room_ends_when_the_receiver_closes() {
    const CHUNK: usize = 64 * 1024;
    let data = random_bytes(8 * CHUNK);
    let file = TempFile::new("room-close", &data);
    let reader: Component = RateControlledFileReader::new(file.path())
        .rate(None)
        .read_size(CHUNK)
        .into();
    let sink = Inbox::<Bytes>::standalone("sink", 1);
    let signal = Inbox::<Control>::standalone("signal", 64);
    axon::link_refs(&reader.boxref("outbox").unwrap(), &sink.boxref()).unwrap();
    axon::link_refs(&reader.boxref("signal").unwrap(), &signal.boxref()).unwrap();
    let check = async {
        let _first = sink.recv().await;
        while sink.is_empty() {
            tokio::task::yield_now().await;
        }
        sink.close();
        let mut got = Vec::new();
        loop {
            let c = signal.recv().await;
            let last = c.is_final();
            got.push(c);
            if last {
                return got;
            }
        }
    };
    let (report, got) = run_beside(reader, check).await;
    assert!(!report.is_ok());
    assert!(matches!(
        reader_error(&got[0]),
        FileReaderError::OutboxClosed { .. }
    ));
}
