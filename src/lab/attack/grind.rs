//! PoS grinding at the freeze point: a staker that won the last `k` slots
//! before epoch `e − 1`'s freeze point publishes or withholds each of those
//! blocks, which decides whether its VRF output enters `acc`, and so picks
//! `eta_e` among `2^k` candidates: the one that gives it the most slots of
//! epoch `e`.
//!
//! All of it is the chain's code: `epoch::EpochInfo` (`contribute`,
//! `at`) computes every candidate `eta_e` from `eta_{e−1}` and the
//! contributed outputs; the tickets are real ECVRF proofs
//! (`VrfSecretKey::prove`, `vrf::proof_to_hash`) on `pos::vrf_input`; scores
//! are `draw::score` on the stakes of a real `StakeSnapshot`. The honest
//! stake is one key (the lowest of several exponential scores is one
//! exponential score of their summed stake, so splitting changes nothing).
//! A slot belongs to the lowest score; each trial starts from a fresh
//! `eta_{e−1}`, and the earlier pre-freeze slots of `e − 1` hold honest
//! blocks. A withheld slot contributes nothing (had an honest runner-up
//! filled it, its output would enter instead: still one fixed value per
//! choice, so still `2^k` candidates).
//!
//! The reference is what `2^k` independent draws give: the expected
//! maximum of `2^k` Binomial(slots, alpha) counts, divided by the slots.

use klero_chain::draw;
use klero_chain::epoch::{EpochInfo, StakeSnapshot, Staker};
use klero_chain::ledger::Account;
use klero_chain::pos;
use klero_chain::spec::PosParams;
use klero_chain::vrf::{self, VrfOutput};
use klero_chain::{Hash, Keypair};
use rayon::prelude::*;
use serde::Serialize;

use super::{Estimate, run_seed};

const CHAIN_ID: &str = "klero-lab-grind";
const TOTAL_STAKE: u64 = 1_000_000;

/// How an experiment runs.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct Config {
    /// Slots per epoch (the freeze point is `PosParams::dev`'s).
    pub epoch_slots: u64,
    /// Slots before an epoch's end whose blocks no longer feed `eta`.
    pub freeze_slots: u64,
    /// Trials (epoch transitions) per point.
    pub trials: usize,
    /// Base seed.
    pub seed: u64,
}

impl Config {
    /// The development epoch (`PosParams::dev`) with `trials` trials.
    pub(crate) fn dev(trials: usize, seed: u64) -> Config {
        let params = PosParams::dev(1_000);
        Config {
            epoch_slots: params.epoch_slots,
            freeze_slots: params.freeze_slots,
            trials,
            seed,
        }
    }

    /// The most slots an adversary can hold before the freeze point.
    pub(crate) fn max_k(&self) -> u64 {
        self.epoch_slots - self.freeze_slots
    }
}

/// One point: a stake share and a number of controlled slots.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Point {
    /// The adversary's stake share.
    pub alpha: f64,
    /// Controlled slots before the freeze point.
    pub k: u64,
    /// Candidate values of the next epoch's randomness: 2^k.
    pub candidates: u64,
    /// Its share of the next epoch's slots after choosing.
    pub share: Estimate,
    /// What publishing everything would have given.
    pub honest_share: Estimate,
    /// The expected maximum of 2^k independent draws, per slot.
    pub predicted: f64,
    /// Slots of the next epoch gained, minus blocks withheld to get them, per trial.
    pub net_blocks: f64,
}

/// Runs one point, trials in parallel.
pub(crate) fn point(alpha: f64, k: u64, cfg: &Config, index: u64) -> Point {
    let adversary = Keypair::from_seed(
        *Hash::of_parts(&[b"klero/lab/grind/adversary", &cfg.seed.to_le_bytes()]).as_bytes(),
    );
    let honest =
        Keypair::from_seed(*Hash::of_parts(&[b"klero/lab/grind/honest", &cfg.seed.to_le_bytes()]).as_bytes());
    let stake = ((alpha * TOTAL_STAKE as f64).round() as u64).clamp(1, TOTAL_STAKE - 1);
    let stakers: Vec<Staker> = [(&adversary, stake), (&honest, TOTAL_STAKE - stake)]
        .into_iter()
        .filter_map(|(key, bonded)| {
            let account = Account {
                bonded,
                vrf_key: Some(key.vrf().public_key()),
                ..Account::default()
            };
            Staker::of(key.address(), &account)
        })
        .collect();
    let snapshot = StakeSnapshot::of(stakers);
    let trial = Trial {
        cfg,
        k,
        adversary: &adversary,
        honest: &honest,
        snapshot: &snapshot,
    };
    let results: Vec<TrialResult> = (0..cfg.trials as u64)
        .into_par_iter()
        .map(|t| trial.run(run_seed(cfg.seed, index, t)))
        .collect();
    let slots = cfg.epoch_slots as f64;
    let share = Estimate::of(
        &results
            .iter()
            .map(|r| r.chosen as f64 / slots)
            .collect::<Vec<_>>(),
    );
    let honest_share = Estimate::of(
        &results
            .iter()
            .map(|r| r.published_all as f64 / slots)
            .collect::<Vec<_>>(),
    );
    let net = results
        .iter()
        .map(|r| r.chosen as f64 - r.published_all as f64 - r.withheld as f64)
        .sum::<f64>()
        / results.len().max(1) as f64;
    Point {
        alpha,
        k,
        candidates: 1 << k,
        share,
        honest_share,
        predicted: expected_max_binomial(cfg.epoch_slots, alpha, 1 << k) / slots,
        net_blocks: net,
    }
}

struct Trial<'a> {
    cfg: &'a Config,
    k: u64,
    adversary: &'a Keypair,
    honest: &'a Keypair,
    snapshot: &'a StakeSnapshot,
}

struct TrialResult {
    /// Slots of epoch e won with the chosen eta.
    chosen: u64,
    /// Slots won had it published all k blocks.
    published_all: u64,
    /// Blocks withheld for the choice.
    withheld: u64,
}

impl Trial<'_> {
    fn output(&self, key: &Keypair, eta: &Hash, slot: u64) -> VrfOutput {
        let alpha = pos::vrf_input(CHAIN_ID, eta, slot, &key.address());
        // A proof by our own valid key always hashes.
        vrf::proof_to_hash(&key.vrf().prove(&alpha)).unwrap_or(VrfOutput([0xff; 64]))
    }

    fn stake(&self, key: &Keypair) -> u64 {
        self.snapshot.get(&key.address()).map_or(0, |s| s.stake)
    }

    /// Slots of epoch 1 whose lowest score is the adversary's under `eta`.
    fn wins(&self, eta: &Hash) -> u64 {
        let e = self.cfg.epoch_slots;
        (e..2 * e)
            .filter(|slot| {
                let mine = draw::score(
                    &self.output(self.adversary, eta, *slot).0,
                    self.stake(self.adversary),
                );
                let theirs = draw::score(&self.output(self.honest, eta, *slot).0, self.stake(self.honest));
                mine < theirs
            })
            .count() as u64
    }

    fn run(&self, seed: u64) -> TrialResult {
        let mut start = EpochInfo::genesis(Hash::of_parts(&[b"klero/lab/grind/eta", &seed.to_le_bytes()]));
        let eta_prev = start.eta;
        let open = self.cfg.max_k();
        for slot in 0..open - self.k {
            start.contribute(&self.output(self.honest, &eta_prev, slot));
        }
        let mine: Vec<VrfOutput> = (open - self.k..open)
            .map(|slot| self.output(self.adversary, &eta_prev, slot))
            .collect();
        let all = (1u64 << self.k) - 1;
        // Publishing all first, so a tie keeps publishing.
        let mut best: Option<(u64, u64)> = None;
        let mut published_all = 0;
        for mask in (0..=all).rev() {
            let mut state = start;
            for (i, output) in mine.iter().enumerate() {
                if mask >> i & 1 == 1 {
                    state.contribute(output);
                }
            }
            let wins = self.wins(&state.eta_at(1));
            if mask == all {
                published_all = wins;
            }
            if best.is_none_or(|(w, _)| wins > w) {
                best = Some((wins, mask));
            }
        }
        let (chosen, mask) = best.unwrap_or((published_all, all));
        TrialResult {
            chosen,
            published_all,
            withheld: self.k - u64::from(mask.count_ones()),
        }
    }
}

/// E[max of `m` independent Binomial(n, p)] = Σ_{x<n} (1 − F(x)^m).
pub(crate) fn expected_max_binomial(n: u64, p: f64, m: u64) -> f64 {
    let mut cdf = 0.0;
    let mut pmf = (1.0 - p).powi(n as i32);
    let mut sum = 0.0;
    for x in 0..n {
        cdf += pmf;
        sum += 1.0 - cdf.min(1.0).powi(m as i32);
        // pmf(x + 1) from pmf(x).
        pmf *= (n - x) as f64 / (x + 1) as f64 * p / (1.0 - p);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_max_of_one_draw_is_the_mean() {
        assert!((expected_max_binomial(10, 0.3, 1) - 3.0).abs() < 1e-9);
        assert!(expected_max_binomial(10, 0.3, 16) > 5.0);
        assert!((expected_max_binomial(10, 0.3, 16) - 10.0).abs() > 1.0);
    }

    #[test]
    fn withholding_before_the_freeze_point_picks_a_better_epoch() {
        let cfg = Config::dev(12, 5);
        let none = point(0.3, 0, &cfg, 0);
        let two = point(0.3, 2, &cfg, 1);
        assert_eq!(none.share, none.honest_share, "no choice without slots");
        assert!(two.share.mean > two.honest_share.mean, "{two:?}");
        assert_eq!(two.candidates, 4);
    }
}
