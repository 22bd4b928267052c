//! `kamaelia-bench`: the benchmark suite of issue 5. Runs each figure beside its hand-written
//! tokio baseline (and the command-line peers where present) in the same run, in alternating
//! rounds, and prints one table of medians.
//!
//! ```text
//! benches/run.sh            # release build, raised open-file limit, full sizes
//! benches/run.sh --quick    # small sizes: a smoke test in well under a minute
//! kamaelia-bench --rounds 3 --only 1,6
//! ```
//!
//! Every ratio is ours / baseline as a cost (time, latency, memory), so below 1 means ours is
//! better, whatever unit the row shows. Loopback only.

mod bulk;
mod certs;
mod conns;
mod harness;
mod latency;
mod pipeline;
mod servers;
mod tls_switch;
mod tools;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};

use crate::certs::Pki;
use crate::harness::{size, Table};

/// The benchmark suite of issue 5: the library and `kamaelia` beside hand-written baselines.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Small sizes, so the whole suite runs in seconds (a smoke test; figures are not meaningful).
    #[arg(long)]
    quick: bool,
    /// Measured rounds per figure (after one warm-up round); medians are over these.
    #[arg(long)]
    rounds: Option<usize>,
    /// Tokio worker threads (the goal's machine has 2 cores).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Figures to run, e.g. `1,4,6` (default: all, 1 to 8).
    #[arg(long, value_delimiter = ',')]
    only: Vec<u8>,
    /// The `kamaelia` program (default: next to this binary).
    #[arg(long)]
    kamaelia: Option<PathBuf>,
    /// Bytes for figures 1-3, overriding the mode's size (k, M, G suffixes: 256M).
    #[arg(long)]
    bulk: Option<String>,
    /// Concurrent connections in figure 5, overriding the mode's count.
    #[arg(long)]
    conns: Option<usize>,
    #[command(subcommand)]
    child: Option<Child>,
}

/// Figure 5's child processes (started by the suite itself).
#[derive(Subcommand)]
enum Child {
    /// Figure 5's server process.
    #[command(hide = true)]
    ChildServer {
        #[arg(long, value_enum)]
        side: conns::Side,
    },
    /// Figure 5's clients process.
    #[command(hide = true)]
    ChildClients {
        #[arg(long, value_enum)]
        side: conns::Side,
        #[arg(long)]
        addr: std::net::SocketAddr,
        #[arg(long)]
        n: usize,
    },
}

/// Sizes and settings every figure reads.
pub(crate) struct Config {
    pub(crate) rounds: usize,
    pub(crate) workers: usize,
    /// Figures 1-3: bytes per transfer.
    pub(crate) bulk: u64,
    /// Figure 4: round trips through the library and the hand-written responder.
    pub(crate) pings: usize,
    /// Figure 4: round trips through each command-line relay (each is a process and two pipes).
    pub(crate) relay_pings: usize,
    /// Figure 5: concurrent connections.
    pub(crate) conns: usize,
    /// Figure 6: messages through 1 stage, and through 10.
    pub(crate) msgs_short: u64,
    pub(crate) msgs_long: u64,
    /// Figure 7: TLS switch sessions per round.
    pub(crate) switches: usize,
    /// Figure 8: processes per side per round.
    pub(crate) startup_reps: usize,
    pub(crate) kamaelia: PathBuf,
    /// Scratch files: the bulk file, the CA's PEM.
    pub(crate) dir: PathBuf,
    pub(crate) pki: Arc<Pki>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers.max(1))
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    match args.child {
        Some(Child::ChildServer { side }) => rt.block_on(conns::child_server(side)),
        Some(Child::ChildClients { side, addr, n }) => {
            rt.block_on(conns::child_clients(side, addr, n))
        }
        None => rt.block_on(suite(&args)),
    }
}

async fn suite(args: &Args) -> Result<()> {
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("kamaelia-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let kamaelia = match &args.kamaelia {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("kamaelia"),
    };
    let bulk = match &args.bulk {
        Some(s) => parse_size(s)?,
        None if args.quick => 64 << 20,
        None => 1 << 30,
    };
    let q = args.quick;
    let cfg = Config {
        rounds: args.rounds.unwrap_or(if q { 3 } else { 5 }).max(1),
        workers: args.workers.max(1),
        bulk,
        pings: if q { 2_000 } else { 100_000 },
        relay_pings: if q { 500 } else { 20_000 },
        conns: args.conns.unwrap_or(if q { 500 } else { 10_000 }),
        msgs_short: if q { 50_000 } else { 1_000_000 },
        msgs_long: if q { 20_000 } else { 200_000 },
        switches: if q { 100 } else { 2_000 },
        startup_reps: if q { 5 } else { 20 },
        kamaelia,
        pki: Arc::new(Pki::new(&dir)?),
        dir: dir.clone(),
    };
    let mut table = Table::default();
    let figures: [(u8, &str); 10] = [
        (1, "bulk send"),
        (2, "bulk send over TLS"),
        (2, "bulk send, STARTTLS"),
        (3, "bulk receive"),
        (4, "ping-pong, library"),
        (4, "ping-pong, command-line relays"),
        (5, "concurrent connections"),
        (6, "pipelines"),
        (7, "TLS switches"),
        (8, "start-up"),
    ];
    for (i, (fig, name)) in figures.iter().enumerate() {
        if !args.only.is_empty() && !args.only.contains(fig) {
            continue;
        }
        let t = Instant::now();
        eprintln!("figure {fig}: {name} ...");
        let r = match i {
            0 => bulk::send(&cfg, &mut table, bulk::Mode::Plain).await,
            1 => bulk::send(&cfg, &mut table, bulk::Mode::Tls).await,
            2 => bulk::send(&cfg, &mut table, bulk::Mode::StartTls).await,
            3 => bulk::receive(&cfg, &mut table).await,
            4 => latency::library(&cfg, &mut table).await,
            5 => latency::relays(&cfg, &mut table).await,
            6 => conns::figure(&cfg, &mut table).await,
            7 => pipeline::figure(&cfg, &mut table).await,
            8 => tls_switch::figure(&cfg, &mut table).await,
            _ => latency::startup(&cfg, &mut table).await,
        };
        if let Err(e) = r {
            table.note(format!("figure {fig} ({name}) failed: {e:#}"));
        }
        eprintln!("figure {fig}: {name}: {:.1} s", t.elapsed().as_secs_f64());
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "kamaelia-bench{}: {} tokio workers on {} CPUs; median of {} alternating rounds after a warm-up; bulk {}; ratio = ours / baseline as a cost (lower is better)\n",
        if q { " --quick (smoke test: sizes too small to mean much)" } else { "" },
        cfg.workers,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cfg.rounds,
        size(cfg.bulk),
    );
    print!("{}", table.render());
    println!("\ntotal {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let (digits, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1 << 10),
        Some((i, 'm' | 'M')) => (&s[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = digits
        .parse()
        .with_context(|| format!("not a size: {s:?}"))?;
    Ok(n * mult)
}
