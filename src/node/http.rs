//! The HTTP API server (axum): the handlers behind the types of
//! [`crate::api`], documented in `docs/api.md`.
//!
//! The routes are registered through utoipa's `OpenApiRouter`, so the
//! OpenAPI 3 document served at `GET /openapi.json` is generated from the
//! same handlers and types that answer the requests and cannot drift from
//! them. Reads go straight to the head watch and the store (redb readers
//! never block the writer); only `POST /txs` goes through the chain task.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use klero_chain::codec;
use klero_chain::pos;
use klero_chain::pow::pow_hash;
use klero_chain::spec::Consensus;
use klero_chain::state::StateRead;
use klero_chain::state_tree::StateKey;
use klero_chain::types::{Seal, TxKind};
use klero_chain::{Address, ChainSpec, Hash, SealedBlock, Tx};
use utoipa::OpenApi;
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::openapi::path::ParameterBuilder;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::block_tree::Head;
use super::chain_task::{ChainError, ChainHandle};
use super::mempool::MempoolError;
use super::metrics::Metrics;
use super::store::{Store, StoreError};
use crate::api::{
    Account, AccountProof, BlockView, ConsensusKind, ErrorBody, LedgerInfo, SealView, Status, SubmitTx,
    SyncState, TxAccepted, TxKindView, TxView, Unbonding,
};
use crate::p2p::NetworkHandle;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct ApiState {
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

/// The document's title and version; the paths come from the handlers.
#[derive(OpenApi)]
#[openapi(info(
    title = "klero node HTTP API",
    description = "The JSON API of `klero node` (docs/api.md). Byte strings are lower-case hex, amounts u64, addresses bech32m (klero1…)."
))]
struct ApiDoc;

/// The API's routes and its OpenAPI document, from the same handlers.
fn routes() -> (Router<ApiState>, OpenApiDoc) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(status))
        .routes(routes!(block_at))
        .routes(routes!(block_by_id))
        .routes(routes!(account))
        .routes(routes!(submit_tx))
        .routes(routes!(metrics))
        .split_for_parts()
}

/// The API's routes, `GET /openapi.json` included.
pub(crate) fn router(state: ApiState) -> Router {
    let (router, doc) = routes();
    let doc = Arc::new(with_examples(doc, &state.genesis, &state.spec));
    router
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = Arc::clone(&doc);
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .with_state(state)
}

/// The served document, with path examples that are real on this node
/// (its genesis id, its first genesis account), so that a client or a
/// checker reaches the 200 answers as well as the errors.
fn with_examples(mut doc: OpenApiDoc, genesis: &Hash, spec: &ChainSpec) -> OpenApiDoc {
    let mut set = |path: &str, value: String| {
        let params = doc
            .paths
            .paths
            .get_mut(path)
            .and_then(|item| item.get.as_mut())
            .and_then(|op| op.parameters.as_mut());
        for param in params.into_iter().flatten() {
            *param = ParameterBuilder::from(param.clone())
                .example(Some(serde_json::Value::String(value.clone())))
                .build();
        }
    };
    set("/blocks/id/{id}", genesis.to_hex());
    if let Some(account) = spec.accounts.first() {
        set("/accounts/{address}", account.address.to_bech32());
    }
    doc
}

/// An error answer: [`ErrorBody`] with a status code.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
    }
}

/// What a path parameter parses into, and what is said of text that does not.
trait PathValue: Sized {
    fn parse(text: &str) -> Result<Self, String>;
}

impl PathValue for u64 {
    fn parse(text: &str) -> Result<Self, String> {
        text.parse()
            .map_err(|_| format!("height {text:?} is not a number"))
    }
}

impl PathValue for Hash {
    fn parse(text: &str) -> Result<Self, String> {
        Hash::from_hex(text).ok_or_else(|| format!("{text:?} is not a 64-digit hex block id"))
    }
}

impl PathValue for Address {
    fn parse(text: &str) -> Result<Self, String> {
        text.parse().map_err(|e| format!("bad address {text:?}: {e}"))
    }
}

/// A parsed path parameter. Text that does not parse, or is not even
/// UTF-8, is answered 400 with the JSON error body (axum's own rejection
/// would answer in plain text).
struct PathParam<T>(T);

impl<S: Send + Sync, T: PathValue> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| bad_request(format!("bad path: {}", e.body_text())))?;
        T::parse(&text).map(PathParam).map_err(bad_request)
    }
}

/// The error answers of a lookup by path.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a description of answers, never built
enum LookupErrors {
    /// The path parameter does not parse.
    #[response(status = 400)]
    Malformed(ErrorBody),
    /// Nothing there.
    #[response(status = 404)]
    Unknown(ErrorBody),
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

fn not_found(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, message.into())
}

/// The node and its head.
#[utoipa::path(get, path = "/status", responses((status = 200, body = Status)))]
async fn status(State(s): State<ApiState>) -> Json<Status> {
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
    Json(Status {
        chain_id: s.spec.chain_id.clone(),
        consensus: consensus_kind(&s.spec),
        genesis: s.genesis.to_hex(),
        height: head.meta.height,
        head: head.id.to_hex(),
        head_timestamp_ms: head.header.timestamp_ms,
        epoch: head.epoch,
        peers: s.metrics.peers.load(Ordering::Relaxed),
        peer_id: s.peer_id.clone(),
        listen,
        sync_state: if s.syncing.load(Ordering::Relaxed) {
            SyncState::Syncing
        } else {
            SyncState::Synced
        },
        hashrate: s.metrics.hashrate(),
        mempool: s.metrics.mempool.load(Ordering::Relaxed),
        proposer: s.proposer.map(|a| a.to_bech32()),
        ledger: LedgerInfo {
            block_reward: ledger.block_reward,
            min_fee: ledger.min_fee,
            min_stake: ledger.min_stake,
            unbonding_epochs: ledger.unbonding_epochs,
        },
    })
}

fn consensus_kind(spec: &ChainSpec) -> ConsensusKind {
    match spec.consensus {
        Consensus::Pos(_) => ConsensusKind::Pos,
        Consensus::Pow(_) => ConsensusKind::Pow,
    }
}

/// The canonical block at a height.
#[utoipa::path(
    get,
    path = "/blocks/{height}",
    params(("height" = u64, Path, description = "A block height", example = 0)),
    responses((status = 200, body = BlockView), LookupErrors)
)]
async fn block_at(
    State(s): State<ApiState>,
    PathParam(height): PathParam<u64>,
) -> Result<Json<BlockView>, ApiError> {
    let id = s
        .store
        .canonical(height)?
        .ok_or_else(|| not_found(format!("no block at height {height}")))?;
    block_view(&s, &id).map(Json)
}

/// Any stored block (side branches too), by id.
#[utoipa::path(
    get,
    path = "/blocks/id/{id}",
    params(("id" = String, Path, description = "A block id: 64 hex digits", pattern = "^[0-9a-fA-F]{64}$")),
    responses((status = 200, body = BlockView), LookupErrors)
)]
async fn block_by_id(
    State(s): State<ApiState>,
    PathParam(id): PathParam<Hash>,
) -> Result<Json<BlockView>, ApiError> {
    block_view(&s, &id).map(Json)
}

fn block_view(s: &ApiState, id: &Hash) -> Result<BlockView, ApiError> {
    let block = s
        .store
        .block(id)?
        .ok_or_else(|| not_found(format!("no block {}", id.to_hex())))?;
    let header = block.header();
    let canonical = s.store.canonical(header.height)? == Some(*id);
    let seal = match &header.seal {
        Seal::Pow(seal) => {
            let pre = header.pow_pre().unwrap_or_default();
            SealView::Pow {
                pow_pre: hex::encode(pre),
                nonce: seal.nonce,
                target: hex::encode(seal.target),
                pow_hash: hex::encode(pow_hash(&pre, seal.nonce)),
            }
        }
        Seal::Pos(seal) => SealView::Pos {
            slot: seal.slot,
            suite: seal.suite,
            vrf_key: hex::encode(seal.vrf_key.0),
            vrf_input: vrf_input(s, id, &block, seal.slot)?.map(hex::encode),
            vrf_output: hex::encode(seal.vrf_output.0),
            vrf_proof: hex::encode(seal.vrf_proof.0),
        },
    };
    Ok(BlockView {
        id: id.to_hex(),
        height: header.height,
        parent: header.parent.to_hex(),
        timestamp_ms: header.timestamp_ms,
        tx_root: header.tx_root.to_hex(),
        state_root: header.state_root.to_hex(),
        proposer: header.proposer.to_bech32(),
        signature: hex::encode(block.block().signed.signature.0),
        canonical,
        seal,
        txs: block.block().txs.iter().map(tx_view).collect(),
    })
}

/// The VRF input a PoS block proved: its epoch's `eta` is kept in the
/// block's stored metadata, so no state is read (or rebuilt) to show it.
fn vrf_input(s: &ApiState, id: &Hash, block: &SealedBlock, slot: u64) -> Result<Option<Vec<u8>>, ApiError> {
    let Some(info) = s.store.info(id)? else {
        return Ok(None);
    };
    Ok(Some(pos::vrf_input(
        &s.spec.chain_id,
        &info.meta.epoch.eta,
        slot,
        &block.header().proposer,
    )))
}

fn tx_view(tx: &Tx) -> TxView {
    let kind = match &tx.body.kind {
        TxKind::Transfer { to, amount } => TxKindView::Transfer {
            to: to.to_bech32(),
            amount: *amount,
        },
        TxKind::Stake { amount, vrf_key, pop } => TxKindView::Stake {
            amount: *amount,
            vrf_key: hex::encode(vrf_key.0),
            pop: hex::encode(pop.0),
        },
        TxKind::Unstake { amount } => TxKindView::Unstake { amount: *amount },
        TxKind::Evidence(evidence) => TxKindView::Evidence {
            offender: evidence.a.header.proposer.to_bech32(),
            slot: evidence.a.header.slot(),
        },
    };
    TxView {
        id: tx.id().to_hex(),
        from: tx.body.from.to_bech32(),
        nonce: tx.body.nonce,
        fee: tx.body.fee,
        kind,
    }
}

/// `GET /accounts/{address}`'s query.
#[derive(Debug, Default, serde::Deserialize)]
struct AccountQuery {
    /// Add the head's signed header and a proof of the account under it.
    #[serde(default)]
    proof: bool,
}

/// An account in the head state (404 for a valid address the chain has
/// never seen); with `?proof=true`, with a proof against the head's
/// header.
#[utoipa::path(
    get,
    path = "/accounts/{address}",
    responses((status = 200, body = Account), LookupErrors),
    params(
        ("address" = String, Path, description = "A bech32m address (klero1…)", pattern = "^(klero|KLERO)1[qpzry9x8gf2tvdw0s3jn54khce6mua7lQPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}$"),
        ("proof" = Option<bool>, Query, description = "Add the head's signed header and a state proof of the account")
    )
)]
async fn account(
    State(s): State<ApiState>,
    PathParam(address): PathParam<Address>,
    query: Result<Query<AccountQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Account>, ApiError> {
    let Query(query) = query.map_err(|e| bad_request(e.body_text()))?;
    let head = s.chain.head();
    let account = head
        .state
        .account(&address)
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("unknown account {address}")))?;
    let unbonding = head
        .state
        .unbonding_of(&address, head.epoch, s.spec.ledger.unbonding_epochs)
        .map_err(internal)?
        .into_iter()
        .map(|(release_epoch, amount)| Unbonding {
            amount,
            release_epoch,
        })
        .collect();
    Ok(Json(Account {
        address: address.to_bech32(),
        balance: account.balance,
        nonce: account.nonce,
        bonded: account.bonded,
        vrf_key: account.vrf_key.map(|k| hex::encode(k.0)),
        rewards: account.rewards,
        blocks_proposed: account.blocks_proposed,
        unbonding,
        epoch: head.epoch,
        proof: query
            .proof
            .then(|| account_proof(&s, &head, &address))
            .transpose()?,
    }))
}

/// The head's signed header and the proof of `address`'s entry, both from
/// the head the account was read from.
fn account_proof(s: &ApiState, head: &Head, address: &Address) -> Result<AccountProof, ApiError> {
    let block = s
        .store
        .block(&head.id)?
        .ok_or_else(|| internal("the head block is missing"))?;
    let proof =
        klero_chain::state::prove(head.state.as_ref(), &StateKey::Account(*address)).map_err(internal)?;
    Ok(AccountProof {
        head: head.id.to_hex(),
        header: hex::encode(codec::encode(&block.block().signed)),
        proof: hex::encode(proof.encode()),
    })
}

/// Submits a signed transaction: checked against the head state, then
/// pooled and gossiped once.
#[utoipa::path(
    post,
    path = "/txs",
    request_body = SubmitTx,
    responses(
        (status = 200, description = "Accepted, or already known", body = TxAccepted),
        (status = 400, description = "Malformed, or refused by the ledger's rules", body = ErrorBody),
        (status = 503, description = "The mempool is full of better-paying transactions, or the node is stopping", body = ErrorBody),
    )
)]
async fn submit_tx(
    State(s): State<ApiState>,
    body: Result<Json<SubmitTx>, JsonRejection>,
) -> Result<Json<TxAccepted>, ApiError> {
    let Json(body) = body.map_err(|e| bad_request(format!("body must be {{\"tx\": \"<hex>\"}}: {e}")))?;
    let bytes = hex::decode(body.tx.trim()).map_err(|e| bad_request(format!("tx is not hex: {e}")))?;
    let tx = codec::decode_tx(&bytes).map_err(|e| bad_request(e.to_string()))?;
    let id = tx.id();
    match s.chain.submit_tx(tx, true).await {
        Ok(_) => Ok(Json(TxAccepted { id: id.to_hex() })),
        Err(ChainError::Tx(MempoolError::Full(n))) => Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("mempool is full ({n} transactions); raise the fee"),
        )),
        Err(ChainError::Tx(error)) => Err(bad_request(error.to_string())),
        Err(error) => Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, error.to_string())),
    }
}

/// Counters in the Prometheus text format 0.0.4.
#[utoipa::path(
    get,
    path = "/metrics",
    responses((status = 200, description = "Prometheus text", content_type = "text/plain", body = String))
)]
async fn metrics(State(s): State<ApiState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_covers_every_route() {
        let doc = routes().1;
        let paths: Vec<&str> = doc.paths.paths.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            [
                "/accounts/{address}",
                "/blocks/id/{id}",
                "/blocks/{height}",
                "/metrics",
                "/status",
                "/txs"
            ]
        );
        let schemas = doc.components.as_ref().expect("components").schemas.keys();
        for name in [
            "Status",
            "BlockView",
            "SealView",
            "TxView",
            "Account",
            "SubmitTx",
            "ErrorBody",
        ] {
            assert!(schemas.clone().any(|s| s == name), "{name} missing");
        }
    }
}
