//! PoW selfish mining: Eyal and Sirer's strategy SM1 ("Majority is not
//! enough", FC 2014) against klero's fork choice and difficulty.
//!
//! A pool of hashrate share `alpha` keeps the blocks it finds private and
//! publishes them as SM1 says, with `lead` = the height of its private tip
//! minus the highest published height, looked at when an honest block
//! arrives:
//!
//! - behind: it adopts the public chain (its own node's `prefer`);
//! - lead 0 (it was one ahead): it publishes its block, a 1-1 race;
//! - lead 1 (it was two ahead): it publishes everything and wins;
//! - lead ≥ 2: it publishes its blocks up to the public height.
//!
//! In a race, a block the pool finds on its own branch is published at once.
//!
//! Honest miners (`honest_miners` of equal hashrate) mine on their own tip
//! and move to a block only if `klero_chain::fork_choice::prefer` says so,
//! with `BlockMeta`s whose cumulative work is the chain's: each block's
//! target is `validate::required_target` (ASERT) of its parent's header, and
//! a block's work `U256::work(target)`. Time is simulated: a miner's next
//! solution is exponential with rate `share × target / initial_target /
//! block_ms`, exactly what hashing at a fixed target gives, so ASERT sees
//! the block times it would see.
//!
//! **Propagation, and where γ comes from.** Honest blocks reach everyone at
//! once (no natural forks, as in the paper). The pool is connected to every
//! miner and hears each honest block first; when it answers with a block of
//! its own, each honest miner other than the finder receives the pool's
//! block first with probability `gamma`, independently (the pool's relay
//! advantage: 0 = the honest block always arrives first, 1 = the pool
//! always outruns it). At equal work `prefer` keeps the block seen first, so
//! the honest hashrate on the pool's block in a race is the share of miners
//! that heard it first: `gamma × (n − 1)/n` on average, since the finder of
//! the honest block never does. That measured value is reported
//! (`gamma_measured`) and the closed form is evaluated at it.

use klero_chain::fork_choice::prefer;
use klero_chain::spec::{Consensus, LedgerSection, PowParams};
use klero_chain::types::{PowSeal, Seal};
use klero_chain::u256::U256;
use klero_chain::validate::{BlockMeta, genesis_meta, required_target};
use klero_chain::{Address, ChainSpec, Hash, Header};
use rayon::prelude::*;
use serde::Serialize;

use super::{Estimate, run_seed};
use crate::lab::rng::Rng;

/// The simulated chain's target block time.
const BLOCK_MS: u64 = 1_000;
/// The development spec's ASERT half-life (`PowParams::dev`).
pub(crate) const DEV_HALF_LIFE: u64 = 32;
/// Blocks at the tip left out of the count: the race there is not over.
const TAIL: u64 = 64;

/// Eyal and Sirer's closed form of the pool's relative revenue (its share
/// of the main chain's blocks), RESEARCH.md section 7.
pub(crate) fn closed_form(alpha: f64, gamma: f64) -> f64 {
    let a = alpha;
    let num = a * (1.0 - a).powi(2) * (4.0 * a + gamma * (1.0 - 2.0 * a)) - a.powi(3);
    let den = 1.0 - a * (1.0 + (2.0 - a) * a);
    num / den
}

/// The share above which selfish mining pays: `(1 − γ)/(3 − 2γ)`.
pub(crate) fn threshold(gamma: f64) -> f64 {
    (1.0 - gamma) / (3.0 - 2.0 * gamma)
}

/// How an experiment runs.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct Config {
    /// ASERT's half-life in blocks: [`DEV_HALF_LIFE`] is klero's
    /// development rule; a very long one holds the difficulty constant, as
    /// the closed form assumes.
    pub half_life_blocks: u64,
    /// Honest miners, of equal hashrate.
    pub honest_miners: usize,
    /// Blocks found (by anyone) per run.
    pub blocks: u64,
    /// Independent runs per point.
    pub runs: usize,
    /// Base seed.
    pub seed: u64,
}

/// One point of the curve.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Point {
    /// The pool's hashrate share.
    pub alpha: f64,
    /// The relay advantage asked for.
    pub gamma: f64,
    /// The honest hashrate share that mined on the pool's block in races.
    pub gamma_measured: f64,
    /// The pool's share of canonical blocks.
    pub share: Estimate,
    /// The closed form at `alpha` and `gamma_measured`.
    pub closed_form: f64,
    /// Whether the closed form lies in the share's interval.
    pub agrees: bool,
    /// `(1 − γ)/(3 − 2γ)` at `gamma_measured`.
    pub threshold: f64,
    /// Whether the pool earns more than its hashrate share.
    pub profitable: bool,
    /// Races (1-1 ties the pool started) per run.
    pub races_per_run: f64,
}

/// Simulates one (alpha, gamma) point, its runs in parallel.
pub(crate) fn point(alpha: f64, gamma: f64, cfg: &Config, index: u64) -> Point {
    let outcomes: Vec<RunOutcome> = (0..cfg.runs as u64)
        .into_par_iter()
        .map(|run| Sim::new(alpha, gamma, cfg, run_seed(cfg.seed, index, run)).run(cfg.blocks))
        .collect();
    let shares: Vec<f64> = outcomes.iter().map(RunOutcome::share).collect();
    let races: u64 = outcomes.iter().map(|o| o.races).sum();
    let gamma_measured = if races == 0 {
        gamma
    } else {
        outcomes.iter().map(|o| o.gamma_sum).sum::<f64>() / races as f64
    };
    let share = Estimate::of(&shares);
    let closed = closed_form(alpha, gamma_measured);
    Point {
        alpha,
        gamma,
        gamma_measured,
        share,
        closed_form: closed,
        agrees: share.contains(closed),
        threshold: threshold(gamma_measured),
        profitable: share.low > alpha,
        races_per_run: races as f64 / cfg.runs.max(1) as f64,
    }
}

/// What one run counted.
#[derive(Clone, Copy, Debug, Default)]
struct RunOutcome {
    pool_blocks: u64,
    canonical: u64,
    races: u64,
    /// Σ over races of the honest share on the pool's block.
    gamma_sum: f64,
}

impl RunOutcome {
    fn share(&self) -> f64 {
        self.pool_blocks as f64 / self.canonical.max(1) as f64
    }
}

#[derive(Clone, Debug)]
struct SimBlock {
    parent: usize,
    header: Header,
    meta: BlockMeta,
    /// The target of a child of this block (ASERT of this header).
    child_target: U256,
    pool: bool,
    published: bool,
}

/// The chain the simulation runs: the development PoW rules with the
/// given ASERT half-life.
fn lab_spec(half_life_blocks: u64) -> ChainSpec {
    let mut initial = [0xffu8; 32];
    initial[..8].copy_from_slice(&(u64::MAX / 1_000_000).to_be_bytes());
    ChainSpec {
        chain_id: "klero-lab-selfish".to_owned(),
        genesis_time_ms: 0,
        ledger: LedgerSection::DEV,
        consensus: Consensus::Pow(PowParams {
            half_life_blocks,
            ..PowParams::dev(BLOCK_MS, initial)
        }),
        accounts: Vec::new(),
    }
}

/// A 256-bit value as a float (for rates; never for a rule).
fn to_f64(v: &U256) -> f64 {
    v.to_be_bytes()
        .iter()
        .fold(0.0, |acc, b| acc * 256.0 + f64::from(*b))
}

struct Sim {
    spec: ChainSpec,
    alpha: f64,
    gamma: f64,
    blocks: Vec<SimBlock>,
    honest_tip: Vec<usize>,
    pool_tip: usize,
    public_height: u64,
    race: bool,
    now_ms: f64,
    initial_target: f64,
    rng: Rng,
    outcome: RunOutcome,
}

impl Sim {
    fn new(alpha: f64, gamma: f64, cfg: &Config, seed: u64) -> Sim {
        let spec = lab_spec(cfg.half_life_blocks);
        let Consensus::Pow(params) = &spec.consensus else {
            unreachable!("lab_spec is PoW")
        };
        let initial_target = U256::from_be_bytes(params.initial_target);
        let genesis = Header {
            height: 0,
            parent: Hash::ZERO,
            timestamp_ms: spec.genesis_time_ms,
            tx_root: Hash::ZERO,
            state_root: Hash::ZERO,
            proposer: Address([0; 32]),
            seal: Seal::Pow(PowSeal {
                target: params.initial_target,
                nonce: 0,
            }),
        };
        let child_target = required_target(&spec, params, &genesis);
        Sim {
            alpha,
            gamma,
            blocks: vec![SimBlock {
                parent: 0,
                header: genesis,
                meta: genesis_meta(&spec),
                child_target,
                pool: false,
                published: true,
            }],
            honest_tip: vec![0; cfg.honest_miners.max(1)],
            pool_tip: 0,
            public_height: 0,
            race: false,
            now_ms: 0.0,
            initial_target: to_f64(&initial_target),
            rng: Rng::new(seed),
            outcome: RunOutcome::default(),
            spec,
        }
    }

    fn height(&self, b: usize) -> u64 {
        self.blocks[b].meta.height
    }

    /// Rate of solutions on `tip` for a hashrate share `share`, per ms.
    fn rate(&self, tip: usize, share: f64) -> f64 {
        share * to_f64(&self.blocks[tip].child_target) / self.initial_target / BLOCK_MS as f64
    }

    /// A new block on `parent`, found now.
    fn child(&mut self, parent: usize, pool: bool) -> usize {
        let Consensus::Pow(params) = &self.spec.consensus else {
            unreachable!("lab_spec is PoW")
        };
        let p = &self.blocks[parent];
        let target = p.child_target;
        let timestamp_ms = (self.now_ms as u64).max(p.header.timestamp_ms + 1);
        let header = Header {
            height: p.header.height + 1,
            parent: Hash::ZERO,
            timestamp_ms,
            tx_root: Hash::ZERO,
            state_root: Hash::ZERO,
            proposer: Address([u8::from(pool); 32]),
            seal: Seal::Pow(PowSeal {
                target: target.to_be_bytes(),
                nonce: 0,
            }),
        };
        let work = U256::from_be_bytes(p.meta.cumulative_work).saturating_add(&U256::work(&target));
        let meta = BlockMeta {
            height: header.height,
            cumulative_work: work.to_be_bytes(),
            slot: 0,
            neg_ln: 0,
            stake: 0,
            epoch: p.meta.epoch,
        };
        let child_target = required_target(&self.spec, params, &header);
        self.blocks.push(SimBlock {
            parent,
            header,
            meta,
            child_target,
            pool,
            published: !pool,
        });
        self.blocks.len() - 1
    }

    fn prefers(&self, current: usize, candidate: usize) -> bool {
        prefer(
            &self.spec,
            &self.blocks[current].meta,
            &self.blocks[candidate].meta,
        )
    }

    fn run(mut self, found: u64) -> RunOutcome {
        let n = self.honest_tip.len();
        let honest_share = (1.0 - self.alpha) / n as f64;
        let mut groups: Vec<(usize, usize)> = Vec::new();
        for _ in 0..found {
            groups.clear();
            for tip in &self.honest_tip {
                match groups.iter_mut().find(|(t, _)| t == tip) {
                    Some((_, count)) => *count += 1,
                    None => groups.push((*tip, 1)),
                }
            }
            let pool_rate = self.rate(self.pool_tip, self.alpha);
            let rates: Vec<f64> = groups
                .iter()
                .map(|(tip, count)| self.rate(*tip, honest_share * *count as f64))
                .collect();
            let total = pool_rate + rates.iter().sum::<f64>();
            self.now_ms += self.rng.exp(1.0 / total);
            let mut pick = self.rng.unit() * total;
            if pick < pool_rate {
                self.pool_found();
                continue;
            }
            pick -= pool_rate;
            let g = rates
                .iter()
                .position(|r| {
                    let hit = pick < *r;
                    pick -= r;
                    hit
                })
                .unwrap_or(rates.len() - 1);
            let (tip, count) = groups[g];
            let nth = self.rng.below(count as u64) as usize;
            let finder = (0..n)
                .filter(|i| self.honest_tip[*i] == tip)
                .nth(nth)
                .unwrap_or(0);
            self.honest_found(tip, finder);
        }
        self.count();
        self.outcome
    }

    fn pool_found(&mut self) {
        let block = self.child(self.pool_tip, true);
        self.pool_tip = block;
        if std::mem::take(&mut self.race) {
            // SM1 in a race: publish at once, the pool's branch is now longer.
            let released = self.release(self.height(block));
            self.deliver(None, &released, None);
        }
    }

    fn honest_found(&mut self, tip: usize, finder: usize) {
        let block = self.child(tip, false);
        self.public_height = self.public_height.max(self.height(block));
        self.race = false;
        let private = self.height(self.pool_tip);
        let released = if private < self.public_height {
            if self.prefers(self.pool_tip, block) {
                self.pool_tip = block;
            }
            Vec::new()
        } else {
            match private - self.public_height {
                0 => {
                    let released = self.release(private);
                    self.race = !released.is_empty();
                    released
                }
                1 => self.release(private),
                _ => self.release(self.public_height),
            }
        };
        self.deliver(Some(block), &released, Some(finder));
        if self.race {
            let on_pool = self.honest_tip.iter().filter(|t| **t == self.pool_tip).count();
            self.outcome.races += 1;
            self.outcome.gamma_sum += on_pool as f64 / self.honest_tip.len() as f64;
        }
    }

    /// Publishes the pool's unpublished blocks up to `height`, oldest first.
    fn release(&mut self, height: u64) -> Vec<usize> {
        let mut out = Vec::new();
        let mut b = self.pool_tip;
        while !self.blocks[b].published {
            if self.height(b) <= height {
                out.push(b);
            }
            b = self.blocks[b].parent;
        }
        out.reverse();
        for b in &out {
            self.blocks[*b].published = true;
            self.public_height = self.public_height.max(self.height(*b));
        }
        out
    }

    /// Every honest miner hears `honest` (if any) and the pool's `released`
    /// blocks: the pool's first with probability gamma, never for the finder.
    fn deliver(&mut self, honest: Option<usize>, released: &[usize], finder: Option<usize>) {
        for i in 0..self.honest_tip.len() {
            let pool_first = !released.is_empty() && finder != Some(i) && self.rng.chance(self.gamma);
            let hear = |sim: &mut Sim, b: usize| {
                if sim.prefers(sim.honest_tip[i], b) {
                    sim.honest_tip[i] = b;
                }
            };
            if !pool_first && let Some(h) = honest {
                hear(self, h);
            }
            for b in released {
                hear(self, *b);
            }
            if pool_first && let Some(h) = honest {
                hear(self, h);
            }
        }
    }

    /// The canonical chain as the honest miners' fork choice sees it, minus
    /// its last [`TAIL`] blocks.
    fn count(&mut self) {
        let mut tip = self.honest_tip[0];
        for i in 1..self.honest_tip.len() {
            if self.prefers(tip, self.honest_tip[i]) {
                tip = self.honest_tip[i];
            }
        }
        let limit = self.height(tip).saturating_sub(TAIL);
        let mut b = tip;
        while b != 0 {
            if self.height(b) <= limit {
                self.outcome.canonical += 1;
                self.outcome.pool_blocks += u64::from(self.blocks[b].pool);
            }
            b = self.blocks[b].parent;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_form_matches_the_paper() {
        // A pool that never races (γ = 0) breaks even at 1/3.
        assert!((closed_form(1.0 / 3.0, 0.0) - 1.0 / 3.0).abs() < 1e-12);
        // At γ = 1/2 the threshold is 1/4.
        assert!((closed_form(0.25, 0.5) - 0.25).abs() < 1e-12);
        assert!((threshold(0.5) - 0.25).abs() < 1e-12);
        assert_eq!(threshold(1.0), 0.0);
        assert!(closed_form(0.1, 0.0) < 0.1);
    }

    #[test]
    fn a_pool_without_races_loses_below_the_threshold() {
        let cfg = Config {
            half_life_blocks: DEV_HALF_LIFE,
            honest_miners: 20,
            blocks: 4_000,
            runs: 4,
            seed: 3,
        };
        let p = point(0.2, 0.0, &cfg, 0);
        assert!(p.share.mean < 0.2, "{p:?}");
        assert!(p.gamma_measured < 1e-9);
    }
}
