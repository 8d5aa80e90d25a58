//! `klero testnet`: a local multi-node chain in one directory.
//!
//! ```text
//! DIR/spec.toml          the chain spec (fresh genesis time, funded accounts)
//! DIR/keys/faucet.key    the pre-funded account's key
//! DIR/keys/nodeN.key     node N's proposer key (a genesis staker / a miner)
//! DIR/nodeN/             node N's data dir (chain.redb, p2p.key) and node.log
//! DIR/testnet.json       what is running: names, pids, ports, arguments
//! ```
//!
//! Each node's addresses are read back from its `addresses.json` once it
//! has started (so `--base-port 0`, every port chosen by the OS, works).
//!
//! Node processes run in their own process group, so a Ctrl-C in the
//! terminal reaches only the launcher, which then stops them with SIGTERM
//! (a clean shutdown) and SIGKILL after a timeout.

pub(crate) mod fairness;
pub(crate) mod genesis;
pub(crate) mod process;
pub(crate) mod strategy;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use self::genesis::Consensus;
use self::strategy::Strategy;
use crate::api::client::ApiClient;

/// The state file's name.
pub(crate) const STATE_FILE: &str = "testnet.json";

/// One node of the testnet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct NodeEntry {
    /// `node0`, `node1`, …
    pub name: String,
    /// Its process id while running.
    pub pid: Option<u32>,
    /// HTTP API URL.
    pub api: String,
    /// libp2p address with peer id.
    pub p2p: String,
    /// The proposer key file.
    pub key: Option<PathBuf>,
    /// Data dir.
    pub data_dir: PathBuf,
    /// The arguments after `klero`.
    pub args: Vec<String>,
    /// Stake or hashrate weight (0 for nodes added later without one).
    pub weight: u64,
    /// The attack it runs, if it is a strategy node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
}

/// `DIR/testnet.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct State {
    /// The lottery.
    pub consensus: Consensus,
    /// The spec file.
    pub spec: PathBuf,
    /// The faucet's key file.
    pub faucet_key: PathBuf,
    /// `--base-port` (0: the OS chose the ports), for nodes added later.
    #[serde(default)]
    pub base_port: u16,
    /// The nodes.
    pub nodes: Vec<NodeEntry>,
}

impl State {
    /// Reads `dir`'s state file.
    ///
    /// # Errors
    ///
    /// If there is no testnet in `dir`.
    pub(crate) fn load(dir: &Path) -> Result<State> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "no testnet in {} (start one with `klero testnet up --dir {0}`)",
                dir.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display()))
    }

    /// Writes it back.
    ///
    /// # Errors
    ///
    /// If the file cannot be written.
    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(dir.join(STATE_FILE), text).with_context(|| format!("writing {}", dir.display()))
    }

    /// The node called `name`.
    ///
    /// # Errors
    ///
    /// If there is none, naming the ones there are.
    pub(crate) fn node_mut(&mut self, name: &str) -> Result<&mut NodeEntry> {
        let names: Vec<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .with_context(|| format!("no node {name:?}; the testnet has {}", names.join(", ")))
    }
}

/// What `/status` says about a node, for the tables.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct NodeView {
    /// Name.
    pub name: String,
    /// API URL.
    pub api: String,
    /// Process id.
    pub pid: Option<u32>,
    /// Whether the process is alive.
    pub running: bool,
    /// Head height.
    pub height: Option<u64>,
    /// Head id.
    pub head: Option<String>,
    /// Connected peers.
    pub peers: Option<u64>,
    /// Blocks its key proposed on the canonical chain.
    pub blocks_won: Option<u64>,
    /// Bonded stake of its key (PoS).
    pub stake: Option<u64>,
    /// Its miner's hashes per second (PoW).
    pub hashrate: Option<f64>,
    /// The attack it runs, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// Its share of the canonical chain (`fairness`), if measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fairness: Option<fairness::NodeFairness>,
}

/// Asks every node for its status (short timeouts: a dead node must not stall the table).
pub(crate) fn view(state: &State) -> Vec<NodeView> {
    state
        .nodes
        .iter()
        .map(|node| {
            let running = node.pid.is_some_and(process::alive);
            let client = ApiClient::new(&node.api, Duration::from_millis(800)).ok();
            let client = client.as_ref().filter(|_| running);
            let status = client.and_then(|c| c.status().ok());
            let account = client
                .zip(status.as_ref().and_then(|s| s.proposer.as_deref()))
                .and_then(|(c, address)| c.account(address).ok().flatten());
            NodeView {
                name: node.name.clone(),
                api: node.api.clone(),
                pid: node.pid,
                running,
                height: status.as_ref().map(|s| s.height),
                head: status.as_ref().map(|s| s.head.clone()),
                peers: status.as_ref().map(|s| s.peers),
                blocks_won: account.as_ref().map(|a| a.blocks_proposed),
                stake: account.as_ref().map(|a| a.bonded),
                hashrate: status.as_ref().map(|s| s.hashrate),
                strategy: node.strategy,
                fairness: None,
            }
        })
        .collect()
}

/// Fills in each view's fairness figures (walking the chain into `walk`)
/// and returns the report (without the lab's predictions), or why there is none.
pub(crate) fn with_fairness(
    state: &State,
    views: &mut [NodeView],
    walk: &mut fairness::ChainWalk,
) -> Result<fairness::Fairness> {
    let report = fairness::measure(state, walk, false)?;
    for (view, (_, f)) in views.iter_mut().zip(&report.nodes) {
        view.fairness = Some(f.clone());
    }
    Ok(report)
}

/// The table `up` and `status` print.
pub(crate) fn render_table(consensus: Consensus, views: &[NodeView]) -> String {
    let power = match consensus {
        Consensus::Pos => "stake",
        Consensus::Pow => "hashrate",
    };
    let mut out = format!(
        "{:<8} {:>7} {:>8} {:<10} {:>5} {:>6} {:>12}  {}\n",
        "node", "pid", "height", "head", "peers", "won", power, "api"
    );
    let dash = || "-".to_owned();
    for v in views {
        let power = match consensus {
            Consensus::Pos => v.stake.map_or_else(dash, |s| s.to_string()),
            Consensus::Pow => v.hashrate.map_or_else(dash, |h| format!("{:.0} H/s", h)),
        };
        out.push_str(&format!(
            "{:<8} {:>7} {:>8} {:<10} {:>5} {:>6} {:>12}  {}{}\n",
            v.name,
            v.pid.map_or_else(dash, |p| p.to_string()),
            v.height.map_or_else(dash, |h| h.to_string()),
            v.head
                .as_deref()
                .map_or_else(dash, |h| h.chars().take(8).collect()),
            v.peers.map_or_else(dash, |p| p.to_string()),
            v.blocks_won.map_or_else(dash, |w| w.to_string()),
            power,
            v.api,
            match (v.running, v.strategy) {
                (false, _) => "  (stopped)".to_owned(),
                (true, Some(s)) => format!("  (strategy {})", s.name()),
                (true, None) => String::new(),
            },
        ));
    }
    out
}

/// Refuses to touch a directory whose testnet still runs.
///
/// # Errors
///
/// If a node of `dir`'s testnet is alive.
pub(crate) fn ensure_stopped(dir: &Path) -> Result<()> {
    if let Ok(state) = State::load(dir)
        && state.nodes.iter().any(|n| n.pid.is_some_and(process::alive))
    {
        bail!(
            "a testnet is already running in {}; stop it with `klero testnet down --dir {0}`",
            dir.display()
        );
    }
    Ok(())
}
