//! The lab's behavioural tests: every algorithm elects, re-elects and
//! replays; the quorum protocols stay safe under chaos; the algorithm-
//! specific claims of `docs/lab.md` hold.

use super::metrics::{Kind, RunMetrics, Summary};
use super::report::{self, Series};
use super::rng::Rng;
use super::sim::{Fault, MS, NodeId, RunConfig, Time, Timing};
use super::*;

fn scenario(nodes: usize) -> Scenario {
    Scenario {
        nodes,
        seed: 7,
        latency_ms: 10.0,
        loss: 0.0,
        crash_leader: false,
        partition_ms: None,
        flap: false,
    }
}

fn runs(s: &Scenario, algorithm: Algorithm, count: u64) -> Vec<RunMetrics> {
    (0..count).map(|r| algorithm.simulate(&s.run_config(r))).collect()
}

#[test]
fn every_algorithm_elects_one_leader_everyone_follows() {
    for algorithm in Algorithm::ALL {
        for m in runs(&scenario(7), algorithm, 3) {
            assert!(m.time_to_agreement.is_some(), "{algorithm}: no agreement");
            if m.kind == Kind::Lottery {
                assert!(m.agreements >= 1, "{algorithm}");
                continue;
            }
            assert_eq!(m.agreements, 1, "{algorithm}: exactly one leader");
            assert_eq!(m.leader_changes, 0, "{algorithm}");
            assert_eq!(m.split_brain_episodes, 0, "{algorithm}");
            assert!(m.final_agreement.is_some(), "{algorithm}: all agree at the end");
        }
    }
}

#[test]
fn every_algorithm_replaces_a_crashed_leader_in_bounded_time() {
    let s = Scenario {
        crash_leader: true,
        ..scenario(7)
    };
    let timing = s.timing();
    let bound = 10 * timing.timeout + 4 * s.nodes as Time * timing.latency;
    for algorithm in Algorithm::ALL {
        for m in runs(&s, algorithm, 3) {
            let t = m.time_to_agreement.expect("re-elected");
            assert!(t <= bound, "{algorithm}: {t} µs");
            if m.kind != Kind::Lottery {
                assert!(m.final_agreement.is_some(), "{algorithm}");
                assert!(m.agreements >= 2, "{algorithm}: a second leader");
            }
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let s = Scenario {
        loss: 0.05,
        crash_leader: true,
        ..scenario(6)
    };
    for algorithm in Algorithm::ALL {
        let a = algorithm.simulate(&s.run_config(0));
        let b = algorithm.simulate(&s.run_config(0));
        let c = algorithm.simulate(&s.run_config(1));
        assert_eq!(a.trace_hash, b.trace_hash, "{algorithm}");
        assert_eq!(a.messages_by_type, b.messages_by_type, "{algorithm}");
        assert_eq!(a.time_to_agreement, b.time_to_agreement, "{algorithm}");
        assert_ne!(a.trace_hash, c.trace_hash, "{algorithm}: seeds differ");
    }
}

#[test]
fn parallel_runs_are_reproducible() {
    let s = scenario(5);
    let first = s.run(Algorithm::Raft, 4, &|| {});
    let second = s.run(Algorithm::Raft, 4, &|| {});
    assert_eq!(first.trace_hash, second.trace_hash);
}

/// Random crashes, recoveries, two- and three-way partitions, heals and 5 %
/// loss.
fn chaos(seed: u64) -> RunConfig {
    let mut rng = Rng::new(seed);
    let n = 5 + rng.below(3) as usize;
    let timing = Timing::from_latency(10 * MS);
    let horizon = 60 * timing.timeout;
    let mut faults = Vec::new();
    let mut t = timing.timeout;
    while t < horizon - 10 * timing.timeout {
        let node = rng.below(n as u64) as NodeId;
        let fault = match rng.below(4) {
            0 => Fault::Crash(node),
            1 => Fault::Recover(node),
            2 => {
                let groups = 2 + rng.below(2);
                Fault::Split((0..n).map(|_| rng.below(groups) as u16).collect())
            }
            _ => Fault::Heal,
        };
        faults.push((t, fault));
        t += rng.range(timing.timeout / 2, 4 * timing.timeout);
    }
    RunConfig {
        n,
        latency: timing.latency,
        loss: 0.05,
        seed,
        initiator: None,
        faults,
        trigger: 0,
        horizon,
    }
}

#[test]
fn quorum_protocols_never_have_two_leaders_of_one_term_under_chaos() {
    let quorum = [
        Algorithm::Raft,
        Algorithm::RaftNoCheckQuorum,
        Algorithm::Paxos,
        Algorithm::Zab,
        Algorithm::Vr,
    ];
    for algorithm in quorum {
        let (mut elections, mut agreements) = (0, 0);
        for seed in 0..30 {
            let m = algorithm.simulate(&chaos(seed));
            assert_eq!(m.safety_violations, 0, "{algorithm}, seed {seed}");
            elections += m.elections_started;
            agreements += m.agreements;
        }
        // The chaos must actually force elections, and leaders must emerge.
        assert!(elections > 60, "{algorithm}: only {elections} elections");
        assert!(agreements > 30, "{algorithm}: only {agreements} agreements");
    }
}

#[test]
fn bully_elects_the_highest_live_id() {
    let n = 9;
    for m in runs(&scenario(n), Algorithm::Bully, 3) {
        assert_eq!(m.final_agreement, Some((n as NodeId - 1, 0)));
    }
    let crashed = Scenario {
        crash_leader: true,
        ..scenario(n)
    };
    for m in runs(&crashed, Algorithm::Bully, 3) {
        assert_eq!(m.final_agreement, Some((n as NodeId - 2, 0)));
    }
}

#[test]
fn bully_from_the_lowest_id_costs_n_squared_minus_one_messages() {
    for n in [3, 4, 7, 16, 33] {
        let cfg = RunConfig {
            initiator: Some(0),
            ..scenario(n).run_config(0)
        };
        let m = Algorithm::Bully.simulate(&cfg);
        let count = |t| m.messages_by_type.get(t).copied().unwrap_or(0);
        let n = n as u64;
        assert_eq!(count("ELECTION"), n * (n - 1) / 2, "n={n}");
        assert_eq!(
            count("OK") + count("COORDINATOR"),
            n * (n - 1) / 2 + (n - 1),
            "n={n}"
        );
        assert_eq!(m.election_messages, n * n - 1, "n={n}");
        assert_eq!(m.final_agreement, Some((n as NodeId - 1, 0)), "n={n}");
    }
}

#[test]
fn ring_with_a_crashed_node_elects_the_highest_live_id() {
    let n = 9;
    for (crashed, leader) in [(4, n - 1), (n - 1, n - 2)] {
        let mut cfg = scenario(n as usize).run_config(0);
        cfg.faults = vec![(0, Fault::Crash(crashed))];
        let m = Algorithm::Ring.simulate(&cfg);
        assert_eq!(m.final_agreement, Some((leader, 0)), "node {crashed} down");
    }
}

/// A run cut in two once the first leader has settled, with that leader in
/// the minority, and not healed before the end.
fn partitioned(algorithm: Algorithm, run: u64) -> RunMetrics {
    let s = scenario(7);
    let settle = s.settle();
    let cfg = RunConfig {
        faults: vec![(settle, Fault::IsolateLeader)],
        horizon: 2 * settle,
        ..s.run_config(run)
    };
    algorithm.simulate(&cfg)
}

#[test]
fn under_a_partition_bully_splits_and_the_quorum_protocols_do_not() {
    for run in 0..3 {
        let bully = partitioned(Algorithm::Bully, run);
        let sides: Vec<u16> = bully
            .final_leaders
            .iter()
            .map(|(l, _)| bully.final_sides[*l as usize])
            .collect();
        assert_eq!(
            sides.len(),
            2,
            "bully: one leader per side: {:?}",
            bully.final_leaders
        );
        assert_ne!(sides[0], sides[1], "bully: {:?}", bully.final_leaders);
        assert!(bully.split_brain_time > 0);

        for algorithm in [Algorithm::Raft, Algorithm::Zab, Algorithm::Vr, Algorithm::Paxos] {
            let m = partitioned(algorithm, run);
            assert_eq!(m.safety_violations, 0, "{algorithm}");
            // Side 1 is the minority the old leader was cut off in.
            assert!(m.final_sides.contains(&1), "{algorithm}: partitioned");
            let leaders: Vec<u16> = m
                .final_leaders
                .iter()
                .map(|(l, _)| m.final_sides[*l as usize])
                .collect();
            assert_eq!(
                leaders,
                [0],
                "{algorithm}: one leader, on the majority side: {:?}",
                m.final_leaders
            );
        }
    }
}

#[test]
fn next_in_line_fails_over_with_fewer_messages_than_bully() {
    for n in [8, 32] {
        let s = Scenario {
            crash_leader: true,
            ..scenario(n)
        };
        for run in 0..3 {
            let cost = |a: Algorithm| {
                let m = a.simulate(&s.run_config(run));
                assert!(m.time_to_agreement.is_some(), "{a}: re-elected");
                m.messages_per_election().expect("an election after the crash")
            };
            let (nil, bully) = (cost(Algorithm::NextInLine), cost(Algorithm::Bully));
            assert!(nil < bully, "n={n}: next-in-line {nil} vs bully {bully}");
        }
    }
}

#[test]
fn ring_messages_stay_within_the_ring_bound() {
    // All n nodes initiate at boot: n − 1 extinct first hops, one full lap
    // of ELECTION and one of COORDINATOR, every hop acknowledged.
    let n = 16;
    for m in runs(&scenario(n), Algorithm::Ring, 3) {
        let count = |t| m.messages_by_type.get(t).copied().unwrap_or(0);
        let hops = count("ELECTION") + count("COORDINATOR");
        assert!(hops <= 3 * n as u64, "{hops} hops");
        assert_eq!(count("ACK"), hops);
        assert_eq!(m.final_agreement, Some((n as NodeId - 1, 0)));
    }
}

#[test]
fn raft_check_quorum_ends_a_minority_leaders_split_brain() {
    // The partition lasts 4 s, from after the first election has settled.
    let s = Scenario {
        partition_ms: Some((5_000, 9_000)),
        ..scenario(7)
    };
    assert!(s.settle() < 5_000 * MS);
    let timeout = s.timing().timeout;
    let with = runs(&s, Algorithm::Raft, 3);
    let without = runs(&s, Algorithm::RaftNoCheckQuorum, 3);
    for (cq, plain) in with.iter().zip(&without) {
        assert!(
            plain.split_brain_time >= 3_000 * MS,
            "{} µs",
            plain.split_brain_time
        );
        assert!(cq.split_brain_time <= 2 * timeout, "{} µs", cq.split_brain_time);
        assert_eq!((cq.safety_violations, plain.safety_violations), (0, 0));
    }
}

#[test]
fn a_flapping_highest_node_moves_bully_but_not_next_in_line() {
    let s = Scenario {
        flap: true,
        ..scenario(7)
    };
    for (bully, nil) in runs(&s, Algorithm::Bully, 2)
        .iter()
        .zip(&runs(&s, Algorithm::NextInLine, 2))
    {
        assert!(bully.leader_changes >= 5, "bully: {}", bully.leader_changes);
        assert!(nil.leader_changes <= 1, "next-in-line: {}", nil.leader_changes);
    }
}

#[test]
fn pos_empty_rounds_are_near_e_to_the_minus_c() {
    let m = runs(&scenario(10), Algorithm::Pos, 10);
    let summary = Summary::of("pos", 10, &m);
    let empty = summary.empty_round_rate.expect("PoS rounds are clocked");
    // P(no eligible staker at step 0) = e^-3 ≈ 0.05; widening after an empty
    // slot only lowers it.
    assert!((0.005..0.12).contains(&empty), "{empty}");
    assert!(summary.fork_rate.is_some());
    assert_eq!(summary.safety_violations, None);
}

#[test]
fn summaries_carry_only_the_metrics_that_apply() {
    let s = scenario(5);
    let raft = s.run(Algorithm::Raft, 2, &|| {});
    assert_eq!(raft.safety_violations, Some(0));
    assert_eq!((raft.empty_round_rate, raft.fork_rate), (None, None));
    let pow = s.run(Algorithm::Pow, 2, &|| {});
    assert_eq!(pow.empty_round_rate, None, "PoW has no clocked rounds");
    assert!(pow.fork_rate.is_some());
    let bully = s.run(Algorithm::Bully, 2, &|| {});
    assert_eq!(bully.safety_violations, None);
    let table = report::table(&s, &[raft, pow, bully]);
    for name in ["raft", "pow", "bully"] {
        assert!(table.contains(name), "{table}");
    }
}

#[test]
fn algorithm_names_round_trip_and_sweeps_end_at_n() {
    for a in Algorithm::ALL {
        assert_eq!(a.name().parse::<Algorithm>().unwrap(), a);
    }
    assert!("tendermint".parse::<Algorithm>().is_err());
    assert_eq!(sweep_sizes(25), [4, 8, 16, 25]);
    assert_eq!(sweep_sizes(16), [4, 8, 16]);
}

#[test]
fn the_plot_is_an_svg() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plot.svg");
    let series = [Series {
        name: "ring",
        points: vec![(4.0, 20.0), (8.0, 40.0), (16.0, 80.0)],
    }];
    report::plot(&path, &series).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("ring"));
}
