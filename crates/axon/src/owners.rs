//! Box owners' labels, kept once per owner in one process-wide table.
//!
//! Every box names its owner (`Name#id`) in its [`crate::BoxId`], but only errors, the graph
//! and debugging read that name. A box pays for what it holds per box, per component, per
//! connection, so instead of a 16-byte pointer to the label in each box, the label is kept once
//! in a table slot, counted by the boxes (and the builder) that name it, and a box holds the
//! slot's 4-byte index: [`Owner`]. The slot is freed when the last of them goes, so the table
//! holds the labels of the owners alive now, not of every owner there ever was. A slot is 24
//! bytes: the label's kind as an index into the kinds, each kept once, its id, the count, and a
//! weak reference to the component's block. The slots are kept in chunks of 1,024, added as
//! needed and never moved, so the table stays at the most owners alive at once (rounded up to
//! a chunk), reused from a free list.
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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::Waker;

use crate::component::{Core, Label};

/// A slot of the table: 24 bytes, as a connection's components each hold one for as long as
/// they have boxes. Used while `count` (how many [`Owner`]s name it) is not 0: then `kind` and
/// `id` make the label, and `core` is the component's block once it is made (not kept alive by
/// the table); free, `id` is the next free slot.
struct Slot {
    kind: u32,
    count: u32,
    id: u64,
    core: Weak<Core>,
}

impl Slot {
    fn free(next: u32) -> Slot {
        Slot {
            kind: 0,
            count: 0,
            id: u64::from(next),
            core: Weak::new(),
        }
    }
}

/// How many slots a chunk holds. The table grows a chunk at a time and never moves a slot: a
/// doubled array would be up to half empty (32,768 slots for 20,000 owners) and leave its old
/// array, freed, as a hole in the heap.
const CHUNK: usize = 1024;

struct Table {
    chunks: Vec<Box<[Slot]>>,
    /// The slots handed out so far (the others of the last chunk are unused).
    len: u32,
    /// The first free slot, or [`NONE`].
    free: u32,
    /// The kinds the labels are made of, by index (each kind once: the same few for every
    /// connection), and the index of each.
    kinds: Vec<Arc<str>>,
    kind_index: Option<HashMap<Arc<str>, u32>>,
    /// What the kinds' names weigh, in bytes (at most [`KIND_BYTES`]).
    kind_bytes: usize,
}

/// No free slot.
const NONE: u32 = u32::MAX;

/// The slot given out when the table cannot hold another label (four billion owners alive at
/// once, far past what memory allows): its label says so instead of naming the owner. Kind 0
/// is its kind, and the kind of any label past [`KINDS`].
const OVERFLOW: u32 = 0;

/// How many kinds the table keeps at most (a program that makes kinds on the fly must not grow
/// it for ever): past them, a label shows kind 0's name.
const KINDS: usize = 65_536;

/// How many bytes of kind names the table keeps at most, for the same reason: a name past
/// them is not kept either (its labels show kind 0's name).
const KIND_BYTES: usize = 1 << 20;

static TABLE: Mutex<Table> = Mutex::new(Table {
    chunks: Vec::new(),
    len: 0,
    free: NONE,
    kinds: Vec::new(),
    kind_index: None,
    kind_bytes: 0,
});

fn table() -> MutexGuard<'static, Table> {
    // Nothing panics while this lock is held (no allocation failure aside, which aborts).
    let mut t = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    if t.len == 0 {
        let kind = crate::spec::shared_name("(owner not kept)");
        let _ = t.kind(&kind);
        let _ = t.push(Slot {
            kind: 0,
            count: 1,
            id: 0,
            core: Weak::new(),
        });
    }
    t
}

impl Table {
    fn slot(&self, i: u32) -> Option<&Slot> {
        let i = i as usize;
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    fn slot_mut(&mut self, i: u32) -> Option<&mut Slot> {
        let i = i as usize;
        self.chunks.get_mut(i / CHUNK)?.get_mut(i % CHUNK)
    }

    /// A used slot.
    fn used(&self, i: u32) -> Option<&Slot> {
        self.slot(i).filter(|s| s.count != 0)
    }

    /// Puts `slot` in the first slot never handed out, growing the table by a chunk if need
    /// be; its index, or `None` if the table is full.
    fn push(&mut self, slot: Slot) -> Option<u32> {
        let i = self.len;
        if i == NONE {
            return None;
        }
        if i as usize == self.chunks.len() * CHUNK {
            self.chunks
                .push((0..CHUNK).map(|_| Slot::free(NONE)).collect());
        }
        *self.slot_mut(i)? = slot;
        self.len = i + 1;
        Some(i)
    }

    /// The index of `kind`, added if new (kind 0 once [`KINDS`] kinds or [`KIND_BYTES`] of
    /// their names are kept).
    fn kind(&mut self, kind: &Arc<str>) -> u32 {
        let index = self.kind_index.get_or_insert_with(HashMap::new);
        if let Some(&k) = index.get(kind) {
            return k;
        }
        match u32::try_from(self.kinds.len()) {
            Ok(k) if self.kinds.len() < KINDS && self.kind_bytes + kind.len() <= KIND_BYTES => {
                index.insert(kind.clone(), k);
                self.kinds.push(kind.clone());
                self.kind_bytes += kind.len();
                k
            }
            _ => 0,
        }
    }

    fn label(&self, slot: &Slot) -> Label {
        let kind = self.kinds.get(slot.kind as usize).or(self.kinds.first());
        let kind = kind.cloned().unwrap_or_else(|| "(owner not kept)".into());
        Label::new(kind, slot.id)
    }
}

/// A counted reference to an owner's label in the table: 4 bytes where the label's pointer
/// would take 16. Cloning and dropping take the table's lock; reading the label does too, and
/// only errors, the graph and debugging read it.
pub(crate) struct Owner(u32);

impl Owner {
    /// A new slot holding `label`, named once (by the returned `Owner`).
    pub(crate) fn new(label: Label) -> Owner {
        let mut t = table();
        let slot = Slot {
            kind: t.kind(label.shared_kind()),
            count: 1,
            id: label.id().0,
            core: Weak::new(),
        };
        let i = t.free;
        if let Some(free) = t.slot_mut(i).filter(|s| s.count == 0) {
            let next = u32::try_from(free.id).unwrap_or(NONE);
            *free = slot;
            t.free = next;
            return Owner(i);
        }
        // The free list is empty (or, which cannot happen, names a used slot: then it is
        // dropped, and the slots it held are not reused).
        t.free = NONE;
        Owner(t.push(slot).unwrap_or(OVERFLOW))
    }

    /// The owner's label, `Name#id`.
    pub(crate) fn label(&self) -> Arc<str> {
        let t = table();
        match t.used(self.0) {
            Some(slot) => t.label(slot).into(),
            // Cannot happen: a slot is freed only once no `Owner` names it.
            None => "(owner not kept)#0".into(),
        }
    }

    /// Notes the owner's block, once the component is made, so that its boxes can find the
    /// owner's waker ([`Owner::is_waker_of`], [`Owner::waker`]).
    pub(crate) fn set_core(&self, core: &Arc<Core>) {
        if self.0 == OVERFLOW {
            return;
        }
        if let Some(slot) = table().slot_mut(self.0).filter(|s| s.count != 0) {
            slot.core = Arc::downgrade(core);
        }
    }

    /// True if `data` is the data pointer of the owner's own waker: a group member's waker is
    /// its component's block (`group.rs`), so a member's waker (the caller checks
    /// `group::is_member_waker`) whose data pointer is the owner's block is the owner's, as the
    /// block, kept allocated by the table's reference, cannot be another task's.
    pub(crate) fn is_waker_of(&self, data: *const ()) -> bool {
        match table().used(self.0) {
            Some(slot) if self.0 != OVERFLOW => {
                std::ptr::eq(Weak::as_ptr(&slot.core).cast::<()>(), data)
            }
            _ => false,
        }
    }

    /// The owner's waker (its block as a group member's waker), while the owner lives.
    pub(crate) fn waker(&self) -> Option<Waker> {
        let core = match table().used(self.0) {
            Some(slot) if self.0 != OVERFLOW => slot.core.upgrade(),
            _ => None,
        };
        // Made once the table's lock is released.
        core.map(Waker::from)
    }
}

impl Clone for Owner {
    fn clone(&self) -> Owner {
        if let Some(slot) = table().slot_mut(self.0).filter(|s| s.count != 0) {
            // Saturated, the slot is never freed: harmless, and past what memory allows.
            slot.count = slot.count.saturating_add(1);
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
        let Some(slot) = t.slot_mut(self.0).filter(|s| s.count != 0) else {
            return;
        };
        match slot.count {
            1 => {
                // The label goes with the slot (its kind is kept once for all the components
                // of that kind, so this only takes the slot back).
                *slot = Slot::free(free);
                t.free = self.0;
            }
            u32::MAX => {}
            _ => slot.count -= 1,
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
        let slots = table().len;
        assert!(
            slots < 1_000,
            "{slots} slots after 10,000 owners, one at a time"
        );
    }

    #[test]
    fn an_owner_is_four_bytes() {
        assert_eq!(std::mem::size_of::<Owner>(), 4);
    }

    /// Every component holds a slot for as long as it has boxes (two a connection): 24 bytes,
    /// its label's kind an index into the kinds kept once; and the table grows a chunk at a
    /// time, so that it holds at most a chunk's worth of slots never used.
    #[test]
    fn a_slot_is_small_and_the_table_grows_by_chunks() {
        assert_eq!(std::mem::size_of::<Slot>(), 24);
        let owners: Vec<Owner> = (0..10).map(|i| Owner::new(label("Chunked", i))).collect();
        let t = table();
        assert!(t.chunks.len() * CHUNK < t.len as usize + CHUNK);
        assert_eq!(
            t.kinds.iter().filter(|k| &***k == "Chunked").count(),
            1,
            "one kind, kept once"
        );
        drop(t);
        assert_eq!(&*owners[5].label(), "Chunked#5");
    }

    /// Kind names made on the fly do not grow the table past [`KIND_BYTES`]: a kind past it
    /// is not kept, and its labels show kind 0's name instead.
    #[test]
    fn the_kinds_kept_are_bounded_in_bytes() {
        let mut t = Table {
            chunks: Vec::new(),
            len: 0,
            free: NONE,
            kinds: vec!["(owner not kept)".into()],
            kind_index: None,
            kind_bytes: 0,
        };
        // 64 KiB each: sixteen fill the bound.
        let long = |i: usize| -> Arc<str> { format!("{i:05}{}", "x".repeat(65_531)).into() };
        let kept: Vec<u32> = (1..=17).map(|i| t.kind(&long(i))).collect();
        assert!(kept[..16].iter().all(|&k| k != 0), "{kept:?}");
        assert_eq!(kept[16], 0, "past 1 MiB of names: not kept");
        assert!(t.kind_bytes <= KIND_BYTES);
        assert_eq!(t.kind(&long(3)), kept[2], "a kept kind is found again");
    }
}
