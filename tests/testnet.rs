//! The walkthrough of `testnet/README.md`, scripted the way a new user
//! types it: `klero testnet up --detach`, a wallet, funds from the faucet,
//! a stake, a node run with the wallet's key, blocks won, an unstake, and
//! `klero testnet down` leaving no process behind. Every port is chosen
//! by the OS (`--base-port 0`) and read back from `klero testnet status`.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Testnet {
    dir: tempfile::TempDir,
    /// node0's API, the wallet's node.
    api: String,
}

impl Testnet {
    fn up(consensus: &str, nodes: &str, block_time: &str) -> Testnet {
        Testnet::up_with(&[
            "--consensus",
            consensus,
            "--nodes",
            nodes,
            "--block-time",
            block_time,
        ])
    }

    /// `klero testnet up --detach --base-port 0` with `args`.
    fn up_with(args: &[&str]) -> Testnet {
        let dir = tempfile::tempdir().expect("dir");
        let mut testnet = Testnet {
            api: String::new(),
            dir,
        };
        let out = testnet.klero(&[&["testnet", "up", "--detach", "--base-port", "0"], args].concat());
        ok(&out);
        testnet.api = testnet.status()[0]["api"]
            .as_str()
            .expect("node0's api")
            .to_owned();
        testnet
    }

    fn status(&self) -> Value {
        serde_json::from_str(&ok(&self.klero(&["testnet", "status", "--json"]))).expect("json")
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn klero(&self, args: &[&str]) -> Output {
        let testnet_dir = self.path().join("net");
        let mut command = Command::new(env!("CARGO_BIN_EXE_klero"));
        command.args(args);
        if args.first() == Some(&"testnet") {
            command.args(["--dir", &testnet_dir.display().to_string()]);
        }
        command
            .env("KLERO_PASSPHRASE", "walkthrough")
            .env("KLERO_WALLET_DIR", self.path().join("wallet"))
            .env("KLERO_NODE", &self.api)
            .stdin(Stdio::null())
            .output()
            .expect("run klero")
    }

    fn wallet_status(&self, name: &str) -> Value {
        serde_json::from_str(&ok(&self.klero(&["wallet", "status", "--name", name, "--json"]))).expect("json")
    }

    fn pids(&self) -> Vec<u32> {
        let state: Value = serde_json::from_str(
            &std::fs::read_to_string(self.path().join("net/testnet.json")).expect("state file"),
        )
        .expect("json");
        state["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .filter_map(|n| n["pid"].as_u64().map(|p| p as u32))
            .collect()
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        let pids = self.pids();
        let _ = self.klero(&["testnet", "down"]);
        for pid in pids {
            // A safety net after `down`: normally there is no such process.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        if std::thread::panicking() {
            for i in 0..6 {
                let log = std::fs::read_to_string(self.path().join(format!("net/node{i}/node.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                eprintln!(
                    "--- node{i} ---\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
    }
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    false
}

/// Creates `me`, funds it from the faucet, and returns its address.
fn funded_wallet(net: &Testnet, amount: &str) -> String {
    ok(&net.klero(&["wallet", "new", "--name", "me"]));
    let faucet_key = net.path().join("net/keys/faucet.key").display().to_string();
    ok(&net.klero(&["wallet", "import", "--name", "faucet", "--seed-file", &faucet_key]));
    let me = ok(&net.klero(&["wallet", "address", "--name", "me"]));
    ok(&net.klero(&["wallet", "transfer", &me, amount, "--name", "faucet", "--wait"]));
    let expected: u64 = amount.parse().expect("amount");
    assert!(wait_for(Duration::from_secs(20), || net
        .klero(&["wallet", "status", "--name", "me", "--json"])
        .status
        .success()
        && net.wallet_status("me")["balance"].as_u64() == Some(expected)));
    me
}

/// Exports `me`'s seed to a private key file and starts a producing node with it.
fn run_node_with_my_key(net: &Testnet) {
    let key = net.path().join("me.key").display().to_string();
    ok(&net.klero(&["wallet", "export", "--name", "me", "--out", &key]));
    ok(&net.klero(&["testnet", "add", "--key", &key, "--produce"]));
}

fn down_leaves_no_process(net: &Testnet) {
    let pids = net.pids();
    assert!(!pids.is_empty());
    ok(&net.klero(&["testnet", "down"]));
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z")),
            "node {pid} still running"
        );
    }
}

#[test]
fn pos_walkthrough_stake_win_slots_unstake() {
    let net = Testnet::up("pos", "4", "0.5");
    let status = net.status();
    assert_eq!(status.as_array().map(Vec::len), Some(4));
    // The table's API addresses are the ones the nodes bound and answer on.
    for node in status.as_array().expect("nodes") {
        assert!(node["height"].is_u64(), "{node}");
        assert!(!node["api"].as_str().expect("api").ends_with(":0"), "{node}");
    }

    funded_wallet(&net, "2000000");
    // 500,000 against the nodes' 40,000: the new staker should win most slots.
    ok(&net.klero(&["wallet", "stake", "500000", "--name", "me", "--wait"]));
    // Included; a one-block reorg may briefly put it back in the mempool.
    assert!(wait_for(
        Duration::from_secs(20),
        || net.wallet_status("me")["bonded"].as_u64() == Some(500_000)
    ));
    run_node_with_my_key(&net);

    // The stake enters the draw two epoch boundaries later (5 s epochs here).
    assert!(
        wait_for(Duration::from_secs(60), || {
            net.wallet_status("me")["blocks_proposed"]
                .as_u64()
                .is_some_and(|n| n >= 3)
        }),
        "the new staker proposed nothing: {}",
        net.wallet_status("me")
    );

    ok(&net.klero(&["wallet", "unstake", "500000", "--name", "me", "--wait"]));
    assert!(wait_for(
        Duration::from_secs(20),
        || net.wallet_status("me")["bonded"].as_u64() == Some(0)
    ));
    let after = net.wallet_status("me");
    let release = after["unbonding"][0]["release_epoch"]
        .as_u64()
        .expect("unbonding entry");
    let balance = after["balance"].as_u64().expect("balance");
    assert!(
        wait_for(Duration::from_secs(60), || {
            let s = net.wallet_status("me");
            s["unbonding"].as_array().is_some_and(Vec::is_empty)
                && s["balance"].as_u64() >= Some(balance + 500_000)
        }),
        "stake not freed by epoch {release}: {}",
        net.wallet_status("me")
    );
    down_leaves_no_process(&net);
}

#[test]
fn pow_walkthrough_mine_with_my_key() {
    let net = Testnet::up("pow", "3", "1");
    funded_wallet(&net, "1000");
    run_node_with_my_key(&net);
    assert!(
        wait_for(Duration::from_secs(90), || {
            net.wallet_status("me")["blocks_proposed"]
                .as_u64()
                .is_some_and(|n| n >= 1)
        }),
        "my miner found no block: {}",
        net.wallet_status("me")
    );
    let heights: Vec<Value> = net
        .status()
        .as_array()
        .expect("array")
        .iter()
        .map(|n| n["height"].clone())
        .collect();
    assert!(
        heights.iter().all(|h| h.as_u64().is_some_and(|h| h > 0)),
        "{heights:?}"
    );
    down_leaves_no_process(&net);
}

/// `klero testnet fairness` walks the canonical chain and credits each
/// block to its proposer: the counts add up to the chain, the intervals
/// hold their shares, and `status --json` carries the same columns.
#[test]
fn fairness_columns_come_from_the_chain() {
    let net = Testnet::up_with(&[
        "--consensus",
        "pos",
        "--nodes",
        "3",
        "--weights",
        "1,2,4",
        "--block-time",
        "0.5",
    ]);
    let fairness = || -> Value {
        serde_json::from_str(&ok(&net.klero(&["testnet", "fairness", "--json"]))).expect("json")
    };
    assert!(
        wait_for(Duration::from_secs(90), || fairness()["blocks"].as_u64()
            >= Some(30)),
        "the chain did not reach 30 blocks: {}",
        fairness()
    );
    let report = fairness();
    let blocks = report["blocks"].as_u64().expect("blocks");
    let nodes = report["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3);
    let mut won_total = 0;
    let mut weight_total = 0.0;
    for (i, entry) in nodes.iter().enumerate() {
        let (name, f) = (&entry[0], &entry[1]);
        assert_eq!(name, &format!("node{i}"));
        let won = f["canonical_won"].as_u64().expect("won");
        won_total += won;
        weight_total += f["weight_share"].as_f64().expect("weight share");
        let (low, share, high) = (
            f["share_low"].as_f64().expect("low"),
            f["share"].as_f64().expect("share"),
            f["share_high"].as_f64().expect("high"),
        );
        assert!((share - won as f64 / blocks as f64).abs() < 1e-9, "{f}");
        assert!(low <= share && share <= high && low >= 0.0 && high <= 1.0, "{f}");
        let produced = f["produced"].as_u64().expect("produced");
        assert_eq!(f["orphaned"].as_u64(), Some(produced.saturating_sub(won)), "{f}");
    }
    assert_eq!(won_total + report["others"].as_u64().expect("others"), blocks);
    assert_eq!(report["others"], 0, "every block is a node's");
    assert!((weight_total - 1.0).abs() < 1e-9);
    assert_eq!(report["df"], 2);
    assert!(
        report["p_value"]
            .as_f64()
            .is_some_and(|p| (0.0..=1.0).contains(&p)),
        "{report}"
    );
    let heaviest = nodes[2][1]["weight_share"].as_f64().expect("share");
    assert!((heaviest - 4.0 / 7.0).abs() < 1e-9, "{report}");

    // The walk agrees with the ledger's own count of each proposer's
    // blocks (read a moment apart, so a block or two may separate them).
    let status = net.status();
    for row in status.as_array().expect("rows") {
        let walked = row["fairness"]["canonical_won"].as_u64().expect("walked");
        let ledger = row["blocks_won"].as_u64().expect("ledger");
        assert!(walked.abs_diff(ledger) <= 3, "{row}");
    }
    let table = ok(&net.klero(&["testnet", "status"]));
    assert!(
        table.contains("95% interval") && table.contains("orphaned"),
        "{table}"
    );
    down_leaves_no_process(&net);
}
