//! Review of session 15's per-kind records (`spec::Kind`, branch trim15): an outbox's
//! descriptor (name, type, signal, byte bound) lives in the record of its component's kind,
//! shared by the components built alike. Components of one kind name built differently must
//! each still see their own boxes; sends, links and bounds must stay per component, from many
//! threads at once.
//!
//! Every test runs its body on a thread of its own and fails if it has not finished within a
//! bound. No sleeps synchronise anything.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use axon::{link_refs, unlink, BoxDecl, Component, Direction, Inbox, Outbox, TrySendError};

mod support;
use support::bounded;

type Bytes = Vec<u8>;

/// The boxes a component should list: (name, direction, carries `Bytes`).
type Want = Vec<(&'static str, Direction, bool)>;

/// The ways "Twin" is built: all under one kind name.
fn twin(variant: usize) -> (Component, Outbox<Bytes>, Want) {
    let mut b = Component::build("Twin");
    // (name, direction, carries Bytes)
    let mut want = Vec::new();
    let out = match variant {
        // inbox, outbox, signal
        0 => {
            let _ = b.inbox::<u64>("inbox", "in");
            let o = b.outbox::<Bytes>("outbox", "out");
            b.signal();
            want.extend([
                ("inbox", Direction::In, false),
                ("outbox", Direction::Out, true),
                ("signal", Direction::Out, false),
            ]);
            o
        }
        // outbox first
        1 => {
            let o = b.outbox::<Bytes>("outbox", "out");
            let _ = b.inbox::<u64>("inbox", "in");
            b.signal();
            want.extend([
                ("outbox", Direction::Out, true),
                ("inbox", Direction::In, false),
                ("signal", Direction::Out, false),
            ]);
            o
        }
        // the same place, another type first, then ours
        2 => {
            let _ = b.inbox::<u64>("inbox", "in");
            let _ = b.outbox::<String>("strings", "out");
            let o = b.outbox::<Bytes>("outbox", "out");
            want.extend([
                ("inbox", Direction::In, false),
                ("strings", Direction::Out, false),
                ("outbox", Direction::Out, true),
            ]);
            o
        }
        // as 0, bounded in bytes on this handle only
        3 => {
            let _ = b.inbox::<u64>("inbox", "in");
            let o = b.outbox::<Bytes>("outbox", "out").limit_bytes(10);
            b.signal();
            want.extend([
                ("inbox", Direction::In, false),
                ("outbox", Direction::Out, true),
                ("signal", Direction::Out, false),
            ]);
            o
        }
        // as 0 with a rare outbox and a second, rare, inbox
        _ => {
            let _ = b.inbox::<u64>("inbox", "in");
            let o = b.outbox::<Bytes>("outbox", "out");
            b.rare_outbox_from::<Bytes>(BoxDecl::new("rare", "rare out"));
            b.rare_inbox_from::<u64>(BoxDecl::new("rarein", "rare in"));
            b.signal();
            want.extend([
                ("inbox", Direction::In, false),
                ("outbox", Direction::Out, true),
                ("rare", Direction::Out, true),
                ("rarein", Direction::In, false),
                ("signal", Direction::Out, false),
            ]);
            o
        }
    };
    (b.main(|_| async { Ok(()) }), out, want)
}

const VARIANTS: usize = 5;

fn check_boxes(c: &Component, want: &[(&'static str, Direction, bool)]) {
    let got: Vec<_> = c
        .boxes()
        .map(|s| {
            (
                s.name.to_string(),
                s.direction,
                s.message_type == std::any::type_name::<Bytes>(),
            )
        })
        .collect();
    let want: Vec<_> = want
        .iter()
        .map(|(n, d, t)| (n.to_string(), *d, *t))
        .collect();
    assert_eq!(got, want, "{}", c.label());
    for (n, d, t) in &want {
        let r = c.boxref(n).unwrap();
        let id = r.id();
        assert_eq!(&*id.name, n.as_str());
        assert_eq!(id.direction, *d);
        assert_eq!(&*id.owner, c.label().to_string().as_str());
        assert_eq!(id.message_type == std::any::type_name::<Bytes>(), *t, "{n}");
        if *d == Direction::Out {
            assert_eq!(r.outbox::<Bytes>().is_some(), *t, "{n} typed");
        }
    }
}

/// Built differently under one name, each component lists its own boxes, in its own order,
/// with its own types, and a byte bound set on one handle binds that outbox only.
#[test]
fn one_kind_name_built_five_ways_each_sees_its_own_boxes_and_bounds() {
    bounded("five ways", 60, || {
        // Interleaved, twice over, so that each way finds records made by the others.
        let mut all = Vec::new();
        for round in 0..2 {
            for v in 0..VARIANTS {
                let (c, out, want) = twin((v + round) % VARIANTS);
                all.push(((v + round) % VARIANTS, c, out, want));
            }
        }
        for (v, c, out, want) in &all {
            check_boxes(c, want);
            // Unlinked sends are kept; the bound of variant 3 (10 bytes) refuses the third.
            let mut kept = 0;
            for _ in 0..3 {
                match out.try_send(vec![0; 8]) {
                    Ok(()) => kept += 1,
                    Err(TrySendError::Unlinked(_)) | Err(TrySendError::Full(_)) => {}
                    Err(e) => panic!("{e:?}"),
                }
            }
            assert_eq!(
                kept,
                if *v == 3 { 2 } else { 3 },
                "variant {v}: {}",
                c.label()
            );
            // Still the same boxes once the outbox has a store of its own.
            check_boxes(c, want);
            // Linked, what was kept arrives, then later sends.
            let a = Inbox::<Bytes>::standalone("a", 64);
            link_refs(&c.boxref("outbox").unwrap(), &a.boxref()).unwrap();
            out.try_send(vec![1; 3]).unwrap();
            let mut n = 0;
            while let Some(m) = a.try_recv() {
                n += 1;
                if n == kept + 1 {
                    assert_eq!(m, vec![1; 3]);
                }
            }
            assert_eq!(n, kept + 1, "variant {v}");
            check_boxes(c, want);
        }
    });
}

/// A byte bound set on a linked outbox of one component, then unlinked: it binds that
/// outbox's later keeping; a twin built alike before and after is not bound.
#[test]
fn a_bound_set_on_one_linked_handle_binds_that_handle_only() {
    bounded("bound while linked", 30, || {
        let (c, out, _) = twin(0);
        let a = Inbox::<Bytes>::standalone("a", 64);
        link_refs(&c.boxref("outbox").unwrap(), &a.boxref()).unwrap();
        let (before, before_out, _) = twin(0);
        let out = out.limit_bytes(10);
        let (after, after_out, _) = twin(0);
        unlink(&c.boxref("outbox").unwrap());
        let sent = |o: &Outbox<Bytes>| (0..3).filter(|_| o.try_send(vec![0; 8]).is_ok()).count();
        assert_eq!(sent(&out), 2, "the bounded one");
        assert_eq!(sent(&before_out), 3, "built before");
        assert_eq!(sent(&after_out), 3, "built after");
        drop((before, after));
    });
}

/// Many threads build components of one kind name in every way, send (some before linking,
/// some after), link, relink and bound them, all at once: every message arrives once, in
/// order, at the inbox its outbox was linked to.
#[test]
fn twins_built_and_used_from_many_threads_lose_and_duplicate_nothing() {
    bounded("twins from many threads", 120, || {
        const THREADS: usize = 4;
        const EACH: usize = 400;
        let go = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (go, ready) = (go.clone(), ready.clone());
                std::thread::spawn(move || {
                    ready.fetch_add(1, Ordering::AcqRel);
                    while !go.load(Ordering::Acquire) {
                        std::thread::yield_now();
                    }
                    let mut kept = Vec::new();
                    for i in 0..EACH {
                        let v = (i + t) % VARIANTS;
                        let (c, out, want) = twin(v);
                        let out = if i % 7 == 0 {
                            out.limit_bytes(1 << 20)
                        } else {
                            out
                        };
                        let early = i % 3;
                        for k in 0..early {
                            out.try_send(vec![k as u8; 4]).unwrap();
                        }
                        let a = Inbox::<Bytes>::standalone("a", 64);
                        let r = c.boxref("outbox").unwrap();
                        link_refs(&r, &a.boxref()).unwrap();
                        for k in early..5 {
                            out.try_send(vec![k as u8; 4]).unwrap();
                        }
                        let b = Inbox::<Bytes>::standalone("b", 64);
                        unlink(&r);
                        link_refs(&r, &b.boxref()).unwrap();
                        for k in 5..8 {
                            out.try_send(vec![k as u8; 4]).unwrap();
                        }
                        let got_a: Vec<u8> =
                            std::iter::from_fn(|| a.try_recv()).map(|m| m[0]).collect();
                        let got_b: Vec<u8> =
                            std::iter::from_fn(|| b.try_recv()).map(|m| m[0]).collect();
                        assert_eq!(got_a, (0..5).collect::<Vec<u8>>(), "variant {v} #{i}");
                        assert_eq!(got_b, (5..8).collect::<Vec<u8>>(), "variant {v} #{i}");
                        check_boxes(&c, &want);
                        if i % 5 == 0 {
                            kept.push(c); // some live on, sharing records with later ones
                        }
                    }
                    kept.len()
                })
            })
            .collect();
        while ready.load(Ordering::Acquire) < THREADS {
            std::thread::yield_now();
        }
        go.store(true, Ordering::Release);
        for t in threads {
            t.join().unwrap();
        }
    });
}

/// Components of one kind linked to each other by name, sent to, relinked and asked for
/// their labels, ids and box lists from several threads: no deadlock between the block's
/// lock (which now also guards the kind, read by `name()` and `label()`), the kinds' map and
/// the inboxes' locks.
#[test]
fn names_labels_and_sends_across_twins_from_many_threads_do_not_deadlock() {
    bounded("labels vs sends", 120, || {
        let (x, xo, _) = twin(0);
        let (y, yo, _) = twin(1);
        let sink = Inbox::<Bytes>::standalone("sink", 1 << 16);
        // A component is Send, not Sync: shared behind a lock of the test's own.
        let x = Arc::new(std::sync::Mutex::new(x));
        let y = Arc::new(std::sync::Mutex::new(y));
        let out =
            |c: &Arc<std::sync::Mutex<Component>>| c.lock().unwrap().boxref("outbox").unwrap();
        link_refs(&out(&x), &sink.boxref()).unwrap();
        link_refs(&out(&y), &sink.boxref()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let mut ts = Vec::new();
        for (o, c) in [(xo, x.clone()), (yo, y.clone())] {
            let (stop, sent) = (stop.clone(), sent.clone());
            ts.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    if o.try_send(vec![0; 1]).is_ok() {
                        sent.fetch_add(1, Ordering::AcqRel);
                    }
                    let _ = (
                        o.id(),
                        o.is_linked(),
                        o.buffered(),
                        c.lock().unwrap().name().len(),
                    );
                }
            }));
        }
        for c in [x.clone(), y.clone()] {
            let (stop, to) = (stop.clone(), sink.boxref());
            ts.push(std::thread::spawn(move || {
                let mut n = 0usize;
                while !stop.load(Ordering::Acquire) {
                    let r = out(&c);
                    unlink(&r);
                    n += c.lock().unwrap().boxes().count();
                    link_refs(&r, &to).unwrap();
                    let g = c.lock().unwrap();
                    n += g.boxes().count() + g.label().to_string().len();
                    let _ = format!("{:?}", *g);
                    drop(g);
                    let _ = r.linked_to();
                }
                assert!(n > 0);
            }));
        }
        let mut received = 0;
        for _ in 0..20_000 {
            while sink.try_recv().is_some() {
                received += 1;
            }
            std::thread::yield_now();
        }
        stop.store(true, Ordering::Release);
        for t in ts {
            t.join().unwrap();
        }
        while sink.try_recv().is_some() {
            received += 1;
        }
        let buffered = |c: &Arc<std::sync::Mutex<Component>>| {
            let c = c.lock().unwrap();
            c.outbox::<Bytes>("outbox").unwrap().buffered()
        };
        let kept = buffered(&x) + buffered(&y);
        assert_eq!(
            received + kept,
            sent.load(Ordering::Acquire),
            "lost or duplicated"
        );
    });
}
