//! A blocking client of the node's HTTP API, with errors that name the node
//! and say what went wrong. The wallet, the testnet status view and the
//! integration tests all talk to nodes through it.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::chaos::{ChaosStatus, LinkFaults, Partition};
use super::history::{AccountTxs, TxStatus};
use super::{Account, BlockView, ErrorBody, Status, SubmitTx, TxAccepted};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Setup(String),
    /// No answer.
    #[error("cannot reach the node at {url}: {reason}")]
    Unreachable {
        /// The node's base URL.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// The node answered with an error status; its own words.
    #[error("{message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The node's `error` (or the status line).
        message: String,
    },
    /// The answer does not have the API's shape.
    #[error("unexpected answer to {path}: {reason}")]
    Unexpected {
        /// The request path.
        path: String,
        /// The decode error.
        reason: String,
    },
}

/// A node's HTTP API at one base URL.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    http: reqwest::blocking::Client,
}

impl ApiClient {
    /// A client for the node at `url` (e.g. `http://127.0.0.1:8645`) whose
    /// calls give up after `timeout`.
    ///
    /// # Errors
    ///
    /// If the HTTP client cannot be built.
    pub fn new(url: &str, timeout: Duration) -> Result<ApiClient, ClientError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok(ApiClient {
            base: url.trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// `GET /status`.
    ///
    /// # Errors
    ///
    /// Unreachable node or an unexpected answer.
    pub fn status(&self) -> Result<Status, ClientError> {
        self.get("/status")
    }

    /// `GET /accounts/{address}`; `None` for an account the chain has never seen.
    ///
    /// # Errors
    ///
    /// Unreachable node, a malformed address, or an unexpected answer.
    pub fn account(&self, address: &str) -> Result<Option<Account>, ClientError> {
        not_found_is_none(self.get(&format!("/accounts/{address}")))
    }

    /// `GET /accounts/{address}?proof=true`: the account with the head's
    /// header and a state proof, if the account exists.
    ///
    /// # Errors
    ///
    /// Unreachable node or an unexpected answer.
    pub fn account_with_proof(&self, address: &str) -> Result<Option<Account>, ClientError> {
        not_found_is_none(self.get(&format!("/accounts/{address}?proof=true")))
    }

    /// `GET /blocks/{height}`: the canonical block there, if any.
    ///
    /// # Errors
    ///
    /// Unreachable node or an unexpected answer.
    pub fn block_at(&self, height: u64) -> Result<Option<BlockView>, ClientError> {
        not_found_is_none(self.get(&format!("/blocks/{height}")))
    }

    /// `GET /blocks/id/{id}`: a stored block, canonical or not, if any.
    ///
    /// # Errors
    ///
    /// Unreachable node or an unexpected answer.
    pub fn block_by_id(&self, id: &str) -> Result<Option<BlockView>, ClientError> {
        not_found_is_none(self.get(&format!("/blocks/id/{id}")))
    }

    /// `GET /txs/{id}`: pending, included (where), or unknown.
    ///
    /// # Errors
    ///
    /// Unreachable node, a malformed id, or an unexpected answer.
    pub fn tx_status(&self, id: &str) -> Result<TxStatus, ClientError> {
        self.get(&format!("/txs/{id}"))
    }

    /// `GET /accounts/{address}/txs?limit=&before=`: one page of the
    /// account's history, newest first.
    ///
    /// # Errors
    ///
    /// Unreachable node, a malformed address or limit, or an unexpected answer.
    pub fn account_txs(
        &self,
        address: &str,
        limit: u32,
        before: Option<u64>,
    ) -> Result<AccountTxs, ClientError> {
        let before = before.map(|b| format!("&before={b}")).unwrap_or_default();
        self.get(&format!("/accounts/{address}/txs?limit={limit}{before}"))
    }

    /// `POST /txs`; the transaction id.
    ///
    /// # Errors
    ///
    /// Unreachable node, or the node's reason for refusing the transaction.
    pub fn submit(&self, encoded_tx: &[u8]) -> Result<String, ClientError> {
        let body = SubmitTx {
            tx: hex::encode(encoded_tx),
        };
        self.post::<_, TxAccepted>("/txs", &body).map(|a| a.id)
    }

    /// `GET /chaos` on the admin API of a node started with `--chaos`
    /// (this client's URL is then the `admin` address of its `addresses.json`).
    ///
    /// # Errors
    ///
    /// Unreachable node or an unexpected answer.
    pub fn chaos(&self) -> Result<ChaosStatus, ClientError> {
        self.get("/chaos")
    }

    /// `POST /chaos/partition` on the admin API: the whole block list.
    ///
    /// # Errors
    ///
    /// Unreachable node, or the node's reason for refusing the list.
    pub fn set_partition(&self, blocked: Vec<String>) -> Result<ChaosStatus, ClientError> {
        self.post("/chaos/partition", &Partition { blocked })
    }

    /// `POST /chaos/link` on the admin API: every link fault.
    ///
    /// # Errors
    ///
    /// Unreachable node, or the node's reason for refusing the faults.
    pub fn set_link(&self, faults: &LinkFaults) -> Result<ChaosStatus, ClientError> {
        self.post("/chaos/link", faults)
    }

    /// `POST /chaos/clear` on the admin API: no fault left.
    ///
    /// # Errors
    ///
    /// Unreachable node or an unexpected answer.
    pub fn clear_chaos(&self) -> Result<ChaosStatus, ClientError> {
        self.post("/chaos/clear", &())
    }

    fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .map_err(|e| self.unreachable(&e))?;
        decode(check(response)?, path)
    }

    /// `GET /metrics`: the Prometheus text.
    ///
    /// # Errors
    ///
    /// Unreachable node or an error status.
    pub fn metrics(&self) -> Result<String, ClientError> {
        let response = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .map_err(|e| self.unreachable(&e))?;
        check(response)?.text().map_err(|e| unexpected("/metrics", &e))
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .map_err(|e| self.unreachable(&e))?;
        decode(check(response)?, path)
    }

    fn unreachable(&self, error: &reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            url: self.base.clone(),
            reason: error.to_string(),
        }
    }
}

fn not_found_is_none<T>(result: Result<T, ClientError>) -> Result<Option<T>, ClientError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(ClientError::Refused { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A 2xx answer, or the node's own error message.
fn check(response: reqwest::blocking::Response) -> Result<reqwest::blocking::Response, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let message = response
        .json::<ErrorBody>()
        .map_or_else(|_| status.to_string(), |b| b.error);
    Err(ClientError::Refused {
        status: status.as_u16(),
        message,
    })
}

fn decode<T: DeserializeOwned>(response: reqwest::blocking::Response, path: &str) -> Result<T, ClientError> {
    response.json().map_err(|e| unexpected(path, &e))
}

fn unexpected(path: &str, error: &reqwest::Error) -> ClientError {
    ClientError::Unexpected {
        path: path.to_owned(),
        reason: error.to_string(),
    }
}
