//! What the chain task saw lately, for the explorer, the API and the
//! metrics: a ring of recently imported blocks (so side branches show
//! beside the canonical ones), a ring of recent reorgs, and statistics of
//! the best chain's last blocks (wins per proposer against their stake,
//! slot fill, blocks off the best chain).
//!
//! Only the chain task writes it, after each import; readers copy what
//! they need out under a std mutex that is never held across an await.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use klero_chain::state::StateRead;
use klero_chain::types::Seal;
use klero_chain::{Address, Hash, SealedBlock};

use super::block_tree::BlockTree;

/// Reorgs remembered.
pub(crate) const REORG_RING: usize = 32;
/// Imported blocks remembered (a few minutes of a fast testnet).
const BLOCK_RING: usize = 256;
/// Best-chain blocks the statistics look back over.
pub(crate) const STATS_WINDOW: usize = 256;

/// A block as a list shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RecentBlock {
    pub id: Hash,
    pub height: u64,
    pub parent: Hash,
    pub timestamp_ms: u64,
    pub proposer: Address,
    pub tx_count: u64,
    pub slot: Option<u64>,
    pub nonce: Option<u64>,
}

impl RecentBlock {
    /// The summary of `block`.
    pub(crate) fn of(block: &SealedBlock) -> RecentBlock {
        let header = block.header();
        RecentBlock {
            id: block.id(),
            height: header.height,
            parent: header.parent,
            timestamp_ms: header.timestamp_ms,
            proposer: header.proposer,
            tx_count: block.block().txs.len() as u64,
            slot: header.slot(),
            nonce: match &header.seal {
                Seal::Pow(seal) => Some(seal.nonce),
                Seal::Pos(_) => None,
            },
        }
    }
}

/// One head switch to another branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reorg {
    pub at_ms: u64,
    pub depth: u64,
    pub old_head: Hash,
    pub old_height: u64,
    pub new_head: Hash,
    pub new_height: u64,
}

impl Reorg {
    /// The height of the last block both branches share.
    pub(crate) fn fork_height(&self) -> u64 {
        self.old_height.saturating_sub(self.depth)
    }
}

/// One proposer in [`ChainStats`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProposerStat {
    pub address: Address,
    /// Blocks won in the window.
    pub window_wins: u64,
    /// Best-chain blocks since genesis (the head state's count).
    pub blocks_won: u64,
    /// Stake in the head epoch's draw snapshot (PoS).
    pub stake: Option<u64>,
}

/// The best chain's recent statistics, as of the last import.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ChainStats {
    /// The head's slot (PoS).
    pub head_slot: Option<u64>,
    /// Blocks in the window.
    pub window_blocks: u64,
    /// Slots the window spans (PoS).
    pub window_slots: Option<u64>,
    /// Total stake of the head epoch's snapshot (PoS).
    pub total_stake: Option<u64>,
    /// By address.
    pub proposers: Vec<ProposerStat>,
    /// Stored blocks not on the best chain.
    pub orphaned: u64,
}

impl ChainStats {
    /// The statistics of `tree`'s best chain now.
    pub(crate) fn of(tree: &BlockTree) -> ChainStats {
        let head = tree.head();
        let pos = head.header.slot().is_some();
        let mut wins: BTreeMap<Address, u64> = BTreeMap::new();
        let mut window_blocks = 0u64;
        // The slot before the window: the parent of its oldest block.
        let mut floor_slot = 0;
        let mut chain = tree.best_chain().filter(|h| h.height > 0);
        for header in chain.by_ref().take(STATS_WINDOW) {
            *wins.entry(header.proposer).or_default() += 1;
            window_blocks += 1;
        }
        if let Some(before) = chain.next() {
            floor_slot = before.slot().unwrap_or(0);
        }
        // A head state that cannot be read shows an empty snapshot and no
        // wins: statistics, never a reason to fail.
        let snapshot = head
            .state
            .epoch_info()
            .and_then(|info| head.state.snapshot(info.epoch))
            .ok()
            .flatten()
            .unwrap_or_default();
        if pos {
            for staker in snapshot.stakers() {
                wins.entry(staker.address).or_default();
            }
        }
        let proposers = wins
            .into_iter()
            .map(|(address, window_wins)| ProposerStat {
                address,
                window_wins,
                blocks_won: head
                    .state
                    .account(&address)
                    .ok()
                    .flatten()
                    .map_or(0, |a| a.blocks_proposed),
                stake: pos.then(|| snapshot.get(&address).map_or(0, |s| s.stake)),
            })
            .collect();
        let best_chain_len = head.meta.height + 1;
        ChainStats {
            head_slot: head.header.slot(),
            window_blocks,
            window_slots: head.header.slot().map(|s| s.saturating_sub(floor_slot)),
            total_stake: pos.then(|| snapshot.total()),
            proposers,
            orphaned: (tree.stored_blocks() as u64).saturating_sub(best_chain_len),
        }
    }

    /// `window_blocks / window_slots` (PoS, once a slot has passed).
    pub(crate) fn slot_fill(&self) -> Option<f64> {
        self.window_slots
            .filter(|s| *s > 0)
            .map(|s| self.window_blocks as f64 / s as f64)
    }
}

/// The rings and the statistics.
#[derive(Debug, Default)]
pub(crate) struct Recent {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    blocks: VecDeque<RecentBlock>,
    reorgs: VecDeque<Reorg>,
    reorg_total: u64,
    stats: ChainStats,
}

impl Recent {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers an imported block.
    pub(crate) fn on_import(&self, block: RecentBlock) {
        let mut inner = self.lock();
        if inner.blocks.len() == BLOCK_RING {
            inner.blocks.pop_front();
        }
        inner.blocks.push_back(block);
    }

    /// Remembers a reorg.
    pub(crate) fn on_reorg(&self, reorg: Reorg) {
        let mut inner = self.lock();
        if inner.reorgs.len() == REORG_RING {
            inner.reorgs.pop_front();
        }
        inner.reorgs.push_back(reorg);
        inner.reorg_total += 1;
    }

    /// Replaces the statistics.
    pub(crate) fn set_stats(&self, stats: ChainStats) {
        self.lock().stats = stats;
    }

    /// The remembered blocks with a height in `range`.
    pub(crate) fn blocks_in(&self, range: std::ops::RangeInclusive<u64>) -> Vec<RecentBlock> {
        self.lock()
            .blocks
            .iter()
            .filter(|b| range.contains(&b.height))
            .cloned()
            .collect()
    }

    /// The remembered reorgs, newest first, and how many there were in all.
    pub(crate) fn reorgs(&self) -> (Vec<Reorg>, u64) {
        let inner = self.lock();
        (inner.reorgs.iter().rev().cloned().collect(), inner.reorg_total)
    }

    /// The statistics as of the last import.
    pub(crate) fn stats(&self) -> ChainStats {
        self.lock().stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use klero_chain::Keypair;

    use super::*;
    use crate::node::block_tree::tests::{mine, spec};
    use crate::node::store::Store;

    #[test]
    fn stats_count_wins_and_blocks_off_the_best_chain() {
        let (dir_a, dir_b) = (tempfile::tempdir().expect("a"), tempfile::tempdir().expect("b"));
        let spec = spec();
        let load = |dir: &std::path::Path| {
            BlockTree::load(spec.clone(), Store::open(dir, &spec).expect("store")).expect("tree")
        };
        let (alice, bob) = (Keypair::dev("alice"), Keypair::dev("bob"));
        let mut a = load(dir_a.path());
        mine(&mut a, &alice, 2);
        mine(&mut a, &bob, 1);
        let mut b = load(dir_b.path());
        let side = mine(&mut b, &bob, 1);
        a.import(side[0].clone(), u64::MAX / 2).expect("side branch");

        let stats = ChainStats::of(&a);
        assert_eq!(stats.window_blocks, 3);
        assert_eq!(stats.orphaned, 1, "bob's lone block lost");
        assert_eq!(
            (stats.head_slot, stats.slot_fill(), stats.total_stake),
            (None, None, None)
        );
        let wins: Vec<(Address, u64, u64)> = stats
            .proposers
            .iter()
            .map(|p| (p.address, p.window_wins, p.blocks_won))
            .collect();
        let mut expected = vec![(alice.address(), 2, 2), (bob.address(), 1, 1)];
        expected.sort();
        assert_eq!(wins, expected);
    }

    #[test]
    fn rings_keep_the_newest() {
        let recent = Recent::default();
        for depth in 0..(REORG_RING as u64 + 5) {
            recent.on_reorg(Reorg {
                at_ms: depth,
                depth,
                old_head: Hash::ZERO,
                old_height: 10 + depth,
                new_head: Hash::ZERO,
                new_height: 11 + depth,
            });
        }
        let (reorgs, total) = recent.reorgs();
        assert_eq!(total, REORG_RING as u64 + 5);
        assert_eq!(reorgs.len(), REORG_RING);
        assert_eq!(reorgs[0].depth, REORG_RING as u64 + 4, "newest first");
        assert_eq!(reorgs[0].fork_height(), 10);
    }
}
