//! The control-handling every source and sink here shares: forward `Error`/`Notice`, remember a
//! final message, and never let a send that waits for room hide a `ShutdownMicroprocess`.

use axon::{Control, Inbox, Outbox, TrySendError};

/// A component's `control` inbox and `signal` outbox, and the final message seen so far.
pub(crate) struct ControlWatch<'a> {
    control: &'a Inbox<Control>,
    signal: &'a Outbox<Control>,
    stop: Option<Control>,
}

/// Why [`ControlWatch::send`] did not deliver a message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Undelivered {
    /// `ShutdownMicroprocess` arrived while waiting for room; the message was dropped.
    Shutdown,
    /// The component at the end of the link has ended.
    Closed,
}

impl<'a> ControlWatch<'a> {
    pub(crate) fn new(control: &'a Inbox<Control>, signal: &'a Outbox<Control>) -> Self {
        ControlWatch {
            control,
            signal,
            stop: None,
        }
    }

    /// The `control` inbox, to wait on in a `select!` whose handler calls [`ControlWatch::handle`]
    /// (so handling, which may wait on `signal`, is never cancelled half way).
    pub(crate) fn control(&self) -> &'a Inbox<Control> {
        self.control
    }

    /// `Error` and `Notice` go straight on to `signal`; a final message is kept to be sent last.
    /// A `ShutdownMicroprocess` outranks an earlier `ProducerFinished`.
    pub(crate) async fn handle(&mut self, msg: Control) {
        if msg.is_final() {
            let upgrade = msg.is_shutdown() && !self.shutdown_requested();
            if self.stop.is_none() || upgrade {
                self.stop = Some(msg);
            }
        } else {
            // If nobody listens to `signal` any more there is nobody to tell.
            let _ = self.signal.send(msg).await;
        }
    }

    /// True once a final message (either kind) has arrived.
    pub(crate) fn stopping(&self) -> bool {
        self.stop.is_some()
    }

    /// True once `ShutdownMicroprocess` has arrived.
    pub(crate) fn shutdown_requested(&self) -> bool {
        self.stop.as_ref().is_some_and(Control::is_shutdown)
    }

    /// Sends `msg` on `out`, waiting while the destination is full and handling control meanwhile.
    /// `ProducerFinished` does not interrupt the wait (the message in hand is still delivered);
    /// `ShutdownMicroprocess` does, and after it a message is sent only if there is room at once.
    pub(crate) async fn send<T: Send + 'static>(
        &mut self,
        out: &Outbox<T>,
        msg: T,
    ) -> Result<(), Undelivered> {
        let control = self.control;
        let mut msg = msg;
        loop {
            match out.try_send(msg) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(_)) => return Err(Undelivered::Closed),
                Err(TrySendError::Full(m) | TrySendError::Unlinked(m)) => msg = m,
            }
            if self.shutdown_requested() {
                return Err(Undelivered::Shutdown);
            }
            tokio::select! {
                biased;
                c = control.recv() => self.handle(c).await,
                () = out.ready() => {}
            }
        }
    }

    /// Sends the final message: the one received on `control`, or `otherwise`. Forced, so a full
    /// inbox downstream cannot keep this component alive.
    pub(crate) fn finish(self, otherwise: Control) {
        // A closed signal link means nobody is waiting for the final message.
        let _ = self.signal.force_send(self.stop.unwrap_or(otherwise));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_pass_through_and_shutdown_outranks_producer_finished() {
        let control = Inbox::<Control>::standalone("control", 8);
        let signal = Outbox::<Control>::standalone("signal");
        let seen = Inbox::<Control>::standalone("seen", 8);
        axon::link(&signal, &seen).unwrap();
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
        let control = Inbox::<Control>::standalone("control", 8);
        let signal = Outbox::<Control>::standalone("signal");
        let out = Outbox::<u32>::standalone("out");
        let full = Inbox::<u32>::standalone("full", 1);
        axon::link(&out, &full).unwrap();
        let mut w = ControlWatch::new(&control, &signal);
        assert_eq!(w.send(&out, 1).await, Ok(()));
        let feed = Outbox::<Control>::standalone("feed");
        axon::link(&feed, &control).unwrap();
        feed.send(Control::shutdown()).await.unwrap();
        assert_eq!(w.send(&out, 2).await, Err(Undelivered::Shutdown));
        assert_eq!(full.try_recv(), Some(1));
    }
}
