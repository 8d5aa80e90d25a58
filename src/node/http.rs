//! The HTTP API server (axum): the handlers behind the types of
//! [`crate::api`], documented in `docs/api.md`.
//!
//! The routes are registered through utoipa's `OpenApiRouter`, so the
//! OpenAPI 3 document served at `GET /openapi.json` is generated from the
//! same handlers and types that answer the requests and cannot drift from
//! them. Reads go straight to the head watch and the store (redb readers
//! never block the writer; store reads run on tokio's blocking pool, off
//! the async workers); only `POST /txs` goes through the chain task.
//!
//! Under load or abuse every request is bounded: a body of at most
//! [`BODY_LIMIT`] (413 beyond), an answer within [`REQUEST_TIMEOUT`] (408
//! beyond), and at most [`MAX_IN_FLIGHT`] requests at once; more are
//! answered 503 at once rather than queued.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
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
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{BoxError, ServiceBuilder};
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::openapi::path::ParameterBuilder;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::block_tree::Head;
use super::chain_task::{ChainError, ChainHandle};
use super::mempool::MempoolError;
use super::metrics::Metrics;
use super::recent::Recent;
use super::store::{Store, StoreError};
use super::sync::SyncStatus;
use super::tx_index;
use crate::api::history::{AccountTx, AccountTxs, DEFAULT_PAGE, MAX_PAGE, PageQuery, TxState, TxStatus};
use crate::api::overview::{
    BlockList, BlockSummary, OthersView, PeerView, Peers, ProposerView, Proposers, ReorgView, Reorgs,
};
use crate::api::{
    Account, AccountProof, BlockView, ConsensusKind, ErrorBody, LedgerInfo, SealView, Status, SubmitTx,
    SyncState, TxAccepted, TxKindView, TxView, Unbonding,
};
use crate::p2p::NetworkHandle;

/// The largest request body: a `POST /txs` of the largest transaction,
/// hex-encoded, with room for the JSON around it.
const BODY_LIMIT: usize = 2 * codec::MAX_TX_BYTES + 1024;
/// How long a request may take before it is answered 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests served at once; more are refused with 503, not queued.
const MAX_IN_FLIGHT: usize = 128;

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
    /// Recent blocks, reorgs and the best chain's statistics.
    pub recent: Arc<Recent>,
    /// The network, for listen addresses.
    pub net: NetworkHandle,
    /// Our libp2p peer id.
    pub peer_id: String,
    /// Whether the node is syncing.
    pub sync: Arc<SyncStatus>,
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
        .routes(routes!(tx_status))
        .routes(routes!(account_txs))
        .routes(routes!(block_list))
        .routes(routes!(reorgs))
        .routes(routes!(peers))
        .routes(routes!(proposers))
        .split_for_parts()
}

/// The API's routes, `GET /openapi.json` and the explorer page included.
pub(crate) fn router(state: ApiState) -> Router {
    let (router, doc) = routes();
    let doc = Arc::new(with_examples(doc, &state.genesis, &state.spec));
    router
        .merge(super::explorer::routes())
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = Arc::clone(&doc);
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(overloaded))
                .load_shed()
                // Global: `Router::layer` gives each route its own copy.
                .layer(GlobalConcurrencyLimitLayer::new(MAX_IN_FLIGHT))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    REQUEST_TIMEOUT,
                ))
                .layer(DefaultBodyLimit::max(BODY_LIMIT)),
        )
}

/// The answer to a request refused by the load shedder.
async fn overloaded(error: BoxError) -> ApiError {
    if error.is::<tower::load_shed::error::Overloaded>() {
        ApiError(StatusCode::SERVICE_UNAVAILABLE, "the node is busy; retry".into())
    } else {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
    }
}

/// Runs `read` (store reads: redb and decoding) on the blocking pool.
async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
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
        set("/accounts/{address}/txs", account.address.to_bech32());
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
        Hash::from_hex(text).ok_or_else(|| format!("{text:?} is not a 64-digit hex id"))
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

/// A parsed query string; one that does not parse is answered 400 with the
/// JSON error body.
struct QueryParams<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| QueryParams(q))
            .map_err(|e| bad_request(format!("bad query: {}", e.body_text())))
    }
}

/// A checked page query: the size (`limit` in 1..=[`MAX_PAGE`],
/// [`DEFAULT_PAGE`] if absent) and the cursor, which the document types as
/// an int64 like every integer, so one above `i64::MAX` is refused too.
fn page(query: PageQuery) -> Result<(usize, Option<u64>), ApiError> {
    let size = match query.limit.unwrap_or(DEFAULT_PAGE) {
        n @ 1..=MAX_PAGE => n as usize,
        n => return Err(bad_request(format!("limit {n} is outside 1..={MAX_PAGE}"))),
    };
    match query.before {
        Some(b) if i64::try_from(b).is_err() => Err(bad_request(format!("before {b} is above {}", i64::MAX))),
        before => Ok((size, before)),
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
        sync_state: if s.sync.is_syncing() {
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
    blocking(move || {
        let id = s
            .store
            .canonical(height)?
            .ok_or_else(|| not_found(format!("no block at height {height}")))?;
        block_view(&s, &id)
    })
    .await
    .map(Json)
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
    blocking(move || block_view(&s, &id)).await.map(Json)
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
        (status = 413, description = "The body is larger than any transaction", body = ErrorBody),
        (status = 503, description = "The mempool is full of better-paying transactions, or the node is stopping", body = ErrorBody),
    )
)]
async fn submit_tx(
    State(s): State<ApiState>,
    body: Result<Json<SubmitTx>, JsonRejection>,
) -> Result<Json<TxAccepted>, ApiError> {
    let Json(body) = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("at most {BODY_LIMIT} bytes: {e}"),
        ),
        _ => bad_request(format!("body must be {{\"tx\": \"<hex>\"}}: {e}")),
    })?;
    let tx = codec::decode_tx_hex(&body.tx).map_err(|e| bad_request(e.to_string()))?;
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
        s.metrics.render(&s.recent.stats()),
    )
}

/// Where a transaction is: pending in this node's mempool, included in a
/// block of the best chain, or unknown.
#[utoipa::path(
    get,
    path = "/txs/{id}",
    params(("id" = String, Path, description = "A transaction id: 64 hex digits", pattern = "^[0-9a-fA-F]{64}$")),
    responses(
        (status = 200, body = TxStatus),
        (status = 400, description = "The id does not parse", body = ErrorBody),
        (status = 503, description = "The node is stopping", body = ErrorBody),
    )
)]
async fn tx_status(
    State(s): State<ApiState>,
    PathParam(id): PathParam<Hash>,
) -> Result<Json<TxStatus>, ApiError> {
    let store = s.store.clone();
    let indexed = blocking(move || Ok(tx_index::lookup(&store, &id)?)).await?;
    let state = if let Some(found) = indexed {
        let head = s.chain.head().meta.height;
        TxState::Included {
            block: found.block.to_hex(),
            height: found.height,
            index: found.index,
            position: found.position(),
            timestamp_ms: found.timestamp_ms,
            confirmations: head.saturating_sub(found.height) + 1,
            tx: tx_view(&found.tx),
        }
    } else {
        match s.chain.pending_tx(id).await {
            Ok(Some(tx)) => TxState::Pending { tx: tx_view(&tx) },
            Ok(None) => TxState::Unknown,
            Err(error) => return Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, error.to_string())),
        }
    };
    Ok(Json(TxStatus {
        id: id.to_hex(),
        state,
    }))
}

/// An account's transactions on the best chain (sent, received, or
/// evidence against it), newest first.
#[utoipa::path(
    get,
    path = "/accounts/{address}/txs",
    params(
        ("address" = String, Path, description = "A bech32m address (klero1…)", pattern = "^(klero|KLERO)1[qpzry9x8gf2tvdw0s3jn54khce6mua7lQPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}$"),
        PageQuery,
    ),
    responses(
        (status = 200, body = AccountTxs),
        (status = 400, description = "The address or the query does not parse", body = ErrorBody),
    )
)]
async fn account_txs(
    State(s): State<ApiState>,
    PathParam(address): PathParam<Address>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<AccountTxs>, ApiError> {
    let (limit, before) = page(query)?;
    let before = before.unwrap_or(u64::MAX);
    // One more than asked tells whether an older page exists.
    let store = s.store.clone();
    let mut found = blocking(move || Ok(tx_index::account_txs(&store, &address, before, limit + 1)?)).await?;
    let more = found.len() > limit;
    found.truncate(limit);
    let next_before = more
        .then(|| found.last().map(tx_index::Included::position))
        .flatten();
    Ok(Json(AccountTxs {
        address: address.to_bech32(),
        txs: found
            .iter()
            .map(|i| AccountTx {
                position: i.position(),
                height: i.height,
                block: i.block.to_hex(),
                timestamp_ms: i.timestamp_ms,
                tx: tx_view(&i.tx),
            })
            .collect(),
        next_before,
    }))
}

/// The latest blocks, newest first: the canonical block of each height and
/// the blocks of those heights this node recently saw on other branches.
#[utoipa::path(
    get,
    path = "/blocks",
    params(PageQuery),
    responses(
        (status = 200, body = BlockList),
        (status = 400, description = "The query does not parse", body = ErrorBody),
    )
)]
async fn block_list(
    State(s): State<ApiState>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<BlockList>, ApiError> {
    let (limit, before) = page(query)?;
    let limit = limit as u64;
    let head = s.chain.head().meta.height;
    let top = before.map_or(head, |b| b.saturating_sub(1).min(head));
    if before == Some(0) {
        return Ok(Json(BlockList {
            blocks: Vec::new(),
            next_before: None,
        }));
    }
    let bottom = top.saturating_sub(limit - 1);
    let state = s.clone();
    let mut blocks = blocking(move || {
        let s = state;
        let mut blocks = Vec::new();
        let mut canonical_ids = Vec::new();
        for height in (bottom..=top).rev() {
            let Some(id) = s.store.canonical(height)? else {
                continue;
            };
            let Some(block) = s.store.block(&id)? else {
                continue;
            };
            canonical_ids.push(id);
            blocks.push(summary(&super::recent::RecentBlock::of(&block), true));
        }
        for side in s.recent.blocks_in(bottom..=top) {
            if !canonical_ids.contains(&side.id) && s.store.canonical(side.height)? != Some(side.id) {
                blocks.push(summary(&side, false));
            }
        }
        Ok(blocks)
    })
    .await?;
    // Newest first; at one height the canonical block leads.
    blocks.sort_by(|a, b| b.height.cmp(&a.height).then(b.canonical.cmp(&a.canonical)));
    Ok(Json(BlockList {
        blocks,
        next_before: (bottom > 0).then_some(bottom),
    }))
}

fn summary(block: &super::recent::RecentBlock, canonical: bool) -> BlockSummary {
    BlockSummary {
        id: block.id.to_hex(),
        height: block.height,
        parent: block.parent.to_hex(),
        timestamp_ms: block.timestamp_ms,
        proposer: block.proposer.to_bech32(),
        tx_count: block.tx_count,
        canonical,
        slot: block.slot,
        nonce: block.nonce,
    }
}

/// The node's most recent reorgs (a ring of the last 32), newest first.
#[utoipa::path(get, path = "/reorgs", responses((status = 200, body = Reorgs)))]
async fn reorgs(State(s): State<ApiState>) -> Json<Reorgs> {
    let (reorgs, total) = s.recent.reorgs();
    Json(Reorgs {
        total,
        reorgs: reorgs
            .iter()
            .map(|r| ReorgView {
                at_ms: r.at_ms,
                depth: r.depth,
                fork_height: r.fork_height(),
                old_head: r.old_head.to_hex(),
                old_height: r.old_height,
                new_head: r.new_head.to_hex(),
                new_height: r.new_height,
            })
            .collect(),
    })
}

/// The connected peers, with the heights they reported to our syncer.
#[utoipa::path(get, path = "/peers", responses((status = 200, body = Peers)))]
async fn peers(State(s): State<ApiState>) -> Json<Peers> {
    let heights = s.metrics.peer_heights();
    let mut peers: Vec<PeerView> = s
        .net
        .peers()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|peer| PeerView {
            peer_id: peer.to_string(),
            height: heights.get(&peer).copied(),
        })
        .collect();
    peers.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
    Json(Peers {
        peers,
        best_height: heights.values().max().copied(),
        height_gap: s.metrics.height_gap(),
    })
}

/// Who won the best chain's last blocks, against the weight the lottery
/// gives them (PoS: the draw snapshot's stake).
#[utoipa::path(get, path = "/proposers", responses((status = 200, body = Proposers)))]
async fn proposers(State(s): State<ApiState>) -> Json<Proposers> {
    let stats = s.recent.stats();
    let share = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            part as f64 / whole as f64
        }
    };
    Json(Proposers {
        window_blocks: stats.window_blocks,
        window_slots: stats.window_slots,
        slot_fill: stats.slot_fill(),
        total_stake: stats.total_stake,
        orphaned: stats.orphaned,
        proposers: stats
            .proposers
            .iter()
            .map(|p| ProposerView {
                address: p.address.to_bech32(),
                window_wins: p.window_wins,
                win_share: share(p.window_wins, stats.window_blocks),
                blocks_won: p.blocks_won,
                stake: p.stake,
                weight_share: p.stake.zip(stats.total_stake).map(|(s, t)| share(s, t)),
            })
            .collect(),
        others: (stats.others.count > 0).then(|| OthersView {
            count: stats.others.count,
            window_wins: stats.others.window_wins,
            win_share: share(stats.others.window_wins, stats.window_blocks),
            stake: stats.others.stake,
            weight_share: stats
                .others
                .stake
                .zip(stats.total_stake)
                .map(|(s, t)| share(s, t)),
        }),
    })
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
                "/accounts/{address}/txs",
                "/blocks",
                "/blocks/id/{id}",
                "/blocks/{height}",
                "/metrics",
                "/peers",
                "/proposers",
                "/reorgs",
                "/status",
                "/txs",
                "/txs/{id}"
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
            "TxStatus",
            "AccountTxs",
            "BlockList",
            "Reorgs",
            "Peers",
            "Proposers",
        ] {
            assert!(schemas.clone().any(|s| s == name), "{name} missing");
        }
    }
}
