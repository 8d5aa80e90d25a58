//! The orphan pool: blocks whose parent has not arrived yet, kept outside
//! the block tree and connected as soon as the parent is stored.
//!
//! [`Orphans::import`] is the block tree's import with the pool in front:
//! a block with an unknown parent waits here; a block that connects pulls
//! in every waiting descendant after it.

use std::collections::{HashMap, VecDeque};

use klero_chain::{Hash, SealedBlock};
use tracing::{debug, warn};

use super::block_tree::{BlockTree, ImportError, ImportOutcome};

/// Most blocks waiting for their parent.
const MAX_ORPHANS: usize = 512;

/// Blocks waiting for their parent, oldest evicted first.
#[derive(Debug, Default)]
pub(crate) struct Orphans {
    by_parent: HashMap<Hash, Vec<SealedBlock>>,
    order: VecDeque<(Hash, Hash)>,
}

impl Orphans {
    /// How many orphans wait.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    /// Imports `block` into `tree`, or keeps it here if its parent is
    /// unknown; once it is stored, the orphans waiting for it follow. The
    /// outcome is the block's own; orphans connected after it are logged.
    ///
    /// # Errors
    ///
    /// As [`BlockTree::import`], for `block` itself.
    pub(crate) fn import(
        &mut self,
        tree: &mut BlockTree,
        block: SealedBlock,
        now_ms: u64,
    ) -> Result<ImportOutcome, ImportError> {
        let id = block.id();
        if !tree.contains(&id) && !tree.contains(&block.header().parent) {
            debug!(block = %id.short(), parent = %block.header().parent.short(), "orphan");
            self.insert(block);
            return Ok(ImportOutcome::Orphan);
        }
        let outcome = tree.import(block, now_ms)?;
        if matches!(outcome, ImportOutcome::NewHead { .. } | ImportOutcome::SideBranch) {
            let mut ready = self.children_of(&id);
            while let Some(child) = ready.pop() {
                let child_id = child.id();
                match tree.import(child, now_ms) {
                    Ok(_) => ready.extend(self.children_of(&child_id)),
                    Err(error) => warn!(block = %child_id.short(), %error, "orphan rejected"),
                }
            }
        }
        Ok(outcome)
    }

    fn insert(&mut self, block: SealedBlock) {
        let (id, parent) = (block.id(), block.header().parent);
        let siblings = self.by_parent.entry(parent).or_default();
        if siblings.iter().any(|b| b.id() == id) {
            return;
        }
        siblings.push(block);
        self.order.push_back((parent, id));
        while self.order.len() > MAX_ORPHANS {
            let Some((parent, id)) = self.order.pop_front() else {
                break;
            };
            if let Some(siblings) = self.by_parent.get_mut(&parent) {
                siblings.retain(|b| b.id() != id);
                if siblings.is_empty() {
                    self.by_parent.remove(&parent);
                }
            }
        }
    }

    fn children_of(&mut self, parent: &Hash) -> Vec<SealedBlock> {
        let children = self.by_parent.remove(parent).unwrap_or_default();
        self.order.retain(|(p, _)| p != parent);
        children
    }
}
