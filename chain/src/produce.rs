//! Building blocks: the PoW template a miner searches, and the PoS block a
//! winning staker signs.
//!
//! Both run the same body transition as validation
//! ([`validate::apply_body`](crate::validate)), after dropping transactions
//! that no longer apply to the parent's state, so a produced block always
//! validates.

use crate::hash::Hash;
use crate::keys::Keypair;
use crate::ledger::{State, verify_tx};
use crate::pos::{self, PosClaim};
use crate::spec::{ChainSpec, Consensus};
use crate::types::{Block, Header, PosSeal, PowSeal, Seal, SignedHeader, Tx, tx_root};
use crate::validate::{MAX_BLOCK_TXS, Parent, apply_body, median_time_past, required_target};
use crate::vrf;

/// A PoW block waiting for its nonce.
#[derive(Clone, Debug)]
pub struct PowTemplate {
    /// The header with nonce 0.
    pub header: Header,
    /// The puzzle prefix: BLAKE3 of `header`.
    pub pre: [u8; 32],
    /// The target the hash must not exceed.
    pub target: [u8; 32],
    /// The transactions included.
    pub txs: Vec<Tx>,
}

impl PowTemplate {
    /// Fills in the nonce and signs.
    pub fn complete(mut self, nonce: u64, key: &Keypair, chain_id: &str) -> Block {
        self.header.seal = Seal::Pow(PowSeal {
            target: self.target,
            nonce,
        });
        Block {
            signed: SignedHeader::sign(self.header, key, chain_id),
            txs: self.txs,
        }
    }
}

/// Keeps the candidates that apply, in order, to `state` (which they
/// change) in `header`'s block, up to the block limit.
fn select_txs(spec: &ChainSpec, state: &mut State, header: &Header, candidates: &[Tx]) -> Vec<Tx> {
    let ctx = spec.block_ctx(spec.epoch_of(header), header.proposer);
    candidates
        .iter()
        .filter(|tx| verify_tx(tx, &spec.chain_id).is_ok())
        .filter(|tx| state.apply_tx(tx, &ctx).is_ok())
        .take(MAX_BLOCK_TXS)
        .cloned()
        .collect()
}

/// Finishes a header: selects transactions, applies the body, sets both
/// roots. `None` only if the block reward overflows a balance.
fn fill(
    spec: &ChainSpec,
    mut state: State,
    mut header: Header,
    candidates: &[Tx],
) -> Option<(Header, Vec<Tx>)> {
    // Selection runs on a scratch copy; the real transition is the shared
    // one validation uses. Selection skips the unbonding release, which only
    // adds balance, so whatever it keeps still applies.
    let txs = select_txs(spec, &mut state.clone(), &header, candidates);
    apply_body(spec, &mut state, &header, &txs).ok()?;
    header.tx_root = tx_root(&txs);
    header.state_root = state.root();
    Some((header, txs))
}

/// A PoW template on `parent`, for `miner`, at `timestamp_ms` (raised to
/// just above the median time past if needed).
///
/// Returns `None` on a PoS chain (or if the reward would overflow).
pub fn pow_template(
    spec: &ChainSpec,
    parent: &Parent<'_>,
    candidates: &[Tx],
    miner: &Keypair,
    timestamp_ms: u64,
) -> Option<PowTemplate> {
    let Consensus::Pow(params) = &spec.consensus else {
        return None;
    };
    let target = required_target(spec, params, parent.header).to_be_bytes();
    let timestamp_ms = timestamp_ms.max(median_time_past(parent.recent_timestamps).saturating_add(1));
    let height = parent.header.height.saturating_add(1);
    let header = Header {
        height,
        parent: parent.id,
        timestamp_ms,
        tx_root: Hash::ZERO,
        state_root: Hash::ZERO,
        proposer: miner.address(),
        seal: Seal::Pow(PowSeal { target, nonce: 0 }),
    };
    let (header, txs) = fill(spec, parent.state.clone(), header, candidates)?;
    let pre = header.pow_pre().unwrap_or_default();
    Some(PowTemplate {
        header,
        pre,
        target,
        txs,
    })
}

/// `key`'s winning ticket for `slot` on top of `parent`, if it has one:
/// none if it is not in the epoch's snapshot with this key, or was slashed
/// since (validation would refuse its block).
pub fn pos_claim(spec: &ChainSpec, parent: &Parent<'_>, key: &Keypair, slot: u64) -> Option<PosClaim> {
    let Consensus::Pos(params) = &spec.consensus else {
        return None;
    };
    if slot <= parent.meta.slot {
        return None;
    }
    let mut state = parent.state.clone();
    pos::advance_epoch(&mut state, params, slot);
    let staker = state.epoch.snapshot.get(&key.address())?.clone();
    if staker.vrf_key != key.vrf().public_key() || state.is_barred(&staker.address, state.epoch.epoch) {
        return None;
    }
    let step = pos::failover_step(params, slot, parent.meta.slot);
    pos::claim(spec, params, &state, &staker, key.vrf(), slot, step)
}

/// The signed PoS block for a winning `claim`.
///
/// Returns `None` on a PoW chain (or if the reward would overflow).
pub fn pos_block(
    spec: &ChainSpec,
    parent: &Parent<'_>,
    key: &Keypair,
    claim: &PosClaim,
    candidates: &[Tx],
) -> Option<Block> {
    let Consensus::Pos(params) = &spec.consensus else {
        return None;
    };
    let mut state = parent.state.clone();
    pos::advance_epoch(&mut state, params, claim.slot);
    let header = Header {
        height: parent.header.height.saturating_add(1),
        parent: parent.id,
        timestamp_ms: pos::slot_start(spec, params, claim.slot),
        tx_root: Hash::ZERO,
        state_root: Hash::ZERO,
        proposer: key.address(),
        seal: Seal::Pos(PosSeal {
            slot: claim.slot,
            suite: vrf::SUITE,
            vrf_key: key.vrf().public_key(),
            vrf_output: claim.output,
            vrf_proof: claim.proof,
        }),
    };
    let (header, txs) = fill(spec, state, header, candidates)?;
    Some(Block {
        signed: SignedHeader::sign(header, key, &spec.chain_id),
        txs,
    })
}
