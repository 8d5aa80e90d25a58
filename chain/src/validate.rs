//! Block validation: the rules a block must pass, in order, each its own
//! `validate_*` function.
//!
//! Cheap checks come first, and nothing that needs the parent's state runs
//! before everything that does not has passed, so a forged block costs a
//! node no state read:
//!
//! 1. [`check_header`], from the parent's header and metadata alone: the
//!    transaction count → the seal's kind → against the parent → the seal
//!    (PoW: timestamp, target, hash; PoS: slot and time, then the VRF proof
//!    under the header's key and the `eta` the parent's metadata gives) →
//!    the proposer's signature (these from the signed header alone:
//!    [`check_signed_header`]) → the tx root.
//! 2. [`validate_against_state`], with the parent's state: PoS
//!    eligibility (the proposer's stake and key in the snapshot, no recent
//!    slash, the score) → transaction signatures (batched) and proofs of
//!    possession → the ledger on an overlay → the state root.
//!
//! [`validate_block`] runs both. The result is the block's [`ChangeSet`]
//! (never a copy of the state) and its [`BlockMeta`], which fork choice
//! compares.
//!
//! Errors say whose fault a failure is: [`BlockError::is_peer_fault`] is
//! true when the block itself is invalid (the gossip layer rejects it and
//! penalises the sender) and false when we merely cannot accept it now
//! (from the future): those are ignored, not punished.

use bincode::{Decode, Encode};

use crate::difficulty;
use crate::draw::Score;
use crate::epoch::EpochInfo;
use crate::hash::Hash;
use crate::keys::{Address, KeyError};
use crate::ledger::{ApplyError, TxRejection, is_barred, verify_txs};
use crate::pos::{self, MAX_CLOCK_DRIFT_MS};
use crate::pow;
use crate::spec::{ChainSpec, Consensus, PosParams, PowParams};
use crate::state::{ChangeSet, CommittedState, StateError, StateOverlay, StateRead};
use crate::state_tree::StateKey;
use crate::types::{Header, PosSeal, PowSeal, Seal, SealedBlock, SignedHeader, Tx, tx_root};
use crate::u256::U256;
use crate::vrf::{self, VrfError, VrfOutput};

/// Most transactions in one block.
pub const MAX_BLOCK_TXS: usize = 4_096;
/// How many ancestors' timestamps the median-time-past rule looks at.
pub const MEDIAN_TIME_SPAN: usize = 11;

/// What fork choice and the cheap checks of a child need to know about a
/// block, computed at import and kept beside its header.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct BlockMeta {
    /// Height.
    pub height: u64,
    /// PoW: Σ 2^256 / (target + 1) from genesis, big-endian. PoS: zero.
    pub cumulative_work: [u8; 32],
    /// PoS slot (0 for PoW).
    pub slot: u64,
    /// PoS: the proposer's -ln(u) in Q64.64 and its stake (the score is
    /// their quotient). Zero for PoW and genesis.
    pub neg_ln: u128,
    /// See `neg_ln`.
    pub stake: u64,
    /// The epoch data of the state after the block: its epoch's `eta` is
    /// the one its VRF proof used, and a child's `eta` follows from it
    /// ([`EpochInfo::eta_at`]) without reading the state.
    pub epoch: EpochInfo,
}

impl BlockMeta {
    /// The PoS score of the block.
    pub fn score(&self) -> Score {
        Score::new(self.neg_ln, self.stake)
    }
}

/// The metadata of `spec`'s genesis block.
pub fn genesis_meta(spec: &ChainSpec) -> BlockMeta {
    BlockMeta {
        height: 0,
        cumulative_work: [0; 32],
        slot: 0,
        neg_ln: 0,
        stake: 0,
        epoch: EpochInfo::genesis(spec.digest()),
    }
}

/// What validating a child needs to know about its parent besides its
/// state.
#[derive(Clone, Copy, Debug)]
pub struct Parent<'a> {
    /// The parent's id.
    pub id: Hash,
    /// Its header.
    pub header: &'a Header,
    /// Its metadata.
    pub meta: &'a BlockMeta,
    /// Timestamps of up to [`MEDIAN_TIME_SPAN`] blocks ending with the
    /// parent, oldest first.
    pub recent_timestamps: &'a [u64],
}

/// A block that passed every rule, with what it does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// What the block changes in its parent's state.
    pub changes: ChangeSet,
    /// Its metadata.
    pub meta: BlockMeta,
}

/// A block whose header passed [`check_header`]: what the checks against
/// the state still need.
#[derive(Clone, Debug)]
pub struct CheckedHeader {
    meta: BlockMeta,
    /// PoS: what the eligibility check needs.
    pos: Option<PosProof>,
}

impl CheckedHeader {
    /// The block's metadata as far as the header gives it (PoW: all of it,
    /// the cumulative work included; PoS: without the score and epoch data).
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }
}

/// A PoS seal's proven VRF output and the parent's slot (for the failover
/// step).
#[derive(Clone, Debug)]
struct PosProof {
    output: VrfOutput,
    parent_slot: u64,
}

/// Why a block was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlockError {
    /// A PoW block on a PoS chain or the other way round.
    #[error("seal is for the wrong consensus (chain is {expected})")]
    WrongConsensus {
        /// The chain's consensus.
        expected: &'static str,
    },
    /// Too many transactions.
    #[error("{count} transactions exceed the limit of {max}")]
    TooManyTxs {
        /// How many.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The block does not name the given parent (a caller bug, not the peer's).
    #[error("block's parent is {got}, not {expected}")]
    WrongParent {
        /// The parent we hold.
        expected: Hash,
        /// The parent it names.
        got: Hash,
    },
    /// Height is not parent + 1.
    #[error("height {got}, expected {expected}")]
    BadHeight {
        /// Parent height + 1.
        expected: u64,
        /// The header's height.
        got: u64,
    },
    /// PoW timestamp not above the median of the last 11 blocks.
    #[error("timestamp {timestamp} is not above the median time past {median}")]
    TimestampTooOld {
        /// The header's timestamp.
        timestamp: u64,
        /// The median.
        median: u64,
    },
    /// Timestamp or slot too far ahead of our clock.
    #[error("block time {timestamp} is ahead of our clock {now} by more than the allowed drift")]
    FromTheFuture {
        /// The block's time.
        timestamp: u64,
        /// Our clock.
        now: u64,
    },
    /// The PoW target is not the one ASERT gives for this height.
    #[error("target {got} is not the required {expected}")]
    WrongTarget {
        /// Required, hex.
        expected: String,
        /// Found, hex.
        got: String,
    },
    /// `pow_hash > target`.
    #[error("proof of work {hash} does not meet the target")]
    InsufficientWork {
        /// The hash, hex.
        hash: String,
    },
    /// PoS slot not after the parent's.
    #[error("slot {slot} is not after the parent's slot {parent_slot}")]
    SlotNotAfterParent {
        /// The block's slot.
        slot: u64,
        /// The parent's slot.
        parent_slot: u64,
    },
    /// PoS timestamp is not the start of its slot.
    #[error("timestamp {got} is not the start of slot {slot} ({expected})")]
    WrongSlotTime {
        /// The slot.
        slot: u64,
        /// Its start.
        expected: u64,
        /// The header's timestamp.
        got: u64,
    },
    /// The proposer has no stake in the epoch's snapshot.
    #[error("proposer {0} has no stake in this epoch's snapshot")]
    NotAStaker(Address),
    /// The proposer was slashed since the epoch's snapshot was taken.
    #[error("proposer {0} was slashed and may not propose until its stake leaves the snapshots")]
    SlashedProposer(Address),
    /// The header's VRF key is not the proposer's registered one.
    #[error("VRF key is not the one registered for the proposer")]
    WrongVrfKey,
    /// Unknown VRF suite.
    #[error("unsupported VRF suite {0:#04x}")]
    UnsupportedSuite(u8),
    /// The VRF proof does not verify.
    #[error("VRF proof does not verify: {0}")]
    BadVrfProof(VrfError),
    /// The VRF output is not the proof's.
    #[error("VRF output does not match the proof")]
    WrongVrfOutput,
    /// Score above the threshold for the failover step.
    #[error("proposer's score is above the threshold for failover step {step}")]
    NotEligible {
        /// The step.
        step: u32,
    },
    /// The proposer's signature does not verify.
    #[error("block signature: {0}")]
    BadSignature(KeyError),
    /// The tx root is not the transactions'.
    #[error("tx root does not match the transactions")]
    TxRootMismatch,
    /// A transaction breaks a rule.
    #[error("{0}")]
    Tx(TxRejection),
    /// The parent's state could not be read (our store's failure, not the block's).
    #[error("the parent state cannot be read: {0}")]
    State(StateError),
    /// The block forks from the best chain deeper than a node may roll
    /// back (refused before any other check).
    #[error("the block forks {depth} blocks below the head, deeper than the rollback limit of {max}")]
    ForkTooDeep {
        /// How many blocks of the best chain the block's branch would undo.
        depth: u64,
        /// The spec's limit.
        max: u64,
    },
    /// A PoW side block whose branch has too little work to overtake the
    /// best chain soon (node policy, [`crate::fork_choice::check_branch_work`]):
    /// refused after its seal and signature, before its parent's state.
    #[error("the block's branch trails the best chain by more than {lag} blocks of work")]
    LightBranch {
        /// The node's allowance, in blocks of the best chain.
        lag: u64,
    },
    /// The state root is not the state the block leads to.
    #[error("state root {got} is not the computed {expected}")]
    StateRootMismatch {
        /// Computed.
        expected: Hash,
        /// In the header.
        got: Hash,
    },
}

impl BlockError {
    /// True if the block is invalid in itself, so its sender is to blame.
    pub fn is_peer_fault(&self) -> bool {
        !matches!(
            self,
            BlockError::FromTheFuture { .. }
                | BlockError::WrongParent { .. }
                | BlockError::State(_)
                | BlockError::LightBranch { .. }
        )
    }

    /// A short stable label, for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            BlockError::WrongConsensus { .. } => "wrong_consensus",
            BlockError::TooManyTxs { .. } => "too_many_txs",
            BlockError::WrongParent { .. } => "wrong_parent",
            BlockError::BadHeight { .. } => "bad_height",
            BlockError::TimestampTooOld { .. } => "timestamp_too_old",
            BlockError::FromTheFuture { .. } => "from_the_future",
            BlockError::WrongTarget { .. } => "wrong_target",
            BlockError::InsufficientWork { .. } => "insufficient_work",
            BlockError::SlotNotAfterParent { .. } => "slot_not_after_parent",
            BlockError::WrongSlotTime { .. } => "wrong_slot_time",
            BlockError::NotAStaker(_) => "not_a_staker",
            BlockError::SlashedProposer(_) => "slashed_proposer",
            BlockError::WrongVrfKey => "wrong_vrf_key",
            BlockError::UnsupportedSuite(_) => "unsupported_suite",
            BlockError::BadVrfProof(_) => "bad_vrf_proof",
            BlockError::WrongVrfOutput => "wrong_vrf_output",
            BlockError::NotEligible { .. } => "not_eligible",
            BlockError::BadSignature(_) => "bad_signature",
            BlockError::TxRootMismatch => "tx_root_mismatch",
            BlockError::Tx(_) => "invalid_tx",
            BlockError::StateRootMismatch { .. } => "state_root_mismatch",
            BlockError::State(_) => "state_unreadable",
            BlockError::ForkTooDeep { .. } => "fork_too_deep",
            BlockError::LightBranch { .. } => "light_branch",
        }
    }
}

impl From<ApplyError<TxRejection>> for BlockError {
    fn from(error: ApplyError<TxRejection>) -> Self {
        match error {
            ApplyError::Invalid(rejection) => BlockError::Tx(rejection),
            ApplyError::State(error) => BlockError::State(error),
        }
    }
}

impl From<StateError> for BlockError {
    fn from(error: StateError) -> Self {
        BlockError::State(error)
    }
}

/// Validates `block` as a child of `parent`, whose state is `state`, at
/// local time `now_ms`: [`check_header`], then [`validate_against_state`].
///
/// # Errors
///
/// The first rule the block breaks, or [`BlockError::State`].
pub fn validate_block(
    spec: &ChainSpec,
    parent: &Parent<'_>,
    state: &dyn CommittedState,
    block: &SealedBlock,
    now_ms: u64,
) -> Result<Imported, BlockError> {
    let checked = check_header(spec, parent, block, now_ms)?;
    validate_against_state(spec, state, checked, block)
}

/// Everything that can be checked without the parent's state: the
/// transaction count, [`check_signed_header`], and the tx root.
///
/// # Errors
///
/// The first rule the block breaks.
pub fn check_header(
    spec: &ChainSpec,
    parent: &Parent<'_>,
    block: &SealedBlock,
    now_ms: u64,
) -> Result<CheckedHeader, BlockError> {
    let header = block.header();
    let txs = &block.block().txs;
    if txs.len() > MAX_BLOCK_TXS {
        return Err(BlockError::TooManyTxs {
            count: txs.len(),
            max: MAX_BLOCK_TXS,
        });
    }
    let checked = check_signed_header(spec, parent, &block.block().signed, now_ms)?;
    if tx_root(txs) != header.tx_root {
        return Err(BlockError::TxRootMismatch);
    }
    Ok(checked)
}

/// What a signed header proves on its own, against the parent: the seal's
/// kind, the parent and height, the seal (PoS: the VRF proof under the
/// header's key, with `eta` from the parent's metadata) and the
/// proposer's signature. Headers-first sync checks a PoW branch's work
/// with this alone ([`HeaderChain`]).
///
/// # Errors
///
/// The first rule the header breaks.
pub fn check_signed_header(
    spec: &ChainSpec,
    parent: &Parent<'_>,
    signed: &SignedHeader,
    now_ms: u64,
) -> Result<CheckedHeader, BlockError> {
    let header = &signed.header;
    validate_seal_kind(spec, header)?;
    validate_against_parent(parent, header)?;
    let checked = match (&spec.consensus, &header.seal) {
        (Consensus::Pow(params), Seal::Pow(seal)) => CheckedHeader {
            meta: validate_pow_seal(spec, params, parent, header, seal, now_ms)?,
            pos: None,
        },
        (Consensus::Pos(params), Seal::Pos(seal)) => {
            check_pos_proof(spec, params, parent, header, seal, now_ms)?
        }
        _ => unreachable!("validate_seal_kind checked the seal kind"),
    };
    signed.verify(&spec.chain_id).map_err(BlockError::BadSignature)?;
    Ok(checked)
}

/// A PoW branch as far as its headers prove it: the tip's header and
/// metadata (its cumulative work) and the timestamps the next header's
/// median-time rule needs. Each header is checked against the one before
/// ([`check_signed_header`]), so a peer's claim that its branch carries
/// more work than ours costs it real work per header, and costs us no
/// block body, state or storage until it is proven. PoS has none: a PoS
/// header's eligibility and its epoch data need the parent's state.
#[derive(Clone, Debug)]
pub struct HeaderChain {
    id: Hash,
    header: Header,
    meta: BlockMeta,
    recent_timestamps: Vec<u64>,
}

impl HeaderChain {
    /// A branch starting at the stored block `id` (its header, metadata and
    /// up to [`MEDIAN_TIME_SPAN`] timestamps ending with its own, oldest
    /// first); `None` on a PoS chain.
    pub fn start(
        spec: &ChainSpec,
        id: Hash,
        header: Header,
        meta: BlockMeta,
        recent_timestamps: Vec<u64>,
    ) -> Option<HeaderChain> {
        matches!(spec.consensus, Consensus::Pow(_)).then_some(HeaderChain {
            id,
            header,
            meta,
            recent_timestamps,
        })
    }

    /// Checks `signed` as the child of the tip and makes it the tip.
    ///
    /// # Errors
    ///
    /// The first rule the header breaks; the tip stays.
    pub fn extend(&mut self, spec: &ChainSpec, signed: &SignedHeader, now_ms: u64) -> Result<(), BlockError> {
        let parent = Parent {
            id: self.id,
            header: &self.header,
            meta: &self.meta,
            recent_timestamps: &self.recent_timestamps,
        };
        let checked = check_signed_header(spec, &parent, signed, now_ms)?;
        self.recent_timestamps.push(signed.header.timestamp_ms);
        if self.recent_timestamps.len() > MEDIAN_TIME_SPAN {
            self.recent_timestamps.remove(0);
        }
        self.id = signed.header.id();
        self.header = signed.header.clone();
        self.meta = checked.meta;
        Ok(())
    }

    /// The tip's id.
    pub fn tip(&self) -> Hash {
        self.id
    }

    /// The tip's metadata: its height and the branch's cumulative work.
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }
}

/// The rest, on the parent's `state`: PoS eligibility, the transactions'
/// signatures and proofs, the ledger on an overlay, the state root.
///
/// # Errors
///
/// The first rule the block breaks, or [`BlockError::State`].
pub fn validate_against_state(
    spec: &ChainSpec,
    state: &dyn CommittedState,
    checked: CheckedHeader,
    block: &SealedBlock,
) -> Result<Imported, BlockError> {
    let header = block.header();
    let txs = &block.block().txs;
    let mut overlay = StateOverlay::new(state);
    let mut meta = checked.meta;
    if let (Consensus::Pos(params), Seal::Pos(seal), Some(proof)) =
        (&spec.consensus, &header.seal, &checked.pos)
    {
        let score = validate_pos_eligibility(params, &mut overlay, header, seal, proof)?;
        meta.neg_ln = score.neg_ln();
        meta.stake = score.stake();
    }
    verify_txs(txs, &spec.chain_id).map_err(BlockError::Tx)?;
    apply_body(spec, &mut overlay, header, txs)?;
    meta.epoch = overlay.epoch_info()?;
    let changes = overlay.finish()?;
    if changes.root() != header.state_root {
        return Err(BlockError::StateRootMismatch {
            expected: changes.root(),
            got: header.state_root,
        });
    }
    Ok(Imported { changes, meta })
}

/// Applies a block's transactions and reward, and for PoS mixes its VRF
/// output into the epoch randomness, on an overlay already advanced to the
/// block's epoch. Shared by validation and production so the two can never
/// disagree.
pub(crate) fn apply_body(
    spec: &ChainSpec,
    state: &mut StateOverlay<'_>,
    header: &Header,
    txs: &[Tx],
) -> Result<(), ApplyError<TxRejection>> {
    let ctx = spec.block_ctx(spec.epoch_of(header), header.proposer);
    state.apply_block_body(txs, &ctx)?;
    if let (Consensus::Pos(pos_params), Seal::Pos(seal)) = (&spec.consensus, &header.seal)
        && pos::before_freeze(pos_params, seal.slot)
    {
        let mut info = state.epoch_info()?;
        info.contribute(&seal.vrf_output);
        state.set_epoch_info(info);
    }
    Ok(())
}

fn validate_seal_kind(spec: &ChainSpec, header: &Header) -> Result<(), BlockError> {
    let kind_matches = matches!(
        (&spec.consensus, &header.seal),
        (Consensus::Pow(_), Seal::Pow(_)) | (Consensus::Pos(_), Seal::Pos(_))
    );
    if kind_matches {
        Ok(())
    } else {
        Err(BlockError::WrongConsensus {
            expected: spec.consensus_name(),
        })
    }
}

fn validate_against_parent(parent: &Parent<'_>, header: &Header) -> Result<(), BlockError> {
    if header.parent != parent.id {
        return Err(BlockError::WrongParent {
            expected: parent.id,
            got: header.parent,
        });
    }
    let expected = parent.meta.height.saturating_add(1);
    if header.height != expected {
        return Err(BlockError::BadHeight {
            expected,
            got: header.height,
        });
    }
    Ok(())
}

/// The median of the given timestamps (the upper median for an even count).
pub fn median_time_past(recent: &[u64]) -> u64 {
    let mut sorted: Vec<u64> = recent.iter().rev().take(MEDIAN_TIME_SPAN).copied().collect();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or(0)
}

/// The target a PoW block must carry: aserti3-2d anchored at a virtual
/// parent of genesis one block interval before it, so the first block
/// after genesis carries exactly `initial_target`, and never easier than
/// the spec's `pow_limit`.
pub fn required_target(spec: &ChainSpec, params: &PowParams, parent: &Header) -> U256 {
    let spacing = i64::try_from(params.target_block_ms).unwrap_or(i64::MAX);
    let half_life = spacing.saturating_mul(i64::try_from(params.half_life_blocks).unwrap_or(i64::MAX));
    let anchor_parent_time = i64::try_from(spec.genesis_time_ms)
        .unwrap_or(i64::MAX)
        .saturating_sub(spacing);
    let time_diff = i64::try_from(parent.timestamp_ms)
        .unwrap_or(i64::MAX)
        .saturating_sub(anchor_parent_time);
    let height_diff = i64::try_from(parent.height).unwrap_or(i64::MAX);
    difficulty::next_target(
        &U256::from_be_bytes(params.initial_target),
        time_diff,
        height_diff,
        spacing,
        half_life,
        &U256::from_be_bytes(params.pow_limit),
    )
}

fn validate_pow_seal(
    spec: &ChainSpec,
    params: &PowParams,
    parent: &Parent<'_>,
    header: &Header,
    seal: &PowSeal,
    now_ms: u64,
) -> Result<BlockMeta, BlockError> {
    let median = median_time_past(parent.recent_timestamps);
    if header.timestamp_ms <= median {
        return Err(BlockError::TimestampTooOld {
            timestamp: header.timestamp_ms,
            median,
        });
    }
    if header.timestamp_ms > now_ms.saturating_add(params.max_future_drift_ms) {
        return Err(BlockError::FromTheFuture {
            timestamp: header.timestamp_ms,
            now: now_ms,
        });
    }
    let target = required_target(spec, params, parent.header);
    if seal.target != target.to_be_bytes() {
        return Err(BlockError::WrongTarget {
            expected: hex::encode(target.to_be_bytes()),
            got: hex::encode(seal.target),
        });
    }
    let pre = header.pow_pre().unwrap_or_default();
    let hash = pow::pow_hash(&pre, seal.nonce);
    if !pow::meets_target(&hash, &seal.target) {
        return Err(BlockError::InsufficientWork {
            hash: hex::encode(hash),
        });
    }
    let work = U256::from_be_bytes(parent.meta.cumulative_work).saturating_add(&U256::work(&target));
    Ok(BlockMeta {
        height: header.height,
        cumulative_work: work.to_be_bytes(),
        slot: 0,
        neg_ln: 0,
        stake: 0,
        epoch: parent.meta.epoch,
    })
}

/// The PoS checks that need no state: the slot after the parent's, the
/// timestamp its start and not ahead of our clock, the suite, and the VRF
/// proof under the header's key on the input of the slot's epoch, whose
/// `eta` follows from the parent's metadata.
fn check_pos_proof(
    spec: &ChainSpec,
    params: &PosParams,
    parent: &Parent<'_>,
    header: &Header,
    seal: &PosSeal,
    now_ms: u64,
) -> Result<CheckedHeader, BlockError> {
    let parent_slot = parent.meta.slot;
    if seal.slot <= parent_slot {
        return Err(BlockError::SlotNotAfterParent {
            slot: seal.slot,
            parent_slot,
        });
    }
    let start = pos::slot_start(spec, params, seal.slot);
    if header.timestamp_ms != start {
        return Err(BlockError::WrongSlotTime {
            slot: seal.slot,
            expected: start,
            got: header.timestamp_ms,
        });
    }
    if start > now_ms.saturating_add(MAX_CLOCK_DRIFT_MS) {
        return Err(BlockError::FromTheFuture {
            timestamp: start,
            now: now_ms,
        });
    }
    if seal.suite != vrf::SUITE {
        return Err(BlockError::UnsupportedSuite(seal.suite));
    }
    let eta = parent.meta.epoch.eta_at(params.epoch_of_slot(seal.slot));
    let alpha = pos::vrf_input(&spec.chain_id, &eta, seal.slot, &header.proposer);
    let output = vrf::verify(&seal.vrf_key, &alpha, &seal.vrf_proof).map_err(BlockError::BadVrfProof)?;
    if output != seal.vrf_output {
        return Err(BlockError::WrongVrfOutput);
    }
    Ok(CheckedHeader {
        meta: BlockMeta {
            height: header.height,
            cumulative_work: [0; 32],
            slot: seal.slot,
            neg_ln: 0,
            stake: 0,
            epoch: parent.meta.epoch,
        },
        pos: Some(PosProof { output, parent_slot }),
    })
}

/// The PoS checks on the parent's state, moved to the slot's epoch: the
/// proposer is in the epoch's snapshot with the header's VRF key, is not
/// barred by a recent slash, and its score is under the threshold of the
/// failover step. Returns the score.
fn validate_pos_eligibility(
    params: &PosParams,
    state: &mut StateOverlay<'_>,
    header: &Header,
    seal: &PosSeal,
    proof: &PosProof,
) -> Result<Score, BlockError> {
    pos::advance_epoch(state, params, seal.slot)?;
    let epoch = params.epoch_of_slot(seal.slot);
    let snapshot = state
        .snapshot(epoch)?
        .ok_or(StateError::Missing(StateKey::Snapshot { epoch }))?;
    let staker = snapshot
        .get(&header.proposer)
        .ok_or(BlockError::NotAStaker(header.proposer))?;
    if is_barred(state, &header.proposer, epoch)? {
        return Err(BlockError::SlashedProposer(header.proposer));
    }
    if seal.vrf_key != staker.vrf_key {
        return Err(BlockError::WrongVrfKey);
    }
    let step = pos::failover_step(params, seal.slot, proof.parent_slot);
    pos::eligible(params, &snapshot, staker, &proof.output, step).ok_or(BlockError::NotEligible { step })
}
