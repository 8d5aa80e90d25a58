//! The SHA-NI kernel: the interleaved kernel ([`super::simd`]) on the
//! x86_64 SHA extensions. The state lives in the ABEF/CDGH register layout
//! that `sha256rnds2` expects; each instruction runs two rounds, so four
//! rounds are two `sha256rnds2` and a shuffle for the second pair of words.
#![allow(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::*;
use std::ops::Range;

use super::Template;
use super::simd::{self, ShaUnit};

/// The x86_64 SHA extensions.
pub(super) struct ShaNi;

impl ShaUnit for ShaNi {
    type Vector = __m128i;
    /// (ABEF, CDGH), lanes high to low.
    type State = (__m128i, __m128i);

    #[inline(always)]
    unsafe fn vector(w: &[u32]) -> __m128i {
        _mm_set_epi32(w[3] as i32, w[2] as i32, w[1] as i32, w[0] as i32)
    }

    #[inline(always)]
    unsafe fn add(a: __m128i, b: __m128i) -> __m128i {
        _mm_add_epi32(a, b)
    }

    #[inline(always)]
    unsafe fn with_first(v: __m128i, word: u32) -> __m128i {
        _mm_insert_epi32(v, word as i32, 0)
    }

    #[inline(always)]
    unsafe fn sigma0_of_first(w: __m128i) -> __m128i {
        _mm_sha256msg1_epu32(_mm_setzero_si128(), w)
    }

    #[inline(always)]
    unsafe fn next_message(a: __m128i, b: __m128i, c: __m128i, d: __m128i) -> __m128i {
        _mm_sha256msg2_epu32(
            _mm_add_epi32(_mm_sha256msg1_epu32(a, b), _mm_alignr_epi8(d, c, 4)),
            d,
        )
    }

    #[inline(always)]
    unsafe fn state(w: &[u32; 8]) -> Self::State {
        (
            Self::vector(&[w[5], w[4], w[1], w[0]]),
            Self::vector(&[w[7], w[6], w[3], w[2]]),
        )
    }

    #[inline(always)]
    unsafe fn four_rounds((abef, cdgh): &mut Self::State, wk: __m128i) {
        *cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, wk);
        *abef = _mm_sha256rnds2_epu32(*abef, *cdgh, _mm_shuffle_epi32(wk, 0x0e));
    }

    #[inline(always)]
    unsafe fn a((abef, _): Self::State) -> u32 {
        _mm_extract_epi32(abef, 3) as u32
    }

    #[inline(always)]
    unsafe fn words((abef, cdgh): Self::State) -> [u32; 8] {
        let (mut x, mut y) = ([0u32; 4], [0u32; 4]);
        _mm_storeu_si128(x.as_mut_ptr().cast(), abef);
        _mm_storeu_si128(y.as_mut_ptr().cast(), cdgh);
        // Lanes low to high: ABEF = [F, E, B, A], CDGH = [H, G, D, C].
        [x[3], x[2], y[3], y[2], x[1], x[0], y[1], y[0]]
    }
}

/// # Safety
///
/// The CPU must support `sha`, `sse4.1` and `ssse3`.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(super) unsafe fn search_range<const N: usize>(
    template: &Template,
    nonces: Range<u64>,
) -> Option<(u64, [u8; 32])> {
    simd::search_range::<ShaNi, N>(template, nonces)
}

/// # Safety
///
/// The CPU must support `sha`, `sse4.1` and `ssse3`.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(super) unsafe fn hash_lanes<const N: usize>(pre: &[u8; 32], nonce: u64) -> Vec<[u8; 32]> {
    simd::hash_lanes::<ShaNi, N>(pre, nonce)
}
