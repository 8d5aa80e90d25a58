//! The ledger state transition: accounts, transfers, staking, slashing.
//!
//! [`StateOverlay::apply_block_body`] is the whole transition for one
//! block: release the unbonding entries that are due, apply the
//! transactions in order, pay the block reward. It runs on an overlay over
//! the parent's state ([`crate::state`]), so it reads and writes only the
//! entries the block touches. Every rule is a checked comparison before
//! any write, so a rejected transaction leaves the overlay exactly as it
//! was, and all arithmetic is `checked_*` (an overflow is an error, never a
//! wrap). What needs no state, the signature and a stake's proof of
//! possession, the caller checks once per transaction ([`verify_txs`] does
//! both for a block, in parallel, with ed25519 batch verification), never
//! in the sequential apply, which a mempool replays after every new head.
//!
//! A state read can fail (the store behind it): [`ApplyError::State`],
//! never the transaction's fault, is kept apart from the rules it breaks.
//!
//! Supply accounting: `Σ balance + Σ bonded + Σ unbonding + burned` grows
//! by exactly the block reward per block; nothing else creates or destroys
//! value. Slashing burns half of the offender's stake and pays the other
//! half to the reporter (all of it is burned when the offender reports
//! itself).
//!
//! VRF keys: a stake transaction registers a key only if it is a valid
//! point of large order with a proof of possession naming the chain and the
//! staker ([`verify_pop`]), and is not bound to another account yet (the
//! apply). The registry of `VrfKey` entries (genesis keys included) keeps
//! every key bound to its first owner for good, so no key serves two
//! accounts.

use std::borrow::Borrow;

use bincode::{Decode, Encode};
use rayon::prelude::*;

use crate::epoch::SNAPSHOT_LAG_EPOCHS;
use crate::keys::{self, Address, KeyError, SignDomain, verify_vrf_pop};
use crate::state::{StateError, StateOverlay, StateRead};
use crate::types::{Equivocation, Seal, Tx, TxKind};
use crate::vrf::VrfError;
use crate::vrf::VrfPublicKey;

/// One account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct Account {
    /// Spendable balance.
    pub balance: u64,
    /// Number of transactions sent; the next one must carry this nonce.
    pub nonce: u64,
    /// Stake bonded for the PoS draw.
    pub bonded: u64,
    /// The VRF key registered by the last stake transaction.
    pub vrf_key: Option<VrfPublicKey>,
    /// Block rewards and fees received as proposer.
    pub rewards: u64,
    /// Blocks proposed.
    pub blocks_proposed: u64,
}

/// Ledger rules taken from the chain spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerParams {
    /// Newly issued to the proposer of every block.
    pub block_reward: u64,
    /// Smallest fee a transaction may pay.
    pub min_fee: u64,
    /// Smallest non-zero bonded stake an account may hold.
    pub min_stake: u64,
    /// Epochs between an unstake and the release of its funds.
    pub unbonding_epochs: u64,
    /// Whether equivocation evidence applies (PoS chains only).
    pub slashing: bool,
}

/// What the block being applied tells the ledger. Built by
/// [`BlockCtx::new`] alone (usually through `ChainSpec::block_ctx`).
#[derive(Clone, Copy, Debug)]
pub struct BlockCtx<'a> {
    /// The chain id (evidence signatures are bound to it).
    chain_id: &'a str,
    /// The block's epoch.
    epoch: u64,
    /// The block's proposer: receives the fees and the reward.
    proposer: Address,
    /// The ledger rules.
    params: LedgerParams,
}

impl<'a> BlockCtx<'a> {
    /// The context of a block of `chain_id` in `epoch` proposed by `proposer`.
    pub fn new(chain_id: &'a str, epoch: u64, proposer: Address, params: LedgerParams) -> BlockCtx<'a> {
        BlockCtx {
            chain_id,
            epoch,
            proposer,
            params,
        }
    }

    /// The chain id transactions must be signed for.
    pub fn chain_id(&self) -> &'a str {
        self.chain_id
    }

    /// The block's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The block's proposer.
    pub fn proposer(&self) -> Address {
        self.proposer
    }

    /// The ledger rules.
    pub fn params(&self) -> LedgerParams {
        self.params
    }
}

/// Why a transaction is refused. Every variant is the sender's fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TxError {
    /// The signature does not verify.
    #[error("bad signature: {0}")]
    BadSignature(KeyError),
    /// The sender has never received anything.
    #[error("unknown account {0}")]
    UnknownAccount(Address),
    /// The nonce is not the account's next one (a replay, or a gap).
    #[error("bad nonce: expected {expected}, got {got}")]
    BadNonce {
        /// The account's next nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// The fee is below the chain's minimum.
    #[error("fee {fee} is below the minimum of {min}")]
    FeeTooLow {
        /// The fee offered.
        fee: u64,
        /// The minimum.
        min: u64,
    },
    /// Amount plus fee exceed the balance.
    #[error("insufficient balance: need {needed}, have {available}")]
    InsufficientBalance {
        /// Amount plus fee.
        needed: u64,
        /// The spendable balance.
        available: u64,
    },
    /// A transfer, stake or unstake of zero.
    #[error("amount must be greater than zero")]
    ZeroAmount,
    /// The bonded stake after this transaction would be below the minimum.
    #[error("bonded stake would be {bonded}, below the minimum stake of {min}")]
    StakeBelowMinimum {
        /// The resulting bonded stake.
        bonded: u64,
        /// The minimum.
        min: u64,
    },
    /// Unstaking more than is bonded.
    #[error("cannot unstake {amount}: only {bonded} bonded")]
    UnstakeExceedsBonded {
        /// Requested.
        amount: u64,
        /// Bonded.
        bonded: u64,
    },
    /// The evidence does not prove an equivocation.
    #[error("invalid equivocation evidence: {0}")]
    InvalidEvidence(&'static str),
    /// This equivocation was already punished.
    #[error("equivocation by {offender} at slot {slot} was already slashed")]
    AlreadySlashed {
        /// The offender.
        offender: Address,
        /// The slot.
        slot: u64,
    },
    /// A stake transaction's VRF key does not decode or has small order.
    #[error("invalid VRF key: {0}")]
    InvalidVrfKey(VrfError),
    /// A stake transaction's VRF key is registered to another account.
    #[error("VRF key is already registered to {owner}")]
    VrfKeyTaken {
        /// The account the key is bound to.
        owner: Address,
    },
    /// A stake transaction's proof of possession does not verify for its
    /// VRF key, this chain and the sender.
    #[error("the proof of possession does not verify for this VRF key, chain and sender")]
    BadProofOfPossession,
    /// Evidence on a chain without slashing (proof of work).
    #[error("equivocation evidence is only valid on proof-of-stake chains")]
    SlashingDisabled,
    /// A sum does not fit in 64 bits.
    #[error("arithmetic overflow")]
    Overflow,
}

/// A transaction refused inside a block, with its position.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("transaction {index}: {error}")]
pub struct TxRejection {
    /// Position in the block.
    pub index: usize,
    /// Why.
    pub error: TxError,
}

/// Why a transaction (or, with [`TxRejection`], a block body) could not be
/// applied: it breaks a rule, or the state could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApplyError<E: std::error::Error + 'static> {
    /// The transaction breaks a rule: the sender's fault.
    #[error(transparent)]
    Invalid(E),
    /// The state could not be read: nobody's fault but the store's.
    #[error(transparent)]
    State(#[from] StateError),
}

impl From<TxError> for ApplyError<TxError> {
    fn from(error: TxError) -> Self {
        ApplyError::Invalid(error)
    }
}

impl ApplyError<TxError> {
    fn at(self, index: usize) -> ApplyError<TxRejection> {
        match self {
            ApplyError::Invalid(error) => ApplyError::Invalid(TxRejection { index, error }),
            ApplyError::State(error) => ApplyError::State(error),
        }
    }
}

/// Transactions whose signatures are checked together with ed25519 batch
/// verification. Validity does not depend on it (ZIP 215).
pub const SIGNATURE_BATCH: usize = 64;

/// [`verify_tx`] for every transaction of a block, in parallel, with the
/// signatures in batches ([`verify_each`]).
///
/// # Errors
///
/// The first (lowest-index) transaction that fails, with why.
pub fn verify_txs(txs: &[Tx], chain_id: &str) -> Result<(), TxRejection> {
    let bad = txs
        .par_chunks(SIGNATURE_BATCH)
        .enumerate()
        .filter_map(|(n, batch)| {
            verify_batch_of(batch, chain_id)
                .into_iter()
                .enumerate()
                .find_map(|(i, checked)| {
                    checked.err().map(|error| TxRejection {
                        index: n * SIGNATURE_BATCH + i,
                        error,
                    })
                })
        })
        .min_by_key(|rejection| rejection.index);
    bad.map_or(Ok(()), Err)
}

/// [`verify_tx`] for each of `txs`, on the calling thread. The signatures
/// go in batches of [`SIGNATURE_BATCH`] through ed25519 batch verification
/// ([`keys::verify_batch`], about twice as fast per signature, and under
/// ZIP 215 accepting exactly what one-by-one checks accept); only a batch
/// that fails is checked one signature at a time, to name the culprits.
/// Proofs of possession are checked one by one.
pub fn verify_each<T: Borrow<Tx>>(txs: &[T], chain_id: &str) -> Vec<Result<(), TxError>> {
    txs.chunks(SIGNATURE_BATCH)
        .flat_map(|batch| verify_batch_of(batch, chain_id))
        .collect()
}

fn verify_batch_of<T: Borrow<Tx>>(batch: &[T], chain_id: &str) -> Vec<Result<(), TxError>> {
    let bodies: Vec<Vec<u8>> = batch
        .iter()
        .map(|tx| crate::codec::encode(&tx.borrow().body))
        .collect();
    let signed = batch.iter().zip(&bodies).map(|(tx, body)| {
        let tx = tx.borrow();
        (&tx.body.from, body.as_slice(), &tx.signature)
    });
    let batch_ok = keys::verify_batch(signed, SignDomain::Tx, chain_id).is_ok();
    batch
        .iter()
        .map(|tx| {
            if batch_ok {
                verify_pop(tx.borrow(), chain_id)
            } else {
                verify_tx(tx.borrow(), chain_id)
            }
        })
        .collect()
}

/// What a transaction proves without the state: the sender's signature and,
/// for a stake, [`verify_pop`].
///
/// # Errors
///
/// [`TxError::BadSignature`], then the errors of [`verify_pop`].
pub fn verify_tx(tx: &Tx, chain_id: &str) -> Result<(), TxError> {
    tx.verify(chain_id).map_err(TxError::BadSignature)?;
    verify_pop(tx, chain_id)
}

/// For a stake transaction, checks that its VRF key is valid and that its
/// proof of possession verifies for that key, `chain_id` and the sender;
/// other kinds pass. Needs no state, so it runs once per transaction: a VRF
/// verification costs far more than the ledger's lookups.
///
/// # Errors
///
/// [`TxError::InvalidVrfKey`] for a key that does not decode or has small
/// order, then [`TxError::BadProofOfPossession`].
pub fn verify_pop(tx: &Tx, chain_id: &str) -> Result<(), TxError> {
    let TxKind::Stake { vrf_key, pop, .. } = &tx.body.kind else {
        return Ok(());
    };
    vrf_key.validate().map_err(TxError::InvalidVrfKey)?;
    verify_vrf_pop(vrf_key, chain_id, &tx.body.from, pop).map_err(|_| TxError::BadProofOfPossession)
}

/// Whether `address` may not propose in `epoch` because it was slashed
/// less than [`SNAPSHOT_LAG_EPOCHS`] epochs before: the snapshots of those
/// epochs were taken before the slash and may still list the stake it
/// lost. From the block after the evidence on, it cannot propose until the
/// snapshots catch up (then only with stake bonded since).
///
/// # Errors
///
/// [`StateError`] if the state cannot be read.
pub fn is_barred(
    state: &(impl StateRead + ?Sized),
    address: &Address,
    epoch: u64,
) -> Result<bool, StateError> {
    Ok(state
        .slashed_in(address)?
        .is_some_and(|slashed| epoch < slashed.saturating_add(SNAPSHOT_LAG_EPOCHS)))
}

impl StateOverlay<'_> {
    /// Applies one block's body: due unbondings, then `txs` in order, then
    /// the reward. On error the overlay may hold part of the block: callers
    /// drop it.
    ///
    /// Signatures and proofs of possession must already have been checked
    /// ([`verify_txs`]).
    ///
    /// # Errors
    ///
    /// The first transaction that breaks a rule, with its index, or a
    /// state that cannot be read.
    pub fn apply_block_body(
        &mut self,
        txs: &[Tx],
        ctx: &BlockCtx<'_>,
    ) -> Result<(), ApplyError<TxRejection>> {
        self.release_unbonding(ctx.epoch).map_err(|e| e.at(0))?;
        for (index, tx) in txs.iter().enumerate() {
            self.apply_tx(tx, ctx).map_err(|e| e.at(index))?;
        }
        self.pay_proposer(ctx.proposer, ctx.params.block_reward, true)
            .map_err(|e| e.at(txs.len()))
    }

    /// Applies one transaction whose signature and proof of possession have
    /// been checked ([`verify_tx`]). A rejected transaction writes nothing.
    ///
    /// # Errors
    ///
    /// [`ApplyError::Invalid`] naming the broken rule, or
    /// [`ApplyError::State`].
    pub fn apply_tx(&mut self, tx: &Tx, ctx: &BlockCtx<'_>) -> Result<(), ApplyError<TxError>> {
        let body = &tx.body;
        let params = ctx.params;
        if body.fee < params.min_fee {
            return Err(TxError::FeeTooLow {
                fee: body.fee,
                min: params.min_fee,
            }
            .into());
        }
        let sender = self
            .account(&body.from)?
            .ok_or(TxError::UnknownAccount(body.from))?;
        if body.nonce != sender.nonce {
            return Err(TxError::BadNonce {
                expected: sender.nonce,
                got: body.nonce,
            }
            .into());
        }
        let spend = match &body.kind {
            TxKind::Transfer { amount, .. } | TxKind::Stake { amount, .. } => *amount,
            TxKind::Unstake { .. } | TxKind::Evidence(_) => 0,
        };
        let needed = spend.checked_add(body.fee).ok_or(TxError::Overflow)?;
        if needed > sender.balance {
            return Err(TxError::InsufficientBalance {
                needed,
                available: sender.balance,
            }
            .into());
        }
        // Rule checks that need more than the sender's balance, then effects.
        match &body.kind {
            TxKind::Transfer { to, amount } => {
                nonzero(*amount)?;
                if *to == body.from {
                    let mut account = self.charge(body.from, needed)?;
                    account.balance = account.balance.checked_add(*amount).ok_or(TxError::Overflow)?;
                    self.set_account(body.from, account);
                } else {
                    let mut recipient = self.account(to)?.unwrap_or_default();
                    recipient.balance = recipient.balance.checked_add(*amount).ok_or(TxError::Overflow)?;
                    let account = self.charge(body.from, needed)?;
                    self.set_account(body.from, account);
                    self.set_account(*to, recipient);
                }
            }
            TxKind::Stake { amount, vrf_key, .. } => {
                nonzero(*amount)?;
                let bonded = sender.bonded.checked_add(*amount).ok_or(TxError::Overflow)?;
                if bonded < params.min_stake {
                    return Err(TxError::StakeBelowMinimum {
                        bonded,
                        min: params.min_stake,
                    }
                    .into());
                }
                if let Some(owner) = self.vrf_owner(vrf_key)?
                    && owner != body.from
                {
                    return Err(TxError::VrfKeyTaken { owner }.into());
                }
                let mut account = self.charge(body.from, needed)?;
                account.bonded = bonded;
                account.vrf_key = Some(*vrf_key);
                self.set_account(body.from, account);
                self.set_vrf_owner(*vrf_key, body.from);
            }
            TxKind::Unstake { amount } => {
                nonzero(*amount)?;
                let bonded = sender.bonded;
                let left = bonded.checked_sub(*amount).ok_or(TxError::UnstakeExceedsBonded {
                    amount: *amount,
                    bonded,
                })?;
                if left != 0 && left < params.min_stake {
                    return Err(TxError::StakeBelowMinimum {
                        bonded: left,
                        min: params.min_stake,
                    }
                    .into());
                }
                let release = ctx
                    .epoch
                    .checked_add(params.unbonding_epochs)
                    .ok_or(TxError::Overflow)?;
                let queued = self.unbonding(release, &body.from)?.unwrap_or(0);
                let queued = queued.checked_add(*amount).ok_or(TxError::Overflow)?;
                let mut account = self.charge(body.from, needed)?;
                account.bonded = left;
                self.set_account(body.from, account);
                self.set_unbonding(release, body.from, Some(queued));
            }
            TxKind::Evidence(evidence) => {
                if !params.slashing {
                    return Err(TxError::SlashingDisabled.into());
                }
                let (offender, slot) = check_equivocation(evidence, ctx.chain_id)?;
                if self.is_slashed(&offender, slot)? {
                    return Err(TxError::AlreadySlashed { offender, slot }.into());
                }
                let account = self.charge(body.from, needed)?;
                self.set_account(body.from, account);
                self.slash(offender, slot, body.from, ctx)?;
            }
        }
        self.pay_proposer(ctx.proposer, body.fee, false)
    }

    /// Takes `amount` from the sender's balance and bumps its nonce; returns
    /// the account, which the caller writes (after any other change to it).
    /// The caller has checked that the balance suffices.
    fn charge(&mut self, from: Address, amount: u64) -> Result<Account, ApplyError<TxError>> {
        let mut account = self.account(&from)?.ok_or(TxError::UnknownAccount(from))?;
        account.balance = account.balance.checked_sub(amount).ok_or(TxError::Overflow)?;
        account.nonce = account.nonce.checked_add(1).ok_or(TxError::Overflow)?;
        Ok(account)
    }

    fn pay_proposer(
        &mut self,
        proposer: Address,
        amount: u64,
        block: bool,
    ) -> Result<(), ApplyError<TxError>> {
        let mut account = self.account(&proposer)?.unwrap_or_default();
        account.balance = account.balance.checked_add(amount).ok_or(TxError::Overflow)?;
        account.rewards = account.rewards.checked_add(amount).ok_or(TxError::Overflow)?;
        if block {
            account.blocks_proposed = account.blocks_proposed.saturating_add(1);
        }
        self.set_account(proposer, account);
        Ok(())
    }

    /// Moves every unbonding entry due at or before `epoch` to its owner's balance.
    fn release_unbonding(&mut self, epoch: u64) -> Result<(), ApplyError<TxError>> {
        for (release, owner, amount) in self.unbonding_due(epoch)? {
            let mut account = self.account(&owner)?.unwrap_or_default();
            account.balance = account.balance.checked_add(amount).ok_or(TxError::Overflow)?;
            self.set_account(owner, account);
            self.set_unbonding(release, owner, None);
        }
        Ok(())
    }

    /// Takes the offender's bonded and unbonding stake: half to the reporter,
    /// the rest burned; all burned if the offender reports itself, so
    /// reporting oneself first never pays. Bars the offender from proposing
    /// from the next block on.
    fn slash(
        &mut self,
        offender: Address,
        slot: u64,
        reporter: Address,
        ctx: &BlockCtx<'_>,
    ) -> Result<(), ApplyError<TxError>> {
        let mut taken = 0u64;
        if let Some(mut account) = self.account(&offender)? {
            taken = std::mem::take(&mut account.bonded);
            self.set_account(offender, account);
        }
        for (release, amount) in self.unbonding_of(&offender, ctx.epoch, ctx.params.unbonding_epochs)? {
            taken = taken.checked_add(amount).ok_or(TxError::Overflow)?;
            self.set_unbonding(release, offender, None);
        }
        let reward = if reporter == offender { 0 } else { taken / 2 };
        let mut account = self.account(&reporter)?.unwrap_or_default();
        account.balance = account.balance.checked_add(reward).ok_or(TxError::Overflow)?;
        self.set_account(reporter, account);
        let burned = self
            .burned()?
            .checked_add(taken - reward)
            .ok_or(TxError::Overflow)?;
        self.set_burned(burned);
        self.set_slashed(offender, slot);
        self.set_slashed_in(offender, ctx.epoch);
        Ok(())
    }
}

fn nonzero(amount: u64) -> Result<(), TxError> {
    if amount == 0 {
        Err(TxError::ZeroAmount)
    } else {
        Ok(())
    }
}

/// Checks that `evidence` shows one proposer signing two different PoS
/// headers for one slot; returns (offender, slot).
///
/// # Errors
///
/// [`TxError::InvalidEvidence`] naming the first thing that does not hold.
pub fn check_equivocation(evidence: &Equivocation, chain_id: &str) -> Result<(Address, u64), TxError> {
    let (a, b) = (&evidence.a.header, &evidence.b.header);
    let (Seal::Pos(sa), Seal::Pos(sb)) = (&a.seal, &b.seal) else {
        return Err(TxError::InvalidEvidence("headers are not proof-of-stake headers"));
    };
    if sa.slot != sb.slot {
        return Err(TxError::InvalidEvidence("headers are for different slots"));
    }
    if a.proposer != b.proposer {
        return Err(TxError::InvalidEvidence("headers have different proposers"));
    }
    if a.id() == b.id() {
        return Err(TxError::InvalidEvidence("the two headers are the same block"));
    }
    for signed in [&evidence.a, &evidence.b] {
        signed
            .verify(chain_id)
            .map_err(|_| TxError::InvalidEvidence("a header signature does not verify"))?;
    }
    Ok((a.proposer, sa.slot))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Hash;
    use crate::keys::{Keypair, Signature};
    use crate::state::{MemState, StateValue};
    use crate::state_tree::StateKey;
    use crate::types::{Header, PosSeal, SignedHeader, TxBody};
    use crate::vrf::{VrfOutput, VrfProof};
    use proptest::prelude::*;

    const CHAIN: &str = "test";

    fn params() -> LedgerParams {
        LedgerParams {
            block_reward: 50,
            min_fee: 1,
            min_stake: 100,
            unbonding_epochs: 2,
            slashing: true,
        }
    }

    fn users() -> Vec<Keypair> {
        ["u0", "u1", "u2", "u3"].iter().map(|n| Keypair::dev(n)).collect()
    }

    /// A state the tests change in place: each call runs on an overlay
    /// and keeps the result only on success, as a block producer does.
    #[derive(Clone, Debug, PartialEq, Eq)]
    struct State(MemState);

    impl State {
        fn apply_tx(&mut self, tx: &Tx, ctx: &BlockCtx<'_>) -> Result<(), TxError> {
            self.run(|o| o.apply_tx(tx, ctx)).map_err(|e| match e {
                ApplyError::Invalid(e) => e,
                ApplyError::State(e) => panic!("{e}"),
            })
        }

        fn apply_block_body(&mut self, txs: &[Tx], ctx: &BlockCtx<'_>) -> Result<(), TxRejection> {
            self.run(|o| o.apply_block_body(txs, ctx)).map_err(|e| match e {
                ApplyError::Invalid(e) => e,
                ApplyError::State(e) => panic!("{e}"),
            })
        }

        fn run<E: std::error::Error>(
            &mut self,
            f: impl FnOnce(&mut StateOverlay<'_>) -> Result<(), ApplyError<E>>,
        ) -> Result<(), ApplyError<E>> {
            let mut overlay = StateOverlay::new(&self.0);
            f(&mut overlay)?;
            let set = overlay.finish()?;
            self.0.apply(&set)?;
            Ok(())
        }

        fn acct(&self, address: &Address) -> Account {
            self.0.account(address).unwrap().unwrap()
        }

        fn nonce_of(&self, address: &Address) -> u64 {
            self.0.account(address).unwrap().map_or(0, |a| a.nonce)
        }

        fn unbonding_of(&self, address: &Address) -> Vec<(u64, u64)> {
            self.0
                .entries()
                .filter_map(|(k, v)| match (k, v) {
                    (StateKey::Unbonding { release_epoch, owner }, StateValue::Unbonding(a))
                        if owner == address =>
                    {
                        Some((*release_epoch, *a))
                    }
                    _ => None,
                })
                .collect()
        }

        fn burned(&self) -> u64 {
            self.0.burned().unwrap()
        }

        fn is_barred(&self, address: &Address, epoch: u64) -> bool {
            is_barred(&self.0, address, epoch).unwrap()
        }

        /// All value in existence: balances, bonded, unbonding and burned.
        fn total_supply(&self) -> u128 {
            self.0
                .entries()
                .map(|(_, v)| match v {
                    StateValue::Account(a) => u128::from(a.balance) + u128::from(a.bonded),
                    StateValue::Unbonding(n) | StateValue::Burned(n) => u128::from(*n),
                    _ => 0,
                })
                .fold(0, u128::saturating_add)
        }
    }

    fn funded(balance: u64) -> State {
        State(MemState::new(users().iter().map(|key| {
            let account = Account {
                balance,
                ..Account::default()
            };
            (StateKey::Account(key.address()), StateValue::Account(account))
        })))
    }

    fn tx(key: &Keypair, nonce: u64, fee: u64, kind: TxKind) -> Tx {
        Tx::sign(
            TxBody {
                from: key.address(),
                nonce,
                fee,
                kind,
            },
            key,
            CHAIN,
        )
    }

    fn ctx(p: &LedgerParams, epoch: u64) -> BlockCtx<'static> {
        BlockCtx::new(CHAIN, epoch, Keypair::dev("miner").address(), *p)
    }

    fn transfer(to: &Keypair, amount: u64) -> TxKind {
        TxKind::Transfer {
            to: to.address(),
            amount,
        }
    }

    #[test]
    fn transfer_moves_amount_and_pays_fee_to_proposer() {
        let (p, u) = (params(), users());
        let mut state = funded(1_000);
        state
            .apply_block_body(&[tx(&u[0], 0, 3, transfer(&u[1], 100))], &ctx(&p, 0))
            .unwrap();
        assert_eq!(state.acct(&u[0].address()).balance, 897);
        assert_eq!(state.acct(&u[0].address()).nonce, 1);
        assert_eq!(state.acct(&u[1].address()).balance, 1_100);
        let miner = &state.acct(&Keypair::dev("miner").address());
        assert_eq!((miner.balance, miner.rewards, miner.blocks_proposed), (53, 53, 1));
    }

    #[test]
    fn typed_rejections() {
        let (p, u) = (params(), users());
        let state = funded(1_000);
        let stranger = Keypair::dev("stranger");
        let cases = [
            (
                tx(&u[0], 1, 1, transfer(&u[1], 1)),
                TxError::BadNonce { expected: 0, got: 1 },
            ),
            (
                tx(&u[0], 0, 0, transfer(&u[1], 1)),
                TxError::FeeTooLow { fee: 0, min: 1 },
            ),
            (
                tx(&u[0], 0, 1, transfer(&u[1], 1_000)),
                TxError::InsufficientBalance {
                    needed: 1_001,
                    available: 1_000,
                },
            ),
            (tx(&u[0], 0, 1, transfer(&u[1], 0)), TxError::ZeroAmount),
            (
                tx(&stranger, 0, 1, transfer(&u[1], 1)),
                TxError::UnknownAccount(stranger.address()),
            ),
            (
                tx(&u[0], 0, 1, TxKind::stake(&u[0], CHAIN, 99)),
                TxError::StakeBelowMinimum { bonded: 99, min: 100 },
            ),
            (
                tx(&u[0], 0, 1, TxKind::Unstake { amount: 5 }),
                TxError::UnstakeExceedsBonded { amount: 5, bonded: 0 },
            ),
        ];
        for (t, expected) in cases {
            let mut s = state.clone();
            assert_eq!(s.apply_tx(&t, &ctx(&p, 0)), Err(expected));
            assert_eq!(s, state, "a rejected transaction changes nothing");
        }
    }

    #[test]
    fn bad_signature_is_reported_with_its_index() {
        let u = users();
        let good = tx(&u[0], 0, 1, transfer(&u[1], 1));
        let mut bad = tx(&u[1], 0, 1, transfer(&u[0], 1));
        bad.body.fee = 2;
        let err = verify_txs(&[good, bad], CHAIN).unwrap_err();
        assert_eq!(err.index, 1);
        assert!(matches!(err.error, TxError::BadSignature(KeyError::BadSignature)));
    }

    #[test]
    fn stake_then_unstake_releases_after_the_delay() {
        let (p, u) = (params(), users());
        let mut state = funded(1_000);
        let vrf_key = u[0].vrf().public_key();
        state
            .apply_tx(&tx(&u[0], 0, 1, TxKind::stake(&u[0], CHAIN, 500)), &ctx(&p, 0))
            .unwrap();
        let acct = &state.acct(&u[0].address());
        assert_eq!(
            (acct.balance, acct.bonded, acct.vrf_key),
            (499, 500, Some(vrf_key))
        );
        assert_eq!(
            state.apply_tx(&tx(&u[0], 1, 1, TxKind::Unstake { amount: 450 }), &ctx(&p, 3)),
            Err(TxError::StakeBelowMinimum { bonded: 50, min: 100 })
        );
        state
            .apply_tx(&tx(&u[0], 1, 1, TxKind::Unstake { amount: 500 }), &ctx(&p, 3))
            .unwrap();
        assert_eq!(state.unbonding_of(&u[0].address()), vec![(5, 500)]);
        state.apply_block_body(&[], &ctx(&p, 4)).unwrap();
        assert_eq!(
            state.acct(&u[0].address()).balance,
            498,
            "not released before epoch 5"
        );
        state.apply_block_body(&[], &ctx(&p, 5)).unwrap();
        assert_eq!(state.acct(&u[0].address()).balance, 998);
        assert!(state.unbonding_of(&u[0].address()).is_empty());
    }

    fn pos_header(key: &Keypair, slot: u64, tx_root_byte: u8) -> SignedHeader {
        let header = Header {
            height: 1,
            parent: Hash::ZERO,
            timestamp_ms: 0,
            tx_root: Hash([tx_root_byte; 32]),
            state_root: Hash::ZERO,
            proposer: key.address(),
            seal: Seal::Pos(PosSeal {
                slot,
                suite: crate::vrf::SUITE,
                vrf_key: key.vrf().public_key(),
                vrf_output: VrfOutput([0; 64]),
                vrf_proof: VrfProof([0; 80]),
            }),
        };
        SignedHeader::sign(header, key, CHAIN)
    }

    /// A funded state in which `u[2]` bonded 600 in `epoch`, and its two
    /// signed headers for `slot`.
    fn staked_offender(p: &LedgerParams, epoch: u64, slot: u64) -> (State, Keypair, Equivocation) {
        let offender = users().swap_remove(2);
        let mut state = funded(1_000);
        let stake = tx(&offender, 0, 1, TxKind::stake(&offender, CHAIN, 600));
        state.apply_tx(&stake, &ctx(p, epoch)).unwrap();
        let evidence = Equivocation {
            a: pos_header(&offender, slot, 1),
            b: pos_header(&offender, slot, 2),
        };
        (state, offender, evidence)
    }

    #[test]
    fn equivocation_slashes_once_and_conserves_supply() {
        let (p, u) = (params(), users());
        let (mut state, offender, evidence) = staked_offender(&p, 0, 7);
        let supply = state.total_supply();
        let report = tx(&u[0], 0, 1, TxKind::Evidence(Box::new(evidence.clone())));
        state.apply_tx(&report, &ctx(&p, 0)).unwrap();
        assert_eq!(state.acct(&offender.address()).bonded, 0);
        assert_eq!(state.acct(&u[0].address()).balance, 1_000 - 1 + 300);
        assert_eq!(state.burned(), 300);
        assert_eq!(state.total_supply(), supply);
        let again = tx(&u[1], 0, 1, TxKind::Evidence(Box::new(evidence)));
        assert_eq!(
            state.apply_tx(&again, &ctx(&p, 0)),
            Err(TxError::AlreadySlashed {
                offender: offender.address(),
                slot: 7
            })
        );
    }

    #[test]
    fn an_offender_reporting_itself_earns_nothing() {
        let p = params();
        let (mut state, offender, evidence) = staked_offender(&p, 0, 7);
        let supply = state.total_supply();
        let report = tx(&offender, 1, 1, TxKind::Evidence(Box::new(evidence)));
        state.apply_tx(&report, &ctx(&p, 0)).unwrap();
        let account = &state.acct(&offender.address());
        assert_eq!((account.bonded, account.balance), (0, 1_000 - 600 - 1 - 1));
        assert_eq!(state.burned(), 600, "the whole stake is burned");
        assert_eq!(state.total_supply(), supply);
    }

    #[test]
    fn a_slash_bars_the_offender_until_the_snapshots_catch_up() {
        let (p, u) = (params(), users());
        let (mut state, offender, evidence) = staked_offender(&p, 4, 41);
        assert!(!state.is_barred(&offender.address(), 4));
        let report = tx(&u[0], 0, 1, TxKind::Evidence(Box::new(evidence)));
        state.apply_tx(&report, &ctx(&p, 4)).unwrap();
        let barred: Vec<u64> = (4..8)
            .filter(|e| state.is_barred(&offender.address(), *e))
            .collect();
        assert_eq!(barred, vec![4, 5], "from the slash until 2 epochs on");
        assert!(!state.is_barred(&u[0].address(), 4), "only the offender");
    }

    #[test]
    fn a_vrf_key_stays_bound_to_its_first_owner() {
        let (p, u) = (params(), users());
        let mut state = funded(10_000);
        let (alice, mallory) = (&u[0], &u[1]);
        let alice_key = alice.vrf().public_key();
        // A stake whose proof is made with `secret`'s VRF key for `staker`.
        let stake = |staker: &Keypair, nonce, secret: &Keypair| {
            let kind = TxKind::Stake {
                amount: 500,
                vrf_key: secret.vrf().public_key(),
                pop: Box::new(
                    secret
                        .vrf()
                        .prove(&crate::keys::vrf_pop_input(CHAIN, &staker.address())),
                ),
            };
            let t = tx(staker, nonce, 1, kind);
            assert_eq!(verify_pop(&t, CHAIN), Ok(()), "a genuine proof");
            t
        };
        state.apply_tx(&stake(alice, 0, alice), &ctx(&p, 0)).unwrap();
        assert_eq!(state.0.vrf_owner(&alice_key).unwrap(), Some(alice.address()));
        // Whoever holds Alice's VRF secret can prove it for a second account,
        // but the key is bound to Alice.
        let before = state.clone();
        assert_eq!(
            state.apply_tx(&stake(mallory, 0, alice), &ctx(&p, 0)),
            Err(TxError::VrfKeyTaken {
                owner: alice.address()
            })
        );
        assert_eq!(state, before, "a rejected stake changes nothing");
        // Alice re-stakes with her own key, then moves to another key.
        state.apply_tx(&stake(alice, 1, alice), &ctx(&p, 0)).unwrap();
        let other = Keypair::dev("alice-2");
        state.apply_tx(&stake(alice, 2, &other), &ctx(&p, 0)).unwrap();
        assert_eq!(
            state.acct(&alice.address()).vrf_key,
            Some(other.vrf().public_key())
        );
        // The key she left is still hers.
        assert_eq!(
            state.apply_tx(&stake(mallory, 0, alice), &ctx(&p, 0)),
            Err(TxError::VrfKeyTaken {
                owner: alice.address()
            })
        );
    }

    #[test]
    fn a_stake_needs_a_valid_vrf_key_and_a_proof_of_possession() {
        let u = users();
        let (alice, mallory) = (&u[0], &u[1]);
        let mut small_order = [0; 32];
        small_order[0] = 1; // the identity point
        let stake = |vrf_key, pop| {
            tx(
                mallory,
                0,
                1,
                TxKind::Stake {
                    amount: 500,
                    vrf_key,
                    pop: Box::new(pop),
                },
            )
        };
        let cases = [
            (
                stake(VrfPublicKey(small_order), mallory.vrf_pop(CHAIN)),
                TxError::InvalidVrfKey(VrfError::SmallOrderPublicKey),
            ),
            (
                // Alice's key with Alice's own proof, copied: it names Alice.
                stake(alice.vrf().public_key(), alice.vrf_pop(CHAIN)),
                TxError::BadProofOfPossession,
            ),
            (
                // Alice's key with a proof Mallory made with her own key.
                stake(alice.vrf().public_key(), mallory.vrf_pop(CHAIN)),
                TxError::BadProofOfPossession,
            ),
            (
                // Mallory's own key with a proof for another chain.
                stake(mallory.vrf().public_key(), mallory.vrf_pop("other")),
                TxError::BadProofOfPossession,
            ),
        ];
        for (t, expected) in cases {
            assert_eq!(verify_pop(&t, CHAIN), Err(expected));
        }
        let good = stake(mallory.vrf().public_key(), mallory.vrf_pop(CHAIN));
        assert_eq!(verify_pop(&good, CHAIN), Ok(()));
        let copied = stake(alice.vrf().public_key(), alice.vrf_pop(CHAIN));
        assert_eq!(
            verify_txs(&[good, copied], CHAIN),
            Err(TxRejection {
                index: 1,
                error: TxError::BadProofOfPossession
            })
        );
    }

    #[test]
    fn evidence_must_prove_a_real_equivocation() {
        let u = users();
        let same = pos_header(&u[2], 7, 1);
        let cases = [
            Equivocation {
                a: same.clone(),
                b: same.clone(),
            },
            Equivocation {
                a: same.clone(),
                b: pos_header(&u[2], 8, 2),
            },
            Equivocation {
                a: same.clone(),
                b: pos_header(&u[3], 7, 2),
            },
            Equivocation {
                a: same.clone(),
                b: SignedHeader {
                    signature: Signature([1; 64]),
                    ..pos_header(&u[2], 7, 2)
                },
            },
        ];
        for evidence in cases {
            assert!(matches!(
                check_equivocation(&evidence, CHAIN),
                Err(TxError::InvalidEvidence(_))
            ));
        }
    }

    #[test]
    fn evidence_is_refused_without_slashing() {
        let u = users();
        let p = LedgerParams {
            slashing: false,
            ..params()
        };
        let mut state = funded(1_000);
        let evidence = Equivocation {
            a: pos_header(&u[2], 7, 1),
            b: pos_header(&u[2], 7, 2),
        };
        let report = tx(&u[0], 0, 1, TxKind::Evidence(Box::new(evidence)));
        assert_eq!(
            state.apply_tx(&report, &ctx(&p, 0)),
            Err(TxError::SlashingDisabled)
        );
    }

    /// A random operation: (sender index, nonce offset, fee, kind selector, amount, recipient).
    fn op() -> impl Strategy<Value = (usize, u64, u64, u8, u64, usize)> {
        (0usize..4, 0u64..2, 0u64..4, 0u8..3, 0u64..1_500, 0usize..4)
    }

    fn build(state: &State, op: (usize, u64, u64, u8, u64, usize)) -> Tx {
        let u = users();
        let (from, nonce_skew, fee, kind, amount, to) = op;
        let nonce = state.nonce_of(&u[from].address()) + nonce_skew;
        let kind = match kind {
            0 => transfer(&u[to], amount),
            1 => TxKind::stake(&u[from], CHAIN, amount),
            _ => TxKind::Unstake { amount },
        };
        tx(&u[from], nonce, fee, kind)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn supply_grows_by_exactly_the_reward_and_nothing_goes_negative(
            blocks in prop::collection::vec(prop::collection::vec(op(), 0..6), 1..6)
        ) {
            let p = params();
            let mut state = funded(1_000);
            for (epoch, ops) in blocks.into_iter().enumerate() {
                let before = state.total_supply();
                // Transactions that fail are left out, as a block producer does.
                let mut included = Vec::new();
                let mut working = state.clone();
                for op in ops {
                    let t = build(&working, op);
                    if working.apply_tx(&t, &ctx(&p, epoch as u64)).is_ok() {
                        included.push(t);
                    }
                }
                let mut next = state.clone();
                next.apply_block_body(&included, &ctx(&p, epoch as u64)).unwrap();
                prop_assert_eq!(next.total_supply(), before + u128::from(p.block_reward));
                // u64 balances cannot be negative; what matters is that no
                // operation wrapped: a wrap would break the supply equation.
                for t in &included {
                    // Replaying any included transaction is refused.
                    let mut replay = next.clone();
                    prop_assert!(
                        matches!(replay.apply_tx(t, &ctx(&p, epoch as u64)), Err(TxError::BadNonce { .. })),
                        "replayed transaction accepted"
                    );
                }
                if !included.is_empty() {
                    // Re-applying the whole block to its own result is refused.
                    let mut again = next.clone();
                    prop_assert!(again.apply_block_body(&included, &ctx(&p, epoch as u64)).is_err());
                }
                state = next;
            }
        }
    }
}
