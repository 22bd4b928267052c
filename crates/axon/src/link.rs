//! Linkages between boxes: made and removed at any time, checked for type and direction.

use std::any::TypeId;
use std::fmt;
use std::sync::Arc;

use crate::boxes::{Inbox, Message, Outbox};
use crate::spec::{BoxId, BoxMeta, Direction, LinkKind};
use crate::store::{ErasedStore, LinkFailure};

/// A type-erased reference to a box, for linking by name (Graphline) and for the graph.
#[derive(Clone)]
pub struct BoxRef {
    pub(crate) store: Arc<dyn ErasedStore>,
}

impl BoxRef {
    pub(crate) fn new(store: Arc<dyn ErasedStore>) -> Self {
        BoxRef { store }
    }

    /// Which box this is.
    pub fn id(&self) -> BoxId {
        self.store.id()
    }

    /// The box's name (read under its store's lock: `store.rs`, `Shape`).
    pub(crate) fn name(&self) -> Arc<str> {
        self.store.meta().name.clone()
    }

    /// Inbox or outbox.
    pub fn direction(&self) -> Direction {
        self.store.direction()
    }

    /// The box this one forwards to, if it is linked.
    pub fn linked_to(&self) -> Option<BoxId> {
        self.store.forward()
    }

    /// How many messages this box holds itself (an inbox's queue, or an unlinked outbox's buffer).
    pub fn queued(&self) -> usize {
        self.store.queued()
    }

    /// The typed outbox behind this reference, if it is an outbox of `T`.
    pub fn outbox<T: Message>(&self) -> Option<Outbox<T>> {
        self.sending_handle(Direction::Out)
    }

    /// An [`Outbox`] handle on this box's store, if the box goes `dir` and carries `T`.
    fn sending_handle<T: Message>(&self, dir: Direction) -> Option<Outbox<T>> {
        if self.direction() != dir {
            return None;
        }
        if let Some(slot) = self.store.as_slot() {
            return (slot.message_type() == TypeId::of::<T>())
                .then(|| Outbox::slot(slot.core.clone(), slot.index));
        }
        let store = self.store.clone().as_any().downcast().ok()?;
        Some(Outbox::from_store(store))
    }

    pub(crate) fn message_type(&self) -> TypeId {
        self.store.message_type()
    }

    /// A new box of the same message type, named `id` (used by chassis to mirror a child's box).
    pub(crate) fn new_like(
        &self,
        owner: &crate::owners::Owner,
        meta: Arc<BoxMeta>,
        dir: Direction,
    ) -> BoxRef {
        BoxRef::new(self.store.new_like(owner, meta, dir))
    }

    /// The Rust type of the messages it carries.
    pub(crate) fn message_type_name(&self) -> &'static str {
        self.store.message_type_name()
    }

    /// A way to send straight into this inbox, if it is an inbox of `T`: an [`Outbox`] handle
    /// with no box of its own. It is declared by no component and shown in no graph: its
    /// sends land in this inbox (through the inbox's own passthrough link, if it has one), as
    /// if from an outbox linked to it for good, with the inbox's capacity, byte bound and end
    /// (§2, §3). Its [`Outbox::id`] and [`Outbox::boxref`] are the inbox's. For a sender wired
    /// once and never relinked, where a box of its own would cost a store per use (a server
    /// telling each connection's protocol how the connection ended).
    ///
    /// Use it only to send ([`Outbox::send`], [`Outbox::try_send`], [`Outbox::force_send`],
    /// [`Outbox::ready`]). The handle *is* the inbox: linking it with [`crate::link`] would
    /// link the inbox onward as a passthrough (its owner would receive nothing more),
    /// [`Outbox::is_linked`] and [`Outbox::buffered`] describe the inbox (false; its queue
    /// length) and [`Outbox::limit_bytes`] sets the inbox's byte bound.
    pub fn sender<T: Message>(&self) -> Option<Outbox<T>> {
        self.sending_handle(Direction::In)
    }
}

impl fmt::Debug for BoxRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BoxRef({} {})", self.direction(), self.id())
    }
}

/// A link that was made; [`Link::unlink`] removes it.
#[derive(Clone, Debug)]
pub struct Link {
    src: BoxRef,
    dst: BoxId,
    kind: LinkKind,
}

impl Link {
    /// Removes the link. Messages already delivered stay where they are; later sends from the
    /// source stay in the source until it is linked again.
    pub fn unlink(&self) {
        if self.src.linked_to().as_ref() == Some(&self.dst) {
            self.src.store.clone().unlink_erased();
        }
    }

    /// Which kind of linkage this is.
    pub fn kind(&self) -> LinkKind {
        self.kind
    }

    /// The source box.
    pub fn source(&self) -> BoxId {
        self.src.id()
    }

    /// The destination box.
    pub fn destination(&self) -> &BoxId {
        &self.dst
    }
}

/// Why a linkage could not be made. Every variant names the boxes involved.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WiringError {
    /// The two boxes carry different message types.
    TypeMismatch {
        /// The source box.
        src: BoxId,
        /// The destination box.
        dst: BoxId,
    },
    /// An inbox cannot send to an outbox.
    WrongDirection {
        /// The source box.
        src: BoxId,
        /// The destination box.
        dst: BoxId,
    },
    /// The source already has a destination (Axon's `BoxAlreadyLinkedToDestination`).
    AlreadyLinked {
        /// The source box.
        src: BoxId,
        /// Where it already goes.
        existing: BoxId,
    },
    /// The link would make messages go round in a circle of forwards.
    Cycle {
        /// The source box.
        src: BoxId,
        /// The destination box.
        dst: BoxId,
    },
    /// The destination belongs to a component that has ended; the source keeps its messages.
    Closed {
        /// The source box.
        src: BoxId,
        /// The destination box.
        dst: BoxId,
    },
    /// A linkage names a component that is not there.
    UnknownComponent {
        /// The component name given.
        component: String,
    },
    /// A linkage names a box the component does not have.
    UnknownBox {
        /// The component.
        component: String,
        /// The box name given.
        name: String,
        /// The boxes it does have.
        available: Vec<String>,
    },
    /// A component declared two boxes with the same name.
    DuplicateBox {
        /// The component.
        component: String,
        /// The repeated name.
        name: String,
    },
    /// A chassis was given no components.
    Empty {
        /// The chassis.
        chassis: &'static str,
    },
}

impl fmt::Display for WiringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WiringError::TypeMismatch { src, dst } => write!(
                f,
                "cannot link {src} ({}) to {dst} ({}): the message types differ",
                src.message_type, dst.message_type
            ),
            WiringError::WrongDirection { src, dst } => write!(
                f,
                "cannot link {src} ({}) to {dst} ({}): messages flow from an outbox or a passed-through inbox, never from an inbox into an outbox",
                src.direction, dst.direction
            ),
            WiringError::AlreadyLinked { src, existing } => {
                write!(f, "{src} is already linked to {existing}; unlink it first")
            }
            WiringError::Cycle { src, dst } => {
                write!(f, "linking {src} to {dst} would make a cycle of forwards")
            }
            WiringError::Closed { src, dst } => write!(
                f,
                "cannot link {src} to {dst}: its component has ended (the messages stay in {src})"
            ),
            WiringError::UnknownComponent { component } => {
                write!(f, "no component named {component:?}")
            }
            WiringError::UnknownBox {
                component,
                name,
                available,
            } => write!(
                f,
                "component {component:?} has no box named {name:?} (it has: {})",
                available.join(", ")
            ),
            WiringError::DuplicateBox { component, name } => {
                write!(f, "component {component:?} declares the box {name:?} twice")
            }
            WiringError::Empty { chassis } => write!(f, "a {chassis} needs at least one component"),
        }
    }
}

impl std::error::Error for WiringError {}

/// Links two boxes named by reference. The kind follows from their directions: outbox -> inbox,
/// inbox -> inbox (passthrough into a child), outbox -> outbox (passthrough out of a child).
/// Messages the source already holds move to the destination in order.
pub fn link_refs(src: &BoxRef, dst: &BoxRef) -> Result<Link, WiringError> {
    let kind = LinkKind::between(src.direction(), dst.direction()).ok_or_else(|| {
        WiringError::WrongDirection {
            src: src.id(),
            dst: dst.id(),
        }
    })?;
    if src.message_type() != dst.message_type() {
        return Err(WiringError::TypeMismatch {
            src: src.id(),
            dst: dst.id(),
        });
    }
    // An outbox kept by its component's table is linked to through a store of its own
    // (`slot.rs`): a passthrough out of a child goes through it.
    let to = match dst.store.as_slot() {
        Some(slot) => slot.own_store(),
        None => dst.store.clone(),
    };
    src.store.clone().link_erased(to).map_err(|e| match e {
        LinkFailure::AlreadyLinked(existing) => WiringError::AlreadyLinked {
            src: src.id(),
            existing,
        },
        LinkFailure::Closed(dst) => WiringError::Closed { src: src.id(), dst },
        LinkFailure::Cycle => WiringError::Cycle {
            src: src.id(),
            dst: dst.id(),
        },
        LinkFailure::TypeMismatch => WiringError::TypeMismatch {
            src: src.id(),
            dst: dst.id(),
        },
    })?;
    Ok(Link {
        src: src.clone(),
        dst: dst.id(),
        kind,
    })
}

/// Links an outbox to an inbox of the same type: the types are checked by the compiler.
pub fn link<T: Message>(src: &Outbox<T>, dst: &Inbox<T>) -> Result<Link, WiringError> {
    link_refs(&src.boxref(), &dst.boxref())
}

/// Removes whatever link leaves `src`, returning where it went.
pub fn unlink(src: &BoxRef) -> Option<BoxId> {
    src.store.clone().unlink_erased()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sender straight into an inbox has no box of its own: what it sends lands in the
    /// inbox, in order, and only an inbox of its message type gives one.
    #[test]
    fn a_sender_into_an_inbox_delivers_there_and_has_no_box_of_its_own() {
        let inbox = Inbox::<u64>::standalone("in", 4);
        let r = inbox.boxref();
        let tx = r
            .sender::<u64>()
            .unwrap_or_else(|| panic!("an inbox of u64"));
        assert!(tx.try_send(1).is_ok() && tx.try_send(2).is_ok());
        assert_eq!((inbox.try_recv(), inbox.try_recv()), (Some(1), Some(2)));
        assert_eq!(tx.id(), inbox.id(), "its id is the inbox's");
        assert!(r.sender::<String>().is_none(), "another type");
        let out = Outbox::<u64>::standalone("out");
        assert!(out.boxref().sender::<u64>().is_none(), "not an inbox");
        inbox.close();
        assert!(matches!(
            tx.try_send(3),
            Err(crate::TrySendError::Closed(3))
        ));
    }
}
