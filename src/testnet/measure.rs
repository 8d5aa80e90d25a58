//! `klero testnet measure`: the slot-battle figures of a running PoS
//! testnet, from the nodes' `/metrics` and the chain itself.
//!
//! It reads every node's counters, waits the given number of slots, reads
//! them again, and walks the reference node's canonical chain over the
//! heights it grew by:
//!
//! - canonical blocks: heights gained; slots: the slot span of those heights,
//!   so the fill is canonical blocks per slot;
//! - blocks produced: the sum over nodes of `klero_blocks_proposed_total`
//!   (each node counts the blocks it published), so orphans = produced −
//!   canonical;
//! - head reorgs: `klero_reorgs_total` per node, per 100 canonical blocks,
//!   averaged over the nodes;
//! - gossip latency (slot start to import of a gossiped block, so it
//!   includes the publication delay) and publication delay (slot start to
//!   the publication of a node's own block): each node's summary quantiles,
//!   over its last 1024 samples, then the median over nodes and the worst node.
//!
//! It reads nothing but the HTTP API, so it measures a testnet of any klero
//! version that serves these metrics.

use std::fmt;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use klero_chain::ChainSpec;
use klero_chain::pos;
use klero_chain::spec::Consensus;
use serde::Serialize;

use super::State;
use crate::api::SealView;
use crate::api::client::ApiClient;

/// One node's counters at one moment.
#[derive(Clone, Debug, Default)]
struct Counters {
    proposed: f64,
    reorgs: f64,
    publish_sum: f64,
    publish_count: f64,
}

/// A summary's median and p99 over the nodes that report it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Quantiles {
    /// The median over nodes of each node's median, seconds.
    pub median: f64,
    /// The median over nodes of each node's p99, seconds.
    pub p99: f64,
    /// The largest p99 of any node, seconds.
    pub worst_p99: f64,
}

/// What `measure` prints.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Report {
    /// Nodes measured.
    pub nodes: usize,
    /// Slot length, ms.
    pub slot_ms: u64,
    /// The reference node's heights at the start and the end.
    pub heights: (u64, u64),
    /// Slots spanned by those heights.
    pub slots: u64,
    /// Canonical blocks gained.
    pub canonical: u64,
    /// Blocks the nodes published.
    pub produced: u64,
    /// Head reorgs summed over the nodes.
    pub reorgs: u64,
    /// Canonical blocks per slot.
    pub fill: f64,
    /// Produced per canonical block.
    pub blocks_per_canonical: f64,
    /// (produced − canonical) / canonical.
    pub orphan_share: f64,
    /// Reorgs per node per 100 canonical blocks.
    pub reorgs_per_100: f64,
    /// The most reorgs per 100 canonical blocks on one node.
    pub worst_node_reorgs_per_100: f64,
    /// Gossip latency.
    pub gossip_latency: Option<Quantiles>,
    /// Publication delay (absent on nodes that do not report it).
    pub publish_delay: Option<Quantiles>,
    /// The mean publication delay over every block published in the window.
    pub publish_delay_mean: Option<f64>,
}

/// Measures `dir`'s testnet over the next `slots` slots, using its first
/// running node as the reference chain.
///
/// # Errors
///
/// No PoS testnet in `dir`, no running node, or a node that stops answering.
pub(crate) fn measure(state: &State, slots: u64) -> Result<Report> {
    let text =
        std::fs::read_to_string(&state.spec).with_context(|| format!("reading {}", state.spec.display()))?;
    let spec = ChainSpec::from_toml(&text).context("the testnet's spec")?;
    let Consensus::Pos(params) = &spec.consensus else {
        bail!("slot battles are a proof-of-stake matter; this testnet runs proof of work");
    };
    let clients: Vec<ApiClient> = state
        .nodes
        .iter()
        .filter(|n| n.pid.is_some_and(super::process::alive))
        .map(|n| ApiClient::new(&n.api, Duration::from_secs(5)))
        .collect::<Result<_, _>>()?;
    let reference = clients.first().context("no node of the testnet is running")?;
    let before = counters_of(&clients)?;
    let h0 = reference.status()?.height;
    let end = pos::slot_at(&spec, params, now_ms()).saturating_add(slots);
    while pos::slot_at(&spec, params, now_ms()) < end {
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = counters_of(&clients)?;
    let h1 = reference.status()?.height;
    let slot_of = |height: u64| -> Result<u64> {
        match reference.block_at(height)?.map(|b| b.seal) {
            Some(SealView::Pos { slot, .. }) => Ok(slot),
            Some(SealView::Pow { .. }) => bail!("a PoW block on a PoS chain"),
            None => bail!("the reference node has no block at height {height}"),
        }
    };
    let span = slot_of(h1)?.saturating_sub(slot_of(h0)?);
    let latencies: Vec<String> = clients.iter().map(|c| c.metrics()).collect::<Result<_, _>>()?;
    Ok(report(
        params.slot_ms,
        (h0, h1),
        span,
        &before,
        &after,
        &latencies,
    ))
}

fn report(
    slot_ms: u64,
    heights: (u64, u64),
    slots: u64,
    before: &[Counters],
    after: &[Counters],
    metrics: &[String],
) -> Report {
    let canonical = heights.1.saturating_sub(heights.0);
    let delta = |f: fn(&Counters) -> f64| -> Vec<f64> {
        before.iter().zip(after).map(|(b, a)| f(a) - f(b)).collect()
    };
    let produced: f64 = delta(|c| c.proposed).iter().sum();
    let reorgs = delta(|c| c.reorgs);
    let per_100 = |n: f64| {
        if canonical == 0 {
            0.0
        } else {
            100.0 * n / canonical as f64
        }
    };
    let publish_count: f64 = delta(|c| c.publish_count).iter().sum();
    let publish_sum: f64 = delta(|c| c.publish_sum).iter().sum();
    let ratio = |a: f64, b: f64| if b == 0.0 { 0.0 } else { a / b };
    Report {
        nodes: after.len(),
        slot_ms,
        heights,
        slots,
        canonical,
        produced: produced as u64,
        reorgs: reorgs.iter().sum::<f64>() as u64,
        fill: ratio(canonical as f64, slots as f64),
        blocks_per_canonical: ratio(produced, canonical as f64),
        orphan_share: ratio(produced - canonical as f64, canonical as f64),
        reorgs_per_100: per_100(reorgs.iter().sum::<f64>() / after.len().max(1) as f64),
        worst_node_reorgs_per_100: per_100(reorgs.iter().copied().fold(0.0, f64::max)),
        gossip_latency: quantiles(metrics, "klero_gossip_latency_seconds"),
        publish_delay: quantiles(metrics, "klero_publish_delay_seconds"),
        publish_delay_mean: (publish_count > 0.0).then(|| publish_sum / publish_count),
    }
}

fn counters_of(clients: &[ApiClient]) -> Result<Vec<Counters>> {
    clients
        .iter()
        .map(|c| {
            let text = c.metrics()?;
            let get = |series| sample(&text, series).unwrap_or(0.0);
            Ok(Counters {
                proposed: get("klero_blocks_proposed_total"),
                reorgs: get("klero_reorgs_total"),
                publish_sum: get("klero_publish_delay_seconds_sum"),
                publish_count: get("klero_publish_delay_seconds_count"),
            })
        })
        .collect()
}

/// The value of one series (`name` or `name{labels}`) in Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

fn quantiles(metrics: &[String], name: &str) -> Option<Quantiles> {
    let of = |q: &str| -> Vec<f64> {
        let mut v: Vec<f64> = metrics
            .iter()
            .filter_map(|text| sample(text, &format!("{name}{{quantile=\"{q}\"}}")))
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (medians, p99s) = (of("0.5"), of("0.99"));
    Some(Quantiles {
        median: crate::node::metrics::quantile(&medians, 0.5)?,
        p99: crate::node::metrics::quantile(&p99s, 0.5)?,
        worst_p99: *p99s.last()?,
    })
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |x: f64| format!("{:.1} %", 100.0 * x);
        let ms = |s: f64| format!("{:.0} ms", 1000.0 * s);
        writeln!(
            f,
            "{} nodes, {} ms slots; reference heights {}..{} over {} slots",
            self.nodes, self.slot_ms, self.heights.0, self.heights.1, self.slots
        )?;
        writeln!(
            f,
            "slots filled        {} ({} canonical blocks)",
            pct(self.fill),
            self.canonical
        )?;
        writeln!(
            f,
            "blocks produced     {} ({:.3} per canonical block; orphans {} of canonical)",
            self.produced,
            self.blocks_per_canonical,
            pct(self.orphan_share)
        )?;
        writeln!(
            f,
            "head reorgs         {:.1} per 100 blocks (mean over nodes; worst node {:.1}; {} in all)",
            self.reorgs_per_100, self.worst_node_reorgs_per_100, self.reorgs
        )?;
        for (label, q) in [
            ("gossip latency     ", &self.gossip_latency),
            ("publication delay  ", &self.publish_delay),
        ] {
            match q {
                Some(q) => writeln!(
                    f,
                    "{label} median {}, p99 {} (medians over nodes); worst node p99 {}",
                    ms(q.median),
                    ms(q.p99),
                    ms(q.worst_p99)
                )?,
                None => writeln!(f, "{label} not reported")?,
            }
        }
        if let Some(mean) = self.publish_delay_mean {
            writeln!(
                f,
                "publication delay   mean {} over the blocks of the window",
                ms(mean)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_series_and_computes_the_ratios() {
        let node = |proposed: f64, reorgs: f64| Counters {
            proposed,
            reorgs,
            ..Counters::default()
        };
        let metrics = [
            "klero_gossip_latency_seconds{quantile=\"0.5\"} 0.2\nklero_gossip_latency_seconds{quantile=\"0.99\"} 0.5\n",
            "klero_gossip_latency_seconds{quantile=\"0.5\"} 0.4\nklero_gossip_latency_seconds{quantile=\"0.99\"} 0.9\n",
        ]
        .map(str::to_owned);
        let r = report(
            1_000,
            (10, 110),
            125,
            &[node(5.0, 1.0), node(7.0, 0.0)],
            &[node(60.0, 3.0), node(62.0, 6.0)],
            &metrics,
        );
        assert_eq!((r.canonical, r.produced, r.reorgs), (100, 110, 8));
        assert!((r.fill - 0.8).abs() < 1e-9);
        assert!((r.orphan_share - 0.1).abs() < 1e-9);
        assert!((r.reorgs_per_100 - 4.0).abs() < 1e-9);
        assert!((r.worst_node_reorgs_per_100 - 6.0).abs() < 1e-9);
        let q = r.gossip_latency.expect("latency");
        assert_eq!((q.median, q.worst_p99), (0.2, 0.9));
        assert!(r.publish_delay.is_none());
        assert_eq!(sample("a_total 3\na_total_sum 9\n", "a_total"), Some(3.0));
        assert_eq!(sample("a_total_sum 9\n", "a_total"), None);
    }
}
