//! Outboxes kept by their component's table: a linked outbox keeps no store of its own.
//!
//! Each box used to own a [`Store`] (one 80-byte block of the allocator); a link set the
//! outbox's store to forward to the inbox's, and a send locked the outbox's store to follow
//! it. A connection's outboxes are linked for all their lives and hold nothing, so three of a
//! client connection's six stores were only ever a link and a lock.
//!
//! An outbox declared with [`ComponentBuilder::outbox`](crate::ComponentBuilder::outbox)
//! (and friends) is one entry of its component's table instead, where its sends go, and a
//! descriptor that says what it is (its name, description, type, whether it is a `signal` and
//! the byte bound its handle set: [`Slotted`], shared by every outbox declared alike), kept
//! in the record of its component's kind ([`crate::spec::Kind`], shared by every component
//! of that kind built alike), not in the table: a table entry is 16 bytes per outbox per
//! component per connection. The entry is the descriptor while the outbox is neither linked
//! nor used, the store it is linked to while it is linked, or a store of its own once it
//! needs one: when it is sent to while not linked (what it keeps then is kept there and
//! moved, in order, when it is linked), when something links to it (a passthrough out of a
//! child: the chain then goes through it), or when a final message goes out on `signal` (the
//! store notes it, as every `signal` did). Its descriptor then says so ([`Slotted::own`]: the
//! component moves to the record of its kind with that descriptor); from then on the outbox
//! is what every box was before: its store, linked and unlinked as a store is.
//!
//! The handle ([`crate::Outbox`]) is the component's block and the outbox's place in its
//! table. A send takes the table's lock (the component's exit cell's: one lock moved, not
//! added), takes a reference to the outbox's entry, and pushes into the end of the chain from
//! there as before. Linking and unlinking change the entry under that lock, so a send made
//! after a link or an unlink returned goes where it says.

use std::any::{Any, TypeId};
use std::sync::{Arc, Mutex};

use crate::component::Core;
use crate::owners::Owner;
use crate::scheduler::CellState;
use crate::spec::{BoxId, BoxMeta, Direction};
use crate::store::{
    as_any_ref, lock, ByteBound, ErasedStore, LinkFailure, PushError, Refused, Store,
};

/// What an outbox kept by its component's table is: shared by every outbox declared alike.
pub(crate) struct Slotted<T> {
    meta: Arc<BoxMeta>,
    /// A `signal`: a final message makes it a store of its own, which notes it.
    signal: bool,
    /// The byte bound its handle set (a store made for it keeps it).
    bound: Option<Arc<ByteBound<T>>>,
    /// It has a store of its own (the table's entry): every use goes there.
    own: bool,
}

/// The shared descriptors, of any type: a few (one per outbox declared differently).
static DESCRIPTORS: Mutex<Vec<Arc<dyn ErasedStore>>> = Mutex::new(Vec::new());

/// How many descriptors are shared at most: past them, an outbox gets one of its own.
const SHARED_DESCRIPTORS: usize = 256;

/// The descriptor of an outbox of `T` called `meta`, shared with every other declared alike.
pub(crate) fn descriptor<T: Send + 'static>(
    meta: Arc<BoxMeta>,
    signal: bool,
    bound: Option<Arc<ByteBound<T>>>,
    own: bool,
) -> Arc<dyn ErasedStore> {
    let mut shared = lock(&DESCRIPTORS);
    let alike = |p: &&Arc<dyn ErasedStore>| {
        as_any_ref(&***p)
            .downcast_ref::<Slotted<T>>()
            .is_some_and(|d| {
                Arc::ptr_eq(&d.meta, &meta)
                    && d.signal == signal
                    && d.own == own
                    && match (&d.bound, &bound) {
                        (None, None) => true,
                        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                        _ => false,
                    }
            })
    };
    if let Some(p) = shared.iter().find(alike) {
        return p.clone();
    }
    let p: Arc<dyn ErasedStore> = Arc::new(Slotted::<T> {
        meta,
        signal,
        bound,
        own,
    });
    if shared.len() < SHARED_DESCRIPTORS {
        shared.push(p.clone());
    }
    p
}

impl<T: Send + 'static> Slotted<T> {
    fn with(&self, bound: Option<Arc<ByteBound<T>>>, own: bool) -> Arc<dyn ErasedStore> {
        descriptor::<T>(self.meta.clone(), self.signal, bound, own)
    }
}

impl<T: Send + 'static> ErasedStore for Slotted<T> {
    // Only the table's listing reads a descriptor: a look-up hands out a [`SlotRef`].
    fn id(&self) -> BoxId {
        BoxId {
            owner: "(outbox descriptor)".into(),
            name: self.meta.name.clone(),
            direction: Direction::Out,
            message_type: std::any::type_name::<T>(),
        }
    }
    fn meta(&self) -> Arc<BoxMeta> {
        self.meta.clone()
    }
    fn direction(&self) -> Direction {
        Direction::Out
    }
    crate::store::typed_answers!(T);
    fn new_like(&self, owner: &Owner, meta: Arc<BoxMeta>, dir: Direction) -> Arc<dyn ErasedStore> {
        Store::<T>::new(owner.clone(), meta, dir, crate::DEFAULT_CAPACITY, false)
    }
    fn is_slot(&self) -> bool {
        true
    }
    fn slot_has_own(&self) -> bool {
        self.own
    }
    fn make_own_erased(&self, core: &Arc<Core>, index: usize) -> Option<Arc<dyn ErasedStore>> {
        Some(make_own::<T>(core, &mut core.exit.lock(), index))
    }
}

/// The typed descriptor of the outbox at `index` of the table whose lock `g` is held (its
/// kind's).
fn slotted<T: Send + 'static>(g: &CellState, index: usize) -> &Slotted<T> {
    as_any_ref(&**descriptor_at(g, index))
        .downcast_ref::<Slotted<T>>()
        .expect("an outbox's handle names its descriptor, of its type")
}

/// The descriptor of the outbox at `index` of the table whose lock `g` is held.
fn descriptor_at(g: &CellState, index: usize) -> &Arc<dyn ErasedStore> {
    g.kind
        .outbox(index)
        .expect("an outbox kept by the table has a descriptor in its kind")
}

/// Gives the outbox at `index` of `core`'s table a store of its own, if it has none (under
/// the table's lock, `g`), forwarding where the table sent it; returns it.
fn make_own<T: Send + 'static>(core: &Arc<Core>, g: &mut CellState, index: usize) -> Arc<Store<T>> {
    let d = slotted::<T>(g, index);
    if !d.own {
        let to = &g.table()[index].r.store;
        let to = (!to.is_slot()).then(|| to.clone());
        let owner = crate::rare::owner_in(core, g);
        let own = Store::<T>::new_own(owner, d.meta.clone(), d.signal, d.bound.clone(), to);
        let mark = d.with(d.bound.clone(), true);
        g.kind = g.kind.with(index, mark);
        g.table_mut()[index].r = crate::BoxRef::new(own.clone());
        return own;
    }
    typed(g.table()[index].r.store.clone()).expect("an outbox's own store, of its type")
}

/// `store` as a store of `T`, if it is one (a descriptor is not).
fn typed<T: Send + 'static>(store: Arc<dyn ErasedStore>) -> Option<Arc<Store<T>>> {
    store.as_any().downcast::<Store<T>>().ok()
}

/// Sends `msg` from the outbox at `index` of `core` (as [`Store::try_push`]): into the chain
/// from the store it is linked to, or from its own (made now if it has none and is not
/// linked, or a final message goes out on a `signal`).
#[inline]
pub(crate) fn push<T: Send + 'static>(
    core: &Arc<Core>,
    index: usize,
    msg: T,
    force: bool,
) -> Result<(), PushError<T>> {
    let final_msg = crate::component::is_final_control(&msg);
    // The table's lock is held for the whole push, whichever way it goes, so that a link or
    // an unlink is ordered with it; the tasks to wake are woken once it is released.
    let g = core.exit.lock();
    if !final_msg {
        // The usual send, an outbox linked to an inbox: the inbox is locked while the
        // table's lock is held (as a store that forwards did under its own), so the link is
        // followed without a count of its own. Locks are taken in the chain's direction.
        let to = &g.table()[index].r.store;
        if let Some(to) = as_any_ref(&**to).downcast_ref::<Store<T>>() {
            return match to.push_held(msg, force) {
                Ok(woken) => {
                    drop(g);
                    woken.wake();
                    Ok(())
                }
                // Named while the link that found it is still the outbox's.
                Err(Refused::Full(m, out)) => Err(PushError::Full(m, full_here(&g, index), out)),
                Err(Refused::Other(e)) => Err(e),
            };
        }
    }
    push_slow(core, g, index, msg, force, final_msg)
}

/// [`push`] from an outbox that is not linked and has no store (it gets one), or of a final
/// message (a `signal`'s notes it in a store of its own); `g`, the table's lock, held until
/// the push is done.
#[cold]
#[inline(never)]
fn push_slow<T: Send + 'static>(
    core: &Arc<Core>,
    mut g: std::sync::MutexGuard<'_, CellState>,
    index: usize,
    msg: T,
    force: bool,
    final_msg: bool,
) -> Result<(), PushError<T>> {
    let d = slotted::<T>(&g, index);
    let to = &g.table()[index].r.store;
    let to = if (final_msg && d.signal) || to.is_slot() {
        make_own(core, &mut g, index)
    } else {
        typed(to.clone()).expect("an outbox's link, of its type")
    };
    let woken = to.try_push_woken(msg, force)?;
    drop(g);
    woken.wake();
    Ok(())
}

/// The store a send from the outbox at `index` found full: where it is linked (its
/// component's table `g` locked).
#[cold]
#[inline(never)]
fn full_here<T: Send + 'static>(g: &CellState, index: usize) -> Arc<Store<T>> {
    typed(g.table()[index].r.store.clone()).expect("the store the outbox sent to")
}

/// The full end of the chain from the outbox at `index` of `core` (as [`Store::full_end`]);
/// `None` if it has room or it is not linked and has no store.
#[inline]
pub(crate) fn full_end<T: Send + 'static>(core: &Core, index: usize) -> Option<Arc<Store<T>>> {
    {
        let g = core.exit.lock();
        let to = &g.table()[index].r.store;
        match as_any_ref(&**to).downcast_ref::<Store<T>>() {
            None => return None,
            // An inbox whose owner waits on its empty queue (a relay's, nearly every time)
            // has room, seen without its lock.
            Some(to) if to.has_room_now() => return None,
            Some(_) => {}
        }
    }
    target::<T>(core, index).and_then(|s| s.full_end())
}

/// Where the outbox at `index` of `core` sends now, without making anything: `None` if it is
/// not linked and has no store.
pub(crate) fn target<T: Send + 'static>(core: &Core, index: usize) -> Option<Arc<Store<T>>> {
    typed(core.exit.lock().table()[index].r.store.clone())
}

/// True if the outbox at `index` of `core` is linked (through its own store, if it has one).
pub(crate) fn is_linked(core: &Core, index: usize) -> bool {
    if let Some(own) = own_erased(core, index) {
        return own.forward().is_some();
    }
    !core.exit.lock().table()[index].r.store.is_slot()
}

/// The store the outbox at `index` of `core` has of its own, if it has one.
pub(crate) fn own<T: Send + 'static>(core: &Core, index: usize) -> Option<Arc<Store<T>>> {
    own_erased(core, index).and_then(typed)
}

fn own_erased(core: &Core, index: usize) -> Option<Arc<dyn ErasedStore>> {
    let g = core.exit.lock();
    // A store of its own is marked in the descriptor.
    let own = is_own(&**descriptor_at(&g, index));
    own.then(|| g.table()[index].r.store.clone())
}

/// True if the descriptor `d` says its outbox has a store of its own.
fn is_own(d: &dyn ErasedStore) -> bool {
    d.slot_has_own()
}

/// Bounds what the outbox at `index` of `core` keeps while it is not linked (as
/// [`Store::set_byte_limit`]): its own store's bound, or its descriptor's, for a store made
/// later.
pub(crate) fn limit_bytes<T: Send + 'static>(
    core: &Arc<Core>,
    index: usize,
    max: usize,
    weigh: fn(&T) -> usize,
) {
    if let Some(own) = own::<T>(core, index) {
        own.set_byte_limit(max, weigh);
        return;
    }
    let bound = crate::store::shared_bound(max.max(1), weigh);
    let mut g = core.exit.lock();
    let d = slotted::<T>(&g, index);
    if d.own {
        drop(g);
        return limit_bytes(core, index, max, weigh);
    }
    let mark = d.with(Some(bound), false);
    // The entry is the descriptor too while the outbox is not linked.
    let table = g.table_mut();
    if table[index].r.store.is_slot() {
        table[index].r = crate::BoxRef::new(mark.clone());
    }
    g.kind = g.kind.with(index, mark);
}

/// Which box the outbox at `index` of `core` is.
pub(crate) fn id(core: &Core, index: usize) -> BoxId {
    let (d, kind) = {
        let g = core.exit.lock();
        (descriptor_at(&g, index).clone(), g.kind.name.clone())
    };
    BoxId {
        owner: Arc::from(crate::component::Label::new(kind, core.id().0)),
        name: d.meta().name.clone(),
        direction: Direction::Out,
        message_type: d.message_type_name(),
    }
}

/// A reference to the outbox at `index` of `core`, for linking it by name and for the graph.
pub(crate) fn boxref(core: &Arc<Core>, index: usize) -> crate::BoxRef {
    crate::BoxRef::new(slot_ref(core, index))
}

pub(crate) fn slot_ref(core: &Arc<Core>, index: usize) -> Arc<dyn ErasedStore> {
    let desc = descriptor_at(&core.exit.lock(), index).clone();
    Arc::new(SlotRef {
        core: core.clone(),
        index,
        desc,
    })
}

/// An outbox kept by its component's table, as a box reference: its component's block and its
/// place there.
pub(crate) struct SlotRef {
    pub(crate) core: Arc<Core>,
    pub(crate) index: usize,
    /// Its descriptor when the reference was made (its name and type do not change).
    desc: Arc<dyn ErasedStore>,
}

impl SlotRef {
    /// The message type of the outbox.
    pub(crate) fn message_type(&self) -> TypeId {
        self.desc.message_type()
    }

    /// A store of its own (made now if it has none): what a link to it reaches.
    pub(crate) fn own_store(&self) -> Arc<dyn ErasedStore> {
        if let Some(own) = own_erased(&self.core, self.index) {
            return own;
        }
        (self.desc)
            .make_own_erased(&self.core, self.index)
            .expect("a slot reference's descriptor")
    }
}

impl ErasedStore for SlotRef {
    fn id(&self) -> BoxId {
        id(&self.core, self.index)
    }
    fn meta(&self) -> Arc<BoxMeta> {
        self.desc.meta()
    }
    fn direction(&self) -> Direction {
        Direction::Out
    }
    fn message_type(&self) -> TypeId {
        self.desc.message_type()
    }
    fn message_type_name(&self) -> &'static str {
        self.desc.message_type_name()
    }
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
    fn link_erased(self: Arc<Self>, dst: Arc<dyn ErasedStore>) -> Result<(), LinkFailure> {
        // An outbox kept by a table is linked to through a store of its own.
        let dst = match dst.as_slot() {
            Some(s) => s.own_store(),
            None => dst,
        };
        if dst.message_type() != self.message_type() {
            return Err(LinkFailure::TypeMismatch);
        }
        if let Some(own) = own_erased(&self.core, self.index) {
            return own.link_erased(dst);
        }
        // Links are made one at a time (see `Store::link_to`). Nothing forwards to an outbox
        // with no store, so no link from it can close a cycle, and it holds nothing to move.
        let one_at_a_time = lock(&crate::store::LINKING);
        if dst.end_closed() {
            return Err(LinkFailure::Closed(dst.id()));
        }
        let mut g = self.core.exit.lock();
        let to = &g.table()[self.index].r.store;
        if !to.is_slot() {
            // Linked already, or given a store of its own meanwhile (a send).
            let to = to.clone();
            let own = is_own(&**descriptor_at(&g, self.index));
            drop(g);
            drop(one_at_a_time);
            if own {
                return to.link_erased(dst);
            }
            return Err(LinkFailure::AlreadyLinked(to.id()));
        }
        g.table_mut()[self.index].r = crate::BoxRef::new(dst);
        Ok(())
    }
    fn unlink_erased(self: Arc<Self>) -> Option<BoxId> {
        let mut g = self.core.exit.lock();
        let to = g.table()[self.index].r.store.clone();
        if to.is_slot() {
            return None;
        }
        let d = descriptor_at(&g, self.index).clone();
        if is_own(&*d) {
            drop(g);
            return to.unlink_erased();
        }
        g.table_mut()[self.index].r = crate::BoxRef::new(d);
        drop(g);
        // Senders on this outbox may be waiting for room at the end of the old chain: woken,
        // they try again (and keep what they send, as the outbox is no longer linked).
        to.wake_senders_erased();
        Some(to.id())
    }
    fn forward(&self) -> Option<BoxId> {
        if let Some(own) = own_erased(&self.core, self.index) {
            return own.forward();
        }
        let to = self.core.exit.lock().table()[self.index].r.store.clone();
        (!to.is_slot()).then(|| to.id())
    }
    fn new_like(&self, owner: &Owner, meta: Arc<BoxMeta>, dir: Direction) -> Arc<dyn ErasedStore> {
        self.desc.new_like(owner, meta, dir)
    }
    fn close_erased(&self) -> usize {
        own_erased(&self.core, self.index).map_or(0, |own| own.close_erased())
    }
    fn queued(&self) -> usize {
        own_erased(&self.core, self.index).map_or(0, |own| own.queued())
    }
    fn as_slot(&self) -> Option<&SlotRef> {
        Some(self)
    }
    fn end_closed(&self) -> bool {
        let to = self.core.exit.lock().table()[self.index].r.store.clone();
        to.end_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{link_refs, unlink, Component, Inbox, Outbox};

    /// A component with one outbox of `u64`, and its handle (the component is never run).
    fn sender() -> (Component, Outbox<u64>) {
        let mut b = Component::build("Sender");
        let out = b.outbox::<u64>("outbox", "numbers");
        let c = b.main(|_| async { Ok(()) });
        (c, out)
    }

    /// The store the outbox has of its own, if any.
    fn own_store(c: &Component) -> Option<Arc<Store<u64>>> {
        own::<u64>(&c.core, 0)
    }

    fn drain(inbox: &Inbox<u64>) -> Vec<u64> {
        std::iter::from_fn(|| inbox.try_recv()).collect()
    }

    /// A linked outbox keeps no store: sends land in the inbox through the table's entry, and
    /// the component's table holds the link. Fails on the code before (every box a store).
    #[test]
    fn a_linked_outbox_keeps_no_store() {
        let (c, out) = sender();
        assert_eq!(std::mem::size_of_val(&out), 16, "a block and a place");
        let inbox = Inbox::<u64>::standalone("in", 8);
        link_refs(&c.boxref("outbox").unwrap(), &inbox.boxref()).unwrap();
        for i in 0..5 {
            out.try_send(i).unwrap();
        }
        assert_eq!(drain(&inbox), (0..5).collect::<Vec<_>>());
        assert!(own_store(&c).is_none(), "no store of its own");
        assert_eq!(crate::rare::made_count(&c.core), 0);
        assert!(out.is_linked());
        assert_eq!(c.boxref("outbox").unwrap().linked_to(), Some(inbox.id()));
        // Full at the inbox: the inbox's bound, and the sender is told so.
        for i in 0..8 {
            out.try_send(i).unwrap();
        }
        assert!(matches!(out.try_send(8), Err(crate::TrySendError::Full(8))));
        assert!(own_store(&c).is_none());
    }

    /// An outbox is one entry of its component's table (where it sends), its descriptor in
    /// the record of its component's kind, shared by the components built alike: a table of
    /// four boxes is four entries (16 bytes each), not six. Fails on the code before (a second
    /// entry per outbox). A component built differently under the same name has a record of
    /// its own, and its boxes are listed, linked and sent to as declared.
    #[test]
    fn an_outbox_is_one_entry_and_its_descriptor_is_its_kind_s() {
        let build = |outbox: &'static str| {
            let mut b = Component::build("OneEntry");
            let inbox = b.inbox::<u64>("inbox", "numbers in");
            b.control();
            let out = b.outbox::<u64>(outbox, "numbers out");
            b.signal();
            (b.main(|_| async { Ok(()) }), inbox, out)
        };
        let entries = |c: &Component| c.core.exit.lock().table().len();
        let kind = |c: &Component| c.core.exit.lock().kind.clone();
        let (a, _, _) = build("outbox");
        let (b, _, out) = build("outbox");
        assert_eq!(entries(&a), 4, "one entry a box");
        assert!(Arc::ptr_eq(&kind(&a), &kind(&b)), "built alike: one record");
        let (c, c_in, c_out) = build("other");
        assert!(!Arc::ptr_eq(&kind(&a), &kind(&c)), "built differently");
        let names: Vec<_> = c.boxes().map(|s| s.name.to_string()).collect();
        assert_eq!(names, ["inbox", "control", "other", "signal"]);
        // Linked, the entry is the inbox it sends to; the box is still listed as declared.
        link_refs(&c.boxref("other").unwrap(), &b.boxref("inbox").unwrap()).unwrap();
        link_refs(&out.boxref(), &c.boxref("inbox").unwrap()).unwrap();
        out.try_send(1).unwrap();
        c_out.try_send(2).unwrap();
        assert_eq!(drain(&c_in), vec![1]);
        let names: Vec<_> = c.boxes().map(|s| s.name.to_string()).collect();
        assert_eq!(names, ["inbox", "control", "other", "signal"]);
        assert_eq!(
            c.boxref("other").unwrap().linked_to(),
            Some(b.boxref("inbox").unwrap().id())
        );
        assert_eq!(entries(&c), 4);
    }

    /// An unlinked outbox sent to makes a store of its own, keeps what it is sent (up to its
    /// capacity, and its byte bound), and moves it, in order, when linked; later sends follow.
    #[test]
    fn an_unlinked_outbox_keeps_its_messages_and_moves_them_when_linked() {
        let (c, out) = sender();
        out.try_send(1).unwrap();
        out.try_send(2).unwrap();
        assert_eq!(out.buffered(), 2);
        assert!(own_store(&c).is_some(), "made when sent to unlinked");
        let inbox = Inbox::<u64>::standalone("in", 64);
        link_refs(&out.boxref(), &inbox.boxref()).unwrap();
        out.try_send(3).unwrap();
        assert_eq!(drain(&inbox), vec![1, 2, 3]);
        assert_eq!(out.buffered(), 0);
        // Unlinked again: kept again.
        assert_eq!(unlink(&out.boxref()), Some(inbox.id()));
        out.try_send(4).unwrap();
        assert!(inbox.is_empty() && out.buffered() == 1);
        link_refs(&out.boxref(), &inbox.boxref()).unwrap();
        assert_eq!(drain(&inbox), vec![4]);
    }

    /// A byte bound set on an outbox with no store is kept for the store it makes later.
    #[test]
    fn a_byte_bound_set_before_the_store_is_made_bounds_it() {
        let mut b = Component::build("Sender");
        let out = b.outbox::<Vec<u8>>("outbox", "bytes").limit_bytes(100);
        let _c = b.main(|_| async { Ok(()) });
        out.try_send(vec![0; 60]).unwrap();
        out.try_send(vec![0; 60]).unwrap();
        assert!(matches!(
            out.try_send(vec![0; 1]),
            Err(crate::TrySendError::Unlinked(_))
        ));
    }

    /// Relinked and unlinked while no store is made: the table's entry moves, and unlinked it
    /// keeps nothing of the old link.
    #[test]
    fn an_outbox_with_no_store_relinks_through_its_table() {
        let (c, out) = sender();
        let (a, b) = (
            Inbox::<u64>::standalone("a", 8),
            Inbox::<u64>::standalone("b", 8),
        );
        let r = c.boxref("outbox").unwrap();
        link_refs(&r, &a.boxref()).unwrap();
        assert!(matches!(
            link_refs(&r, &b.boxref()),
            Err(crate::WiringError::AlreadyLinked { .. })
        ));
        out.try_send(1).unwrap();
        assert_eq!(unlink(&r), Some(a.id()));
        assert_eq!(unlink(&r), None);
        link_refs(&r, &b.boxref()).unwrap();
        out.try_send(2).unwrap();
        assert_eq!((drain(&a), drain(&b)), (vec![1], vec![2]));
        assert!(own_store(&c).is_none());
    }

    /// A send racing a link across threads: whether the send made the outbox's store first
    /// (its messages then moved by the link) or came after the link, every message lands in
    /// the inbox, in order. Many rounds, each with a fresh component.
    #[test]
    fn sends_racing_a_link_across_threads_keep_their_order() {
        const M: u64 = 48;
        for round in 0..200 {
            let (c, out) = sender();
            let inbox = Inbox::<u64>::standalone("in", 64);
            let r = c.boxref("outbox").unwrap();
            let t = std::thread::spawn(move || {
                for i in 0..M {
                    out.try_send(i).unwrap();
                }
            });
            if round % 2 == 0 {
                std::thread::yield_now();
            }
            link_refs(&r, &inbox.boxref()).unwrap();
            t.join().unwrap();
            assert_eq!(drain(&inbox), (0..M).collect::<Vec<_>>(), "round {round}");
        }
    }

    /// Sends from one thread while another moves the link between two inboxes, back and
    /// forth: nothing is lost or doubled, and each inbox gets its share in order.
    #[test]
    fn sends_racing_relinks_across_threads_lose_nothing() {
        const N: u64 = 20_000;
        let (c, out) = sender();
        let (a, b) = (
            Inbox::<u64>::standalone("a", 1 << 20),
            Inbox::<u64>::standalone("b", 1 << 20),
        );
        let r = c.boxref("outbox").unwrap();
        link_refs(&r, &a.boxref()).unwrap();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let t = {
            let done = done.clone();
            std::thread::spawn(move || {
                for i in 0..N {
                    // Kept in the outbox's own store while it is unlinked (64 at most).
                    while let Err(e) = out.try_send(i) {
                        assert!(matches!(e, crate::TrySendError::Unlinked(_)));
                        std::thread::yield_now();
                    }
                }
                done.store(true, std::sync::atomic::Ordering::Release);
            })
        };
        let targets = [a.boxref(), b.boxref()];
        let mut switches = 0;
        while !done.load(std::sync::atomic::Ordering::Acquire) {
            unlink(&r);
            link_refs(&r, &targets[(switches + 1) % 2]).unwrap();
            switches += 1;
        }
        t.join().unwrap();
        let (a, b) = (drain(&a), drain(&b));
        for v in [&a, &b] {
            assert!(v.windows(2).all(|w| w[0] < w[1]), "in order");
        }
        let mut all: Vec<u64> = a.iter().chain(&b).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..N).collect::<Vec<_>>(), "{switches} switches");
    }

    /// A passthrough out of a child: the parent's outbox, linked to, makes a store of its own,
    /// and the chain goes through it in one step; relinked mid-stream (the parent's outbox to
    /// another inbox), the child's later sends follow, in order.
    #[test]
    fn a_passthrough_chain_relinked_mid_stream_keeps_order() {
        let (child, out) = sender();
        let mut b = Component::build("Parent");
        let _parent_out = b.outbox::<u64>("outbox", "the child's numbers");
        let parent = b.main(|_| async { Ok(()) });
        let (a, z) = (
            Inbox::<u64>::standalone("a", 64),
            Inbox::<u64>::standalone("z", 64),
        );
        let p = parent.boxref("outbox").unwrap();
        link_refs(&child.boxref("outbox").unwrap(), &p).unwrap();
        assert!(own::<u64>(&parent.core, 0).is_some(), "linked to: a store");
        assert!(own_store(&child).is_none(), "the child's outbox: none");
        link_refs(&p, &a.boxref()).unwrap();
        for i in 0..10 {
            out.try_send(i).unwrap();
        }
        // Not linked on: the parent's outbox keeps them.
        unlink(&p);
        for i in 10..20 {
            out.try_send(i).unwrap();
        }
        assert_eq!(parent.boxref("outbox").unwrap().queued(), 10);
        link_refs(&p, &z.boxref()).unwrap();
        for i in 20..30 {
            out.try_send(i).unwrap();
        }
        assert_eq!(drain(&a), (0..10).collect::<Vec<_>>());
        assert_eq!(drain(&z), (10..30).collect::<Vec<_>>());
        assert!(own_store(&child).is_none());
    }

    /// A final message on a `signal` with no store makes one, which notes it, so the runtime
    /// never sends another; the message is delivered where the link goes.
    #[test]
    fn a_final_message_on_a_signal_with_no_store_is_noted() {
        let mut b = Component::build("Ender");
        let signal = b.signal();
        let c = b.main(|_| async { Ok(()) });
        let control = Inbox::<crate::Control>::standalone("control", 8);
        link_refs(&c.boxref("signal").unwrap(), &control.boxref()).unwrap();
        signal.try_send(crate::Control::notice(7u32)).unwrap();
        assert!(!signal.final_sent());
        assert!(own::<crate::Control>(&c.core, 0).is_none());
        signal
            .try_send(crate::Control::producer_finished())
            .unwrap();
        assert!(signal.final_sent());
        assert!(signal.is_linked());
        let got: Vec<_> = std::iter::from_fn(|| control.try_recv()).collect();
        assert_eq!(got.len(), 2);
        assert!(got[1].is_final());
    }
}
