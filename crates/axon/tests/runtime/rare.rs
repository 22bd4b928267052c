//! Rare boxes (docs/semantics.md §1): declared, listed, linked and sent to like any other box,
//! with their store made on first use. What a user can observe is what any box does; these
//! tests check it for the ways a rare box comes to exist: a link by name before or after the
//! component runs, a send into it, its owner's own send, and a make racing its owner's wait.

use std::task::Poll;

use crate::support::within;
use axon::{
    link_refs, BoxDecl, Component, Control, Group, Handle, Inbox, Outbox, RareInbox, Scheduler,
    WiringError, CONTROL, SIGNAL,
};
use tokio::sync::oneshot;

const NUMBERS: BoxDecl = BoxDecl::new("numbers", "numbers, rarely");
const SPARE: BoxDecl = BoxDecl::new("spare", "a rare outbox");

/// A component with a rare `numbers` inbox and a rare `control`: it adds up `n` numbers from
/// `numbers` (polled by hand, as TcpClient polls its rare boxes) and reports the sum; a
/// shutdown on `control` ends it early. It sends `first` on its rare `spare` outbox at once.
fn adder(n: usize, first: Option<u64>) -> (Component, oneshot::Receiver<u64>) {
    let mut b = Component::build("Adder");
    let mut numbers: RareInbox<u64> = b.rare_inbox_from(NUMBERS);
    let mut control = b.rare_control_from(BoxDecl::new(CONTROL, "shutdown"));
    b.rare_outbox_from::<u64>(SPARE);
    let signal = b.signal();
    let (tx, rx) = oneshot::channel();
    let c = b.main(move |cx| async move {
        let rare = cx.rare_boxes();
        if let Some(first) = first {
            rare.outbox::<u64>("spare").unwrap().send(first).await?;
        }
        let mut sum = 0;
        for _ in 0..n {
            let got = std::future::poll_fn(|cx| {
                if let Poll::Ready(c) = control.poll_recv(&rare, CONTROL, cx) {
                    return Poll::Ready(Err(c));
                }
                numbers.poll_recv(&rare, "numbers", cx).map(Ok)
            })
            .await;
            match got {
                Ok(v) => sum += v,
                Err(_) => break,
            }
        }
        let _ = tx.send(sum);
        signal.send(Control::producer_finished()).await?;
        Ok(())
    });
    (c, rx)
}

/// Runs `c` as a group's member to its end, which must report no failure.
async fn run_grouped(c: Component) {
    let report = Scheduler::new()
        .run(async move {
            Group::new().with(c).activate();
        })
        .await;
    assert!(report.is_ok(), "{:?}", report.failures);
}

/// §1, §2: a rare box is listed from the start; linked by name before activation, with the
/// typed errors any box gives (wrong type, wrong direction); what is sent into it before it
/// runs waits there.
#[tokio::test]
async fn a_rare_box_is_listed_and_linked_like_any_with_the_same_errors() {
    within("rare boxes linked before activation", async {
        let (c, sum) = adder(3, None);
        let names: Vec<String> = c.boxes().map(|s| s.name.to_string()).collect();
        assert_eq!(names, ["numbers", "control", "spare", "signal"]);
        let numbers = c.boxref("numbers").unwrap();
        assert_eq!(numbers.id().owner.as_ref(), c.label().to_string());
        let wrong = Outbox::<String>::standalone("words");
        match link_refs(&wrong.boxref(), &numbers) {
            Err(WiringError::TypeMismatch { src, dst }) => {
                assert_eq!(dst, numbers.id());
                assert_eq!(dst.message_type, "u64");
                assert_eq!(src.message_type, std::any::type_name::<String>());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            link_refs(&numbers, &c.boxref("spare").unwrap()),
            Err(WiringError::WrongDirection { .. })
        ));
        assert!(matches!(
            c.outbox::<String>("spare"),
            Err(WiringError::TypeMismatch { .. })
        ));
        let feed = Outbox::<u64>::standalone("feed");
        link_refs(&feed.boxref(), &numbers).unwrap();
        for v in [1, 2, 3] {
            feed.try_send(v).unwrap();
        }
        run_grouped(c).await;
        assert_eq!(sum.await.unwrap(), 6);
    })
    .await;
}

/// §1, §2: an owner's send on its rare outbox, linked to nothing, is kept and handed on when
/// it is linked later; `Handle::stop` reaches a rare `control` made only then; after the end,
/// a rare inbox made then is closed (a link to it is `Closed`) and `stop` says so.
#[tokio::test]
async fn a_send_on_a_rare_outbox_is_kept_stop_reaches_a_rare_control_and_the_end_closes() {
    within("rare outbox, stop, end", async {
        let (c, sum) = adder(10, Some(7));
        let (tx, rx) = oneshot::channel::<Handle>();
        let sched = Scheduler::new();
        let run = tokio::spawn(async move {
            sched
                .run(async move {
                    let _ = tx.send(Group::new().with(c).activate().remove(0));
                })
                .await
        });
        let h = rx.await.unwrap();
        let spare = Inbox::<u64>::standalone("spare", 4);
        // Linked once its owner has sent (made by its owner's send, or by this link first).
        link_refs(&h.boxref("spare").unwrap(), &spare.boxref()).unwrap();
        assert_eq!(spare.recv().await, 7);
        assert!(h.stop(), "a rare control is made for a stop");
        assert_eq!(sum.await.unwrap(), 0);
        let report = run.await.unwrap();
        assert!(report.is_ok(), "{:?}", report.failures);
        assert!(!h.stop(), "ended");
        let feed = Outbox::<u64>::standalone("late");
        assert!(matches!(
            link_refs(&feed.boxref(), &h.boxref("numbers").unwrap()),
            Err(WiringError::Closed { .. })
        ));
        assert!(h.boxref(SIGNAL).is_ok());
    })
    .await;
}

/// §1, §3 (wake-ups): a rare inbox made by another thread while its owner, a group member,
/// waits on it (and polls it as its task runs) wakes the owner with its first message,
/// whichever comes first; the same for an owner running as a task of its own (which makes the
/// box when it first waits). Many rounds, on two worker threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rare_inbox_made_by_another_thread_while_its_owner_waits_wakes_it() {
    within("rare inbox made from another thread, 300 rounds", async {
        for round in 0..300 {
            let (c, sum) = adder(2, None);
            let grouped = round % 3 != 0;
            let (tx, rx) = oneshot::channel::<Handle>();
            let run = tokio::spawn(async move {
                Scheduler::new()
                    .run(async move {
                        let h = if grouped {
                            Group::new().with(c).activate().remove(0)
                        } else {
                            c.activate()
                        };
                        let _ = tx.send(h);
                    })
                    .await
            });
            let h = rx.await.unwrap();
            // From a thread of its own, while the owner runs (or starts) on a worker.
            let sent = std::thread::spawn(move || {
                let to = h.boxref("numbers").unwrap().sender::<u64>().unwrap();
                to.try_send(20).unwrap();
                to.try_send(22).unwrap();
            });
            sent.join().unwrap();
            assert_eq!(sum.await.unwrap(), 42, "round {round}");
            let report = run.await.unwrap();
            assert!(report.is_ok(), "{:?}", report.failures);
        }
    })
    .await;
}

/// §1: a rare box looked up on its builder (as a chassis looks up its own boxes while it is
/// built) is made then, is the box the component hands out later, and is taken by its owner,
/// a group member, when it runs.
#[tokio::test]
async fn a_rare_box_looked_up_on_its_builder_is_made_then_and_taken_by_its_owner() {
    within("a rare box made on its builder", async {
        let mut b = Component::build("Early");
        let mut numbers: RareInbox<u64> = b.rare_inbox_from(NUMBERS);
        let early = b.boxref("numbers").unwrap();
        let feed = Outbox::<u64>::standalone("feed");
        link_refs(&feed.boxref(), &early).unwrap();
        feed.try_send(5).unwrap();
        let (tx, rx) = oneshot::channel();
        let c = b.main(move |cx| async move {
            let rare = cx.rare_boxes();
            let v = std::future::poll_fn(|cx| numbers.poll_recv(&rare, "numbers", cx)).await;
            let _ = tx.send(v);
            Ok(())
        });
        assert_eq!(c.boxref("numbers").unwrap().id(), early.id());
        run_grouped(c).await;
        assert_eq!(rx.await.unwrap(), 5);
    })
    .await;
}
