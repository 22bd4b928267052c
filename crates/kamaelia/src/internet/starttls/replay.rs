//! What a STARTTLS server protocol does with the plaintext it holds once the switch is done.

use bytes::{Bytes, BytesMut};

/// The handshake bytes a STARTTLS server protocol must drop after the switch.
///
/// A server protocol that asked for the switch with
/// [`MakeSsl::with_consumed`](crate::internet::MakeSsl::with_consumed) may have been delivered
/// bytes after its command in plaintext: the start of the client's handshake, which the
/// connection also handed to TLS. [`SslReady::replayed`](crate::internet::SslReady) says how
/// many. Of what the protocol holds and is yet to receive, that many bytes go; the rest is
/// data the client sent under TLS.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use kamaelia::internet::starttls::HandshakeReplay;
///
/// // Held since the command: 3 handshake bytes. The connection replayed 5.
/// let (mut replay, data) = HandshakeReplay::start(5, BytesMut::from(&b"\x16\x03\x01"[..]));
/// assert!(data.is_empty());
/// // The next delivery starts with the other 2, then data.
/// assert_eq!(replay.strip(Bytes::from_static(b"\x00\x05hello")), Some(Bytes::from_static(b"hello")));
/// assert_eq!(replay.pending(), 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeReplay {
    to_drop: usize,
}

impl HandshakeReplay {
    /// The switch is done: the connection replayed `replayed` bytes, and the protocol holds
    /// `held` (what it was delivered after its command, in order). Returns what remains to drop
    /// from later deliveries, and the data at the end of `held`.
    pub fn start(replayed: u64, mut held: BytesMut) -> (Self, Bytes) {
        let replayed = usize::try_from(replayed).unwrap_or(usize::MAX);
        let to_drop = replayed.saturating_sub(held.len());
        let data = held.split_off(replayed.min(held.len()));
        (HandshakeReplay { to_drop }, data.freeze())
    }

    /// Drops what is left of the replayed bytes from the front of a delivery; returns the data
    /// after them, if any.
    pub fn strip(&mut self, d: Bytes) -> Option<Bytes> {
        let n = self.to_drop.min(d.len());
        self.to_drop -= n;
        (n < d.len()).then(|| d.slice(n..))
    }

    /// How many replayed bytes are still to come.
    pub fn pending(&self) -> usize {
        self.to_drop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (replayed, held, later deliveries) -> (data from held, data from each delivery).
    #[test]
    fn replayed_bytes_are_dropped_wherever_they_fall() {
        type Case = (
            u64,
            &'static [u8],
            &'static [&'static [u8]],
            &'static [u8],
            &'static [Option<&'static [u8]>],
        );
        let cases: &[Case] = &[
            // Nothing replayed: all held is data.
            (0, b"abc", &[b"d"], b"abc", &[Some(b"d")]),
            // All replayed bytes held; the rest of held is data.
            (2, b"hhdata", &[b"more"], b"data", &[Some(b"more")]),
            // Replayed bytes run on into later deliveries.
            (
                5,
                b"hh",
                &[b"h", b"hhxy", b"z"],
                b"",
                &[None, Some(b"xy"), Some(b"z")],
            ),
            // A delivery that is all handshake.
            (4, b"", &[b"hhhh", b"q"], b"", &[None, Some(b"q")]),
        ];
        for (replayed, held, later, want_held, want_later) in cases {
            let (mut r, data) = HandshakeReplay::start(*replayed, BytesMut::from(*held));
            assert_eq!(&data[..], *want_held, "{replayed} {held:?}");
            for (d, want) in later.iter().zip(want_later.iter()) {
                let got = r.strip(Bytes::from_static(d));
                assert_eq!(got.as_deref(), *want, "{replayed} {held:?} {d:?}");
            }
            assert_eq!(r.pending(), 0);
        }
    }
}
