//! Relinking while messages flow (docs/semantics.md §4).

use crate::support::{assert_increasing, collector, soon, within};
use axon::{link, link_refs, unlink, BoxRef, Component, Inbox, Outbox, Scheduler};
use tokio::sync::watch;

const N: u64 = 100_000;

/// How many messages the producer sends, at most, before it waits for the test to have moved
/// its link once more: so the test makes at least `N / SWITCH_EVERY` switches however the two
/// are scheduled (a machine under load ran the switcher too rarely to make them otherwise).
const SWITCH_EVERY: u64 = 256;

/// The producer's side of the progress it publishes and the switches it waits for.
struct Pacing {
    progress: watch::Sender<u64>,
    switched: watch::Receiver<usize>,
}

/// A component that sends `0..N` on `outbox`, publishing how far it got every 64 messages,
/// and waiting, every `SWITCH_EVERY`, until the test has switched its link once since the
/// last wait. The progress sender is dropped when it ends, which is how the test knows it is
/// done.
fn producer() -> (Component, watch::Receiver<u64>, watch::Sender<usize>) {
    let (progress_tx, progress_rx) = watch::channel(0);
    let (switched_tx, switched_rx) = watch::channel(0);
    let mut pacing = Pacing {
        progress: progress_tx,
        switched: switched_rx,
    };
    let mut b = Component::build("Producer");
    let out = b.outbox::<u64>("outbox", "0..N");
    b.control();
    b.signal();
    let c = b.main(move |_cx| async move {
        for i in 0..N {
            out.send(i).await?;
            if i % 64 == 0 {
                pacing.progress.send_replace(i);
            }
            if i % SWITCH_EVERY == SWITCH_EVERY - 1 {
                // Err only if the test has gone; then there is nothing to wait for.
                let _ = pacing.switched.changed().await;
            }
        }
        Ok(())
    });
    (c, progress_rx, switched_tx)
}

/// Moves the link leaving `src` to the next of `targets` every time the producer reports
/// progress, until it ends, telling the producer after each switch; returns how many switches
/// were made. `src` is left linked.
async fn keep_switching(
    src: &BoxRef,
    targets: &[BoxRef],
    mut progress: watch::Receiver<u64>,
    switched: watch::Sender<usize>,
) -> usize {
    let mut switches = 0;
    while progress.changed().await.is_ok() {
        unlink(src).expect("the source is linked between switches");
        link_refs(src, &targets[(switches + 1) % targets.len()]).unwrap();
        switches += 1;
        switched.send_replace(switches);
    }
    switches
}

/// Checks the union of what the consumers got is exactly `0..N`, each in strictly increasing
/// order, and that relinking actually spread the messages over every consumer.
fn check_union(got: Vec<Vec<u64>>) {
    let mut all = Vec::with_capacity(N as usize);
    for (i, v) in got.iter().enumerate() {
        assert_increasing(&format!("consumer {i}"), v);
        assert!(
            !v.is_empty(),
            "consumer {i} got nothing: the relinking did not take effect"
        );
        all.extend_from_slice(v);
    }
    all.sort_unstable();
    let dups = all.windows(2).filter(|w| w[0] == w[1]).count();
    assert_eq!(dups, 0, "duplicated messages");
    assert_eq!(all.len() as u64, N, "messages lost");
    assert_eq!(all, (0..N).collect::<Vec<_>>());
}

/// §4: a producer sends 0..100 000 while the test moves its outbox between three consumers'
/// inboxes hundreds of times. Nothing is lost or duplicated, and each consumer sees a strictly
/// increasing sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relinking_an_outbox_between_three_consumers_loses_nothing() {
    within("relink while 100 000 messages flow", async {
        let (p, progress, switched) = producer();
        let out = p.boxref("outbox").unwrap();
        let mut consumers = Vec::new();
        let mut results = Vec::new();
        for name in ["A", "B", "C"] {
            let (c, rx) = collector(name, 64);
            consumers.push(c);
            results.push(rx);
        }
        let targets: Vec<BoxRef> = consumers
            .iter()
            .map(|c| c.boxref("inbox").unwrap())
            .collect();
        link_refs(&out, &targets[0]).unwrap();

        let sched = Scheduler::new();
        let report = sched
            .run(async {
                let p = p.activate();
                let cs: Vec<_> = consumers.into_iter().map(Component::activate).collect();
                let switches = keep_switching(&out, &targets, progress, switched).await;
                assert!(p.join().await.failure.is_none());
                assert!(switches >= 200, "only {switches} switches");
                assert_eq!(out.queued(), 0, "the outbox is linked, so it holds nothing");
                for c in &cs {
                    assert!(c.stop());
                }
            })
            .await;
        assert!(report.is_ok(), "{:?}", report.failures);
        let mut got = Vec::new();
        for rx in results {
            got.push(rx.await.unwrap());
        }
        check_union(got);
    })
    .await;
}

/// §4 (passthrough chain switched): producer.outbox -> mid (a passthrough outbox) -> a parent
/// inbox forwarded into a consumer. The middle link, with passthrough hops on both sides, is
/// moved between two such parents hundreds of times while 100 000 messages flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relinking_the_middle_of_a_passthrough_chain_loses_nothing() {
    within("relink a passthrough chain", async {
        let (p, progress, switched) = producer();
        let mid = Outbox::<u64>::standalone("mid");
        link_refs(&p.boxref("outbox").unwrap(), &mid.boxref()).unwrap();
        let mut consumers = Vec::new();
        let mut results = Vec::new();
        let mut parents = Vec::new();
        for name in ["A", "B"] {
            let (c, rx) = collector(name, 64);
            let parent = Inbox::<u64>::standalone(name, 64);
            link_refs(&parent.boxref(), &c.boxref("inbox").unwrap()).unwrap();
            consumers.push(c);
            results.push(rx);
            parents.push(parent);
        }
        let targets: Vec<BoxRef> = parents.iter().map(Inbox::boxref).collect();
        link_refs(&mid.boxref(), &targets[0]).unwrap();

        let sched = Scheduler::new();
        let report = sched
            .run(async {
                let p = p.activate();
                let cs: Vec<_> = consumers.into_iter().map(Component::activate).collect();
                let switches = keep_switching(&mid.boxref(), &targets, progress, switched).await;
                assert!(p.join().await.failure.is_none());
                assert!(switches >= 200, "only {switches} switches");
                assert_eq!(mid.buffered(), 0);
                for c in &cs {
                    assert!(c.stop());
                }
            })
            .await;
        assert!(report.is_ok(), "{:?}", report.failures);
        let mut got = Vec::new();
        for rx in results {
            got.push(rx.await.unwrap());
        }
        check_union(got);
    })
    .await;
}

/// §3 / §4: a send that is waiting because the destination inbox is full follows a relink:
/// once the outbox is moved to an inbox with room, the waiting send completes there, even though
/// nobody ever reads the old inbox.
#[tokio::test]
async fn a_send_waiting_on_a_full_inbox_follows_a_relink() {
    let out = Outbox::<u64>::standalone("out");
    let full = Inbox::<u64>::standalone("full", 1);
    let roomy = Inbox::<u64>::standalone("roomy", 8);
    link(&out, &full).unwrap();
    out.try_send(0).unwrap();
    let sender = tokio::spawn({
        let out = out.clone();
        async move { out.send(1).await }
    });
    // On this single-threaded runtime, one yield lets the sender run until it waits for room.
    tokio::task::yield_now().await;
    assert!(!sender.is_finished(), "the send waits: the inbox is full");

    unlink(&out.boxref()).unwrap();
    link(&out, &roomy).unwrap();
    soon(
        "the waiting send completes into the new destination",
        async {
            sender.await.unwrap().unwrap();
            assert_eq!(roomy.recv().await, 1);
        },
    )
    .await;
    assert_eq!(full.len(), 1);
}

/// §2 / §4: a send waiting on a full inbox completes into the outbox's own buffer once the
/// outbox is unlinked (unlinked sends are kept), and the old inbox keeps only what it had.
#[tokio::test]
async fn a_send_waiting_on_a_full_inbox_is_buffered_after_unlink() {
    let out = Outbox::<u64>::standalone("out");
    let full = Inbox::<u64>::standalone("full", 1);
    link(&out, &full).unwrap();
    out.try_send(0).unwrap();
    let sender = tokio::spawn({
        let out = out.clone();
        async move { out.send(1).await }
    });
    tokio::task::yield_now().await;
    assert!(!sender.is_finished(), "the send waits: the inbox is full");

    unlink(&out.boxref()).unwrap();
    soon(
        "the waiting send completes into the outbox's buffer",
        async {
            sender.await.unwrap().unwrap();
        },
    )
    .await;
    assert_eq!(out.buffered(), 1);
    assert_eq!(full.len(), 1);
}

/// §4: the same through a passthrough hop: out -> hop -> full inbox; moving the *hop's* link to
/// an inbox with room lets the waiting send through.
#[tokio::test]
async fn a_send_waiting_behind_a_passthrough_hop_follows_the_hops_relink() {
    let out = Outbox::<u64>::standalone("out");
    let hop = Inbox::<u64>::standalone("hop", 1);
    let full = Inbox::<u64>::standalone("full", 1);
    let roomy = Inbox::<u64>::standalone("roomy", 8);
    link(&out, &hop).unwrap();
    link_refs(&hop.boxref(), &full.boxref()).unwrap();
    out.try_send(0).unwrap();
    let sender = tokio::spawn({
        let out = out.clone();
        async move { out.send(1).await }
    });
    tokio::task::yield_now().await;
    assert!(!sender.is_finished(), "the send waits: the inbox is full");

    unlink(&hop.boxref()).unwrap();
    link_refs(&hop.boxref(), &roomy.boxref()).unwrap();
    soon(
        "the waiting send completes into the new end of the chain",
        async {
            sender.await.unwrap().unwrap();
            assert_eq!(roomy.recv().await, 1);
        },
    )
    .await;
}
