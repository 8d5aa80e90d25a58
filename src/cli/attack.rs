//! `klero bench attack`: the strategic-participant experiments of
//! [`crate::lab::attack`], as a table, JSON or an SVG chart.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::lab::attack::plot::{self, Curve, Measured};
use crate::lab::attack::{Estimate, equivocate, grind, selfish, withhold};

/// `klero bench attack …`
#[derive(Debug, Subcommand)]
pub enum AttackCommand {
    /// PoW selfish mining (Eyal and Sirer's SM1) beside the closed form.
    Selfish(SelfishArgs),
    /// PoS: withhold a won block and publish it late, v2 rule and v1's.
    Withhold(WithholdArgs),
    /// PoS: pick the next epoch's randomness by withholding before the freeze point.
    Grind(GrindArgs),
    /// PoS: expected net reward of equivocating under the slashing rule.
    Equivocate(EquivocateArgs),
}

/// What every experiment prints.
#[derive(Debug, Args)]
pub(crate) struct Output {
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write an SVG chart.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

/// The shares a sweep covers by default: SM1's range below one half.
const SHARES: &str = "0.05,0.1,0.15,0.2,0.25,0.3,0.35,0.4,0.45";

/// How often a simulated point is repeated, and from which seed.
#[derive(Debug, Args)]
pub(crate) struct Repeat {
    /// Independent runs per point.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Base seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// `klero bench attack selfish`
#[derive(Debug, Args)]
pub struct SelfishArgs {
    /// Pool hashrate shares.
    #[arg(long, value_delimiter = ',', default_value = SHARES)]
    alphas: Vec<f64>,
    /// Relay advantages: the chance an honest miner hears the pool's block first in a race.
    #[arg(long, value_delimiter = ',', default_value = "0,0.5,1")]
    gammas: Vec<f64>,
    /// ASERT half-life in blocks: 32 is klero's development rule; a huge
    /// value (e.g. 1099511627776) holds the difficulty constant, as the
    /// closed form assumes.
    #[arg(long, default_value_t = selfish::DEV_HALF_LIFE)]
    half_life: u64,
    /// Honest miners (equal hashrate).
    #[arg(long, default_value_t = 100)]
    honest_miners: usize,
    /// Blocks found per run.
    #[arg(long, default_value_t = 20_000)]
    blocks: u64,
    #[command(flatten)]
    repeat: Repeat,
    #[command(flatten)]
    out: Output,
}

/// `klero bench attack withhold`
#[derive(Debug, Args)]
pub struct WithholdArgs {
    /// Adversary stake shares.
    #[arg(long, value_delimiter = ',', default_value = SHARES)]
    alphas: Vec<f64>,
    /// Release delays in slots (0: at the end of its own slot).
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    delays: Vec<u64>,
    /// Honest stakers (equal stake).
    #[arg(long, default_value_t = 9)]
    honest_stakers: usize,
    /// Slots per run.
    #[arg(long, default_value_t = 20_000)]
    slots: u64,
    #[command(flatten)]
    repeat: Repeat,
    #[command(flatten)]
    out: Output,
}

/// `klero bench attack grind`
#[derive(Debug, Args)]
pub struct GrindArgs {
    /// Adversary stake shares.
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.2,0.3,0.4")]
    alphas: Vec<f64>,
    /// Slots it controls just before the freeze point.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,3,4")]
    ks: Vec<u64>,
    /// Slots per epoch (default: the development spec's).
    #[arg(long)]
    epoch_slots: Option<u64>,
    /// Trials (epoch transitions) per point.
    #[arg(long, default_value_t = 400)]
    trials: usize,
    /// Base seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    out: Output,
}

/// `klero bench attack equivocate`
#[derive(Debug, Args)]
pub struct EquivocateArgs {
    /// Bonded stakes of the equivocator.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,40000,1000000")]
    stakes: Vec<u64>,
    /// Fees in the extra block.
    #[arg(long, default_value_t = 0)]
    fees: u64,
    /// Chances that the evidence lands on chain.
    #[arg(long, value_delimiter = ',', default_value = "0.001,0.01,0.1,0.5,1")]
    ps: Vec<f64>,
    #[command(flatten)]
    out: Output,
}

#[derive(Serialize)]
struct Report<'a, C: Serialize, P: Serialize> {
    experiment: &'static str,
    config: &'a C,
    points: &'a [P],
}

impl AttackCommand {
    /// Runs the experiment.
    ///
    /// # Errors
    ///
    /// Bad arguments, or the output cannot be written.
    pub fn execute(self) -> Result<()> {
        match self {
            AttackCommand::Selfish(args) => args.execute(),
            AttackCommand::Withhold(args) => args.execute(),
            AttackCommand::Grind(args) => args.execute(),
            AttackCommand::Equivocate(args) => args.execute(),
        }
    }
}

fn check_shares(name: &str, values: &[f64], max: f64) -> Result<()> {
    if values.is_empty() || values.iter().any(|a| !(*a > 0.0 && *a < max)) {
        bail!("--{name} needs values in (0, {max})");
    }
    Ok(())
}

fn bar(len: usize) -> Result<ProgressBar> {
    // Hidden by indicatif when stderr is not a terminal.
    Ok(ProgressBar::new(len as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} points").context("progress bar template")?,
    ))
}

fn emit<C: Serialize, P: Serialize>(
    out: &Output,
    experiment: &'static str,
    config: &C,
    points: &[P],
    table: String,
    plot: impl FnOnce(&Path) -> Result<(), plotters::drawing::DrawingAreaErrorKind<std::io::Error>>,
) -> Result<()> {
    if out.json {
        let doc = Report {
            experiment,
            config,
            points,
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).context("encoding the report")?
        );
    } else {
        print!("{table}");
    }
    if let Some(path) = &out.plot {
        plot(path).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn interval(e: &Estimate) -> String {
    format!("{:.4} [{:.4}, {:.4}]", e.mean, e.low, e.high)
}

fn measured(name: String, points: impl Iterator<Item = (f64, Estimate)>) -> Measured {
    Measured {
        name,
        points: points.map(|(x, e)| (x, e.mean, e.low, e.high)).collect(),
    }
}

impl SelfishArgs {
    fn execute(self) -> Result<()> {
        check_shares("alphas", &self.alphas, 0.5)?;
        if self.gammas.is_empty() || self.gammas.iter().any(|g| !(0.0..=1.0).contains(g)) {
            bail!("--gammas needs values in [0, 1]");
        }
        if self.repeat.runs < 2 || self.blocks < 1_000 || self.honest_miners == 0 {
            bail!("--runs must be at least 2, --blocks at least 1000, --honest-miners at least 1");
        }
        if self.half_life == 0 {
            bail!("--half-life must be positive");
        }
        let cfg = selfish::Config {
            half_life_blocks: self.half_life,
            honest_miners: self.honest_miners,
            blocks: self.blocks,
            runs: self.repeat.runs,
            seed: self.repeat.seed,
        };
        let bar = bar(self.alphas.len() * self.gammas.len())?;
        let mut points = Vec::new();
        for (gi, gamma) in self.gammas.iter().enumerate() {
            for (ai, alpha) in self.alphas.iter().enumerate() {
                points.push(selfish::point(*alpha, *gamma, &cfg, (gi * 1000 + ai) as u64));
                bar.inc(1);
            }
        }
        bar.finish_and_clear();
        let mut table = format!(
            "selfish mining (SM1), ASERT half-life {} blocks, {} honest miners, {} runs of {} blocks, seed {}\n{:>6} {:>5} {:>7} {:>28} {:>8} {:>6} {:>9} {:>7}\n",
            cfg.half_life_blocks,
            cfg.honest_miners,
            cfg.runs,
            cfg.blocks,
            cfg.seed,
            "alpha",
            "gamma",
            "gamma~",
            "pool share [95%]",
            "R",
            "agree",
            "threshold",
            "pays"
        );
        for p in &points {
            let _ = writeln!(
                table,
                "{:>6.2} {:>5.2} {:>7.3} {:>28} {:>8.4} {:>6} {:>9.3} {:>7}",
                p.alpha,
                p.gamma,
                p.gamma_measured,
                interval(&p.share),
                p.closed_form,
                if p.agrees { "yes" } else { "NO" },
                p.threshold,
                if p.profitable { "yes" } else { "no" }
            );
        }
        let agreeing = points.iter().filter(|p| p.agrees).count();
        let _ = writeln!(
            table,
            "gamma~: measured honest share on the pool's block in races; R: Eyal-Sirer closed form at it; {agreeing}/{} inside the interval",
            points.len()
        );
        let gammas = self.gammas.clone();
        emit(&self.out, "selfish", &cfg, &points, table, |path| {
            let series: Vec<Measured> = gammas
                .iter()
                .map(|g| {
                    measured(
                        format!("simulated, gamma {g}"),
                        points
                            .iter()
                            .filter(|p| p.gamma == *g)
                            .map(|p| (p.alpha, p.share)),
                    )
                })
                .collect();
            let curves: Vec<Curve> = gammas
                .iter()
                .map(|g| Curve {
                    name: format!("closed form R, gamma {g}"),
                    points: (1..=45)
                        .map(|i| f64::from(i) / 100.0)
                        .map(|a| (a, selfish::closed_form(a, *g).max(0.0)))
                        .collect(),
                })
                .collect();
            plot::shares(
                path,
                "PoW selfish mining (SM1): pool's share of canonical blocks",
                &series,
                &curves,
            )
        })
    }
}

impl WithholdArgs {
    fn execute(self) -> Result<()> {
        check_shares("alphas", &self.alphas, 0.5)?;
        if self.repeat.runs < 2
            || self.slots < 100
            || self.honest_stakers == 0
            || self.delays.iter().any(|d| *d > 16)
        {
            bail!("--runs ≥ 2, --slots ≥ 100, --honest-stakers ≥ 1 and --delays ≤ 16");
        }
        let cfg = withhold::Config {
            honest_stakers: self.honest_stakers,
            slots: self.slots,
            runs: self.repeat.runs,
            seed: self.repeat.seed,
        };
        let rules = [withhold::Rule::V2, withhold::Rule::V1];
        let bar = bar(self.alphas.len() * self.delays.len() * rules.len())?;
        let mut points = Vec::new();
        for (di, delay) in self.delays.iter().enumerate() {
            for rule in rules {
                for (ai, alpha) in self.alphas.iter().enumerate() {
                    points.push(withhold::point(
                        *alpha,
                        *delay,
                        rule,
                        &cfg,
                        (di * 1000 + ai) as u64,
                    ));
                    bar.inc(1);
                }
            }
        }
        bar.finish_and_clear();
        let mut table = format!(
            "PoS withholding, {} honest stakers, {} runs of {} slots, seed {} (v1 is a counterfactual)\n{:>6} {:>5} {:>5} {:>28} {:>8} {:>15} {:>12}\n",
            cfg.honest_stakers,
            cfg.runs,
            cfg.slots,
            cfg.seed,
            "alpha",
            "delay",
            "rule",
            "adversary share [95%]",
            "= alpha",
            "honest lost/1k",
            "own lost/1k"
        );
        for p in &points {
            let _ = writeln!(
                table,
                "{:>6.2} {:>5} {:>5} {:>28} {:>8} {:>15.1} {:>12.1}",
                p.alpha,
                p.delay,
                match p.rule {
                    withhold::Rule::V2 => "v2",
                    withhold::Rule::V1 => "v1*",
                },
                interval(&p.share),
                if p.at_alpha { "yes" } else { "no" },
                p.honest_displaced_per_kslot,
                p.own_lost_per_kslot
            );
        }
        let delays = self.delays.clone();
        emit(&self.out, "withhold", &cfg, &points, table, |path| {
            let series: Vec<Measured> = delays
                .iter()
                .flat_map(|d| rules.iter().map(move |r| (*d, *r)))
                .map(|(d, r)| {
                    let label = match r {
                        withhold::Rule::V2 => format!("v2, release delay {d}"),
                        withhold::Rule::V1 => format!("v1 (counterfactual), release delay {d}"),
                    };
                    measured(
                        label,
                        points
                            .iter()
                            .filter(|p| p.delay == d && p.rule == r)
                            .map(|p| (p.alpha, p.share)),
                    )
                })
                .collect();
            plot::shares(
                path,
                "PoS withholding: adversary's share of canonical blocks",
                &series,
                &[],
            )
        })
    }
}

impl GrindArgs {
    fn execute(self) -> Result<()> {
        check_shares("alphas", &self.alphas, 1.0)?;
        let dev = grind::Config::dev(self.trials, self.seed);
        let cfg = grind::Config {
            epoch_slots: self.epoch_slots.unwrap_or(dev.epoch_slots),
            ..dev
        };
        if cfg.epoch_slots <= cfg.freeze_slots || cfg.epoch_slots > 10_000 {
            bail!(
                "--epoch-slots must be above the freeze point ({}) and at most 10000",
                cfg.freeze_slots
            );
        }
        if self.trials < 2 || self.ks.iter().any(|k| *k > cfg.max_k().min(12)) {
            bail!(
                "--trials ≥ 2 and --ks ≤ {} (the slots before the freeze point, at most 12)",
                cfg.max_k().min(12)
            );
        }
        let bar = bar(self.alphas.len() * self.ks.len())?;
        let mut points = Vec::new();
        for (ki, k) in self.ks.iter().enumerate() {
            for (ai, alpha) in self.alphas.iter().enumerate() {
                points.push(grind::point(*alpha, *k, &cfg, (ki * 1000 + ai) as u64));
                bar.inc(1);
            }
        }
        bar.finish_and_clear();
        let mut table = format!(
            "PoS grinding at the freeze point, {}-slot epochs (freeze {}), {} trials, seed {}\n{:>6} {:>3} {:>6} {:>28} {:>28} {:>9} {:>9}\n",
            cfg.epoch_slots,
            cfg.freeze_slots,
            cfg.trials,
            cfg.seed,
            "alpha",
            "k",
            "2^k",
            "share next epoch [95%]",
            "publishing all [95%]",
            "max-of-2^k",
            "net blocks"
        );
        for p in &points {
            let _ = writeln!(
                table,
                "{:>6.2} {:>3} {:>6} {:>28} {:>28} {:>9.4} {:>9.2}",
                p.alpha,
                p.k,
                p.candidates,
                interval(&p.share),
                interval(&p.honest_share),
                p.predicted,
                p.net_blocks
            );
        }
        let ks = self.ks.clone();
        emit(&self.out, "grind", &cfg, &points, table, |path| {
            let series: Vec<Measured> = ks
                .iter()
                .map(|k| {
                    measured(
                        format!("k = {k} slots ({} candidates)", 1u64 << k),
                        points.iter().filter(|p| p.k == *k).map(|p| (p.alpha, p.share)),
                    )
                })
                .collect();
            let curves: Vec<Curve> = ks
                .iter()
                .map(|k| Curve {
                    name: format!("max of {} draws", 1u64 << k),
                    points: (1..=50)
                        .map(|i| f64::from(i) / 100.0)
                        .map(|a| {
                            (
                                a,
                                grind::expected_max_binomial(cfg.epoch_slots, a, 1 << k)
                                    / cfg.epoch_slots as f64,
                            )
                        })
                        .collect(),
                })
                .collect();
            plot::shares(
                path,
                "PoS grinding: share of the next epoch's slots",
                &series,
                &curves,
            )
        })
    }
}

impl EquivocateArgs {
    fn execute(self) -> Result<()> {
        if self.stakes.is_empty() || self.ps.iter().any(|p| !(*p > 0.0 && *p <= 1.0)) {
            bail!("--stakes needs at least one stake and --ps values in (0, 1]");
        }
        let rows = self
            .stakes
            .iter()
            .map(|s| equivocate::row(*s, self.fees, &self.ps))
            .collect::<Result<Vec<_>, _>>()?;
        let mut table = format!(
            "equivocation per attempt (development ledger; gain = block reward {} + fees {})\n{:>9} {:>9} {:>9} {:>12} {:>10}",
            klero_chain::spec::LedgerSection::DEV.block_reward,
            self.fees,
            "stake",
            "slashed",
            "reporter",
            "self-report",
            "p*"
        );
        for p in &self.ps {
            let _ = write!(table, " {:>12}", format!("E[net] p={p}"));
        }
        table.push('\n');
        for r in &rows {
            let _ = write!(
                table,
                "{:>9} {:>9} {:>9} {:>12} {:>10.5}",
                r.stake, r.slashed, r.reporter_reward, r.self_report_change, r.break_even_p
            );
            for (_, net) in &r.expected_net {
                let _ = write!(table, " {net:>12.0}");
            }
            table.push('\n');
        }
        table.push_str(
            "reporter: paid to an honest reporter; self-report: the offender's change if it reports itself (v2 refunds nothing; v1 refunded half)\n",
        );
        emit(&self.out, "equivocate", &self.stakes, &rows, table, |path| {
            let curves: Vec<Curve> = rows
                .iter()
                .map(|r| Curve {
                    name: format!("stake {}", r.stake),
                    points: r.expected_net.clone(),
                })
                .collect();
            plot::lines(
                path,
                "Equivocation: expected net reward per attempt",
                "p: chance the evidence lands on chain",
                "E[net] (reward units)",
                &curves,
            )
        })
    }
}
