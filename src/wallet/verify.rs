//! `klero wallet balance --verify`: checks an account a node serves
//! against the head's header instead of taking the node's word.
//!
//! What is checked: the header decodes, its id is the head the node named,
//! the proposer's signature over it is valid under the chain id, the seal
//! (PoW: the puzzle hash meets the header's own target), and the state
//! proof: the account, re-encoded from the fields the node served, is the
//! value of `Account(address)` under the header's `state_root`.
//!
//! What is trusted: that the header is the chain's head, i.e. that the
//! node does not hide a better chain, and that the target is the one the
//! difficulty rule requires (checking that needs the headers back to
//! genesis): a node that lies about a balance must sign a header with a
//! key and, on PoW, do the work of one block at the target it claims. On
//! PoS the VRF seal is not checked (its input needs the epoch's `eta` and
//! the stake snapshot, which only the chain back to a trusted point can
//! vouch for): a node could sign a header of its own making with a key of
//! its own, so on PoS the check shows only that the node's answer is
//! consistent with a header it serves, and the wallet says so.

use klero_chain::codec;
use klero_chain::ledger::Account;
use klero_chain::pow::{meets_target, pow_hash};
use klero_chain::state_tree::{self, Proof, StateKey, value_hash};
use klero_chain::types::{Seal, SignedHeader};
use klero_chain::{Address, Hash};

use crate::api;

/// Why a served account does not check out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum VerifyError {
    /// The node sent no proof (`?proof=true` unsupported or ignored).
    #[error("the node sent no proof")]
    NoProof,
    /// A proof field is not what it should be.
    #[error("the proof is malformed: {0}")]
    Malformed(String),
    /// The header's signature or seal is invalid.
    #[error("the header is not valid: {0}")]
    BadHeader(String),
    /// The account does not match the header's state root.
    #[error("the account does not match the header's state root: {0}")]
    Mismatch(String),
}

/// The head a verified account was read at.
#[derive(Debug)]
pub(crate) struct Verified {
    /// The head's height.
    pub height: u64,
    /// The head's id.
    pub id: Hash,
    /// Whether the header's seal was checked: PoW work, yes; a PoS VRF
    /// seal, no (see the module docs), which the wallet says.
    pub seal_checked: bool,
}

/// Checks `account` (as served for `address`) against its proof.
///
/// # Errors
///
/// [`VerifyError`] saying what does not hold: the node lies or is broken.
pub(crate) fn verify_account(
    account: &api::Account,
    address: &Address,
    chain_id: &str,
) -> Result<Verified, VerifyError> {
    let proof = account.proof.as_ref().ok_or(VerifyError::NoProof)?;
    let malformed = |what: &str, e: &dyn std::fmt::Display| VerifyError::Malformed(format!("{what}: {e}"));
    let header_bytes = hex::decode(&proof.header).map_err(|e| malformed("header hex", &e))?;
    let signed: SignedHeader =
        codec::decode::<_, { codec::MAX_HEADER_BYTES + 64 }>(&header_bytes, "signed header")
            .map_err(|e| malformed("header", &e))?;
    let id = signed.header.id();
    if id.to_hex() != proof.head {
        return Err(VerifyError::Malformed(format!(
            "the header's id is {}, the node named {}",
            id.to_hex(),
            proof.head
        )));
    }
    signed
        .verify(chain_id)
        .map_err(|e| VerifyError::BadHeader(format!("proposer signature: {e}")))?;
    let seal_checked = matches!(signed.header.seal, Seal::Pow(_));
    if let Seal::Pow(seal) = &signed.header.seal {
        let pre = signed
            .header
            .pow_pre()
            .ok_or_else(|| VerifyError::BadHeader("no puzzle".to_owned()))?;
        if !meets_target(&pow_hash(&pre, seal.nonce), &seal.target) {
            return Err(VerifyError::BadHeader(
                "the PoW hash misses its target".to_owned(),
            ));
        }
    }
    let proof_bytes = hex::decode(&proof.proof).map_err(|e| malformed("proof hex", &e))?;
    let tree_proof = Proof::decode(&proof_bytes).map_err(|e| malformed("state proof", &e))?;
    let value = Account {
        balance: account.balance,
        nonce: account.nonce,
        bonded: account.bonded,
        vrf_key: account
            .vrf_key
            .as_deref()
            .map(parse_vrf_key)
            .transpose()
            .map_err(|e| malformed("vrf_key", &e))?,
        rewards: account.rewards,
        blocks_proposed: account.blocks_proposed,
    };
    state_tree::verify(
        &signed.header.state_root,
        &StateKey::Account(*address).tree_key(),
        Some(&value_hash(&value)),
        &tree_proof,
    )
    .map_err(|e| VerifyError::Mismatch(e.to_string()))?;
    Ok(Verified {
        height: signed.header.height,
        id,
        seal_checked,
    })
}

fn parse_vrf_key(text: &str) -> Result<klero_chain::vrf::VrfPublicKey, String> {
    let bytes = hex::decode(text).map_err(|e| e.to_string())?;
    let key: [u8; 32] = bytes.try_into().map_err(|_| "not 32 bytes".to_owned())?;
    Ok(klero_chain::vrf::VrfPublicKey(key))
}
