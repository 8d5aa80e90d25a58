//! The ARMv8 SHA-2 kernel: the interleaved kernel ([`super::simd`]) on
//! `sha256h`/`sha256h2` (four rounds each, on ABCD and EFGH) and
//! `sha256su0`/`sha256su1` (the schedule).
#![allow(unsafe_op_in_unsafe_fn)]

use std::arch::aarch64::*;
use std::ops::Range;

use super::Template;
use super::simd::{self, ShaUnit};

/// The ARMv8 SHA-2 instructions. The methods carry the target feature
/// themselves (the intrinsics are only inlined into code that has it) and
/// are inlined into the `search_range`/`hash_lanes` below, which have it too.
pub(super) struct ArmSha2;

impl ShaUnit for ArmSha2 {
    type Vector = uint32x4_t;
    /// (ABCD, EFGH), `a` and `e` in lane 0.
    type State = (uint32x4_t, uint32x4_t);

    #[inline]
    #[target_feature(enable = "neon,sha2")]
    unsafe fn vector(w: &[u32]) -> uint32x4_t {
        vld1q_u32(w[..4].as_ptr())
    }

    #[inline]
    #[target_feature(enable = "neon,sha2")]
    unsafe fn add(a: uint32x4_t, b: uint32x4_t) -> uint32x4_t {
        vaddq_u32(a, b)
    }

    #[inline]
    #[target_feature(enable = "neon,sha2")]
    unsafe fn with_first(v: uint32x4_t, word: u32) -> uint32x4_t {
        vsetq_lane_u32::<0>(word, v)
    }

    #[inline]
    #[target_feature(enable = "neon,sha2")]
    unsafe fn sigma0_of_first(w: uint32x4_t) -> uint32x4_t {
        vsha256su0q_u32(vdupq_n_u32(0), w)
    }

    #[inline]
    #[target_feature(enable = "neon,sha2")]
    unsafe fn next_message(a: uint32x4_t, b: uint32x4_t, c: uint32x4_t, d: uint32x4_t) -> uint32x4_t {
        vsha256su1q_u32(vsha256su0q_u32(a, b), c, d)
    }

    #[inline]
    #[target_feature(enable = "neon,sha2")]
    unsafe fn state(w: &[u32; 8]) -> Self::State {
        (Self::vector(&w[0..]), Self::vector(&w[4..]))
    }

    #[inline]
    #[target_feature(enable = "neon,sha2")]
    unsafe fn four_rounds((abcd, efgh): &mut Self::State, wk: uint32x4_t) {
        let abcd_before = *abcd;
        *abcd = vsha256hq_u32(abcd_before, *efgh, wk);
        *efgh = vsha256h2q_u32(*efgh, abcd_before, wk);
    }

    #[inline]
    #[target_feature(enable = "neon,sha2")]
    unsafe fn a((abcd, _): Self::State) -> u32 {
        vgetq_lane_u32::<0>(abcd)
    }

    #[inline]
    #[target_feature(enable = "neon,sha2")]
    unsafe fn words((abcd, efgh): Self::State) -> [u32; 8] {
        let mut w = [0u32; 8];
        vst1q_u32(w.as_mut_ptr(), abcd);
        vst1q_u32(w[4..].as_mut_ptr(), efgh);
        w
    }
}

/// # Safety
///
/// The CPU must support the SHA-2 instructions (`sha2`).
#[target_feature(enable = "neon,sha2")]
pub(super) unsafe fn search_range<const N: usize>(
    template: &Template,
    nonces: Range<u64>,
) -> Option<(u64, [u8; 32])> {
    simd::search_range::<ArmSha2, N>(template, nonces)
}

/// # Safety
///
/// The CPU must support the SHA-2 instructions (`sha2`).
#[target_feature(enable = "neon,sha2")]
pub(super) unsafe fn hash_lanes<const N: usize>(pre: &[u8; 32], nonce: u64) -> Vec<[u8; 32]> {
    simd::hash_lanes::<ArmSha2, N>(pre, nonce)
}
