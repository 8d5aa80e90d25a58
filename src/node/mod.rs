//! The node: the consensus core wired to a store, a network and an API.
//!
//! [`run`] is handed its bound API socket and a shutdown future (the shape
//! of mini-redis' `server::run`), so a test starts a node on port 0 and
//! reads the address back. One tokio runtime runs these tasks, talking
//! over channels:
//!
//! - the p2p event loop, the only owner of the libp2p swarm ([`crate::p2p`]);
//! - the chain task ([`chain_task`]), the only owner of the block tree
//!   ([`block_tree`]), the orphan pool ([`orphans`]), the store's write
//!   side ([`store`]) and the mempool ([`mempool`]);
//! - the gossip handler ([`gossip`]): network events in, verdicts out;
//!   strikes and budgets for peers ([`peers`]);
//! - sync ([`sync`]): the client fetches missing blocks, the server (a
//!   task of its own, fed by the gossip handler) answers peers from the
//!   store;
//! - the miner or the staker ([`producer`]), which times PoS blocks by the
//!   slot-battle policy ([`slot_battle`]);
//! - the HTTP API ([`http`]) with its types in [`crate::api`];
//! - with `--chaos` only, the admin API ([`admin`]) on its own socket: the
//!   network's partitions and link faults.
//!
//! # Shutdown
//!
//! When the shutdown future resolves, a `watch` flag tells every task but
//! the chain task and the event loop to stop; they are joined (a
//! [`JoinSet`], aborted after [`SHUTDOWN_GRACE`]). Their chain handles go
//! with them, so the chain task then serves what is queued (the import in
//! flight completes), returns the block tree, and the store closes (every
//! committed import was already durable: one redb transaction each).
//! Last the network stops, and the addresses file is removed.

pub(crate) mod admin;
pub mod block_tree;
pub(crate) mod chain_task;
pub(crate) mod explorer;
pub(crate) mod gossip;
pub(crate) mod http;
pub mod mempool;
pub(crate) mod metrics;
pub(crate) mod orphans;
pub(crate) mod peers;
pub(crate) mod producer;
pub(crate) mod recent;
pub(crate) mod slot_battle;
pub mod store;
pub(crate) mod sync;
pub(crate) mod tx_index;
pub(crate) mod withheld;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use klero_chain::pow::kernel::Kernel;
use klero_chain::pow::search::{DEFAULT_CHUNK, SearchOptions};
use klero_chain::spec::Consensus;
use klero_chain::{ChainSpec, Keypair};
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::bench::calibrate;
use crate::p2p::{self, NetworkHandle, P2pConfig};
use crate::testnet::strategy::{self, Strategy};

/// Name of the file in the data dir that says where a running node listens.
pub const ADDRESSES_FILE: &str = "addresses.json";
/// How long the tasks get to stop before they are aborted.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long to wait for libp2p to report its bound listen addresses.
const LISTEN_WAIT: Duration = Duration::from_secs(10);
/// Sync requests waiting for the sync server; more are refused at once.
const SYNC_SERVER_QUEUE: usize = 64;

/// How a node runs (from the command line and the config file).
#[derive(Clone, Debug)]
pub(crate) struct NodeConfig {
    /// The chain spec.
    pub spec: ChainSpec,
    /// Where the database and the network identity live.
    pub data_dir: PathBuf,
    /// Network listen addresses (libp2p binds them; port 0 picks one).
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start.
    pub bootnodes: Vec<Multiaddr>,
    /// The proposer key (mining rewards, staking).
    pub key: Option<Keypair>,
    /// Mine (PoW chains).
    pub mine: bool,
    /// Miner threads.
    pub threads: usize,
    /// Cap on the miner's hashes per second.
    pub hashrate_cap: Option<u64>,
    /// Propose blocks in won slots (PoS chains).
    pub stake: bool,
    /// Discover LAN peers by multicast DNS.
    pub mdns: bool,
    /// A testnet strategy: the producer's blocks are withheld and released
    /// by it (`crate::testnet::strategy`). `None` on every honest node.
    pub strategy: Option<Strategy>,
    /// Keep every block's change set and every old state tree instead of
    /// pruning what falls out of the reorg window.
    pub archive: bool,
}

/// The sockets a node is handed, already bound.
#[derive(Debug)]
pub(crate) struct Listeners {
    /// The HTTP API.
    pub api: TcpListener,
    /// The admin API, bound to 127.0.0.1 by `--chaos`; `None` without it,
    /// and then the network refuses every fault.
    pub admin: Option<TcpListener>,
}

/// `DATA_DIR/addresses.json`: where a running node listens, written once
/// every listener is bound (so `--rpc 127.0.0.1:0` and
/// `--listen /ip4/127.0.0.1/tcp/0` can be read back) and removed on a
/// clean stop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addresses {
    /// The HTTP API's socket address.
    pub api: SocketAddr,
    /// The libp2p listen addresses, each ending in `/p2p/<peer id>`.
    pub p2p: Vec<String>,
    /// The admin API's socket address (`--chaos` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<SocketAddr>,
}

impl Addresses {
    /// Reads a data dir's addresses file.
    ///
    /// # Errors
    ///
    /// If it is missing (the node is not up yet) or damaged.
    pub fn read(data_dir: &Path) -> Result<Addresses> {
        let path = data_dir.join(ADDRESSES_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display()))
    }

    /// Writes it whole or not at all (a temporary file renamed over it).
    fn write(&self, data_dir: &Path) -> Result<()> {
        let path = data_dir.join(ADDRESSES_FILE);
        let tmp = data_dir.join(format!("{ADDRESSES_FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// Runs a node until `shutdown` resolves, then stops it cleanly (see the
/// module docs).
///
/// # Errors
///
/// If the data dir, the store or the network cannot be set up, or the
/// options do not fit the chain's consensus.
pub(crate) async fn run(
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
    config: NodeConfig,
) -> Result<()> {
    let spec = Arc::new(config.spec);
    match (&spec.consensus, config.mine, config.stake) {
        (Consensus::Pos(_), true, _) => bail!(
            "--mine needs a proof-of-work chain; {} is proof of stake",
            spec.chain_id
        ),
        (Consensus::Pow(_), _, true) => bail!(
            "--stake needs a proof-of-stake chain; {} is proof of work",
            spec.chain_id
        ),
        _ => {}
    }
    if (config.mine || config.stake) && config.key.is_none() {
        bail!("--mine and --stake need --key FILE: the key that proposes and collects rewards");
    }
    if let Some(strategy) = config.strategy {
        strategy
            .check(matches!(spec.consensus, Consensus::Pow(_)))
            .map_err(anyhow::Error::msg)?;
        if !(config.mine || config.stake) {
            bail!("--strategy needs --mine or --stake: it decides when the node's own blocks go out");
        }
    }
    // Honest nodes publish their blocks at once; a strategy node holds them.
    let origin = if config.strategy.is_some() {
        chain_task::Origin::Withheld
    } else {
        chain_task::Origin::Local
    };
    let data_dir = config.data_dir;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let store = store::Store::open(&data_dir, &spec)
        .with_context(|| format!("opening the database in {}", data_dir.display()))?;
    let mut tree = block_tree::BlockTree::load((*spec).clone(), store.clone())?;
    tree.set_archive(config.archive);
    let genesis = store.canonical(0)?.context("the database has no genesis block")?;

    let identity = p2p::load_or_create_identity(&data_dir).context("loading the network identity")?;
    let peer_id = identity.public().to_peer_id();
    let expected_listeners = config.listen.len();
    let (net, events, event_loop) = p2p::new(P2pConfig {
        chain_id: spec.chain_id.clone(),
        listen: config.listen,
        bootnodes: config.bootnodes,
        keypair: identity,
        mdns: config.mdns,
    })?;
    let event_loop = if listeners.admin.is_some() {
        event_loop.with_chaos()
    } else {
        event_loop
    };
    let network = tokio::spawn(event_loop.run());

    let metrics = Arc::new(metrics::Metrics::default());
    let sync_status = Arc::new(sync::SyncStatus::default());
    let recent = Arc::new(recent::Recent::default());
    let (chain_task, chain) = chain_task::ChainTask::new(
        tree,
        mempool::Mempool::new(mempool::DEFAULT_CAPACITY),
        config.key.clone(),
        net.clone(),
        Arc::clone(&metrics),
        Arc::clone(&recent),
    );
    let chain_task = tokio::spawn(chain_task.run());

    let (stop, stopping) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let strikes = peers::Strikes::new(net.clone(), Arc::clone(&metrics));
    let (sync_tx, sync_rx) = mpsc::channel(64);
    let (serve_tx, serve_rx) = mpsc::channel(SYNC_SERVER_QUEUE);
    tasks.spawn(
        gossip::GossipHandler {
            chain: chain.clone(),
            net: net.clone(),
            sync_server: serve_tx,
            strikes: strikes.clone(),
            metrics: Arc::clone(&metrics),
            sync: sync_tx,
        }
        .run(events, stopping.clone()),
    );
    tasks.spawn(
        sync::SyncServer {
            chain: chain.clone(),
            net: net.clone(),
            store: store.clone(),
            genesis,
            metrics: Arc::clone(&metrics),
        }
        .run(serve_rx, stopping.clone()),
    );
    let max_rollback = match &spec.consensus {
        Consensus::Pos(params) => params.max_rollback,
        Consensus::Pow(_) => 0,
    };
    tasks.spawn(
        sync::Syncer {
            chain: chain.clone(),
            net: net.clone(),
            genesis,
            status: Arc::clone(&sync_status),
            strikes,
            metrics: Arc::clone(&metrics),
            max_rollback,
            spec: Arc::clone(&spec),
        }
        .run(sync_rx, stopping.clone()),
    );

    if let Some(key) = config.key.clone() {
        let me = key.address();
        match &spec.consensus {
            Consensus::Pow(_) if config.mine => {
                // Time the kernels off the async workers; the default if that fails.
                let kernel =
                    tokio::task::spawn_blocking(|| calibrate::fastest_kernel(calibrate::MINER_BUDGET))
                        .await
                        .unwrap_or_else(|_| Kernel::detect());
                let opts = producer::MinerOptions {
                    search: SearchOptions {
                        threads: config.threads.max(1),
                        kernel,
                        chunk: DEFAULT_CHUNK,
                    },
                    hashrate_cap: config.hashrate_cap,
                };
                info!(threads = opts.search.threads, cap = ?opts.hashrate_cap, kernel = %opts.search.kernel, "mining");
                tasks.spawn(producer::mine(
                    chain.clone(),
                    key,
                    spec.chain_id.clone(),
                    opts,
                    Arc::clone(&metrics),
                    origin,
                    stopping.clone(),
                ));
            }
            Consensus::Pos(params) if config.stake => {
                info!(address = %key.address(), "staking");
                tasks.spawn(producer::stake(
                    chain.clone(),
                    Arc::clone(&spec),
                    params.clone(),
                    Arc::clone(&sync_status),
                    origin,
                    stopping.clone(),
                ));
            }
            _ => {}
        }
        if let Some(strategy) = config.strategy {
            let ctx = strategy::StrategyCtx {
                chain: chain.clone(),
                store: store.clone(),
                net: net.clone(),
                spec: Arc::clone(&spec),
                me,
                data_dir: data_dir.clone(),
            };
            tasks.spawn(strategy::run(strategy, ctx, stopping.clone()));
        }
    }

    let api_addr = listeners
        .api
        .local_addr()
        .context("reading the API's bound address")?;
    let app = http::router(http::ApiState {
        chain,
        store,
        spec: Arc::clone(&spec),
        genesis,
        metrics,
        recent,
        net: net.clone(),
        peer_id: peer_id.to_string(),
        sync: sync_status,
        proposer: config.key.as_ref().map(Keypair::address),
    });
    tasks.spawn(serve(listeners.api, app, stopping.clone()));

    let admin_addr = match listeners.admin {
        Some(admin) => {
            let addr = admin
                .local_addr()
                .context("reading the admin API's bound address")?;
            tasks.spawn(serve(admin, admin::router(net.clone()), stopping.clone()));
            warn!(admin = %addr, "--chaos: network faults can be set through the admin API");
            Some(addr)
        }
        None => None,
    };

    let p2p = bound_listen_addrs(&net, expected_listeners).await;
    let addresses = Addresses {
        api: api_addr,
        p2p: p2p
            .iter()
            .map(|a| a.clone().with(Protocol::P2p(peer_id)).to_string())
            .collect(),
        admin: admin_addr,
    };
    addresses.write(&data_dir)?;
    info!(api = %api_addr, p2p = ?addresses.p2p, %peer_id, chain = spec.chain_id, "node started");

    tokio::pin!(shutdown);
    tokio::select! {
        () = &mut shutdown => {}
        Some(ended) = tasks.join_next() => warn!(?ended, "a node task ended on its own; stopping"),
    }
    info!("shutting down");
    let _ = stop.send(true);
    let joined = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if joined.is_err() {
        warn!("tasks still running after {SHUTDOWN_GRACE:?}; aborting them");
        tasks.shutdown().await;
    }
    // Every chain handle is gone with the tasks: the chain task finishes
    // what is queued and hands back the block tree; dropping it closes the store.
    match chain_task.await {
        Ok(tree) => {
            let head = tree.head();
            info!(height = head.meta.height, head = %head.id.short(), "chain closed");
        }
        Err(error) => warn!(%error, "the chain task failed"),
    }
    let _ = net.shutdown().await;
    let _ = network.await;
    let _ = std::fs::remove_file(data_dir.join(ADDRESSES_FILE));
    info!("stopped");
    Ok(())
}

/// Serves `app` on `listener` until the shutdown flag is set, finishing
/// the requests in progress.
async fn serve(listener: TcpListener, app: axum::Router, mut stop: watch::Receiver<bool>) {
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stopped(&mut stop).await })
        .await;
    if let Err(error) = served {
        warn!(%error, "an HTTP server stopped");
    }
}

/// Resolves once the shutdown flag is set (or its sender is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// The addresses libp2p has bound, once it reports at least `expected`
/// (each configured address binds at least one), or what it has after
/// [`LISTEN_WAIT`].
async fn bound_listen_addrs(net: &NetworkHandle, expected: usize) -> Vec<Multiaddr> {
    let deadline = tokio::time::Instant::now() + LISTEN_WAIT;
    loop {
        let addrs = net.listen_addrs().await.unwrap_or_default();
        if addrs.len() >= expected || tokio::time::Instant::now() >= deadline {
            return addrs;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
