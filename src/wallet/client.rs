//! The wallet's view of a node: the three HTTP API calls it needs
//! (`docs/api.md`), with errors that name the node and say what went wrong.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::WalletError;

/// `GET /status`, the fields the wallet uses.
#[derive(Clone, Debug, Deserialize)]
pub struct NodeStatus {
    /// Chain id: transactions are signed for it.
    pub chain_id: String,
    /// `pos` or `pow`.
    pub consensus: String,
    /// Head height.
    pub height: u64,
    /// The head's epoch.
    pub epoch: u64,
    /// Ledger rules.
    pub ledger: LedgerInfo,
}

/// The ledger rules in `/status`.
#[derive(Clone, Debug, Deserialize)]
pub struct LedgerInfo {
    /// Smallest fee.
    pub min_fee: u64,
    /// Smallest non-zero bonded stake.
    pub min_stake: u64,
    /// Epochs an unstake waits.
    pub unbonding_epochs: u64,
}

/// `GET /accounts/{address}`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AccountInfo {
    /// Spendable balance.
    pub balance: u64,
    /// Next nonce.
    pub nonce: u64,
    /// Bonded stake.
    pub bonded: u64,
    /// Stake on its way back: amount and the epoch it frees.
    pub unbonding: Vec<Unbonding>,
    /// Rewards and fees won as proposer.
    pub rewards: u64,
    /// Blocks proposed.
    pub blocks_proposed: u64,
    /// The head's epoch.
    pub epoch: u64,
}

/// One unbonding entry.
#[derive(Clone, Debug, Deserialize)]
pub struct Unbonding {
    /// Amount.
    pub amount: u64,
    /// The epoch from which it is spendable again.
    pub release_epoch: u64,
}

/// A node's HTTP API.
#[derive(Debug)]
pub struct NodeClient {
    base: String,
    http: reqwest::blocking::Client,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

impl NodeClient {
    /// A client for the node at `url` (e.g. `http://127.0.0.1:8645`).
    ///
    /// # Errors
    ///
    /// If the HTTP client cannot be built.
    pub fn new(url: &str) -> Result<NodeClient, WalletError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| WalletError::Io(format!("HTTP client: {e}")))?;
        Ok(NodeClient {
            base: url.trim_end_matches('/').to_owned(),
            http,
        })
    }

    fn unreachable(&self, error: &reqwest::Error) -> WalletError {
        WalletError::Unreachable {
            url: self.base.clone(),
            reason: error.to_string(),
        }
    }

    /// Turns a non-2xx answer into the node's own error message.
    fn check(
        &self,
        response: reqwest::blocking::Response,
    ) -> Result<reqwest::blocking::Response, WalletError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let message = response
            .json::<ErrorBody>()
            .map_or_else(|_| status.to_string(), |b| b.error);
        Err(WalletError::Refused(message))
    }

    /// `GET /status`.
    ///
    /// # Errors
    ///
    /// Unreachable node or an unexpected answer.
    pub fn status(&self) -> Result<NodeStatus, WalletError> {
        let response = self
            .http
            .get(format!("{}/status", self.base))
            .send()
            .map_err(|e| self.unreachable(&e))?;
        self.check(response)?
            .json()
            .map_err(|e| WalletError::Refused(format!("unexpected /status answer: {e}")))
    }

    /// `GET /accounts/{address}`; `None` for an account the chain has never seen.
    ///
    /// # Errors
    ///
    /// Unreachable node or an unexpected answer.
    pub fn account(&self, address: &str) -> Result<Option<AccountInfo>, WalletError> {
        let response = self
            .http
            .get(format!("{}/accounts/{address}", self.base))
            .send()
            .map_err(|e| self.unreachable(&e))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        self.check(response)?
            .json()
            .map(Some)
            .map_err(|e| WalletError::Refused(format!("unexpected /accounts answer: {e}")))
    }

    /// `POST /txs`; returns the transaction id.
    ///
    /// # Errors
    ///
    /// Unreachable node, or the node's reason for refusing the transaction.
    pub fn submit(&self, encoded_tx: &[u8]) -> Result<String, WalletError> {
        #[derive(Deserialize)]
        struct Accepted {
            id: String,
        }
        let response = self
            .http
            .post(format!("{}/txs", self.base))
            .json(&json!({ "tx": hex::encode(encoded_tx) }))
            .send()
            .map_err(|e| self.unreachable(&e))?;
        self.check(response)?
            .json::<Accepted>()
            .map(|a| a.id)
            .map_err(|e| WalletError::Refused(format!("unexpected /txs answer: {e}")))
    }
}
