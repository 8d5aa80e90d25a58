//! The fairness benchmark's report: runs the lotteries of [`super::fairness`]
//! (and the sybil split), tests the counts with [`super::stats`], and
//! prints a table, JSON or an SVG plot.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::fairness::{self, Lottery, MAX_STEP, Tally};
use super::stats;

/// `klero bench fairness`
#[derive(Debug, Args)]
pub struct FairnessArgs {
    /// Which lottery.
    #[arg(long, value_enum, default_value = "pos")]
    consensus: Lottery,
    /// Weights: stakes (pos) or hashrates in tries per tick (pow).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5,6,7,8,9,10")]
    weights: Vec<u64>,
    /// Rounds (slots or blocks).
    #[arg(long, default_value_t = 100_000)]
    rounds: u64,
    /// Seed for keys and round randomness.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// PoS threshold c in thousandths (c = 3 → 3000).
    #[arg(long, default_value_t = 3000)]
    c_milli: u32,
    /// Also run the sybil test: participant 1's weight split over M keys.
    #[arg(long, value_name = "M")]
    split: Option<u64>,
    /// Print JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Write an SVG plot of observed vs expected share.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Participant {
    name: String,
    weight: u64,
    expected_share: f64,
    expected: f64,
    observed: u64,
    observed_share: f64,
}

#[derive(Debug, Serialize)]
struct SplitReport {
    keys: u64,
    single_key_wins: u64,
    split_keys_wins: u64,
    chi2: f64,
    df: usize,
    p_value: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    consensus: Lottery,
    rounds: u64,
    seed: u64,
    participants: Vec<Participant>,
    chi2: f64,
    df: usize,
    p_value: f64,
    g: f64,
    g_p_value: f64,
    tvd: f64,
    max_dev_pp: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    empty_slot_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expected_empty_slot_rate: Option<f64>,
    /// PoS: rounds by the first failover step at which someone was eligible.
    #[serde(skip_serializing_if = "Option::is_none")]
    failover_steps: Option<Vec<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mean_block_time_ticks: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ks_statistic: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ks_p_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    split: Option<SplitReport>,
}

impl FairnessArgs {
    /// Runs the benchmark and prints its report.
    ///
    /// # Errors
    ///
    /// Bad arguments, a VRF failure, or a plot that cannot be written.
    pub fn execute(self) -> Result<()> {
        if self.weights.len() < 2 || self.weights.contains(&0) {
            bail!("--weights needs at least two weights, all above zero");
        }
        if self.rounds == 0 {
            bail!("--rounds must be at least 1");
        }
        let tally = self.measure(&self.weights, "draws")?;
        let mut report = self.report(&tally);
        if let Some(m) = self.split {
            report.split = Some(self.sybil(m, &tally)?);
        }
        if let Some(path) = &self.plot {
            plot(&report, path).with_context(|| format!("writing plot {}", path.display()))?;
        }
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_table(&report);
        }
        Ok(())
    }

    fn measure(&self, weights: &[u64], what: &str) -> Result<Tally> {
        let progress = AtomicU64::new(0);
        let bar = ProgressBar::new(self.rounds).with_message(what.to_string());
        bar.set_style(
            ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({per_sec}, eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let tally = std::thread::scope(|scope| {
            let worker = scope.spawn(|| {
                fairness::run(
                    self.consensus,
                    weights,
                    self.rounds,
                    self.seed,
                    self.c_milli,
                    &progress,
                )
            });
            while !worker.is_finished() {
                bar.set_position(progress.load(Ordering::Relaxed));
                std::thread::sleep(Duration::from_millis(100));
            }
            worker.join()
        });
        bar.finish_and_clear();
        let tally = tally.map_err(|_| anyhow::anyhow!("benchmark worker panicked"))?;
        tally.context("a VRF proof failed to verify")
    }

    fn report(&self, tally: &Tally) -> Report {
        let total: u64 = self.weights.iter().fold(0, |t, w| t.saturating_add(*w));
        let n = self.rounds as f64;
        let probs: Vec<f64> = self.weights.iter().map(|w| *w as f64 / total as f64).collect();
        let shares: Vec<f64> = tally.wins.iter().map(|w| *w as f64 / n).collect();
        let participants = self
            .weights
            .iter()
            .zip(&tally.wins)
            .zip(probs.iter().zip(&shares))
            .enumerate()
            .map(|(i, ((weight, wins), (p, share)))| Participant {
                name: format!("p{}", i + 1),
                weight: *weight,
                expected_share: *p,
                expected: p * n,
                observed: *wins,
                observed_share: *share,
            })
            .collect();
        let chi = stats::chi_square_gof(&tally.wins, &probs);
        let g = stats::g_test(&tally.wins, &probs);
        let pos = self.consensus == Lottery::Pos;
        let ks = (!pos).then(|| {
            let mean = tally.block_times.iter().sum::<f64>() / tally.block_times.len().max(1) as f64;
            (
                mean,
                stats::ks_exponential(&tally.block_times, fairness::pow_expected_block_time()),
            )
        });
        Report {
            consensus: self.consensus,
            rounds: self.rounds,
            seed: self.seed,
            participants,
            chi2: chi.statistic,
            df: chi.df,
            p_value: chi.p_value,
            g: g.statistic,
            g_p_value: g.p_value,
            tvd: stats::total_variation(&shares, &probs),
            max_dev_pp: 100.0 * stats::max_abs_dev(&shares, &probs),
            empty_slot_rate: pos.then(|| (n - tally.first_eligible_step[0] as f64) / n),
            expected_empty_slot_rate: pos.then(|| fairness::expected_empty_rate(self.c_milli)),
            failover_steps: pos.then(|| tally.first_eligible_step.clone()),
            mean_block_time_ticks: ks.as_ref().map(|(mean, _)| *mean),
            ks_statistic: ks.as_ref().map(|(_, k)| k.statistic),
            ks_p_value: ks.as_ref().map(|(_, k)| k.p_value),
            split: None,
        }
    }

    /// Splits participant 1's weight over `m` keys and compares its wins
    /// (summed over the keys) and everyone else's against the single-key run.
    fn sybil(&self, m: u64, single: &Tally) -> Result<SplitReport> {
        let first = self.weights[0];
        if m < 2 || first < m || !first.is_multiple_of(m) {
            bail!("--split M needs M ≥ 2 dividing the first weight ({first})");
        }
        let mut weights = vec![first / m; m as usize];
        weights.extend_from_slice(&self.weights[1..]);
        let split = self.measure(&weights, "sybil split")?;
        let m = m as usize;
        let split_wins: u64 = split.wins[..m].iter().sum();
        let mut b = vec![split_wins];
        b.extend_from_slice(&split.wins[m..]);
        let chi = stats::chi_square_two_sample(&single.wins, &b);
        Ok(SplitReport {
            keys: m as u64,
            single_key_wins: single.wins[0],
            split_keys_wins: split_wins,
            chi2: chi.statistic,
            df: chi.df,
            p_value: chi.p_value,
        })
    }
}

fn print_table(r: &Report) {
    println!(
        "fairness of the {:?} lottery, {} rounds, seed {}",
        r.consensus, r.rounds, r.seed
    );
    println!(
        "{:<6} {:>8} {:>10} {:>12} {:>10} {:>10} {:>9}",
        "", "weight", "exp share", "expected", "observed", "obs share", "dev pp"
    );
    for p in &r.participants {
        println!(
            "{:<6} {:>8} {:>10.4} {:>12.1} {:>10} {:>10.4} {:>+9.3}",
            p.name,
            p.weight,
            p.expected_share,
            p.expected,
            p.observed,
            p.observed_share,
            100.0 * (p.observed_share - p.expected_share)
        );
    }
    println!("chi-square {:.3} (df {}), p-value {:.4}", r.chi2, r.df, r.p_value);
    println!("G-test     {:.3}, p-value {:.4}", r.g, r.g_p_value);
    println!(
        "total-variation distance {:.5}; largest deviation {:.3} pp",
        r.tvd, r.max_dev_pp
    );
    if let (Some(rate), Some(expected), Some(steps)) =
        (r.empty_slot_rate, r.expected_empty_slot_rate, &r.failover_steps)
    {
        println!("empty slots (nobody eligible at step 0): {rate:.5}, expected e^-c = {expected:.5}");
        let shown: Vec<String> = steps
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(j, n)| {
                if j == MAX_STEP {
                    format!(">={j}: {n}")
                } else {
                    format!("{j}: {n}")
                }
            })
            .collect();
        println!(
            "first failover step with an eligible staker: {}",
            shown.join(", ")
        );
    }
    if let (Some(mean), Some(d), Some(p)) = (r.mean_block_time_ticks, r.ks_statistic, r.ks_p_value) {
        println!(
            "block time: mean {mean:.3} ticks (expected {:.1}); KS vs exponential D = {d:.5}, p-value {p:.4}",
            fairness::pow_expected_block_time()
        );
    }
    if let Some(s) = &r.split {
        println!(
            "sybil split over {} keys: {} wins as one key, {} as {} keys; two-sample chi-square {:.3} (df {}), p-value {:.4}",
            s.keys, s.single_key_wins, s.split_keys_wins, s.keys, s.chi2, s.df, s.p_value
        );
    }
}

fn plot(r: &Report, path: &std::path::Path) -> Result<()> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = r.rounds as f64;
    let top = r
        .participants
        .iter()
        .map(|p| p.expected_share.max(p.observed_share))
        .fold(0.0, f64::max)
        * 1.15;
    let k = r.participants.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "klero {:?} fairness: observed vs expected share ({} rounds)",
                r.consensus, r.rounds
            ),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.5f64..k as f64 + 0.5, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("participant (weight order)")
        .y_desc("share of wins")
        .x_labels(k)
        .x_label_formatter(&|x| format!("p{}", x.round() as i64))
        .draw()?;
    chart
        .draw_series(r.participants.iter().enumerate().map(|(i, p)| {
            let x = i as f64 + 1.0;
            // 95% binomial interval of the observed share.
            let half = 1.96 * (p.expected_share * (1.0 - p.expected_share) / n).sqrt();
            ErrorBar::new_vertical(
                x,
                p.observed_share - half,
                p.observed_share,
                p.observed_share + half,
                BLUE.filled(),
                8,
            )
        }))?
        .label("observed (±1.96σ)")
        .legend(|(x, y)| Circle::new((x, y), 4, BLUE.filled()));
    chart
        .draw_series(r.participants.iter().enumerate().map(|(i, p)| {
            let x = i as f64 + 1.0;
            PathElement::new(
                vec![(x - 0.3, p.expected_share), (x + 0.3, p.expected_share)],
                RED.stroke_width(2),
            )
        }))?
        .label("expected = weight / total")
        .legend(|(x, y)| PathElement::new(vec![(x - 8, y), (x + 8, y)], RED.stroke_width(2)));
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    root.present()?;
    Ok(())
}
