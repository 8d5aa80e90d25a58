//! Quiet slot battles: the node's policy (not a consensus rule) for PoS
//! slots with several eligible stakers.
//!
//! The lowest score of a slot is canonical (fork choice orders same-slot
//! tips by score), which is what makes a staker's win rate its stake share.
//! With `c = 3` about three stakers are eligible in a slot; if all publish at
//! once, all but one block are orphans and nodes reorganise between them.
//! So an eligible staker
//!
//! - waits [`publish_delay`] after the slot's start, longer for a worse
//!   score, then builds its block on the head as it is then;
//! - stays silent if it has seen a block of the slot on the same parent
//!   with a better score ([`SlotBests`]);
//!
//! and a node does not forward a gossiped block that a block it already
//! holds for the same slot and parent beats: that block cannot become the
//! head by itself (it is stored, since a child may extend it).
//!
//! Fork choice alone decides validity: a producer that publishes at once is
//! honest, and a better block that arrives late still wins its slot.
//! `docs/protocol.md` (section 7, "Node policy") gives the rule and
//! `docs/performance.md` ("Slot battles") its measured effect.

use std::collections::BTreeMap;
use std::time::Duration;

use klero_chain::Hash;
use klero_chain::draw::Score;
use klero_chain::spec::PosParams;

/// The share of the slot the delays spread over. The rest is left for the
/// last block of a slot to reach every node before the next slot's first
/// proposer builds.
pub(crate) const PUBLISH_WINDOW: f64 = 0.75;

/// Slots behind the newest recorded for which the best scores are kept.
const WINDOW_SLOTS: u64 = 1024;

/// Our key's winning ticket for a slot, as the staker needs it to time its
/// block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticket {
    /// Its score.
    pub score: Score,
    /// The total stake of the slot's snapshot.
    pub total_stake: u64,
    /// The failover step it is eligible at.
    pub step: u32,
}

/// How long after the slot's start a staker holding `ticket` publishes.
///
/// With `y = score · total_stake` the eligible stakers of a slot are about a
/// Poisson process of rate 1 on `[0, c')`, `c' = c · (step + 1)`, and the best
/// is exponential with mean 1. The second-best stays silent if the best's
/// block reaches it before its own delay ends, so what matters is how often
/// the delays of the best two are closer than the gossip latency `L`. The
/// map `d(y) = W · (1 − e^{−y/2}) / (1 − e^{−c'/2})` onto `[0, W)` minimises
/// that (the calculus of variations on the Poisson process gives it), at
/// about `4 (1 − e^{−c'/2})² · L / W` of the slots: `2.4 L / W` for
/// `c' = 3`, against `2.9 L / W` for a linear map. `W` is
/// [`PUBLISH_WINDOW`] of the slot.
pub(crate) fn publish_delay(params: &PosParams, ticket: &Ticket) -> Duration {
    if ticket.score.stake() == 0 {
        return Duration::ZERO;
    }
    // Policy, not validity: floating point is fine here.
    let neg_ln = ticket.score.neg_ln() as f64 / 2f64.powi(64);
    let y = neg_ln * ticket.total_stake as f64 / ticket.score.stake() as f64;
    let c = f64::from(params.leader_c_milli) / 1000.0 * (f64::from(ticket.step) + 1.0);
    let share = ((1.0 - (-y / 2.0).exp()) / (1.0 - (-c / 2.0).exp())).clamp(0.0, 1.0);
    Duration::from_secs_f64(params.slot_ms as f64 / 1000.0 * PUBLISH_WINDOW * share)
}

/// The best score seen for each (slot, parent) of the recent slots.
#[derive(Debug, Default)]
pub(crate) struct SlotBests {
    best: BTreeMap<(u64, Hash), Score>,
}

impl SlotBests {
    /// Notes a valid block of `slot` on `parent` with `score`.
    pub(crate) fn record(&mut self, parent: Hash, slot: u64, score: Score) {
        let best = self.best.entry((slot, parent)).or_insert(score);
        if score < *best {
            *best = score;
        }
        let newest = self.best.last_key_value().map_or(slot, |((s, _), _)| *s);
        if let Some(oldest) = newest.checked_sub(WINDOW_SLOTS) {
            self.best = self.best.split_off(&(oldest, Hash::ZERO));
        }
    }

    /// The best score seen for `slot` on `parent`.
    pub(crate) fn best(&self, parent: Hash, slot: u64) -> Option<Score> {
        self.best.get(&(slot, parent)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(y_milli: u128, step: u32) -> Ticket {
        // stake 1, total 1: y = neg_ln.
        Ticket {
            score: Score::new((y_milli << 64) / 1000, 1),
            total_stake: 1,
            step,
        }
    }

    #[test]
    fn the_delay_grows_with_the_score_and_stays_in_the_window() {
        let params = PosParams::dev(1_000);
        let window = Duration::from_millis(750);
        let delays: Vec<Duration> = [0, 100, 690, 1_500, 2_999, 3_000, 9_000]
            .into_iter()
            .map(|y| publish_delay(&params, &ticket(y, 0)))
            .collect();
        assert_eq!(delays[0], Duration::ZERO);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
        assert!(delays.iter().all(|d| *d <= window), "{delays:?}");
        // The median best score (y = ln 2) waits about 38 % of the window.
        let median = delays[2].as_millis();
        assert!((270..=300).contains(&median), "{median} ms");
        // At the threshold the delay is the whole window.
        assert!(window - delays[5] < Duration::from_millis(1));
    }

    #[test]
    fn a_failover_step_spreads_the_wider_threshold_over_the_same_window() {
        let params = PosParams::dev(1_000);
        let at_step = |step| publish_delay(&params, &ticket(2_000, step));
        assert!(at_step(1) < at_step(0));
        assert!(publish_delay(&params, &ticket(5_999, 1)) <= Duration::from_millis(750));
    }

    #[test]
    fn the_best_score_of_a_slot_and_parent_is_kept() {
        let mut bests = SlotBests::default();
        let (p, q) = (Hash([1; 32]), Hash([2; 32]));
        bests.record(p, 5, Score::new(30, 1));
        bests.record(p, 5, Score::new(10, 1));
        bests.record(p, 5, Score::new(20, 1));
        bests.record(q, 5, Score::new(1, 1));
        assert_eq!(bests.best(p, 5), Some(Score::new(10, 1)));
        assert_eq!(bests.best(q, 5), Some(Score::new(1, 1)));
        assert_eq!(bests.best(p, 6), None);
        // Old slots are dropped, so the index stays bounded.
        bests.record(p, 5 + WINDOW_SLOTS + 1, Score::new(1, 1));
        assert_eq!(bests.best(p, 5), None);
        assert_eq!(bests.best.len(), 1);
    }
}
