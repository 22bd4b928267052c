//! The buffer a connection reads into: none or small while the connection is quiet, grown
//! while reads fill it, let go after a quiet second.

use bytes::{BufMut, Bytes, BytesMut};
use tokio::time::{Duration, Instant};

/// The most one read asks for.
pub(super) const READ_CHUNK: usize = 256 * 1024;
/// What the first read of a connection asks for, and a quiet one keeps asking for.
pub(super) const FIRST_READ: usize = 1024;
/// A connection that has read nothing for this long lets go of a read buffer grown past
/// [`FIRST_READ`], so an idle connection does not keep the size of its last burst. (Letting go
/// at once whenever a read finds nothing ready would cost a fresh allocation, faulted in, for
/// every time a busy connection drains its socket: 40% of the receive throughput.)
const QUIET_AFTER: Duration = Duration::from_secs(1);

/// The buffer a connection reads into.
///
/// Reads start small and double while they fill the buffer, so a quiet connection reads 1 KiB
/// at a time (and, over a stream that says when it is readable, holds no buffer while idle:
/// [`ReadBuffer::release_small`]) and a busy one reads up to half the receive limit (at most
/// 256 KiB) at a time. Half, so that
/// a box holding just under its limit and then admitting one more read stays within one and a
/// half times the limit. After [`QUIET_AFTER`] with nothing read, a grown buffer is let go and
/// reads start small again.
pub(super) struct ReadBuffer {
    buf: BytesMut,
    /// What the next read asks for, and the most it may ask for: at most [`READ_CHUNK`], so
    /// they fit in 32 bits (every connection holds this for its whole life).
    want: u32,
    /// The most a read may ask for, and [`EXACT`]: its top bit (a flag of its own would be
    /// eight bytes more, with its padding, in every connection).
    max: u32,
    /// When a read last filled a grown buffer: kept only while the buffer has grown (the
    /// clock is read for nothing else), boxed then, and let go with the buffer. Every
    /// connection holds this for its whole life: a pointer, not the 16 bytes of an `Instant`.
    last_read: Option<Box<Instant>>,
}

/// In [`ReadBuffer`]'s `max`: `buf` holds exactly what a small read copied
/// ([`ReadBuffer::copied`]), to be handed over whole. Above any `max` ([`READ_CHUNK`]).
const EXACT: u32 = 1 << 31;

impl ReadBuffer {
    pub(super) fn new(receive_limit: usize) -> Self {
        let max = (receive_limit / 2).clamp(1, READ_CHUNK) as u32;
        ReadBuffer {
            buf: BytesMut::new(),
            want: (FIRST_READ as u32).min(max),
            max,
            last_read: None,
        }
    }

    /// Reserves room for the next read. Done just before the read: by then the chunks split
    /// off earlier have usually been consumed and dropped, so `reserve` takes the same
    /// allocation back instead of allocating (and faulting in) fresh memory for every read.
    pub(super) fn prepare(&mut self) -> bytes::buf::Limit<&mut BytesMut> {
        let want = self.want as usize;
        if self.buf.capacity() < want {
            self.buf.reserve(want);
        }
        (&mut self.buf).limit(want)
    }

    /// Takes the `n` bytes just read, at `now`; a read that filled the buffer doubles the next.
    /// The clock is read only when a grown buffer is kept ([`ReadBuffer::quiet_at`] needs it).
    pub(super) fn filled(&mut self, n: usize, now: impl FnOnce() -> Instant) -> Bytes {
        let exact = self.max & EXACT != 0;
        self.max &= !EXACT;
        if n == self.want as usize {
            self.want = (self.want * 2).min(self.max);
        }
        if self.want as usize > FIRST_READ {
            let now = now();
            match self.last_read.as_deref_mut() {
                Some(last) => *last = now,
                None => self.last_read = Some(Box::new(now)),
            }
        }
        if exact {
            // Exactly the bytes read, in an allocation of their size: handed over whole, with
            // no shared header (what splitting a buffer costs) and nothing left behind.
            return std::mem::take(&mut self.buf).freeze();
        }
        self.buf.split().freeze()
    }

    /// How much a read may ask for when it can be made into a buffer of the caller's and
    /// copied ([`ReadBuffer::copied`]): a small read, with no buffer held. The caller reads
    /// only when the stream is readable, so the copy is of bytes that are there.
    pub(super) fn small_room(&self) -> Option<usize> {
        let want = self.want as usize;
        (want <= FIRST_READ && self.buf.capacity() == 0).then_some(want)
    }

    /// Takes the bytes a small read put in the caller's buffer: one allocation of their size
    /// (where reading into a reserved buffer takes the buffer and a shared header to split it).
    pub(super) fn copied(&mut self, data: &[u8]) {
        self.buf = BytesMut::from(data);
        self.max |= EXACT;
    }

    /// When a grown buffer is to be let go, if it has grown.
    pub(super) fn quiet_at(&self) -> Option<Instant> {
        if self.want as usize > FIRST_READ {
            self.last_read.as_deref()?.checked_add(QUIET_AFTER)
        } else {
            None
        }
    }

    /// Lets go of the buffer if it has not grown: called once a read that found the socket
    /// drained is delivered, so an idle connection holds no buffer (what was read keeps its
    /// part of the allocation until the receiver drops it). A grown buffer stays for the
    /// next burst, until [`ReadBuffer::release_if_quiet`]: a fresh large allocation, faulted
    /// in, for every time a busy connection drains its socket would cost throughput.
    pub(super) fn release_small(&mut self) {
        if self.want as usize <= FIRST_READ {
            self.buf = BytesMut::new();
        }
    }

    /// Lets go of a grown buffer if nothing has been read for [`QUIET_AFTER`].
    pub(super) fn release_if_quiet(&mut self, now: Instant) {
        if self.quiet_at().is_some_and(|at| at <= now) {
            self.buf = BytesMut::new();
            self.want = (FIRST_READ as u32).min(self.max & !EXACT);
            self.last_read = None;
        }
    }

    /// The bytes reserved now.
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::internet::DEFAULT_LIMIT_BYTES;

    /// After a burst the buffer has grown to the largest read; a second with nothing read lets
    /// it go, and reads start small again. (Before, an idle connection kept its last burst's
    /// buffer for ever.)
    #[test]
    fn a_quiet_connection_lets_go_of_its_grown_read_buffer() {
        let t0 = Instant::now();
        let mut rb = ReadBuffer::new(DEFAULT_LIMIT_BYTES);
        assert_eq!(rb.quiet_at(), None, "a small buffer has nothing to let go");
        assert!(rb.last_read.is_none(), "a small buffer reads no clock");
        // A burst: every read fills what it asked for.
        for _ in 0..10 {
            let mut room = rb.prepare();
            let n = room.remaining_mut();
            room.put_bytes(7, n);
            drop(rb.filled(n, || t0));
        }
        let _ = rb.prepare();
        assert_eq!(rb.want as usize, DEFAULT_LIMIT_BYTES / 2);
        assert!(rb.held() >= DEFAULT_LIMIT_BYTES / 2);
        assert_eq!(rb.quiet_at(), t0.checked_add(QUIET_AFTER));

        rb.release_if_quiet(t0 + QUIET_AFTER / 2);
        assert!(rb.held() >= DEFAULT_LIMIT_BYTES / 2, "let go too early");
        rb.release_if_quiet(t0 + QUIET_AFTER);
        assert_eq!(rb.held(), 0);
        assert_eq!(rb.quiet_at(), None);
        assert!(
            rb.last_read.is_none(),
            "the clock kept without a grown buffer"
        );
        let _ = rb.prepare();
        assert_eq!(rb.held(), FIRST_READ);
    }

    #[test]
    fn reads_are_at_most_half_the_receive_limit_and_at_least_one_byte() {
        assert_eq!(ReadBuffer::new(64 * 1024).max, 32 * 1024);
        assert_eq!(ReadBuffer::new(16 << 20).max as usize, READ_CHUNK);
        let tiny = ReadBuffer::new(0);
        assert_eq!((tiny.max, tiny.want), (1, 1));
    }
}
