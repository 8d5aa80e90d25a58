//! The block tree: imports blocks, keeps the head, switches branches.
//!
//! [`BlockTree`] is the only writer of the store. It holds every block's
//! header and metadata in memory (the fork tree), the best chain by height,
//! the head with a read view of its state in the store; blocks whose parent
//! has not arrived yet wait outside it, in the orphan pool
//! ([`super::orphans`]). Fork choice itself is `klero_chain::fork_choice`; this
//! module finds the fork point, refuses branches deeper than the rollback
//! limit before anything else, builds a side branch's state from change
//! sets ([`Layered`]), and turns a switch into one store transaction. It
//! also notices PoS equivocation (two valid blocks signed by one proposer
//! for one slot, the evidence the ledger slashes for) and remembers the
//! blocks a reorg took off the canonical chain so their transactions can go
//! back to the mempool ([`BlockTree::take_reverted_txs`]).
//!
//! # The order of the checks
//!
//! Cheapest first, and nothing reads a state before everything that needs
//! none has passed (`docs/architecture.md`):
//!
//! 1. known? parent known? (else the orphan pool);
//! 2. the fork depth, from the in-memory tree: a branch that would undo
//!    more than `max_rollback` blocks is refused (`ForkTooDeep`);
//! 3. `validate::check_header`: header, seal, proposer signature, tx root,
//!    from the parent's header and metadata;
//! 4. a PoW side block a peer pushed ([`Delivery::Pushed`]) must leave its
//!    branch within `fork_choice::SIDE_BRANCH_LAG` blocks of work of the
//!    head (`LightBranch` otherwise): it is not stored, only its header is
//!    remembered ([`LightBlocks`]) so its children are refused as cheaply;
//! 5. the parent's state: the head's view, or a [`Layered`] view made
//!    from the change sets between the head and the parent;
//! 6. `validate::validate_against_state`: eligibility, transactions,
//!    ledger, state root.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use klero_chain::fork_choice;
use klero_chain::state::{CommittedState, Layered};
use klero_chain::types::{Equivocation, SignedHeader};
use klero_chain::validate::{
    BlockError, BlockMeta, CheckedHeader, HeaderChain, Imported, MEDIAN_TIME_SPAN, Parent, check_header,
    validate_against_state,
};
use klero_chain::{Address, ChainSpec, Hash, Header, SealedBlock};
use tracing::{debug, info, warn};

use super::store::{HeadMove, Store, StoreError, StoreState};

/// Slots behind the newest seen for which proposals are remembered to catch
/// equivocation; older entries are dropped so the map stays bounded.
const EQUIVOCATION_WINDOW_SLOTS: u64 = 4096;
/// Most light side blocks remembered ([`LightBlocks`]).
const LIGHT_BLOCKS: usize = 1024;

/// How a block reached the node, which decides whether a PoW side block
/// must be able to contend for the head (`fork_choice::check_branch_work`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Pushed by a peer (gossip): a side block must keep its branch within
    /// `fork_choice::SIDE_BRANCH_LAG` blocks of work of the head.
    Pushed,
    /// Asked for (sync), or our own: any branch within the rollback limit,
    /// so a heavier branch whose first blocks trail our head still arrives.
    Requested,
}

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

/// What importing a sync batch did ([`BlockTree::import_batch`]).
#[derive(Debug)]
pub struct BatchImport {
    /// The outcome of each block before the first that failed, in order.
    pub outcomes: Vec<ImportOutcome>,
    /// The first block whose import failed, by its index in the batch,
    /// and why. It is not stored (unless, as with a single import, only
    /// opening the new head's view failed after the commit), nor are the
    /// blocks after it.
    pub failed: Option<(usize, ImportError)>,
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
    /// The state after it: a read view of the store as of its commit.
    pub state: Arc<StoreState>,
    /// Its epoch (PoS: of its slot; PoW: of its height).
    pub epoch: u64,
}

/// Headers of pushed PoW side blocks refused as light (seal and signature
/// valid, too little work): never stored, remembered so that their
/// children are judged from the header alone (and charged to their sender)
/// instead of waiting as orphans. The oldest are forgotten first.
#[derive(Debug, Default)]
struct LightBlocks {
    nodes: HashMap<Hash, TreeNode>,
    order: VecDeque<Hash>,
}

impl LightBlocks {
    fn get(&self, id: &Hash) -> Option<&TreeNode> {
        self.nodes.get(id)
    }

    fn insert(&mut self, id: Hash, node: TreeNode) {
        if self.nodes.insert(id, node).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > LIGHT_BLOCKS {
            if let Some(old) = self.order.pop_front() {
                self.nodes.remove(&old);
            }
        }
    }
}

/// Where a block's parent is relative to the best chain.
struct ForkPoint {
    /// The height of the last block the parent's branch shares with the
    /// best chain.
    height: u64,
    /// The parent's branch after that block, oldest first (empty when the
    /// parent is on the best chain).
    side: Vec<Hash>,
}

/// The block tree over the store.
#[derive(Debug)]
pub struct BlockTree {
    spec: ChainSpec,
    store: Store,
    tree: HashMap<Hash, TreeNode>,
    /// Every stored block by height, to forget side branches that fell out
    /// of the reorg window.
    by_height: BTreeMap<u64, Vec<Hash>>,
    /// The best chain's ids, by height.
    canonical: Vec<Hash>,
    head: Head,
    /// The highest canonical height whose change set is pruned.
    pruned_through: u64,
    /// Keep every change set and every old tree (`--archive`).
    archive: bool,
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
    /// How many times the state of a parent other than the head was built
    /// (the costly read the cheap checks protect).
    branch_states: u64,
    /// Pushed side blocks refused as light.
    light: LightBlocks,
}

impl BlockTree {
    /// Loads the fork tree and the head from `store`.
    ///
    /// # Errors
    ///
    /// If the store cannot be read or misses the head's records.
    pub fn load(spec: ChainSpec, store: Store) -> Result<BlockTree, StoreError> {
        let mut tree = HashMap::new();
        let mut by_height: BTreeMap<u64, Vec<Hash>> = BTreeMap::new();
        for info in store.all_info()? {
            by_height.entry(info.meta.height).or_default().push(info.id);
            tree.insert(
                info.id,
                TreeNode {
                    header: info.header,
                    meta: info.meta,
                },
            );
        }
        let head_id = store.head()?;
        let node = tree.get(&head_id).ok_or(StoreError::Missing("the head block"))?;
        let canonical = store.canonical_chain(node.meta.height)?;
        if canonical.last() != Some(&head_id) {
            return Err(StoreError::Missing("the head in the canonical index"));
        }
        let head = make_head(&spec, &store, head_id, node)?;
        let pruned_through = store.pruned_through()?;
        info!(height = head.meta.height, head = %head.id.short(), blocks = tree.len(), "chain loaded");
        Ok(BlockTree {
            spec,
            store,
            tree,
            by_height,
            canonical,
            head,
            pruned_through,
            archive: false,
            proposals: HashMap::new(),
            equivocations: Vec::new(),
            reorgs: Vec::new(),
            reverted: Vec::new(),
            branch_states: 0,
            light: LightBlocks::default(),
        })
    }

    /// Keeps every change set and every old state tree from now on, instead
    /// of pruning what falls out of the reorg window (`--archive`).
    pub fn set_archive(&mut self, archive: bool) {
        self.archive = archive;
    }

    /// The chain spec.
    pub fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The current head.
    pub fn head(&self) -> &Head {
        &self.head
    }

    /// Whether the block is stored.
    pub fn contains(&self, id: &Hash) -> bool {
        self.tree.contains_key(id)
    }

    /// How many times a side branch's state was built from change sets.
    pub fn branch_states(&self) -> u64 {
        self.branch_states
    }

    /// Runs `f` with the head as a [`Parent`] and its state, for block
    /// production.
    pub fn with_head_parent<R>(&self, f: impl FnOnce(&Parent<'_>, &dyn CommittedState) -> R) -> R {
        let timestamps = self.recent_timestamps(self.head.id);
        f(
            &Parent {
                id: self.head.id,
                header: &self.head.header,
                meta: &self.head.meta,
                recent_timestamps: &timestamps,
            },
            self.head.state.as_ref(),
        )
    }

    /// Runs `f` with any stored block inside the reorg window as a
    /// [`Parent`] and its state (built from change sets): producing on a
    /// side branch, in tests and benchmarks.
    ///
    /// # Errors
    ///
    /// If the block is unknown, forks deeper than the window, or a change
    /// set cannot be read.
    pub fn with_parent<R>(
        &self,
        id: Hash,
        f: impl FnOnce(&Parent<'_>, &dyn CommittedState) -> R,
    ) -> Result<R, ImportError> {
        let node = self.tree.get(&id).ok_or(StoreError::Missing("the block"))?;
        let fork = self.fork_point(id);
        fork_choice::check_fork_depth(&self.spec, self.head.meta.height.saturating_sub(fork.height))?;
        let timestamps = self.recent_timestamps(id);
        let parent = Parent {
            id,
            header: &node.header,
            meta: &node.meta,
            recent_timestamps: &timestamps,
        };
        if id == self.head.id {
            return Ok(f(&parent, self.head.state.as_ref()));
        }
        let state = self.branch_state(&fork)?;
        Ok(f(&parent, &state))
    }

    /// A stored block inside the reorg window as the start of a branch
    /// checked from its headers alone ([`HeaderChain`], PoW only:
    /// headers-first sync).
    ///
    /// # Errors
    ///
    /// If the block is unknown or forks deeper than the window;
    /// `Ok(None)` on a PoS chain.
    pub fn header_chain(&self, id: Hash) -> Result<Option<HeaderChain>, ImportError> {
        let node = self.tree.get(&id).ok_or(StoreError::Missing("the block"))?;
        let fork = self.fork_point(id);
        fork_choice::check_fork_depth(&self.spec, self.head.meta.height.saturating_sub(fork.height))?;
        Ok(HeaderChain::start(
            &self.spec,
            id,
            node.header.clone(),
            node.meta.clone(),
            self.recent_timestamps(id),
        ))
    }

    /// The fork-choice metadata of a stored block.
    pub fn meta(&self, id: &Hash) -> Option<&BlockMeta> {
        self.tree.get(id).map(|node| &node.meta)
    }

    /// Validates and stores `block`, as a block the node asked for
    /// ([`Delivery::Requested`]): [`BlockTree::import_from`].
    ///
    /// # Errors
    ///
    /// If the block is invalid or the store fails. Nothing is stored then.
    pub fn import(&mut self, block: SealedBlock, now_ms: u64) -> Result<ImportOutcome, ImportError> {
        self.import_from(&block, now_ms, Delivery::Requested)
    }

    /// Validates and stores `block`. A block whose parent is not stored is
    /// not stored either ([`ImportOutcome::Orphan`]): keeping it until the
    /// parent arrives is the orphan pool's job ([`super::orphans`]). A
    /// pushed child of a light block is judged from its header and the
    /// light parent's: light too, or an orphan if it brings enough work
    /// (its branch must then come by sync).
    ///
    /// # Errors
    ///
    /// If the block is invalid, light ([`BlockError::LightBranch`], pushed
    /// PoW side blocks only) or the store fails. Nothing is stored then.
    pub fn import_from(
        &mut self,
        block: &SealedBlock,
        now_ms: u64,
        delivery: Delivery,
    ) -> Result<ImportOutcome, ImportError> {
        let id = block.id();
        if self.tree.contains_key(&id) {
            return Ok(ImportOutcome::Known);
        }
        let pushed = delivery == Delivery::Pushed;
        if pushed && self.light.get(&id).is_some() {
            return Err(BlockError::LightBranch {
                lag: fork_choice::SIDE_BRANCH_LAG,
            }
            .into());
        }
        let parent = block.header().parent;
        if self.tree.contains_key(&parent) {
            return self.connect(block, now_ms, delivery);
        }
        if pushed && self.light.get(&parent).is_some() {
            return self.judge_light_child(block, now_ms);
        }
        debug!(block = %id.short(), parent = %parent.short(), "orphan");
        Ok(ImportOutcome::Orphan)
    }

    /// Validates and stores a sync batch: blocks the node asked for, each
    /// the child of the one before ([`Delivery::Requested`]). Blocks
    /// already stored at its start are [`ImportOutcome::Known`]. When the
    /// first of the others extends the head, they are checked in order,
    /// each against the state its predecessor leaves, and those before the
    /// first invalid one are stored and become the head in **one** store
    /// transaction (a sync pays one commit for up to 64 blocks, not one
    /// each). Any other batch (a side branch, a reorg, blocks that do not
    /// chain) is imported block by block with [`BlockTree::import_from`],
    /// stopping at the first error.
    ///
    /// What a block that fails leaves: the blocks before it are stored, it
    /// and the rest are not ([`BatchImport::failed`]).
    pub fn import_batch(&mut self, blocks: &[SealedBlock], now_ms: u64) -> BatchImport {
        let known = blocks
            .iter()
            .take_while(|b| self.tree.contains_key(&b.id()))
            .count();
        let mut outcomes = vec![ImportOutcome::Known; known];
        let rest = &blocks[known..];
        let extends_head = rest.first().is_some_and(|b| b.header().parent == self.head.id)
            && rest.windows(2).all(|w| w[1].header().parent == w[0].id());
        let failed = if extends_head {
            self.extend_head(rest, now_ms, &mut outcomes)
        } else {
            rest.iter().enumerate().find_map(|(i, block)| {
                match self.import_from(block, now_ms, Delivery::Requested) {
                    Ok(outcome) => {
                        outcomes.push(outcome);
                        None
                    }
                    Err(error) => Some((i, error)),
                }
            })
        };
        BatchImport {
            outcomes,
            failed: failed.map(|(i, error)| (known + i, error)),
        }
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

    fn connect(
        &mut self,
        block: &SealedBlock,
        now_ms: u64,
        delivery: Delivery,
    ) -> Result<ImportOutcome, ImportError> {
        let id = block.id();
        let parent_id = block.header().parent;
        let parent = self
            .tree
            .get(&parent_id)
            .ok_or(StoreError::Missing("a parent block"))?;
        let fork = self.fork_point(parent_id);
        fork_choice::check_fork_depth(&self.spec, self.head.meta.height.saturating_sub(fork.height))?;
        let checked = self.check_child(block, parent, now_ms)?;
        if delivery == Delivery::Pushed && parent_id != self.head.id {
            self.refuse_if_light(block, checked.meta())?;
        }
        let imported = if parent_id == self.head.id {
            validate_against_state(&self.spec, self.head.state.as_ref(), checked, block)?
        } else {
            self.branch_states += 1;
            let state = self.branch_state(&fork)?;
            validate_against_state(&self.spec, &state, checked, block)?
        };
        self.watch_for_equivocation(block);
        let switch = self.head_switch(parent_id, id, &imported.meta, fork);
        self.store.commit(&[(block, &imported)], switch.as_ref())?;
        self.remember(block, imported.meta);
        let Some(switch) = switch else {
            return Ok(ImportOutcome::SideBranch);
        };
        let rolled_back = self.adopt_head(id, &switch)?;
        if rolled_back > 0 {
            self.reorgs.push(rolled_back);
            info!(height = self.head.meta.height, head = %id.short(), rolled_back, "reorg");
        }
        Ok(ImportOutcome::NewHead { rolled_back })
    }

    /// The fast path of [`BlockTree::import_batch`]: `blocks` extend the
    /// head one after the other. Each is checked as [`BlockTree::connect`]
    /// checks a child of the head (its fork depth is 0 and it is asked
    /// for, so neither the rollback limit nor the light-branch rule can
    /// refuse it), against the state its predecessor in the batch leaves:
    /// the head's state with the change sets of the blocks before it
    /// applied ([`Layered`]). The valid ones are stored and become the
    /// head in one store transaction; the first invalid one and the rest
    /// are not. Appends an outcome for each block stored; returns the
    /// index of the first block not stored, and why.
    fn extend_head(
        &mut self,
        blocks: &[SealedBlock],
        now_ms: u64,
        outcomes: &mut Vec<ImportOutcome>,
    ) -> Option<(usize, ImportError)> {
        let base = Arc::clone(&self.head.state);
        let mut state = Layered::new(base.as_ref());
        let mut timestamps = self.recent_timestamps(self.head.id);
        let mut valid: Vec<Imported> = Vec::with_capacity(blocks.len());
        let mut failed = None;
        for (i, block) in blocks.iter().enumerate() {
            let (header, meta) = match (i.checked_sub(1), valid.last()) {
                (Some(prev), Some(imported)) => (blocks[prev].header(), &imported.meta),
                _ => (&self.head.header, &self.head.meta),
            };
            let parent = Parent {
                id: block.header().parent,
                header,
                meta,
                recent_timestamps: &timestamps,
            };
            let checked = check_header(&self.spec, &parent, block, now_ms)
                .and_then(|checked| validate_against_state(&self.spec, &state, checked, block))
                .and_then(|imported| {
                    state
                        .apply(&imported.changes)
                        .map(|()| imported)
                        .map_err(BlockError::State)
                });
            match checked {
                Ok(imported) => {
                    self.watch_for_equivocation(block);
                    timestamps.push(block.header().timestamp_ms);
                    if timestamps.len() > MEDIAN_TIME_SPAN {
                        timestamps.remove(0);
                    }
                    valid.push(imported);
                }
                Err(error) => {
                    failed = Some((i, error.into()));
                    break;
                }
            }
        }
        let Some(last) = valid.last() else {
            return failed;
        };
        let stored_count = valid.len();
        let last_id = blocks[stored_count - 1].id();
        debug!(
            blocks = valid.len(),
            height = last.meta.height,
            "committing a batch"
        );
        let canonical = blocks
            .iter()
            .zip(&valid)
            .map(|(b, v)| (v.meta.height, b.id()))
            .collect();
        let switch = self.head_move(self.head.meta.height, Vec::new(), canonical);
        let stored: Vec<(&SealedBlock, &Imported)> = blocks.iter().zip(&valid).collect();
        if let Err(error) = self.store.commit(&stored, Some(&switch)) {
            return Some((0, error.into()));
        }
        for (block, imported) in blocks.iter().zip(valid) {
            self.remember(block, imported.meta);
            outcomes.push(ImportOutcome::NewHead { rolled_back: 0 });
        }
        if let Err(error) = self.adopt_head(last_id, &switch) {
            // Stored, but the head's view could not be opened: as for a
            // single import, the blocks count as stored and the error is
            // the last one's.
            outcomes.pop();
            return Some((stored_count - 1, error.into()));
        }
        failed
    }

    /// Enters a stored block into the fork tree.
    fn remember(&mut self, block: &SealedBlock, meta: BlockMeta) {
        let id = block.id();
        self.by_height.entry(meta.height).or_default().push(id);
        self.tree.insert(
            id,
            TreeNode {
                header: block.header().clone(),
                meta,
            },
        );
    }

    /// After a commit that moved the head to the stored block `id` along
    /// `switch`: the best chain, the blocks it left (for the mempool), the
    /// pruning mark and the head's view. Returns the depth of the reorg.
    fn adopt_head(&mut self, id: Hash, switch: &HeadMove) -> Result<u64, StoreError> {
        let node = self.tree.get(&id).ok_or(StoreError::Missing("the new head"))?;
        let fork_height = node.meta.height - switch.canonical.len() as u64;
        self.canonical.truncate(
            usize::try_from(fork_height)
                .unwrap_or(usize::MAX)
                .saturating_add(1),
        );
        self.canonical.extend(switch.canonical.iter().map(|(_, b)| *b));
        self.reverted.extend(switch.undo.iter().rev());
        self.pruned_through = switch.pruned_through;
        self.head = make_head(&self.spec, &self.store, id, node)?;
        Ok(switch.undo.len() as u64)
    }

    /// A pushed child of a light block: its fork depth, then its header
    /// against the light parent's; never a state, never stored.
    fn judge_light_child(&mut self, block: &SealedBlock, now_ms: u64) -> Result<ImportOutcome, ImportError> {
        let parent_id = block.header().parent;
        // Down the light blocks to the stored one the branch leaves from.
        let mut stored = parent_id;
        while let Some(node) = self.light.get(&stored) {
            stored = node.header.parent;
        }
        if !self.tree.contains_key(&stored) {
            return Ok(ImportOutcome::Orphan);
        }
        let fork = self.fork_point(stored);
        fork_choice::check_fork_depth(&self.spec, self.head.meta.height.saturating_sub(fork.height))?;
        let Some(parent) = self.light.get(&parent_id) else {
            return Ok(ImportOutcome::Orphan);
        };
        let checked = self.check_child(block, parent, now_ms)?;
        self.refuse_if_light(block, checked.meta())?;
        // It could contend, but its parent was never stored: the branch
        // has to come by sync.
        Ok(ImportOutcome::Orphan)
    }

    /// The checks of `block` that need no state ([`check_header`]), against
    /// its `parent`, stored or light.
    fn check_child(
        &self,
        block: &SealedBlock,
        parent: &TreeNode,
        now_ms: u64,
    ) -> Result<CheckedHeader, BlockError> {
        let parent_id = block.header().parent;
        let timestamps = self.recent_timestamps(parent_id);
        let parent_view = Parent {
            id: parent_id,
            header: &parent.header,
            meta: &parent.meta,
            recent_timestamps: &timestamps,
        };
        check_header(&self.spec, &parent_view, block, now_ms)
    }

    /// [`fork_choice::check_branch_work`] against the best chain's block
    /// `SIDE_BRANCH_LAG` below the head; a light block's header is
    /// remembered.
    fn refuse_if_light(&mut self, block: &SealedBlock, meta: &BlockMeta) -> Result<(), BlockError> {
        let floor_height = self.head.meta.height.saturating_sub(fork_choice::SIDE_BRANCH_LAG);
        let floor = usize::try_from(floor_height)
            .ok()
            .and_then(|h| self.canonical.get(h))
            .and_then(|id| self.tree.get(id))
            .map_or_else(|| self.head.meta.clone(), |node| node.meta.clone());
        fork_choice::check_branch_work(&self.spec, meta, &floor).inspect_err(|_| {
            debug!(block = %block.id().short(), height = meta.height, "light side block: not stored");
            self.light.insert(
                block.id(),
                TreeNode {
                    header: block.header().clone(),
                    meta: meta.clone(),
                },
            );
        })
    }

    /// Where `id`'s branch meets the best chain.
    fn fork_point(&self, id: Hash) -> ForkPoint {
        let mut side = Vec::new();
        let mut cursor = id;
        while let Some(node) = self.tree.get(&cursor) {
            if self.is_canonical(cursor, node.meta.height) {
                side.reverse();
                return ForkPoint {
                    height: node.meta.height,
                    side,
                };
            }
            side.push(cursor);
            cursor = node.header.parent;
        }
        // Every stored block descends from genesis, which is canonical.
        side.reverse();
        ForkPoint { height: 0, side }
    }

    fn is_canonical(&self, id: Hash, height: u64) -> bool {
        usize::try_from(height).ok().and_then(|h| self.canonical.get(h)) == Some(&id)
    }

    /// The state after the last block of `fork.side` (or after the fork
    /// point itself): the head's state with the best chain's change sets
    /// undone down to the fork point and the side branch's applied.
    fn branch_state(&self, fork: &ForkPoint) -> Result<Layered<'_>, ImportError> {
        let mut state = Layered::new(self.head.state.as_ref());
        let from = usize::try_from(fork.height)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        for id in self.canonical.get(from..).unwrap_or_default().iter().rev() {
            state.undo(&self.change_set(id)?).map_err(BlockError::State)?;
        }
        for id in &fork.side {
            state.apply(&self.change_set(id)?).map_err(BlockError::State)?;
        }
        Ok(state)
    }

    fn change_set(&self, id: &Hash) -> Result<klero_chain::state::ChangeSet, StoreError> {
        self.store.change_set(id)?.ok_or(StoreError::Missing(
            "the change set of a block in the reorg window",
        ))
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
    /// how the head moves (undo, redo, canonical index, pruning).
    fn head_switch(&self, parent_id: Hash, id: Hash, meta: &BlockMeta, fork: ForkPoint) -> Option<HeadMove> {
        if parent_id != self.head.id && !fork_choice::prefer(&self.spec, &self.head.meta, meta) {
            return None;
        }
        let mut canonical: Vec<(u64, Hash)> =
            fork.side.iter().map(|b| (self.tree[b].meta.height, *b)).collect();
        canonical.push((meta.height, id));
        Some(self.head_move(fork.height, fork.side, canonical))
    }

    /// How the head moves to the last of `canonical` (the `(height, id)`
    /// of every block above the fork point at `fork_height`, of which
    /// `redo` are already stored): the canonical blocks above the fork
    /// point are undone, and what falls out of the reorg window is pruned.
    fn head_move(&self, fork_height: u64, redo: Vec<Hash>, canonical: Vec<(u64, Hash)>) -> HeadMove {
        let from = usize::try_from(fork_height)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let undo: Vec<Hash> = self
            .canonical
            .get(from..)
            .unwrap_or_default()
            .iter()
            .rev()
            .copied()
            .collect();
        let new_height = canonical.last().map_or(fork_height, |(h, _)| *h);
        let mut head = HeadMove {
            undo,
            redo,
            canonical,
            old_height: self.head.meta.height,
            pruned_through: self.pruned_through,
            ..HeadMove::default()
        };
        if !self.archive {
            self.plan_pruning(&mut head, fork_height, new_height);
        }
        head
    }

    /// Rule 4 of docs/state.md: canonical blocks deeper than the window
    /// below the new head at `new_height` can never be undone; their stale
    /// nodes go, with their change sets and those of side blocks as deep.
    fn plan_pruning(&self, head: &mut HeadMove, fork_height: u64, new_height: u64) {
        let Some(limit) = new_height.checked_sub(self.spec.max_rollback().saturating_add(1)) else {
            return;
        };
        for height in self.pruned_through.saturating_add(1)..=limit {
            let id = if height <= fork_height {
                usize::try_from(height)
                    .ok()
                    .and_then(|h| self.canonical.get(h))
                    .copied()
            } else {
                head.canonical.iter().find(|(h, _)| *h == height).map(|(_, b)| *b)
            };
            let Some(id) = id else { continue };
            head.prune.push(id);
            let siblings = self.by_height.get(&height).into_iter().flatten();
            head.forget.extend(siblings.filter(|b| **b != id));
            head.pruned_through = height;
        }
    }

    /// Timestamps of up to [`MEDIAN_TIME_SPAN`] blocks ending at `id` (a
    /// stored or a light block), oldest first.
    fn recent_timestamps(&self, id: Hash) -> Vec<u64> {
        let mut out = Vec::with_capacity(MEDIAN_TIME_SPAN);
        let mut cursor = Some(id);
        while let Some(node) = cursor.and_then(|c| self.tree.get(&c).or_else(|| self.light.get(&c))) {
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

fn make_head(spec: &ChainSpec, store: &Store, id: Hash, node: &TreeNode) -> Result<Head, StoreError> {
    Ok(Head {
        id,
        header: node.header.clone(),
        meta: node.meta.clone(),
        state: Arc::new(store.head_state(node.header.state_root)?),
        epoch: spec.epoch_of(&node.header),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use klero_chain::pow::{meets_target, pow_hash};
    use klero_chain::produce;
    use klero_chain::spec::{Consensus, PowParams};
    use klero_chain::state::StateRead;
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
        open_with(&spec(), dir)
    }

    fn open_with(spec: &ChainSpec, dir: &std::path::Path) -> BlockTree {
        BlockTree::load(spec.clone(), Store::open(dir, spec).expect("store")).expect("chain")
    }

    /// [`spec`] with a reorg window of `max_rollback` blocks.
    fn spec_with_window(max_rollback: u64) -> ChainSpec {
        let mut spec = spec();
        if let Consensus::Pow(params) = &mut spec.consensus {
            params.max_rollback = max_rollback;
        }
        spec
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
                    .with_head_parent(|p, state| {
                        produce::pow_template(chain.spec(), p, state, txs, miner, ts)
                    })
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

    /// `block` with a nonce that misses its target (and so a bad signature too).
    fn without_work(block: &SealedBlock) -> klero_chain::Block {
        let mut block = block.clone().into_block();
        let pre = block.signed.header.pow_pre().expect("PoW");
        let klero_chain::types::Seal::Pow(seal) = &mut block.signed.header.seal else {
            panic!("a PoW block")
        };
        seal.nonce = (0..)
            .find(|n| !meets_target(&pow_hash(&pre, *n), &seal.target))
            .expect("a nonce that misses");
        block
    }

    fn rewards(chain: &BlockTree, key: &Keypair) -> u64 {
        chain
            .head()
            .state
            .account(&key.address())
            .expect("read")
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
        assert_eq!(a.head().state.root(), b.head().state.root());
        assert_eq!(
            a.store.recompute_root().expect("root"),
            b.head().header.state_root,
            "the flat tables hold the new branch's state"
        );
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
        assert_eq!(reopened.head().state.root(), b.head().state.root());
        assert_eq!(
            reopened.store.recompute_root().expect("root"),
            b.head().header.state_root
        );
    }

    /// `count` blocks mined on a fresh chain of `spec`, each with a transfer
    /// from alice to a fresh address (the state grows, so every change set
    /// adds and releases tree nodes).
    fn chain_of_transfers(spec: &ChainSpec, count: u64) -> Vec<SealedBlock> {
        let dir = tempfile::tempdir().expect("dir");
        let mut source = open_with(spec, dir.path());
        let alice = Keypair::dev("alice");
        let txs: Vec<Vec<Tx>> = (0..count)
            .map(|nonce| {
                let body = klero_chain::types::TxBody {
                    from: alice.address(),
                    nonce,
                    fee: 1,
                    kind: klero_chain::types::TxKind::Transfer {
                        to: Address(Hash::of(&nonce.to_le_bytes()).0),
                        amount: 3,
                    },
                };
                vec![Tx::sign(body, &alice, &spec.chain_id)]
            })
            .collect();
        mine_with(&mut source, &Keypair::dev("bob"), &txs)
    }

    #[test]
    fn a_batch_stores_what_block_by_block_import_stores() {
        // A window of 3 blocks, so the batch prunes inside itself too.
        let spec = spec_with_window(3);
        let load = |dir: &std::path::Path| open_with(&spec, dir);
        let blocks = chain_of_transfers(&spec, 9);
        let (dir_one, dir_batch) = (
            tempfile::tempdir().expect("one"),
            tempfile::tempdir().expect("batch"),
        );
        let mut one = load(dir_one.path());
        let mut batch = load(dir_batch.path());
        for block in &blocks {
            one.import(block.clone(), u64::MAX / 2).expect("one by one");
        }
        // The first block in one batch, the other eight in another whose
        // first block is already stored (as a sync response starts).
        assert_eq!(
            batch.import_batch(&blocks[..1], u64::MAX / 2).outcomes,
            vec![ImportOutcome::NewHead { rolled_back: 0 }]
        );
        let result = batch.import_batch(&blocks, u64::MAX / 2);
        assert!(result.failed.is_none(), "{:?}", result.failed);
        let mut expected = vec![ImportOutcome::NewHead { rolled_back: 0 }; 9];
        expected[0] = ImportOutcome::Known;
        assert_eq!(result.outcomes, expected);

        assert_eq!(batch.head().id, one.head().id);
        assert_eq!(batch.head().id, blocks[8].id());
        assert_eq!(batch.head().state.root(), one.head().state.root());
        assert_eq!(
            batch.store.recompute_root().expect("root"),
            blocks[8].header().state_root
        );
        for (height, block) in (1..).zip(&blocks) {
            let id = block.id();
            assert_eq!(batch.store.canonical(height).expect("canon"), Some(id));
            assert_eq!(
                batch.store.change_set(&id).expect("read"),
                one.store.change_set(&id).expect("read"),
                "the change set of block {height}"
            );
        }
        assert_eq!(
            batch.store.change_set_count().expect("count"),
            4,
            "pruned to the window"
        );
        assert_eq!(
            batch.store.change_set_count().expect("count"),
            one.store.change_set_count().expect("count")
        );
        assert_eq!(
            batch.store.node_count().expect("count"),
            one.store.node_count().expect("count")
        );
        assert_eq!(batch.pruned_through, one.pruned_through);
        assert_eq!(batch.canonical, one.canonical);

        // The batch's blocks can be undone like any: a depth-3 reorg.
        let dir_rival = tempfile::tempdir().expect("rival");
        let mut rival = load(dir_rival.path());
        for block in &blocks[..6] {
            rival.import(block.clone(), u64::MAX / 2).expect("shared prefix");
        }
        let heavier = mine(&mut rival, &Keypair::dev("carol"), 4);
        for block in &heavier {
            batch.import(block.clone(), u64::MAX / 2).expect("rival block");
        }
        assert_eq!(batch.take_reorgs(), vec![3]);
        assert_eq!(batch.head().id, rival.head().id);
        assert_eq!(
            batch.store.recompute_root().expect("root"),
            rival.head().header.state_root
        );
    }

    #[test]
    fn a_batch_whose_fifth_block_is_forged_stores_the_four_before_it() {
        let spec = spec();
        let blocks = chain_of_transfers(&spec, 8);
        let dir = tempfile::tempdir().expect("dir");
        let mut a = open(dir.path());
        let mut forged: Vec<SealedBlock> = blocks.clone();
        let mut fifth = forged[4].clone().into_block();
        fifth.signed.signature.0[0] ^= 1;
        forged[4] = fifth.seal();

        let result = a.import_batch(&forged, u64::MAX / 2);
        assert_eq!(
            result.outcomes,
            vec![ImportOutcome::NewHead { rolled_back: 0 }; 4]
        );
        let Some((index, error)) = result.failed else {
            panic!("the forged block was accepted")
        };
        assert_eq!(index, 4, "the error names the fifth block");
        assert!(
            matches!(error, ImportError::Invalid(BlockError::BadSignature(_))),
            "{error}"
        );
        assert_eq!(a.head().id, blocks[3].id());
        assert_eq!(a.head().state.root(), blocks[3].header().state_root);
        for block in &forged[4..] {
            assert!(!a.contains(&block.id()));
            assert!(a.store.block(&block.id()).expect("read").is_none(), "not stored");
            assert!(a.store.change_set(&block.id()).expect("read").is_none());
        }
        assert_eq!(a.store.canonical(5).expect("canon"), None);

        // On disk too: reopened, the store is at the fourth block.
        drop(a);
        let mut a = open(dir.path());
        assert_eq!(a.head().id, blocks[3].id());
        assert_eq!(
            a.store.recompute_root().expect("root"),
            blocks[3].header().state_root
        );
        // The real blocks then follow in another batch.
        let result = a.import_batch(&blocks[4..], u64::MAX / 2);
        assert!(result.failed.is_none(), "{:?}", result.failed);
        assert_eq!(a.head().id, blocks[7].id());
    }

    #[test]
    fn a_batch_that_does_not_extend_the_head_is_imported_block_by_block() {
        let (dir_a, dir_b) = (tempfile::tempdir().expect("a"), tempfile::tempdir().expect("b"));
        let mut a = open(dir_a.path());
        mine(&mut a, &Keypair::dev("alice"), 2);
        let mut b = open(dir_b.path());
        let branch = mine(&mut b, &Keypair::dev("bob"), 3);
        // From genesis: a side branch first, then a reorg of depth 2.
        let result = a.import_batch(&branch, u64::MAX / 2);
        assert!(result.failed.is_none(), "{:?}", result.failed);
        assert_eq!(
            result.outcomes,
            vec![
                ImportOutcome::SideBranch,
                ImportOutcome::SideBranch,
                ImportOutcome::NewHead { rolled_back: 2 }
            ]
        );
        assert_eq!(a.head().id, b.head().id);
        assert_eq!(a.take_reorgs(), vec![2]);
    }

    #[test]
    fn a_bad_seal_on_a_side_branch_reads_no_state() {
        let (dir_a, dir_b) = (tempfile::tempdir().expect("a"), tempfile::tempdir().expect("b"));
        let mut a = open(dir_a.path());
        mine(&mut a, &Keypair::dev("alice"), 3);
        let mut b = open(dir_b.path());
        let branch = mine(&mut b, &Keypair::dev("bob"), 2);
        assert_eq!(
            a.import(branch[0].clone(), u64::MAX / 2).expect("side"),
            ImportOutcome::SideBranch
        );
        assert_eq!(a.branch_states(), 1, "a side block's parent state is built");

        // The child of a side block, with a wrong signature, then a nonce
        // that misses the target: both refused before its parent's state.
        let mut bad_signature = branch[1].clone().into_block();
        bad_signature.signed.signature.0[0] ^= 1;
        let bad_seal = without_work(&branch[1]);
        for (forged, what) in [(bad_signature, "signature"), (bad_seal, "seal")] {
            let err = a.import(forged.seal(), u64::MAX / 2).expect_err(what);
            assert!(
                matches!(
                    err,
                    ImportError::Invalid(BlockError::BadSignature(_) | BlockError::InsufficientWork { .. })
                ),
                "{what}: {err}"
            );
            assert_eq!(a.branch_states(), 1, "{what}: no state was built for it");
        }
        assert_eq!(
            a.import(branch[1].clone(), u64::MAX / 2).expect("the real one"),
            ImportOutcome::SideBranch
        );
        assert_eq!(a.branch_states(), 2);
    }

    #[test]
    fn a_block_forking_deeper_than_max_rollback_is_refused_before_its_seal() {
        let spec = spec_with_window(5);
        let load = |dir: &std::path::Path| open_with(&spec, dir);
        let (dir_a, dir_b) = (tempfile::tempdir().expect("a"), tempfile::tempdir().expect("b"));
        let mut a = load(dir_a.path());
        mine(&mut a, &Keypair::dev("alice"), 8);
        let mut b = load(dir_b.path());
        let deep = mine(&mut b, &Keypair::dev("bob"), 1).remove(0);
        // A no-work copy: its nonce misses the target.
        let no_work = without_work(&deep);
        let (blocks, change_sets) = (a.tree.len(), a.store.change_set_count().expect("count"));
        for block in [deep, no_work.seal()] {
            let err = a.import(block.clone(), u64::MAX / 2).expect_err("too deep");
            assert!(
                matches!(
                    err,
                    ImportError::Invalid(BlockError::ForkTooDeep { depth: 8, max: 5 })
                ),
                "{err}"
            );
            assert!(a.store.block(&block.id()).expect("read").is_none(), "not stored");
        }
        assert_eq!(a.tree.len(), blocks);
        assert_eq!(a.store.change_set_count().expect("count"), change_sets);
        assert_eq!(a.branch_states(), 0);
    }

    #[test]
    fn a_pushed_side_block_far_behind_in_work_is_refused_unstored_as_are_its_children() {
        let (dir_a, dir_b) = (tempfile::tempdir().expect("a"), tempfile::tempdir().expect("b"));
        let mut a = open(dir_a.path());
        let ours = mine(&mut a, &Keypair::dev("alice"), fork_choice::SIDE_BRANCH_LAG + 3);
        let mut b = open(dir_b.path());
        let branch = mine(&mut b, &Keypair::dev("bob"), 2);
        let (blocks, change_sets) = (a.tree.len(), a.store.change_set_count().expect("count"));
        // Pushed: forking at genesis, nine blocks of work behind the head.
        let light = |err: ImportError| matches!(err, ImportError::Invalid(BlockError::LightBranch { .. }));
        for block in &branch {
            let err = a
                .import_from(block, u64::MAX / 2, Delivery::Pushed)
                .expect_err("light");
            assert!(light(err), "height {}", block.header().height);
        }
        // A child of the light block is still checked for its seal first.
        let forged = without_work(&branch[1]).seal();
        let err = a
            .import_from(&forged, u64::MAX / 2, Delivery::Pushed)
            .expect_err("no work");
        assert!(
            matches!(err, ImportError::Invalid(BlockError::InsufficientWork { .. })),
            "{err}"
        );
        assert_eq!(a.tree.len(), blocks, "nothing stored");
        assert_eq!(a.store.change_set_count().expect("count"), change_sets);
        assert_eq!(a.branch_states(), 0, "no state built for them");

        // Asked for (as sync asks for a heavier branch), the same blocks are
        // stored: a branch whose first blocks trail the head still arrives.
        for block in &branch {
            assert_eq!(
                a.import(block.clone(), u64::MAX / 2).expect("requested"),
                ImportOutcome::SideBranch
            );
        }
        // A pushed side block two blocks below the head is kept.
        let dir_c = tempfile::tempdir().expect("c");
        let mut c = open(dir_c.path());
        for block in &ours[..ours.len() - 2] {
            c.import(block.clone(), u64::MAX / 2).expect("shared prefix");
        }
        let near = mine(&mut c, &Keypair::dev("carol"), 1).remove(0);
        assert_eq!(
            a.import_from(&near, u64::MAX / 2, Delivery::Pushed)
                .expect("near"),
            ImportOutcome::SideBranch
        );
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
        let (a, b) = chain.with_head_parent(|parent, state| {
            let claim = (1..10_000)
                .find_map(|slot| produce::pos_claim(&spec, parent, state, &alice, slot))
                .expect("alice wins some slot");
            let empty = produce::pos_block(&spec, parent, state, &alice, &claim, &[]).expect("block a");
            let full = produce::pos_block(&spec, parent, state, &alice, &claim, std::slice::from_ref(&tx))
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
