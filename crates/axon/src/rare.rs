//! Rare boxes: declared, listed and linked like any other box, but made on first use.
//!
//! Most boxes of a connection are used: its data comes and goes through them. A few are there
//! for what most connections never do: a client's `makessl` and `sslready` (a switch to TLS),
//! its `control` when nothing links it. Each declared box is a store (one 80-byte block), so
//! an idle client connection paid 240 bytes for three boxes nothing ever touched. A box
//! declared *rare* ([`ComponentBuilder::rare_inbox_from`](crate::ComponentBuilder::rare_inbox_from)
//! and friends) is, until it is used, a placeholder shared by every box declared alike (its
//! name, description, direction and type: what the component lists), kept in its kind's record
//! (`spec::Kind`, shared by every component of that kind built alike) and not in its
//! component's table (a client connection's table is three entries, not six), and nothing in
//! its owner's routine but an empty handle ([`RareInbox`]). Its place is
//! [`crate::spec::RARE`] and up, past any table.
//!
//! Its store is made the first time anything needs it: a look-up by name
//! ([`Component::boxref`](crate::Component::boxref), [`Handle::boxref`](crate::Handle::boxref),
//! a Graphline's or Pipeline's linking, [`Handle::stop`](crate::Handle::stop)), or its owner's
//! send ([`RareBoxes::outbox`]) or a wait that cannot be noted without it (an owner that is
//! not a group member). The made store is kept in a process-wide map keyed by the component's
//! block ([`MADE`]), where its owner's handle and the table's look-ups find it; it goes when
//! the block does. Its owner, a group member waiting on the empty handle, is woken when it is
//! made (its block is its waker), and takes it then ([`RareInbox::poll_recv`]).
//!
//! The owner's poll of an empty handle must be as cheap as a poll of an empty box it already
//! waits on (TcpClient polls `control` and `makessl` every time its task runs): it looks at
//! one count ([`UNTAKEN_ANY`]) of the owners with made inboxes they have not taken yet, and,
//! when it is not 0, at one word of a small table ([`UNTAKEN`]) that names such an owner by
//! its block; while neither names it and the poll is the owner's own (its member waker),
//! nothing can have come, and the poll ends there, with no lock.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll, Waker};

use crate::boxes::{Inbox, Message, Outbox, DEFAULT_CAPACITY};
use crate::component::Core;
use crate::owners::Owner;
use crate::spec::{BoxId, BoxMeta, Direction};
use crate::store::{ErasedStore, Store};

/// What a rare box is in its component's table until it is made: its name and description,
/// direction and type, shared by every box declared alike (a connection's `makessl` is one
/// placeholder for every client in the process).
pub(crate) struct Placeholder<T> {
    meta: Arc<BoxMeta>,
    direction: Direction,
    _type: PhantomData<fn() -> T>,
}

/// The shared placeholders, of any type: one per rare box declared differently (a few).
static PLACEHOLDERS: Mutex<Vec<Arc<dyn ErasedStore>>> = Mutex::new(Vec::new());

/// How many placeholders are shared at most (a program that makes box names on the fly must
/// not grow the list for ever): past them, a rare box gets a placeholder of its own.
const SHARED_PLACEHOLDERS: usize = 256;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while these locks are held.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The placeholder of a rare box of `T` called `meta`, going `direction`, shared with every
/// other declared alike.
pub(crate) fn placeholder<T: Message>(
    meta: Arc<BoxMeta>,
    direction: Direction,
) -> Arc<dyn ErasedStore> {
    let mut shared = lock(&PLACEHOLDERS);
    let alike = |p: &&Arc<dyn ErasedStore>| {
        p.message_type() == std::any::TypeId::of::<T>()
            && Arc::ptr_eq(&p.meta(), &meta)
            && p.direction() == direction
    };
    if let Some(p) = shared.iter().find(alike) {
        return p.clone();
    }
    let p: Arc<dyn ErasedStore> = Arc::new(Placeholder::<T> {
        meta,
        direction,
        _type: PhantomData,
    });
    if shared.len() < SHARED_PLACEHOLDERS {
        shared.push(p.clone());
    }
    p
}

impl<T: Message> ErasedStore for Placeholder<T> {
    // Only the table's listing reads a placeholder: every look-up that hands a box out makes
    // it first ([`resolve`]). What is asked of it otherwise is what an unused box would answer.
    fn id(&self) -> BoxId {
        BoxId {
            owner: "(rare box not made)".into(),
            name: self.meta.name.clone(),
            direction: self.direction,
            message_type: std::any::type_name::<T>(),
        }
    }
    fn meta(&self) -> Arc<BoxMeta> {
        self.meta.clone()
    }
    fn direction(&self) -> Direction {
        self.direction
    }
    crate::store::typed_answers!(T);
    fn new_like(&self, owner: &Owner, meta: Arc<BoxMeta>, dir: Direction) -> Arc<dyn ErasedStore> {
        Store::<T>::new(owner.clone(), meta, dir, DEFAULT_CAPACITY, false)
    }
    fn is_rare(&self) -> bool {
        true
    }
}

/// The rare boxes of one component that have been made.
#[derive(Default)]
struct Made {
    /// Its component has ended: a box made from now on is made closed.
    ended: bool,
    boxes: Vec<MadeBox>,
}

struct MadeBox {
    /// Its place in the component's table.
    index: usize,
    store: Arc<dyn ErasedStore>,
    /// An inbox its owner has not taken yet (counted in [`UNTAKEN`]).
    untaken: bool,
}

impl Made {
    /// True if one of its inboxes waits to be taken by its owner.
    fn untaken(&self) -> bool {
        self.boxes.iter().any(|b| b.untaken)
    }
}

impl MadeBox {
    /// The store, found for its owner's handle (`take`: no longer counted as untaken) or for
    /// anyone else.
    fn found(&mut self, take: bool) -> Arc<dyn ErasedStore> {
        if take {
            self.untaken = false;
        }
        self.store.clone()
    }
}

/// The rare boxes made, by their component's block, and how many owners with untaken inboxes
/// each word of [`UNTAKEN`] stands for.
struct MadeMap {
    /// By their component's block (its address: the entry goes when the block is dropped,
    /// before the address can be another's).
    by_block: BTreeMap<usize, Made>,
    /// Owners with untaken inboxes, by their word of [`UNTAKEN`].
    owners: [u32; BUCKETS],
    /// The XOR of those owners' keys, by word: the one left when their count comes down to 1
    /// (so a word says [`SEVERAL`] only while two or more have untaken inboxes at once).
    xor: [usize; BUCKETS],
}

impl MadeMap {
    /// Runs `change` on the entry of the block `key` (made if there is none), and keeps
    /// [`UNTAKEN`] and [`UNTAKEN_ANY`] true to what its boxes are then.
    fn change<R>(&mut self, key: usize, change: impl FnOnce(&mut Made) -> R) -> R {
        let m = self.by_block.entry(key).or_default();
        let before = m.untaken();
        let r = change(m);
        let after = m.untaken();
        self.noted(key, before, after);
        r
    }

    /// The block `key`'s entry is gone (its block is being dropped).
    fn forget(&mut self, key: usize) {
        if let Some(m) = self.by_block.remove(&key) {
            self.noted(key, m.untaken(), false);
        }
    }

    /// The owner `key` had untaken inboxes (`before`) and has now (`after`).
    fn noted(&mut self, key: usize, before: bool, after: bool) {
        let i = bucket(key);
        match (before, after) {
            (false, true) => {
                self.owners[i] += 1;
                self.xor[i] ^= key;
                let word = if self.owners[i] == 1 { key } else { SEVERAL };
                UNTAKEN[i].store(word, Ordering::Release);
                UNTAKEN_ANY.fetch_add(1, Ordering::Release);
            }
            (true, false) => {
                self.owners[i] -= 1;
                self.xor[i] ^= key;
                // None left: 0; one left (from several): the XOR of the keys is that one's.
                match self.owners[i] {
                    0 => UNTAKEN[i].store(0, Ordering::Release),
                    1 => UNTAKEN[i].store(self.xor[i], Ordering::Release),
                    _ => {}
                }
                UNTAKEN_ANY.fetch_sub(1, Ordering::Release);
            }
            _ => {}
        }
    }
}

static MADE: Mutex<MadeMap> = Mutex::new(MadeMap {
    by_block: BTreeMap::new(),
    owners: [0; BUCKETS],
    xor: [0; BUCKETS],
});

/// The map of made boxes, locked.
fn made() -> MutexGuard<'static, MadeMap> {
    #[cfg(test)]
    tests::MAP_LOCKS.with(|n| n.set(n.get() + 1));
    lock(&MADE)
}

/// How many words [`UNTAKEN`] has.
const BUCKETS: usize = 256;

/// What a word of [`UNTAKEN`] holds when two or more owners with untaken inboxes share it
/// (no block is at an odd address).
const SEVERAL: usize = 1;

/// The owners with made rare inboxes they have not taken yet, by their block (a hash of its
/// address): a word is 0 while none of its owners has one, the owner's block's address while
/// one owner has, [`SEVERAL`] while more than one have. An owner not named there has none,
/// seen without a lock; its neighbours (the owners sharing its word, 1 in 256) are not held
/// up by its untaken box, however long it waits for its owner's next poll, unless another
/// owner sharing the word has an untaken box at the same time. (A counter per word, before,
/// made every neighbour look under the lock meanwhile.)
static UNTAKEN: [AtomicUsize; BUCKETS] = [const { AtomicUsize::new(0) }; BUCKETS];

/// How many owners have made inboxes they have not taken yet: 0 nearly always (a made inbox
/// is taken at its owner's next poll), and then one look answers for every owner, without
/// finding its word.
static UNTAKEN_ANY: AtomicU32 = AtomicU32::new(0);

#[inline(always)]
fn key(core: &Core) -> usize {
    core as *const Core as usize
}

#[inline(always)]
fn bucket(key: usize) -> usize {
    // Blocks are 16-byte aligned and at least 96 bytes apart, so the bits above the alignment
    // spread them over the words (a multiplicative hash cost 5 instructions a poll more:
    // a poll of an empty handle is on the relay's path).
    (key >> 4) % BUCKETS
}

/// True if the owner whose key is `key` may have an untaken inbox: its word names it, or
/// several.
#[inline(always)]
fn may_have_untaken(key: usize) -> bool {
    let word = UNTAKEN[bucket(key)].load(Ordering::Acquire);
    word == key || word == SEVERAL
}

/// True if `core` declared a rare box.
pub(crate) fn has_rare(core: &Core) -> bool {
    (core.listed().iter()).any(|(_, d)| d.r.store.is_rare())
}

/// The store of the box at `index` of `core`'s table: a rare box's as made, made now if `make`
/// and not made yet (`None` if it is not); the box itself if it is not rare. With `take`, the
/// caller is the owner's handle, which holds it from now on.
pub(crate) fn resolve(
    core: &Arc<Core>,
    index: usize,
    make: bool,
    take: bool,
) -> Option<Arc<dyn ErasedStore>> {
    let d = {
        let g = core.exit.lock();
        g.has_place(index).then(|| g.declared(index))?
    };
    if d.r.store.is_slot() {
        // An outbox kept by the table: a reference to its place there.
        return Some(crate::slot::slot_ref(core, index));
    }
    if !d.r.store.is_rare() {
        return Some(d.r.store.clone());
    }
    let key = key(core);
    {
        let mut made = made();
        if made.by_block.contains_key(&key) {
            let found = made.change(key, |m| {
                let b = m.boxes.iter_mut().find(|b| b.index == index)?;
                Some(b.found(take))
            });
            if found.is_some() {
                return found;
            }
        }
    }
    if !make {
        return None;
    }
    // Made outside the map's lock (its owner is found under other locks).
    let owner = owner_of(core);
    let store =
        d.r.store
            .new_like(&owner, d.r.store.meta().clone(), d.direction());
    let inbox = d.direction() == Direction::In;
    let mut made = made();
    let (store, untaken_now) = made.change(key, |m| {
        // Made meanwhile by another thread: that one.
        if let Some(b) = m.boxes.iter_mut().find(|b| b.index == index) {
            return (b.found(take), false);
        }
        if m.ended {
            store.close_erased();
        }
        let untaken_now = inbox && !m.ended && !take;
        m.boxes.push(MadeBox {
            index,
            store: store.clone(),
            untaken: untaken_now,
        });
        (store, untaken_now)
    });
    drop(made);
    drop(owner);
    if untaken_now {
        // Its owner, if it waits on the handle as a group member, takes it at its next poll.
        Waker::from(core.clone()).wake();
    }
    Some(store)
}

/// Notes the rare boxes its builder made (a look-up by name before the component was
/// finished), for its owner to take as if made since. Its table keeps their placeholders, so
/// that they are found, closed at its end and forgotten with its block as any made since.
pub(crate) fn made_early(core: &Arc<Core>, early: Vec<(usize, Arc<dyn ErasedStore>)>) {
    if early.is_empty() {
        return;
    }
    let key = key(core);
    // Their directions are read before the map's lock is taken (each under its store's lock).
    let boxes: Vec<MadeBox> = early
        .into_iter()
        .map(|(index, store)| MadeBox {
            index,
            untaken: store.direction() == Direction::In,
            store,
        })
        .collect();
    made().change(key, |m| m.boxes.extend(boxes));
}

/// An owner for a store made for `core`: its boxes' (every box of a component names one), or
/// a new one naming `core` if it has no box made.
fn owner_of(core: &Arc<Core>) -> Owner {
    owner_in(core, &core.exit.lock())
}

/// [`owner_of`], with `core`'s table at hand (its lock held, `g`).
pub(crate) fn owner_in(core: &Arc<Core>, g: &crate::scheduler::CellState) -> Owner {
    // A declared box's store (not the store an outbox kept by the table is linked to).
    let listed = crate::component::listed(g);
    if let Some(o) = listed.iter().find_map(|(_, d)| d.r.store.owner()) {
        return o;
    }
    let o = Owner::new(crate::component::Label::new(
        g.kind.name.clone(),
        core.id().0,
    ));
    o.set_core(core);
    o
}

/// How many of `core`'s boxes have a store (for tests of a component's memory): every box
/// but the rare ones not made.
pub(crate) fn made_count(core: &Arc<Core>) -> usize {
    // An outbox kept by the table counts if it has a store of its own.
    (core.listed().into_iter())
        .filter(|(i, d)| {
            if d.r.store.is_slot() {
                d.r.store.slot_has_own()
            } else {
                resolve(core, *i, false, false).is_some()
            }
        })
        .count()
}

/// `core`'s component has ended: its made rare inboxes close (what they held is returned, by
/// name, for its exit), and any made from now on is made closed.
pub(crate) fn end(core: &Core) -> Vec<(Arc<str>, usize)> {
    if !has_rare(core) {
        return Vec::new();
    }
    let key = key(core);
    let to_close: Vec<Arc<dyn ErasedStore>> = made().change(key, |m| {
        m.ended = true;
        m.boxes
            .iter_mut()
            .map(|b| {
                b.untaken = false;
                b.store.clone()
            })
            .collect()
    });
    // Closed once the map's lock is released: a close wakes the tasks waiting there, and a
    // waker dropped then may be the last hold on another component's block, whose drop takes
    // the map's lock.
    let mut left = Vec::new();
    for store in to_close {
        if store.direction() == Direction::In {
            let n = store.close_erased();
            if n > 0 {
                left.push((store.meta().name.clone(), n));
            }
        }
    }
    left
}

/// `core` is being dropped: its made boxes leave the map (the boxes themselves live on while
/// links or handles hold them).
pub(crate) fn forget(core: &Core) {
    if !has_rare(core) {
        return;
    }
    made().forget(key(core));
}

/// How a component's main routine reaches its rare boxes ([`RareInbox`], [`RareBoxes::outbox`]):
/// a reference to its block, one for all of them. [`crate::Context::rare_boxes`] gives it;
/// [`RareBoxes::none`] stands in until the routine runs.
pub struct RareBoxes {
    /// `None` for [`RareBoxes::none`]: no box is found through it.
    core: Option<Arc<Core>>,
}

impl std::fmt::Debug for RareBoxes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.core {
            Some(core) => write!(f, "RareBoxes({})", core.label()),
            None => f.write_str("RareBoxes(none)"),
        }
    }
}

impl RareBoxes {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        RareBoxes { core: Some(core) }
    }

    /// No component's rare boxes: a handle not made finds nothing through it, and a poll of
    /// it waits for nothing. For state made before its routine runs (a server's connection is
    /// made where its adapter is built), given the component's own when it does, and for tests
    /// and tools that drive a routine's code by hand with boxes made as [`RareInbox::from`].
    pub const fn none() -> Self {
        RareBoxes { core: None }
    }

    /// The outbox of `T` called `name`, made now if it is rare and not made yet; `None` if the
    /// component has no outbox of `T` by that name. A send is a use: a routine that sends on a
    /// rare outbox gets it here when it sends (the handle is a clone: keep it while it is
    /// used).
    pub fn outbox<T: Message>(&self, name: &str) -> Option<Outbox<T>> {
        let index = self.index(name)?;
        let store = resolve(self.core.as_ref()?, index, true, false)?;
        crate::BoxRef::new(store).outbox::<T>()
    }

    fn index(&self, name: &str) -> Option<usize> {
        let core = self.core.as_ref()?;
        core.find_declared(|d| &*d.name() == name).map(|(i, _)| i)
    }

    /// True if `waker` is its owner's own (a group member's: its block, see
    /// [`RareBoxes::owns`]) and no made inbox waits for it to be taken: a poll of an empty
    /// handle then finds nothing, and its owner is woken when a box is made.
    #[inline(always)]
    fn quiet(&self, waker: &Waker) -> bool {
        match &self.core {
            // No component: nothing can be made for it.
            None => true,
            Some(core) => {
                std::ptr::eq(waker.data(), Arc::as_ptr(core).cast())
                    && crate::group::is_member_waker(waker)
                    && (UNTAKEN_ANY.load(Ordering::Acquire) == 0 || !may_have_untaken(key(core)))
            }
        }
    }

    /// True if `waker` is its owner's as a group member: its data pointer is the owner's block
    /// and it is of a group member's kind (`group::is_member_waker`). Such a waker was made
    /// from that block (`Waker::from(Arc<Core>)`: the runtime makes no other, and nothing
    /// outside it has the block), and it is the one a group polls that member with. The data
    /// pointer alone does not say so: a waker of another kind may point at the same address
    /// (a zero-sized waker's pointer, one past its allocation, under an allocator that puts
    /// blocks end to end), and taken for the owner's it would not be woken when the box is
    /// made. (The kind's check costs the relay 6 instructions a round trip.)
    #[inline(always)]
    fn owns(&self, waker: &Waker) -> bool {
        self.core.as_ref().is_some_and(|core| {
            std::ptr::eq(waker.data(), Arc::as_ptr(core).cast())
                && crate::group::is_member_waker(waker)
        })
    }
}

/// An inbox declared rare, as its owner's routine holds it: empty until the box is made
/// (`docs/semantics.md` §1), then the box's [`Inbox`]. 8 bytes, as an [`Inbox`]. Its methods
/// take the component's [`RareBoxes`] and the box's name, to find it once it has been made.
pub struct RareInbox<T: Message> {
    made: Option<Inbox<T>>,
}

impl<T: Message> std::fmt::Debug for RareInbox<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.made {
            Some(i) => write!(f, "RareInbox({i:?})"),
            None => f.write_str("RareInbox(not made)"),
        }
    }
}

impl<T: Message> From<Inbox<T>> for RareInbox<T> {
    /// A handle holding a box made at once: for a component whose box is rare in one use and
    /// not in another (a server's connection is always linked to its `control`).
    fn from(inbox: Inbox<T>) -> Self {
        RareInbox { made: Some(inbox) }
    }
}

impl<T: Message> RareInbox<T> {
    /// A handle not made, for a box a component may or may not have declared (a server's
    /// connection has `makessl` only when its protocol does): it finds the box by name, as a
    /// handle from [`crate::ComponentBuilder::rare_inbox_from`] does, and a component without
    /// it finds nothing there.
    pub fn none() -> Self {
        RareInbox { made: None }
    }

    /// Polls the box `name` for a message, as [`Inbox::recv`]'s future does: cancel safe; a
    /// message is taken only when it is returned. Until the box is made, its owner's poll, as
    /// a group member, looks at one counter; any other poll makes the box (the task must be
    /// noted as waiting somewhere).
    #[inline]
    pub fn poll_recv(&mut self, rare: &RareBoxes, name: &str, cx: &mut TaskContext<'_>) -> Poll<T> {
        if let Some(inbox) = &self.made {
            return inbox.store.poll_pop(cx);
        }
        if rare.quiet(cx.waker()) {
            return Poll::Pending;
        }
        self.poll_taking(rare, name, cx)
    }

    #[cold]
    #[inline(never)]
    fn poll_taking(&mut self, rare: &RareBoxes, name: &str, cx: &mut TaskContext<'_>) -> Poll<T> {
        let make = !rare.owns(cx.waker());
        match self.take(rare, name, make) {
            Some(inbox) => inbox.store.poll_pop(cx),
            // Not made, and its owner is woken when it is; or no such box.
            None => Poll::Pending,
        }
    }

    /// The box, taken from where it was made (and made now with `make`).
    fn take(&mut self, rare: &RareBoxes, name: &str, make: bool) -> Option<&Inbox<T>> {
        // A box made by anyone but this handle is noted until taken: none noted, none to
        // take (no lock).
        if self.made.is_none() {
            let core = rare.core.as_ref()?;
            if !make && !may_have_untaken(key(core)) {
                return None;
            }
            let index = rare.index(name)?;
            let store = resolve(core, index, make, true)?;
            if store.direction() != Direction::In {
                return None;
            }
            let store = store.as_any().downcast::<Store<T>>().ok()?;
            self.made = Some(Inbox { store });
        }
        self.made.as_ref()
    }

    /// The next message if one is queued; a box not made has none.
    pub fn try_recv(&mut self, rare: &RareBoxes, name: &str) -> Option<T> {
        self.take(rare, name, false)?.try_recv()
    }

    /// True if nothing is queued (a box not made holds nothing).
    pub fn is_empty(&mut self, rare: &RareBoxes, name: &str) -> bool {
        self.take(rare, name, false).is_none_or(Inbox::is_empty)
    }

    /// The box as an [`Inbox`], made now if it is not made yet: for what needs the box itself
    /// (a [`crate::ControlWatch`]). If the component has no inbox of `T` by that name, the
    /// handle gets a box of its own that nothing sends to.
    pub fn inbox(&mut self, rare: &RareBoxes, name: &str) -> &Inbox<T> {
        if self.made.is_none() {
            let _ = self.take(rare, name, true);
        }
        self.made
            .get_or_insert_with(|| Inbox::standalone(name, DEFAULT_CAPACITY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// How many times this thread has locked the map of made boxes.
        pub(super) static MAP_LOCKS: Cell<usize> = const { Cell::new(0) };
    }

    /// Held by the tests here that leave boxes untaken: another's untaken box in the same
    /// word of [`UNTAKEN`] would make the word say several.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

    /// A component with one rare inbox of `u64` called `r`, and its handle.
    fn with_a_rare_inbox(kind: &str) -> (crate::Component, RareInbox<u64>) {
        let mut b = crate::Component::build(kind);
        let handle = b.rare_inbox_from(crate::BoxDecl::new("r", "a rare box"));
        (b.main(|_| async { Ok(()) }), handle)
    }

    /// A component of `kind` whose rare inbox `r` was made by a look-up by name (its owner has
    /// not taken it), the reference that made it, and its block's key; after a group has run
    /// (so that owners' wakers are known by their kind).
    fn an_untaken_box(kind: &str) -> (crate::Component, crate::BoxRef, usize) {
        a_group_has_run();
        let (c, _) = with_a_rare_inbox(kind);
        let made = c.boxref("r").unwrap();
        let k = key(&c.core);
        (c, made, k)
    }

    /// A component of `kind` with a rare inbox whose block shares the word of [`UNTAKEN`] of
    /// the block `k`; the others made on the way are kept in `others`, so that each new one is
    /// at a new address, each with a spacer of 32 or 48 bytes (alternately): components of
    /// one kind are made at one stride, which may be a multiple of the words' span, and would
    /// then never reach some words.
    fn sharing_a_word(
        k: usize,
        kind: &str,
        others: &mut Vec<(crate::Component, Vec<u8>)>,
    ) -> (crate::Component, RareInbox<u64>) {
        loop {
            let (c, handle) = with_a_rare_inbox(kind);
            if bucket(key(&c.core)) == bucket(k) {
                return (c, handle);
            }
            let spacer = vec![0_u8; if others.len() % 2 == 0 { 24 } else { 40 }];
            others.push((c, spacer));
            assert!(others.len() < 100_000, "no component shares the word");
        }
    }

    /// `c`, polled as its group would poll it, takes its made box `made` (with a message sent
    /// into it) at its first poll of a handle it holds as not made.
    fn takes_its_box(c: &crate::Component, made: &crate::BoxRef) {
        let rare = RareBoxes::new(c.core.clone());
        let waker = Waker::from(c.core.clone());
        let mut cx = TaskContext::from_waker(&waker);
        made.sender::<u64>().unwrap().try_send(7).unwrap();
        let mut own = RareInbox::<u64>::none();
        assert_eq!(own.poll_recv(&rare, "r", &mut cx), Poll::Ready(7));
    }

    /// How many times `c`'s ten polls of its empty `handle`, as its group would poll it (its
    /// block its waker), took the map's lock (each poll must find nothing).
    fn map_locks_of_ten_polls(c: &crate::Component, handle: &mut RareInbox<u64>) -> usize {
        let rare = RareBoxes::new(c.core.clone());
        let waker = Waker::from(c.core.clone());
        let mut cx = TaskContext::from_waker(&waker);
        let before = MAP_LOCKS.get();
        for _ in 0..10 {
            assert!(handle.poll_recv(&rare, "r", &mut cx).is_pending());
        }
        MAP_LOCKS.get() - before
    }

    /// Runs a group (a component with a rare inbox, run alone, is a group of one), so that
    /// this process knows a member's waker by its kind.
    fn a_group_has_run() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (c, _) = with_a_rare_inbox("Member");
        let report = rt.block_on(async {
            let scheduler = crate::Scheduler::new();
            let run = scheduler.run(async { c.activate() });
            tokio::time::timeout(std::time::Duration::from_secs(10), run).await
        });
        assert!(report.expect("ends within 10 s").is_ok());
    }

    /// A made box its owner has not taken (a look-up by name while the owner polls other
    /// boxes, or none: SingleServer's `makessl` while it listens) costs the owners that share
    /// its word of [`UNTAKEN`] (1 in 256) nothing: their polls of an empty handle take no lock.
    /// Fails on the code before, where the word was a counter and every poll of such a
    /// neighbour looked in the map under its lock for as long as the box stayed untaken.
    #[test]
    fn an_untaken_box_holds_up_no_neighbour() {
        let _one = lock(&ONE_AT_A_TIME);
        let (waiting, made, k) = an_untaken_box("Waiting");
        assert!(may_have_untaken(k), "noted for its owner to take");
        let mut others = Vec::new();
        let (neighbour, mut handle) = sharing_a_word(k, "Neighbour", &mut others);
        assert_eq!(
            map_locks_of_ten_polls(&neighbour, &mut handle),
            0,
            "the neighbour's polls locked the map"
        );
        // The owner's own poll still finds its box, and takes it.
        takes_its_box(&waiting, &made);
        assert!(!may_have_untaken(k), "taken");
    }

    /// Set in the child run of [`a_waker_of_another_kind_is_not_taken_for_the_owners`].
    const CHILD: &str = "AXON_RARE_WAKER_KIND_CHILD";

    /// A poll with a waker whose data pointer is the owner's block but whose kind is not a
    /// group member's is not taken for the owner's: the box is made and the waker noted in it,
    /// to be woken when a message comes. Safe Rust makes no such waker to order; the test runs
    /// in a process of its own (this test binary, filtered to it), where no group has run and
    /// no waker is known as a member's, so the block's own waker stands for one of another
    /// kind. Fails on the code before, which compared the data pointer alone: the poll ended
    /// there, with no box made and the waker noted nowhere.
    #[test]
    fn a_waker_of_another_kind_is_not_taken_for_the_owners() {
        if std::env::var_os(CHILD).is_some() {
            let (c, mut handle) = with_a_rare_inbox("OtherKind");
            let rare = RareBoxes::new(c.core.clone());
            let waker = Waker::from(c.core.clone());
            assert!(
                !crate::group::is_member_waker(&waker),
                "a group has run here"
            );
            let mut cx = TaskContext::from_waker(&waker);
            assert!(handle.poll_recv(&rare, "r", &mut cx).is_pending());
            assert_eq!(made_count(&c.core), 1, "the box was not made");
            assert!(handle.made.is_some(), "the handle does not hold the box");
            return;
        }
        let name = "rare::tests::a_waker_of_another_kind_is_not_taken_for_the_owners";
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--test-threads=1"])
            .env(CHILD, "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("the child run did not end within 60 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            status.success() && stdout.contains("1 passed"),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A rare inbox's handle is an inbox's size (its routine holds it in place of one), and
    /// the way to all of a component's rare boxes one pointer: a client's connection holds
    /// two handles and it where it held three boxes.
    #[test]
    fn rare_handles_stay_small() {
        use std::mem::size_of;
        assert_eq!(size_of::<RareInbox<u64>>(), size_of::<Inbox<u64>>());
        assert_eq!(size_of::<RareBoxes>(), size_of::<usize>());
    }

    /// A component whose rare box was made on its builder (a look-up by name before it was
    /// finished) leaves the map with its block, as one made since does. Found by the review
    /// of the rare boxes: the builder put the made box in the table, the table then held no
    /// placeholder, and the block's drop took it for a component without rare boxes.
    #[test]
    fn a_box_made_on_its_builder_leaves_the_map_with_its_block() {
        let _one = lock(&ONE_AT_A_TIME);
        let mut b = crate::Component::build("Early");
        let _handle: RareInbox<u64> = b.rare_inbox_from(crate::BoxDecl::new("early", "a box"));
        let early = b.boxref("early").unwrap();
        let again = b.boxref("early").unwrap();
        let c = b.main(|_| async { Ok(()) });
        let k = key(&c.core);
        assert!(
            made().by_block.contains_key(&k),
            "noted for its owner to take"
        );
        let found = c.boxref("early").unwrap();
        assert!(
            Arc::ptr_eq(&early.store, &found.store) && Arc::ptr_eq(&again.store, &found.store),
            "one box"
        );
        assert_eq!(c.boxes().count(), 1, "listed once");
        drop((early, again, found));
        drop(c);
        assert!(
            !made().by_block.contains_key(&k),
            "the map's entry outlived its block"
        );
    }

    /// A rare box has no entry in its component's table: its placeholder is in the kind's
    /// record, shared by every component built alike, and it is listed where it was declared.
    /// A client connection's table was six entries with its three rare boxes (a 112-byte
    /// chunk), three without (64). Fails where rare boxes took table entries (a table of five
    /// here).
    #[test]
    fn a_rare_box_takes_no_entry_in_its_component_s_table() {
        let _one = lock(&ONE_AT_A_TIME);
        let build = || {
            let mut b = crate::Component::build("RareTable");
            let _r1: RareInbox<u64> = b.rare_inbox_from(crate::BoxDecl::new("first", "rare"));
            let _i = b.inbox::<u64>("inbox", "data");
            b.rare_outbox_from::<u64>(crate::BoxDecl::new("ready", "rare out"));
            let _o = b.outbox::<u64>("outbox", "data");
            let _r2: RareInbox<u64> = b.rare_inbox_from(crate::BoxDecl::new("last", "rare"));
            b.main(|_| async { Ok(()) })
        };
        let (a, b) = (build(), build());
        let entries = |c: &crate::Component| c.core.exit.lock().table().len();
        assert_eq!(
            (entries(&a), entries(&b)),
            (2, 2),
            "the table holds inbox and outbox"
        );
        let names: Vec<String> = a.boxes().map(|s| s.name.to_string()).collect();
        assert_eq!(names, ["first", "inbox", "ready", "outbox", "last"]);
        let kind = |c: &crate::Component| c.core.exit.lock().kind.clone();
        assert!(Arc::ptr_eq(&kind(&a), &kind(&b)), "one record for both");
        // Each is still made on its own when used, and found again by name.
        let made = a.boxref("ready").unwrap();
        assert!(Arc::ptr_eq(&made.store, &a.boxref("ready").unwrap().store));
        assert!(!Arc::ptr_eq(&made.store, &b.boxref("ready").unwrap().store));
        assert!(!a.boxref("last").unwrap().store.is_rare(), "made");
    }

    /// A word that said "several" names the one owner left when the other takes its box, so
    /// a third owner sharing the word polls without the map's lock although the first still
    /// waits (session 13's review: the word stayed "several" until none was left).
    #[test]
    fn a_word_shared_by_two_untaken_owners_names_the_one_left() {
        let _one = lock(&ONE_AT_A_TIME);
        let (_x, _made, k) = an_untaken_box("X");
        let mut others = Vec::new();
        let (y, _) = sharing_a_word(k, "Y", &mut others);
        let (z, mut zh) = sharing_a_word(k, "Z", &mut others);
        // Y has an untaken box beside X's, then takes it.
        let made = y.boxref("r").unwrap();
        assert_eq!(UNTAKEN[bucket(k)].load(Ordering::Acquire), SEVERAL);
        takes_its_box(&y, &made);
        assert_eq!(
            UNTAKEN[bucket(k)].load(Ordering::Acquire),
            k,
            "the word names X"
        );
        // Z's polls of its empty handle take no lock.
        assert_eq!(map_locks_of_ten_polls(&z, &mut zh), 0);
    }
}
