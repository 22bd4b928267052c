//! Every process of a figure on one CPU ([`OneCpu`]): figures 4 and 6 run their rounds a second
//! time so placed, beside the rounds the kernel placed.

use anyhow::{anyhow, ensure, Result};

use crate::harness::Table;

/// This process pinned to one CPU (every thread, with `taskset -a`) until [`restore`]: the
/// processes it then starts (servers, relays, senders: its children inherit the mask) share
/// that CPU with it. Unpinned, the kernel places a figure's processes on the machine's CPUs as
/// it likes, and on two vCPUs that placement moves a run more than the programs do (figure 6:
/// about 12 us p50 with all three on one CPU, wake-ups local, or 60-90 us spread, each wake-up
/// an interrupt to an idle CPU; figure 4: the hand-written relay at two speeds). On one CPU a
/// run costs what the programs do for it (their instructions, their system calls, the context
/// switches between them) and nothing of where they were put.
///
/// [`restore`]: OneCpu::restore
pub(crate) struct OneCpu {
    /// The CPU used: the highest one this process may run on.
    cpu: String,
    /// The CPUs this process could run on before (`taskset -c` list form).
    before: String,
}

impl OneCpu {
    /// Pins every thread of this process to the highest CPU it may run on now.
    pub(crate) async fn pin() -> Result<OneCpu> {
        let pid = std::process::id().to_string();
        let out = taskset(&["-c", "-p", &pid]).await?;
        // "pid 123's current affinity list: 0,1" (or ranges and strides: 0-3,6,8-15:2).
        let before = out
            .split_once("list:")
            .map(|(_, list)| list.trim())
            .filter(|l| !l.is_empty())
            .ok_or_else(|| anyhow!("taskset said {out:?}"))?
            .to_string();
        let cpu = cpu_list(&before)?
            .into_iter()
            .max()
            .ok_or_else(|| anyhow!("taskset's affinity list {before:?} is empty"))?
            .to_string();
        taskset(&["-a", "-c", "-p", &cpu, &pid]).await?;
        Ok(OneCpu { cpu, before })
    }

    /// [`pin`](OneCpu::pin), or `None` with a note in `table` that `what`'s pinned rows were
    /// not measured (no taskset, or it failed).
    pub(crate) async fn pin_or_note(table: &mut Table, what: &str) -> Option<OneCpu> {
        match OneCpu::pin().await {
            Ok(pin) => Some(pin),
            Err(e) => {
                table.note(format!(
                    "{what}: the pinned rows need taskset ({e:#}); not measured"
                ));
                None
            }
        }
    }

    /// The label of a row measured while pinned: which CPU.
    pub(crate) fn label(&self) -> String {
        format!(", all on CPU {}", self.cpu)
    }

    /// Every thread of this process back on the CPUs it had.
    pub(crate) async fn restore(self) -> Result<()> {
        let pid = std::process::id().to_string();
        taskset(&["-a", "-c", "-p", &self.before, &pid])
            .await
            .map(|_| ())
    }
}

/// The CPUs in a `taskset -c` list (util-linux's list form): comma-separated CPUs (`3`),
/// ranges (`0-7`) and ranges with a stride (`0-7:2` is 0, 2, 4, 6), in the order given.
pub(crate) fn cpu_list(list: &str) -> Result<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim) {
        let bad = || anyhow!("not a CPU list: {list:?} (at {part:?})");
        let (range, stride) = match part.split_once(':') {
            Some((range, stride)) => (range, stride.parse::<u32>().map_err(|_| bad())?),
            None => (part, 1),
        };
        let (first, last) = match range.split_once('-') {
            Some((a, b)) => (a.parse::<u32>(), b.parse::<u32>()),
            None => (range.parse::<u32>(), range.parse::<u32>()),
        };
        let (first, last) = (first.map_err(|_| bad())?, last.map_err(|_| bad())?);
        ensure!(stride > 0 && first <= last, bad());
        cpus.extend((first..=last).step_by(stride as usize));
    }
    Ok(cpus)
}

/// Runs `taskset` with `args`; its standard output.
async fn taskset(args: &[&str]) -> Result<String> {
    let out = tokio::process::Command::new("taskset")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "taskset {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::cpu_list;

    #[test]
    fn taskset_lists_are_read_with_ranges_and_strides() {
        let rows: [(&str, &[u32]); 7] = [
            ("0", &[0]),
            ("0,1", &[0, 1]),
            ("0-3,6", &[0, 1, 2, 3, 6]),
            ("0-7:2", &[0, 2, 4, 6]),
            ("1-6:2,9", &[1, 3, 5, 9]),
            ("8-15:4, 3", &[8, 12, 3]),
            ("5-5:3", &[5]),
        ];
        for (list, want) in rows {
            assert_eq!(cpu_list(list).unwrap(), want, "{list}");
        }
        for bad in ["", "a", "3-1", "0-7:0", "0-7:", "-3", "0-", "1,,2", "0:2:3"] {
            assert!(cpu_list(bad).is_err(), "{bad:?} was read");
        }
    }
}
