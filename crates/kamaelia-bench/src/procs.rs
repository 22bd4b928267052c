//! Whole processes: the `measure` wrapper that reports one child's wall time, CPU and peak
//! memory, and the sink and echo servers as processes of their own, so a measured program
//! shares no runtime (and no process) with the suite.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use nix::sys::resource::{getrusage, UsageWho};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::Mutex;

use crate::harness::Sample;
use crate::servers::{self, ServerTls};

/// What one process cost, as `wait4`/`getrusage` of its parent sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Usage {
    /// From spawn to exit, seconds (measured by the wrapper, not counting its own start).
    pub(crate) wall: f64,
    /// User-space CPU, seconds.
    pub(crate) user: f64,
    /// Kernel CPU, seconds.
    pub(crate) sys: f64,
    /// Peak resident set, KiB (`ru_maxrss`).
    pub(crate) rss_kib: f64,
}

impl Usage {
    /// As a sample for the harness: wall, CPU (user + sys), user CPU, peak RSS.
    pub(crate) fn sample(&self) -> Sample {
        vec![self.wall, self.user + self.sys, self.user, self.rss_kib]
    }

    fn parse(report: &str) -> Result<Usage> {
        let v: Vec<f64> = report
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("a bad report: {report:?}"))?;
        let [wall, user, sys, rss_kib] =
            <[f64; 4]>::try_from(v).map_err(|_| anyhow!("a bad report: {report:?}"))?;
        Ok(Usage {
            wall,
            user,
            sys,
            rss_kib,
        })
    }
}

/// The `measure` subcommand: runs `argv` as its only child (standard streams inherited),
/// waits for it, and writes `wall user sys maxrss_kib` to `report`. Being the child's only
/// parent, `getrusage(RUSAGE_CHILDREN)` is exactly the child's usage (and of any children it
/// waited for itself). With `stop_on_eof` the child's stdin is null, and when the wrapper's
/// own stdin reaches its end the child is sent SIGTERM (for servers, which never end).
/// Returns the child's exit code (128 + signal if it was killed, as a shell says).
pub(crate) fn measure_main(report: &Path, stop_on_eof: bool, argv: &[OsString]) -> Result<i32> {
    let (program, args) = argv.split_first().context("measure: no program given")?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    if stop_on_eof {
        cmd.stdin(Stdio::null());
    }
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", program.to_string_lossy()))?;
    if stop_on_eof {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        });
    }
    let status = child.wait()?;
    let wall = start.elapsed().as_secs_f64();
    let u = getrusage(UsageWho::RUSAGE_CHILDREN)?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    std::fs::write(
        report,
        format!(
            "{wall} {} {} {}\n",
            secs(u.user_time()),
            secs(u.system_time()),
            u.max_rss()
        ),
    )?;
    use std::os::unix::process::ExitStatusExt as _;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// A command run under the `measure` wrapper.
pub(crate) struct Measured {
    child: Child,
    report: PathBuf,
    name: String,
}

impl Measured {
    /// Starts `program args` under the wrapper; `stdin`, `stdout` and `stderr` are the
    /// wrapper's, which the child inherits (unless `stop_on_eof`: then stdin is the wrapper's,
    /// and closing it stops the child).
    pub(crate) fn spawn(
        name: &str,
        dir: &Path,
        program: &Path,
        args: &[String],
        stop_on_eof: bool,
        stdio: [Stdio; 3],
    ) -> Result<Measured> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let report = dir.join(format!("usage-{n}"));
        let _ = std::fs::remove_file(&report);
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("measure").arg("--report").arg(&report);
        if stop_on_eof {
            cmd.arg("--stop-on-eof");
        }
        cmd.arg("--").arg(program).args(args);
        let [stdin, stdout, stderr] = stdio;
        cmd.stdin(stdin)
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true);
        Ok(Measured {
            child: cmd.spawn()?,
            report,
            name: name.to_string(),
        })
    }

    /// The wrapper's pipes, as [`Child`] has them.
    pub(crate) fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Waits (within `limit`) for the child to end; its usage, or an error if it failed.
    pub(crate) async fn finish(mut self, limit: Duration, must_succeed: bool) -> Result<Usage> {
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .map_err(|_| anyhow!("{} did not finish within {limit:?}", self.name))??;
        if must_succeed && !status.success() {
            bail!("{} exited with {status}", self.name);
        }
        let text = std::fs::read_to_string(&self.report)
            .with_context(|| format!("{}: no usage report", self.name))?;
        let _ = std::fs::remove_file(&self.report);
        Usage::parse(&text)
    }
}

/// A server process of the suite's own (`kamaelia-bench sink` or `echo`): its port, and for
/// the sink the byte count of each connection, one line each, in the order they end.
pub(crate) struct ServerProc {
    pub(crate) port: u16,
    lines: Mutex<Lines<BufReader<ChildStdout>>>,
    _child: Child,
}

impl ServerProc {
    /// Starts `kamaelia-bench ARGS` and reads the port it prints first.
    pub(crate) async fn start(args: &[&OsString]) -> Result<ServerProc> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .map_err(|_| anyhow!("the server process did not start"))??
            .context("the server process ended")?;
        Ok(ServerProc {
            port: first.trim().parse()?,
            lines: Mutex::new(lines),
            _child: child,
        })
    }

    /// The server process's id (`None` once it has been reaped).
    pub(crate) fn pid(&self) -> Option<u32> {
        self._child.id()
    }

    /// The sink: plain, or TLS with the certificate chain and key in these PEM files.
    pub(crate) async fn sink(tls: Option<(&Path, &Path)>) -> Result<ServerProc> {
        let mut args: Vec<OsString> = vec!["sink".into()];
        if let Some((chain, key)) = tls {
            args.extend(["--cert".into(), chain.into(), "--key".into(), key.into()]);
        }
        ServerProc::start(&args.iter().collect::<Vec<_>>()).await
    }

    /// The echo server.
    pub(crate) async fn echo() -> Result<ServerProc> {
        ServerProc::start(&[&"echo".into()]).await
    }

    /// The next connection's byte count, within `limit`.
    pub(crate) async fn next(&self, limit: Duration) -> Result<u64> {
        let mut lines = self.lines.lock().await;
        let line = tokio::time::timeout(limit, lines.next_line())
            .await
            .map_err(|_| anyhow!("no connection ended at the sink within {limit:?}"))??
            .context("the sink process ended")?;
        line.trim()
            .parse()
            .map_err(|_| anyhow!("the sink says: {line}"))
    }
}

/// The `sink` subcommand: a discard server (reads each connection to its end with a 256 KiB
/// buffer, counts, closes) printing its port, then one count per connection.
pub(crate) fn sink_main(tls: Option<(PathBuf, PathBuf)>) -> Result<()> {
    let tls = match tls {
        None => ServerTls::Plain,
        Some((chain, key)) => {
            ServerTls::FromStart(crate::certs::sink_config_from_files(&chain, &key)?)
        }
    };
    current_thread()?.block_on(async move {
        let (addr, reports) = servers::sink(tls).await?;
        say(addr.port());
        loop {
            match reports.next(Duration::MAX).await {
                Ok(n) => say(n),
                Err(e) => say(format_args!("error: {e:#}")),
            }
        }
    })
}

/// The `echo` subcommand: an echo server printing its port.
pub(crate) fn echo_main() -> Result<()> {
    current_thread()?.block_on(async move {
        let addr = servers::echo().await?;
        say(addr.port());
        std::future::pending::<Result<()>>().await
    })
}

fn current_thread() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// A line on stdout, flushed; exits quietly if the suite has gone.
fn say(line: impl std::fmt::Display) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}
