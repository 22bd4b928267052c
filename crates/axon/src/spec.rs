//! Box declarations: a box's name, direction, message type and one-line description.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};

/// Names shared by every box (and component kind) that uses them: a connection's boxes are
/// called `inbox`, `control`, ... a hundred thousand times over, and each would otherwise hold its
/// own copy. Bounded: past [`SHARED_NAMES`] distinct names, new ones get their own copy.
static NAMES: Mutex<BTreeSet<Arc<str>>> = Mutex::new(BTreeSet::new());

/// How many distinct names are shared at most (a program that makes names on the fly must not
/// grow the table for ever).
const SHARED_NAMES: usize = 4096;

/// `name`, shared with every other box or component kind of that name.
pub(crate) fn shared_name(name: &str) -> Arc<str> {
    // Nothing panics while this lock is held.
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(n) = names.get(name) {
        return n.clone();
    }
    let n: Arc<str> = name.into();
    if names.len() < SHARED_NAMES {
        names.insert(n.clone());
    }
    n
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

/// The shared [`BoxMeta`]s; bounded as [`NAMES`] is.
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
    if metas.len() < SHARED_NAMES {
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
    pub(crate) fn name(&self) -> &Arc<str> {
        self.r.name()
    }

    pub(crate) fn direction(&self) -> Direction {
        self.r.direction()
    }

    /// The entry as the public [`BoxSpec`].
    pub(crate) fn spec(&self) -> BoxSpec {
        BoxSpec {
            name: self.name().clone(),
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
        assert!(signal.store.final_sent(), "signal_from keeps the guard");

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
}
