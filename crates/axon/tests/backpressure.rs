//! Bounded inboxes: a slow reader holds its producer back, and failed sends hand the message
//! back (docs/semantics.md §3).

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axon::{
    link, link_refs, Component, Control, Inbox, Outbox, Scheduler, SendError, TrySendError,
};
use support::{soon, vm_rss_kib, within};

const MESSAGE: usize = 64 * 1024;
const MESSAGES: usize = 16 * 1024; // 16 Ki x 64 KiB = 1 GiB offered in total
const CAPACITY: usize = 16;
const RSS_LIMIT_KIB: u64 = 200 * 1024;

/// §3 (bounded inboxes, send waits): a producer offers 1 GiB (16 384 messages of 64 KiB, every
/// page written) to a consumer that reads slowly. The producer is held back by the consumer's
/// inbox: the inbox never holds more than its capacity, and the process's resident memory,
/// sampled throughout, stays under 200 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_bounds_memory_while_1_gib_is_offered() {
    within("1 GiB through a 16-message inbox", async {
        let mut b = Component::build("BigProducer");
        let out = b.outbox::<Vec<u8>>("outbox", "64 KiB blocks");
        let signal = b.signal();
        b.control();
        let producer = b.main(move |_cx| async move {
            for i in 0..MESSAGES {
                out.send(vec![i as u8; MESSAGE]).await?;
            }
            signal.send(Control::producer_finished()).await?;
            Ok(())
        });

        let fullest = Arc::new(AtomicU64::new(0));
        let received = Arc::new(AtomicU64::new(0));
        let mut b = Component::build("SlowReader");
        let inbox = b.inbox_with_capacity::<Vec<u8>>("inbox", "64 KiB blocks", CAPACITY);
        let control = b.control();
        b.signal();
        let consumer = b.main({
            let fullest = fullest.clone();
            let received = received.clone();
            move |_cx| async move {
                let mut n = 0usize;
                let check = |m: &Vec<u8>, n: usize| {
                    assert_eq!(m.len(), MESSAGE);
                    assert!(
                        m[0] == n as u8 && m[MESSAGE - 1] == n as u8,
                        "block {n} out of order"
                    );
                    received.store(n as u64 + 1, Ordering::Relaxed);
                };
                loop {
                    fullest.fetch_max(inbox.len() as u64, Ordering::Relaxed);
                    tokio::select! {
                        m = inbox.recv() => {
                            check(&m, n);
                            n += 1;
                            // Pacing, not synchronisation: read slower than the producer writes.
                            if n % 32 == 0 {
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            } else {
                                tokio::task::yield_now().await;
                            }
                        }
                        c = control.recv() => if c.is_final() {
                            while let Some(m) = inbox.try_recv() {
                                check(&m, n);
                                n += 1;
                            }
                            return Ok(());
                        }
                    }
                }
            }
        });
        let queue = consumer.boxref("inbox").unwrap();
        link_refs(&producer.boxref("outbox").unwrap(), &queue).unwrap();
        link_refs(
            &producer.boxref("signal").unwrap(),
            &consumer.boxref("control").unwrap(),
        )
        .unwrap();

        let done = Arc::new(AtomicBool::new(false));
        let sampler = tokio::spawn({
            let done = done.clone();
            let queue = queue.clone();
            async move {
                let (mut rss, mut queued) = (0u64, 0usize);
                let mut tick = tokio::time::interval(Duration::from_millis(5));
                while !done.load(Ordering::Relaxed) {
                    tick.tick().await;
                    rss = rss.max(vm_rss_kib());
                    queued = queued.max(queue.queued());
                }
                (rss, queued)
            }
        });
        let before = vm_rss_kib();
        let report = Scheduler::new()
            .run(async {
                producer.activate();
                consumer.activate();
            })
            .await;
        done.store(true, Ordering::Relaxed);
        let (peak_rss, peak_sampled) = sampler.await.unwrap();
        eprintln!(
            "1 GiB offered: peak RSS {} MiB (before {} MiB), fullest inbox {}/{CAPACITY}",
            peak_rss / 1024,
            before / 1024,
            fullest.load(Ordering::Relaxed)
        );
        assert!(report.is_ok(), "{:?}", report.failures);
        assert_eq!(received.load(Ordering::Relaxed), MESSAGES as u64);
        let fullest = fullest.load(Ordering::Relaxed) as usize;
        assert!(
            fullest <= CAPACITY && peak_sampled <= CAPACITY,
            "inbox held {fullest} / {peak_sampled}"
        );
        assert_eq!(
            fullest, CAPACITY,
            "the producer was never held back: the test did not test"
        );
        assert!(
            peak_rss < RSS_LIMIT_KIB,
            "resident memory peaked at {} MiB (was {} MiB before the run)",
            peak_rss / 1024,
            before / 1024
        );
    })
    .await;
}

/// §3 (try_send hands back Full): `try_send` into a full inbox returns `Full` with the message;
/// `ready` then waits until the inbox has room.
#[tokio::test]
async fn try_send_into_a_full_inbox_hands_the_message_back() {
    let out = Outbox::<String>::standalone("out");
    let inbox = Inbox::<String>::standalone("in", 2);
    link(&out, &inbox).unwrap();
    out.try_send("a".into()).unwrap();
    out.try_send("b".into()).unwrap();
    match out.try_send("c".into()) {
        Err(TrySendError::Full(m)) => assert_eq!(m, "c"),
        other => panic!("expected Full, got {other:?}"),
    }
    assert_eq!(inbox.len(), 2);

    let ready = tokio::spawn({
        let out = out.clone();
        async move { out.ready().await }
    });
    tokio::task::yield_now().await;
    assert!(!ready.is_finished(), "ready waits while the inbox is full");
    assert_eq!(inbox.recv().await, "a");
    soon("ready once there is room", ready).await.unwrap();
    out.try_send("c".into()).unwrap();
    assert_eq!(inbox.recv().await, "b");
    assert_eq!(inbox.recv().await, "c");
}

/// A component with an inbox it never reads, ending on its first control message.
fn non_reader(capacity: usize) -> Component {
    let mut b = Component::build("NonReader");
    b.inbox_with_capacity::<u64>("inbox", "never read", capacity);
    let control = b.control();
    b.main(move |_cx| async move {
        control.recv().await;
        Ok(())
    })
}

/// §3 (Closed): once the component owning the destination inbox has ended, `send` fails with
/// `SendError` handing the message back, `try_send` says `Closed`, and what was left in the inbox
/// is reported in the component's exit.
#[tokio::test]
async fn sending_to_an_ended_component_hands_the_message_back() {
    within("send to an ended component", async {
        let c = non_reader(8);
        let out = Outbox::<u64>::standalone("out");
        link_refs(&out.boxref(), &c.boxref("inbox").unwrap()).unwrap();
        out.send(1).await.unwrap();
        out.send(2).await.unwrap();
        let sched = Scheduler::new();
        let report = sched
            .run(async {
                let h = c.activate();
                assert!(h.stop());
                let exit = h.join().await;
                assert!(exit.failure.is_none());
                assert_eq!(exit.undelivered, vec![("inbox".into(), 2)]);
            })
            .await;
        assert!(report.is_ok());
        assert!(out.is_closed());
        assert_eq!(out.send(7).await, Err(SendError(7)));
        assert!(matches!(out.try_send(8), Err(TrySendError::Closed(8))));
    })
    .await;
}

/// §3 / §6: a send waiting on a full inbox fails with `SendError`, handing the message back, when
/// the inbox's component ends instead of reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_send_fails_when_the_reader_ends() {
    within("reader ends under a waiting sender", async {
        let c = non_reader(1);
        let out = Outbox::<u64>::standalone("out");
        link_refs(&out.boxref(), &c.boxref("inbox").unwrap()).unwrap();
        out.send(1).await.unwrap();
        let sched = Scheduler::new();
        let report = sched
            .run(async {
                let h = c.activate();
                let (waiting, result) = tokio::join!(out.send(2), async {
                    // The send above cannot complete while the reader lives; stop it.
                    assert!(h.stop());
                    h.join().await
                });
                assert_eq!(waiting, Err(SendError(2)));
                assert_eq!(result.undelivered, vec![("inbox".into(), 1)]);
            })
            .await;
        assert!(report.is_ok());
    })
    .await;
}

/// §3 (send waits): a send that waits for room is its message and a reference to its outbox,
/// nothing more, so a component waiting in one (every component that sends) holds no more than
/// that in its routine's block (176 bytes for a `Bytes` before, an `async fn` holding
/// the message twice and a wait of its own). It still waits while the inbox is full and goes
/// through when the owner takes a message, in order, and lands where a relink made while it
/// waits points. Only the size check fails on the old code; this half checks where the message
/// lands, not the wake-ups (`.await` polls again at once): those are tested in
/// `links_relink.rs` and `a_slow_reader_bounds_memory_while_1_gib_is_offered`.
#[tokio::test]
async fn a_waiting_send_holds_its_message_and_its_outbox_only_and_then_goes_through() {
    within("a waiting send, then room", async {
        let out = Outbox::<Vec<u8>>::standalone("out");
        let first = Inbox::<Vec<u8>>::standalone("first", 1);
        let second = Inbox::<Vec<u8>>::standalone("second", 1);
        let l = link_refs(&out.boxref(), &first.boxref()).unwrap();
        out.send(vec![1]).await.unwrap();

        let waiting = out.send(vec![2]);
        assert_eq!(
            std::mem::size_of_val(&waiting),
            std::mem::size_of::<Option<Vec<u8>>>() + std::mem::size_of::<&Outbox<Vec<u8>>>()
        );
        let mut waiting = std::pin::pin!(waiting);
        assert!(
            futures_poll_once(waiting.as_mut()).is_pending(),
            "the inbox is full"
        );
        assert_eq!(first.try_recv(), Some(vec![1]));
        waiting.as_mut().await.unwrap();
        assert_eq!(first.try_recv(), Some(vec![2]));

        // Full again; relinked to an empty inbox while the send waits: it lands there.
        out.send(vec![3]).await.unwrap();
        let mut waiting = std::pin::pin!(out.send(vec![4]));
        assert!(futures_poll_once(waiting.as_mut()).is_pending());
        l.unlink();
        link_refs(&out.boxref(), &second.boxref()).unwrap();
        waiting.as_mut().await.unwrap();
        assert_eq!(second.try_recv(), Some(vec![4]));
        assert_eq!(first.try_recv(), Some(vec![3]));
    })
    .await;
}

/// Polls `f` once with a waker that does nothing.
fn futures_poll_once<F: std::future::Future>(
    f: std::pin::Pin<&mut F>,
) -> std::task::Poll<F::Output> {
    f.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
}

/// §3 (byte bounds): an inbox bounded in bytes holds its producer back by bytes, not only by
/// count. Messages of 1 B to 96 KiB go through a passthrough outbox into an inbox of 64 messages
/// and 256 KiB. Sampled at every receive, the inbox never holds more than 256 KiB - 1 plus the
/// largest message, it does reach its bound (so the producer was held back), and every message
/// arrives in order. A count bound alone would have let 64 x 96 KiB = 6 MiB queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_bounded_inbox_holds_the_producer_back_by_bytes() {
    const LIMIT: usize = 256 * 1024;
    const LARGEST: usize = 96 * 1024;
    const COUNT: usize = 4000;
    let size = |i: usize| (i * 7919) % LARGEST + 1;
    within("byte-bounded inbox", async {
        let inbox = Inbox::<Vec<u8>>::standalone("bytes in", 64).limit_bytes(LIMIT);
        let hop = Outbox::<Vec<u8>>::standalone("passthrough");
        let out = Outbox::<Vec<u8>>::standalone("bytes out");
        link_refs(&hop.boxref(), &inbox.boxref()).unwrap();
        link_refs(&out.boxref(), &hop.boxref()).unwrap();
        let producer = tokio::spawn(async move {
            for i in 0..COUNT {
                out.send(vec![i as u8; size(i)]).await.unwrap();
            }
        });
        let mut fullest = 0;
        for i in 0..COUNT {
            let (queued, limit) = inbox.byte_usage().unwrap();
            assert_eq!(limit, LIMIT);
            fullest = fullest.max(queued);
            let m = inbox.recv().await;
            assert_eq!((m.len(), m[0]), (size(i), i as u8), "message {i}");
            if i % 16 == 0 {
                // Pacing, not synchronisation: read slower than the producer writes.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        producer.await.unwrap();
        eprintln!("fullest: {fullest} bytes (bound {LIMIT} - 1 + {LARGEST})");
        assert!(fullest < LIMIT + LARGEST, "held {fullest} bytes");
        assert!(
            fullest >= LIMIT,
            "never reached the byte bound: the test did not test"
        );
        assert_eq!(inbox.byte_usage(), Some((0, LIMIT)));
    })
    .await;
}

/// §3 (byte bounds): `try_send` says Full once the bytes are reached, even with room by count,
/// and a message larger than the whole bound still goes into an empty inbox.
#[test]
fn a_byte_bounded_inbox_refuses_by_bytes_and_admits_one_large_message_when_empty() {
    let inbox = Inbox::<Vec<u8>>::standalone("in", 1000).limit_bytes(100);
    let out = Outbox::<Vec<u8>>::standalone("out");
    link(&out, &inbox).unwrap();
    out.try_send(vec![0; 1000]).unwrap();
    assert!(matches!(out.try_send(vec![1]), Err(TrySendError::Full(_))));
    assert_eq!(inbox.try_recv().map(|m| m.len()), Some(1000));
    // 99 bytes queued is below the bound, so the 100th byte is admitted; then it is full.
    for _ in 0..100 {
        out.try_send(vec![1]).unwrap();
    }
    assert!(matches!(out.try_send(vec![1]), Err(TrySendError::Full(_))));
    assert_eq!(inbox.len(), 100);
}
