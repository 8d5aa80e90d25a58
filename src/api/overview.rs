//! What the explorer page shows beside single blocks and accounts: the
//! latest blocks with the side branches the node saw, recent reorgs, peers
//! and how far ahead they are, and each proposer's wins against its weight
//! (`GET /blocks`, `/reorgs`, `/peers`, `/proposers`; `docs/api.md`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /blocks`: the latest blocks, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlockList {
    /// The canonical block of each height in the page and, beside it, the
    /// blocks of that height this node saw recently on other branches.
    pub blocks: Vec<BlockSummary>,
    /// The `before` of the next (older) page; `null` once genesis is in.
    pub next_before: Option<u64>,
}

/// A block in a list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlockSummary {
    /// The block id.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub id: String,
    /// Height.
    pub height: u64,
    /// The parent's id.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub parent: String,
    /// Timestamp.
    pub timestamp_ms: u64,
    /// The proposer's address.
    pub proposer: String,
    /// Transactions in it.
    pub tx_count: u64,
    /// Whether it is on the best chain.
    pub canonical: bool,
    /// The PoS slot (`null` on a PoW chain).
    pub slot: Option<u64>,
    /// The PoW nonce (`null` on a PoS chain).
    pub nonce: Option<u64>,
}

/// `GET /reorgs`: the node's most recent head switches to another branch,
/// newest first (a ring of the last 32).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Reorgs {
    /// Total since the node started (the ring keeps the last 32).
    pub total: u64,
    /// The reorgs, newest first.
    pub reorgs: Vec<ReorgView>,
}

/// One head switch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReorgView {
    /// When the node switched (its clock).
    pub at_ms: u64,
    /// Blocks of the old branch that left the best chain.
    pub depth: u64,
    /// Height of the last block both branches share.
    pub fork_height: u64,
    /// The old head.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub old_head: String,
    /// Its height.
    pub old_height: u64,
    /// The new head.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub new_head: String,
    /// Its height.
    pub new_height: u64,
}

/// `GET /peers`: the connected peers and how far ahead the best of them is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Peers {
    /// Connected peers.
    pub peers: Vec<PeerView>,
    /// The highest height a peer reported in the last 30 s (`null`: none did).
    pub best_height: Option<u64>,
    /// `best_height` minus our height, 0 when we are level or ahead.
    pub height_gap: u64,
}

/// A connected peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PeerView {
    /// Its libp2p peer id.
    pub peer_id: String,
    /// The head height it reported to our syncer in the last 30 s.
    pub height: Option<u64>,
}

/// `GET /proposers`: who won the last blocks of the best chain, against
/// the weight the lottery gives them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Proposers {
    /// Blocks in the window: the last 256 of the best chain (fewer near genesis).
    pub window_blocks: u64,
    /// Slots the window spans (PoS; `null` on a PoW chain).
    pub window_slots: Option<u64>,
    /// `window_blocks / window_slots`: the share of slots with a block (PoS).
    pub slot_fill: Option<f64>,
    /// Total stake of the draw's snapshot for the head's epoch (PoS).
    pub total_stake: Option<u64>,
    /// Stored blocks that are not on the best chain.
    pub orphaned: u64,
    /// The proposers in the window or the snapshot, by address: at most 64,
    /// those with the most wins in the window, then the most stake, then
    /// the lowest address.
    pub proposers: Vec<ProposerView>,
    /// The proposers not listed, summed (`null` if every one is listed).
    pub others: Option<OthersView>,
}

/// The proposers `GET /proposers` does not list, summed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OthersView {
    /// How many.
    pub count: u64,
    /// Their blocks in the window.
    pub window_wins: u64,
    /// `window_wins / window_blocks`.
    pub win_share: f64,
    /// Their stake in the snapshot the head's epoch draws from (PoS).
    pub stake: Option<u64>,
    /// `stake / total_stake` (PoS).
    pub weight_share: Option<f64>,
}

/// One proposer's wins and weight.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProposerView {
    /// Its address.
    pub address: String,
    /// Blocks it won in the window.
    pub window_wins: u64,
    /// `window_wins / window_blocks` (0 for an empty window).
    pub win_share: f64,
    /// Blocks of the best chain it proposed since genesis.
    pub blocks_won: u64,
    /// Its stake in the snapshot the head's epoch draws from (PoS).
    pub stake: Option<u64>,
    /// `stake / total_stake`: its chance to win a slot's draw (PoS; a PoW
    /// node cannot see other miners' hash rates, so `null` there).
    pub weight_share: Option<f64>,
}
