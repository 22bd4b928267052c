//! Figure 8: messages per second through Pipelines of pass-through components, beside a chain
//! of bounded tokio mpsc channels of the same length and capacity.
//!
//! Both sides are `crates/axon/benches/pipeline/chain.rs` (the "natural" variant), the file
//! `cargo bench -p axon --bench pipeline` runs too; here the components are wired by
//! [`kamaelia::Pipeline`].
//!
//! Each row is the median of [`ROUNDS_PER_ROUND`] times `--rounds` alternating rounds, with
//! each side's range and the range of the per-round ratios. Both sides run on the suite's
//! runtime (two workers on this two-CPU machine), where which worker each task lands on, and
//! whether the other CPU is free, decide much of the rate: see [`ROUNDS_PER_ROUND`]. The
//! diagnostic rows run the same two sides on one thread each (a `current_thread` runtime on a
//! thread of its own, the same for both), where placement plays no part, and count the
//! thread's CPU time instead of the wall clock's, which the machine's other load stretches.

use std::time::Instant;

use anyhow::{anyhow, ensure, Context as _, Result};
use axon::Scheduler;
use bytes::Bytes;
use kamaelia::Pipeline;

#[path = "../../axon/benches/pipeline/chain.rs"]
mod chain;

use crate::harness::{alternate, median, range, ratio_range, Table};
use crate::Config;
use chain::Msg;

/// Figure 8 measures this many rounds per `--rounds`.
///
/// Its single rounds swing far more than the two sides differ: in session 14's runs the mpsc
/// chain alone moved 64 KiB `Bytes` through one stage at 1.83-4.26 M/s from one run to the
/// next, and the row read 0.95-1.84. Its three tasks (producer, stage, consumer) are spread
/// over the runtime's two workers or not, as wake-ups and work stealing happen to fall, and a
/// `Bytes` clone made on one CPU and dropped on the other moves its count's cache line with
/// it; the other helpers' load on the machine decides how often the second CPU is there at
/// all. The median of three times the rounds is steadier, and the ratio's range is shown
/// beside it.
const ROUNDS_PER_ROUND: usize = 3;

#[derive(Clone, Copy)]
enum Side {
    Pipeline,
    Mpsc,
}

/// Where a side runs: on the suite's runtime, or alone on a thread.
#[derive(Clone, Copy)]
enum Place {
    Suite,
    OneThread,
}

/// The four rows: u64 and 64 KiB `Bytes`, 1 and 10 stages; then the one-stage rows again with
/// each side on one thread, as a diagnosis.
pub(crate) async fn figure(cfg: &Config, table: &mut Table) -> Result<()> {
    let big = Bytes::from(vec![0x5a_u8; 64 * 1024]);
    for len in [1_usize, 10] {
        let n = if len == 1 {
            cfg.msgs_short
        } else {
            cfg.msgs_long
        };
        row(cfg, table, "u64", 0_u64, len, n, Place::Suite).await?;
        row(
            cfg,
            table,
            "64 KiB Bytes",
            big.clone(),
            len,
            n,
            Place::Suite,
        )
        .await?;
    }
    let n = cfg.msgs_short;
    row(cfg, table, "u64", 0_u64, 1, n, Place::OneThread).await?;
    row(cfg, table, "64 KiB Bytes", big, 1, n, Place::OneThread).await?;
    table.note(format!(
        "figure 8: median of {} alternating rounds ({ROUNDS_PER_ROUND} x --rounds), each side's \
         range in brackets: which worker each task lands on swings single rounds more than the \
         sides differ; the diagnostic rows run each side alone on one thread and count its CPU \
         time",
        cfg.rounds * ROUNDS_PER_ROUND
    ));
    Ok(())
}

async fn row<T: Msg>(
    cfg: &Config,
    table: &mut Table,
    what: &str,
    proto: T,
    len: usize,
    n: u64,
    place: Place,
) -> Result<()> {
    let rounds = cfg.rounds * ROUNDS_PER_ROUND;
    let results = alternate(rounds, &[Side::Pipeline, Side::Mpsc], |side| {
        let proto = proto.clone();
        async move {
            let secs = match place {
                Place::Suite => run(side, proto, len, n).await?,
                Place::OneThread => on_one_thread(side, proto, len, n)?,
            };
            Ok(vec![secs])
        }
    })
    .await?;
    let (a, b) = (median(&results[0], 0), median(&results[1], 0));
    let rate = |side: usize, secs: f64| {
        let (lo, hi) = range(&results[side], 0);
        format!(
            "{:.2} M/s ({:.2}–{:.2})",
            n as f64 / secs / 1e6,
            n as f64 / hi / 1e6,
            n as f64 / lo / 1e6
        )
    };
    let (lo, hi) = ratio_range(&results[0], &results[1], 0);
    let label = match place {
        Place::Suite => format!("8 msgs/s, {what}, Pipeline of {len} pass-through vs mpsc chain ({n} msgs)"),
        Place::OneThread => format!(
            "8 (diagnosis) msgs per CPU-second, {what}, Pipeline of {len} vs mpsc chain, each side alone on one thread"
        ),
    };
    let goal = match place {
        Place::Suite => "<= 1.5",
        Place::OneThread => "-",
    };
    table.row_spread(
        label,
        rate(0, a),
        rate(1, b),
        a / b,
        format!("{lo:.2}–{hi:.2}"),
        goal,
    );
    Ok(())
}

/// One run of `side`, on the runtime this is called from; its time in seconds.
async fn run<T: Msg>(side: Side, proto: T, len: usize, n: u64) -> Result<f64> {
    match side {
        Side::Pipeline => ours(proto, len, n).await,
        Side::Mpsc => baseline(proto, len, n).await,
    }
}

/// One run of `side` on a `current_thread` runtime on a thread of its own; the thread's CPU
/// time (user and system) in seconds, which time spent waiting for a CPU does not stretch.
fn on_one_thread<T: Msg>(side: Side, proto: T, len: usize, n: u64) -> Result<f64> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("building a current_thread runtime")?;
            let before = thread_cpu()?;
            rt.block_on(run(side, proto, len, n))?;
            Ok(thread_cpu()? - before)
        })
        .join()
        .map_err(|_| anyhow!("figure 8's thread panicked"))?
    })
}

/// The calling thread's CPU time so far, in seconds.
fn thread_cpu() -> Result<f64> {
    use nix::sys::resource::{getrusage, UsageWho};
    let u = getrusage(UsageWho::RUSAGE_THREAD)?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Ok(secs(u.user_time()) + secs(u.system_time()))
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
