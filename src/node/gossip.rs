//! Handles what the network delivers: gossiped blocks and transactions
//! (validated before gossipsub may forward them), peers' sync requests, and
//! peers coming and going.
//!
//! The verdicts follow the gossip rules in `docs/protocol.md`: valid →
//! accept (forward); invalid by the sender's fault (undecodable, bad seal,
//! bad signature, …) → reject, which lowers the sender's gossipsub score;
//! duplicate, stale or not checkable yet (unknown parent, from the future)
//! → ignore. A block with an unknown parent also starts a sync from the
//! peer that sent it. A peer whose messages are rejected [`MAX_STRIKES`]
//! times is banned (disconnected and refused until the node restarts);
//! gossipsub's own peer score has already been lowered by each reject.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use klero_chain::codec::{self, CodecError};
use klero_chain::{Block, Hash};
use libp2p::PeerId;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::chain::{ImportError, Imported};
use super::mempool::MempoolError;
use super::metrics::Metrics;
use super::service::{ChainHandle, Origin};
use super::store::Store;
use crate::p2p::{
    MAX_SYNC_BLOCKS, NetworkEvent, NetworkHandle, ResponseChannelRef, SyncRequest, SyncResponse, TopicKind,
    Verdict,
};

/// Rejected messages after which a peer is banned.
pub const MAX_STRIKES: u32 = 3;

/// The network side of the node.
pub struct GossipHandler {
    /// The chain task.
    pub chain: ChainHandle,
    /// The network.
    pub net: NetworkHandle,
    /// For serving sync requests without bothering the chain task.
    pub store: Store,
    /// The genesis id, for status answers.
    pub genesis: Hash,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Peers to sync from.
    pub sync: mpsc::Sender<PeerId>,
}

impl GossipHandler {
    /// Handles events until the network stops.
    pub async fn run(self, mut events: mpsc::Receiver<NetworkEvent>) {
        let mut peers = HashSet::new();
        let mut strikes: HashMap<PeerId, u32> = HashMap::new();
        while let Some(event) = events.recv().await {
            let (from, verdict) = match event {
                NetworkEvent::Block { from, msg, bytes } => {
                    let verdict = self.on_block(from, &bytes).await;
                    let _ = self.net.report(msg, verdict).await;
                    (from, verdict)
                }
                NetworkEvent::Tx { from, msg, bytes } => {
                    let verdict = self.on_tx(&bytes).await;
                    let _ = self.net.report(msg, verdict).await;
                    (from, verdict)
                }
                NetworkEvent::Oversized { from, kind, len } => {
                    warn!(%from, kind = kind.name(), len, "oversized gossip");
                    if kind == TopicKind::Block {
                        self.metrics.reject("oversized");
                    }
                    (from, Verdict::Reject)
                }
                NetworkEvent::SyncRequest { from, req, channel } => {
                    self.serve(from, req, channel).await;
                    continue;
                }
                NetworkEvent::PeerConnected(peer) => {
                    peers.insert(peer);
                    self.metrics.peers.store(peers.len() as u64, Ordering::Relaxed);
                    let _ = self.sync.try_send(peer);
                    continue;
                }
                NetworkEvent::PeerDisconnected(peer) => {
                    peers.remove(&peer);
                    self.metrics.peers.store(peers.len() as u64, Ordering::Relaxed);
                    continue;
                }
            };
            if verdict == Verdict::Reject {
                let count = strikes.entry(from).or_default();
                *count += 1;
                if *count >= MAX_STRIKES {
                    warn!(peer = %from, "banning a peer that keeps sending invalid data");
                    let _ = self.net.ban(from).await;
                }
            }
        }
    }

    async fn on_block(&self, from: PeerId, bytes: &[u8]) -> Verdict {
        let block = match codec::decode_block(bytes) {
            Ok(block) => block.seal(),
            Err(error) => {
                self.metrics.reject(decode_reason(&error));
                warn!(%from, %error, "undecodable block gossip");
                return Verdict::Reject;
            }
        };
        match self.chain.import(block, Origin::Gossip).await {
            Ok(Ok(Imported::NewHead { .. } | Imported::SideBranch)) => Verdict::Accept,
            Ok(Ok(Imported::Known)) => Verdict::Ignore,
            Ok(Ok(Imported::Orphan)) => {
                let _ = self.sync.try_send(from);
                Verdict::Ignore
            }
            Ok(Err(ImportError::Invalid(error))) if error.is_peer_fault() => Verdict::Reject,
            Ok(Err(_)) | Err(_) => Verdict::Ignore,
        }
    }

    async fn on_tx(&self, bytes: &[u8]) -> Verdict {
        let Ok(tx) = codec::decode_tx(bytes) else {
            return Verdict::Reject;
        };
        match self.chain.submit_tx(tx, false).await {
            Ok(Ok(true)) => Verdict::Accept,
            Ok(Err(MempoolError::Signature(_))) => Verdict::Reject,
            // Duplicates, and nonce or balance races with blocks in flight,
            // are no one's fault.
            Ok(_) | Err(_) => Verdict::Ignore,
        }
    }

    async fn serve(&self, from: PeerId, req: SyncRequest, channel: ResponseChannelRef) {
        let response = match req {
            SyncRequest::Status => {
                let head = self.chain.head();
                SyncResponse::Status {
                    height: head.meta.height,
                    head: head.id.0,
                    genesis: self.genesis.0,
                }
            }
            SyncRequest::Blocks { from_height, count } => {
                let store = self.store.clone();
                let count = count.min(MAX_SYNC_BLOCKS);
                tokio::task::spawn_blocking(move || canonical_blocks(&store, from_height, count))
                    .await
                    .unwrap_or(SyncResponse::Refused)
            }
        };
        debug!(%from, "served a sync request");
        let _ = self.net.respond(channel, response).await;
    }
}

/// Up to `count` encoded canonical blocks from `from_height`.
fn canonical_blocks(store: &Store, from_height: u64, count: u32) -> SyncResponse {
    let mut blocks = Vec::new();
    for height in (from_height..).take(count as usize) {
        match store
            .canonical(height)
            .and_then(|id| id.map(|id| store.block_bytes(&id)).transpose())
        {
            Ok(Some(Some(bytes))) => blocks.push(bytes),
            Ok(_) => break,
            Err(error) => {
                warn!(%error, "cannot serve blocks");
                return SyncResponse::Refused;
            }
        }
    }
    SyncResponse::Blocks(blocks)
}

/// A metrics label for an undecodable block.
fn decode_reason(error: &CodecError) -> &'static str {
    match error {
        CodecError::TooLarge { .. } => "oversized",
        _ => "undecodable",
    }
}

/// Decodes a sync response's blocks, refusing the batch at the first bad one.
///
/// # Errors
///
/// The first block that does not decode.
pub fn decode_blocks(encoded: &[Vec<u8>]) -> Result<Vec<klero_chain::SealedBlock>, CodecError> {
    encoded
        .iter()
        .map(|bytes| codec::decode_block(bytes).map(Block::seal))
        .collect()
}
