//! Unsigned 256-bit integers: PoW targets, chain work, and the wide
//! products of the PoS draw. Only the operations consensus needs, all exact.

use std::cmp::Ordering;

/// A 256-bit unsigned integer; limbs little-endian (`limbs[0]` lowest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct U256 {
    limbs: [u64; 4],
}

impl U256 {
    /// Zero.
    pub const ZERO: U256 = U256 { limbs: [0; 4] };
    /// One.
    pub const ONE: U256 = U256 { limbs: [1, 0, 0, 0] };
    /// 2^256 - 1.
    pub const MAX: U256 = U256 { limbs: [u64::MAX; 4] };

    /// From 32 big-endian bytes (the header's target encoding).
    pub fn from_be_bytes(bytes: [u8; 32]) -> U256 {
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate() {
            let start = 32 - 8 * (i + 1);
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[start..start + 8]);
            *limb = u64::from_be_bytes(word);
        }
        U256 { limbs }
    }

    /// To 32 big-endian bytes.
    pub fn to_be_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, limb) in self.limbs.iter().enumerate() {
            let start = 32 - 8 * (i + 1);
            out[start..start + 8].copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    /// From a `u128`.
    pub fn from_u128(v: u128) -> U256 {
        U256 {
            limbs: [v as u64, (v >> 64) as u64, 0, 0],
        }
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.limbs == [0; 4]
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(&self, other: &U256) -> Option<U256> {
        let mut limbs = [0u64; 4];
        let mut carry = false;
        for (i, limb) in limbs.iter_mut().enumerate() {
            let (s1, c1) = self.limbs[i].overflowing_add(other.limbs[i]);
            let (s2, c2) = s1.overflowing_add(u64::from(carry));
            *limb = s2;
            carry = c1 || c2;
        }
        (!carry).then_some(U256 { limbs })
    }

    /// `self + other`, clamped at [`U256::MAX`].
    pub fn saturating_add(&self, other: &U256) -> U256 {
        self.checked_add(other).unwrap_or(U256::MAX)
    }

    /// `self - other`, or `None` if `other > self`.
    pub fn checked_sub(&self, other: &U256) -> Option<U256> {
        let mut limbs = [0u64; 4];
        let mut borrow = false;
        for (i, limb) in limbs.iter_mut().enumerate() {
            let (d1, b1) = self.limbs[i].overflowing_sub(other.limbs[i]);
            let (d2, b2) = d1.overflowing_sub(u64::from(borrow));
            *limb = d2;
            borrow = b1 || b2;
        }
        (!borrow).then_some(U256 { limbs })
    }

    /// `self * m` as a 320-bit result: (low 256 bits, high 64 bits).
    pub fn widening_mul_u64(&self, m: u64) -> (U256, u64) {
        let mut limbs = [0u64; 4];
        let mut carry: u128 = 0;
        for (i, limb) in limbs.iter_mut().enumerate() {
            let p = u128::from(self.limbs[i]) * u128::from(m) + carry;
            *limb = p as u64;
            carry = p >> 64;
        }
        (U256 { limbs }, carry as u64)
    }

    /// `self * m`, or `None` on overflow.
    pub fn checked_mul_u64(&self, m: u64) -> Option<U256> {
        let (low, high) = self.widening_mul_u64(m);
        (high == 0).then_some(low)
    }

    /// The number of significant bits.
    pub fn bits(&self) -> u32 {
        for i in (0..4).rev() {
            if self.limbs[i] != 0 {
                return 64 * i as u32 + 64 - self.limbs[i].leading_zeros();
            }
        }
        0
    }

    /// `self << n` (bits shifted out are lost).
    pub fn shl(&self, n: u32) -> U256 {
        if n >= 256 {
            return U256::ZERO;
        }
        let (words, bits) = ((n / 64) as usize, n % 64);
        let mut limbs = [0u64; 4];
        for i in (words..4).rev() {
            let src = i - words;
            limbs[i] = self.limbs[src] << bits;
            if bits > 0 && src > 0 {
                limbs[i] |= self.limbs[src - 1] >> (64 - bits);
            }
        }
        U256 { limbs }
    }

    /// `self >> n`.
    pub fn shr(&self, n: u32) -> U256 {
        if n >= 256 {
            return U256::ZERO;
        }
        let (words, bits) = ((n / 64) as usize, n % 64);
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate().take(4 - words) {
            let src = i + words;
            *limb = self.limbs[src] >> bits;
            if bits > 0 && src + 1 < 4 {
                *limb |= self.limbs[src + 1] << (64 - bits);
            }
        }
        U256 { limbs }
    }

    fn bit(&self, i: u32) -> bool {
        (self.limbs[(i / 64) as usize] >> (i % 64)) & 1 == 1
    }

    /// `self / d` (long division), or `None` for `d = 0`.
    pub fn checked_div(&self, d: &U256) -> Option<U256> {
        if d.is_zero() {
            return None;
        }
        let mut quotient = U256::ZERO;
        let mut rem = U256::ZERO;
        for i in (0..self.bits()).rev() {
            rem = rem.shl(1);
            if self.bit(i) {
                rem.limbs[0] |= 1;
            }
            if rem >= *d {
                rem = rem.checked_sub(d)?;
                quotient.limbs[(i / 64) as usize] |= 1 << (i % 64);
            }
        }
        Some(quotient)
    }

    /// The expected number of tries to meet `target`:
    /// `floor(2^256 / (target + 1))`, computed as `(!target / (target + 1)) + 1`.
    pub fn work(target: &U256) -> U256 {
        match target.checked_add(&U256::ONE) {
            None => U256::ONE,
            Some(divisor) => {
                let not = U256 {
                    limbs: target.limbs.map(|l| !l),
                };
                not.checked_div(&divisor)
                    .unwrap_or(U256::ZERO)
                    .saturating_add(&U256::ONE)
            }
        }
    }
}

impl Ord for U256 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.limbs.iter().rev().cmp(other.limbs.iter().rev())
    }
}

impl PartialOrd for U256 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(v: u128) -> U256 {
        U256::from_u128(v)
    }

    #[test]
    fn byte_round_trip_and_order() {
        let mut bytes = [0u8; 32];
        bytes[0] = 0x80;
        bytes[31] = 1;
        let x = U256::from_be_bytes(bytes);
        assert_eq!(x.to_be_bytes(), bytes);
        assert!(x > u(u128::MAX));
        assert_eq!(x.bits(), 256);
    }

    #[test]
    fn arithmetic_matches_u128() {
        let (a, b) = (0x1234_5678_9abc_def0_1111u128, 0xfedc_ba98_7654u128);
        assert_eq!(u(a).checked_add(&u(b)), Some(u(a + b)));
        assert_eq!(u(a).checked_sub(&u(b)), Some(u(a - b)));
        assert_eq!(u(b).checked_sub(&u(a)), None);
        assert_eq!(u(a).checked_mul_u64(1000), Some(u(a * 1000)));
        assert_eq!(u(a).checked_div(&u(b)), Some(u(a / b)));
        assert_eq!(u(a).shl(7), u(a << 7));
        assert_eq!(u(a).shr(9), u(a >> 9));
        assert_eq!(U256::MAX.checked_add(&U256::ONE), None);
        assert_eq!(U256::MAX.shl(200).shr(200), U256::MAX.shr(200));
    }

    #[test]
    fn work_of_known_targets() {
        assert_eq!(U256::work(&U256::MAX), U256::ONE);
        // target = 2^255 - 1 → 2 tries; target = 2^224 - 1 → 2^32 tries.
        assert_eq!(
            U256::work(&U256::ONE.shl(255).checked_sub(&U256::ONE).unwrap()),
            u(2)
        );
        assert_eq!(
            U256::work(&U256::ONE.shl(224).checked_sub(&U256::ONE).unwrap()),
            u(1 << 32)
        );
        // 2^256 does not fit: saturates.
        assert_eq!(U256::work(&U256::ZERO), U256::MAX);
    }
}
