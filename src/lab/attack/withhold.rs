//! PoS withholding: a staker that keeps a won block and publishes it late
//! to displace an honest one, under klero's v2 fork choice and, as a
//! counterfactual that exists only here, under v1's.
//!
//! Every slot each staker draws a ticket (64 random bytes, the VRF's output
//! distribution; the real VRF is in [`super::grind`]), turned into a score
//! by `draw::score` and checked by `draw::is_eligible` at the failover step
//! `pos::failover_step` of the development draw (`PosParams::dev`, c = 3).
//! Honest stakers build on the public tip; of a slot's honest blocks only
//! the lowest-scored is kept (the others lose to it on every node, and
//! nothing is built on them). Blocks reach every honest node at once, in the
//! order they are published, and a node switches tips only if the fork
//! choice says so:
//!
//! - **v2** (klero): `klero_chain::fork_choice::prefer` on the blocks' real
//!   `BlockMeta`s: longer wins; at equal length the first seen stays unless
//!   both tips are of one slot, then the lower score wins.
//! - **v1 (counterfactual)**: longer wins; at equal length the branch whose
//!   first block after the fork point has the earlier slot, then the lower
//!   score (protocol.md, section 9). Implemented in [`prefer_v1`] for this
//!   experiment only; no node runs it.
//!
//! **The strategy, withhold(d).** The adversary, when eligible on the
//! public tip in slot `s`, makes block `A` and keeps it. At the end of slot
//! `s` it publishes `A` if an honest block of slot `s` appeared (waiting
//! longer could only let that block's children outgrow `A`) or if `d = 0`;
//! otherwise it publishes `A` at the end of slot `s + d`, after the honest
//! blocks of the slots in between, which is when a late block can displace
//! one. While it holds `A` it proposes nothing else (a private chain is the
//! longest-chain attack every such protocol has; protocol.md, section 7).
//! `d = 0` is "publish late within the slot", after the slot's honest rivals.

use klero_chain::ChainSpec;
use klero_chain::draw::{self, Score};
use klero_chain::fork_choice::prefer;
use klero_chain::pos;
use klero_chain::spec::{Consensus, LedgerSection, PosParams};
use klero_chain::validate::{BlockMeta, genesis_meta};
use rayon::prelude::*;
use serde::Serialize;

use super::{Estimate, run_seed};
use crate::lab::rng::Rng;

/// Total stake of the simulated chain.
const TOTAL_STAKE: u64 = 1_000_000;
/// Slots at the end left out of the count.
const TAIL_SLOTS: u64 = 16;

/// Which fork choice the honest nodes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Rule {
    /// klero's rule: `fork_choice::prefer`.
    V2,
    /// The earlier-slot rule klero v1 had (a counterfactual).
    V1,
}

/// How an experiment runs.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct Config {
    /// Honest stakers, of equal stake.
    pub honest_stakers: usize,
    /// Slots per run.
    pub slots: u64,
    /// Independent runs per point.
    pub runs: usize,
    /// Base seed.
    pub seed: u64,
}

/// One point: a stake share, a delay and a rule.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Point {
    /// The adversary's stake share.
    pub alpha: f64,
    /// The release delay in slots.
    pub delay: u64,
    /// The honest nodes' fork choice.
    pub rule: Rule,
    /// The adversary's share of canonical blocks.
    pub share: Estimate,
    /// Whether alpha lies in the share's interval.
    pub at_alpha: bool,
    /// Honest blocks that lost their height to a block of another slot
    /// (a late one), per 1,000 slots. Losing to a lower score of the same
    /// slot is not counted: that is the draw, withheld or not.
    pub honest_displaced_per_kslot: f64,
    /// The adversary's own blocks that did not make it, per 1,000 slots.
    pub own_lost_per_kslot: f64,
}

/// Simulates one point, its runs in parallel. The same `index` gives both
/// rules the same tickets, so v1 and v2 are compared on equal draws.
pub(crate) fn point(alpha: f64, delay: u64, rule: Rule, cfg: &Config, index: u64) -> Point {
    let outcomes: Vec<Outcome> = (0..cfg.runs as u64)
        .into_par_iter()
        .map(|run| {
            Sim::new(alpha, cfg.honest_stakers, rule, run_seed(cfg.seed, index, run)).run(cfg.slots, delay)
        })
        .collect();
    let shares: Vec<f64> = outcomes
        .iter()
        .map(|o| o.adversary_canonical as f64 / o.canonical.max(1) as f64)
        .collect();
    let slots = (cfg.slots * cfg.runs as u64).max(1) as f64 / 1000.0;
    let sum = |f: fn(&Outcome) -> u64| outcomes.iter().map(f).sum::<u64>() as f64;
    let share = Estimate::of(&shares);
    Point {
        alpha,
        delay,
        rule,
        share,
        at_alpha: share.contains(alpha),
        honest_displaced_per_kslot: sum(|o| o.honest_displaced) / slots,
        own_lost_per_kslot: sum(|o| o.adversary_made - o.adversary_canonical) / slots,
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Outcome {
    canonical: u64,
    adversary_canonical: u64,
    adversary_made: u64,
    honest_displaced: u64,
}

#[derive(Clone, Debug)]
struct SimBlock {
    parent: usize,
    meta: BlockMeta,
    adversary: bool,
}

/// The development PoS rules, as a spec value (fork choice reads only the
/// consensus kind; the draw reads the parameters).
fn lab_spec() -> ChainSpec {
    ChainSpec {
        chain_id: "klero-lab-withhold".to_owned(),
        genesis_time_ms: 0,
        ledger: LedgerSection::DEV,
        consensus: Consensus::Pos(PosParams::dev(1_000)),
        accounts: Vec::new(),
    }
}

struct Sim {
    spec: ChainSpec,
    params: PosParams,
    rule: Rule,
    stakes: Vec<u64>,
    blocks: Vec<SimBlock>,
    tip: usize,
    rng: Rng,
}

impl Sim {
    fn new(alpha: f64, honest: usize, rule: Rule, seed: u64) -> Sim {
        let spec = lab_spec();
        let Consensus::Pos(params) = spec.consensus.clone() else {
            unreachable!("lab_spec is PoS")
        };
        let adversary = ((alpha * TOTAL_STAKE as f64).round() as u64).clamp(1, TOTAL_STAKE - 1);
        let honest = honest.max(1) as u64;
        let mut stakes = vec![adversary];
        stakes.extend((0..honest).map(|_| (TOTAL_STAKE - adversary) / honest));
        let genesis = genesis_meta(&spec);
        Sim {
            spec,
            params,
            rule,
            stakes,
            blocks: vec![SimBlock {
                parent: 0,
                meta: genesis,
                adversary: false,
            }],
            tip: 0,
            rng: Rng::new(seed),
        }
    }

    fn total(&self) -> u64 {
        self.stakes.iter().sum()
    }

    /// Staker `i`'s eligible score in `slot` on `parent`, if any.
    fn ticket(&mut self, i: usize, slot: u64, parent: usize) -> Option<Score> {
        let mut output = [0u8; 64];
        self.rng.fill(&mut output);
        let score = draw::score(&output, self.stakes[i]);
        let step = pos::failover_step(&self.params, slot, self.blocks[parent].meta.slot);
        draw::is_eligible(&score, self.total(), self.params.leader_c_milli, step).then_some(score)
    }

    fn block(&mut self, parent: usize, slot: u64, score: Score, adversary: bool) -> usize {
        let meta = BlockMeta {
            height: self.blocks[parent].meta.height + 1,
            cumulative_work: [0; 32],
            slot,
            neg_ln: score.neg_ln(),
            stake: score.stake(),
            epoch: self.blocks[parent].meta.epoch,
        };
        self.blocks.push(SimBlock {
            parent,
            meta,
            adversary,
        });
        self.blocks.len() - 1
    }

    /// Every honest node hears `b`.
    fn publish(&mut self, b: usize) {
        let switch = match self.rule {
            Rule::V2 => prefer(&self.spec, &self.blocks[self.tip].meta, &self.blocks[b].meta),
            Rule::V1 => prefer_v1(&self.blocks, self.tip, b),
        };
        if switch {
            self.tip = b;
        }
    }

    fn run(mut self, slots: u64, delay: u64) -> Outcome {
        // The withheld block and the slot at whose end it is published.
        let mut held: Option<(usize, u64)> = None;
        for slot in 1..=slots {
            let parent = self.tip;
            let mine = if held.is_none() {
                self.ticket(0, slot, parent)
            } else {
                None
            };
            let mut best: Option<Score> = None;
            for i in 1..self.stakes.len() {
                if let Some(score) = self.ticket(i, slot, parent)
                    && best.is_none_or(|b| score < b)
                {
                    best = Some(score);
                }
            }
            let rival = best.is_some();
            if let Some(score) = best {
                let b = self.block(parent, slot, score, false);
                self.publish(b);
            }
            if let Some(score) = mine {
                let a = self.block(parent, slot, score, true);
                let release = if rival || delay == 0 { slot } else { slot + delay };
                held = Some((a, release));
            }
            if let Some((a, release)) = held
                && release == slot
            {
                self.publish(a);
                held = None;
            }
        }
        self.count(slots)
    }

    fn count(&self, slots: u64) -> Outcome {
        let counted = slots.saturating_sub(TAIL_SLOTS);
        let mut out = Outcome::default();
        // The canonical block's slot at each height.
        let mut slot_at = vec![0; self.blocks[self.tip].meta.height as usize + 1];
        let mut b = self.tip;
        while b != 0 {
            let meta = &self.blocks[b].meta;
            slot_at[meta.height as usize] = meta.slot;
            if meta.slot <= counted {
                out.canonical += 1;
                out.adversary_canonical += u64::from(self.blocks[b].adversary);
            }
            b = self.blocks[b].parent;
        }
        // Blocks made count over the same slots, so the tail's are not losses.
        for x in self.blocks.iter().skip(1).filter(|x| x.meta.slot <= counted) {
            if x.adversary {
                out.adversary_made += 1;
            } else if slot_at.get(x.meta.height as usize) != Some(&x.meta.slot) {
                out.honest_displaced += 1;
            }
        }
        out
    }
}

/// klero v1's PoS fork choice, for this experiment only: the longer chain;
/// at equal length the branch whose first block after the fork point has
/// the earlier slot, then the lower score.
fn prefer_v1(blocks: &[SimBlock], current: usize, candidate: usize) -> bool {
    let (cur, cand) = (&blocks[current].meta, &blocks[candidate].meta);
    if cand.height != cur.height {
        return cand.height > cur.height;
    }
    let (mut a, mut b) = (current, candidate);
    while blocks[a].parent != blocks[b].parent {
        a = blocks[a].parent;
        b = blocks[b].parent;
    }
    if a == b {
        return false;
    }
    let (first_cur, first_cand) = (&blocks[a].meta, &blocks[b].meta);
    (first_cand.slot, first_cand.score()) < (first_cur.slot, first_cur.score())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config {
            honest_stakers: 3,
            slots: 3_000,
            runs: 6,
            seed: 11,
        }
    }

    #[test]
    fn the_v1_rule_lets_a_late_block_displace_an_honest_one() {
        let v1 = point(0.3, 1, Rule::V1, &cfg(), 0);
        let v2 = point(0.3, 1, Rule::V2, &cfg(), 0);
        assert!(v1.share.mean > v2.share.mean, "{v1:?} {v2:?}");
        assert!(v1.honest_displaced_per_kslot > 10.0, "{v1:?}");
        assert!(v2.honest_displaced_per_kslot < 1.0, "{v2:?}");
    }

    #[test]
    fn v1_rule_compares_the_first_blocks_after_the_fork() {
        let meta = |height, slot| BlockMeta {
            height,
            cumulative_work: [0; 32],
            slot,
            neg_ln: 1,
            stake: 1,
            epoch: klero_chain::epoch::EpochInfo::default(),
        };
        let node = |parent, height, slot| SimBlock {
            parent,
            meta: meta(height, slot),
            adversary: false,
        };
        // 0 ← 1 (slot 1) ← 2 (slot 5)   and   0 ← 3 (slot 2) ← 4 (slot 3)
        let blocks = vec![
            node(0, 0, 0),
            node(0, 1, 1),
            node(1, 2, 5),
            node(0, 1, 2),
            node(3, 2, 3),
        ];
        assert!(
            prefer_v1(&blocks, 4, 2),
            "the branch whose first block is earlier wins"
        );
        assert!(!prefer_v1(&blocks, 2, 4));
        assert!(!prefer_v1(&blocks, 2, 2));
    }
}
