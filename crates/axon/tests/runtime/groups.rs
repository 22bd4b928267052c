//! Component groups (docs/semantics.md §10): several components in one task, each still a
//! component in full: activation, run to completion, control and stop, failures per member,
//! the run's report, Ctrl-C's shutdown_all.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use crate::support::{answerer, collector, counter, idle, within};
use axon::{link_refs, Component, Control, FailureKind, Group, Inbox, Outbox, Scheduler};
use tokio::sync::oneshot;

/// `counter(n)` feeding a collector whose inbox holds `capacity`, linked data and signal.
fn counter_into_collector(
    n: u64,
    capacity: usize,
) -> (Component, Component, oneshot::Receiver<Vec<u64>>) {
    let producer = counter(n);
    let (consumer, got) = collector("Collector", capacity);
    for (src, dst) in [("outbox", "inbox"), ("signal", "control")] {
        link_refs(
            &producer.boxref(src).unwrap(),
            &consumer.boxref(dst).unwrap(),
        )
        .unwrap();
    }
    (producer, consumer, got)
}

/// §10 (activation): a group's members are linked before they run, all start on activation,
/// and all run in one task; a component activated alone has a task of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_run_in_one_task_and_a_lone_component_in_its_own() {
    within("a group of two and a lone component", async {
        let (a, a_task) = idle("A");
        let (b, b_task) = idle("B");
        let (lone, lone_task) = idle("Lone");
        let sched = Scheduler::new();
        let report = sched
            .run(async {
                let hs = Group::new().with(a).with(b).activate();
                let l = lone.activate();
                let (ta, tb, tl) = (
                    a_task.await.unwrap(),
                    b_task.await.unwrap(),
                    lone_task.await.unwrap(),
                );
                assert_eq!(ta, tb, "both members are polled by one task");
                assert_ne!(ta, tl, "a lone component has its own task");
                for h in hs.iter().chain([&l]) {
                    assert!(h.stop());
                }
            })
            .await;
        assert!(report.is_ok(), "{:?}", report.failures);
        assert_eq!(report.components, 3, "members are counted one by one");
    })
    .await;
}

/// §10 (run to completion, data): a producer and a consumer in one group exchange more
/// messages than the consumer's inbox holds (so each must wait for the other: the group
/// wakes the right member); the run returns once both have ended.
#[tokio::test]
async fn members_wait_for_each_other_through_bounded_boxes() {
    within("counter -> collector in one group", async {
        let (producer, consumer, got) = counter_into_collector(1000, 4);
        let report = Scheduler::new()
            .run(async {
                Group::from_iter([producer, consumer]).activate();
            })
            .await;
        assert!(report.is_ok(), "{:?}", report.failures);
        assert_eq!(got.await.unwrap(), (0..1000).collect::<Vec<_>>());
    })
    .await;
}

/// §10 (control, stop): `Handle::stop` on one member ends that member, through its own
/// shutdown path (its final message on `signal`); the other member keeps running, and the run
/// waits for it.
#[tokio::test]
async fn stopping_one_member_ends_only_that_member() {
    within("stop one member", async {
        let (a, a_started) = idle("A");
        let (b, b_started) = idle("B");
        let a_sig = Inbox::<Control>::standalone("a_sig", 4);
        let b_sig = Inbox::<Control>::standalone("b_sig", 4);
        link_refs(&a.boxref("signal").unwrap(), &a_sig.boxref()).unwrap();
        link_refs(&b.boxref("signal").unwrap(), &b_sig.boxref()).unwrap();
        let poke = Outbox::<Control>::standalone("poke");
        link_refs(&poke.boxref(), &b.boxref("control").unwrap()).unwrap();
        let report = Scheduler::new()
            .run(async {
                let hs = Group::new().with(a).with(b).activate();
                a_started.await.unwrap();
                b_started.await.unwrap();
                assert!(hs[0].stop());
                assert!(a_sig.recv().await.is_shutdown());
                assert!(hs[0].join().await.failure.is_none());
                // B is still running: it passes a notice on, then ends on ProducerFinished.
                assert!(!hs[1].is_finished());
                poke.send(Control::notice(5u8)).await.unwrap();
                assert_eq!(b_sig.recv().await.payload::<u8>(), Some(&5));
                poke.send(Control::producer_finished()).await.unwrap();
                assert!(b_sig.recv().await.is_producer_finished());
                assert!(hs[1].join().await.failure.is_none());
            })
            .await;
        assert!(report.is_ok(), "{:?}", report.failures);
    })
    .await;
}

/// §10 (failures): a member that panics is that member's failure: its `signal` carries the
/// runtime's `Error` then `ProducerFinished`, its exit and the run's report name it; the other
/// member, in the same task, keeps running and still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_member_fails_alone() {
    within("a panic inside a group", async {
        let mut b = Component::build("Bomb");
        let trigger = b.inbox::<u64>("inbox", "the trigger");
        b.control();
        b.signal();
        let bomb = b.main(move |_cx| async move {
            let n = trigger.recv().await;
            panic!("bomb {n} went off");
        });
        let (healthy, started) = idle("Healthy");
        let fire = Outbox::<u64>::standalone("fire");
        link_refs(&fire.boxref(), &bomb.boxref("inbox").unwrap()).unwrap();
        let bomb_sig = Inbox::<Control>::standalone("bomb_sig", 4);
        link_refs(&bomb.boxref("signal").unwrap(), &bomb_sig.boxref()).unwrap();
        let healthy_sig = Inbox::<Control>::standalone("healthy_sig", 4);
        link_refs(&healthy.boxref("signal").unwrap(), &healthy_sig.boxref()).unwrap();
        let poke = Outbox::<Control>::standalone("poke");
        link_refs(&poke.boxref(), &healthy.boxref("control").unwrap()).unwrap();

        let report = Scheduler::new()
            .run(async {
                let hs = Group::new().with(bomb).with(healthy).activate();
                started.await.unwrap();
                fire.send(7).await.unwrap();
                assert!(matches!(bomb_sig.recv().await, Control::Error(_)));
                assert!(bomb_sig.recv().await.is_producer_finished());
                let exit = hs[0].join().await;
                let failure = exit.failure.expect("the bomb's exit says it failed");
                assert!(
                    matches!(&failure.kind, FailureKind::Panicked(m) if m.contains("bomb 7")),
                    "{failure}"
                );
                // The other member is unharmed and still served by the group's task.
                poke.send(Control::notice("still here")).await.unwrap();
                assert_eq!(
                    healthy_sig.recv().await.payload::<&str>(),
                    Some(&"still here")
                );
                poke.send(Control::producer_finished()).await.unwrap();
                assert!(hs[1].join().await.failure.is_none());
            })
            .await;
        assert_eq!(report.failed, 1);
        assert_eq!(report.components, 2);
        assert!(report.failures[0].to_string().contains("bomb 7"));
    })
    .await;
}

/// §10 (Ctrl-C): `shutdown_all`, what the first interrupt does, reaches every member of a
/// top-level group.
#[tokio::test]
async fn shutdown_all_reaches_every_member() {
    within("shutdown_all over a group", async {
        let (a, a_started) = idle("A");
        let (b, b_started) = idle("B");
        let sched = Scheduler::new();
        let s = sched.clone();
        let report = sched
            .run(async move {
                let hs = Group::new().with(a).with(b).activate();
                a_started.await.unwrap();
                b_started.await.unwrap();
                s.shutdown_all();
                for h in &hs {
                    assert!(h.join().await.failure.is_none());
                }
            })
            .await;
        assert!(report.is_ok(), "{:?}", report.failures);
        assert_eq!(sched.live(), 0);
    })
    .await;
}

/// Counts how often the future inside is polled.
struct Counted<F> {
    polls: Arc<AtomicUsize>,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::Relaxed);
        self.inner.as_mut().poll(cx)
    }
}

/// §10 (per-member wake-ups): while two members exchange a thousand messages, a third member
/// of the same group that nothing wakes is not polled again.
#[tokio::test]
async fn only_woken_members_are_polled() {
    within("an idle member beside a busy pair", async {
        let (producer, consumer, got) = counter_into_collector(1000, 1);
        let polls = Arc::new(AtomicUsize::new(0));
        let p = polls.clone();
        let mut b = Component::build("Sleeper");
        let control = b.control();
        let sleeper = b.main(move |_cx| Counted {
            polls: p,
            inner: Box::pin(async move {
                while !control.recv().await.is_final() {}
                Ok(())
            }),
        });
        let report = Scheduler::new()
            .run(async {
                let hs = Group::new()
                    .with(producer)
                    .with(consumer)
                    .with(sleeper)
                    .activate();
                assert_eq!(got.await.unwrap().len(), 1000);
                let before_stop = polls.load(Ordering::Relaxed);
                assert_eq!(before_stop, 1, "the sleeper was polled once, to start");
                assert!(hs[2].stop());
            })
            .await;
        assert!(report.is_ok(), "{:?}", report.failures);
        assert_eq!(polls.load(Ordering::Relaxed), 2, "woken once by its stop");
    })
    .await;
}

/// §10 (children beside their parent): a member's child activated with `activate_beside`
/// runs in the parent's task, one activated with `activate` in a task of its own; a component
/// built with `hosts_group` has a group of its own when activated alone. The run waits for
/// every one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_beside_share_the_parents_task() {
    within("children beside and apart", async {
        let (tx, rx) = oneshot::channel();
        let mut b = Component::build("Parent");
        b.hosts_group();
        let parent = b.main(move |cx| async move {
            let (beside, beside_task) = idle("Beside");
            let (apart, apart_task) = idle("Apart");
            let hb = cx.activate_beside(beside);
            let ha = cx.activate(apart);
            let ids = (tokio::task::id(), beside_task.await?, apart_task.await?);
            let _ = tx.send(ids);
            hb.stop();
            ha.stop();
            hb.join().await;
            ha.join().await;
            Ok(())
        });
        let report = Scheduler::new()
            .run(async {
                parent.activate();
            })
            .await;
        assert!(report.is_ok(), "{:?}", report.failures);
        assert_eq!(report.components, 3);
        let (own, beside, apart) = rx.await.unwrap();
        assert_eq!(own, beside, "activate_beside joins the parent's task");
        assert_ne!(own, apart, "activate starts a task of its own");
    })
    .await;
}

/// §3, §10 (wake-ups): a box polled again by the task already waiting on it answers without
/// its lock; every send still wakes that task. Two components, one in a group beside an idle
/// member and one alone in its own task, bat a number back and forth many times on two worker
/// threads: each waits on an empty inbox between messages, so a lost wake-up would hang here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wakeups_are_never_lost_between_tasks_and_members() {
    within("20,000 exchanges between a member and a lone task", async {
        const ROUNDS: u64 = 10_000;
        let in_group = answerer("InGroup", ROUNDS);
        let alone = answerer("Alone", ROUNDS);
        for (src, dst) in [(&in_group, &alone), (&alone, &in_group)] {
            link_refs(
                &src.boxref("outbox").unwrap(),
                &dst.boxref("inbox").unwrap(),
            )
            .unwrap();
        }
        let start = alone.outbox::<u64>("outbox").unwrap();
        let (bystander, _) = idle("Bystander");
        let report = Scheduler::new()
            .run(async move {
                let hs = Group::new().with(in_group).with(bystander).activate();
                alone.activate();
                start.send(0).await.unwrap();
                hs[0].join().await;
                hs[1].stop();
            })
            .await;
        assert!(report.is_ok(), "{:?}", report.failures);
    })
    .await;
}
