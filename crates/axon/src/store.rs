//! The storage behind every box: a bounded FIFO that can forward to another storage.
//!
//! Kamaelia's boxes form in-trees: a box either keeps messages itself or hands them on to its
//! target, and a send through any number of passthrough hops lands in the root's storage in one
//! step. Here each box owns a [`Store`]; a link sets the source store's `forward` to the
//! destination store and moves whatever the source held, in order. A send follows the forwards
//! under each store's lock and pushes once into the store at the end of the chain, so no message
//! is copied or handed through an intermediate task.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use std::task::{Context as TaskContext, Poll, Waker};

use crate::owners::Owner;
use crate::spec::{BoxId, BoxMeta, Direction};

/// Every box is one of these, so its size is paid per box per component per connection. A box
/// that was declared and never used (or only linked: a passthrough, or an outbox whose sends go
/// straight on) holds a few words: its capacity and flags, its owner, and a pointer to its
/// [`Shape`] (its name, direction, byte bound and link, shared by every box declared alike
/// that is not linked). What a box needs only once messages are queued or tasks wait on it (the
/// queue, the wakers) is allocated then, in [`Busy`]; what a bounded box holds is weighed in
/// [`Store::idle`]. 40 bytes: with the `Arc`'s two counts, one 64-byte chunk of the allocator.
pub(crate) struct Store<T> {
    state: Mutex<State<T>>,
    /// While the queue is empty and a task waits here for a message, that task's waker's data
    /// pointer, if its waker is of a kind whose data pointer alone names the task (a group
    /// member's or a tokio task's, `group::is_known_waker`) and the store does not forward
    /// (so a task noted here also says the store is its chain's end: [`Store::full_end`]
    /// answers "room" from it without the lock); otherwise 0. Set and cleared
    /// under the lock, read without it: a task that polls an empty box it already waits on
    /// (the usual poll of a component that waits on several boxes) finds that out without the
    /// lock. Every push clears it before it wakes the waiting task, so whoever still reads the
    /// old value is woken after; so does anything that takes the waiting task's waker.
    ///
    /// Set while the store has no used part ([`State::busy`] is `None`), it also says that
    /// the box's owner, a group member, waits here: its waker is not kept in the store but
    /// found through the owner ([`Owner::waker`]) when a message comes or the box closes or
    /// is linked. A box that nothing sends to (a connection's `control` and `makessl`) then
    /// holds no waiting list for as long as it is waited on.
    ///
    /// While a box bounded in bytes holds messages, it holds what they weigh instead, with the
    /// top bit set ([`weight_word`]): negative as a signed number, where a waker's data pointer
    /// is positive, so no task takes it for its own, and a lock-free look ([`is_waiting`]) goes
    /// to the lock. A task is noted only while the queue is empty, a weight only while it is
    /// not (0 again once it is emptied), so the two never meet. A byte bound then needs no
    /// count of its own beside its shared limit.
    idle: AtomicUsize,
}

struct State<T> {
    /// The queue and the waiting tasks, once the box has been used.
    busy: Option<Box<Busy<T>>>,
    /// The box's name and description, its byte bound and where it forwards: under the lock,
    /// as a link or a bound set later changes it.
    shape: Arc<Shape<T>>,
    /// The capacity (the low [`CAPACITY_BITS`] bits) and the flags ([`ROOM_GIVEN`],
    /// [`FORWARDS`], [`SIGNAL`], [`FINAL_SENT`], [`CLOSED`]), in one word so that the owner's index fits beside
    /// them and the store in one 64-byte chunk of the allocator.
    bits: u32,
    /// The owner, whose label `Name#id` is kept once for all its boxes.
    owner: Owner,
}

/// How many bits of [`State::bits`] hold the capacity: at most 134,217,727 messages (any larger
/// capacity means as many as that).
const CAPACITY_BITS: u32 = 27;
const CAPACITY_MASK: u32 = (1 << CAPACITY_BITS) - 1;
/// A box of data has given its used part back once (see [`Store::wait_for_message`]): from
/// then on it keeps it.
const ROOM_GIVEN: u32 = 1 << 27;
/// The store forwards ([`Shape::forward`] is set): said here too, so that a send or a
/// receive at the end of its chain (nearly all) learns it from the word it reads for
/// [`CLOSED`], without following the shape's pointer.
const FORWARDS: u32 = 1 << 28;
/// A `signal` outbox: it notes its final message, so the runtime never sends another.
const SIGNAL: u32 = 1 << 29;
/// A final message has been sent from this (signal) box.
const FINAL_SENT: u32 = 1 << 30;
/// The owner has ended: the store takes no more messages.
const CLOSED: u32 = 1 << 31;

/// The part of a box that only a used box needs: 56 bytes, one 64-byte block.
struct Busy<T> {
    queue: VecDeque<T>,
    /// The task waiting for a message here (nearly always the box's owner alone).
    rx: Option<Waker>,
    /// The tasks waiting for room here or for this box's link to change, and any further
    /// tasks waiting for a message: only a full box or a box shared by several receivers has
    /// them, so one pointer until there are some.
    more: Option<Box<MoreWakers>>,
}

impl<T> Busy<T> {
    /// True if this used part holds nothing but, perhaps, `waker` waiting for a message and
    /// the queue's room: no message, no other waiting task.
    #[inline]
    fn holds_only(&self, waker: &Waker) -> bool {
        self.queue.is_empty()
            && self.more.is_none()
            && self.rx.as_ref().is_none_or(|w| w.will_wake(waker))
    }
}

impl<T> Default for Busy<T> {
    fn default() -> Self {
        Busy {
            queue: VecDeque::new(),
            rx: None,
            more: None,
        }
    }
}

/// The waiting tasks a store rarely has: those waiting for room (the first apart), and those
/// waiting for a message past the first.
#[derive(Default)]
struct MoreWakers {
    tx: Option<Waker>,
    rx: Vec<Waker>,
    tx_rest: Vec<Waker>,
}

/// Which side of a store tasks wait on: for a message, or for room.
#[derive(Clone, Copy)]
enum Side {
    Rx,
    Tx,
}

impl<T> Busy<T> {
    /// Notes `waker` as waiting on `side`. Registered and taken under the store's lock, so a
    /// wake-up cannot be lost; woken after the lock is released.
    /// Returns true if `waker` is (now) the first waiting on `side`.
    #[inline]
    fn register(&mut self, side: Side, waker: &Waker) -> bool {
        let first = match side {
            Side::Rx => &mut self.rx,
            Side::Tx => &mut self.more.get_or_insert_with(Default::default).tx,
        };
        match first {
            None => {
                *first = Some(waker.clone());
                true
            }
            Some(w) if w.will_wake(waker) => true,
            Some(_) => {
                let more = self.more.get_or_insert_with(Default::default);
                let rest = match side {
                    Side::Rx => &mut more.rx,
                    Side::Tx => &mut more.tx_rest,
                };
                if !rest.iter().any(|w| w.will_wake(waker)) {
                    rest.push(waker.clone());
                }
                false
            }
        }
    }

    /// The tasks waiting on `side`, to wake once the lock is released.
    fn take(&mut self, side: Side) -> Woken {
        let (first, rest) = match (side, self.more.as_mut()) {
            (Side::Rx, more) => (self.rx.take(), more.map(|m| std::mem::take(&mut m.rx))),
            (Side::Tx, None) => (None, None),
            (Side::Tx, Some(m)) => (m.tx.take(), Some(std::mem::take(&mut m.tx_rest))),
        };
        Woken {
            first,
            rest: rest.unwrap_or_default(),
        }
    }
}

/// A byte bound: a non-empty store at or above `limit` bytes is full. Shared by every box
/// bounded alike ([`shared_bound`]): a connection's bounded boxes hold a pointer to it, not
/// a block each.
pub(crate) struct ByteBound<T> {
    limit: usize,
    weigh: fn(&T) -> usize,
}

impl<T> Clone for ByteBound<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for ByteBound<T> {}

/// What a store is beside its state: its name and description, its direction, its byte bound,
/// and where it forwards. A store that does not forward shares its record with every other
/// store of its message type declared alike (same name and description, direction and bound:
/// [`Shape::of`]), so a connection's boxes hold a pointer each, not a block; a store that
/// forwards (a passthrough, or an outbox's own store that is linked: both rare) has one of its
/// own, 40 bytes (56 with the `Arc`'s counts, a 64-byte chunk), for as long as it is linked.
/// All of it behind one pointer keeps the store at 40 bytes.
struct Shape<T> {
    meta: Arc<BoxMeta>,
    direction: Direction,
    bound: Option<ByteBound<T>>,
    /// Where the store forwards; [`FORWARDS`] in its state says it is set.
    forward: Option<Arc<Store<T>>>,
}

/// The shared [`Shape`]s, of any message type, by the name's record, the type, the direction
/// (an outbox) and the bound (its limit and weighing, 0 and 0 for none).
type Shapes = BTreeMap<(usize, TypeId, bool, usize, usize), Arc<dyn Any + Send + Sync>>;

static SHAPES: Mutex<Shapes> = Mutex::new(BTreeMap::new());

/// How many shapes are shared at most. When full, the shapes no store holds any more are let
/// go first (as `spec::SharedNames` lets names go); past the cap with every shape in use, a
/// store gets one of its own: a program that makes box names or bounds on the fly cannot grow
/// the map for ever, nor fill it for good.
const SHARED_SHAPES: usize = 4096;

impl<T: Send + 'static> Shape<T> {
    /// The shape of a box called `meta` going `direction`, bounded by `bound` and forwarding to
    /// `forward`: shared with every other declared alike if it does not forward, else its own.
    fn of(
        meta: Arc<BoxMeta>,
        direction: Direction,
        bound: Option<ByteBound<T>>,
        forward: Option<Arc<Store<T>>>,
    ) -> Arc<Self> {
        if forward.is_some() {
            return Arc::new(Shape {
                meta,
                direction,
                bound,
                forward,
            });
        }
        // The name's record is held by the shape kept under its address, so the address is
        // not reused while the key is in the map.
        let key = (
            Arc::as_ptr(&meta) as usize,
            TypeId::of::<T>(),
            direction == Direction::Out,
            bound.map_or(0, |b| b.limit),
            bound.map_or(0, |b| b.weigh as usize),
        );
        let mut shapes = lock(&SHAPES);
        if let Some(s) = shapes.get(&key) {
            if let Ok(s) = s.clone().downcast::<Shape<T>>() {
                return s;
            }
        }
        let s = Arc::new(Shape {
            meta,
            direction,
            bound,
            forward: None,
        });
        if shapes.len() >= SHARED_SHAPES {
            // Only the map holds these: no store is of them now.
            shapes.retain(|_, s| Arc::strong_count(s) > 1);
        }
        if shapes.len() < SHARED_SHAPES {
            shapes.insert(key, s.clone());
        }
        s
    }

    /// This shape bounded by `bound` and forwarding to `to` (or to nowhere).
    fn with(&self, bound: Option<ByteBound<T>>, to: Option<Arc<Store<T>>>) -> Arc<Self> {
        Shape::of(self.meta.clone(), self.direction, bound, to)
    }
}

/// The shared byte bounds, of any message type: a few (one per limit and type a program uses).
static BOUNDS: Mutex<Vec<Arc<dyn Any + Send + Sync>>> = Mutex::new(Vec::new());

/// How many byte bounds are shared at most (a program that makes limits on the fly must not
/// grow the list for ever): past them, a box gets a bound of its own.
const SHARED_BOUNDS: usize = 256;

/// The byte bound of `limit` weighed with `weigh`, shared with every other box bounded alike.
pub(crate) fn shared_bound<T: Send + 'static>(
    limit: usize,
    weigh: fn(&T) -> usize,
) -> Arc<ByteBound<T>> {
    let mut bounds = lock(&BOUNDS);
    let alike = |b: &Arc<dyn Any + Send + Sync>| {
        (**b)
            .downcast_ref::<ByteBound<T>>()
            .is_some_and(|b| b.limit == limit && b.weigh as usize == weigh as usize)
    };
    if let Some(b) = bounds.iter().find(|b| alike(b)) {
        if let Ok(b) = b.clone().downcast::<ByteBound<T>>() {
            return b;
        }
    }
    let b = Arc::new(ByteBound { limit, weigh });
    if bounds.len() < SHARED_BOUNDS {
        bounds.push(b.clone());
    }
    b
}

/// Marks [`Store::idle`] as holding a weight (see there): its top bit.
const WEIGHT: usize = 1 << (usize::BITS - 1);

/// What [`Store::idle`] holds for a bounded box holding messages that weigh `bytes`: messages
/// held in memory, so less than `WEIGHT` bytes in all.
#[inline(always)]
fn weight_word(bytes: usize) -> usize {
    bytes | WEIGHT
}

/// The weight [`Store::idle`]'s `word` holds (0 if it holds none). Read only while the queue
/// holds messages.
#[inline(always)]
fn weight_of(word: usize) -> usize {
    if word & WEIGHT != 0 {
        word & !WEIGHT
    } else {
        0
    }
}

/// True if [`Store::idle`]'s `word` says, to a look without the lock, that a task waits on the
/// empty queue: a pointer, positive as a signed number (a weight is negative). A pointer with
/// the top bit set (only possible on a 32-bit target) is taken for a weight: the look then
/// takes the lock, and finds the same.
#[inline(always)]
fn is_waiting(word: usize) -> bool {
    (word as isize) > 0
}

/// What [`Store::idle`] is to hold once `msg` is added to a queue (`empty` before it) bounded
/// by `bound`: what the queue weighs; 0 if it is not bounded.
#[inline(always)]
fn weigh_in<T>(bound: Option<&ByteBound<T>>, msg: &T, idle: &AtomicUsize, empty: bool) -> usize {
    match bound {
        None => 0,
        Some(b) => {
            // An empty queue weighs nothing (its word may be a waiting task's).
            let held = if empty {
                0
            } else {
                weight_of(idle.load(Ordering::Relaxed))
            };
            // Saturating below `WEIGHT`: clones of one shared buffer each weigh its whole
            // length, so on a 32-bit target the sum can pass what memory holds. A full box
            // stays full.
            weight_word(held.saturating_add((b.weigh)(msg)).min(!WEIGHT))
        }
    }
}

/// Wakers taken from a store, to be woken once its lock is released.
#[must_use]
#[derive(Default)]
pub(crate) struct Woken {
    first: Option<Waker>,
    rest: Vec<Waker>,
}

impl Woken {
    // Called once per push and pop: the first task's wake is inlined where it is called, the
    // rare further tasks are not. (Left to the compiler, the whole call was sometimes kept out
    // of line, at about 30M instructions in figure 8's quick run under callgrind: axon's share
    // 200M -> 229M; and inlining all of it at every call moved other inlining in the relay.)
    #[inline(always)]
    pub(crate) fn wake(self) {
        let Woken { first, rest } = self;
        if let Some(w) = first {
            w.wake();
        }
        if rest.capacity() != 0 {
            wake_all(rest);
        }
    }
}

/// Wakes tasks past the first (and frees their list).
#[inline(never)]
fn wake_all(rest: Vec<Waker>) {
    rest.into_iter().for_each(Waker::wake);
}

/// Why a push did not happen; the message is handed back.
pub(crate) enum PushError<T> {
    Full(T, Arc<Store<T>>, bool),
    Closed(T),
}

/// Why a push into a store reached by reference ([`Store::push_held`]) did not happen:
/// [`PushError`], but a store found full is the caller's to name (with whether it is an
/// outbox).
pub(crate) enum Refused<T> {
    Full(T, bool),
    Other(PushError<T>),
}

pub(crate) enum LinkFailure {
    AlreadyLinked(BoxId),
    Closed(BoxId),
    Cycle,
    TypeMismatch,
}

impl<T: 'static> State<T> {
    /// The store this one forwards to, if it is linked.
    #[inline(always)]
    fn forward(&self) -> Option<&Arc<Store<T>>> {
        if self.has(FORWARDS) {
            self.shape.forward.as_ref()
        } else {
            None
        }
    }

    /// True if the store forwards: [`State::forward`] is set (learnt from the flags alone).
    #[inline(always)]
    fn forwards(&self) -> bool {
        self.has(FORWARDS)
    }

    /// The byte bound, if one is set.
    #[inline(always)]
    fn bound(&self) -> Option<&ByteBound<T>> {
        self.shape.bound.as_ref()
    }

    #[inline]
    fn capacity(&self) -> usize {
        (self.bits & CAPACITY_MASK) as usize
    }

    #[inline]
    fn has(&self, flag: u32) -> bool {
        self.bits & flag != 0
    }

    fn set(&mut self, flag: u32) {
        self.bits |= flag;
    }

    fn direction(&self) -> Direction {
        self.shape.direction
    }

    /// Gives the store `shape`, noting in [`State::bits`] whether it forwards.
    fn set_shape(&mut self, shape: Arc<Shape<T>>) {
        self.bits = if shape.forward.is_some() {
            self.bits | FORWARDS
        } else {
            self.bits & !FORWARDS
        };
        self.shape = shape;
    }

    fn len(&self) -> usize {
        self.busy.as_ref().map_or(0, |b| b.queue.len())
    }

    /// Full by count, or by bytes: an empty store always admits one message, however large, so
    /// a message bigger than the byte bound still goes through.
    fn is_full(&self, idle: &AtomicUsize) -> bool {
        let Some(busy) = &self.busy else {
            return false;
        };
        busy.queue.len() >= self.capacity()
            || (!busy.queue.is_empty()
                && self
                    .bound()
                    .is_some_and(|b| weight_of(idle.load(Ordering::Relaxed)) >= b.limit))
    }

    /// The used part, made on first use. Called only by [`Store::poll_space`], for a sender
    /// waiting for room; everywhere else the used part is made with [`new_busy`], which takes
    /// the owner's waker if it waits here with none.
    fn busy(&mut self) -> &mut Busy<T> {
        self.busy.get_or_insert_with(Default::default)
    }

    /// Queues `msg`; returns what [`Store::idle`] is to hold (the caller stores it): what the
    /// queue weighs, when the store is bounded in bytes, else 0 (no task waits on a queue that
    /// holds a message).
    #[inline(always)]
    fn push(&mut self, msg: T, idle: &AtomicUsize) -> usize {
        let busy = self.busy.get_or_insert_with(Default::default);
        let word = weigh_in(self.shape.bound.as_ref(), &msg, idle, busy.queue.is_empty());
        // A box's first message gets room for one, not the four a queue starts with: most
        // boxes of a connection (control, signal, feedback) carry a handful of messages in
        // their life, and keep their queue's room for as long as the connection lasts. A busy
        // box grows as before, once.
        if busy.queue.capacity() == 0 {
            busy.queue.reserve_exact(1);
        }
        busy.queue.push_back(msg);
        word
    }

    /// Puts a message back at the front (a link that could not move it).
    fn push_front(&mut self, msg: T, idle: &AtomicUsize) {
        let busy = self.busy.get_or_insert_with(Default::default);
        let word = weigh_in(self.shape.bound.as_ref(), &msg, idle, busy.queue.is_empty());
        busy.queue.push_front(msg);
        idle.store(word, Ordering::Release);
    }

    /// Takes the first message (and its weight, from `idle`).
    fn pop(&mut self, idle: &AtomicUsize) -> Option<T> {
        let busy = self.busy.as_mut()?;
        let msg = busy.queue.pop_front()?;
        // A component's `control` carries a handful in its life (a notice or two, the final
        // message), often one at the start and then nothing for as long as a connection lasts:
        // its room goes with its last message instead of staying (a 48-byte block). A busy box
        // of control messages (TcpServer's events) pays an allocation per message that finds it
        // empty; the type is all the store knows here (semantics §2).
        let emptied = busy.queue.is_empty();
        if emptied && carries_control::<T>() {
            busy.queue = VecDeque::new();
        }
        if let Some(b) = self.bound() {
            // What is left weighs nothing once the queue is empty: not weighed again.
            let word = if emptied {
                0
            } else {
                let left = weight_of(idle.load(Ordering::Relaxed));
                weight_word(left.saturating_sub((b.weigh)(&msg)))
            };
            idle.store(word, Ordering::Release);
        }
        Some(msg)
    }

    /// The tasks waiting for room, to wake once the lock is released.
    fn take_tx(&mut self) -> Woken {
        self.busy
            .as_mut()
            .map_or_else(Woken::default, |b| b.take(Side::Tx))
    }

    /// The tasks waiting for a message, to wake once the lock is released: those in the used
    /// part, or the owner if it waits with none (`idle`, the store's [`Store::idle`], is then
    /// set; the caller clears it).
    fn take_rx(&mut self, idle: &AtomicUsize) -> Woken {
        match self.busy.as_mut() {
            Some(b) => b.take(Side::Rx),
            None => self.take_owner(idle),
        }
    }

    #[cold]
    #[inline(never)]
    fn take_owner(&self, idle: &AtomicUsize) -> Woken {
        Woken {
            first: waiting_owner(&self.owner, idle),
            rest: Vec::new(),
        }
    }
}

/// The owner's waker if it waits here with no used part (`idle` set, see [`Store::idle`]).
/// Called only with no used part: the queue is empty, so the word holds no weight.
#[inline(always)]
fn waiting_owner(owner: &Owner, idle: &AtomicUsize) -> Option<Waker> {
    if idle.load(Ordering::Relaxed) != 0 {
        owner.waker()
    } else {
        None
    }
}

/// A store's used part, made on first use; if the store's owner waits there with none
/// (`idle` set, see [`Store::idle`]), its waker goes in as the first waiting for a message.
#[cold]
#[inline(never)]
fn new_busy<T>(owner: &Owner, idle: &AtomicUsize) -> Box<Busy<T>> {
    let mut busy = Box::<Busy<T>>::default();
    busy.rx = waiting_owner(owner, idle);
    busy
}

/// True for a box of [`crate::Control`] messages (decided when the store's code is made for
/// `T`: no cost at run time).
#[inline(always)]
fn carries_control<T: 'static>() -> bool {
    TypeId::of::<T>() == TypeId::of::<crate::Control>()
}

/// A capacity as stored: at least 1, at most [`CAPACITY_MASK`].
fn capacity_bits(capacity: usize) -> u32 {
    u32::try_from(capacity)
        .unwrap_or(CAPACITY_MASK)
        .clamp(1, CAPACITY_MASK)
}

/// Held while a link is made (see [`Store::link_to`]).
pub(crate) static LINKING: Mutex<()> = Mutex::new(());

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code panics while holding a store lock, so poisoning cannot carry a broken invariant.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T: Send + 'static> Store<T> {
    /// A store for the box `meta` of `owner`; with `signal`, one that notes when a final
    /// [`crate::Control`] has gone through. It allocates nothing more until it is used.
    pub(crate) fn new(
        owner: Owner,
        meta: Arc<BoxMeta>,
        direction: Direction,
        capacity: usize,
        signal: bool,
    ) -> Arc<Self> {
        let mut bits = capacity_bits(capacity);
        if signal {
            bits |= SIGNAL;
        }
        Arc::new(Store {
            idle: AtomicUsize::new(0),
            state: Mutex::new(State {
                busy: None,
                shape: Shape::of(meta, direction, None, None),
                bits,
                owner,
            }),
        })
    }

    /// A store of its own for an outbox kept by its component's table (`slot.rs`): `bound`
    /// is the bound its handle set, and it forwards to `to`, where the table sent it, if
    /// anywhere (nothing forwards to it yet, so no cycle can close and nothing moves).
    pub(crate) fn new_own(
        owner: Owner,
        meta: Arc<BoxMeta>,
        signal: bool,
        bound: Option<Arc<ByteBound<T>>>,
        to: Option<Arc<dyn ErasedStore>>,
    ) -> Arc<Self> {
        let store = Store::new(owner, meta, Direction::Out, crate::DEFAULT_CAPACITY, signal);
        {
            let mut g = lock(&store.state);
            let to = to.and_then(|to| to.as_any().downcast::<Store<T>>().ok());
            let shape = g.shape.with(bound.as_deref().copied(), to);
            g.set_shape(shape);
        }
        store
    }

    /// Which box this is.
    pub(crate) fn id(&self) -> BoxId {
        let g = lock(&self.state);
        BoxId {
            owner: g.owner.label(),
            name: g.shape.meta.name.clone(),
            direction: g.direction(),
            message_type: std::any::type_name::<T>(),
        }
    }

    /// The box's name and description.
    pub(crate) fn meta(&self) -> Arc<BoxMeta> {
        lock(&self.state).shape.meta.clone()
    }

    pub(crate) fn direction(&self) -> Direction {
        lock(&self.state).direction()
    }

    /// Pushes into the end of the chain starting at `self`, unless it is full or closed.
    /// `force` ignores the capacity (used for runtime messages and for migration).
    pub(crate) fn try_push(self: &Arc<Self>, msg: T, force: bool) -> Result<(), PushError<T>> {
        // Woken once every lock is released.
        self.try_push_woken(msg, force)?.wake();
        Ok(())
    }

    /// [`Store::try_push`], the tasks to wake returned, to be woken once the caller's locks
    /// are released too (an outbox's send holds its component's table: `slot.rs`).
    pub(crate) fn try_push_woken(
        self: &Arc<Self>,
        msg: T,
        force: bool,
    ) -> Result<Woken, PushError<T>> {
        // The lock is taken only for a final control message, never for data.
        let is_final = crate::component::is_final_control(&msg) && lock(&self.state).has(SIGNAL);
        let woken = self.push_chain_woken(msg, force)?;
        if is_final {
            lock(&self.state).set(FINAL_SENT);
        }
        Ok(woken)
    }

    /// True once a final message has been sent from this (signal) box.
    pub(crate) fn final_sent(&self) -> bool {
        lock(&self.state).has(FINAL_SENT)
    }

    /// Pushes into the end of the chain from `self` and wakes whoever waits there.
    fn push_chain(self: &Arc<Self>, msg: T, force: bool) -> Result<(), PushError<T>> {
        self.push_chain_woken(msg, force)?.wake();
        Ok(())
    }

    /// Pushes into the end of the chain from `self`; returns the tasks to wake once every
    /// lock is released.
    fn push_chain_woken(self: &Arc<Self>, msg: T, force: bool) -> Result<Woken, PushError<T>> {
        let mut g = lock(&self.state);
        if !g.forwards() {
            return self.push_locked(&mut g, msg, force);
        }
        Self::push_forward(g, msg, force)
    }

    /// Pushes into the chain past a store whose state `g` is locked and forwards; returns the
    /// tasks to wake once every lock is released.
    ///
    /// The usual chain, an outbox linked to an inbox: the inbox is locked while the outbox's
    /// lock is still held, so its link is followed without a count of its own (an atomic
    /// increment and decrement a send), and an unlink of this store is ordered with the push
    /// (a send that let go first could land in the old target after the unlink returned).
    /// Locks are always taken in the chain's direction (as `link_to` does), and chains have no
    /// cycles, so this cannot deadlock.
    #[inline(always)]
    fn push_forward(
        g: MutexGuard<'_, State<T>>,
        msg: T,
        force: bool,
    ) -> Result<Woken, PushError<T>> {
        let Some(next) = g.forward() else {
            unreachable!("push_forward is called for a store that forwards")
        };
        let mut end = lock(&next.state);
        if end.forwards() {
            // A longer chain (through passthroughs): one hop at a time.
            let next = Arc::clone(next);
            drop(end);
            drop(g);
            return next.push_chain_woken(msg, force);
        }
        next.push_locked(&mut end, msg, force)
    }

    /// Pushes `msg` into this store, the end of its chain, whose state `g` is locked, unless
    /// it is closed or (without `force`) full. Returns the tasks to wake once the locks are
    /// released.
    #[inline(always)]
    fn push_locked(
        self: &Arc<Self>,
        g: &mut State<T>,
        msg: T,
        force: bool,
    ) -> Result<Woken, PushError<T>> {
        match self.push_here(g, msg, force) {
            Ok(woken) => Ok(woken),
            Err(Refused::Full(m, out)) => Err(PushError::Full(m, Arc::clone(self), out)),
            Err(Refused::Other(e)) => Err(e),
        }
    }

    /// Pushes `msg` into the chain from this store, reached by reference (an outbox's link in
    /// its component's table, whose lock the caller holds: `slot.rs`), as [`Store::try_push`]
    /// does from a store of its own, but for the wake-ups: the tasks to wake are returned, to
    /// be woken once the caller's lock is released too.
    #[inline(always)]
    pub(crate) fn push_held(&self, msg: T, force: bool) -> Result<Woken, Refused<T>> {
        let mut g = lock(&self.state);
        if !g.forwards() {
            return self.push_here(&mut g, msg, force);
        }
        // Through passthroughs, or an outbox's own store that is linked: hand over hand, the
        // wake-ups returned, not made here, as the caller holds its table's lock.
        Self::push_forward(g, msg, force).map_err(Refused::Other)
    }

    /// True if a task is noted waiting on this store's empty queue: it is its chain's end
    /// and has room (see [`Store::idle`]). Seen without the lock.
    #[inline]
    pub(crate) fn has_room_now(&self) -> bool {
        is_waiting(self.idle.load(Ordering::Acquire))
    }

    /// [`Store::push_locked`], a full store being the caller's to name.
    #[inline(always)]
    fn push_here(&self, g: &mut State<T>, msg: T, force: bool) -> Result<Woken, Refused<T>> {
        if g.has(CLOSED) {
            return Err(Refused::Other(PushError::Closed(msg)));
        }
        if !force && g.is_full(&self.idle) {
            return Err(Refused::Full(msg, g.direction() == Direction::Out));
        }
        if g.busy.is_none() {
            return Ok(self.push_first(g, msg));
        }
        let word = g.push(msg, &self.idle);
        self.idle.store(word, Ordering::Release);
        Ok(g.take_rx(&self.idle))
    }

    /// [`Store::push_locked`] into a store with no used part yet: the owner, if it waits here
    /// (`idle`), is taken to be woken before the push makes the used part.
    #[cold]
    #[inline(never)]
    fn push_first(&self, g: &mut State<T>, msg: T) -> Woken {
        let woken = g.take_rx(&self.idle);
        let word = g.push(msg, &self.idle);
        self.idle.store(word, Ordering::Release);
        woken
    }

    /// True if the queue is empty and `cx`'s task already waits here for a
    /// message: a poll that would find nothing and register nothing new, answered without
    /// the lock (see [`Store::idle`]).
    #[inline]
    fn waits_here(&self, cx: &TaskContext<'_>) -> bool {
        // Not a weight, even one equal to a pointer with the top bit set (a 32-bit target).
        let tag = self.idle.load(Ordering::Acquire);
        is_waiting(tag)
            && tag == cx.waker().data() as usize
            && crate::group::is_known_waker(cx.waker())
    }

    /// Registers `cx`'s task as waiting for a message on the (empty) queue of `g`, this store's
    /// state, and notes it in [`Store::idle`] when it is the first and its waker is of a known
    /// kind.
    ///
    /// The owner, a group member, waiting on a box with no used part is noted in
    /// [`Store::idle`] alone (no used part is made for it). When its owner has taken the last
    /// message and waits again, and the used part holds nothing else (no other waiting task),
    /// the used part and the queue's room are given back: every time for a box of
    /// [`crate::Control`] (`control` has a message or two in a connection's life, and is
    /// waited on for all of it), once for a box of data ([`ROOM_GIVEN`]: a box that had one
    /// message, a connection's greeting, holds nothing after it; a box that gets a second keeps
    /// its room for the next, as a busy box must not allocate per message).
    // Inlined where a box is polled (an emptying pop of the relay's boxes comes here every
    // message): its rare parts are out of line.
    #[inline(always)]
    fn wait_for_message(&self, g: &mut State<T>, cx: &TaskContext<'_>) {
        let waker = cx.waker();
        // A store that forwards notes no waiting task (see [`Store::full_end`]).
        let at_end = !g.forwards();
        let busy = match g.busy.as_mut() {
            Some(busy)
                if (!carries_control::<T>() && g.bits & ROOM_GIVEN != 0)
                    || !busy.holds_only(waker) =>
            {
                busy
            }
            _ => {
                if self.owner_waits_unboxed(g, waker) {
                    return;
                }
                let owner = &g.owner;
                g.busy.get_or_insert_with(|| new_busy(owner, &self.idle))
            }
        };
        if busy.register(Side::Rx, waker) && crate::group::is_known_waker(waker) && at_end {
            self.idle.store(waker.data() as usize, Ordering::Release);
        }
    }

    /// Notes `waker`'s task as waiting here with no used part, if it is the owner's (a group
    /// member's waker, its component's block): the used part, if any, holds nothing else
    /// (checked by the caller) and is given back. A box of data does that once (whether the
    /// waker is the owner's or not: the owner's is looked up under a process-wide lock).
    #[cold]
    #[inline(never)]
    fn owner_waits_unboxed(&self, g: &mut State<T>, waker: &Waker) -> bool {
        if g.busy.is_some() && !carries_control::<T>() {
            g.set(ROOM_GIVEN);
        }
        // A task of its own (not a group member) is never found through its block: no look
        // in the process-wide table for it.
        // (Cheapest first: `is_waker_of` takes the process-wide table's lock.)
        if g.forwards()
            || !crate::group::is_member_waker(waker)
            || !g.owner.is_waker_of(waker.data())
        {
            return false;
        }
        g.busy = None;
        self.idle.store(waker.data() as usize, Ordering::Release);
        true
    }

    /// Ready if this store (the full end of a chain) has room, is closed or forwards; else
    /// registers `cx`'s task to be woken when that may have changed.
    pub(crate) fn poll_space(&self, cx: &mut TaskContext<'_>) -> Poll<()> {
        let mut g = lock(&self.state);
        if g.forwards() || g.has(CLOSED) || !g.is_full(&self.idle) {
            return Poll::Ready(());
        }
        g.busy().register(Side::Tx, cx.waker());
        Poll::Pending
    }

    // The lock-free checks are inlined where boxes are polled; the rest is not (its frame is
    // the larger part of an empty poll's cost).
    #[inline]
    pub(crate) fn try_pop(&self) -> Option<T> {
        // A waiting task is noted only while the queue is empty.
        if is_waiting(self.idle.load(Ordering::Acquire)) {
            return None;
        }
        self.try_pop_locked()
    }

    #[inline(never)]
    fn try_pop_locked(&self) -> Option<T> {
        let mut g = lock(&self.state);
        let v = g.pop(&self.idle)?;
        let woken = g.take_tx();
        drop(g);
        woken.wake();
        Some(v)
    }

    /// Takes a message if one is queued, else registers `cx`'s task to be woken for the next.
    /// Cancel safe: a message is taken only when it is returned.
    #[inline]
    pub(crate) fn poll_pop(&self, cx: &mut TaskContext<'_>) -> Poll<T> {
        if self.waits_here(cx) {
            return Poll::Pending;
        }
        self.poll_pop_locked(cx)
    }

    #[inline(never)]
    fn poll_pop_locked(&self, cx: &mut TaskContext<'_>) -> Poll<T> {
        let mut g = lock(&self.state);
        match g.pop(&self.idle) {
            Some(v) => {
                self.wait_if_emptied(&mut g, cx);
                let woken = g.take_tx();
                drop(g);
                woken.wake();
                Poll::Ready(v)
            }
            None => {
                self.wait_for_message(&mut g, cx);
                Poll::Pending
            }
        }
    }

    /// Registers `cx`'s task as waiting for a message if the queue of `g`, this store's state,
    /// is now empty: it took the last message, and most likely waits here next. Its next look
    /// then finds that out without the lock ([`Store::waits_here`]), as does a look for more
    /// without waiting ([`Store::try_pop`]), instead of taking the lock to register then (a
    /// relay's connection and echoer each looked twice a message). A task that does not come
    /// back is woken once by the next message, for nothing.
    #[inline(always)]
    fn wait_if_emptied(&self, g: &mut State<T>, cx: &TaskContext<'_>) {
        if g.len() == 0 {
            self.wait_for_message(g, cx);
        }
    }

    /// Moves up to `max` messages (at least one) into `out` and returns how many, or registers
    /// `cx`'s task to be woken for the next if none is queued.
    pub(crate) fn poll_pop_many(
        &self,
        out: &mut Vec<T>,
        max: usize,
        cx: &mut TaskContext<'_>,
    ) -> Poll<usize> {
        if self.waits_here(cx) {
            return Poll::Pending;
        }
        let mut g = lock(&self.state);
        let n = g.len().min(max.max(1));
        if n == 0 {
            self.wait_for_message(&mut g, cx);
            return Poll::Pending;
        }
        out.extend(std::iter::from_fn(|| g.pop(&self.idle)).take(n));
        self.wait_if_emptied(&mut g, cx);
        let woken = g.take_tx();
        drop(g);
        woken.wake();
        Poll::Ready(n)
    }

    /// Ready once a message is queued (it is not taken); else registers `cx`'s task to be
    /// woken for the next.
    #[inline]
    pub(crate) fn poll_data(&self, cx: &mut TaskContext<'_>) -> Poll<()> {
        if self.waits_here(cx) {
            return Poll::Pending;
        }
        self.poll_data_locked(cx)
    }

    #[inline(never)]
    fn poll_data_locked(&self, cx: &mut TaskContext<'_>) -> Poll<()> {
        let mut g = lock(&self.state);
        if g.len() == 0 {
            self.wait_for_message(&mut g, cx);
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }

    pub(crate) fn len(&self) -> usize {
        if is_waiting(self.idle.load(Ordering::Acquire)) {
            return 0;
        }
        lock(&self.state).len()
    }

    pub(crate) fn capacity(&self) -> usize {
        lock(&self.state).capacity()
    }

    /// Bounds the store in bytes as well as in messages, weighing each message with `weigh`.
    pub(crate) fn set_byte_limit(&self, max: usize, weigh: fn(&T) -> usize) {
        let mut g = lock(&self.state);
        let limit = max.max(1);
        // A box bounded already keeps its weighing (and its weight).
        let weigh = g.bound().map_or(weigh, |b| b.weigh);
        if g.bound().is_none() && g.len() != 0 {
            let bytes = g.busy.as_ref().map_or(0, |busy| {
                busy.queue.iter().map(weigh).fold(0, usize::saturating_add)
            });
            self.idle.store(weight_word(bytes), Ordering::Release);
        }
        let bound = Some(ByteBound { limit, weigh });
        let shape = g.shape.with(bound, g.forward().cloned());
        g.set_shape(shape);
        let woken = g.take_tx();
        drop(g);
        woken.wake();
    }

    /// The byte bound and what is queued now, if the store has one.
    pub(crate) fn byte_usage(&self) -> Option<(usize, usize)> {
        let g = lock(&self.state);
        let bytes = if g.len() == 0 {
            0
        } else {
            weight_of(self.idle.load(Ordering::Relaxed))
        };
        g.bound().map(|b| (bytes, b.limit))
    }

    pub(crate) fn set_capacity(&self, capacity: usize) {
        let mut g = lock(&self.state);
        g.bits = (g.bits & !CAPACITY_MASK) | capacity_bits(capacity);
        let woken = g.take_tx();
        drop(g);
        woken.wake();
    }

    pub(crate) fn is_linked(&self) -> bool {
        lock(&self.state).forwards()
    }

    pub(crate) fn forward_id(&self) -> Option<BoxId> {
        let next = lock(&self.state).forward().cloned();
        next.map(|f| f.id())
    }

    /// The end of the chain from `self` if it is full (and open), else `None`.
    pub(crate) fn full_end(self: &Arc<Self>) -> Option<Arc<Self>> {
        let g = lock(&self.state);
        let Some(next) = g.forward() else {
            return (!g.has(CLOSED) && g.is_full(&self.idle)).then(|| Arc::clone(self));
        };
        // An inbox whose owner waits on its empty queue (a relay's, nearly every time) has
        // room, and is the chain's end (no task is noted waiting on a store that forwards):
        // seen without its lock.
        if is_waiting(next.idle.load(Ordering::Acquire)) {
            return None;
        }
        // An outbox linked to an inbox, the usual chain: as in `push_chain`, the inbox is
        // looked at under the outbox's lock, without a count of its own.
        let end = lock(&next.state);
        if !end.forwards() {
            return (!end.has(CLOSED) && end.is_full(&next.idle)).then(|| Arc::clone(next));
        }
        let next = Arc::clone(next);
        drop(end);
        drop(g);
        next.full_end()
    }

    /// Whether following forwards from `self` ends in a closed store.
    pub(crate) fn end_is_closed(self: &Arc<Self>) -> bool {
        let mut cur = Arc::clone(self);
        loop {
            let g = lock(&cur.state);
            match g.forward().cloned() {
                Some(next) => {
                    drop(g);
                    cur = next;
                }
                None => return g.has(CLOSED),
            }
        }
    }

    /// Makes `self` forward to `dst`, moving what `self` holds to the end of `dst`'s chain.
    pub(crate) fn link_to(self: &Arc<Self>, dst: &Arc<Self>) -> Result<(), LinkFailure> {
        // The cycle check walks the chain one lock at a time, so two links made at once (A->B
        // and B->A) could each pass it and close a loop that every send would then follow for
        // ever. Links are made one at a time; sends never take this lock.
        let _one_at_a_time = lock(&LINKING);
        // A chain from dst that reaches self would loop forever.
        let mut cur = Arc::clone(dst);
        loop {
            if Arc::ptr_eq(&cur, self) {
                return Err(LinkFailure::Cycle);
            }
            let next = lock(&cur.state).forward().cloned();
            match next {
                Some(n) => cur = n,
                None => break,
            }
        }
        let mut g = lock(&self.state);
        if let Some(existing) = g.forward().cloned() {
            drop(g);
            return Err(LinkFailure::AlreadyLinked(existing.id()));
        }
        if dst.end_is_closed() {
            drop(g);
            return Err(LinkFailure::Closed(dst.id()));
        }
        let shape = g.shape.with(g.bound().copied(), Some(Arc::clone(dst)));
        g.set_shape(shape);
        // Pushing while holding our own lock keeps later sends (which must take our lock to
        // find the forward) behind the moved messages: order is preserved.
        while let Some(msg) = g.pop(&self.idle) {
            if let Err(PushError::Closed(m) | PushError::Full(m, ..)) = dst.push_chain(msg, true) {
                // The destination ended while we moved: keep the rest here and refuse.
                g.push_front(m, &self.idle);
                let shape = g.shape.with(g.bound().copied(), None);
                g.set_shape(shape);
                drop(g);
                return Err(LinkFailure::Closed(dst.id()));
            }
        }
        let (tx, rx) = (g.take_tx(), g.take_rx(&self.idle));
        self.idle.store(0, Ordering::Release);
        drop(g);
        tx.wake();
        rx.wake();
        Ok(())
    }

    /// Removes `self`'s forward; later sends stay in `self` until it is linked again.
    pub(crate) fn unlink(self: &Arc<Self>) -> Option<BoxId> {
        let mut g = lock(&self.state);
        let old = g.forward().cloned();
        if old.is_some() {
            let shape = g.shape.with(g.bound().copied(), None);
            g.set_shape(shape);
        }
        let woken = g.take_tx();
        drop(g);
        woken.wake();
        let old = old?;
        // Senders upstream of us may be waiting for room at the end of the old chain: wake them
        // so they retry along the new one.
        old.wake_senders();
        Some(old.id())
    }

    /// Wakes the tasks waiting for room anywhere along the chain from `self`.
    pub(crate) fn wake_senders(self: &Arc<Self>) {
        let mut cur = Some(Arc::clone(self));
        while let Some(c) = cur {
            let mut g = lock(&c.state);
            let woken = g.take_tx();
            cur = g.forward().cloned();
            drop(g);
            woken.wake();
        }
    }

    /// Marks the store closed (its owner ended) and returns how many messages it still held.
    pub(crate) fn close(&self) -> usize {
        let mut g = lock(&self.state);
        g.set(CLOSED);
        let left = g.len();
        let (tx, rx) = (g.take_tx(), g.take_rx(&self.idle));
        // A waiting task is woken; what the queue weighs, if it holds messages, stays.
        if left == 0 {
            self.idle.store(0, Ordering::Release);
        }
        drop(g);
        tx.wake();
        rx.wake();
        left
    }
}

/// What every [`ErasedStore`] of messages of `$t` answers about its type, and itself as `Any`.
macro_rules! typed_answers {
    ($t:ty) => {
        fn message_type(&self) -> std::any::TypeId {
            std::any::TypeId::of::<$t>()
        }
        fn message_type_name(&self) -> &'static str {
            std::any::type_name::<$t>()
        }
        fn as_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
            self
        }
    };
}
pub(crate) use typed_answers;

/// The type-erased face of a store, for linking by name and for the graph.
/// `store` as `Any`, to downcast by reference: an upcast, so no call (a method returning
/// itself as `Any` was one more indirect call on every send from an outbox kept by its table).
#[inline(always)]
pub(crate) fn as_any_ref(store: &dyn ErasedStore) -> &dyn Any {
    store
}

pub(crate) trait ErasedStore: Any + Send + Sync {
    fn id(&self) -> BoxId;
    fn meta(&self) -> Arc<BoxMeta>;
    fn direction(&self) -> Direction;
    fn message_type(&self) -> TypeId;
    fn message_type_name(&self) -> &'static str;
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    // What a box that is not a store (a rare box's placeholder, an outbox's descriptor)
    // answers, unless it says otherwise: it is linked nowhere and holds nothing.
    fn link_erased(self: Arc<Self>, _dst: Arc<dyn ErasedStore>) -> Result<(), LinkFailure> {
        Err(LinkFailure::TypeMismatch)
    }
    fn unlink_erased(self: Arc<Self>) -> Option<BoxId> {
        None
    }
    fn forward(&self) -> Option<BoxId> {
        None
    }
    /// A new box of the same message type, with the default capacity.
    fn new_like(&self, owner: &Owner, meta: Arc<BoxMeta>, dir: Direction) -> Arc<dyn ErasedStore>;
    fn close_erased(&self) -> usize {
        0
    }
    fn queued(&self) -> usize {
        0
    }
    /// A rare box's placeholder, not a store (`rare.rs`).
    fn is_rare(&self) -> bool {
        false
    }
    /// The store's owner (none for a placeholder).
    fn owner(&self) -> Option<Owner> {
        None
    }
    /// An outbox kept by its component's table: its entry's descriptor (`slot.rs`).
    fn is_slot(&self) -> bool {
        false
    }
    /// A descriptor that says its outbox has a store of its own (`slot.rs`).
    fn slot_has_own(&self) -> bool {
        false
    }
    /// A descriptor's: gives the outbox at `index` of `core` a store of its own (`slot.rs`).
    fn make_own_erased(
        &self,
        _core: &Arc<crate::component::Core>,
        _index: usize,
    ) -> Option<Arc<dyn ErasedStore>> {
        None
    }
    /// A reference to an outbox kept by its component's table (`slot.rs`).
    fn as_slot(&self) -> Option<&crate::slot::SlotRef> {
        None
    }
    /// Whether following forwards from here ends in a closed store.
    fn end_closed(&self) -> bool {
        false
    }
    /// Wakes the tasks waiting for room along the chain from here.
    fn wake_senders_erased(&self) {}
}

impl<T: Send + 'static> ErasedStore for Store<T> {
    fn id(&self) -> BoxId {
        Store::id(self)
    }
    fn meta(&self) -> Arc<BoxMeta> {
        Store::meta(self)
    }
    fn direction(&self) -> Direction {
        Store::direction(self)
    }
    crate::store::typed_answers!(T);
    fn link_erased(self: Arc<Self>, dst: Arc<dyn ErasedStore>) -> Result<(), LinkFailure> {
        let dst = dst
            .as_any()
            .downcast::<Store<T>>()
            .map_err(|_| LinkFailure::TypeMismatch)?;
        self.link_to(&dst)
    }
    fn unlink_erased(self: Arc<Self>) -> Option<BoxId> {
        self.unlink()
    }
    fn forward(&self) -> Option<BoxId> {
        self.forward_id()
    }
    fn new_like(&self, owner: &Owner, meta: Arc<BoxMeta>, dir: Direction) -> Arc<dyn ErasedStore> {
        Store::<T>::new(owner.clone(), meta, dir, crate::DEFAULT_CAPACITY, false)
    }
    fn close_erased(&self) -> usize {
        self.close()
    }
    fn queued(&self) -> usize {
        self.len()
    }
    fn owner(&self) -> Option<Owner> {
        Some(lock(&self.state).owner.clone())
    }
    fn end_closed(&self) -> bool {
        let g = lock(&self.state);
        match g.forward().cloned() {
            Some(next) => {
                drop(g);
                next.end_is_closed()
            }
            None => g.has(CLOSED),
        }
    }
    fn wake_senders_erased(&self) {
        let (woken, next) = {
            let mut g = lock(&self.state);
            (g.take_tx(), g.forward().cloned())
        };
        woken.wake();
        if let Some(next) = next {
            next.wake_senders();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A box is paid for per box, per component, per connection: a hundred thousand
    /// connections hold about two million of them. A box never used holds its capacity and
    /// flags, its owner's index, its shape (shared name and description, byte bound and
    /// link) and the word that lets a waiting member poll it without the lock: 40 bytes, with
    /// the `Arc`'s two counts 56, one 64-byte chunk of the allocator (a chunk is the request
    /// plus 8, rounded up to 16: 41 bytes would take an 80-byte one, as 56 did until session
    /// 16). Its queue and wakers come with its first use.
    #[test]
    fn a_box_stays_small() {
        let block = std::mem::size_of::<Store<u64>>() + 2 * std::mem::size_of::<usize>();
        eprintln!("Arc<Store<u64>>: {block} bytes");
        assert!(std::mem::size_of::<Store<u64>>() <= 40);
        assert!(std::mem::size_of::<Store<crate::Control>>() <= 40);
    }

    /// Boxes declared alike share one shape, bounded or not; a linked box has one of its own
    /// while it is linked (with its name and bound), and shares again once unlinked.
    #[test]
    fn boxes_declared_alike_share_their_shape_until_linked() {
        let owner = || Owner::new(crate::component::Label::new("c".into(), 4));
        let meta = crate::spec::shared_meta("shaped", "");
        let made = |dir| Store::<Vec<u8>>::new(owner(), meta.clone(), dir, 8, false);
        let shape = |s: &Store<Vec<u8>>| lock(&s.state).shape.clone();
        let (a, b, dst) = (
            made(Direction::In),
            made(Direction::In),
            made(Direction::In),
        );
        assert!(Arc::ptr_eq(&shape(&a), &shape(&b)));
        let weigh: fn(&Vec<u8>) -> usize = Vec::len;
        a.set_byte_limit(100, weigh);
        assert!(!Arc::ptr_eq(&shape(&a), &shape(&b)));
        b.set_byte_limit(100, weigh);
        assert!(Arc::ptr_eq(&shape(&a), &shape(&b)));
        let shared = shape(&a);
        assert!(a.link_to(&dst).is_ok());
        assert!(!Arc::ptr_eq(&shape(&a), &shared));
        assert!(Arc::ptr_eq(&shape(&a).meta, &meta));
        assert_eq!(a.byte_usage(), Some((0, 100)));
        assert_eq!(a.forward_id(), Some(dst.id()));
        assert_eq!(a.unlink(), Some(dst.id()));
        assert!(Arc::ptr_eq(&shape(&a), &shared));
        assert!(a.forward_id().is_none());
    }

    /// A task that takes the last message is registered as waiting for the next at once (its
    /// next look at the empty box then needs no lock): the next message wakes it though it has
    /// not looked again. So does one that takes the last of several with `recv_many`.
    #[test]
    fn taking_the_last_message_registers_the_taker() {
        let (count, waker) = crate::test_wakers::WakeCount::waker();
        let mut cx = TaskContext::from_waker(&waker);
        let inbox = crate::Inbox::<u64>::standalone("inbox", 8);
        let store = &inbox.store;
        assert!(store.try_push(1, false).is_ok());
        assert_eq!(store.poll_pop(&mut cx), Poll::Ready(1));
        assert!(store.try_push(2, false).is_ok());
        assert_eq!(count.get(), 1, "woken without looking again");
        assert!(store.try_push(3, false).is_ok());
        let mut out = Vec::new();
        assert_eq!(store.poll_pop_many(&mut out, 8, &mut cx), Poll::Ready(2));
        assert_eq!(out, [2, 3]);
        assert!(store.try_push(4, false).is_ok());
        assert_eq!(count.get(), 2);
        // Not emptied: no registration (4 and 5 queued, one taken).
        assert!(store.try_push(5, false).is_ok());
        assert_eq!(store.poll_pop(&mut cx), Poll::Ready(4));
        assert!(store.try_push(6, false).is_ok());
        assert_eq!(count.get(), 2);
    }

    /// The capacity saturates at what its bits hold, and a capacity change keeps the flags.
    #[test]
    fn capacity_and_flags_share_a_word() {
        let meta = crate::spec::shared_meta("signal", "");
        let s = Store::<u64>::new(
            Owner::new(crate::component::Label::new("c".into(), 2)),
            meta,
            Direction::Out,
            usize::MAX,
            true,
        );
        assert_eq!(s.capacity(), CAPACITY_MASK as usize);
        s.set_capacity(0);
        assert_eq!(s.capacity(), 1);
        s.set_capacity(5);
        assert_eq!(s.capacity(), 5);
        assert_eq!(s.direction(), Direction::Out);
        assert!(lock(&s.state).has(SIGNAL) && !lock(&s.state).has(CLOSED));
        assert_eq!(s.close(), 0);
        assert!(s.end_is_closed() && s.capacity() == 5);
        assert_eq!(s.id().to_string(), "c#2.signal");
    }

    /// A capacity past the bits that hold it, set on a live inbox, saturates there and leaves
    /// the direction and every flag as they were (a capacity that spilled into the flags would
    /// make an inbox read as full, or closed).
    #[test]
    fn a_capacity_past_its_bits_saturates_and_sets_no_flag() {
        let meta = crate::spec::shared_meta("inbox", "");
        let s = Store::<u64>::new(
            Owner::new(crate::component::Label::new("c".into(), 3)),
            meta,
            Direction::In,
            4,
            false,
        );
        for big in [
            1_usize << 27,
            1 << 28,
            (1 << 29) + 3,
            u32::MAX as usize,
            usize::MAX,
        ] {
            s.set_capacity(big);
            assert_eq!(s.capacity(), CAPACITY_MASK as usize, "{big}");
            assert_eq!(s.direction(), Direction::In, "{big}");
            let st = lock(&s.state);
            assert!(
                !st.has(SIGNAL) && !st.has(FINAL_SENT) && !st.has(CLOSED) && !st.has(ROOM_GIVEN),
                "{big}"
            );
        }
        assert!(s.try_push(1, false).is_ok(), "not full, not closed");
    }

    /// A used box's queue and first waiting task fit one 64-byte block of the allocator.
    #[test]
    fn a_used_box_stays_small() {
        assert!(std::mem::size_of::<Busy<u64>>() <= 56);
    }

    fn used<T: Send + 'static>(s: &Store<T>) -> bool {
        lock(&s.state).busy.is_some()
    }

    /// A box allocates its queue and wakers on first use, not when declared; a box that only
    /// forwards (a passthrough, a linked outbox) never does; a byte bound adds a pointer to
    /// its shared limit and no queue.
    #[test]
    fn only_a_used_box_holds_a_queue() {
        let store = |name: &str, direction| {
            let meta = crate::spec::shared_meta(name, "");
            Store::<u64>::new(
                Owner::new(crate::component::Label::new("c".into(), 1)),
                meta,
                direction,
                4,
                false,
            )
        };
        let (out, pass, inbox) = (
            store("outbox", Direction::Out),
            store("pass", Direction::In),
            store("inbox", Direction::In),
        );
        pass.set_byte_limit(100, |_| 8);
        assert!(!used(&out) && !used(&pass) && !used(&inbox));
        out.link_to(&pass).unwrap_or_else(|_| panic!("links"));
        pass.link_to(&inbox).unwrap_or_else(|_| panic!("links"));
        assert!(!used(&out) && !used(&pass) && !used(&inbox));
        assert!(out.try_push(7, false).is_ok());
        assert!(!used(&out) && !used(&pass), "forwarders hold no queue");
        assert!(used(&inbox));
        assert_eq!(inbox.try_pop(), Some(7));
        assert_eq!(pass.byte_usage(), Some((0, 100)));
    }

    /// A byte bound is shared by every box declared and bounded alike, in their shape (a
    /// connection's bounded boxes hold a pointer to one, not a block each), and what a
    /// bounded box holds is weighed in its
    /// lock-free word: negative, so that no lock-free look takes it for a waiting task (a queued
    /// message is found by `try_pop` and counted by `len`), and back to 0 once the box is
    /// empty, where a task's waiting is noted as before.
    #[test]
    fn a_byte_bound_is_shared_and_its_weight_kept_in_the_lock_free_word() {
        let bounded = |name: &str| {
            let meta = crate::spec::shared_meta(name, "");
            let s = Store::<Vec<u8>>::new(
                Owner::new(crate::component::Label::new("b".into(), 9)),
                meta,
                Direction::In,
                8,
                false,
            );
            s.set_byte_limit(1_000, |m| m.len());
            s
        };
        let (a, b) = (bounded("a"), bounded("a"));
        let shape = |s: &Store<Vec<u8>>| lock(&s.state).shape.clone();
        assert!(
            Arc::ptr_eq(&shape(&a), &shape(&b)),
            "bounded alike: one bound"
        );
        assert!(a.try_push(vec![0; 600], false).is_ok());
        assert_eq!(a.byte_usage(), Some((600, 1_000)));
        assert!(!is_waiting(a.idle.load(Ordering::Acquire)));
        assert_eq!(a.len(), 1, "counted without the lock's answer being lost");
        assert!(a.try_push(vec![0; 600], false).is_ok(), "600 < 1,000");
        assert_eq!(a.byte_usage(), Some((1_200, 1_000)));
        assert!(matches!(
            a.try_push(vec![0; 1], false),
            Err(PushError::Full(..))
        ));
        assert_eq!(
            a.try_pop().map(|m| m.len()),
            Some(600),
            "found by a lock-free look"
        );
        assert_eq!(a.byte_usage(), Some((600, 1_000)));
        assert_eq!(a.try_pop().map(|m| m.len()), Some(600));
        assert_eq!(a.byte_usage(), Some((0, 1_000)));
        assert_eq!(a.idle.load(Ordering::Acquire), 0, "empty: no weight left");
        // A waiting task on the empty box, then a message: woken, and the message weighed.
        let (count, waker) = crate::test_wakers::WakeCount::waker();
        let mut cx = TaskContext::from_waker(&waker);
        assert_eq!(a.poll_pop(&mut cx), Poll::Pending);
        assert!(a.try_push(vec![0; 10], false).is_ok());
        assert_eq!(count.get(), 1);
        assert_eq!(a.byte_usage(), Some((10, 1_000)));
        // Closed with a message left: still weighed, and still taken.
        assert_eq!(a.close(), 1);
        assert_eq!(a.byte_usage(), Some((10, 1_000)));
        assert_eq!(a.try_pop().map(|m| m.len()), Some(10));
        // A bound set on a box that holds messages weighs them; a new limit keeps the weight.
        let c = Store::<Vec<u8>>::new(
            Owner::new(crate::component::Label::new("c".into(), 10)),
            crate::spec::shared_meta("c", ""),
            Direction::In,
            8,
            false,
        );
        assert!(c.try_push(vec![0; 30], false).is_ok());
        c.set_byte_limit(20, |m| m.len());
        assert_eq!(c.byte_usage(), Some((30, 20)));
        c.set_byte_limit(100, |m| m.len());
        assert_eq!(c.byte_usage(), Some((30, 100)));
    }

    /// A sender on another worker keeps a bounded box of a group member full while the member
    /// takes from it: every message arrives in order, the sender is woken for room each time
    /// (the weight in the lock-free word says full), and the box never holds more than its
    /// bound and one message. On a multi-thread runtime, bounded at 30 s (a lost wake-up would
    /// hang it).
    #[test]
    fn a_bounded_box_between_two_workers_loses_nothing_and_keeps_its_bound() {
        const N: usize = 2_000;
        two_workers().block_on(async {
            let mut b = crate::Component::build("Taker");
            let inbox = b.inbox::<Vec<u8>>("inbox", "").limit_bytes(100);
            let store = inbox.store.clone();
            let (tx, rx) = tokio::sync::oneshot::channel();
            let taker = b.main(move |_| async move {
                let mut seen = Vec::with_capacity(N);
                while seen.len() < N {
                    let m = inbox.recv().await;
                    let (bytes, limit) = inbox.byte_usage().unwrap_or((0, 0));
                    assert!(bytes < limit + 64, "{bytes} bytes held, bound {limit}");
                    seen.push(m[0]);
                    if seen.len() % 7 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                let _ = tx.send(seen);
                Ok(())
            });
            let out = crate::Outbox::<Vec<u8>>::standalone("out");
            let link = crate::link_refs(&out.boxref(), &crate::BoxRef::new(store));
            assert!(link.is_ok());
            let sched = crate::Scheduler::new();
            let report = sched.run(async move {
                crate::Group::new().with(taker).activate();
                tokio::spawn(async move {
                    for i in 0..N {
                        let len = 1 + i % 60;
                        let mut m = vec![0_u8; len];
                        m[0] = (i % 256) as u8;
                        assert!(out.send(m).await.is_ok());
                    }
                });
            });
            let run = async { (report.await, rx.await) };
            let (report, seen) = tokio::time::timeout(std::time::Duration::from_secs(30), run)
                .await
                .expect("every message arrived (30 s)");
            assert!(report.is_ok());
            let seen = seen.unwrap_or_default();
            assert_eq!(seen.len(), N);
            assert!(
                seen.iter().enumerate().all(|(i, &b)| b == (i % 256) as u8),
                "in order"
            );
        });
    }

    /// A group member waiting with no used part on an inbox nothing is linked to is woken when
    /// an outbox holding messages is linked to it from another thread (the link moves them in
    /// and finds the owner's waker through its block), and gets them in order, each time for
    /// many owners. On a multi-thread runtime, bounded at 30 s.
    #[test]
    fn a_link_from_another_thread_wakes_an_owner_waiting_with_no_used_part() {
        const OWNERS: usize = 200;
        two_workers().block_on(async {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, u64, u64)>();
            let mut members = Vec::new();
            let mut inboxes = Vec::new();
            for i in 0..OWNERS {
                let mut b = crate::Component::build("Linked");
                let inbox = b.inbox::<u64>("inbox", "");
                inboxes.push(inbox.store.clone());
                let tx = tx.clone();
                members.push(b.main(move |_| async move {
                    let (a, b) = (inbox.recv().await, inbox.recv().await);
                    let _ = tx.send((i, a, b));
                    Ok(())
                }));
            }
            drop(tx);
            let sched = crate::Scheduler::new();
            let report = sched.run(async move {
                for m in members {
                    crate::Group::new().with(m).activate();
                }
                // Every owner waits, with no used part, before its link is made (its tasks
                // run on the other worker too: looked at until then, 10 s at most).
                for s in &inboxes {
                    for _ in 0..10_000 {
                        if s.idle.load(Ordering::Acquire) != 0 {
                            break;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                    assert!(s.idle.load(Ordering::Acquire) != 0 && !used(s));
                }
                // Off the runtime's workers, as a plain thread would be.
                let linked = tokio::task::spawn_blocking(move || {
                    inboxes.iter().all(|dst| {
                        let out = crate::Outbox::<u64>::standalone("out");
                        let queued = out.try_send(1).is_ok() && out.try_send(2).is_ok();
                        queued
                            && crate::link_refs(&out.boxref(), &crate::BoxRef::new(dst.clone()))
                                .is_ok()
                    })
                });
                assert!(matches!(linked.await, Ok(true)));
            });
            let collect = async {
                let mut got = Vec::new();
                while let Some(r) = rx.recv().await {
                    got.push(r);
                }
                got
            };
            let run = async { tokio::join!(report, collect) };
            let (report, got) = tokio::time::timeout(std::time::Duration::from_secs(30), run)
                .await
                .expect("every link woke its owner (30 s)");
            assert!(report.is_ok());
            assert_eq!(got.len(), OWNERS);
            assert!(got.iter().all(|&(_, a, b)| (a, b) == (1, 2)), "in order");
        });
    }

    /// A noted waiting task says the store is its chain's end ([`Store::full_end`] answers
    /// "room" from it without the lock): a group member waiting on an inbox that forwards (a
    /// passthrough made while it waited) is not noted, so an outbox linked through that inbox
    /// to a full one finds the full end, and a message then sent to the inbox, once unlinked,
    /// still wakes the member.
    #[test]
    fn a_store_that_forwards_notes_no_waiting_task() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut b = crate::Component::build("Middle");
            let mid = b.inbox::<u64>("inbox", "");
            let mid_store = mid.store.clone();
            let member = b.main(move |_| async move {
                let _ = mid.recv().await;
                Ok(())
            });
            let end = crate::Inbox::<u64>::standalone("end", 1);
            assert!(end.store.try_push(7, false).is_ok());
            let out = crate::Outbox::<u64>::standalone("out");
            let sched = crate::Scheduler::new();
            let report = sched.run(async move {
                crate::Group::new().with(member).activate();
                // The member waits on its empty inbox, noted in the lock-free word.
                until(|| mid_store.idle.load(Ordering::Acquire) != 0).await;
                let mid_ref = crate::BoxRef::new(mid_store.clone());
                assert!(crate::link_refs(&mid_ref, &end.boxref()).is_ok());
                // Woken by the link, it waits again on an inbox that now forwards: kept in a
                // used part, not noted in the word (the old code noted it there).
                until(|| used(&mid_store) || mid_store.idle.load(Ordering::Acquire) != 0).await;
                assert_eq!(mid_store.idle.load(Ordering::Acquire), 0);
                assert!(crate::link_refs(&out.boxref(), &mid_ref).is_ok());
                assert!(
                    out.start().and_then(|s| s.full_end()).is_some(),
                    "the full end, past the inbox"
                );
                assert!(mid_store.unlink().is_some());
                assert!(mid_store.try_push(1, false).is_ok());
            });
            let report = tokio::time::timeout(std::time::Duration::from_secs(10), report)
                .await
                .expect("the member was woken");
            assert!(report.is_ok());
        });
    }

    /// A multi-thread runtime of two workers, for the tests across threads.
    fn two_workers() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    /// Yields until `cond` holds (at most a thousand times: a test on one thread needs a few).
    async fn until(cond: impl Fn() -> bool) {
        for _ in 0..1000 {
            if cond() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("not reached");
    }

    /// A group member waiting with no used part on its `control` (given back after each
    /// message) is woken by every push from other threads, one at a time, each finding the box
    /// empty: none is lost (the owner's waker found through the table each time, under the
    /// store's lock, while the owner runs on another worker).
    #[test]
    fn pushes_from_other_threads_wake_an_owner_waiting_with_no_used_part() {
        const N: u64 = 2_000;
        two_workers().block_on(async {
            let mut b = crate::Component::build("Counter");
            let control = b.control();
            let ctl = control.store.clone();
            let (ack, mut acks) = tokio::sync::mpsc::unbounded_channel::<()>();
            let counter = b.main(move |_| async move {
                loop {
                    let c = control.recv().await;
                    if c.is_final() {
                        return Ok(());
                    }
                    let _ = ack.send(());
                }
            });
            let sched = crate::Scheduler::new();
            let report = sched.run(async {
                crate::Group::new().with(counter).activate();
                // Off the runtime's workers, as a plain thread would be.
                let done = tokio::task::spawn_blocking(move || {
                    for _ in 0..N {
                        assert!(ctl.try_push(crate::Control::notice("n"), false).is_ok());
                        // Waits until the owner took it: the next push finds the box empty.
                        if acks.blocking_recv().is_none() {
                            return false;
                        }
                    }
                    ctl.try_push(crate::Control::producer_finished(), false)
                        .is_ok()
                });
                let joined = tokio::time::timeout(std::time::Duration::from_secs(30), done)
                    .await
                    .expect("every push woke the owner (30 s)");
                assert!(matches!(joined, Ok(true)));
            });
            let ended = tokio::time::timeout(std::time::Duration::from_secs(30), report).await;
            assert!(ended.expect("the final message ended it (30 s)").is_ok());
        });
    }

    /// A group member waiting on a box that nothing has sent to (a connection's `control` and
    /// `makessl`) holds no used part there: its waker is found through its block when a message
    /// comes, and the message wakes it. A box of control messages gives its used part back
    /// once its owner has taken the last message and waits again; a box of data does so once
    /// (after a one-off message), then keeps it (its room, for the next message).
    #[tokio::test]
    async fn an_empty_box_its_owner_waits_on_holds_no_used_part() {
        let mut b = crate::Component::build("Waiter");
        let inbox = b.inbox::<u64>("inbox", "");
        let control = b.control();
        let (data, ctl) = (inbox.store.clone(), control.store.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let waiter = b.main(move |_| async move {
            let got = inbox.recv().await + inbox.recv().await;
            while !control.recv().await.is_final() {}
            let _ = tx.send(got);
            Ok(())
        });
        let check = {
            let (data, ctl) = (data.clone(), ctl.clone());
            async move {
                until(|| data.idle.load(Ordering::Acquire) != 0).await;
                assert!(!used(&data), "waited on: no used part");
                assert!(!used(&ctl), "never polled yet");
                assert!(data.try_push(7, false).is_ok());
                until(|| used(&data)).await;
                until(|| data.idle.load(Ordering::Acquire) != 0).await;
                assert!(!used(&data), "one message came and went: given back, once");
                assert!(data.try_push(8, false).is_ok());
                until(|| ctl.idle.load(Ordering::Acquire) != 0).await;
                assert!(used(&data), "a second message came: its room is kept");
                assert!(!used(&ctl), "waited on: no used part");
                let notice = crate::Control::notice("a notice");
                assert!(ctl.try_push(notice, false).is_ok());
                until(|| ctl.idle.load(Ordering::Acquire) != 0).await;
                assert!(!used(&ctl), "given back");
                assert!(ctl
                    .try_push(crate::Control::producer_finished(), false)
                    .is_ok());
            }
        };
        let run = async {
            let report = crate::Scheduler::new()
                .run(async {
                    crate::Group::new().with(waiter).activate();
                    check.await;
                })
                .await;
            (report, rx.await.ok())
        };
        // A lost wake-up would hang here: bounded.
        let (report, got) = tokio::time::timeout(std::time::Duration::from_secs(30), run)
            .await
            .expect("every message woke the waiter (30 s)");
        assert!(report.is_ok());
        assert_eq!(got, Some(15));
    }

    /// A task that is not the box's owner (here the test's own, with a waker of an unknown
    /// kind) waiting on an empty box is kept in a used part, as before, and woken by the next
    /// message.
    #[test]
    fn another_task_waiting_gets_a_used_part() {
        let (count, waker) = crate::test_wakers::WakeCount::waker();
        let mut cx = TaskContext::from_waker(&waker);
        let inbox = crate::Inbox::<u64>::standalone("inbox", 8);
        let store = &inbox.store;
        assert_eq!(store.poll_pop(&mut cx), Poll::Pending);
        assert!(used(store));
        assert!(store.try_push(1, false).is_ok());
        assert_eq!(count.get(), 1);
    }

    /// A box of control messages gives its queue's room back with its last message (a
    /// connection's `control` gets a notice at its start, then nothing for its whole life); a
    /// box of data keeps its room for the next message.
    #[test]
    fn a_control_box_gives_its_room_back_when_emptied() {
        let meta = crate::spec::shared_meta("control", "");
        let owner = || Owner::new(crate::component::Label::new("c".into(), 4));
        let control = Store::<crate::Control>::new(owner(), meta.clone(), Direction::In, 4, false);
        assert!(control
            .try_push(crate::Control::producer_finished(), false)
            .is_ok());
        let room = |s: &Store<crate::Control>| {
            lock(&s.state)
                .busy
                .as_ref()
                .map_or(0, |b| b.queue.capacity())
        };
        assert_eq!(room(&control), 1);
        assert!(control.try_pop().is_some());
        assert_eq!(room(&control), 0, "given back");
        let data = Store::<u64>::new(owner(), meta, Direction::In, 4, false);
        assert!(data.try_push(7, false).is_ok());
        assert_eq!(data.try_pop(), Some(7));
        assert_eq!(
            lock(&data.state).busy.as_ref().map(|b| b.queue.capacity()),
            Some(1)
        );
    }
}
