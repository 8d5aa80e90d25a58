//! The stake-weighted draw in integers: `score = -ln(u) / stake`.
//!
//! Each staker's VRF output gives an independent uniform `u`; `-ln(u)` is
//! then exponential, and `-ln(u) / stake` is exponential with rate `stake`.
//! The lowest of such scores belongs to staker i with probability exactly
//! `stake_i / total`, and splitting a stake over several keys changes
//! nothing (the minimum of exponentials is exponential with the summed
//! rate). Consensus must never use floats, so `-ln(u)` is computed by the
//! fixed-point path below, identical on every platform.
//!
//! # Algorithm (normative)
//!
//! 1. `x` = the first 16 bytes of the VRF output, big-endian; `v = x + 1`,
//!    so `u = v / 2^128` lies in `(0, 1]`.
//! 2. If `v = 2^128`, `-ln(u) = 0`. Otherwise write `v = 2^e · m` with
//!    `e = floor(log2 v)` and `M = m · 2^64` (an integer in `[2^64, 2^65)`,
//!    the top bits of `v`, truncated).
//! 3. `z = floor((M − 2^64) · 2^64 / (M + 2^64))` (Q0.64, `z < 2^64 / 3`),
//!    `z2 = floor(z · z / 2^64)`; `t_1 = z`, `t_{k+1} = floor(t_k · z2 /
//!    2^64)`; `S = Σ floor(t_k / (2k − 1))` until `t_k = 0`;
//!    `ln(m) ≈ 2S` (the atanh series `ln m = 2 Σ z^{2k−1} / (2k − 1)`).
//! 4. `-ln(u) = (128 − e) · ln 2 − ln(m)` in Q64.64, with
//!    `ln 2 = 0xB17217F7D1CF79ABC9E3B39803F2F6AF / 2^128` multiplied exactly
//!    and truncated to Q64.64.
//!
//! Every step truncates; the total error is below 2^-56 (tested against a
//! 60-digit reference in `tests`).
//!
//! Scores compare exactly: `a < b` iff `neg_ln_a · stake_b < neg_ln_b ·
//! stake_a` in 256-bit integers. A staker is eligible at failover step `j`
//! iff `neg_ln · total · 1000 < c_milli · (j + 1) · stake · 2^64`, i.e.
//! `score < T · (j + 1)` with `T · total = c`.

use std::cmp::Ordering;

use crate::u256::U256;

/// ln 2 · 2^128.
const LN2_Q128: u128 = 0xB172_17F7_D1CF_79AB_C9E3_B398_03F2_F6AF;

/// `-ln(u)` in Q64.64 for `u = (x + 1) / 2^128`.
pub fn neg_ln_q64(x: u128) -> u128 {
    let Some(v) = x.checked_add(1) else { return 0 };
    let e = 127 - v.leading_zeros();
    // M = v · 2^(64 − e), in [2^64, 2^65): the mantissa with 64 fraction bits.
    let m = if e >= 64 { v >> (e - 64) } else { v << (64 - e) };
    let one = 1u128 << 64;
    let z = ((m - one) << 64) / (m + one);
    let z2 = (z * z) >> 64;
    let (mut term, mut sum, mut k) = (z, 0u128, 1u128);
    while term != 0 {
        sum += term / (2 * k - 1);
        term = (term * z2) >> 64;
        k += 1;
    }
    let ln_m = 2 * sum;
    let n = u128::from(128 - e);
    let ln2_scaled = n * (LN2_Q128 >> 64) + ((n * (LN2_Q128 & u128::from(u64::MAX))) >> 64);
    ln2_scaled.saturating_sub(ln_m)
}

/// The uniform draw's numerator `x` from a 64-byte VRF output.
pub fn uniform_from_vrf_output(output: &[u8; 64]) -> u128 {
    let mut head = [0u8; 16];
    head.copy_from_slice(&output[..16]);
    u128::from_be_bytes(head)
}

/// A staker's score in a slot: `neg_ln / stake`, kept as the exact pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Score {
    neg_ln: u128,
    stake: u64,
}

impl Score {
    /// A score from its parts. A zero stake is an infinite score.
    pub fn new(neg_ln: u128, stake: u64) -> Score {
        Score { neg_ln, stake }
    }

    /// `-ln(u)` in Q64.64.
    pub fn neg_ln(&self) -> u128 {
        self.neg_ln
    }

    /// The stake it is divided by.
    pub fn stake(&self) -> u64 {
        self.stake
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.stake, other.stake) {
            (0, 0) => Ordering::Equal,
            (0, _) => Ordering::Greater,
            (_, 0) => Ordering::Less,
            _ => {
                let lhs = U256::from_u128(self.neg_ln).checked_mul_u64(other.stake);
                let rhs = U256::from_u128(other.neg_ln).checked_mul_u64(self.stake);
                // u128 · u64 < 2^192: never overflows.
                lhs.cmp(&rhs)
            }
        }
    }
}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The score of a VRF output for `stake`.
pub fn score(output: &[u8; 64], stake: u64) -> Score {
    Score::new(neg_ln_q64(uniform_from_vrf_output(output)), stake)
}

/// Whether `score` is below the threshold of failover step `step`:
/// `neg_ln · total · 1000 < c_milli · (step + 1) · stake · 2^64`.
/// Zero stake or zero total is never eligible.
pub fn is_eligible(score: &Score, total_stake: u64, c_milli: u32, step: u32) -> bool {
    if score.stake == 0 || total_stake == 0 {
        return false;
    }
    // Left < 2^128 · 2^64 · 2^10; right < 2^32 · 2^33 · 2^64 · 2^64: both fit.
    let lhs = U256::from_u128(score.neg_ln)
        .checked_mul_u64(total_stake)
        .and_then(|v| v.checked_mul_u64(1000));
    let rhs = U256::from_u128(u128::from(c_milli) * (u128::from(step) + 1))
        .checked_mul_u64(score.stake)
        .map(|v| v.shl(64));
    match (lhs, rhs) {
        (Some(l), Some(r)) => l < r,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (x, floor(-ln((x+1)/2^128) · 2^64)) from `tests/vectors/neg_ln.py`
    /// (Python `decimal` at 60 digits).
    const REFERENCE: &str = include_str!("../tests/vectors/neg_ln.txt");

    #[test]
    fn matches_the_high_precision_reference() {
        let mut worst = 0u128;
        let mut count = 0;
        for line in REFERENCE.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let (x, expected) = line.split_once(' ').unwrap();
            let (x, expected): (u128, u128) = (x.parse().unwrap(), expected.parse().unwrap());
            let got = neg_ln_q64(x);
            worst = worst.max(got.abs_diff(expected));
            count += 1;
        }
        assert!(count >= 40, "only {count} reference values");
        // 2^-56 in Q64.64 is 256.
        assert!(worst <= 256, "largest error {worst} / 2^64");
    }

    #[test]
    fn extremes() {
        assert_eq!(neg_ln_q64(u128::MAX), 0, "u = 1");
        let max = neg_ln_q64(0);
        // 128 ln 2 ≈ 88.72
        assert_eq!(max >> 64, 88);
    }

    proptest! {
        #[test]
        fn monotone_decreasing(a in any::<u128>(), b in any::<u128>()) {
            let (lo, hi) = if a < b { (a, b) } else { (b, a) };
            prop_assert!(neg_ln_q64(lo) >= neg_ln_q64(hi));
        }
    }

    #[test]
    fn scores_compare_exactly() {
        let big = u128::MAX >> 8;
        assert!(Score::new(big, u64::MAX) < Score::new(big, u64::MAX - 1));
        assert_eq!(Score::new(10, 2).cmp(&Score::new(5, 1)), Ordering::Equal);
        assert!(
            Score::new(0, 0) > Score::new(u128::MAX, 1),
            "zero stake never wins"
        );
        assert!(Score::new(3, 1) > Score::new(5, 2));
    }

    #[test]
    fn eligibility_boundaries() {
        // neg_ln · total · 1000 vs c_milli · (j+1) · stake · 2^64 with
        // total = 4, stake = 1, c = 3: threshold neg_ln < 0.75 · 2^64.
        let threshold = 3u128 << 62;
        assert!(
            !is_eligible(&Score::new(threshold, 1), 4, 3000, 0),
            "equal is not below"
        );
        assert!(is_eligible(&Score::new(threshold - 1, 1), 4, 3000, 0));
        assert!(
            is_eligible(&Score::new(threshold, 1), 4, 3000, 1),
            "a later step admits more"
        );
        assert!(
            !is_eligible(&Score::new(0, 0), 4, 3000, 5),
            "zero stake is never eligible"
        );
        assert!(!is_eligible(&Score::new(0, 1), 0, 3000, 5));
    }

    fn splitmix(seed: &mut u64) -> u64 {
        *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn random_output(seed: &mut u64) -> [u8; 64] {
        let mut out = [0u8; 64];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&splitmix(seed).to_le_bytes());
        }
        out
    }

    #[test]
    fn lowest_score_wins_in_proportion_to_stake() {
        let stakes = [1u64, 2, 3, 4];
        let n = 20_000u64;
        let mut wins = [0u64; 4];
        let mut seed = 7;
        for _ in 0..n {
            let winner = (0..4)
                .min_by_key(|i| score(&random_output(&mut seed), stakes[*i]))
                .unwrap();
            wins[winner] += 1;
        }
        for (i, w) in wins.iter().enumerate() {
            let p = stakes[i] as f64 / 10.0;
            let sigma = (n as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (*w as f64 - n as f64 * p).abs() < 5.0 * sigma,
                "staker {i}: {w} wins"
            );
        }
    }

    #[test]
    fn eligibility_rate_is_one_minus_e_to_the_minus_c_share() {
        let n = 20_000u64;
        let mut seed = 11;
        for (stake, total) in [(1u64, 10u64), (5, 10), (10, 10)] {
            let hits = (0..n)
                .filter(|_| is_eligible(&score(&random_output(&mut seed), stake), total, 3000, 0))
                .count();
            let p = 1.0 - (-3.0 * stake as f64 / total as f64).exp();
            let sigma = (n as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (hits as f64 - n as f64 * p).abs() < 5.0 * sigma,
                "stake {stake}/{total}: {hits}"
            );
        }
    }

    #[test]
    fn splitting_a_stake_does_not_change_its_win_rate() {
        let n = 20_000u64;
        let mut seed = 13;
        let mut whole = 0u64;
        let mut split = 0u64;
        for _ in 0..n {
            // One key with 4 against a rival with 4; then four keys with 1.
            let a = score(&random_output(&mut seed), 4);
            let rival = score(&random_output(&mut seed), 4);
            whole += u64::from(a < rival);
            let parts = (0..4).map(|_| score(&random_output(&mut seed), 1)).min().unwrap();
            let rival = score(&random_output(&mut seed), 4);
            split += u64::from(parts < rival);
        }
        let sigma = (n as f64 * 0.25).sqrt();
        assert!(
            (whole as f64 - split as f64).abs() < 5.0 * sigma * std::f64::consts::SQRT_2,
            "{whole} vs {split}"
        );
    }
}
