//! The CLI wallet's library side: the encrypted keystore and the checks a
//! transaction must pass before it is signed and sent (it talks to the
//! node through [`crate::api::client`]).
//!
//! Keys never leave the machine: the wallet decrypts the seed, derives the
//! signing and VRF keys (`Keypair::from_seed`), builds and signs the
//! transaction locally, and sends only the signed bytes.
//!
//! A keystore signs for one chain only ([`ChainBinding`]): the chain id and
//! genesis named at `new`/`import`, or else those of the node it first
//! signs through. A transaction's signature names the chain id alone, so a
//! node that misreports its chain (or a testnet restarted under the same id)
//! could otherwise collect a signature that is valid on another chain.

pub(crate) mod keystore;
pub(crate) mod mnemonic;
pub(crate) mod verify;

use std::path::{Path, PathBuf};

pub(crate) use klero_keystore::ChainBinding;
use klero_keystore::KeystoreError;

use klero_chain::ledger::{Account, ApplyError, BlockCtx, LedgerParams, TxError};
use klero_chain::state::{MemState, StateOverlay, StateValue};
use klero_chain::state_tree::StateKey;
use klero_chain::{Address, Tx};

use crate::api::client::ClientError;
use crate::api::{self, Status};

/// Why a wallet operation failed. None of them changes the keystore.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WalletError {
    /// The passphrase does not open the keystore.
    #[error("wrong passphrase (or a corrupted keystore)")]
    WrongPassphrase,
    /// The keystore file is malformed or unsupported.
    #[error("keystore: {0}")]
    Keystore(String),
    /// A keystore of that name exists.
    #[error("{0} already exists; refusing to overwrite a keystore")]
    Exists(String),
    /// No keystore of that name.
    #[error("no wallet named {name:?} in {dir} (create one with `klero wallet new --name {name}`)")]
    NoSuchWallet {
        /// The name.
        name: String,
        /// The wallet dir.
        dir: String,
    },
    /// File system trouble.
    #[error("{0}")]
    Io(String),
    /// The node did not answer.
    #[error("cannot reach the node at {url}: {reason} (is `klero node` running? set --node or KLERO_NODE)")]
    Unreachable {
        /// The node URL.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// The node refused the request; its own words.
    #[error("the node refused: {0}")]
    Refused(String),
    /// The sender's account does not exist on the chain.
    #[error("unknown account {0}: it has never received funds on this chain")]
    UnknownAccount(String),
    /// The ledger would refuse the transaction; its own reason.
    #[error("the chain would refuse this transaction: {0}")]
    Rejected(TxError),
    /// The node's answer does not match the header it comes with.
    #[error("the node's answer does not check out, do not trust it: {0}")]
    Unverified(#[from] verify::VerifyError),
    /// An address that does not parse (checksum, prefix, length).
    #[error("{0}")]
    BadAddress(String),
    /// The node reports another chain than the one the keystore signs for.
    #[error(
        "the node at {node} reports chain {got}, but this wallet signs only for chain {expected}; nothing was signed (point --node at a node of that chain, or use another wallet)"
    )]
    WrongChain {
        /// The node URL.
        node: String,
        /// The keystore's chain.
        expected: ChainBinding,
        /// The node's.
        got: ChainBinding,
    },
    /// A chain id or genesis id given by the user that cannot be one.
    #[error("{0}")]
    BadChain(String),
    /// Waiting for inclusion timed out.
    #[error("transaction {0} was not included within the wait time; it may still be")]
    NotIncluded(String),
}

impl From<KeystoreError> for WalletError {
    fn from(error: KeystoreError) -> Self {
        match error {
            KeystoreError::WrongPassphrase => WalletError::WrongPassphrase,
            KeystoreError::BadChain(reason) => WalletError::BadChain(reason),
            error => WalletError::Keystore(error.to_string()),
        }
    }
}

impl From<ClientError> for WalletError {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::Unreachable { url, reason } => WalletError::Unreachable { url, reason },
            ClientError::Setup(reason) => WalletError::Io(reason),
            error @ (ClientError::Refused { .. } | ClientError::Unexpected { .. }) => {
                WalletError::Refused(error.to_string())
            }
        }
    }
}

/// The chain a node reports, as a keystore's binding.
pub(crate) fn chain_of(status: &Status) -> ChainBinding {
    ChainBinding {
        chain_id: status.chain_id.clone(),
        genesis: status.genesis.to_ascii_lowercase(),
    }
}

/// Checks that the node at `node` reports the chain `binding` names.
///
/// # Errors
///
/// [`WalletError::WrongChain`] naming both.
pub(crate) fn check_chain(binding: &ChainBinding, status: &Status, node: &str) -> Result<(), WalletError> {
    let got = chain_of(status);
    if got == *binding {
        return Ok(());
    }
    Err(WalletError::WrongChain {
        node: node.to_owned(),
        expected: binding.clone(),
        got,
    })
}

/// Runs a signed transaction through the ledger's own rules against the
/// sender's account as the node reports it, so that the user gets the
/// ledger's reason before anything is sent (and the wallet cannot drift from
/// the chain's rules).
///
/// # Errors
///
/// [`WalletError::UnknownAccount`] without an account, otherwise
/// [`WalletError::Rejected`] with the first rule the transaction breaks.
pub(crate) fn check_tx(tx: &Tx, account: Option<&api::Account>, status: &Status) -> Result<(), WalletError> {
    let from = tx.body.from;
    let account = account.ok_or_else(|| WalletError::UnknownAccount(from.to_bech32()))?;
    let account = Account {
        balance: account.balance,
        nonce: account.nonce,
        bonded: account.bonded,
        ..Account::default()
    };
    let state = MemState::new([(StateKey::Account(from), StateValue::Account(account))]);
    let params = LedgerParams {
        block_reward: 0,
        min_fee: status.ledger.min_fee,
        min_stake: status.ledger.min_stake,
        unbonding_epochs: status.ledger.unbonding_epochs,
        slashing: false,
    };
    let ctx = BlockCtx::new(&status.chain_id, status.epoch, from, params);
    match StateOverlay::new(&state).apply_tx(tx, &ctx) {
        Ok(()) => Ok(()),
        Err(ApplyError::Invalid(error)) => Err(WalletError::Rejected(error)),
        // A state in memory always reads.
        Err(ApplyError::State(error)) => Err(WalletError::Io(error.to_string())),
    }
}

/// Where keystores live: `dir/<name>.json`.
#[derive(Clone, Debug)]
pub(crate) struct WalletDir(pub PathBuf);

impl WalletDir {
    /// The keystore path of `name`.
    ///
    /// # Errors
    ///
    /// If `name` could escape the directory.
    pub(crate) fn path_of(&self, name: &str) -> Result<PathBuf, WalletError> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(WalletError::Keystore(format!(
                "wallet name {name:?} must be letters, digits, '-' or '_'"
            )));
        }
        Ok(self.0.join(format!("{name}.json")))
    }

    /// The existing keystore path of `name`.
    ///
    /// # Errors
    ///
    /// [`WalletError::NoSuchWallet`] if there is none.
    pub(crate) fn existing(&self, name: &str) -> Result<PathBuf, WalletError> {
        let path = self.path_of(name)?;
        if !path.exists() {
            return Err(WalletError::NoSuchWallet {
                name: name.to_owned(),
                dir: self.0.display().to_string(),
            });
        }
        Ok(path)
    }

    /// Every keystore's name and address, sorted by name.
    ///
    /// # Errors
    ///
    /// If the dir cannot be read.
    pub(crate) fn list(&self) -> Result<Vec<(String, String)>, WalletError> {
        let Ok(entries) = std::fs::read_dir(&self.0) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = keystore_name(&path) else {
                continue;
            };
            if let Ok(store) = keystore::load(&path) {
                out.push((name, store.address));
            }
        }
        out.sort();
        Ok(out)
    }
}

fn keystore_name(path: &Path) -> Option<String> {
    (path.extension()? == "json").then(|| path.file_stem()?.to_str().map(str::to_owned))?
}

/// Parses an address with the chain crate's checksum errors.
///
/// # Errors
///
/// A message naming what is wrong with it.
pub(crate) fn parse_address(text: &str) -> Result<Address, WalletError> {
    text.parse()
        .map_err(|e| WalletError::BadAddress(format!("bad address {text:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use klero_chain::Keypair;
    use klero_chain::types::{TxBody, TxKind};

    use super::*;
    use crate::api::{ConsensusKind, LedgerInfo, SyncState};

    fn status() -> Status {
        Status {
            chain_id: "c".into(),
            consensus: ConsensusKind::Pos,
            genesis: String::new(),
            height: 1,
            head: String::new(),
            head_timestamp_ms: 0,
            epoch: 0,
            peers: 0,
            peer_id: String::new(),
            listen: Vec::new(),
            sync_state: SyncState::Synced,
            hashrate: 0.0,
            mempool: 0,
            proposer: None,
            ledger: LedgerInfo {
                block_reward: 0,
                min_fee: 1,
                min_stake: 1000,
                unbonding_epochs: 3,
            },
        }
    }

    fn account(balance: u64, bonded: u64) -> api::Account {
        api::Account {
            balance,
            bonded,
            ..api::Account::default()
        }
    }

    #[test]
    fn checks_name_the_broken_rule() {
        let s = status();
        let key = Keypair::dev("alice");
        let to = Keypair::dev("bob").address();
        let check = |kind: TxKind, fee, acc: Option<&api::Account>| {
            let body = TxBody {
                from: key.address(),
                nonce: 0,
                fee,
                kind,
            };
            check_tx(&Tx::sign(body, &key, &s.chain_id), acc, &s)
        };
        let transfer = |amount| TxKind::Transfer { to, amount };
        let stake = |amount| TxKind::stake(&key, &s.chain_id, amount);
        let unstake = |amount| TxKind::Unstake { amount };
        assert!(matches!(
            check(transfer(5), 1, None),
            Err(WalletError::UnknownAccount(_))
        ));
        assert!(matches!(
            check(transfer(10), 1, Some(&account(10, 0))),
            Err(WalletError::Rejected(TxError::InsufficientBalance {
                needed: 11,
                available: 10
            }))
        ));
        assert!(matches!(
            check(stake(10), 1, Some(&account(100, 0))),
            Err(WalletError::Rejected(TxError::StakeBelowMinimum {
                bonded: 10,
                min: 1000
            }))
        ));
        assert!(matches!(
            check(unstake(5000), 1, Some(&account(100, 2000))),
            Err(WalletError::Rejected(TxError::UnstakeExceedsBonded { .. }))
        ));
        assert!(matches!(
            check(unstake(1500), 1, Some(&account(100, 2000))),
            Err(WalletError::Rejected(TxError::StakeBelowMinimum {
                bonded: 500,
                ..
            }))
        ));
        assert!(matches!(
            check(transfer(0), 1, Some(&account(9, 0))),
            Err(WalletError::Rejected(TxError::ZeroAmount))
        ));
        assert!(matches!(
            check(transfer(1), 0, Some(&account(9, 0))),
            Err(WalletError::Rejected(TxError::FeeTooLow { .. }))
        ));
        assert!(check(stake(1000), 1, Some(&account(1001, 0))).is_ok());
        assert!(check(unstake(2000), 1, Some(&account(1, 2000))).is_ok());
    }

    #[test]
    fn a_binding_accepts_its_own_chain_only() {
        let mut s = status();
        s.genesis = "ab".repeat(32);
        let bound = chain_of(&s);
        assert!(check_chain(&bound, &s, "n").is_ok());
        let mut other = s.clone();
        other.genesis = "cd".repeat(32);
        assert!(matches!(
            check_chain(&bound, &other, "n"),
            Err(WalletError::WrongChain { .. })
        ));
        other = s.clone();
        other.chain_id = "d".into();
        let error = check_chain(&bound, &other, "n").expect_err("another chain id");
        assert!(error.to_string().contains("nothing was signed"), "{error}");
        assert_eq!(
            ChainBinding::new("c", &"AB".repeat(32)).expect("named"),
            bound,
            "hex case does not matter"
        );
    }

    #[test]
    fn names_cannot_escape_the_dir() {
        let dir = WalletDir(PathBuf::from("/w"));
        assert!(dir.path_of("../x").is_err());
        assert!(dir.path_of("").is_err());
        assert_eq!(dir.path_of("me-1").expect("ok"), PathBuf::from("/w/me-1.json"));
    }
}
