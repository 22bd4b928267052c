//! Figure 8: messages per second through Pipelines of pass-through components, beside a chain
//! of bounded tokio mpsc channels of the same length and capacity.
//!
//! Both sides are `crates/axon/benches/pipeline/chain.rs` (the "natural" variant), the file
//! `cargo bench -p axon --bench pipeline` runs too; here the components are wired by
//! [`kamaelia::Pipeline`].

use std::time::Instant;

use anyhow::{anyhow, ensure, Result};
use axon::Scheduler;
use bytes::Bytes;
use kamaelia::Pipeline;

#[path = "../../axon/benches/pipeline/chain.rs"]
mod chain;

use crate::harness::{alternate, median, Table};
use crate::Config;
use chain::Msg;

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
        format!("8 msgs/s, {what}, Pipeline of {len} pass-through vs mpsc chain ({n} msgs)"),
        format!("{:.2} M/s", n as f64 / a / 1e6),
        format!("{:.2} M/s", n as f64 / b / 1e6),
        a / b,
        "<= 1.5",
    );
    Ok(())
}

async fn ours<T: Msg>(proto: T, len: usize, n: u64) -> Result<f64> {
    let pipeline = Pipeline::new(chain::components(proto, len, n, false))?;
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
    let t = chain::baseline(proto, len, n, false)
        .await
        .map_err(|e| anyhow!(e))?;
    Ok(t.as_secs_f64())
}
