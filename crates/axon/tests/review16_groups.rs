//! Stress tests of session 16's groups with no block of their own (review of `group16`): a
//! member's flags (WOKEN, INCOMING, LEFT) live in its component's word, its block keeps the
//! group's task's waker, newcomers wait in NEWCOMERS keyed by that waker's data pointer, and a
//! wake-up on the thread polling the group is found by the group's loop (POLLING).
//!
//! Every test runs its body on a thread of its own, bounded by a timeout; no sleeps
//! synchronise anything.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use axon::{link_refs, Component, Context, Group, Handle, Outbox, Scheduler};

mod support;
use support::{answerer, bounded};

fn multi() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn current() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Waits on `control` until a final message; nothing else.
fn waiter(name: &str) -> Component {
    let mut b = Component::build(name);
    let control = b.control();
    b.main(move |_cx| async move {
        while !control.recv().await.is_final() {}
        Ok(())
    })
}

fn link_pair(a: &Component, b: &Component) {
    for (src, dst) in [(a, b), (b, a)] {
        link_refs(
            &src.boxref("outbox").unwrap(),
            &dst.boxref("inbox").unwrap(),
        )
        .unwrap();
    }
}

/// Lost wake-ups across threads: 40 groups (a member that answers a lone task, beside an idle
/// member) bat numbers with 40 lone tasks on two workers at once, so members are woken from the
/// other worker while their group polls, just before and just after its scan.
#[test]
fn members_woken_from_another_worker_are_never_lost() {
    bounded("40 groups x 2,000 exchanges across two workers", 60, || {
        multi().block_on(async {
            let report = Scheduler::new()
                .run(async {
                    let mut firsts = Vec::new();
                    let mut idles = Vec::new();
                    for k in 0..40 {
                        let m = answerer(&format!("M{k}"), 1000);
                        let lone = answerer(&format!("L{k}"), 1000);
                        link_pair(&m, &lone);
                        let start: Outbox<u64> = lone.outbox("outbox").unwrap();
                        let hs = Group::new().with(m).with(waiter("Idle")).activate();
                        lone.activate();
                        start.send(0).await.unwrap();
                        firsts.push(hs[0].clone());
                        idles.push(hs[1].clone());
                    }
                    for (f, i) in firsts.iter().zip(&idles) {
                        f.join().await;
                        i.stop();
                    }
                })
                .await;
            assert!(report.is_ok(), "{:?}", report.failures);
            assert_eq!(report.components, 120);
        })
    });
}

/// A member woken before its task's first poll (a message sent from another thread the moment
/// the group is activated) is polled and gets it.
#[test]
fn a_member_woken_before_the_first_poll_gets_its_message() {
    bounded(
        "500 groups, each woken at once from another thread",
        60,
        || {
            multi().block_on(async {
                for round in 0..500 {
                    let mut b = Component::build("Receiver");
                    let inbox = b.inbox::<u64>("inbox", "one number");
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let r = b.main(move |_cx| async move {
                        let _ = tx.send(inbox.recv().await);
                        Ok(())
                    });
                    let mut sb = Component::build("Sender");
                    let out = sb.outbox::<u64>("outbox", "one number");
                    let s = sb.main(|_| async { Ok(()) });
                    link_refs(&s.boxref("outbox").unwrap(), &r.boxref("inbox").unwrap()).unwrap();
                    let sched = Scheduler::new();
                    let report = sched
                        .run(async move {
                            let hs = Group::new().with(r).with(waiter("Idle")).activate();
                            // From the other worker (or this one), racing the task's first poll.
                            let t = tokio::spawn(async move { out.try_send(round).is_ok() });
                            assert!(t.await.unwrap(), "an inbox of a new member has room");
                            let got = rx.await.unwrap();
                            assert_eq!(got, round);
                            hs[1].stop();
                            drop(s);
                        })
                        .await;
                    assert!(report.is_ok(), "{:?}", report.failures);
                }
            })
        },
    );
}

/// One run-flag per child: set when the child's routine runs; a second run is a bug.
fn child(flag: Arc<AtomicU8>) -> Component {
    Component::build("Child").main(move |_| async move {
        flag.fetch_add(1, Ordering::SeqCst);
        Ok(())
    })
}

/// Newcomers from another task (on the other worker) holding the member's moved `Context`,
/// racing with the member's end and its group's end: every child runs exactly once (in the
/// group if it joined in time, alone if it did not), and the run ends.
#[test]
fn children_beside_a_member_that_ends_run_exactly_once() {
    bounded(
        "200 rounds of 20 children beside an ending member",
        60,
        || {
            multi().block_on(async {
                for round in 0..200 {
                    let flags: Vec<Arc<AtomicU8>> = (0..20).map(|_| Arc::default()).collect();
                    let f2 = flags.clone();
                    let mut b = Component::build("Parent");
                    b.hosts_group();
                    let parent = b.main(move |cx: Context| async move {
                        // The context goes to another task; the parent ends at once.
                        tokio::spawn(async move {
                            for (k, f) in f2.into_iter().enumerate() {
                                let h = cx.activate_beside(child(f));
                                if k % 7 == 3 {
                                    tokio::task::yield_now().await;
                                }
                                drop(h);
                            }
                        });
                        Ok(())
                    });
                    let report = Scheduler::new()
                        .run(async move {
                            parent.activate();
                        })
                        .await;
                    assert!(report.is_ok(), "round {round}: {:?}", report.failures);
                    // The run may end before the spawned task activated the last children: wait
                    // for them on this scheduler-free runtime by their flags.
                    for (k, f) in flags.iter().enumerate() {
                        let mut spins = 0u64;
                        while f.load(Ordering::SeqCst) == 0 {
                            tokio::task::yield_now().await;
                            spins += 1;
                            assert!(spins < 50_000_000, "round {round}: child {k} never ran");
                        }
                    }
                    for (k, f) in flags.iter().enumerate() {
                        assert_eq!(
                            f.load(Ordering::SeqCst),
                            1,
                            "round {round}: child {k} ran twice"
                        );
                    }
                }
            })
        },
    );
}

/// Newcomers from a member during its own poll, the member ending in the same poll: each runs
/// once, in the member's task (it had not left when they were handed over).
#[test]
fn children_beside_from_a_member_that_ends_in_the_same_poll_run_once_in_its_task() {
    bounded(
        "300 parents, each activating 3 children then ending",
        60,
        || {
            multi().block_on(async {
                let ran_in = Arc::new(std::sync::Mutex::new(Vec::new()));
                let parents_task = Arc::new(std::sync::Mutex::new(Vec::new()));
                let report = Scheduler::new()
                    .run({
                        let ran_in = ran_in.clone();
                        let parents_task = parents_task.clone();
                        async move {
                            for p in 0..300usize {
                                let ran_in = ran_in.clone();
                                let parents_task = parents_task.clone();
                                let mut b = Component::build("Parent");
                                b.hosts_group();
                                b.main(move |cx| async move {
                                    parents_task.lock().unwrap().push((p, tokio::task::id()));
                                    for _ in 0..3 {
                                        let ran_in = ran_in.clone();
                                        cx.activate_beside(Component::build("Child").main(
                                            move |_| async move {
                                                ran_in.lock().unwrap().push((p, tokio::task::id()));
                                                Ok(())
                                            },
                                        ));
                                    }
                                    Ok(())
                                })
                                .activate();
                            }
                        }
                    })
                    .await;
                assert!(report.is_ok(), "{:?}", report.failures);
                assert_eq!(report.components, 1200);
                let parents: std::collections::HashMap<usize, tokio::task::Id> =
                    parents_task.lock().unwrap().iter().cloned().collect();
                let ran = ran_in.lock().unwrap();
                assert_eq!(ran.len(), 900, "every child runs once");
                for (p, id) in ran.iter() {
                    assert_eq!(parents[p], *id, "parent {p}'s child ran outside its task");
                }
            })
        },
    );
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Activates a `hosts_group` parent (on the current scheduler) that hands its context out and
/// then waits for a final control message; returns the context once the parent runs.
async fn parent_handing_out_its_context() -> Context {
    let (tx, rx) = tokio::sync::oneshot::channel::<Context>();
    let mut b = Component::build("Parent");
    b.hosts_group();
    let control = b.control();
    let parent = b.main(move |cx| async move {
        let _ = tx.send(cx);
        while !control.recv().await.is_final() {}
        Ok(())
    });
    let _h: Handle = parent.activate();
    rx.await.unwrap()
}

/// A newcomer handed to a group whose runtime then shuts down (the task dropped with the
/// newcomer still waiting in NEWCOMERS) is dropped with it, never run; a child activated
/// later beside the same member, on a new runtime, runs alone there.
#[test]
fn a_newcomer_of_a_dropped_task_is_dropped_and_a_later_child_runs_alone() {
    bounded("newcomers across a runtime's shutdown", 30, || {
        for round in 0..50 {
            let ran = Arc::new(AtomicBool::new(false));
            let dropped = Arc::new(AtomicBool::new(false));
            let rt1 = current();
            let cx = rt1.block_on(async {
                let cx = parent_handing_out_its_context().await;
                let (r, d) = (ran.clone(), DropFlag(dropped.clone()));
                cx.activate_beside(Component::build("Newcomer").main(move |_| async move {
                    let _d = d;
                    r.store(true, Ordering::SeqCst);
                    Ok(())
                }));
                // Back to the runtime's end with the newcomer not yet taken (current-thread:
                // the group's task has not run since).
                cx
            });
            drop(rt1);
            assert!(
                !ran.load(Ordering::SeqCst),
                "round {round}: the newcomer ran"
            );
            assert!(
                dropped.load(Ordering::SeqCst),
                "round {round}: the newcomer outlived its dropped task (kept in NEWCOMERS)"
            );
            let rt2 = current();
            let later = Arc::new(AtomicBool::new(false));
            rt2.block_on(async {
                let l = later.clone();
                let h = cx.activate_beside(Component::build("Later").main(move |_| async move {
                    l.store(true, Ordering::SeqCst);
                    Ok(())
                }));
                h.join().await;
            });
            assert!(
                later.load(Ordering::SeqCst),
                "round {round}: the later child ran"
            );
        }
    });
}

/// ROUNDS_PER_POLL: two members that wake each other for ever do not starve another task on a
/// current-thread runtime; stopping them ends them.
#[test]
fn members_waking_each_other_forever_do_not_starve_a_task() {
    bounded("a busy group beside a task on one thread", 30, || {
        current().block_on(async {
            let report = Scheduler::new()
                .run(async {
                    let a = answerer("A", u64::MAX);
                    let b = answerer("B", u64::MAX);
                    link_pair(&a, &b);
                    let start: Outbox<u64> = b.outbox("outbox").unwrap();
                    let hs = Group::new().with(a).with(b).activate();
                    start.send(0).await.unwrap();
                    let other = tokio::spawn(async {
                        for _ in 0..1000 {
                            tokio::task::yield_now().await;
                        }
                    });
                    other.await.unwrap();
                    for h in &hs {
                        h.stop();
                    }
                })
                .await;
            assert!(report.is_ok(), "{:?}", report.failures);
        })
    });
}

/// Stops `hs` in `order` and waits for each.
async fn stop_in(hs: &[Handle], order: &[usize]) {
    for &k in order {
        assert!(hs[k].stop());
        hs[k].join().await;
    }
}

/// Groups of 1, 2, 3 and 40 members (inline and rest slots), members ending in every kind of
/// order, with newcomers filling freed slots; all end, and the run counts each once.
#[test]
fn groups_of_every_size_end_in_any_order() {
    bounded("groups of 1, 2, 3, 40 ending in several orders", 60, || {
        multi().block_on(async {
            let mut seed = 0x2545_f491_4f6c_dd1du64;
            for n in [1usize, 2, 3, 40] {
                let mut orders: Vec<Vec<usize>> = vec![(0..n).collect(), (0..n).rev().collect(), {
                    let mut o: Vec<usize> = (0..n).filter(|k| k % 2 == 1).collect();
                    o.extend((0..n).filter(|k| k % 2 == 0));
                    o
                }];
                for _ in 0..5 {
                    let mut o: Vec<usize> = (0..n).collect();
                    for i in (1..n).rev() {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        o.swap(i, (seed % (i as u64 + 1)) as usize);
                    }
                    orders.push(o);
                }
                for order in orders {
                    let extra = Arc::new(AtomicUsize::new(0));
                    let e2 = extra.clone();
                    let report = Scheduler::new()
                        .run(async move {
                            let mut g = Group::new();
                            // The first member, once its stop arrives, adds two children beside
                            // it before it ends (freed slots reused, or the rest list grown).
                            let mut b = Component::build("First");
                            let control = b.control();
                            g.push(b.main(move |cx| async move {
                                while !control.recv().await.is_final() {}
                                for _ in 0..2 {
                                    let e = e2.clone();
                                    cx.activate_beside(Component::build("Late").main(
                                        move |_| async move {
                                            e.fetch_add(1, Ordering::SeqCst);
                                            Ok(())
                                        },
                                    ));
                                }
                                Ok(())
                            }));
                            for k in 1..n {
                                g.push(waiter(&format!("W{k}")));
                            }
                            let hs = g.activate();
                            stop_in(&hs, &order).await;
                        })
                        .await;
                    assert!(report.is_ok(), "n {n}: {:?}", report.failures);
                    assert_eq!(report.components, n + 2, "n {n}");
                    assert_eq!(
                        extra.load(Ordering::SeqCst),
                        2,
                        "n {n}: late children ran once"
                    );
                }
            }
        })
    });
}

/// A member that panics (caught in its life) while another member of the group, on the same
/// thread, wakes a third: the third is still polled (the POLLING mark is the group's own and
/// the loop looks again), and the group goes on.
#[test]
fn a_panicking_member_does_not_lose_a_wake_up_on_its_thread() {
    bounded("panics inside a group's poll", 30, || {
        current().block_on(async {
            for _ in 0..100 {
                let mut pb = Component::build("Panicker");
                let pin = pb.inbox::<u64>("inbox", "a number, then panic");
                let panicker = pb.main(move |_| async move {
                    pin.recv().await;
                    panic!("review16: a member panics");
                });
                let mut wb = Component::build("Waker");
                let wout = wb.outbox::<u64>("outbox", "to the panicker");
                let wout2 = wb.outbox::<u64>("other", "to the receiver");
                let waker_c = wb.main(move |_| async move {
                    wout.send(1).await?;
                    wout2.send(2).await?;
                    Ok(())
                });
                let mut rb = Component::build("Receiver");
                let rin = rb.inbox::<u64>("inbox", "one number");
                let receiver = rb.main(move |_| async move {
                    assert_eq!(rin.recv().await, 2);
                    Ok(())
                });
                link_refs(
                    &waker_c.boxref("outbox").unwrap(),
                    &panicker.boxref("inbox").unwrap(),
                )
                .unwrap();
                link_refs(
                    &waker_c.boxref("other").unwrap(),
                    &receiver.boxref("inbox").unwrap(),
                )
                .unwrap();
                let report = Scheduler::new()
                    .run(async move {
                        Group::new()
                            .with(panicker)
                            .with(receiver)
                            .with(waker_c)
                            .activate();
                    })
                    .await;
                assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
                assert_eq!(report.components, 3);
            }
        })
    });
}

/// A child activated beside a member from a thread with no runtime, while the run runs,
/// starts on the run's runtime (§10). It went to the scheduler's pending list, which only
/// `Scheduler::run` empties, once, after its setup: activated mid-run, the child never
/// started, and the run never ended (review16's finding; fails on 15d96c6 and on group16).
#[test]
fn a_child_beside_from_a_thread_with_no_runtime_starts() {
    bounded("a child activated beside from a plain thread", 20, || {
        multi().block_on(async {
            let ran = Arc::new(AtomicBool::new(false));
            let r = ran.clone();
            let mut b = Component::build("Parent");
            b.hosts_group();
            let parent = b.main(move |cx: Context| async move {
                let (tx, rx) = tokio::sync::oneshot::channel();
                std::thread::spawn(move || {
                    let h =
                        cx.activate_beside(Component::build("Child").main(move |_| async move {
                            r.store(true, Ordering::SeqCst);
                            Ok(())
                        }));
                    let _ = tx.send(h);
                });
                let h = rx.await.unwrap();
                h.join().await;
                Ok(())
            });
            let sched = Scheduler::new();
            let run = sched.run(async move {
                parent.activate();
            });
            let ended = tokio::time::timeout(std::time::Duration::from_secs(5), run).await;
            assert!(
                ended.is_ok(),
                "the run did not end: the child never started"
            );
            assert!(ran.load(Ordering::SeqCst));
        })
    });
}

/// Newcomers handed over from a plain thread (in the runtime's context) while the runtime
/// shuts down and drops the group's task: each child runs at most once, and none is kept for
/// ever in NEWCOMERS (every child's routine is dropped, run or not, once all is over).
#[test]
fn newcomers_racing_a_runtime_shutdown_run_at_most_once_and_are_never_kept() {
    bounded("30 shutdowns raced by 100 newcomers each", 60, || {
        for round in 0..30 {
            let rt = multi();
            let cx = rt.block_on(async { parent_handing_out_its_context().await });
            let handle = rt.handle().clone();
            let runs: Vec<Arc<AtomicU8>> = (0..100).map(|_| Arc::default()).collect();
            let drops: Vec<Arc<AtomicBool>> = (0..100).map(|_| Arc::default()).collect();
            let (r2, d2) = (runs.clone(), drops.clone());
            let go = Arc::new(AtomicBool::new(false));
            let go2 = go.clone();
            let t = std::thread::spawn(move || {
                let _enter = handle.enter();
                for (r, d) in r2.into_iter().zip(d2) {
                    let d = DropFlag(d);
                    let _ =
                        cx.activate_beside(Component::build("Child").main(move |_| async move {
                            let _d = d;
                            r.fetch_add(1, Ordering::SeqCst);
                            Ok(())
                        }));
                    go2.store(true, Ordering::SeqCst);
                }
                cx
            });
            while !go.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
            drop(rt);
            let cx = t.join().unwrap();
            drop(cx);
            for k in 0..100 {
                assert!(
                    runs[k].load(Ordering::SeqCst) <= 1,
                    "round {round}: child {k} ran twice"
                );
                assert!(
                    drops[k].load(Ordering::SeqCst),
                    "round {round}: child {k}'s routine is still kept (never run, never dropped)"
                );
            }
        }
    });
}

/// Same-thread and cross-thread wake-ups in one group at once: two members bat a number
/// between them (woken on the group's own thread, found by its loop through POLLING) while a
/// third bats with a lone task on the other worker (woken through the runtime); 30 groups.
#[test]
fn wakeups_within_the_group_and_from_outside_mix_without_loss() {
    bounded(
        "30 groups of three, 1,000 exchanges on each pair",
        60,
        || {
            multi().block_on(async {
                let report = Scheduler::new()
                    .run(async {
                        let mut hs = Vec::new();
                        for k in 0..30 {
                            let a = answerer(&format!("A{k}"), 1000);
                            let b = answerer(&format!("B{k}"), 1000);
                            link_pair(&a, &b);
                            let c = answerer(&format!("C{k}"), 1000);
                            let lone = answerer(&format!("L{k}"), 1000);
                            link_pair(&c, &lone);
                            let s1: Outbox<u64> = b.outbox("outbox").unwrap();
                            let s2: Outbox<u64> = lone.outbox("outbox").unwrap();
                            hs.extend(Group::new().with(a).with(b).with(c).activate());
                            hs.push(lone.activate());
                            s1.send(0).await.unwrap();
                            s2.send(0).await.unwrap();
                        }
                        for h in &hs {
                            h.join().await;
                        }
                    })
                    .await;
                assert!(report.is_ok(), "{:?}", report.failures);
                assert_eq!(report.components, 120);
            })
        },
    );
}
