//! `kamaelia-bench`: the benchmark suite of issues 5 and 11. Runs each figure beside its
//! hand-written tokio baseline (and the command-line peers where present) in the same run, in
//! alternating rounds, and prints one table of medians. Figures 1-6 run the `kamaelia` program
//! and its yardsticks (`base-send`, `base-recv`, `base-relay`, built beside this program) as
//! separate processes under the `measure` wrapper, against servers in processes of their own.
//!
//! ```text
//! benches/run.sh            # release build, raised open-file limit, full sizes
//! benches/run.sh --quick    # small sizes: a smoke test in well under a minute
//! kamaelia-bench --rounds 3 --only 1,5
//! ```
//!
//! Every ratio is ours / baseline as a cost (time, latency, memory), so below 1 means ours is
//! better, whatever unit the row shows. Loopback only.

mod certs;
mod conns;
mod harness;
mod latency;
mod pin;
mod pipeline;
mod procs;
mod servers;
mod tls_switch;
mod tools;
mod whole;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};

use crate::certs::Pki;
use crate::harness::{size, Table};

/// The benchmark suite: `kamaelia` and the library beside the simplest hand-written programs.
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
    /// Figures to run, e.g. `1,4,6` (default: all, 1 to 9).
    #[arg(long, value_delimiter = ',')]
    only: Vec<u8>,
    /// The `kamaelia` program (default: next to this binary).
    #[arg(long)]
    kamaelia: Option<PathBuf>,
    /// Bytes for figures 1-4, overriding the mode's size (k, M, G suffixes: 256M).
    #[arg(long)]
    bulk: Option<String>,
    /// Concurrent connections in figure 7, overriding the mode's count.
    #[arg(long)]
    conns: Option<usize>,
    /// Figure 7's model rows (a diagnostic): for each list of block sizes in bytes (lists
    /// separated by `;`, e.g. `272,96;272,96,176;none`), a row of the hand-written clients in a task
    /// of our group's size, each also holding heap blocks of those sizes (no runtime).
    #[arg(long)]
    model_blocks: Option<String>,
    #[command(subcommand)]
    child: Option<Role>,
}

/// The suite's child processes (started by the suite itself).
#[derive(Subcommand)]
enum Role {
    /// Runs a program as the only child and writes its wall time, CPU and peak RSS to a file.
    #[command(hide = true)]
    Measure {
        #[arg(long)]
        report: PathBuf,
        /// The child's stdin is null; the end of ours stops it (SIGTERM).
        #[arg(long)]
        stop_on_eof: bool,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        argv: Vec<std::ffi::OsString>,
    },
    /// A discard server: prints its port, then each connection's byte count.
    #[command(hide = true)]
    Sink {
        #[arg(long, requires = "key")]
        cert: Option<PathBuf>,
        #[arg(long, requires = "cert")]
        key: Option<PathBuf>,
    },
    /// An echo server: prints its port.
    #[command(hide = true)]
    Echo,
    /// Figure 7's server process.
    #[command(hide = true)]
    ChildServer {
        #[arg(long, value_enum)]
        side: conns::Side,
    },
    /// Figure 7's clients process.
    #[command(hide = true)]
    ChildClients {
        #[arg(long, value_enum)]
        side: conns::Side,
        #[arg(long)]
        addr: std::net::SocketAddr,
        #[arg(long)]
        n: usize,
        /// How the connections are made (one at a time, or all first).
        #[arg(long, value_enum, default_value = "each")]
        order: conns::Order,
        /// The model's block sizes (`--side model`), comma-separated.
        #[arg(long, value_delimiter = ',')]
        blocks: Vec<usize>,
    },
}

/// Sizes and settings every figure reads.
pub(crate) struct Config {
    pub(crate) rounds: usize,
    pub(crate) workers: usize,
    /// Figures 1-4: bytes per transfer.
    pub(crate) bulk: u64,
    /// Figure 8: round trips through the library and the hand-written responder.
    pub(crate) pings: usize,
    /// Figure 6: round trips through each command-line relay (each is a process and two pipes).
    pub(crate) relay_pings: usize,
    /// Figure 7: concurrent connections.
    pub(crate) conns: usize,
    /// Figure 7: the model rows' block sizes, one list a row.
    pub(crate) model_blocks: Vec<Vec<usize>>,
    /// Figure 8: messages through 1 stage, and through 10.
    pub(crate) msgs_short: u64,
    pub(crate) msgs_long: u64,
    /// Figure 9: TLS switch sessions per round.
    pub(crate) switches: usize,
    /// Figure 5: processes per side per round.
    pub(crate) startup_reps: usize,
    pub(crate) kamaelia: PathBuf,
    /// Scratch files: the bulk file, the CA's PEM.
    pub(crate) dir: PathBuf,
    pub(crate) pki: Arc<Pki>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    // The processes that must not pay for (or share) the suite's runtime.
    match args.child {
        Some(Role::Measure {
            report,
            stop_on_eof,
            argv,
        }) => {
            let code = procs::measure_main(&report, stop_on_eof, &argv)?;
            std::process::exit(code);
        }
        Some(Role::Sink { cert, key }) => return procs::sink_main(cert.zip(key)),
        Some(Role::Echo) => return procs::echo_main(),
        _ => {}
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers.max(1))
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    match args.child {
        Some(Role::ChildServer { side }) => rt.block_on(conns::child_server(side)),
        Some(Role::ChildClients {
            side,
            order,
            addr,
            n,
            blocks,
        }) => rt.block_on(conns::child_clients(side, order, addr, n, blocks)),
        _ => rt.block_on(suite(&args)),
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
        model_blocks: conns::parse_model_blocks(args.model_blocks.as_deref())?,
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
        (1, "bulk send, whole processes"),
        (2, "bulk send over TLS, whole processes"),
        (3, "bulk receive (listen > file), whole processes"),
        (4, "relay (forward), whole processes"),
        (5, "start-up, whole processes"),
        (6, "ping-pong, command-line relays"),
        (7, "concurrent connections"),
        (8, "pipelines"),
        (8, "ping-pong, library"),
        (9, "TLS switches"),
    ];
    for (i, (fig, name)) in figures.iter().enumerate() {
        if !args.only.is_empty() && !args.only.contains(fig) {
            continue;
        }
        let t = Instant::now();
        eprintln!("figure {fig}: {name} ...");
        let r = match i {
            0 => whole::send(&cfg, &mut table, false).await,
            1 => whole::send(&cfg, &mut table, true).await,
            2 => whole::receive(&cfg, &mut table).await,
            3 => whole::forward(&cfg, &mut table).await,
            4 => whole::startup(&cfg, &mut table).await,
            5 => latency::relays(&cfg, &mut table).await,
            6 => conns::figure(&cfg, &mut table).await,
            7 => pipeline::figure(&cfg, &mut table).await,
            8 => latency::library(&cfg, &mut table).await,
            _ => tls_switch::figure(&cfg, &mut table).await,
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
