//! What the state tree's keys and values are: the one home of every kind of
//! state entry, so two kinds can never land on the same key.
//!
//! ```text
//! tree key   = BLAKE3("klero/smt/key/v1" || codec(StateKey))
//! value hash = BLAKE3(codec(value))
//! ```
//!
//! The encoded [`StateKey`] starts with its `u32` variant index and its
//! fields have fixed widths, so the encoding of one kind is never a prefix
//! of another's: distinct keys hash distinct inputs.

use bincode::{Decode, Encode};

use super::TreeKey;
use crate::codec;
use crate::hash::Hash;
use crate::keys::Address;
use crate::vrf::VrfPublicKey;

const KEY_DOMAIN: &[u8] = b"klero/smt/key/v1";

/// One entry of the ledger state, by kind. The variant order is part of
/// the protocol: append new kinds, never reorder. Keys order by kind, then
/// by their fields in order (so the unbonding entries of an epoch are
/// adjacent, and earlier epochs come first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub enum StateKey {
    /// An account (value: the account).
    Account(Address),
    /// Stake being unbonded (value: the amount).
    Unbonding {
        /// The epoch in which it is released.
        release_epoch: u64,
        /// Whose stake it is.
        owner: Address,
    },
    /// An equivocation already punished (value: a marker).
    Slashed {
        /// Who equivocated.
        offender: Address,
        /// In which slot.
        slot: u64,
    },
    /// A registered VRF key (value: the account that registered it), which
    /// keeps every registered key unique.
    VrfKey(VrfPublicKey),
    /// Value destroyed by slashing (value: the total).
    Burned,
    /// Epoch bookkeeping: the current epoch and the draw's randomness
    /// (value: the [`EpochInfo`](crate::epoch::EpochInfo)).
    Epoch,
    /// The epoch of the block that applied an offender's latest slash
    /// (value: the epoch).
    SlashedIn(Address),
    /// The stakes drawn from in an epoch (value: the
    /// [`StakeSnapshot`](crate::epoch::StakeSnapshot)).
    Snapshot {
        /// The epoch whose draws use it.
        epoch: u64,
    },
}

impl StateKey {
    /// The entry's position in the tree.
    pub fn tree_key(&self) -> TreeKey {
        TreeKey(Hash::of_parts(&[KEY_DOMAIN, &codec::encode(self)]).0)
    }
}

/// What the tree stores for a value: BLAKE3 of its encoding.
pub fn value_hash<T: Encode>(value: &T) -> Hash {
    Hash::of(&codec::encode(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_and_field_gives_its_own_key() {
        let a = Address([1; 32]);
        let b = Address([2; 32]);
        let keys = [
            StateKey::Account(a),
            StateKey::Account(b),
            StateKey::Unbonding {
                release_epoch: 1,
                owner: a,
            },
            StateKey::Unbonding {
                release_epoch: 2,
                owner: a,
            },
            StateKey::Slashed { offender: a, slot: 1 },
            StateKey::VrfKey(VrfPublicKey([1; 32])),
            StateKey::Burned,
            StateKey::Epoch,
            StateKey::SlashedIn(a),
            StateKey::Snapshot { epoch: 1 },
            StateKey::Snapshot { epoch: 2 },
        ];
        let tree_keys: std::collections::BTreeSet<TreeKey> = keys.iter().map(StateKey::tree_key).collect();
        assert_eq!(tree_keys.len(), keys.len());
    }

    #[test]
    fn tree_key_is_the_tagged_hash_of_the_encoding() {
        let key = StateKey::Account(Address([7; 32]));
        let mut preimage = b"klero/smt/key/v1".to_vec();
        preimage.extend_from_slice(&0u32.to_le_bytes());
        preimage.extend_from_slice(&[7; 32]);
        assert_eq!(key.tree_key(), TreeKey(Hash::of(&preimage).0));
    }
}
