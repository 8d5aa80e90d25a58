//! The SHA unit's ceiling for `klero bench hashrate`: how many tries per
//! second one core could make if the hash loop kept the unit as busy as a
//! probe with nothing else to do.
//!
//! [`measure`] times [`probe::run`] (independent `sha256rnds2` chains, in
//! `klero-chain`, which has no clock) for each chain count in
//! [`probe::CHAINS`], with the round instruction alone, with one try's
//! `sha256msg1`/`sha256msg2` mixed in, and with the try's other vector
//! instructions too, and keeps each mix's best chain count. The ceiling in
//! tries per second is the second mix's rate divided by the 28 `sha256rnds2`
//! a try costs (56 rounds): the schedule instructions are part of a try, so
//! if they compete for the unit the mix shows it. The third mix's rate, over
//! 28 as well, is the ceiling of a CPU that issues the SHA instructions to
//! the pipes of the vector adds and shuffles (issue 20 measured that on a
//! Zen 4): what a kernel with the try's instructions could reach there.

use std::time::{Duration, Instant};

use klero_chain::pow::kernel::probe::{self, Mix};
use serde::Serialize;

/// Blocks per probe call: 2,000 × 28 `sha256rnds2` per chain, tens of
/// microseconds, so the clock is read rarely.
const BLOCKS: u64 = 2_000;

/// The best rate of one mix over the chain counts.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct Peak {
    /// `sha256rnds2` per second.
    pub rnds2_per_sec: f64,
    /// The chain count that reached it.
    pub chains: usize,
}

/// One measurement of the SHA unit on one core.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct Ceiling {
    /// `sha256rnds2` alone.
    pub rounds_only: Peak,
    /// With one try's `sha256msg1`/`sha256msg2` per 28 `sha256rnds2`.
    pub with_schedule: Peak,
    /// With one try's vector adds, shuffles and alignments as well.
    pub with_vector_ops: Peak,
    /// `with_schedule` over `rounds_only`: near 1 when the schedule
    /// instructions do not compete for the round instruction's unit.
    pub schedule_cost: f64,
    /// `with_vector_ops` over `rounds_only`.
    pub vector_ops_cost: f64,
    /// `with_schedule.rnds2_per_sec / 28`: the ceiling in tries per second.
    pub tries_per_sec: f64,
    /// `with_vector_ops.rnds2_per_sec / 28`: tries per second of a try's
    /// vector instructions alone.
    pub vector_tries_per_sec: f64,
}

/// Probes the SHA unit, `per_point` per chain count and mix; `None` if this
/// CPU has no SHA instructions the probe knows.
pub(crate) fn measure(per_point: Duration) -> Option<Ceiling> {
    let peak = |mix: Mix| -> Option<Peak> {
        let mut best: Option<Peak> = None;
        for chains in probe::CHAINS {
            let rate = rate(chains, mix, per_point)?;
            if best.is_none_or(|b| rate > b.rnds2_per_sec) {
                best = Some(Peak {
                    rnds2_per_sec: rate,
                    chains,
                });
            }
        }
        best
    };
    Some(Ceiling::of(
        peak(Mix::Rounds)?,
        peak(Mix::Try)?,
        peak(Mix::Vector)?,
    ))
}

/// Samples per chain count and mix: see [`rate`].
const SAMPLES: u32 = 4;

/// `sha256rnds2` per second of one chain count and mix over `duration`: the
/// best of [`SAMPLES`] samples, because a burst of load on a shared machine
/// (another process, the hypervisor taking the core) only ever lowers a
/// sample, and a ceiling that read low would inflate every share.
fn rate(chains: usize, mix: Mix, duration: Duration) -> Option<f64> {
    let mut best = 0.0f64;
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let mut executed = 0u64;
        while executed == 0 || started.elapsed() < duration / SAMPLES {
            executed += probe::run(chains, mix, BLOCKS)?;
        }
        best = best.max(executed as f64 / started.elapsed().as_secs_f64());
    }
    Some(best)
}

/// The median of several measurements, mix by mix: the middle sample
/// (the upper one of the two for an even count) with its chain count.
pub(crate) fn median_of(samples: &[Ceiling]) -> Option<Ceiling> {
    let middle = |pick: fn(&Ceiling) -> Peak| {
        let mut peaks: Vec<Peak> = samples.iter().map(pick).collect();
        peaks.sort_by(|a, b| a.rnds2_per_sec.total_cmp(&b.rnds2_per_sec));
        peaks.get(peaks.len() / 2).copied()
    };
    Some(Ceiling::of(
        middle(|s| s.rounds_only)?,
        middle(|s| s.with_schedule)?,
        middle(|s| s.with_vector_ops)?,
    ))
}

impl Ceiling {
    fn of(rounds_only: Peak, with_schedule: Peak, with_vector_ops: Peak) -> Ceiling {
        let per_try = probe::RNDS2_PER_TRY as f64;
        Ceiling {
            rounds_only,
            with_schedule,
            with_vector_ops,
            schedule_cost: with_schedule.rnds2_per_sec / rounds_only.rnds2_per_sec,
            vector_ops_cost: with_vector_ops.rnds2_per_sec / rounds_only.rnds2_per_sec,
            tries_per_sec: with_schedule.rnds2_per_sec / per_try,
            vector_tries_per_sec: with_vector_ops.rnds2_per_sec / per_try,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use klero_chain::pow::Kernel;

    #[test]
    fn measures_a_ceiling_exactly_when_the_cpu_has_sha_ni() {
        let ceiling = measure(Duration::from_millis(2));
        let has = Kernel::available().iter().any(|k| matches!(k, Kernel::ShaNi(_)));
        assert_eq!(ceiling.is_some(), has);
        if let Some(c) = ceiling {
            assert!(c.rounds_only.rnds2_per_sec > 0.0 && c.with_schedule.rnds2_per_sec > 0.0);
            assert!(c.with_vector_ops.rnds2_per_sec > 0.0);
            assert!((c.tries_per_sec * 28.0 - c.with_schedule.rnds2_per_sec).abs() < 1e-6 * c.tries_per_sec);
            assert!(
                (c.vector_tries_per_sec * 28.0 - c.with_vector_ops.rnds2_per_sec).abs()
                    < 1e-6 * c.vector_tries_per_sec
            );
            assert!(probe::CHAINS.contains(&c.rounds_only.chains));
        } else {
            eprintln!("SKIPPED: no SHA-NI on this CPU; no ceiling to measure");
        }
    }

    #[test]
    fn the_median_ceiling_takes_each_mix_s_middle_sample() {
        let sample = |rounds: f64, mix: f64, vector: f64| {
            let peak = |rate: f64| Peak {
                rnds2_per_sec: rate,
                chains: rate as usize,
            };
            Ceiling::of(peak(rounds), peak(mix), peak(vector))
        };
        let m = median_of(&[
            sample(3.0, 28.0, 14.0),
            sample(1.0, 56.0, 42.0),
            sample(2.0, 84.0, 28.0),
        ])
        .unwrap();
        assert_eq!((m.rounds_only.rnds2_per_sec, m.rounds_only.chains), (2.0, 2));
        assert_eq!(
            (m.with_schedule.rnds2_per_sec, m.with_schedule.chains),
            (56.0, 56)
        );
        assert_eq!(
            (m.with_vector_ops.rnds2_per_sec, m.with_vector_ops.chains),
            (28.0, 28)
        );
        assert_eq!(m.tries_per_sec, 2.0);
        assert_eq!(m.vector_tries_per_sec, 1.0);
        assert_eq!(m.schedule_cost, 28.0);
        assert_eq!(m.vector_ops_cost, 14.0);
        assert!(median_of(&[]).is_none());
    }
}
