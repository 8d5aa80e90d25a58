//! The node's counters, rendered as Prometheus text for `GET /metrics`.
//!
//! Plain atomics written by the tasks that own each event; a registry
//! crate would add a dependency for a dozen numbers. The best chain's
//! statistics (wins per proposer, slot fill, blocks off the best chain)
//! come from [`ChainStats`], which the chain task keeps. `.ci/run` checks
//! a live node's output with `promtool check metrics`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use libp2p::PeerId;

use super::recent::ChainStats;

/// Samples a summary keeps for its quantiles.
const SUMMARY_WINDOW: usize = 1024;
/// How long a peer's reported height counts.
pub(crate) const PEER_HEIGHT_TTL: Duration = Duration::from_secs(30);
/// Most peers whose heights are remembered.
const MAX_PEER_HEIGHTS: usize = 1024;
/// The commit the binary was built from (`build.rs`).
const COMMIT: &str = env!("KLERO_COMMIT");

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
    /// Headers checked by headers-first sync.
    sync_headers_checked: AtomicU64,
    /// Branches offered by sync whose headers carried no more work than
    /// our head.
    sync_light_branches: AtomicU64,
    /// Gossiped transactions dropped unread: their peer relayed too many
    /// from senders that cannot pay.
    txs_rate_limited: AtomicU64,
    /// Local hashes per second, as `f64` bits.
    hashrate_bits: AtomicU64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    latency: Mutex<Summary>,
    publish_delay: Mutex<Summary>,
    peer_heights: Mutex<HashMap<PeerId, (u64, Instant)>>,
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

    /// Counts headers checked by headers-first sync.
    pub(crate) fn sync_headers_checked(&self, count: usize) {
        self.sync_headers_checked
            .fetch_add(count as u64, Ordering::Relaxed);
    }

    /// Counts a branch offered by sync that its headers showed lighter
    /// than our head.
    pub(crate) fn sync_light_branch(&self) {
        self.sync_light_branches.fetch_add(1, Ordering::Relaxed);
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

    /// Records the head height a peer reported to the syncer.
    pub(crate) fn peer_height(&self, peer: PeerId, height: u64) {
        let mut heights = self.peer_heights.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if heights.len() >= MAX_PEER_HEIGHTS {
            heights.retain(|_, (_, at)| now.duration_since(*at) < PEER_HEIGHT_TTL);
        }
        if heights.len() < MAX_PEER_HEIGHTS || heights.contains_key(&peer) {
            heights.insert(peer, (height, now));
        }
    }

    /// The heights peers reported in the last [`PEER_HEIGHT_TTL`].
    pub(crate) fn peer_heights(&self) -> HashMap<PeerId, u64> {
        let heights = self.peer_heights.lock().unwrap_or_else(|e| e.into_inner());
        heights
            .iter()
            .filter(|(_, (_, at))| at.elapsed() < PEER_HEIGHT_TTL)
            .map(|(peer, (height, _))| (*peer, *height))
            .collect()
    }

    /// How far the best recent peer report is ahead of our head (0 if none is).
    pub(crate) fn height_gap(&self) -> u64 {
        let best = self.peer_heights().into_values().max().unwrap_or(0);
        best.saturating_sub(self.height.load(Ordering::Relaxed))
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub(crate) fn render(&self, stats: &ChainStats) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP klero_build_info The running binary's version and git commit.\n# TYPE klero_build_info gauge\nklero_build_info{{version=\"{}\",commit=\"{COMMIT}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
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
            "klero_sync_headers_checked_total",
            "Headers checked by headers-first sync (PoW branches that leave the best chain below the head).",
            get(&self.sync_headers_checked),
        );
        counter(
            &mut out,
            "klero_sync_light_branches_total",
            "Branches offered by sync whose headers carry no more work than the head: not downloaded.",
            get(&self.sync_light_branches),
        );
        counter(
            &mut out,
            "klero_txs_rate_limited_total",
            "Gossiped transactions dropped unread: their peer relayed too many from unfunded senders.",
            get(&self.txs_rate_limited),
        );
        gauge(
            &mut out,
            "klero_sync_height_gap",
            "Blocks the best peer (reported in the last 30 s) is ahead of our head.",
            self.height_gap(),
        );
        render_chain_stats(&mut out, stats);
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

/// The label of the series that sums the proposers [`ChainStats`] does not
/// list (never an address: those start `klero1`).
const OTHERS: &str = "others";

/// The best chain's statistics: per-proposer series (at most
/// `MAX_LISTED_PROPOSERS`, then one `proposer="others"` series where the
/// sum is known), orphans, slot fill.
fn render_chain_stats(out: &mut String, stats: &ChainStats) {
    let others = (stats.others.count > 0).then_some(&stats.others);
    let per_proposer = |out: &mut String,
                        name: &str,
                        help: &str,
                        value: &dyn Fn(&super::recent::ProposerStat) -> Option<u64>,
                        rest: Option<u64>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for p in &stats.proposers {
            if let Some(v) = value(p) {
                let _ = writeln!(out, "{name}{{proposer=\"{}\"}} {v}", p.address);
            }
        }
        if let Some(v) = rest {
            let _ = writeln!(out, "{name}{{proposer=\"{OTHERS}\"}} {v}");
        }
    };
    // The others' blocks since genesis would need every account read.
    per_proposer(
        out,
        "klero_proposer_blocks_won",
        "Best-chain blocks each listed proposer won since genesis.",
        &|p| Some(p.blocks_won),
        None,
    );
    per_proposer(
        out,
        "klero_proposer_window_blocks",
        "Blocks each listed proposer (and the others, summed) won among the best chain's last klero_stats_window_blocks.",
        &|p| Some(p.window_wins),
        others.map(|o| o.window_wins),
    );
    per_proposer(
        out,
        "klero_proposer_stake",
        "Each listed proposer's (and the others', summed) stake in the draw snapshot of the head's epoch (PoS).",
        &|p| p.stake,
        others.and_then(|o| o.stake),
    );
    gauge(
        out,
        "klero_proposers_unlisted",
        "Proposers (winners in the window or stakers in the snapshot) summed under proposer=\"others\".",
        stats.others.count,
    );
    gauge(
        out,
        "klero_stats_window_blocks",
        "Best-chain blocks the per-proposer window and the slot fill cover.",
        stats.window_blocks,
    );
    gauge(
        out,
        "klero_orphaned_blocks",
        "Stored blocks that are not on the best chain (lost a fork or left it in a reorg).",
        stats.orphaned,
    );
    if let Some(slot) = stats.head_slot {
        gauge(out, "klero_head_slot", "The head's slot (PoS).", slot);
    }
    if let Some(fill) = stats.slot_fill() {
        let _ = writeln!(
            out,
            "# HELP klero_slot_fill_ratio Share of the window's slots that have a best-chain block (PoS).\n# TYPE klero_slot_fill_ratio gauge\nklero_slot_fill_ratio {fill}"
        );
    }
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
        let text = m.render(&ChainStats::default());
        assert!(text.contains("klero_height 7\n"), "{text}");
        assert!(text.contains("klero_blocks_rejected_total{reason=\"bad_signature\"} 2\n"));
        assert!(text.contains("klero_gossip_latency_seconds{quantile=\"0.5\"} 0.25\n"));
        assert!(text.contains("klero_reorg_depth_max 3\n"));
        assert!(text.contains("klero_publish_delay_seconds{quantile=\"0.99\"} 0.5\n"));
        assert!(text.contains("klero_publish_delay_seconds_count 1\n"));
    }

    /// Each `klero_…` name in the shipped Grafana dashboard (panels and
    /// variables) is a family `/metrics` renders when every series is on (a
    /// PoS chain with proposers and latency samples), and each quantile it
    /// asks for is one rendered.
    #[test]
    fn the_grafana_dashboard_uses_only_rendered_metrics() {
        let dashboard = include_str!("../../testnet/grafana-dashboard.json");
        let json: serde_json::Value = serde_json::from_str(dashboard).expect("valid JSON");
        let panels = json["panels"].as_array().expect("panels");
        assert!(panels.len() >= 10);
        for panel in panels {
            assert!(
                !panel["targets"].as_array().expect("targets").is_empty(),
                "{panel}"
            );
        }
        let m = Metrics::default();
        m.gossip_latency(0.25);
        let stats = ChainStats {
            head_slot: Some(40),
            window_blocks: 30,
            window_slots: Some(40),
            total_stake: Some(100),
            proposers: vec![super::super::recent::ProposerStat {
                address: klero_chain::Keypair::dev("alice").address(),
                window_wins: 30,
                blocks_won: 30,
                stake: Some(100),
            }],
            others: super::super::recent::Others::default(),
            orphaned: 1,
        };
        let text = m.render(&stats);
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
            .collect();
        let mut used = 0;
        for (at, _) in dashboard.match_indices("klero_") {
            let name: String = dashboard[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            assert!(
                families.contains(&name.as_str()),
                "the dashboard uses {name}, which /metrics lacks"
            );
            used += 1;
        }
        assert!(used >= 15, "{used}");
        for (at, _) in dashboard.match_indices("quantile=") {
            let label: String = dashboard[at..].chars().take_while(|c| *c != '}').collect();
            let label = label.replace("\\\"", "\"");
            assert!(text.contains(&label), "{label} is not rendered");
        }
    }

    #[test]
    fn unlisted_proposers_render_as_one_series() {
        let stats = ChainStats {
            window_blocks: 10,
            total_stake: Some(5_000),
            others: super::super::recent::Others {
                count: 9_936,
                window_wins: 4,
                stake: Some(4_000),
            },
            ..ChainStats::default()
        };
        let text = Metrics::default().render(&stats);
        assert!(
            text.contains("klero_proposer_window_blocks{proposer=\"others\"} 4\n"),
            "{text}"
        );
        assert!(text.contains("klero_proposer_stake{proposer=\"others\"} 4000\n"));
        assert!(text.contains("klero_proposers_unlisted 9936\n"));
        assert!(!text.contains("klero_proposer_blocks_won{"));
    }

    #[test]
    fn quantile_is_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
