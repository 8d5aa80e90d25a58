//! The block tree: imports blocks, keeps the head, switches branches.
//!
//! [`BlockTree`] is the only writer of the store. It holds every block's header
//! and metadata in memory (the fork tree) and the head's state; blocks whose
//! parent has not arrived yet wait outside it, in the orphan pool
//! ([`super::orphans`]). Fork choice itself is `klero_chain::fork_choice`; this
//! module finds the fork point, enforces the PoS rollback limit, and turns a
//! switch into one store transaction. It also notices PoS equivocation: two
//! valid blocks signed by one proposer for one slot, the evidence the ledger
//! slashes for, and remembers the blocks a reorg took off the canonical
//! chain so their transactions can go back to the mempool
//! ([`BlockTree::take_reverted_txs`]).

use std::collections::HashMap;
use std::sync::Arc;

use klero_chain::fork_choice;
use klero_chain::ledger::State;
use klero_chain::spec::Consensus;
use klero_chain::types::{Equivocation, SignedHeader};
use klero_chain::validate::{BlockError, BlockMeta, MEDIAN_TIME_SPAN, Parent, validate_block};
use klero_chain::{Address, ChainSpec, Hash, Header, SealedBlock};
use tracing::{debug, info, warn};

use super::store::{HeadChange, Store, StoreError};

/// Slots behind the newest seen for which proposals are remembered to catch
/// equivocation; older entries are dropped so the map stays bounded.
const EQUIVOCATION_WINDOW_SLOTS: u64 = 4096;

/// What importing a block did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportOutcome {
    /// We already had it.
    Known,
    /// Its parent is unknown: not stored (the orphan pool may keep it).
    Orphan,
    /// Valid and stored, on a branch fork choice does not prefer.
    SideBranch,
    /// Valid, stored, and the new head; `rolled_back` blocks of the old
    /// branch left the canonical chain (0 when it simply extends the head).
    NewHead {
        /// Depth of the reorg.
        rolled_back: u64,
    },
}

/// Why a block could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The block breaks a consensus rule.
    #[error(transparent)]
    Invalid(#[from] BlockError),
    /// The store failed; the block is not imported.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One block of the fork tree.
#[derive(Clone, Debug)]
struct TreeNode {
    header: Header,
    meta: BlockMeta,
}

/// The head and what the rest of the node reads about it.
#[derive(Clone, Debug)]
pub struct Head {
    /// The head block's id.
    pub id: Hash,
    /// Its header.
    pub header: Header,
    /// Its metadata.
    pub meta: BlockMeta,
    /// The state after it.
    pub state: Arc<State>,
    /// Its epoch (PoS: of its slot; PoW: of its height).
    pub epoch: u64,
}

/// The block tree over the store.
#[derive(Debug)]
pub struct BlockTree {
    spec: ChainSpec,
    store: Store,
    tree: HashMap<Hash, TreeNode>,
    head: Head,
    /// The signed PoS header seen first for each (proposer, slot), for the
    /// last [`EQUIVOCATION_WINDOW_SLOTS`] slots or so.
    proposals: HashMap<(Address, u64), SignedHeader>,
    /// Equivocations found and not yet taken.
    equivocations: Vec<Equivocation>,
    /// Blocks a reorg took off the canonical chain, not yet taken.
    reverted: Vec<Hash>,
    /// The depths of the reorgs done (by a block or an orphan it
    /// connected), not yet taken.
    reorgs: Vec<u64>,
}

impl BlockTree {
    /// Loads the fork tree and the head from `store`.
    ///
    /// # Errors
    ///
    /// If the store cannot be read or misses the head's records.
    pub fn load(spec: ChainSpec, store: Store) -> Result<BlockTree, StoreError> {
        let tree: HashMap<Hash, TreeNode> = store
            .all_info()?
            .into_iter()
            .map(|info| {
                (
                    info.id,
                    TreeNode {
                        header: info.header,
                        meta: info.meta,
                    },
                )
            })
            .collect();
        let head_id = store.head()?;
        let node = tree.get(&head_id).ok_or(StoreError::Missing("the head block"))?;
        let state = store
            .state(&head_id)?
            .ok_or(StoreError::Missing("the head state"))?;
        let head = make_head(&spec, head_id, node, state);
        info!(height = head.meta.height, head = %head.id.short(), blocks = tree.len(), "chain loaded");
        Ok(BlockTree {
            spec,
            store,
            tree,
            head,
            proposals: HashMap::new(),
            equivocations: Vec::new(),
            reorgs: Vec::new(),
            reverted: Vec::new(),
        })
    }

    /// The chain spec.
    pub fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    /// The current head.
    pub fn head(&self) -> &Head {
        &self.head
    }

    /// Whether the block is stored.
    pub fn contains(&self, id: &Hash) -> bool {
        self.tree.contains_key(id)
    }

    /// Runs `f` with the head as a [`Parent`], for block production.
    pub fn with_head_parent<R>(&self, f: impl FnOnce(&Parent<'_>) -> R) -> R {
        let timestamps = self.recent_timestamps(self.head.id);
        f(&Parent {
            id: self.head.id,
            header: &self.head.header,
            meta: &self.head.meta,
            state: &self.head.state,
            recent_timestamps: &timestamps,
        })
    }

    /// Runs `f` with the stored block `id` as a [`Parent`] (its state read
    /// from the store unless it is the head); `None` if it is not stored.
    ///
    /// # Errors
    ///
    /// If the store cannot give its state.
    pub fn with_parent<R>(
        &self,
        id: Hash,
        f: impl FnOnce(&Parent<'_>) -> R,
    ) -> Result<Option<R>, StoreError> {
        if id == self.head.id {
            return Ok(Some(self.with_head_parent(f)));
        }
        let Some(node) = self.tree.get(&id) else {
            return Ok(None);
        };
        let state = self
            .store
            .state(&id)?
            .ok_or(StoreError::Missing("a parent state"))?;
        let timestamps = self.recent_timestamps(id);
        Ok(Some(f(&Parent {
            id,
            header: &node.header,
            meta: &node.meta,
            state: &state,
            recent_timestamps: &timestamps,
        })))
    }

    /// The fork-choice metadata of a stored block.
    pub fn meta(&self, id: &Hash) -> Option<&BlockMeta> {
        self.tree.get(id).map(|node| &node.meta)
    }

    /// Validates and stores `block`. A block whose parent is not stored is
    /// not stored either ([`ImportOutcome::Orphan`]): keeping it until the
    /// parent arrives is the orphan pool's job ([`super::orphans`]).
    ///
    /// # Errors
    ///
    /// If the block is invalid or the store fails. Nothing is stored then.
    pub fn import(&mut self, block: SealedBlock, now_ms: u64) -> Result<ImportOutcome, ImportError> {
        let id = block.id();
        if self.tree.contains_key(&id) {
            return Ok(ImportOutcome::Known);
        }
        if !self.tree.contains_key(&block.header().parent) {
            debug!(block = %id.short(), parent = %block.header().parent.short(), "orphan");
            return Ok(ImportOutcome::Orphan);
        }
        self.connect(&block, now_ms)
    }

    /// The depths of the reorgs done since the last call, those of
    /// connected orphans included (an import's outcome is its block's own).
    pub fn take_reorgs(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.reorgs)
    }

    /// The equivocations found since the last call.
    pub fn take_equivocations(&mut self) -> Vec<Equivocation> {
        std::mem::take(&mut self.equivocations)
    }

    /// The transactions of blocks that reorgs removed from the canonical
    /// chain since the last call, for the mempool to take back.
    ///
    /// # Errors
    ///
    /// If a removed block cannot be read back.
    pub fn take_reverted_txs(&mut self) -> Result<Vec<klero_chain::Tx>, StoreError> {
        let mut txs = Vec::new();
        for id in std::mem::take(&mut self.reverted) {
            if let Some(block) = self.store.block(&id)? {
                txs.extend(block.into_block().txs);
            }
        }
        Ok(txs)
    }

    /// How many blocks are stored (every branch, genesis included).
    pub fn stored_blocks(&self) -> usize {
        self.tree.len()
    }

    /// The best chain's headers from the head back towards genesis.
    pub fn best_chain(&self) -> impl Iterator<Item = &Header> {
        let mut cursor = Some(self.head.id);
        std::iter::from_fn(move || {
            let node = self.tree.get(&cursor?)?;
            cursor = (node.meta.height > 0).then_some(node.header.parent);
            Some(&node.header)
        })
    }

    fn connect(&mut self, block: &SealedBlock, now_ms: u64) -> Result<ImportOutcome, ImportError> {
        let id = block.id();
        let parent_id = block.header().parent;
        let parent = self
            .tree
            .get(&parent_id)
            .ok_or(StoreError::Missing("a parent block"))?;
        let parent_state = if parent_id == self.head.id {
            Arc::clone(&self.head.state)
        } else {
            Arc::new(
                self.store
                    .state(&parent_id)?
                    .ok_or(StoreError::Missing("a parent state"))?,
            )
        };
        let timestamps = self.recent_timestamps(parent_id);
        let imported = validate_block(
            &self.spec,
            &Parent {
                id: parent_id,
                header: &parent.header,
                meta: &parent.meta,
                state: &parent_state,
                recent_timestamps: &timestamps,
            },
            block,
            now_ms,
        )?;
        self.watch_for_equivocation(block);
        let switch = self.head_switch(parent_id, id, &imported.meta);
        self.store.commit(
            block,
            &imported.meta,
            &imported.state,
            switch.as_ref().map(|(c, _)| c),
        )?;
        let node = TreeNode {
            header: block.header().clone(),
            meta: imported.meta,
        };
        let outcome = match switch {
            Some((_, old_branch)) => {
                let rolled_back = old_branch.len() as u64;
                self.reverted.extend(old_branch);
                self.head = make_head(&self.spec, id, &node, imported.state);
                if rolled_back > 0 {
                    self.reorgs.push(rolled_back);
                    info!(height = node.meta.height, head = %id.short(), rolled_back, "reorg");
                }
                ImportOutcome::NewHead { rolled_back }
            }
            None => ImportOutcome::SideBranch,
        };
        self.tree.insert(id, node);
        Ok(outcome)
    }

    fn watch_for_equivocation(&mut self, block: &SealedBlock) {
        let signed = &block.block().signed;
        let Some(slot) = signed.header.slot() else { return };
        if self.proposals.len() as u64 > 2 * EQUIVOCATION_WINDOW_SLOTS {
            let floor = slot.saturating_sub(EQUIVOCATION_WINDOW_SLOTS);
            self.proposals.retain(|(_, s), _| *s >= floor);
        }
        match self.proposals.entry((signed.header.proposer, slot)) {
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(signed.clone());
            }
            std::collections::hash_map::Entry::Occupied(first) => {
                warn!(proposer = %signed.header.proposer, slot, "equivocation: two blocks for one slot");
                self.equivocations.push(Equivocation {
                    a: first.get().clone(),
                    b: signed.clone(),
                });
            }
        }
    }

    /// If a child `id` of `parent_id` with `meta` should become the head:
    /// the canonical index change and how many blocks it rolls back.
    fn head_switch(&self, parent_id: Hash, id: Hash, meta: &BlockMeta) -> Option<(HeadChange, Vec<Hash>)> {
        let old = &self.head;
        if parent_id == old.id {
            let change = HeadChange {
                canonical: vec![(meta.height, id)],
                old_height: old.meta.height,
            };
            return Some((change, Vec::new()));
        }
        let (old_branch, mut new_branch) = self.branches(old.id, parent_id);
        new_branch.push(id);
        if !fork_choice::prefer(&self.spec, &old.meta, meta) {
            return None;
        }
        let rolled_back = old_branch.len() as u64;
        if let Consensus::Pos(params) = &self.spec.consensus
            && rolled_back > params.max_rollback
        {
            warn!(rolled_back, limit = params.max_rollback, block = %id.short(), "refusing a reorg deeper than the rollback limit");
            return None;
        }
        let canonical = new_branch
            .iter()
            .map(|b| (self.meta_of(b, id, meta).height, *b))
            .collect();
        Some((
            HeadChange {
                canonical,
                old_height: old.meta.height,
            },
            old_branch,
        ))
    }

    /// The metadata of a tree block, or of the block being imported.
    fn meta_of<'a>(&'a self, block: &Hash, new_id: Hash, new_meta: &'a BlockMeta) -> &'a BlockMeta {
        if *block == new_id {
            new_meta
        } else {
            &self.tree[block].meta
        }
    }

    /// The blocks after the common ancestor of `a` and `b` on each side,
    /// oldest first.
    fn branches(&self, a: Hash, b: Hash) -> (Vec<Hash>, Vec<Hash>) {
        let (mut a, mut b) = (a, b);
        let (mut side_a, mut side_b) = (Vec::new(), Vec::new());
        let height = |id: &Hash| self.tree[id].meta.height;
        while a != b {
            if height(&a) >= height(&b) {
                side_a.push(a);
                a = self.tree[&a].header.parent;
            } else {
                side_b.push(b);
                b = self.tree[&b].header.parent;
            }
        }
        side_a.reverse();
        side_b.reverse();
        (side_a, side_b)
    }

    /// Timestamps of up to [`MEDIAN_TIME_SPAN`] blocks ending at `id`, oldest first.
    fn recent_timestamps(&self, id: Hash) -> Vec<u64> {
        let mut out = Vec::with_capacity(MEDIAN_TIME_SPAN);
        let mut cursor = Some(id);
        while let Some(node) = cursor.and_then(|c| self.tree.get(&c)) {
            out.push(node.header.timestamp_ms);
            if out.len() == MEDIAN_TIME_SPAN || node.meta.height == 0 {
                break;
            }
            cursor = Some(node.header.parent);
        }
        out.reverse();
        out
    }
}

fn make_head(spec: &ChainSpec, id: Hash, node: &TreeNode, state: State) -> Head {
    Head {
        id,
        header: node.header.clone(),
        meta: node.meta.clone(),
        state: Arc::new(state),
        epoch: spec.epoch_of(&node.header),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use klero_chain::pow::{meets_target, pow_hash};
    use klero_chain::produce;
    use klero_chain::spec::PowParams;
    use klero_chain::{Keypair, Tx};

    use super::*;
    use crate::node::orphans::Orphans;

    /// The pow dev spec with a target easy enough to mine in a test.
    pub(crate) fn spec() -> ChainSpec {
        let mut spec = ChainSpec::from_toml(include_str!("../../testnet/pow.toml")).expect("spec");
        let mut easy = [0xff; 32];
        easy[0] = 0x0f;
        spec.consensus = Consensus::Pow(PowParams::dev(2_000, easy));
        spec
    }

    fn open(dir: &std::path::Path) -> BlockTree {
        let spec = spec();
        BlockTree::load(spec.clone(), Store::open(dir, &spec).expect("store")).expect("chain")
    }

    /// Mines `count` blocks on `chain`'s head, one target interval apart.
    pub(crate) fn mine(chain: &mut BlockTree, miner: &Keypair, count: u64) -> Vec<SealedBlock> {
        let empty = vec![Vec::new(); usize::try_from(count).expect("count")];
        mine_with(chain, miner, &empty)
    }

    /// Mines one block on `chain`'s head for each entry of `txs`, with those transactions.
    pub(crate) fn mine_with(chain: &mut BlockTree, miner: &Keypair, txs: &[Vec<Tx>]) -> Vec<SealedBlock> {
        let step = 2_000;
        txs.iter()
            .map(|txs| {
                let ts = chain.head().header.timestamp_ms + step;
                let template = chain
                    .with_head_parent(|p| produce::pow_template(chain.spec(), p, txs, miner, ts))
                    .expect("template");
                let nonce = (0..)
                    .find(|n| meets_target(&pow_hash(&template.pre, *n), &template.target))
                    .expect("a nonce");
                let block = template.complete(nonce, miner, &chain.spec().chain_id).seal();
                assert!(matches!(
                    chain.import(block.clone(), u64::MAX / 2),
                    Ok(ImportOutcome::NewHead { rolled_back: 0 })
                ));
                block
            })
            .collect()
    }

    fn rewards(chain: &BlockTree, key: &Keypair) -> u64 {
        chain
            .head()
            .state
            .account(&key.address())
            .map_or(0, |a| a.rewards)
    }

    #[test]
    fn reorg_of_depth_ten_from_out_of_order_blocks_and_restart() {
        let (dir_a, dir_b) = (tempfile::tempdir().expect("a"), tempfile::tempdir().expect("b"));
        let (alice, bob) = (Keypair::dev("alice"), Keypair::dev("bob"));
        let mut a = open(dir_a.path());
        mine(&mut a, &alice, 10);
        let mut b = open(dir_b.path());
        let branch = mine(&mut b, &bob, 11);
        assert_eq!(rewards(&a, &alice), 10 * 1000);

        // Newest first: every block but the first waits as an orphan.
        let mut orphans = Orphans::default();
        for block in branch[1..].iter().rev() {
            assert_eq!(
                orphans
                    .import(&mut a, block.clone(), None, u64::MAX / 2)
                    .expect("orphan"),
                ImportOutcome::Orphan
            );
        }
        assert_eq!(orphans.len(), 10);
        orphans
            .import(&mut a, branch[0].clone(), None, u64::MAX / 2)
            .expect("connects");
        assert_eq!(orphans.len(), 0);
        // The reorg was an orphan's doing, and is reported all the same.
        assert_eq!(a.take_reorgs(), vec![10]);
        assert!(a.take_reorgs().is_empty());

        assert_eq!(a.head().id, b.head().id);
        assert_eq!(*a.head().state, *b.head().state);
        assert_eq!(
            rewards(&a, &alice),
            0,
            "the rolled-back branch's rewards are gone"
        );
        assert_eq!(rewards(&a, &bob), 11 * 1000);
        for (height, block) in (1..).zip(&branch) {
            assert_eq!(a.store.canonical(height).expect("canon"), Some(block.id()));
        }
        let head = a.head().id;
        drop(a);
        let reopened = open(dir_a.path());
        assert_eq!(reopened.head().id, head);
        assert_eq!(*reopened.head().state, *b.head().state);
    }

    #[test]
    fn equal_work_keeps_the_first_seen_head() {
        let (dir_a, dir_b) = (tempfile::tempdir().expect("a"), tempfile::tempdir().expect("b"));
        let mut a = open(dir_a.path());
        let ours = mine(&mut a, &Keypair::dev("alice"), 3);
        let mut b = open(dir_b.path());
        let theirs = mine(&mut b, &Keypair::dev("bob"), 3);
        for block in &theirs[..2] {
            assert_eq!(
                a.import(block.clone(), u64::MAX / 2).expect("side"),
                ImportOutcome::SideBranch
            );
        }
        // Same targets, same heights: equal work, so the first seen stays.
        let third = a.import(theirs[2].clone(), u64::MAX / 2).expect("side");
        assert_eq!(third, ImportOutcome::SideBranch);
        assert_eq!(a.head().id, ours[2].id());
        assert_eq!(
            a.import(theirs[2].clone(), u64::MAX / 2).expect("known"),
            ImportOutcome::Known
        );
    }

    #[test]
    fn invalid_blocks_are_refused_and_not_stored() {
        let dir = tempfile::tempdir().expect("dir");
        let mut a = open(dir.path());
        let other = tempfile::tempdir().expect("other");
        let mut b = open(other.path());
        let block = mine(&mut b, &Keypair::dev("bob"), 1).remove(0);
        let mut forged = block.into_block();
        forged.signed.header.timestamp_ms += 1;
        let err = a.import(forged.seal(), u64::MAX / 2).expect_err("forged");
        assert!(matches!(err, ImportError::Invalid(_)), "{err}");
        assert_eq!(a.head().meta.height, 0);
        assert_eq!(a.tree.len(), 1);
    }

    #[test]
    fn two_blocks_for_one_slot_are_caught_as_equivocation() {
        use klero_chain::ledger::check_equivocation;
        use klero_chain::types::{TxBody, TxKind};

        let spec = ChainSpec::from_toml(include_str!("../../testnet/pos.toml")).expect("spec");
        let dir = tempfile::tempdir().expect("dir");
        let mut chain =
            BlockTree::load(spec.clone(), Store::open(dir.path(), &spec).expect("store")).expect("chain");
        let alice = Keypair::dev("alice");
        let tx = Tx::sign(
            TxBody {
                from: alice.address(),
                nonce: 0,
                fee: 1,
                kind: TxKind::Transfer {
                    to: Keypair::dev("bob").address(),
                    amount: 5,
                },
            },
            &alice,
            &spec.chain_id,
        );
        let (a, b) = chain.with_head_parent(|parent| {
            let claim = (1..10_000)
                .find_map(|slot| produce::pos_claim(&spec, parent, &alice, slot))
                .expect("alice wins some slot");
            let empty = produce::pos_block(&spec, parent, &alice, &claim, &[]).expect("block a");
            let full = produce::pos_block(&spec, parent, &alice, &claim, std::slice::from_ref(&tx))
                .expect("block b");
            (empty.seal(), full.seal())
        });
        assert_ne!(a.id(), b.id());
        assert_eq!(
            chain.import(a, u64::MAX / 2).expect("a"),
            ImportOutcome::NewHead { rolled_back: 0 }
        );
        assert!(chain.take_equivocations().is_empty());
        assert_eq!(
            chain.import(b, u64::MAX / 2).expect("b"),
            ImportOutcome::SideBranch
        );
        let found = chain.take_equivocations();
        assert_eq!(found.len(), 1);
        assert_eq!(
            check_equivocation(&found[0], &spec.chain_id)
                .expect("valid evidence")
                .0,
            alice.address()
        );
    }
}
