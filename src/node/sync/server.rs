//! Answers peers' sync requests, in a task of its own (never on the gossip
//! loop): the head's status from the head watch, canonical blocks straight
//! from the store (redb readers never wait for the chain task), read on a
//! blocking thread. Blocks a testnet strategy withholds (`node::withheld`)
//! are neither served nor counted.
//!
//! Every peer has a budget, so one peer cannot lock out the others: one
//! request of its own in service at a time, [`MAX_SERVING`] for everyone,
//! and token buckets ([`crate::node::peers::TokenBucket`]) of requests
//! ([`REQUESTS`]) and bytes of stored blocks read for it ([`BYTES`]: a
//! headers answer is charged the blocks it was read from). A request over
//! budget is answered `Refused` at once. A response reads at most
//! [`MAX_RESPONSE_BYTES`] of blocks (fewer blocks or headers than asked
//! for; the client asks again from where it stopped).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use klero_chain::{Hash, codec};
use libp2p::PeerId;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::node::chain_task::ChainHandle;
use crate::node::metrics::Metrics;
use crate::node::peers::{Rate, TokenBucket};
use crate::node::stopped;
use crate::node::store::Store;
use crate::node::withheld::Withheld;
use crate::p2p::{
    MAX_SYNC_BLOCKS, MAX_SYNC_HEADERS, NetworkHandle, ResponseChannelRef, SyncRequest, SyncResponse,
};

/// Requests served at once, over all peers.
const MAX_SERVING: usize = 4;
/// Block bytes in one response: at most this, or one block if it is larger.
const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// Each peer's request budget.
const REQUESTS: Rate = Rate {
    burst: 100,
    per_second: 50,
};
/// Each peer's budget of response bytes.
const BYTES: Rate = Rate {
    burst: 64 << 20,
    per_second: 32 << 20,
};
/// Peers whose budget is remembered before the full ones are forgotten.
const MAX_TRACKED_PEERS: usize = 1024;

/// One inbound request, as the gossip handler hands it over.
pub(crate) type InboundRequest = (PeerId, SyncRequest, ResponseChannelRef);

/// A peer's budget.
#[derive(Clone, Copy, Debug)]
struct Budget {
    requests: TokenBucket,
    bytes: TokenBucket,
}

impl Budget {
    fn new(now: Instant) -> Budget {
        Budget {
            requests: TokenBucket::full(REQUESTS, now),
            bytes: TokenBucket::full(BYTES, now),
        }
    }

    /// Takes one request if the peer has bytes left too.
    fn admit(&mut self, now: Instant) -> bool {
        self.bytes.has_some(now) && self.requests.take(1, now)
    }

    fn is_full(&mut self, now: Instant) -> bool {
        self.requests.is_full(now) && self.bytes.is_full(now)
    }
}

/// What answering a request needs.
#[derive(Clone, Debug)]
pub(crate) struct SyncServer {
    /// The head, for status answers.
    pub chain: ChainHandle,
    /// The network, to send the answer.
    pub net: NetworkHandle,
    /// The store, for the blocks.
    pub store: Store,
    /// The genesis id, for status answers.
    pub genesis: Hash,
    /// Counters (refused requests).
    pub metrics: Arc<Metrics>,
}

impl SyncServer {
    /// Serves the requests handed over on `requests` until `shutdown`
    /// turns true or the sender is gone.
    pub(crate) async fn run(
        self,
        mut requests: mpsc::Receiver<InboundRequest>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let this = Arc::new(self);
        let mut budgets: HashMap<PeerId, Budget> = HashMap::new();
        let mut busy: HashSet<PeerId> = HashSet::new();
        let mut serving: JoinSet<(PeerId, usize)> = JoinSet::new();
        loop {
            tokio::select! {
                () = stopped(&mut shutdown) => break,
                Some(done) = serving.join_next() => {
                    if let Ok((peer, bytes)) = done {
                        busy.remove(&peer);
                        if let Some(budget) = budgets.get_mut(&peer) {
                            budget.bytes.charge(bytes as u64);
                        }
                    }
                }
                request = requests.recv() => {
                    let Some((from, req, channel)) = request else { break };
                    let now = Instant::now();
                    if budgets.len() >= MAX_TRACKED_PEERS {
                        budgets.retain(|peer, b| busy.contains(peer) || !b.is_full(now));
                    }
                    let budget = budgets.entry(from).or_insert_with(|| Budget::new(now));
                    if busy.contains(&from) || serving.len() >= MAX_SERVING || !budget.admit(now) {
                        debug!(%from, "sync request over budget: refused");
                        this.metrics.sync_refused();
                        let _ = this.net.respond(channel, SyncResponse::Refused).await;
                        continue;
                    }
                    busy.insert(from);
                    let this = Arc::clone(&this);
                    serving.spawn(async move {
                        let bytes = this.serve(from, req, channel).await;
                        (from, bytes)
                    });
                }
            }
        }
        serving.shutdown().await;
    }

    /// Answers one request; the bytes of stored blocks it read.
    async fn serve(&self, from: PeerId, req: SyncRequest, channel: ResponseChannelRef) -> usize {
        let response = match req {
            SyncRequest::Status => {
                let head = self.chain.head();
                let withheld = self.chain.withheld();
                // A strategy node's private blocks are not part of what it tells.
                let (height, head) = if withheld.is_empty() {
                    (head.meta.height, head.id)
                } else {
                    withheld.public_tip(&self.store, head.meta.height, head.id)
                };
                SyncResponse::Status {
                    height,
                    head: head.0,
                    genesis: self.genesis.0,
                }
            }
            SyncRequest::Blocks { from_height, count } => {
                let count = count.min(MAX_SYNC_BLOCKS);
                let (blocks, read) = self.read_canonical(from_height, count).await;
                return self
                    .send(from, channel, blocks.map(SyncResponse::Blocks), read)
                    .await;
            }
            SyncRequest::Headers { from_height, count } => {
                let count = count.min(MAX_SYNC_HEADERS);
                let (blocks, read) = self.read_canonical(from_height, count).await;
                let headers = blocks.and_then(|blocks| {
                    blocks
                        .iter()
                        .map(|bytes| codec::decode_block_header(bytes))
                        .collect::<Result<Vec<_>, _>>()
                        .inspect_err(|error| warn!(%error, "a stored block does not decode"))
                        .ok()
                });
                return self
                    .send(from, channel, headers.map(SyncResponse::Headers), read)
                    .await;
            }
        };
        self.send(from, channel, Some(response), 0).await
    }

    /// Up to `count` canonical blocks from `from_height` as stored (on a
    /// blocking thread), `None` if the store fails; and the bytes read.
    async fn read_canonical(&self, from_height: u64, count: u32) -> (Option<Vec<Vec<u8>>>, usize) {
        let store = self.store.clone();
        let withheld = self.chain.withheld().clone();
        let blocks =
            tokio::task::spawn_blocking(move || canonical_blocks(&store, &withheld, from_height, count))
                .await
                .ok()
                .flatten();
        let read = blocks.iter().flatten().map(Vec::len).sum();
        (blocks, read)
    }

    /// Sends `response` (`Refused` for `None`); `read`, the bytes of
    /// stored blocks it took, is what the peer's byte budget is charged.
    async fn send(
        &self,
        from: PeerId,
        channel: ResponseChannelRef,
        response: Option<SyncResponse>,
        read: usize,
    ) -> usize {
        let response = response.unwrap_or(SyncResponse::Refused);
        debug!(%from, read, "served a sync request");
        let _ = self.net.respond(channel, response).await;
        read
    }
}

/// Up to `count` encoded canonical blocks from `from_height`, at most
/// [`MAX_RESPONSE_BYTES`] of them (but at least one), stopping before the
/// first withheld one; `None` if the store fails.
fn canonical_blocks(
    store: &Store,
    withheld: &Withheld,
    from_height: u64,
    count: u32,
) -> Option<Vec<Vec<u8>>> {
    let mut blocks = Vec::new();
    let mut bytes = 0;
    for height in (from_height..).take(count as usize) {
        match store.canonical(height).and_then(|id| {
            id.filter(|id| !withheld.contains(id))
                .map(|id| store.block_bytes(&id))
                .transpose()
        }) {
            Ok(Some(Some(block))) => {
                bytes += block.len();
                if bytes > MAX_RESPONSE_BYTES && !blocks.is_empty() {
                    break;
                }
                blocks.push(block);
            }
            Ok(_) => break,
            Err(error) => {
                warn!(%error, "cannot serve blocks");
                return None;
            }
        }
    }
    Some(blocks)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_peer_that_drew_more_bytes_than_it_had_is_refused_until_it_earns_them_back() {
        let start = Instant::now();
        let mut budget = Budget::new(start);
        assert!(budget.admit(start));
        budget.bytes.charge(3 * BYTES.burst);
        assert!(!budget.admit(start + Duration::from_secs(3)));
        assert!(budget.admit(start + Duration::from_secs(5)));
        let requests_left = (0..2 * REQUESTS.burst)
            .filter(|_| budget.admit(start + Duration::from_secs(5)))
            .count() as u64;
        // The bytes are back; the requests are what limit it now.
        assert_eq!(requests_left, REQUESTS.burst - 1);
    }
}
