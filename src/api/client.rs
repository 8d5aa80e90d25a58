//! A blocking client of the node's HTTP API, with errors that name the node
//! and say what went wrong. The wallet, the testnet status view and the
//! integration tests all talk to nodes through it.

use std::time::Duration;

use serde::de::DeserializeOwned;

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

    /// `POST /txs`; the transaction id.
    ///
    /// # Errors
    ///
    /// Unreachable node, or the node's reason for refusing the transaction.
    pub(crate) fn submit(&self, encoded_tx: &[u8]) -> Result<String, ClientError> {
        let body = SubmitTx {
            tx: hex::encode(encoded_tx),
        };
        let response = self
            .http
            .post(format!("{}/txs", self.base))
            .json(&body)
            .send()
            .map_err(|e| self.unreachable(&e))?;
        decode::<TxAccepted>(check(response)?, "/txs").map(|a| a.id)
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
