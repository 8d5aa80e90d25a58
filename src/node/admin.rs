//! The admin API of a node started with `--chaos`: its network faults,
//! on a socket of its own that the command line binds to 127.0.0.1 only.
//! The types are in [`crate::api::chaos`]; `docs/api.md` documents the
//! routes. A node started without `--chaos` never builds this router.

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use libp2p::PeerId;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::ErrorBody;
use crate::api::chaos::{ChaosStatus, LinkFaults, Partition};
use crate::p2p::{ChaosChange, ChaosState, MAX_BLOCKED, NetworkHandle, P2pError};

/// Request bodies are small: a block list of [`MAX_BLOCKED`] peer ids of
/// 52 characters each fits well below this.
const MAX_BODY_BYTES: usize = 128 * 1024;

#[derive(OpenApi)]
#[openapi(info(
    title = "klero node admin API (--chaos)",
    description = "Network faults of a node started with --chaos: partitions (a peer block list) and link delay, jitter and loss. Bound to 127.0.0.1 only."
))]
struct AdminDoc;

/// The admin routes and `GET /openapi.json` (their document).
pub(crate) fn router(net: NetworkHandle) -> Router {
    let (router, doc) = OpenApiRouter::with_openapi(AdminDoc::openapi())
        .routes(routes!(show))
        .routes(routes!(partition))
        .routes(routes!(link))
        .routes(routes!(clear))
        .split_for_parts();
    router
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { Json(doc) }
            }),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(net)
}

/// An error answer, [`ErrorBody`] with a status.
struct AdminError(StatusCode, String);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

impl From<P2pError> for AdminError {
    fn from(error: P2pError) -> Self {
        let status = match error {
            P2pError::BadLink { .. } | P2pError::TooManyBlocked { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        AdminError(status, error.to_string())
    }
}

impl From<JsonRejection> for AdminError {
    fn from(rejection: JsonRejection) -> Self {
        AdminError(rejection.status(), rejection.body_text())
    }
}

type Answer = Result<Json<ChaosStatus>, AdminError>;

async fn apply(net: &NetworkHandle, change: ChaosChange) -> Answer {
    let ChaosState {
        blocked,
        link,
        counters,
    } = net.chaos(change).await?;
    Ok(Json(ChaosStatus {
        blocked: blocked.iter().map(PeerId::to_string).collect(),
        link,
        counters,
    }))
}

/// The active faults and what they have done.
#[utoipa::path(get, path = "/chaos", responses((status = 200, body = ChaosStatus)))]
async fn show(State(net): State<NetworkHandle>) -> Answer {
    apply(&net, ChaosChange::Show).await
}

/// Replaces the block list: connections to these peers are refused and
/// closed; peers no longer on it are redialled. Empty heals.
#[utoipa::path(
    post,
    path = "/chaos/partition",
    request_body = Partition,
    responses((status = 200, body = ChaosStatus), (status = 400, body = ErrorBody))
)]
async fn partition(State(net): State<NetworkHandle>, body: Result<Json<Partition>, JsonRejection>) -> Answer {
    let Json(Partition { blocked }) = body?;
    if blocked.len() > MAX_BLOCKED {
        return Err(P2pError::TooManyBlocked { len: blocked.len() }.into());
    }
    let peers = blocked
        .iter()
        .map(|text| {
            text.parse::<PeerId>()
                .map_err(|e| AdminError(StatusCode::BAD_REQUEST, format!("bad peer id {text:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    apply(&net, ChaosChange::Partition(peers)).await
}

/// Sets the link faults (all of them: a field left at 0 is off).
#[utoipa::path(
    post,
    path = "/chaos/link",
    request_body = LinkFaults,
    responses((status = 200, body = ChaosStatus), (status = 400, body = ErrorBody))
)]
async fn link(State(net): State<NetworkHandle>, body: Result<Json<LinkFaults>, JsonRejection>) -> Answer {
    let Json(faults) = body?;
    apply(&net, ChaosChange::Link(faults)).await
}

/// Removes every fault: the block list and the link faults.
#[utoipa::path(post, path = "/chaos/clear", responses((status = 200, body = ChaosStatus)))]
async fn clear(State(net): State<NetworkHandle>) -> Answer {
    apply(&net, ChaosChange::Clear).await
}
