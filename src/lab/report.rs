//! Output: the text table, the JSON document and the SVG plot of messages per
//! election against network size.

use std::fmt::Write;
use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use super::Scenario;
use super::metrics::{Spread, Summary};

/// The JSON document `klero lab --json` prints.
#[derive(Debug, Serialize)]
pub(crate) struct Report<'a> {
    /// The experiment's conditions.
    pub scenario: &'a Scenario,
    /// When the run stops and when the measured election starts, in ms.
    pub horizon_ms: f64,
    /// The moment time to agreement counts from, in ms.
    pub trigger_ms: f64,
    /// One summary per algorithm.
    pub results: &'a [Summary],
}

fn spread(s: Option<Spread>, digits: usize) -> String {
    match s {
        Some(s) => format!("{:>8.digits$} {:>8.digits$}", s.median, s.p95),
        None => format!("{:>8} {:>8}", "-", "-"),
    }
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("{:.3}", r))
}

/// The text table: one row per algorithm.
pub(crate) fn table(scenario: &Scenario, results: &[Summary]) -> String {
    let cfg = scenario.run_config(0);
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "n={} runs={} seed={} latency={}ms loss={} crash-leader={} partition={} flap={}; \
         time to agreement counts from {:.0} ms, runs end at {:.0} ms",
        scenario.nodes,
        results.first().map_or(0, |r| r.runs),
        scenario.seed,
        scenario.latency_ms,
        scenario.loss,
        scenario.crash_leader,
        scenario
            .partition_ms
            .map_or_else(|| "none".to_owned(), |(a, h)| format!("{a}:{h}ms")),
        scenario.flap,
        cfg.trigger as f64 / 1_000.0,
        cfg.horizon as f64 / 1_000.0,
    );
    let _ = writeln!(
        out,
        "{:<13} {:>17} {:>17} {:>6} {:>9} {:>17} {:>6} {:>7} {:>6} {:>6}",
        "algorithm",
        "msgs/election",
        "agreement (ms)",
        "agreed",
        "elections",
        "split brain",
        "unsafe",
        "leader",
        "empty",
        "forks"
    );
    let _ = writeln!(
        out,
        "{:<13} {:>8} {:>8} {:>8} {:>8} {:>6} {:>9} {:>8} {:>8} {:>6} {:>7} {:>6} {:>6}",
        "",
        "median",
        "p95",
        "median",
        "p95",
        "runs",
        "per run",
        "per run",
        "ms/run",
        "",
        "changes",
        "rate",
        "rate"
    );
    for r in results {
        let _ = writeln!(
            out,
            "{:<13} {} {} {:>6} {:>9.1} {:>8.2} {:>8.1} {:>6} {:>7.2} {:>6} {:>6}",
            r.algorithm,
            spread(r.messages_per_election, 0),
            spread(r.time_to_agreement_ms, 1),
            r.runs_agreed,
            r.elections_started,
            r.split_brain_episodes,
            r.split_brain_ms,
            r.safety_violations
                .map_or_else(|| "-".to_owned(), |v| v.to_string()),
            r.leader_changes,
            rate(r.empty_round_rate),
            rate(r.fork_rate),
        );
    }
    out
}

/// One line of the plot: an algorithm's median messages per election by n.
#[derive(Clone, Debug)]
pub(crate) struct Series {
    /// The algorithm.
    pub name: &'static str,
    /// (n, median messages per election).
    pub points: Vec<(f64, f64)>,
}

/// Draws messages per election against n, both axes logarithmic, with
/// dashed `∝ n` and `∝ n²` guides through the lowest point.
///
/// # Errors
///
/// If the file cannot be written.
pub(crate) fn plot(path: &Path, series: &[Series]) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    let points = || series.iter().flat_map(|s| s.points.iter().copied());
    let (x_min, x_max) = points().fold((f64::MAX, 1.0f64), |(lo, hi), (x, _)| (lo.min(x), hi.max(x)));
    let (y_min, y_max) = points().fold((f64::MAX, 1.0f64), |(lo, hi), (_, y)| (lo.min(y), hi.max(y)));
    let (x_min, y_min) = (x_min.min(x_max).max(1.0), y_min.min(y_max).max(1.0));

    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("messages per election against n (log-log)", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(
            (x_min * 0.9..x_max * 1.1).log_scale(),
            (y_min * 0.5..y_max * 2.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("nodes n")
        .y_desc("non-heartbeat messages per agreed leader")
        .draw()?;

    let xs = [x_min, x_max];
    for (label, power) in [("∝ n", 1), ("∝ n²", 2)] {
        let guide = xs.iter().map(|x| (*x, y_min * (x / x_min).powi(power)));
        chart
            .draw_series(DashedLineSeries::new(guide, 4, 4, BLACK.mix(0.4).stroke_width(1)))?
            .label(label)
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.mix(0.4)));
    }
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)))?
            .label(s.name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
        chart.draw_series(s.points.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()
}
