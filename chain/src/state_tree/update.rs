//! Updating the tree: new root and the node changes, from touched keys only.
//!
//! [`update`] walks down from the old root along the paths of the changed
//! keys only, rebuilds those paths bottom-up and leaves every other subtree
//! alone, so it reads and hashes O(changes × depth) nodes. Large batches
//! rebuild independent subtrees in parallel (rayon), with the same root and
//! the same batch as a sequential run.
//!
//! It writes nothing: the [`NodeBatch`] says which nodes the new tree adds
//! and which of the old tree's nodes it no longer uses, which is what a
//! block's change set needs to undo the block (forget the new nodes) and,
//! once the block is older than the reorg window, to prune (forget the
//! stale ones).

use super::{EMPTY, Node, NodeReader, TreeError, TreeKey, check_position, leaf_hash, load};
use crate::hash::Hash;

/// A key and its new value hash, or `None` to delete it.
type Change = Keyed<Option<Hash>>;

/// Something under a key: a change, or an entry of a subtree being built.
type Keyed<T> = (TreeKey, T);

/// Both sides of a split need this many changes before they are rebuilt in
/// parallel: below it, the work is too small to pay for handing it over.
const PARALLEL_MIN: usize = 32;

/// What an update changes in the node store, in the order the update built
/// and visited the nodes (deterministic).
///
/// `new` holds the nodes of the new tree that the old tree did not have,
/// `stale` the nodes of the old tree that the new one does not have. A node
/// in `new` may already be in the store (an older or a side branch's tree
/// had it), so a store counts references rather than assuming it is absent
/// (see [`super::MemNodes`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct NodeBatch {
    new: Vec<(Hash, Node)>,
    stale: Vec<Hash>,
}

impl NodeBatch {
    /// The nodes the new tree adds, with their hashes.
    pub fn new_nodes(&self) -> &[(Hash, Node)] {
        &self.new
    }

    /// The hashes of the nodes the new tree no longer uses.
    pub fn stale_nodes(&self) -> &[Hash] {
        &self.stale
    }
}

/// Applies `changes` to the tree with root `root`: returns the new root and
/// what changed in the node store. Deleting an absent key and setting a key
/// to its current value change nothing. The order of `changes` does not
/// matter.
///
/// # Errors
///
/// [`TreeError::DuplicateKey`] if a key appears twice in `changes`;
/// otherwise the reader's failures and missing or malformed nodes.
pub fn update<R: NodeReader>(
    root: Hash,
    changes: &[Change],
    reader: &R,
) -> Result<(Hash, NodeBatch), TreeError<R::Error>> {
    let mut sorted = changes.to_vec();
    sorted.sort_unstable_by_key(|(key, _)| *key);
    if let Some(pair) = sorted.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(TreeError::DuplicateKey(pair[0].0));
    }
    let mut updater = Updater {
        reader,
        batch: NodeBatch::default(),
    };
    let root = updater.update_at(root, 0, &sorted)?.hash();
    Ok((root, updater.batch))
}

/// A rebuilt subtree. `Unchanged` is an untouched subtree whose kind is only
/// looked up if it matters (when its sibling becomes empty).
#[derive(Clone, Copy)]
enum Subtree {
    Empty,
    Leaf(Hash),
    Internal(Hash),
    Unchanged(Hash),
}

impl Subtree {
    fn hash(self) -> Hash {
        match self {
            Subtree::Empty => EMPTY,
            Subtree::Leaf(h) | Subtree::Internal(h) | Subtree::Unchanged(h) => h,
        }
    }
}

struct Updater<'r, R> {
    reader: &'r R,
    /// Nodes built so far (`new`) and old nodes left behind (`stale`).
    /// They never share a node: a subtree rebuilt to what it was is taken
    /// back out of both, and a surviving old leaf is not rebuilt.
    batch: NodeBatch,
}

impl<R: NodeReader> Updater<'_, R> {
    /// Applies `changes` (sorted, distinct, all under this position) to the
    /// subtree `hash` at `depth`.
    fn update_at(
        &mut self,
        hash: Hash,
        depth: usize,
        changes: &[Change],
    ) -> Result<Subtree, TreeError<R::Error>> {
        let Some((path, _)) = changes.first() else {
            return Ok(if hash == EMPTY {
                Subtree::Empty
            } else {
                Subtree::Unchanged(hash)
            });
        };
        if hash == EMPTY {
            return Ok(self.build(depth, &upserts(changes), None));
        }
        let node = load(self.reader, hash)?;
        check_position(&node, hash, path, depth)?;
        let mark = (self.batch.new.len(), self.batch.stale.len());
        let rebuilt = match node {
            Node::Leaf { key, value } => {
                let mut entries = upserts(changes);
                let survives = match changes.binary_search_by_key(&key, |(k, _)| *k) {
                    Ok(i) => changes[i].1 == Some(value),
                    Err(_) => {
                        entries.insert(entries.partition_point(|(k, _)| *k < key), (key, value));
                        true
                    }
                };
                if !survives {
                    self.batch.stale.push(hash);
                }
                self.build(depth, &entries, survives.then_some(key))
            }
            Node::Internal { left, right } => {
                self.batch.stale.push(hash);
                let (to_left, to_right) = split(changes, depth);
                let (left, right) = self.both(
                    to_left.len().min(to_right.len()) >= PARALLEL_MIN,
                    |u| u.update_at(left, depth + 1, to_left),
                    |u| u.update_at(right, depth + 1, to_right),
                );
                self.join(left?, right?)?
            }
        };
        if rebuilt.hash() == hash {
            // The changes cancel out here: the old subtree stays as it is.
            self.batch.new.truncate(mark.0);
            self.batch.stale.truncate(mark.1);
            return Ok(Subtree::Unchanged(hash));
        }
        Ok(rebuilt)
    }

    /// The subtree at `depth` holding exactly `entries` (sorted, distinct,
    /// all under this position: so two of them differ at a bit >= `depth`).
    /// The leaf of `stored`, an old leaf that survives, is not built again.
    fn build(&mut self, depth: usize, entries: &[(TreeKey, Hash)], stored: Option<TreeKey>) -> Subtree {
        match entries {
            [] => Subtree::Empty,
            [(key, value)] if stored == Some(*key) => Subtree::Leaf(leaf_hash(key, value)),
            [(key, value)] => Subtree::Leaf(self.create(Node::Leaf {
                key: *key,
                value: *value,
            })),
            _ => {
                let (left, right) = split(entries, depth);
                let (left, right) = self.both(
                    left.len().min(right.len()) >= PARALLEL_MIN,
                    |u| u.build(depth + 1, left, stored),
                    |u| u.build(depth + 1, right, stored),
                );
                // Two or more entries: one side has at least two, so the
                // result is internal and `join` reads nothing.
                Subtree::Internal(self.create(Node::Internal {
                    left: left.hash(),
                    right: right.hash(),
                }))
            }
        }
    }

    /// The parent of two rebuilt children: empty if both are, the leaf
    /// itself if it is alone (a single entry collapses upwards), otherwise
    /// an internal node.
    fn join(&mut self, left: Subtree, right: Subtree) -> Result<Subtree, TreeError<R::Error>> {
        let alone = match (left, right) {
            (Subtree::Empty, Subtree::Empty) => return Ok(Subtree::Empty),
            (Subtree::Empty, other) | (other, Subtree::Empty) => Some(other),
            _ => None,
        };
        if let Some(other) = alone {
            let is_leaf = match other {
                Subtree::Leaf(_) => true,
                Subtree::Unchanged(h) => matches!(load(self.reader, h)?, Node::Leaf { .. }),
                Subtree::Empty | Subtree::Internal(_) => false,
            };
            if is_leaf {
                return Ok(Subtree::Leaf(other.hash()));
            }
        }
        Ok(Subtree::Internal(self.create(Node::Internal {
            left: left.hash(),
            right: right.hash(),
        })))
    }

    /// Runs `left` and then `right`, or both at once on the rayon pool when
    /// `parallel`. Either way the nodes come out in the same order: the
    /// right side's after the left side's.
    fn both<A: Send, B: Send>(
        &mut self,
        parallel: bool,
        left: impl FnOnce(&mut Self) -> A + Send,
        right: impl FnOnce(&mut Self) -> B + Send,
    ) -> (A, B) {
        if !parallel {
            let a = left(self);
            return (a, right(self));
        }
        let mut other = Updater {
            reader: self.reader,
            batch: NodeBatch::default(),
        };
        let (a, b) = rayon::join(|| left(self), || right(&mut other));
        self.batch.new.append(&mut other.batch.new);
        self.batch.stale.append(&mut other.batch.stale);
        (a, b)
    }

    fn create(&mut self, node: Node) -> Hash {
        let hash = node.hash();
        self.batch.new.push((hash, node));
        hash
    }
}

/// The entries that `changes` set (deletions left out).
fn upserts(changes: &[Change]) -> Vec<(TreeKey, Hash)> {
    changes.iter().filter_map(|(k, v)| v.map(|v| (*k, v))).collect()
}

/// Splits items sorted by key into those with bit `depth` clear and set.
/// They share their first `depth` bits, so the split is one binary search.
fn split<T>(items: &[Keyed<T>], depth: usize) -> (&[Keyed<T>], &[Keyed<T>]) {
    items.split_at(items.partition_point(|(key, _)| !key.bit(depth)))
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::{MAX_DEPTH, MemNodes, node_hash};
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The root straight from the definition in the module docs, with no
    /// store and no incremental step: the oracle for [`update`].
    pub(in super::super) fn reference_root(entries: &BTreeMap<TreeKey, Hash>) -> Hash {
        fn subtree(entries: &[(TreeKey, Hash)], depth: usize) -> Hash {
            match entries {
                [] => EMPTY,
                [(key, value)] => leaf_hash(key, value),
                _ => {
                    let left: Vec<_> = entries.iter().filter(|(k, _)| !k.bit(depth)).copied().collect();
                    let right: Vec<_> = entries.iter().filter(|(k, _)| k.bit(depth)).copied().collect();
                    node_hash(&subtree(&left, depth + 1), &subtree(&right, depth + 1))
                }
            }
        }
        let entries: Vec<_> = entries.iter().map(|(k, v)| (*k, *v)).collect();
        subtree(&entries, 0)
    }

    /// Keys that are either uniformly random or share all but a few bits
    /// (deep paths, chains of one-sided internal nodes, leaves at depth 256).
    pub(in super::super) fn key() -> impl Strategy<Value = TreeKey> {
        prop_oneof![
            any::<[u8; 32]>().prop_map(TreeKey),
            (0u8..2, any::<u8>()).prop_map(|(first, last)| {
                let mut k = [0u8; 32];
                k[0] = first << 7;
                k[31] = last;
                TreeKey(k)
            }),
        ]
    }

    /// A few distinct values, so that values repeat and nodes reappear.
    pub(in super::super) fn value() -> impl Strategy<Value = Hash> {
        (0u8..4).prop_map(|v| Hash([v; 32]))
    }

    pub(in super::super) fn entries() -> impl Strategy<Value = BTreeMap<TreeKey, Hash>> {
        prop::collection::btree_map(key(), value(), 0..48)
    }

    /// The hashes of every node of the tree `root`.
    pub(in super::super) fn reachable<R: NodeReader>(root: Hash, store: &R) -> BTreeSet<Hash> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![root];
        while let Some(hash) = todo.pop() {
            if hash == EMPTY || !seen.insert(hash) {
                continue;
            }
            if let Node::Internal { left, right } = load(store, hash).unwrap() {
                todo.extend([left, right]);
            }
        }
        seen
    }

    /// Applies `changes` to a plain map of entries, the reference state.
    pub(in super::super) fn apply_to(entries: &mut BTreeMap<TreeKey, Hash>, changes: &[Change]) {
        for (key, value) in changes {
            match value {
                Some(v) => entries.insert(*key, *v),
                None => entries.remove(key),
            };
        }
    }

    /// Checks that `batch` is exactly the difference between the node sets
    /// of the trees `old` and `new`, each node listed once; applies it.
    fn assert_is_the_difference(batch: &NodeBatch, old: Hash, new: Hash, store: &mut MemNodes) {
        let old_nodes = reachable(old, store);
        store.apply(batch);
        let new_nodes = reachable(new, store);
        let added: Vec<Hash> = batch.new_nodes().iter().map(|(h, _)| *h).collect();
        assert_eq!(added.len(), new_nodes.difference(&old_nodes).count());
        assert_eq!(
            added.into_iter().collect::<BTreeSet<_>>(),
            &new_nodes - &old_nodes
        );
        assert_eq!(
            batch.stale_nodes().len(),
            old_nodes.difference(&new_nodes).count()
        );
        assert_eq!(
            batch.stale_nodes().iter().copied().collect::<BTreeSet<_>>(),
            &old_nodes - &new_nodes
        );
    }

    pub(in super::super) fn inserts(entries: &BTreeMap<TreeKey, Hash>) -> Vec<Change> {
        entries.iter().map(|(k, v)| (*k, Some(*v))).collect()
    }

    /// Builds a tree from nothing into a fresh store.
    pub(in super::super) fn tree(entries: &BTreeMap<TreeKey, Hash>) -> (Hash, MemNodes) {
        let mut store = MemNodes::default();
        let (root, batch) = update(EMPTY, &inserts(entries), &store).unwrap();
        store.apply(&batch);
        (root, store)
    }

    fn k(byte: u8) -> TreeKey {
        TreeKey([byte; 32])
    }

    #[test]
    fn empty_tree_and_single_entry() {
        let store = MemNodes::default();
        assert_eq!(update(EMPTY, &[], &store).unwrap().0, EMPTY);
        let (root, batch) = update(EMPTY, &[(k(1), Some(Hash([9; 32])))], &store).unwrap();
        assert_eq!(root, leaf_hash(&k(1), &Hash([9; 32])));
        assert_eq!(batch.new_nodes().len(), 1);
        assert!(batch.stale_nodes().is_empty());
    }

    #[test]
    fn deleting_an_absent_key_or_rewriting_a_value_changes_nothing() {
        let entries = BTreeMap::from([(k(1), Hash([1; 32])), (k(0x81), Hash([2; 32]))]);
        let (root, store) = tree(&entries);
        for change in [(k(5), None), (k(1), Some(Hash([1; 32])))] {
            let (again, batch) = update(root, &[change], &store).unwrap();
            assert_eq!(again, root);
            assert_eq!(batch, NodeBatch::default());
        }
    }

    #[test]
    fn a_lone_leaf_moves_up_when_its_sibling_goes() {
        // 0x00.. and 0x01.. share 7 bits; 0x80.. sits alone on the right.
        let entries = BTreeMap::from([
            (k(0), Hash([1; 32])),
            (k(1), Hash([2; 32])),
            (k(0x80), Hash([3; 32])),
        ]);
        let (root, store) = tree(&entries);
        let (root, batch) = update(root, &[(k(1), None)], &store).unwrap();
        let expected = node_hash(
            &leaf_hash(&k(0), &Hash([1; 32])),
            &leaf_hash(&k(0x80), &Hash([3; 32])),
        );
        assert_eq!(root, expected);
        // The moved leaf is neither new nor stale: only the path above it is.
        assert!(
            !batch
                .new_nodes()
                .iter()
                .any(|(h, _)| *h == leaf_hash(&k(0), &Hash([1; 32])))
        );
        assert!(!batch.stale_nodes().contains(&leaf_hash(&k(0), &Hash([1; 32]))));
        assert!(batch.stale_nodes().contains(&leaf_hash(&k(1), &Hash([2; 32]))));
    }

    #[test]
    fn keys_differing_in_the_last_bit_make_a_256_deep_tree() {
        let (a, b) = (TreeKey([0; 32]), {
            let mut x = [0; 32];
            x[31] = 1;
            TreeKey(x)
        });
        let entries = BTreeMap::from([(a, Hash([1; 32])), (b, Hash([2; 32]))]);
        let (root, store) = tree(&entries);
        assert_eq!(root, reference_root(&entries));
        // 255 one-sided internal nodes above the split, plus the split and two leaves.
        assert_eq!(store.len(), MAX_DEPTH + 2);
        let (root, _) = update(root, &[(b, None)], &store).unwrap();
        assert_eq!(root, leaf_hash(&a, &Hash([1; 32])));
    }

    #[test]
    fn a_key_changed_twice_is_refused() {
        let store = MemNodes::default();
        let changes = [(k(1), Some(Hash([1; 32]))), (k(2), None), (k(1), None)];
        assert_eq!(
            update(EMPTY, &changes, &store),
            Err(TreeError::DuplicateKey(k(1)))
        );
    }

    #[derive(Debug, thiserror::Error, PartialEq, Eq)]
    #[error("disk on fire")]
    struct DiskOnFire;

    /// A reader over a map that counts reads and can be told to fail.
    struct Probe {
        nodes: HashMap<Hash, Node>,
        reads: AtomicUsize,
        fail: bool,
    }

    impl NodeReader for Probe {
        type Error = DiskOnFire;
        fn get(&self, hash: &Hash) -> Result<Option<Node>, DiskOnFire> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            if self.fail {
                Err(DiskOnFire)
            } else {
                Ok(self.nodes.get(hash).copied())
            }
        }
    }

    fn probe(entries: &BTreeMap<TreeKey, Hash>) -> (Hash, Probe) {
        let (root, batch) = update(EMPTY, &inserts(entries), &MemNodes::default()).unwrap();
        let nodes = batch.new_nodes().iter().map(|(h, n)| (*h, *n)).collect();
        let probe = Probe {
            nodes,
            reads: AtomicUsize::new(0),
            fail: false,
        };
        (root, probe)
    }

    fn numbered(n: u32) -> BTreeMap<TreeKey, Hash> {
        (0..n)
            .map(|i| (TreeKey(Hash::of(&i.to_le_bytes()).0), Hash([1; 32])))
            .collect()
    }

    #[test]
    fn the_readers_own_error_is_surfaced() {
        let (root, mut probe) = probe(&numbered(8));
        probe.fail = true;
        assert_eq!(
            update(root, &[(k(1), None)], &probe),
            Err(TreeError::Store(DiskOnFire))
        );
    }

    #[test]
    fn a_missing_node_is_an_error_not_a_panic() {
        let (root, mut probe) = probe(&numbered(8));
        probe.nodes.remove(&root);
        assert_eq!(
            update(root, &[(k(1), None)], &probe),
            Err(TreeError::MissingNode(root))
        );
    }

    /// Answers every hash with the same internal node: a tree without end.
    struct Endless;

    impl NodeReader for Endless {
        type Error = std::convert::Infallible;
        fn get(&self, _: &Hash) -> Result<Option<Node>, Self::Error> {
            let child = Hash([7; 32]);
            Ok(Some(Node::Internal {
                left: child,
                right: child,
            }))
        }
    }

    #[test]
    fn a_corrupt_store_is_reported_as_malformed() {
        let err = update(Hash([7; 32]), &[(k(1), None)], &Endless).unwrap_err();
        assert!(matches!(err, TreeError::Malformed { depth: MAX_DEPTH, .. }));
        // A leaf stored where its key does not belong (0xff.. on the left).
        let stray = Node::Leaf {
            key: k(0xff),
            value: Hash([1; 32]),
        };
        let parent = Node::Internal {
            left: stray.hash(),
            right: EMPTY,
        };
        let store = Probe {
            nodes: HashMap::from([(stray.hash(), stray), (parent.hash(), parent)]),
            reads: AtomicUsize::new(0),
            fail: false,
        };
        let err = update(parent.hash(), &[(k(0), None)], &store).unwrap_err();
        assert_eq!(
            err,
            TreeError::Malformed {
                node: stray.hash(),
                depth: 1
            }
        );
    }

    #[test]
    fn an_update_reads_only_the_touched_paths() {
        let entries = numbered(4096);
        let (root, probe) = probe(&entries);
        let (key, _) = entries.iter().nth(100).unwrap();
        let depth = super::super::prove(root, key, &probe).unwrap().depth();
        probe.reads.store(0, Ordering::Relaxed);
        let (new_root, batch) = update(root, &[(*key, Some(Hash([2; 32])))], &probe).unwrap();
        // One read per node on the path, leaf included; the path is rebuilt.
        assert_eq!(probe.reads.load(Ordering::Relaxed), depth + 1);
        assert_eq!(batch.new_nodes().len(), depth + 1);
        assert_eq!(batch.stale_nodes().len(), depth + 1);
        let mut changed = entries.clone();
        changed.insert(*key, Hash([2; 32]));
        assert_eq!(new_root, reference_root(&changed));
    }

    #[test]
    fn large_batches_run_in_parallel_and_match_the_reference() {
        // Thousands of changes split into subtrees rebuilt on several threads.
        let before = numbered(6000);
        let (root, mut store) = tree(&before);
        let changes: Vec<Change> = (3000..9000u32)
            .map(|i| {
                let key = TreeKey(Hash::of(&i.to_le_bytes()).0);
                (key, (i % 3 != 0).then_some(Hash([(i % 5) as u8; 32])))
            })
            .collect();
        let (new_root, batch) = update(root, &changes, &store).unwrap();
        let mut after = before.clone();
        apply_to(&mut after, &changes);
        assert_eq!(new_root, reference_root(&after));
        assert_is_the_difference(&batch, root, new_root, &mut store);
        // The same update again gives the same batch, in the same order.
        store.undo(&batch);
        assert_eq!(update(root, &changes, &store).unwrap(), (new_root, batch));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn root_equals_the_reference(entries in entries()) {
            prop_assert_eq!(tree(&entries).0, reference_root(&entries));
        }

        #[test]
        fn order_and_batching_do_not_matter(
            (entries, changes) in entries().prop_flat_map(|e| {
                let changes = inserts(&e);
                (Just(e), Just(changes).prop_shuffle())
            }),
            chunk in 1usize..8,
        ) {
            let mut store = MemNodes::default();
            let mut root = EMPTY;
            for part in changes.chunks(chunk) {
                let (next, batch) = update(root, part, &store).unwrap();
                store.apply(&batch);
                root = next;
            }
            prop_assert_eq!(root, reference_root(&entries));
        }

        #[test]
        fn any_mix_of_changes_matches_the_reference(
            before in entries(),
            changes in prop::collection::btree_map(key(), prop::option::of(value()), 0..24),
        ) {
            let (root, mut store) = tree(&before);
            let changes: Vec<Change> = changes.into_iter().collect();
            let (new_root, batch) = update(root, &changes, &store).unwrap();
            let mut after = before.clone();
            apply_to(&mut after, &changes);
            prop_assert_eq!(new_root, reference_root(&after));
            assert_is_the_difference(&batch, root, new_root, &mut store);
        }

        #[test]
        fn deleting_what_was_added_restores_the_root(
            before in entries(),
            added in prop::collection::btree_map(key(), value(), 1..16),
        ) {
            let (root, mut store) = tree(&before);
            let fresh: BTreeMap<TreeKey, Hash> =
                added.into_iter().filter(|(k, _)| !before.contains_key(k)).collect();
            let (grown, batch) = update(root, &inserts(&fresh), &store).unwrap();
            store.apply(&batch);
            let deletes: Vec<Change> = fresh.keys().map(|k| (*k, None)).collect();
            let (shrunk, _) = update(grown, &deletes, &store).unwrap();
            prop_assert_eq!(shrunk, root);
        }
    }
}
