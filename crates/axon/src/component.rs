//! Components: named, typed boxes declared once as data, and a main routine.

use std::fmt;
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::future::Either;
use std::task::Poll;

use crate::boxes::{Inbox, Message, Outbox, DEFAULT_CAPACITY};
use crate::control::Control;
use crate::link::{BoxRef, WiringError};
use crate::owners::Owner;
use crate::scheduler::{Context, Handle, Scheduler};
use crate::spec::{BoxDecl, BoxId, BoxMeta, BoxSpec, Declared, Direction};
use crate::store::Store;

/// The error a component's main routine may return. The runtime reports it on the component's
/// `signal` (as [`Control::Error`] carrying a [`crate::ComponentFailure`]) and in the run's report.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a main routine returns.
pub type MainResult = Result<(), BoxError>;

/// A component's main routine as it is held from the moment it is built: the routine (the
/// closure given to [`ComponentBuilder::main`]) and, in the same block once it has started, its
/// future (see [`Main`]).
pub(crate) type MainFuture = Pin<Box<dyn Main>>;

/// A main routine and its future in one block: at the first poll, the routine (in a `Lazy`,
/// which is `Unpin`, so it can be taken out) makes the future, which takes its place (`set`);
/// from then on a poll is the future's, after one test of which side holds it.
pub(crate) trait Main: Send {
    /// Polls the future, made first if this is the first poll.
    fn poll_main(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<MainResult>;
}

impl<F, Fut> Main for Either<futures_util::future::Lazy<F>, Fut>
where
    F: FnOnce(&mut std::task::Context<'_>) -> Fut + Send,
    Fut: Future<Output = MainResult> + Send,
{
    #[inline]
    fn poll_main(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<MainResult> {
        // One test, then the future's own poll: the start is out of line, so this is a jump.
        match self.as_mut().as_pin_mut() {
            Either::Right(main) => main.poll(cx),
            Either::Left(_) => start(self, cx),
        }
    }
}

/// The first poll of a [`Main`]: makes the future in the routine's place, then polls it.
#[cold]
#[inline(never)]
fn start<F, Fut>(
    mut main: Pin<&mut Either<futures_util::future::Lazy<F>, Fut>>,
    cx: &mut std::task::Context<'_>,
) -> Poll<MainResult>
where
    F: FnOnce(&mut std::task::Context<'_>) -> Fut,
    Fut: Future<Output = MainResult>,
{
    if let Either::Left(start) = main.as_mut().as_pin_mut() {
        let Poll::Ready(future) = start.poll(cx) else {
            unreachable!("a `Lazy` is ready at once")
        };
        main.set(Either::Right(future));
    }
    match main.as_pin_mut() {
        Either::Right(future) => future.poll(cx),
        // A panic here would be caught and reported as the component's failure, as any in
        // its routine; a `Pending` would leave it waiting with no waker.
        Either::Left(_) => unreachable!("the future was set just above"),
    }
}

/// A main routine in two phases ([`ComponentBuilder::main_then`]): the start, then the first
/// phase, then the second it ended with, each in the place of the one before.
type Phases<F, Fut1, Fut2> = Either<Start<F>, Either<Fut1, Fut2>>;

/// The start of a main routine in two phases: a `Lazy` (which is `Unpin`, so this is too, and
/// can be taken out of its pin), in a type of its own so that [`Phases`] is not taken for the
/// one-phase [`Main`].
pub(crate) struct Start<F>(futures_util::future::Lazy<F>);

impl<F, Fut1, Fut2> Main for Phases<F, Fut1, Fut2>
where
    F: FnOnce(&mut std::task::Context<'_>) -> Fut1 + Send,
    Fut1: Future<Output = ControlFlow<MainResult, Fut2>> + Send,
    Fut2: Future<Output = MainResult> + Send,
{
    #[inline]
    fn poll_main(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<MainResult> {
        // Two tests, then the second phase's own poll: the rest is out of line.
        if let Either::Right(phases) = self.as_mut().as_pin_mut() {
            if let Either::Right(second) = phases.as_pin_mut() {
                return second.poll(cx);
            }
        }
        start_phases(self, cx)
    }
}

/// A poll of a [`Phases`] before its second phase: starts it, or polls the first phase, and
/// when that ends with a second makes it in its place and polls it (or ends with the result
/// the first ended with: the first's finished state is not polled again).
#[cold]
#[inline(never)]
fn start_phases<F, Fut1, Fut2>(
    mut main: Pin<&mut Phases<F, Fut1, Fut2>>,
    cx: &mut std::task::Context<'_>,
) -> Poll<MainResult>
where
    F: FnOnce(&mut std::task::Context<'_>) -> Fut1,
    Fut1: Future<Output = ControlFlow<MainResult, Fut2>>,
    Fut2: Future<Output = MainResult>,
{
    loop {
        match main.as_mut().as_pin_mut() {
            Either::Left(start) => {
                let Poll::Ready(first) = Pin::new(&mut start.get_mut().0).poll(cx) else {
                    unreachable!("a `Lazy` is ready at once")
                };
                main.set(Either::Right(Either::Left(first)));
            }
            Either::Right(phases) => match phases.as_pin_mut() {
                Either::Left(first) => match first.poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(ControlFlow::Break(result)) => return Poll::Ready(result),
                    Poll::Ready(ControlFlow::Continue(second)) => {
                        main.set(Either::Right(Either::Right(second)));
                    }
                },
                Either::Right(second) => return second.poll(cx),
            },
        }
    }
}

/// A process-unique component number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentId(pub u64);

/// A component's label, `Kind#id` (e.g. `TcpClient#12`): unique within the process.
///
/// Put together when it is shown, from the component's kind and id: a component keeps its
/// kind, shared with every component of that kind, and its id, not a string of its own (a
/// label of its own was a 48- or 64-byte block per component, per connection). Cloning it
/// allocates nothing; [`Label::to_string`](ToString::to_string) or `Arc<str>::from` makes the
/// text.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Label {
    kind: Arc<str>,
    id: u64,
}

impl Label {
    pub(crate) fn new(kind: Arc<str>, id: u64) -> Label {
        Label { kind, id }
    }

    /// The component's kind, e.g. `"TcpClient"`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The component's id.
    pub fn id(&self) -> ComponentId {
        ComponentId(self.id)
    }

    /// The kind, as shared by every component of that kind.
    pub(crate) fn shared_kind(&self) -> &Arc<str> {
        &self.kind
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.kind, self.id)
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string(), f)
    }
}

impl From<&Label> for Arc<str> {
    fn from(label: &Label) -> Arc<str> {
        label.to_string().into()
    }
}

impl From<Label> for Arc<str> {
    fn from(label: Label) -> Arc<str> {
        Arc::from(&label)
    }
}

impl From<Label> for String {
    fn from(label: Label) -> String {
        label.to_string()
    }
}

/// Equal to exactly the text [`Display`](fmt::Display) prints, `Kind#12`, and to no other
/// spelling of it (`Kind#012`, `Kind#+12`), compared without making that text.
impl PartialEq<str> for Label {
    fn eq(&self, other: &str) -> bool {
        other
            .rsplit_once('#')
            .is_some_and(|(kind, id)| kind == &*self.kind && decimal(id) == Some(self.id))
    }
}

/// `text` as a number if it is one written as `u64`'s `Display` writes it: ASCII digits only,
/// no sign, no leading zero (but `0` itself).
fn decimal(text: &str) -> Option<u64> {
    let plain = text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    if plain {
        text.parse().ok()
    } else {
        None
    }
}

impl PartialEq<&str> for Label {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A component that has been built but not yet activated: its boxes exist (so it can be linked)
/// and its main routine waits for [`Component::activate`].
///
/// Components are written with [`Component::build`]:
///
/// ```
/// use axon::{Component, Control};
///
/// /// Kamaelia's OneShot in full: send one message, then ProducerFinished, and end.
/// fn one_shot(msg: String) -> Component {
///     let mut c = Component::build("OneShot");
///     let outbox = c.outbox::<String>("outbox", "the message, once");
///     let signal = c.signal();
///     c.control();
///     c.main(move |_cx| async move {
///         outbox.send(msg).await?;
///         signal.send(Control::producer_finished()).await?;
///         Ok(())
///     })
/// }
/// # let c = one_shot("hello".into());
/// # assert_eq!(c.boxes().count(), 3);
/// ```
///
/// A built component is five words (its kind and label are its block's, a wiring error is
/// boxed): a [`crate::Group`] holds its members until they are activated, often on another
/// thread than the one that built them. Its main routine is one block, made when it is built
/// and freed when it ends: as large as the larger of the routine's closure and the future
/// the closure makes (TcpClient's: 376 bytes), so a component built long before it is
/// activated holds that block meanwhile.
pub struct Component {
    /// Its id, label, boxes and (once it has ended) exit, in one block shared with its handles
    /// and the scheduler's record.
    pub(crate) core: Arc<Core>,
    /// Its main routine, not yet started: the closure and, once it has run, its future, in one
    /// block made here and freed when the component ends (see [`ComponentBuilder::main`]).
    pub(crate) main: MainFuture,
    /// Boxed: rare, and large beside the rest (a component is 40 bytes, not 168; components
    /// are moved about and held in groups and lists until they are activated).
    pub(crate) error: Option<Box<WiringError>>,
    /// Activated alone, it runs as a group of one that its children may join (§10).
    pub(crate) hosts_group: bool,
}

/// What every component keeps for its whole life, whoever holds it (the component before it
/// runs, its handles, the scheduler's record of the live components): one allocation.
pub(crate) struct Core {
    /// Its id ([`Core::id`], the low [`crate::group::ID_BITS`] bits) and, above it, its flags
    /// as a group member ([`crate::group::WOKEN`] and the others): one word, so that a member
    /// needs no block of its group's to say it was woken (`group.rs`).
    pub(crate) word: AtomicU64,
    /// How it ended, once it has; until then the tasks waiting for that. Its lock also
    /// guards the box table (declared once, never copied), whose outbox entries hold where
    /// the outboxes send (`slot.rs`), and its kind, shared with every component of that kind
    /// built alike (its name, of which and the id its label is put together when shown,
    /// [`Label`], and its outboxes' descriptors).
    pub(crate) exit: crate::scheduler::ExitCell,
    /// The waker of the task of the group that polls it, set when the task first polls it:
    /// the block is the member's own waker (`group.rs`), which notes [`crate::group::WOKEN`]
    /// in [`Core::word`] and wakes this, so a member costs no allocation of its own for that,
    /// nor its group one for all (the block stays one 96-byte chunk with it).
    pub(crate) group: std::sync::OnceLock<std::task::Waker>,
}

impl fmt::Debug for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Component")
            .field("label", &self.core.label())
            .field("boxes", &self.core.box_names())
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// Declares a component's boxes, then takes its main routine. See [`Component::build`].
pub struct ComponentBuilder {
    /// Its block, made first: an outbox's handle is the block and the outbox's place in its
    /// table (`slot.rs`), which grows here while the component is built.
    core: Arc<Core>,
    /// The label as its boxes name it (see `owners.rs`).
    owner: Owner,
    /// The rare boxes made while it was built (by [`ComponentBuilder::boxref`]), by their
    /// place in `boxes` (which keeps their placeholders).
    early: Vec<(usize, Arc<dyn crate::store::ErasedStore>)>,
    error: Option<WiringError>,
    hosts_group: bool,
}

impl Component {
    /// The size of its main routine's block, in bytes (for tests of a component's memory).
    #[doc(hidden)]
    pub fn routine_size(&self) -> usize {
        std::mem::size_of_val(&*self.main)
    }

    /// Starts declaring a component called `name` (its kind, e.g. `"TcpClient"`).
    pub fn build(name: impl AsRef<str>) -> ComponentBuilder {
        // Shared with every component of this kind (a connection's components are built a
        // hundred thousand times over): looked up, not made, for each.
        let kind = crate::spec::shared_kind(name.as_ref());
        let id = ComponentId(NEXT_ID.fetch_add(1, Ordering::Relaxed));
        let owner = Owner::new(Label::new(kind.name.clone(), id.0));
        let core = Arc::new(Core {
            word: AtomicU64::new(id.0),
            exit: crate::scheduler::ExitCell::building(kind),
            group: std::sync::OnceLock::new(),
        });
        // Its boxes find their owner's waker through it (`store.rs`: an empty box its owner
        // waits on holds no waiting list).
        owner.set_core(&core);
        ComponentBuilder {
            core,
            owner,
            early: Vec::new(),
            error: None,
            hosts_group: false,
        }
    }

    /// The component's kind, e.g. `"Pipeline"` (shared by every component of that kind).
    ///
    /// An `Arc<str>` (a `&str` until session 15): the kind is kept under the component's lock
    /// beside its table (declaring an outbox, or giving one a byte bound or a store of its own,
    /// moves the component to the record of its kind built that way), so the name is read
    /// under that lock and handed out shared. Compare it as `&*c.name() == "Pipeline"`.
    pub fn name(&self) -> Arc<str> {
        self.core.kind_name()
    }

    /// The component's unique label, `Name#id`.
    pub fn label(&self) -> Label {
        self.core.label()
    }

    /// Its id.
    pub fn id(&self) -> ComponentId {
        self.core.id()
    }

    /// Its boxes, in declaration order.
    pub fn boxes(&self) -> impl Iterator<Item = BoxSpec> + '_ {
        self.core.listed().into_iter().map(|(_, d)| d.spec())
    }

    /// The box called `name`, for linking.
    pub fn boxref(&self, name: &str) -> Result<BoxRef, WiringError> {
        self.core.boxref(name)
    }

    /// The typed sending end of one of this component's outboxes (to inject messages in tests
    /// or tools). Fails if there is no such outbox or it carries another type.
    pub fn outbox<T: Message>(&self, name: &str) -> Result<Outbox<T>, WiringError> {
        let r = self.boxref(name)?;
        r.outbox::<T>().ok_or_else(|| wrong_type::<T>(&r))
    }

    /// Starts the component's main routine on the current scheduler (Axon's `activate`).
    pub fn activate(self) -> Handle {
        Scheduler::current().activate(self, None)
    }
}

/// The name of a component's main inbox (Kamaelia's `inbox`).
pub const INBOX: &str = "inbox";
/// The name of a component's main outbox (Kamaelia's `outbox`).
pub const OUTBOX: &str = "outbox";
/// The name of a component's control inbox: ProducerFinished, ShutdownMicroprocess (§5).
pub const CONTROL: &str = "control";
/// The name of a component's signal outbox: errors and notices, then one final message (§5).
pub const SIGNAL: &str = "signal";

/// The final-message check of a `signal` box, for whatever type it was declared with: only a
/// [`Control`] can be final.
pub(crate) fn is_final_control<T: 'static>(msg: &T) -> bool {
    (msg as &dyn std::any::Any)
        .downcast_ref::<Control>()
        .is_some_and(Control::is_final)
}

fn wrong_type<T>(r: &BoxRef) -> WiringError {
    let want = BoxId {
        owner: "caller".into(),
        name: "typed handle".into(),
        direction: Direction::Out,
        message_type: std::any::type_name::<T>(),
    };
    WiringError::TypeMismatch {
        src: r.id(),
        dst: want,
    }
}

impl Core {
    /// The component's id.
    #[inline]
    pub(crate) fn id(&self) -> ComponentId {
        ComponentId(self.word.load(Ordering::Relaxed) & crate::group::ID_BITS)
    }

    /// The component's label, put together from its kind and id.
    pub(crate) fn label(&self) -> Label {
        Label::new(self.kind_name(), self.id().0)
    }

    /// The component's kind's name.
    pub(crate) fn kind_name(&self) -> Arc<str> {
        self.exit.lock().kind.name.clone()
    }

    /// The declared box `name` (a rare box made now if it was not), or an unknown-box error
    /// naming the component.
    pub(crate) fn boxref(self: &Arc<Self>, name: &str) -> Result<BoxRef, WiringError> {
        let unknown = || unknown_box(|| self.label(), &self.listed(), name);
        let (index, _) = self
            .find_declared(|d| &*d.name() == name)
            .ok_or_else(unknown)?;
        crate::rare::resolve(self, index, true, false)
            .map(BoxRef::new)
            .ok_or_else(unknown)
    }

    /// Its declared boxes with their places in its table, in declaration order (an outbox
    /// kept there, `slot.rs`, as its descriptor, not where it sends).
    pub(crate) fn listed(&self) -> Vec<(usize, Declared)> {
        listed(&self.exit.lock())
    }

    /// Its first declared box that `pred` picks, with its place in its table.
    pub(crate) fn find_declared(
        &self,
        pred: impl Fn(&Declared) -> bool,
    ) -> Option<(usize, Declared)> {
        let g = self.exit.lock();
        let found = declared_in(&g).find(|(_, d)| pred(d));
        found
    }

    /// Its declared boxes' names, in declaration order.
    pub(crate) fn box_names(&self) -> Vec<Arc<str>> {
        (self.listed().iter())
            .map(|(_, d)| d.name().clone())
            .collect()
    }

    /// Its declared box of that name and direction, with its place in its table.
    pub(crate) fn declared(&self, name: &str, direction: Direction) -> Option<(usize, Declared)> {
        self.find_declared(|d| &*d.name() == name && d.direction() == direction)
    }
}

/// The declared boxes of a component's table (its lock held, `g`), with their places: an
/// outbox kept by the table (`slot.rs`) as its descriptor, found in the component's kind.
pub(crate) fn listed(g: &crate::scheduler::CellState) -> Vec<(usize, Declared)> {
    declared_in(g).collect()
}

/// [`listed`], one at a time: the table's entries, with the rare boxes (kept in the kind's
/// record) among them where they were declared.
fn declared_in(g: &crate::scheduler::CellState) -> impl Iterator<Item = (usize, Declared)> + '_ {
    let n = g.filled();
    let mut rare = g.kind.rare().enumerate().peekable();
    let mut i = 0;
    std::iter::from_fn(move || {
        if let Some((k, _)) = rare.next_if(|(_, (before, _))| *before <= i) {
            return Some((crate::spec::RARE + k, g.declared(crate::spec::RARE + k)));
        }
        (i < n).then(|| {
            i += 1;
            (i - 1, g.declared(i - 1))
        })
    })
}

impl Drop for Core {
    fn drop(&mut self) {
        // Its rare boxes made, if any, leave the process-wide map with it.
        crate::rare::forget(self);
    }
}

/// The place of the declared box `name` in `boxes`, or an unknown-box error naming the
/// component (its label made only then).
pub(crate) fn find_box(
    label: impl FnOnce() -> Label,
    boxes: &[(usize, Declared)],
    name: &str,
) -> Result<usize, WiringError> {
    boxes
        .iter()
        .find(|(_, d)| &*d.name() == name)
        .map(|(i, _)| *i)
        .ok_or_else(|| unknown_box(label, boxes, name))
}

fn unknown_box(
    label: impl FnOnce() -> Label,
    boxes: &[(usize, Declared)],
    name: &str,
) -> WiringError {
    WiringError::UnknownBox {
        component: label().to_string(),
        name: name.to_string(),
        available: boxes.iter().map(|(_, d)| d.name().to_string()).collect(),
    }
}

impl fmt::Debug for ComponentBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComponentBuilder")
            .field("label", &self.label())
            .field("boxes", &self.core.box_names())
            .field("error", &self.error)
            .finish()
    }
}

impl ComponentBuilder {
    /// The label the component will have (`Name#id`).
    pub fn label(&self) -> Label {
        self.core.label()
    }

    /// Makes the component, when activated on its own, run as a [`crate::Group`] of one, so
    /// that children it activates with [`Context::activate_beside`] share its task (a
    /// connection's client and adapter; docs/semantics.md §10). In a group already, it
    /// changes nothing.
    pub fn hosts_group(&mut self) -> &mut Self {
        self.hosts_group = true;
        self
    }

    /// The shared name and description of a new box `name`, noting a duplicate name as this
    /// component's wiring error.
    fn new_meta(&mut self, name: &str, description: &'static str) -> Arc<BoxMeta> {
        let duplicate = self.core.find_declared(|d| &*d.name() == name).is_some();
        if duplicate && self.error.is_none() {
            self.error = Some(WiringError::DuplicateBox {
                component: self.label().to_string(),
                name: name.to_string(),
            });
        }
        crate::spec::shared_meta(name, description)
    }

    fn declare<T: Message>(
        &mut self,
        name: &str,
        direction: Direction,
        description: &'static str,
        capacity: usize,
        signal: bool,
    ) -> Arc<Store<T>> {
        let meta = self.new_meta(name, description);
        let store = Store::<T>::new(self.owner.clone(), meta, direction, capacity, signal);
        self.core.exit.push_box(Declared {
            r: BoxRef::new(store.clone()),
        });
        store
    }

    /// Declares an inbox of `T` with the default capacity.
    pub fn inbox<T: Message>(&mut self, name: &str, description: &'static str) -> Inbox<T> {
        self.inbox_with_capacity(name, description, DEFAULT_CAPACITY)
    }

    /// Declares an inbox of `T` that queues at most `capacity` messages (at least 1, at most
    /// 134,217,727: a larger capacity is taken as that; `docs/semantics.md` §3).
    pub fn inbox_with_capacity<T: Message>(
        &mut self,
        name: &str,
        description: &'static str,
        capacity: usize,
    ) -> Inbox<T> {
        Inbox {
            store: self.declare(name, Direction::In, description, capacity, false),
        }
    }

    /// Declares an outbox of `T`. An outbox called [`SIGNAL`] that carries [`Control`] is the
    /// standard `signal` however it is declared: it notes its final message (see
    /// [`ComponentBuilder::signal`]).
    ///
    /// The outbox keeps no store of its own while it is linked (or unused): its link is an
    /// entry of the component's table, and its handle the component's block and a place in it
    /// (`docs/semantics.md` §2). It makes one when it needs one: sent to while it is not
    /// linked, linked to (a passthrough out of a child), or a final message sent on `signal`.
    pub fn outbox<T: Message>(&mut self, name: &str, description: &'static str) -> Outbox<T> {
        let signal = name == SIGNAL;
        let meta = self.new_meta(name, description);
        let desc = crate::slot::descriptor::<T>(meta, signal, None, false);
        // Its one entry is where its sends go: nowhere yet (the descriptor, `slot.rs`); the
        // descriptor itself is its kind's.
        let index = self.core.exit.push_outbox(desc);
        Outbox::slot(self.core.clone(), index)
    }

    /// Declares the standard `control` inbox.
    pub fn control(&mut self) -> Inbox<Control> {
        self.control_with("shutdown signalling (ProducerFinished, ShutdownMicroprocess)")
    }

    /// Declares the standard `control` inbox with a description of what this component does
    /// with each control message.
    pub fn control_with(&mut self, description: &'static str) -> Inbox<Control> {
        self.inbox(CONTROL, description)
    }

    /// Declares the standard `signal` outbox. It notes a final message, so the runtime never
    /// sends another after a failure (docs/semantics.md §5).
    pub fn signal(&mut self) -> Outbox<Control> {
        self.signal_with("errors, then one final ProducerFinished or ShutdownMicroprocess")
    }

    /// Declares the standard `signal` outbox with a description of what this component sends
    /// on it; it notes a final message as [`ComponentBuilder::signal`] does.
    pub fn signal_with(&mut self, description: &'static str) -> Outbox<Control> {
        self.outbox(SIGNAL, description)
    }

    /// Declares an inbox of `T` from its entry in the component's
    /// [`box_table!`](crate::box_table).
    pub fn inbox_from<T: Message>(&mut self, decl: BoxDecl) -> Inbox<T> {
        self.inbox(decl.name, decl.description)
    }

    /// Declares an outbox of `T` from its entry in the component's
    /// [`box_table!`](crate::box_table). An entry named [`SIGNAL`] gets the final-message guard,
    /// as [`ComponentBuilder::outbox`] says.
    pub fn outbox_from<T: Message>(&mut self, decl: BoxDecl) -> Outbox<T> {
        self.outbox(decl.name, decl.description)
    }

    /// Declares the standard `control` inbox from its entry in the component's
    /// [`box_table!`](crate::box_table). An entry with another name is declared under that name
    /// and recorded as a wiring error
    /// ([`WiringError::UnknownBox`]), so activation fails instead of the component silently
    /// missing its `control`.
    pub fn control_from(&mut self, decl: BoxDecl) -> Inbox<Control> {
        self.expect_name(decl, CONTROL);
        self.inbox(decl.name, decl.description)
    }

    /// Declares the standard `signal` outbox from its entry in the component's
    /// [`box_table!`](crate::box_table), with the final-message guard of
    /// [`ComponentBuilder::signal`]. An entry with another name is recorded as a wiring error, as
    /// for [`ComponentBuilder::control_from`].
    pub fn signal_from(&mut self, decl: BoxDecl) -> Outbox<Control> {
        self.expect_name(decl, SIGNAL);
        self.outbox(decl.name, decl.description)
    }

    /// Declares a *rare* inbox of `T` from its entry in the component's
    /// [`box_table!`](crate::box_table): a box for what most uses of the component never do
    /// (a connection's `makessl`). It is listed, linked and sent to as any other box, from
    /// the moment the component is built (`docs/semantics.md` §1), but its store (one 64-byte
    /// block) is made only when it is first used: looked up by name (to link it, or to send
    /// into it), or waited on by an owner that is not a group member. Its owner's routine
    /// reaches it through the returned handle and the component's [`crate::RareBoxes`]
    /// ([`crate::Context::rare_boxes`]). A rare box has the default capacity and no byte bound.
    /// A component with a rare inbox, activated on its own, runs as a group of one
    /// ([`ComponentBuilder::hosts_group`]), so that its waits on the box need no store.
    ///
    /// ```
    /// use axon::{Component, Control, RareInbox, Scheduler, CONTROL};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut b = Component::build("Waiter");
    /// let mut control: RareInbox<Control> = b.rare_control_from(axon::BoxDecl::new(CONTROL, "ends it"));
    /// let waiter = b.main(move |cx| async move {
    ///     let rare = cx.rare_boxes();
    ///     std::future::poll_fn(|cx| control.poll_recv(&rare, CONTROL, cx)).await;
    ///     Ok(())
    /// });
    /// let handle = Scheduler::new().run(async move {
    ///     let h = waiter.activate();
    ///     assert!(h.stop(), "its control is made when it is first used");
    /// }).await;
    /// assert!(handle.is_ok());
    /// # }
    /// ```
    pub fn rare_inbox_from<T: Message>(&mut self, decl: BoxDecl) -> crate::RareInbox<T> {
        // Activated on its own, it runs as a group of one: its own waits on the box then need
        // no store (a member's block is its waker). Its own task would make the box at its
        // first wait, to note a waker there: two stores and the map's entry for a client.
        self.hosts_group = true;
        let meta = self.new_meta(decl.name, decl.description);
        (self.core.exit).push_rare(crate::rare::placeholder::<T>(meta, Direction::In));
        crate::RareInbox::none()
    }

    /// Declares the standard `control` inbox from its table entry as a rare box (see
    /// [`ComponentBuilder::rare_inbox_from`]): made when something links it or sends to it
    /// ([`crate::Handle::stop`] included). A misnamed entry is a wiring error, as for
    /// [`ComponentBuilder::control_from`].
    pub fn rare_control_from(&mut self, decl: BoxDecl) -> crate::RareInbox<Control> {
        self.expect_name(decl, CONTROL);
        self.rare_inbox_from(decl)
    }

    /// Declares a rare outbox of `T` from its table entry (see
    /// [`ComponentBuilder::rare_inbox_from`]): made when it is looked up by name (to link it)
    /// or its owner sends on it ([`crate::RareBoxes::outbox`]); what is sent before it is
    /// linked is kept as on any outbox. A `signal` is never rare (it is declared as with
    /// [`ComponentBuilder::outbox_from`], found the same way).
    pub fn rare_outbox_from<T: Message>(&mut self, decl: BoxDecl) {
        if decl.name == SIGNAL {
            self.outbox_from::<T>(decl);
            return;
        }
        let meta = self.new_meta(decl.name, decl.description);
        (self.core.exit).push_rare(crate::rare::placeholder::<T>(meta, Direction::Out));
    }

    /// Records a wiring error if a table entry meant as the standard box `name` has another name.
    fn expect_name(&mut self, decl: BoxDecl, name: &str) {
        if decl.name != name {
            self.fail(WiringError::UnknownBox {
                component: self.label().to_string(),
                name: name.to_string(),
                available: (self.core.listed().iter())
                    .map(|(_, d)| d.name().to_string())
                    .collect(),
            });
        }
    }

    /// Declares a box that mirrors `like` (same message type) under `name`: how a chassis gives
    /// itself an `inbox` of whatever type its first child takes.
    pub fn mirror(
        &mut self,
        name: &str,
        direction: Direction,
        like: &BoxRef,
        description: &'static str,
    ) -> BoxRef {
        let meta = self.new_meta(name, description);
        let r = like.new_like(&self.owner, meta, direction);
        self.core.exit.push_box(Declared { r: r.clone() });
        r
    }

    /// Records a wiring error found while building; activation then fails with it.
    pub fn fail(&mut self, error: WiringError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }

    /// The box called `name` declared so far (a rare box is made now: see
    /// [`ComponentBuilder::rare_inbox_from`]).
    pub fn boxref(&mut self, name: &str) -> Result<BoxRef, WiringError> {
        let listed = self.core.listed();
        let index = find_box(|| self.label(), &listed, name)?;
        let d = &listed
            .iter()
            .find(|(i, _)| *i == index)
            .expect("found just above")
            .1;
        if d.r.store.is_slot() {
            return Ok(crate::slot::boxref(&self.core, index));
        }
        if !d.r.store.is_rare() {
            return Ok(d.r.clone());
        }
        if let Some((_, store)) = self.early.iter().find(|(i, _)| *i == index) {
            return Ok(BoxRef::new(store.clone()));
        }
        let store =
            d.r.store
                .new_like(&self.owner, d.r.store.meta().clone(), d.direction());
        self.early.push((index, store.clone()));
        Ok(BoxRef::new(store))
    }

    /// The wiring error recorded so far, if any.
    pub fn error(&self) -> Option<&WiringError> {
        self.error.as_ref()
    }

    /// Finishes the component with its main routine, which runs as its own task once activated.
    pub fn main<F, Fut>(self, main: F) -> Component
    where
        F: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = MainResult> + Send + 'static,
    {
        self.finish(|start| {
            let main: Either<_, Fut> = Either::Left(futures_util::future::lazy(move |_| {
                main(Context::start(start))
            }));
            Box::pin(main)
        })
    }

    /// Finishes the component with a main routine in two phases: `first` (connecting, say),
    /// which ends with the second phase (`ControlFlow::Continue`: the connection's future),
    /// made in the place `first` had, or with the routine's result if there is no second
    /// phase (`ControlFlow::Break`: it failed to connect). As [`ComponentBuilder::main`] with
    /// `first(cx)` followed by the future it ends with in everything else, one block included;
    /// what it saves is a combinator's layer on every poll of the second phase (two tests and
    /// the second phase's own poll: TcpClient's relay round trip measured 6,730 instructions
    /// as a `then`, 6,658 so) and its tags in the block: the block is the larger phase and one
    /// word (a `then` closure kept beside the first phase, and a ready result beside the
    /// second, were a word each: TcpClient's block crossed an allocator step with them).
    ///
    /// ```
    /// use std::ops::ControlFlow;
    /// use axon::{Component, Control, Scheduler};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut b = Component::build("FirstNumber");
    /// let inbox = b.inbox::<u32>("inbox", "numbers");
    /// let signal = b.signal();
    /// let first_number = b.main_then(move |_cx| async move {
    ///     // The first phase: wait for a number.
    ///     let n = inbox.recv().await;
    ///     if n == 0 {
    ///         // No second phase: the routine ends here, with this result.
    ///         return ControlFlow::Break(Err("zero".into()));
    ///     }
    ///     // The second, made of what the first found, in its place.
    ///     ControlFlow::Continue(async move {
    ///         signal.send(Control::producer_finished()).await?;
    ///         Ok(())
    ///     })
    /// });
    /// let to = axon::Outbox::<u32>::standalone("to");
    /// axon::link_refs(&to.boxref(), &first_number.boxref("inbox").unwrap()).unwrap();
    /// to.send(7).await.unwrap();
    /// let report = Scheduler::new().run(async { first_number.activate(); }).await;
    /// assert!(report.is_ok());
    /// # }
    /// ```
    ///
    /// # Errors
    /// An error of the first phase reaches the component's exit and `signal` only if the
    /// first phase ends with it (`Break(Err(..))`), or the second phase returns it. A panic in
    /// either phase is the component's failure, reported as for [`ComponentBuilder::main`].
    ///
    /// # Shutdown
    /// The runtime reads no box for the routine in either phase: a `control` inbox is the
    /// routine's to watch while it connects as after (TcpClient's first phase races its
    /// connect against `control`).
    pub fn main_then<F, Fut1, Fut2>(self, first: F) -> Component
    where
        F: FnOnce(Context) -> Fut1 + Send + 'static,
        Fut1: Future<Output = ControlFlow<MainResult, Fut2>> + Send + 'static,
        Fut2: Future<Output = MainResult> + Send + 'static,
    {
        self.finish(|start| {
            let begin = futures_util::future::lazy(move |_| first(Context::start(start)));
            let main: Phases<_, _, Fut2> = Either::Left(Start(begin));
            Box::pin(main)
        })
    }

    /// The component, with its main routine made by `main` from a reference to its block.
    fn finish(mut self, main: impl FnOnce(Arc<Core>) -> MainFuture) -> Component {
        // The table in a block of exactly its size (see `ExitCell::finish_table`).
        self.core.exit.finish_table();
        let core = self.core.clone();
        crate::rare::made_early(&core, std::mem::take(&mut self.early));
        // The routine and its future share one block, made here: the future is made in it
        // when the component first runs (in place: `Main`), with a context made then, as it
        // always was (the current scheduler, this block, the group it has joined). A closure
        // boxed on its own was made where the component is built and freed where it first
        // runs: built on one thread (a program's main thread, say) and run on a worker, each
        // component left a hole in the builder's heap that nothing made later of that size
        // filled (a client connection's two: 96 and 48 bytes).
        let main = main(core.clone());
        Component {
            core,
            main,
            error: self.error.map(Box::new),
            hosts_group: self.hosts_group,
        }
    }
}
