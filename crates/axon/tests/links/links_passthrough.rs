//! Passthrough linkages: a parent's inbox forwarded into a child, a child's outbox exposed as the
//! parent's, and chains of such hops (docs/semantics.md §2).

use crate::support::{forwarder, recv_n, send_all, within, wrapper};
use axon::{link, link_refs, Component, Control, Inbox, Outbox, Scheduler};
use tokio::sync::oneshot;

/// §2 (passthrough in, queued-before-link moves in order): messages sent to a parent's inbox
/// before it forwards that inbox to its child move to the child, in order and ahead of later
/// ones; the parent's control reaches the child the same way, and the child's outbox and signal
/// come out of the parent's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_inbox_moves_queued_messages_to_the_child_in_order() {
    within("wrapper around a forwarder", async {
        let (parent, child) = wrapper("Parent", forwarder("Child"));
        let feed = Outbox::<u64>::standalone("feed");
        let feed_ctl = Outbox::<Control>::standalone("feed_ctl");
        let sink = Inbox::<u64>::standalone("sink", 64);
        let sink_ctl = Inbox::<Control>::standalone("sink_ctl", 4);
        link_refs(&feed.boxref(), &parent.boxref("inbox").unwrap()).unwrap();
        link_refs(&feed_ctl.boxref(), &parent.boxref("control").unwrap()).unwrap();
        link_refs(&parent.boxref("outbox").unwrap(), &sink.boxref()).unwrap();
        link_refs(&parent.boxref("signal").unwrap(), &sink_ctl.boxref()).unwrap();

        // Queued in the parent's own inbox: the passthrough link does not exist yet.
        send_all(&feed, 0..10).await;
        assert_eq!(parent.boxref("inbox").unwrap().queued(), 10);
        let parent_inbox = parent.boxref("inbox").unwrap();

        let sched = Scheduler::new();
        let run = sched.run(async {
            parent.activate();
        });
        let drive = async {
            let child = child.await.expect("the parent activated its child");
            assert_eq!(
                parent_inbox.linked_to(),
                Some(child.boxref("inbox").unwrap().id())
            );
            let ((), got) = tokio::join!(send_all(&feed, 10..1_000), recv_n(&sink, 1_000));
            feed_ctl.send(Control::producer_finished()).await.unwrap();
            assert!(sink_ctl.recv().await.is_producer_finished());
            got
        };
        let (report, got) = tokio::join!(run, drive);
        assert!(report.is_ok(), "{:?}", report.failures);
        assert_eq!(report.components, 2);
        assert_eq!(got, (0..1_000).collect::<Vec<_>>());
        assert_eq!(parent_inbox.queued(), 0);
    })
    .await;
}

/// A component that sends `0..10`, reports that on `sent`, waits for `go`, sends `10..20` and
/// then ProducerFinished.
fn two_bursts() -> (Component, oneshot::Receiver<()>, oneshot::Sender<()>) {
    let (sent_tx, sent_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let mut b = Component::build("TwoBursts");
    b.inbox::<u64>("inbox", "unused");
    b.control();
    let out = b.outbox::<u64>("outbox", "0..20 in two bursts");
    let signal = b.signal();
    let c = b.main(move |_cx| async move {
        for i in 0..10 {
            out.send(i).await?;
        }
        let _ = sent_tx.send(());
        let _ = go_rx.await;
        for i in 10..20 {
            out.send(i).await?;
        }
        signal.send(Control::producer_finished()).await?;
        Ok(())
    });
    (c, sent_rx, go_tx)
}

/// §2 (passthrough out, linked late): a child's outbox exposed as its parent's, where the
/// parent's outbox is linked to a sink only after the child has already sent. What the child
/// sent waits in the parent's outbox and reaches the sink in order, before the later messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_outbox_linked_after_the_child_sent_delivers_in_order() {
    within("link the parent's outbox late", async {
        let (child, sent, go) = two_bursts();
        let (parent, _child) = wrapper("Parent", child);
        let parent_out = parent.boxref("outbox").unwrap();
        let parent_sig = parent.boxref("signal").unwrap();
        let sink = Inbox::<u64>::standalone("sink", 64);
        let sink_ctl = Inbox::<Control>::standalone("sink_ctl", 4);

        let sched = Scheduler::new();
        let run = sched.run(async {
            parent.activate();
        });
        let drive = async {
            sent.await.expect("the child sent its first burst");
            assert_eq!(
                parent_out.queued(),
                10,
                "the first burst waits in the parent's outbox"
            );
            assert!(sink.is_empty());
            link_refs(&parent_out, &sink.boxref()).unwrap();
            link_refs(&parent_sig, &sink_ctl.boxref()).unwrap();
            assert_eq!(parent_out.queued(), 0);
            go.send(()).unwrap();
            let got = recv_n(&sink, 20).await;
            assert!(sink_ctl.recv().await.is_producer_finished());
            got
        };
        let (report, got) = tokio::join!(run, drive);
        assert!(report.is_ok(), "{:?}", report.failures);
        assert_eq!(got, (0..20).collect::<Vec<_>>());
    })
    .await;
}

/// §2 (chains of passthrough hops): three nested wrappers around a forwarder: four inbox hops in
/// and four outbox hops out. Messages queued at the outermost inbox before anything runs move
/// hop by hop as each level links, and arrive in order ahead of everything sent later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_passthrough_chain_keeps_order_across_every_hop() {
    within("three wrappers deep", async {
        let (inner, _) = wrapper("Inner", forwarder("Leaf"));
        let (middle, _) = wrapper("Middle", inner);
        let (outer, _) = wrapper("Outer", middle);
        let feed = Outbox::<u64>::standalone("feed");
        let feed_ctl = Outbox::<Control>::standalone("feed_ctl");
        let sink = Inbox::<u64>::standalone("sink", 64);
        let sink_ctl = Inbox::<Control>::standalone("sink_ctl", 4);
        link_refs(&feed.boxref(), &outer.boxref("inbox").unwrap()).unwrap();
        link_refs(&feed_ctl.boxref(), &outer.boxref("control").unwrap()).unwrap();
        link_refs(&outer.boxref("outbox").unwrap(), &sink.boxref()).unwrap();
        link_refs(&outer.boxref("signal").unwrap(), &sink_ctl.boxref()).unwrap();
        send_all(&feed, 0..50).await;

        let sched = Scheduler::new();
        let run = sched.run(async {
            outer.activate();
        });
        let drive = async {
            let ((), got) = tokio::join!(send_all(&feed, 50..5_000), recv_n(&sink, 5_000));
            feed_ctl.send(Control::shutdown()).await.unwrap();
            assert!(sink_ctl.recv().await.is_shutdown());
            got
        };
        let (report, got) = tokio::join!(run, drive);
        assert!(report.is_ok(), "{:?}", report.failures);
        assert_eq!(report.components, 4);
        assert_eq!(got, (0..5_000).collect::<Vec<_>>());
    })
    .await;
}

/// §2 (chains of passthrough hops, by hand): an outbox -> outbox -> outbox -> inbox -> inbox ->
/// inbox chain. A send crosses every hop in one step, and messages held at each hop when the
/// next hop was linked keep their order.
#[tokio::test]
async fn hand_built_chain_moves_what_each_hop_held_in_order() {
    within("a chain linked from the source end", async {
        let o1 = Outbox::<u64>::standalone("o1");
        let o2 = Outbox::<u64>::standalone("o2");
        let o3 = Outbox::<u64>::standalone("o3");
        let i1 = Inbox::<u64>::standalone("i1", 64);
        let i2 = Inbox::<u64>::standalone("i2", 64);
        let i3 = Inbox::<u64>::standalone("i3", 64);
        send_all(&o1, 0..5).await;
        link_refs(&o1.boxref(), &o2.boxref()).unwrap();
        send_all(&o1, 5..10).await;
        link_refs(&o2.boxref(), &o3.boxref()).unwrap();
        send_all(&o1, 10..15).await;
        link(&o3, &i1).unwrap();
        send_all(&o1, 15..20).await;
        link_refs(&i1.boxref(), &i2.boxref()).unwrap();
        send_all(&o1, 20..25).await;
        link_refs(&i2.boxref(), &i3.boxref()).unwrap();
        send_all(&o1, 25..30).await;
        for hop in [
            o1.buffered(),
            o2.buffered(),
            o3.buffered(),
            i1.len(),
            i2.len(),
        ] {
            assert_eq!(hop, 0);
        }
        assert_eq!(recv_n(&i3, 30).await, (0..30).collect::<Vec<_>>());
    })
    .await;
}
