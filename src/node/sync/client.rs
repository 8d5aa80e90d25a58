//! Catching up with peers.
//!
//! A peer is synced from when it connects, when it gossips a block whose
//! parent we lack, and every [`POLL_INTERVAL`] (which is how two halves of a
//! healed partition find each other's forks even when nobody is producing).
//! Each peer is synced in its own task, at most [`MAX_SYNCS`] at once and
//! one per peer, so a slow or lying peer delays nobody but itself.
//!
//! A sync asks the peer's status; if its head is unknown to us it fetches
//! the peer's canonical blocks in batches of [`MAX_SYNC_BLOCKS`] from our
//! height. When the peer's block there is not ours, the fork point is found
//! with one-header probes (no body is downloaded to find it): back off
//! from our height by doubling steps, then bisect, O(log depth) round
//! trips. Each response goes to the chain task
//! as one batch: the blocks that extend our head are stored in one commit,
//! any others one by one like any other block; fork choice decides.
//!
//! On PoW, a branch that leaves our best chain below the head comes
//! headers first, as Bitcoin Core syncs: the peer's signed headers from the
//! fork point, [`MAX_SYNC_HEADERS`] a request, are checked one after the
//! other (seal, target, signature:
//! [`HeaderChain`](klero_chain::validate::HeaderChain)) until the branch
//! carries more work than our head; only then are its bodies fetched, up
//! to the last header checked, and each must be the block its header
//! named. A branch whose headers run out (or pass [`MAX_PROOF_HEADERS`])
//! first is not downloaded: it could not become our head. So a peer can
//! make us store a side branch only with the work to overtake us, which is
//! the rule gossip holds pushed side blocks to, without refusing the
//! heavier half of a healed partition whose first blocks trail our head.
//! PoS branches have no headers-first step (a PoS header's eligibility
//! needs the parent's state); their fork point is held to the rollback
//! limit.
//!
//! A peer cannot keep the syncer busy for nothing:
//!
//! - every response must answer the request: blocks from the requested
//!   height, each the child of the one before, the first the child of the
//!   last block imported; anything else (the same 64 blocks again, blocks
//!   of another height) is a strike;
//! - a block that does not decode or breaks a rule is a strike;
//! - [`MAX_IDLE_ROUNDS`] batches in a row that bring nothing new end the
//!   sync with a strike;
//! - a sync that fails (those reasons, a timeout, a refusal, a head it
//!   claimed and never delivered) is not tried again from that peer for a
//!   back-off that doubles with each failure, up to [`MAX_BACKOFF`].
//!
//! Three strikes ban the peer (the gossip path's strikes). A claimed height
//! is never trusted on its own: the staker holds back only while a peer
//! keeps delivering valid blocks of a chain more than the rollback limit
//! ahead ([`super::SyncStatus`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use klero_chain::codec::{self, CodecError};
use klero_chain::fork_choice;
use klero_chain::types::SignedHeader;
use klero_chain::{Block, ChainSpec, Hash, SealedBlock};
use libp2p::PeerId;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{Fetching, SyncStatus};
use crate::node::block_tree::ImportOutcome;
use crate::node::chain_task::{ChainError, ChainHandle, now_ms};
use crate::node::gossip::decode_reason;
use crate::node::metrics::Metrics;
use crate::node::peers::Strikes;
use crate::node::stopped;
use crate::p2p::{MAX_SYNC_BLOCKS, MAX_SYNC_HEADERS, NetworkHandle, P2pError, SyncRequest, SyncResponse};

/// How often connected peers are asked for their status unprompted.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Most peers synced from at once.
const MAX_SYNCS: usize = 4;
/// Batches in a row that bring no new block before a sync gives up.
const MAX_IDLE_ROUNDS: u32 = 2;
/// Longest wait before a peer whose syncs keep failing is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(120);
/// Most headers one sync checks for branches that may overtake our head:
/// forty times the dev specs' rollback limit, room for a heavier branch
/// whose blocks each carry far less work than ours.
const MAX_PROOF_HEADERS: usize = 4096;

/// Why a sync from one peer stopped early.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Network(#[from] P2pError),
    #[error("peer is on another chain (genesis {0})")]
    OtherChain(Hash),
    #[error("peer sent an undecodable block: {0}")]
    Decode(#[from] CodecError),
    #[error("peer sent a block we could not import: {0}")]
    Import(ChainError),
    #[error("peer refused the request")]
    Refused,
    #[error("peer's response does not answer the request: {0}")]
    Unanswered(&'static str),
    #[error("{MAX_IDLE_ROUNDS} batches in a row brought nothing new")]
    NoProgress,
    #[error("peer claimed head {0} and did not deliver it")]
    Unproven(Hash),
    #[error(
        "peer's branch from height {from}, {headers} headers checked, carries no more work than our head"
    )]
    Lighter { from: u64, headers: usize },
    #[error("the chain task has stopped")]
    Stopped,
}

impl SyncError {
    /// Whether the peer did something no honest peer does.
    fn is_peer_fault(&self) -> bool {
        match self {
            SyncError::Decode(_) | SyncError::Unanswered(_) | SyncError::NoProgress => true,
            SyncError::Import(ChainError::Invalid(error)) => error.is_peer_fault(),
            _ => false,
        }
    }
}

impl From<ChainError> for SyncError {
    fn from(error: ChainError) -> Self {
        match error {
            ChainError::Stopped => SyncError::Stopped,
            error => SyncError::Import(error),
        }
    }
}

/// The sync task.
pub(crate) struct Syncer {
    /// The chain task.
    pub chain: ChainHandle,
    /// The network.
    pub net: NetworkHandle,
    /// Our genesis id.
    pub genesis: Hash,
    /// What `/status` and the staker read.
    pub status: Arc<SyncStatus>,
    /// Strikes against peers that send invalid blocks.
    pub strikes: Strikes,
    /// Counters (refused blocks by reason).
    pub metrics: Arc<Metrics>,
    /// How far behind a proven chain the staker may be and still produce:
    /// the PoS rollback limit.
    pub max_rollback: u64,
    /// The chain spec (headers-first sync checks PoW headers with it).
    pub spec: Arc<ChainSpec>,
}

/// The part of a peer's branch its headers proved heavier than our head:
/// the ids of its blocks from height `from`.
#[derive(Debug)]
struct Proven {
    from: u64,
    ids: Vec<Hash>,
}

impl Proven {
    fn covers(&self, height: u64) -> bool {
        self.left(height).is_some()
    }

    /// How many proven blocks there are from `height` on, if any.
    fn left(&self, height: u64) -> Option<u32> {
        let end = self.from + self.ids.len() as u64;
        (height >= self.from && height < end).then(|| u32::try_from(end - height).unwrap_or(u32::MAX))
    }

    /// Keeps the batch (which starts inside the proven range) to that
    /// range, and checks that each block is the one its header named.
    fn trim(&self, blocks: &mut Vec<SealedBlock>) -> Result<(), SyncError> {
        blocks.retain(|b| self.covers(b.header().height));
        let named = |b: &SealedBlock| self.ids[(b.header().height - self.from) as usize] == b.id();
        if blocks.iter().all(named) {
            Ok(())
        } else {
            Err(SyncError::Unanswered("a block is not the one its header named"))
        }
    }
}

/// When a peer whose last sync failed may be tried again.
#[derive(Clone, Copy, Debug)]
struct Backoff {
    failures: u32,
    until: Instant,
}

impl Syncer {
    /// Syncs from peers named on `requests`, and polls every peer
    /// regularly, until `shutdown` turns true (the syncs in progress are
    /// dropped; an import they had sent still completes in the chain task).
    pub(crate) async fn run(self, mut requests: mpsc::Receiver<PeerId>, mut shutdown: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let mut running: JoinSet<(PeerId, Result<u64, SyncError>)> = JoinSet::new();
        let mut busy: HashSet<PeerId> = HashSet::new();
        let mut backoff: HashMap<PeerId, Backoff> = HashMap::new();
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        loop {
            let peers = tokio::select! {
                () = stopped(&mut shutdown) => break,
                peer = requests.recv() => match peer {
                    Some(peer) => vec![peer],
                    None => break,
                },
                _ = poll.tick() => {
                    let now = Instant::now();
                    backoff.retain(|_, b| b.until > now);
                    this.net.peers().await.unwrap_or_default()
                }
                Some(done) = running.join_next() => {
                    let Ok((peer, result)) = done else { continue };
                    busy.remove(&peer);
                    match result {
                        Ok(_) => {
                            backoff.remove(&peer);
                        }
                        Err(SyncError::Stopped) => break,
                        Err(error) => {
                            if error.is_peer_fault() {
                                this.strikes.strike(peer, "sync").await;
                            }
                            let failures = backoff.get(&peer).map_or(0, |b| b.failures) + 1;
                            let wait = POLL_INTERVAL
                                .saturating_mul(1 << failures.min(8))
                                .min(MAX_BACKOFF);
                            warn!(%peer, %error, retry_in = ?wait, "sync stopped");
                            backoff.insert(peer, Backoff { failures, until: Instant::now() + wait });
                        }
                    }
                    continue;
                }
            };
            let now = Instant::now();
            for peer in peers {
                let waiting = backoff.get(&peer).is_some_and(|b| b.until > now);
                if waiting || busy.contains(&peer) || busy.len() >= MAX_SYNCS {
                    continue;
                }
                busy.insert(peer);
                let this = Arc::clone(&this);
                running.spawn(async move { (peer, this.sync_from(peer).await) });
            }
        }
        running.shutdown().await;
    }

    /// Syncs from one peer; the number of blocks it imported.
    async fn sync_from(&self, peer: PeerId) -> Result<u64, SyncError> {
        let SyncResponse::Status {
            height,
            head,
            genesis,
        } = self.net.request(peer, SyncRequest::Status).await?
        else {
            return Err(SyncError::Refused);
        };
        if Hash(genesis) != self.genesis {
            return Err(SyncError::OtherChain(Hash(genesis)));
        }
        self.metrics.peer_height(peer, height);
        let claimed = Hash(head);
        if self.chain.contains(claimed).await? {
            return Ok(0);
        }
        let ours = self.chain.head().meta.height;
        debug!(%peer, height, ours, "syncing");
        let mut fetching = Fetching::new(&self.status);
        let top = ours.min(height);
        // The first batch starts at our height: when the peer extends our
        // chain its first block is one we have, and no probe is needed.
        let mut from = top.max(1);
        let mut anchor: Option<Hash> = None;
        let (mut imported, mut idle) = (0u64, 0u32);
        let mut proven: Option<Proven> = None;
        let mut headers_checked = 0;
        loop {
            if let Some(start) = anchor {
                self.prove_if_side(peer, start, from, &mut proven, &mut headers_checked)
                    .await?;
            }
            let count = proven
                .as_ref()
                .and_then(|p| p.left(from))
                .map_or(MAX_SYNC_BLOCKS, |left| left.min(MAX_SYNC_BLOCKS));
            let mut blocks = self.fetch(peer, from, count).await?;
            let Some(first) = blocks.first() else { break };
            let parent = first.header().parent;
            match anchor {
                Some(anchor) if parent != anchor => {
                    return Err(SyncError::Unanswered("the batch does not extend the last one"));
                }
                Some(_) => {}
                // Our head, and blocks that extend it.
                None if first.id() == self.chain.head().id => {}
                None if self.chain.contains(parent).await? => {
                    self.prove_if_side(peer, parent, from, &mut proven, &mut headers_checked)
                        .await?;
                }
                None => {
                    let (fork_height, fork_id) = self.fork_point(peer, from).await?;
                    anchor = Some(fork_id);
                    from = fork_height + 1;
                    continue;
                }
            }
            if let Some(proven) = proven.as_ref().filter(|p| p.covers(from)) {
                proven.trim(&mut blocks)?;
            }
            let batch = blocks.len() as u64;
            anchor = blocks.last().map(SealedBlock::id);
            // One batch: blocks that extend our head land in one commit.
            let result = self.chain.import_batch(blocks).await?;
            let new = result
                .outcomes
                .iter()
                .filter(|o| matches!(o, ImportOutcome::NewHead { .. } | ImportOutcome::SideBranch))
                .count() as u64;
            if let Some((_, error)) = result.failed {
                return Err(SyncError::from(ChainError::from(error)));
            }
            imported += new;
            idle = if new == 0 { idle + 1 } else { 0 };
            if idle >= MAX_IDLE_ROUNDS {
                return Err(SyncError::NoProgress);
            }
            let ours = self.chain.head().meta.height;
            fetching.hold(new > 0 && height > ours.saturating_add(self.max_rollback));
            if self.chain.contains(claimed).await? {
                break;
            }
            from += batch;
        }
        drop(fetching);
        let head = self.chain.head();
        if imported > 0 {
            info!(%peer, imported, height = head.meta.height, head = %head.id.short(), "synced");
        } else if !self.chain.contains(claimed).await? {
            return Err(SyncError::Unproven(claimed));
        }
        Ok(imported)
    }

    /// Headers first, when the blocks from height `from` leave our best
    /// chain below the head at `start` and no proof covers them yet.
    async fn prove_if_side(
        &self,
        peer: PeerId,
        start: Hash,
        from: u64,
        proven: &mut Option<Proven>,
        checked: &mut usize,
    ) -> Result<(), SyncError> {
        if start != self.chain.head().id && !proven.as_ref().is_some_and(|p| p.covers(from)) {
            *proven = self.prove_branch(peer, start, checked).await?;
        }
        Ok(())
    }

    /// Headers first: the peer's branch from our stored block `start`,
    /// checked header by header until it carries more work than our head.
    /// `checked` counts the headers this sync has checked, at most
    /// [`MAX_PROOF_HEADERS`]. `None` on PoS, which has no such step.
    async fn prove_branch(
        &self,
        peer: PeerId,
        start: Hash,
        checked: &mut usize,
    ) -> Result<Option<Proven>, SyncError> {
        let Some(mut branch) = self.chain.header_chain(start).await? else {
            return Ok(None);
        };
        let from = branch.meta().height + 1;
        let mut ids = Vec::new();
        while !fork_choice::prefer(&self.spec, &self.chain.head().meta, branch.meta()) {
            let left = MAX_PROOF_HEADERS.saturating_sub(*checked);
            let count = u32::try_from(left).unwrap_or(u32::MAX).min(MAX_SYNC_HEADERS);
            let headers = match count {
                0 => Vec::new(),
                count => self.fetch_headers(peer, branch.meta().height + 1, count).await?,
            };
            if headers.is_empty() {
                self.metrics.sync_light_branch();
                return Err(SyncError::Lighter {
                    from,
                    headers: ids.len(),
                });
            }
            *checked += headers.len();
            self.metrics.sync_headers_checked(headers.len());
            // Seals and signatures: CPU work, off the async workers.
            let spec = Arc::clone(&self.spec);
            let (back, result) = tokio::task::spawn_blocking(move || {
                let mut new = Vec::with_capacity(headers.len());
                let result = headers.iter().try_for_each(|signed| {
                    branch.extend(&spec, signed, now_ms())?;
                    new.push(branch.tip());
                    Ok(())
                });
                ((branch, new), result)
            })
            .await
            .map_err(|_| SyncError::Stopped)?;
            result.map_err(|error| SyncError::from(ChainError::Invalid(error)))?;
            branch = back.0;
            ids.extend(back.1);
        }
        debug!(%peer, from, headers = ids.len(), "branch proven by its headers");
        Ok(Some(Proven { from, ids }))
    }

    /// Up to `count` of the peer's signed headers from `from` (each is
    /// checked against the one before by
    /// [`HeaderChain::extend`](klero_chain::validate::HeaderChain::extend)).
    async fn fetch_headers(
        &self,
        peer: PeerId,
        from: u64,
        count: u32,
    ) -> Result<Vec<SignedHeader>, SyncError> {
        let request = SyncRequest::Headers {
            from_height: from,
            count,
        };
        let SyncResponse::Headers(headers) = self.net.request(peer, request).await? else {
            return Err(SyncError::Refused);
        };
        if headers.len() > count as usize {
            return Err(SyncError::Unanswered("more headers than asked for"));
        }
        Ok(headers)
    }

    /// The highest height below `unknown` (a height where the peer's
    /// block is not one we have) where it is, and that block's id: one-block
    /// probes at doubling distances below `unknown`, then bisection. The
    /// peer's genesis is ours (checked), so height 0 always qualifies.
    async fn fork_point(&self, peer: PeerId, mut unknown: u64) -> Result<(u64, Hash), SyncError> {
        let mut known = (0, self.genesis);
        let mut distance = 1u64;
        while let Some(height) = unknown.checked_sub(distance).filter(|h| *h > 0) {
            match self.probe(peer, height).await? {
                Some(id) if self.chain.contains(id).await? => {
                    known = (height, id);
                    break;
                }
                _ => unknown = height,
            }
            distance = distance.saturating_mul(2);
        }
        while unknown > known.0 + 1 {
            let mid = known.0 + (unknown - known.0) / 2;
            match self.probe(peer, mid).await? {
                Some(id) if self.chain.contains(id).await? => known = (mid, id),
                _ => unknown = mid,
            }
        }
        Ok(known)
    }

    /// The id of the peer's block at `height`, if it has one: from its
    /// header, so that probing never downloads a body.
    async fn probe(&self, peer: PeerId, height: u64) -> Result<Option<Hash>, SyncError> {
        match self.fetch_headers(peer, height, 1).await?.first() {
            Some(signed) if signed.header.height != height => {
                Err(SyncError::Unanswered("a header is not at the height asked for"))
            }
            first => Ok(first.map(|signed| signed.header.id())),
        }
    }

    /// Up to `count` of the peer's blocks from `from`, checked to be what
    /// was asked for: heights `from, from + 1, …`, each the child of the
    /// one before.
    async fn fetch(&self, peer: PeerId, from: u64, count: u32) -> Result<Vec<SealedBlock>, SyncError> {
        let request = SyncRequest::Blocks {
            from_height: from,
            count,
        };
        let SyncResponse::Blocks(encoded) = self.net.request(peer, request).await? else {
            return Err(SyncError::Refused);
        };
        if encoded.len() > count as usize {
            return Err(SyncError::Unanswered("more blocks than asked for"));
        }
        let blocks = encoded
            .iter()
            .map(|bytes| codec::decode_block(bytes).map(Block::seal))
            .collect::<Result<Vec<_>, _>>()
            .inspect_err(|error| self.metrics.reject(decode_reason(error)))?;
        for (i, block) in blocks.iter().enumerate() {
            if block.header().height != from.saturating_add(i as u64) {
                return Err(SyncError::Unanswered("a block is not at the height asked for"));
            }
            if i > 0 && block.header().parent != blocks[i - 1].id() {
                return Err(SyncError::Unanswered("the blocks do not connect"));
            }
        }
        Ok(blocks)
    }
}
