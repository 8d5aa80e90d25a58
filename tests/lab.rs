//! `klero lab` end to end: the real binary, a small experiment, its JSON.

use std::process::Command;

use serde_json::Value;

fn lab(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_klero"))
        .arg("lab")
        .args(args)
        .output()
        .expect("klero runs");
    assert!(
        out.status.success(),
        "klero lab failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
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
