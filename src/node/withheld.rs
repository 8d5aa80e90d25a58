//! The node's side of a testnet strategy (`crate::testnet::strategy`): the
//! blocks it keeps private and the import events it reacts to.
//!
//! An honest node never has a withheld block, so none of this changes what
//! it does: blocks imported with [`Origin::Withheld`](super::chain_task::Origin)
//! are stored and become the head like the node's own, but are not
//! gossiped, and the sync server does not serve them or count them in the
//! height it reports, until [`Withheld::remove`] releases them.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use klero_chain::{Address, Hash};

use super::block_tree::ImportOutcome;
use super::chain_task::Origin;
use super::store::Store;

/// Ids of the stored blocks that are not published yet.
#[derive(Clone, Debug, Default)]
pub(crate) struct Withheld(Arc<Mutex<HashSet<Hash>>>);

impl Withheld {
    fn set(&self) -> std::sync::MutexGuard<'_, HashSet<Hash>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks a block private.
    pub(crate) fn insert(&self, id: Hash) {
        self.set().insert(id);
    }

    /// Marks a block published.
    pub(crate) fn remove(&self, id: &Hash) {
        self.set().remove(id);
    }

    /// Whether a block is private.
    pub(crate) fn contains(&self, id: &Hash) -> bool {
        self.set().contains(id)
    }

    /// Whether nothing is private (always so on an honest node).
    pub(crate) fn is_empty(&self) -> bool {
        self.set().is_empty()
    }

    /// The highest canonical block that is not private, at or below
    /// `height` (withheld blocks are always the tip of our own chain).
    pub(crate) fn public_tip(&self, store: &Store, height: u64, head: Hash) -> (u64, Hash) {
        let mut at = (height, head);
        while self.contains(&at.1) && at.0 > 0 {
            let below = at.0 - 1;
            match store.canonical(below) {
                Ok(Some(id)) => at = (below, id),
                _ => break,
            }
        }
        at
    }
}

/// A block the chain task stored, as a strategy sees it.
#[derive(Clone, Debug)]
pub(crate) struct ImportEvent {
    /// The block id.
    pub id: Hash,
    /// Its parent.
    pub parent: Hash,
    /// Its height.
    pub height: u64,
    /// PoS: its slot (0 for PoW).
    pub slot: u64,
    /// Its proposer.
    pub proposer: Address,
    /// Where it came from.
    pub origin: Origin,
    /// Whether it became the head.
    pub outcome: ImportOutcome,
}
