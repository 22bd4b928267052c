//! Activation and run-to-completion: `run` waits for every component, children included, and
//! returns promptly once they have ended (docs/semantics.md §1, §6).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::within;
use axon::{Component, Scheduler};
use tokio::sync::oneshot;

/// A component that works for `work` (a timer standing in for real work), notes when it ended,
/// and returns.
fn worker(work: Duration, ends: Arc<Mutex<Vec<Instant>>>) -> Component {
    let mut b = Component::build("Worker");
    b.control();
    b.signal();
    b.main(move |_cx| async move {
        tokio::time::sleep(work).await;
        ends.lock().unwrap().push(Instant::now());
        Ok(())
    })
}

/// §6 (no linger): `run` returns within 100 ms of the last component's end (an upper bound; it
/// is normally microseconds), and reports every component it ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_returns_promptly_once_every_component_has_ended() {
    within("three workers", async {
        let ends = Arc::new(Mutex::new(Vec::new()));
        let sched = Scheduler::new();
        let report = sched
            .run(async {
                for ms in [10, 20, 40] {
                    worker(Duration::from_millis(ms), ends.clone()).activate();
                }
            })
            .await;
        let returned = Instant::now();
        assert!(report.is_ok());
        assert_eq!(report.components, 3);
        let ends = ends.lock().unwrap();
        assert_eq!(ends.len(), 3);
        let last = *ends.iter().max().unwrap();
        let linger = returned.duration_since(last);
        assert!(
            linger < Duration::from_millis(100),
            "run lingered {linger:?}"
        );
        assert_eq!(sched.live(), 0);
    })
    .await;
}

/// §1 / §6: `Handle::join` waits for the end and gives the `Exit`: no failure, nothing left
/// undelivered; `is_finished` turns true.
#[tokio::test]
async fn join_gives_the_exit() {
    within("join", async {
        let ends = Arc::new(Mutex::new(Vec::new()));
        let sched = Scheduler::new();
        sched
            .run(async {
                let h = worker(Duration::from_millis(1), ends.clone()).activate();
                let exit = h.join().await;
                assert!(h.is_finished());
                assert!(exit.failure.is_none());
                assert!(exit.undelivered.is_empty());
                let again = h.join().await;
                assert!(again.failure.is_none(), "joining twice gives the same exit");
            })
            .await;
        assert_eq!(ends.lock().unwrap().len(), 1);
    })
    .await;
}

/// A component that notes which scheduler it runs under, reports that it started, and ends
/// when `go` fires.
fn child(started: oneshot::Sender<bool>, go: oneshot::Receiver<()>) -> Component {
    let mut b = Component::build("Child");
    b.control();
    b.main(move |cx| async move {
        let same = std::ptr::eq(Scheduler::current().services(), cx.services());
        let _ = started.send(same);
        let _ = go.await;
        Ok(())
    })
}

/// §1: inside a component, `Scheduler::current` is the scheduler running it (its registry is
/// the one `Context::services` gives and the one the test holds). Children activated with
/// `Context::activate` and with `Component::activate` join that scheduler: `run` waits for them
/// after their parent has returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_join_the_current_scheduler_and_run_waits_for_them() {
    within("a parent that returns before its children", async {
        let (s1, started1) = oneshot::channel();
        let (s2, started2) = oneshot::channel();
        let (go1_tx, go1) = oneshot::channel();
        let (go2_tx, go2) = oneshot::channel();
        let (parent_done_tx, parent_done) = oneshot::channel();
        let mut b = Component::build("Parent");
        b.control();
        let parent = b.main(move |cx| async move {
            let current = Scheduler::current();
            assert!(std::ptr::eq(current.services(), cx.services()));
            current.services().register("parent-was-here", cx.id())?;
            cx.activate(child(s1, go1));
            child(s2, go2).activate();
            let _ = parent_done_tx.send(());
            Ok(())
        });
        let parent_id = parent.id();

        let sched = Scheduler::new();
        let run = tokio::spawn({
            let sched = sched.clone();
            async move {
                sched
                    .run(async {
                        parent.activate();
                    })
                    .await
            }
        });
        assert!(started1.await.unwrap(), "Scheduler::current in a child");
        assert!(started2.await.unwrap(), "Scheduler::current in a child");
        parent_done.await.unwrap();
        assert_eq!(
            *sched
                .services()
                .lookup::<axon::ComponentId>("parent-was-here")
                .unwrap(),
            parent_id
        );
        assert!(!run.is_finished(), "run returned while children were alive");
        go1_tx.send(()).unwrap();
        assert!(
            !run.is_finished(),
            "run returned while the second child was alive"
        );
        go2_tx.send(()).unwrap();
        let report = run.await.unwrap();
        assert!(report.is_ok(), "{:?}", report.failures);
        assert_eq!(report.components, 3);
    })
    .await;
}
