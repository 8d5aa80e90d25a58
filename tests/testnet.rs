//! The walkthroughs of `testnet/README.md`, scripted the way a new user
//! types them: `klero testnet up --detach`, a wallet, funds from the
//! faucet, a stake, a node run with the wallet's key, blocks won, an
//! unstake, and `klero testnet down` leaving no process behind; then the
//! chaos bench: a partition that splits the chain and heals into one, a
//! node that loses everything and catches up, a paused node, the same
//! genesis from the same seed beside another testnet, and refused
//! overrides. Ports are chosen by the OS (`--base-port 0`) and read back
//! from `klero testnet status`, except where the default range is the
//! point.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use klero::api::client::{ApiClient, ClientError};
use klero::node::Addresses;
use serde_json::Value;

struct Testnet {
    dir: tempfile::TempDir,
    /// node0's API, the wallet's node.
    api: String,
    /// What `up` printed.
    stdout: String,
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
            "--base-port",
            "0",
        ])
    }

    /// `klero testnet up --detach ARGS…` in a fresh directory.
    fn up_with(args: &[&str]) -> Testnet {
        let dir = tempfile::tempdir().expect("dir");
        let mut testnet = Testnet {
            api: String::new(),
            dir,
            stdout: String::new(),
        };
        let mut up = vec!["testnet", "up", "--detach"];
        up.extend(args);
        testnet.stdout = ok(&testnet.klero(&up));
        testnet.api = testnet.status()[0]["api"]
            .as_str()
            .expect("node0's api")
            .to_owned();
        testnet
    }

    /// `nodes` PoS nodes on half-second slots with a rollback limit well
    /// above what a partitioned or lossy node builds apart, once they share
    /// a chain.
    fn up_for_chaos(nodes: &str, extra: &[&str]) -> Testnet {
        let mut args = vec![
            "--nodes",
            nodes,
            "--block-time",
            "0.5",
            "--base-port",
            "0",
            "--rollback",
            "500",
        ];
        args.extend(extra);
        let net = Testnet::up_with(&args);
        let all: Vec<usize> = (0..net.status().as_array().expect("nodes").len()).collect();
        assert!(
            wait_for(Duration::from_secs(30), || net.agree(&all, 2)),
            "no common chain to start from"
        );
        net
    }

    /// `klero testnet ARGS…`, which must succeed.
    fn testnet(&self, args: &[&str]) -> String {
        let mut all = vec!["testnet"];
        all.extend(args);
        ok(&self.klero(&all))
    }

    /// A client of node `i`'s API.
    fn client(&self, i: usize) -> ApiClient {
        let status = self.status();
        let url = status[i]["api"].as_str().expect("api");
        ApiClient::new(url, Duration::from_secs(5)).expect("client")
    }

    /// Node `i`'s head and height, `None` while it does not answer.
    fn head(&self, i: usize) -> Option<(u64, String)> {
        self.client(i).status().ok().map(|s| (s.height, s.head))
    }

    /// The id of node `i`'s canonical block at `height`.
    fn block_id(&self, i: usize, height: u64) -> Option<String> {
        self.client(i).block_at(height).ok().flatten().map(|b| b.id)
    }

    /// Whether every node in `nodes` has the same head, at `min_height` or above.
    fn agree(&self, nodes: &[usize], min_height: u64) -> bool {
        let heads: Vec<Option<(u64, String)>> = nodes.iter().map(|&i| self.head(i)).collect();
        heads[0].as_ref().is_some_and(|(h, _)| *h >= min_height) && heads.iter().all(|h| *h == heads[0])
    }

    /// The genesis id `up` printed.
    fn genesis(&self) -> String {
        let line = self
            .stdout
            .lines()
            .find(|l| l.contains(" genesis "))
            .expect("genesis line");
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "genesis").expect("genesis");
        words[at + 1].to_owned()
    }

    /// Every account address and peer id `up` printed, in order.
    fn printed_keys(&self) -> Vec<String> {
        self.stdout
            .split_whitespace()
            .filter(|w| w.starts_with("klero1") || w.starts_with("12D3KooW"))
            .map(str::to_owned)
            .collect()
    }

    fn status(&self) -> Value {
        serde_json::from_str(&ok(&self.klero(&["testnet", "status", "--json"]))).expect("json")
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn klero(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run klero")
    }

    fn command(&self, args: &[&str]) -> Command {
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
            .stdin(Stdio::null());
        command
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

/// Node `i`'s entry in `klero testnet status --json`.
fn view(net: &Testnet, i: usize) -> Value {
    net.status()[i].clone()
}

#[test]
fn a_partition_splits_the_chain_and_heal_joins_it_again() {
    let net = Testnet::up_for_chaos("4", &[]);
    let start = net.head(0).expect("node0").0;

    let out = net.testnet(&["partition", "node0,node1", "node2,node3"]);
    assert!(out.contains("node0,node1 | node2,node3"), "{out}");
    for (i, other_side) in [(0, "node2"), (1, "node3"), (2, "node0"), (3, "node1")] {
        let split = view(&net, i)["split_from"].clone();
        assert!(
            split
                .as_array()
                .is_some_and(|s| s.len() == 2 && s.contains(&other_side.into())),
            "node{i}: {split}"
        );
    }
    // Both halves grow, each on its own branch.
    let forked = |h: u64| {
        net.block_id(0, h).is_some()
            && net.block_id(2, h).is_some()
            && net.block_id(0, h) != net.block_id(2, h)
    };
    assert!(
        wait_for(Duration::from_secs(60), || {
            let (a, b) = (net.head(0).map_or(0, |h| h.0), net.head(2).map_or(0, |h| h.0));
            a >= start + 4 && b >= start + 4 && forked(start + 3)
        }),
        "the halves did not both grow apart: {:?} {:?}",
        net.head(0),
        net.head(2)
    );
    let apart = net.head(0).expect("node0").0.max(net.head(2).expect("node2").0);

    net.testnet(&["heal"]);
    assert!(view(&net, 0)["split_from"].as_array().is_some_and(Vec::is_empty));
    assert!(
        wait_for(Duration::from_secs(60), || net.agree(&[0, 1, 2, 3], apart)),
        "no common head after the heal: {:?}",
        (0..4).map(|i| net.head(i)).collect::<Vec<_>>()
    );
    // One side took the other's branch: a reorg, counted.
    let reorgs: u64 = (0..4)
        .map(|i| {
            let metrics = net.client(i).metrics().expect("metrics");
            metrics
                .lines()
                .find_map(|l| l.strip_prefix("klero_reorgs_total ")?.parse::<u64>().ok())
                .expect("reorg counter")
        })
        .sum();
    assert!(reorgs >= 2, "{reorgs} reorgs");
    // One head, so one state: every node reports the same accounts.
    let (height, _) = net.head(0).expect("node0");
    let common = net.block_id(0, height).expect("head block");
    let addresses: Vec<String> = net
        .printed_keys()
        .into_iter()
        .filter(|k| k.starts_with("klero1"))
        .collect();
    let state_of = |i: usize| -> Vec<_> {
        let client = net.client(i);
        addresses
            .iter()
            .map(|a| {
                client
                    .account(a)
                    .expect("account")
                    .map(|acc| (acc.balance, acc.nonce, acc.bonded, acc.blocks_proposed))
            })
            .collect()
    };
    assert!(
        wait_for(Duration::from_secs(20), || {
            (0..4).all(|i| net.block_id(i, height).as_ref() == Some(&common))
                && (1..4).all(|i| state_of(i) == state_of(0))
        }),
        "the nodes disagree on the state at height {height}"
    );
}

#[test]
fn a_node_with_full_loss_falls_behind_and_a_paused_one_resumes() {
    // node2 holds a ninth of the stake: alone it builds slower than the rest.
    let net = Testnet::up_for_chaos("3", &["--weights", "4,4,1"]);

    assert!(net.testnet(&["loss", "node2", "100%"]).contains("loss 100%"));
    assert!(
        wait_for(Duration::from_secs(60), || {
            let (Some((ours, _)), Some((theirs, head))) = (net.head(0), net.head(2)) else {
                return false;
            };
            // Behind, and on a branch of its own that the others never saw.
            ours >= theirs + 4 && net.block_id(0, theirs).is_some_and(|id| id != head)
        }),
        "node2 kept up through 100% loss: {:?} {:?}",
        net.head(0),
        net.head(2)
    );
    let lossy = view(&net, 2);
    assert_eq!(lossy["link"]["loss_ppm"], 1_000_000, "{lossy}");
    let counters = &lossy["link_counters"];
    assert!(
        counters["dropped_in"].as_u64() > Some(0) && counters["dropped_out"].as_u64() > Some(0),
        "{counters}"
    );
    assert!(
        lossy["peers"].as_u64() >= Some(2),
        "loss must not disconnect: {lossy}"
    );

    net.testnet(&["clear", "node2"]);
    assert!(
        wait_for(Duration::from_secs(60), || net.agree(&[0, 1, 2], 0)),
        "node2 did not catch up: {:?} {:?}",
        net.head(0),
        net.head(2)
    );

    net.testnet(&["pause", "node1"]);
    assert_eq!(view(&net, 1)["paused"], true);
    assert!(net.head(1).is_none(), "a paused node answers");
    let before = net.head(0).expect("node0").0;
    assert!(wait_for(Duration::from_secs(30), || net
        .head(0)
        .is_some_and(|h| h.0 >= before + 3)));
    net.testnet(&["resume", "node1"]);
    assert_eq!(view(&net, 1)["paused"], false);
    assert!(
        wait_for(Duration::from_secs(60), || net.agree(&[0, 1, 2], before + 3)),
        "node1 did not catch up after resuming"
    );
}

#[test]
fn a_seed_gives_the_same_genesis_and_testnets_run_side_by_side() {
    let genesis_time = (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        + 3_000)
        .to_string();
    // Both on the default ports: the second finds them taken and moves on.
    let args = [
        "--seed",
        "7",
        "--genesis-time",
        &genesis_time,
        "--nodes",
        "2",
        "--block-time",
        "0.5",
    ];
    let a = Testnet::up_with(&args);
    let b = Testnet::up_with(&args);
    assert!(b.stdout.contains("are taken"), "{}", b.stdout);
    assert_ne!(a.api, b.api);

    assert_eq!(a.genesis(), b.genesis());
    assert_eq!(a.printed_keys(), b.printed_keys());
    assert_eq!(
        a.printed_keys().len(),
        5,
        "faucet, two nodes and their peer ids: {}",
        a.stdout
    );
    let spec = |net: &Testnet| std::fs::read_to_string(net.path().join("net/spec.toml")).expect("spec");
    assert_eq!(spec(&a), spec(&b));
    for net in [&a, &b] {
        assert!(
            wait_for(Duration::from_secs(30), || net.agree(&[0, 1], 1)),
            "a testnet does not run beside the other"
        );
        let status = net.client(0).status().expect("status");
        assert_eq!(status.genesis, a.genesis());
    }
}

#[test]
fn a_bad_override_is_refused_naming_the_flag_and_the_field() {
    let dir = tempfile::tempdir().expect("dir");
    for (args, words) in [
        (
            &["--epoch-slots", "2"][..],
            &["--epoch-slots 2", "pos.epoch_slots"][..],
        ),
        (&["--c", "0"], &["--c 0", "pos.leader_c_milli"]),
        (&["--rollback", "0"], &["--rollback 0", "pos.max_rollback"]),
        (
            &["--consensus", "pow", "--half-life", "1"],
            &["--half-life 1", "pow.max_future_drift_ms"],
        ),
        (
            &["--consensus", "pow", "--initial-target", &"0".repeat(64)],
            &["pow.initial_target"],
        ),
        (&["--half-life", "64"], &["--half-life", "proof of stake"]),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_klero"))
            .args([
                "testnet",
                "--dir",
                &dir.path().join("net").display().to_string(),
                "up",
                "--detach",
            ])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run klero");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        for word in words {
            assert!(stderr.contains(word), "{args:?}: {stderr}");
        }
        assert!(
            !dir.path().join("net/testnet.json").exists(),
            "{args:?} started a testnet"
        );
    }
}

/// A `klero node` on port 0 whose process is killed on drop.
struct NodeProcess {
    child: Child,
    /// Removed after the process is gone.
    _dir: tempfile::TempDir,
}

impl NodeProcess {
    fn start(extra: &[&str]) -> (NodeProcess, Addresses) {
        let dir = tempfile::tempdir().expect("dir");
        let spec = dir.path().join("spec.toml");
        let out = Command::new(env!("CARGO_BIN_EXE_klero"))
            .args(["spec", "dev", "--out", &spec.display().to_string()])
            .output()
            .expect("spec dev");
        assert!(out.status.success());
        let data = dir.path().join("data");
        let child = Command::new(env!("CARGO_BIN_EXE_klero"))
            .args([
                "node",
                "--spec",
                &spec.display().to_string(),
                "--data-dir",
                &data.display().to_string(),
            ])
            .args(["--rpc", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let node = NodeProcess { child, _dir: dir };
        assert!(
            wait_for(Duration::from_secs(30), || Addresses::read(&data).is_ok()),
            "node did not start"
        );
        (node, Addresses::read(&data).expect("addresses"))
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_admin_api_exists_only_with_chaos_and_only_on_loopback() {
    let refused = |r: Result<_, ClientError>| matches!(r, Err(ClientError::Refused { status: 404, .. }));
    let api =
        |a: &Addresses| ApiClient::new(&format!("http://{}", a.api), Duration::from_secs(5)).expect("client");

    let (_plain, addresses) = NodeProcess::start(&[]);
    assert_eq!(addresses.admin, None);
    assert!(api(&addresses).status().is_ok());
    assert!(refused(api(&addresses).chaos()), "a plain node serves /chaos");

    let (_chaos, addresses) = NodeProcess::start(&["--chaos"]);
    let admin_addr = addresses.admin.expect("an admin address");
    assert!(admin_addr.ip().is_loopback());
    assert!(refused(api(&addresses).chaos()), "the public API serves /chaos");
    let admin = ApiClient::new(&format!("http://{admin_addr}"), Duration::from_secs(5)).expect("client");
    let status = admin.chaos().expect("GET /chaos");
    assert!(status.blocked.is_empty() && status.link.is_clear());
    let faults = klero::api::chaos::LinkFaults {
        loss_ppm: 2_000_000,
        ..Default::default()
    };
    let err = admin.set_link(&faults).expect_err("loss over 100%");
    assert!(
        matches!(&err, ClientError::Refused { status: 400, message } if message.contains("loss_ppm")),
        "{err}"
    );
    let err = admin
        .set_partition(vec!["not a peer id".into()])
        .expect_err("bad peer id");
    assert!(matches!(err, ClientError::Refused { status: 400, .. }), "{err}");
}

/// `klero testnet fairness` walks the canonical chain and credits each
/// block to its proposer: the counts add up to the chain, the intervals
/// hold their shares, and `status --json` carries the same columns.
#[test]
fn fairness_columns_come_from_the_chain() {
    let net = Testnet::up_with(&[
        "--base-port",
        "0",
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
