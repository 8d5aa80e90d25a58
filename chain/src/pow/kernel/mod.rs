//! Hash kernels: the same puzzle hash, computed as fast as the CPU allows.
//!
//! Every kernel hashes a range of nonces of one template and returns the
//! first nonce whose hash meets the target. `portable` uses the `sha2`
//! crate's compression function on a hand-padded block and is the oracle;
//! `shani` uses the x86_64 SHA extensions with the first eight rounds
//! precomputed per template and two nonces interleaved. Tests compare every
//! kernel bit for bit with `portable`, and `portable` with the reference
//! [`pow_hash`](super::pow_hash).

mod portable;
#[cfg(target_arch = "x86_64")]
mod sha_ni;

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

/// The SHA-256 initial state (FIPS 180-4, 5.3.3).
pub(crate) const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// A hash kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// The `sha2` crate's compression function, one block per try.
    Portable,
    /// x86_64 SHA extensions, 8-round precompute, two nonces interleaved.
    ShaNi,
}

/// A kernel that cannot run here, or an unknown name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KernelError {
    /// This CPU lacks the instructions.
    #[error("kernel `{0}` is not supported by this CPU")]
    Unsupported(&'static str),
    /// Not a kernel name.
    #[error("unknown kernel `{0}` (expected auto, portable or shani)")]
    Unknown(String),
}

/// The template for one search: the 32-byte `pre` and the target.
#[derive(Clone, Copy, Debug)]
pub struct Template {
    /// BLAKE3 of the header with nonce 0.
    pub pre: [u8; 32],
    /// The target, big-endian.
    pub target: [u8; 32],
}

impl Kernel {
    /// Every kernel this CPU can run, fastest last.
    pub fn available() -> Vec<Kernel> {
        [Kernel::Portable, Kernel::ShaNi]
            .into_iter()
            .filter(|k| k.is_supported())
            .collect()
    }

    /// The fastest kernel this CPU can run.
    pub fn detect() -> Kernel {
        if Kernel::ShaNi.is_supported() {
            Kernel::ShaNi
        } else {
            Kernel::Portable
        }
    }

    /// Whether this CPU can run the kernel.
    pub fn is_supported(self) -> bool {
        match self {
            Kernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::ShaNi => {
                is_x86_feature_detected!("sha")
                    && is_x86_feature_detected!("sse4.1")
                    && is_x86_feature_detected!("ssse3")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::ShaNi => false,
        }
    }

    /// Checks the kernel can run here.
    ///
    /// # Errors
    ///
    /// [`KernelError::Unsupported`] if it cannot.
    pub fn ensure_supported(self) -> Result<Kernel, KernelError> {
        if self.is_supported() {
            Ok(self)
        } else {
            Err(KernelError::Unsupported(self.name()))
        }
    }

    /// The kernel's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Portable => "portable",
            Kernel::ShaNi => "shani",
        }
    }

    /// Hashes `nonces` of `template` in order; returns the first nonce that
    /// meets the target and its hash.
    pub fn search_range(self, template: &Template, nonces: Range<u64>) -> Option<(u64, [u8; 32])> {
        match self {
            Kernel::Portable => portable::search_range(template, nonces),
            #[cfg(target_arch = "x86_64")]
            Kernel::ShaNi if self.is_supported() => {
                // SAFETY: the CPU supports sha, sse4.1 and ssse3 (checked above).
                unsafe { sha_ni::search_range(template, nonces) }
            }
            Kernel::ShaNi => portable::search_range(template, nonces),
        }
    }

    /// The hash of one nonce (for tests and the oracle comparison).
    pub fn hash(self, pre: &[u8; 32], nonce: u64) -> [u8; 32] {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::ShaNi if self.is_supported() => {
                // SAFETY: the CPU supports sha, sse4.1 and ssse3 (checked above).
                unsafe { sha_ni::hash_one(pre, nonce) }
            }
            _ => portable::hash_one(pre, nonce),
        }
    }
}

impl FromStr for Kernel {
    type Err = KernelError;

    /// `auto` (the fastest supported), `portable` or `shani`; a forced kernel
    /// the CPU lacks is an error.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Kernel::detect()),
            "portable" => Ok(Kernel::Portable),
            "shani" | "sha-ni" => Kernel::ShaNi.ensure_supported(),
            other => Err(KernelError::Unknown(other.to_string())),
        }
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The padded 64-byte block for `pre` and `nonce`.
pub(crate) fn block(pre: &[u8; 32], nonce: u64) -> [u8; 64] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(pre);
    block[32..40].copy_from_slice(&nonce.to_le_bytes());
    block[40] = 0x80;
    block[56..].copy_from_slice(&320u64.to_be_bytes());
    block
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pow::pow_hash;

    #[test]
    fn portable_matches_published_sha256_vectors() {
        // FIPS 180-2 Appendix B.1/B.2 ("abc" and the 448-bit message), via
        // the same padded-compress path the portable kernel uses.
        let digest = |msg: &[u8]| {
            let mut state = IV;
            let mut data = msg.to_vec();
            data.push(0x80);
            while data.len() % 64 != 56 {
                data.push(0);
            }
            data.extend_from_slice(&((msg.len() as u64) * 8).to_be_bytes());
            for chunk in data.chunks(64) {
                sha2::block_api::compress256(&mut state, &[chunk.try_into().unwrap()]);
            }
            state.iter().map(|w| format!("{w:08x}")).collect::<String>()
        };
        assert_eq!(
            digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            digest(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    fn splitmix(seed: &mut u64) -> u64 {
        *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[test]
    fn every_kernel_equals_the_reference_bit_for_bit() {
        let mut seed = 42;
        let available = Kernel::available();
        if !available.contains(&Kernel::ShaNi) {
            eprintln!("SKIPPED: shani kernel not supported by this CPU; only portable compared");
        }
        for _ in 0..200 {
            let mut pre = [0u8; 32];
            for chunk in pre.chunks_mut(8) {
                chunk.copy_from_slice(&splitmix(&mut seed).to_le_bytes());
            }
            let edges = [
                0,
                1,
                u64::MAX,
                u64::MAX - 1,
                0xffff_ffff,
                0x1_0000_0000,
                splitmix(&mut seed),
            ];
            for nonce in edges {
                let expected = pow_hash(&pre, nonce);
                for kernel in &available {
                    assert_eq!(kernel.hash(&pre, nonce), expected, "{kernel} nonce {nonce:#x}");
                }
            }
        }
    }

    #[test]
    fn kernels_find_the_same_first_solution() {
        let pre = [3u8; 32];
        let mut target = [0xffu8; 32];
        target[0] = 0;
        target[1] = 0x0f; // about 1 in 4096
        let template = Template { pre, target };
        let start = u64::MAX - 50_000;
        let expected = (start..u64::MAX)
            .find(|n| pow_hash(&pre, *n) <= target)
            .map(|n| (n, pow_hash(&pre, n)));
        for kernel in Kernel::available() {
            // Odd range lengths exercise the interleaved kernel's tail.
            assert_eq!(
                kernel.search_range(&template, start..u64::MAX),
                expected,
                "{kernel}"
            );
            let first = expected.unwrap().0;
            assert_eq!(
                kernel.search_range(&template, start..first),
                None,
                "{kernel} before the solution"
            );
            assert_eq!(
                kernel.search_range(&template, first..first + 1),
                expected,
                "{kernel} exact edge"
            );
        }
    }

    #[test]
    fn parsing_and_unsupported_kernels() {
        assert_eq!("portable".parse::<Kernel>(), Ok(Kernel::Portable));
        assert_eq!("auto".parse::<Kernel>(), Ok(Kernel::detect()));
        assert!(matches!("fast".parse::<Kernel>(), Err(KernelError::Unknown(_))));
        match "shani".parse::<Kernel>() {
            Ok(k) => assert!(k.is_supported()),
            Err(e) => assert_eq!(e, KernelError::Unsupported("shani")),
        }
    }
}
