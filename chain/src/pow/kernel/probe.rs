//! A probe of the SHA unit itself: the most SHA-256 round instructions the
//! CPU retires per second, against which the kernels are judged.
//!
//! [`run`] executes `chains` independent dependency chains of
//! `sha256rnds2` (two rounds each) with nothing else in between, so with
//! enough chains the instruction's throughput, not its latency, is the
//! limit. [`Mix::Try`] adds the `sha256msg1`/`sha256msg2` instructions of one
//! try of the `shani` kernel to every 28 `sha256rnds2`, on chains of their
//! own: if the schedule instructions share the round instruction's unit, the
//! mix retires fewer `sha256rnds2` per second than [`Mix::Rounds`].
//! [`Mix::Vector`] adds the try's other vector instructions too (its adds,
//! shuffles and byte alignments), for CPUs that issue the SHA instructions
//! to the same pipes as those. The probe has no clock: the caller times it
//! (in `src/`, this crate stays pure).

/// `sha256rnds2` per try (two rounds each): rounds 8–63.
pub const RNDS2_PER_TRY: u64 = super::ROUNDS_PER_TRY as u64 / 2;
/// `sha256msg1` per try in the `shani` kernel (one for `σ0(W8)`, one per
/// schedule vector W24..W63).
pub const MSG1_PER_TRY: usize = 11;
/// `sha256msg2` per try in the `shani` kernel (one per schedule vector W24..W63).
pub const MSG2_PER_TRY: usize = 10;
/// `paddd` per try in the `shani` kernel: W8..W11 + K, W20..W23 + `σ0(W8)`
/// and + K, and per schedule vector W24..W63 the add inside the schedule and
/// the + K (rounds 12–19 take a per-run constant).
pub const ADDS_PER_TRY: usize = 23;
/// `pshufd` per try in the `shani` kernel: one per four rounds, which moves
/// the message vector's high half to where the second `sha256rnds2` reads it.
pub const SHUFFLES_PER_TRY: usize = 14;
/// `palignr` per try in the `shani` kernel: one per schedule vector W24..W63.
pub const ALIGNS_PER_TRY: usize = 10;

/// Which instructions a block of the probe runs per chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mix {
    /// 28 `sha256rnds2`.
    Rounds,
    /// 28 `sha256rnds2`, [`MSG1_PER_TRY`] `sha256msg1` and [`MSG2_PER_TRY`]
    /// `sha256msg2`: one try's SHA instructions.
    Try,
    /// [`Mix::Try`] and [`ADDS_PER_TRY`] `paddd`, [`SHUFFLES_PER_TRY`]
    /// `pshufd` and [`ALIGNS_PER_TRY`] `palignr`: one try's vector
    /// instructions, without the nonce's insert and A's extract.
    Vector,
}

/// The chain counts worth probing: latency shows at 1, the throughput limit
/// well before 8.
pub const CHAINS: [usize; 6] = [1, 2, 3, 4, 6, 8];

/// Runs `blocks` blocks of `mix` on `chains` (one of [`CHAINS`]) independent
/// chains and returns how many `sha256rnds2` it executed; `None` if this CPU
/// has no SHA-NI (or `chains` is not one of [`CHAINS`]).
pub fn run(chains: usize, mix: Mix, blocks: u64) -> Option<u64> {
    #[cfg(target_arch = "x86_64")]
    if super::Kernel::ShaNi(super::Lanes::Two).is_supported() {
        macro_rules! go {
            ($c:literal) => {
                // SAFETY: the CPU supports sha, sse4.1 and ssse3 (checked above).
                unsafe {
                    match mix {
                        Mix::Rounds => x86::chains::<$c, 0, 0, 0, 0, 0>(blocks),
                        Mix::Try => x86::chains::<$c, MSG1_PER_TRY, MSG2_PER_TRY, 0, 0, 0>(blocks),
                        Mix::Vector => x86::chains::<
                            $c,
                            MSG1_PER_TRY,
                            MSG2_PER_TRY,
                            ADDS_PER_TRY,
                            SHUFFLES_PER_TRY,
                            ALIGNS_PER_TRY,
                        >(blocks),
                    }
                }
            };
        }
        match chains {
            1 => go!(1),
            2 => go!(2),
            3 => go!(3),
            4 => go!(4),
            6 => go!(6),
            8 => go!(8),
            _ => return None,
        }
        return Some(blocks * chains as u64 * RNDS2_PER_TRY);
    }
    let _ = (chains, mix, blocks);
    None
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    #![allow(unsafe_op_in_unsafe_fn)]

    use std::arch::x86_64::*;
    use std::hint::black_box;

    /// `blocks` × 14 steps; per step and chain two dependent `sha256rnds2`
    /// (the ABEF/CDGH ping-pong of the kernel), in the first `M1` / `M2`
    /// steps one `sha256msg1` / `sha256msg2`, and `A` `paddd`, `S` `pshufd`
    /// and `P` `palignr` spread two per step: each kind on chains of its own.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) unsafe fn chains<
        const C: usize,
        const M1: usize,
        const M2: usize,
        const A: usize,
        const S: usize,
        const P: usize,
    >(
        blocks: u64,
    ) {
        // Opaque inputs, so nothing is computed at compile time.
        let seed = black_box(_mm_set_epi32(0x428a_2f98, 0x7137_4491, 0x3c6e_f372, 0x510e_527f));
        let k = black_box(_mm_set_epi32(0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a));
        let lane = |c: usize, salt: i32| _mm_add_epi32(seed, _mm_set1_epi32(c as i32 * 8 + salt));
        let mut abef: [__m128i; C] = std::array::from_fn(|c| lane(c, 0));
        let mut cdgh: [__m128i; C] = std::array::from_fn(|c| lane(c, 1));
        let mut m1: [__m128i; C] = std::array::from_fn(|c| lane(c, 2));
        let mut m2: [__m128i; C] = std::array::from_fn(|c| lane(c, 3));
        let mut add: [__m128i; C] = std::array::from_fn(|c| lane(c, 4));
        let mut shuffle: [__m128i; C] = std::array::from_fn(|c| lane(c, 5));
        let mut align: [__m128i; C] = std::array::from_fn(|c| lane(c, 6));
        for _ in 0..blocks {
            for step in 0..14 {
                for c in 0..C {
                    cdgh[c] = _mm_sha256rnds2_epu32(cdgh[c], abef[c], k);
                    abef[c] = _mm_sha256rnds2_epu32(abef[c], cdgh[c], k);
                    if step < M1 {
                        m1[c] = _mm_sha256msg1_epu32(m1[c], k);
                    }
                    if step < M2 {
                        m2[c] = _mm_sha256msg2_epu32(m2[c], k);
                    }
                    for slot in [2 * step, 2 * step + 1] {
                        if slot < A {
                            add[c] = _mm_add_epi32(add[c], k);
                        }
                        if slot < S {
                            shuffle[c] = _mm_shuffle_epi32(shuffle[c], 0x0e);
                        }
                        if slot < P {
                            align[c] = _mm_alignr_epi8(align[c], k, 4);
                        }
                    }
                }
            }
        }
        black_box((abef, cdgh, m1, m2, add, shuffle, align));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pow::kernel::{Kernel, Lanes};

    #[test]
    fn counts_the_round_instructions_it_ran() {
        let expected = Kernel::ShaNi(Lanes::Two).is_supported().then_some(3 * 4 * 28);
        if expected.is_none() {
            eprintln!("SKIPPED: no SHA-NI on this CPU; the probe reports None");
        }
        for mix in [Mix::Rounds, Mix::Try, Mix::Vector] {
            assert_eq!(run(4, mix, 3), expected);
        }
        assert_eq!(run(5, Mix::Rounds, 3), None);
    }
}
