//! Handles what the network delivers: gossiped blocks and transactions
//! (validated before gossipsub may forward them), peers' sync requests
//! (handed to the sync server's task, [`super::sync::server`]), and peers
//! coming and going.
//!
//! The verdicts follow the gossip rules in `docs/protocol.md`: valid →
//! accept (forward); invalid by the sender's fault (undecodable, bad seal,
//! bad signature, …) → reject, which lowers the sender's gossipsub score
//! and is a strike ([`super::peers`]); duplicate, stale or not checkable yet
//! (unknown parent, from the future) → ignore. A block with an unknown
//! parent also starts a sync from the peer that sent it, at most once per
//! [`POLL_INTERVAL`] and peer, however many such blocks it sends.
//!
//! Only a block that is or may become the head is accepted (forwarded): a
//! new head, or a side block fork choice may still switch to. A PoW side
//! block whose branch trails the head by more than
//! `fork_choice::SIDE_BRANCH_LAG` blocks of work is refused unstored
//! (`LightBranch`) and ignored, but each peer may send only [`LIGHT`] of
//! them: past that each one is a reject (an honest peer forwards none, its
//! own fork choice having moved to the heavier branch). A valid PoS block
//! that lost its slot to one we hold (same slot and parent, lower score) is
//! stored but ignored, not forwarded: it cannot become the head by itself
//! ([`super::slot_battle`]). A transaction from a sender that
//! cannot pay is ignored too, but each peer may relay only [`UNFUNDED`] of
//! them: past that, its transactions are dropped unread until its
//! allowance refills. Transactions that arrive together go to the mempool
//! as one batch ([`TX_BATCH`] at most, signatures checked together); the
//! allowance is read before the batch and charged after it, so a peer can
//! overrun it by at most one batch.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use klero_chain::codec::{self, CodecError};
use klero_chain::ledger::TxError;
use klero_chain::validate::BlockError;
use libp2p::PeerId;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::block_tree::ImportOutcome;
use super::chain_task::{ChainError, ChainHandle, Origin};
use super::mempool::MempoolError;
use super::metrics::Metrics;
use super::peers::{Rate, Strikes, TokenBucket};
use super::stopped;
use super::sync::client::POLL_INTERVAL;
use super::sync::server::InboundRequest;
use crate::p2p::{MessageRef, NetworkEvent, NetworkHandle, SyncResponse, TopicKind, Verdict};

/// How many transactions from unfunded senders (unknown, or short of
/// balance) one peer may relay: a burst, then a rate per second.
const UNFUNDED: Rate = Rate {
    burst: 50,
    per_second: 10,
};

/// Most gossiped transactions handed to the mempool at once: what has
/// arrived by then, up to the ledger's signature batch.
const TX_BATCH: usize = klero_chain::ledger::SIGNATURE_BATCH;

/// How many light side blocks one peer may send before each is a reject: a
/// burst (blocks crossing ours in a race, a peer a few blocks behind), then
/// a rate per second.
const LIGHT: Rate = Rate {
    burst: 16,
    per_second: 1,
};

/// The network side of the node.
pub(crate) struct GossipHandler {
    /// The chain task.
    pub chain: ChainHandle,
    /// The network.
    pub net: NetworkHandle,
    /// The sync server's queue.
    pub sync_server: mpsc::Sender<InboundRequest>,
    /// Strikes against peers that send invalid data.
    pub strikes: Strikes,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Peers to sync from.
    pub sync: mpsc::Sender<PeerId>,
}

/// What the handler remembers about each connected peer.
#[derive(Debug, Default)]
struct PeerLog {
    /// When we last asked the syncer to sync from it for an orphan.
    sync_asked: HashMap<PeerId, Instant>,
    /// Its allowance of unfunded transactions.
    unfunded: HashMap<PeerId, TokenBucket>,
    /// Its allowance of light side blocks.
    light: HashMap<PeerId, TokenBucket>,
}

impl GossipHandler {
    /// Handles events until the network stops or `shutdown` turns true.
    pub(crate) async fn run(
        self,
        mut events: mpsc::Receiver<NetworkEvent>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut peers = HashSet::new();
        let mut log = PeerLog::default();
        // An event read while gathering a batch of transactions.
        let mut held = None;
        loop {
            let event = match held.take() {
                Some(event) => event,
                None => tokio::select! {
                    event = events.recv() => match event {
                        Some(event) => event,
                        None => return,
                    },
                    () = stopped(&mut shutdown) => return,
                },
            };
            let (from, verdict) = match event {
                NetworkEvent::Block { from, msg, bytes } => {
                    let verdict = self.on_block(from, &bytes, &mut log).await;
                    let _ = self.net.report(msg, verdict).await;
                    (from, verdict)
                }
                NetworkEvent::Tx { from, msg, bytes } => {
                    // What else has arrived goes with it, for one batch of
                    // signature checks.
                    let mut batch = vec![(from, msg, bytes)];
                    while batch.len() < TX_BATCH {
                        match events.try_recv() {
                            Ok(NetworkEvent::Tx { from, msg, bytes }) => batch.push((from, msg, bytes)),
                            Ok(other) => {
                                held = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    for (from, msg, verdict) in self.on_txs(batch, &mut log).await {
                        let _ = self.net.report(msg, verdict).await;
                        if verdict == Verdict::Reject {
                            self.strikes.strike(from, "gossip").await;
                        }
                    }
                    continue;
                }
                NetworkEvent::Oversized { from, kind, len } => {
                    warn!(%from, kind = kind.name(), len, "oversized gossip");
                    if kind == TopicKind::Block {
                        self.metrics.reject("oversized");
                    }
                    (from, Verdict::Reject)
                }
                NetworkEvent::SyncRequest { from, req, channel } => {
                    if let Err(mpsc::error::TrySendError::Full((_, _, channel))) =
                        self.sync_server.try_send((from, req, channel))
                    {
                        self.metrics.sync_refused();
                        let _ = self.net.respond(channel, SyncResponse::Refused).await;
                    }
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
                    log.sync_asked.remove(&peer);
                    log.unfunded.remove(&peer);
                    log.light.remove(&peer);
                    self.metrics.peers.store(peers.len() as u64, Ordering::Relaxed);
                    continue;
                }
            };
            if verdict == Verdict::Reject {
                self.strikes.strike(from, "gossip").await;
            }
        }
    }

    async fn on_block(&self, from: PeerId, bytes: &[u8], log: &mut PeerLog) -> Verdict {
        let block = match codec::decode_block(bytes) {
            Ok(block) => block.seal(),
            Err(error) => {
                self.metrics.reject(decode_reason(&error));
                warn!(%from, %error, "undecodable block gossip");
                return Verdict::Reject;
            }
        };
        let (id, parent) = (block.id(), block.header().parent);
        match self.chain.import(block, Origin::Gossip(from)).await {
            Ok(ImportOutcome::SideBranch) => self.relay_side_branch(id, parent).await,
            Ok(ImportOutcome::NewHead { .. }) => Verdict::Accept,
            Ok(ImportOutcome::Known) => Verdict::Ignore,
            Ok(ImportOutcome::Orphan) => {
                let now = Instant::now();
                let recently = log
                    .sync_asked
                    .get(&from)
                    .is_some_and(|at| now.saturating_duration_since(*at) < POLL_INTERVAL);
                if !recently {
                    log.sync_asked.insert(from, now);
                    let _ = self.sync.try_send(from);
                }
                Verdict::Ignore
            }
            Err(ChainError::Invalid(BlockError::LightBranch { .. })) => light_verdict(from, log),
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

    /// Verdicts on gossiped transactions, in order. Each peer's allowance
    /// of unfunded senders is checked before decoding; the decoded ones go
    /// to the mempool together.
    async fn on_txs(
        &self,
        batch: Vec<(PeerId, MessageRef, Vec<u8>)>,
        log: &mut PeerLog,
    ) -> Vec<(PeerId, MessageRef, Verdict)> {
        let now = Instant::now();
        let mut verdicts = Vec::with_capacity(batch.len());
        let (mut offered, mut txs) = (Vec::new(), Vec::new());
        for (from, msg, bytes) in batch {
            let allowance = log
                .unfunded
                .entry(from)
                .or_insert_with(|| TokenBucket::full(UNFUNDED, now));
            let verdict = if !allowance.has_some(now) {
                self.metrics.tx_rate_limited();
                Verdict::Ignore
            } else if let Ok(tx) = codec::decode_tx(&bytes) {
                offered.push(verdicts.len());
                txs.push(tx);
                Verdict::Ignore
            } else {
                Verdict::Reject
            };
            verdicts.push((from, msg, verdict));
        }
        if txs.is_empty() {
            return verdicts;
        }
        let Ok(results) = self.chain.submit_txs(txs).await else {
            return verdicts;
        };
        for (slot, result) in offered.into_iter().zip(results) {
            let from = verdicts[slot].0;
            verdicts[slot].2 = tx_verdict(from, result, log, now);
        }
        verdicts
    }
}

/// The verdict on a gossiped transaction the mempool answered.
fn tx_verdict(from: PeerId, result: Result<bool, MempoolError>, log: &mut PeerLog, now: Instant) -> Verdict {
    match result {
        Ok(true) => Verdict::Accept,
        // Provable without the state, so always the sender's fault.
        Err(
            MempoolError::Signature(_)
            | MempoolError::Invalid(TxError::InvalidVrfKey(_) | TxError::BadProofOfPossession),
        ) => Verdict::Reject,
        Err(error) if error.is_unfunded() => {
            let allowance = log
                .unfunded
                .entry(from)
                .or_insert_with(|| TokenBucket::full(UNFUNDED, now));
            allowance.charge(1);
            if !allowance.has_some(now) {
                debug!(%from, "peer relays transactions nobody can pay for: rate-limited");
            }
            Verdict::Ignore
        }
        // Duplicates, and nonce or balance races with blocks in flight,
        // are no one's fault.
        Ok(false) | Err(_) => Verdict::Ignore,
    }
}

/// A light side block: ignored within the peer's [`LIGHT`] allowance,
/// rejected past it.
fn light_verdict(from: PeerId, log: &mut PeerLog) -> Verdict {
    let now = Instant::now();
    let allowance = log
        .light
        .entry(from)
        .or_insert_with(|| TokenBucket::full(LIGHT, now));
    if allowance.take(1, now) {
        Verdict::Ignore
    } else {
        debug!(%from, "peer keeps pushing side blocks that cannot become the head");
        Verdict::Reject
    }
}

/// A metrics label for an undecodable block.
pub(crate) fn decode_reason(error: &CodecError) -> &'static str {
    match error {
        CodecError::TooLarge { .. } => "oversized",
        _ => "undecodable",
    }
}
