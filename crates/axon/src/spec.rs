//! Box declarations: a box's name, direction, message type and one-line description.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};

/// A bounded table of shared strings: each name is kept once, and everyone who asks for it
/// gets the same `Arc<str>` (a connection's boxes are called `inbox`, `control`, ... and its
/// clients connect to the same host, a hundred thousand times over; each would otherwise hold
/// its own copy). Bounded in names and in bytes, so a program that makes names on the fly
/// (from what a peer sends, say) cannot grow it for ever: a name longer than the table's
/// longest is not shared, and when the table is full, names nobody holds any more leave it;
/// if none can, the new name is not shared. A name not shared is still returned, as a copy of
/// its own.
///
/// ```
/// use axon::SharedNames;
/// use std::sync::Arc;
///
/// static HOSTS: SharedNames = SharedNames::new(2, 16);
/// let (a, b) = (HOSTS.get("127.0.0.1"), HOSTS.get("127.0.0.1"));
/// assert!(Arc::ptr_eq(&a, &b));
/// let long = HOSTS.get("a-name-longer-than-sixteen-bytes");
/// assert!(!Arc::ptr_eq(&long, &HOSTS.get(&long)));
/// ```
#[derive(Debug)]
pub struct SharedNames {
    names: Mutex<BTreeSet<Arc<str>>>,
    /// How many names it keeps at most.
    most: usize,
    /// The longest name it keeps, in bytes.
    longest: usize,
}

impl SharedNames {
    /// An empty table keeping at most `most` names of at most `longest` bytes each.
    pub const fn new(most: usize, longest: usize) -> Self {
        SharedNames {
            names: Mutex::new(BTreeSet::new()),
            most,
            longest,
        }
    }

    /// `name`, shared with everyone else who asked this table for it (a copy of its own if the
    /// table does not keep it).
    pub fn get(&self, name: &str) -> Arc<str> {
        if name.len() > self.longest {
            return name.into();
        }
        // Nothing panics while this lock is held.
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = names.get(name) {
            return n.clone();
        }
        if names.len() >= self.most {
            // Only the table holds these: nobody asked for them is left.
            names.retain(|n| Arc::strong_count(n) > 1);
        }
        let n: Arc<str> = name.into();
        if names.len() < self.most {
            names.insert(n.clone());
        }
        n
    }

    /// How many names it keeps now.
    pub fn len(&self) -> usize {
        self.names.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether it keeps no name.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The names of boxes and component kinds: at most 4,096 names of at most 256 bytes (1 MiB).
static NAMES: SharedNames = SharedNames::new(4096, 256);

/// `name`, shared with every other box or component kind of that name.
pub(crate) fn shared_name(name: &str) -> Arc<str> {
    NAMES.get(name)
}

/// A component kind's record, shared by every component of that kind built alike: its name,
/// and the descriptors of the outboxes its table keeps (`slot.rs`: what each is, by its place
/// in the table, where the table keeps only where each sends). A component keeps one pointer
/// to it, under its block's lock: declaring an outbox, giving one a store of its own or a
/// byte bound moves the component to the record of its kind with that descriptor, so
/// components built differently under one name each find their own.
pub(crate) struct Kind {
    pub(crate) name: Arc<str>,
    /// `(place in the table, descriptor)`, in the order declared.
    outboxes: Box<[(usize, Arc<dyn crate::store::ErasedStore>)]>,
    /// Its rare boxes (`rare.rs`), which have no entry in the table: `(how many table entries
    /// were declared before it, its placeholder)`, in the order declared. The `k`th is the box
    /// at place [`RARE`]` + k`.
    rare: Box<[(usize, Arc<dyn crate::store::ErasedStore>)]>,
}

/// The place of a component's first rare box: rare boxes are numbered from here, past any
/// table (a table holds the boxes that are not rare, from 0).
pub(crate) const RARE: usize = 1 << 24;

/// A record's lists, as [`kind_where`] makes one.
type Lists = (
    Vec<(usize, Arc<dyn crate::store::ErasedStore>)>,
    Vec<(usize, Arc<dyn crate::store::ErasedStore>)>,
);

/// True if the two lists name the same places and the same shared descriptors.
fn same(
    a: impl IntoIterator<Item = (usize, Arc<dyn crate::store::ErasedStore>)>,
    b: &[(usize, Arc<dyn crate::store::ErasedStore>)],
) -> bool {
    let mut n = 0;
    let all = a.into_iter().all(|(i, d)| {
        let ok = b.get(n).is_some_and(|(j, e)| i == *j && Arc::ptr_eq(&d, e));
        n += 1;
        ok
    });
    all && n == b.len()
}

impl Kind {
    /// The descriptor of the outbox at `index` of the table, if the table keeps one there.
    #[inline]
    pub(crate) fn outbox(&self, index: usize) -> Option<&Arc<dyn crate::store::ErasedStore>> {
        self.outboxes
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, d)| d)
    }

    /// The record of this kind with `desc` as the descriptor of the outbox at `index`.
    pub(crate) fn with(&self, index: usize, desc: Arc<dyn crate::store::ErasedStore>) -> Arc<Kind> {
        let had = self.outbox(index).is_some();
        let desc = &desc;
        let wanted = || {
            let kept = self.outboxes.iter().map(move |(i, d)| {
                if *i == index {
                    (*i, desc.clone())
                } else {
                    (*i, d.clone())
                }
            });
            kept.chain((!had).then(|| (index, desc.clone())))
        };
        let alike = |k: &Arc<Kind>| same(wanted(), &k.outboxes) && same(self.rare(), &k.rare);
        kind_where(&self.name, alike, || {
            (wanted().collect(), self.rare().collect())
        })
    }

    /// The placeholder of the rare box at `index` ([`RARE`] and up), if there is one.
    #[inline]
    pub(crate) fn rare_box(&self, index: usize) -> Option<&Arc<dyn crate::store::ErasedStore>> {
        let k = index.checked_sub(RARE)?;
        self.rare.get(k).map(|(_, d)| d)
    }

    /// Its rare boxes: `(how many table entries come before it, its placeholder)`.
    pub(crate) fn rare(
        &self,
    ) -> impl Iterator<Item = (usize, Arc<dyn crate::store::ErasedStore>)> + '_ {
        self.rare.iter().map(|(n, d)| (*n, d.clone()))
    }

    /// The record of this kind with one more rare box, `placeholder`, declared after `before`
    /// table entries; and its place.
    pub(crate) fn with_rare(
        &self,
        before: usize,
        placeholder: Arc<dyn crate::store::ErasedStore>,
    ) -> (Arc<Kind>, usize) {
        let place = RARE + self.rare.len();
        let wanted = || {
            self.rare()
                .chain(std::iter::once((before, placeholder.clone())))
        };
        let outboxes = || self.outboxes.iter().map(|(i, d)| (*i, d.clone()));
        let alike = |k: &Arc<Kind>| same(outboxes(), &k.outboxes) && same(wanted(), &k.rare);
        let kind = kind_where(&self.name, alike, || {
            (outboxes().collect(), wanted().collect())
        });
        (kind, place)
    }
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kind")
            .field("name", &self.name)
            .field("outboxes", &self.outboxes.len())
            .finish()
    }
}

/// The shared [`Kind`]s by name, each name's records built alike: at most as many as
/// [`NAMES`] keeps names, in all. When full, the records no component holds any more are let
/// go first (as [`SharedNames::get`] lets names go); past the cap with every record in use, a
/// component gets a record of its own (one 48-byte block, and its list of outboxes; its name is
/// still shared if [`NAMES`] keeps it): a program that makes kinds (or ways of building one) on
/// the fly cannot grow the map for ever, nor fill it for good.
static KINDS: Mutex<Kinds> = Mutex::new(Kinds {
    by_name: BTreeMap::new(),
    count: 0,
});

struct Kinds {
    by_name: BTreeMap<Arc<str>, Vec<Arc<Kind>>>,
    count: usize,
}

/// The record of kind `name` that `alike` picks, made of `lists()` (its outboxes' and its
/// rare boxes') and kept if there is none (and there is room).
fn kind_where(
    name: &str,
    alike: impl Fn(&Arc<Kind>) -> bool,
    lists: impl FnOnce() -> Lists,
) -> Arc<Kind> {
    // Nothing panics while this lock is held.
    let mut kinds = KINDS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(k) = kinds
        .by_name
        .get(name)
        .and_then(|v| v.iter().find(|k| alike(k)))
    {
        return k.clone();
    }
    let (outboxes, rare) = lists();
    let k = Arc::new(Kind {
        name: shared_name(name),
        outboxes: outboxes.into_boxed_slice(),
        rare: rare.into_boxed_slice(),
    });
    if kinds.count >= NAMES.most {
        // Only the map holds these: no component is of them now (a kind whose components have
        // all ended, or a way of building one passed through while a component declared its
        // outboxes one by one). Kept past the cap, they would leave every kind seen later a
        // record of its own per component for the rest of the process (review15).
        kinds.by_name.retain(|_, list| {
            list.retain(|k| Arc::strong_count(k) > 1);
            !list.is_empty()
        });
        kinds.count = kinds.by_name.values().map(Vec::len).sum();
    }
    if kinds.count < NAMES.most {
        kinds.count += 1;
        let list = kinds.by_name.entry(k.name.clone()).or_default();
        list.push(k.clone());
    }
    k
}

/// The [`Kind`] called `name` with no outbox kept by the table: where every component starts.
pub(crate) fn shared_kind(name: &str) -> Arc<Kind> {
    kind_where(
        name,
        |k| k.outboxes.is_empty() && k.rare.is_empty(),
        Default::default,
    )
}

/// A box's name and the line that describes it: shared by every box declared with both (a
/// connection's boxes are declared with the same names and descriptions a hundred thousand
/// times over), so a box holds one pointer for them.
#[derive(Debug)]
pub(crate) struct BoxMeta {
    pub(crate) name: Arc<str>,
    pub(crate) description: &'static str,
}

type MetaTable = BTreeMap<(Arc<str>, &'static str), Arc<BoxMeta>>;

/// The shared [`BoxMeta`]s: at most as many as [`NAMES`] keeps names.
static METAS: Mutex<MetaTable> = Mutex::new(BTreeMap::new());

/// The [`BoxMeta`] of `name` and `description`, shared with every other box declared with both.
pub(crate) fn shared_meta(name: &str, description: &'static str) -> Arc<BoxMeta> {
    let name = shared_name(name);
    // Nothing panics while this lock is held.
    let mut metas = METAS.lock().unwrap_or_else(|e| e.into_inner());
    let key = (name, description);
    if let Some(m) = metas.get(&key) {
        return m.clone();
    }
    let m = Arc::new(BoxMeta {
        name: key.0.clone(),
        description,
    });
    if metas.len() < NAMES.most {
        metas.insert(key, m.clone());
    }
    m
}

/// Whether a box receives (an inbox) or sends (an outbox).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// An inbox: messages arrive here.
    In,
    /// An outbox: messages leave from here.
    Out,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::In => "inbox",
            Direction::Out => "outbox",
        })
    }
}

/// Which of Axon's three kinds of linkage a link is. It follows from the two boxes' directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// outbox -> inbox (Axon's passthrough=0).
    Normal,
    /// inbox -> inbox: a parent forwarding its inbox to a child (Axon's passthrough=1).
    PassthroughIn,
    /// outbox -> outbox: a child's outbox exposed as the parent's (Axon's passthrough=2).
    PassthroughOut,
}

impl LinkKind {
    /// The kind of a link from a box of direction `src` to one of direction `dst`, if allowed.
    pub fn between(src: Direction, dst: Direction) -> Option<LinkKind> {
        match (src, dst) {
            (Direction::Out, Direction::In) => Some(LinkKind::Normal),
            (Direction::In, Direction::In) => Some(LinkKind::PassthroughIn),
            (Direction::Out, Direction::Out) => Some(LinkKind::PassthroughOut),
            (Direction::In, Direction::Out) => None,
        }
    }
}

/// One box of a component, declared once as data.
#[derive(Clone, Debug)]
pub struct BoxSpec {
    /// The box's name, e.g. `"inbox"` or `"makessl"`.
    pub name: Arc<str>,
    /// Inbox or outbox.
    pub direction: Direction,
    /// The Rust type of the messages it carries, as `std::any::type_name` prints it.
    pub message_type: &'static str,
    /// One line saying what the box is for.
    pub description: &'static str,
}

/// One entry of a component's box table: the box. Its name, description, direction and type
/// are its store's (the table keeps no second copy of them: a table entry is paid per box per
/// component per connection).
#[derive(Clone)]
pub(crate) struct Declared {
    pub(crate) r: crate::link::BoxRef,
}

impl Declared {
    pub(crate) fn name(&self) -> Arc<str> {
        self.r.name()
    }

    pub(crate) fn direction(&self) -> Direction {
        self.r.direction()
    }

    /// The entry as the public [`BoxSpec`].
    pub(crate) fn spec(&self) -> BoxSpec {
        BoxSpec {
            name: self.name(),
            direction: self.direction(),
            message_type: self.r.message_type_name(),
            description: self.r.store.meta().description,
        }
    }
}

/// Names a box in a running system: the owning component's label and the box's name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BoxId {
    /// The owner's label, `Name#id` (unique within the process).
    pub owner: Arc<str>,
    /// The box's name.
    pub name: Arc<str>,
    /// Inbox or outbox.
    pub direction: Direction,
    /// The message type's name.
    pub message_type: &'static str,
}

impl fmt::Display for BoxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.owner, self.name)
    }
}

/// A box as a component declares it once, as data: its name and the one line its rustdoc table
/// shows. A component keeps its boxes in one `const` table made with
/// [`box_table!`](crate::box_table) and declares each from there
/// ([`ComponentBuilder::inbox_from`](crate::ComponentBuilder::inbox_from) and friends), so the
/// declaration and the documented row cannot drift apart unnoticed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoxDecl {
    /// The box's name, e.g. [`INBOX`](crate::INBOX) or `"makessl"`.
    pub name: &'static str,
    /// One line saying what the box is for (the `meaning` column of the rustdoc table).
    pub description: &'static str,
}

impl BoxDecl {
    /// A box called `name`, described by `description`.
    pub const fn new(name: &'static str, description: &'static str) -> Self {
        BoxDecl { name, description }
    }
}

/// Declares a component's boxes once, as data: a struct with one [`BoxDecl`] field per box and a
/// `const` holding the table. The component's builder declares each box from the table (with
/// [`ComponentBuilder::inbox_from`](crate::ComponentBuilder::inbox_from),
/// [`outbox_from`](crate::ComponentBuilder::outbox_from),
/// [`control_from`](crate::ComponentBuilder::control_from) and
/// [`signal_from`](crate::ComponentBuilder::signal_from)); a test then checks the component's
/// rustdoc `# Inboxes` / `# Outboxes` tables against what the builder declared.
///
/// ```
/// use axon::{Component, CONTROL, INBOX, SIGNAL};
///
/// axon::box_table! {
///     /// The boxes of a component that swallows what it gets.
///     const BOXES: SinkBoxes {
///         inbox: INBOX => "anything, dropped",
///         control: CONTROL => "ends it",
///         signal: SIGNAL => "one final message",
///     }
/// }
///
/// let mut b = Component::build("Sink");
/// let _inbox = b.inbox_from::<u32>(BOXES.inbox);
/// let _control = b.control_from(BOXES.control);
/// let _signal = b.signal_from(BOXES.signal);
/// let c = b.main(|_cx| async { Ok(()) });
/// assert_eq!(c.boxes().count(), 3);
/// ```
#[macro_export]
macro_rules! box_table {
    ($(#[$meta:meta])* $vis:vis const $konst:ident: $ty:ident {
        $($field:ident: $name:expr => $desc:expr),* $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug)]
        $vis struct $ty {
            $(
                #[doc = concat!("The `", stringify!($field), "` box.")]
                pub $field: $crate::BoxDecl,
            )*
        }

        $(#[$meta])*
        $vis const $konst: $ty = $ty {
            $($field: $crate::BoxDecl::new($name, $desc),)*
        };
    };
}

#[cfg(test)]
mod tests {
    use crate::{Component, Control, WiringError, CONTROL, INBOX, SIGNAL};

    crate::box_table! {
        /// A table whose `control` and `signal` entries carry the wrong names.
        const MISNAMED: Misnamed {
            control: INBOX => "not the control",
            signal: "sig" => "not the signal",
        }
    }

    crate::box_table! {
        /// A well-formed table.
        const GOOD: Good {
            control: CONTROL => "ends it",
            signal: SIGNAL => "one final message",
        }
    }

    /// Declaring from a table: the names and descriptions come from the table; `signal_from`
    /// keeps the final-message guard; a misnamed `control`/`signal` entry is a wiring error.
    #[test]
    fn builders_declare_from_a_table() {
        let mut b = Component::build("Good");
        b.control_from(GOOD.control);
        let signal = b.signal_from(GOOD.signal);
        assert!(b.error().is_none());
        let c = b.main(|_cx| async { Ok(()) });
        let declared: Vec<_> = c.boxes().map(|s| (s.name, s.description)).collect();
        assert_eq!(
            declared,
            [
                ("control".into(), "ends it"),
                ("signal".into(), "one final message")
            ]
        );
        assert!(signal.try_send(Control::producer_finished()).is_ok());
        assert!(signal.final_sent(), "signal_from keeps the guard");

        for misnamed in [true, false] {
            let mut b = Component::build("Bad");
            if misnamed {
                b.control_from(MISNAMED.control);
            } else {
                b.signal_from(MISNAMED.signal);
            }
            assert!(matches!(b.error(), Some(WiringError::UnknownBox { .. })));
        }
    }

    /// A table of shared names stays within its bounds, whatever names come: past its count,
    /// a new name is not shared while every name kept is held; names nobody holds make room;
    /// a name longer than its longest is never kept. (Moved here from TcpClient's host
    /// table, session 10: its room check failed on the table as first merged.)
    #[test]
    fn shared_names_stay_within_their_bounds() {
        use super::SharedNames;
        use std::sync::Arc;
        let table = SharedNames::new(4, 8);
        let (a, b) = (table.get("one"), table.get("one"));
        assert!(Arc::ptr_eq(&a, &b), "one string for one name");
        let held: Vec<Arc<str>> = (0..3).map(|i| table.get(&format!("n{i}"))).collect();
        assert_eq!(table.len(), 4);
        // Full of held names: a new one is not kept, and the table does not grow.
        let (c, d) = (table.get("new"), table.get("new"));
        assert!(
            !Arc::ptr_eq(&c, &d),
            "a full table of held names shares no new one"
        );
        assert_eq!((&*c, table.len()), ("new", 4));
        // Once their holders are gone, the names make room.
        drop((a, b, held));
        let (e, f) = (table.get("after"), table.get("after"));
        assert!(
            Arc::ptr_eq(&e, &f),
            "a full table of unheld names made room"
        );
        assert!(table.len() <= 4);
        // Longer than its longest: kept by whoever asked, not by the table.
        let (g, h) = (table.get("123456789"), table.get("123456789"));
        assert!(!Arc::ptr_eq(&g, &h));
        assert_eq!(&*g, "123456789");
    }
}
