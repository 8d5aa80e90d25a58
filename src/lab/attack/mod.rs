//! Strategic participants against klero's rules: what a deviating miner or
//! staker gains, measured by simulation against the chain's own code.
//!
//! Every experiment drives `klero-chain` itself: the honest nodes' choices
//! are `fork_choice::prefer` on real `BlockMeta`s, PoW targets come from
//! `validate::required_target` (ASERT), PoS scores and eligibility from
//! `draw` and `pos`, epoch randomness from `epoch::EpochInfo`, VRF tickets
//! from `vrf`, and slashing from the ledger's `apply_tx`. What is simulated
//! is only what the chain does not decide: who finds a block when, and in
//! which order a node hears of two blocks.
//!
//! - [`selfish`]: PoW selfish mining (Eyal and Sirer's SM1) beside the
//!   paper's closed form.
//! - [`withhold`]: a PoS staker that withholds a won block and publishes it
//!   late, under the v2 fork choice and, as a labelled counterfactual, v1's.
//! - [`grind`]: a PoS staker that picks the next epoch's randomness by
//!   publishing or withholding its blocks just before the freeze point.
//! - [`equivocate`]: the expected net reward of signing two blocks for one
//!   slot under the slashing rule.
//! - [`plot`]: the SVG charts.
//!
//! `docs/fairness.md` has the commands, the tables and what they say.

pub(crate) mod equivocate;
pub(crate) mod grind;
pub(crate) mod plot;
pub(crate) mod selfish;
pub(crate) mod withhold;

use serde::Serialize;

use super::rng::splitmix64;

/// A mean over independent runs with its 95% confidence interval
/// (Student's t on the run means: the blocks inside one run are not
/// independent, the runs are).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub(crate) struct Estimate {
    /// The mean of the run values.
    pub mean: f64,
    /// Lower end of the 95% interval.
    pub low: f64,
    /// Upper end of the 95% interval.
    pub high: f64,
}

impl Estimate {
    /// The estimate from one value per run (at least one).
    pub(crate) fn of(values: &[f64]) -> Estimate {
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        if values.len() < 2 {
            return Estimate {
                mean,
                low: mean,
                high: mean,
            };
        }
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let half = t_975(values.len() - 1) * (var / n).sqrt();
        Estimate {
            mean,
            low: mean - half,
            high: mean + half,
        }
    }

    /// Whether `x` lies in the interval.
    pub(crate) fn contains(&self, x: f64) -> bool {
        (self.low..=self.high).contains(&x)
    }
}

/// The 97.5% quantile of Student's t with `df` degrees of freedom (tables
/// to 30, then the normal approximation's first correction).
fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        _ => {
            let z = 1.959_964;
            z + (z * z * z + z) / (4.0 * df as f64)
        }
    }
}

/// The seed of run `run` of point `point` of an experiment seeded `seed`,
/// so parallel runs and the order of points never change a result.
pub(crate) fn run_seed(seed: u64, point: u64, run: u64) -> u64 {
    let mut state =
        seed ^ point.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ run.wrapping_mul(0xd1b5_4a32_d192_ed03);
    splitmix64(&mut state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_tables() {
        assert_eq!(t_975(1), 12.706);
        assert_eq!(t_975(19), 2.093);
        // df = 60: 2.000 in the tables.
        assert!((t_975(60) - 2.000).abs() < 0.002, "{}", t_975(60));
    }

    #[test]
    fn an_estimate_brackets_its_mean() {
        let e = Estimate::of(&[0.30, 0.32, 0.28, 0.31, 0.29]);
        assert!((e.mean - 0.30).abs() < 1e-12);
        assert!(e.low < 0.30 && e.high > 0.30);
        assert!(e.contains(0.30) && !e.contains(0.4));
        let one = Estimate::of(&[0.5]);
        assert_eq!((one.low, one.high), (0.5, 0.5));
    }
}
