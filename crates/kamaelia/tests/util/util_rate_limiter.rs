//! RateLimiter on paused tokio time: the average rate, the burst, and docs/semantics.md §5
//! (ProducerFinished after what was queued, ShutdownMicroprocess at once, even mid-wait).

use std::time::Duration;

use axon::{Component, Control, Inbox, Outbox, Scheduler};
use bytes::Bytes;
use kamaelia::util::RateLimiter;
use tokio::time::Instant;

/// Runs `f` on a scheduler; on paused time a hang shows as this timeout, at once.
async fn bounded(f: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(600), Scheduler::new().run(f))
        .await
        .expect("the limiter ends");
}

struct Rig {
    feed: Outbox<Bytes>,
    control: Outbox<Control>,
    out: Inbox<Bytes>,
    signal: Inbox<Control>,
    limiter: Component,
}

fn rig(limiter: RateLimiter) -> Rig {
    let limiter: Component = limiter.into();
    let feed = Outbox::<Bytes>::standalone("feed");
    let control = Outbox::<Control>::standalone("control");
    let out = Inbox::<Bytes>::standalone("out", 1024);
    let signal = Inbox::<Control>::standalone("signal", 16);
    let r = |n: &str| limiter.boxref(n).unwrap();
    axon::link_refs(&feed.boxref(), &r(axon::INBOX)).unwrap();
    axon::link_refs(&control.boxref(), &r(axon::CONTROL)).unwrap();
    axon::link_refs(&r(axon::OUTBOX), &out.boxref()).unwrap();
    axon::link_refs(&r(axon::SIGNAL), &signal.boxref()).unwrap();
    Rig {
        feed,
        control,
        out,
        signal,
        limiter,
    }
}

/// 1 000-byte messages at 10 000 B/s with a 1 000-byte burst: the first goes at once, then one
/// every 100 ms, and ProducerFinished follows the last one.
#[tokio::test(start_paused = true)]
async fn messages_leave_at_the_rate_then_producer_finished() {
    let rig = rig(RateLimiter::new(10_000).burst(1_000));
    bounded(async move {
        let t0 = Instant::now();
        rig.limiter.activate();
        for _ in 0..10 {
            rig.feed.send(Bytes::from(vec![7u8; 1_000])).await.unwrap();
        }
        rig.control
            .send(Control::producer_finished())
            .await
            .unwrap();
        let mut at = Vec::new();
        for _ in 0..10 {
            assert_eq!(rig.out.recv().await.len(), 1_000);
            at.push(Instant::now() - t0);
        }
        assert_eq!(at[0], Duration::ZERO);
        assert_eq!(at[9], Duration::from_millis(900));
        for w in at.windows(2) {
            assert_eq!(w[1] - w[0], Duration::from_millis(100), "{at:?}");
        }
        assert!(rig.signal.recv().await.is_producer_finished());
    })
    .await;
}

/// A message larger than the burst goes when the bucket is full and leaves a debt: the average
/// holds whatever the sizes.
#[tokio::test(start_paused = true)]
async fn a_message_larger_than_the_burst_is_paid_for_afterwards() {
    let rig = rig(RateLimiter::new(1_000).burst(100));
    bounded(async move {
        let t0 = Instant::now();
        rig.limiter.activate();
        rig.feed.send(Bytes::from(vec![0u8; 1_000])).await.unwrap();
        rig.feed.send(Bytes::from(vec![0u8; 100])).await.unwrap();
        rig.out.recv().await;
        // The bucket starts with 100 and is full at 200: the big one waits 100 ms.
        assert_eq!(Instant::now() - t0, Duration::from_millis(100));
        rig.out.recv().await;
        // 1 100 bytes at 1 000 B/s, less the first 100 the bucket held: 1 s.
        assert_eq!(Instant::now() - t0, Duration::from_millis(1_000));
        rig.control
            .send(Control::producer_finished())
            .await
            .unwrap();
    })
    .await;
}

/// ShutdownMicroprocess ends the limiter at once, while it waits for the bucket, and what was
/// queued is dropped.
#[tokio::test(start_paused = true)]
async fn shutdown_ends_it_at_once_even_while_it_waits() {
    let rig = rig(RateLimiter::new(1).burst(1));
    bounded(async move {
        rig.limiter.activate();
        rig.feed.send(Bytes::from_static(b"a")).await.unwrap();
        rig.feed.send(Bytes::from_static(b"bcdef")).await.unwrap();
        assert_eq!(rig.out.recv().await, "a");
        rig.control.send(Control::notice("hi")).await.unwrap();
        rig.control.send(Control::shutdown()).await.unwrap();
        let t0 = Instant::now();
        assert_eq!(rig.signal.recv().await.payload::<&str>(), Some(&"hi"));
        assert!(rig.signal.recv().await.is_shutdown());
        assert!(Instant::now() - t0 < Duration::from_secs(1));
        assert!(rig.out.try_recv().is_none());
    })
    .await;
}

/// With no limit reached (a generous rate) the bytes are the same bytes, in order.
#[tokio::test(start_paused = true)]
async fn the_bytes_pass_unchanged_and_in_order() {
    let rig = rig(RateLimiter::new(u64::MAX));
    bounded(async move {
        rig.limiter.activate();
        for i in 0..100u8 {
            rig.feed
                .send(Bytes::from(vec![i; usize::from(i)]))
                .await
                .unwrap();
        }
        rig.control
            .send(Control::producer_finished())
            .await
            .unwrap();
        for i in 0..100u8 {
            assert_eq!(rig.out.recv().await, vec![i; usize::from(i)]);
        }
        assert!(rig.signal.recv().await.is_producer_finished());
    })
    .await;
}
