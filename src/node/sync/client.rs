//! Catching up with peers.
//!
//! A peer is synced from when it connects, when it gossips a block whose
//! parent we lack, and every [`POLL_INTERVAL`] (which is how two halves of a
//! healed partition find each other's forks even when nobody is producing).
//! The sync asks the peer's status; if its head is unknown to us it fetches
//! the peer's canonical blocks in batches of [`MAX_SYNC_BLOCKS`] from just
//! above our height, stepping back (doubling the step) while the first block
//! of a batch does not attach to anything we have: that finds the fork
//! point of a competing branch in O(log depth) round trips. Imports go
//! through the chain task like any other block; fork choice decides. A
//! block that does not decode, or breaks a rule, is a strike against the
//! peer that sent it (the gossip path's strikes: three and it is banned).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use klero_chain::codec::{self, CodecError};
use klero_chain::{Block, Hash, SealedBlock};
use libp2p::PeerId;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::node::block_tree::ImportOutcome;
use crate::node::chain_task::{ChainError, ChainHandle, Origin};
use crate::node::gossip::decode_reason;
use crate::node::metrics::Metrics;
use crate::node::peers::Strikes;
use crate::node::stopped;
use crate::p2p::{MAX_SYNC_BLOCKS, NetworkHandle, P2pError, SyncRequest, SyncResponse};

/// How often connected peers are asked for their status unprompted.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_secs(5);

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
    #[error("peer's blocks do not connect to our chain")]
    NoForkPoint,
    #[error("the chain task has stopped")]
    Stopped,
}

impl SyncError {
    /// Whether the peer sent data that is invalid by its own fault.
    fn is_peer_fault(&self) -> bool {
        match self {
            SyncError::Decode(_) => true,
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
    /// Set while blocks are being fetched; read by `/status` and the staker.
    pub syncing: Arc<AtomicBool>,
    /// Strikes against peers that send invalid blocks.
    pub strikes: Strikes,
    /// Counters (refused blocks by reason).
    pub metrics: Arc<Metrics>,
}

impl Syncer {
    /// Syncs from peers named on `requests`, and polls every peer
    /// regularly, until `shutdown` turns true (a sync in progress is
    /// dropped; the import it had sent still completes in the chain task).
    pub(crate) async fn run(self, mut requests: mpsc::Receiver<PeerId>, mut shutdown: watch::Receiver<bool>) {
        tokio::select! {
            () = self.serve(&mut requests) => {}
            () = stopped(&mut shutdown) => {}
        }
        self.syncing.store(false, Ordering::Relaxed);
    }

    async fn serve(&self, requests: &mut mpsc::Receiver<PeerId>) {
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        loop {
            let peers = tokio::select! {
                peer = requests.recv() => match peer {
                    Some(peer) => vec![peer],
                    None => return,
                },
                _ = poll.tick() => self.net.peers().await.unwrap_or_default(),
            };
            for peer in peers {
                if let Err(error) = self.sync_from(peer).await {
                    if matches!(error, SyncError::Stopped) {
                        return;
                    }
                    if error.is_peer_fault() {
                        self.strikes.strike(peer, "sync").await;
                    }
                    warn!(%peer, %error, "sync stopped");
                }
            }
            self.syncing.store(false, Ordering::Relaxed);
        }
    }

    async fn sync_from(&self, peer: PeerId) -> Result<(), SyncError> {
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
        if self.chain.contains(Hash(head)).await? {
            return Ok(());
        }
        let ours = self.chain.head().meta.height;
        debug!(%peer, height, ours, "syncing");
        self.syncing.store(true, Ordering::Relaxed);
        let mut start = ours.min(height).max(1);
        let mut step = u64::from(MAX_SYNC_BLOCKS);
        let mut imported = 0u64;
        loop {
            let request = SyncRequest::Blocks {
                from_height: start,
                count: MAX_SYNC_BLOCKS,
            };
            let SyncResponse::Blocks(encoded) = self.net.request(peer, request).await? else {
                return Err(SyncError::Refused);
            };
            let blocks = self.decode_blocks(&encoded)?;
            let Some(first) = blocks.first() else { break };
            if !self.chain.contains(first.header().parent).await? {
                if start <= 1 {
                    return Err(SyncError::NoForkPoint);
                }
                start = start.saturating_sub(step).max(1);
                step = step.saturating_mul(2);
                continue;
            }
            let batch = blocks.len() as u64;
            for block in blocks {
                match self.chain.import(block, Origin::Sync).await? {
                    ImportOutcome::NewHead { .. } | ImportOutcome::SideBranch => imported += 1,
                    ImportOutcome::Known | ImportOutcome::Orphan => {}
                }
            }
            if batch < u64::from(MAX_SYNC_BLOCKS) {
                break;
            }
            start += batch;
        }
        if imported > 0 {
            let head = self.chain.head();
            info!(%peer, imported, height = head.meta.height, head = %head.id.short(), "synced");
        }
        Ok(())
    }

    /// Decodes a response's blocks, refusing the batch at the first bad one.
    fn decode_blocks(&self, encoded: &[Vec<u8>]) -> Result<Vec<SealedBlock>, CodecError> {
        encoded
            .iter()
            .map(|bytes| codec::decode_block(bytes).map(Block::seal))
            .collect::<Result<_, _>>()
            .inspect_err(|error| self.metrics.reject(decode_reason(error)))
    }
}
