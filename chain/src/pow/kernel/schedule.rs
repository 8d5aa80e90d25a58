//! The part of the puzzle's SHA-256 message schedule that is the same for
//! many nonces, computed once so the SIMD kernels skip it per try.
//!
//! The block is `pre (W0..W7) | nonce (W8 = low half, W9 = high half, each
//! byte-swapped) | padding (W10 = 0x80000000, W11..W14 = 0, W15 = 320)`.
//! Expanding `W[t] = σ1(W[t-2]) + W[t-7] + σ0(W[t-15]) + W[t-16]`, the words
//! W16..W22 read only `pre`, W9 and the padding, never W8; W23 reads W8 once,
//! through `σ0(W8)`; from W24 on every word depends on W8. So within a run of
//! nonces that share the high 32 bits, W16..W22 are constants and
//! `W23 = fixed + σ0(W8)` (with `σ0(0) = 0`, the fixed part is W23 of low
//! half 0). The kernels hash a nonce range segment by segment, one segment
//! per high half.

/// SHA-256 round constants (FIPS 180-4, 4.2.2).
pub(crate) const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// W8: the nonce's low half as the block holds it.
pub(crate) fn w8(low: u32) -> u32 {
    low.swap_bytes()
}

/// W0..W23 for `pre` and a nonce with high half `high` and low half 0: every
/// word but W8 and W23 holds for any low half (see the module docs).
pub(crate) fn fixed_words(pre: &[u8; 32], high: u32) -> [u32; 24] {
    let mut w = [0u32; 24];
    for (word, bytes) in w.iter_mut().zip(pre.chunks_exact(4)) {
        *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    }
    w[9] = high.swap_bytes();
    w[10] = 0x8000_0000;
    w[15] = 320;
    for t in 16..24 {
        w[t] = sigma1(w[t - 2])
            .wrapping_add(w[t - 7])
            .wrapping_add(sigma0(w[t - 15]))
            .wrapping_add(w[t - 16]);
    }
    w
}

fn sigma0(x: u32) -> u32 {
    x.rotate_right(7) ^ x.rotate_right(18) ^ (x >> 3)
}

fn sigma1(x: u32) -> u32 {
    x.rotate_right(17) ^ x.rotate_right(19) ^ (x >> 10)
}

/// Splits `start..end` into runs of nonces that share the high 32 bits:
/// `(high, first low, last low)`, inclusive.
pub(crate) fn segments(start: u64, end: u64) -> impl Iterator<Item = (u32, u32, u32)> {
    let mut next = Some(start).filter(|&first| first < end);
    std::iter::from_fn(move || {
        let first = next?;
        let last = (end - 1).min(first | 0xffff_ffff);
        next = last.checked_add(1).filter(|&n| n < end);
        Some(((first >> 32) as u32, first as u32, last as u32))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pow::kernel::block;

    /// The whole schedule, straight from FIPS 180-4 6.2.2.
    fn full_schedule(block: &[u8; 64]) -> [u32; 64] {
        let mut w = [0u32; 64];
        for (t, bytes) in block.chunks_exact(4).enumerate() {
            w[t] = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        for t in 16..64 {
            w[t] = sigma1(w[t - 2])
                .wrapping_add(w[t - 7])
                .wrapping_add(sigma0(w[t - 15]))
                .wrapping_add(w[t - 16]);
        }
        w
    }

    #[test]
    fn fixed_words_hold_for_every_low_half() {
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..500 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let pre: [u8; 32] = std::array::from_fn(|i| (x >> (i % 8 * 8)) as u8 ^ i as u8);
            let nonce = x.rotate_left(17);
            let full = full_schedule(&block(&pre, nonce));
            let fixed = fixed_words(&pre, (nonce >> 32) as u32);
            assert_eq!(full[8], w8(nonce as u32));
            for t in (0..23).filter(|&t| t != 8) {
                assert_eq!(fixed[t], full[t], "W{t}");
            }
            assert_eq!(fixed[23].wrapping_add(sigma0(full[8])), full[23]);
        }
    }

    #[test]
    fn segments_split_at_high_half_boundaries() {
        let all = |s, e| segments(s, e).collect::<Vec<_>>();
        assert_eq!(all(5, 5), vec![]);
        assert_eq!(all(5, 9), vec![(0, 5, 8)]);
        assert_eq!(
            all(0xffff_fffe, 0x1_0000_0002),
            vec![(0, 0xffff_fffe, 0xffff_ffff), (1, 0, 1)]
        );
        assert_eq!(
            all(u64::MAX - 2, u64::MAX),
            vec![(u32::MAX, u32::MAX - 2, u32::MAX - 1)]
        );
        assert_eq!(all(0, 0x2_0000_0000).len(), 2);
    }
}
