//! ASERT difficulty: Bitcoin Cash's aserti3-2d, integer-only.
//!
//! The target of the block after `parent` is
//! `anchor_target · 2^((time_diff − spacing · (height_diff + 1)) / half_life)`,
//! where `time_diff` is the parent's time minus the anchor's parent's time and
//! `height_diff` the parent's height minus the anchor's. The exponent is a
//! 16.16 fixed-point number (truncating division); its integer part becomes
//! a shift and `2^frac` is the specification's cubic approximation
//! `1 + (195766423245049·f + 971821376·f² + 5127·f³ + 2^47) / 2^48`
//! (f = frac / 65536). The result is clamped to `[1, max_target]`. Units are
//! the caller's (klero: milliseconds); only ratios matter.

use crate::u256::U256;

/// The next target under aserti3-2d.
pub fn next_target(
    anchor_target: &U256,
    time_diff: i64,
    height_diff: i64,
    spacing: i64,
    half_life: i64,
    max_target: &U256,
) -> U256 {
    let half_life = i128::from(half_life.max(1));
    let ideal = i128::from(spacing) * (i128::from(height_diff) + 1);
    // i128 keeps the product exact for any i64 inputs; C's truncating
    // division is Rust's `/`.
    let exponent = ((i128::from(time_diff) - ideal) * 65536) / half_life;
    let shifts = exponent >> 16; // arithmetic shift: floor
    let frac = (exponent & 0xffff) as u128;
    let poly = (195_766_423_245_049u128 * frac
        + 971_821_376u128 * frac * frac
        + 5_127u128 * frac * frac * frac
        + (1u128 << 47))
        >> 48;
    let factor = 65_536u64 + poly as u64;
    let (low, high) = anchor_target.widening_mul_u64(factor);
    // The 320-bit product `high:low`, shifted by `shifts - 16`.
    let shift = shifts - 16;
    let result = if shift <= 0 {
        let right = u32::try_from(-shift).unwrap_or(u32::MAX);
        let low_part = low.shr(right);
        let high_part = if right >= 256 + 64 {
            U256::ZERO
        } else if right >= 256 {
            U256::from_u128(u128::from(high >> (right - 256)))
        } else {
            U256::from_u128(u128::from(high)).shl(256 - right)
        };
        // `high` only reaches into the result when shifted far enough right.
        if right < 64 && high >> right != 0 {
            *max_target
        } else {
            low_part.checked_add(&high_part).unwrap_or(*max_target)
        }
    } else if high != 0 || low.bits() as i128 + shift > 256 {
        *max_target
    } else {
        low.shl(shift as u32)
    };
    if result.is_zero() {
        U256::ONE
    } else if result > *max_target {
        *max_target
    } else {
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPACING: i64 = 600;
    const HALF_LIFE: i64 = 172_800; // two days, BCH mainnet

    fn anchor() -> U256 {
        // Bitcoin Cash's proof-of-work limit 0x1d00ffff, expanded.
        U256::from_u128(0xffff).shl(208)
    }

    fn limit() -> U256 {
        U256::ONE.shl(224).checked_sub(&U256::ONE).unwrap()
    }

    #[test]
    fn on_schedule_keeps_the_target() {
        for h in [0, 1, 100, 10_000] {
            let t = next_target(&anchor(), SPACING * (h + 1), h, SPACING, HALF_LIFE, &U256::MAX);
            assert_eq!(t, anchor());
        }
    }

    #[test]
    fn one_half_life_late_doubles_one_early_halves() {
        let late = next_target(&anchor(), SPACING + HALF_LIFE, 0, SPACING, HALF_LIFE, &U256::MAX);
        assert_eq!(late, anchor().shl(1));
        let early = next_target(&anchor(), SPACING - HALF_LIFE, 0, SPACING, HALF_LIFE, &U256::MAX);
        assert_eq!(early, anchor().shr(1));
        let four_early = next_target(
            &anchor(),
            SPACING - 4 * HALF_LIFE,
            0,
            SPACING,
            HALF_LIFE,
            &U256::MAX,
        );
        assert_eq!(four_early, anchor().shr(4));
    }

    #[test]
    fn half_a_half_life_is_the_square_root_of_two() {
        // Hand-computed: frac = 32768 → poly = (195766423245049·32768 +
        // 971821376·32768² + 5127·32768³ + 2^47) >> 48 = 27138, factor 92674
        // (2^0.5 · 65536 = 92681.9: the cubic is within 0.01%).
        let t = next_target(
            &U256::from_u128(65_536 << 16),
            SPACING + HALF_LIFE / 2,
            0,
            SPACING,
            HALF_LIFE,
            &U256::MAX,
        );
        assert_eq!(t, U256::from_u128(92_674 << 16));
    }

    #[test]
    fn clamps_to_limit_and_one() {
        let easy = next_target(
            &anchor(),
            SPACING + 100 * HALF_LIFE,
            0,
            SPACING,
            HALF_LIFE,
            &limit(),
        );
        assert_eq!(easy, limit());
        let hard = next_target(&anchor(), -1_000 * HALF_LIFE, 0, SPACING, HALF_LIFE, &limit());
        assert_eq!(hard, U256::ONE);
        let huge = next_target(
            &U256::MAX.shr(1),
            SPACING + 3 * HALF_LIFE,
            0,
            SPACING,
            HALF_LIFE,
            &U256::MAX,
        );
        assert_eq!(huge, U256::MAX);
    }

    #[test]
    fn truncates_the_exponent_towards_zero() {
        // One time unit early with a half-life of 3: exponent = -65536/3 = -21845.33 → -21845.
        let t = next_target(&U256::from_u128(1 << 40), 1 - 1, 0, 1, 3, &U256::MAX);
        let t2 = next_target(&U256::from_u128(1 << 40), 1 - 2, 0, 1, 3, &U256::MAX);
        assert!(t < U256::from_u128(1 << 40) && t2 < t);
    }

    /// A simulated chain: hashrate steps ×4 then /4; the mean block time
    /// returns to the target within a few half-lives of each step.
    #[test]
    fn hashrate_steps_settle_back_to_the_target_spacing() {
        let spacing = 1_000i64;
        let half_life = 32 * spacing;
        let initial = U256::ONE.shl(240);
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next_uniform = move || {
            // splitmix64
            rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        // Hashrate calibrated so the initial target gives `spacing` on average.
        let mut hashrate = 1.0f64;
        let (mut time, mut target) = (spacing, initial);
        let mut times = Vec::new();
        for height in 0..1_500i64 {
            if height == 300 {
                hashrate *= 4.0;
            }
            if height == 900 {
                hashrate /= 4.0;
            }
            let low = |x: U256| u64::from_be_bytes(x.shr(200).to_be_bytes()[24..].try_into().unwrap());
            let difficulty = low(initial) as f64 / low(target).max(1) as f64;
            let mean = spacing as f64 * difficulty / hashrate;
            let solve = (-(1.0 - next_uniform()).ln() * mean) as i64;
            time += solve.max(1);
            times.push(solve);
            target = next_target(&initial, time, height, spacing, half_life, &U256::MAX);
        }
        let mean = |r: std::ops::Range<usize>| {
            times[r.clone()].iter().fold(0i64, |t, x| t.saturating_add(*x)) as f64 / r.len() as f64
        };
        // Four half-lives (128 blocks) after each step, back within 20%.
        for (window, what) in [(450..900, "after x4"), (1050..1500, "after /4")] {
            let m = mean(window);
            assert!((m - 1000.0).abs() < 200.0, "{what}: mean block time {m}");
        }
        // Right after the x4 step, blocks come much faster.
        assert!(mean(300..330) < 600.0);
    }
}
