//! What a run measures, and the summary over many runs.
//!
//! The [`Recorder`] sees every message sent and every change in a node's
//! [`Protocol::leader`](super::sim::Protocol::leader) answer, and derives:
//!
//! - **agreement**: every live node names the same `(leader, term)` and that
//!   leader is live (so it names itself too);
//! - **split brain**: two or more live nodes act as leader at the same time.
//!   For the lotteries only two leaders *of the same round* count: the author
//!   of block `h` still holding its block while block `h + 1` spreads is a
//!   hand-over, not a split;
//! - **safety violations** (quorum protocols only): two different nodes that
//!   ever acted as leader of the same term, ballot, epoch or view.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::sim::{NodeId, Time};

/// Which metrics an algorithm has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Bully, Ring, Next-in-line: no terms, no quorums.
    #[default]
    Classic,
    /// Raft, Paxos, Zab, VR: one leader per term is a safety property.
    Quorum,
    /// PoW, PoS: one leader per round, forks and empty rounds.
    Lottery,
}

/// A node's answer to "who leads, in which term".
type Belief = Option<(NodeId, u64)>;

/// What one run measured.
#[derive(Clone, Debug, Default)]
pub(crate) struct RunMetrics {
    /// The algorithm's kind.
    pub kind: Kind,
    /// Messages sent (including lost ones) by type.
    pub messages_by_type: BTreeMap<&'static str, u64>,
    /// Non-heartbeat messages sent from the trigger on.
    pub election_messages: u64,
    /// How many times the live nodes came to agree on a new (leader, term).
    pub agreements: u64,
    /// Those agreements reached from the trigger on.
    pub measured_agreements: u64,
    /// From the trigger (start, or the leader's crash) to the first agreement.
    pub time_to_agreement: Option<Time>,
    /// Elections, view changes or failovers started, summed over nodes.
    pub elections_started: u64,
    /// Intervals with split brain.
    pub split_brain_episodes: u64,
    /// Their total length.
    pub split_brain_time: Time,
    /// Distinct (term, node) pairs where a second node led a term.
    pub safety_violations: u64,
    /// Agreements on a different leader than the previous agreement.
    pub leader_changes: u64,
    /// The (leader, term) all live nodes agreed on when the run ended.
    pub final_agreement: Option<(NodeId, u64)>,
    /// The live nodes acting as leader when the run ended, with their terms.
    pub final_leaders: Vec<(NodeId, u64)>,
    /// Each node's network side when the run ended (all 0: no partition).
    pub final_sides: Vec<u16>,
    /// Lottery rounds seen (PoS slots opened, or heights with a block).
    pub rounds: u64,
    /// Rounds without any block (PoS only; `None` where rounds are not clocked).
    pub empty_rounds: Option<u64>,
    /// Rounds with two or more blocks.
    pub fork_rounds: u64,
    /// The fingerprint of the event trace.
    pub trace_hash: u64,
}

impl RunMetrics {
    /// Non-heartbeat messages per agreed leadership, both counted from the
    /// trigger on: with `--crash-leader`, the cost of the re-election alone.
    pub(crate) fn messages_per_election(&self) -> Option<f64> {
        (self.measured_agreements > 0)
            .then(|| self.election_messages as f64 / self.measured_agreements as f64)
    }
}

/// Watches one run.
#[derive(Debug)]
pub(crate) struct Recorder {
    trigger: Time,
    /// Each node's belief; `None` while it is crashed.
    views: Vec<Option<Belief>>,
    /// How many live nodes hold each belief.
    beliefs: BTreeMap<Belief, u32>,
    /// Live nodes acting as leader, per term.
    acting: BTreeMap<u64, u32>,
    acting_total: u32,
    /// Terms with two or more acting leaders right now.
    crowded_terms: u32,
    /// The first node seen leading each term (quorum protocols).
    owners: BTreeMap<u64, NodeId>,
    violators: BTreeSet<(u64, NodeId)>,
    agreed: Belief,
    last_agreed: Belief,
    split_since: Option<Time>,
    /// Blocks per lottery round.
    rounds: BTreeMap<u64, u32>,
    clocked_rounds: bool,
    m: RunMetrics,
}

impl Recorder {
    /// A recorder for `n` nodes, all live and following nobody.
    pub(crate) fn new(kind: Kind, n: usize, trigger: Time) -> Recorder {
        Recorder {
            trigger,
            views: vec![Some(None); n],
            beliefs: BTreeMap::from([(None, n as u32)]),
            acting: BTreeMap::new(),
            acting_total: 0,
            crowded_terms: 0,
            owners: BTreeMap::new(),
            violators: BTreeSet::new(),
            agreed: None,
            last_agreed: None,
            split_since: None,
            rounds: BTreeMap::new(),
            clocked_rounds: false,
            m: RunMetrics {
                kind,
                ..RunMetrics::default()
            },
        }
    }

    /// A message was sent at `now`.
    pub(crate) fn message_sent(&mut self, kind: &'static str, heartbeat: bool, now: Time) {
        *self.m.messages_by_type.entry(kind).or_default() += 1;
        if !heartbeat && now >= self.trigger {
            self.m.election_messages += 1;
        }
    }

    /// A node started an election.
    pub(crate) fn election_started(&mut self) {
        self.m.elections_started += 1;
    }

    /// A lottery round was opened.
    pub(crate) fn round_opened(&mut self, round: u64) {
        self.clocked_rounds = true;
        self.rounds.entry(round).or_default();
    }

    /// A block was produced for a lottery round.
    pub(crate) fn block_produced(&mut self, round: u64) {
        *self.rounds.entry(round).or_default() += 1;
    }

    /// The live leader that most live nodes follow (ties: the higher id).
    pub(crate) fn followed_leader(&self) -> Option<NodeId> {
        self.beliefs
            .iter()
            .filter_map(|(b, count)| b.map(|(l, _)| (*count, l)))
            .filter(|(_, l)| self.views[*l as usize].is_some())
            .max()
            .map(|(_, l)| l)
    }

    /// Node `id` now holds `view` (`None`: it crashed).
    pub(crate) fn observe(&mut self, id: NodeId, view: Option<Belief>, now: Time) {
        let old = std::mem::replace(&mut self.views[id as usize], view);
        if old == view {
            return;
        }
        if let Some(belief) = old {
            if let Some(count) = self.beliefs.get_mut(&belief) {
                *count -= 1;
                if *count == 0 {
                    self.beliefs.remove(&belief);
                }
            }
            if let Some((leader, term)) = belief
                && leader == id
            {
                self.stop_acting(term);
            }
        }
        if let Some(belief) = view {
            *self.beliefs.entry(belief).or_default() += 1;
            if let Some((leader, term)) = belief
                && leader == id
            {
                self.start_acting(id, term);
            }
        }
        self.check(now);
    }

    fn start_acting(&mut self, id: NodeId, term: u64) {
        let count = self.acting.entry(term).or_default();
        *count += 1;
        if *count == 2 {
            self.crowded_terms += 1;
        }
        self.acting_total += 1;
        if self.m.kind == Kind::Quorum && *self.owners.entry(term).or_insert(id) != id {
            self.violators.insert((term, id));
        }
    }

    fn stop_acting(&mut self, term: u64) {
        if let Some(count) = self.acting.get_mut(&term) {
            *count -= 1;
            if *count == 1 {
                self.crowded_terms -= 1;
            }
            if *count == 0 {
                self.acting.remove(&term);
            }
        }
        self.acting_total -= 1;
    }

    /// Re-evaluates agreement and split brain at `now`.
    pub(crate) fn check(&mut self, now: Time) {
        let agreed = match self.beliefs.first_key_value() {
            Some((Some((leader, term)), _))
                if self.beliefs.len() == 1 && self.views[*leader as usize].is_some() =>
            {
                Some((*leader, *term))
            }
            _ => None,
        };
        if agreed != self.agreed {
            self.agreed = agreed;
            if agreed.is_some() && agreed != self.last_agreed {
                self.m.agreements += 1;
                if now >= self.trigger {
                    self.m.measured_agreements += 1;
                }
                if self
                    .last_agreed
                    .is_some_and(|(l, _)| Some(l) != agreed.map(|(a, _)| a))
                {
                    self.m.leader_changes += 1;
                }
                self.last_agreed = agreed;
            }
        }
        if agreed.is_some() && now >= self.trigger && self.m.time_to_agreement.is_none() {
            self.m.time_to_agreement = Some(now - self.trigger);
        }
        let split = match self.m.kind {
            Kind::Lottery => self.crowded_terms > 0,
            Kind::Classic | Kind::Quorum => self.acting_total >= 2,
        };
        match (split, self.split_since) {
            (true, None) => {
                self.split_since = Some(now);
                self.m.split_brain_episodes += 1;
            }
            (false, Some(since)) => {
                self.m.split_brain_time += now - since;
                self.split_since = None;
            }
            _ => {}
        }
    }

    /// Closes the run at `horizon`, with the network split into `sides`.
    pub(crate) fn finish(mut self, horizon: Time, trace_hash: u64, sides: Vec<u16>) -> RunMetrics {
        if let Some(since) = self.split_since {
            self.m.split_brain_time += horizon - since;
        }
        self.m.safety_violations = self.violators.len() as u64;
        self.m.rounds = self.rounds.len() as u64;
        self.m.empty_rounds = self
            .clocked_rounds
            .then(|| self.rounds.values().filter(|b| **b == 0).count() as u64);
        self.m.fork_rounds = self.rounds.values().filter(|b| **b >= 2).count() as u64;
        self.m.final_agreement = self.agreed;
        self.m.final_leaders = (0..)
            .zip(&self.views)
            .filter_map(|(id, view)| match view {
                Some(Some((leader, term))) if *leader == id => Some((id, *term)),
                _ => None,
            })
            .collect();
        self.m.final_sides = sides;
        self.m.trace_hash = trace_hash;
        self.m
    }
}

/// Median and 95th percentile (nearest rank).
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct Spread {
    /// The median.
    pub median: f64,
    /// The 95th percentile.
    pub p95: f64,
}

impl Spread {
    /// `None` for no samples.
    pub(crate) fn of(mut xs: Vec<f64>) -> Option<Spread> {
        if xs.is_empty() {
            return None;
        }
        xs.sort_by(f64::total_cmp);
        let rank = |q: f64| xs[((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len()) - 1];
        Some(Spread {
            median: rank(0.5),
            p95: rank(0.95),
        })
    }
}

/// One algorithm over many runs: the row of the report.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Summary {
    /// The algorithm's name.
    pub algorithm: &'static str,
    /// Nodes per run.
    pub nodes: usize,
    /// Runs.
    pub runs: usize,
    /// Non-heartbeat messages per agreed leadership, over runs.
    pub messages_per_election: Option<Spread>,
    /// Milliseconds from the trigger to agreement, over runs that agreed.
    pub time_to_agreement_ms: Option<Spread>,
    /// Runs that reached agreement after the trigger.
    pub runs_agreed: usize,
    /// Mean elections started per run.
    pub elections_started: f64,
    /// Mean split-brain episodes per run.
    pub split_brain_episodes: f64,
    /// Mean split-brain time per run, in milliseconds.
    pub split_brain_ms: f64,
    /// Total over runs; `None` for algorithms without terms.
    pub safety_violations: Option<u64>,
    /// Mean changes of the agreed leader per run.
    pub leader_changes: f64,
    /// Share of lottery rounds without a block (PoS).
    pub empty_round_rate: Option<f64>,
    /// Share of lottery rounds with two or more blocks.
    pub fork_rate: Option<f64>,
    /// Mean messages per run by type.
    pub messages_by_type: BTreeMap<&'static str, f64>,
    /// XOR of the runs' trace hashes: equal output, equal traces.
    pub trace_hash: String,
}

impl Summary {
    /// Summarises `runs` of `algorithm`.
    pub(crate) fn of(algorithm: &'static str, nodes: usize, runs: &[RunMetrics]) -> Summary {
        let kind = runs.first().map_or(Kind::Classic, |r| r.kind);
        let count = runs.len().max(1) as f64;
        let mean = |f: &dyn Fn(&RunMetrics) -> f64| runs.iter().map(f).sum::<f64>() / count;
        let ms = |t: Time| t as f64 / 1_000.0;
        let mut messages_by_type = BTreeMap::new();
        for (ty, sent) in runs.iter().flat_map(|r| &r.messages_by_type) {
            *messages_by_type.entry(*ty).or_insert(0.0) += *sent as f64 / count;
        }
        let rounds: u64 = runs.iter().map(|r| r.rounds).sum();
        let rate = |x: u64| (rounds > 0).then(|| x as f64 / rounds as f64);
        let lottery = kind == Kind::Lottery;
        Summary {
            algorithm,
            nodes,
            runs: runs.len(),
            messages_per_election: Spread::of(
                runs.iter()
                    .filter_map(RunMetrics::messages_per_election)
                    .collect(),
            ),
            time_to_agreement_ms: Spread::of(
                runs.iter().filter_map(|r| r.time_to_agreement.map(ms)).collect(),
            ),
            runs_agreed: runs.iter().filter(|r| r.time_to_agreement.is_some()).count(),
            elections_started: mean(&|r| r.elections_started as f64),
            split_brain_episodes: mean(&|r| r.split_brain_episodes as f64),
            split_brain_ms: mean(&|r| ms(r.split_brain_time)),
            safety_violations: (kind == Kind::Quorum).then(|| runs.iter().map(|r| r.safety_violations).sum()),
            leader_changes: mean(&|r| r.leader_changes as f64),
            empty_round_rate: runs
                .iter()
                .map(|r| r.empty_rounds)
                .sum::<Option<u64>>()
                .and_then(rate)
                .filter(|_| lottery),
            fork_rate: rate(runs.iter().map(|r| r.fork_rounds).sum()).filter(|_| lottery),
            messages_by_type,
            trace_hash: format!("{:016x}", runs.iter().fold(0, |h, r| h ^ r.trace_hash)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_uses_nearest_rank() {
        let s = Spread::of((1..=20).map(f64::from).collect()).unwrap();
        assert_eq!((s.median, s.p95), (10.0, 19.0));
        assert!(Spread::of(Vec::new()).is_none());
    }

    #[test]
    fn agreement_split_brain_and_violations() {
        let mut r = Recorder::new(Kind::Quorum, 3, 0);
        r.observe(0, Some(Some((0, 1))), 10);
        r.observe(1, Some(Some((0, 1))), 11);
        assert_eq!(r.m.agreements, 0, "node 2 does not follow yet");
        r.observe(2, Some(Some((0, 1))), 12);
        assert_eq!((r.m.agreements, r.m.time_to_agreement), (1, Some(12)));
        // Node 1 also claims term 1: split brain and a violation.
        r.observe(1, Some(Some((1, 1))), 20);
        r.observe(1, Some(Some((0, 1))), 25);
        // The leader crashes: no agreement while its followers still name it.
        r.observe(0, None, 30);
        assert_eq!(r.followed_leader(), None);
        let m = r.finish(40, 0, vec![0; 3]);
        assert_eq!((m.split_brain_episodes, m.split_brain_time), (1, 5));
        assert_eq!(m.safety_violations, 1);
        assert_eq!(m.leader_changes, 0);
    }

    #[test]
    fn lottery_hand_over_is_not_split_brain() {
        let mut r = Recorder::new(Kind::Lottery, 2, 0);
        r.observe(0, Some(Some((0, 1))), 1);
        r.observe(1, Some(Some((1, 2))), 2);
        r.observe(0, Some(Some((0, 2))), 3);
        let m = r.finish(10, 0, vec![0; 2]);
        assert_eq!(m.split_brain_episodes, 1, "two leaders of round 2 only");
    }
}
