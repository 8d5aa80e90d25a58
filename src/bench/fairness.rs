//! The fairness benchmark: does each participant win in proportion to its
//! weight?
//!
//! Both lotteries run for real. PoS: every participant has a real key, and
//! every round each one proves its VRF input for the round (which names it,
//! as on the chain), the proof is verified, and the scores `-ln(u)/stake`
//! from [`klero_chain::draw`] decide the winner (lowest) and whether anyone
//! was eligible at failover step 0, 1, … . PoW: a
//! real SHA-256 race on [`klero_chain::pow::pow_hash`] at a low difficulty,
//! where in each tick miner `i` makes `weight_i` tries spread evenly over the
//! tick, and the earliest success wins; block times are measured in ticks.
//! The PoW weights are tries per tick, so keep them small (each round costs
//! about `8 · Σ weights` hashes).
//!
//! Rounds run in parallel (rayon) in fixed chunks whose results are summed,
//! so a seed gives the same counts on any number of threads.

use std::sync::atomic::{AtomicU64, Ordering};

use klero_chain::draw;
use klero_chain::pos::vrf_input;
use klero_chain::pow::{meets_target, pow_hash};
use klero_chain::vrf::{self, VrfPublicKey, VrfSecretKey};
use klero_chain::{Address, Hash, Keypair};
use rayon::prelude::*;

/// Which lottery to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Lottery {
    /// The stake-weighted VRF draw.
    Pos,
    /// The proof-of-work race.
    Pow,
}

/// Largest failover step recorded; beyond it a round counts as "more".
pub(crate) const MAX_STEP: usize = 16;
/// Mean PoW block time in ticks (sets the benchmark's difficulty).
const POW_TICKS_PER_BLOCK: u64 = 8;
const CHUNK: u64 = 256;

/// What a run counted.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tally {
    /// Wins per participant.
    pub wins: Vec<u64>,
    /// PoS: rounds with nobody eligible at failover step j, indexed by the
    /// first step at which somebody was (`MAX_STEP` = later still).
    pub first_eligible_step: Vec<u64>,
    /// PoW: each round's block time in ticks.
    pub block_times: Vec<f64>,
}

impl Tally {
    fn new(n: usize) -> Tally {
        Tally {
            wins: vec![0; n],
            first_eligible_step: vec![0; MAX_STEP + 1],
            block_times: Vec::new(),
        }
    }

    fn merge(mut self, other: Tally) -> Tally {
        for (a, b) in self.wins.iter_mut().zip(other.wins) {
            *a += b;
        }
        for (a, b) in self.first_eligible_step.iter_mut().zip(other.first_eligible_step) {
            *a += b;
        }
        self.block_times.extend(other.block_times);
        self
    }
}

/// Runs `rounds` rounds of `lottery` for participants of the given weights.
/// `progress` is bumped once per finished round.
///
/// # Errors
///
/// If a VRF proof fails to verify (which would be a bug worth stopping for).
pub(crate) fn run(
    lottery: Lottery,
    weights: &[u64],
    rounds: u64,
    seed: u64,
    c_milli: u32,
    progress: &AtomicU64,
) -> Result<Tally, vrf::VrfError> {
    let chunks = rounds.div_ceil(CHUNK);
    let keys: Vec<(VrfSecretKey, VrfPublicKey, Address)> = (0..weights.len())
        .map(|i| {
            let key = Keypair::from_seed(
                *Hash::of_parts(&[b"klero/bench/key", &seed.to_le_bytes(), &i.to_le_bytes()]).as_bytes(),
            );
            (key.vrf().clone(), key.vrf().public_key(), key.address())
        })
        .collect();
    let total: u64 = weights.iter().fold(0u64, |t, w| t.saturating_add(*w));
    let schedule = try_schedule(weights);
    let target = pow_target(total);
    (0..chunks)
        .into_par_iter()
        .map(|chunk| {
            let mut tally = Tally::new(weights.len());
            let end = ((chunk + 1) * CHUNK).min(rounds);
            for round in chunk * CHUNK..end {
                let round_seed =
                    Hash::of_parts(&[b"klero/bench/round", &seed.to_le_bytes(), &round.to_le_bytes()]);
                match lottery {
                    Lottery::Pos => {
                        pos_round(&keys, weights, total, c_milli, round, &round_seed, &mut tally)?
                    }
                    Lottery::Pow => pow_round(weights, &schedule, &target, &round_seed, &mut tally),
                }
                progress.fetch_add(1, Ordering::Relaxed);
            }
            Ok(tally)
        })
        .try_reduce(|| Tally::new(weights.len()), |a, b| Ok(a.merge(b)))
}

fn pos_round(
    keys: &[(VrfSecretKey, VrfPublicKey, Address)],
    weights: &[u64],
    total: u64,
    c_milli: u32,
    round: u64,
    eta: &Hash,
    tally: &mut Tally,
) -> Result<(), vrf::VrfError> {
    let mut best: Option<(usize, draw::Score)> = None;
    for (i, ((secret, public, address), weight)) in keys.iter().zip(weights).enumerate() {
        let alpha = vrf_input("klero-bench", eta, round, address);
        let proof = secret.prove(&alpha);
        let output = vrf::verify(public, &alpha, &proof)?;
        let score = draw::score(&output.0, *weight);
        if best.as_ref().is_none_or(|(_, b)| score < *b) {
            best = Some((i, score));
        }
    }
    if let Some((winner, score)) = best {
        tally.wins[winner] += 1;
        // The lowest score is eligible first, so it alone decides the step.
        let step = (0..MAX_STEP as u32).find(|j| draw::is_eligible(&score, total, c_milli, *j));
        tally.first_eligible_step[step.map_or(MAX_STEP, |j| j as usize)] += 1;
    }
    Ok(())
}

/// The order of the tries inside one tick: miner `i`'s `j`-th try happens
/// at `(j + ½) / weight_i` of the tick (ties in miner order). The race is a
/// sequence of Bernoulli trials in this order, so the winning try's rank is
/// geometric and the block time (rank in ticks) near-exponential.
fn try_schedule(weights: &[u64]) -> Vec<(usize, u64)> {
    let mut tries: Vec<(usize, u64)> = weights
        .iter()
        .enumerate()
        .flat_map(|(i, w)| (0..*w).map(move |j| (i, j)))
        .collect();
    // (2j+1)/(2w) compared exactly by cross-multiplication.
    tries.sort_by(|(a, ja), (b, jb)| {
        (u128::from(2 * ja + 1) * u128::from(weights[*b]))
            .cmp(&(u128::from(2 * jb + 1) * u128::from(weights[*a])))
            .then(a.cmp(b))
    });
    tries
}

fn pow_round(weights: &[u64], schedule: &[(usize, u64)], target: &[u8; 32], pre: &Hash, tally: &mut Tally) {
    let per_tick = schedule.len() as f64;
    for tick in 0u64.. {
        for (rank, (miner, j)) in schedule.iter().enumerate() {
            let nonce = ((*miner as u64) << 48) | (tick * weights[*miner] + j);
            if meets_target(&pow_hash(pre.as_bytes(), nonce), target) {
                tally.wins[*miner] += 1;
                tally
                    .block_times
                    .push(tick as f64 + (rank as f64 + 0.5) / per_tick);
                return;
            }
        }
    }
}

/// The PoW race's target: success per try = 1 / (total weight · ticks per
/// block), carried by the top 64 bits (the rest all ones).
fn pow_target(total: u64) -> [u8; 32] {
    let mut target = [0xffu8; 32];
    let expected_tries = total.saturating_mul(POW_TICKS_PER_BLOCK).max(1);
    target[..8].copy_from_slice(&(u64::MAX / expected_tries).to_be_bytes());
    target
}

/// The PoW race's expected block time in ticks (the exponential it is
/// tested against).
pub(crate) fn pow_expected_block_time() -> f64 {
    POW_TICKS_PER_BLOCK as f64
}

/// The probability that nobody is eligible at failover step 0: the lowest
/// score is exponential with rate 1 (in units of total stake), so `e^-c`
/// (for reports; consensus never uses floats).
pub(crate) fn expected_empty_rate(c_milli: u32) -> f64 {
    (-(f64::from(c_milli) / 1000.0)).exp()
}
