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

/// How the vector instructions around the SHA ones are encoded. The SHA
/// instructions exist only in the legacy SSE encoding, which addresses
/// xmm0–xmm15; the kernel is compiled once per encoding and the best one
/// the CPU has runs. With AVX the adds, shuffles and `palignr` take three
/// operands, which saves SSE's register copies; with AVX-512VL they also
/// reach xmm16–xmm31, where the three- and four-lane kernels keep values
/// that would otherwise spill to the stack (in the four-lane kernel, half
/// of the stack accesses, some of them on a lane's state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Encoding {
    Sse,
    Avx,
    Avx512Vl,
}

impl Encoding {
    /// Every encoding, the oldest first.
    #[cfg(test)]
    const ALL: [Encoding; 3] = [Encoding::Sse, Encoding::Avx, Encoding::Avx512Vl];

    /// Whether the CPU has the encoding's instructions (besides the SHA
    /// extensions, which the caller checked).
    fn is_supported(self) -> bool {
        match self {
            Encoding::Sse => true,
            Encoding::Avx => is_x86_feature_detected!("avx"),
            Encoding::Avx512Vl => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512vl")
            }
        }
    }

    /// The newest encoding the CPU has.
    fn best() -> Encoding {
        if Encoding::Avx512Vl.is_supported() {
            Encoding::Avx512Vl
        } else if Encoding::Avx.is_supported() {
            Encoding::Avx
        } else {
            Encoding::Sse
        }
    }
}

/// The kernel's entry points compiled for one encoding's target features.
macro_rules! encoded {
    ($module:ident, $features:literal) => {
        mod $module {
            use super::*;

            #[target_feature(enable = $features)]
            pub(super) unsafe fn search_range<const N: usize>(
                template: &Template,
                nonces: Range<u64>,
            ) -> Option<(u64, [u8; 32])> {
                simd::search_range::<ShaNi, N>(template, nonces)
            }

            #[target_feature(enable = $features)]
            pub(super) unsafe fn hash_lanes<const N: usize>(pre: &[u8; 32], nonce: u64) -> Vec<[u8; 32]> {
                simd::hash_lanes::<ShaNi, N>(pre, nonce)
            }
        }
    };
}

encoded!(sse, "sha,sse2,ssse3,sse4.1");
encoded!(avx, "sha,sse2,ssse3,sse4.1,avx");
encoded!(avx512vl, "sha,sse2,ssse3,sse4.1,avx,avx2,avx512f,avx512vl");

/// Calls `$f::<N>(args)` of the module of `$encoding`.
macro_rules! with_encoding {
    ($encoding:expr, $f:ident, $($arg:expr),*) => {
        match $encoding {
            Encoding::Sse => sse::$f::<N>($($arg),*),
            Encoding::Avx => avx::$f::<N>($($arg),*),
            Encoding::Avx512Vl => avx512vl::$f::<N>($($arg),*),
        }
    };
}

/// # Safety
///
/// The CPU must support `sha`, `sse4.1` and `ssse3`.
pub(super) unsafe fn search_range<const N: usize>(
    template: &Template,
    nonces: Range<u64>,
) -> Option<(u64, [u8; 32])> {
    search_range_as::<N>(Encoding::best(), template, nonces)
}

/// # Safety
///
/// The CPU must support `sha`, `sse4.1` and `ssse3`.
pub(super) unsafe fn hash_lanes<const N: usize>(pre: &[u8; 32], nonce: u64) -> Vec<[u8; 32]> {
    hash_lanes_as::<N>(Encoding::best(), pre, nonce)
}

/// # Safety
///
/// As [`search_range`], and the CPU must support `encoding`.
unsafe fn search_range_as<const N: usize>(
    encoding: Encoding,
    template: &Template,
    nonces: Range<u64>,
) -> Option<(u64, [u8; 32])> {
    with_encoding!(encoding, search_range, template, nonces)
}

/// # Safety
///
/// As [`hash_lanes`], and the CPU must support `encoding`.
unsafe fn hash_lanes_as<const N: usize>(encoding: Encoding, pre: &[u8; 32], nonce: u64) -> Vec<[u8; 32]> {
    with_encoding!(encoding, hash_lanes, pre, nonce)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pow::kernel::{Kernel, Lanes, lane_nonce};
    use crate::pow::pow_hash;

    /// The encodings this CPU runs, or none without SHA-NI (reported as skipped).
    fn encodings() -> Vec<Encoding> {
        if !Kernel::ShaNi(Lanes::Two).is_supported() {
            eprintln!("SKIPPED: no SHA-NI on this CPU");
            return Vec::new();
        }
        let supported: Vec<Encoding> = Encoding::ALL.into_iter().filter(|e| e.is_supported()).collect();
        for missing in Encoding::ALL.iter().filter(|e| !supported.contains(e)) {
            eprintln!("SKIPPED: this CPU lacks the {missing:?} encoding");
        }
        supported
    }

    /// Every encoding of every lane count: each lane's hash and the first
    /// solution of a range crossing a change of the high half, against the
    /// reference (the kernel tests in `super::super` check the best
    /// encoding only, the one that runs).
    #[test]
    fn every_encoding_equals_the_reference_bit_for_bit() {
        fn check<const N: usize>(encoding: Encoding) {
            let pre = [9u8; 32];
            for nonce in [0, 0xffff_fffe, 0x1_0000_0000, u64::MAX - 1, 0x0123_4567_89ab_cdef] {
                // SAFETY: SHA-NI and the encoding are supported (`encodings`).
                let hashes = unsafe { hash_lanes_as::<N>(encoding, &pre, nonce) };
                assert_eq!(hashes.len(), N);
                for (lane, hash) in hashes.into_iter().enumerate() {
                    let n = lane_nonce(nonce, lane);
                    assert_eq!(hash, pow_hash(&pre, n), "{encoding:?} x{N} nonce {n:#x}");
                }
            }
            let mut target = [0xffu8; 32];
            target[..2].copy_from_slice(&[0, 0x0f]);
            let template = Template { pre, target };
            let range = (5 << 32) - 9_001..(5 << 32) + 9_000;
            let expected = Kernel::Portable.search_range(&template, range.clone());
            assert!(expected.is_some());
            // SAFETY: as above.
            let found = unsafe { search_range_as::<N>(encoding, &template, range) };
            assert_eq!(found, expected, "{encoding:?} x{N}");
        }
        for encoding in encodings() {
            check::<2>(encoding);
            check::<3>(encoding);
            check::<4>(encoding);
        }
    }
}
