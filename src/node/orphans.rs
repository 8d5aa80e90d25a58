//! The orphan pool: blocks whose parent has not arrived yet, kept outside
//! the block tree and connected as soon as the parent is stored.
//!
//! [`Orphans::import`] is the block tree's import with the pool in front:
//! a block with an unknown parent waits here; a block that connects pulls
//! in every waiting descendant after it.
//!
//! An orphan costs its sender, not everyone: each peer may have
//! [`MAX_PER_PEER`] orphans of [`MAX_BYTES_PER_PEER`] waiting, and a peer
//! over its share loses its own oldest. When the pool as a whole is over
//! [`MAX_ORPHANS`] or [`MAX_BYTES`], the oldest orphan of the peer holding
//! the most bytes goes. So orphans that never connect only ever push out
//! their own sender's, and a flood from one peer cannot evict the orphans
//! an honest peer is about to connect. (They are not strikes: while a node
//! is far behind, every block an honest peer gossips is an orphan.)

use std::collections::{HashMap, VecDeque};

use klero_chain::{Hash, SealedBlock, codec};
use libp2p::PeerId;
use tracing::{debug, warn};

use super::block_tree::{BatchImport, BlockTree, Delivery, ImportError, ImportOutcome};

/// Most blocks waiting for their parent.
const MAX_ORPHANS: usize = 512;
/// Most encoded bytes of blocks waiting for their parent.
const MAX_BYTES: usize = 64 << 20;
/// Most orphans one peer may have waiting.
const MAX_PER_PEER: usize = 64;
/// Most orphan bytes one peer may have waiting.
const MAX_BYTES_PER_PEER: usize = 8 << 20;

/// Who sent an orphan: a peer, or `None` for the node itself (sync
/// batches, tests).
type Sender = Option<PeerId>;

#[derive(Debug)]
struct Orphan {
    block: SealedBlock,
    from: Sender,
    bytes: usize,
}

/// What one sender has waiting, oldest first.
#[derive(Debug, Default)]
struct Share {
    ids: VecDeque<Hash>,
    bytes: usize,
}

/// Blocks waiting for their parent.
#[derive(Debug, Default)]
pub(crate) struct Orphans {
    blocks: HashMap<Hash, Orphan>,
    by_parent: HashMap<Hash, Vec<Hash>>,
    by_sender: HashMap<Sender, Share>,
    bytes: usize,
}

impl Orphans {
    /// How many orphans wait.
    pub(crate) fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Their encoded bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Imports `block` (sent by `from`) into `tree`, or keeps it here if
    /// its parent is unknown; once it is stored, the orphans waiting for it
    /// follow. The outcome is the block's own; orphans connected after it
    /// are logged.
    ///
    /// # Errors
    ///
    /// As [`BlockTree::import`], for `block` itself.
    pub(crate) fn import(
        &mut self,
        tree: &mut BlockTree,
        block: SealedBlock,
        from: Sender,
        now_ms: u64,
    ) -> Result<ImportOutcome, ImportError> {
        let outcome = tree.import_from(&block, now_ms, delivery(from))?;
        self.after(tree, block, from, outcome, now_ms);
        Ok(outcome)
    }

    /// [`Orphans::import`] for a sync batch ([`BlockTree::import_batch`]):
    /// the blocks it leaves orphaned wait here, and the orphans waiting
    /// for the blocks it stores follow them.
    pub(crate) fn import_batch(
        &mut self,
        tree: &mut BlockTree,
        blocks: Vec<SealedBlock>,
        now_ms: u64,
    ) -> BatchImport {
        let batch = tree.import_batch(&blocks, now_ms);
        for (block, outcome) in blocks.into_iter().zip(&batch.outcomes) {
            self.after(tree, block, None, *outcome, now_ms);
        }
        batch
    }

    /// Keeps `block` if its import left it an orphan; connects the orphans
    /// waiting for it if it was stored.
    fn after(
        &mut self,
        tree: &mut BlockTree,
        block: SealedBlock,
        from: Sender,
        outcome: ImportOutcome,
        now_ms: u64,
    ) {
        match outcome {
            ImportOutcome::Orphan => self.insert(block, from),
            ImportOutcome::NewHead { .. } | ImportOutcome::SideBranch => {
                let mut ready = self.children_of(&block.id());
                while let Some((child, from)) = ready.pop() {
                    let child_id = child.id();
                    match tree.import_from(&child, now_ms, delivery(from)) {
                        Ok(_) => ready.extend(self.children_of(&child_id)),
                        Err(error) => warn!(block = %child_id.short(), %error, "orphan rejected"),
                    }
                }
            }
            ImportOutcome::Known => {}
        }
    }

    fn insert(&mut self, block: SealedBlock, from: Sender) {
        let id = block.id();
        if self.blocks.contains_key(&id) {
            return;
        }
        let bytes = codec::encode(block.block()).len();
        self.by_parent.entry(block.header().parent).or_default().push(id);
        let share = self.by_sender.entry(from).or_default();
        share.ids.push_back(id);
        share.bytes += bytes;
        self.bytes += bytes;
        self.blocks.insert(id, Orphan { block, from, bytes });
        while let Some(share) = self.by_sender.get(&from)
            && (share.ids.len() > MAX_PER_PEER || share.bytes > MAX_BYTES_PER_PEER)
        {
            self.evict_oldest_of(from);
        }
        while self.blocks.len() > MAX_ORPHANS || self.bytes > MAX_BYTES {
            let Some(heaviest) = self
                .by_sender
                .iter()
                .max_by_key(|(_, share)| share.bytes)
                .map(|(sender, _)| *sender)
            else {
                break;
            };
            self.evict_oldest_of(heaviest);
        }
    }

    fn evict_oldest_of(&mut self, sender: Sender) {
        let oldest = self.by_sender.get_mut(&sender).and_then(|s| s.ids.pop_front());
        if let Some(id) = oldest {
            debug!(block = %id.short(), ?sender, "orphan evicted");
            self.remove(&id);
        }
    }

    /// Takes the orphans waiting for `parent` out of the pool, with their
    /// senders.
    fn children_of(&mut self, parent: &Hash) -> Vec<(SealedBlock, Sender)> {
        let ids = self.by_parent.remove(parent).unwrap_or_default();
        ids.iter().filter_map(|id| self.remove(id)).collect()
    }

    /// Forgets one orphan everywhere; its block and sender, if it was here.
    fn remove(&mut self, id: &Hash) -> Option<(SealedBlock, Sender)> {
        let orphan = self.blocks.remove(id)?;
        self.bytes -= orphan.bytes;
        if let Some(share) = self.by_sender.get_mut(&orphan.from) {
            share.ids.retain(|other| other != id);
            share.bytes -= orphan.bytes;
            if share.ids.is_empty() {
                self.by_sender.remove(&orphan.from);
            }
        }
        let parent = orphan.block.header().parent;
        if let Some(siblings) = self.by_parent.get_mut(&parent) {
            siblings.retain(|other| other != id);
            if siblings.is_empty() {
                self.by_parent.remove(&parent);
            }
        }
        Some((orphan.block, orphan.from))
    }
}

/// A peer's block was pushed to us; the node's own (sync, tests) were asked for.
fn delivery(from: Sender) -> Delivery {
    if from.is_some() {
        Delivery::Pushed
    } else {
        Delivery::Requested
    }
}

#[cfg(test)]
mod tests {
    use klero_chain::types::{Block, Header, PowSeal, Seal, SignedHeader};
    use klero_chain::{Address, Keypair};

    use super::*;

    /// A decodable block (tagged `tag`) whose parent, the hash of
    /// `parent_tag`, nobody has: the pool never validates.
    fn orphan(tag: u64, parent_tag: u64) -> SealedBlock {
        let header = Header {
            height: tag,
            parent: Hash::of(&parent_tag.to_le_bytes()),
            timestamp_ms: 0,
            tx_root: Hash::ZERO,
            state_root: Hash::ZERO,
            proposer: Address([1; 32]),
            seal: Seal::Pow(PowSeal {
                target: [0xff; 32],
                nonce: tag,
            }),
        };
        Block {
            signed: SignedHeader::sign(header, &Keypair::dev("orphan-maker"), "test"),
            txs: Vec::new(),
        }
        .seal()
    }

    fn peer() -> Sender {
        Some(PeerId::random())
    }

    #[test]
    fn a_flooding_peer_pushes_out_only_its_own_orphans() {
        let mut pool = Orphans::default();
        let honest = peer();
        let waiting = orphan(1, 1_000);
        pool.insert(waiting.clone(), honest);
        let flooder = peer();
        for tag in 0..10 * MAX_PER_PEER as u64 {
            pool.insert(orphan(10_000 + tag, 20_000 + tag), flooder);
        }
        assert_eq!(pool.len(), MAX_PER_PEER + 1);
        assert_eq!(pool.by_sender[&flooder].ids.len(), MAX_PER_PEER);
        // The newest of the flood stay, the honest one was never touched.
        assert!(pool.blocks.contains_key(&waiting.id()));
        let newest = orphan(
            10_000 + 10 * MAX_PER_PEER as u64 - 1,
            20_000 + 10 * MAX_PER_PEER as u64 - 1,
        );
        assert!(pool.blocks.contains_key(&newest.id()));
        assert_eq!(
            pool.children_of(&waiting.header().parent),
            vec![(waiting, honest)]
        );
        assert_eq!(pool.len(), MAX_PER_PEER);
    }

    #[test]
    fn many_peers_together_stay_under_the_global_bound() {
        let mut pool = Orphans::default();
        for p in 0..2 * MAX_ORPHANS / MAX_PER_PEER {
            let from = peer();
            for tag in 0..MAX_PER_PEER as u64 {
                let tag = (p as u64) << 32 | tag;
                pool.insert(orphan(tag, tag), from);
            }
        }
        assert_eq!(pool.len(), MAX_ORPHANS);
        let counted: usize = pool.blocks.values().map(|o| o.bytes).sum();
        assert_eq!(pool.bytes(), counted);
        assert!(pool.bytes() <= MAX_BYTES);
    }

    #[test]
    fn connecting_removes_every_trace() {
        let mut pool = Orphans::default();
        let from = peer();
        let (a, b) = (orphan(1, 7), orphan(2, 7));
        pool.insert(a.clone(), from);
        pool.insert(b.clone(), from);
        pool.insert(a.clone(), from);
        assert_eq!(pool.len(), 2);
        let mut children = pool.children_of(&a.header().parent);
        children.sort_by_key(|(b, _)| b.header().height);
        assert_eq!(children, vec![(a, from), (b, from)]);
        assert_eq!((pool.len(), pool.bytes()), (0, 0));
        assert!(pool.by_sender.is_empty() && pool.by_parent.is_empty());
    }
}
