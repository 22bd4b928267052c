//! The command-line programs measured as whole processes: `kamaelia` and the peers people reach
//! for (socat, nc from netcat-openbsd, ncat). Each is probed once; one that is missing or does
//! not do the job is skipped with a note.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::harness::Table;
use crate::procs::{Measured, ServerProc, Usage};

/// How long one process may take before it counts as failed.
const PROCESS_LIMIT: Duration = Duration::from_secs(120);

/// Where a tool's stdin comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stdin {
    /// Nothing (the tool opens the file itself).
    Null,
    /// The file, redirected.
    File,
    /// A pipe the suite writes to (a relay).
    Piped,
}

/// A program and its arguments; `{port}`, `{file}` and `{ca}` are filled in per run.
#[derive(Clone)]
pub(crate) struct Tool {
    pub(crate) name: String,
    program: PathBuf,
    args: Vec<String>,
    stdin: Stdin,
}

/// The placeholders' values.
pub(crate) struct Fill<'a> {
    pub(crate) port: u16,
    pub(crate) file: &'a Path,
    pub(crate) ca: &'a Path,
}

impl Tool {
    /// `name` with `args` if `program` is found (a path, or a name on `PATH`).
    pub(crate) fn find(name: &str, program: &Path, args: &[&str], stdin: Stdin) -> Option<Tool> {
        let program = locate(program)?;
        Some(Tool {
            name: name.to_string(),
            program,
            args: args.iter().map(|a| a.to_string()).collect(),
            stdin,
        })
    }

    /// The arguments with the placeholders filled in.
    fn args_filled(&self, fill: &Fill<'_>) -> Vec<String> {
        self.args
            .iter()
            .map(|a| {
                a.replace("{port}", &fill.port.to_string())
                    .replace("{file}", &fill.file.to_string_lossy())
                    .replace("{ca}", &fill.ca.to_string_lossy())
            })
            .collect()
    }

    fn stdin(&self, fill: &Fill<'_>) -> Result<Stdio> {
        Ok(match self.stdin {
            Stdin::Null => Stdio::null(),
            Stdin::File => Stdio::from(std::fs::File::open(fill.file)?),
            Stdin::Piped => Stdio::piped(),
        })
    }

    fn command(&self, fill: &Fill<'_>) -> Result<Command> {
        let mut c = Command::new(&self.program);
        c.args(self.args_filled(fill));
        c.stdin(self.stdin(fill)?);
        c.stdout(if self.stdin == Stdin::Piped {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        c.stderr(Stdio::null()).kill_on_drop(true);
        Ok(c)
    }

    /// Starts the tool under the `measure` wrapper (scratch files in `dir`), with its stdin as
    /// the tool wants it (unless `stop_on_eof`: then the wrapper's stdin is a pipe whose end
    /// stops the tool) and the given stdout and stderr.
    pub(crate) fn spawn_measured(
        &self,
        dir: &Path,
        fill: &Fill<'_>,
        stop_on_eof: bool,
        stdout: Stdio,
        stderr: Stdio,
    ) -> Result<Measured> {
        let stdin = if stop_on_eof {
            Stdio::piped()
        } else {
            self.stdin(fill)?
        };
        Measured::spawn(
            &self.name,
            dir,
            &self.program,
            &self.args_filled(fill),
            stop_on_eof,
            [stdin, stdout, stderr],
        )
    }

    /// Runs the tool (measured) to send `fill.file` of `len` bytes to the sink process, and
    /// checks that the sink counted every byte.
    pub(crate) async fn send_measured(
        &self,
        dir: &Path,
        fill: &Fill<'_>,
        len: u64,
        sink: &ServerProc,
    ) -> Result<Usage> {
        let run = self.spawn_measured(dir, fill, false, Stdio::null(), Stdio::null())?;
        let usage = run.finish(PROCESS_LIMIT, true).await?;
        let got = sink.next(Duration::from_secs(10)).await?;
        ensure!(
            got == len,
            "{}: the sink got {got} of {len} bytes",
            self.name
        );
        Ok(usage)
    }

    /// Relays 64-byte pings from its stdin to an echo server and back to its stdout:
    /// `warm_up` unmeasured round trips, then `round_trips` measured ones (microseconds).
    pub(crate) async fn relay_pings(
        &self,
        fill: &Fill<'_>,
        warm_up: usize,
        round_trips: usize,
    ) -> Result<Vec<f64>> {
        let mut child = self.command(fill)?.spawn()?;
        let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("{}: no pipes", self.name);
        };
        let ping = [0x70_u8; 64];
        let mut pong = [0_u8; 64];
        let mut rtts = Vec::with_capacity(round_trips);
        let run = async {
            for i in 0..warm_up + round_trips {
                let t = Instant::now();
                stdin.write_all(&ping).await?;
                stdin.flush().await?;
                stdout.read_exact(&mut pong).await?;
                if i >= warm_up {
                    rtts.push(t.elapsed().as_secs_f64() * 1e6);
                }
            }
            anyhow::Ok(())
        };
        tokio::time::timeout(PROCESS_LIMIT, run)
            .await
            .map_err(|_| {
                anyhow!(
                    "{}: the pings did not finish within {PROCESS_LIMIT:?}",
                    self.name
                )
            })??;
        drop(stdin);
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
        Ok(rtts)
    }

    /// One trial run that must succeed before the tool is measured.
    pub(crate) async fn probe_send(
        &self,
        dir: &Path,
        fill: &Fill<'_>,
        len: u64,
        sink: &ServerProc,
    ) -> Result<()> {
        tokio::time::timeout(
            Duration::from_secs(15),
            self.send_measured(dir, fill, len, sink),
        )
        .await
        .map_err(|_| anyhow!("no result within 15 s"))?
        .map(|_| ())
    }
}

/// Keeps the tools whose probe succeeds; notes the others.
pub(crate) async fn probed<F, Fut>(
    tools: Vec<Tool>,
    table: &mut Table,
    what: &str,
    mut probe: F,
) -> Vec<Tool>
where
    F: FnMut(Tool) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut ok = Vec::new();
    for t in tools {
        match probe(t.clone()).await {
            Ok(()) => ok.push(t),
            Err(e) => table.note(format!(
                "{what}: {} skipped: its trial run failed: {e:#}",
                t.name
            )),
        }
    }
    ok
}

/// Notes the tools in `wanted` that were not found.
pub(crate) fn note_missing(table: &mut Table, what: &str, wanted: &[&str], found: &[Tool]) {
    for w in wanted {
        if !found.iter().any(|t| t.name == *w) {
            table.note(format!("{what}: {w} skipped: not installed / not built"));
        }
    }
}

/// `program` itself if it is a path to a file, else the first match on `PATH`.
pub(crate) fn locate(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}
