//! Transactions and account history, and the paging query of lists: `GET /txs/{id}` and
//! `GET /accounts/{address}/txs`, answered from the node's transaction
//! index (`docs/api.md`).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::TxView;

/// Most entries one history page may ask for.
pub const MAX_PAGE: u32 = 100;
/// The page size when `limit` is not given.
pub const DEFAULT_PAGE: u32 = 20;

/// `GET /txs/{id}`: where a transaction is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TxStatus {
    /// The transaction id.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub id: String,
    /// Pending, included, or unknown, tagged by `status`.
    #[serde(flatten)]
    pub state: TxState,
}

/// What the node knows of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum TxState {
    /// In this node's mempool, waiting for a block.
    Pending {
        /// The transaction.
        tx: TxView,
    },
    /// In a block of the best chain.
    Included {
        /// The block's id.
        #[schema(pattern = "^[0-9a-f]{64}$")]
        block: String,
        /// The block's height.
        height: u64,
        /// Its place in the block.
        index: u32,
        /// `height × 65536 + index`: its place in the chain.
        position: u64,
        /// The block's timestamp.
        timestamp_ms: u64,
        /// Blocks on top of it, its own included (1 in the head).
        confirmations: u64,
        /// The transaction.
        tx: TxView,
    },
    /// Neither pending here nor in a block of the best chain (never seen,
    /// refused, or only on a branch that lost).
    Unknown,
}

/// The paging query of `GET /accounts/{address}/txs` and `GET /blocks`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// How many entries (transactions, or heights of blocks), 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Only entries below this cursor (a transaction `position`, or a
    /// height): the previous page's `next_before`; default: from the head.
    pub before: Option<u64>,
}

/// `GET /accounts/{address}/txs`: an account's transactions on the best
/// chain, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountTxs {
    /// The address.
    pub address: String,
    /// At most `limit` transactions it sent or received, newest first.
    pub txs: Vec<AccountTx>,
    /// The `before` of the next (older) page; `null` on the last page.
    pub next_before: Option<u64>,
}

/// One entry of an account's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountTx {
    /// `height × 65536 + index`: its place in the chain, the paging cursor.
    pub position: u64,
    /// The block's height.
    pub height: u64,
    /// The block's id.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub block: String,
    /// The block's timestamp.
    pub timestamp_ms: u64,
    /// The transaction.
    pub tx: TxView,
}
