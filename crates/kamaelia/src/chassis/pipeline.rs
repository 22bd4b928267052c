//! Pipeline: components wired in a line.

use axon::{link_refs, Component, Direction, WiringError, CONTROL, INBOX, OUTBOX, SIGNAL};

axon::box_table! {
    /// Pipeline's own boxes, declared once, as data: the builder declares them from here.
    const BOXES: PipelineBoxes {
        inbox: INBOX => "passed through to the first child (only if it has an `inbox`)",
        control: CONTROL => "passed through to the first child",
        outbox: OUTBOX => "the last child's output (only if it has an `outbox`)",
        signal: SIGNAL => "the last child's `signal`",
    }
}

/// A chain of components, each one's `outbox` into the next one's `inbox` and each one's
/// `signal` into the next one's `control` (Kamaelia.Chassis.Pipeline).
///
/// # Example
///
/// The page's first example, sending a file to a server, reads in Rust:
///
/// ```no_run
/// use kamaelia::{Pipeline, RateControlledFileReader, TcpClient};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// Pipeline::new([
///     RateControlledFileReader::new("myfile").rate(100_000).into(),
///     TcpClient::new("127.0.0.1", 1000).into(),
/// ])?
/// .activate();
/// axon::run(async {})?;
/// # Ok(())
/// # }
/// ```
///
/// A runnable one, with a sink inbox standing in for the far end:
///
/// ```
/// use axon::{Inbox, Scheduler};
/// use kamaelia::{pipeline, OneShot};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let p = pipeline![OneShot::new(7_u32)]?;
/// let sink = Inbox::<u32>::standalone("sink", 4);
/// axon::link_refs(&p.boxref("outbox")?, &sink.boxref())?;
/// assert!(Scheduler::new().run(async { p.activate(); }).await.is_ok());
/// assert_eq!(sink.recv().await, 7);
/// # Ok(())
/// # }
/// ```
///
/// # How it works
///
/// Everything is wired when the Pipeline is built, so a wiring error (a missing box, a type
/// mismatch between neighbours) is returned by [`Pipeline::new`] before anything runs. The
/// Pipeline's own `inbox` and `control` are passed through to the first child, and the last
/// child's `outbox` and `signal` are passed out as the Pipeline's own: no message is copied or
/// handled by the Pipeline on the way. When activated it activates its children and ends once
/// all of them have ended. It sends nothing itself.
///
/// # Inboxes
///
/// | name | type | meaning |
/// |---|---|---|
/// | `inbox` | the first child's `inbox` type | passed through to the first child (only if it has an `inbox`) |
/// | `control` | `Control` | passed through to the first child |
///
/// # Outboxes
///
/// | name | type | meaning |
/// |---|---|---|
/// | `outbox` | the last child's `outbox` type | the last child's output (only if it has an `outbox`) |
/// | `signal` | `Control` | the last child's `signal` |
///
/// # Shutdown
///
/// A control message reaches the first child; each child passes its final message down the line
/// on `signal`, so the last child's final message leaves as the Pipeline's. The Pipeline ends
/// when all children have ended.
///
/// # Errors
///
/// [`Pipeline::new`] fails with a [`WiringError`] if there are no children, a neighbour lacks
/// `outbox`/`inbox` or `signal`/`control`, or the types of neighbouring boxes differ. A child's
/// failure travels down the line on `signal` as `Control::Error`.
pub struct Pipeline;

impl Pipeline {
    /// Builds a Pipeline of `children`, in order.
    #[allow(clippy::new_ret_no_self)]
    pub fn new<I>(children: I) -> Result<Component, WiringError>
    where
        I: IntoIterator<Item = Component>,
    {
        let children: Vec<Component> = children.into_iter().collect();
        let (first, last) = match (children.first(), children.last()) {
            (Some(f), Some(l)) => (f, l),
            _ => {
                return Err(WiringError::Empty {
                    chassis: "Pipeline",
                })
            }
        };
        let mut b = Component::build("Pipeline");
        let own_control = b.control_from(BOXES.control).boxref();
        let own_signal = b.signal_from(BOXES.signal).boxref();
        let own_inbox = match first.boxref(INBOX) {
            Ok(r) => Some((
                b.mirror(BOXES.inbox.name, Direction::In, &r, BOXES.inbox.description),
                r,
            )),
            Err(_) => None,
        };
        let own_outbox = match last.boxref(OUTBOX) {
            Ok(r) => Some((
                b.mirror(
                    BOXES.outbox.name,
                    Direction::Out,
                    &r,
                    BOXES.outbox.description,
                ),
                r,
            )),
            Err(_) => None,
        };
        for pair in children.windows(2) {
            link_refs(&pair[0].boxref(OUTBOX)?, &pair[1].boxref(INBOX)?)?;
            link_refs(&pair[0].boxref(SIGNAL)?, &pair[1].boxref(CONTROL)?)?;
        }
        if let Some((own, child)) = &own_inbox {
            link_refs(own, child)?;
        }
        link_refs(&own_control, &first.boxref(CONTROL)?)?;
        if let Some((own, child)) = &own_outbox {
            link_refs(child, own)?;
        }
        link_refs(&last.boxref(SIGNAL)?, &own_signal)?;
        Ok(b.main(move |cx| async move {
            let handles = super::run_children(&cx, children).await;
            for h in &handles {
                h.join().await;
            }
            Ok(())
        }))
    }
}

/// Builds a [`Pipeline`] from components of different types: `pipeline![a, b, c]`.
#[macro_export]
macro_rules! pipeline {
    ($($c:expr),+ $(,)?) => {
        $crate::Pipeline::new([$($crate::axon::Component::from($c)),+])
    };
}
