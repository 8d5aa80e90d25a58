//! `klero lab`: run the election lab and print, or plot, the results.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::lab::report::{self, Report, Series};
use crate::lab::{Algorithm, Scenario, sweep_sizes};

/// Runs per network size in the `--plot` sweep: the sweep reaches n = 1,000,
/// where one Bully election alone is a million messages.
const SWEEP_RUNS: usize = 5;

/// The algorithms to run: a comma-separated list, or `all`.
#[derive(Clone, Debug)]
struct Selection(Vec<Algorithm>);

fn parse_selection(s: &str) -> Result<Selection, String> {
    if s == "all" {
        return Ok(Selection(Algorithm::ALL.to_vec()));
    }
    s.split(',')
        .map(|name| name.trim().parse::<Algorithm>().map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()
        .map(Selection)
}

fn parse_probability(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..1.0).contains(&p) => Ok(p),
        _ => Err(format!("`{s}` is not a probability in [0, 1)")),
    }
}

fn parse_latency(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(ms) if (0.01..=60_000.0).contains(&ms) => Ok(ms),
        _ => Err(format!("`{s}` is not a latency in milliseconds (0.01 to 60000)")),
    }
}

fn parse_partition(s: &str) -> Result<(u64, u64), String> {
    let parsed = s
        .split_once(':')
        .and_then(|(at, heal)| Some((at.parse::<u64>().ok()?, heal.parse::<u64>().ok()?)));
    match parsed {
        Some((at, heal)) if at < heal => Ok((at, heal)),
        _ => Err(format!("`{s}` is not AT:HEAL in milliseconds with AT < HEAL")),
    }
}

/// `klero lab`: classical leader elections beside the lotteries, on one
/// simulated network.
#[derive(Debug, Args)]
pub struct LabArgs {
    /// Comma-separated: bully, ring, next-in-line, raft (with CheckQuorum),
    /// raft-nocq (without), paxos, zab, vr, pow, pos; or all.
    #[arg(long, default_value = "all", value_parser = parse_selection)]
    algorithm: Selection,
    /// Nodes per run.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u16).range(3..=1000))]
    nodes: u16,
    /// Runs per algorithm (in parallel).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Base seed: the same seed gives the same traces and output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Per-message loss probability.
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    loss: f64,
    /// Mean one-way latency in milliseconds; every protocol clock scales with it.
    #[arg(long, value_name = "MS", default_value_t = 10.0, value_parser = parse_latency)]
    latency: f64,
    /// Crash the leader once the first election has settled; time to
    /// agreement then measures the re-election.
    #[arg(long)]
    crash_leader: bool,
    /// Cut the leader off in a minority at AT ms and heal at HEAL ms.
    #[arg(long, value_name = "AT:HEAL", value_parser = parse_partition)]
    partition: Option<(u64, u64)>,
    /// Crash and recover the highest-id node three times.
    #[arg(long)]
    flap: bool,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Also sweep n and plot messages per election against n (SVG).
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

impl LabArgs {
    /// Runs the experiment.
    ///
    /// # Errors
    ///
    /// If the JSON cannot be encoded or the plot cannot be written.
    pub fn execute(self) -> Result<()> {
        let scenario = Scenario {
            nodes: usize::from(self.nodes),
            seed: self.seed,
            latency_ms: self.latency,
            loss: self.loss,
            crash_leader: self.crash_leader,
            partition_ms: self.partition,
            flap: self.flap,
        };
        let algorithms = self.algorithm.0;
        let runs = self.runs as usize;
        let sizes = if self.plot.is_some() {
            sweep_sizes(scenario.nodes)
        } else {
            Vec::new()
        };
        let sweep_runs = runs.min(SWEEP_RUNS);
        let total = algorithms.len() * (runs + sizes.len() * sweep_runs);
        // Hidden by indicatif when stderr is not a terminal.
        let bar = ProgressBar::new(total as u64).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} runs {msg}")
                .context("progress bar template")?,
        );
        let tick = || bar.inc(1);

        let results: Vec<_> = algorithms
            .iter()
            .map(|a| {
                bar.set_message(a.name());
                scenario.run(*a, runs, &tick)
            })
            .collect();
        let series: Vec<Series> = algorithms
            .iter()
            .filter(|_| !sizes.is_empty())
            .map(|a| {
                bar.set_message(format!("sweep {a}"));
                let points = sizes
                    .iter()
                    .filter_map(|n| {
                        let at_n = Scenario {
                            nodes: *n,
                            ..scenario.clone()
                        };
                        let s = at_n.run(*a, sweep_runs, &tick);
                        // A log axis has no 0: a configured first leader costs nothing.
                        s.messages_per_election
                            .filter(|m| m.median > 0.0)
                            .map(|m| (*n as f64, m.median))
                    })
                    .collect();
                Series {
                    name: a.name(),
                    points,
                }
            })
            .collect();
        bar.finish_and_clear();

        if self.json {
            let cfg = scenario.run_config(0);
            let doc = Report {
                scenario: &scenario,
                horizon_ms: cfg.horizon as f64 / 1_000.0,
                trigger_ms: cfg.trigger as f64 / 1_000.0,
                results: &results,
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).context("encoding the report")?
            );
        } else {
            print!("{}", report::table(&scenario, &results));
        }
        if let Some(path) = self.plot {
            report::plot(&path, &series).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        Ok(())
    }
}
