//! Typed box handles: [`Inbox`] to receive, [`Outbox`] to send.

use std::fmt;
use std::future::{poll_fn, Future};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;

use crate::spec::{BoxId, Direction};
use crate::store::{PushError, Store};

/// The capacity an inbox gets unless its component says otherwise.
pub const DEFAULT_CAPACITY: usize = 64;

/// Anything that can travel through a box.
pub trait Message: Send + 'static {}

impl<T: Send + 'static> Message for T {}

/// The receiving end of a box. Owned by its component's main routine.
///
/// An inbox is bounded: senders wait while it is full, so a slow component slows its producers
/// down instead of growing memory. See `docs/semantics.md` §3.
pub struct Inbox<T: Message> {
    pub(crate) store: Arc<Store<T>>,
}

/// The sending end of a box. Cheap to clone; clones send from the same box.
///
/// A send follows the box's link to the inbox at the end of the chain (through any passthrough
/// hops) and queues the message there. An outbox that is not linked keeps what is sent to it, up
/// to its capacity, and hands it on in order when it is linked (`docs/semantics.md` §2).
///
/// A component's outbox keeps no store of its own while it is linked: the handle is the
/// component's block and the outbox's place in its table, where its link is (`slot.rs`).
pub struct Outbox<T: Message> {
    at: At<T>,
}

/// What an [`Outbox`] handle reaches: a store (a standalone outbox, a rare outbox made, a
/// sender into an inbox), or an outbox kept by its component's table.
enum At<T> {
    Store(Arc<Store<T>>),
    Slot(Arc<crate::component::Core>, u32),
}

impl<T: Message> Clone for Outbox<T> {
    fn clone(&self) -> Self {
        Outbox {
            at: match &self.at {
                At::Store(s) => At::Store(Arc::clone(s)),
                At::Slot(core, i) => At::Slot(Arc::clone(core), *i),
            },
        }
    }
}

/// The store a use of an [`Outbox`] starts from: the handle's own, or one found for it.
pub(crate) enum Start<'a, T> {
    Held(&'a Arc<Store<T>>),
    Found(Arc<Store<T>>),
}

impl<T> std::ops::Deref for Start<'_, T> {
    type Target = Arc<Store<T>>;
    #[inline]
    fn deref(&self) -> &Arc<Store<T>> {
        match self {
            Start::Held(s) => s,
            Start::Found(s) => s,
        }
    }
}

/// Why [`Outbox::send`] failed. The message is handed back.
#[derive(PartialEq, Eq)]
pub struct SendError<T>(pub T);

/// Why [`Outbox::try_send`] failed. The message is handed back.
#[derive(PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The inbox at the end of the link is full (Axon's `noSpaceInBox`).
    Full(T),
    /// The outbox is not linked and its own buffer is full.
    Unlinked(T),
    /// The inbox at the end of the link belongs to a component that has ended.
    Closed(T),
}

impl<T> TrySendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(t) | TrySendError::Unlinked(t) | TrySendError::Closed(t) => t,
        }
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the receiving component has ended")
    }
}

impl<T> std::error::Error for SendError<T> {}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Full(_) => "Full(..)",
            TrySendError::Unlinked(_) => "Unlinked(..)",
            TrySendError::Closed(_) => "Closed(..)",
        })
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Full(_) => "the destination inbox is full",
            TrySendError::Unlinked(_) => "the outbox is not linked and its buffer is full",
            TrySendError::Closed(_) => "the receiving component has ended",
        })
    }
}

impl<T> std::error::Error for TrySendError<T> {}

static STANDALONE: AtomicU64 = AtomicU64::new(1);

fn standalone<T: Message>(name: &str, direction: Direction, capacity: usize) -> Arc<Store<T>> {
    let n = STANDALONE.fetch_add(1, Ordering::Relaxed);
    let owner = crate::owners::Owner::new(crate::component::Label::new(
        crate::spec::shared_name("standalone"),
        n,
    ));
    // Shared with every standalone box of that name (a server makes one per connection).
    let meta = crate::spec::shared_meta(name, "");
    Store::new(owner, meta, direction, capacity, false)
}

impl<T: Message> Inbox<T> {
    /// An inbox that belongs to no component: a place to collect what a component sends, for
    /// programs and tests that drive components from outside.
    pub fn standalone(name: &str, capacity: usize) -> Self {
        Inbox {
            store: standalone(name, Direction::In, capacity),
        }
    }

    /// Waits for the next message. Cancel safe: dropping the future loses nothing.
    ///
    /// The future polls the box directly (no `async` state machine around it), as a component
    /// that waits on several boxes makes one on every poll.
    pub fn recv(&self) -> impl Future<Output = T> + '_ {
        poll_fn(move |cx| self.store.poll_pop(cx))
    }

    /// The next message if one is queued (Axon's `recv` after `dataReady`).
    pub fn try_recv(&self) -> Option<T> {
        self.store.try_pop()
    }

    /// Moves up to `max` queued messages into `out` and returns how many; waits for at least one.
    pub async fn recv_many(&self, out: &mut Vec<T>, max: usize) -> usize {
        poll_fn(|cx| self.store.poll_pop_many(out, max, cx)).await
    }

    /// Waits until a message is queued, without taking it. Cancel safe.
    pub fn ready(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(move |cx| self.store.poll_data(cx))
    }

    /// How many messages are queued (Axon's `dataReady`).
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// True if nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most messages this inbox queues before senders wait.
    pub fn capacity(&self) -> usize {
        self.store.capacity()
    }

    /// Changes the capacity (Axon's `setInboxSize`): at least 1, at most 134,217,727 messages
    /// (a larger one is taken as that; `docs/semantics.md` §3).
    pub fn set_capacity(&self, capacity: usize) {
        self.store.set_capacity(capacity)
    }

    /// Which box this is.
    pub fn id(&self) -> BoxId {
        self.store.id()
    }

    /// A reference for linking and unlinking this box.
    pub fn boxref(&self) -> crate::BoxRef {
        crate::BoxRef::new(self.store.clone())
    }
}

impl<T: Message> Outbox<T> {
    /// An outbox that belongs to no component: a way to feed a component from outside.
    pub fn standalone(name: &str) -> Self {
        Outbox::from_store(standalone(name, Direction::Out, DEFAULT_CAPACITY))
    }

    /// A handle on `store`.
    pub(crate) fn from_store(store: Arc<Store<T>>) -> Self {
        Outbox {
            at: At::Store(store),
        }
    }

    /// A handle on the outbox at `index` of `core`'s table (`slot.rs`).
    pub(crate) fn slot(core: Arc<crate::component::Core>, index: usize) -> Self {
        let index = u32::try_from(index).expect("a table of fewer than 2^32 boxes");
        Outbox {
            at: At::Slot(core, index),
        }
    }

    /// Pushes `msg` from this outbox (as [`Store::try_push`]).
    #[inline]
    fn try_push(&self, msg: T, force: bool) -> Result<(), PushError<T>> {
        match &self.at {
            At::Store(s) => s.try_push(msg, force),
            At::Slot(core, i) => crate::slot::push(core, *i as usize, msg, force),
        }
    }

    /// Where this outbox's sends go now, if anywhere (an outbox with no store that is not
    /// linked: nowhere).
    #[inline]
    pub(crate) fn start(&self) -> Option<Start<'_, T>> {
        match &self.at {
            At::Store(s) => Some(Start::Held(s)),
            At::Slot(core, i) => crate::slot::target::<T>(core, *i as usize).map(Start::Found),
        }
    }

    /// The full end of the chain from this outbox, if it is full (an outbox with no store
    /// that is not linked has room).
    #[inline]
    pub(crate) fn full_end(&self) -> Option<Arc<Store<T>>> {
        match &self.at {
            At::Store(s) => s.full_end(),
            At::Slot(core, i) => crate::slot::full_end(core, *i as usize),
        }
    }

    /// Its own store, if it has one.
    fn own(&self) -> Option<Start<'_, T>> {
        match &self.at {
            At::Store(s) => Some(Start::Held(s)),
            At::Slot(core, i) => crate::slot::own::<T>(core, *i as usize).map(Start::Found),
        }
    }

    /// True once a final message has been sent from this (signal) outbox.
    pub(crate) fn final_sent(&self) -> bool {
        self.own().is_some_and(|s| s.final_sent())
    }

    /// Sends `msg`, waiting while the destination is full. Fails, handing `msg` back, if the
    /// destination's component has ended.
    ///
    /// Not cancel safe: if the future is dropped while waiting for room, `msg` goes with it. Use
    /// [`Outbox::ready`] and [`Outbox::try_send`] inside `select!`.
    ///
    /// The future is the message and a reference to this outbox, polled directly (no `async`
    /// state machine around it): a component waiting in a send holds no more than that.
    pub fn send(&self, msg: T) -> impl Future<Output = Result<(), SendError<T>>> + '_ {
        let mut msg = Some(msg);
        poll_fn(move |cx| loop {
            let m = msg.take().expect("Outbox::send polled after it completed");
            match self.try_push(m, false) {
                Ok(()) => return Poll::Ready(Ok(())),
                Err(PushError::Closed(m)) => return Poll::Ready(Err(SendError(m))),
                Err(PushError::Full(m, full, _)) => {
                    msg = Some(m);
                    // Registered for room at the full end: any wake-up tries again from the
                    // start of the chain (what woke it may be a relink upstream).
                    if full.poll_space(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        })
    }

    /// Sends `msg` if there is room now; otherwise hands it back saying why.
    pub fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        match self.try_push(msg, false) {
            Ok(()) => Ok(()),
            Err(PushError::Closed(m)) => Err(TrySendError::Closed(m)),
            Err(PushError::Full(m, _, true)) => Err(TrySendError::Unlinked(m)),
            Err(PushError::Full(m, _, false)) => Err(TrySendError::Full(m)),
        }
    }

    /// Sends `msg` even if the destination is full. For the few messages that must not wait
    /// (a final control message); never for data.
    pub fn force_send(&self, msg: T) -> Result<(), SendError<T>> {
        match self.try_push(msg, true) {
            Ok(()) => Ok(()),
            Err(PushError::Closed(m) | PushError::Full(m, ..)) => Err(SendError(m)),
        }
    }

    /// Waits until a send would not have to wait (or would fail at once). Cancel safe.
    pub fn ready(&self) -> impl Future<Output = ()> + '_ {
        // Each poll walks the chain afresh: what woke it may be a relink upstream.
        poll_fn(move |cx| loop {
            match self.full_end() {
                None => return Poll::Ready(()),
                Some(full) => {
                    if full.poll_space(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        })
    }

    /// True if this outbox is linked to a destination.
    pub fn is_linked(&self) -> bool {
        match &self.at {
            At::Store(s) => s.is_linked(),
            At::Slot(core, i) => crate::slot::is_linked(core, *i as usize),
        }
    }

    /// True if the inbox at the end of this outbox's link belongs to a component that ended.
    pub fn is_closed(&self) -> bool {
        self.start().is_some_and(|s| s.end_is_closed())
    }

    /// How many messages this outbox holds because it is not linked.
    pub fn buffered(&self) -> usize {
        self.own().map_or(0, |s| s.len())
    }

    /// Which box this is.
    pub fn id(&self) -> BoxId {
        match &self.at {
            At::Store(s) => s.id(),
            At::Slot(core, i) => crate::slot::id(core, *i as usize),
        }
    }

    /// A reference for linking and unlinking this box.
    pub fn boxref(&self) -> crate::BoxRef {
        match &self.at {
            At::Store(s) => crate::BoxRef::new(s.clone()),
            At::Slot(core, i) => crate::slot::boxref(core, *i as usize),
        }
    }
}

/// How a byte-bounded box weighs a message.
fn weigh<T: AsRef<[u8]>>(msg: &T) -> usize {
    msg.as_ref().len()
}

impl<T: Message + AsRef<[u8]>> Inbox<T> {
    /// Bounds this inbox in bytes as well as in messages: once it holds `max` bytes or more,
    /// senders wait (or get [`TrySendError::Full`]) until the owner takes some. An empty inbox
    /// always admits one message, so it holds at most `max - 1` bytes plus its largest message.
    /// See `docs/semantics.md` §3.
    ///
    /// ```
    /// use axon::{Inbox, Outbox, TrySendError};
    /// let inbox = Inbox::<Vec<u8>>::standalone("in", 64).limit_bytes(1000);
    /// let out = Outbox::<Vec<u8>>::standalone("out");
    /// axon::link_refs(&out.boxref(), &inbox.boxref()).unwrap();
    /// out.try_send(vec![0; 600]).unwrap();
    /// out.try_send(vec![0; 600]).unwrap(); // 600 < 1000: admitted
    /// assert!(matches!(out.try_send(vec![0; 1]), Err(TrySendError::Full(_))));
    /// inbox.try_recv();
    /// out.try_send(vec![0; 1]).unwrap();
    /// ```
    pub fn limit_bytes(self, max: usize) -> Self {
        self.store.set_byte_limit(max, weigh::<T>);
        self
    }

    /// The bytes queued now and the byte bound, if [`Inbox::limit_bytes`] set one.
    pub fn byte_usage(&self) -> Option<(usize, usize)> {
        self.store.byte_usage()
    }
}

impl<T: Message + AsRef<[u8]>> Outbox<T> {
    /// Bounds what this outbox keeps while it is not linked, in bytes as well as in messages
    /// (as [`Inbox::limit_bytes`]). Once linked, the bound of the inbox at the end of the link
    /// applies.
    pub fn limit_bytes(self, max: usize) -> Self {
        match &self.at {
            At::Store(s) => s.set_byte_limit(max, weigh::<T>),
            At::Slot(core, i) => crate::slot::limit_bytes(core, *i as usize, max, weigh::<T>),
        }
        self
    }
}

impl<T: Message> fmt::Debug for Inbox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Inbox({})", self.store.id())
    }
}

impl<T: Message> fmt::Debug for Outbox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Outbox({})", self.id())
    }
}

impl<T: Message> Inbox<T> {
    /// Refuses further messages, as when the component ends: senders get `Closed` from now on
    /// and waiting senders wake. What is already queued stays and can still be taken with
    /// [`Inbox::try_recv`], so a component can account for everything it was given before it
    /// ends. Returns how many messages are queued.
    pub fn close(&self) -> usize {
        self.store.close()
    }
}
