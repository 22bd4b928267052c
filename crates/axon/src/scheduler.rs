//! Activation and run-to-completion: Axon's scheduler contract on tokio.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Poll;

use tokio::sync::Notify;

use crate::boxes::Outbox;
use crate::component::{
    BoxError, Component, ComponentId, Core, Label, MainFuture, CONTROL, SIGNAL,
};
use crate::control::{Control, ErrorMessage};
use crate::group::Group;
use crate::link::{BoxRef, WiringError};
use crate::registry::Registry;
use crate::spec::Direction;
use crate::store::Store;

thread_local! {
    /// The scheduler of the component being polled on this thread (or of the
    /// [`Scheduler::run`] being polled), set for the length of each poll.
    static CURRENT: std::cell::RefCell<Option<Scheduler>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with `sched` as the current scheduler, then puts back the one before (even if `f`
/// panics). The scheduler is moved in and out of its place, not cloned: entering costs no
/// reference count (a shared counter every poll of every component would touch).
pub(crate) fn entered<R>(sched: &mut Option<Scheduler>, f: impl FnOnce() -> R) -> R {
    struct Leave<'a>(&'a mut Option<Scheduler>);
    impl Drop for Leave<'_> {
        fn drop(&mut self) {
            let _ = CURRENT.try_with(|c| std::mem::swap(&mut *c.borrow_mut(), self.0));
        }
    }
    let _ = CURRENT.try_with(|c| std::mem::swap(&mut *c.borrow_mut(), sched));
    let _leave = Leave(sched);
    f()
}

/// A future polled with a scheduler as the current one (what [`Scheduler::run`] runs).
struct Scoped<F> {
    sched: Option<Scheduler>,
    fut: Pin<Box<F>>,
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        entered(&mut this.sched, || this.fut.as_mut().poll(cx))
    }
}

/// Tracks every activated component until it ends, and owns the service registry.
///
/// [`Scheduler::run`] (or the blocking [`crate::run`]) returns once every component activated
/// under it has ended, promptly and with no idle linger. Components activated from inside a
/// component's main routine join the same scheduler.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// Woken whenever a component is activated or ends.
    changed: Notify,
    registry: Registry,
    /// The runtime its [`Scheduler::run`] runs on, while it runs: what is activated from a
    /// thread with no runtime meanwhile (a plain thread a component handed its context to)
    /// starts there, not in the pending list, which only the run's start takes.
    runtime: Mutex<Option<tokio::runtime::Handle>>,
}

#[derive(Default)]
struct State {
    /// The live components with no parent (a program's top level: each of a client program's
    /// connections), found by id: 8-byte records, their blocks (one byte more each for the
    /// table's control bytes). A B-tree keyed by id held about 48 bytes a component, its nodes
    /// half full as ids come in order.
    tops: Live<()>,
    /// The live components with a parent (a server's connections), found by id: 16-byte
    /// records, the parent's id and the block.
    children: Live<std::num::NonZeroU64>,
    /// Activated before a tokio runtime existed: started by [`Scheduler::run`]. The members of
    /// one group carry the same number (its first member's id), and start as one task.
    pending: Vec<(Component, Option<u64>)>,
    /// The most recent failures, as text (see [`RunReport`]); at most [`RECENT_FAILURES`].
    failures: VecDeque<Arc<ComponentFailure>>,
    /// Every failure since the last report.
    failed: usize,
    activated: usize,
}

/// How many failures a [`RunReport`] keeps in full; older ones are only counted, so a program
/// that runs for months with failing connections does not grow.
pub const RECENT_FAILURES: usize = 64;

/// The live components of one kind of [`Record`], found by id.
type Live<P> = HashSet<Record<P>, std::hash::BuildHasherDefault<IdHasher>>;

/// A live component: its parent (`()` for one at the top level: 8 bytes in all; the parent's
/// id otherwise: 16 bytes), and the block its handles share. Found by its component's id, read
/// from the block.
struct Record<P> {
    parent: P,
    core: Arc<Core>,
}

impl<P> PartialEq for Record<P> {
    fn eq(&self, other: &Record<P>) -> bool {
        self.core.id() == other.core.id()
    }
}

impl<P> Eq for Record<P> {}

impl<P> std::hash::Hash for Record<P> {
    // As its id hashes, so that it is found by id.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.core.id().hash(state)
    }
}

impl State {
    /// How many components are live.
    fn live(&self) -> usize {
        self.tops.len() + self.children.len()
    }

    /// Records a live component, under its parent if it has one (ids start at 1: `NEXT_ID`).
    fn insert(&mut self, core: Arc<Core>, parent: Option<ComponentId>) {
        match parent.and_then(|p| std::num::NonZeroU64::new(p.0)) {
            None => self.tops.insert(Record { parent: (), core }),
            Some(parent) => self.children.insert(Record { parent, core }),
        };
    }

    /// Forgets a live component; whether it was recorded. (Found by its block's id: a record
    /// is equal to any other with the same id, whatever its parent.)
    fn remove(&mut self, core: &Arc<Core>) -> bool {
        let top = Record {
            parent: (),
            core: core.clone(),
        };
        self.tops.remove(&top)
            || self.children.remove(&Record {
                parent: std::num::NonZeroU64::MIN,
                core: top.core,
            })
    }
}

/// Hashes a component id: ids are distinct numbers handed out in order, so one multiplication
/// by an odd constant spreads them over the table (its high bits too, which pick the control
/// byte). No one chooses ids, so no defence against chosen keys is needed.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (a `ComponentId` hashes its one u64); this keeps any other
        // use correct.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The scheduler never panics while holding this lock.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running (or finished) component: its boxes, a way to stop it, and its exit.
#[derive(Clone)]
pub struct Handle {
    core: Arc<Core>,
}

/// How a component ended.
#[derive(Clone, Debug)]
pub struct Exit {
    /// `None` if its main routine returned `Ok`.
    pub failure: Option<Arc<ComponentFailure>>,
    /// Messages still queued in its inboxes when it ended, per box (they could not be delivered).
    pub undelivered: Vec<(Arc<str>, usize)>,
}

/// A component that panicked or whose main routine returned an error.
#[derive(Debug)]
pub struct ComponentFailure {
    /// The component's label.
    pub component: Arc<str>,
    /// What happened.
    pub kind: FailureKind,
}

/// What went wrong in a [`ComponentFailure`].
#[derive(Debug)]
#[non_exhaustive]
pub enum FailureKind {
    /// The main routine panicked; the panic message.
    Panicked(String),
    /// The main routine returned this error.
    Error(BoxError),
    /// The component could not be wired.
    Wiring(WiringError),
}

impl fmt::Display for ComponentFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FailureKind::Panicked(m) => write!(f, "{} panicked: {m}", self.component),
            FailureKind::Error(e) => write!(f, "{} failed: {e}", self.component),
            FailureKind::Wiring(e) => write!(f, "{} could not be wired: {e}", self.component),
        }
    }
}

impl std::error::Error for ComponentFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // The inner error is the source, so it can be downcast to its own type. Display also
        // shows its text, so a printed chain may repeat it.
        match &self.kind {
            FailureKind::Error(e) => Some(&**e),
            FailureKind::Wiring(e) => Some(e),
            FailureKind::Panicked(_) => None,
        }
    }
}

/// What a run did: how many components ran and which of them failed.
///
/// The record is bounded and holds no messages: `failed` counts every failure, `failures` keeps
/// the most recent [`RECENT_FAILURES`], each with its error reduced to text (its message and its
/// sources' messages). An error that held a message (a [`crate::SendError`] handing back 256 KiB
/// of data) keeps nothing of it here. The original error, downcastable, travels on the
/// component's `signal` and in its [`Exit`].
#[derive(Debug, Default)]
pub struct RunReport {
    /// Components activated during the run.
    pub components: usize,
    /// How many components panicked or returned an error.
    pub failed: usize,
    /// The most recent of them (at most [`RECENT_FAILURES`]), in the order they ended.
    pub failures: Vec<Arc<ComponentFailure>>,
}

impl RunReport {
    /// True if no component failed.
    pub fn is_ok(&self) -> bool {
        self.failed == 0
    }
}

/// An error reduced to its text and its sources' texts: what the run's record keeps.
#[derive(Debug)]
struct ErrorText {
    text: String,
    source: Option<Box<ErrorText>>,
}

impl ErrorText {
    fn of(e: &(dyn std::error::Error + 'static)) -> ErrorText {
        ErrorText {
            text: e.to_string(),
            source: e.source().map(|s| Box::new(ErrorText::of(s))),
        }
    }
}

impl fmt::Display for ErrorText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for ErrorText {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|s| s as _)
    }
}

impl ComponentFailure {
    /// The same failure with no payload: errors become their text.
    fn as_record(&self) -> ComponentFailure {
        ComponentFailure {
            component: self.component.clone(),
            kind: match &self.kind {
                FailureKind::Panicked(m) => FailureKind::Panicked(m.clone()),
                FailureKind::Wiring(e) => FailureKind::Wiring(e.clone()),
                FailureKind::Error(e) => FailureKind::Error(Box::new(ErrorText::of(&**e))),
            },
        }
    }
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.inner.state);
        f.debug_struct("Scheduler")
            .field("live", &st.live())
            .field("failed", &st.failed)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("component", &self.core.label())
            .finish_non_exhaustive()
    }
}

/// What a component's main routine gets: its place in the system.
pub struct Context {
    sched: Scheduler,
    /// Its block, which also says the group whose task runs it, if it runs in one (§10).
    core: Arc<Core>,
}

impl Context {
    /// The context of the component whose block is `core`, made when its main routine starts:
    /// under the current scheduler (its life's own while it is polled).
    pub(crate) fn start(core: Arc<Core>) -> Context {
        Context {
            sched: Scheduler::current(),
            core,
        }
    }

    /// Activates `child` as this component's child (Axon's `addChildren` + `activate`).
    pub fn activate(&self, child: Component) -> Handle {
        self.sched.activate(child, Some(self.core.id()))
    }

    /// Activates `child` as this component's child in the same task as this component, when
    /// this component runs in a [`Group`] (or was built with
    /// [`crate::ComponentBuilder::hosts_group`]); otherwise as [`Context::activate`] does.
    /// For the components of one connection, which wake each other and gain nothing from
    /// running in parallel (docs/semantics.md §10).
    pub fn activate_beside(&self, child: Component) -> Handle {
        match self.core.group.get() {
            Some(task) => self.sched.activate_beside(child, &self.core, task),
            None => self.activate(child),
        }
    }

    /// Activates the members of `group` as this component's children, all in one new task
    /// (docs/semantics.md §10). The handles are in the order the members were added.
    pub fn activate_group(&self, group: Group) -> Vec<Handle> {
        self.sched.activate_group(group, Some(self.core.id()))
    }

    /// The component's rare boxes, as its routine reaches them
    /// ([`crate::ComponentBuilder::rare_inbox_from`]): one reference to its block for all of
    /// them.
    pub fn rare_boxes(&self) -> crate::RareBoxes {
        crate::RareBoxes::new(self.core.clone())
    }

    /// The scheduler this component runs under.
    pub fn scheduler(&self) -> &Scheduler {
        &self.sched
    }

    /// The service registry (Kamaelia's Coordinating Assistant Tracker).
    pub fn services(&self) -> &Registry {
        self.sched.services()
    }

    /// This component's label.
    pub fn label(&self) -> Label {
        self.core.label()
    }

    /// This component's id.
    pub fn id(&self) -> ComponentId {
        self.core.id()
    }
}

impl Default for Scheduler {
    fn default() -> Self {
        Self::new()
    }
}

impl Scheduler {
    /// A new, empty scheduler with its own registry.
    pub fn new() -> Self {
        Scheduler {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                changed: Notify::new(),
                registry: Registry::new(),
                runtime: Mutex::new(None),
            }),
        }
    }

    /// The scheduler of the running component, or inside [`Scheduler::run`]; otherwise the
    /// process-wide default one that [`crate::run`] drives.
    pub fn current() -> Scheduler {
        CURRENT
            .try_with(|c| c.borrow().clone())
            .ok()
            .flatten()
            .unwrap_or_else(|| default_scheduler().clone())
    }

    /// Which scheduler this is (never 0): equal for handles of the same scheduler.
    pub(crate) fn key(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// The service registry.
    pub fn services(&self) -> &Registry {
        &self.inner.registry
    }

    /// Runs `setup` (which activates components) under this scheduler, then waits until every
    /// component activated under it has ended.
    pub async fn run<F: Future>(&self, setup: F) -> RunReport {
        let this = self.clone();
        Scoped {
            sched: Some(self.clone()),
            fut: Box::pin(async move {
                *lock(&this.inner.runtime) = Some(tokio::runtime::Handle::current());
                setup.await;
                this.start_pending();
                this.wait_idle().await;
                *lock(&this.inner.runtime) = None;
            }),
        }
        .await;
        self.take_report()
    }

    /// Waits until no component is alive (and none waits to be started).
    pub async fn wait_idle(&self) {
        self.wait_for(|st| st.live() == 0 && st.pending.is_empty())
            .await
    }

    /// Waits until exactly `n` components are alive: a test's way to see connections come and
    /// go without polling.
    pub async fn wait_live(&self, n: usize) {
        self.wait_for(|st| st.live() == n).await
    }

    async fn wait_for(&self, done: impl Fn(&State) -> bool) {
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done(&lock(&self.inner.state)) {
                return;
            }
            notified.await;
        }
    }

    /// How many components are alive now.
    pub fn live(&self) -> usize {
        lock(&self.inner.state).live()
    }

    /// Failures so far, and the count of components activated; resets both.
    pub fn take_report(&self) -> RunReport {
        let mut st = lock(&self.inner.state);
        RunReport {
            components: std::mem::take(&mut st.activated),
            failed: std::mem::take(&mut st.failed),
            failures: std::mem::take(&mut st.failures).into(),
        }
    }

    /// Sends ShutdownMicroprocess to the `control` inbox of every top-level live component
    /// (what Ctrl-C does).
    pub fn shutdown_all(&self) {
        let tops: Vec<Arc<Core>> = {
            let st = lock(&self.inner.state);
            let mut tops: Vec<&Record<()>> = st.tops.iter().collect();
            // In the order they were built, as before (the set has no order).
            tops.sort_unstable_by_key(|r| r.core.id());
            tops.into_iter().map(|r| r.core.clone()).collect()
        };
        // Outside the scheduler's lock: a rare `control` is made here.
        for c in tops.iter().filter_map(control_of) {
            push_control(&c, Control::shutdown());
        }
    }

    /// The live graph of components, boxes and links as Graphviz DOT text.
    pub fn graph_dot(&self) -> String {
        let st = lock(&self.inner.state);
        let tops = st.tops.iter().map(|r| (None, &r.core));
        let children = (st.children.iter()).map(|r| (Some(ComponentId(r.parent.get())), &r.core));
        let mut comps: Vec<crate::graph::Node> = tops
            .chain(children)
            .map(|(parent, core)| crate::graph::Node {
                parent,
                core: core.clone(),
            })
            .collect();
        drop(st);
        // In the order they were built (the set has no order).
        comps.sort_unstable_by_key(|n| n.core.id());
        crate::graph::render(&comps)
    }

    /// Activates the members of `group` in one new task; `parent` as for
    /// [`Scheduler::activate`].
    pub(crate) fn activate_group(&self, group: Group, parent: Option<ComponentId>) -> Vec<Handle> {
        // No members, no task.
        if group.is_empty() {
            return Vec::new();
        }
        let Some(runtime) = self.runtime() else {
            // Started together by `Scheduler::run`: the members carry their first's id.
            let token = group.first_id();
            return group
                .into_members()
                .map(|c| self.activate_in(c, parent, Some(token)))
                .collect();
        };
        // The members go to the group's task all at once, in its own future (`group.rs`).
        let n = group.len();
        let mut handles = Vec::with_capacity(n);
        let lives = group.into_members().map(|c| {
            handles.push(record(&mut lock(&self.inner.state), &c, parent));
            self.life(c)
        });
        crate::group::start(&runtime, n, lives);
        self.inner.changed.notify_waiters();
        handles
    }

    pub(crate) fn activate(&self, component: Component, parent: Option<ComponentId>) -> Handle {
        if !component.hosts_group {
            return self.activate_in(component, parent, None);
        }
        // A group of one, that its children may join.
        let mut handles = self.activate_group(Group::new().with(component), parent);
        handles.pop().expect("a group of one has one member")
    }

    /// Activates `child`, a child of `beside`'s, in the task of the group `beside` runs in
    /// (whose waker is `task`); in a task of its own if `beside` has left it (§10).
    pub(crate) fn activate_beside(
        &self,
        child: Component,
        beside: &Core,
        task: &std::task::Waker,
    ) -> Handle {
        let Some(runtime) = self.runtime() else {
            // No run is running: it starts with the next.
            return self.activate_in(child, Some(beside.id()), None);
        };
        let handle = record(&mut lock(&self.inner.state), &child, Some(beside.id()));
        self.inner.changed.notify_waiters();
        if let Err(life) = crate::group::join_beside(beside, task, self.life(child)) {
            // `beside` has left its group (it ended, having handed its context elsewhere, or
            // its group's task did): the newcomer runs alone.
            runtime.spawn(life);
        }
        handle
    }

    /// Activates `component` in its own task, or, outside a runtime, notes it to start when
    /// one runs (with the members of its group, `group`, if it has one).
    pub(crate) fn activate_in(
        &self,
        component: Component,
        parent: Option<ComponentId>,
        group: Option<u64>,
    ) -> Handle {
        let runtime = self.runtime();
        let handle = {
            let mut st = lock(&self.inner.state);
            let handle = record(&mut st, &component, parent);
            if runtime.is_none() {
                st.pending.push((component, group));
                drop(st);
                self.inner.changed.notify_waiters();
                return handle;
            }
            handle
        };
        self.inner.changed.notify_waiters();
        if let Some(runtime) = runtime {
            runtime.spawn(self.life(component));
        }
        handle
    }

    /// Where what is activated now starts: this thread's runtime, else the runtime of the run
    /// that is running (see [`Inner::runtime`]); `None` outside both (the pending list, for the
    /// next run).
    fn runtime(&self) -> Option<tokio::runtime::Handle> {
        tokio::runtime::Handle::try_current()
            .ok()
            .or_else(|| lock(&self.inner.runtime).clone())
    }

    /// Starts what was activated before a runtime ran: each component alone, each group's
    /// members together in one task (in the order of their first members).
    fn start_pending(&self) {
        let pending = std::mem::take(&mut lock(&self.inner.state).pending);
        let mut groups: Vec<(u64, Vec<Component>)> = Vec::new();
        for (c, group) in pending {
            match group {
                None => {
                    tokio::spawn(self.life(c));
                }
                // A group's members are listed one after another: its own list is the last
                // one made, nearly always.
                Some(token) => match groups.iter_mut().rev().find(|(t, _)| *t == token) {
                    Some((_, members)) => members.push(c),
                    None => groups.push((token, vec![c])),
                },
            }
        }
        let runtime = tokio::runtime::Handle::current();
        for (_, members) in groups {
            let lives = members.into_iter().map(|c| self.life(c));
            crate::group::start(&runtime, lives.len(), lives);
        }
    }

    /// A component's whole life: its main routine under this scheduler, then the bookkeeping
    /// of its end (§6).
    /// (The group it runs in, if any, is its block's once it joins, before its first poll.)
    pub(crate) fn life(&self, component: Component) -> Life {
        let Component {
            core, main, error, ..
        } = component;
        let stage: Stage = Some(match error {
            Some(e) => Box::pin(Miswired(Some(e))),
            None => main,
        });
        Life {
            stage,
            sched: Some(self.clone()),
            core,
        }
    }

    fn finish(&self, core: &Arc<Core>, failure: Option<FailureKind>) {
        // Put together only when shown (a failure, messages left undelivered).
        let label = core.label();
        let failure = failure.map(|kind| {
            Arc::new(ComponentFailure {
                component: Arc::from(&label),
                kind,
            })
        });
        if let Some(f) = &failure {
            tracing::warn!(component = %label, "{f}");
            if let Some(signal) = core
                .declared(SIGNAL, Direction::Out)
                .and_then(|(i, _)| crate::rare::resolve(core, i, false, false))
                .and_then(|r| BoxRef::new(r).outbox::<Control>())
            {
                send_failure(&signal, &f.component, f.clone());
            }
        }
        let mut undelivered = Vec::new();
        for (_, d) in core.listed() {
            if d.direction() == Direction::In {
                let left = d.r.store.close_erased();
                if left > 0 {
                    tracing::warn!(component = %label, inbox = %d.name(), left, "messages left undelivered in an inbox when its component ended");
                    undelivered.push((d.name().clone(), left));
                }
            }
        }
        // Its rare inboxes made, and closed for any made from now on.
        for (name, left) in crate::rare::end(core) {
            tracing::warn!(component = %label, inbox = %name, left, "messages left undelivered in an inbox when its component ended");
            undelivered.push((name, left));
        }
        {
            let mut st = lock(&self.inner.state);
            st.remove(core);
            if let Some(f) = &failure {
                st.failed += 1;
                if st.failures.len() == RECENT_FAILURES {
                    st.failures.pop_front();
                }
                st.failures.push_back(Arc::new(f.as_record()));
            }
        }
        core.exit.set(Exit {
            failure,
            undelivered,
        });
        self.inner.changed.notify_waiters();
    }
}

/// Notes `component` in `st` as activated and live (a child of `parent`); its handle.
fn record(st: &mut State, component: &Component, parent: Option<ComponentId>) -> Handle {
    let core = component.core.clone();
    st.activated += 1;
    st.insert(core.clone(), parent);
    Handle { core }
}

/// Where a component's life stands: its main routine while it runs (`None` once it has
/// ended and been recorded). At its first poll the routine makes its context (from the current
/// scheduler, which is the life's own, its block, and the group that block has joined, if
/// any) and its future, in its own block (`ComponentBuilder::main`). A component that could
/// not be wired runs [`Miswired`] in its place, which fails at once: one pointer-sized tag
/// fewer than an enum with a case of its own, so that a group's second member fits in its
/// task's block (`group.rs`, `Members`).
type Stage = Option<MainFuture>;

/// The routine of a component that could not be wired: it fails as soon as it is started,
/// with its wiring error (told apart from the errors of main routines in [`poll_life`]).
struct Miswired(Option<Box<WiringError>>);

/// [`Miswired`]'s error on its way to [`poll_life`], which makes it [`FailureKind::Wiring`].
#[derive(Debug)]
struct MiswiredError(Box<WiringError>);

impl fmt::Display for MiswiredError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for MiswiredError {}

impl crate::component::Main for Miswired {
    fn poll_main(
        mut self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> Poll<crate::component::MainResult> {
        match self.0.take() {
            Some(e) => Poll::Ready(Err(Box::new(MiswiredError(e)))),
            // Polled again after it failed: never, as its life ends at the first.
            None => Poll::Ready(Ok(())),
        }
    }
}

/// A component's whole life as one small future (it is what every task or group member holds,
/// so it is written out rather than left to nested `async` blocks that would each keep their
/// own copy of the context): start the main routine, poll it with panics caught and the
/// scheduler as the current one, then record the end (§6).
pub(crate) struct Life {
    stage: Stage,
    /// Its scheduler; moved into the current-scheduler slot while it is polled.
    sched: Option<Scheduler>,
    core: Arc<Core>,
}

impl Life {
    /// The component's block.
    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// Its scheduler.
    pub(crate) fn scheduler(&self) -> Option<&Scheduler> {
        self.sched.as_ref()
    }

    /// Polls a group member's life while its group has made the scheduler whose
    /// [`Scheduler::key`] is `current` the current one: a member of that scheduler (every
    /// member, in practice) is polled as it is, without making its own the current one (one
    /// swap of the current scheduler per poll of the group, not two per member polled); any
    /// other as [`Life`]'s `poll` does. Inlined in the group's loop: it runs for every member
    /// polled.
    #[inline(always)]
    pub(crate) fn poll_member(
        &mut self,
        cx: &mut std::task::Context<'_>,
        current: usize,
    ) -> Poll<()> {
        if current != 0 && self.sched.as_ref().is_some_and(|s| s.key() == current) {
            poll_life(&mut self.stage, &self.core, cx)
        } else {
            Pin::new(self).poll(cx)
        }
    }
}

impl Future for Life {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let this = &mut *self;
        crate::group::note_task_waker(cx.waker());
        // The scheduler is the current one while the main routine runs (what it activates
        // joins it), set for each poll rather than by a wrapping future that every task
        // would carry.
        entered(&mut this.sched, || {
            poll_life(&mut this.stage, &this.core, cx)
        })
    }
}

/// One poll of a component's life (see [`Life`]), with its scheduler the current one. Inlined
/// in both its callers: it runs at every poll of every component.
#[inline(always)]
fn poll_life(stage: &mut Stage, core: &Arc<Core>, cx: &mut std::task::Context<'_>) -> Poll<()> {
    // Polled in place: no move of the stage on every poll.
    let Some(main) = stage else {
        // Ended and recorded already.
        return Poll::Ready(());
    };
    let failure = match std::panic::catch_unwind(AssertUnwindSafe(|| main.as_mut().poll_main(cx))) {
        Ok(Poll::Pending) => return Poll::Pending,
        Ok(Poll::Ready(Ok(()))) => None,
        Ok(Poll::Ready(Err(e))) => Some(match e.downcast::<MiswiredError>() {
            Ok(miswired) => FailureKind::Wiring(*miswired.0),
            Err(e) => FailureKind::Error(e),
        }),
        Err(panic) => Some(FailureKind::Panicked(panic_message(&*panic))),
    };
    // The main routine's state (its boxes' handles, its sockets) goes before the end is
    // recorded, so whoever joins it finds it gone.
    *stage = None;
    Scheduler::current().finish(core, failure);
    Poll::Ready(())
}

/// The text of a panic's payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with no message".to_string())
}

fn send_failure(signal: &Outbox<Control>, label: &Arc<str>, failure: Arc<ComponentFailure>) {
    // After its final message a component's signal carries nothing more (§5); the failure is
    // still in the exit and the run's report.
    if signal.final_sent() {
        return;
    }
    // Otherwise the runtime sends the error and then ProducerFinished, so whatever is
    // downstream finishes instead of waiting forever. Forced sends: these two must not wait on
    // a full inbox.
    let err = Control::Error(ErrorMessage::from_arc(label.clone(), failure));
    let _ = signal.force_send(err);
    let _ = signal.force_send(Control::producer_finished());
}

fn control_of(core: &Arc<Core>) -> Option<BoxRef> {
    let (index, _) = core.declared(CONTROL, Direction::In)?;
    // A rare `control` is made now: a message is coming.
    crate::rare::resolve(core, index, true, false).map(BoxRef::new)
}

pub(crate) fn push_control(control: &BoxRef, msg: Control) -> bool {
    match control.store.clone().as_any().downcast::<Store<Control>>() {
        Ok(store) => store.try_push(msg, true).is_ok(),
        Err(_) => false,
    }
}

impl Handle {
    /// The component's id.
    pub fn id(&self) -> ComponentId {
        self.core.id()
    }

    /// The component's label.
    pub fn label(&self) -> Label {
        self.core.label()
    }

    /// How many of its boxes have a store now: all but the rare boxes not yet made (for tests
    /// of a component's memory; `docs/semantics.md` §1).
    #[doc(hidden)]
    pub fn made_boxes(&self) -> usize {
        crate::rare::made_count(&self.core)
    }

    /// The box called `name`, for linking while the component runs.
    pub fn boxref(&self, name: &str) -> Result<BoxRef, WiringError> {
        self.core.boxref(name)
    }

    /// Asks the component to stop: delivers ShutdownMicroprocess to its `control` inbox (through
    /// any passthrough), ahead of the capacity limit. Kamaelia's `stop()`, done through the
    /// component's own shutdown path so it can close cleanly and send its final message.
    /// Returns false if it has no control inbox or has already ended.
    pub fn stop(&self) -> bool {
        self.send_control(Control::shutdown())
    }

    /// Delivers `msg` to the component's `control` inbox (through any passthrough), ahead of
    /// the capacity limit, as [`Handle::stop`] does with ShutdownMicroprocess: for a supervisor
    /// that tells a component ProducerFinished without keeping an outbox linked to it. Returns
    /// false if it has no control inbox or has already ended.
    pub fn send_control(&self, msg: Control) -> bool {
        control_of(&self.core).is_some_and(|c| push_control(&c, msg))
    }

    /// True once the component has ended.
    pub fn is_finished(&self) -> bool {
        self.core.exit.is_done()
    }

    /// Waits for the component to end and says how.
    pub async fn join(&self) -> Exit {
        std::future::poll_fn(|cx| self.poll_join(cx)).await
    }

    /// [`Handle::join`] as a poll, for a future written by hand that holds the handle itself
    /// (a server's watcher of each connection): how the component ended, or `Pending` with
    /// `cx`'s task noted to be woken when it has. Any number of polls, from any number of
    /// tasks; each task is noted once.
    pub fn poll_join(&self, cx: &mut std::task::Context<'_>) -> Poll<Exit> {
        self.core.exit.poll(cx.waker())
    }
}

/// Where a component's exit is recorded once, for every handle to see (a lighter one-shot than
/// a watch channel: there is one per component, inside its [`Core`]). Two words while the
/// component runs and nobody waits for it: the waiters and the exit are allocated when there
/// are some, in one block while a single task waits (the usual case: a supervisor joining it).
///
/// Its lock is also the component's box table's ([`CellState::boxes`]): a linked outbox
/// keeps no store of its own, its link is an entry of the table, read under this lock by a
/// send (`slot.rs`), in the place of the lock of the store it would have had.
pub(crate) struct ExitCell(Mutex<CellState>);

/// What a component's [`ExitCell`] guards: its exit (or its waiters), its box table and its
/// kind.
pub(crate) struct CellState {
    pub(crate) exit: Option<Box<ExitState>>,
    /// Its kind's record, shared with every component of that kind built alike: its name,
    /// and the descriptors of the outboxes its table keeps (`slot.rs`).
    pub(crate) kind: Arc<crate::spec::Kind>,
    /// Its boxes, declared once: one entry a box, for an outbox kept by its table
    /// (`slot.rs`) where its sends go (its descriptor is its kind's). While the component is
    /// built, the table grows as a list does, its room past the boxes declared so far filled
    /// with [`filler`]; once it is finished, it is a block of exactly its size.
    pub(crate) boxes: Box<[crate::spec::Declared]>,
}

/// What fills a table's room while its component is built: no box.
pub(crate) fn filler() -> &'static crate::spec::Declared {
    static FILLER: std::sync::OnceLock<crate::spec::Declared> = std::sync::OnceLock::new();
    FILLER.get_or_init(|| crate::spec::Declared {
        r: BoxRef::new(crate::rare::placeholder::<()>(
            crate::spec::shared_meta("(room)", ""),
            Direction::In,
        )),
    })
}

/// True if `d` is [`filler`].
pub(crate) fn is_filler(d: &crate::spec::Declared) -> bool {
    Arc::ptr_eq(&d.r.store, &filler().r.store)
}

/// A component's exit, or the tasks waiting for it: 24 bytes, one 32-byte block of the
/// allocator (a server's watcher of each connection keeps one waiting in its adapter's cell).
// A list is one pointer here, not a Vec's three words: the state fits a 32-byte block.
#[allow(clippy::box_collection)]
pub(crate) enum ExitState {
    /// The first task waiting for the exit, and any others (a list allocated only for them).
    Running(std::task::Waker, Option<Box<Vec<std::task::Waker>>>),
    /// How it ended ([`Exit`]): the failure, and the messages left undelivered (a list only
    /// if there were any).
    Done(Option<Arc<ComponentFailure>>, Option<Box<LeftUndelivered>>),
}

/// [`Exit::undelivered`].
type LeftUndelivered = Vec<(Arc<str>, usize)>;

impl CellState {
    /// The box table (while the component is built, with [`filler`] past its boxes).
    #[inline]
    pub(crate) fn table(&self) -> &[crate::spec::Declared] {
        &self.boxes
    }

    /// The box table, to change an entry.
    pub(crate) fn table_mut(&mut self) -> &mut [crate::spec::Declared] {
        &mut self.boxes
    }

    /// The declared box at `index` of the table: the entry, or for an outbox kept by the
    /// table (whose entry says where it sends) its descriptor.
    /// A rare box (place [`crate::spec::RARE`] and up) is its placeholder, in its kind's
    /// record: it has no entry in the table.
    pub(crate) fn declared(&self, index: usize) -> crate::spec::Declared {
        match self
            .kind
            .outbox(index)
            .or_else(|| self.kind.rare_box(index))
        {
            Some(d) => crate::spec::Declared {
                r: BoxRef::new(d.clone()),
            },
            None => self.boxes[index].clone(),
        }
    }

    /// True if `index` is the place of a declared box (in the table, or a rare box).
    pub(crate) fn has_place(&self, index: usize) -> bool {
        index < self.filled() || self.kind.rare_box(index).is_some()
    }

    /// How many entries the table holds (the room past them is [`filler`]).
    pub(crate) fn filled(&self) -> usize {
        self.boxes
            .iter()
            .position(is_filler)
            .unwrap_or(self.boxes.len())
    }

    /// True once the component has ended.
    pub(crate) fn ended(&self) -> bool {
        matches!(self.exit.as_deref(), Some(ExitState::Done(..)))
    }
}

impl ExitCell {
    /// A cell for a component of `kind` being built.
    pub(crate) fn building(kind: Arc<crate::spec::Kind>) -> ExitCell {
        ExitCell(Mutex::new(CellState {
            exit: None,
            kind,
            boxes: Box::default(),
        }))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, CellState> {
        // Nothing panics while this lock is held.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `d` to the table of a component being built; returns its place.
    pub(crate) fn push_box(&self, d: crate::spec::Declared) -> usize {
        Self::push_held(&mut self.lock(), d)
    }

    /// Appends an outbox kept by the table (`slot.rs`) to a component being built: its entry
    /// (where it sends: nowhere yet, its descriptor `desc`) to the table, `desc` to its kind's
    /// record; returns its place.
    pub(crate) fn push_outbox(&self, desc: Arc<dyn crate::store::ErasedStore>) -> usize {
        let mut g = self.lock();
        let index = Self::push_held(
            &mut g,
            crate::spec::Declared {
                r: BoxRef::new(desc.clone()),
            },
        );
        g.kind = g.kind.with(index, desc);
        index
    }

    /// Declares a rare box of a component being built: `placeholder` goes to its kind's
    /// record, after the table entries declared so far, not to the table; returns its place.
    pub(crate) fn push_rare(&self, placeholder: Arc<dyn crate::store::ErasedStore>) -> usize {
        let mut g = self.lock();
        let before = g.filled();
        let (kind, place) = g.kind.with_rare(before, placeholder);
        g.kind = kind;
        place
    }

    fn push_held(g: &mut CellState, d: crate::spec::Declared) -> usize {
        let n = g.filled();
        if n == g.boxes.len() {
            // Full: room for as many again, as a list grows.
            let mut v = std::mem::take(&mut g.boxes).into_vec();
            let room = (2 * n).max(4);
            v.reserve_exact(room - n);
            v.resize(room, filler().clone());
            g.boxes = v.into_boxed_slice();
        }
        g.boxes[n] = d;
        n
    }

    /// The table in a block of exactly its size, once the component is finished. The
    /// builder's list is freed whole: shrunk in place, it would leave its tail free as a
    /// small block between the component's (32 bytes for a table of six, in a list grown to
    /// eight), a hole per component that blocks of other sizes made later do not fill;
    /// whole, it is taken again by the next component's list.
    pub(crate) fn finish_table(&self) {
        let mut g = self.lock();
        let n = g.filled();
        if n < g.boxes.len() {
            let boxes = g.boxes[..n].to_vec();
            g.boxes = boxes.into_boxed_slice();
        }
    }

    fn set(&self, exit: Exit) {
        let Exit {
            failure,
            undelivered,
        } = exit;
        let undelivered = (!undelivered.is_empty()).then(|| Box::new(undelivered));
        let state = self
            .lock()
            .exit
            .replace(Box::new(ExitState::Done(failure, undelivered)));
        if let Some(ExitState::Running(first, rest)) = state.map(|b| *b) {
            first.wake();
            rest.into_iter()
                .flat_map(|r| *r)
                .for_each(std::task::Waker::wake);
        }
    }

    fn is_done(&self) -> bool {
        self.lock().ended()
    }

    /// The exit, or `Pending` with `waker` noted to be woken when there is one.
    fn poll(&self, waker: &std::task::Waker) -> Poll<Exit> {
        let mut g = self.lock();
        let g = &mut g.exit;
        match g.as_deref_mut() {
            None => {
                *g = Some(Box::new(ExitState::Running(waker.clone(), None)));
                Poll::Pending
            }
            Some(ExitState::Done(failure, undelivered)) => Poll::Ready(Exit {
                failure: failure.clone(),
                undelivered: undelivered.as_deref().cloned().unwrap_or_default(),
            }),
            Some(ExitState::Running(first, rest)) => {
                let known = first.will_wake(waker)
                    || rest
                        .as_ref()
                        .is_some_and(|r| r.iter().any(|w| w.will_wake(waker)));
                if !known {
                    rest.get_or_insert_with(Default::default)
                        .push(waker.clone());
                }
                Poll::Pending
            }
        }
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({})", self.core.label())
    }
}

fn default_scheduler() -> &'static Scheduler {
    static DEFAULT: OnceLock<Scheduler> = OnceLock::new();
    DEFAULT.get_or_init(Scheduler::new)
}

/// Runs the process-wide scheduler until every activated component has ended (Axon's
/// `scheduler.run.runThreads()`), on a multi-threaded tokio runtime it builds.
///
/// `setup` runs first and usually activates the top-level components; components activated
/// before `run` was called are started too. Ctrl-C sends ShutdownMicroprocess to every top-level
/// component; a second Ctrl-C exits the process with status 130.
pub fn run<F: Future>(setup: F) -> std::io::Result<RunReport> {
    block_on(async move {
        let sched = default_scheduler().clone();
        sched.run(setup).await
    })
}

/// Runs `body` to completion on a multi-threaded tokio runtime with [`run`]'s Ctrl-C handling
/// (the first interrupt: ShutdownMicroprocess to every top-level component of the process-wide
/// scheduler; the second: exit with status 130), and returns its output. For programs that
/// watch their components themselves instead of waiting for all of them to end.
///
/// When `body` is done the runtime is left behind rather than waited for: a read on tokio's
/// blocking pool (standard input from a terminal) cannot be cancelled and must not keep the
/// process alive.
pub fn block_on<F: Future>(body: F) -> std::io::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let sched = default_scheduler().clone();
    let out = rt.block_on(async move {
        // Registered before `body` runs, so an interrupt can never hit the default handler
        // (which would kill the process without a shutdown) once components exist.
        let interrupts = Interrupts::new()?;
        let ctrl_c = tokio::spawn(async move {
            let mut interrupts = interrupts;
            if interrupts.next().await {
                INTERRUPTED.store(true, std::sync::atomic::Ordering::Relaxed);
                tracing::info!("interrupted: shutting down");
                sched.shutdown_all();
                if interrupts.next().await {
                    std::process::exit(130);
                }
            }
        });
        let out = body.await;
        ctrl_c.abort();
        Ok::<_, std::io::Error>(out)
    })?;
    rt.shutdown_background();
    Ok(out)
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True once [`run`] or [`block_on`] has seen an interrupt (Ctrl-C).
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed)
}

/// SIGINT (Ctrl-C), listened for from the moment it is made.
struct Interrupts {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Interrupts {
    fn new() -> std::io::Result<Self> {
        Ok(Interrupts {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?,
        })
    }

    /// Waits for the next interrupt; false if none can come.
    async fn next(&mut self) -> bool {
        #[cfg(unix)]
        {
            self.signal.recv().await.is_some()
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await.is_ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What every component holds for its whole life, whether it runs in a group or alone: its
    /// life (the main routine's box, the scheduler, its block: 32 bytes, a group member's entry
    /// 48 with its waker), a handle of one pointer, its
    /// block (with the `Arc`'s counts, at most 88 bytes: one 96-byte block of the allocator;
    /// a group member's waker too) and the scheduler's record of it.
    #[test]
    fn a_life_stays_small() {
        use std::mem::size_of;
        eprintln!(
            "Life: {} bytes, Core: {} bytes, Record: {} bytes",
            size_of::<Life>(),
            size_of::<Core>(),
            size_of::<Record<std::num::NonZeroU64>>()
        );
        assert!(size_of::<Life>() <= 32);
        assert_eq!(size_of::<Handle>(), size_of::<usize>());
        assert!(size_of::<Core>() + 2 * size_of::<usize>() <= 88);
        assert!(size_of::<Record<std::num::NonZeroU64>>() <= 16);
        assert_eq!(size_of::<Record<()>>(), size_of::<usize>());
    }

    /// A component built and not yet activated is five words (its rare wiring error boxed):
    /// a program holds many of them at once, in groups' lists
    /// freed at activation, often on another thread, where their room is a hole in the
    /// builder's heap.
    #[test]
    fn a_built_component_is_small() {
        let size = std::mem::size_of::<crate::Component>();
        assert!(size <= 40, "Component: {size} bytes");
    }

    /// `run`'s output, or a panic after 10 s (a start that returned `Pending` with no waker
    /// would hang the test).
    async fn within_10_s<T>(run: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(std::time::Duration::from_secs(10), run)
            .await
            .expect("the component ended within 10 s")
    }

    /// The block of `component`'s routine holds each of its states of about 200 bytes in
    /// turn, not all of them at once (a few words of tags aside).
    fn assert_one_block_of_200(component: &Component, what: &str) {
        let size = component.routine_size();
        eprintln!("{what}: one block of {size} bytes");
        assert!(
            (200..=200 + 2 * 64).contains(&size),
            "{size} bytes: not one block for {what}"
        );
    }

    /// A component's routine and its future are one block, made when it is built: the block
    /// holds the closure until the first poll, then the future in its place, so its size is
    /// the larger of the two (and a tag), not their sum. Before, the closure was boxed
    /// on its own where the component was built and freed where it first ran: built on one
    /// thread and run on another, every component left a hole in the builder's heap (a client
    /// connection's two: 96 and 48 bytes). And the routine still runs at the first poll, in
    /// its task, with its context, not when it is built.
    #[test]
    fn a_routine_and_its_future_share_one_block() {
        let payload = [7_u8; 200];
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen, label) = (ran.clone(), Arc::new(Mutex::new(None)));
        let saw = label.clone();
        let component = Component::build("OneBlock").main(move |cx| {
            seen.store(true, std::sync::atomic::Ordering::SeqCst);
            *saw.lock().unwrap() = Some((cx.label(), cx.scheduler().key()));
            async move {
                let sum: u32 = std::hint::black_box(payload)
                    .iter()
                    .map(|&b| u32::from(b))
                    .sum();
                assert_eq!(sum, 1400);
                Ok(())
            }
        });
        assert_one_block_of_200(&component, "the routine, then the future");
        assert!(
            !ran.load(std::sync::atomic::Ordering::SeqCst),
            "ran when built"
        );
        let id = component.label();
        let sched = Scheduler::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let report = rt.block_on(within_10_s(sched.run(async {
            component.activate();
        })));
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(*label.lock().unwrap(), Some((id, sched.key())));
    }

    /// A routine in two phases ([`crate::ComponentBuilder::main_then`]) is one block too: the
    /// start, the first phase, then the second in its place, so its size is the largest of
    /// them and a few words of tags, not their sum; the second gets what the first ended with.
    #[test]
    fn a_routine_in_two_phases_is_one_block() {
        // What the second phase is made of is held by the first (here a pointer): the second
        // phase's own state is made when it starts.
        let first = [1_u8; 200];
        let got = Arc::new(Mutex::new(None));
        let put = got.clone();
        let component = Component::build("TwoPhases").main_then(move |cx| async move {
            tokio::task::yield_now().await;
            let sum: u32 = std::hint::black_box(first)
                .iter()
                .map(|&b| u32::from(b))
                .sum();
            let label = cx.label();
            std::ops::ControlFlow::Continue(async move {
                let second = std::hint::black_box([2_u8; 200]);
                tokio::task::yield_now().await;
                let more: u32 = std::hint::black_box(second)
                    .iter()
                    .map(|&b| u32::from(b))
                    .sum();
                *put.lock().unwrap() = Some((sum + more, label));
                Ok(())
            })
        });
        assert_one_block_of_200(&component, "each phase in turn");
        let id = component.label();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let report = rt.block_on(within_10_s(Scheduler::new().run(async {
            component.activate();
        })));
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(*got.lock().unwrap(), Some((600, id)));
    }

    /// A first phase that ends with the routine's result (`ControlFlow::Break`: no second
    /// phase, as a client that could not connect) ends the component with it: an error is
    /// the component's failure, with its text, and nothing runs after it.
    #[test]
    fn a_first_phase_can_end_the_routine() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let ran_second = Arc::new(Mutex::new(false));
        let flag = ran_second.clone();
        let failing = Component::build("NoSecondPhase").main_then(move |_cx| async move {
            tokio::task::yield_now().await;
            if std::hint::black_box(true) {
                return std::ops::ControlFlow::Break(Err("could not connect".into()));
            }
            std::ops::ControlFlow::Continue(async move {
                *flag.lock().unwrap() = true;
                Ok(())
            })
        });
        let ending = Component::build("EndsWell").main_then(|_cx| async {
            std::ops::ControlFlow::<crate::MainResult, std::future::Ready<crate::MainResult>>::Break(Ok(()))
        });
        let report = rt.block_on(within_10_s(Scheduler::new().run(async {
            failing.activate();
            ending.activate();
        })));
        assert_eq!((report.components, report.failed), (2, 1), "{report:?}");
        let failure = format!("{:?}", report.failures);
        assert!(failure.contains("could not connect"), "{failure}");
        assert!(failure.contains("NoSecondPhase"), "{failure}");
        assert!(!*ran_second.lock().unwrap());
    }

    /// A component one task waits for (a supervisor's join) holds one 32-byte block for it
    /// (the state, with that task's waker inline), and no list of waiters: more are listed
    /// only past the first, and every one of them is woken at the end.
    #[test]
    fn one_join_allocates_one_block() {
        use crate::test_wakers::WakeCount;
        // One 32-byte block of the allocator (24 bytes or less).
        assert!(std::mem::size_of::<ExitState>() <= 24);
        let cell = ExitCell::building(crate::spec::shared_kind("Cell"));
        let ((a, wa), (b, wb)) = (WakeCount::waker(), WakeCount::waker());
        assert!(cell.poll(&wa).is_pending() && cell.poll(&wa).is_pending());
        assert!(matches!(
            cell.lock().exit.as_deref(),
            Some(ExitState::Running(_, None))
        ));
        assert!(cell.poll(&wb).is_pending());
        cell.set(Exit {
            failure: None,
            undelivered: Vec::new(),
        });
        assert_eq!(a.get(), 1);
        assert_eq!(b.get(), 1);
        assert!(cell.poll(&wa).is_ready() && cell.is_done());
    }

    /// A component keeps its kind and id, not a label string of its own (a 48- or 64-byte
    /// block per component, per connection): components of one kind share one kind, and the
    /// label `Kind#id` is put together when it is shown.
    #[test]
    fn a_component_holds_no_label_of_its_own() {
        let a = Component::build("Labelled").main(|_| async { Ok(()) });
        let b = Component::build(String::from("Labelled")).main(|_| async { Ok(()) });
        assert!(Arc::ptr_eq(
            &a.core.exit.lock().kind,
            &b.core.exit.lock().kind
        ));
        assert_eq!(a.label().to_string(), format!("Labelled#{}", a.id().0));
        assert!(a.label() == format!("Labelled#{}", a.id().0).as_str());
        assert!(a.label() != b.label() && a.label().kind() == "Labelled");
        assert_eq!(
            &*Arc::<str>::from(b.label()),
            format!("Labelled#{}", b.id().0)
        );
    }

    /// The scheduler's record of a live component is an entry in a hash set: 8 bytes for one
    /// at the top level (each connection of a client program: under 20 bytes a component at
    /// any count, with its control byte and the table's spare room), 16 with a parent (under
    /// 40), not a B-tree's (about 48 bytes a component, its nodes half full as ids come in
    /// order). Found again by id, in any order, and counted as live either way. Before, every
    /// record was 16 bytes, a top-level one too.
    #[test]
    fn the_record_of_a_live_component_stays_small() {
        let sched = Scheduler::new();
        let n = 1000;
        let cores: Vec<Arc<Core>> = (0..n)
            .map(|_| Component::build("Live").main(|_| async { Ok(()) }).core)
            .collect();
        let parent = Some(cores[0].id());
        {
            let mut st = lock(&sched.inner.state);
            for (k, core) in cores.iter().enumerate() {
                st.insert(core.clone(), if k < n / 2 { None } else { parent });
            }
            assert_eq!(st.live(), n);
            // The tables' buckets: at most 7 in 8 are used.
            let per = |capacity: usize, record: usize| {
                (capacity * 8 / 7).next_power_of_two() * (record + 1) / (n / 2)
            };
            let top = per(st.tops.capacity(), std::mem::size_of::<Record<()>>());
            let child = per(
                st.children.capacity(),
                std::mem::size_of::<Record<std::num::NonZeroU64>>(),
            );
            eprintln!("{top} bytes a live component at the top level, {child} with a parent");
            assert!(top <= 19 && child <= 39, "{top}, {child}");
        }
        assert!(sched
            .graph_dot()
            .contains(&format!("Live#{}", cores[n - 1].id().0)));
        for core in cores.iter().rev() {
            assert!(lock(&sched.inner.state).remove(core));
        }
        assert_eq!(sched.live(), 0);
    }
}
