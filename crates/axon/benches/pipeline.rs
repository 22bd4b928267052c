//! Messages per second through a chain of pass-through components, beside a hand-written chain
//! of bounded tokio mpsc channels of the same length and capacity, measured in the same run.
//!
//! `cargo bench -p axon --bench pipeline`. Each case runs a producer, `LEN` pass-through stages
//! and a consumer. Rounds alternate which side goes first; each figure is the median of
//! `ROUNDS` rounds after one warm-up round. Both sides and both variants (natural, batched) are
//! in `pipeline/chain.rs`, which the benchmark suite's figure 6 includes too.
//!
//! The 64 KiB `Bytes` messages share one buffer (a `Bytes` clone is a reference count), as a
//! zero-copy reader would produce them: the figure is per message, not a memory bandwidth.

use std::time::{Duration, Instant};

use axon::{link_refs, Scheduler, DEFAULT_CAPACITY};
use bytes::Bytes;

#[path = "pipeline/chain.rs"]
mod chain;

use chain::Msg;

const ROUNDS: usize = 5;

async fn ours<T: Msg>(proto: T, len: usize, n: u64, batched: bool) -> Duration {
    let chain = chain::components(proto, len, n, batched);
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
    chain::baseline(proto, len, n, batched).await.unwrap()
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
        "pipeline: tokio multi-thread runtime, 2 workers; capacity {DEFAULT_CAPACITY}; median of {ROUNDS} alternating rounds"
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
