//! Node stores in memory: a reference-counted one for tests and tools, and
//! an overlay that stacks a branch's new nodes on top of another store.
//!
//! [`MemNodes`] keeps the rules a persistent store follows (docs/state.md):
//! applying a block's [`NodeBatch`] counts a reference to each new node;
//! undoing the block drops those references; pruning the block once it is
//! older than the reorg window drops one reference to each node it made
//! stale. A node goes when its count reaches zero, so nodes shared between
//! blocks, branches, or a tree and its earlier self are kept while any
//! retained root still uses them.

use std::collections::HashMap;
use std::convert::Infallible;

use super::{Node, NodeBatch, NodeReader};
use crate::hash::Hash;

/// Nodes in memory with a reference count each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemNodes {
    nodes: HashMap<Hash, (Node, u64)>,
}

impl MemNodes {
    /// Records a block's batch: one more reference to each new node.
    pub fn apply(&mut self, batch: &NodeBatch) {
        for (hash, node) in batch.new_nodes() {
            self.nodes.entry(*hash).or_insert((*node, 0)).1 += 1;
        }
    }

    /// Undoes [`MemNodes::apply`] of the same batch (a block taken off the
    /// chain): the old root's nodes are all still here.
    pub fn undo(&mut self, batch: &NodeBatch) {
        for (hash, _) in batch.new_nodes() {
            self.release(hash);
        }
    }

    /// Drops the nodes a block made stale, once no rollback can go back
    /// before it.
    pub fn prune(&mut self, batch: &NodeBatch) {
        for hash in batch.stale_nodes() {
            self.release(hash);
        }
    }

    fn release(&mut self, hash: &Hash) {
        if let Some((_, count)) = self.nodes.get_mut(hash) {
            *count -= 1;
            if *count == 0 {
                self.nodes.remove(hash);
            }
        }
    }

    /// The number of distinct nodes held.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node is held.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

impl NodeReader for MemNodes {
    type Error = Infallible;

    fn get(&self, hash: &Hash) -> Result<Option<Node>, Infallible> {
        Ok(self.nodes.get(hash).map(|(node, _)| *node))
    }
}

/// A store seen through the new nodes of blocks not (yet) written to it:
/// a side branch being validated, a block being produced. The base is
/// never changed; dropping the overlay forgets the branch.
#[derive(Debug)]
pub struct Overlay<'b, R> {
    base: &'b R,
    top: MemNodes,
}

impl<'b, R: NodeReader> Overlay<'b, R> {
    /// An overlay with nothing on top of `base`.
    pub fn new(base: &'b R) -> Overlay<'b, R> {
        Overlay {
            base,
            top: MemNodes::default(),
        }
    }

    /// Adds a batch's new nodes on top.
    pub fn apply(&mut self, batch: &NodeBatch) {
        self.top.apply(batch);
    }
}

impl<R: NodeReader> NodeReader for Overlay<'_, R> {
    type Error = R::Error;

    fn get(&self, hash: &Hash) -> Result<Option<Node>, R::Error> {
        match self.top.nodes.get(hash) {
            Some((node, _)) => Ok(Some(*node)),
            None => self.base.get(hash),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::update::tests::{apply_to, entries, key, reachable, reference_root, tree, value};
    use super::super::{EMPTY, TreeKey, prove, update, verify};
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet, VecDeque};

    type Block = BTreeMap<TreeKey, Option<Hash>>;

    /// Blocks of changes over a small key space, so keys come and go and
    /// old nodes reappear.
    fn blocks() -> impl Strategy<Value = Vec<Block>> {
        let key = prop::sample::select((0u8..12).map(|i| TreeKey(Hash::of(&[i]).0)).collect::<Vec<_>>());
        prop::collection::vec(
            prop::collection::btree_map(key, prop::option::of(value()), 0..6),
            1..24,
        )
    }

    fn changes(block: &Block) -> Vec<(TreeKey, Option<Hash>)> {
        block.iter().map(|(k, v)| (*k, *v)).collect()
    }

    fn stored(store: &MemNodes) -> BTreeSet<Hash> {
        store.nodes.keys().copied().collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn undo_restores_the_old_root_and_node_set(
            before in entries(),
            block in prop::collection::btree_map(key(), prop::option::of(value()), 0..24),
        ) {
            let (root, mut store) = tree(&before);
            let snapshot = store.clone();
            let (new_root, batch) = update(root, &changes(&block), &store).unwrap();
            store.apply(&batch);
            for (key, value) in &block {
                prop_assert_eq!(verify(&new_root, key, value.as_ref(), &prove(new_root, key, &store).unwrap()), Ok(()));
            }
            store.undo(&batch);
            prop_assert_eq!(&store, &snapshot);
            for (key, value) in &before {
                prop_assert_eq!(verify(&root, key, Some(value), &prove(root, key, &store).unwrap()), Ok(()));
            }
        }

        /// The store holds exactly the nodes of the roots inside the window,
        /// through any run of blocks and rollbacks of the last block.
        #[test]
        fn pruning_keeps_exactly_the_window(blocks in blocks(), window in 0usize..4, undo_every in 2usize..5) {
            let mut store = MemNodes::default();
            let mut roots = VecDeque::from([EMPTY]);
            let mut batches = VecDeque::new();
            let mut state = BTreeMap::new();
            for (i, block) in blocks.iter().enumerate() {
                let (root, batch) = update(*roots.back().unwrap(), &changes(block), &store).unwrap();
                store.apply(&batch);
                if i % undo_every == 0 {
                    // A rollback of this block, as in a reorg: it leaves no trace.
                    store.undo(&batch);
                    continue;
                }
                apply_to(&mut state, &changes(block));
                prop_assert_eq!(root, reference_root(&state));
                roots.push_back(root);
                batches.push_back(batch);
                if batches.len() > window {
                    store.prune(&batches.pop_front().unwrap());
                    roots.pop_front();
                }
                let live: BTreeSet<Hash> = roots.iter().flat_map(|r| reachable(*r, &store)).collect();
                prop_assert_eq!(stored(&store), live);
            }
        }

        #[test]
        fn an_overlay_sees_the_branch_and_leaves_the_base_alone(
            before in entries(),
            block in prop::collection::btree_map(key(), prop::option::of(value()), 1..24),
        ) {
            let (root, base) = tree(&before);
            let snapshot = base.clone();
            let mut overlay = Overlay::new(&base);
            let (side, batch) = update(root, &changes(&block), &overlay).unwrap();
            overlay.apply(&batch);
            // A second block on the side branch reads through both layers.
            let (side2, _) = update(side, &changes(&block), &overlay).unwrap();
            prop_assert_eq!(side2, side);
            for (key, value) in &block {
                prop_assert_eq!(verify(&side, key, value.as_ref(), &prove(side, key, &overlay).unwrap()), Ok(()));
            }
            drop(overlay);
            prop_assert_eq!(base, snapshot);
        }
    }
}
