//! Normal linkages, fan-in, unlinking, and what an unlinked outbox does with what it is sent
//! (docs/semantics.md §2).

use crate::support::{counter, forwarder, recv_n, send_all, within};
use axon::{link, link_refs, unlink, Component, Control, Inbox, Outbox, Scheduler, TrySendError};

/// §2 (normal linkage): a component's outbox linked to another's inbox, and its `signal` to the
/// other's `control`: every message arrives in order, then the final message, and the run ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_to_inbox_delivers_every_message_in_order() {
    within("a counter through a forwarder", async {
        let source = counter(10_000);
        let middle = forwarder("Forwarder");
        let sink = Inbox::<u64>::standalone("sink", 64);
        let sink_ctl = Inbox::<Control>::standalone("sink_ctl", 4);
        link_refs(
            &source.boxref("outbox").unwrap(),
            &middle.boxref("inbox").unwrap(),
        )
        .unwrap();
        link_refs(
            &source.boxref("signal").unwrap(),
            &middle.boxref("control").unwrap(),
        )
        .unwrap();
        link_refs(&middle.boxref("outbox").unwrap(), &sink.boxref()).unwrap();
        link_refs(&middle.boxref("signal").unwrap(), &sink_ctl.boxref()).unwrap();

        let sched = Scheduler::new();
        let run = sched.run(async {
            source.activate();
            middle.activate();
        });
        let (report, got) = tokio::join!(run, recv_n(&sink, 10_000));
        assert!(report.is_ok(), "{:?}", report.failures);
        assert_eq!(report.components, 2);
        assert_eq!(got, (0..10_000).collect::<Vec<_>>());
        assert!(sink_ctl.recv().await.is_producer_finished());
        assert_eq!(sink.try_recv(), None);
    })
    .await;
}

/// §2 (fan-in): several outboxes linked into one inbox. Every message arrives and each
/// sender's messages keep their order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_in_keeps_every_message_and_per_sender_order() {
    const SENDERS: u64 = 4;
    const EACH: u64 = 5_000;
    within("four senders into one inbox", async {
        let sink = Inbox::<(u64, u64)>::standalone("sink", 64);
        let mut senders = Vec::new();
        for s in 0..SENDERS {
            let mut b = Component::build("Sender");
            let out = b.outbox::<(u64, u64)>("outbox", "(sender, seq)");
            b.control();
            b.signal();
            link(&out, &sink).unwrap();
            senders.push(b.main(move |_cx| async move {
                for i in 0..EACH {
                    out.send((s, i)).await?;
                }
                Ok(())
            }));
        }
        let sched = Scheduler::new();
        let run = sched.run(async {
            for c in senders {
                c.activate();
            }
        });
        let (report, got) = tokio::join!(run, recv_n(&sink, (SENDERS * EACH) as usize));
        assert!(report.is_ok(), "{:?}", report.failures);
        let mut next = [0u64; SENDERS as usize];
        for (s, i) in got {
            assert_eq!(i, next[s as usize], "sender {s} out of order");
            next[s as usize] += 1;
        }
        assert_eq!(next, [EACH; SENDERS as usize]);
        assert_eq!(sink.try_recv(), None);
    })
    .await;
}

/// §2 (unlinked sends are kept): an outbox that is not linked buffers what is sent to it and
/// hands it on, in order and ahead of later sends, once it is linked.
#[tokio::test]
async fn unlinked_outbox_buffers_and_delivers_in_order_once_linked() {
    within("buffer then link", async {
        let out = Outbox::<u64>::standalone("out");
        let sink = Inbox::<u64>::standalone("sink", 64);
        send_all(&out, 0..10).await;
        assert!(!out.is_linked());
        assert_eq!(out.buffered(), 10);
        assert_eq!(out.boxref().queued(), 10);

        link(&out, &sink).unwrap();
        assert_eq!(out.buffered(), 0);
        assert_eq!(sink.len(), 10);
        send_all(&out, 10..20).await;
        assert_eq!(recv_n(&sink, 20).await, (0..20).collect::<Vec<_>>());
    })
    .await;
}

/// §2 / §3: `try_send` on an unlinked outbox whose buffer is full says `Unlinked` and hands the
/// message back; nothing already buffered is lost.
#[tokio::test]
async fn try_send_on_a_full_unlinked_outbox_hands_the_message_back() {
    let out = Outbox::<u64>::standalone("out");
    let mut accepted = 0;
    let refused = loop {
        match out.try_send(accepted) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(
            accepted <= 10_000,
            "an unlinked outbox buffered without bound"
        );
    };
    assert!(
        matches!(refused, TrySendError::Unlinked(m) if m == accepted),
        "{refused:?}"
    );
    assert_eq!(out.buffered() as u64, accepted);

    let sink = Inbox::<u64>::standalone("sink", 1024);
    link(&out, &sink).unwrap();
    within("drain", async {
        assert_eq!(
            recv_n(&sink, accepted as usize).await,
            (0..accepted).collect::<Vec<_>>()
        );
    })
    .await;
}

/// §2 (unlink): after `unlink`, messages already delivered stay at the old destination, later
/// sends stay in the outbox, and a new link takes them on in order. `Link::unlink` does the same.
#[tokio::test]
async fn unlink_keeps_delivered_messages_and_buffers_later_sends() {
    within("unlink and relink", async {
        let out = Outbox::<u64>::standalone("out");
        let a = Inbox::<u64>::standalone("a", 64);
        let b = Inbox::<u64>::standalone("b", 64);
        let l = link(&out, &a).unwrap();
        send_all(&out, 0..3).await;
        assert_eq!(unlink(&out.boxref()), Some(a.id()));
        assert_eq!(unlink(&out.boxref()), None, "a second unlink finds nothing");
        send_all(&out, 3..6).await;
        assert_eq!(a.len(), 3);
        assert_eq!(out.buffered(), 3);

        let l2 = link(&out, &b).unwrap();
        l.unlink(); // a stale link: must not undo the newer one
        assert!(out.is_linked());
        send_all(&out, 6..9).await;
        assert_eq!(recv_n(&a, 3).await, vec![0, 1, 2]);
        assert_eq!(recv_n(&b, 6).await, vec![3, 4, 5, 6, 7, 8]);
        l2.unlink();
        assert!(!out.is_linked());
    })
    .await;
}

/// §2 (unlinked sends are kept, not dropped): messages buffered in an unlinked outbox must not
/// vanish when it is linked to an inbox whose component has already ended. Either the link is
/// refused and the messages stay in the outbox, or the link is made and they are somewhere
/// observable; a `link` that returns `Ok` while silently discarding them breaks the contract.
#[tokio::test]
async fn linking_buffered_messages_to_an_ended_inbox_does_not_lose_them() {
    within("link to an ended component", async {
        let mut b = Component::build("Ended");
        b.inbox::<u64>("inbox", "never read");
        b.control();
        let inbox = b.boxref("inbox").unwrap();
        let dead = b.main(|_cx| async { Ok(()) });
        let sched = Scheduler::new();
        assert!(sched
            .run(async {
                dead.activate();
            })
            .await
            .is_ok());

        let out = Outbox::<u64>::standalone("out");
        send_all(&out, 0..3).await;
        let linked = link_refs(&out.boxref(), &inbox);
        assert!(
            linked.is_err() && out.buffered() == 3,
            "link returned {linked:?} and the outbox now holds {} of the 3 buffered messages \
             (the ended inbox holds {}): the other messages were discarded",
            out.buffered(),
            inbox.queued()
        );
    })
    .await;
}
