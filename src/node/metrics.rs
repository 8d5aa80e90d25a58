//! The node's counters, rendered as Prometheus text for `GET /metrics`.
//!
//! Plain atomics written by the tasks that own each event; a registry
//! crate would add a dependency for a dozen numbers.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Samples a summary keeps for its quantiles.
const SUMMARY_WINDOW: usize = 1024;

/// Everything `/metrics` reports.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// Head height.
    pub height: AtomicU64,
    /// Connected peers.
    pub peers: AtomicU64,
    /// Blocks that passed validation.
    pub blocks_imported: AtomicU64,
    /// Head switches to another branch.
    pub reorgs: AtomicU64,
    /// Deepest reorg.
    pub reorg_depth_max: AtomicU64,
    /// Transactions in the mempool.
    pub mempool: AtomicU64,
    /// Blocks this node produced.
    pub blocks_proposed: AtomicU64,
    /// Blocks waiting in the orphan pool.
    pub orphans: AtomicU64,
    /// Their encoded bytes.
    pub orphan_bytes: AtomicU64,
    /// Strikes against peers.
    strikes: AtomicU64,
    /// Peers banned for their strikes.
    bans: AtomicU64,
    /// Sync requests answered `Refused` (over a peer's budget, or busy).
    sync_refused: AtomicU64,
    /// Gossiped transactions dropped unread: their peer relayed too many
    /// from senders that cannot pay.
    txs_rate_limited: AtomicU64,
    /// Local hashes per second, as `f64` bits.
    hashrate_bits: AtomicU64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    latency: Mutex<Summary>,
    publish_delay: Mutex<Summary>,
}

/// A Prometheus summary: quantiles over the last [`SUMMARY_WINDOW`]
/// samples, sum and count over all.
#[derive(Debug, Default)]
struct Summary {
    recent: VecDeque<f64>,
    sum: f64,
    count: u64,
}

impl Summary {
    fn record(&mut self, value: f64) {
        if self.recent.len() == SUMMARY_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(value);
        self.sum += value;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let mut sorted: Vec<f64> = self.recent.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} summary");
        for q in [0.5, 0.99] {
            if let Some(v) = quantile(&sorted, q) {
                let _ = writeln!(out, "{name}{{quantile=\"{q}\"}} {v}");
            }
        }
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

impl Metrics {
    /// Counts a refused block.
    pub(crate) fn reject(&self, reason: &'static str) {
        *lock(&self.rejected).entry(reason).or_default() += 1;
    }

    /// Records a reorg of `depth` blocks.
    pub(crate) fn reorg(&self, depth: u64) {
        self.reorgs.fetch_add(1, Ordering::Relaxed);
        self.reorg_depth_max.fetch_max(depth, Ordering::Relaxed);
    }

    /// Records the time from a gossiped block's timestamp to its import.
    pub(crate) fn gossip_latency(&self, seconds: f64) {
        lock(&self.latency).record(seconds);
    }

    /// Records how long after its slot's start our PoS block was published.
    pub(crate) fn publish_delay(&self, seconds: f64) {
        lock(&self.publish_delay).record(seconds);
    }

    /// Counts a strike, and whether it banned the peer.
    pub(crate) fn strike(&self, banned: bool) {
        self.strikes.fetch_add(1, Ordering::Relaxed);
        if banned {
            self.bans.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a sync request refused.
    pub(crate) fn sync_refused(&self) {
        self.sync_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a gossiped transaction dropped by a peer's rate limit.
    pub(crate) fn tx_rate_limited(&self) {
        self.txs_rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the local hashrate.
    pub(crate) fn set_hashrate(&self, hashes_per_sec: f64) {
        self.hashrate_bits
            .store(hashes_per_sec.to_bits(), Ordering::Relaxed);
    }

    /// The local hashrate.
    pub(crate) fn hashrate(&self) -> f64 {
        f64::from_bits(self.hashrate_bits.load(Ordering::Relaxed))
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        gauge(&mut out, "klero_height", "Head height.", get(&self.height));
        gauge(&mut out, "klero_peers", "Connected peers.", get(&self.peers));
        counter(
            &mut out,
            "klero_blocks_imported_total",
            "Blocks that passed validation.",
            get(&self.blocks_imported),
        );
        let _ = writeln!(
            out,
            "# HELP klero_blocks_rejected_total Refused blocks by reason."
        );
        let _ = writeln!(out, "# TYPE klero_blocks_rejected_total counter");
        for (reason, n) in lock(&self.rejected).iter() {
            let _ = writeln!(out, "klero_blocks_rejected_total{{reason=\"{reason}\"}} {n}");
        }
        counter(
            &mut out,
            "klero_reorgs_total",
            "Head switches to another branch.",
            get(&self.reorgs),
        );
        gauge(
            &mut out,
            "klero_reorg_depth_max",
            "Deepest reorg seen.",
            get(&self.reorg_depth_max),
        );
        lock(&self.latency).render(
            &mut out,
            "klero_gossip_latency_seconds",
            "Gossiped block timestamp to local import.",
        );
        lock(&self.publish_delay).render(
            &mut out,
            "klero_publish_delay_seconds",
            "Slot start to the publication of our own PoS block.",
        );
        let _ = writeln!(out, "# HELP klero_hashrate Local hashes per second.");
        let _ = writeln!(out, "# TYPE klero_hashrate gauge");
        let _ = writeln!(out, "klero_hashrate {}", self.hashrate());
        gauge(
            &mut out,
            "klero_mempool_size",
            "Transactions waiting.",
            get(&self.mempool),
        );
        counter(
            &mut out,
            "klero_blocks_proposed_total",
            "Blocks this node produced.",
            get(&self.blocks_proposed),
        );
        gauge(
            &mut out,
            "klero_orphans",
            "Blocks waiting for their parent.",
            get(&self.orphans),
        );
        gauge(
            &mut out,
            "klero_orphan_bytes",
            "Encoded bytes of the blocks waiting for their parent.",
            get(&self.orphan_bytes),
        );
        counter(
            &mut out,
            "klero_peer_strikes_total",
            "Strikes against peers that sent invalid data.",
            get(&self.strikes),
        );
        counter(
            &mut out,
            "klero_peers_banned_total",
            "Peers banned for their strikes.",
            get(&self.bans),
        );
        counter(
            &mut out,
            "klero_sync_requests_refused_total",
            "Sync requests refused: over the peer's budget, or the server busy.",
            get(&self.sync_refused),
        );
        counter(
            &mut out,
            "klero_txs_rate_limited_total",
            "Gossiped transactions dropped unread: their peer relayed too many from unfunded senders.",
            get(&self.txs_rate_limited),
        );
        out
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `q` quantile of sorted samples (nearest rank).
pub(crate) fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    metric(out, name, help, "gauge", value);
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    metric(out, name, help, "counter", value);
}

fn metric(out: &mut String, name: &str, help: &str, kind: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.height.store(7, Ordering::Relaxed);
        m.reject("bad_signature");
        m.reject("bad_signature");
        m.gossip_latency(0.25);
        m.publish_delay(0.5);
        m.reorg(3);
        let text = m.render();
        assert!(text.contains("klero_height 7\n"), "{text}");
        assert!(text.contains("klero_blocks_rejected_total{reason=\"bad_signature\"} 2\n"));
        assert!(text.contains("klero_gossip_latency_seconds{quantile=\"0.5\"} 0.25\n"));
        assert!(text.contains("klero_reorg_depth_max 3\n"));
        assert!(text.contains("klero_publish_delay_seconds{quantile=\"0.99\"} 0.5\n"));
        assert!(text.contains("klero_publish_delay_seconds_count 1\n"));
    }

    #[test]
    fn quantile_is_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
