//! Rounds run alternately, medians, and the one table the suite prints.

use std::fmt::Write as _;
use std::future::Future;

use anyhow::Result;

/// One run's figures (which index means what is up to the figure).
pub(crate) type Sample = Vec<f64>;

/// Runs every side once per round, rotating which goes first, for a warm-up round and then
/// `rounds` measured rounds. Returns, per side, the measured rounds' samples.
pub(crate) async fn alternate<S, F, Fut>(
    rounds: usize,
    sides: &[S],
    mut run: F,
) -> Result<Vec<Vec<Sample>>>
where
    S: Copy,
    F: FnMut(S) -> Fut,
    Fut: Future<Output = Result<Sample>>,
{
    let mut out = vec![Vec::new(); sides.len()];
    for round in 0..=rounds {
        for k in 0..sides.len() {
            let i = (k + round) % sides.len();
            let sample = run(sides[i]).await?;
            if round > 0 {
                out[i].push(sample);
            }
        }
    }
    Ok(out)
}

/// The median over rounds of metric `metric`.
pub(crate) fn median(samples: &[Sample], metric: usize) -> f64 {
    let mut v: Vec<f64> = samples.iter().map(|s| s[metric]).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The smallest and largest over rounds of metric `metric`.
pub(crate) fn range(samples: &[Sample], metric: usize) -> (f64, f64) {
    samples
        .iter()
        .map(|s| s[metric])
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        })
}

/// The range of `a / b` for metric `metric`, round by round (the rounds alternate, so each
/// pair ran side by side).
pub(crate) fn ratio_range(a: &[Sample], b: &[Sample], metric: usize) -> (f64, f64) {
    a.iter()
        .zip(b)
        .map(|(x, y)| x[metric] / y[metric])
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        })
}

/// The `q` quantile (0..=1) of `v`, which it sorts.
pub(crate) fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i]
}

/// One row: our figure, the baseline's, and ours / baseline as a cost (time, latency, memory,
/// CPU), so below 1 is better than the baseline whatever the unit shown.
pub(crate) struct Row {
    pub(crate) figure: String,
    pub(crate) ours: String,
    pub(crate) baseline: String,
    pub(crate) ratio: f64,
    /// The per-round ratios' range ("min–max"), where rounds were measured in pairs.
    pub(crate) spread: String,
    pub(crate) goal: String,
}

/// The rows and the notes (skips, failures, conditions) printed under them.
#[derive(Default)]
pub(crate) struct Table {
    pub(crate) rows: Vec<Row>,
    pub(crate) notes: Vec<String>,
}

impl Table {
    /// Adds a row; `ratio` is ours / baseline as a cost.
    pub(crate) fn row(
        &mut self,
        figure: impl Into<String>,
        ours: String,
        baseline: String,
        ratio: f64,
        goal: &str,
    ) {
        self.row_spread(figure, ours, baseline, ratio, "-".to_string(), goal);
    }

    /// Adds a row with the range of the per-round ratios.
    pub(crate) fn row_spread(
        &mut self,
        figure: impl Into<String>,
        ours: String,
        baseline: String,
        ratio: f64,
        spread: String,
        goal: &str,
    ) {
        let row = Row {
            figure: figure.into(),
            ours,
            baseline,
            ratio,
            spread,
            goal: goal.to_string(),
        };
        eprintln!(
            "  {} | {} | {} | {} | {} | {}",
            row.figure,
            row.ours,
            row.baseline,
            fmt_ratio(row.ratio),
            row.spread,
            row.goal
        );
        self.rows.push(row);
    }

    /// Adds a note printed under the table.
    pub(crate) fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        eprintln!("  note: {note}");
        self.notes.push(note);
    }

    /// The table as Markdown, then the notes.
    pub(crate) fn render(&self) -> String {
        let mut s = String::new();
        s.push_str(
            "| figure | ours | baseline | ratio | ratio per round | goal |\n|---|---:|---:|---:|---:|---|\n",
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                r.figure,
                r.ours,
                r.baseline,
                fmt_ratio(r.ratio),
                r.spread,
                r.goal
            );
        }
        for n in &self.notes {
            let _ = writeln!(s, "\n- {n}");
        }
        s
    }
}

fn fmt_ratio(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.2}")
    } else {
        "-".to_string()
    }
}

/// A size for figure names: "1 GiB", "64 MiB", "1 KiB".
pub(crate) fn size(bytes: u64) -> String {
    const K: u64 = 1024;
    match bytes {
        b if b >= K * K * K && b % (K * K * K) == 0 => format!("{} GiB", b / (K * K * K)),
        b if b >= K * K && b % (K * K) == 0 => format!("{} MiB", b / (K * K)),
        b if b >= K && b % K == 0 => format!("{} KiB", b / K),
        b => format!("{b} B"),
    }
}
