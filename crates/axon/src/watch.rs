//! The control handling every component shares (docs/semantics.md §5): forward `Error` and
//! `Notice`, remember a final message, and never let a send that waits for room hide a
//! `ShutdownMicroprocess`.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::Poll;

use futures_util::future::Either;

use crate::boxes::{Inbox, Outbox, TrySendError};
use crate::control::Control;

/// A component's `control` inbox and `signal` outbox, and the final message seen so far: the
/// one implementation of the shutdown contract of `docs/semantics.md` §5.
///
/// * `Error` and `Notice` arriving on `control` go straight on to `signal`;
/// * a final message is kept, to be sent last by [`ControlWatch::finish`]; a
///   `ShutdownMicroprocess` outranks an earlier `ProducerFinished`;
/// * [`ControlWatch::send`] waits for room downstream without hiding a `ShutdownMicroprocess`;
/// * [`ControlWatch::until_shutdown`] runs beside a long operation (a flush, a handshake) that
///   only `ShutdownMicroprocess` may interrupt.
///
/// ```
/// use axon::{Control, ControlWatch, Inbox, Outbox, CONTROL, INBOX, SIGNAL};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let control = Inbox::<Control>::standalone(CONTROL, 8);
/// let signal = Outbox::<Control>::standalone(SIGNAL);
/// let inbox = Inbox::<u32>::standalone(INBOX, 8);
/// # let feed = Outbox::<Control>::standalone("feed");
/// # axon::link(&feed, &control).unwrap();
/// # feed.send(Control::producer_finished()).await.unwrap();
/// let mut watch = ControlWatch::new(&control, &signal);
/// // A component's loop: data until a final message, then what was queued before it.
/// while !watch.stopping() {
///     tokio::select! {
///         c = watch.control().recv() => watch.handle(c).await,
///         n = inbox.recv() => { let _ = n; }
///     }
/// }
/// if !watch.shutdown_requested() {
///     while let Some(n) = inbox.try_recv() { let _ = n; }
/// }
/// watch.finish(Control::producer_finished());
/// # }
/// ```
#[derive(Debug)]
pub struct ControlWatch<'a> {
    control: &'a Inbox<Control>,
    signal: &'a Outbox<Control>,
    /// The final message, once one has arrived: boxed, as it comes once at the end, and the
    /// watch is held for a component's whole life (in every connection's protocol, idle most
    /// of the time) where a `Control` inline would be five words more.
    stop: Option<Box<Control>>,
}

/// Why [`ControlWatch::send`] did not deliver a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Undelivered {
    /// `ShutdownMicroprocess` arrived while waiting for room; the message was dropped.
    Shutdown,
    /// The component at the end of the link has ended.
    Closed,
}

impl<'a> ControlWatch<'a> {
    /// A watch over `control`, forwarding to `signal`, with no final message seen yet.
    pub fn new(control: &'a Inbox<Control>, signal: &'a Outbox<Control>) -> Self {
        ControlWatch {
            control,
            signal,
            stop: None,
        }
    }

    /// The `control` inbox, to wait on in a `select!` whose handler calls [`ControlWatch::handle`]
    /// (so handling, which may wait on `signal`, is never cancelled half way).
    pub fn control(&self) -> &'a Inbox<Control> {
        self.control
    }

    /// `Error` and `Notice` go straight on to `signal`; a final message is kept to be sent last.
    /// A `ShutdownMicroprocess` outranks an earlier `ProducerFinished`. Nothing happens until
    /// the future is polled.
    ///
    /// The future holds the message once, then the send it became (an `async fn` held the
    /// message as its argument beside the send: 144 bytes in a debug build, where this is 56);
    /// a component that handles control in a `select!` arm keeps it in its own state.
    pub fn handle(&mut self, msg: Control) -> impl Future<Output = ()> + use<'_, 'a> {
        let mut step = Either::Left(Some(msg));
        poll_fn(move |cx| {
            if let Either::Left(msg) = &mut step {
                let Some(msg) = msg.take() else {
                    return Poll::Ready(());
                };
                if msg.is_final() {
                    self.keep_final(msg);
                    return Poll::Ready(());
                }
                step = Either::Right(self.signal.send(msg));
            }
            match &mut step {
                // If nobody listens to `signal` any more there is nobody to tell.
                Either::Right(send) => Pin::new(send).poll(cx).map(|_| ()),
                Either::Left(_) => Poll::Ready(()),
            }
        })
    }

    /// Keeps `msg`, a final message, to be sent last: the first one, or a
    /// `ShutdownMicroprocess` after a `ProducerFinished`.
    fn keep_final(&mut self, msg: Control) {
        let upgrade = msg.is_shutdown() && !self.shutdown_requested();
        if self.stop.is_none() || upgrade {
            self.stop = Some(Box::new(msg));
        }
    }

    /// True once a final message (either kind) has arrived.
    pub fn stopping(&self) -> bool {
        self.stop.is_some()
    }

    /// True once `ShutdownMicroprocess` has arrived.
    pub fn shutdown_requested(&self) -> bool {
        self.stop.as_deref().is_some_and(Control::is_shutdown)
    }

    /// Sends `msg` on `out`, waiting while the destination is full and handling control meanwhile.
    /// `ProducerFinished` does not interrupt the wait (the message in hand is still delivered);
    /// `ShutdownMicroprocess` does, and after it a message is sent only if there is room at once.
    ///
    /// The future holds the message once, the two references and a small wait: the wait is
    /// polled by hand (`control` first, then room), and a notice to pass on while waiting is
    /// boxed (rare). As an `async fn` over a `select!` it held the message twice and both
    /// waits and the handling of a control message inline: 296 bytes for a 32-byte message
    /// (a `Bytes`), where this is 72, kept by every component that waits in it (in its own
    /// state, as the future is awaited there).
    pub fn send<'s, T: Send + 'static>(
        &'s mut self,
        out: &'s Outbox<T>,
        msg: T,
    ) -> impl Future<Output = Result<(), Undelivered>> + use<'s, 'a, T> {
        // Rebound here, not inside the block: there it would be kept twice (104 bytes).
        let mut msg = msg;
        async move {
            loop {
                match out.try_send(msg) {
                    Ok(()) => return Ok(()),
                    Err(TrySendError::Closed(_)) => return Err(Undelivered::Closed),
                    Err(TrySendError::Full(m) | TrySendError::Unlinked(m)) => msg = m,
                }
                if self.shutdown_requested() {
                    return Err(Undelivered::Shutdown);
                }
                // Both polled afresh each time: neither keeps anything between polls but the
                // task's waker (cancel safe).
                // What comes is taken apart before anything is awaited: a local that lives past
                // an await is kept in the future's state.
                let pass_on = match poll_fn(|cx| {
                    if let Poll::Ready(c) = pin!(self.control.recv()).poll(cx) {
                        return Poll::Ready(Some(c));
                    }
                    pin!(out.ready()).poll(cx).map(|()| None)
                })
                .await
                {
                    None => continue,
                    Some(c) if c.is_final() => {
                        self.keep_final(c);
                        continue;
                    }
                    Some(c) => Box::pin(self.signal.send(c)),
                };
                // If nobody listens to `signal` any more there is nobody to tell.
                let _ = pass_on.await;
            }
        }
    }

    /// Handles `control` until `ShutdownMicroprocess` arrives (a `ProducerFinished` meanwhile
    /// is noted, see [`ControlWatch::stopping`]). Cancel safe between messages: race it against
    /// an operation that only a shutdown may interrupt.
    pub async fn until_shutdown(&mut self) {
        while !self.shutdown_requested() {
            let c = self.control.recv().await;
            self.handle(c).await;
        }
    }

    /// Sends the final message: the one received on `control`, or `otherwise`. Forced, so a full
    /// inbox downstream cannot keep this component alive.
    pub fn finish(self, otherwise: Control) {
        // A closed signal link means nobody is waiting for the final message.
        let _ = self
            .signal
            .force_send(self.stop.map_or(otherwise, |stop| *stop));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{link, CONTROL, SIGNAL};

    #[tokio::test]
    async fn errors_pass_through_and_shutdown_outranks_producer_finished() {
        let control = Inbox::<Control>::standalone(CONTROL, 8);
        let signal = Outbox::<Control>::standalone(SIGNAL);
        let seen = Inbox::<Control>::standalone("seen", 8);
        link(&signal, &seen).unwrap();
        let mut w = ControlWatch::new(&control, &signal);
        w.handle(Control::notice("hi")).await;
        w.handle(Control::producer_finished()).await;
        assert!(w.stopping() && !w.shutdown_requested());
        w.handle(Control::shutdown()).await;
        w.handle(Control::producer_finished()).await;
        assert!(w.shutdown_requested());
        w.finish(Control::producer_finished());
        assert_eq!(seen.recv().await.payload::<&str>(), Some(&"hi"));
        assert!(seen.recv().await.is_shutdown());
        assert!(seen.try_recv().is_none());
    }

    #[tokio::test]
    async fn a_send_waiting_for_room_gives_way_to_shutdown() {
        let control = Inbox::<Control>::standalone(CONTROL, 8);
        let signal = Outbox::<Control>::standalone(SIGNAL);
        let out = Outbox::<u32>::standalone("out");
        let full = Inbox::<u32>::standalone("full", 1);
        link(&out, &full).unwrap();
        let mut w = ControlWatch::new(&control, &signal);
        assert_eq!(w.send(&out, 1).await, Ok(()));
        let feed = Outbox::<Control>::standalone("feed");
        link(&feed, &control).unwrap();
        feed.send(Control::shutdown()).await.unwrap();
        assert_eq!(w.send(&out, 2).await, Err(Undelivered::Shutdown));
        assert_eq!(full.try_recv(), Some(1));
    }

    #[tokio::test]
    async fn until_shutdown_notes_producer_finished_and_passes_notices_on() {
        let control = Inbox::<Control>::standalone(CONTROL, 8);
        let signal = Outbox::<Control>::standalone(SIGNAL);
        let seen = Inbox::<Control>::standalone("seen", 8);
        link(&signal, &seen).unwrap();
        let feed = Outbox::<Control>::standalone("feed");
        link(&feed, &control).unwrap();
        for c in [
            Control::producer_finished(),
            Control::notice(7u8),
            Control::shutdown(),
            Control::notice(8u8),
        ] {
            feed.send(c).await.unwrap();
        }
        let mut w = ControlWatch::new(&control, &signal);
        w.until_shutdown().await;
        assert!(w.shutdown_requested());
        assert_eq!(seen.try_recv().unwrap().payload::<u8>(), Some(&7));
        assert!(seen.try_recv().is_none(), "stops at the shutdown");
        assert_eq!(control.len(), 1, "what follows the shutdown is left");
    }

    /// A component keeps what it awaits in its own state: a send waiting for room holds the
    /// message once, the watch's and the outbox's references and a small wait (an `async fn`
    /// over a `select!` held the message twice, both waits and a control message's handling:
    /// 296 bytes for a 32-byte message, now 72); the handling of a control message holds the
    /// message, then the send it became, not both (144 bytes, now 56). Debug builds' layouts;
    /// both fail on the old `async fn`s.
    #[test]
    fn a_watch_s_futures_hold_the_message_once() {
        let control = Inbox::<Control>::standalone(CONTROL, 8);
        let signal = Outbox::<Control>::standalone(SIGNAL);
        let out = Outbox::<[u8; 32]>::standalone("out");
        let mut w = ControlWatch::new(&control, &signal);
        let send = std::mem::size_of_val(&w.send(&out, [0; 32]));
        let handle = std::mem::size_of_val(&w.handle(Control::shutdown()));
        let message = std::mem::size_of::<Control>();
        eprintln!("send {send} bytes, handle {handle} (a Control: {message})");
        assert!(send <= 32 + 6 * 8, "send: {send} bytes");
        assert!(handle <= message + 3 * 8, "handle: {handle} bytes");
    }

    /// A watch is held for a component's whole life (in every connection's protocol): two
    /// references and a pointer, its final message boxed when it comes.
    #[test]
    fn a_watch_is_three_words() {
        assert!(std::mem::size_of::<ControlWatch<'_>>() <= 3 * std::mem::size_of::<usize>());
    }
}
