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
//!
//! PoW has a second bound, a node policy and not a validity rule
//! ([`check_branch_work`]): a side block a peer pushes (gossip) must bring
//! its branch within [`SIDE_BRANCH_LAG`] blocks of work of the head. A
//! branch further behind cannot become the head with its next block, so
//! storing and relaying it buys nothing, and the blocks that do it cheaply
//! (children of a deep fork point whose targets ASERT eased) are the ones
//! an attacker makes by the thousand. Blocks the node asked for (sync) are
//! not held to it: that is how a partition's heavier half, whose first
//! blocks trail our head, still takes over.

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

/// How many blocks of the best chain's work a pushed PoW side branch may
/// trail the head by ([`check_branch_work`]). Gossip races fork one or two
/// blocks deep; six leaves room for a short burst of bad luck.
pub const SIDE_BRANCH_LAG: u64 = 6;

/// Refuses a PoW block that leaves its branch with less cumulative work
/// than `floor`, the best chain's cumulative work [`SIDE_BRANCH_LAG`]
/// blocks below the head (genesis when the chain is shorter): such a
/// branch trails the head by more than that many blocks of work. PoS
/// chains are not judged by work: always `Ok`.
///
/// # Errors
///
/// [`BlockError::LightBranch`].
pub fn check_branch_work(spec: &ChainSpec, branch: &BlockMeta, floor: &BlockMeta) -> Result<(), BlockError> {
    let light = matches!(spec.consensus, Consensus::Pow(_))
        && U256::from_be_bytes(branch.cumulative_work) < U256::from_be_bytes(floor.cumulative_work);
    if light {
        Err(BlockError::LightBranch { lag: SIDE_BRANCH_LAG })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{PosParams, PowParams};
    use crate::validate::genesis_meta;

    fn with_work(spec: &ChainSpec, work: u64) -> BlockMeta {
        let mut meta = genesis_meta(spec);
        meta.cumulative_work = U256::from_u128(u128::from(work)).to_be_bytes();
        meta
    }

    #[test]
    fn a_pow_branch_below_the_floor_is_light_and_pos_is_never_judged_by_work() {
        let mut spec = ChainSpec::from_toml(include_str!("../../testnet/pow.toml")).expect("spec");
        spec.consensus = Consensus::Pow(PowParams::dev(2_000, [0x0f; 32]));
        let floor = with_work(&spec, 100);
        assert!(check_branch_work(&spec, &with_work(&spec, 100), &floor).is_ok());
        assert!(matches!(
            check_branch_work(&spec, &with_work(&spec, 99), &floor),
            Err(BlockError::LightBranch { lag: SIDE_BRANCH_LAG })
        ));
        spec.consensus = Consensus::Pos(PosParams::dev(1_000));
        assert!(check_branch_work(&spec, &with_work(&spec, 0), &floor).is_ok());
    }
}
