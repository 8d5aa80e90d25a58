//! What the chain task saw lately, for the explorer, the API and the
//! metrics: a ring of recently imported blocks (so side branches show
//! beside the canonical ones), a ring of recent reorgs, and statistics of
//! the best chain's last blocks (wins per proposer against their stake,
//! slot fill, blocks off the best chain).
//!
//! The statistics list at most [`MAX_LISTED_PROPOSERS`] proposers one by
//! one and sum the rest ([`Others`]), so neither the work per import nor
//! `/metrics` and `/proposers` grow with the number of stakers.
//!
//! Only the chain task writes it, after each import; readers copy what
//! they need out under a std mutex that is never held across an await.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::sync::Mutex;

use klero_chain::epoch::StakeSnapshot;
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
/// Most proposers the statistics list one by one: those with the most
/// wins in the window, then (PoS) the most stake in the head epoch's
/// snapshot, then the lower address. The rest are summed in [`Others`].
pub(crate) const MAX_LISTED_PROPOSERS: usize = 64;

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

/// The proposers [`ChainStats`] does not list, summed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Others {
    /// How many: winners in the window or stakers in the snapshot.
    pub count: u64,
    /// Their blocks in the window.
    pub window_wins: u64,
    /// Their stake in the head epoch's draw snapshot (PoS).
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
    /// At most [`MAX_LISTED_PROPOSERS`], by address.
    pub proposers: Vec<ProposerStat>,
    /// The proposers not listed.
    pub others: Others,
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
        let snapshot = pos.then(|| {
            head.state
                .epoch_info()
                .and_then(|info| head.state.snapshot(info.epoch))
                .ok()
                .flatten()
                .unwrap_or_default()
        });
        let (listed, others) = list_proposers(&wins, snapshot.as_deref());
        let proposers = listed
            .into_iter()
            .map(|(address, window_wins, stake)| ProposerStat {
                address,
                window_wins,
                blocks_won: head
                    .state
                    .account(&address)
                    .ok()
                    .flatten()
                    .map_or(0, |a| a.blocks_proposed),
                stake,
            })
            .collect();
        let best_chain_len = head.meta.height + 1;
        ChainStats {
            head_slot: head.header.slot(),
            window_blocks,
            window_slots: head.header.slot().map(|s| s.saturating_sub(floor_slot)),
            total_stake: snapshot.as_ref().map(|s| s.total()),
            proposers,
            others,
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

/// The proposers to list, by address, as (address, window wins, stake),
/// and the rest summed: the [`MAX_LISTED_PROPOSERS`] with the most `wins`,
/// then the most stake in `snapshot` (PoS), then the lowest address.
/// Work: the winners, and one pass over the snapshot keeping the largest
/// stakes of those that won nothing.
fn list_proposers(
    wins: &BTreeMap<Address, u64>,
    snapshot: Option<&StakeSnapshot>,
) -> (Vec<(Address, u64, Option<u64>)>, Others) {
    let stake_of = |address: &Address| snapshot.map(|s| s.get(address).map_or(0, |s| s.stake));
    let mut ranked: Vec<(Address, u64, Option<u64>)> =
        wins.iter().map(|(a, w)| (*a, *w, stake_of(a))).collect();
    let mut count = ranked.len() as u64;
    if let Some(snapshot) = snapshot {
        // The largest stakes of those with no win, smallest on top.
        let mut top: BinaryHeap<Reverse<(u64, Reverse<Address>)>> = BinaryHeap::new();
        for staker in snapshot.stakers() {
            if wins.contains_key(&staker.address) {
                continue;
            }
            count += 1;
            top.push(Reverse((staker.stake, Reverse(staker.address))));
            if top.len() > MAX_LISTED_PROPOSERS {
                top.pop();
            }
        }
        ranked.extend(
            top.into_iter()
                .map(|Reverse((stake, Reverse(address)))| (address, 0, Some(stake))),
        );
    }
    ranked.sort_by_key(|(address, wins, stake)| (Reverse(*wins), Reverse(*stake), *address));
    ranked.truncate(MAX_LISTED_PROPOSERS);
    let listed_wins: u64 = ranked.iter().map(|(_, w, _)| w).sum();
    let listed_stake = ranked
        .iter()
        .filter_map(|(_, _, s)| *s)
        .fold(0u64, u64::saturating_add);
    let others = Others {
        count: count - ranked.len() as u64,
        window_wins: wins.values().sum::<u64>() - listed_wins,
        stake: snapshot.map(|s| s.total().saturating_sub(listed_stake)),
    };
    ranked.sort_by_key(|(address, _, _)| *address);
    (ranked, others)
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

    /// A chain of 10,000 minimum stakers: 64 listed (every winner first,
    /// then the largest stakes), the rest summed to the totals.
    #[test]
    fn many_stakers_are_listed_up_to_the_cap_and_the_rest_summed() {
        let address = |i: u64| Address(*blake3::hash(&i.to_le_bytes()).as_bytes());
        let stakers: Vec<_> = (0..10_000u64)
            .map(|i| klero_chain::epoch::Staker {
                address: address(i),
                vrf_key: klero_chain::vrf::VrfPublicKey([0; 32]),
                // Two stakers above the minimum.
                stake: 1_000 + if i < 2 { 500 } else { 0 },
            })
            .collect();
        let snapshot = StakeSnapshot::of(stakers);
        // 70 winners: more than the cap, so the last by wins fall out.
        let wins: BTreeMap<Address, u64> = (100..170u64).map(|i| (address(i), 1 + i % 3)).collect();
        let (listed, others) = list_proposers(&wins, Some(&snapshot));
        assert_eq!(listed.len(), MAX_LISTED_PROPOSERS);
        assert!(listed.windows(2).all(|w| w[0].0 < w[1].0), "by address");
        let least_listed_wins = listed.iter().map(|(_, w, _)| *w).min().expect("listed");
        let unlisted: Vec<u64> = wins
            .iter()
            .filter(|(a, _)| !listed.iter().any(|(l, _, _)| l == *a))
            .map(|(_, w)| *w)
            .collect();
        assert_eq!(
            unlisted.len(),
            70 - MAX_LISTED_PROPOSERS,
            "the cap leaves six winners out"
        );
        assert!(
            unlisted.iter().all(|w| *w <= least_listed_wins),
            "the most wins go first"
        );
        assert!(
            !listed.iter().any(|(a, _, _)| *a == address(0)),
            "winners before stake"
        );
        assert_eq!(others.count, 10_000 - MAX_LISTED_PROPOSERS as u64);
        let wins_total: u64 = wins.values().sum();
        let listed_wins: u64 = listed.iter().map(|(_, w, _)| w).sum();
        assert_eq!(others.window_wins, wins_total - listed_wins);
        let listed_stake: u64 = listed.iter().filter_map(|(_, _, s)| *s).sum();
        assert_eq!(others.stake, Some(snapshot.total() - listed_stake));

        // Few winners: the largest stakes fill the list.
        let few: BTreeMap<Address, u64> = [(address(500), 3)].into();
        let (listed, others) = list_proposers(&few, Some(&snapshot));
        assert_eq!(listed.len(), MAX_LISTED_PROPOSERS);
        for top in [address(0), address(1), address(500)] {
            assert!(listed.iter().any(|(a, _, _)| *a == top));
        }
        assert_eq!((others.count, others.window_wins), (10_000 - 64, 0));

        // PoW: only winners, no stake, nothing summed.
        let (listed, others) = list_proposers(&few, None);
        assert_eq!(listed, vec![(address(500), 3, None)]);
        assert_eq!(others, Others::default());
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
