//! `klero testnet`: a local multi-node chain in one directory.
//!
//! ```text
//! DIR/spec.toml          the chain spec (fresh genesis time, funded accounts)
//! DIR/keys/faucet.key    the pre-funded account's key
//! DIR/keys/nodeN.key     node N's proposer key (a genesis staker / a miner)
//! DIR/nodeN/             node N's data dir (chain.redb, p2p.key) and node.log
//! DIR/testnet.json       what is running: names, pids, ports, arguments,
//!                        and the faults asked for (partition, link faults)
//! ```
//!
//! Each node's addresses are read back from its `addresses.json` once it
//! has started (so `--base-port 0`, every port chosen by the OS, works).
//! Every node runs with `--chaos`: its admin API (also in `addresses.json`)
//! takes the partitions and link faults of [`chaos`].
//!
//! Node processes run in their own process group, so a Ctrl-C in the
//! terminal reaches only the launcher, which then stops them with SIGTERM
//! (a clean shutdown) and SIGKILL after a timeout.

pub(crate) mod chaos;
pub(crate) mod fairness;
pub(crate) mod genesis;
pub(crate) mod keys;
pub(crate) mod measure;
pub(crate) mod members;
pub(crate) mod ports;
pub(crate) mod process;
pub(crate) mod strategy;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use self::genesis::Consensus;
use self::keys::KeySource;
use self::strategy::Strategy;
use crate::api::chaos::{LinkCounters, LinkFaults};
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
    /// Admin API URL (every node runs with `--chaos`).
    #[serde(default)]
    pub admin: Option<String>,
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
    /// The link faults asked of it (`testnet delay`, `loss`).
    #[serde(default)]
    pub link: LinkFaults,
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
    /// The faucet's key file (`None` for a `--spec` without one).
    pub faucet_key: Option<PathBuf>,
    /// Where the keys came from (`--seed`).
    #[serde(default)]
    pub keys: KeySource,
    /// The partition asked for: groups of node names (`testnet partition`).
    #[serde(default)]
    pub partition: Vec<Vec<String>>,
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
    /// Whether it is paused (`testnet pause`).
    pub paused: bool,
    /// Blocks its key proposed on the canonical chain.
    pub blocks_won: Option<u64>,
    /// Blocks it produced since it started that are not on its canonical
    /// chain: produced − won (a lower bound after a restart, whose earlier
    /// blocks count as won but not as produced).
    pub orphaned: Option<u64>,
    /// Bonded stake of its key (PoS).
    pub stake: Option<u64>,
    /// Its miner's hashes per second (PoW).
    pub hashrate: Option<f64>,
    /// The nodes it refuses to talk to (its block list, by name).
    pub split_from: Vec<String>,
    /// Its link faults, as it reports them.
    pub link: Option<LinkFaults>,
    /// What they have done.
    pub link_counters: Option<LinkCounters>,
    /// The attack it runs, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// Its share of the canonical chain (`fairness`), if measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fairness: Option<fairness::NodeFairness>,
}

/// Asks every node for its status and its faults (short timeouts: a dead
/// node must not stall the table; a paused one is not asked).
pub(crate) fn view(state: &State) -> Vec<NodeView> {
    state
        .nodes
        .iter()
        .map(|node| {
            let running = node.pid.is_some_and(process::alive);
            let paused = running && node.pid.is_some_and(process::paused);
            let timeout = Duration::from_millis(800);
            let answers = running && !paused;
            let client = ApiClient::new(&node.api, timeout).ok().filter(|_| answers);
            let status = client.as_ref().and_then(|c| c.status().ok());
            let account = client
                .as_ref()
                .zip(status.as_ref().and_then(|s| s.proposer.as_deref()))
                .and_then(|(c, address)| c.account(address).ok().flatten());
            let produced = client
                .as_ref()
                .and_then(|c| c.metrics().ok())
                .and_then(|text| metric(&text, "klero_blocks_proposed_total"));
            let chaos = node
                .admin
                .as_deref()
                .filter(|_| answers)
                .and_then(|url| ApiClient::new(url, timeout).ok())
                .and_then(|c| c.chaos().ok());
            let mut split_from: Vec<String> = chaos.as_ref().map_or_else(Vec::new, |c| {
                c.blocked
                    .iter()
                    .map(|peer| {
                        let named = state.nodes.iter().find(|n| n.p2p.ends_with(peer.as_str()));
                        named.map_or_else(|| peer.clone(), |n| n.name.clone())
                    })
                    .collect()
            });
            split_from.sort();
            let won = account.as_ref().map(|a| a.blocks_proposed);
            NodeView {
                name: node.name.clone(),
                api: node.api.clone(),
                pid: node.pid,
                running,
                height: status.as_ref().map(|s| s.height),
                head: status.as_ref().map(|s| s.head.clone()),
                peers: status.as_ref().map(|s| s.peers),
                paused,
                blocks_won: won,
                orphaned: produced.zip(won).map(|(p, w)| p.saturating_sub(w)),
                stake: account.as_ref().map(|a| a.bonded),
                hashrate: status.as_ref().map(|s| s.hashrate),
                split_from,
                link: chaos.as_ref().map(|c| c.link),
                link_counters: chaos.as_ref().map(|c| c.counters),
                strategy: node.strategy,
                fairness: None,
            }
        })
        .collect()
}

/// A counter's value in Prometheus text (`name value` on its own line).
fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The faults column: `paused`, `split from node2,node3`, `delay 300ms`, `loss 10%`.
fn faults(view: &NodeView) -> String {
    let mut parts = Vec::new();
    if let Some(strategy) = view.strategy {
        parts.push(format!("strategy {}", strategy.name()));
    }
    if view.paused {
        parts.push("paused".to_owned());
    }
    if !view.split_from.is_empty() {
        parts.push(format!("split from {}", view.split_from.join(",")));
    }
    if let Some(link) = &view.link {
        parts.extend(chaos::describe(link));
    }
    parts.join(", ")
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
        "{:<8} {:>7} {:>8} {:<10} {:>5} {:>6} {:>6} {:>12}  {:<22} {}\n",
        "node", "pid", "height", "head", "peers", "won", "orph", power, "api", "faults"
    );
    let dash = || "-".to_owned();
    for v in views {
        let power = match consensus {
            Consensus::Pos => v.stake.map_or_else(dash, |s| s.to_string()),
            Consensus::Pow => v.hashrate.map_or_else(dash, |h| format!("{:.0} H/s", h)),
        };
        let state = if !v.running {
            "(stopped)".to_owned()
        } else {
            faults(v)
        };
        let line = format!(
            "{:<8} {:>7} {:>8} {:<10} {:>5} {:>6} {:>6} {:>12}  {:<22} {}",
            v.name,
            v.pid.map_or_else(dash, |p| p.to_string()),
            v.height.map_or_else(dash, |h| h.to_string()),
            v.head
                .as_deref()
                .map_or_else(dash, |h| h.chars().take(8).collect()),
            v.peers.map_or_else(dash, |p| p.to_string()),
            v.blocks_won.map_or_else(dash, |w| w.to_string()),
            v.orphaned.map_or_else(dash, |o| o.to_string()),
            power,
            v.api,
            state,
        );
        out.push_str(line.trim_end());
        out.push('\n');
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
