//! A whole state in memory: genesis, the consensus tests, the election lab,
//! the wallet's pre-send check and the benchmarks' chain builders.

use std::collections::BTreeMap;

use super::{ChangeSet, CommittedState, StateError, StateOverlay, StateRead, StateValue};
use crate::epoch::Staker;
use crate::hash::Hash;
use crate::keys::Address;
use crate::state_tree::{self, EMPTY, MemNodes, Node, NodeReader, StateKey};

/// Every entry of a state and the one state tree over them. Applying a
/// block's change set replaces the tree by the block's (the stale nodes go
/// at once): a `MemState` is one state, not a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemState {
    entries: BTreeMap<StateKey, StateValue>,
    nodes: MemNodes,
    root: Hash,
}

impl Default for MemState {
    fn default() -> MemState {
        MemState {
            entries: BTreeMap::new(),
            nodes: MemNodes::default(),
            root: EMPTY,
        }
    }
}

impl MemState {
    /// The state holding exactly `entries` (a later duplicate key wins),
    /// with its tree built from scratch.
    ///
    /// # Panics
    ///
    /// Never: a tree built from the empty root reads no node, and the keys
    /// of a map are distinct, so the update has nothing to fail on.
    pub fn new(entries: impl IntoIterator<Item = (StateKey, StateValue)>) -> MemState {
        let entries: BTreeMap<StateKey, StateValue> = entries.into_iter().collect();
        let changes: Vec<_> = entries
            .iter()
            .map(|(k, v)| (k.tree_key(), Some(v.hash())))
            .collect();
        let mut nodes = MemNodes::default();
        #[allow(clippy::expect_used)] // see `# Panics`
        let (root, batch) =
            state_tree::update(EMPTY, &changes, &nodes).expect("building from empty cannot fail");
        nodes.apply(&batch);
        MemState { entries, nodes, root }
    }

    /// Applies a block's change set.
    ///
    /// # Errors
    ///
    /// [`StateError::RootMismatch`] if it does not start from this state.
    pub fn apply(&mut self, set: &ChangeSet) -> Result<(), StateError> {
        if set.parent_root() != self.root {
            return Err(StateError::RootMismatch {
                expected: set.parent_root(),
                found: self.root,
            });
        }
        for change in set.changes() {
            match &change.after {
                Some(value) => self.entries.insert(change.key, value.clone()),
                None => self.entries.remove(&change.key),
            };
        }
        self.nodes.apply(set.nodes());
        self.nodes.prune(set.nodes());
        self.root = set.root();
        Ok(())
    }

    /// The change set that makes this state from the empty one: how a
    /// store applies genesis, like any block.
    ///
    /// # Errors
    ///
    /// None in practice: the base is the empty state in memory.
    pub fn creation(&self) -> Result<ChangeSet, StateError> {
        let empty = MemState::default();
        let mut overlay = StateOverlay::new(&empty);
        for (key, value) in &self.entries {
            overlay.set(*key, Some(value.clone()));
        }
        overlay.finish()
    }

    /// Every entry, by key.
    pub fn entries(&self) -> impl Iterator<Item = (&StateKey, &StateValue)> {
        self.entries.iter()
    }
}

impl StateRead for MemState {
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>, StateError> {
        Ok(self.entries.get(key).cloned())
    }

    fn unbonding_due(&self, epoch: u64) -> Result<Vec<(u64, Address, u64)>, StateError> {
        let range = super::unbonding_keys(epoch);
        self.entries
            .range(range)
            .map(|(key, value)| match (key, value) {
                (StateKey::Unbonding { release_epoch, owner }, StateValue::Unbonding(amount)) => {
                    Ok((*release_epoch, *owner, *amount))
                }
                _ => Err(StateError::WrongKind(*key)),
            })
            .collect()
    }

    fn stakers(&self) -> Result<Vec<Staker>, StateError> {
        let range = super::account_keys();
        Ok(self
            .entries
            .range(range)
            .filter_map(|(key, value)| match (key, value) {
                (StateKey::Account(address), StateValue::Account(account)) => Staker::of(*address, account),
                _ => None,
            })
            .collect())
    }
}

impl CommittedState for MemState {
    fn root(&self) -> Hash {
        self.root
    }

    fn node(&self, hash: &Hash) -> Result<Option<Node>, StateError> {
        let Ok(node) = self.nodes.get(hash);
        Ok(node)
    }
}
