//! Figures 1-5: the `kamaelia` program against the simplest hand-written programs (this
//! crate's `base-send`, `base-recv` and `base-relay`), each a whole process run under the
//! `measure` wrapper, against a sink or a sender in a third process, rounds alternating.
//! Each row pair reports wall time, CPU (user + system), user CPU and peak RSS.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context as _, Result};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::harness::{alternate, median, range, ratio_range, size, Sample, Table};
use crate::pin::OneCpu;
use crate::procs::ServerProc;
use crate::tools::{self, Fill, Stdin, Tool};
use crate::Config;

/// How long one bulk transfer may take.
const LIMIT: Duration = Duration::from_secs(120);

/// The metrics of a [`crate::procs::Usage`] sample, with how each is shown.
const METRICS: [(&str, Unit); 4] = [
    ("wall", Unit::Time),
    ("CPU", Unit::Time),
    ("user CPU", Unit::Time),
    ("peak RSS", Unit::Memory),
];

#[derive(Clone, Copy)]
enum Unit {
    Time,
    Memory,
}

fn show(unit: Unit, v: f64, small: bool) -> String {
    match unit {
        Unit::Time if small => format!("{:.2} ms", v * 1e3),
        Unit::Time => format!("{v:.3} s"),
        Unit::Memory => format!("{:.1} MiB", v / 1024.0),
    }
}

/// One row per metric: side `a` (ours) against side `b`, medians with their min–max, and the
/// range of the per-round ratios (for user CPU, whose goal is a difference: ours − baseline). `goals[m]` is metric m's goal ("-" for none).
fn usage_rows(
    table: &mut Table,
    label: &str,
    results: &[Vec<Sample>],
    (a, b): (usize, usize),
    goals: [&str; 4],
    small: bool,
) {
    for (m, (metric, unit)) in METRICS.iter().enumerate() {
        let cell = |side: usize| {
            let (lo, hi) = range(&results[side], m);
            format!(
                "{} ({}–{})",
                show(*unit, median(&results[side], m), small),
                show(*unit, lo, small),
                show(*unit, hi, small)
            )
        };
        let (ours, base) = (median(&results[a], m), median(&results[b], m));
        // User CPU: the goal is a difference (the baseline's can be near zero).
        let (ratio, spread) = if *metric == "user CPU" {
            let diff = ours - base;
            let sign = if diff < 0.0 { "-" } else { "+" };
            (
                f64::NAN,
                format!("{sign}{}", show(*unit, diff.abs(), small)),
            )
        } else {
            let (lo, hi) = ratio_range(&results[a], &results[b], m);
            (ours / base, format!("{lo:.2}–{hi:.2}"))
        };
        table.row_spread(
            format!("{label}: {metric}"),
            cell(a),
            cell(b),
            ratio,
            spread,
            goals[m],
        );
    }
}

/// A program built beside this one (the baselines), as a [`Tool`].
fn baseline(name: &str, args: &[&str], stdin: Stdin) -> Option<Tool> {
    let exe = std::env::current_exe().ok()?;
    Tool::find(name, &exe.with_file_name(name), args, stdin)
}

/// Whether `kamaelia` has the subcommand `sub` (it is being built by another part of the work).
async fn has_subcommand(kamaelia: &Path, sub: &str) -> bool {
    Command::new(kamaelia)
        .args([sub, "--help"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// A sparse file of `n` bytes: every program reads the same zero pages, no disk involved.
fn bulk_file(cfg: &Config, n: u64) -> Result<PathBuf> {
    let file = cfg.dir.join("bulk");
    std::fs::File::create(&file)?.set_len(n)?;
    Ok(file)
}

/// `kamaelia send`, `base-send` and `nc -N` sending `{file}` to `{port}`, those that exist.
fn plain_senders(cfg: &Config) -> Vec<Tool> {
    let mut found = Vec::new();
    found.extend(Tool::find(
        "kamaelia send",
        &cfg.kamaelia,
        &["send", "127.0.0.1", "{port}", "{file}"],
        Stdin::Null,
    ));
    found.extend(baseline(
        "base-send",
        &["127.0.0.1", "{port}", "{file}"],
        Stdin::Null,
    ));
    found.extend(Tool::find(
        "nc",
        "nc".as_ref(),
        &["-N", "127.0.0.1", "{port}"],
        Stdin::File,
    ));
    found
}

/// Where figure 2's sender and sink run: each on a CPU of its own, the same two for every
/// program measured.
///
/// Left to the scheduler, a TLS sender and its sink were sometimes put on the same CPU, taking
/// turns (about 1.0 s per GiB for every sender, the system time halved), and sometimes on two
/// (about 0.6 s): the baseline read 0.40 or 0.76 s per GiB from one run to the next, and a
/// ratio depended on which placement each side happened to get. Pinned with `taskset` (sender
/// on CPU 0, sink on CPU 1), every round of every program is measured on the same placement:
/// the two-CPU one, as a sender and a receiver on different machines would be.
struct Placement {
    /// `taskset`, if it is there and the machine has two CPUs to spare.
    taskset: Option<PathBuf>,
}

impl Placement {
    /// The sender's CPU and the sink's.
    const SENDER: &'static str = "0";
    const SINK: &'static str = "1";

    /// Pins the sink's threads to [`Placement::SINK`]; unpinned (with a note) if it cannot.
    fn new(table: &mut Table, what: &str, sink: &ServerProc) -> Placement {
        let two = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
        let taskset = two.then(|| tools::locate("taskset".as_ref())).flatten();
        let pinned = taskset.as_ref().zip(sink.pid()).is_some_and(|(t, pid)| {
            std::process::Command::new(t)
                .args(["-a", "-p", "-c", Self::SINK, &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        if !pinned {
            table.note(format!(
                "{what}: sender and sink not pinned to CPUs (needs taskset and two CPUs); \
                 wall times depend on where the scheduler puts them"
            ));
        }
        Placement {
            taskset: taskset.filter(|_| pinned),
        }
    }

    /// `program args` as a sender on [`Placement::SENDER`] (as it is if not pinning).
    fn sender(&self, name: &str, program: &Path, args: &[&str]) -> Option<Tool> {
        let Some(taskset) = &self.taskset else {
            return Tool::find(name, program, args, Stdin::Null);
        };
        let program = tools::locate(program)?;
        let program = program.to_str()?;
        let mut pinned = vec!["-c", Self::SENDER, program];
        pinned.extend_from_slice(args);
        Tool::find(name, taskset, &pinned, Stdin::Null)
    }
}

/// Figures 1 and 2 measure this many rounds per `--rounds`.
///
/// Their single rounds swing far more than the difference they are there to show. Figure 2:
/// over 1 GiB, pinned ([`Placement`]), per-round wall ratios spanned 0.70-1.66 in session 6's
/// runs and 0.65-1.47 in session 7's, while the two senders' CPU differs by 5-10%; the median
/// of 9 rounds read 0.84-1.24 over six runs of the same code. Figure 1 (session 15, load
/// average 5-12 from other work on the machine's 2 CPUs): per-round wall ratios 0.69-2.38,
/// the median of 10 rounds 0.97 and 1.08 in two runs of the same binary, each sender's wall
/// 0.75-2.6 s a GiB for 0.3-0.6 s of CPU: the rest is waiting for a CPU. Pinning the sender
/// and the sink (as figure 2 does) made it worse under that load (median wall 5.3 s for
/// base-send, 6.4 s for ours, against 1.9 and 1.8 s unpinned), as neither could move off a
/// busy CPU. Three times the rounds narrow the median's spread by
/// about the square root of three, every sender measured in every round as before.
const SEND_ROUNDS_PER_ROUND: usize = 3;

/// Figures 1 (plain) and 2 (TLS): `kamaelia send` of the bulk file against `base-send`, and
/// the peers (socat, nc, ncat) for reference; the sink is a process of its own. Both run
/// [`SEND_ROUNDS_PER_ROUND`] times the rounds; figure 2 runs every sender and the sink on
/// fixed CPUs ([`Placement`]).
pub(crate) async fn send(cfg: &Config, table: &mut Table, tls: bool) -> Result<()> {
    let fig = if tls { 2 } else { 1 };
    let what = format!("figure {fig}");
    let sink = ServerProc::sink(tls.then(|| cfg.pki.server_pem_files())).await?;
    let mut found = Vec::new();
    if tls {
        let place = Placement::new(table, &what, &sink);
        found.extend(place.sender(
            "kamaelia send --tls",
            &cfg.kamaelia,
            &[
                "send",
                "--tls",
                "--ca",
                "{ca}",
                "127.0.0.1",
                "{port}",
                "{file}",
            ],
        ));
        if let Ok(exe) = std::env::current_exe() {
            found.extend(place.sender(
                "base-send",
                &exe.with_file_name("base-send"),
                &["--tls", "{ca}", "127.0.0.1", "{port}", "{file}"],
            ));
        }
        found.extend(place.sender(
            "socat",
            "socat".as_ref(),
            &[
                "-u",
                "FILE:{file}",
                "OPENSSL:127.0.0.1:{port},cafile={ca},verify=1",
            ],
        ));
    } else {
        found.extend(plain_senders(cfg));
        found.extend(Tool::find(
            "socat",
            "socat".as_ref(),
            &["-u", "FILE:{file}", "TCP:127.0.0.1:{port}"],
            Stdin::Null,
        ));
    }
    let ours = if tls {
        "kamaelia send --tls"
    } else {
        "kamaelia send"
    };
    let wanted: &[&str] = if tls {
        &[ours, "base-send", "socat"]
    } else {
        &[ours, "base-send", "socat", "nc"]
    };
    tools::note_missing(table, &what, wanted, &found);
    let small = cfg.dir.join("probe-1k");
    std::fs::write(&small, vec![0x5a_u8; 1024])?;
    let probe = Fill {
        port: sink.port,
        file: &small,
        ca: cfg.pki.ca_pem_file(),
    };
    let peers = tools::probed(found, table, &what, |t| {
        let (fill, sink, dir) = (&probe, &sink, &cfg.dir);
        async move { t.probe_send(dir, fill, 1024, sink).await }
    })
    .await;
    let (Some(k), Some(b)) = (
        peers.iter().position(|p| p.name == ours),
        peers.iter().position(|p| p.name == "base-send"),
    ) else {
        table.note(format!(
            "{what}: needs `{ours}` and base-send; not measured"
        ));
        return Ok(());
    };
    let n = cfg.bulk;
    let file = bulk_file(cfg, n)?;
    let fill = Fill {
        port: sink.port,
        file: &file,
        ca: cfg.pki.ca_pem_file(),
    };
    let sides: Vec<usize> = (0..peers.len()).collect();
    let rounds = cfg.rounds * SEND_ROUNDS_PER_ROUND;
    table.note(format!(
        "{what}: median of {rounds} alternating rounds ({SEND_ROUNDS_PER_ROUND} x --rounds): \
         its single rounds swing more than the difference measured"
    ));
    let results = alternate(rounds, &sides, |i| {
        let (peers, fill, sink, dir) = (&peers, &fill, &sink, &cfg.dir);
        async move {
            let u = peers[i].send_measured(dir, fill, n, sink).await?;
            Ok(u.sample())
        }
    })
    .await?;
    let _ = std::fs::remove_file(&file);
    let label = format!("{fig} `{ours}` {} vs base-send", size(n));
    let goals = if tls {
        ["<= 1.1", "-", "-", "-"]
    } else {
        ["<= 1.1", "<= 1.2", "+0.05 s/GiB", "-"]
    };
    usage_rows(table, &label, &results, (k, b), goals, false);
    for (i, p) in peers.iter().enumerate() {
        if i != k && i != b {
            let (a, c) = (median(&results[k], 0), median(&results[i], 0));
            let (lo, hi) = ratio_range(&results[k], &results[i], 0);
            table.row_spread(
                format!("{fig} `{ours}` vs {}: wall", p.name),
                show(Unit::Time, a, false),
                show(Unit::Time, c, false),
                a / c,
                format!("{lo:.2}–{hi:.2}"),
                "< 1",
            );
        }
    }
    Ok(())
}

/// Figure 3: `kamaelia listen 0 > file` against `base-recv 0 > file`, each receiving the bulk
/// file from `base-send` (a third process).
pub(crate) async fn receive(cfg: &Config, table: &mut Table) -> Result<()> {
    let what = "figure 3";
    let Some(sender) = sender(table, what) else {
        return Ok(());
    };
    let mut found = Vec::new();
    if has_subcommand(&cfg.kamaelia, "listen").await {
        found.extend(Tool::find(
            "kamaelia listen",
            &cfg.kamaelia,
            &["listen", "0"],
            Stdin::Null,
        ));
    } else {
        table.note(format!(
            "{what}: not measured: kamaelia has no listen command"
        ));
    }
    found.extend(baseline("base-recv", &["0"], Stdin::Null));
    let n = cfg.bulk;
    let file = bulk_file(cfg, n)?;
    let out = cfg.dir.join("received");
    let run = |t: Tool, n: u64| {
        let (file, out, sender) = (&file, &out, &sender);
        async move {
            let fill = Fill {
                port: 0,
                file,
                ca: cfg.pki.ca_pem_file(),
            };
            let mut m = t.spawn_measured(
                &cfg.dir,
                &fill,
                false,
                Stdio::from(std::fs::File::create(out)?),
                Stdio::piped(),
            )?;
            let stderr = m.child().stderr.take().context("no stderr")?;
            let mut lines = BufReader::new(stderr).lines();
            let port = tokio::time::timeout(Duration::from_secs(30), async {
                while let Some(line) = lines.next_line().await? {
                    // "listening on ADDR", perhaps after the program's name.
                    if let Some((_, addr)) = line.split_once("listening on ") {
                        return port_of(addr);
                    }
                }
                Err(anyhow!("{} ended without saying where it listens", t.name))
            })
            .await
            .map_err(|_| anyhow!("{} did not say where it listens", t.name))??;
            // The rest of its stderr is read and dropped, so it can never block on it.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            let status = run_sender(sender, port, file).await?;
            ensure!(status.success(), "base-send exited with {status}");
            let u = m.finish(LIMIT, true).await?;
            let got = std::fs::metadata(out)?.len();
            let _ = std::fs::remove_file(out);
            ensure!(got == n, "{}: wrote {got} of {n} bytes", t.name);
            anyhow::Ok(u.sample())
        }
    };
    let mut peers = Vec::new();
    for t in found {
        match run(t.clone(), n).await {
            Ok(_) => peers.push(t),
            Err(e) => table.note(format!(
                "{what}: {} skipped: its trial run failed: {e:#}",
                t.name
            )),
        }
    }
    let sides: Vec<usize> = (0..peers.len()).collect();
    let results = alternate(cfg.rounds, &sides, |i| run(peers[i].clone(), n)).await?;
    let _ = std::fs::remove_file(&file);
    let b = peers.iter().position(|p| p.name == "base-recv");
    match (peers.iter().position(|p| p.name == "kamaelia listen"), b) {
        (Some(k), Some(b)) => usage_rows(
            table,
            &format!("3 `kamaelia listen > file` {} vs base-recv", size(n)),
            &results,
            (k, b),
            ["<= 1.1", "-", "-", "-"],
            false,
        ),
        (None, Some(b)) => table.row(
            format!("3 (baseline alone) base-recv > file, {}: wall", size(n)),
            "-".to_string(),
            show(Unit::Time, median(&results[b], 0), false),
            f64::NAN,
            "<= 1.1",
        ),
        _ => {}
    }
    Ok(())
}

/// Runs `base-send` (unmeasured: the other end of the row) to `port` with `file`.
async fn run_sender(sender: &Path, port: u16, file: &Path) -> Result<std::process::ExitStatus> {
    let status = Command::new(sender)
        .args(["127.0.0.1", &port.to_string()])
        .arg(file)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .status();
    tokio::time::timeout(LIMIT, status)
        .await
        .map_err(|_| anyhow!("base-send did not finish"))?
        .map_err(Into::into)
}

/// `base-send`, built beside this program, as the sender for figures 3 and 4.
fn sender(table: &mut Table, what: &str) -> Option<PathBuf> {
    let path = std::env::current_exe()
        .ok()
        .map(|e| e.with_file_name("base-send"))
        .filter(|p| p.is_file());
    if path.is_none() {
        table.note(format!("{what}: base-send is not built; not measured"));
    }
    path
}

/// The port at the end of an address (`127.0.0.1:4000`, `[::1]:4000`).
fn port_of(addr: &str) -> Result<u16> {
    let addr = addr.split_whitespace().next().unwrap_or_default();
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| anyhow!("no port in {addr:?}"))
}

/// Figure 4: `kamaelia forward` relaying the bulk file from `base-send` to the sink, against
/// `base-relay` (copy_bidirectional) and `socat TCP-LISTEN,fork`. Wall is the transfer (the
/// sender's start to the sink's count); CPU and memory are the relay process's, stopped with
/// SIGTERM after the transfer. The rounds are run twice: placed by the kernel (the goal's
/// rows), then with every process on one CPU ([`OneCpu`]: the sink, each relay and each sender
/// start pinned), rows beside the first, the same for every program.
pub(crate) async fn forward(cfg: &Config, table: &mut Table) -> Result<()> {
    let what = "figure 4";
    let sink = ServerProc::sink(None).await?;
    let Some(sender) = sender(table, what) else {
        return Ok(());
    };
    let mut found: Vec<Relayer> = Vec::new();
    if has_subcommand(&cfg.kamaelia, "forward").await {
        found.extend(
            Tool::find(
                "kamaelia forward",
                &cfg.kamaelia,
                &["forward", "0", "127.0.0.1", "{port}"],
                Stdin::Null,
            )
            .map(|t| (t, true)),
        );
    } else {
        table.note(format!(
            "{what}: not measured: kamaelia has no forward command"
        ));
    }
    found.extend(
        baseline("base-relay", &["0", "127.0.0.1", "{port}"], Stdin::Null).map(|t| (t, true)),
    );
    // socat is told its port ({file} stands for it here): it does not print one.
    found.extend(
        Tool::find(
            "socat TCP-LISTEN,fork",
            "socat".as_ref(),
            &[
                "TCP-LISTEN:{file},bind=127.0.0.1,reuseaddr,fork",
                "TCP:127.0.0.1:{port}",
            ],
            Stdin::Null,
        )
        .map(|t| (t, false)),
    );
    let n = cfg.bulk;
    let file = bulk_file(cfg, n)?;
    let small = cfg.dir.join("probe-1k");
    std::fs::write(&small, vec![0x5a_u8; 1024])?;
    let mut peers = Vec::new();
    for t in found {
        match relay_once(cfg, &t, &sender, &sink, &small, 1024).await {
            Ok(_) => peers.push(t),
            Err(e) => table.note(format!(
                "{what}: {} skipped: its trial run failed: {e:#}",
                t.0.name
            )),
        }
    }
    let bulk = Bulk {
        sender: &sender,
        file: &file,
        n,
    };
    let placed = forward_rounds(cfg, table, &peers, &bulk, &sink, "").await;
    drop(sink);
    // The same rounds with every process on one CPU.
    // Not after a failed pass: the pin is held only by a pass that restores it.
    let pin = match &placed {
        Ok(()) => OneCpu::pin_or_note(table, what).await,
        Err(_) => None,
    };
    let pinned = match pin {
        None => Ok(()),
        Some(pin) => {
            let rounds = async {
                let sink = ServerProc::sink(None).await?;
                forward_rounds(cfg, table, &peers, &bulk, &sink, &pin.label()).await
            }
            .await;
            pin.restore().await?;
            rounds
        }
    };
    let _ = std::fs::remove_file(&file);
    placed.and(pinned)
}

/// A relay of figure 4 and whether it prints its address (socat is told a port instead).
type Relayer = (Tool, bool);

/// What figure 4's measured rounds send: `n` bytes of `file`, by `sender`.
struct Bulk<'a> {
    sender: &'a Path,
    file: &'a Path,
    n: u64,
}

/// Figure 4's alternating rounds of `peers` into `sink`, and their rows (`label` says how the
/// processes were placed).
async fn forward_rounds(
    cfg: &Config,
    table: &mut Table,
    peers: &[Relayer],
    bulk: &Bulk<'_>,
    sink: &ServerProc,
    label: &str,
) -> Result<()> {
    let sides: Vec<usize> = (0..peers.len()).collect();
    let results = alternate(cfg.rounds, &sides, |i| {
        relay_once(cfg, &peers[i], bulk.sender, sink, bulk.file, bulk.n)
    })
    .await?;
    let pos = |name: &str| peers.iter().position(|p| p.0.name == name);
    let (k, b, s) = (
        pos("kamaelia forward"),
        pos("base-relay"),
        pos("socat TCP-LISTEN,fork"),
    );
    let n = size(bulk.n);
    let ours = format!("4 `kamaelia forward` {n}{label}");
    // The goals are the placed rows'; the pinned ones are there to read beside them.
    let goal = |g| if label.is_empty() { g } else { "-" };
    if let (Some(k), Some(b)) = (k, b) {
        usage_rows(
            table,
            &format!("{ours} vs base-relay"),
            &results,
            (k, b),
            [goal("<= 1.1"), "-", "-", "-"],
            false,
        );
    }
    if let (Some(k), Some(s)) = (k, s) {
        usage_rows(
            table,
            &format!("{ours} vs socat fork"),
            &results,
            (k, s),
            [goal("< 1"), "-", "-", "-"],
            false,
        );
    }
    if let (None, Some(b), Some(s)) = (k, b, s) {
        usage_rows(
            table,
            &format!("4 (baselines alone) base-relay {n}{label} vs socat fork"),
            &results,
            (b, s),
            ["-", "-", "-", "-"],
            false,
        );
    }
    Ok(())
}

/// One transfer of `n` bytes of `file` from `sender` through the relay `t` to `sink`: wall
/// (the sender's start to the sink's count), then the relay process's usage.
async fn relay_once(
    cfg: &Config,
    (t, prints): &Relayer,
    sender: &Path,
    sink: &ServerProc,
    file: &Path,
    n: u64,
) -> Result<Sample> {
    let chosen = if *prints { 0 } else { free_port()? };
    let chosen_text = chosen.to_string();
    let fill = Fill {
        port: sink.port,
        file: Path::new(&chosen_text),
        ca: cfg.pki.ca_pem_file(),
    };
    let mut m = t.spawn_measured(&cfg.dir, &fill, true, Stdio::piped(), Stdio::null())?;
    let port = if *prints {
        let stdout = m.child().stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .map_err(|_| anyhow!("{} did not print its address", t.name))??
            .ok_or_else(|| anyhow!("{} ended without its address", t.name))?;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        port_of(first.rsplit("listening on ").next().unwrap_or_default())?
    } else {
        wait_listening(chosen, sink).await?;
        chosen
    };
    let start = Instant::now();
    let status = run_sender(sender, port, file).await?;
    let got = sink.next(Duration::from_secs(30)).await?;
    let wall = start.elapsed().as_secs_f64();
    ensure!(
        status.success(),
        "base-send through {} exited with {status}",
        t.name
    );
    ensure!(got == n, "{}: the sink got {got} of {n} bytes", t.name);
    // A forking relay (socat) counts its connection's process only once it has
    // reaped it: wait for that before stopping it.
    if let Some(pid) = m.child().id() {
        wait_childless(pid).await;
    }
    drop(m.child().stdin.take());
    let u = m.finish(Duration::from_secs(30), false).await?;
    let mut s = u.sample();
    s[0] = wall;
    Ok(s)
}

/// Waits (up to 5 s) until the process the wrapper `pid` runs has no child processes left.
async fn wait_childless(pid: u32) {
    let children = |p: &str| {
        std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let relay = children(&pid.to_string());
        let Some(relay) = relay.split_whitespace().next() else {
            return;
        };
        if children(relay).trim().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A port nobody listens on just now.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until something listens on `port`; the trial connection reaches the sink as an
/// empty one, whose count is read and dropped.
async fn wait_listening(port: u16, sink: &ServerProc) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            let got = sink.next(Duration::from_secs(30)).await?;
            ensure!(got == 0, "the trial connection carried {got} bytes");
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "nothing listens on port {port}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The name of the dynamically linked `kamaelia` that `benches/run.sh` keeps beside the
/// statically linked one it measures.
const DYNAMIC_BUILD: &str = "kamaelia-dynamic";

/// Figure 5: `kamaelia send` of a 1 KiB file, whole process, against `nc -N` and `base-send`;
/// and, if [`DYNAMIC_BUILD`] is beside the `kamaelia` measured, the same rows for that build
/// (start-up is where static and dynamic linking differ).
pub(crate) async fn startup(cfg: &Config, table: &mut Table) -> Result<()> {
    let what = "figure 5";
    let sink = ServerProc::sink(None).await?;
    let file = cfg.dir.join("startup-1k");
    std::fs::write(&file, vec![0x5a_u8; 1024])?;
    let fill = Fill {
        port: sink.port,
        file: &file,
        ca: cfg.pki.ca_pem_file(),
    };
    let mut found = plain_senders(cfg);
    tools::note_missing(table, what, &["kamaelia send", "nc", "base-send"], &found);
    found.extend(Tool::find(
        "kamaelia send (dynamic build)",
        &cfg.kamaelia.with_file_name(DYNAMIC_BUILD),
        &["send", "127.0.0.1", "{port}", "{file}"],
        Stdin::Null,
    ));
    let peers = tools::probed(found, table, what, |t| {
        let (fill, sink, dir) = (&fill, &sink, &cfg.dir);
        async move { t.probe_send(dir, fill, 1024, sink).await }
    })
    .await;
    let Some(k) = peers.iter().position(|p| p.name == "kamaelia send") else {
        table.note(format!("{what}: needs `kamaelia send`; not measured"));
        return Ok(());
    };
    let reps = cfg.startup_reps;
    let sides: Vec<usize> = (0..peers.len()).collect();
    let results = alternate(cfg.rounds, &sides, |i| {
        let (peers, fill, sink, dir) = (&peers, &fill, &sink, &cfg.dir);
        async move {
            let mut runs = Vec::with_capacity(reps);
            for _ in 0..reps {
                runs.push(
                    peers[i]
                        .send_measured(dir, fill, 1024, sink)
                        .await?
                        .sample(),
                );
            }
            // The median run's figures, metric by metric.
            Ok((0..METRICS.len()).map(|m| median(&runs, m)).collect())
        }
    })
    .await?;
    let dynamic = peers
        .iter()
        .position(|p| p.name == "kamaelia send (dynamic build)");
    for (ours, build) in [(Some(k), ""), (dynamic, " (dynamic build)")] {
        let Some(ours) = ours else { continue };
        for (i, p) in peers.iter().enumerate() {
            if p.name.starts_with("kamaelia") {
                continue;
            }
            let goal = if p.name == "nc" && build.is_empty() {
                "<= 1.2"
            } else {
                "-"
            };
            usage_rows(
                table,
                &format!(
                    "5 start-up: `kamaelia send`{build} 1 KiB, whole process ({reps} per round) vs {}",
                    p.name
                ),
                &results,
                (ours, i),
                [goal, "-", "-", "-"],
                true,
            );
        }
    }
    Ok(())
}
