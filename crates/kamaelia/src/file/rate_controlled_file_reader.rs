//! RateControlledFileReader: a file's bytes at a steady average rate.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use axon::{Component, Control, ControlWatch, Undelivered, CONTROL, OUTBOX, SIGNAL};
use bytes::{Bytes, BytesMut};
use tokio::fs::File;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use super::token_bucket::TokenBucket;

/// The rate a reader has unless told otherwise: Kamaelia's default, 100 000 bytes per second.
pub const DEFAULT_RATE: u64 = 100_000;

/// How much an unlimited reader reads per trip to the blocking pool (sent as chunks).
const READ_BLOCK: usize = 1024 * 1024;

/// The largest default chunk: the chunk size when there is no rate limit.
pub const MAX_CHUNK_SIZE: usize = 64 * 1024;

axon::box_table! {
    /// RateControlledFileReader's boxes, declared once, as data: the builder declares them from
    /// here.
    const BOXES: ReaderBoxes {
        control: CONTROL => "`ShutdownMicroprocess` stops reading at once; `ProducerFinished` after the chunk in hand; `Error`/`Notice` pass on to `signal`",
        outbox: OUTBOX => "the file's bytes, in order, in chunks of at most `chunk_size`",
        signal: SIGNAL => "`ProducerFinished` at end of file, or the final message received on `control`",
    }
}

/// Kamaelia's `RateControlledFileReader(filename, rate=...)`: sends a file's bytes on `outbox` at
/// `rate` bytes per second on average. Turn it into a [`Component`] with `.into()`.
///
/// Python's `Kamaelia.File.Reading.RateControlledFileReader`; typically the source of a pipeline
/// that feeds a file to a `TcpClient`. Kamaelia builds it as a Graphline of a
/// busy-polling `ByteRate_RequestControl` and a `PromptedFileReader`; here it is one component
/// that sleeps between chunks, and a missing file is an error on `signal` instead of a crash.
///
/// # Example
///
/// ```
/// use axon::{Component, Control, Inbox, Scheduler};
/// use bytes::Bytes;
/// use kamaelia::RateControlledFileReader;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let path = std::env::temp_dir().join(format!("rcfr-doc-{}", std::process::id()));
/// # std::fs::write(&path, b"a small file")?;
/// // 100 kB/s in 1 kB chunks: Kamaelia's default rate.
/// let reader: Component = RateControlledFileReader::new(&path).rate(100_000).into();
/// let sink = Inbox::<Bytes>::standalone("sink", 16);
/// let signal = Inbox::<Control>::standalone("signal", 4);
/// axon::link_refs(&reader.boxref("outbox")?, &sink.boxref())?;
/// axon::link_refs(&reader.boxref("signal")?, &signal.boxref())?;
///
/// let report = Scheduler::new().run(async { reader.activate(); }).await;
/// assert!(report.is_ok());
/// assert_eq!(sink.recv().await, "a small file");
/// assert!(signal.recv().await.is_producer_finished());
/// # std::fs::remove_file(&path)?;
/// # Ok(())
/// # }
/// ```
///
/// # How it works
///
/// The file is opened with [`tokio::fs::File`] when the component starts (or was opened by the
/// caller: [`RateControlledFileReader::from_file`]). Then, until end of
/// file: read up to `chunk_size` bytes; wait until the rate allows that many bytes to go; send
/// them on `outbox`, waiting for room if the receiver is slow.
///
/// The rate is kept by a token bucket that fills at `rate` bytes per second and holds at most two
/// chunks. Waiting is a tokio sleep until enough tokens will be there — never a busy loop. The
/// first chunk goes at once, and time the timer oversleeps is credited to the next chunk, so the
/// average over the file is the rate. After a stall downstream the reader catches up by at
/// most one chunk, not by the whole stall.
///
/// The default chunk size is `rate / 100` bytes (about 100 chunks a second), bounded to
/// 1 ..= [`MAX_CHUNK_SIZE`]: small enough to keep the flow smooth, large enough that timer
/// granularity (1 ms) does not matter. With no rate limit it is [`MAX_CHUNK_SIZE`] (64 KiB).
///
/// # Inboxes
///
/// | name | type | meaning |
/// |------|------|---------|
/// | `control` | [`Control`] | `ShutdownMicroprocess` stops reading at once; `ProducerFinished` after the chunk in hand; `Error`/`Notice` pass on to `signal` |
///
/// # Outboxes
///
/// | name | type | meaning |
/// |------|------|---------|
/// | `outbox` | [`Bytes`] | the file's bytes, in order, in chunks of at most `chunk_size` |
/// | `signal` | [`Control`] | `ProducerFinished` at end of file, or the final message received on `control` |
///
/// # Shutdown
///
/// At end of file the reader sends `ProducerFinished` on `signal` and ends.
///
/// `ShutdownMicroprocess` on `control` stops it promptly — while it waits for the rate, for room
/// downstream, or for the disk — and is forwarded on `signal` as its final message; the chunk in
/// hand is dropped. `ProducerFinished` stops it after the chunk in hand has been delivered and is
/// forwarded likewise. (Kamaelia's reader honours only `shutdownMicroprocess`.) `Error` and
/// `Notice` are forwarded on `signal` and reading goes on.
///
/// # Errors
///
/// Each ends the component with a [`FileReaderError`] naming the file, which the runtime reports
/// on `signal` (as [`Control::Error`]) followed by `ProducerFinished`:
///
/// - [`FileReaderError::Open`]: the file is missing, unreadable, or otherwise cannot be opened.
/// - [`FileReaderError::Read`]: a read failed (for example, the path is a directory).
/// - [`FileReaderError::ZeroRate`]: `rate(0)` was asked for.
/// - [`FileReaderError::OutboxClosed`]: the component `outbox` is linked to has ended.
#[derive(Debug)]
pub struct RateControlledFileReader {
    path: PathBuf,
    /// A file opened by the caller ([`RateControlledFileReader::from_file`]); otherwise `path`
    /// is opened when the component starts.
    file: Option<std::fs::File>,
    rate: Option<u64>,
    chunk_size: Option<usize>,
}

/// Why a [`RateControlledFileReader`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum FileReaderError {
    /// The file could not be opened: it does not exist, permission was denied, ...
    Open {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// Reading the file failed after it was opened.
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A rate of zero bytes per second was asked for, which would never send anything.
    ZeroRate {
        /// The file.
        path: PathBuf,
    },
    /// The component `outbox` is linked to ended before the whole file was sent.
    OutboxClosed {
        /// The file.
        path: PathBuf,
    },
}

impl RateControlledFileReader {
    /// A reader of the file at `path`, at [`DEFAULT_RATE`].
    pub fn new(path: impl AsRef<Path>) -> Self {
        RateControlledFileReader {
            path: path.as_ref().to_path_buf(),
            file: None,
            rate: Some(DEFAULT_RATE),
            chunk_size: None,
        }
    }

    /// A reader of a file the caller has already opened, at [`DEFAULT_RATE`]; `name` is only
    /// used in errors. For anything that must be opened exactly once: a FIFO whose writer
    /// would otherwise see its reader come and go, or a file checked before it is read.
    pub fn from_file(file: std::fs::File, name: impl AsRef<Path>) -> Self {
        RateControlledFileReader {
            file: Some(file),
            ..Self::new(name)
        }
    }

    /// The average rate in bytes per second; `None` for as fast as the receiver takes it.
    /// `Some(0)` is reported as [`FileReaderError::ZeroRate`] when the component starts.
    pub fn rate(mut self, bytes_per_sec: impl Into<Option<u64>>) -> Self {
        self.rate = bytes_per_sec.into();
        self
    }

    /// The largest message, in bytes (at least 1). Default: `rate / 100` bounded to
    /// 1 ..= [`MAX_CHUNK_SIZE`], or [`MAX_CHUNK_SIZE`] with no rate limit.
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = Some(bytes.max(1));
        self
    }

    /// The chunk size that will be used.
    pub fn effective_chunk_size(&self) -> usize {
        match (self.chunk_size, self.rate) {
            (Some(n), _) => n,
            (None, None) => MAX_CHUNK_SIZE,
            (None, Some(rate)) => {
                let per_tick = usize::try_from(rate / 100).unwrap_or(MAX_CHUNK_SIZE);
                per_tick.clamp(1, MAX_CHUNK_SIZE)
            }
        }
    }
}

impl From<RateControlledFileReader> for Component {
    fn from(config: RateControlledFileReader) -> Component {
        let mut b = Component::build("RateControlledFileReader");
        let control = b.control_from(BOXES.control);
        let outbox = b.outbox_from::<Bytes>(BOXES.outbox);
        let signal = b.signal_from(BOXES.signal);
        let chunk_size = config.effective_chunk_size();
        let RateControlledFileReader {
            path, file, rate, ..
        } = config;
        b.main(move |_cx| async move {
            if rate == Some(0) {
                return Err(FileReaderError::ZeroRate { path }.into());
            }
            let mut file = match file {
                Some(file) => File::from_std(file),
                None => match File::open(&path).await {
                    Ok(file) => file,
                    Err(source) => return Err(FileReaderError::Open { path, source }.into()),
                },
            };
            let chunk_bytes = u64::try_from(chunk_size).unwrap_or(u64::MAX);
            let mut bucket = rate.map(|r| TokenBucket::new(r, chunk_bytes, Instant::now()));
            let mut watch = ControlWatch::new(&control, &signal);
            'reading: while !watch.stopping() {
                let control = watch.control();
                // Unlimited: read a large block per trip to the blocking pool and send it as
                // chunk-sized slices of one buffer (no copy). Rated: one chunk at a time.
                let block = if bucket.is_none() {
                    chunk_size.max(READ_BLOCK)
                } else {
                    chunk_size
                };
                let mut buf = BytesMut::zeroed(block);
                // tokio's File keeps a read it had started if this future is dropped, and the
                // next read returns its bytes: losing the race to `control` loses no data.
                let read = tokio::select! {
                    biased;
                    c = control.recv() => {
                        watch.handle(c).await;
                        continue;
                    }
                    read = file.read(&mut buf) => read,
                };
                let n = match read {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(source) => return Err(FileReaderError::Read { path, source }.into()),
                };
                buf.truncate(n);
                let mut data = buf.freeze();
                while !data.is_empty() && !watch.stopping() {
                    let piece = data.split_to(chunk_size.min(data.len()));
                    if let Some(bucket) = bucket.as_mut() {
                        let len = u64::try_from(piece.len()).unwrap_or(u64::MAX);
                        while let Some(wait) = bucket.take(len, Instant::now()) {
                            tokio::select! {
                                biased;
                                c = control.recv() => {
                                    watch.handle(c).await;
                                    if watch.shutdown_requested() {
                                        break 'reading;
                                    }
                                }
                                () = tokio::time::sleep(wait) => {}
                            }
                        }
                    }
                    match watch.send(&outbox, piece).await {
                        Ok(()) => {}
                        Err(Undelivered::Shutdown) => break 'reading,
                        Err(Undelivered::Closed) => {
                            return Err(FileReaderError::OutboxClosed { path }.into())
                        }
                    }
                }
            }
            watch.finish(Control::producer_finished());
            Ok(())
        })
    }
}

impl FileReaderError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            FileReaderError::Open { path, .. }
            | FileReaderError::Read { path, .. }
            | FileReaderError::ZeroRate { path }
            | FileReaderError::OutboxClosed { path } => path,
        }
    }
}

impl fmt::Display for FileReaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileReaderError::Open { path, .. } => write!(f, "could not open {}", path.display()),
            FileReaderError::Read { path, .. } => write!(f, "could not read {}", path.display()),
            FileReaderError::ZeroRate { path } => {
                write!(f, "a rate of 0 bytes/s was given for {}", path.display())
            }
            FileReaderError::OutboxClosed { path } => write!(
                f,
                "the component receiving {} ended before the whole file was sent",
                path.display()
            ),
        }
    }
}

impl std::error::Error for FileReaderError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FileReaderError::Open { source, .. } | FileReaderError::Read { source, .. } => {
                Some(source)
            }
            FileReaderError::ZeroRate { .. } | FileReaderError::OutboxClosed { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_size_follows_the_rate_within_bounds() {
        let r = |rate: Option<u64>| RateControlledFileReader::new("x").rate(rate);
        assert_eq!(r(Some(100_000)).effective_chunk_size(), 1_000);
        assert_eq!(r(Some(50)).effective_chunk_size(), 1);
        assert_eq!(r(Some(u64::MAX)).effective_chunk_size(), MAX_CHUNK_SIZE);
        assert_eq!(r(None).effective_chunk_size(), MAX_CHUNK_SIZE);
        assert_eq!(r(None).chunk_size(0).effective_chunk_size(), 1);
        assert_eq!(r(Some(10)).chunk_size(7).effective_chunk_size(), 7);
    }
}
