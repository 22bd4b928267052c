//! The connection's state as plain types, apart from I/O (tokio-rustls's `TlsState` is the
//! model): which phase it is in, what each direction may still do, the byte-bounded queue
//! ahead of the socket, and the counts [`Transferred`] reports. The driver tells it each event
//! (a control message, `makessl`, a read, a write, a flush, a timer) and does what it answers;
//! the tests below run every transition, races included, without a socket.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::time::Instant;

use super::OnFinish;
use crate::internet::messages::{HowDied, PeerHalfClosed, TcpError, Transferred};
use crate::internet::TlsError;

/// How many messages are taken from `inbox` ahead of the socket (one vectored write).
pub(super) const WRITE_BATCH: usize = 64;

/// Plain bytes, a TLS handshake under way, or TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Plain,
    Handshaking,
    Tls,
}

/// What the receive direction may still do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReadSide {
    /// Reading.
    Open,
    /// The peer has finished sending (FIN or close_notify; without close_notify under TLS, what
    /// was received may be truncated).
    PeerClosed { truncation_possible: bool },
    /// The component receiving the data has ended: nothing more is read.
    Abandoned,
}

/// What the send direction may still do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WriteSide {
    /// Sending what arrives on `inbox`.
    Open,
    /// ProducerFinished has arrived: what is queued goes out, then the write side is shut
    /// (or, with [`OnFinish::KeepOpen`], stays open until the peer closes).
    Finishing,
    /// The write side is shut (FIN sent; under TLS close_notify first).
    Shut,
}

/// What the driver does next, asked before it waits for the next event.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Wait for events.
    Wait,
    /// Flush, then shut the write side ([`State::shut`] once done).
    Shut,
    /// The connection is over: everything was sent, and the peer has closed or will not be
    /// waited for ([`HowDied::Finished`]).
    Finished,
}

/// What a failed read means.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ReadFailure {
    /// Under TLS, the peer closed without close_notify: a half-close that may have truncated.
    PeerClosed(PeerHalfClosed),
    /// The connection failed.
    Failed,
}

/// Messages taken from `inbox` and not yet written: the front one may be partly written. Its
/// bytes are counted, so the driver stops taking from `inbox` at the send limit.
///
/// Boxed, and made when a message is first queued: a message that comes alone is written
/// straight from itself (`Connection::write_alone`), so most connections never queue one, and
/// every connection holds this for its whole life (a pointer, not the 40 bytes of a queue and
/// its count). Once made it is kept, as the queue's room is: a connection that queued once
/// will again.
#[derive(Debug, Default)]
pub(super) struct OutQueue(Option<Box<Queued>>);

/// What [`OutQueue`] holds once made.
#[derive(Debug, Default)]
struct Queued {
    chunks: VecDeque<Bytes>,
    bytes: usize,
}

impl OutQueue {
    pub(super) fn push(&mut self, d: Bytes) {
        if !d.is_empty() {
            let q = self.0.get_or_insert_with(Box::default);
            // Room for one at first, not the four a queue starts with: the queue keeps its
            // room for the connection's life, and most connections send a message at a time.
            // A busy one grows it as before.
            if q.chunks.capacity() == 0 {
                q.chunks.reserve_exact(1);
            }
            q.bytes += d.len();
            q.chunks.push_back(d);
        }
    }

    #[inline(always)]
    pub(super) fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|q| q.chunks.is_empty())
    }

    /// How many messages (the front one perhaps partly written) are queued.
    pub(super) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.chunks.len())
    }

    pub(super) fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.bytes)
    }

    /// How many messages the queue has room for without allocating.
    #[cfg(test)]
    pub(super) fn room(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.chunks.capacity())
    }

    /// Whether the queue's block has been made (a message was queued once).
    #[cfg(test)]
    pub(super) fn is_made(&self) -> bool {
        self.0.is_some()
    }

    /// Whether another message may be taken: fewer than a batch, under `limit` bytes. An
    /// empty queue always takes one, so a limit of 0 still makes progress.
    pub(super) fn has_room(&self, limit: usize) -> bool {
        match &self.0 {
            None => true,
            Some(q) => Self::has_room_with(q.chunks.len(), q.bytes, limit),
        }
    }

    /// [`OutQueue::has_room`] for a queue that would hold `chunks` messages of `bytes` bytes.
    #[inline(always)]
    pub(super) fn has_room_with(chunks: usize, bytes: usize, limit: usize) -> bool {
        chunks < WRITE_BATCH && (chunks == 0 || bytes < limit)
    }

    /// The front of the queue, up to a batch, for one vectored write.
    pub(super) fn front_batch(&self) -> impl Iterator<Item = &Bytes> {
        self.0
            .iter()
            .flat_map(|q| q.chunks.iter())
            .take(WRITE_BATCH)
    }

    /// Drops the first `n` bytes, which were written. Bytes past what is queued are no error:
    /// a message that came alone is written straight from itself (`Connection::write_alone`),
    /// and when the socket takes it whole its write is reported as usual with nothing queued,
    /// so this must then do nothing.
    #[inline(always)]
    pub(super) fn consume(&mut self, n: usize) {
        if let Some(q) = &mut self.0 {
            q.consume(n);
        }
    }

    /// Empties the queue; returns the messages and bytes dropped.
    fn clear(&mut self) -> (usize, usize) {
        match &mut self.0 {
            None => (0, 0),
            Some(q) => {
                let dropped = (q.chunks.len(), q.bytes);
                q.chunks.clear();
                q.bytes = 0;
                dropped
            }
        }
    }
}

impl Queued {
    fn consume(&mut self, mut n: usize) {
        self.bytes -= n.min(self.bytes);
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            if front.len() <= n {
                n -= front.len();
                self.chunks.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }
}

/// What [`Transferred`] reports, counted as the connection runs.
#[derive(Debug, Default)]
struct Counts {
    /// Accepted by the socket or the TLS layer.
    written: u64,
    /// Of those, flushed to the socket.
    flushed: u64,
    received: u64,
    // What was taken from `inbox` and thrown away at a shutdown is not kept here: the
    // shutdown's `HowDied` says it, and [`State::finish`] is given it (8 bytes less in every
    // connection's state).
}

/// A connection's idle timeouts and when a byte last moved (boxed: most connections have no
/// idle timeout, and then nothing reads the clock for it).
#[derive(Debug)]
struct Timed {
    timeouts: Timeouts,
    last_activity: Instant,
}

/// The idle timeouts of [`super::CsaOptions`].
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Timeouts {
    pub(super) idle: Option<Duration>,
    pub(super) plaintext: Option<Duration>,
}

/// One connection's state.
#[derive(Debug)]
pub(super) struct State {
    phase: Phase,
    read: ReadSide,
    write: WriteSide,
    on_finish: OnFinish,
    /// Boxed, and only when there is one: most connections have no idle timeout.
    timeouts: Option<Box<Timed>>,
    /// Bytes the socket or TLS layer accepted that have not been flushed since.
    needs_flush: bool,
    pub(super) out: OutQueue,
    counts: Counts,
}

impl State {
    pub(super) fn new(on_finish: OnFinish, timeouts: Timeouts) -> Self {
        State {
            phase: Phase::Plain,
            read: ReadSide::Open,
            write: WriteSide::Open,
            on_finish,
            timeouts: (timeouts.idle.is_some() || timeouts.plaintext.is_some()).then(|| {
                Box::new(Timed {
                    timeouts,
                    last_activity: Instant::now(),
                })
            }),
            needs_flush: false,
            out: OutQueue::default(),
            counts: Counts::default(),
        }
    }

    #[cfg(test)]
    fn phase(&self) -> Phase {
        self.phase
    }

    pub(super) fn is_tls(&self) -> bool {
        self.phase == Phase::Tls
    }

    pub(super) fn reading(&self) -> bool {
        self.read == ReadSide::Open
    }

    /// Whether the driver writes (something is queued) or flushes (TLS keeps records).
    pub(super) fn wants_write(&self) -> bool {
        !self.out.is_empty() || self.needs_flush
    }

    /// Whether to take more from `inbox`: the write side is open and the queue has room.
    pub(super) fn takes_more(&self, send_limit: usize) -> bool {
        self.write != WriteSide::Shut && self.out.has_room(send_limit)
    }

    /// Whether ProducerFinished came and the write side is not shut yet: [`State::next`] then
    /// needs to know whether `inbox` and `makessl` are empty.
    pub(super) fn finishing(&self) -> bool {
        self.write == WriteSide::Finishing
    }

    /// Notes that a byte moved, for the idle timeout (a connection without one does not read
    /// the clock for it).
    pub(super) fn touch(&mut self) {
        if let Some(timed) = &mut self.timeouts {
            timed.last_activity = Instant::now();
        }
    }

    /// When the idle timeout that applies now runs out, counted from when a byte last moved
    /// either way; `None` without one (or past the clock's end).
    pub(super) fn idle_deadline(&self) -> Option<Instant> {
        let last = self.timeouts.as_deref()?.last_activity;
        last.checked_add(self.idle_limit()?)
    }

    /// What to do before waiting for the next event. `inbox_empty` and `makessl_empty` say
    /// whether those boxes hold anything: a makessl that arrived before the close is honoured
    /// first (separate boxes carry no order between them).
    pub(super) fn next(&self, inbox_empty: bool, makessl_empty: bool) -> Next {
        let drained = self.out.is_empty() && inbox_empty && makessl_empty;
        if self.write == WriteSide::Finishing && drained {
            if self.on_finish != OnFinish::KeepOpen {
                return Next::Shut;
            }
            // Everything is sent; the write side stays open until the peer closes.
            if !self.reading() && !self.needs_flush {
                return Next::Finished;
            }
        }
        // Shut: with Close that is the end; otherwise it ends when the peer has closed too.
        if self.write == WriteSide::Shut && (self.on_finish == OnFinish::Close || !self.reading()) {
            return Next::Finished;
        }
        Next::Wait
    }

    /// ProducerFinished: finish sending (a second one changes nothing).
    pub(super) fn producer_finished(&mut self) {
        if self.write == WriteSide::Open {
            self.write = WriteSide::Finishing;
        }
    }

    /// ShutdownMicroprocess (or a shutdown while flushing or handshaking): what is queued is
    /// dropped, with `inbox` (`inbox_messages` holding `inbox_bytes`) counted in.
    /// Both directions are over.
    pub(super) fn shutdown(&mut self, inbox_messages: usize, inbox_bytes: usize) -> HowDied {
        self.write = WriteSide::Shut;
        self.read = ReadSide::Abandoned;
        let (messages, bytes) = self.out.clear();
        let dropped_messages = messages + inbox_messages;
        let dropped_bytes = bytes + inbox_bytes;
        HowDied::Shutdown {
            dropped_messages,
            dropped_bytes,
        }
    }

    /// Whether the write side has been shut (or is being shut).
    pub(super) fn write_shut(&self) -> bool {
        self.write == WriteSide::Shut
    }

    /// The write side is being shut: nothing more is taken or sent.
    pub(super) fn shutting(&mut self) {
        self.write = WriteSide::Shut;
    }

    /// The write side is shut and flushed; with [`OnFinish::Close`] the connection is over.
    pub(super) fn shut(&mut self) -> Next {
        self.write = WriteSide::Shut;
        self.needs_flush = false;
        self.counts.flushed = self.counts.written;
        if self.on_finish == OnFinish::Close {
            Next::Finished
        } else {
            Next::Wait
        }
    }

    /// `makessl`: an error to report (and carry on) if TLS cannot start now.
    pub(super) fn makessl(&self) -> Result<(), TlsError> {
        match (self.phase, self.write) {
            (Phase::Tls | Phase::Handshaking, _) => Err(TlsError::AlreadyTls),
            (Phase::Plain, WriteSide::Shut) => Err(TlsError::NotConnected),
            (Phase::Plain, _) => Ok(()),
        }
    }

    /// The handshake starts, after the plaintext queue has been flushed.
    pub(super) fn handshaking(&mut self) {
        self.phase = Phase::Handshaking;
        self.needs_flush = false;
        self.counts.flushed = self.counts.written;
    }

    /// The handshake finished.
    pub(super) fn tls_up(&mut self) {
        self.phase = Phase::Tls;
    }

    /// A client about to start TLS checks what the server sent that is still unread
    /// (`Some(bytes)`, or `None` if the server has closed): any byte there arrived after the
    /// go-ahead, in plaintext, and may have been injected.
    pub(super) fn check_unread(unread: Option<usize>) -> Result<(), TlsError> {
        match unread {
            Some(0) => Ok(()),
            Some(bytes) => Err(TlsError::PlaintextInjection { bytes }),
            None => Err(TlsError::NotConnected),
        }
    }

    /// `n` bytes were read and delivered.
    pub(super) fn received(&mut self, n: usize) {
        self.counts.received += n as u64;
    }

    /// The bytes delivered so far.
    pub(super) fn delivered(&self) -> u64 {
        self.counts.received
    }

    /// The receiving component has ended: stop reading.
    pub(super) fn abandoned(&mut self) {
        self.read = ReadSide::Abandoned;
    }

    /// A read returned 0 bytes (FIN, or close_notify under TLS).
    pub(super) fn eof(&mut self) -> PeerHalfClosed {
        self.peer_closed(false)
    }

    /// A read failed with `kind`.
    pub(super) fn read_failed(&mut self, kind: io::ErrorKind) -> ReadFailure {
        if self.is_tls() && kind == io::ErrorKind::UnexpectedEof {
            ReadFailure::PeerClosed(self.peer_closed(true))
        } else {
            ReadFailure::Failed
        }
    }

    fn peer_closed(&mut self, truncation_possible: bool) -> PeerHalfClosed {
        self.read = ReadSide::PeerClosed {
            truncation_possible,
        };
        PeerHalfClosed {
            truncation_possible,
        }
    }

    /// The socket (or TLS layer) accepted `n` bytes from the front of the queue.
    pub(super) fn wrote(&mut self, n: usize) {
        self.out.consume(n);
        self.counts.written += n as u64;
        if self.phase == Phase::Plain {
            self.counts.flushed = self.counts.written;
        }
        self.needs_flush = true;
    }

    /// A flush completed: everything written so far is on the socket.
    pub(super) fn flushed(&mut self) {
        self.needs_flush = false;
        self.counts.flushed = self.counts.written;
    }

    /// The idle timeout that applies now: the plaintext one counts only before TLS.
    pub(super) fn idle_limit(&self) -> Option<Duration> {
        let timeouts = &self.timeouts.as_deref()?.timeouts;
        let plaintext = if self.is_tls() {
            None
        } else {
            timeouts.plaintext
        };
        match (timeouts.idle, plaintext) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The timer fired at `now`: the idle timeout, if nothing has moved for that long.
    pub(super) fn idle_expired(&self, now: Instant) -> Option<Duration> {
        let limit = self.idle_limit()?;
        (self.idle_deadline()? <= now).then_some(limit)
    }

    /// The error for a failed socket operation: under TLS a rustls error keeps its kind.
    pub(super) fn io_error(&self, peer: std::net::SocketAddr, e: io::Error) -> TcpError {
        if self.is_tls() {
            match crate::internet::classify(&e).after_handshake() {
                TlsError::Io(_) => TcpError::io(peer, e),
                other => TcpError::Tls(other),
            }
        } else {
            TcpError::io(peer, e)
        }
    }

    /// The connection is over (`how` it ended): what went each way, and what was handed over
    /// but never sent (`left_in_inbox` bytes were still in `inbox`; a shutdown's `how` says
    /// what it dropped).
    pub(super) fn finish(&mut self, left_in_inbox: u64, how: &HowDied) -> Transferred {
        let dropped = match how {
            HowDied::Shutdown { dropped_bytes, .. } => *dropped_bytes as u64,
            _ => 0,
        };
        let queued = self.out.bytes() as u64;
        let c = &self.counts;
        Transferred {
            sent: c.flushed,
            received: c.received,
            unsent: left_in_inbox + dropped + queued + (c.written - c.flushed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event as the driver sees it.
    #[derive(Clone, Copy, Debug)]
    enum Ev {
        /// A message of this many bytes taken from `inbox`.
        Data(usize),
        Finish,
        /// ShutdownMicroprocess with this many bytes (one message) still in `inbox`.
        Shutdown(usize),
        MakeSsl,
        /// The plaintext flush before the handshake is done (TLS starts).
        Handshake,
        HandshakeDone,
        Read(usize),
        Eof,
        /// A read failed with this kind.
        ReadErr(io::ErrorKind),
        Wrote(usize),
        Flushed,
        /// The write side was shut successfully.
        Shut,
    }

    /// What an event answered, when it answers something.
    #[derive(Debug, PartialEq, Eq)]
    enum Got {
        Nothing,
        Died(String),
        Refused(String),
        HalfClosed(bool),
        Failed,
        Ended,
    }

    fn apply(s: &mut State, ev: Ev, how: &mut HowDied) -> Got {
        match ev {
            Ev::Data(n) => {
                assert!(s.takes_more(1024), "took data while it should not");
                s.out.push(Bytes::from(vec![0; n]));
                Got::Nothing
            }
            Ev::Finish => {
                s.producer_finished();
                Got::Nothing
            }
            Ev::Shutdown(inbox) => {
                *how = s.shutdown(usize::from(inbox > 0), inbox);
                Got::Died(how.to_string())
            }
            Ev::MakeSsl => match s.makessl() {
                Ok(()) => Got::Nothing,
                Err(e) => Got::Refused(e.to_string()),
            },
            Ev::Handshake => {
                s.handshaking();
                Got::Nothing
            }
            Ev::HandshakeDone => {
                s.tls_up();
                Got::Nothing
            }
            Ev::Read(n) => {
                s.received(n);
                Got::Nothing
            }
            Ev::Eof => Got::HalfClosed(s.eof().truncation_possible),
            Ev::ReadErr(kind) => match s.read_failed(kind) {
                ReadFailure::PeerClosed(p) => Got::HalfClosed(p.truncation_possible),
                ReadFailure::Failed => Got::Failed,
            },
            Ev::Wrote(n) => {
                s.wrote(n);
                Got::Nothing
            }
            Ev::Flushed => {
                s.flushed();
                Got::Nothing
            }
            Ev::Shut => match s.shut() {
                Next::Finished => Got::Ended,
                _ => Got::Nothing,
            },
        }
    }

    struct Case {
        name: &'static str,
        on_finish: OnFinish,
        events: &'static [Ev],
        /// What the last event answered.
        last: Got,
        /// `next()` after it, with `inbox` and `makessl` empty.
        next: Next,
        /// `(sent, received, unsent)` at the end, with nothing left in `inbox`.
        transferred: (u64, u64, u64),
    }

    use Ev::*;
    use OnFinish::{Close, HalfClose, KeepOpen};

    fn cases() -> Vec<Case> {
        vec![
            Case {
                name: "data written and flushed, then ProducerFinished: shut the write side",
                on_finish: Close,
                events: &[Data(5), Wrote(5), Flushed, Finish],
                last: Got::Nothing,
                next: Next::Shut,
                transferred: (5, 0, 0),
            },
            Case {
                name: "ProducerFinished with data still queued waits for it",
                on_finish: Close,
                events: &[Data(5), Finish],
                last: Got::Nothing,
                next: Next::Wait,
                transferred: (0, 0, 5),
            },
            Case {
                name: "a partial write leaves the rest queued",
                on_finish: Close,
                events: &[Data(5), Data(3), Wrote(6), Finish],
                last: Got::Nothing,
                next: Next::Wait,
                transferred: (6, 0, 2),
            },
            Case {
                name: "Close ends once the write side is shut",
                on_finish: Close,
                events: &[Finish, Shut],
                last: Got::Ended,
                next: Next::Finished,
                transferred: (0, 0, 0),
            },
            Case {
                name: "HalfClose keeps reading after the shut, until the peer closes",
                on_finish: HalfClose,
                events: &[Finish, Shut, Read(10)],
                last: Got::Nothing,
                next: Next::Wait,
                transferred: (0, 10, 0),
            },
            Case {
                name: "HalfClose ends when the peer closes after the shut",
                on_finish: HalfClose,
                events: &[Finish, Shut, Read(10), Eof],
                last: Got::HalfClosed(false),
                next: Next::Finished,
                transferred: (0, 10, 0),
            },
            Case {
                name: "KeepOpen never shuts; it waits for the peer",
                on_finish: KeepOpen,
                events: &[Data(4), Wrote(4), Flushed, Finish],
                last: Got::Nothing,
                next: Next::Wait,
                transferred: (4, 0, 0),
            },
            Case {
                name: "KeepOpen still sends what arrives after ProducerFinished",
                on_finish: KeepOpen,
                events: &[Finish, Data(4)],
                last: Got::Nothing,
                next: Next::Wait,
                transferred: (0, 0, 4),
            },
            Case {
                name: "KeepOpen ends when the peer closes and everything is flushed",
                on_finish: KeepOpen,
                events: &[Finish, Data(4), Wrote(4), Flushed, Eof],
                last: Got::HalfClosed(false),
                next: Next::Finished,
                transferred: (4, 0, 0),
            },
            Case {
                name: "KeepOpen waits for a pending flush even after the peer closed",
                on_finish: KeepOpen,
                events: &[Handshake, HandshakeDone, Finish, Eof, Data(4), Wrote(4)],
                last: Got::Nothing,
                next: Next::Wait,
                transferred: (0, 0, 4),
            },
            Case {
                name: "the peer's half-close ends only the receive side",
                on_finish: Close,
                events: &[Read(3), Eof, Data(7)],
                last: Got::Nothing,
                next: Next::Wait,
                transferred: (0, 3, 7),
            },
            Case {
                name: "peer half-close, then more input still goes out and finishes",
                on_finish: Close,
                events: &[Eof, Data(7), Wrote(7), Flushed, Finish],
                last: Got::Nothing,
                next: Next::Shut,
                transferred: (7, 0, 0),
            },
            Case {
                name: "a shutdown drops the queue and what is left in the inbox",
                on_finish: Close,
                events: &[Data(5), Data(3), Wrote(2), Shutdown(10)],
                last: Got::Died("shut down, dropping 3 queued messages (16 bytes)".into()),
                next: Next::Finished,
                transferred: (2, 0, 16),
            },
            Case {
                name: "a shutdown during the closing flush drops what is unflushed",
                on_finish: Close,
                events: &[
                    Handshake,
                    HandshakeDone,
                    Data(5),
                    Finish,
                    Wrote(5),
                    Shutdown(0),
                ],
                last: Got::Died("shut down".into()),
                next: Next::Finished,
                transferred: (0, 0, 5),
            },
            Case {
                name: "makessl on a plain connection is accepted",
                on_finish: Close,
                events: &[Data(2), MakeSsl],
                last: Got::Nothing,
                next: Next::Wait,
                transferred: (0, 0, 2),
            },
            Case {
                name: "makessl during a handshake is refused and the connection carries on",
                on_finish: Close,
                events: &[MakeSsl, Handshake, MakeSsl],
                last: Got::Refused("the connection is already using TLS".into()),
                next: Next::Wait,
                transferred: (0, 0, 0),
            },
            Case {
                name: "makessl under TLS is refused",
                on_finish: Close,
                events: &[Handshake, HandshakeDone, MakeSsl],
                last: Got::Refused("the connection is already using TLS".into()),
                next: Next::Wait,
                transferred: (0, 0, 0),
            },
            Case {
                name: "makessl after the write side was shut is refused",
                on_finish: HalfClose,
                events: &[Finish, Shut, MakeSsl],
                last: Got::Refused("no open connection to start TLS on".into()),
                next: Next::Wait,
                transferred: (0, 0, 0),
            },
            Case {
                name: "makessl queued before connecting: TLS first, then the data, encrypted",
                on_finish: Close,
                events: &[Handshake, HandshakeDone, Data(3), Wrote(3), Flushed, Finish],
                last: Got::Nothing,
                next: Next::Shut,
                transferred: (3, 0, 0),
            },
            Case {
                name: "ProducerFinished during a handshake takes effect after it",
                on_finish: Close,
                events: &[MakeSsl, Handshake, Finish, HandshakeDone],
                last: Got::Nothing,
                next: Next::Shut,
                transferred: (0, 0, 0),
            },
            Case {
                name: "under TLS, written bytes count as sent only once flushed",
                on_finish: Close,
                events: &[Handshake, HandshakeDone, Data(9), Wrote(9)],
                last: Got::Nothing,
                next: Next::Wait,
                transferred: (0, 0, 9),
            },
            Case {
                name: "under TLS, a flush makes them sent",
                on_finish: Close,
                events: &[Handshake, HandshakeDone, Data(9), Wrote(9), Flushed],
                last: Got::Nothing,
                next: Next::Wait,
                transferred: (9, 0, 0),
            },
            Case {
                name: "under TLS an EOF without close_notify is a half-close that may truncate",
                on_finish: Close,
                events: &[
                    Handshake,
                    HandshakeDone,
                    ReadErr(io::ErrorKind::UnexpectedEof),
                ],
                last: Got::HalfClosed(true),
                next: Next::Wait,
                transferred: (0, 0, 0),
            },
            Case {
                name: "in plaintext an unexpected EOF is a failure",
                on_finish: Close,
                events: &[ReadErr(io::ErrorKind::UnexpectedEof)],
                last: Got::Failed,
                next: Next::Wait,
                transferred: (0, 0, 0),
            },
            Case {
                name: "a reset is a failure under TLS too",
                on_finish: Close,
                events: &[
                    Handshake,
                    HandshakeDone,
                    ReadErr(io::ErrorKind::ConnectionReset),
                ],
                last: Got::Failed,
                next: Next::Wait,
                transferred: (0, 0, 0),
            },
            Case {
                name: "a second ProducerFinished changes nothing",
                on_finish: HalfClose,
                events: &[Finish, Shut, Finish],
                last: Got::Nothing,
                next: Next::Wait,
                transferred: (0, 0, 0),
            },
        ]
    }

    #[test]
    fn every_transition_as_a_table() {
        for case in cases() {
            let mut s = State::new(case.on_finish, Timeouts::default());
            let mut last = Got::Nothing;
            // How it ended, as the driver hands it to `finish` (a shutdown's, if there was one).
            let mut how = HowDied::Finished;
            for ev in case.events {
                last = apply(&mut s, *ev, &mut how);
            }
            assert_eq!(last, case.last, "{}", case.name);
            assert_eq!(s.next(true, true), case.next, "{}", case.name);
            let t = s.finish(0, &how);
            assert_eq!(
                (t.sent, t.received, t.unsent),
                case.transferred,
                "{}",
                case.name
            );
        }
    }

    /// A makessl or data that arrived before ProducerFinished is honoured before the close:
    /// separate boxes carry no order between them.
    #[test]
    fn the_close_waits_for_queued_makessl_and_data() {
        let mut s = State::new(OnFinish::Close, Timeouts::default());
        s.producer_finished();
        assert_eq!(s.next(true, false), Next::Wait, "makessl queued");
        assert_eq!(s.next(false, true), Next::Wait, "data queued");
        assert_eq!(s.next(true, true), Next::Shut);
    }

    #[test]
    fn plaintext_pending_at_makessl_is_refused_as_injection() {
        assert!(State::check_unread(Some(0)).is_ok());
        assert!(matches!(
            State::check_unread(Some(8)),
            Err(TlsError::PlaintextInjection { bytes: 8 })
        ));
        assert!(matches!(
            State::check_unread(None),
            Err(TlsError::NotConnected)
        ));
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_and_messages() {
        let mut q = OutQueue::default();
        assert!(
            q.has_room(0),
            "an empty queue takes one message, even at limit 0"
        );
        q.push(Bytes::from_static(b"abc"));
        assert!(!q.has_room(3));
        assert!(q.has_room(4));
        q.push(Bytes::new());
        assert_eq!(q.bytes(), 3, "empty messages are not queued");
        for _ in 1..WRITE_BATCH {
            q.push(Bytes::from_static(b"x"));
        }
        assert!(!q.has_room(usize::MAX), "a batch at most");
        q.consume(4);
        assert_eq!(q.bytes(), WRITE_BATCH - 2);
        assert_eq!(q.front_batch().count(), WRITE_BATCH - 2);
    }

    #[test]
    fn idle_timeouts_plaintext_counts_only_before_tls() {
        let s = Duration::from_secs;
        let timeouts = Timeouts {
            idle: Some(s(30)),
            plaintext: Some(s(10)),
        };
        let mut st = State::new(OnFinish::Close, timeouts);
        // The last activity is the connection's start.
        let t0 = st.timeouts.as_ref().map(|t| t.last_activity).unwrap();
        assert_eq!(st.idle_limit(), Some(s(10)));
        assert_eq!(st.idle_expired(t0 + s(9)), None);
        assert_eq!(st.idle_expired(t0 + s(10)), Some(s(10)));
        st.handshaking();
        assert_eq!(st.phase(), Phase::Handshaking);
        st.tls_up();
        assert_eq!(st.phase(), Phase::Tls);
        assert_eq!(st.idle_limit(), Some(s(30)));
        assert_eq!(st.idle_expired(t0 + s(10)), None);
        assert_eq!(st.idle_expired(t0 + s(30)), Some(s(30)));
        let never = State::new(OnFinish::Close, Timeouts::default());
        assert_eq!(never.idle_expired(t0 + s(1 << 30)), None);
    }
}
