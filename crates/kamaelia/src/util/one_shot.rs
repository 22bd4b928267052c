//! OneShot: one message, then `ProducerFinished`.

use std::fmt;

use axon::{Component, Control, ControlWatch, Message, Undelivered, CONTROL, OUTBOX, SIGNAL};

axon::box_table! {
    /// OneShot's boxes, declared once, as data: the builder declares them from here.
    const BOXES: OneShotBoxes {
        control: CONTROL => "ignored, as in Kamaelia, except `ShutdownMicroprocess` while the send waits for room",
        outbox: OUTBOX => "the message, once",
        signal: SIGNAL => "`ProducerFinished` after the message",
    }
}

/// Kamaelia's `OneShot(msg)`: sends one message, then `ProducerFinished`, and ends. Turn it
/// into a [`Component`] with `.into()`.
///
/// Python's `Kamaelia.Util.OneShot`; typically the first stage of a pipeline that needs a single
/// request, a single greeting or a canned answer.
///
/// # Example
///
/// ```
/// use axon::{Component, Control, Inbox, Scheduler};
/// use kamaelia::OneShot;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let shot: Component = OneShot::new("hello").into();
/// let sink = Inbox::<&str>::standalone("sink", 4);
/// let signal = Inbox::<Control>::standalone("signal", 4);
/// axon::link_refs(&shot.boxref("outbox")?, &sink.boxref())?;
/// axon::link_refs(&shot.boxref("signal")?, &signal.boxref())?;
///
/// let report = Scheduler::new().run(async { shot.activate(); }).await;
/// assert!(report.is_ok());
/// assert_eq!(sink.recv().await, "hello");
/// assert!(signal.recv().await.is_producer_finished());
/// # Ok(())
/// # }
/// ```
///
/// # How it works
///
/// The main routine sends the message on `outbox`, waiting for room if the inbox it is linked to
/// is full, then sends `ProducerFinished` on `signal` and returns. If `outbox` is not linked yet
/// the message waits in it and is handed on when it is linked.
///
/// # Inboxes
///
/// | name | type | meaning |
/// |------|------|---------|
/// | `control` | [`Control`] | ignored, as in Kamaelia, except `ShutdownMicroprocess` while the send waits for room |
///
/// # Outboxes
///
/// | name | type | meaning |
/// |------|------|---------|
/// | `outbox` | `T` | the message, once |
/// | `signal` | [`Control`] | `ProducerFinished` after the message |
///
/// # Shutdown
///
/// OneShot ends by itself. Control messages are not read, with one exception Kamaelia lacks: if
/// the send is waiting for room (the receiver is slow or the outbox is unlinked and full) a
/// `ShutdownMicroprocess` abandons the message and is sent on `signal` as the final message, so
/// a stuck OneShot can always be stopped. `Error` and `Notice` messages seen during that wait are
/// forwarded on `signal`.
///
/// # Errors
///
/// [`OneShotError::OutboxClosed`] if the component `outbox` is linked to has already ended; the
/// runtime reports it on `signal`, followed by `ProducerFinished`.
#[derive(Debug, Clone)]
pub struct OneShot<T> {
    msg: T,
}

impl<T: Message> OneShot<T> {
    /// A OneShot that will send `msg`.
    pub fn new(msg: T) -> Self {
        OneShot { msg }
    }
}

impl<T: Message> From<OneShot<T>> for Component {
    fn from(shot: OneShot<T>) -> Component {
        let mut b = Component::build("OneShot");
        let control = b.control_from(BOXES.control);
        let outbox = b.outbox_from::<T>(BOXES.outbox);
        let signal = b.signal_from(BOXES.signal);
        let msg = shot.msg;
        b.main(move |_cx| async move {
            let mut watch = ControlWatch::new(&control, &signal);
            match watch.send(&outbox, msg).await {
                Ok(()) | Err(Undelivered::Shutdown) => {}
                Err(Undelivered::Closed) => return Err(OneShotError::OutboxClosed.into()),
            }
            watch.finish(Control::producer_finished());
            Ok(())
        })
    }
}

/// Why a [`OneShot`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OneShotError {
    /// The component `outbox` is linked to ended before the message could be delivered.
    OutboxClosed,
}

impl fmt::Display for OneShotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OneShotError::OutboxClosed => {
                f.write_str("the component receiving the message has ended")
            }
        }
    }
}

impl std::error::Error for OneShotError {}
