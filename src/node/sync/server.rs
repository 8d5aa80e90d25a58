//! Answers peers' sync requests: the head's status from the head watch,
//! canonical blocks straight from the store (redb readers never wait for
//! the chain task), read on a blocking thread. Blocks a testnet strategy
//! withholds (`node::withheld`) are neither served nor counted.

use klero_chain::Hash;
use libp2p::PeerId;
use tracing::{debug, warn};

use crate::node::chain_task::ChainHandle;
use crate::node::store::Store;
use crate::node::withheld::Withheld;
use crate::p2p::{MAX_SYNC_BLOCKS, NetworkHandle, ResponseChannelRef, SyncRequest, SyncResponse};

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
}

impl SyncServer {
    /// Answers one request.
    pub(crate) async fn serve(&self, from: PeerId, req: SyncRequest, channel: ResponseChannelRef) {
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
                let store = self.store.clone();
                let withheld = self.chain.withheld().clone();
                let count = count.min(MAX_SYNC_BLOCKS);
                tokio::task::spawn_blocking(move || canonical_blocks(&store, &withheld, from_height, count))
                    .await
                    .unwrap_or(SyncResponse::Refused)
            }
        };
        debug!(%from, "served a sync request");
        let _ = self.net.respond(channel, response).await;
    }
}

/// Up to `count` encoded canonical blocks from `from_height`, stopping
/// before the first withheld one.
fn canonical_blocks(store: &Store, withheld: &Withheld, from_height: u64, count: u32) -> SyncResponse {
    let mut blocks = Vec::new();
    for height in (from_height..).take(count as usize) {
        match store.canonical(height).and_then(|id| {
            id.filter(|id| !withheld.contains(id))
                .map(|id| store.block_bytes(&id))
                .transpose()
        }) {
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
