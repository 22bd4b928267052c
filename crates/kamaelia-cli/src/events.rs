//! What the program says on stderr: one line per event worth knowing, warnings, the failure
//! line, or (with `--json-events`) every signal message as a JSON line.
//!
//! Printing never waits for a reader of stderr. When stderr is a regular file or a device
//! that is not a terminal (`/dev/null`), a write never waits for anyone, and each line is
//! written in place: no thread, no queue. When it is a pipe or a terminal, it is opened again,
//! non-blocking, in an open file description of its own (the flags of the one the program was
//! given, shared with other processes, are never changed), and each line is written in place
//! too as long as it goes in whole. The first line that would wait (a pipe nobody empties, a
//! terminal paused with Ctrl-S) starts a writer thread: it and every later line go into a
//! queue of at most [`QUEUE_BYTES`] bytes that the thread copies to stderr. (Anything else, a
//! socket, gets the queue and the thread from its first line.) When the queue is full, further
//! lines are dropped and counted, and `kamaelia: N event lines dropped` (with
//! `--json-events`, a `lines_dropped` JSON line) takes their place once output flows again.
//! [`flush`] waits, for a bounded time, until everything queued is written: the program calls
//! it before it exits so that its last lines are not lost.
//!
//! The thread is started only when needed because a second thread costs every system call of
//! the program: glibc's cancellable calls (`read`, `write`, `epoll_wait`) take a slower path
//! in a multi-threaded process, about 280 instructions per round trip of `connect`'s relay
//! (callgrind, 64-byte ping-pong, stderr a pipe).

use std::collections::VecDeque;
use std::fmt::{self, Write as _};
use std::io::{IsTerminal, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use axon::Control;
use kamaelia::internet::{CertificateSummary, PeerCertificates, TlsInfo};

use crate::flags::Output;

/// The stderr reporter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Events {
    json: bool,
    quiet: bool,
}

impl Events {
    pub(crate) fn new(output: Output) -> Self {
        if output.json {
            JSON.store(true, Ordering::Relaxed);
        }
        Events {
            json: output.json,
            quiet: output.quiet,
        }
    }

    /// A reporter that prints only warnings and failures (the demo prints its own report).
    pub(crate) fn silent() -> Self {
        Events {
            json: false,
            quiet: true,
        }
    }

    /// An event line: `kamaelia: connected to 127.0.0.1:7`.
    pub(crate) fn line(&self, text: impl fmt::Display) {
        if !self.quiet && !self.json {
            emit(&format!("kamaelia: {text}"));
        }
    }

    /// A warning, printed whatever the mode.
    pub(crate) fn warn(&self, text: impl fmt::Display) {
        emit(&format!("kamaelia: warning: {text}"));
    }

    /// The one line naming why the run failed, printed whatever the mode.
    pub(crate) fn failure(&self, text: impl fmt::Display) {
        emit(&format!("kamaelia: {text}"));
    }

    /// A message seen on a `signal` box (JSON mode only).
    pub(crate) fn signal(&self, boxname: &str, c: &Control) {
        if !self.json {
            return;
        }
        let (kind, component, detail) = match c {
            Control::ProducerFinished { detail } => {
                ("producer_finished", None, detail_text(detail))
            }
            Control::ShutdownMicroprocess { detail } => {
                ("shutdown_microprocess", None, detail_text(detail))
            }
            Control::Error(e) => ("error", Some(e.component().to_string()), None),
            Control::Notice(d) => ("notice", None, Some(format!("{d:?}"))),
            _ => ("other", None, None),
        };
        let mut j = Json::new();
        j.field("box", boxname);
        j.field("kind", kind);
        if let Some(d) = &detail {
            j.field("type", type_name(d));
            j.field("detail", d);
        }
        if let Some(comp) = &component {
            j.field("component", comp);
        }
        j.field("text", &c.to_string());
        emit(&j.finish());
    }

    /// What arrived on `sslready` (JSON mode only).
    pub(crate) fn sslready(&self, info: &TlsInfo) {
        if !self.json {
            return;
        }
        let mut j = Json::new();
        j.field("box", "sslready");
        j.field("kind", "ssl_ready");
        j.field("version", &info.version);
        j.field("cipher_suite", &info.cipher_suite);
        if let Some(group) = &info.key_exchange_group {
            j.field("key_exchange_group", group);
        }
        if let Some(alpn) = info.alpn_text() {
            j.field("alpn", &alpn);
        }
        if info.client_cert_requested {
            j.field("client_cert_requested", "true");
        }
        emit(&j.finish());
    }

    /// `TLS established: TLSv1.3 TLS13_AES_256_GCM_SHA384 X25519, ALPN h2`.
    /// When the server asked for a client certificate and none was configured, the line says
    /// so: under TLS 1.3 the server's refusal can only come after it.
    pub(crate) fn tls_established(&self, info: &TlsInfo) {
        if info.client_cert_requested && !info.client_cert_configured {
            self.line(format_args!(
                "TLS established: {info} (the server asked for a client certificate and none \
                 is configured: it may end the session)"
            ));
        } else {
            self.line(format_args!("TLS established: {info}"));
        }
    }

    /// `--show-cert`: the chain the server presented, each certificate's summary, whatever the
    /// mode (it was asked for); with `--json-events`, one `peer_certificate` JSON line each.
    pub(crate) fn peer_chain(&self, chain: &PeerCertificates) {
        if chain.0.is_empty() {
            emit("kamaelia: the server presented no certificate");
        }
        for (i, cert) in chain.summaries().iter().enumerate() {
            if self.json {
                emit(&certificate_json(i, cert));
                continue;
            }
            let role = if i == 0 { " (the server's own)" } else { "" };
            emit(&format!("kamaelia: certificate {i}{role}:"));
            for line in cert.to_string().lines() {
                emit(&format!("kamaelia:   {line}"));
            }
        }
    }

    /// `--show-cert`: what the handshake agreed on, after the chain (text mode; the JSON
    /// `ssl_ready` line already carries it).
    pub(crate) fn tls_details(&self, info: &TlsInfo) {
        if self.json {
            return;
        }
        let none = "(none)".to_owned();
        for (name, value) in [
            ("version", &info.version),
            ("cipher suite", &info.cipher_suite),
            (
                "key exchange",
                info.key_exchange_group.as_ref().unwrap_or(&none),
            ),
            ("ALPN", &info.alpn_text().unwrap_or_else(|| none.clone())),
        ] {
            emit(&format!("kamaelia: {name}: {value}"));
        }
    }
}

fn certificate_json(index: usize, c: &CertificateSummary) -> String {
    let mut j = Json::new();
    j.field("kind", "peer_certificate");
    j.field("index", &index.to_string());
    j.field("subject", &c.subject);
    j.field("issuer", &c.issuer);
    j.field("subject_alt_names", &c.subject_alt_names.join(", "));
    j.field(
        "not_before",
        &kamaelia::internet::utc_date_time(c.not_before),
    );
    j.field("not_after", &kamaelia::internet::utc_date_time(c.not_after));
    j.field("key", &c.key.to_string());
    j.field("signature_algorithm", &c.signature_algorithm);
    j.field("sha256", &c.sha256);
    j.finish()
}

fn detail_text(d: &Option<axon::Detail>) -> Option<String> {
    d.as_ref().map(|d| format!("{d:?}"))
}

/// The payload's type, from its Debug text (`Connected { .. }` -> `Connected`).
fn type_name(debug: &str) -> &str {
    let end = debug
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(debug.len());
    &debug[..end]
}

/// The most event text waiting to be written to stderr. A line is dropped (and counted) rather
/// than queued beyond it; an empty queue takes any one line.
pub(crate) const QUEUE_BYTES: usize = 64 * 1024;

/// Waits until every queued line has been written to stderr, or `limit` has passed (stderr
/// may never be read).
pub(crate) fn flush(limit: Duration) {
    if !matches!(WRITER.get(), Some(Writer::Thread | Writer::NonBlocking(_))) {
        return;
    }
    let sink = &SINK;
    let deadline = Instant::now() + limit;
    let mut q = sink.lock();
    while !q.items.is_empty() || q.writing {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        q = sink
            .idle
            .wait_timeout(q, left)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

/// Chooses how lines reach stderr now rather than at the first line: a server then holds the
/// same descriptors from its start (stderr opened again, when it is a pipe or a terminal)
/// instead of one more from its first event line on.
pub(crate) fn prepare() {
    WRITER.get_or_init(start_writer);
}

/// Writes `line` in place if stderr never waits for a reader, or if it goes in whole without
/// waiting; else queues it for the writer thread; never waits for a reader of stderr.
fn emit(line: &str) {
    match WRITER.get_or_init(start_writer) {
        Writer::Thread => SINK.push(line),
        Writer::NonBlocking(file) => {
            if SINK.write_or_push(file, line) {
                // The first line that would have waited: from now on the thread writes.
                if start_thread().is_err() {
                    // The last resort: what is queued is written here, waiting if it must.
                    SINK.write_queued_in_place();
                }
            }
        }
        // In place: stderr never waits for a reader, or (the last resort) no thread could be
        // started.
        Writer::InPlace | Writer::NoThread => write_line(line),
    }
}

/// How lines reach stderr: chosen by the first one.
#[derive(Debug)]
enum Writer {
    /// Written by the caller: stderr is a file or a device that is not a terminal.
    InPlace,
    /// Written by the caller into stderr (a pipe or a terminal) opened again, non-blocking,
    /// while each goes in whole; queued for the writer thread, started then, from the first
    /// that would wait ([`Sink::write_or_push`]).
    NonBlocking(std::fs::File),
    /// Queued for the writer thread.
    Thread,
    /// Written by the caller because no writer thread could be started.
    NoThread,
}

/// The writer for this process's stderr: in place when it never waits for a reader; a pipe or
/// a terminal opened again non-blocking; else the thread. Measured on `kamaelia send` of 1 KiB
/// with stderr on `/dev/null` (figure 5): the thread's start, its wake-ups and the wait for it
/// at exit were a tenth of the process's CPU.
fn start_writer() -> Writer {
    let stderr = std::fs::metadata(STDERR_PATH).ok();
    if never_waits(stderr.as_ref(), stderr_is_terminal()) {
        return Writer::InPlace;
    }
    if let Some(file) = stderr.as_ref().and_then(open_again_nonblocking) {
        return Writer::NonBlocking(file);
    }
    match start_thread() {
        Ok(()) => Writer::Thread,
        Err(_) => Writer::NoThread,
    }
}

/// Starts the writer thread.
fn start_thread() -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("kamaelia-events".into())
        .spawn(writer)
        .map(drop)
}

/// This process's stderr, by a path that opens it again.
const STDERR_PATH: &str = "/proc/self/fd/2";

/// Stderr, when a pipe or a terminal (which `m` describes), opened again for writing,
/// non-blocking, in an open file description of its own; `None` for anything else, or when it
/// cannot be opened (a socket cannot be: it then gets the writer thread).
fn open_again_nonblocking(m: &std::fs::Metadata) -> Option<std::fs::File> {
    use std::os::unix::fs::FileTypeExt as _;
    let t = m.file_type();
    if !(t.is_fifo() || t.is_char_device()) {
        return None;
    }
    std::fs::OpenOptions::new()
        .write(true)
        // Never made this process's controlling terminal by being opened.
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(STDERR_PATH)
        .ok()
}

/// True for a regular file or a character device that is not a terminal (`/dev/null`): a
/// write to either never waits for a reader. A pipe, a socket, a terminal (Ctrl-S pauses it)
/// or an unknown stderr (no `/proc`) may.
fn never_waits(stderr: Option<&std::fs::Metadata>, terminal: bool) -> bool {
    use std::os::unix::fs::FileTypeExt as _;
    let Some(m) = stderr else {
        return false;
    };
    let t = m.file_type();
    t.is_file() || (t.is_char_device() && !terminal)
}

/// Whether stderr is a terminal, asked once (it does not change while we run).
fn stderr_is_terminal() -> bool {
    static TERMINAL: OnceLock<bool> = OnceLock::new();
    *TERMINAL.get_or_init(|| std::io::stderr().is_terminal())
}

/// One line and its newline, as written.
fn line_text(line: &str) -> String {
    // On a terminal, start from a clean line: a progress bar may be drawn on it.
    let clear = if stderr_is_terminal() { "\r\x1b[K" } else { "" };
    let mut text = String::with_capacity(clear.len() + line.len() + 1);
    text.push_str(clear);
    text.push_str(line);
    text.push('\n');
    text
}

/// One line and its newline in one write.
fn write_line(line: &str) {
    write_raw(line_text(line).as_bytes());
}

/// `bytes` to stderr, waiting if it must.
///
/// Only the writer thread and the last resort write here, and both may wait. A stderr given
/// to us non-blocking (its open file description, and so the flag, shared with whoever set
/// it) refuses a write that would wait instead of waiting: what is left is tried again after
/// a pause (1 ms, doubling up to 50 ms) rather than lost. There is no event to wait on
/// without `poll(2)`, which safe Rust does not offer here. The process's stderr lock is not
/// held over a pause: other writers (tracing under `--verbose`, a panic message) get in
/// between our writes, never inside a line a pipe takes whole.
fn write_raw(bytes: &[u8]) {
    const LONGEST_PAUSE: Duration = Duration::from_millis(50);
    let mut done = 0;
    let mut pause = Duration::from_millis(1);
    while done < bytes.len() {
        let written = std::io::stderr().lock().write(&bytes[done..]);
        match written {
            Ok(0) => return,
            Ok(n) => {
                done += n;
                pause = Duration::from_millis(1);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
            // Nothing useful can be done if stderr itself is gone.
            Err(_) => return,
        }
    }
}

/// Writes what of `bytes` goes into the non-blocking `file` without waiting; how much went in
/// (all of it when the write failed otherwise: nothing useful can be done then).
fn write_without_waiting(mut file: &std::fs::File, bytes: &[u8]) -> usize {
    let mut done = 0;
    while done < bytes.len() {
        match file.write(&bytes[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(_) => return bytes.len(),
        }
    }
    done
}

/// The queue between [`emit`] and the writer thread.
struct Sink {
    queue: Mutex<Queue>,
    /// Something was queued.
    more: Condvar,
    /// The queue is empty and nothing is being written.
    idle: Condvar,
}

struct Queue {
    items: VecDeque<Item>,
    /// Bytes of the queued lines plus the one being written.
    bytes: usize,
    /// The writer has taken a line and is writing it.
    writing: bool,
    /// Lines go to the writer thread (started, or being started): with a non-blocking stderr,
    /// set by the first line that would have waited, and never unset (the lines keep their
    /// order).
    queued: bool,
}

enum Item {
    Line(String),
    /// The rest of a line of which a non-blocking write took the start (newline included).
    /// Our own lines keep their order, but another process writing to the same terminal or
    /// pipe between the two parts splits the line. A pipe takes a line of at most
    /// `PIPE_BUF` (4,096 bytes) whole or not at all, so there it is a longer line's case (a
    /// `--json-events` certificate line with many names).
    Rest(Vec<u8>),
    /// This many lines were dropped here.
    Dropped(u64),
}

static SINK: Sink = Sink::new();

/// How lines are written (chosen by the first line).
static WRITER: OnceLock<Writer> = OnceLock::new();

/// `--json-events`: the count of dropped lines is a JSON line too.
static JSON: AtomicBool = AtomicBool::new(false);

impl Sink {
    const fn new() -> Self {
        Sink {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                bytes: 0,
                writing: false,
                queued: false,
            }),
            more: Condvar::new(),
            idle: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The writer never panics while holding the lock; a poisoned queue is still consistent.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, line: &str) {
        let mut q = self.lock();
        Self::queue(&mut q, line);
        drop(q);
        self.more.notify_one();
    }

    /// `line` at the end of the queue, or counted as dropped if it does not fit.
    fn queue(q: &mut Queue, line: &str) {
        if q.bytes + line.len() > QUEUE_BYTES && (q.writing || !q.items.is_empty()) {
            match q.items.back_mut() {
                Some(Item::Dropped(n)) => *n += 1,
                _ => q.items.push_back(Item::Dropped(1)),
            }
        } else {
            q.bytes += line.len();
            q.items.push_back(Item::Line(line.to_owned()));
        }
    }

    /// Writes `line` into the non-blocking `file` if it goes in whole and nothing is queued;
    /// else queues it (or what of it did not go in). True the first time a line is queued:
    /// the caller then starts the writer thread.
    fn write_or_push(&self, file: &std::fs::File, line: &str) -> bool {
        let mut q = self.lock();
        if q.queued {
            Self::queue(&mut q, line);
            drop(q);
            self.more.notify_one();
            return false;
        }
        // Under the lock, so that lines written here and queued ones keep their order.
        let text = line_text(line);
        let done = write_without_waiting(file, text.as_bytes());
        if done == text.len() {
            return false;
        }
        let rest = text.as_bytes()[done..].to_vec();
        q.bytes += rest.len();
        q.items.push_back(Item::Rest(rest));
        q.queued = true;
        drop(q);
        self.more.notify_one();
        true
    }

    /// Writes what is queued here, waiting if it must (no writer thread could be started);
    /// the next line is tried without waiting again. The lock is not held while writing:
    /// other lines meanwhile join the queue (or are counted as dropped when it is full)
    /// instead of waiting for this caller, and are written here too, in order. So under a
    /// steady stream of lines to a slow stderr this caller writes for as long as they come:
    /// the price of the last resort, reached only when no thread can be started.
    fn write_queued_in_place(&self) {
        loop {
            let items: Vec<Item> = {
                let mut q = self.lock();
                if q.items.is_empty() {
                    q.writing = false;
                    q.queued = false;
                    drop(q);
                    self.idle.notify_all();
                    return;
                }
                q.writing = true;
                q.items.drain(..).collect()
            };
            for item in items {
                let len = write_item(item);
                self.lock().bytes -= len;
            }
        }
    }
}

/// Writes a queued item to stderr, waiting if it must; the bytes it held in the queue.
fn write_item(item: Item) -> usize {
    match item {
        Item::Line(l) => {
            write_line(&l);
            l.len()
        }
        Item::Rest(r) => {
            write_raw(&r);
            r.len()
        }
        Item::Dropped(n) => {
            write_line(&dropped_line(n));
            0
        }
    }
}

/// The writer thread: takes one line at a time (so the queue bounds everything held) and
/// writes it, blocking here, never in the program's tasks.
fn writer() {
    let sink = &SINK;
    loop {
        let item = {
            let mut q = sink.lock();
            loop {
                if let Some(item) = q.items.pop_front() {
                    q.writing = true;
                    break item;
                }
                q.writing = false;
                sink.idle.notify_all();
                q = sink.more.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        let len = write_item(item);
        sink.lock().bytes -= len;
    }
}

/// What stands for `n` dropped lines.
fn dropped_line(n: u64) -> String {
    if JSON.load(Ordering::Relaxed) {
        let mut j = Json::new();
        j.field("kind", "lines_dropped");
        j.field("count", &n.to_string());
        j.finish()
    } else {
        format!(
            "kamaelia: {n} event line{} dropped (stderr was not read fast enough)",
            if n == 1 { "" } else { "s" }
        )
    }
}

/// A flat JSON object of string fields, escaped by hand.
struct Json(String);

impl Json {
    fn new() -> Self {
        Json(String::from("{"))
    }

    fn field(&mut self, key: &str, value: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        escape(&mut self.0, key);
        self.0.push(':');
        escape(&mut self.0, value);
    }

    fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

fn escape(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        let mut j = Json::new();
        j.field("a", "quote \" back \\ nl \n ctl \u{1}");
        assert_eq!(j.finish(), r#"{"a":"quote \" back \\ nl \n ctl \u0001"}"#);
        assert_eq!(type_name("Connected { peer: 1 }"), "Connected");
        assert_eq!(type_name("PeerClosed"), "PeerClosed");
    }

    #[test]
    fn a_full_queue_drops_lines_and_counts_them_in_place() {
        let sink = Sink::new();
        let line = "x".repeat(1000);
        for _ in 0..100 {
            sink.push(&line);
        }
        sink.push(&"y".repeat(QUEUE_BYTES * 2));
        let q = sink.lock();
        assert!(q.bytes <= QUEUE_BYTES, "{} bytes queued", q.bytes);
        let kept = q
            .items
            .iter()
            .filter(|i| matches!(i, Item::Line(_)))
            .count();
        assert_eq!(kept, QUEUE_BYTES / 1000);
        assert!(matches!(q.items.back(), Some(Item::Dropped(n)) if *n == 101 - kept as u64));
        drop(q);
        // An empty queue takes any one line, whatever its size.
        let empty = Sink::new();
        empty.push(&"z".repeat(QUEUE_BYTES * 2));
        assert_eq!(empty.lock().bytes, QUEUE_BYTES * 2);
    }

    #[test]
    fn lines_are_written_in_place_only_where_a_write_never_waits_for_a_reader() {
        use std::os::fd::AsRawFd as _;
        let at = |fd: i32| std::fs::metadata(format!("/proc/self/fd/{fd}")).ok();
        let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
        assert!(never_waits(at(file.as_raw_fd()).as_ref(), false));
        let null = std::fs::File::open("/dev/null").unwrap();
        assert!(never_waits(at(null.as_raw_fd()).as_ref(), false));
        // A terminal may be paused (Ctrl-S); a socket or a pipe waits for its reader.
        assert!(!never_waits(at(null.as_raw_fd()).as_ref(), true));
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(!never_waits(at(a.as_raw_fd()).as_ref(), false));
        assert!(!never_waits(None, false));
    }

    /// With a non-blocking stderr, lines are written in place while they go in whole; the
    /// first that would wait is queued (what of it did not go in) and asks for the writer
    /// thread, and every later line is queued behind it, in order, within the queue's bound.
    #[test]
    fn a_line_that_would_wait_and_every_later_one_go_to_the_queue() {
        use std::io::Read as _;
        let (a, mut reader) = std::os::unix::net::UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let file = std::fs::File::from(std::os::fd::OwnedFd::from(a));
        let sink = Sink::new();
        assert!(!sink.write_or_push(&file, "first"));
        let mut got = [0_u8; 6];
        reader.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"first\n");
        // Nobody reads: the socket's buffer fills, and then a line would wait.
        let line = "x".repeat(1000);
        let mut written = 0;
        while !sink.write_or_push(&file, &line) {
            written += 1;
            assert!(written < 100_000, "the socket never filled");
        }
        let more: Vec<String> = (0..200).map(|i| format!("line {i}")).collect();
        for l in &more {
            assert!(
                !sink.write_or_push(&file, l),
                "the thread is asked for once"
            );
        }
        let q = sink.lock();
        assert!(q.queued);
        assert!(matches!(q.items.front(), Some(Item::Rest(r)) if r.ends_with(b"x\n")));
        let queued: Vec<&str> = q
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Line(l) => Some(l.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(queued, more.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(q.bytes <= QUEUE_BYTES);
    }

    #[test]
    fn the_count_of_dropped_lines_follows_the_mode() {
        assert_eq!(
            dropped_line(3),
            "kamaelia: 3 event lines dropped (stderr was not read fast enough)"
        );
        JSON.store(true, Ordering::Relaxed);
        let json = dropped_line(1);
        JSON.store(false, Ordering::Relaxed);
        assert_eq!(json, r#"{"kind":"lines_dropped","count":"1"}"#);
    }
}
