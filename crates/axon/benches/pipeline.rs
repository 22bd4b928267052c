//! Messages per second through a chain of pass-through components, beside a hand-written chain
//! of bounded tokio mpsc channels of the same length and capacity, measured in the same run.
//!
//! `cargo bench -p axon --bench pipeline`. Each case runs a producer, `LEN` pass-through stages
//! and a consumer. Rounds alternate which side goes first; each figure is the median of
//! `ROUNDS` rounds after one warm-up round. Variants:
//!
//! * natural: the component a user writes first: `select!` on `inbox.recv()` and
//!   `control.recv()`, one `send` per message, ending on the final control message (after
//!   forwarding what is still queued). The mpsc stage is `while let Some(m) = rx.recv()`.
//! * batched: the same with `recv_many(.., 64)`; the mpsc stage uses its `recv_many` too.
//!
//! The 64 KiB `Bytes` messages share one buffer (a `Bytes` clone is a reference count), as a
//! zero-copy reader would produce them: the figure is per message, not a memory bandwidth.

use std::time::{Duration, Instant};

use axon::{link_refs, Component, Control, Scheduler};
use bytes::Bytes;
use tokio::sync::mpsc;

const CAPACITY: usize = 64;
const ROUNDS: usize = 5;
const BATCH: usize = 64;

/// A message the benchmark can make many of.
trait Msg: Clone + Send + Sync + 'static {
    fn nth(proto: &Self, i: u64) -> Self;
}

impl Msg for u64 {
    fn nth(_: &Self, i: u64) -> Self {
        i
    }
}

impl Msg for Bytes {
    fn nth(proto: &Self, _: u64) -> Self {
        proto.clone()
    }
}

fn producer<T: Msg>(proto: T, n: u64) -> Component {
    let mut b = Component::build("Producer");
    let out = b.outbox::<T>("outbox", "n messages");
    let signal = b.signal();
    b.control();
    b.main(move |_cx| async move {
        for i in 0..n {
            out.send(T::nth(&proto, i)).await?;
        }
        signal.send(Control::producer_finished()).await?;
        Ok(())
    })
}

/// The pass-through stage as a user writes it first.
fn stage<T: Msg>(batched: bool) -> Component {
    let mut b = Component::build("PassThrough");
    let inbox = b.inbox::<T>("inbox", "messages");
    let outbox = b.outbox::<T>("outbox", "the same messages");
    let control = b.control();
    let signal = b.signal();
    if batched {
        return b.main(move |_cx| async move {
            let mut buf = Vec::with_capacity(BATCH);
            loop {
                tokio::select! {
                    _ = inbox.recv_many(&mut buf, BATCH) => {
                        for m in buf.drain(..) {
                            outbox.send(m).await?;
                        }
                    }
                    c = control.recv() => {
                        while let Some(m) = inbox.try_recv() {
                            outbox.send(m).await?;
                        }
                        signal.send(c).await?;
                        return Ok(());
                    }
                }
            }
        });
    }
    b.main(move |_cx| async move {
        loop {
            tokio::select! {
                m = inbox.recv() => outbox.send(m).await?,
                c = control.recv() => {
                    while let Some(m) = inbox.try_recv() {
                        outbox.send(m).await?;
                    }
                    signal.send(c).await?;
                    return Ok(());
                }
            }
        }
    })
}

fn consumer<T: Msg>(n: u64, batched: bool) -> Component {
    let mut b = Component::build("Consumer");
    let inbox = b.inbox::<T>("inbox", "messages");
    let control = b.control();
    b.main(move |_cx| async move {
        let mut got = 0u64;
        let mut buf = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                _ = inbox.recv_many(&mut buf, BATCH), if batched => {
                    got += buf.len() as u64;
                    buf.clear();
                }
                _ = inbox.recv(), if !batched => got += 1,
                _ = control.recv() => {
                    while inbox.try_recv().is_some() {
                        got += 1;
                    }
                    assert_eq!(got, n);
                    return Ok(());
                }
            }
        }
    })
}

async fn ours<T: Msg>(proto: T, len: usize, n: u64, batched: bool) -> Duration {
    let mut chain = vec![producer(proto, n)];
    chain.extend((0..len).map(|_| stage::<T>(batched)));
    chain.push(consumer::<T>(n, batched));
    for w in chain.windows(2) {
        link_refs(
            &w[0].boxref("outbox").unwrap(),
            &w[1].boxref("inbox").unwrap(),
        )
        .unwrap();
        link_refs(
            &w[0].boxref("signal").unwrap(),
            &w[1].boxref("control").unwrap(),
        )
        .unwrap();
    }
    let sched = Scheduler::new();
    let start = Instant::now();
    let report = sched
        .run(async {
            for c in chain {
                c.activate();
            }
        })
        .await;
    let t = start.elapsed();
    assert!(report.is_ok(), "{:?}", report.failures);
    t
}

async fn baseline<T: Msg>(proto: T, len: usize, n: u64, batched: bool) -> Duration {
    let start = Instant::now();
    let (first_tx, mut rx) = mpsc::channel::<T>(CAPACITY);
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(async move {
        for i in 0..n {
            first_tx.send(T::nth(&proto, i)).await.unwrap();
        }
    }));
    for _ in 0..len {
        let (tx, next_rx) = mpsc::channel::<T>(CAPACITY);
        let mut stage_rx = std::mem::replace(&mut rx, next_rx);
        tasks.push(tokio::spawn(async move {
            if batched {
                let mut buf = Vec::with_capacity(BATCH);
                while stage_rx.recv_many(&mut buf, BATCH).await > 0 {
                    for m in buf.drain(..) {
                        tx.send(m).await.unwrap();
                    }
                }
            } else {
                while let Some(m) = stage_rx.recv().await {
                    tx.send(m).await.unwrap();
                }
            }
        }));
    }
    tasks.push(tokio::spawn(async move {
        let mut got = 0u64;
        if batched {
            let mut buf = Vec::with_capacity(BATCH);
            loop {
                let k = rx.recv_many(&mut buf, BATCH).await;
                if k == 0 {
                    break;
                }
                got += k as u64;
                buf.clear();
            }
        } else {
            while rx.recv().await.is_some() {
                got += 1;
            }
        }
        assert_eq!(got, n);
    }));
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Row {
    case: String,
    ours: f64,
    mpsc: f64,
    ratio: f64,
}

async fn measure<T: Msg>(case: &str, proto: T, len: usize, n: u64, batched: bool) -> Row {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for round in 0..=ROUNDS {
        let (x, y) = if round % 2 == 0 {
            let x = ours(proto.clone(), len, n, batched).await;
            (x, baseline(proto.clone(), len, n, batched).await)
        } else {
            let y = baseline(proto.clone(), len, n, batched).await;
            (ours(proto.clone(), len, n, batched).await, y)
        };
        if round > 0 {
            a.push(x);
            b.push(y);
        }
    }
    let (ta, tb) = (median(a), median(b));
    Row {
        case: case.to_string(),
        ours: n as f64 / ta.as_secs_f64(),
        mpsc: n as f64 / tb.as_secs_f64(),
        ratio: ta.as_secs_f64() / tb.as_secs_f64(),
    }
}

fn main() {
    let scale: f64 = std::env::var("PIPELINE_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let n = |base: u64| ((base as f64 * scale) as u64).max(1_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let big = Bytes::from(vec![0x5a_u8; 64 * 1024]);
    let started = Instant::now();
    let rows = rt.block_on(async {
        let mut rows = Vec::new();
        for batched in [false, true] {
            let variant = if batched { "batched" } else { "natural" };
            for len in [1usize, 10] {
                let msgs = if len == 1 { n(1_000_000) } else { n(200_000) };
                rows.push(
                    measure(
                        &format!("u64, {len} stage(s), {variant}"),
                        0_u64,
                        len,
                        msgs,
                        batched,
                    )
                    .await,
                );
                rows.push(
                    measure(
                        &format!("64 KiB Bytes, {len} stage(s), {variant}"),
                        big.clone(),
                        len,
                        msgs,
                        batched,
                    )
                    .await,
                );
            }
        }
        rows
    });
    println!(
        "pipeline: tokio multi-thread runtime, 2 workers; capacity {CAPACITY}; median of {ROUNDS} alternating rounds"
    );
    println!("| case | ours msg/s | mpsc msg/s | ratio (ours time / mpsc time) |");
    println!("|---|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.2} |",
            r.case, r.ours, r.mpsc, r.ratio
        );
    }
    println!("total {:.1} s", started.elapsed().as_secs_f64());
}
