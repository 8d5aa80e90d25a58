//! Hash kernels: the same puzzle hash, computed as fast as the CPU allows.
//!
//! Every kernel hashes a range of nonces of one template and returns the
//! first nonce whose hash meets the target. `portable` uses the `sha2`
//! crate's compression function on a hand-padded block and is the oracle.
//! The SIMD kernels run only the rounds and schedule words that depend on
//! the nonce (rounds 0–7 and most of the schedule up to W23 are computed
//! once, see [`schedule`]) on the CPU's SHA-256 instructions, with 2, 3 or
//! 4 nonces interleaved ([`Lanes`]): `shani` on x86_64, `armsha2` on
//! aarch64. Which lane count is fastest depends on the CPU, so the node and
//! `klero bench hashrate` time them at start and pick one (this crate has no
//! clock: [`Kernel::detect`] is only the static default). Tests compare
//! every kernel and every lane bit for bit with `portable`, and `portable`
//! with the reference [`pow_hash`](super::pow_hash) and published vectors.
//! [`probe`] measures the SHA unit's own limit for the benchmark.

#[cfg(target_arch = "aarch64")]
mod arm_sha2;
mod portable;
pub mod probe;
mod schedule;
#[cfg(target_arch = "x86_64")]
mod sha_ni;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod simd;

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

/// SHA-256 rounds a try costs in the SIMD kernels: 64 less the 8 computed
/// once per template.
pub const ROUNDS_PER_TRY: u32 = 56;

/// How many nonces a SIMD kernel hashes side by side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lanes {
    /// Two nonces.
    Two,
    /// Three nonces.
    Three,
    /// Four nonces.
    Four,
}

impl Lanes {
    /// Every lane count, fewest first.
    pub const ALL: [Lanes; 3] = [Lanes::Two, Lanes::Three, Lanes::Four];

    /// The number of nonces.
    pub fn count(self) -> usize {
        match self {
            Lanes::Two => 2,
            Lanes::Three => 3,
            Lanes::Four => 4,
        }
    }
}

/// Calls `$f::<N>(args)` for the lane count `$lanes`.
macro_rules! with_lanes {
    ($lanes:expr, $($f:ident)::+, $($arg:expr),*) => {
        match $lanes {
            Lanes::Two => $($f)::+::<2>($($arg),*),
            Lanes::Three => $($f)::+::<3>($($arg),*),
            Lanes::Four => $($f)::+::<4>($($arg),*),
        }
    };
}

/// A hash kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// The `sha2` crate's compression function, one block per try.
    Portable,
    /// x86_64 SHA extensions (`sha256rnds2`, `sha256msg1`, `sha256msg2`).
    ShaNi(Lanes),
    /// ARMv8 SHA-2 instructions (`sha256h`, `sha256h2`, `sha256su0`, `sha256su1`).
    ArmSha2(Lanes),
}

/// A kernel that cannot run here, or an unknown name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KernelError {
    /// This CPU lacks the instructions.
    #[error("kernel `{0}` is not supported by this CPU")]
    Unsupported(&'static str),
    /// Not a kernel name.
    #[error(
        "unknown kernel `{0}` (expected auto, portable, shani, shani-x2, shani-x3, shani-x4, \
         armsha2, armsha2-x2, armsha2-x3 or armsha2-x4)"
    )]
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

impl Template {
    /// The target's first word: a hash whose first word is above it misses,
    /// which decides almost every try without the rest of the digest.
    pub(crate) fn head(&self) -> u32 {
        u32::from_be_bytes([self.target[0], self.target[1], self.target[2], self.target[3]])
    }
}

impl Kernel {
    /// Every kernel this CPU can run: `portable`, then each lane count of
    /// the SIMD family, fewest lanes first.
    pub fn available() -> Vec<Kernel> {
        Kernel::all().filter(|k| k.is_supported()).collect()
    }

    /// The static default: the CPU's SIMD family with two lanes, which fit
    /// x86_64's registers and are within a few per cent of the best on the
    /// CPUs measured (docs/performance.md), else `portable`. Callers with a
    /// clock pick among [`Kernel::available`] by timing them.
    pub fn detect() -> Kernel {
        [Kernel::ShaNi(Lanes::Two), Kernel::ArmSha2(Lanes::Two)]
            .into_iter()
            .find(|k| k.is_supported())
            .unwrap_or(Kernel::Portable)
    }

    /// Whether this CPU can run the kernel.
    pub fn is_supported(self) -> bool {
        match self {
            Kernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::ShaNi(_) => {
                is_x86_feature_detected!("sha")
                    && is_x86_feature_detected!("sse4.1")
                    && is_x86_feature_detected!("ssse3")
            }
            #[cfg(target_arch = "aarch64")]
            Kernel::ArmSha2(_) => std::arch::is_aarch64_feature_detected!("sha2"),
            #[allow(unreachable_patterns)]
            _ => false,
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
            Kernel::ShaNi(Lanes::Two) => "shani-x2",
            Kernel::ShaNi(Lanes::Three) => "shani-x3",
            Kernel::ShaNi(Lanes::Four) => "shani-x4",
            Kernel::ArmSha2(Lanes::Two) => "armsha2-x2",
            Kernel::ArmSha2(Lanes::Three) => "armsha2-x3",
            Kernel::ArmSha2(Lanes::Four) => "armsha2-x4",
        }
    }

    /// Hashes `nonces` of `template` in order; returns the first nonce that
    /// meets the target and its hash.
    pub fn search_range(self, template: &Template, nonces: Range<u64>) -> Option<(u64, [u8; 32])> {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::ShaNi(lanes) if self.is_supported() => {
                // SAFETY: the CPU supports sha, sse4.1 and ssse3 (checked above).
                unsafe { with_lanes!(lanes, sha_ni::search_range, template, nonces) }
            }
            #[cfg(target_arch = "aarch64")]
            Kernel::ArmSha2(lanes) if self.is_supported() => {
                // SAFETY: the CPU supports the SHA-2 instructions (checked above).
                unsafe { with_lanes!(lanes, arm_sha2::search_range, template, nonces) }
            }
            _ => portable::search_range(template, nonces),
        }
    }

    /// The hash of one nonce (for tests and the oracle comparison).
    pub fn hash(self, pre: &[u8; 32], nonce: u64) -> [u8; 32] {
        self.lane_hashes(pre, nonce)[0].1
    }

    /// One group of lanes, `nonce` in the first and the next low halves in
    /// the others ([`lane_nonce`]), each with its hash; `portable` has one.
    pub(crate) fn lane_hashes(self, pre: &[u8; 32], nonce: u64) -> Vec<(u64, [u8; 32])> {
        let hashes = match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::ShaNi(lanes) if self.is_supported() => {
                // SAFETY: the CPU supports sha, sse4.1 and ssse3 (checked above).
                unsafe { with_lanes!(lanes, sha_ni::hash_lanes, pre, nonce) }
            }
            #[cfg(target_arch = "aarch64")]
            Kernel::ArmSha2(lanes) if self.is_supported() => {
                // SAFETY: the CPU supports the SHA-2 instructions (checked above).
                unsafe { with_lanes!(lanes, arm_sha2::hash_lanes, pre, nonce) }
            }
            _ => vec![portable::hash_one(pre, nonce)],
        };
        hashes
            .into_iter()
            .enumerate()
            .map(|(lane, hash)| (lane_nonce(nonce, lane), hash))
            .collect()
    }

    /// Every kernel, supported here or not.
    fn all() -> impl Iterator<Item = Kernel> {
        std::iter::once(Kernel::Portable)
            .chain(Lanes::ALL.map(Kernel::ShaNi))
            .chain(Lanes::ALL.map(Kernel::ArmSha2))
    }
}

/// The nonce of `lane` in a group that starts at `nonce`: the low half
/// advances (wrapping), the high half stays, as within a kernel's segment.
pub(crate) fn lane_nonce(nonce: u64, lane: usize) -> u64 {
    nonce & !0xffff_ffff | u64::from((nonce as u32).wrapping_add(lane as u32))
}

impl FromStr for Kernel {
    type Err = KernelError;

    /// `auto` (the static default, [`Kernel::detect`]), `portable`, a SIMD
    /// family with its default two lanes (`shani`, `armsha2`) or with a lane
    /// count (`shani-x3`); a forced kernel the CPU lacks is an error.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            return Ok(Kernel::detect());
        }
        let kernel = match s {
            "portable" => Kernel::Portable,
            "shani" | "sha-ni" => Kernel::ShaNi(Lanes::Two),
            "armsha2" => Kernel::ArmSha2(Lanes::Two),
            other => Kernel::all()
                .find(|k| k.name() == other)
                .ok_or_else(|| KernelError::Unknown(other.to_string()))?,
        };
        kernel.ensure_supported()
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

    /// Reports a SIMD family this CPU lacks as skipped, never as passed.
    fn simd_kernels() -> Vec<Kernel> {
        let simd: Vec<Kernel> = Kernel::available()
            .into_iter()
            .filter(|k| *k != Kernel::Portable)
            .collect();
        if simd.is_empty() {
            eprintln!("SKIPPED: no SHA-256 instructions on this CPU; only portable compared");
        }
        simd
    }

    #[test]
    fn every_kernel_and_lane_equals_the_reference_bit_for_bit() {
        let mut seed = 42;
        let kernels = Kernel::available();
        simd_kernels();
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
                0xffff_fffe,
                0x1_0000_0000,
                splitmix(&mut seed),
            ];
            for nonce in edges {
                for kernel in &kernels {
                    let lanes = kernel.lane_hashes(&pre, nonce);
                    let expected = match kernel {
                        Kernel::Portable => 1,
                        Kernel::ShaNi(l) | Kernel::ArmSha2(l) => l.count(),
                    };
                    assert_eq!(lanes.len(), expected, "{kernel}");
                    for (lane, (n, hash)) in lanes.into_iter().enumerate() {
                        assert_eq!(n, lane_nonce(nonce, lane));
                        assert_eq!(hash, pow_hash(&pre, n), "{kernel} lane {lane} nonce {n:#x}");
                    }
                }
            }
        }
    }

    /// The first nonce of `range` that meets `target`, by the reference hash.
    fn reference_search(pre: &[u8; 32], target: &[u8; 32], range: Range<u64>) -> Option<(u64, [u8; 32])> {
        range
            .map(|n| (n, pow_hash(pre, n)))
            .find(|(_, hash)| hash <= target)
    }

    #[test]
    fn kernels_find_the_same_first_solution() {
        let pre = [3u8; 32];
        let mut target = [0xffu8; 32];
        target[0] = 0;
        target[1] = 0x0f; // about 1 in 4096
        let template = Template { pre, target };
        // Odd lengths exercise the short last group; the second range crosses
        // a change of the nonce's high half (a new segment of constants).
        let ranges = [
            u64::MAX - 50_001..u64::MAX,
            (7 << 32) - 20_003..(7 << 32) + 20_000,
        ];
        simd_kernels();
        for range in ranges {
            let expected = reference_search(&pre, &target, range.clone());
            let first = expected.expect("about 10 solutions in range").0;
            let after = reference_search(&pre, &target, first + 1..range.end);
            for kernel in Kernel::available() {
                assert_eq!(
                    kernel.search_range(&template, range.clone()),
                    expected,
                    "{kernel}"
                );
                assert_eq!(
                    kernel.search_range(&template, range.start..first),
                    None,
                    "{kernel} before the solution"
                );
                for len in 1..=5 {
                    assert_eq!(
                        kernel.search_range(&template, first..first + len),
                        expected,
                        "{kernel} from the solution, {len} nonces"
                    );
                }
                assert_eq!(
                    kernel.search_range(&template, first + 1..range.end),
                    after,
                    "{kernel} the next solution"
                );
            }
        }
    }

    #[test]
    fn a_hash_equal_to_the_target_wins_and_one_above_loses() {
        // The first word passes the cheap filter in both cases; the full
        // comparison decides.
        let pre = [5u8; 32];
        for nonce in [0, 41, 0x1_0000_0003] {
            let hash = pow_hash(&pre, nonce);
            let mut below = hash;
            let last = below.iter().rposition(|&b| b != 0).expect("a non-zero hash");
            below[last] -= 1;
            for kernel in Kernel::available() {
                let exact = Template { pre, target: hash };
                assert_eq!(
                    kernel.search_range(&exact, nonce..nonce + 1),
                    Some((nonce, hash)),
                    "{kernel}"
                );
                let tight = Template { pre, target: below };
                assert_eq!(kernel.search_range(&tight, nonce..nonce + 1), None, "{kernel}");
            }
        }
    }

    #[test]
    fn parsing_and_unsupported_kernels() {
        assert_eq!("portable".parse::<Kernel>(), Ok(Kernel::Portable));
        assert_eq!("auto".parse::<Kernel>(), Ok(Kernel::detect()));
        assert!(matches!("fast".parse::<Kernel>(), Err(KernelError::Unknown(_))));
        assert!(matches!(
            "shani-x5".parse::<Kernel>(),
            Err(KernelError::Unknown(_))
        ));
        for kernel in Kernel::all() {
            match kernel.name().parse::<Kernel>() {
                Ok(k) => assert!(k == kernel && k.is_supported()),
                Err(e) => assert_eq!(e, KernelError::Unsupported(kernel.name())),
            }
        }
        for (family, kernel) in [
            ("shani", Kernel::ShaNi(Lanes::Two)),
            ("armsha2", Kernel::ArmSha2(Lanes::Two)),
        ] {
            match family.parse::<Kernel>() {
                Ok(k) => assert_eq!(k, kernel),
                Err(e) => assert_eq!(e, KernelError::Unsupported(kernel.name())),
            }
        }
    }
}
