//! Handles what the network delivers: gossiped blocks and transactions
//! (validated before gossipsub may forward them), peers' sync requests
//! (handed to the [`SyncServer`]), and peers coming and going.
//!
//! The verdicts follow the gossip rules in `docs/protocol.md`: valid →
//! accept (forward); invalid by the sender's fault (undecodable, bad seal,
//! bad signature, …) → reject, which lowers the sender's gossipsub score
//! and is a strike ([`super::peers`]); duplicate, stale or not checkable yet
//! (unknown parent, from the future) → ignore. A block with an unknown
//! parent also starts a sync from the peer that sent it. A valid PoS block
//! that lost its slot to one we hold (same slot and parent, lower score) is
//! stored but ignored, not forwarded: it cannot become the head by itself
//! ([`super::slot_battle`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use klero_chain::codec::{self, CodecError};
use klero_chain::ledger::TxError;
use libp2p::PeerId;
use tokio::sync::{mpsc, watch};
use tracing::warn;

use super::block_tree::ImportOutcome;
use super::chain_task::{ChainError, ChainHandle, Origin};
use super::mempool::MempoolError;
use super::metrics::Metrics;
use super::peers::Strikes;
use super::stopped;
use super::sync::SyncServer;
use crate::p2p::{NetworkEvent, NetworkHandle, TopicKind, Verdict};

/// The network side of the node.
pub(crate) struct GossipHandler {
    /// The chain task.
    pub chain: ChainHandle,
    /// The network.
    pub net: NetworkHandle,
    /// Answers sync requests.
    pub sync_server: SyncServer,
    /// Strikes against peers that send invalid data.
    pub strikes: Strikes,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Peers to sync from.
    pub sync: mpsc::Sender<PeerId>,
}

impl GossipHandler {
    /// Handles events until the network stops or `shutdown` turns true.
    pub(crate) async fn run(
        self,
        mut events: mpsc::Receiver<NetworkEvent>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut peers = HashSet::new();
        loop {
            let event = tokio::select! {
                event = events.recv() => match event {
                    Some(event) => event,
                    None => return,
                },
                () = stopped(&mut shutdown) => return,
            };
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
                    self.sync_server.serve(from, req, channel).await;
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
                self.strikes.strike(from, "gossip").await;
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
        let (id, parent) = (block.id(), block.header().parent);
        match self.chain.import(block, Origin::Gossip).await {
            Ok(ImportOutcome::SideBranch) => self.relay_side_branch(id, parent).await,
            Ok(ImportOutcome::NewHead { .. }) => Verdict::Accept,
            Ok(ImportOutcome::Known) => Verdict::Ignore,
            Ok(ImportOutcome::Orphan) => {
                let _ = self.sync.try_send(from);
                Verdict::Ignore
            }
            Err(ChainError::Invalid(error)) if error.is_peer_fault() => Verdict::Reject,
            Err(_) => Verdict::Ignore,
        }
    }

    /// A side branch is forwarded unless it lost its slot (a head never
    /// has: its slot's better sibling would be the head).
    async fn relay_side_branch(&self, id: klero_chain::Hash, parent: klero_chain::Hash) -> Verdict {
        match self.chain.beaten_in_slot(id, parent).await {
            Ok(false) => Verdict::Accept,
            Ok(true) | Err(_) => Verdict::Ignore,
        }
    }

    async fn on_tx(&self, bytes: &[u8]) -> Verdict {
        let Ok(tx) = codec::decode_tx(bytes) else {
            return Verdict::Reject;
        };
        match self.chain.submit_tx(tx, false).await {
            Ok(true) => Verdict::Accept,
            // Provable without the state, so always the sender's fault.
            Err(ChainError::Tx(
                MempoolError::Signature(_)
                | MempoolError::Invalid(TxError::InvalidVrfKey(_) | TxError::BadProofOfPossession),
            )) => Verdict::Reject,
            // Duplicates, and nonce or balance races with blocks in flight,
            // are no one's fault.
            Ok(false) | Err(_) => Verdict::Ignore,
        }
    }
}

/// A metrics label for an undecodable block.
pub(crate) fn decode_reason(error: &CodecError) -> &'static str {
    match error {
        CodecError::TooLarge { .. } => "oversized",
        _ => "undecodable",
    }
}
