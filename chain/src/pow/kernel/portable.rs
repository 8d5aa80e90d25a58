//! The portable kernel: one `sha2` compression of a hand-padded block per
//! try. It is the oracle the faster kernels are tested against.

use std::ops::Range;

use super::{IV, Template, block};

pub(super) fn search_range(template: &Template, nonces: Range<u64>) -> Option<(u64, [u8; 32])> {
    let mut block = block(&template.pre, 0);
    let head = template.head();
    for nonce in nonces {
        block[32..40].copy_from_slice(&nonce.to_le_bytes());
        let mut state = IV;
        sha2::block_api::compress256(&mut state, &[block]);
        // Cheap first-word filter; the full compare only on a near miss.
        if state[0] <= head {
            let mut hash = [0u8; 32];
            for (chunk, word) in hash.chunks_mut(4).zip(state) {
                chunk.copy_from_slice(&word.to_be_bytes());
            }
            if hash <= template.target {
                return Some((nonce, hash));
            }
        }
    }
    None
}

pub(super) fn hash_one(pre: &[u8; 32], nonce: u64) -> [u8; 32] {
    let mut state = IV;
    sha2::block_api::compress256(&mut state, &[block(pre, nonce)]);
    let mut hash = [0u8; 32];
    for (chunk, word) in hash.chunks_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    hash
}
