//! `klero lab` end to end: the real binary, a small experiment, its JSON.

use std::process::Command;

use serde_json::Value;

fn klero_json(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_klero"))
        .args(args)
        .output()
        .expect("klero runs");
    assert!(
        out.status.success(),
        "klero {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

fn lab(args: &[&str]) -> Value {
    klero_json(&[&["lab"], args].concat())
}

/// `klero bench attack <experiment> … --json`'s points.
fn attack(experiment: &str, args: &[&str]) -> Vec<Value> {
    let report = klero_json(&[&["bench", "attack", experiment, "--json"], args].concat());
    assert_eq!(report["experiment"], experiment);
    report["points"].as_array().expect("points").clone()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn all_algorithms_report_and_the_quorum_ones_are_safe() {
    let args = ["--algorithm", "all", "--nodes", "7", "--runs", "3", "--json"];
    let report = lab(&args);
    let results = report["results"].as_array().expect("results");
    let names: Vec<&str> = results.iter().filter_map(|r| r["algorithm"].as_str()).collect();
    assert_eq!(
        names,
        [
            "bully",
            "ring",
            "next-in-line",
            "raft",
            "raft-nocq",
            "paxos",
            "zab",
            "vr",
            "pow",
            "pos"
        ]
    );
    for r in results {
        let name = r["algorithm"].as_str().unwrap_or_default();
        assert_eq!(r["runs"], 3, "{name}");
        assert_eq!(r["runs_agreed"], 3, "{name}: every run agreed on a leader");
        assert!(r["messages_per_election"]["median"].as_f64().is_some(), "{name}");
        match name {
            "raft" | "raft-nocq" | "paxos" | "zab" | "vr" => assert_eq!(r["safety_violations"], 0, "{name}"),
            _ => assert!(r["safety_violations"].is_null(), "{name}"),
        }
        let lottery = matches!(name, "pow" | "pos");
        assert_eq!(r["fork_rate"].is_number(), lottery, "{name}");
    }
    // Same seed, same output.
    assert_eq!(lab(&args), report);
}

#[test]
fn bad_arguments_are_refused() {
    for args in [
        &["--algorithm", "tendermint"][..],
        &["--nodes", "2"],
        &["--loss", "1.5"],
        &["--partition", "9000:5000"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_klero"))
            .arg("lab")
            .args(args)
            .output()
            .expect("klero runs");
        assert!(!out.status.success(), "{args:?} accepted");
    }
}

/// Selfish mining at constant difficulty lands on Eyal and Sirer's closed
/// form; below the threshold it loses, above it gains.
#[test]
fn selfish_mining_follows_the_closed_form() {
    let args = [
        "--alphas",
        "0.2,0.4",
        "--gammas",
        "0,0.5",
        "--half-life",
        "1099511627776",
        "--honest-miners",
        "10",
        "--blocks",
        "4000",
        "--runs",
        "5",
        "--seed",
        "7",
    ];
    let points = attack("selfish", &args);
    assert_eq!(points.len(), 4);
    for p in &points {
        let (alpha, gamma) = (num(&p["alpha"]), num(&p["gamma"]));
        let (share, closed) = (num(&p["share"]["mean"]), num(&p["closed_form"]));
        assert!((share - closed).abs() < 0.03, "{p}");
        // γ measured is the asked one scaled by (n − 1)/n, n = 10.
        assert!((num(&p["gamma_measured"]) - gamma * 0.9).abs() < 0.05, "{p}");
        let above = alpha > num(&p["threshold"]) + 0.05;
        let below = alpha < num(&p["threshold"]) - 0.05;
        assert!(!above || share > alpha, "{p}");
        assert!(!below || share < alpha, "{p}");
    }
    // alpha 0.4, gamma 0: R = 0.484.
    assert!(num(&points[1]["share"]["mean"]) > 0.45, "{}", points[1]);
}

/// Under v2 a late block never displaces an honest one and withholding
/// costs the adversary; v1's earlier-slot rule (the counterfactual) let it
/// displace honest blocks.
#[test]
fn withholding_does_not_pay_under_v2() {
    let args = [
        "--alphas",
        "0.3",
        "--delays",
        "0,1",
        "--honest-stakers",
        "4",
        "--slots",
        "3000",
        "--runs",
        "6",
        "--seed",
        "3",
    ];
    let points = attack("withhold", &args);
    assert_eq!(points.len(), 4);
    let find = |delay: u64, rule: &str| {
        points
            .iter()
            .find(|p| p["delay"] == delay && p["rule"] == rule)
            .unwrap_or_else(|| panic!("no point {delay} {rule}"))
    };
    for delay in [0, 1] {
        let v2 = find(delay, "v2");
        assert!(num(&v2["share"]["mean"]) < 0.32, "{v2}");
        assert_eq!(num(&v2["honest_displaced_per_kslot"]), 0.0, "{v2}");
    }
    // Published within its own slot, it is the honest share.
    assert!((num(&find(0, "v2")["share"]["mean"]) - 0.3).abs() < 0.03);
    let v1 = find(1, "v1");
    assert!(num(&v1["honest_displaced_per_kslot"]) > 10.0, "{v1}");
    assert!(num(&v1["share"]["mean"]) > num(&find(1, "v2")["share"]["mean"]) + 0.03);
}

/// k slots before the freeze point give 2^k candidate epochs: the share of
/// the next epoch grows with k, near the maximum of 2^k draws.
#[test]
fn grinding_grows_with_the_slots_before_the_freeze_point() {
    let args = ["--alphas", "0.3", "--ks", "0,3", "--trials", "40", "--seed", "2"];
    let points = attack("grind", &args);
    assert_eq!(points.len(), 2);
    let (none, three) = (&points[0], &points[1]);
    assert_eq!(three["candidates"], 8);
    assert!((num(&none["share"]["mean"]) - 0.3).abs() < 0.1, "{none}");
    assert!(
        num(&three["share"]["mean"]) > num(&none["share"]["mean"]) + 0.1,
        "{three}"
    );
    assert!(
        (num(&three["share"]["mean"]) - num(&three["predicted"])).abs() < 0.08,
        "{three}"
    );
}

/// The ledger slashes the whole stake, pays half to an honest reporter and
/// nothing to a self-reporter; equivocating loses once evidence is likely.
#[test]
fn equivocation_loses_its_stake() {
    let rows = attack("equivocate", &["--stakes", "40000", "--ps", "0.01,1"]);
    let row = &rows[0];
    assert_eq!(row["slashed"], 40_000);
    assert_eq!(row["reporter_reward"], 20_000);
    assert_eq!(row["self_report_change"], -40_001);
    assert!((num(&row["break_even_p"]) - 0.025).abs() < 1e-9);
    assert!(num(&row["expected_net"][0][1]) > 0.0);
    assert!(num(&row["expected_net"][1][1]) < 0.0);
}
