//! Fork choice: which of two chain tips a node follows.
//!
//! - PoW: the most cumulative work (Σ 2^256 / (target + 1)); a tie keeps
//!   the tip seen first.
//! - PoS: the longer chain; at equal length, the chain whose first block
//!   after the fork point is better: the earlier slot, then the lower score
//!   (-ln(u) / stake, compared exactly). Anything still equal keeps the tip
//!   seen first. The rollback limit k is the node's to enforce: it knows how
//!   deep a switch would go.

use std::cmp::Ordering;

use crate::spec::{ChainSpec, Consensus};
use crate::u256::U256;
use crate::validate::BlockMeta;

/// True if `candidate` should replace `current` as the head.
///
/// `first_divergent` holds the first block after the common ancestor on the
/// current and the candidate branch, which PoS needs when heights are equal;
/// pass `None` when one tip descends from the other.
pub fn prefer(
    spec: &ChainSpec,
    current: &BlockMeta,
    candidate: &BlockMeta,
    first_divergent: Option<(&BlockMeta, &BlockMeta)>,
) -> bool {
    match spec.consensus {
        Consensus::Pow(_) => {
            U256::from_be_bytes(candidate.cumulative_work) > U256::from_be_bytes(current.cumulative_work)
        }
        Consensus::Pos(_) => match candidate.height.cmp(&current.height) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => first_divergent
                .is_some_and(|(ours, theirs)| (theirs.slot, theirs.score()) < (ours.slot, ours.score())),
        },
    }
}
