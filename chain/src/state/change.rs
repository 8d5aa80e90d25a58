//! A block's change set: what it did to the state, enough to apply it to
//! a store, undo it, or replay it on a branch.
//!
//! # Format
//!
//! Encoded with [`crate::codec`] (a store's format, not the wire's):
//!
//! ```text
//! parent_root [32] | root [32]
//! | u64 n, then n × (StateKey | Option<StateValue> before | Option<StateValue> after)
//! | NodeBatch: u64 n × (hash [32] | Node) new | u64 m × hash [32] stale
//! ```

use bincode::{Decode, Encode};

use super::StateValue;
use crate::codec::{self, CodecError};
use crate::hash::Hash;
use crate::state_tree::{NodeBatch, StateKey};

/// Largest encoded change set a store decodes: a full block (4,096
/// transactions) touches some 8,200 entries and 200,000 tree nodes, far
/// below this, plus two snapshots at an epoch boundary.
pub const MAX_CHANGE_SET_BYTES: usize = 256 << 20;

/// One entry a block changed.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Change {
    /// The entry.
    pub key: StateKey,
    /// Its value before the block (`None`: absent).
    pub before: Option<StateValue>,
    /// Its value after the block (`None`: deleted).
    pub after: Option<StateValue>,
}

/// Everything one block changed: entries (sorted by key, each once, never
/// with `before == after`) and the tree's nodes.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ChangeSet {
    parent_root: Hash,
    root: Hash,
    changes: Vec<Change>,
    nodes: NodeBatch,
}

impl ChangeSet {
    pub(crate) fn new(parent_root: Hash, root: Hash, changes: Vec<Change>, nodes: NodeBatch) -> ChangeSet {
        ChangeSet {
            parent_root,
            root,
            changes,
            nodes,
        }
    }

    /// The state root before the block.
    pub fn parent_root(&self) -> Hash {
        self.parent_root
    }

    /// The state root after it.
    pub fn root(&self) -> Hash {
        self.root
    }

    /// The changed entries, by key.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// The tree nodes the block added and made stale.
    pub fn nodes(&self) -> &NodeBatch {
        &self.nodes
    }

    /// The store encoding.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes [`ChangeSet::encode`]'s bytes.
    ///
    /// # Errors
    ///
    /// [`CodecError`] if they are not one change set, or a value does not
    /// fit its key.
    pub fn decode(bytes: &[u8]) -> Result<ChangeSet, CodecError> {
        let set: ChangeSet = codec::decode::<_, MAX_CHANGE_SET_BYTES>(bytes, "change set")?;
        let fits = |c: &Change| {
            [&c.before, &c.after]
                .into_iter()
                .flatten()
                .all(|v| v.fits(&c.key))
        };
        if !set.changes.iter().all(fits) {
            return Err(CodecError::Malformed {
                kind: "change set",
                reason: "a value does not fit its key".to_owned(),
            });
        }
        Ok(set)
    }
}
