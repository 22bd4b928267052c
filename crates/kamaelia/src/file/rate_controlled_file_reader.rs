//! RateControlledFileReader: a file's bytes at a steady average rate.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use axon::{Component, Control, ControlWatch, Undelivered, CONTROL, OUTBOX, SIGNAL};
use std::io::Read as _;

use bytes::{Bytes, BytesMut};
use tokio::fs::File;
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::token_bucket::TokenBucket;

/// The rate a reader has unless told otherwise: Kamaelia's default, 100 000 bytes per second.
pub const DEFAULT_RATE: u64 = 100_000;

/// How much an unlimited reader reads from a regular file at once (sent as chunks), unless
/// [`RateControlledFileReader::read_size`] says otherwise.
pub const DEFAULT_READ_SIZE: usize = 256 * 1024;

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
/// With no rate limit, a regular file is read by the component itself, 256 KiB at a time (one
/// bounded read of the page cache or disk each, as any program that reads files does; there is
/// no hand-over between threads and no trip to tokio's blocking pool per block), into one of a
/// few buffers that are reused once the connection has written them; each block goes on as
/// chunk-sized slices of that one buffer: no zero-filling, no fresh memory and no copy.
/// A block that is one chunk (`read_size(64 * 1024)` with 64 KiB chunks) is read only once the
/// receiver has room for it, so it goes on while the bytes are still in the CPU's cache.
/// Anything that is not a regular file (a FIFO, a terminal), whose reads wait for a writer, is
/// read by a thread of its own, at most a chunk at a time, into a channel, so its bytes go on
/// as soon as they are there and the component never waits on it.
///
/// With a rate, the file is opened with [`tokio::fs::File`] and read one chunk at a time, when
/// the rate allows: wait until the bucket holds the chunk's bytes, then send them on `outbox`,
/// waiting for room if the receiver is slow.
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
/// At end of file the reader sends `ProducerFinished` on `signal` and ends. A
/// [`SentCounter`] given with [`RateControlledFileReader::count`] is told every chunk queued
/// for the receiver and, unless the reader was shut down, the end, before the final message.
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
/// - [`FileReaderError::Thread`]: the thread that reads the file could not be started.
#[derive(Debug)]
pub struct RateControlledFileReader {
    path: PathBuf,
    /// A file opened by the caller ([`RateControlledFileReader::from_file`]); otherwise `path`
    /// is opened when the component starts.
    file: Option<std::fs::File>,
    rate: Option<u64>,
    chunk_size: Option<usize>,
    read_size: usize,
    counter: Option<Counter>,
}

/// Told what a [`RateControlledFileReader`] sends ([`RateControlledFileReader::count`]): a
/// count or a progress display kept by the reader itself, with no component between it and
/// the receiver just to count.
///
/// ```
/// use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
/// use std::sync::Arc;
///
/// use axon::{Component, Inbox, Scheduler};
/// use bytes::Bytes;
/// use kamaelia::{RateControlledFileReader, SentCounter};
///
/// #[derive(Default)]
/// struct Progress {
///     bytes: AtomicU64,
///     done: AtomicBool,
/// }
///
/// impl SentCounter for Progress {
///     fn sent(&self, bytes: u64) {
///         self.bytes.fetch_add(bytes, Ordering::Relaxed);
///     }
///     fn ended(&self) {
///         self.done.store(true, Ordering::Relaxed);
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let path = std::env::temp_dir().join(format!("rcfr-count-doc-{}", std::process::id()));
/// # std::fs::write(&path, vec![7_u8; 100_000])?;
/// let progress = Arc::new(Progress::default());
/// let reader: Component = RateControlledFileReader::new(&path)
///     .rate(None)
///     .count(progress.clone())
///     .into();
/// let sink = Inbox::<Bytes>::standalone("sink", 64);
/// axon::link_refs(&reader.boxref("outbox")?, &sink.boxref())?;
/// assert!(Scheduler::new().run(async { reader.activate(); }).await.is_ok());
/// assert_eq!(progress.bytes.load(Ordering::Relaxed), 100_000);
/// assert!(progress.done.load(Ordering::Relaxed));
/// # std::fs::remove_file(&path)?;
/// # Ok(())
/// # }
/// ```
pub trait SentCounter: Send + Sync {
    /// `bytes` more were sent on `outbox` (called once per chunk, once it is queued for the
    /// receiver: in its inbox, or in the unlinked outbox; not when the receiver takes it).
    fn sent(&self, bytes: u64);
    /// The reader has ended other than by `ShutdownMicroprocess`: at end of file, at
    /// `ProducerFinished`, or failing. Called before its final message goes on `signal`.
    fn ended(&self);
}

/// A [`SentCounter`], shown by `Debug` as being there.
#[derive(Clone)]
struct Counter(std::sync::Arc<dyn SentCounter>);

impl fmt::Debug for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SentCounter")
    }
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
    /// The thread that reads the file could not be started.
    Thread {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
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
            read_size: DEFAULT_READ_SIZE,
            counter: None,
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

    /// How much an unlimited reader reads from a regular file at once, in bytes (never less
    /// than the chunk size). Each read is sent on as chunk-sized slices of one buffer, which
    /// is read into again once every slice of it has been written and dropped. Default
    /// [`DEFAULT_READ_SIZE`]: four 64 KiB chunks a read, a quarter of the system calls. A
    /// read of one chunk recycles each buffer as soon as its own chunk is gone, while it is
    /// still in the CPU's cache, and no chunk waits behind the rest of its block: better for
    /// a consumer that touches every byte again, such as an encrypting connection (`kamaelia
    /// send --tls` reads 64 KiB at a time). A paced reader (with a rate), or one of anything
    /// but a regular file (a FIFO, a terminal), reads a chunk at a time regardless.
    pub fn read_size(mut self, bytes: usize) -> Self {
        self.read_size = bytes;
        self
    }

    /// Tells `counter` the length of every chunk once it is on `outbox`, and that the reader
    /// has ended (unless by `ShutdownMicroprocess`), before its final message goes on
    /// `signal`. `kamaelia send --tls` counts its file
    /// this way: a counting component between the reader and the connection would cost every
    /// chunk a hop, a queue and a wake-up (about 1,100 instructions a 64 KiB chunk), and keep
    /// one more chunk in flight, cold in the CPU's cache by the time it is encrypted.
    pub fn count(mut self, counter: std::sync::Arc<dyn SentCounter>) -> Self {
        self.counter = Some(Counter(counter));
        self
    }

    /// How much an unlimited reader of a regular file will read at once: the read size, or
    /// the chunk size if that is larger.
    pub fn effective_read_size(&self) -> usize {
        self.effective_chunk_size().max(self.read_size)
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
        let read_size = config.effective_read_size();
        let RateControlledFileReader {
            path,
            file,
            rate,
            counter,
            ..
        } = config;
        b.main(move |_cx| async move {
            let counter = counter.map(|c| c.0);
            let read = read(
                path,
                file,
                rate,
                chunk_size,
                read_size,
                &outbox,
                &control,
                &signal,
                counter.as_deref(),
            )
            .await;
            // A failure's final message is sent by the runtime once this returns; the end of
            // file's and ProducerFinished's was sent by `read`, after it told the counter.
            if let (Some(counter), Err(_)) = (&counter, &read) {
                counter.ended();
            }
            read
        })
    }
}

/// The reader's routine: reads and sends until end of file, a stop or a failure.
#[allow(clippy::too_many_arguments)]
async fn read(
    path: PathBuf,
    file: Option<std::fs::File>,
    rate: Option<u64>,
    chunk_size: usize,
    read_size: usize,
    outbox: &axon::Outbox<Bytes>,
    control: &axon::Inbox<Control>,
    signal: &axon::Outbox<Control>,
    counter: Option<&dyn SentCounter>,
) -> Result<(), axon::BoxError> {
    if rate == Some(0) {
        return Err(FileReaderError::ZeroRate { path }.into());
    }
    // Unlimited: large blocks from a thread of its own, sent as chunk-sized slices of
    // one buffer (no copy). Rated: one chunk at a time, when the rate allows.
    let mut blocks = match rate {
        None => Blocks::unlimited(path.clone(), file, read_size, chunk_size)?,
        Some(_) => Blocks::Paced {
            file: match file {
                Some(file) => File::from_std(file),
                None => match File::open(&path).await {
                    Ok(file) => file,
                    Err(source) => return Err(FileReaderError::Open { path, source }.into()),
                },
            },
            chunk: chunk_size,
            path: path.clone(),
        },
    };
    let chunk_bytes = u64::try_from(chunk_size).unwrap_or(u64::MAX);
    let mut bucket = rate.map(|r| TokenBucket::new(r, chunk_bytes, Instant::now()));
    let mut watch = ControlWatch::new(control, signal);
    'reading: while !watch.stopping() {
        let control = watch.control();
        // Losing the race to `control` loses no data (see `Blocks::next`).
        let next = tokio::select! {
            biased;
            c = control.recv() => {
                watch.handle(c).await;
                continue;
            }
            next = blocks.next(outbox) => next,
        };
        let mut data = match next {
            None => break,
            Some(Ok(data)) => data,
            Some(Err(e)) => return Err(e.into()),
        };
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
            let len = piece.len() as u64;
            match watch.send(outbox, piece).await {
                Ok(()) => {
                    if let Some(counter) = counter {
                        counter.sent(len);
                    }
                }
                Err(Undelivered::Shutdown) => break 'reading,
                Err(Undelivered::Closed) => {
                    return Err(FileReaderError::OutboxClosed { path }.into())
                }
            }
        }
    }
    if let (Some(counter), false) = (counter, watch.shutdown_requested()) {
        counter.ended();
    }
    watch.finish(Control::producer_finished());
    Ok(())
}

/// Where the reader's bytes come from.
enum Blocks {
    /// No rate limit, a regular file: read here, a block at a time, into reused buffers.
    Regular {
        file: std::fs::File,
        pool: BlockPool,
        path: PathBuf,
        /// A block is one chunk: read it only once the receiver has room (see `next`).
        room_first: bool,
    },
    /// No rate limit, anything else (a FIFO, a terminal): blocks from [`ReaderThread`].
    Thread(mpsc::Receiver<Result<Bytes, FileReaderError>>),
    /// A rate: one chunk per read, through tokio's blocking pool. At a rate the reads are few
    /// and small, and the blocking pool keeps tokio's paused test clock still while a read is
    /// in flight, so the pacing can be tested in virtual time.
    Paced {
        file: File,
        chunk: usize,
        path: PathBuf,
    },
}

impl Blocks {
    /// The unlimited reader's source. A regular file is opened here and read in the component
    /// itself, a block at a time: a read of a regular file is a short, bounded wait on the page
    /// cache or the disk (as in any program that reads files), and reading it here costs no
    /// hand-over between threads per block, which measured 0.1 s of CPU per GiB. Anything else
    /// (a FIFO, whose open waits for a writer and whose reads wait for its writes; a terminal)
    /// is opened and read on a thread of its own, `chunk` bytes at a time.
    fn unlimited(
        path: PathBuf,
        file: Option<std::fs::File>,
        block: usize,
        chunk: usize,
    ) -> Result<Blocks, FileReaderError> {
        let meta = match &file {
            Some(file) => file.metadata(),
            None => std::fs::metadata(&path),
        };
        let len = match meta {
            Ok(m) if m.is_file() => m.len(),
            _ => {
                let pool = BlockPool::new(chunk);
                return Ok(Blocks::Thread(ReaderThread::spawn(path, file, pool)?));
            }
        };
        let file = match file {
            Some(file) => file,
            None => std::fs::File::open(&path).map_err(|source| FileReaderError::Open {
                path: path.clone(),
                source,
            })?,
        };
        // A small file gets a buffer of its own size and one byte more, so the first read
        // also sees its end. One that says it is empty, as /proc's do, may still have bytes:
        // it gets a whole block.
        let size = match usize::try_from(len) {
            Ok(len) if len > 0 => block.min(len.saturating_add(1)),
            _ => block,
        };
        Ok(Blocks::Regular {
            file,
            pool: BlockPool::new(size),
            path,
            room_first: block <= chunk,
        })
    }

    /// The next block; `None` at end of file. Cancel-safe: a regular file's read completes
    /// before anything can cancel it, a dropped receive loses nothing, and tokio's `File` keeps
    /// a read it had started, whose bytes the next read returns.
    ///
    /// A regular file's block of one chunk (a read size of one chunk, as `kamaelia send --tls`
    /// reads) is read only once `out` has room for it: read ahead, it would wait (in its
    /// buffer) behind the chunk the receiver has not taken yet, and be cold in the CPU's cache
    /// by the time the receiver gets to it (an encrypting connection copies every byte again);
    /// read when it can go on at once, it is used while the kernel's copy into it is still in
    /// the cache, as a program that reads and then writes one buffer uses it. No parallelism
    /// is lost: the read is made in this task either way. (A block of several chunks is read
    /// as before: most of it waits for room whenever it is read.)
    async fn next(&mut self, out: &axon::Outbox<Bytes>) -> Option<Result<Bytes, FileReaderError>> {
        match self {
            Blocks::Regular {
                file,
                pool,
                path,
                room_first,
            } => {
                if *room_first {
                    out.ready().await;
                }
                // Give the runtime a turn between blocks, should nothing downstream make
                // this task wait.
                tokio::task::consume_budget().await;
                let mut buf = pool.take();
                match fill(file, &mut buf) {
                    Ok(0) => None,
                    Ok(n) => Some(Ok(pool.give(buf, n))),
                    Err(source) => Some(Err(FileReaderError::Read {
                        path: path.clone(),
                        source,
                    })),
                }
            }
            Blocks::Thread(rx) => rx.recv().await,
            Blocks::Paced { file, chunk, path } => {
                let mut buf = BytesMut::zeroed(*chunk);
                match file.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        Some(Ok(buf.freeze()))
                    }
                    Err(source) => Some(Err(FileReaderError::Read {
                        path: path.clone(),
                        source,
                    })),
                }
            }
        }
    }
}

/// The thread that opens and reads a file that is not a regular file (a FIFO, a terminal, a
/// device), one block ahead of the component, so the component never waits on its writer.
/// Each block is one `read` of at most a chunk, so bytes go on as soon as the writer writes
/// them, into buffers from a [`BlockPool`].
///
/// The thread ends at end of file, at the first error (sent on), or when the component drops
/// its receiver. A thread blocked in `read` on a FIFO nobody writes to stays blocked until
/// the writer writes or closes (or the process exits); it holds nothing else.
struct ReaderThread;

impl ReaderThread {
    /// Blocks waiting in the channel: one, so at most two blocks are read ahead of what the
    /// component has sent (the one queued and the one being read).
    const AHEAD: usize = 1;

    fn spawn(
        path: PathBuf,
        file: Option<std::fs::File>,
        pool: BlockPool,
    ) -> Result<mpsc::Receiver<Result<Bytes, FileReaderError>>, FileReaderError> {
        let (tx, rx) = mpsc::channel(Self::AHEAD);
        let name = path.clone();
        std::thread::Builder::new()
            .name("file-reader".into())
            .spawn(move || Self::run(&path, file, pool, &tx))
            .map_err(|source| FileReaderError::Thread { path: name, source })?;
        Ok(rx)
    }

    fn run(
        path: &Path,
        file: Option<std::fs::File>,
        mut pool: BlockPool,
        tx: &mpsc::Sender<Result<Bytes, FileReaderError>>,
    ) {
        let file = match file.map_or_else(|| std::fs::File::open(path), Ok) {
            Ok(file) => file,
            Err(source) => {
                let path = path.to_path_buf();
                let _ = tx.blocking_send(Err(FileReaderError::Open { path, source }));
                return;
            }
        };
        loop {
            let mut buf = pool.take();
            let sent = match read_once(&file, &mut buf) {
                Ok(0) => return,
                Ok(n) => tx.blocking_send(Ok(pool.give(buf, n))),
                Err(source) => {
                    let path = path.to_path_buf();
                    let _ = tx.blocking_send(Err(FileReaderError::Read { path, source }));
                    return;
                }
            };
            if sent.is_err() {
                return; // the component has gone
            }
        }
    }
}

/// The reader's buffers: each zero-filled once when made, and reused when the block made from
/// it has no other holder left (every chunk of it written and dropped). The one reused is the
/// one let go last, whose bytes were the last to be used (by the encryption or the socket's
/// copy): the same few buffers go round while the rest stay idle, so the memory read into is
/// still in the CPU's cache. (Taking the oldest free one instead cycled through every buffer
/// ever kept, up to [`BlockPool::KEPT`] of 256 KiB, each one cold by its turn.) At most
/// [`BlockPool::KEPT`] are kept; while all of them are still held downstream a fresh buffer is
/// made, and the oldest kept one is let go.
///
/// A buffer is shared-owned from the moment it is made (`bytes`' reference-counted form, see
/// [`BlockPool::fresh`]), so its round (read into, sent as a block, held downstream, taken
/// back) allocates and frees nothing. Made as a plain vector, as `BytesMut::zeroed` makes it,
/// each block's first clone (the one the pool keeps) allocated `bytes`' shared header and
/// each reuse freed it again: a `malloc` and a `free` a block, about 250 instructions of the
/// send path's 3,100 a 64 KiB block (callgrind, session 14).
struct BlockPool {
    size: usize,
    blocks: std::collections::VecDeque<Bytes>,
}

impl BlockPool {
    /// Buffers kept for reuse: enough for the queues downstream to hold theirs while the next
    /// is read (a connection's queue is 256 KiB, but a component between may queue 64 chunks
    /// of 64 KiB: 16 blocks). What is kept is never more than was held downstream at once, so
    /// keeping it costs no memory the stream did not already need; past this many, a fresh
    /// (zero-filled, page-faulting) buffer is made per block.
    const KEPT: usize = 32;

    fn new(size: usize) -> Self {
        BlockPool {
            size,
            blocks: std::collections::VecDeque::with_capacity(Self::KEPT),
        }
    }

    /// A buffer of `size` initialised bytes: the youngest kept block nobody else holds now, if
    /// any. Blocks are sent, written and let go in order, so that is the one let go last.
    fn take(&mut self) -> BytesMut {
        if let Some(i) = self.blocks.iter().rposition(Bytes::is_unique) {
            if let Some(block) = self.blocks.remove(i) {
                if let Ok(mut buf) = block.try_into_mut() {
                    // Back to full length: only a short last read leaves a tail to fill.
                    buf.resize(self.size, 0);
                    return buf;
                }
            }
        }
        self.fresh()
    }

    /// A new zero-filled buffer of `size` bytes, already in `bytes`' shared form: splitting
    /// off its (empty) end makes the two halves share one header, allocated here once, and
    /// the buffer keeps it for its life. A block frozen from it is then a reference-counted
    /// view, its clone a count, and taking it back (`try_into_mut`, once unique) a view
    /// again: no allocation a block.
    fn fresh(&self) -> BytesMut {
        let mut buf = BytesMut::zeroed(self.size);
        drop(buf.split_off(self.size));
        buf
    }

    /// The first `n` bytes of `buf` as a block to send; the buffer is kept for reuse (the
    /// oldest kept one is let go if the pool is full).
    fn give(&mut self, mut buf: BytesMut, n: usize) -> Bytes {
        buf.truncate(n);
        let block = buf.freeze();
        if self.blocks.len() == Self::KEPT {
            self.blocks.pop_front();
        }
        self.blocks.push_back(block.clone());
        block
    }
}

/// Fills `buf` from a regular file (less only at its end); the number of bytes read.
fn fill(mut file: &std::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// One `read`: what a FIFO or terminal has now.
fn read_once(mut file: &std::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            read => return read,
        }
    }
}

impl FileReaderError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            FileReaderError::Open { path, .. }
            | FileReaderError::Read { path, .. }
            | FileReaderError::ZeroRate { path }
            | FileReaderError::OutboxClosed { path }
            | FileReaderError::Thread { path, .. } => path,
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
            FileReaderError::Thread { path, .. } => {
                write!(f, "could not start a thread to read {}", path.display())
            }
        }
    }
}

impl std::error::Error for FileReaderError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FileReaderError::Open { source, .. }
            | FileReaderError::Read { source, .. }
            | FileReaderError::Thread { source, .. } => Some(source),
            FileReaderError::ZeroRate { .. } | FileReaderError::OutboxClosed { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_size_is_never_below_the_chunk_size() {
        let r = RateControlledFileReader::new("f").rate(None);
        assert_eq!(r.effective_read_size(), DEFAULT_READ_SIZE);
        let r = r.read_size(MAX_CHUNK_SIZE);
        assert_eq!(r.effective_read_size(), MAX_CHUNK_SIZE);
        let r = r.read_size(1024);
        assert_eq!(r.effective_read_size(), MAX_CHUNK_SIZE, "at least a chunk");
        let r = r.chunk_size(512 * 1024);
        assert_eq!(r.effective_read_size(), 512 * 1024);
    }

    #[test]
    fn the_pool_reuses_a_buffer_once_every_chunk_of_it_is_dropped() {
        let mut pool = BlockPool::new(8);
        let mut buf = pool.take();
        buf.copy_from_slice(b"abcdefgh");
        let first_ptr = buf.as_ptr();
        let block = pool.give(buf, 8);
        let (head, tail) = (block.slice(..4), block.slice(4..));
        drop(block);
        // Still held downstream: a fresh (zeroed) buffer.
        let fresh = pool.take();
        assert_ne!(fresh.as_ptr(), first_ptr);
        assert_eq!(&fresh[..], &[0; 8]);
        drop((head, tail));
        // Every chunk gone: the same memory again, at full length, with no fresh allocation.
        let again = pool.take();
        assert_eq!(again.as_ptr(), first_ptr);
        assert_eq!(again.len(), 8);
    }

    #[test]
    fn the_pool_reuses_the_buffer_let_go_last() {
        let mut pool = BlockPool::new(8);
        let blocks: Vec<Bytes> = (0..3)
            .map(|_| {
                let buf = pool.take();
                pool.give(buf, 8)
            })
            .collect();
        let ptrs: Vec<*const u8> = blocks.iter().map(|b| b.as_ptr()).collect();
        // Let go in the order they were sent: the last one let go is the one reused, again and
        // again, while the older free ones stay idle.
        drop(blocks);
        for _ in 0..3 {
            let buf = pool.take();
            assert_eq!(buf.as_ptr(), ptrs[2]);
            drop(pool.give(buf, 8));
        }
        assert_eq!(pool.blocks.len(), 3);
    }

    #[test]
    fn a_short_block_is_cut_to_its_bytes_and_its_buffer_comes_back_full_length() {
        let mut pool = BlockPool::new(8);
        let mut buf = pool.take();
        buf[..3].copy_from_slice(b"xyz");
        let block = pool.give(buf, 3);
        assert_eq!(block, "xyz");
        drop(block);
        let again = pool.take();
        assert_eq!(again.len(), 8);
        assert_eq!(&again[..3], b"xyz");
    }

    #[test]
    fn the_pool_keeps_at_most_kept_buffers() {
        let mut pool = BlockPool::new(4);
        let held: Vec<Bytes> = (0..BlockPool::KEPT + 3)
            .map(|_| {
                let buf = pool.take();
                pool.give(buf, 4)
            })
            .collect();
        assert_eq!(pool.blocks.len(), BlockPool::KEPT);
        drop(held);
        assert!(pool.blocks.iter().all(Bytes::is_unique));
    }

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
