//! Proof-of-stake rules: slots, epochs, the VRF input and eligibility.
//!
//! Slot `s` starts at `genesis_time_ms + s * slot_ms`; epoch `e` holds slots
//! `e * epoch_slots .. (e + 1) * epoch_slots`. In slot `s` of epoch `e`, a
//! staker's ticket is its VRF output on
//! `"klero/slot" || chain_id || eta_e || s_le64 || proposer` (see
//! `docs/protocol.md`), turned into a score `-ln(u) / stake` by
//! [`crate::draw`]. The input names the proposer, so a ticket is worthless
//! to anyone but its owner: a block re-signed by another account proves
//! another input. A staker may
//! propose when its score is below the threshold for the failover step
//! `j = min(s - parent_slot - 1, max_failover_steps)`: each empty slot since
//! the parent widens the threshold by one more `c / total_stake`, so an
//! offline winner delays the chain a bounded time and the widening stays
//! stake-proportional.

use crate::draw::{self, Score};
use crate::epoch::{StakeSnapshot, Staker};
use crate::hash::Hash;
use crate::keys::Address;
use crate::spec::{ChainSpec, PosParams};
use crate::state::{StateError, StateOverlay};
use crate::vrf::{self, VrfOutput, VrfProof};

/// How far a slot's start may be ahead of our clock before its block is
/// "from the future" (and ignored, not punished).
pub const MAX_CLOCK_DRIFT_MS: u64 = 1_000;

/// The slot whose interval contains `now_ms` (0 before genesis).
pub fn slot_at(spec: &ChainSpec, pos: &PosParams, now_ms: u64) -> u64 {
    now_ms.saturating_sub(spec.genesis_time_ms) / pos.slot_ms
}

/// When `slot` starts.
pub fn slot_start(spec: &ChainSpec, pos: &PosParams, slot: u64) -> u64 {
    spec.genesis_time_ms
        .saturating_add(slot.saturating_mul(pos.slot_ms))
}

/// Whether a block in `slot` feeds the next epoch's randomness: only those
/// before the freeze point, `freeze_slots` before the epoch's end.
pub fn before_freeze(pos: &PosParams, slot: u64) -> bool {
    slot % pos.epoch_slots < pos.epoch_slots - pos.freeze_slots
}

/// The failover step of a block in `slot` whose parent is in `parent_slot`.
pub fn failover_step(pos: &PosParams, slot: u64, parent_slot: u64) -> u32 {
    let skipped = slot.saturating_sub(parent_slot).saturating_sub(1);
    u32::try_from(skipped)
        .unwrap_or(u32::MAX)
        .min(pos.max_failover_steps)
}

/// The VRF input (alpha) of `proposer` for `slot` under epoch randomness `eta`.
///
/// # Format
///
/// ```text
/// "klero/slot" (10 bytes) | chain_id (UTF-8, no length) | eta [32] | slot u64 LE
/// | proposer address [32]
/// ```
/// The chain id is the only variable-length part and comes before three
/// fixed-length fields (72 bytes), so the encoding is unambiguous.
pub fn vrf_input(chain_id: &str, eta: &Hash, slot: u64, proposer: &Address) -> Vec<u8> {
    let mut alpha = Vec::with_capacity(10 + chain_id.len() + 72);
    alpha.extend_from_slice(b"klero/slot");
    alpha.extend_from_slice(chain_id.as_bytes());
    alpha.extend_from_slice(eta.as_bytes());
    alpha.extend_from_slice(&slot.to_le_bytes());
    alpha.extend_from_slice(&proposer.0);
    alpha
}

/// Moves the epoch bookkeeping of an overlay over the parent's state to
/// `slot`'s epoch ([`crate::epoch::advance`]).
///
/// # Errors
///
/// [`StateError`] if the state cannot be read.
pub fn advance_epoch(state: &mut StateOverlay<'_>, pos: &PosParams, slot: u64) -> Result<(), StateError> {
    crate::epoch::advance(state, pos.epoch_of_slot(slot))
}

/// A staker's winning ticket for a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PosClaim {
    /// The slot.
    pub slot: u64,
    /// The VRF output.
    pub output: VrfOutput,
    /// The VRF proof.
    pub proof: VrfProof,
    /// Its score.
    pub score: Score,
}

/// Whether `staker` of `snapshot`, with VRF `output`, may propose at `step`.
pub fn eligible(
    params: &PosParams,
    snapshot: &StakeSnapshot,
    staker: &Staker,
    output: &VrfOutput,
    step: u32,
) -> Option<Score> {
    let score = draw::score(&output.0, staker.stake);
    draw::is_eligible(&score, snapshot.total(), params.leader_c_milli, step).then_some(score)
}

/// The draw of one slot: its randomness and the stakes it is drawn from.
#[derive(Clone, Copy, Debug)]
pub struct Draw<'a> {
    /// `eta` of the slot's epoch.
    pub eta: &'a Hash,
    /// The snapshot of the slot's epoch.
    pub snapshot: &'a StakeSnapshot,
}

/// Proves `slot` as `staker` with `vrf_key` and returns the ticket if it
/// wins. This is the draw alone: whether the staker may use the ticket
/// (its registered key, a recent slash) is
/// [`crate::produce::pos_claim`]'s to check.
pub fn claim(
    spec: &ChainSpec,
    params: &PosParams,
    draw: Draw<'_>,
    staker: &Staker,
    vrf_key: &vrf::VrfSecretKey,
    slot: u64,
    step: u32,
) -> Option<PosClaim> {
    let alpha = vrf_input(&spec.chain_id, draw.eta, slot, &staker.address);
    let proof = vrf_key.prove(&alpha);
    let output = vrf::proof_to_hash(&proof).ok()?;
    let score = eligible(params, draw.snapshot, staker, &output, step)?;
    Some(PosClaim {
        slot,
        output,
        proof,
        score,
    })
}
