//! A committed state seen through change sets: the state after another
//! block of the fork tree, made from the state of one block (usually the
//! head) by undoing and replaying the change sets between them.

use std::collections::{BTreeMap, HashMap};

use super::overlay::{stakers_over, unbonding_due_over};
use super::{ChangeSet, CommittedState, StateError, StateRead, StateValue};
use crate::epoch::Staker;
use crate::hash::Hash;
use crate::keys::Address;
use crate::state_tree::{Node, StateKey};

/// The state of a block reached from `base` through change sets: undo
/// walks back towards a fork point (each entry takes its value from before
/// the block), apply walks forward along a branch (the value after, and the
/// block's new tree nodes). Nothing is copied: it holds the entries and
/// nodes the change sets name, and reads everything else from `base`.
///
/// The tree nodes of an undone block's parent must still be in the base's
/// store: a store keeps the stale nodes of every block in its reorg window
/// (docs/state.md).
pub struct Layered<'b> {
    base: &'b dyn CommittedState,
    values: BTreeMap<StateKey, Option<StateValue>>,
    nodes: HashMap<Hash, Node>,
    root: Hash,
}

impl<'b> Layered<'b> {
    /// `base` itself, with nothing layered yet.
    pub fn new(base: &'b dyn CommittedState) -> Layered<'b> {
        Layered {
            base,
            values: BTreeMap::new(),
            nodes: HashMap::new(),
            root: base.root(),
        }
    }

    /// Undoes the block whose change set is `set`: the state becomes its
    /// parent's.
    ///
    /// # Errors
    ///
    /// [`StateError::RootMismatch`] if the state is not that block's.
    pub fn undo(&mut self, set: &ChangeSet) -> Result<(), StateError> {
        self.expect_root(set.root())?;
        for change in set.changes() {
            self.values.insert(change.key, change.before.clone());
        }
        self.root = set.parent_root();
        Ok(())
    }

    /// Applies a child block's change set: the state becomes the child's.
    ///
    /// # Errors
    ///
    /// [`StateError::RootMismatch`] if the state is not the child's parent's.
    pub fn apply(&mut self, set: &ChangeSet) -> Result<(), StateError> {
        self.expect_root(set.parent_root())?;
        for change in set.changes() {
            self.values.insert(change.key, change.after.clone());
        }
        self.nodes.extend(set.nodes().new_nodes().iter().copied());
        self.root = set.root();
        Ok(())
    }

    fn expect_root(&self, expected: Hash) -> Result<(), StateError> {
        if self.root == expected {
            Ok(())
        } else {
            Err(StateError::RootMismatch {
                expected,
                found: self.root,
            })
        }
    }
}

impl StateRead for Layered<'_> {
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>, StateError> {
        match self.values.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.base.get(key),
        }
    }

    fn unbonding_due(&self, epoch: u64) -> Result<Vec<(u64, Address, u64)>, StateError> {
        unbonding_due_over(self.base, &self.values, epoch)
    }

    fn stakers(&self) -> Result<Vec<Staker>, StateError> {
        stakers_over(self.base, &self.values)
    }
}

impl CommittedState for Layered<'_> {
    fn root(&self) -> Hash {
        self.root
    }

    fn node(&self, hash: &Hash) -> Result<Option<Node>, StateError> {
        match self.nodes.get(hash) {
            Some(node) => Ok(Some(*node)),
            None => self.base.node(hash),
        }
    }
}
