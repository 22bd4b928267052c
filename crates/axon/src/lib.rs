//! Axon: Kamaelia's component runtime, on tokio.
//!
//! A component has named, typed inboxes and outboxes and a main routine that runs as its own
//! task once activated. Components talk only through their boxes; linkages (made and removed at
//! any time) decide where an outbox's messages go. `control` inboxes and `signal` outboxes carry
//! [`Control`] messages, so any signal links to any control.
//!
//! The written contract — ordering, backpressure, passthrough, relinking, shutdown — is
//! `docs/semantics.md` in the repository.
//!
//! ```
//! use axon::{link, Component, Control, Inbox, Scheduler};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mut b = Component::build("Counter");
//! let out = b.outbox::<u64>("outbox", "numbers");
//! let signal = b.signal();
//! b.control();
//! let counter = b.main(|_cx| async move {
//!     for i in 0..3 {
//!         out.send(i).await?;
//!     }
//!     signal.send(Control::producer_finished()).await?;
//!     Ok(())
//! });
//!
//! let sink = Inbox::<u64>::standalone("sink", 16);
//! axon::link_refs(&counter.boxref("outbox").unwrap(), &sink.boxref()).unwrap();
//! let report = Scheduler::new().run(async { counter.activate(); }).await;
//! assert!(report.is_ok());
//! assert_eq!((sink.recv().await, sink.recv().await, sink.recv().await), (0, 1, 2));
//! # let _ = link::<u64>;
//! # }
//! ```

#![warn(missing_debug_implementations)]

mod boxes;
mod component;
mod control;
mod graph;
mod group;
mod link;
mod owners;
mod rare;
mod registry;
mod scheduler;
mod slot;
mod spec;
mod store;
#[cfg(test)]
mod test_wakers;
mod watch;

pub use boxes::{Inbox, Message, Outbox, SendError, TrySendError, DEFAULT_CAPACITY};
pub use component::{
    BoxError, Component, ComponentBuilder, ComponentId, Label, MainResult, CONTROL, INBOX, OUTBOX,
    SIGNAL,
};
pub use control::{Control, Detail, ErrorMessage, Payload};
pub use group::Group;
pub use link::{link, link_refs, unlink, BoxRef, Link, WiringError};
pub use rare::{RareBoxes, RareInbox};
pub use registry::{Registry, RegistryError};
pub use scheduler::{
    block_on, interrupted, run, ComponentFailure, Context, Exit, FailureKind, Handle, RunReport,
    Scheduler, RECENT_FAILURES,
};
pub use spec::{BoxDecl, BoxId, BoxSpec, Direction, LinkKind, SharedNames};
pub use watch::{ControlWatch, Undelivered};
