//! The CLI wallet's library side: the encrypted keystore, the node client,
//! and the checks a transaction must pass before it is signed and sent.
//!
//! Keys never leave the machine: the wallet decrypts the seed, derives the
//! signing and VRF keys (`Keypair::from_seed`), builds and signs the
//! transaction locally, and sends only the signed bytes.

pub mod client;
pub mod keystore;

use std::path::{Path, PathBuf};

use klero_chain::Address;

use self::client::{AccountInfo, NodeStatus};

/// Why a wallet operation failed. None of them changes the keystore.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
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
    /// Not enough spendable balance.
    #[error("insufficient balance: needs {needed} (amount + fee), has {available}")]
    InsufficientBalance {
        /// Amount + fee.
        needed: u64,
        /// Balance.
        available: u64,
    },
    /// A stake that would leave the bonded amount below the minimum.
    #[error("bonded stake would be {bonded}, below the minimum stake of {min}")]
    BelowMinimumStake {
        /// Bonded after the transaction.
        bonded: u64,
        /// The chain's minimum.
        min: u64,
    },
    /// Unstaking more than is bonded.
    #[error("cannot unstake {amount}: only {bonded} bonded")]
    UnstakeExceedsBonded {
        /// Asked.
        amount: u64,
        /// Bonded.
        bonded: u64,
    },
    /// An address that does not parse (checksum, prefix, length).
    #[error("{0}")]
    BadAddress(String),
    /// A zero amount.
    #[error("the amount must be greater than zero")]
    ZeroAmount,
    /// A fee below the chain's minimum.
    #[error("fee {fee} is below the chain's minimum fee {min}")]
    FeeTooLow {
        /// Offered.
        fee: u64,
        /// Minimum.
        min: u64,
    },
    /// Waiting for inclusion timed out.
    #[error("transaction {0} was not included within the wait time; it may still be")]
    NotIncluded(String),
}

/// What a transaction does, before it is signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send `amount` to someone.
    Transfer(u64),
    /// Bond `amount`.
    Stake(u64),
    /// Unbond `amount`.
    Unstake(u64),
}

/// Checks an action against the sender's account and the chain's rules,
/// so the user gets a clear error before anything is signed or sent.
///
/// # Errors
///
/// The first rule the action breaks.
pub fn check_action(
    action: Action,
    fee: u64,
    sender: &str,
    account: Option<&AccountInfo>,
    status: &NodeStatus,
) -> Result<(), WalletError> {
    let account = account.ok_or_else(|| WalletError::UnknownAccount(sender.to_owned()))?;
    let min_fee = status.ledger.min_fee;
    if fee < min_fee {
        return Err(WalletError::FeeTooLow { fee, min: min_fee });
    }
    let (amount, spend) = match action {
        Action::Transfer(a) | Action::Stake(a) => (a, a),
        Action::Unstake(a) => (a, 0),
    };
    if amount == 0 {
        return Err(WalletError::ZeroAmount);
    }
    let needed = spend.saturating_add(fee);
    if needed > account.balance {
        return Err(WalletError::InsufficientBalance {
            needed,
            available: account.balance,
        });
    }
    let min = status.ledger.min_stake;
    match action {
        Action::Transfer(_) => {}
        Action::Stake(a) => {
            let bonded = account.bonded.saturating_add(a);
            if bonded < min {
                return Err(WalletError::BelowMinimumStake { bonded, min });
            }
        }
        Action::Unstake(a) => {
            let Some(bonded) = account.bonded.checked_sub(a) else {
                return Err(WalletError::UnstakeExceedsBonded {
                    amount: a,
                    bonded: account.bonded,
                });
            };
            if bonded != 0 && bonded < min {
                return Err(WalletError::BelowMinimumStake { bonded, min });
            }
        }
    }
    Ok(())
}

/// Where keystores live: `dir/<name>.json`.
#[derive(Clone, Debug)]
pub struct WalletDir(pub PathBuf);

impl WalletDir {
    /// The keystore path of `name`.
    ///
    /// # Errors
    ///
    /// If `name` could escape the directory.
    pub fn path_of(&self, name: &str) -> Result<PathBuf, WalletError> {
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
    pub fn existing(&self, name: &str) -> Result<PathBuf, WalletError> {
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
    pub fn list(&self) -> Result<Vec<(String, String)>, WalletError> {
        let Ok(entries) = std::fs::read_dir(&self.0) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = keystore_name(&path) else {
                continue;
            };
            if let Ok(store) = keystore::Keystore::load(&path) {
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
pub fn parse_address(text: &str) -> Result<Address, WalletError> {
    text.parse()
        .map_err(|e| WalletError::BadAddress(format!("bad address {text:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::client::LedgerInfo;
    use super::*;

    fn status() -> NodeStatus {
        NodeStatus {
            chain_id: "c".into(),
            consensus: "pos".into(),
            height: 1,
            epoch: 0,
            ledger: LedgerInfo {
                min_fee: 1,
                min_stake: 1000,
                unbonding_epochs: 2,
            },
        }
    }

    fn account(balance: u64, bonded: u64) -> AccountInfo {
        AccountInfo {
            balance,
            bonded,
            ..AccountInfo::default()
        }
    }

    #[test]
    fn checks_name_the_broken_rule() {
        let s = status();
        let check = |action, fee, acc: Option<&AccountInfo>| check_action(action, fee, "klero1x", acc, &s);
        assert!(matches!(
            check(Action::Transfer(5), 1, None),
            Err(WalletError::UnknownAccount(_))
        ));
        assert!(matches!(
            check(Action::Transfer(10), 1, Some(&account(10, 0))),
            Err(WalletError::InsufficientBalance {
                needed: 11,
                available: 10
            })
        ));
        assert!(matches!(
            check(Action::Stake(10), 1, Some(&account(100, 0))),
            Err(WalletError::BelowMinimumStake {
                bonded: 10,
                min: 1000
            })
        ));
        assert!(matches!(
            check(Action::Unstake(5000), 1, Some(&account(100, 2000))),
            Err(WalletError::UnstakeExceedsBonded { .. })
        ));
        assert!(matches!(
            check(Action::Unstake(1500), 1, Some(&account(100, 2000))),
            Err(WalletError::BelowMinimumStake { bonded: 500, .. })
        ));
        assert!(matches!(
            check(Action::Transfer(0), 1, Some(&account(9, 0))),
            Err(WalletError::ZeroAmount)
        ));
        assert!(matches!(
            check(Action::Transfer(1), 0, Some(&account(9, 0))),
            Err(WalletError::FeeTooLow { .. })
        ));
        assert!(check(Action::Stake(1000), 1, Some(&account(1001, 0))).is_ok());
        assert!(check(Action::Unstake(2000), 1, Some(&account(1, 2000))).is_ok());
    }

    #[test]
    fn names_cannot_escape_the_dir() {
        let dir = WalletDir(PathBuf::from("/w"));
        assert!(dir.path_of("../x").is_err());
        assert!(dir.path_of("").is_err());
        assert_eq!(dir.path_of("me-1").expect("ok"), PathBuf::from("/w/me-1.json"));
    }
}
