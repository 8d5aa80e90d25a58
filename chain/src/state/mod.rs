//! The ledger state behind one interface, so it can live anywhere: in
//! memory ([`MemState`]), in the node's redb tables, or as a branch over
//! either ([`Layered`]).
//!
//! A state is a set of entries, one per [`StateKey`], each holding the
//! [`StateValue`] of its kind, plus the sparse Merkle tree over them whose
//! root a header commits to (`state_tree`, docs/state.md):
//!
//! - [`StateRead`] reads entries: a point lookup, the unbonding queue up to
//!   an epoch, the stakers index. Its typed accessors are the only way the
//!   ledger reads.
//! - [`CommittedState`] adds the tree: the state's root and its nodes.
//! - [`StateOverlay`] records a block's writes over a committed state
//!   without touching it; [`StateOverlay::finish`] turns them into the new
//!   root and a [`ChangeSet`]: every changed entry before and after, and
//!   the tree's node changes. A change set is what a store needs to apply a
//!   block, undo it, or show a branch ([`Layered`]) without a copy of the
//!   state.
//!
//! Reads can fail (a store is behind them): [`StateError`] is never the
//! fault of a block or a transaction.

mod change;
mod layered;
mod mem;
mod overlay;
mod value;

pub use change::{Change, ChangeSet, MAX_CHANGE_SET_BYTES};
pub use layered::Layered;
pub use mem::MemState;
pub use overlay::{StateOverlay, Writes};
pub use value::{MAX_VALUE_BYTES, StateValue};

use std::sync::Arc;

use crate::epoch::{EpochInfo, StakeSnapshot, Staker};
use crate::hash::Hash;
use crate::keys::Address;
use crate::ledger::Account;
use crate::state_tree::{Node, NodeReader, StateKey, TreeError};
use crate::vrf::VrfPublicKey;

/// Why a state could not be read. Never a block's or a transaction's fault:
/// the store behind the state failed, or is damaged.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The store failed; its own error.
    #[error("state store: {0}")]
    Store(Arc<dyn std::error::Error + Send + Sync>),
    /// The state tree is missing a node or holds a malformed one.
    #[error("state tree: {0}")]
    Tree(Box<TreeError<StateError>>),
    /// An entry every state has (the epoch data, the current snapshot) is absent.
    #[error("state entry {0:?} is missing")]
    Missing(StateKey),
    /// An entry holds a value of another kind than its key's.
    #[error("state entry {0:?} holds a value of another kind")]
    WrongKind(StateKey),
    /// A change set was applied to, or undone from, a state it does not
    /// start from (the store's records disagree).
    #[error("change set expects state root {expected}, the state has {found}")]
    RootMismatch {
        /// The root the change set starts from.
        expected: Hash,
        /// The state's root.
        found: Hash,
    },
}

impl StateError {
    /// A store's own error.
    pub fn store(error: impl std::error::Error + Send + Sync + 'static) -> StateError {
        StateError::Store(Arc::new(error))
    }

    /// A tree error, with the reader's own errors passed through as they are.
    pub fn tree(error: TreeError<StateError>) -> StateError {
        match error {
            TreeError::Store(error) => error,
            other => StateError::Tree(Box::new(other)),
        }
    }
}

/// Errors compare by kind and content; two store errors are equal only if
/// they are the same error.
impl PartialEq for StateError {
    fn eq(&self, other: &StateError) -> bool {
        match (self, other) {
            (StateError::Store(a), StateError::Store(b)) => Arc::ptr_eq(a, b),
            (StateError::Tree(a), StateError::Tree(b)) => a == b,
            (StateError::Missing(a), StateError::Missing(b))
            | (StateError::WrongKind(a), StateError::WrongKind(b)) => a == b,
            (
                StateError::RootMismatch { expected, found },
                StateError::RootMismatch {
                    expected: e,
                    found: f,
                },
            ) => expected == e && found == f,
            _ => false,
        }
    }
}

impl Eq for StateError {}

/// Reads the entries of a state. Implementors supply three queries; the
/// typed accessors are built on [`StateRead::get`].
pub trait StateRead: Sync {
    /// The value of `key`, if the state has the entry.
    ///
    /// # Errors
    ///
    /// [`StateError`] if the store behind the state fails.
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>, StateError>;

    /// The unbonding entries released at or before `epoch`, in key order
    /// (release epoch, then owner): `(release epoch, owner, amount)`.
    ///
    /// # Errors
    ///
    /// [`StateError`] if the store fails.
    fn unbonding_due(&self, epoch: u64) -> Result<Vec<(u64, Address, u64)>, StateError>;

    /// Every account with bonded stake and a VRF key, sorted by address:
    /// the stakes a snapshot takes. A store keeps an index of them, so
    /// taking a snapshot does not read every account.
    ///
    /// # Errors
    ///
    /// [`StateError`] if the store fails.
    fn stakers(&self) -> Result<Vec<Staker>, StateError>;

    /// An account.
    ///
    /// # Errors
    ///
    /// [`StateError`] if the store fails.
    fn account(&self, address: &Address) -> Result<Option<Account>, StateError> {
        let key = StateKey::Account(*address);
        match self.get(&key)? {
            None => Ok(None),
            Some(StateValue::Account(account)) => Ok(Some(account)),
            Some(_) => Err(StateError::WrongKind(key)),
        }
    }

    /// The account a VRF key is registered to.
    ///
    /// # Errors
    ///
    /// [`StateError`] if the store fails.
    fn vrf_owner(&self, vrf_key: &VrfPublicKey) -> Result<Option<Address>, StateError> {
        let key = StateKey::VrfKey(*vrf_key);
        match self.get(&key)? {
            None => Ok(None),
            Some(StateValue::VrfKey(owner)) => Ok(Some(owner)),
            Some(_) => Err(StateError::WrongKind(key)),
        }
    }

    /// The amount `owner` has unbonding until `release_epoch`.
    ///
    /// # Errors
    ///
    /// [`StateError`] if the store fails.
    fn unbonding(&self, release_epoch: u64, owner: &Address) -> Result<Option<u64>, StateError> {
        let key = StateKey::Unbonding {
            release_epoch,
            owner: *owner,
        };
        match self.get(&key)? {
            None => Ok(None),
            Some(StateValue::Unbonding(amount)) => Ok(Some(amount)),
            Some(_) => Err(StateError::WrongKind(key)),
        }
    }

    /// Whether the equivocation of `offender` in `slot` was slashed.
    ///
    /// # Errors
    ///
    /// [`StateError`] if the store fails.
    fn is_slashed(&self, offender: &Address, slot: u64) -> Result<bool, StateError> {
        let key = StateKey::Slashed {
            offender: *offender,
            slot,
        };
        match self.get(&key)? {
            None => Ok(false),
            Some(StateValue::Slashed) => Ok(true),
            Some(_) => Err(StateError::WrongKind(key)),
        }
    }

    /// The epoch of the block that applied `offender`'s latest slash.
    ///
    /// # Errors
    ///
    /// [`StateError`] if the store fails.
    fn slashed_in(&self, offender: &Address) -> Result<Option<u64>, StateError> {
        let key = StateKey::SlashedIn(*offender);
        match self.get(&key)? {
            None => Ok(None),
            Some(StateValue::SlashedIn(epoch)) => Ok(Some(epoch)),
            Some(_) => Err(StateError::WrongKind(key)),
        }
    }

    /// Value destroyed by slashing (0 before the first slash).
    ///
    /// # Errors
    ///
    /// [`StateError`] if the store fails.
    fn burned(&self) -> Result<u64, StateError> {
        match self.get(&StateKey::Burned)? {
            None => Ok(0),
            Some(StateValue::Burned(amount)) => Ok(amount),
            Some(_) => Err(StateError::WrongKind(StateKey::Burned)),
        }
    }

    /// The current epoch and its randomness. Every state has them.
    ///
    /// # Errors
    ///
    /// [`StateError::Missing`] if the entry is absent, or the store fails.
    fn epoch_info(&self) -> Result<EpochInfo, StateError> {
        match self.get(&StateKey::Epoch)? {
            None => Err(StateError::Missing(StateKey::Epoch)),
            Some(StateValue::Epoch(info)) => Ok(info),
            Some(_) => Err(StateError::WrongKind(StateKey::Epoch)),
        }
    }

    /// The stakes drawn from in `epoch`, if the state holds them (the
    /// current epoch's and the next's).
    ///
    /// # Errors
    ///
    /// [`StateError`] if the store fails.
    fn snapshot(&self, epoch: u64) -> Result<Option<Arc<StakeSnapshot>>, StateError> {
        let key = StateKey::Snapshot { epoch };
        match self.get(&key)? {
            None => Ok(None),
            Some(StateValue::Snapshot(snapshot)) => Ok(Some(snapshot)),
            Some(_) => Err(StateError::WrongKind(key)),
        }
    }

    /// The unbonding entries of `owner` in a state after a block of
    /// `epoch`: `(release epoch, amount)`. A block releases everything due
    /// by its epoch first and an unstake queues at most `unbonding_epochs`
    /// ahead, so these are the only epochs an entry can have.
    ///
    /// # Errors
    ///
    /// [`StateError`] if the store fails.
    fn unbonding_of(
        &self,
        owner: &Address,
        epoch: u64,
        unbonding_epochs: u64,
    ) -> Result<Vec<(u64, u64)>, StateError> {
        let mut out = Vec::new();
        for release in epoch.saturating_add(1)..=epoch.saturating_add(unbonding_epochs) {
            if let Some(amount) = self.unbonding(release, owner)? {
                out.push((release, amount));
            }
        }
        Ok(out)
    }
}

/// A state committed to by a root: the entries and the tree over them.
/// What a block is validated against, and what a wallet's proof is read
/// from.
pub trait CommittedState: StateRead {
    /// The state root (the root of the state tree).
    fn root(&self) -> Hash;

    /// A node of the state tree.
    ///
    /// # Errors
    ///
    /// [`StateError`] if the store fails.
    fn node(&self, hash: &Hash) -> Result<Option<Node>, StateError>;
}

/// Every unbonding key released at or before `epoch`, in key order.
pub(crate) fn unbonding_keys(epoch: u64) -> std::ops::RangeInclusive<StateKey> {
    StateKey::Unbonding {
        release_epoch: 0,
        owner: Address([0; 32]),
    }..=StateKey::Unbonding {
        release_epoch: epoch,
        owner: Address([0xff; 32]),
    }
}

/// Every account key, in key order.
pub(crate) fn account_keys() -> std::ops::RangeInclusive<StateKey> {
    StateKey::Account(Address([0; 32]))..=StateKey::Account(Address([0xff; 32]))
}

/// A committed state's tree nodes as a [`NodeReader`], for
/// `state_tree::update` and `state_tree::prove`.
#[derive(Clone, Copy)]
pub struct TreeNodes<'a>(pub &'a dyn CommittedState);

impl NodeReader for TreeNodes<'_> {
    type Error = StateError;

    fn get(&self, hash: &Hash) -> Result<Option<Node>, StateError> {
        self.0.node(hash)
    }
}

/// A proof of `key`'s entry under `state`'s root.
///
/// # Errors
///
/// [`StateError`] if the store fails or the tree is damaged.
pub fn prove(state: &dyn CommittedState, key: &StateKey) -> Result<crate::state_tree::Proof, StateError> {
    crate::state_tree::prove(state.root(), &key.tree_key(), &TreeNodes(state)).map_err(StateError::tree)
}
