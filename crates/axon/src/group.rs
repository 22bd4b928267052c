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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll, RawWakerVTable, Wake, Waker};

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

    /// The first member's id (a group's number while it waits for a runtime); 0 if empty.
    pub(crate) fn first_id(&self) -> u64 {
        self.first[0].as_ref().map_or(0, |c| c.id().0)
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

/// The bits of a component's word ([`Core::word`]) that hold its id. Ids are counted from 1 and
/// do not reach 2^60 (a million components a second would take 36,000 years).
pub(crate) const ID_BITS: u64 = (1 << 60) - 1;
/// The member was woken since its group's task last looked (a bit of [`Core::word`]).
pub(crate) const WOKEN: u64 = 1 << 63;
/// Components wait in [`NEWCOMERS`] to join the group beside this member (a bit of
/// [`Core::word`], set by [`join_beside`]).
const INCOMING: u64 = 1 << 62;
/// The member has left its group's task (it ended, or the task was dropped): nothing joins the
/// group beside it any more (a bit of [`Core::word`]; set and read by atomic operations that
/// order it with [`INCOMING`], see [`join_beside`]).
const LEFT: u64 = 1 << 61;
const _: () = assert!(ID_BITS & (WOKEN | INCOMING | LEFT) == 0);

/// Components handed over to running groups and not yet taken by their tasks, by group (the
/// key of its task, [`key_of`]: the task takes the entry, or drops it when it ends or is
/// dropped, and the address is not reused while a member's block holds the task's waker: the
/// member a child joins beside is held by the context that activates the child). Also the lock under which a member is found still in
/// its group, so that nothing joins a group whose task has ended.
/// A map, not a list: every join beside a running member and every group's end looks its group
/// up here under the process's lock, so the look-up must not grow with the groups waiting.
static NEWCOMERS: Mutex<Newcomers> = Mutex::new(HashMap::with_hasher(BuildHasherDefault::new()));

type Newcomers = HashMap<usize, Vec<Life>, BuildHasherDefault<std::hash::DefaultHasher>>;

fn newcomers() -> MutexGuard<'static, Newcomers> {
    // Nothing panics while this lock is held.
    NEWCOMERS.lock().unwrap_or_else(|e| e.into_inner())
}

std::thread_local! {
    /// The key ([`key_of`]) of the group's task polling its members on this thread, 0 if none:
    /// a member woken meanwhile on this thread (by another member, usually) is found by the
    /// task's own loop, which looks at its members again before it returns, so the task need
    /// not be woken through the runtime.
    static POLLING: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A group's task's key: its waker's data pointer (a tokio task's header, the same for every
/// waker of that task).
#[inline]
fn key_of(task: &Waker) -> usize {
    task.data() as usize
}

/// Wakes the group's task `task` through the runtime, unless it is polling its members on this
/// thread now (it looks at them again before it returns).
#[inline]
fn wake_task(task: &Waker) {
    if POLLING.with(|p| p.get()) != key_of(task) {
        task.wake_by_ref();
    }
}

/// Hands `life` to the task of the group `beside` runs in (whose waker is `task`), to run
/// beside it ([`crate::Context::activate_beside`]). Hands it back if `beside` has left its
/// group (it ended, or its group's task ended or was dropped).
///
/// `beside`'s [`INCOMING`] is set, and its [`LEFT`] read, in one atomic operation under the
/// lock, and the task sets `LEFT` with one that returns `INCOMING`: whichever comes second sees
/// the other's bit, so either this refuses, or the task finds the entry (made under the lock,
/// which the task takes to look) when the member leaves or at its next look.
pub(crate) fn join_beside(beside: &Core, task: &Waker, life: Life) -> Result<(), Life> {
    {
        let mut list = newcomers();
        if beside.word.fetch_or(INCOMING, Ordering::AcqRel) & LEFT != 0 {
            return Err(life);
        }
        list.entry(key_of(task)).or_default().push(life);
    }
    wake_task(task);
    Ok(())
}

/// Starts a group's task on `runtime` with `lives` (`n` of them) as its members, handed to it
/// in its own future: no list of newcomers, which the task would free when it first runs, a
/// hole in the activating thread's heap for every connection (a block of 176 bytes for two).
pub(crate) fn start(runtime: &tokio::runtime::Handle, n: usize, lives: impl Iterator<Item = Life>) {
    let mut members = Members::default();
    // The members learn the task's waker at its first poll.
    members.admit(n, lives, None, true);
    runtime.spawn(run(members));
}

/// A member's waker is its component's block: waking it notes [`WOKEN`] in its word, then
/// wakes its group's task (unless it was noted already: a wake of the task is then on its way,
/// or the task has yet to look). (The block is allocated anyway; a waker of its own would be
/// 48 bytes more per member, and a block of the group's own 64 more per group.)
impl Wake for Core {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.word.fetch_or(WOKEN, Ordering::AcqRel) & WOKEN == 0 {
            // Not set before the task's first poll, which looks at every member.
            if let Some(task) = self.group.get() {
                wake_task(task);
            }
        }
    }
}

/// The waker of `member`, a member of a group. Every member's waker is made here, so that
/// [`is_known_waker`] knows them.
fn member_waker(member: &Arc<Core>) -> Waker {
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

    /// Takes `lives` (`n` of them) as members, each woken so that the task polls it, and told
    /// the task's waker `task` if the task has one yet (else at its first poll); the first
    /// one's scheduler becomes the group's if `sched` and the group has none.
    fn admit(
        &mut self,
        n: usize,
        lives: impl Iterator<Item = Life>,
        task: Option<&Waker>,
        sched: bool,
    ) {
        for (k, life) in lives.enumerate() {
            let core = life.core();
            if let Some(task) = task {
                // A component is activated once, so it joins one group once.
                let _ = core.group.set(task.clone());
            }
            core.word.fetch_or(WOKEN, Ordering::AcqRel);
            if sched && self.sched.is_none() {
                self.sched = life.scheduler().cloned();
            }
            let waker = member_waker(core);
            self.add(Member { life, waker }, n.saturating_sub(k).max(1));
        }
    }

    /// The members, in their slots' order.
    fn iter(&self) -> impl Iterator<Item = &Member> {
        let rest = self.rest.as_deref().unwrap_or_default();
        self.inline.iter().chain(rest).flatten()
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

/// What looking at the member in `slot` found (see [`look_at`]).
#[derive(Default)]
struct Looked {
    /// A member was polled.
    polled: bool,
    /// Newcomers wait beside a member.
    incoming: bool,
}

/// Looks at the member in `slot`: polls it if it was woken, empties the slot once it has ended
/// (it leaves the group: [`LEFT`]), and notes newcomers waiting beside it; `current` is the key
/// of the scheduler the group's task has made the current one.
#[inline(always)]
fn look_at(slot: &mut Option<Member>, current: usize, looked: &mut Looked) {
    let Some(m) = slot else {
        return;
    };
    let word = &m.life.core().word;
    // Nothing noted (the usual look at an idle member): no atomic write. A flag set after this
    // read was set on another thread, which woke the task through the runtime.
    if word.load(Ordering::Acquire) & (WOKEN | INCOMING) == 0 {
        return;
    }
    let flags = word.fetch_and(!(WOKEN | INCOMING), Ordering::AcqRel);
    looked.incoming |= flags & INCOMING != 0;
    if flags & WOKEN == 0 {
        return;
    }
    looked.polled = true;
    let mut mcx = TaskContext::from_waker(&m.waker);
    if m.life.poll_member(&mut mcx, current).is_ready() {
        let word = &m.life.core().word;
        looked.incoming |= word.fetch_or(LEFT, Ordering::AcqRel) & INCOMING != 0;
        *slot = None;
    }
}

/// How many rounds of woken members one poll of the group's task runs before it yields to
/// the runtime (members that keep waking each other must not hold a worker for ever).
const ROUNDS_PER_POLL: usize = 2;

/// A group's task's state: its members, and its key ([`key_of`], 0 before its first poll).
struct GroupState {
    members: Members,
    key: usize,
}

impl Drop for GroupState {
    /// A task dropped before its members ended (the runtime shutting down): they leave the
    /// group, and its newcomers not yet taken go with it (rather than kept alive by their own
    /// contexts, and listed under a key that a later task could have once this one is freed).
    fn drop(&mut self) {
        if self.members.is_empty() {
            // Ended: its last look, under the lock, found no newcomer, and nothing can join
            // a group whose members have all left.
            return;
        }
        let incoming = {
            let mut list = newcomers();
            for m in self.members.iter() {
                m.life.core().word.fetch_or(LEFT, Ordering::AcqRel);
            }
            (self.key != 0).then(|| list.remove(&self.key)).flatten()
        };
        drop(incoming);
    }
}

/// The group's task: polls the members that were woken, each with its own waker, and takes
/// newcomers, until none is left.
///
/// A plain function returning the future, which holds `members` once, where they are polled
/// (an `async fn` would hold them twice, as argument and as local: tokio's block for the task
/// 384 bytes, not 256).
fn run(members: Members) -> impl std::future::Future<Output = ()> + Send {
    let mut state = GroupState { members, key: 0 };
    std::future::poll_fn(move |cx| {
        // The members' scheduler is the current one while they are polled: made so once
        // here (a member of another is polled as it would be alone).
        let mut sched = state.members.sched.take();
        let current = sched.as_ref().map_or(0, Scheduler::key);
        let polled =
            crate::scheduler::entered(&mut sched, || poll_members(&mut state, cx, current));
        if sched.is_some() {
            state.members.sched = sched;
        }
        polled
    })
}

/// Notes on this thread that the group's task with key `key` is polling its members, until
/// dropped (see [`POLLING`]).
struct Polling(usize);

impl Polling {
    fn enter(key: usize) -> Polling {
        Polling(POLLING.with(|p| p.replace(key)))
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        POLLING.with(|p| p.set(self.0));
    }
}

/// One poll of a group's task ([`run`]): polls the members that were woken and takes newcomers;
/// ready when none is left.
fn poll_members(state: &mut GroupState, cx: &mut TaskContext<'_>, current: usize) -> Poll<()> {
    if state.key == 0 {
        // The first poll: the members learn the task's waker (a member is in one group, once).
        state.key = key_of(cx.waker());
        for m in state.members.iter() {
            let _ = m.life.core().group.set(cx.waker().clone());
        }
    }
    let _polling = Polling::enter(state.key);
    let members = &mut state.members;
    let mut rounds = 0;
    loop {
        if rounds == ROUNDS_PER_POLL {
            // Members that keep waking each other: the runtime's other tasks go first.
            if members
                .iter()
                .any(|m| m.life.core().word.load(Ordering::Acquire) & (WOKEN | INCOMING) != 0)
            {
                cx.waker().wake_by_ref();
            }
            return Poll::Pending;
        }
        let mut looked = Looked::default();
        let [a, b] = &mut members.inline;
        look_at(a, current, &mut looked);
        look_at(b, current, &mut looked);
        if let Some(rest) = members.rest.as_deref_mut() {
            for slot in rest.iter_mut() {
                look_at(slot, current, &mut looked);
            }
        }
        let ended = members.is_empty();
        if looked.incoming || ended {
            let incoming = newcomers().remove(&state.key);
            match incoming {
                Some(lives) => {
                    // The group's scheduler, from its first member, only if it has none: it
                    // is taken out of `members` while it is the current one (see `run`).
                    members.admit(
                        lives.len(),
                        lives.into_iter(),
                        Some(cx.waker()),
                        current == 0,
                    );
                    looked.polled = true;
                }
                // The last member has left and nothing waits to join: the task ends.
                None if ended => return Poll::Ready(()),
                None => {}
            }
        }
        if !looked.polled {
            return Poll::Pending;
        }
        rounds += 1;
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
    /// the thread that activated it, per connection). The members learn their task's waker at
    /// its first poll, the same task for both: what their wakers wake, with no block of the
    /// group's own.
    #[tokio::test(flavor = "current_thread")]
    async fn a_group_activated_at_once_makes_no_list_and_its_members_learn_its_task() {
        let sched = crate::Scheduler::new();
        let report = sched.run(async {
            let (go, went) = tokio::sync::oneshot::channel::<()>();
            let a = Component::build("Member").main(|_| async move {
                let _ = went.await;
                Ok(())
            });
            let b = member();
            let cores = [a.core.clone(), b.core.clone()];
            Group::new().with(a).with(b).activate();
            // The task has not run yet (one thread, not yielded to).
            assert!(cores.iter().all(|c| c.group.get().is_none()));
            tokio::task::yield_now().await;
            let task = cores[0].group.get().cloned();
            let task = task.unwrap_or_else(|| panic!("the task has polled its members"));
            assert!(cores[1].group.get().is_some_and(|t| t.will_wake(&task)));
            assert!(
                !newcomers().contains_key(&key_of(&task)),
                "no list of newcomers"
            );
            // The second member has ended and left; the first still runs.
            assert!(cores[1].word.load(Ordering::Acquire) & LEFT != 0);
            assert!(cores[0].word.load(Ordering::Acquire) & LEFT == 0);
            let _ = go.send(());
        });
        let ended = tokio::time::timeout(std::time::Duration::from_secs(30), report).await;
        assert!(ended.expect("the members ended (30 s)").is_ok());
    }

    /// A member's block keeps its group's task's waker and its flags, so that a group needs
    /// no block of its own (a 64-byte chunk a connection before): the block, with the `Arc`'s
    /// two counts, stays one 96-byte chunk of the allocator (88 bytes or less).
    #[test]
    fn a_member_s_block_holds_its_group_s_waker_in_one_96_byte_chunk() {
        let block = std::mem::size_of::<Core>() + 2 * std::mem::size_of::<usize>();
        eprintln!("ArcInner<Core>: {block} bytes");
        assert!(block <= 88);
    }

    /// The group's task future, with two members inline, stays small enough that tokio's task
    /// block stays 256 bytes: besides the future it holds 104 bytes (header 32, scheduler and
    /// id 16, the stage's tag 8, trailer 48), so the future may take 152 (`-Zprint-type-sizes`:
    /// the cell 256 bytes with a future of 152, no room left). Fails with the later members'
    /// slots in a `Vec` (160) or a life with a tag of its own for a miswired component (a
    /// member of 56 bytes).
    #[test]
    fn a_group_task_future_leaves_tokio_s_block_at_256_bytes() {
        let f = run(Members::default());
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
        let mut members = Members::default();
        for k in 0..3 {
            let life = sched.life(member());
            let waker = member_waker(life.core());
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
