//! Linkages that cannot be made, and the errors that name their boxes (docs/semantics.md §2).

use crate::support::{recv_n, send_all, within};
use axon::{link, link_refs, Component, FailureKind, Inbox, Outbox, Scheduler, WiringError};

/// §2 (one destination per outbox): linking an outbox that is already linked fails with
/// `AlreadyLinked`, naming the outbox and where it already goes; the first link keeps working.
#[tokio::test]
async fn second_destination_is_refused_naming_both_boxes() {
    let out = Outbox::<u64>::standalone("out");
    let a = Inbox::<u64>::standalone("a", 8);
    let b = Inbox::<u64>::standalone("b", 8);
    link(&out, &a).unwrap();
    let err = link(&out, &b).unwrap_err();
    assert_eq!(
        err,
        WiringError::AlreadyLinked {
            src: out.id().clone(),
            existing: a.id().clone(),
        }
    );
    let text = err.to_string();
    assert!(
        text.contains(&out.id().to_string()) && text.contains(&a.id().to_string()),
        "{text}"
    );
    within("the first link still works", async {
        send_all(&out, 0..3).await;
        assert_eq!(recv_n(&a, 3).await, vec![0, 1, 2]);
    })
    .await;
    assert!(b.is_empty());
}

/// §2: linking boxes of different message types by reference fails with `TypeMismatch`, whose
/// message names both ends and both types.
#[test]
fn type_mismatch_names_both_ends_and_types() {
    let mut b = Component::build("Numbers");
    b.outbox::<u64>("outbox", "numbers");
    let numbers = b.main(|_cx| async { Ok(()) });
    let mut b = Component::build("Words");
    b.inbox::<String>("inbox", "words");
    let words = b.main(|_cx| async { Ok(()) });

    let src = numbers.boxref("outbox").unwrap();
    let dst = words.boxref("inbox").unwrap();
    let err = link_refs(&src, &dst).unwrap_err();
    assert_eq!(
        err,
        WiringError::TypeMismatch {
            src: src.id().clone(),
            dst: dst.id().clone(),
        }
    );
    let text = err.to_string();
    for part in [
        format!("{}.outbox", numbers.label()),
        format!("{}.inbox", words.label()),
        "u64".to_string(),
        std::any::type_name::<String>().to_string(),
    ] {
        assert!(text.contains(&part), "{text:?} does not name {part:?}");
    }
    assert_eq!(src.linked_to(), None);
}

/// §2: messages never flow from an inbox into an outbox: `WrongDirection`, naming both.
#[test]
fn inbox_to_outbox_is_the_wrong_direction() {
    let inbox = Inbox::<u64>::standalone("in", 8);
    let out = Outbox::<u64>::standalone("out");
    let err = link_refs(&inbox.boxref(), &out.boxref()).unwrap_err();
    assert_eq!(
        err,
        WiringError::WrongDirection {
            src: inbox.id().clone(),
            dst: out.id().clone(),
        }
    );
    assert!(err.to_string().contains("inbox") && err.to_string().contains("outbox"));
}

/// §2: a link that would close a circle of forwards fails with `Cycle` (including a box linked
/// to itself), and leaves the existing links as they were.
#[test]
fn a_cycle_of_forwards_is_refused() {
    let a = Inbox::<u64>::standalone("a", 8);
    let b = Inbox::<u64>::standalone("b", 8);
    let c = Inbox::<u64>::standalone("c", 8);
    link_refs(&a.boxref(), &b.boxref()).unwrap();
    link_refs(&b.boxref(), &c.boxref()).unwrap();
    let err = link_refs(&c.boxref(), &a.boxref()).unwrap_err();
    assert_eq!(
        err,
        WiringError::Cycle {
            src: c.id().clone(),
            dst: a.id().clone(),
        }
    );
    assert!(matches!(
        link_refs(&a.boxref(), &a.boxref()),
        Err(WiringError::Cycle { .. }) | Err(WiringError::AlreadyLinked { .. })
    ));
    let lone = Outbox::<u64>::standalone("lone");
    assert!(matches!(
        link_refs(&lone.boxref(), &lone.boxref()),
        Err(WiringError::Cycle { .. })
    ));
    assert_eq!(c.boxref().linked_to(), None);
    assert_eq!(a.boxref().linked_to(), Some(b.id()));
}

/// §2: two threads linking A->B and B->A at the same moment: at most one link is made, never
/// both. Both would be a loop of forwards that a link or send then follows for ever (seen as a
/// link that never returns). 100,000 rounds, each started together on two threads.
#[test]
fn links_made_at_once_from_two_threads_never_close_a_cycle() {
    use std::sync::mpsc;
    use std::sync::{Arc, Barrier};
    use std::time::Duration;
    const ROUNDS: usize = 100_000;
    let a = Arc::new(Inbox::<u64>::standalone("a", 8));
    let b = Arc::new(Inbox::<u64>::standalone("b", 8));
    let start = Arc::new(Barrier::new(3));
    let (done_tx, done) = mpsc::channel::<()>();
    let spawn = |src: Arc<Inbox<u64>>, dst: Arc<Inbox<u64>>| {
        let (start, done_tx) = (start.clone(), done_tx.clone());
        std::thread::spawn(move || {
            for _ in 0..ROUNDS {
                start.wait();
                let _ = link_refs(&src.boxref(), &dst.boxref());
                let _ = done_tx.send(());
            }
        })
    };
    let t1 = spawn(a.clone(), b.clone());
    let t2 = spawn(b.clone(), a.clone());
    let mut made = 0;
    for round in 0..ROUNDS {
        start.wait();
        for _ in 0..2 {
            // The threads are left behind if this fails; the process ends with the test run.
            done.recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| {
                    panic!("round {round}: a link never returned: a and b forward to each other")
                });
        }
        let (ab, ba) = (a.boxref().linked_to(), b.boxref().linked_to());
        assert!(
            ab.is_none() || ba.is_none(),
            "round {round}: a and b forward to each other"
        );
        made += usize::from(ab.is_some() || ba.is_some());
        axon::unlink(&a.boxref());
        axon::unlink(&b.boxref());
    }
    t1.join().unwrap();
    t2.join().unwrap();
    assert_eq!(
        made, ROUNDS,
        "every round makes exactly one of the two links"
    );
}

/// §2 / §6: a component that declares two boxes with one name cannot be wired; activating it
/// reports `FailureKind::Wiring(DuplicateBox)` in its exit and in the run's report, without
/// running its main routine.
#[tokio::test]
async fn duplicate_box_fails_activation_with_a_wiring_error() {
    within("activate a badly declared component", async {
        let mut b = Component::build("Twice");
        b.inbox::<u64>("inbox", "one");
        b.inbox::<u64>("inbox", "two");
        assert!(b.error().is_some());
        let c = b.main(|_cx| async { panic!("the main routine of a mis-wired component ran") });
        let label = c.label().to_string();
        let sched = Scheduler::new();
        let report = sched
            .run(async {
                c.activate();
            })
            .await;
        assert_eq!(report.failures.len(), 1);
        let f = &report.failures[0];
        assert_eq!(&*f.component, label);
        match &f.kind {
            FailureKind::Wiring(WiringError::DuplicateBox { component, name }) => {
                assert_eq!(component, &label);
                assert_eq!(name, "inbox");
            }
            other => panic!("expected a DuplicateBox wiring failure, got {other:?}"),
        }
    })
    .await;
}
