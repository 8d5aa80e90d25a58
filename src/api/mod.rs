//! The HTTP API as types: every request and response body of the node's
//! API (`docs/api.md`), in one place.
//!
//! The server ([`crate::node::http`]) builds these, the [`client`] reads
//! them for the wallet, the testnet status view and the integration tests,
//! and the OpenAPI 3 document served at `GET /openapi.json` is generated
//! from them (utoipa), so a field renamed here is renamed everywhere, and
//! `.ci/run` checks the live server against that document (schemathesis).
//!
//! Byte strings are lower-case hex, amounts JSON integers (u64), addresses
//! bech32m (`klero1…`).

pub mod chaos;
pub mod client;
pub mod history;
pub mod overview;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /status`: the node and its head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// The chain id: transactions are signed for it.
    pub chain_id: String,
    /// Which lottery the chain runs.
    pub consensus: ConsensusKind,
    /// The genesis block id.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub genesis: String,
    /// Head height.
    pub height: u64,
    /// Head block id.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub head: String,
    /// The head's timestamp.
    pub head_timestamp_ms: u64,
    /// The head's epoch: `slot / epoch_slots` (PoS) or `height / epoch_blocks` (PoW).
    pub epoch: u64,
    /// Connected peers.
    pub peers: u64,
    /// The node's libp2p peer id.
    pub peer_id: String,
    /// Its listen addresses, each ending in `/p2p/<peer id>`.
    pub listen: Vec<String>,
    /// Whether it is fetching blocks from a peer that is ahead.
    pub sync_state: SyncState,
    /// The local miner's hashes per second (0 when not mining).
    pub hashrate: f64,
    /// Transactions in the mempool.
    pub mempool: u64,
    /// The address of the node's `--key`, if it has one.
    pub proposer: Option<String>,
    /// The ledger rules a wallet checks a transaction against.
    pub ledger: LedgerInfo,
}

/// `pos` or `pow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConsensusKind {
    /// Proof of stake.
    Pos,
    /// Proof of work.
    Pow,
}

/// `syncing` or `synced`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SyncState {
    /// Fetching blocks from a peer that is ahead.
    Syncing,
    /// Caught up with every peer it has asked.
    Synced,
}

/// The ledger rules in `/status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LedgerInfo {
    /// Newly issued per block.
    pub block_reward: u64,
    /// Smallest fee.
    pub min_fee: u64,
    /// Smallest non-zero bonded stake.
    pub min_stake: u64,
    /// Epochs an unstake waits.
    pub unbonding_epochs: u64,
}

/// `GET /blocks/{height}` and `GET /blocks/id/{id}`: every header field,
/// so another implementation can re-check the seal from the API alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlockView {
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
    /// Root of the transactions.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub tx_root: String,
    /// Root of the state after the block.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub state_root: String,
    /// The proposer's address.
    pub proposer: String,
    /// The proposer's ed25519 signature (64 bytes).
    #[schema(pattern = "^[0-9a-f]{128}$")]
    pub signature: String,
    /// Whether it is on the best chain.
    pub canonical: bool,
    /// The seal, tagged by `consensus`.
    #[serde(flatten)]
    pub seal: SealView,
    /// Its transactions, in order.
    pub txs: Vec<TxView>,
}

/// A block's seal: the PoW puzzle or the PoS VRF ticket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "consensus", rename_all = "lowercase")]
pub enum SealView {
    /// Proof of work: `SHA-256(pow_pre || nonce_le64) <= target`.
    Pow {
        /// BLAKE3 of the header with nonce 0.
        #[schema(pattern = "^[0-9a-f]{64}$")]
        pow_pre: String,
        /// The nonce.
        nonce: u64,
        /// The target, big-endian.
        #[schema(pattern = "^[0-9a-f]{64}$")]
        target: String,
        /// The puzzle hash.
        #[schema(pattern = "^[0-9a-f]{64}$")]
        pow_hash: String,
    },
    /// Proof of stake: the proposer's VRF ticket for the slot.
    Pos {
        /// The slot.
        slot: u64,
        /// The VRF suite (3: ECVRF-EDWARDS25519-SHA512-TAI).
        suite: u8,
        /// The proposer's VRF public key.
        #[schema(pattern = "^[0-9a-f]{64}$")]
        vrf_key: String,
        /// The exact VRF input (alpha) proved; `null` if the parent's state
        /// is not stored.
        vrf_input: Option<String>,
        /// The VRF output (64 bytes).
        #[schema(pattern = "^[0-9a-f]{128}$")]
        vrf_output: String,
        /// The VRF proof (80 bytes: Gamma ‖ c ‖ s).
        #[schema(pattern = "^[0-9a-f]{160}$")]
        vrf_proof: String,
    },
}

/// A transaction in a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TxView {
    /// The transaction id.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub id: String,
    /// The sender.
    pub from: String,
    /// The sender's nonce.
    pub nonce: u64,
    /// The fee.
    pub fee: u64,
    /// What it does, tagged by `kind`.
    #[serde(flatten)]
    pub kind: TxKindView,
}

/// What a transaction does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TxKindView {
    /// Moves `amount` to `to`.
    Transfer {
        /// The recipient.
        to: String,
        /// The amount.
        amount: u64,
    },
    /// Bonds `amount` and registers a VRF key.
    Stake {
        /// The amount.
        amount: u64,
        /// The VRF public key.
        #[schema(pattern = "^[0-9a-f]{64}$")]
        vrf_key: String,
        /// The key's proof of possession: an ECVRF proof (80 bytes) over
        /// the input of protocol.md section 5.
        #[schema(pattern = "^[0-9a-f]{160}$")]
        pop: String,
    },
    /// Starts unbonding `amount`.
    Unstake {
        /// The amount.
        amount: u64,
    },
    /// Proof that `offender` signed two blocks for one slot.
    Evidence {
        /// The equivocating proposer.
        offender: String,
        /// The slot (`null` for a malformed PoW pair).
        slot: Option<u64>,
    },
}

/// `GET /accounts/{address}`: an account in the head state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Account {
    /// The address.
    pub address: String,
    /// Spendable balance.
    pub balance: u64,
    /// The nonce its next transaction needs.
    pub nonce: u64,
    /// Bonded stake.
    pub bonded: u64,
    /// The registered VRF key.
    pub vrf_key: Option<String>,
    /// Rewards and fees won as proposer.
    pub rewards: u64,
    /// Blocks proposed.
    pub blocks_proposed: u64,
    /// Stake on its way back.
    pub unbonding: Vec<Unbonding>,
    /// The head's epoch.
    pub epoch: u64,
    /// With `?proof=true`: what a wallet checks the account against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<AccountProof>,
}

/// The head's signed header and a proof of the account's entry under its
/// state root (docs/state.md, "Proofs"). The entry's value is the account
/// above (balance, nonce, bonded, VRF key, rewards, blocks proposed).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountProof {
    /// The head's id, hex.
    pub head: String,
    /// The head's `SignedHeader`, hex of its encoding (protocol.md, section 2).
    pub header: String,
    /// The state-tree proof of `Account(address)` under the header's
    /// `state_root`, hex of its encoding.
    pub proof: String,
}

/// Stake that frees at the start of `release_epoch`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Unbonding {
    /// The amount.
    pub amount: u64,
    /// The epoch from which it is spendable again.
    pub release_epoch: u64,
}

/// The body of `POST /txs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SubmitTx {
    /// Hex of the codec encoding of a signed transaction.
    #[schema(pattern = "^([0-9a-fA-F]{2})*$")]
    pub tx: String,
}

/// `POST /txs` accepted the transaction (or already had it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TxAccepted {
    /// The transaction id.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub id: String,
}

/// Every error answer: what is wrong, in words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The reason.
    pub error: String,
}
