//! Small protocol components for [`super::TcpServer`]: echo and discard.

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::Poll;

use axon::{
    Component, Control, ControlWatch, TrySendError, Undelivered, CONTROL, INBOX, OUTBOX, SIGNAL,
};
use bytes::Bytes;

use super::DEFAULT_LIMIT_BYTES;

/// A protocol that sends back everything it receives: give it to a [`super::TcpServer`] and
/// you have an echo server.
///
/// # Example
///
/// ```
/// use axon::{Control, Inbox, Outbox, Scheduler};
/// use bytes::Bytes;
/// use kamaelia::internet::EchoProtocol;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let echo = EchoProtocol::new();
/// let (feed, stop) = (Outbox::<Bytes>::standalone("feed"), Outbox::<Control>::standalone("stop"));
/// let back = Inbox::<Bytes>::standalone("back", 8);
/// axon::link_refs(&feed.boxref(), &echo.boxref("inbox")?)?;
/// axon::link_refs(&stop.boxref(), &echo.boxref("control")?)?;
/// axon::link_refs(&echo.boxref("outbox")?, &back.boxref())?;
/// feed.send(Bytes::from_static(b"ping")).await?;
/// stop.send(Control::producer_finished()).await?;
/// assert!(Scheduler::new().run(async { echo.activate(); }).await.is_ok());
/// assert_eq!(back.recv().await, "ping");
/// # Ok(())
/// # }
/// ```
///
/// # How it works
///
/// Each message on `inbox` goes out unchanged on `outbox`, in order; a full `outbox` (a slow
/// client) holds it back, so the connection stops reading and TCP slows the client down. It
/// takes one message at a time, and its `inbox` is bounded in bytes
/// ([`super::DEFAULT_LIMIT_BYTES`], 256 KiB) as well as in messages, so a client that sends
/// and never reads costs a bounded amount of memory.
///
/// # Inboxes
///
/// | name | type | meaning |
/// |---|---|---|
/// | `inbox` | `Bytes` | data from the connection |
/// | `control` | `Control` | the TcpServer's ProducerFinished when the peer has finished sending |
///
/// # Outboxes
///
/// | name | type | meaning |
/// |---|---|---|
/// | `outbox` | `Bytes` | the same data, back to the connection |
/// | `signal` | `Control` | the final message, into the connection's `control` |
///
/// # Shutdown
///
/// ProducerFinished: it first passes on what is still queued, then forwards the message on
/// `signal`, which makes the connection flush the echo and close. ShutdownMicroprocess: it
/// forwards the message at once, dropping what is queued (docs/semantics.md §5). Errors and
/// notices on `control` are forwarded and it carries on.
///
/// # Errors
///
/// None. A connection that has gone away (its `inbox` refuses the echo) is a normal end: the
/// protocol drops what it still held and ends without an error, so no data is kept in a
/// failure record.
#[derive(Debug)]
pub struct EchoProtocol;

impl EchoProtocol {
    /// A new echo protocol component.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> Component {
        relay("EchoProtocol", true)
    }
}

/// A protocol that reads and throws away everything it receives (a sink), as fast as the
/// connection delivers it. Boxes, shutdown and errors as [`EchoProtocol`], except that nothing
/// is sent on `outbox`.
///
/// ```
/// use kamaelia::internet::{DiscardProtocol, TcpServer};
///
/// let server = TcpServer::bind("127.0.0.1:0", |_| DiscardProtocol::new()).unwrap();
/// assert_ne!(server.local_addr().port(), 0);
/// ```
#[derive(Debug)]
pub struct DiscardProtocol;

impl DiscardProtocol {
    /// A new discard protocol component.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> Component {
        relay("DiscardProtocol", false)
    }
}

axon::box_table! {
    /// The protocols' boxes, declared once: the builder declares them from here, and a test checks
    /// the rustdoc tables against the declarations.
    const BOXES: ProtocolBoxes {
        inbox: INBOX => "data from the connection",
        control: CONTROL => "the TcpServer's ProducerFinished when the peer has finished sending",
        outbox: OUTBOX => "the same data, back to the connection",
        signal: SIGNAL => "the final message, into the connection's `control`",
    }
}

fn relay(name: &'static str, echo: bool) -> Component {
    let mut b = Component::build(name);
    let inbox = b
        .inbox_from::<Bytes>(BOXES.inbox)
        .limit_bytes(DEFAULT_LIMIT_BYTES);
    let control = b.control_from(BOXES.control);
    let outbox = b.outbox_from::<Bytes>(BOXES.outbox);
    let signal = b.signal_from(BOXES.signal);
    b.main(move |_| async move {
        let mut watch = ControlWatch::new(&control, &signal);
        // One message at a time: a batch taken out of the inbox would be held beyond the
        // inbox's byte limit while it waits for room in the connection. The wait is polled by
        // hand and what may wait (room downstream, a notice on `signal`) is boxed: a server
        // holds one of these per connection, idle most of the time, and its task keeps only
        // the boxes and the watch.
        while !watch.stopping() {
            // What may wait is boxed before it is awaited, and what it was made of is gone by
            // then (the event is a local of this block, not of the loop): a match whose arm
            // awaits, or a local that lives past the await, is kept in the state every idle
            // connection holds (40 bytes for the event).
            let wait: Pin<Box<dyn Future<Output = bool> + Send + '_>> =
                match std::future::poll_fn(|cx| {
                    if let Poll::Ready(c) = pin!(control.recv()).poll(cx) {
                        return Poll::Ready(Err(c));
                    }
                    pin!(inbox.recv()).poll(cx).map(Ok)
                })
                .await
                {
                    Ok(d) if echo => match outbox.try_send(d) {
                        Ok(()) => continue,
                        Err(TrySendError::Closed(_)) => return Ok(()),
                        Err(e) => {
                            let (watch, outbox, d) = (&mut watch, &outbox, e.into_inner());
                            Box::pin(async move {
                                watch.send(outbox, d).await == Err(Undelivered::Closed)
                            })
                        }
                    },
                    Ok(_) => continue,
                    Err(c) => {
                        let watch = &mut watch;
                        Box::pin(async move {
                            watch.handle(c).await;
                            false
                        })
                    }
                };
            if wait.await {
                return Ok(());
            }
        }
        // What was queued before ProducerFinished goes first; ShutdownMicroprocess drops it.
        Box::pin(async move {
            while !watch.shutdown_requested() {
                let Some(d) = inbox.try_recv() else { break };
                if echo && watch.send(&outbox, d).await == Err(Undelivered::Closed) {
                    return Ok(());
                }
            }
            watch.finish(Control::producer_finished());
            Ok(())
        })
        .await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axon::{Inbox, Outbox, Scheduler};

    /// Runs an echo protocol given `queued` messages, then `last` on `control`, its echo going
    /// to a box of `room` messages that nobody empties while it runs; returns what came back on
    /// `outbox` and the final message on `signal`.
    async fn echo_then(queued: usize, last: Control, room: usize) -> (usize, Control) {
        let echo = EchoProtocol::new();
        let feed = Outbox::<Bytes>::standalone("feed");
        let stop = Outbox::<Control>::standalone("stop");
        let back = Inbox::<Bytes>::standalone("back", room);
        let signal = Inbox::<Control>::standalone(SIGNAL, 8);
        axon::link_refs(&feed.boxref(), &echo.boxref(INBOX).unwrap()).unwrap();
        axon::link_refs(&stop.boxref(), &echo.boxref(CONTROL).unwrap()).unwrap();
        axon::link_refs(&echo.boxref(OUTBOX).unwrap(), &back.boxref()).unwrap();
        axon::link_refs(&echo.boxref(SIGNAL).unwrap(), &signal.boxref()).unwrap();
        for _ in 0..queued {
            feed.send(Bytes::from_static(b"x")).await.unwrap();
        }
        stop.send(last).await.unwrap();
        let report = Scheduler::new()
            .run(async {
                echo.activate();
            })
            .await;
        assert!(report.is_ok(), "{report:?}");
        let mut echoed = 0;
        while back.try_recv().is_some() {
            echoed += 1;
        }
        (echoed, signal.recv().await)
    }

    /// A server holds one echo per connection, idle most of the time: its block is the four
    /// boxes, the watch, the wait and a tag. Fails on the old loop, whose event (40 bytes)
    /// was kept beside the boxed wait it had been made into (128 bytes in a release build).
    /// 104 bytes since session 14 (96 before): its outbox handles are 16 bytes, not 8 (a
    /// linked outbox keeps no store, axon's `slot.rs`); the same 112-byte chunk.
    #[test]
    fn an_idle_echo_holds_its_boxes_and_little_else() {
        let block = EchoProtocol::new().routine_size();
        assert!(block <= 104, "EchoProtocol's block: {block} bytes");
    }

    /// docs/semantics.md §5: ProducerFinished comes after the data queued before it;
    /// ShutdownMicroprocess at once, even while the echo waits for room (before, it passed on
    /// everything queued first, and a peer that never read kept it waiting for ever).
    #[tokio::test]
    async fn producer_finished_echoes_everything_and_shutdown_does_not_wait() {
        let (echoed, last) = echo_then(10, Control::producer_finished(), 64).await;
        assert_eq!(echoed, 10);
        assert!(last.is_producer_finished(), "{last:?}");

        let bounded = std::time::Duration::from_secs(10);
        let (echoed, last) = tokio::time::timeout(bounded, echo_then(10, Control::shutdown(), 2))
            .await
            .expect("a shutdown does not wait for room");
        assert!(echoed <= 2);
        assert!(last.is_shutdown(), "{last:?}");
    }
}
