//! Box owners' labels, kept once per owner in one process-wide table.
//!
//! Every box names its owner (`Name#id`) in its [`crate::BoxId`], but only errors, the graph
//! and debugging read that name. A box pays for what it holds per box, per component, per
//! connection, so instead of a 16-byte pointer to the label in each box, the label is kept once
//! in a table slot, counted by the boxes (and the builder) that name it, and a box holds the
//! slot's 4-byte index: [`Owner`]. The slot is freed when the last of them goes, so the table
//! holds the labels of the owners alive now, not of every owner there ever was; its slot array
//! (40 bytes a slot: the label is the owner's kind, shared with every component of that
//! kind, and its id; and a weak reference to the component's block) stays at the most owners
//! alive at once, reused from a free list.
//!
//! The slot's reference to the component's block lets a box find its owner's waker (a group
//! member's waker is its block): an empty box its owner waits on keeps no waker of its own
//! (`store.rs`, [`Store::idle`](crate::store)).
//!
//! Cost: one process-wide lock, taken when a component or a box is made or dropped, when a
//! link is made or undone, and when a label is read; and when an owner starts waiting on an
//! empty box with no used part, or such a box gets a message, closes or is linked (once per
//! box in a connection's life, or per message on a box of `Control`); never per message on a
//! box of data once it has had one.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::Waker;

use crate::component::{Core, Label};

/// A slot of the table: a label, how many [`Owner`]s name it and, once the component is made,
/// its block (not kept alive by the table), or a link in the free list.
enum Slot {
    Used {
        label: Label,
        count: u32,
        core: Weak<Core>,
    },
    Free {
        next: u32,
    },
}

struct Table {
    slots: Vec<Slot>,
    /// The first free slot, or [`NONE`].
    free: u32,
}

/// No free slot.
const NONE: u32 = u32::MAX;

/// The slot given out when the table cannot hold another label (four billion owners alive at
/// once, far past what memory allows): its label says so instead of naming the owner.
const OVERFLOW: u32 = 0;

static TABLE: Mutex<Table> = Mutex::new(Table {
    slots: Vec::new(),
    free: NONE,
});

fn table() -> MutexGuard<'static, Table> {
    // Nothing panics while this lock is held (no allocation failure aside, which aborts).
    let mut t = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    if t.slots.is_empty() {
        t.slots.push(Slot::Used {
            label: Label::new(crate::spec::shared_name("(owner not kept)"), 0),
            count: 1,
            core: Weak::new(),
        });
    }
    t
}

/// A counted reference to an owner's label in the table: 4 bytes where the label's pointer
/// would take 16. Cloning and dropping take the table's lock; reading the label does too, and
/// only errors, the graph and debugging read it.
pub(crate) struct Owner(u32);

impl Owner {
    /// A new slot holding `label`, named once (by the returned `Owner`).
    pub(crate) fn new(label: Label) -> Owner {
        let mut t = table();
        let i = t.free;
        if let Some(slot) = t.slots.get_mut(i as usize) {
            if let Slot::Free { next } = *slot {
                *slot = Slot::Used {
                    label,
                    count: 1,
                    core: Weak::new(),
                };
                t.free = next;
                return Owner(i);
            }
        }
        // The free list is empty (or, which cannot happen, names a used slot: then it is
        // dropped, and the slots it held are not reused).
        t.free = NONE;
        match u32::try_from(t.slots.len()) {
            Ok(i) if i != NONE => {
                t.slots.push(Slot::Used {
                    label,
                    count: 1,
                    core: Weak::new(),
                });
                Owner(i)
            }
            _ => Owner(OVERFLOW),
        }
    }

    /// The owner's label, `Name#id`.
    pub(crate) fn label(&self) -> Arc<str> {
        match table().slots.get(self.0 as usize) {
            Some(Slot::Used { label, .. }) => label.into(),
            // Cannot happen: a slot is freed only once no `Owner` names it.
            _ => "(owner not kept)#0".into(),
        }
    }

    /// Notes the owner's block, once the component is made, so that its boxes can find the
    /// owner's waker ([`Owner::is_waker_of`], [`Owner::waker`]).
    pub(crate) fn set_core(&self, core: &Arc<Core>) {
        if self.0 == OVERFLOW {
            return;
        }
        if let Some(Slot::Used { core: c, .. }) = table().slots.get_mut(self.0 as usize) {
            *c = Arc::downgrade(core);
        }
    }

    /// True if `data` is the data pointer of the owner's own waker: a group member's waker is
    /// its component's block (`group.rs`), so a waker of a known kind
    /// (`group::is_known_waker`) whose data pointer is the owner's block is the owner's, as the
    /// block, kept allocated by the table's reference, cannot be another task's.
    pub(crate) fn is_waker_of(&self, data: *const ()) -> bool {
        match table().slots.get(self.0 as usize) {
            Some(Slot::Used { core, .. }) if self.0 != OVERFLOW => {
                std::ptr::eq(Weak::as_ptr(core).cast::<()>(), data)
            }
            _ => false,
        }
    }

    /// The owner's waker (its block as a group member's waker), while the owner lives.
    pub(crate) fn waker(&self) -> Option<Waker> {
        let core = match table().slots.get(self.0 as usize) {
            Some(Slot::Used { core, .. }) if self.0 != OVERFLOW => core.upgrade(),
            _ => None,
        };
        // Made once the table's lock is released.
        core.map(Waker::from)
    }
}

impl Clone for Owner {
    fn clone(&self) -> Owner {
        if let Some(Slot::Used { count, .. }) = table().slots.get_mut(self.0 as usize) {
            // Saturated, the slot is never freed: harmless, and past what memory allows.
            *count = count.saturating_add(1);
        }
        Owner(self.0)
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        if self.0 == OVERFLOW {
            return;
        }
        let mut t = table();
        let free = t.free;
        let Some(slot) = t.slots.get_mut(self.0 as usize) else {
            return;
        };
        if let Slot::Used { count, .. } = slot {
            match *count {
                1 => {
                    // The label goes with the slot (its kind is shared with every component of
                    // that kind, so this only takes the slot back).
                    *slot = Slot::Free { next: free };
                    t.free = self.0;
                }
                u32::MAX => {}
                _ => *count -= 1,
            }
        }
    }
}

impl std::fmt::Debug for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(kind: &str, id: u64) -> Label {
        Label::new(kind.into(), id)
    }

    /// A slot is taken back once the last owner naming it goes, and reused.
    #[test]
    fn slots_are_counted_and_reused() {
        let a = Owner::new(label("A", 1));
        let a2 = a.clone();
        assert_eq!(&*a2.label(), "A#1");
        drop(a);
        assert_eq!(&*a2.label(), "A#1", "still named by a2");
        drop(a2);
        // Other tests may take the freed slot first; whichever slot is given, it holds B.
        let b = Owner::new(label("B", 2));
        assert_eq!(&*b.label(), "B#2");
    }

    /// Owners made, cloned and dropped on several threads at once each read back their own
    /// label, while freed slots are taken again.
    #[test]
    fn owners_on_several_threads_keep_their_labels() {
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        let a = Owner::new(label(&format!("T{t}"), i));
                        let label = format!("T{t}#{i}");
                        let b = a.clone();
                        drop(a);
                        assert_eq!(&*b.label(), label);
                    }
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().is_ok());
        }
    }

    /// Owners made and dropped one after another reuse their slots: the table stays at the
    /// most owners alive at once (here a handful, with the other tests'), not one slot per
    /// owner there ever was.
    #[test]
    fn the_table_does_not_grow_with_owners_come_and_gone() {
        for i in 0..10_000 {
            drop(Owner::new(label("R", i)));
        }
        let slots = table().slots.len();
        assert!(
            slots < 1_000,
            "{slots} slots after 10,000 owners, one at a time"
        );
    }

    #[test]
    fn an_owner_is_four_bytes() {
        assert_eq!(std::mem::size_of::<Owner>(), 4);
    }
}
