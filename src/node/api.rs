//! The HTTP API (axum, JSON), documented in `docs/api.md`.
//!
//! Reads go straight to the head watch and the store (redb readers never
//! block the writer); only `POST /txs` goes through the chain task.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use klero_chain::codec;
use klero_chain::pos;
use klero_chain::pow::pow_hash;
use klero_chain::spec::Consensus;
use klero_chain::types::{Seal, TxKind};
use klero_chain::{Address, ChainSpec, Hash, SealedBlock, Tx};
use serde::Deserialize;
use serde_json::{Value, json};

use super::metrics::Metrics;
use super::service::ChainHandle;
use super::store::{Store, StoreError};
use crate::p2p::NetworkHandle;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The chain task.
    pub chain: ChainHandle,
    /// The store, for block reads.
    pub store: Store,
    /// The chain spec.
    pub spec: Arc<ChainSpec>,
    /// The genesis id.
    pub genesis: Hash,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The network, for listen addresses.
    pub net: NetworkHandle,
    /// Our libp2p peer id.
    pub peer_id: String,
    /// Set while syncing.
    pub syncing: Arc<AtomicBool>,
    /// The address of the node's key, if it has one.
    pub proposer: Option<Address>,
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/blocks/{height}", get(block_at))
        .route("/blocks/id/{id}", get(block_by_id))
        .route("/accounts/{address}", get(account))
        .route("/txs", post(submit_tx))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// An error answer: `{"error": "..."}` with a status code.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
    }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

fn not_found(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, message.into())
}

async fn status(State(s): State<ApiState>) -> Json<Value> {
    let head = s.chain.head();
    let listen: Vec<String> = s
        .net
        .listen_addrs()
        .await
        .unwrap_or_default()
        .iter()
        .map(|a| format!("{a}/p2p/{}", s.peer_id))
        .collect();
    let ledger = s.spec.ledger_params();
    Json(json!({
        "chain_id": s.spec.chain_id,
        "consensus": s.spec.consensus_name(),
        "genesis": s.genesis.to_hex(),
        "height": head.meta.height,
        "head": head.id.to_hex(),
        "head_timestamp_ms": head.header.timestamp_ms,
        "epoch": head.epoch,
        "peers": s.metrics.peers.load(Ordering::Relaxed),
        "peer_id": s.peer_id,
        "listen": listen,
        "sync_state": if s.syncing.load(Ordering::Relaxed) { "syncing" } else { "synced" },
        "hashrate": s.metrics.hashrate(),
        "mempool": s.metrics.mempool.load(Ordering::Relaxed),
        "proposer": s.proposer.map(|a| a.to_bech32()),
        "ledger": {
            "block_reward": ledger.block_reward,
            "min_fee": ledger.min_fee,
            "min_stake": ledger.min_stake,
            "unbonding_epochs": ledger.unbonding_epochs,
        },
    }))
}

async fn block_at(State(s): State<ApiState>, Path(height): Path<String>) -> Result<Json<Value>, ApiError> {
    let height: u64 = height
        .parse()
        .map_err(|_| bad_request(format!("height {height:?} is not a number")))?;
    let id = s
        .store
        .canonical(height)?
        .ok_or_else(|| not_found(format!("no block at height {height}")))?;
    block_json(&s, &id).map(Json)
}

async fn block_by_id(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id =
        Hash::from_hex(&id).ok_or_else(|| bad_request(format!("{id:?} is not a 64-digit hex block id")))?;
    block_json(&s, &id).map(Json)
}

fn block_json(s: &ApiState, id: &Hash) -> Result<Value, ApiError> {
    let block = s
        .store
        .block(id)?
        .ok_or_else(|| not_found(format!("no block {}", id.to_hex())))?;
    let header = block.header();
    let canonical = s.store.canonical(header.height)? == Some(*id);
    let mut out = json!({
        "id": id.to_hex(),
        "height": header.height,
        "parent": header.parent.to_hex(),
        "timestamp_ms": header.timestamp_ms,
        "tx_root": header.tx_root.to_hex(),
        "state_root": header.state_root.to_hex(),
        "proposer": header.proposer.to_bech32(),
        "signature": hex::encode(block.block().signed.signature.0),
        "canonical": canonical,
        "consensus": s.spec.consensus_name(),
        "txs": block.block().txs.iter().map(tx_json).collect::<Vec<_>>(),
    });
    let seal = match &header.seal {
        Seal::Pow(seal) => {
            let pre = header.pow_pre().unwrap_or_default();
            json!({
                "pow_pre": hex::encode(pre),
                "nonce": seal.nonce,
                "target": hex::encode(seal.target),
                "pow_hash": hex::encode(pow_hash(&pre, seal.nonce)),
            })
        }
        Seal::Pos(seal) => json!({
            "slot": seal.slot,
            "suite": seal.suite,
            "vrf_key": hex::encode(seal.vrf_key.0),
            "vrf_input": vrf_input(s, &block, seal.slot)?.map(hex::encode),
            "vrf_output": hex::encode(seal.vrf_output.0),
            "vrf_proof": hex::encode(seal.vrf_proof.0),
        }),
    };
    if let (Value::Object(out), Value::Object(seal)) = (&mut out, seal) {
        out.extend(seal);
    }
    Ok(out)
}

/// The VRF input a PoS block proved: from the parent's state advanced to
/// the slot's epoch, exactly as validation builds it.
fn vrf_input(s: &ApiState, block: &SealedBlock, slot: u64) -> Result<Option<Vec<u8>>, ApiError> {
    let Consensus::Pos(params) = &s.spec.consensus else {
        return Ok(None);
    };
    let Some(mut state) = s.store.state(&block.header().parent)? else {
        return Ok(None);
    };
    pos::advance_epoch(&mut state, params, slot);
    Ok(Some(pos::vrf_input(
        &s.spec.chain_id,
        &state.epoch.eta,
        slot,
        &block.header().proposer,
    )))
}

fn tx_json(tx: &Tx) -> Value {
    let mut out = json!({
        "id": tx.id().to_hex(),
        "from": tx.body.from.to_bech32(),
        "nonce": tx.body.nonce,
        "fee": tx.body.fee,
    });
    let kind = match &tx.body.kind {
        TxKind::Transfer { to, amount } => {
            json!({"kind": "transfer", "to": to.to_bech32(), "amount": amount})
        }
        TxKind::Stake { amount, vrf_key, .. } => {
            json!({"kind": "stake", "amount": amount, "vrf_key": hex::encode(vrf_key.0)})
        }
        TxKind::Unstake { amount } => json!({"kind": "unstake", "amount": amount}),
        TxKind::Evidence(evidence) => json!({
            "kind": "evidence",
            "offender": evidence.a.header.proposer.to_bech32(),
            "slot": evidence.a.header.slot(),
        }),
    };
    if let (Value::Object(out), Value::Object(kind)) = (&mut out, kind) {
        out.extend(kind);
    }
    out
}

async fn account(State(s): State<ApiState>, Path(address): Path<String>) -> Result<Json<Value>, ApiError> {
    let address: Address = address
        .parse()
        .map_err(|e| bad_request(format!("bad address {address:?}: {e}")))?;
    let head = s.chain.head();
    let account = head
        .state
        .account(&address)
        .ok_or_else(|| not_found(format!("unknown account {address}")))?;
    let unbonding: Vec<Value> = head
        .state
        .unbonding_of(&address)
        .into_iter()
        .map(|(release_epoch, amount)| json!({"amount": amount, "release_epoch": release_epoch}))
        .collect();
    Ok(Json(json!({
        "address": address.to_bech32(),
        "balance": account.balance,
        "nonce": account.nonce,
        "bonded": account.bonded,
        "vrf_key": account.vrf_key.map(|k| hex::encode(k.0)),
        "rewards": account.rewards,
        "blocks_proposed": account.blocks_proposed,
        "unbonding": unbonding,
        "epoch": head.epoch,
    })))
}

/// The body of `POST /txs`.
#[derive(Debug, Deserialize)]
struct SubmitTx {
    /// Hex of the encoded, signed transaction.
    tx: String,
}

async fn submit_tx(
    State(s): State<ApiState>,
    body: Result<Json<SubmitTx>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|e| bad_request(format!("body must be {{\"tx\": \"<hex>\"}}: {e}")))?;
    let bytes = hex::decode(body.tx.trim()).map_err(|e| bad_request(format!("tx is not hex: {e}")))?;
    let tx = codec::decode_tx(&bytes).map_err(|e| bad_request(e.to_string()))?;
    let id = tx.id();
    match s.chain.submit_tx(tx, true).await {
        Ok(Ok(_)) => Ok(Json(json!({ "id": id.to_hex() }))),
        Ok(Err(super::mempool::MempoolError::Full(n))) => Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("mempool is full ({n} transactions); raise the fee"),
        )),
        Ok(Err(error)) => Err(bad_request(error.to_string())),
        Err(error) => Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, error.to_string())),
    }
}

async fn metrics(State(s): State<ApiState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}
