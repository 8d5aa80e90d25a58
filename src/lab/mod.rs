//! The election lab: classical leader elections and klero's two lotteries on
//! one simulated network, with the same faults, measured side by side.
//!
//! # Layout
//!
//! - [`rng`]: the seeded generator (xoshiro256**); [`sim`]: the
//!   discrete-event engine, the [`sim::Protocol`] trait every algorithm
//!   implements, the network and fault model.
//! - [`metrics`]: what a run records (agreement, split brain, safety,
//!   messages) and the summary over runs; [`report`]: table, JSON, SVG.
//! - [`monitor`]: the ping-based failure detector of the classic algorithms.
//! - One file per algorithm: [`bully`], [`ring`], [`next_in_line`], [`raft`],
//!   [`paxos`], [`zab`], [`vr`], and [`lottery`] for PoW and PoS.
//!
//! - [`attack`]: strategic participants (selfish mining, withholding,
//!   grinding, equivocation) against the chain's own rules.
//!
//! `docs/lab.md` describes the model and how to read the results;
//! `docs/fairness.md` the attack experiments.

pub(crate) mod attack;
pub(crate) mod bully;
pub(crate) mod lottery;
pub(crate) mod metrics;
pub(crate) mod monitor;
pub(crate) mod next_in_line;
pub(crate) mod paxos;
pub(crate) mod raft;
pub(crate) mod report;
pub(crate) mod ring;
pub(crate) mod sim;
pub(crate) mod vr;
pub(crate) mod zab;

/// The seeded generator lives at the crate root: the p2p link conditioner
/// draws from it too.
pub(crate) use crate::rng;

use std::fmt;
use std::str::FromStr;

use rayon::prelude::*;
use serde::Serialize;

use metrics::{RunMetrics, Summary};
use sim::{Fault, MS, NodeId, RunConfig, Time, Timing, simulate};

/// An algorithm the lab can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Algorithm {
    /// Garcia-Molina's Bully.
    Bully,
    /// The ring election.
    Ring,
    /// Next-in-line failover.
    NextInLine,
    /// Raft leader election with CheckQuorum.
    Raft,
    /// Raft leader election without CheckQuorum.
    RaftNoCheckQuorum,
    /// Multi-Paxos phase 1.
    Paxos,
    /// Zab's fast leader election and epoch establishment.
    Zab,
    /// Viewstamped Replication's view change.
    Vr,
    /// The proof-of-work lottery.
    Pow,
    /// The proof-of-stake lottery.
    Pos,
}

impl Algorithm {
    /// Every algorithm, in report order.
    pub(crate) const ALL: [Algorithm; 10] = [
        Algorithm::Bully,
        Algorithm::Ring,
        Algorithm::NextInLine,
        Algorithm::Raft,
        Algorithm::RaftNoCheckQuorum,
        Algorithm::Paxos,
        Algorithm::Zab,
        Algorithm::Vr,
        Algorithm::Pow,
        Algorithm::Pos,
    ];

    /// Its name on the command line and in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Algorithm::Bully => "bully",
            Algorithm::Ring => "ring",
            Algorithm::NextInLine => "next-in-line",
            Algorithm::Raft => "raft",
            Algorithm::RaftNoCheckQuorum => "raft-nocq",
            Algorithm::Paxos => "paxos",
            Algorithm::Zab => "zab",
            Algorithm::Vr => "vr",
            Algorithm::Pow => "pow",
            Algorithm::Pos => "pos",
        }
    }

    /// One run.
    pub(crate) fn simulate(self, cfg: &RunConfig) -> RunMetrics {
        match self {
            Algorithm::Bully => simulate::<bully::Bully>(cfg),
            Algorithm::Ring => simulate::<ring::Ring>(cfg),
            Algorithm::NextInLine => simulate::<next_in_line::NextInLine>(cfg),
            Algorithm::Raft => simulate::<raft::Raft<true>>(cfg),
            Algorithm::RaftNoCheckQuorum => simulate::<raft::Raft<false>>(cfg),
            Algorithm::Paxos => simulate::<paxos::Paxos>(cfg),
            Algorithm::Zab => simulate::<zab::Zab>(cfg),
            Algorithm::Vr => simulate::<vr::Vr>(cfg),
            Algorithm::Pow => simulate::<lottery::Pow>(cfg),
            Algorithm::Pos => simulate::<lottery::Pos>(cfg),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An algorithm name the lab does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown algorithm `{0}`")]
pub(crate) struct UnknownAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Algorithm, UnknownAlgorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| UnknownAlgorithm(s.to_owned()))
    }
}

/// The conditions of an experiment, shared by every algorithm in it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Scenario {
    /// Nodes per run.
    pub nodes: usize,
    /// The base seed; run `r` uses a seed derived from it and `r`.
    pub seed: u64,
    /// Mean one-way latency in milliseconds.
    pub latency_ms: f64,
    /// Per-message loss probability.
    pub loss: f64,
    /// Crash the followed leader once the first election has settled.
    pub crash_leader: bool,
    /// Isolate the leader in a minority from `.0` to `.1` milliseconds.
    pub partition_ms: Option<(u64, u64)>,
    /// Crash and recover the highest-id node three times.
    pub flap: bool,
}

/// Flapping: down for this many timeouts, then up for as many, three times.
const FLAP_TIMEOUTS: u64 = 10;
const FLAPS: usize = 3;

impl Scenario {
    /// The protocol clocks.
    pub(crate) fn timing(&self) -> Timing {
        Timing::from_latency((self.latency_ms * MS as f64).round() as Time)
    }

    /// Time allowed for an election to settle: 20 timeouts plus four ring
    /// laps, so even a Ring election of 1,000 nodes fits.
    pub(crate) fn settle(&self) -> Time {
        let timing = self.timing();
        20 * timing.timeout + 4 * self.nodes as Time * timing.latency
    }

    /// The configuration of run `run`: faults after the first settle period,
    /// one after another, each followed by another settle period.
    pub(crate) fn run_config(&self, run: u64) -> RunConfig {
        let timing = self.timing();
        let settle = self.settle();
        let mut t = settle;
        let mut faults = Vec::new();
        let mut trigger = 0;
        if self.crash_leader {
            faults.push((t, Fault::CrashLeader));
            trigger = t;
            t += settle;
        }
        if self.flap {
            let highest = self.nodes as NodeId - 1;
            let half = FLAP_TIMEOUTS * timing.timeout;
            for _ in 0..FLAPS {
                faults.push((t, Fault::Crash(highest)));
                faults.push((t + half, Fault::Recover(highest)));
                t += 2 * half;
            }
        }
        if let Some((at, heal)) = self.partition_ms {
            faults.push((at * MS, Fault::IsolateLeader));
            faults.push((heal * MS, Fault::Heal));
            t = t.max(heal * MS + settle);
        }
        let mut state = self.seed ^ run.wrapping_mul(0xd1b5_4a32_d192_ed03);
        RunConfig {
            n: self.nodes,
            latency: timing.latency,
            loss: self.loss,
            seed: rng::splitmix64(&mut state),
            initiator: None,
            faults,
            trigger,
            horizon: t,
        }
    }

    /// Runs `algorithm` `runs` times in parallel, calling `done` after each run.
    pub(crate) fn run(&self, algorithm: Algorithm, runs: usize, done: &(dyn Fn() + Sync)) -> Summary {
        let metrics: Vec<RunMetrics> = (0..runs as u64)
            .into_par_iter()
            .map(|run| {
                let m = algorithm.simulate(&self.run_config(run));
                done();
                m
            })
            .collect();
        Summary::of(algorithm.name(), self.nodes, &metrics)
    }
}

/// The network sizes of a sweep up to `max`: powers of two from 4, and `max`.
pub(crate) fn sweep_sizes(max: usize) -> Vec<usize> {
    let mut sizes: Vec<usize> = std::iter::successors(Some(4), |n| Some(n * 2))
        .take_while(|n| *n < max)
        .collect();
    sizes.push(max);
    sizes
}

#[cfg(test)]
mod tests;
