//! Building blocks: the PoW template a miner searches, and the PoS block a
//! winning staker signs.
//!
//! Both run the same body transition as validation
//! ([`validate::apply_body`](crate::validate)) on an overlay over the
//! parent's state, after dropping transactions that no longer apply to it,
//! so a produced block always validates. `None` means no block: the chain
//! is of the other kind, the key does not win, or the parent's state could
//! not be read.

use crate::hash::Hash;
use crate::keys::Keypair;
use crate::ledger::{is_barred, verify_tx};
use crate::pos::{self, PosClaim};
use crate::spec::{ChainSpec, Consensus};
use crate::state::{CommittedState, StateOverlay, StateRead};
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

/// Keeps the candidates that apply, in order, to `state` in `header`'s
/// block, up to the block limit. Selection skips the unbonding release,
/// which only adds balance, so whatever it keeps still applies.
fn select_txs(spec: &ChainSpec, state: &dyn CommittedState, header: &Header, candidates: &[Tx]) -> Vec<Tx> {
    let ctx = spec.block_ctx(spec.epoch_of(header), header.proposer);
    let mut scratch = StateOverlay::new(state);
    candidates
        .iter()
        .filter(|tx| verify_tx(tx, &spec.chain_id).is_ok())
        .filter(|tx| scratch.apply_tx(tx, &ctx).is_ok())
        .take(MAX_BLOCK_TXS)
        .cloned()
        .collect()
}

/// Finishes a header on the parent's `state`: selects transactions, runs
/// the shared transition (moving a PoS state to the block's epoch first),
/// sets both roots.
fn fill(
    spec: &ChainSpec,
    state: &dyn CommittedState,
    mut header: Header,
    candidates: &[Tx],
) -> Option<(Header, Vec<Tx>)> {
    let txs = select_txs(spec, state, &header, candidates);
    let mut overlay = StateOverlay::new(state);
    if let (Consensus::Pos(params), Seal::Pos(seal)) = (&spec.consensus, &header.seal) {
        pos::advance_epoch(&mut overlay, params, seal.slot).ok()?;
    }
    apply_body(spec, &mut overlay, &header, &txs).ok()?;
    header.tx_root = tx_root(&txs);
    header.state_root = overlay.finish().ok()?.root();
    Some((header, txs))
}

/// A PoW template on `parent`, for `miner`, at `timestamp_ms` (raised to
/// just above the median time past if needed).
///
/// Returns `None` on a PoS chain (or if the reward would overflow).
pub fn pow_template(
    spec: &ChainSpec,
    parent: &Parent<'_>,
    state: &dyn CommittedState,
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
    let (header, txs) = fill(spec, state, header, candidates)?;
    let pre = header.pow_pre().unwrap_or_default();
    Some(PowTemplate {
        header,
        pre,
        target,
        txs,
    })
}

/// `key`'s winning ticket for `slot` on top of `parent` (whose state is
/// `state`), if it has one: none if it is not in the epoch's snapshot with
/// this key, or was slashed since (validation would refuse its block).
pub fn pos_claim(
    spec: &ChainSpec,
    parent: &Parent<'_>,
    state: &dyn CommittedState,
    key: &Keypair,
    slot: u64,
) -> Option<PosClaim> {
    let Consensus::Pos(params) = &spec.consensus else {
        return None;
    };
    if slot <= parent.meta.slot {
        return None;
    }
    let epoch = params.epoch_of_slot(slot);
    let mut overlay = StateOverlay::new(state);
    pos::advance_epoch(&mut overlay, params, slot).ok()?;
    let snapshot = overlay.snapshot(epoch).ok()??;
    let staker = snapshot.get(&key.address())?;
    if staker.vrf_key != key.vrf().public_key() || is_barred(&overlay, &staker.address, epoch).ok()? {
        return None;
    }
    let step = pos::failover_step(params, slot, parent.meta.slot);
    let eta = parent.meta.epoch.eta_at(epoch);
    let draw = pos::Draw {
        eta: &eta,
        snapshot: &snapshot,
    };
    pos::claim(spec, params, draw, staker, key.vrf(), slot, step)
}

/// The signed PoS block for a winning `claim`.
///
/// Returns `None` on a PoW chain (or if the reward would overflow).
pub fn pos_block(
    spec: &ChainSpec,
    parent: &Parent<'_>,
    state: &dyn CommittedState,
    key: &Keypair,
    claim: &PosClaim,
    candidates: &[Tx],
) -> Option<Block> {
    let Consensus::Pos(params) = &spec.consensus else {
        return None;
    };
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
