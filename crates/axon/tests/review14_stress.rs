//! Stress tests of the links of outboxes kept by their component's table (session 14's
//! review of "a linked outbox keeps no store": several were reproductions of bugs it found,
//! and guard against them now).
//!
//! Every test runs its body on a thread of its own and fails if it has not finished within a
//! bound (a deadlock fails the test instead of stalling the suite). No sleeps synchronise
//! anything: threads meet on atomics.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::Duration;

use axon::{link_refs, unlink, Component, Control, Inbox, Outbox, TrySendError};

mod support;
use support::bounded;

/// A component (never run) with one outbox of `T` called `name`.
fn sender<T: axon::Message>(kind: &str, name: &str) -> (Component, Outbox<T>) {
    let mut b = Component::build(kind);
    let out = b.outbox::<T>(name, "review14");
    let c = b.main(|_| async { Ok(()) });
    (c, out)
}

/// Spins `n` times (a delay that sweeps the race's window, no sleep).
fn spin(n: usize) {
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

/// Two threads that meet each round on an atomic counter, then run their step.
struct Meet {
    arrived: AtomicUsize,
}

impl Meet {
    fn wait(&self, round: usize) {
        self.arrived.fetch_add(1, Ordering::AcqRel);
        while self.arrived.load(Ordering::Acquire) < 2 * (round + 1) {
            // Two cores shared with other work: spinning alone could starve the other side.
            std::thread::yield_now();
        }
    }
}

/// §4: "each message goes to exactly one destination, the one the source was linked to when
/// the message was queued". A final `Control` on an outbox that is not `signal` never takes
/// the fast path: its slow path must hold the table's lock until the push is done, or an
/// unlink made in between returns, the unlinker drains the old inbox and retires it, and the
/// message lands there after all: lost, though `force_send` said Ok.
#[test]
fn a_final_sent_while_the_outbox_is_unlinked_never_lands_in_the_old_inbox() {
    bounded("final vs unlink", 120, || {
        const ROUNDS: usize = 2_000;
        let (hand_tx, hand_rx) = channel::<(Outbox<Control>, Arc<AtomicBool>)>();
        let (done_tx, done_rx) = channel::<()>();
        let t = std::thread::spawn(move || {
            for _ in 0..ROUNDS {
                let (out, stop) = hand_rx.recv().unwrap();
                while !stop.load(Ordering::Acquire) {
                    out.force_send(Control::producer_finished()).unwrap();
                }
                done_tx.send(()).unwrap();
            }
        });
        let mut late = 0;
        let mut sent = 0;
        for _ in 0..ROUNDS {
            let (c, out) = sender::<Control>("FinalSender", "out");
            let r = c.boxref("out").unwrap();
            let a = Inbox::<Control>::standalone("a", 1 << 20);
            link_refs(&r, &a.boxref()).unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            hand_tx.send((out.clone(), stop.clone())).unwrap();
            // The sender is busy: unlink it from `a` mid-stream.
            while a.len() < 16 {
                std::thread::yield_now();
            }
            unlink(&r);
            // What `a` holds now is all a consumer retired at this point would ever get.
            let before = a.len();
            stop.store(true, Ordering::Release);
            done_rx.recv().unwrap();
            let after = a.len();
            sent += after + out.buffered();
            if after > before {
                late += 1;
            }
        }
        t.join().unwrap();
        assert_eq!(
            late, 0,
            "in {late} of {ROUNDS} rounds a final reached the inbox after the unlink returned \
             ({sent} sent)"
        );
    });
}

/// The same gap for data: an outbox with no store of its own, not linked when the send's fast
/// path looks, linked when its slow path looks, unlinked before its push.
#[test]
fn a_send_racing_a_link_and_an_unlink_never_lands_in_the_old_inbox() {
    bounded("data vs link+unlink", 120, || {
        const ROUNDS: usize = 100_000;
        let meet = Arc::new(Meet {
            arrived: AtomicUsize::new(0),
        });
        let (hand_tx, hand_rx) = channel::<Outbox<u64>>();
        let (done_tx, done_rx) = channel::<bool>();
        let t = {
            let meet = meet.clone();
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    let out = hand_rx.recv().unwrap();
                    meet.wait(round);
                    spin(round % 97);
                    let ok = out.try_send(7).is_ok();
                    done_tx.send(ok).unwrap();
                }
            })
        };
        let mut late = 0;
        for round in 0..ROUNDS {
            let (c, out) = sender::<u64>("DataSender", "out");
            let r = c.boxref("out").unwrap();
            let a = Inbox::<u64>::standalone("a", 8);
            hand_tx.send(out.clone()).unwrap();
            meet.wait(round);
            link_refs(&r, &a.boxref()).unwrap();
            unlink(&r);
            let before = a.len();
            let ok = done_rx.recv().unwrap();
            assert!(ok);
            if a.len() > before {
                late += 1;
            }
        }
        t.join().unwrap();
        assert_eq!(
            late, 0,
            "{late} of {ROUNDS} sends reached the inbox after the unlink"
        );
    });
}

/// Several senders on clones of one outbox (a child's), through a passthrough (the parent's
/// outbox, a store of its own), while one thread moves the parent's link between two inboxes
/// and another moves the child's link between the parent and a third inbox. Every message
/// arrives exactly once, and each sender's messages arrive in order in each inbox.
#[test]
fn many_senders_through_a_passthrough_relinked_at_both_hops_lose_nothing() {
    bounded("many senders, both hops relinked", 120, || {
        const SENDERS: u64 = 3;
        const N: u64 = 20_000;
        let (child, out) = sender::<(u64, u64)>("Child", "outbox");
        let (parent, _pout) = sender::<(u64, u64)>("Parent", "outbox");
        let big = 1 << 22;
        let (a, b, z) = (
            Inbox::<(u64, u64)>::standalone("a", big),
            Inbox::<(u64, u64)>::standalone("b", big),
            Inbox::<(u64, u64)>::standalone("z", big),
        );
        let (cr, pr) = (
            child.boxref("outbox").unwrap(),
            parent.boxref("outbox").unwrap(),
        );
        link_refs(&pr, &a.boxref()).unwrap();
        link_refs(&cr, &pr).unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        let senders: Vec<_> = (0..SENDERS)
            .map(|s| {
                let (out, done) = (out.clone(), done.clone());
                std::thread::spawn(move || {
                    for i in 0..N {
                        let mut m = (s, i);
                        loop {
                            match out.try_send(m) {
                                Ok(()) => break,
                                Err(TrySendError::Unlinked(back) | TrySendError::Full(back)) => {
                                    m = back;
                                    std::thread::yield_now();
                                }
                                Err(TrySendError::Closed(_)) => panic!("closed"),
                            }
                        }
                    }
                    done.fetch_add(1, Ordering::AcqRel);
                })
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let child_mover = {
            let (cr, pr, zr, stop) = (cr.clone(), pr.clone(), z.boxref(), stop.clone());
            std::thread::spawn(move || {
                let mut k = 0;
                while !stop.load(Ordering::Acquire) {
                    unlink(&cr);
                    let to = if k % 2 == 0 { &zr } else { &pr };
                    link_refs(&cr, to).unwrap();
                    k += 1;
                }
                k
            })
        };
        let targets = [a.boxref(), b.boxref()];
        let mut switches = 0;
        while done.load(Ordering::Acquire) < SENDERS as usize {
            unlink(&pr);
            link_refs(&pr, &targets[(switches + 1) % 2]).unwrap();
            switches += 1;
        }
        for s in senders {
            s.join().unwrap();
        }
        stop.store(true, Ordering::Release);
        let moves = child_mover.join().unwrap();
        // Whatever is still kept on the way moves on once both hops are linked.
        unlink(&cr);
        link_refs(&cr, &z.boxref()).unwrap();
        let mut all = HashSet::new();
        for (name, inbox) in [("a", &a), ("b", &b), ("z", &z)] {
            let mut last = vec![None; SENDERS as usize];
            while let Some((s, i)) = inbox.try_recv() {
                let l = &mut last[s as usize];
                assert!(
                    l.is_none_or(|l| l < i),
                    "{name}: sender {s} {i} after {l:?}"
                );
                *l = Some(i);
                assert!(all.insert((s, i)), "{name}: ({s}, {i}) twice");
            }
        }
        let kept = parent.boxref("outbox").unwrap().queued();
        assert_eq!(
            all.len() as u64 + kept as u64,
            SENDERS * N,
            "{switches} parent switches, {moves} child moves, {kept} kept in the parent"
        );
    });
}

/// Two components whose outboxes feed each other's inboxes, sent to from four threads while
/// two more relink both, read the links and list the boxes (every path that takes a table's
/// lock): no deadlock, and nothing lost.
#[test]
fn cross_linked_components_sent_and_relinked_from_many_threads_do_not_deadlock() {
    bounded("cross-linked", 120, || {
        const N: u64 = 20_000;
        let mk = |kind: &str| {
            let mut b = Component::build(kind);
            let inbox = b.inbox_with_capacity::<u64>("inbox", "in", 1 << 22);
            let out = b.outbox::<u64>("outbox", "out");
            let spare = b.outbox::<u64>("spare", "a passthrough target");
            let c = b.main(|_| async { Ok(()) });
            (c, inbox, out, spare)
        };
        let (x, xin, xout, _xs) = mk("X");
        let (y, yin, yout, _ys) = mk("Y");
        link_refs(&x.boxref("outbox").unwrap(), &y.boxref("inbox").unwrap()).unwrap();
        link_refs(&y.boxref("outbox").unwrap(), &x.boxref("inbox").unwrap()).unwrap();
        // X's spare forwards into X's own inbox (a store of its own, linked to).
        link_refs(&x.boxref("spare").unwrap(), &x.boxref("inbox").unwrap()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for out in [xout.clone(), xout.clone(), yout.clone(), yout.clone()] {
            threads.push(std::thread::spawn(move || {
                for i in 0..N {
                    let mut m = i;
                    while let Err(e) = out.try_send(m) {
                        m = match e {
                            TrySendError::Unlinked(b) | TrySendError::Full(b) => b,
                            TrySendError::Closed(_) => panic!("closed"),
                        };
                        std::thread::yield_now();
                    }
                }
            }));
        }
        let ends = [
            (
                x.boxref("outbox").unwrap(),
                x.boxref("spare").unwrap(),
                y.boxref("inbox").unwrap(),
                xout,
            ),
            (
                y.boxref("outbox").unwrap(),
                y.boxref("spare").unwrap(),
                x.boxref("inbox").unwrap(),
                yout,
            ),
        ];
        let relinkers: Vec<_> = ends
            .into_iter()
            .enumerate()
            .map(|(k, (out, spare, to, handle))| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Acquire) {
                        unlink(&out);
                        // Through its own spare (outbox -> outbox) every other time.
                        let dst = if k == 0 && n % 2 == 0 { &spare } else { &to };
                        let _ = link_refs(&out, dst);
                        let _ = out.linked_to();
                        let _ = (handle.is_linked(), handle.buffered(), handle.id());
                        n += 1;
                    }
                    // Left linked to the other's inbox.
                    unlink(&out);
                    link_refs(&out, &to).unwrap();
                    n
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        stop.store(true, Ordering::Release);
        for r in relinkers {
            r.join().unwrap();
        }
        // X's spare, when it was X's outbox's target and then unlinked from it, may keep some.
        let got = xin.len() + yin.len();
        assert_eq!(got as u64, 4 * N, "every message in an inbox");
    });
}

/// Concurrent opposite links between two outboxes with no store of their own (P -> Q and
/// Q -> P, both passthroughs): never both made (a loop every send would follow for ever).
#[test]
fn opposite_links_between_two_outboxes_made_at_once_never_close_a_loop() {
    bounded("opposite links", 120, || {
        for _ in 0..5_000 {
            let (p, pout) = sender::<u64>("P", "outbox");
            let (q, _qout) = sender::<u64>("Q", "outbox");
            let (pr, qr) = (p.boxref("outbox").unwrap(), q.boxref("outbox").unwrap());
            let t = {
                let (pr, qr) = (pr.clone(), qr.clone());
                std::thread::spawn(move || link_refs(&qr, &pr).is_ok())
            };
            let mine = link_refs(&pr, &qr).is_ok();
            let theirs = t.join().unwrap();
            assert!(!(mine && theirs), "both links made: a loop");
            // A send ends (kept, or delivered nowhere) rather than going round for ever.
            let _ = pout.try_send(1);
        }
    });
}

/// Messages kept on the way are freed with the boxes: no cycle through a component's table
/// keeps them (an outbox kept by the table linked to its own component's inbox; a passthrough
/// into its own outbox; a final kept on `signal`).
#[test]
fn kept_messages_are_freed_when_everything_is_dropped() {
    static LIVE: AtomicUsize = AtomicUsize::new(0);
    struct Counted;
    impl Counted {
        fn new() -> Self {
            LIVE.fetch_add(1, Ordering::AcqRel);
            Counted
        }
    }
    impl Drop for Counted {
        fn drop(&mut self) {
            LIVE.fetch_sub(1, Ordering::AcqRel);
        }
    }
    bounded("drops", 60, || {
        {
            let mut b = Component::build("Loop");
            let inbox = b.inbox::<Counted>("inbox", "in");
            let out = b.outbox::<Counted>("outbox", "out");
            let spare = b.outbox::<Counted>("spare", "out");
            let c = b.main(|_| async { Ok(()) });
            out.try_send(Counted::new()).map_err(|_| ()).unwrap();
            link_refs(&c.boxref("outbox").unwrap(), &c.boxref("inbox").unwrap()).unwrap();
            out.try_send(Counted::new()).map_err(|_| ()).unwrap();
            link_refs(&c.boxref("spare").unwrap(), &c.boxref("outbox").unwrap()).unwrap();
            spare.try_send(Counted::new()).map_err(|_| ()).unwrap();
            unlink(&c.boxref("outbox").unwrap());
            spare.try_send(Counted::new()).map_err(|_| ()).unwrap();
            assert_eq!(inbox.len(), 3);
            assert_eq!(LIVE.load(Ordering::Acquire), 4);
        }
        assert_eq!(LIVE.load(Ordering::Acquire), 0, "a cycle kept them");
    });
}

/// A waker that sends on an outbox when woken (once).
struct SendingWaker {
    out: Outbox<u64>,
    sent: AtomicBool,
}

impl std::task::Wake for SendingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.sent.swap(true, Ordering::AcqRel) {
            let _ = self.out.try_send(99);
        }
    }
}

/// Tasks are woken once the locks a send took are released (§3's wake-ups), also for a send
/// from an outbox whose table entry is a store that forwards (its own store, linked; or a
/// parent's outbox it is linked to): a task woken while the sender's table lock is held could
/// not send on that component (a waker that does waits on the lock for ever).
#[test]
fn a_waker_woken_by_a_send_through_a_forwarding_store_can_send_on_that_component() {
    use std::future::Future;
    bounded("a waker that sends", 20, || {
        let (c, out) = sender::<u64>("WakeSender", "outbox");
        // Sent to while unlinked: a store of its own, which then forwards to `a`.
        out.try_send(1).unwrap();
        let a = Inbox::<u64>::standalone("a", 64);
        let b = Inbox::<u64>::standalone("b", 64);
        link_refs(&c.boxref("outbox").unwrap(), &a.boxref()).unwrap();
        assert_eq!(a.try_recv(), Some(1));
        // A task waits on `b`; its waker sends on the component's outbox.
        let waker = std::task::Waker::from(Arc::new(SendingWaker {
            out: out.clone(),
            sent: AtomicBool::new(false),
        }));
        let mut cx = std::task::Context::from_waker(&waker);
        let mut recv = std::pin::pin!(b.recv());
        assert!(recv.as_mut().poll(&mut cx).is_pending());
        // The outbox now goes to `b` through its own store.
        unlink(&c.boxref("outbox").unwrap());
        link_refs(&c.boxref("outbox").unwrap(), &b.boxref()).unwrap();
        out.try_send(2).unwrap();
        assert_eq!(b.try_recv(), Some(2));
        assert_eq!(b.try_recv(), Some(99), "the waker's send");
    });
}

/// A send waiting for room is woken when its outbox (no store of its own, linked straight to
/// a full inbox) is relinked, and when the parent's outbox it passes through is: it retries
/// along the new chain (§4). `ready` too.
#[test]
fn a_send_waiting_for_room_follows_a_relink_at_either_hop() {
    bounded("waiting sends and relinks", 60, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let t = Duration::from_secs(5);
            // Straight: the child's outbox, with no store, to a full `a`; relinked to `b`.
            let (c, out) = sender::<u64>("Waiter", "outbox");
            let (a, b) = (
                Inbox::<u64>::standalone("a", 1),
                Inbox::<u64>::standalone("b", 1),
            );
            let r = c.boxref("outbox").unwrap();
            link_refs(&r, &a.boxref()).unwrap();
            out.send(1).await.unwrap();
            let waiting = tokio::spawn({
                let out = out.clone();
                async move {
                    out.ready().await;
                    out.send(2).await
                }
            });
            tokio::task::yield_now().await;
            assert!(!waiting.is_finished());
            unlink(&r);
            link_refs(&r, &b.boxref()).unwrap();
            tokio::time::timeout(t, waiting)
                .await
                .expect("woken by the relink")
                .unwrap()
                .unwrap();
            assert_eq!((a.try_recv(), b.try_recv()), (Some(1), Some(2)));

            // Through a passthrough: child -> parent's outbox -> full `a`; the parent's outbox
            // relinked to `b`.
            let (child, out) = sender::<u64>("Child", "outbox");
            let (parent, _p) = sender::<u64>("Parent", "outbox");
            let pr = parent.boxref("outbox").unwrap();
            link_refs(&pr, &a.boxref()).unwrap();
            link_refs(&child.boxref("outbox").unwrap(), &pr).unwrap();
            out.send(3).await.unwrap();
            let waiting = tokio::spawn({
                let out = out.clone();
                async move { out.send(4).await }
            });
            tokio::task::yield_now().await;
            assert!(!waiting.is_finished());
            unlink(&pr);
            link_refs(&pr, &b.boxref()).unwrap();
            tokio::time::timeout(t, waiting)
                .await
                .expect("woken by the parent's relink")
                .unwrap()
                .unwrap();
            assert_eq!((a.try_recv(), b.try_recv()), (Some(3), Some(4)));
        });
    });
}

/// One way to a standalone inbox for a sender to send on without pause: the sender's outbox,
/// the inbox, the box whose unlink cuts the way, and what must live as long (the components).
type Way = (
    Outbox<u64>,
    Inbox<u64>,
    axon::BoxRef,
    Box<dyn std::any::Any + Send>,
);

/// §4: once `unlink` has returned, nothing sent reaches the old destination. `ROUNDS` rounds
/// of: `way` makes a way to an inbox, a thread sends on it without pause, the way is cut
/// while it sends; fails if in any round the inbox got something after the cut returned. A
/// send through a store that forwards is ordered with an unlink of that store only if the
/// send holds the store's lock until it has locked the next one (hand over hand).
fn nothing_lands_after_the_unlink(what: &'static str, way: fn() -> Way) {
    bounded(what, 120, move || {
        const ROUNDS: usize = 2_000;
        let (hand_tx, hand_rx) = channel::<(Outbox<u64>, Arc<AtomicBool>)>();
        let (done_tx, done_rx) = channel::<()>();
        let t = std::thread::spawn(move || {
            for _ in 0..ROUNDS {
                let (out, stop) = hand_rx.recv().unwrap();
                let mut i = 0;
                while !stop.load(Ordering::Acquire) {
                    // Kept by the outbox once it is unlinked, up to its capacity.
                    let _ = out.try_send(i);
                    i += 1;
                }
                done_tx.send(()).unwrap();
            }
        });
        let mut late = 0;
        for _ in 0..ROUNDS {
            let (out, a, cut, _keep) = way();
            let stop = Arc::new(AtomicBool::new(false));
            hand_tx.send((out.clone(), stop.clone())).unwrap();
            while a.len() < 16 {
                std::thread::yield_now();
            }
            unlink(&cut);
            let before = a.len();
            stop.store(true, Ordering::Release);
            done_rx.recv().unwrap();
            if a.len() > before {
                late += 1;
            }
        }
        t.join().unwrap();
        assert_eq!(
            late, 0,
            "{what}: in {late} of {ROUNDS} rounds a send reached the inbox after the unlink returned"
        );
    });
}

/// An outbox with a store of its own (it was sent to while not linked), linked to `a` and
/// unlinked while it sends.
#[test]
fn a_send_from_an_outbox_with_its_own_store_never_lands_after_the_unlink() {
    nothing_lands_after_the_unlink("own store vs unlink", || {
        let (c, out) = sender::<u64>("OwnSender", "out");
        // Sent to while not linked: a store of its own, which the link then goes through.
        out.try_send(u64::MAX).unwrap();
        let r = c.boxref("out").unwrap();
        let a = Inbox::<u64>::standalone("a", 1 << 20);
        link_refs(&r, &a.boxref()).unwrap();
        (out, a, r, Box::new(c))
    });
}

/// Through a passthrough out of a child: the child's outbox linked to its parent's outbox (a
/// store of its own), the parent's outbox unlinked from `a` while the child sends.
#[test]
fn a_send_through_a_passthrough_never_lands_after_the_parent_outbox_is_unlinked() {
    nothing_lands_after_the_unlink("passthrough vs unlink", || {
        let (child, out) = sender::<u64>("Child", "outbox");
        let (parent, _p) = sender::<u64>("Parent", "outbox");
        let pr = parent.boxref("outbox").unwrap();
        let a = Inbox::<u64>::standalone("a", 1 << 20);
        link_refs(&pr, &a.boxref()).unwrap();
        link_refs(&child.boxref("outbox").unwrap(), &pr).unwrap();
        (out, a, pr, Box::new((child, parent)))
    });
}

/// Through an inbox passed through to a child (inbox -> inbox, Axon's passthrough=1): an
/// outbox linked to a parent's inbox that forwards to `a`, the parent's inbox unlinked from
/// `a` while the outbox sends.
#[test]
fn a_send_through_an_inbox_passthrough_never_lands_after_it_is_unlinked() {
    nothing_lands_after_the_unlink("inbox passthrough vs unlink", || {
        let (src, out) = sender::<u64>("Source", "outbox");
        let mut b = Component::build("Parent");
        let inbox = b.inbox_with_capacity::<u64>("inbox", "passed on", 1 << 20);
        let parent = b.main(|_| async { Ok(()) });
        let pin = parent.boxref("inbox").unwrap();
        let a = Inbox::<u64>::standalone("a", 1 << 20);
        link_refs(&pin, &a.boxref()).unwrap();
        link_refs(&src.boxref("outbox").unwrap(), &pin).unwrap();
        (out, a, pin, Box::new((src, parent, inbox)))
    });
}
