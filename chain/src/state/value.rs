//! What a state entry holds: one variant per kind of [`StateKey`].
//!
//! The tree commits to `BLAKE3(codec(inner value))` ([`StateValue::hash`]),
//! the same bytes a store keeps ([`StateValue::encode`]), so a proof of an
//! entry and the entry a node serves are checked against each other byte
//! for byte.

use std::sync::Arc;

use bincode::{Decode, Encode};

use crate::codec::{self, CodecError};
use crate::epoch::{EpochInfo, StakeSnapshot};
use crate::hash::Hash;
use crate::keys::Address;
use crate::ledger::Account;
use crate::state_tree::StateKey;

/// Largest encoded entry a store decodes: a snapshot of about 900,000
/// stakers. Accounts and the other kinds are far below it.
pub const MAX_VALUE_BYTES: usize = 64 << 20;

/// The value of one state entry.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum StateValue {
    /// An account.
    Account(Account),
    /// An unbonding amount.
    Unbonding(u64),
    /// A slashed equivocation (no content: its key says it all).
    Slashed,
    /// The account a VRF key is registered to.
    VrfKey(Address),
    /// The total burned.
    Burned(u64),
    /// The epoch and its randomness.
    Epoch(EpochInfo),
    /// The epoch of an offender's latest slash.
    SlashedIn(u64),
    /// The stakes of an epoch's draw.
    Snapshot(Arc<StakeSnapshot>),
}

impl StateValue {
    /// The value's encoding, without the variant: what a store keeps and
    /// the tree hashes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            StateValue::Account(account) => codec::encode(account),
            StateValue::Unbonding(n) | StateValue::Burned(n) | StateValue::SlashedIn(n) => codec::encode(n),
            StateValue::Slashed => Vec::new(),
            StateValue::VrfKey(owner) => codec::encode(owner),
            StateValue::Epoch(info) => codec::encode(info),
            StateValue::Snapshot(snapshot) => codec::encode(snapshot.as_ref()),
        }
    }

    /// What the tree stores for the value: BLAKE3 of [`StateValue::encode`].
    pub fn hash(&self) -> Hash {
        Hash::of(&self.encode())
    }

    /// Decodes the value of `key` from [`StateValue::encode`]'s bytes.
    ///
    /// # Errors
    ///
    /// [`CodecError`] if the bytes are not one value of the key's kind.
    pub fn decode(key: &StateKey, bytes: &[u8]) -> Result<StateValue, CodecError> {
        fn de<T: bincode::Decode<()>>(bytes: &[u8]) -> Result<T, CodecError> {
            codec::decode::<T, MAX_VALUE_BYTES>(bytes, "state entry")
        }
        Ok(match key {
            StateKey::Account(_) => StateValue::Account(de(bytes)?),
            StateKey::Unbonding { .. } => StateValue::Unbonding(de(bytes)?),
            StateKey::Slashed { .. } => {
                de::<()>(bytes)?;
                StateValue::Slashed
            }
            StateKey::VrfKey(_) => StateValue::VrfKey(de(bytes)?),
            StateKey::Burned => StateValue::Burned(de(bytes)?),
            StateKey::Epoch => StateValue::Epoch(de(bytes)?),
            StateKey::SlashedIn(_) => StateValue::SlashedIn(de(bytes)?),
            StateKey::Snapshot { .. } => StateValue::Snapshot(Arc::new(de(bytes)?)),
        })
    }

    /// Whether this value is of `key`'s kind.
    pub fn fits(&self, key: &StateKey) -> bool {
        matches!(
            (key, self),
            (StateKey::Account(_), StateValue::Account(_))
                | (StateKey::Unbonding { .. }, StateValue::Unbonding(_))
                | (StateKey::Slashed { .. }, StateValue::Slashed)
                | (StateKey::VrfKey(_), StateValue::VrfKey(_))
                | (StateKey::Burned, StateValue::Burned(_))
                | (StateKey::Epoch, StateValue::Epoch(_))
                | (StateKey::SlashedIn(_), StateValue::SlashedIn(_))
                | (StateKey::Snapshot { .. }, StateValue::Snapshot(_))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epoch::Staker;
    use crate::vrf::VrfPublicKey;

    #[test]
    fn values_round_trip_through_their_key_and_hash_their_encoding() {
        let a = Address([3; 32]);
        let snapshot = StakeSnapshot::of(vec![Staker {
            address: a,
            vrf_key: VrfPublicKey([4; 32]),
            stake: 9,
        }]);
        let cases = [
            (StateKey::Account(a), StateValue::Account(Account::default())),
            (
                StateKey::Unbonding {
                    release_epoch: 2,
                    owner: a,
                },
                StateValue::Unbonding(7),
            ),
            (StateKey::Slashed { offender: a, slot: 1 }, StateValue::Slashed),
            (StateKey::VrfKey(VrfPublicKey([1; 32])), StateValue::VrfKey(a)),
            (StateKey::Burned, StateValue::Burned(5)),
            (StateKey::Epoch, StateValue::Epoch(EpochInfo::default())),
            (StateKey::SlashedIn(a), StateValue::SlashedIn(4)),
            (
                StateKey::Snapshot { epoch: 3 },
                StateValue::Snapshot(Arc::new(snapshot)),
            ),
        ];
        for (key, value) in &cases {
            assert!(value.fits(key));
            let bytes = value.encode();
            assert_eq!(StateValue::decode(key, &bytes).as_ref(), Ok(value));
            assert_eq!(value.hash(), Hash::of(&bytes));
        }
        assert_eq!(
            cases[0].1.hash(),
            crate::state_tree::value_hash(&Account::default()),
            "the tree's value hash of the inner value"
        );
        assert!(!cases[1].1.fits(&cases[0].0));
        assert!(StateValue::decode(&StateKey::Slashed { offender: a, slot: 1 }, &[0]).is_err());
    }
}
