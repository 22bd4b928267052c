//! Box declarations: a box's name, direction, message type and one-line description.

use std::fmt;
use std::sync::Arc;

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
