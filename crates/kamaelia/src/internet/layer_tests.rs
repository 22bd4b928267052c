//! A check every layer between a connection and its user shares (STARTTLS clients, the proxy
//! client): the connection's half-close is passed on only after the bytes before it.

use axon::{Control, Inbox, Outbox};
use bytes::Bytes;

use super::PeerHalfClosed;

/// The chunks the connection delivers before its half-close.
pub(crate) const CHUNKS: [&[u8]; 3] = [b"one ", b"two ", b"three"];

/// Queues [`CHUNKS`] and a half-close from the connection, without awaiting in between (so
/// both are waiting when the layer next runs), then collects what reaches the user until the
/// half-close comes out on `events`, and checks that every byte came first.
pub(crate) async fn half_close_follows_the_bytes(
    from_conn: &Outbox<Bytes>,
    conn_signal: &Outbox<Control>,
    user: &Inbox<Bytes>,
    events: &Inbox<Control>,
) {
    for c in CHUNKS {
        from_conn.try_send(Bytes::from_static(c)).unwrap();
    }
    conn_signal
        .try_send(Control::notice(PeerHalfClosed {
            truncation_possible: false,
        }))
        .unwrap();
    let mut got = Vec::new();
    loop {
        tokio::select! {
            d = user.recv() => got.extend_from_slice(&d),
            e = events.recv() => if e.payload::<PeerHalfClosed>().is_some() {
                break;
            },
        }
    }
    while let Some(d) = user.try_recv() {
        got.extend_from_slice(&d);
    }
    assert_eq!(got, CHUNKS.concat(), "every byte before the half-close");
}
