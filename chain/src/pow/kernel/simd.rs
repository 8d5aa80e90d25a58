//! The interleaved kernel, written once over a CPU's SHA-256 instructions
//! ([`ShaUnit`]: x86_64 SHA-NI in `sha_ni`, ARMv8 SHA-2 in `arm_sha2`).
//!
//! Per template, rounds 0–7 (they read only `pre`) run once. Per run of
//! nonces sharing the high 32 bits, the schedule words that do not depend on
//! the low half are constants (see [`super::schedule`]): the message vectors
//! of rounds 12–19 are fixed, rounds 20–23 need one schedule instruction for
//! `σ0(W8)`. A try is then rounds 8–63: 14 steps of four rounds (two
//! instructions each on both families), 11 first-half and 10 second-half
//! schedule instructions.
//!
//! `N` tries run side by side so that `N` independent chains of round
//! instructions hide their latency. A lane holds 6 vector registers (two for
//! the state, a window of four message vectors): x86_64 has 16 xmm
//! registers, so two lanes fit and more spill message vectors to the stack
//! (loads, which do not compete with the SHA unit); aarch64 has 32, enough
//! for four. Which count is fastest depends on the CPU; the caller measures.
//!
//! Everything here is `#[inline(always)]`: it is compiled into the callers
//! in `sha_ni`/`arm_sha2`, which enable the instructions' target features.
#![allow(unsafe_op_in_unsafe_fn)]

use std::array;
use std::ops::Range;

use super::schedule::{K, fixed_words, segments, w8};
use super::{IV, Template, lane_nonce};

/// A CPU's SHA-256 instructions and the few vector operations around them.
/// Message vectors hold four consecutive words, the first in lane 0.
pub(super) trait ShaUnit {
    /// Four 32-bit words.
    type Vector: Copy;
    /// The eight working variables, in the instructions' layout.
    type State: Copy;

    /// `w[0..4]` as a message vector.
    unsafe fn vector(w: &[u32]) -> Self::Vector;
    /// Lane-wise wrapping addition.
    unsafe fn add(a: Self::Vector, b: Self::Vector) -> Self::Vector;
    /// `v` with lane 0 replaced by `word`.
    unsafe fn with_first(v: Self::Vector, word: u32) -> Self::Vector;
    /// `(0, 0, 0, σ0(w[0]))`: the first-half schedule instruction on a zero
    /// vector and `w`.
    unsafe fn sigma0_of_first(w: Self::Vector) -> Self::Vector;
    /// The next message vector from the previous four.
    unsafe fn next_message(
        a: Self::Vector,
        b: Self::Vector,
        c: Self::Vector,
        d: Self::Vector,
    ) -> Self::Vector;
    /// The state holding `words` (a..h).
    unsafe fn state(words: &[u32; 8]) -> Self::State;
    /// Four rounds with message plus constants `wk`.
    unsafe fn four_rounds(state: &mut Self::State, wk: Self::Vector);
    /// The working variable `a`.
    unsafe fn a(state: Self::State) -> u32;
    /// All eight working variables, a..h.
    unsafe fn words(state: Self::State) -> [u32; 8];
}

/// Constants of one template.
struct Midstate<U: ShaUnit> {
    /// State after rounds 0–7.
    state: U::State,
    /// `K[4g..4g+4]` per group of four rounds.
    k: [U::Vector; 16],
}

/// Constants of one run of nonces sharing the high 32 bits.
struct Fixed<U: ShaUnit> {
    /// W8..W11 with W8 = 0; W12..W15; W16..W19; W20..W23 with W8 = 0.
    w8: U::Vector,
    w12: U::Vector,
    w16: U::Vector,
    w20: U::Vector,
    /// Message plus constants of rounds 12–15 and 16–19.
    wk12: U::Vector,
    wk16: U::Vector,
}

impl<U: ShaUnit> Midstate<U> {
    #[inline(always)]
    unsafe fn new(pre: &[u8; 32]) -> Self {
        let w = fixed_words(pre, 0);
        let k = array::from_fn(|g| U::vector(&K[4 * g..]));
        let mut state = U::state(&IV);
        U::four_rounds(&mut state, U::add(U::vector(&w[0..]), k[0]));
        U::four_rounds(&mut state, U::add(U::vector(&w[4..]), k[1]));
        Midstate { state, k }
    }

    #[inline(always)]
    unsafe fn fixed(&self, pre: &[u8; 32], high: u32) -> Fixed<U> {
        let w = fixed_words(pre, high);
        let (w12, w16) = (U::vector(&w[12..]), U::vector(&w[16..]));
        Fixed {
            w8: U::vector(&w[8..]),
            w12,
            w16,
            w20: U::vector(&w[20..]),
            wk12: U::add(w12, self.k[3]),
            wk16: U::add(w16, self.k[4]),
        }
    }
}

/// Rounds 8–63 for `N` nonces of one run: each lane's final state before
/// the IV is added.
#[inline(always)]
unsafe fn rounds<U: ShaUnit, const N: usize>(
    mid: &Midstate<U>,
    fixed: &Fixed<U>,
    lows: [u32; N],
) -> [U::State; N] {
    let mut state = [mid.state; N];
    // Rolling window of the last four message vectors, per lane.
    let mut m = [[fixed.w8, fixed.w12, fixed.w16, fixed.w20]; N];
    for lane in 0..N {
        let w8_11 = U::with_first(fixed.w8, w8(lows[lane]));
        m[lane][0] = w8_11;
        // The low half's share of W23.
        m[lane][3] = U::add(fixed.w20, U::sigma0_of_first(w8_11));
        U::four_rounds(&mut state[lane], U::add(w8_11, mid.k[2]));
    }
    for wk in [fixed.wk12, fixed.wk16] {
        for lane_state in &mut state {
            U::four_rounds(lane_state, wk);
        }
    }
    for lane in 0..N {
        U::four_rounds(&mut state[lane], U::add(m[lane][3], mid.k[5]));
    }
    for g in 6..16 {
        for lane in 0..N {
            let [a, b, c, d] = m[lane];
            let next = U::next_message(a, b, c, d);
            m[lane] = [b, c, d, next];
            U::four_rounds(&mut state[lane], U::add(next, mid.k[g]));
        }
    }
    state
}

#[inline(always)]
unsafe fn digest<U: ShaUnit>(state: U::State) -> [u8; 32] {
    let mut hash = [0u8; 32];
    for ((chunk, word), iv) in hash.chunks_mut(4).zip(U::words(state)).zip(IV) {
        chunk.copy_from_slice(&word.wrapping_add(iv).to_be_bytes());
    }
    hash
}

#[inline(always)]
pub(super) unsafe fn search_range<U: ShaUnit, const N: usize>(
    template: &Template,
    nonces: Range<u64>,
) -> Option<(u64, [u8; 32])> {
    let mid = Midstate::<U>::new(&template.pre);
    let head = template.head();
    for (high, first, last) in segments(nonces.start, nonces.end) {
        let fixed = mid.fixed(&template.pre, high);
        let mut low = first;
        loop {
            // The last group may be short: extra lanes repeat the last nonce
            // and are never reported.
            let lows: [u32; N] = array::from_fn(|lane| low.saturating_add(lane as u32).min(last));
            let states = rounds::<U, N>(&mid, &fixed, lows);
            for (lane, state) in states.into_iter().enumerate() {
                // Only A decides almost every try; the rest of the digest is
                // computed on a near miss.
                let a = U::a(state).wrapping_add(IV[0]);
                if a <= head && (lane == 0 || lows[lane] != lows[lane - 1]) {
                    let hash = digest::<U>(state);
                    if hash <= template.target {
                        return Some((u64::from(high) << 32 | u64::from(lows[lane]), hash));
                    }
                }
            }
            match low.checked_add(N as u32) {
                Some(next) if next <= last => low = next,
                _ => break,
            }
        }
    }
    None
}

/// The hashes of one group of `N` lanes starting at `nonce` ([`lane_nonce`]).
#[inline(always)]
pub(super) unsafe fn hash_lanes<U: ShaUnit, const N: usize>(pre: &[u8; 32], nonce: u64) -> Vec<[u8; 32]> {
    let mid = Midstate::<U>::new(pre);
    let fixed = mid.fixed(pre, (nonce >> 32) as u32);
    let lows = array::from_fn(|lane| lane_nonce(nonce, lane) as u32);
    rounds::<U, N>(&mid, &fixed, lows)
        .into_iter()
        .map(|state| digest::<U>(state))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::pow::kernel::probe;

    thread_local! {
        /// Calls of `add`, `sigma0_of_first`, `next_message` and `four_rounds`.
        static CALLS: [Cell<usize>; 4] = Default::default();
    }

    fn count(which: usize) {
        CALLS.with(|c| c[which].set(c[which].get() + 1));
    }

    /// Counts the kernel's calls; the values are arbitrary (nothing checks them).
    struct Counting;

    impl ShaUnit for Counting {
        type Vector = [u32; 4];
        type State = [u32; 8];

        unsafe fn vector(w: &[u32]) -> [u32; 4] {
            [w[0], w[1], w[2], w[3]]
        }
        unsafe fn add(a: [u32; 4], b: [u32; 4]) -> [u32; 4] {
            count(0);
            array::from_fn(|i| a[i].wrapping_add(b[i]))
        }
        unsafe fn with_first(mut v: [u32; 4], word: u32) -> [u32; 4] {
            v[0] = word;
            v
        }
        unsafe fn sigma0_of_first(w: [u32; 4]) -> [u32; 4] {
            count(1);
            [0, 0, 0, w[0]]
        }
        unsafe fn next_message(a: [u32; 4], b: [u32; 4], c: [u32; 4], d: [u32; 4]) -> [u32; 4] {
            count(2);
            array::from_fn(|i| a[i] ^ b[i] ^ c[i] ^ d[i])
        }
        unsafe fn state(words: &[u32; 8]) -> [u32; 8] {
            *words
        }
        unsafe fn four_rounds(state: &mut [u32; 8], wk: [u32; 4]) {
            count(3);
            state[0] ^= wk[0];
        }
        unsafe fn a(state: [u32; 8]) -> u32 {
            state[0]
        }
        unsafe fn words(state: [u32; 8]) -> [u32; 8] {
            state
        }
    }

    /// The probe's [`probe::Mix::Vector`] claims to be one try's vector
    /// instructions: this counts what the kernel issues per try, mapped to
    /// SHA-NI (`four_rounds` is two `sha256rnds2` and a `pshufd`;
    /// `next_message` a `sha256msg1`, a `palignr`, a `paddd` and a
    /// `sha256msg2`; `sigma0_of_first` a `sha256msg1`).
    #[test]
    fn the_probe_s_mix_is_what_the_kernel_issues_per_try() {
        let pre = [7u8; 32];
        // SAFETY: `Counting` has no CPU requirements.
        let (mid, fixed) = unsafe {
            let mid = Midstate::<Counting>::new(&pre);
            let fixed = mid.fixed(&pre, 0);
            (mid, fixed)
        };
        CALLS.with(|c| c.iter().for_each(|c| c.set(0)));
        // SAFETY: as above.
        unsafe { rounds::<Counting, 2>(&mid, &fixed, [1, 2]) };
        let [add, sigma0, next, four] = CALLS.with(|c| c.each_ref().map(Cell::get)).map(|n| n / 2);
        assert_eq!(2 * four as u64, probe::RNDS2_PER_TRY);
        assert_eq!(sigma0 + next, probe::MSG1_PER_TRY);
        assert_eq!(next, probe::MSG2_PER_TRY);
        assert_eq!(add + next, probe::ADDS_PER_TRY);
        assert_eq!(four, probe::SHUFFLES_PER_TRY);
        assert_eq!(next, probe::ALIGNS_PER_TRY);
    }
}
