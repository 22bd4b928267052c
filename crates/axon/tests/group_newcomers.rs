//! §10: a group's newcomers wait in a process-wide list keyed by the group's task; a group
//! whose task is dropped (its runtime shut down) must take its entry with it, or a later
//! group's task at the same address adopts its members.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axon::{Component, Scheduler};

static STALE_RAN: AtomicBool = AtomicBool::new(false);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_newcomer_of_a_group_whose_task_never_ran_is_not_run_by_a_later_group() {
    let rt1 = rt();
    rt1.block_on(async {
        let mut b = Component::build("Stale");
        b.hosts_group();
        let c = b.main(|_| async {
            STALE_RAN.store(true, Ordering::SeqCst);
            Ok(())
        });
        let _ = c.activate();
    });
    // The group's task was spawned by `join` and never polled: dropped here, unpolled.
    drop(rt1);
    assert!(!STALE_RAN.load(Ordering::SeqCst));

    let rt2 = rt();
    let fresh_ran = std::sync::Arc::new(AtomicUsize::new(0));
    for round in 0..200 {
        let f = fresh_ran.clone();
        let ended = rt2.block_on(async move {
            let sched = Scheduler::new();
            let run = sched.run(async move {
                let mut b = Component::build("Fresh");
                b.hosts_group();
                let _ = b
                    .main(move |_| async move {
                        f.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    })
                    .activate();
            });
            tokio::time::timeout(Duration::from_secs(5), run).await
        });
        assert!(ended.is_ok(), "round {round}: the run did not end (5 s)");
        assert!(
            !STALE_RAN.load(Ordering::SeqCst),
            "round {round}: a component activated on a runtime that is gone ran inside a later, \
             unrelated group (its stale NEWCOMERS entry was adopted)"
        );
    }
    assert_eq!(fresh_ran.load(Ordering::SeqCst), 200);
}
