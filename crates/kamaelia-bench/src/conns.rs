//! Figure 7: many concurrent connections held open. A server process and a clients process,
//! both children of the suite (so each fits in the open-file limit and has its own memory
//! figures), for the library (TcpServer + EchoProtocol, TcpClient + a holder component) and
//! for a hand-written tokio program holding the same sockets. The server listens on one port of
//! 127.0.0.1 to 127.0.0.4 and the clients spread over them, so past ~28,000 connections the
//! ephemeral ports of one address pair do not run out (100,000 in one process needs an
//! open-file limit above 100,000: `ulimit -n`). A `--conns` above what one process may open is
//! run at the most one pair can hold and, as separate `7 spread` rows, over several pairs held
//! at once ([`spread`]): `KAMAELIA_BENCH_IDLE_SECS=10 kamaelia-bench --only 7 --conns 100000`.
//!
//! Each child prints `key=value` lines on stdout: `ready ...` once it is listening or every
//! connection was served; then, when the suite writes `measure` on its stdin, it measures its
//! CPU over [`idle_window`] and its memory and prints `measured ...`; it exits at stdin's end.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use axon::{link_refs, Component, Group, Scheduler};
use bytes::Bytes;
use kamaelia::internet::{EchoProtocol, TcpClient, TcpServer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::mpsc;

use crate::harness::{alternate, median, Table};
use crate::Config;

/// How long the held connections are watched for CPU use: 2 s, or the seconds in
/// `KAMAELIA_BENCH_IDLE_SECS` (the child processes inherit it), e.g. 10 for a run that holds as
/// many connections as the open-file limit allows.
pub(crate) fn idle_window() -> Duration {
    std::env::var("KAMAELIA_BENCH_IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(2), Duration::from_secs)
}
/// What each client sends and gets back.
const HELLO: &[u8; 8] = b"hello!!\n";
/// File descriptors a process needs besides its sockets.
const SPARE_FDS: usize = 64;

/// Which program a child runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Side {
    /// The library.
    Ours,
    /// Hand-written tokio.
    Baseline,
    /// A diagnostic, not a yardstick: the hand-written clients, each also holding two heap
    /// blocks the size of TcpClient's and the holder's routines (their own state, read from a
    /// TcpClient and a holder built for it), against the hand-written server. What a client
    /// connection would cost if the runtime kept nothing for it: the difference to ours is the
    /// runtime's share (boxes, component records, the group).
    Components,
    /// A diagnostic for a layout not built: the hand-written clients, each in a task of our
    /// group's size (tokio's 256-byte block: the start is awaited boxed, so only the socket
    /// and the blocks are kept in the task while idle) and holding heap blocks of the sizes
    /// given (`--model-blocks`), written to, against the hand-written server. What a client
    /// connection would cost if the library kept exactly those blocks beside its task and
    /// socket.
    Model,
}

/// How a clients child makes its connections: the same for every side of a run.
///
/// The order decides where the allocator puts each connection's blocks. tokio's task block
/// and a socket's registration are aligned to 128 bytes, so each leaves free pieces around it
/// (docs/memory-per-connection.md, session 13's `holes13`); blocks made after them can fill
/// those pieces, blocks made before cannot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Order {
    /// One at a time, in a task: each connection made, started, and run to its first wait (it
    /// has asked to connect) before the next is made: a loop that yields after each start, as a
    /// Kamaelia component that spawns clients does (`activate`, then `yield`).
    Each,
    /// All made first, on the runtime's entry thread, then all started (the order before
    /// session 14; kept as a diagnostic row).
    Batch,
}

/// The model rows' block sizes from `--model-blocks` (`272,96;272,96,176`): one list a row,
/// `none` for a row of no blocks.
pub(crate) fn parse_model_blocks(arg: Option<&str>) -> Result<Vec<Vec<usize>>> {
    let Some(arg) = arg else {
        return Ok(Vec::new());
    };
    let mut rows = Vec::new();
    for list in arg.split(';').filter(|l| !l.trim().is_empty()) {
        if list.trim() == "none" {
            rows.push(Vec::new());
            continue;
        }
        let row = list
            .split(',')
            .map(|b| {
                b.trim()
                    .parse()
                    .with_context(|| format!("a block size in --model-blocks: {b:?}"))
            })
            .collect::<Result<Vec<usize>>>()?;
        rows.push(row);
    }
    Ok(rows)
}

/// The parent's side of figure 7. One process pair holds as many connections as the open-file
/// limit allows; a `--conns` above that is run as well spread over several process pairs held
/// at once ([`spread`]), as separate rows.
pub(crate) async fn figure(cfg: &Config, table: &mut Table) -> Result<()> {
    let limit = open_file_limit()?;
    let per_process = limit.saturating_sub(SPARE_FDS);
    let n = cfg.conns.min(per_process);
    if n < cfg.conns {
        table.note(format!(
            "figure 7: the open-file limit is {limit}: one process pair holds {n} connections; the {} are spread over several pairs (the `7 spread` rows)",
            cfg.conns
        ));
    }
    table.note(
        "figure 7: each side makes its connections one at a time, each started before the next is made (`--order each`); the diagnostic row \"made all first\" is ours with every connection made before any is started (`--order batch`, the order before session 14)"
            .to_string(),
    );
    one_pair(cfg, table, n).await?;
    if n < cfg.conns {
        spread(cfg, table, cfg.conns, per_process).await?;
    }
    Ok(())
}

/// Figure 7 in one process pair: `n` connections.
async fn one_pair(cfg: &Config, table: &mut Table, n: usize) -> Result<()> {
    let mut sides = vec![
        (Side::Ours, 0, Order::Each),
        (Side::Baseline, 0, Order::Each),
        (Side::Components, 0, Order::Each),
        (Side::Ours, 0, Order::Batch),
    ];
    sides.extend((0..cfg.model_blocks.len()).map(|i| (Side::Model, i, Order::Each)));
    let results = alternate(cfg.rounds, &sides, |(side, i, order)| async move {
        let blocks = match side {
            Side::Model => cfg.model_blocks[i].as_slice(),
            _ => &[],
        };
        let (c, s) = run_pair(cfg.workers, side, order, n, blocks).await?;
        let get = |m: &HashMap<String, f64>, k: &str| {
            m.get(k)
                .copied()
                .ok_or_else(|| anyhow!("no {k} in a child's report"))
        };
        let per_conn = |m: &HashMap<String, f64>| -> Result<f64> {
            Ok((get(m, "hwm_kib")? - get(m, "rss_before_kib")?) / n as f64)
        };
        // What an idle connection holds once the burst of connecting is over.
        let idle_per_conn = |m: &HashMap<String, f64>| -> Result<f64> {
            Ok((get(m, "rss_kib")? - get(m, "rss_before_kib")?) / n as f64)
        };
        Ok(vec![
            get(&c, "secs")?,
            per_conn(&c)?,
            per_conn(&s)?,
            get(&c, "cpu_pct")?,
            get(&s, "cpu_pct")?,
            get(&c, "served")?,
            idle_per_conn(&c)?,
            idle_per_conn(&s)?,
        ])
    })
    .await?;
    let (o, b, c) = (&results[0], &results[1], &results[2]);
    let m = |r: &[Vec<f64>], i| median(r, i);
    table.row(
        format!("7 {n} TcpClients -> TcpServer: time to connect and serve all"),
        format!("{:.2} s", m(o, 0)),
        format!("{:.2} s", m(b, 0)),
        m(o, 0) / m(b, 0),
        "-",
    );
    for (side, i) in [("clients", 1), ("server", 2)] {
        table.row(
            format!("7 peak memory per connection, {side} process (VmHWM)"),
            format!("{:.1} KiB", m(o, i)),
            format!("{:.1} KiB", m(b, i)),
            m(o, i) / m(b, i),
            "<= 1.5",
        );
    }
    // Resident bytes per idle connection (index 6 clients, 7 server) of `x` against `y`.
    let idle_row = |table: &mut Table, label: String, x: &[Vec<f64>], y: &[Vec<f64>], i, goal| {
        table.row(
            label,
            format!("{:.0} B", m(x, i) * 1024.0),
            format!("{:.0} B", m(y, i) * 1024.0),
            m(x, i) / m(y, i),
            goal,
        );
    };
    for (side, i) in [("clients", 6), ("server", 7)] {
        let label =
            format!("7 memory per idle connection, {side} process (VmRSS after the idle window)");
        idle_row(table, label, o, b, i, "<= 1.5");
    }
    idle_row(
        table,
        "7 memory per idle connection, clients process: the hand-written clients also holding blocks the size of TcpClient's and the holder's routines (no runtime)".into(),
        c,
        b,
        6,
        "- (diagnostic)",
    );
    idle_row(
        table,
        "7 memory per idle connection, clients process: ours vs the line above (the runtime's share)".into(),
        o,
        c,
        6,
        "- (diagnostic)",
    );
    idle_row(
        table,
        "7 memory per idle connection, clients process: ours with every connection made all first, then started (`--order batch`)".into(),
        &results[3],
        b,
        6,
        "- (diagnostic)",
    );
    for (blocks, r) in cfg.model_blocks.iter().zip(&results[4..]) {
        let sizes: Vec<String> = blocks.iter().map(usize::to_string).collect();
        let label = format!(
            "7 memory per idle connection, clients process: a model, the hand-written clients in a task of our group's size holding blocks of {} B (no runtime)",
            if sizes.is_empty() { "no".to_string() } else { sizes.join(", ") }
        );
        idle_row(table, label, r, b, 6, "- (diagnostic)");
    }
    table.row(
        format!(
            "7 CPU while idle, {} s, clients + server",
            idle_window().as_secs()
        ),
        format!("{:.1} %", m(o, 3) + m(o, 4)),
        format!("{:.1} %", m(b, 3) + m(b, 4)),
        f64::NAN,
        "near 0",
    );
    let served = |r: &[Vec<f64>]| r.iter().map(|s| s[5]).fold(f64::INFINITY, f64::min);
    table.row(
        "7 connections served (worst round)",
        format!("{:.0}/{n}", served(o)),
        format!("{:.0}/{n}", served(b)),
        f64::NAN,
        "all",
    );
    Ok(())
}

/// Starts the server child, then the clients child; returns both `measured` reports (clients'
/// merged with its `ready` line).
async fn run_pair(
    workers: usize,
    side: Side,
    order: Order,
    n: usize,
    blocks: &[usize],
) -> Result<(HashMap<String, f64>, HashMap<String, f64>)> {
    let mut pair = Pair::start(workers, side, order, n, blocks).await?;
    pair.ask().await?;
    let measured = pair.collect().await?;
    pair.end().await;
    Ok(measured)
}

/// A server child and a clients child holding their connections.
struct Pair {
    server: Child,
    server_out: Lines<BufReader<ChildStdout>>,
    server_ready: HashMap<String, f64>,
    clients: Child,
    clients_out: Lines<BufReader<ChildStdout>>,
    held: HashMap<String, f64>,
}

impl Pair {
    /// Starts the server child, then the clients child, and waits until every connection was
    /// served (or the clients child gave up).
    /// `blocks` are the model's block sizes ([`Side::Model`]).
    async fn start(
        workers: usize,
        side: Side,
        order: Order,
        n: usize,
        blocks: &[usize],
    ) -> Result<Pair> {
        let exe = std::env::current_exe()?;
        let side_arg = format!("{side:?}").to_lowercase();
        let order_arg = format!("{order:?}").to_lowercase();
        let workers = workers.to_string();
        let mut server = spawn_child(
            &exe,
            &["--workers", &workers, "child-server", "--side", &side_arg],
        )?;
        let mut server_out = lines(&mut server)?;
        let ready = next_line(&mut server_out, Duration::from_secs(20)).await?;
        let addr = ready
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("addr="))
            .ok_or_else(|| anyhow!("the server child said {ready:?}"))?
            .to_string();
        let server_ready = parse(&ready);
        let n_arg = n.to_string();
        let blocks: Vec<String> = blocks.iter().map(usize::to_string).collect();
        let blocks_arg = format!("--blocks={}", blocks.join(","));
        let mut args = vec![
            "--workers",
            &workers,
            "child-clients",
            "--side",
            &side_arg,
            "--addr",
            &addr,
            "--n",
            &n_arg,
            "--order",
            &order_arg,
        ];
        if !blocks.is_empty() {
            args.push(&blocks_arg);
        }
        let mut clients = spawn_child(&exe, &args)?;
        let mut clients_out = lines(&mut clients)?;
        let held = parse(&next_line(&mut clients_out, Duration::from_secs(300)).await?);
        Ok(Pair {
            server,
            server_out,
            server_ready,
            clients,
            clients_out,
            held,
        })
    }

    /// Asks both children to measure themselves (CPU over [`idle_window`], then memory).
    async fn ask(&mut self) -> Result<()> {
        for child in [&mut self.server, &mut self.clients] {
            if let Some(stdin) = child.stdin.as_mut() {
                stdin.write_all(b"measure\n").await?;
                stdin.flush().await?;
            }
        }
        Ok(())
    }

    /// Both `measured` reports: the clients' (with its `ready` line) and the server's.
    async fn collect(&mut self) -> Result<(HashMap<String, f64>, HashMap<String, f64>)> {
        let limit = idle_window() + Duration::from_secs(30);
        let mut c = parse(&next_line(&mut self.clients_out, limit).await?);
        let mut s = parse(&next_line(&mut self.server_out, limit).await?);
        c.extend(self.held.clone());
        s.extend(self.server_ready.clone());
        Ok((c, s))
    }

    /// Ends both children (they exit at their stdin's end).
    async fn end(self) {
        for mut child in [self.server, self.clients] {
            drop(child.stdin.take());
            if tokio::time::timeout(Duration::from_secs(20), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
}

/// Figure 7 beyond one process's open-file limit: `total` connections over as few process
/// pairs as hold them (`per_process` each at most), all started one pair after another and
/// held at once, then measured together. Rows: resident memory per connection summed over the
/// processes of each side, idle CPU summed over all of them, connections served.
///
/// What it shows: what holding `total` connections costs the library against the hand-written
/// program, per connection, with every connection open at the same time on this machine. What
/// it does not: one process holding them all (one scheduler, one reactor, one heap); that
/// needs an open-file limit above `total`.
async fn spread(cfg: &Config, table: &mut Table, total: usize, per_process: usize) -> Result<()> {
    let pairs = total.div_ceil(per_process.max(1));
    let sizes: Vec<usize> = (0..pairs)
        .map(|i| total / pairs + usize::from(i < total % pairs))
        .collect();
    let results = alternate(cfg.rounds, &[Side::Ours, Side::Baseline], |side| {
        let sizes = sizes.clone();
        async move {
            let t0 = Instant::now();
            let mut held = Vec::with_capacity(sizes.len());
            for &n in &sizes {
                held.push(Pair::start(cfg.workers, side, Order::Each, n, &[]).await?);
            }
            let secs = t0.elapsed().as_secs_f64();
            for p in &mut held {
                p.ask().await?;
            }
            let mut sums = [0.0; 4];
            for p in &mut held {
                let (c, s) = p.collect().await?;
                let get = |m: &HashMap<String, f64>, k: &str| {
                    m.get(k)
                        .copied()
                        .ok_or_else(|| anyhow!("no {k} in a child's report"))
                };
                sums[0] += get(&c, "rss_kib")? - get(&c, "rss_before_kib")?;
                sums[1] += get(&s, "rss_kib")? - get(&s, "rss_before_kib")?;
                sums[2] += get(&c, "cpu_pct")? + get(&s, "cpu_pct")?;
                sums[3] += get(&c, "served")?;
            }
            for p in held {
                p.end().await;
            }
            Ok(vec![
                secs,
                sums[0] * 1024.0 / total as f64,
                sums[1] * 1024.0 / total as f64,
                sums[2],
                sums[3],
            ])
        }
    })
    .await?;
    let (o, b) = (&results[0], &results[1]);
    let m = |r: &[Vec<f64>], i| median(r, i);
    let head = format!("7 spread: {total} connections over {pairs} process pairs held at once");
    table.row(
        format!("{head}: time to start all"),
        format!("{:.1} s", m(o, 0)),
        format!("{:.1} s", m(b, 0)),
        m(o, 0) / m(b, 0),
        "-",
    );
    for (side, i) in [("clients", 1), ("server", 2)] {
        table.row(
            format!("{head}: resident memory per connection, {side} processes (VmRSS, summed)"),
            format!("{:.0} B", m(o, i)),
            format!("{:.0} B", m(b, i)),
            m(o, i) / m(b, i),
            "<= 1.5",
        );
    }
    table.row(
        format!(
            "{head}: CPU while idle, {} s, all {} processes summed",
            idle_window().as_secs(),
            2 * pairs
        ),
        format!("{:.1} %", m(o, 3)),
        format!("{:.1} %", m(b, 3)),
        f64::NAN,
        "near 0",
    );
    let served = |r: &[Vec<f64>]| r.iter().map(|s| s[4]).fold(f64::INFINITY, f64::min);
    table.row(
        format!("{head}: connections served (worst round)"),
        format!("{:.0}/{total}", served(o)),
        format!("{:.0}/{total}", served(b)),
        f64::NAN,
        "all",
    );
    Ok(())
}

fn spawn_child(exe: &std::path::Path, args: &[&str]) -> Result<Child> {
    Command::new(exe)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} {}", exe.display(), args.join(" ")))
}

fn lines(child: &mut Child) -> Result<Lines<BufReader<ChildStdout>>> {
    let out = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no stdout pipe"))?;
    Ok(BufReader::new(out).lines())
}

async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>, limit: Duration) -> Result<String> {
    match tokio::time::timeout(limit, lines.next_line()).await {
        Err(_) => bail!("a figure 7 child said nothing within {limit:?}"),
        Ok(Ok(Some(l))) => Ok(l),
        Ok(Ok(None)) => bail!("a figure 7 child exited early"),
        Ok(Err(e)) => Err(e.into()),
    }
}

fn parse(line: &str) -> HashMap<String, f64> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

/// The server child: listens, serves, and measures itself on request.
pub(crate) async fn child_server(side: Side) -> Result<()> {
    let before = status_kib("VmRSS")?;
    // The same port on every listening address: a port the first address got may be taken on
    // another, so try a few.
    let mut tries = 0;
    let addrs = loop {
        tries += 1;
        match listen_all(side).await {
            Ok(addrs) => break addrs,
            Err(e) if tries < 5 => eprintln!("figure 7 server: {e:#}; trying another port"),
            Err(e) => return Err(e),
        }
    };
    println!("ready addr={} rss_before_kib={before}", addrs[0]);
    measure_on_request(before).await
}

/// How many loopback addresses the server listens on and the clients spread over
/// (127.0.0.1 to 127.0.0.4, one port): each address pair has its own ~28,000 ephemeral ports,
/// so four hold 100,000 connections.
const LISTEN_ADDRS: u8 = 4;

/// The `i`-th listening address for the server listening at `first` (127.0.0.1:port).
fn listen_addr(first: std::net::SocketAddr, i: usize) -> std::net::SocketAddr {
    let octet = 1 + (i % usize::from(LISTEN_ADDRS)) as u8;
    std::net::SocketAddr::from(([127, 0, 0, octet], first.port()))
}

/// Listens on every address of [`listen_addr`] with one port, serving echo; returns the addresses.
async fn listen_all(side: Side) -> Result<Vec<std::net::SocketAddr>> {
    let mut addrs: Vec<std::net::SocketAddr> = Vec::new();
    match side {
        Side::Ours => {
            let mut servers = Vec::new();
            for i in 0..usize::from(LISTEN_ADDRS) {
                let want = match addrs.first() {
                    None => "127.0.0.1:0".parse()?,
                    Some(first) => listen_addr(*first, i),
                };
                let server = TcpServer::bind(&want.to_string(), |_| EchoProtocol::new())?;
                addrs.push(server.local_addr());
                servers.push(server);
            }
            tokio::spawn(async move {
                Scheduler::new()
                    .run(async {
                        for server in servers {
                            server.activate();
                        }
                    })
                    .await
            });
        }
        Side::Baseline | Side::Components | Side::Model => {
            let mut listeners = Vec::new();
            for i in 0..usize::from(LISTEN_ADDRS) {
                let want = match addrs.first() {
                    None => "127.0.0.1:0".parse()?,
                    Some(first) => listen_addr(*first, i),
                };
                let socket = TcpSocket::new_v4()?;
                socket.set_reuseaddr(true)?;
                socket.bind(want)?;
                // The same backlog as TcpServer.
                let listener = socket.listen(4096)?;
                addrs.push(listener.local_addr()?);
                listeners.push(listener);
            }
            for listener in listeners {
                tokio::spawn(async move {
                    while let Ok((mut s, _)) = listener.accept().await {
                        tokio::spawn(async move {
                            let mut buf = vec![0_u8; 1024];
                            while let Ok(n) = s.read(&mut buf).await {
                                if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        });
                    }
                });
            }
        }
    }
    Ok(addrs)
}

/// The clients child: `n` clients that each send [`HELLO`], get it back and stay connected.
/// `blocks` are the model's block sizes ([`Side::Model`]).
pub(crate) async fn child_clients(
    side: Side,
    order: Order,
    addr: std::net::SocketAddr,
    n: usize,
    blocks: Vec<usize>,
) -> Result<()> {
    // The sizes of a TcpClient's and a holder's routine blocks, from a pair built (and
    // dropped, never run) before the figure's start.
    let sizes = {
        let (tx, _rx) = mpsc::unbounded_channel::<()>();
        let client: Component = TcpClient::new(addr.ip().to_string(), addr.port()).into();
        (client.routine_size(), holder(tx).routine_size())
    };
    let before = status_kib("VmRSS")?;
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let start = Instant::now();
    match side {
        Side::Ours => {
            // One task per connection: the client, its holder and the client's CSA.
            let make = move |i: usize, served: mpsc::UnboundedSender<()>| -> Result<Group> {
                let to = listen_addr(addr, i);
                let client: Component = TcpClient::new(to.ip().to_string(), to.port()).into();
                let holder = holder(served);
                link_refs(&holder.boxref("outbox")?, &client.boxref("inbox")?)?;
                link_refs(&client.boxref("outbox")?, &holder.boxref("inbox")?)?;
                link_refs(&client.boxref("signal")?, &holder.boxref("control")?)?;
                Ok(Group::new().with(client).with(holder))
            };
            let mut made = Vec::new();
            if order == Order::Batch {
                made.reserve(n);
                for i in 0..n {
                    made.push(make(i, tx.clone())?);
                }
            } else if n > 0 {
                // The first is made here too, so that a wiring error ends the child at once.
                made.push(make(0, tx.clone())?);
            }
            let tx = tx.clone();
            tokio::spawn(async move {
                Scheduler::new()
                    .run(async move {
                        let rest = match order {
                            Order::Each => made.len()..n,
                            Order::Batch => n..n,
                        };
                        for g in made {
                            g.activate();
                        }
                        for i in rest {
                            tokio::task::yield_now().await;
                            match make(i, tx.clone()) {
                                Ok(g) => {
                                    g.activate();
                                }
                                Err(e) => {
                                    eprintln!("figure 7: connection {i} not made: {e:#}");
                                    break;
                                }
                            }
                        }
                    })
                    .await
            });
        }
        Side::Baseline => {
            spawn_clients(
                order,
                n,
                move |i, tx| hand_written_client(listen_addr(addr, i), tx, ()),
                &tx,
            );
        }
        Side::Components => {
            let (client, holder) = sizes;
            spawn_clients(
                order,
                n,
                move |i, tx| {
                    // Written to, as the routines' blocks are.
                    let blocks = (vec![1_u8; client], vec![1_u8; holder]);
                    let blocks = (blocks.0.into_boxed_slice(), blocks.1.into_boxed_slice());
                    hand_written_client(listen_addr(addr, i), tx, blocks)
                },
                &tx,
            );
        }
        Side::Model => {
            // Made once here so that a bad size ends the child at once.
            let first = model_client(listen_addr(addr, 0), tx.clone(), model_blocks(&blocks)?);
            eprintln!(
                "figure 7 model: the task's future is {} B (at most 128 for a 256-byte task)",
                std::mem::size_of_val(&first)
            );
            drop(first);
            spawn_clients(
                order,
                n,
                move |i, tx| {
                    model_client(
                        listen_addr(addr, i),
                        tx,
                        model_blocks(&blocks).unwrap_or_default(),
                    )
                },
                &tx,
            );
        }
    }
    drop(tx);
    let mut served = 0;
    let deadline = tokio::time::sleep(Duration::from_secs(240));
    tokio::pin!(deadline);
    while served < n {
        tokio::select! {
            r = rx.recv() => match r { Some(()) => served += 1, None => break },
            _ = &mut deadline => break,
        }
    }
    println!(
        "ready secs={:.4} served={served}",
        start.elapsed().as_secs_f64()
    );
    measure_on_request(before).await
}

/// Spawns the tasks `make` returns for connections `0..n`, in `order` ([`Order::Each`]: from
/// a task that yields after each spawn, so that each runs to its first wait before the next
/// is made; [`Order::Batch`]: all at once from here). Each gets a sender of `served`.
fn spawn_clients<F, Fut>(order: Order, n: usize, make: F, served: &mpsc::UnboundedSender<()>)
where
    F: Fn(usize, mpsc::UnboundedSender<()>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    match order {
        Order::Batch => {
            for i in 0..n {
                tokio::spawn(make(i, served.clone()));
            }
        }
        Order::Each => {
            let served = served.clone();
            tokio::spawn(async move {
                for i in 0..n {
                    tokio::spawn(make(i, served.clone()));
                    tokio::task::yield_now().await;
                }
            });
        }
    }
}

/// The hand-written client: connects to `to`, sends [`HELLO`], reads it back, reports on
/// `served`, then holds the connection (and `keep`) until the server closes.
async fn hand_written_client<K>(
    to: std::net::SocketAddr,
    served: mpsc::UnboundedSender<()>,
    keep: K,
) {
    let Ok(mut s) = TcpStream::connect(to).await else {
        return;
    };
    let mut back = [0_u8; 8];
    if s.write_all(HELLO).await.is_err() || s.read_exact(&mut back).await.is_err() {
        return;
    }
    let _ = served.send(());
    // Held until the server closes.
    let _ = s.read(&mut back).await;
    drop(keep);
}

/// The model's blocks: one heap block of each size in `sizes` (written to), the first holding
/// the others (a list whose room makes its chunk the first size's chunk), so that nothing but
/// the blocks asked for is allocated.
fn model_blocks(sizes: &[usize]) -> Result<Vec<Box<[u8]>>> {
    let Some((&first, rest)) = sizes.split_first() else {
        return Ok(Vec::new());
    };
    // glibc's chunk for a request of n bytes; a list of `room` fat pointers asks 16 x room.
    let chunk = (first + 23).max(32) & !15;
    let room = chunk / 16 - 1;
    if room < rest.len() {
        bail!(
            "--model-blocks: the first block ({first} B) must hold the other {}: list the largest first",
            rest.len()
        );
    }
    let mut list = Vec::with_capacity(room);
    list.extend(rest.iter().map(|&b| vec![1_u8; b].into_boxed_slice()));
    // The list's unused room, written to as well (empty blocks allocate nothing).
    list.resize_with(room, Box::default);
    Ok(list)
}

/// [`Side::Model`]'s client: the hand-written client's work, its start boxed, then the socket
/// held until the server closes. A future written out (an `async fn` kept its arguments beside
/// its locals: 160 bytes) so that the task is tokio's 256-byte block, as our group's is; the
/// hand-written client's is about 400.
struct ModelClient {
    start: Option<std::pin::Pin<Box<dyn std::future::Future<Output = Option<TcpStream>> + Send>>>,
    stream: Option<TcpStream>,
    served: Option<mpsc::UnboundedSender<()>>,
    keep: Vec<Box<[u8]>>,
}

fn model_client(
    to: std::net::SocketAddr,
    served: mpsc::UnboundedSender<()>,
    keep: Vec<Box<[u8]>>,
) -> ModelClient {
    ModelClient {
        start: Some(Box::pin(async move {
            let mut s = TcpStream::connect(to).await.ok()?;
            let mut back = [0_u8; 8];
            s.write_all(HELLO).await.ok()?;
            s.read_exact(&mut back).await.ok()?;
            Some(s)
        })),
        stream: None,
        served: Some(served),
        keep,
    }
}

impl std::future::Future for ModelClient {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        use std::task::Poll;
        let this = &mut *self;
        if let Some(start) = this.start.as_mut() {
            let Poll::Ready(stream) = start.as_mut().poll(cx) else {
                return Poll::Pending;
            };
            this.start = None;
            let Some(stream) = stream else {
                return Poll::Ready(());
            };
            this.stream = Some(stream);
            if let Some(served) = this.served.take() {
                let _ = served.send(());
            }
        }
        let Some(stream) = this.stream.as_mut() else {
            return Poll::Ready(());
        };
        // Held until the server closes.
        let mut back = [0_u8; 1];
        let mut buf = tokio::io::ReadBuf::new(&mut back);
        match std::pin::Pin::new(stream).poll_read(cx, &mut buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => {
                this.keep.clear();
                Poll::Ready(())
            }
        }
    }
}

/// Sends [`HELLO`], waits for it to come back, reports, then holds the connection open until
/// the client's final message. It has no `signal`: nothing listens to one.
fn holder(served: mpsc::UnboundedSender<()>) -> Component {
    let mut b = Component::build("Holder");
    let inbox = b.inbox::<Bytes>("inbox", "the echo");
    let control = b.control();
    let outbox = b.outbox::<Bytes>("outbox", "the greeting");
    b.main(move |_| async move {
        outbox.send(Bytes::from_static(HELLO)).await?;
        let mut got = 0;
        while got < HELLO.len() {
            got += inbox.recv().await.len();
        }
        let _ = served.send(());
        while !control.recv().await.is_final() {}
        Ok(())
    })
}

/// Waits for `measure` on stdin; prints CPU over [`idle_window`] and memory; exits at stdin's
/// end without tearing the connections down.
async fn measure_on_request(rss_before_kib: f64) -> Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    while let Some(l) = stdin.next_line().await? {
        if l.trim() == "measure" {
            let t0 = cpu_ticks()?;
            let window = idle_window();
            tokio::time::sleep(window).await;
            let t1 = cpu_ticks()?;
            // /proc reports CPU time in USER_HZ, 100 per second on Linux.
            let cpu_pct = (t1 - t0) as f64 / 100.0 / window.as_secs_f64() * 100.0;
            println!(
                "measured hwm_kib={} rss_kib={} rss_before_kib={rss_before_kib} cpu_pct={cpu_pct:.2}",
                status_kib("VmHWM")?,
                status_kib("VmRSS")?
            );
        }
    }
    std::process::exit(0)
}

/// A `kB` field of /proc/self/status.
fn status_kib(field: &str) -> Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow!("no {field} in /proc/self/status"))
}

/// utime + stime of this process, from /proc/self/stat.
fn cpu_ticks() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The command name may hold spaces; fields are counted after its closing parenthesis.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("odd /proc/self/stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ")" the fields start at 3 (state); utime is field 14, stime 15.
    let (utime, stime) = (f.get(11), f.get(12));
    match (
        utime.and_then(|u| u.parse::<u64>().ok()),
        stime.and_then(|s| s.parse::<u64>().ok()),
    ) {
        (Some(u), Some(s)) => Ok(u + s),
        _ => bail!("no utime/stime in /proc/self/stat"),
    }
}

/// The soft limit on open files, from /proc/self/limits.
fn open_file_limit() -> Result<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|v| v.split_whitespace().next())
        .map(|v| v.parse().unwrap_or(usize::MAX))
        .ok_or_else(|| anyhow!("no open-file limit in /proc/self/limits"))
}

#[cfg(test)]
mod tests {
    use super::{model_blocks, model_client, parse_model_blocks};

    #[test]
    fn model_rows_are_read_and_their_blocks_are_only_those_asked_for() {
        let rows = parse_model_blocks(Some("272,96;none; 48")).unwrap();
        assert_eq!(rows, vec![vec![272, 96], vec![], vec![48]]);
        assert!(parse_model_blocks(None).unwrap().is_empty());
        assert!(parse_model_blocks(Some("12,x")).is_err());
        // The first block is the list of the others: 17 fat pointers (272 B, the chunk of a
        // 272-byte request), the second block's 96 bytes among them, the rest empty.
        let blocks = model_blocks(&[272, 96]).unwrap();
        assert_eq!((blocks.len(), blocks.capacity()), (17, 17));
        let sizes: Vec<usize> = blocks.iter().map(|b| b.len()).collect();
        assert_eq!(sizes[0], 96);
        assert!(sizes[1..].iter().all(|&n| n == 0));
        assert!(
            model_blocks(&[32, 8, 8, 8]).is_err(),
            "a list too small to hold the rest"
        );
        assert!(model_blocks(&[]).unwrap().is_empty());
    }

    #[test]
    fn a_model_client_s_task_is_tokio_s_smallest_that_holds_a_socket() {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let task = model_client("127.0.0.1:9".parse().unwrap(), tx, Vec::new());
        // tokio's task block is 128-byte aligned: a future of at most 128 B makes a 256-byte
        // block, as our group's task is.
        assert!(std::mem::size_of_val(&task) <= 128);
    }
}
