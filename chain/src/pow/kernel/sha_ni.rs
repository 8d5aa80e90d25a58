//! The SHA-NI kernel (x86_64 SHA extensions).
//!
//! The puzzle's block is `pre (W0..W7) | nonce (W8, W9) | padding (W10..W15)`.
//! Rounds 0–7 read only W0..W7, so the state after them is computed once
//! per template; each try runs rounds 8–63 and the schedule from W8 on. Two
//! nonces are hashed side by side so the SHA unit's latency is hidden (the
//! two dependency chains interleave). The state lives in the ABEF/CDGH
//! register layout the `sha256rnds2` instruction expects.
#![allow(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::*;
use std::ops::Range;

use super::{IV, Template};

/// SHA-256 round constants (FIPS 180-4, 4.2.2).
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// Interleaved nonces per call of the round loop.
const LANES: usize = 2;

/// Per-template constants.
struct Midstate {
    /// State after rounds 0–7 (ABEF, CDGH).
    abef: __m128i,
    cdgh: __m128i,
    /// W0..W3 and W4..W7.
    w0: __m128i,
    w1: __m128i,
    /// `sha256msg1(W0..3, W4..7)`, the constant part of W16..W19.
    msg1_01: __m128i,
    /// The IV in the ABEF/CDGH layout, added at the end.
    iv_abef: __m128i,
    iv_cdgh: __m128i,
    k: [__m128i; 16],
}

#[inline(always)]
unsafe fn four_rounds(abef: &mut __m128i, cdgh: &mut __m128i, msg_plus_k: __m128i) {
    *cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, msg_plus_k);
    *abef = _mm_sha256rnds2_epu32(*abef, *cdgh, _mm_shuffle_epi32(msg_plus_k, 0x0e));
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn midstate(pre: &[u8; 32]) -> Midstate {
    let w: Vec<i32> = pre
        .chunks(4)
        .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let w0 = _mm_set_epi32(w[3], w[2], w[1], w[0]);
    let w1 = _mm_set_epi32(w[7], w[6], w[5], w[4]);
    let iv = IV.map(|x| x as i32);
    let iv_abef = _mm_set_epi32(iv[0], iv[1], iv[4], iv[5]);
    let iv_cdgh = _mm_set_epi32(iv[2], iv[3], iv[6], iv[7]);
    let mut k = [_mm_setzero_si128(); 16];
    for (i, kv) in k.iter_mut().enumerate() {
        *kv = _mm_loadu_si128(K[4 * i..].as_ptr().cast());
    }
    let (mut abef, mut cdgh) = (iv_abef, iv_cdgh);
    four_rounds(&mut abef, &mut cdgh, _mm_add_epi32(w0, k[0]));
    four_rounds(&mut abef, &mut cdgh, _mm_add_epi32(w1, k[1]));
    Midstate {
        abef,
        cdgh,
        w0,
        w1,
        msg1_01: _mm_sha256msg1_epu32(w0, w1),
        iv_abef,
        iv_cdgh,
        k,
    }
}

/// Runs rounds 8–63 for `LANES` nonces; returns each lane's final (ABEF, CDGH).
#[inline(always)]
unsafe fn finish(mid: &Midstate, nonces: [u64; LANES]) -> [(__m128i, __m128i); LANES] {
    let mut abef = [mid.abef; LANES];
    let mut cdgh = [mid.cdgh; LANES];
    // Rolling window of the last four message vectors, per lane.
    let mut m: [[__m128i; 4]; LANES] = [[mid.w0, mid.w1, _mm_setzero_si128(), _mm_setzero_si128()]; LANES];
    for lane in 0..LANES {
        let n = nonces[lane];
        let w8 = (n as u32).swap_bytes() as i32;
        let w9 = ((n >> 32) as u32).swap_bytes() as i32;
        m[lane][2] = _mm_set_epi32(0, 0x8000_0000u32 as i32, w9, w8);
        m[lane][3] = _mm_set_epi32(320, 0, 0, 0);
    }
    for lane in 0..LANES {
        four_rounds(
            &mut abef[lane],
            &mut cdgh[lane],
            _mm_add_epi32(m[lane][2], mid.k[2]),
        );
    }
    for lane in 0..LANES {
        four_rounds(
            &mut abef[lane],
            &mut cdgh[lane],
            _mm_add_epi32(m[lane][3], mid.k[3]),
        );
    }
    for g in 4..16 {
        for lane in 0..LANES {
            let [a, b, c, d] = m[lane];
            let first = if g == 4 {
                mid.msg1_01
            } else {
                _mm_sha256msg1_epu32(a, b)
            };
            let next = _mm_sha256msg2_epu32(_mm_add_epi32(first, _mm_alignr_epi8(d, c, 4)), d);
            m[lane] = [b, c, d, next];
            four_rounds(&mut abef[lane], &mut cdgh[lane], _mm_add_epi32(next, mid.k[g]));
        }
    }
    let mut out = [(mid.iv_abef, mid.iv_cdgh); LANES];
    for lane in 0..LANES {
        out[lane] = (
            _mm_add_epi32(abef[lane], mid.iv_abef),
            _mm_add_epi32(cdgh[lane], mid.iv_cdgh),
        );
    }
    out
}

#[inline(always)]
unsafe fn digest(abef: __m128i, cdgh: __m128i) -> [u8; 32] {
    let (mut x, mut y) = ([0u32; 4], [0u32; 4]);
    _mm_storeu_si128(x.as_mut_ptr().cast(), abef);
    _mm_storeu_si128(y.as_mut_ptr().cast(), cdgh);
    // Lanes low to high: ABEF = [F, E, B, A], CDGH = [H, G, D, C].
    let words = [x[3], x[2], y[3], y[2], x[1], x[0], y[1], y[0]];
    let mut hash = [0u8; 32];
    for (chunk, word) in hash.chunks_mut(4).zip(words) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    hash
}

/// # Safety
///
/// The CPU must support `sha`, `sse4.1` and `ssse3`.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(super) unsafe fn search_range(template: &Template, nonces: Range<u64>) -> Option<(u64, [u8; 32])> {
    let mid = midstate(&template.pre);
    let target_head = u32::from_be_bytes([
        template.target[0],
        template.target[1],
        template.target[2],
        template.target[3],
    ]);
    let mut nonce = nonces.start;
    while nonce < nonces.end {
        // The last group may be short: extra lanes repeat the last nonce and
        // are never reported.
        let last = nonces.end - 1;
        let group = [nonce, nonce.saturating_add(1).min(last)];
        let states = finish(&mid, group);
        for (lane, (abef, cdgh)) in states.into_iter().enumerate() {
            let a = _mm_extract_epi32(abef, 3) as u32;
            if a <= target_head && (lane == 0 || group[1] != group[0]) {
                let hash = digest(abef, cdgh);
                if hash <= template.target {
                    return Some((group[lane], hash));
                }
            }
        }
        match nonce.checked_add(LANES as u64) {
            Some(n) => nonce = n,
            None => break,
        }
    }
    None
}

/// # Safety
///
/// The CPU must support `sha`, `sse4.1` and `ssse3`.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(super) unsafe fn hash_one(pre: &[u8; 32], nonce: u64) -> [u8; 32] {
    let [(abef, cdgh), _] = finish(&midstate(pre), [nonce, nonce]);
    digest(abef, cdgh)
}
