//! Component groups: several components' main routines polled by one tokio task.
//!
//! A connection is a handful of components (a client, its connection adapter, whatever reads
//! from it) that wake each other all the time and never run in parallel usefully. As separate
//! tasks each costs a task's header and scheduling; as one group they share a task, and the
//! group polls only the members that were woken (each member has its own waker). Everything
//! else about a member is as for any component: its boxes, its handle, its exit, its place in
//! the scheduler's run and report (docs/semantics.md §10).

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll, RawWakerVTable, Wake, Waker};

use futures_util::task::AtomicWaker;

use crate::component::{Component, Core};
use crate::scheduler::{Handle, Life, Scheduler};

/// Components to activate together as one task: the members of one connection, or of a whole
/// Graphline.
///
/// Each member is a full component (docs/semantics.md §10): it is activated, linked, stopped,
/// reported and joined exactly as if it ran alone. A member that panics or fails is that
/// member's failure only; the others go on. The group's task ends when its last member has
/// ended. A member's children activated with [`crate::Context::activate_beside`] join the group.
///
/// ```
/// use axon::{Component, Control, Group, Inbox, Scheduler};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut b = Component::build("Greeter");
/// let out = b.outbox::<&'static str>("outbox", "one greeting");
/// let signal = b.signal();
/// b.control();
/// let greeter = b.main(|_cx| async move {
///     out.send("hello").await?;
///     signal.send(Control::producer_finished()).await?;
///     Ok(())
/// });
/// let mut b = Component::build("Printer");
/// let inbox = b.inbox::<&'static str>("inbox", "greetings");
/// let (tx, rx) = tokio::sync::oneshot::channel();
/// let printer = b.main(|_cx| async move {
///     let _ = tx.send(inbox.recv().await);
///     Ok(())
/// });
/// axon::link_refs(&greeter.boxref("outbox").unwrap(), &printer.boxref("inbox").unwrap()).unwrap();
///
/// let report = Scheduler::new()
///     .run(async { Group::new().with(greeter).with(printer).activate(); })
///     .await;
/// assert!(report.is_ok());
/// assert_eq!(report.components, 2);
/// assert_eq!(rx.await.unwrap(), "hello");
/// # }
/// ```
#[derive(Default)]
pub struct Group {
    /// The first members, in place: most groups are two (a connection's adapter and its
    /// protocol, a client and its user). A list is freed when the group is activated, often
    /// on another thread than the one that built it (a program builds its groups, then a
    /// worker activates them), and glibc keeps a block freed there as a hole in the builder's
    /// heap that nothing else reuses.
    first: [Option<Component>; INLINE],
    /// The members after the first [`INLINE`].
    rest: Vec<Component>,
}

/// How many members a group holds in place ([`Group::first`](Group)).
const INLINE: usize = 2;

/// Up to this many members past the first ones, a group's list grows one at a time (a Vec
/// would make room for four at the first), for the same reason.
const EXACT_UP_TO: usize = 8;

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.members().map(Component::label))
            .finish()
    }
}

impl Group {
    /// An empty group.
    pub fn new() -> Self {
        Group::default()
    }

    /// Adds `member`.
    pub fn with(mut self, member: impl Into<Component>) -> Self {
        self.push(member);
        self
    }

    /// Adds `member`.
    pub fn push(&mut self, member: impl Into<Component>) {
        let member = member.into();
        // The slots fill in order and are never emptied before activation.
        if let Some(slot) = self.first.iter_mut().find(|slot| slot.is_none()) {
            *slot = Some(member);
            return;
        }
        if self.rest.len() < EXACT_UP_TO {
            self.rest.reserve_exact(1);
        }
        self.rest.push(member);
    }

    /// How many members it has.
    pub fn len(&self) -> usize {
        self.first.iter().flatten().count() + self.rest.len()
    }

    /// True if it has none.
    pub fn is_empty(&self) -> bool {
        self.first[0].is_none()
    }

    /// Activates every member on the current scheduler (as [`Component::activate`] does), all
    /// in one task. The handles are in the order the members were added.
    pub fn activate(self) -> Vec<Handle> {
        Scheduler::current().activate_group(self, None)
    }

    /// The members, in the order they were added.
    fn members(&self) -> impl Iterator<Item = &Component> {
        self.first.iter().flatten().chain(&self.rest)
    }

    /// The members, in the order they were added, taken out.
    pub(crate) fn into_members(self) -> impl Iterator<Item = Component> {
        self.first.into_iter().flatten().chain(self.rest)
    }
}

impl<C: Into<Component>> FromIterator<C> for Group {
    fn from_iter<I: IntoIterator<Item = C>>(iter: I) -> Self {
        let mut group = Group::default();
        for member in iter {
            group.push(member);
        }
        group
    }
}

/// The shared end of a running (or about to run) group: which of its members were woken, and
/// its task's waker.
///
/// Every connection is a group: the block (with the `Arc`'s counts) is 48 bytes, one 64-byte
/// chunk of the allocator. Members that join a running group (rare: a member's children,
/// [`crate::Context::activate_beside`]) wait in a list of the process's ([`NEWCOMERS`]), not
/// behind a lock of the group's own (a lock and two flags were 24 bytes in the block, then
/// 72 bytes, an 80-byte chunk).
#[derive(Default)]
pub(crate) struct GroupTask {
    /// What the task has to look at, one word: member woken is the bit of its component's id,
    /// `id % MEMBER_BITS` ([`bit`]; members that share a bit are each polled when it is set:
    /// harmless, as any future may be polled without cause); [`INCOMING`], members were handed
    /// over; [`RUNNING`], the task is polling its members and looks at this word again before
    /// it returns, so a wake-up then (a member waking another: the usual case) needs no wake
    /// of the task; [`STARTED`], set before the task's first poll and kept by every poll;
    /// [`CLOSED`], set when the task ends (see [`CLOSED`]).
    flags: AtomicU64,
    /// The task, to wake when a member is woken or handed over while it is not running.
    task: AtomicWaker,
}

/// Members handed over to running groups and not yet taken by their tasks, by group (the
/// address of its block: the task takes the entry, or drops it when it ends or is dropped,
/// even unpolled, so no entry outlives its group's block). Also the lock under which a group
/// is found open and marked closed, so that nothing joins a group whose task has ended.
/// A map, not a list: every join beside a running group and every group's end looks its group
/// up here under the process's lock, so the look-up must not grow with the groups waiting.
static NEWCOMERS: Mutex<Newcomers> = Mutex::new(HashMap::with_hasher(BuildHasherDefault::new()));

type Newcomers = HashMap<usize, Vec<Life>, BuildHasherDefault<std::hash::DefaultHasher>>;

fn newcomers() -> MutexGuard<'static, Newcomers> {
    // Nothing panics while this lock is held.
    NEWCOMERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Members handed over and not yet taken (a bit of [`GroupTask::flags`]).
const INCOMING: u64 = 1 << 63;
/// The task is inside its poll and will look at the flags again (a bit of [`GroupTask::flags`]).
const RUNNING: u64 = 1 << 62;
/// The task has been spawned (a bit of [`GroupTask::flags`], set before the task's first
/// poll, and kept by every poll).
const STARTED: u64 = 1 << 61;
/// The task has ended (its last member ended) or was dropped: nothing more can join (a bit of
/// [`GroupTask::flags`], set under [`NEWCOMERS`]' lock: by the task's last poll when no
/// newcomer is listed, else when the task is dropped).
const CLOSED: u64 = 1 << 60;
/// How many bits of [`GroupTask::flags`] say which members were woken (a power of two, at
/// most 60).
const MEMBER_BITS: usize = 32;
const _: () = assert!(MEMBER_BITS.is_power_of_two() && MEMBER_BITS <= 60);

/// The bit in [`GroupTask::flags`] of the member whose block is `core`: its id's low bits (a
/// mask, not a division by [`MEMBER_BITS`]: this runs for every wake-up and every member
/// looked at: as a division it cost about 150 instructions per relay round trip).
#[inline]
fn bit(core: &Core) -> u64 {
    1 << (core.id.0 & (MEMBER_BITS as u64 - 1))
}

impl GroupTask {
    /// The key of this group's newcomers in [`NEWCOMERS`].
    fn key(&self) -> usize {
        self as *const GroupTask as usize
    }

    /// Takes this group's newcomers from `list` (none if it has none there).
    fn take_newcomers(&self, list: &mut Newcomers) -> Vec<Life> {
        list.remove(&self.key()).unwrap_or_default()
    }

    /// Notes `bits` for the task and wakes it, unless it is polling its members now (it looks
    /// at the flags again before it returns).
    fn notify(&self, bits: u64) {
        if self.flags.fetch_or(bits, Ordering::AcqRel) & RUNNING == 0 {
            self.task.wake();
        }
    }

    /// Hands `member` to the group's task, spawning the task on the current runtime if this is
    /// its first member. Hands it back if the group has already ended.
    pub(crate) fn join(self: &Arc<Self>, member: Life) -> Result<(), Life> {
        let mut list = newcomers();
        if self.flags.load(Ordering::Acquire) & CLOSED != 0 {
            return Err(member);
        }
        list.entry(self.key()).or_default().push(member);
        let start = self.flags.fetch_or(STARTED, Ordering::AcqRel) & STARTED == 0;
        drop(list);
        if start {
            self.flags.fetch_or(INCOMING, Ordering::AcqRel);
            self.spawn(Members::default());
        } else {
            self.notify(INCOMING);
        }
        Ok(())
    }

    /// Starts the group's task with `lives` (`n` of them) as its members, handed to it in its
    /// own future: no list of newcomers, which the task would free when it first runs, a hole
    /// in the activating thread's heap for every connection (a block of 176 bytes for two).
    /// The group must be new (no member has joined it).
    pub(crate) fn start_with(self: &Arc<Self>, n: usize, lives: impl Iterator<Item = Life>) {
        let mut members = Members::default();
        let mut woken = 0;
        for (k, life) in lives.enumerate() {
            let waker = member_waker(self, life.core());
            woken |= bit(life.core());
            if members.sched.is_none() {
                members.sched = life.scheduler().cloned();
            }
            members.add(Member { life, waker }, n.saturating_sub(k).max(1));
        }
        self.flags.fetch_or(woken | STARTED, Ordering::AcqRel);
        self.spawn(members);
    }

    /// Starts the group's task, with `members` in it (none if its members come through the
    /// list of newcomers). Every group's task starts here.
    fn spawn(self: &Arc<Self>, members: Members) {
        tokio::spawn(run(self.clone(), members));
    }
}

/// A member's waker is its component's block: waking it notes which member it is, then wakes
/// the group's task. (The block is allocated anyway; a waker of its own would be 48 bytes more
/// per member.)
impl Wake for Core {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(group) = self.group.get() {
            group.notify(bit(self));
        }
    }
}

/// The waker of `member`, a member of `group`. Every member's waker is made here, so that
/// [`is_known_waker`] knows them.
fn member_waker(group: &Arc<GroupTask>, member: &Arc<Core>) -> Waker {
    // A component is activated once, so it joins one group once: the cell is empty here.
    let _ = member.group.set(group.clone());
    let waker = Waker::from(member.clone());
    MEMBER_VTABLE.store(vtable_of(&waker), Ordering::Relaxed);
    waker
}

/// The kind of waker [`member_waker`] makes, once it has made one (0 before).
static MEMBER_VTABLE: AtomicUsize = AtomicUsize::new(0);

/// The kind of waker tokio gives its tasks, once a component running as a task of its own has
/// been polled (0 before; see [`note_task_waker`]).
static TASK_VTABLE: AtomicUsize = AtomicUsize::new(0);

#[inline]
fn vtable_of(waker: &Waker) -> usize {
    waker.vtable() as *const RawWakerVTable as usize
}

/// True if `waker` is of a kind whose data pointer alone says which task it wakes: a group
/// member's (made by [`member_waker`], or by the owners table's `Owner::waker` for the same
/// member: the member's own block, an `Arc<Core>`, which nothing else makes into a waker) or a
/// tokio task's (the task's header;
/// [`note_task_waker`] learns that kind). Two live wakers of these kinds with the same data
/// pointer wake the same task, as the pointer is their own allocation. A store
/// uses it to see, without its lock, that the task polling it is the one already waiting there
/// (`store.rs`). An answer of `false` only costs that fast path.
#[inline]
pub(crate) fn is_known_waker(waker: &Waker) -> bool {
    let vtable = vtable_of(waker);
    vtable == MEMBER_VTABLE.load(Ordering::Relaxed) || vtable == TASK_VTABLE.load(Ordering::Relaxed)
}

/// True if `waker` is a group member's (made by [`member_waker`]): the only kind a box's owner
/// can wait with and be found again through its block (`store.rs`, `owners.rs`), so a task of
/// another kind need not look in the table of labels.
#[inline]
pub(crate) fn is_member_waker(waker: &Waker) -> bool {
    vtable_of(waker) == MEMBER_VTABLE.load(Ordering::Relaxed)
}

/// Learns the kind of waker tokio gives its tasks from `waker`, the waker a component's life is
/// polled with: a life is polled only by its own tokio task or by its group (whose members'
/// wakers are made, and their kind noted, before it polls them), so any waker that is not a
/// member's is a tokio task's.
#[inline]
pub(crate) fn note_task_waker(waker: &Waker) {
    if TASK_VTABLE.load(Ordering::Relaxed) == 0 {
        let vtable = vtable_of(waker);
        if vtable != MEMBER_VTABLE.load(Ordering::Relaxed) {
            TASK_VTABLE.store(vtable, Ordering::Relaxed);
        }
    }
}

/// A running member: its life and its own waker.
struct Member {
    life: Life,
    waker: Waker,
}

/// A group's running members: the first two in the task's own block, the others in a list
/// made for the third. The task's block (tokio's, 128-byte aligned) is 256 bytes with two
/// members in it (48 bytes each), so a connection's group of two (a client and its user, a
/// server's adapter and its protocol) holds no list (a 64-byte block while there was room for
/// one member only), and a larger group a list of its third and later members.
#[derive(Default)]
struct Members {
    inline: [Option<Member>; 2],
    /// Slots for the third and later members (free ones `None`), made for the third: two
    /// words in the task's block where a `Vec` is three.
    rest: Option<Box<[Option<Member>]>>,
    /// The first member's scheduler, made the current one once per poll of the group's task
    /// (see [`Life::poll_member`]).
    sched: Option<Scheduler>,
}

impl Members {
    /// Adds `member` in the first free slot; `coming` members (this one included) are being
    /// added, so a list that must grow grows once for them all.
    fn add(&mut self, member: Member, coming: usize) {
        if let Some(slot) = self.inline.iter_mut().find(|s| s.is_none()) {
            *slot = Some(member);
            return;
        }
        let rest = self.rest.get_or_insert_default();
        if let Some(slot) = rest.iter_mut().find(|s| s.is_none()) {
            *slot = Some(member);
            return;
        }
        // Full: grown once for all the members coming (this one included).
        let mut grown = std::mem::take(rest).into_vec();
        let at = grown.len();
        grown.reserve_exact(coming.max(1));
        grown.resize_with(at + coming.max(1), || None);
        grown[at] = Some(member);
        *rest = grown.into_boxed_slice();
    }

    /// Looked at every poll of the group's task: written out (as a chained iterator over the
    /// slots it cost about 90 instructions a relay round trip, callgrind).
    fn is_empty(&self) -> bool {
        let [a, b] = &self.inline;
        a.is_none()
            && b.is_none()
            && self
                .rest
                .as_deref()
                .is_none_or(|rest| rest.iter().all(Option::is_none))
    }
}

/// Polls the member in `slot` if `woken` notes it, and empties the slot once it has ended;
/// `current` is the key of the scheduler the group's task has made the current one.
#[inline(always)]
fn poll_woken(slot: &mut Option<Member>, woken: u64, current: usize) {
    if let Some(m) = slot {
        if woken & bit(m.life.core()) == 0 {
            return;
        }
        let mut mcx = TaskContext::from_waker(&m.waker);
        if m.life.poll_member(&mut mcx, current).is_ready() {
            *slot = None;
        }
    }
}

/// How many rounds of woken members one poll of the group's task runs before it yields to
/// the runtime (members that keep waking each other must not hold a worker for ever).
const ROUNDS_PER_POLL: usize = 2;

/// The group's task: polls the members that were woken, each with its own waker, and takes
/// newcomers, until none is left. `members` are those it starts with (none if they join).
///
/// A plain function returning the future, which holds `members` once, where they are polled
/// (an `async fn` would hold them twice, as argument and as local: tokio's block for the task
/// 384 bytes, not 256).
fn run(
    group: Arc<GroupTask>,
    mut members: Members,
) -> impl std::future::Future<Output = ()> + Send {
    // If the task is dropped (the runtime shutting down), members not yet taken are dropped
    // with it rather than kept alive by their own contexts' reference to the group. Made here,
    // outside the `async` block, so that it closes the group even if the task is dropped
    // before its first poll: its newcomers' entry in [`NEWCOMERS`] must not outlive the
    // group's block, whose address keys it (a later group at that address would adopt them).
    struct Close(Arc<GroupTask>);
    impl Drop for Close {
        fn drop(&mut self) {
            // Closed by the task's last poll, under the lock with no entry listed: nothing can
            // have joined since, so the list need not be looked at again.
            if self.0.flags.load(Ordering::Acquire) & CLOSED == 0 {
                let incoming = {
                    let mut list = newcomers();
                    self.0.flags.fetch_or(CLOSED, Ordering::AcqRel);
                    self.0.take_newcomers(&mut list)
                };
                drop(incoming);
            }
            // Ended members' blocks (their wakers) may outlive the task, held by handles, and
            // they hold the group: it must not hold the task's own waker (the task) too.
            drop(self.0.task.take());
        }
    }
    let close = Close(group);
    async move {
        let group = &close.0;
        std::future::poll_fn(|cx| {
            // The members' scheduler is the current one while they are polled: made so once
            // here (a member of another is polled as it would be alone).
            let mut sched = members.sched.take();
            let current = sched.as_ref().map_or(0, Scheduler::key);
            let polled = crate::scheduler::entered(&mut sched, || {
                poll_members(group, &mut members, cx, current)
            });
            if sched.is_some() {
                members.sched = sched;
            }
            polled
        })
        .await;
    }
}

/// One poll of a group's task ([`run`]): polls the members that were woken and takes newcomers;
/// ready when none is left.
fn poll_members(
    group: &Arc<GroupTask>,
    members: &mut Members,
    cx: &mut TaskContext<'_>,
    current: usize,
) -> Poll<()> {
    group.task.register(cx.waker());
    let mut rounds = 0;
    // Members seen waiting under the lock, whose INCOMING may not be noted yet.
    let mut handed_over = false;
    loop {
        // Takes what was noted and sets RUNNING (already set after the first turn), in one
        // atomic operation; STARTED stays (set before the first poll), CLOSED is set only
        // after the last.
        let flags = group.flags.swap(RUNNING | STARTED, Ordering::AcqRel) & !(RUNNING | STARTED);
        let mut woken = flags & !INCOMING;
        if flags & INCOMING != 0 || std::mem::take(&mut handed_over) {
            let incoming = group.take_newcomers(&mut newcomers());
            let n = incoming.len();
            for (k, life) in incoming.into_iter().enumerate() {
                let waker = member_waker(group, life.core());
                woken |= bit(life.core());
                // The group's scheduler, from its first member (taken out of `members`
                // while a scheduler is the current one: see `run`).
                if current == 0 && members.sched.is_none() {
                    members.sched = life.scheduler().cloned();
                }
                members.add(Member { life, waker }, n - k);
            }
        }
        if members.is_empty() {
            let list = newcomers();
            if !list.contains_key(&group.key()) {
                group.flags.fetch_or(CLOSED, Ordering::AcqRel);
                return Poll::Ready(());
            }
            handed_over = true;
            continue;
        }
        if woken == 0 {
            // Nothing noted: stop running, unless something was noted meanwhile (its
            // waker then saw RUNNING and left the wake-up to this loop).
            if group
                .flags
                .compare_exchange(
                    RUNNING | STARTED,
                    STARTED,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
            {
                return Poll::Pending;
            }
            continue;
        }
        if rounds == ROUNDS_PER_POLL {
            group.flags.fetch_or(woken, Ordering::AcqRel);
            group.flags.fetch_and(!RUNNING, Ordering::AcqRel);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        rounds += 1;
        let [a, b] = &mut members.inline;
        poll_woken(a, woken, current);
        poll_woken(b, woken, current);
        if let Some(rest) = members.rest.as_deref_mut() {
            for slot in rest.iter_mut() {
                poll_woken(slot, woken, current);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member() -> Component {
        Component::build("Member").main(|_| async { Ok(()) })
    }

    /// A group of two holds its members in place, with no list: the list would be freed at
    /// activation, often on another thread, where its room is a hole in the builder's heap.
    /// Past two, the list grows one member at a time while small.
    #[test]
    fn a_small_group_has_no_list_and_a_list_grows_exactly_while_small() {
        let group = Group::new().with(member()).with(member());
        assert_eq!((group.len(), group.rest.capacity()), (2, 0));
        let group = group.with(member());
        assert_eq!((group.len(), group.rest.capacity()), (3, 1));
        let mut group = Group::new();
        assert!(group.is_empty());
        for _ in 0..INLINE + EXACT_UP_TO + 1 {
            group.push(member());
        }
        assert_eq!(group.len(), INLINE + EXACT_UP_TO + 1);
        assert!(group.rest.capacity() > EXACT_UP_TO);
        let ids: Vec<_> = group.members().map(Component::id).collect();
        let taken: Vec<_> = group.into_members().map(|c| c.id()).collect();
        assert_eq!(ids, taken, "in the order added");
        assert!(ids.windows(2).all(|w| w[0].0 < w[1].0));
    }

    /// A group activated at once is handed to its task whole, in the task's own future: no
    /// list of newcomers is made (it was freed when the task first ran, a hole in the heap of
    /// the thread that activated it, per connection), and each member's waker is its block
    /// before the task runs.
    #[tokio::test(flavor = "current_thread")]
    async fn a_group_activated_at_once_makes_no_list_of_newcomers() {
        let sched = crate::Scheduler::new();
        let report = sched.run(async {
            let (a, b) = (member(), member());
            let cores = [a.core.clone(), b.core.clone()];
            Group::new().with(a).with(b).activate();
            // The task has not run yet (one thread, not yielded to).
            let task = cores[0].group.get().cloned();
            let task = task.unwrap_or_else(|| panic!("joined before the task runs"));
            assert!(cores[1].group.get().is_some_and(|g| Arc::ptr_eq(g, &task)));
            let started = task.flags.load(Ordering::Acquire) & STARTED != 0;
            let listed = newcomers().contains_key(&task.key());
            assert!(started && !listed, "no list of newcomers");
        });
        let ended = tokio::time::timeout(std::time::Duration::from_secs(30), report).await;
        assert!(ended.expect("the members ended (30 s)").is_ok());
    }

    /// Every connection is a group: its shared block (with the `Arc`'s two counts) fits one
    /// 64-byte chunk of the allocator (56 bytes or less), the members handed over to a running
    /// group waiting in the process's list. Fails on the old block (72 bytes, an 80-byte
    /// chunk: a lock of its own over the newcomers and two flags).
    #[test]
    fn a_group_block_stays_small() {
        let block = std::mem::size_of::<GroupTask>() + 2 * std::mem::size_of::<usize>();
        eprintln!("Arc<GroupTask>: {block} bytes");
        assert!(block <= 56);
    }

    /// The group's task future, with two members inline, stays small enough that tokio's task
    /// block stays 256 bytes: besides the future it holds 104 bytes (header 32, scheduler and
    /// id 16, the stage's tag 8, trailer 48), so the future may take 152 (`-Zprint-type-sizes`:
    /// the cell 256 bytes with a future of 152, no room left). Fails with the later members'
    /// slots in a `Vec` (160) or a life with a tag of its own for a miswired component (a
    /// member of 56 bytes).
    #[test]
    fn a_group_task_future_leaves_tokio_s_block_at_256_bytes() {
        let f = run(
            std::sync::Arc::new(GroupTask::default()),
            Members::default(),
        );
        let size = std::mem::size_of_val(&f);
        eprintln!("the group task's future: {size} bytes");
        assert!(size <= 152);
        assert!(std::mem::size_of::<Member>() <= 48);
    }

    /// A running group of two (every connection: a client and its user, a server's adapter
    /// and its protocol) holds both members in its task's block and makes no list; the third
    /// member makes one. Fails where only the first member had a place in the block.
    #[test]
    fn a_running_group_of_two_makes_no_list_of_members() {
        let sched = crate::Scheduler::new();
        let group = Arc::new(GroupTask::default());
        let mut members = Members::default();
        for k in 0..3 {
            let life = sched.life(member());
            let waker = member_waker(&group, life.core());
            members.add(Member { life, waker }, 1);
            assert_eq!(members.rest.is_some(), k == 2, "a list only from the third");
        }
        let listed = members
            .rest
            .as_deref()
            .map_or(0, |r| r.iter().flatten().count());
        assert!(members.inline.iter().all(Option::is_some) && listed == 1);
        assert!(!members.is_empty());
    }
}
