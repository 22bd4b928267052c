//! Figure 6: messages per second through Pipelines of pass-through components, beside a chain
//! of bounded tokio mpsc channels of the same length and capacity.
//!
//! The approach of `crates/axon/benches/pipeline.rs` ("natural" variant), built with
//! [`kamaelia::Pipeline`]: a producer, `len` pass-through stages written as a user writes them
//! first (`select!` on `inbox` and `control`, one `send` per message) and a consumer.

use std::time::Instant;

use anyhow::{ensure, Result};
use axon::{Component, Control, Scheduler, DEFAULT_CAPACITY};
use bytes::Bytes;
use kamaelia::Pipeline;
use tokio::sync::mpsc;

use crate::harness::{alternate, median, Table};
use crate::Config;

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

#[derive(Clone, Copy)]
enum Side {
    Pipeline,
    Mpsc,
}

/// The four rows: u64 and 64 KiB `Bytes`, 1 and 10 stages.
pub(crate) async fn figure(cfg: &Config, table: &mut Table) -> Result<()> {
    let big = Bytes::from(vec![0x5a_u8; 64 * 1024]);
    for len in [1_usize, 10] {
        let n = if len == 1 {
            cfg.msgs_short
        } else {
            cfg.msgs_long
        };
        row(cfg, table, "u64", 0_u64, len, n).await?;
        row(cfg, table, "64 KiB Bytes", big.clone(), len, n).await?;
    }
    Ok(())
}

async fn row<T: Msg>(
    cfg: &Config,
    table: &mut Table,
    what: &str,
    proto: T,
    len: usize,
    n: u64,
) -> Result<()> {
    let results = alternate(cfg.rounds, &[Side::Pipeline, Side::Mpsc], |side| {
        let proto = proto.clone();
        async move {
            let secs = match side {
                Side::Pipeline => ours(proto, len, n).await?,
                Side::Mpsc => baseline(proto, len, n).await?,
            };
            Ok(vec![secs])
        }
    })
    .await?;
    let (a, b) = (median(&results[0], 0), median(&results[1], 0));
    table.row(
        format!("6 msgs/s, {what}, Pipeline of {len} pass-through vs mpsc chain ({n} msgs)"),
        format!("{:.2} M/s", n as f64 / a / 1e6),
        format!("{:.2} M/s", n as f64 / b / 1e6),
        a / b,
        "<= 1.5",
    );
    Ok(())
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

fn stage<T: Msg>() -> Component {
    let mut b = Component::build("PassThrough");
    let inbox = b.inbox::<T>("inbox", "messages");
    let outbox = b.outbox::<T>("outbox", "the same messages");
    let control = b.control();
    let signal = b.signal();
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

fn consumer<T: Msg>(n: u64) -> Component {
    let mut b = Component::build("Consumer");
    let inbox = b.inbox::<T>("inbox", "messages");
    let control = b.control();
    b.signal();
    b.main(move |_cx| async move {
        let mut got = 0_u64;
        loop {
            tokio::select! {
                _ = inbox.recv() => got += 1,
                _ = control.recv() => {
                    while inbox.try_recv().is_some() {
                        got += 1;
                    }
                    if got != n {
                        return Err(format!("consumed {got} of {n}").into());
                    }
                    return Ok(());
                }
            }
        }
    })
}

async fn ours<T: Msg>(proto: T, len: usize, n: u64) -> Result<f64> {
    let mut chain = vec![producer(proto, n)];
    chain.extend((0..len).map(|_| stage::<T>()));
    chain.push(consumer::<T>(n));
    let pipeline = Pipeline::new(chain)?;
    let start = Instant::now();
    let report = Scheduler::new()
        .run(async {
            pipeline.activate();
        })
        .await;
    let t = start.elapsed().as_secs_f64();
    ensure!(report.is_ok(), "{:?}", report.failures);
    Ok(t)
}

async fn baseline<T: Msg>(proto: T, len: usize, n: u64) -> Result<f64> {
    let start = Instant::now();
    let (first_tx, mut rx) = mpsc::channel::<T>(DEFAULT_CAPACITY);
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(async move {
        for i in 0..n {
            if first_tx.send(T::nth(&proto, i)).await.is_err() {
                return 0;
            }
        }
        0
    }));
    for _ in 0..len {
        let (tx, next_rx) = mpsc::channel::<T>(DEFAULT_CAPACITY);
        let mut stage_rx = std::mem::replace(&mut rx, next_rx);
        tasks.push(tokio::spawn(async move {
            while let Some(m) = stage_rx.recv().await {
                if tx.send(m).await.is_err() {
                    break;
                }
            }
            0
        }));
    }
    tasks.push(tokio::spawn(async move {
        let mut got = 0_u64;
        while rx.recv().await.is_some() {
            got += 1;
        }
        got
    }));
    let mut got = 0;
    for t in tasks {
        got = t.await?;
    }
    ensure!(got == n, "mpsc chain delivered {got} of {n}");
    Ok(start.elapsed().as_secs_f64())
}
