//! Fork choice: which of two chain tips a node follows.
//!
//! - PoW: the most cumulative work (Σ 2^256 / (target + 1)); a tie keeps
//!   the tip seen first.
//! - PoS: the longer chain. At equal length the node keeps the tip it has
//!   (the first seen), except when both tips are blocks of the same slot:
//!   then the lower score (-ln(u) / stake, compared exactly) wins, whichever
//!   arrived first. This is Praos' rule with a slot distance of zero.
//!
//! Why not the earlier slot, as klero v1 did: a staker who wins slot `s`
//! could withhold its block, watch the honest block of `s + 1` (built on the
//! same parent, at the same height) and publish late to orphan it. Keeping
//! the first seen makes the late block lose, so withholding never pays; the
//! same-slot exception keeps the lowest score of a slot canonical, which is
//! what makes a staker's win rate its stake share. See `docs/protocol.md`,
//! "Fork choice".
//!
//! Both chains have a rollback limit (`max_rollback` in the spec). The
//! node knows how deep a block forks from its best chain and calls
//! [`check_fork_depth`] before anything else, so a branch that could never
//! be switched to costs it no validation and no storage.

use std::cmp::Ordering;

use crate::spec::{ChainSpec, Consensus};
use crate::u256::U256;
use crate::validate::{BlockError, BlockMeta};

/// Refuses a block whose branch would undo more than the spec's
/// `max_rollback` blocks of the best chain: `depth` is the best chain's
/// height minus the fork point's.
///
/// # Errors
///
/// [`BlockError::ForkTooDeep`].
pub fn check_fork_depth(spec: &ChainSpec, depth: u64) -> Result<(), BlockError> {
    let max = spec.max_rollback();
    if depth > max {
        Err(BlockError::ForkTooDeep { depth, max })
    } else {
        Ok(())
    }
}

/// True if the tip `candidate` should replace the tip `current` as the head.
pub fn prefer(spec: &ChainSpec, current: &BlockMeta, candidate: &BlockMeta) -> bool {
    match spec.consensus {
        Consensus::Pow(_) => {
            U256::from_be_bytes(candidate.cumulative_work) > U256::from_be_bytes(current.cumulative_work)
        }
        Consensus::Pos(_) => match candidate.height.cmp(&current.height) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => candidate.slot == current.slot && candidate.score() < current.score(),
        },
    }
}
