//! Live fairness of a testnet, from the chain itself: `klero testnet
//! fairness` and the fairness columns of `klero testnet status`.
//!
//! The canonical chain is walked block by block through the API client
//! (`GET /blocks/{height}`) on one honest running node, and each block is
//! credited to the node whose key proposed it; nothing is taken from the
//! nodes' counters of their own wins. Per node: its weight share (PoW: its
//! hashrate-cap weight; PoS: its bonded stake on the chain), the canonical
//! blocks it won, the observed share with a 95% Wilson interval, and the
//! blocks it produced that are not canonical (its `/metrics` count of
//! produced blocks minus its canonical ones; a restart resets the count).
//! Over the run, a chi-square test of the wins against the weight shares.
//!
//! A strategy node is listed beside the lab's prediction for the γ it
//! measured ([`super::strategy::Record`]): the closed form and a lab run
//! with as many honest miners as the testnet has.

use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use super::genesis::Consensus;
use super::strategy::{Record, Strategy};
use super::{NodeEntry, State, process};
use crate::api::client::{ApiClient, ClientError};
use crate::bench::stats;
use crate::keyfile;
use crate::lab::attack::{Estimate, selfish};

/// z of a two-sided 95% interval.
const Z_95: f64 = 1.959_964;
/// Attempts at a consistent walk while the chain moves under it.
const WALK_ATTEMPTS: usize = 4;

/// The canonical chain as one node serves it: `(id, parent, proposer)` by
/// height − 1. Kept between calls, so a refresh fetches only new blocks
/// and those a reorg replaced.
#[derive(Clone, Debug, Default)]
pub(crate) struct ChainWalk {
    blocks: Vec<(String, String, String)>,
}

impl ChainWalk {
    /// Brings the walk up to the node's head.
    ///
    /// # Errors
    ///
    /// If the node does not answer.
    pub(crate) fn update(&mut self, client: &ApiClient) -> Result<(), ClientError> {
        for _ in 0..WALK_ATTEMPTS {
            let height = client.status()?.height;
            self.blocks
                .truncate(usize::try_from(height).unwrap_or(usize::MAX));
            // Back from the top until the node's block is the one we have.
            while let Some(last) = self.blocks.last() {
                let at = self.blocks.len() as u64;
                match client.block_at(at)? {
                    Some(block) if block.id == last.0 => break,
                    _ => {
                        self.blocks.pop();
                    }
                }
            }
            for at in self.blocks.len() as u64 + 1..=height {
                match client.block_at(at)? {
                    Some(block) => self.blocks.push((block.id, block.parent, block.proposer)),
                    None => break,
                }
            }
            if self.linked() {
                return Ok(());
            }
            // A reorg during the walk: throw away the part that does not link.
            let keep = self
                .blocks
                .windows(2)
                .position(|w| w[1].1 != w[0].0)
                .map_or(self.blocks.len(), |i| i + 1);
            self.blocks.truncate(keep);
        }
        Ok(())
    }

    fn linked(&self) -> bool {
        self.blocks.windows(2).all(|w| w[1].1 == w[0].0)
    }

    /// Canonical blocks (genesis excluded).
    pub(crate) fn len(&self) -> u64 {
        self.blocks.len() as u64
    }

    /// How many of them `address` proposed.
    pub(crate) fn won_by(&self, address: &str) -> u64 {
        self.blocks.iter().filter(|b| b.2 == address).count() as u64
    }
}

/// One node's fairness figures.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct NodeFairness {
    /// Hashrate-cap weight (PoW) or bonded stake (PoS).
    pub weight: u64,
    /// Its share of the total weight.
    pub weight_share: f64,
    /// Canonical blocks it proposed.
    pub canonical_won: u64,
    /// `canonical_won` over all canonical blocks.
    pub share: f64,
    /// 95% Wilson interval of `share`.
    pub share_low: f64,
    /// See `share_low`.
    pub share_high: f64,
    /// Whether `weight_share` lies in the interval.
    pub inside: bool,
    /// Blocks it produced (its `/metrics`), if it answers.
    pub produced: Option<u64>,
    /// Produced but not canonical.
    pub orphaned: Option<u64>,
    /// The run's chi-square p-value (the same on every node's row).
    pub run_p_value: Option<f64>,
}

/// A strategy node beside the lab's prediction.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct StrategyView {
    /// The node.
    pub node: String,
    /// Its strategy.
    pub strategy: Strategy,
    /// Its weight share.
    pub alpha: f64,
    /// Its share of canonical blocks, with the Wilson interval.
    pub live_share: f64,
    /// See `live_share`.
    pub live_low: f64,
    /// See `live_share`.
    pub live_high: f64,
    /// What it recorded.
    pub record: Record,
    /// Selfish: the γ it measured.
    pub gamma_measured: Option<f64>,
    /// Selfish: Eyal and Sirer's closed form at alpha and the measured γ.
    pub closed_form: Option<f64>,
    /// Selfish: the lab's simulated share at alpha and the measured γ.
    pub lab: Option<Estimate>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Fairness {
    /// The node whose chain was walked.
    pub walked_on: String,
    /// Canonical blocks.
    pub blocks: u64,
    /// Canonical blocks by keys that are no node's.
    pub others: u64,
    /// Per node, in the testnet's order.
    pub nodes: Vec<(String, NodeFairness)>,
    /// Chi-square of the wins of nodes with weight against their shares.
    pub chi2: Option<f64>,
    /// Its degrees of freedom.
    pub df: usize,
    /// Its p-value.
    pub p_value: Option<f64>,
    /// Strategy nodes and the lab's prediction.
    pub strategies: Vec<StrategyView>,
}

fn client(node: &NodeEntry) -> Option<ApiClient> {
    let running = node.pid.is_some_and(process::alive);
    running
        .then(|| ApiClient::new(&node.api, Duration::from_secs(5)).ok())
        .flatten()
}

fn address(node: &NodeEntry) -> Option<String> {
    let key = keyfile::read(node.key.as_deref()?).ok()?;
    Some(key.address().to_bech32())
}

/// `klero_blocks_proposed_total` from a node's `/metrics`.
fn produced(client: &ApiClient) -> Option<u64> {
    let text = client.metrics().ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("klero_blocks_proposed_total "))
        .and_then(|v| v.trim().parse().ok())
}

/// Measures the testnet, walking the chain into `walk` (kept by the caller
/// between refreshes). `predict` adds the lab's prediction for strategy
/// nodes: a second or so of simulation, so the refreshing tables skip it.
///
/// # Errors
///
/// If no honest node is running to walk.
pub(crate) fn measure(state: &State, walk: &mut ChainWalk, predict: bool) -> Result<Fairness> {
    let (walker, api) = state
        .nodes
        .iter()
        .filter(|n| n.strategy.is_none())
        .find_map(|n| client(n).map(|c| (n, c)))
        .context("no honest node of the testnet is running")?;
    walk.update(&api)
        .with_context(|| format!("walking the chain on {}", walker.name))?;
    let addresses: Vec<Option<String>> = state.nodes.iter().map(address).collect();
    let weights: Vec<u64> = state
        .nodes
        .iter()
        .zip(&addresses)
        .map(|(node, address)| match state.consensus {
            Consensus::Pow => node.weight,
            Consensus::Pos => address
                .as_deref()
                .and_then(|a| api.account(a).ok().flatten())
                .map_or(0, |a| a.bonded),
        })
        .collect();
    let total_weight: u64 = weights.iter().sum();
    let blocks = walk.len();
    let won: Vec<u64> = addresses
        .iter()
        .map(|a| a.as_deref().map_or(0, |a| walk.won_by(a)))
        .collect();
    let weighted: Vec<(u64, f64)> = won
        .iter()
        .zip(&weights)
        .filter(|(_, w)| **w > 0)
        .map(|(o, w)| (*o, *w as f64 / total_weight as f64))
        .collect();
    let test = (weighted.len() >= 2 && weighted.iter().map(|w| w.0).sum::<u64>() > 0).then(|| {
        let (observed, probs): (Vec<u64>, Vec<f64>) = weighted.iter().copied().unzip();
        stats::chi_square_gof(&observed, &probs)
    });
    let nodes: Vec<(String, NodeFairness)> = state
        .nodes
        .iter()
        .zip(weights.iter().zip(&won))
        .map(|(node, (weight, won))| {
            let weight_share = if total_weight == 0 {
                0.0
            } else {
                *weight as f64 / total_weight as f64
            };
            let (low, high) = stats::wilson(*won, blocks, Z_95);
            let produced = client(node).as_ref().and_then(produced);
            let fairness = NodeFairness {
                weight: *weight,
                weight_share,
                canonical_won: *won,
                share: *won as f64 / blocks.max(1) as f64,
                share_low: low,
                share_high: high,
                inside: (low..=high).contains(&weight_share),
                produced,
                orphaned: produced.map(|p| p.saturating_sub(*won)),
                run_p_value: test.map(|t| t.p_value),
            };
            (node.name.clone(), fairness)
        })
        .collect();
    let strategies = strategy_views(state, &nodes, predict);
    Ok(Fairness {
        walked_on: walker.name.clone(),
        blocks,
        others: blocks - won.iter().sum::<u64>().min(blocks),
        nodes,
        chi2: test.map(|t| t.statistic),
        df: test.map_or(0, |t| t.df),
        p_value: test.map(|t| t.p_value),
        strategies,
    })
}

/// Lab runs behind a live prediction: enough for a ±0.01 interval.
const PREDICTION: selfish::Config = selfish::Config {
    half_life_blocks: selfish::DEV_HALF_LIFE,
    honest_miners: 0,
    blocks: 20_000,
    runs: 10,
    seed: 1,
};

fn strategy_views(state: &State, nodes: &[(String, NodeFairness)], predict: bool) -> Vec<StrategyView> {
    let honest_producers = state
        .nodes
        .iter()
        .zip(nodes)
        .filter(|(n, (_, f))| n.strategy.is_none() && f.weight > 0)
        .count()
        .max(1);
    state
        .nodes
        .iter()
        .zip(nodes)
        .filter_map(|(node, (_, f))| {
            let strategy = node.strategy?;
            let record = Record::read(&node.data_dir).unwrap_or_default();
            let gamma = record.gamma().filter(|_| strategy == Strategy::Selfish);
            let alpha = f.weight_share;
            let predictable = gamma.is_some() && alpha > 0.0 && alpha < 0.5;
            let simulate = predict && predictable;
            let lab = simulate.then(|| {
                // The lab's gamma is per miner other than the finder: scale
                // the measured share back so the lab measures the same γ.
                let n = honest_producers as f64;
                let per_miner = if n > 1.0 {
                    (gamma.unwrap_or(0.0) * n / (n - 1.0)).min(1.0)
                } else {
                    0.0
                };
                let cfg = selfish::Config {
                    honest_miners: honest_producers,
                    ..PREDICTION
                };
                selfish::point(alpha, per_miner, &cfg, 0).share
            });
            Some(StrategyView {
                node: node.name.clone(),
                strategy,
                alpha,
                live_share: f.share,
                live_low: f.share_low,
                live_high: f.share_high,
                gamma_measured: gamma,
                closed_form: gamma
                    .filter(|_| predictable)
                    .map(|g| selfish::closed_form(alpha, g)),
                lab,
                record,
            })
        })
        .collect()
}

/// The fairness table (below the status table, and `klero testnet fairness`).
pub(crate) fn render(consensus: Consensus, fairness: &Fairness) -> String {
    let weight = match consensus {
        Consensus::Pos => "stake",
        Consensus::Pow => "weight",
    };
    let p = fairness.p_value.map_or_else(
        || "-".to_owned(),
        |p| {
            format!(
                "{p:.3} (chi-square {:.2}, df {})",
                fairness.chi2.unwrap_or(0.0),
                fairness.df
            )
        },
    );
    let mut out = format!(
        "fairness over {} canonical blocks (walked on {}): p = {p}\n{:<8} {:>8} {:>7} {:>6} {:>7} {:>17} {:>3} {:>8} {:>8}\n",
        fairness.blocks,
        fairness.walked_on,
        "node",
        weight,
        "w-share",
        "won",
        "share",
        "95% interval",
        "in",
        "produced",
        "orphaned"
    );
    let dash = || "-".to_owned();
    for (name, f) in &fairness.nodes {
        out.push_str(&format!(
            "{:<8} {:>8} {:>7.3} {:>6} {:>7.3} {:>17} {:>3} {:>8} {:>8}\n",
            name,
            f.weight,
            f.weight_share,
            f.canonical_won,
            f.share,
            format!("[{:.3}, {:.3}]", f.share_low, f.share_high),
            if f.inside { "yes" } else { "no" },
            f.produced.map_or_else(dash, |p| p.to_string()),
            f.orphaned.map_or_else(dash, |o| o.to_string()),
        ));
    }
    if fairness.others > 0 {
        out.push_str(&format!(
            "{:<8} {:>8} {:>7} {:>6}\n",
            "others", "-", "-", fairness.others
        ));
    }
    for s in &fairness.strategies {
        out.push_str(&format!(
            "{} ({}): alpha {:.3}, live share {:.3} [{:.3}, {:.3}], made {}, released {}, lost {}",
            s.node,
            s.strategy.name(),
            s.alpha,
            s.live_share,
            s.live_low,
            s.live_high,
            s.record.made,
            s.record.released,
            s.record.lost
        ));
        if let Some(g) = s.gamma_measured {
            out.push_str(&format!(
                "; gamma {g:.3} from {} races decided by honest blocks",
                s.record.races_decided_by_honest
            ));
        }
        if let (Some(r), Some(lab)) = (s.closed_form, &s.lab) {
            out.push_str(&format!(
                "; predicted: closed form {r:.3}, lab {:.3} [{:.3}, {:.3}]",
                lab.mean, lab.low, lab.high
            ));
        }
        out.push('\n');
    }
    out
}
