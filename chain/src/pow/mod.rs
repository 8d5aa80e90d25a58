//! The proof-of-work puzzle.
//!
//! `pow_hash = SHA-256(pre || nonce_le64)` with `pre` the BLAKE3 of the
//! header encoded with nonce 0. The 40-byte message is exactly one SHA-256
//! block after padding, and its first eight message words (`pre`) are the
//! same for every nonce of a template: the SHA-NI kernel runs those eight
//! rounds once per template. A block is valid iff `pow_hash`, read as a
//! big-endian 256-bit integer, is `<= target`.
//!
//! - [`kernel`]: the hash kernels (portable, SHA-NI) behind one interface;
//! - [`search`]: the rayon-parallel nonce search with a stop flag and a
//!   pacing hook between chunks.

pub mod kernel;
pub mod search;

pub use kernel::{Kernel, KernelError};
pub use search::{SearchOptions, SearchOutcome, search, search_paced};

use sha2::{Digest, Sha256};

/// `SHA-256(pre || nonce_le64)`: the reference definition, via the `sha2`
/// crate's full digest. Validation uses this; the kernels must agree with it.
pub fn pow_hash(pre: &[u8; 32], nonce: u64) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(pre);
    hasher.update(nonce.to_le_bytes());
    hasher.finalize().into()
}

/// Whether `hash <= target`, both big-endian.
pub fn meets_target(hash: &[u8; 32], target: &[u8; 32]) -> bool {
    hash <= target
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_is_big_endian() {
        let mut target = [0u8; 32];
        target[0] = 1;
        let mut hash = [0xffu8; 32];
        hash[0] = 0;
        assert!(meets_target(&hash, &target));
        assert!(meets_target(&target, &target));
        hash[0] = 1;
        hash[31] = 1;
        assert!(!meets_target(&hash, &target));
    }

    #[test]
    fn pow_hash_is_sha256_of_the_40_byte_message() {
        let pre = [7u8; 32];
        let mut msg = pre.to_vec();
        msg.extend_from_slice(&5u64.to_le_bytes());
        assert_eq!(pow_hash(&pre, 5), <[u8; 32]>::from(Sha256::digest(&msg)));
    }
}
