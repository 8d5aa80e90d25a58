//! The node: the consensus core wired to a store, a network and an API.
//!
//! One tokio runtime runs these tasks, talking over channels:
//!
//! - the p2p event loop, the only owner of the libp2p swarm ([`crate::p2p`]);
//! - the chain task ([`service`]), the only owner of the block tree, the
//!   store's write side and the mempool;
//! - the gossip handler ([`gossip`]): network events in, verdicts out;
//! - the syncer ([`sync`]): fetches missing blocks from peers;
//! - the miner or the staker ([`producer`]);
//! - the HTTP API ([`api`]).
//!
//! SIGINT or SIGTERM stops them; every committed block is already durable
//! (one redb transaction per import), so shutdown has nothing to flush
//! beyond letting the current import finish.

pub mod api;
pub mod chain;
pub mod gossip;
pub mod mempool;
pub mod metrics;
pub mod producer;
pub mod service;
pub mod store;
pub mod sync;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use klero_chain::pow::kernel::Kernel;
use klero_chain::pow::search::{DEFAULT_CHUNK, SearchOptions};
use klero_chain::spec::Consensus;
use klero_chain::{ChainSpec, Keypair};
use libp2p::Multiaddr;
use tokio::sync::mpsc;
use tracing::info;

use crate::bench::calibrate;
use crate::p2p::{self, P2pConfig};

/// How a node runs (from the command line and the config file).
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The chain spec.
    pub spec: ChainSpec,
    /// Where the database and the network identity live.
    pub data_dir: PathBuf,
    /// Network listen addresses.
    pub listen: Vec<Multiaddr>,
    /// The HTTP API address.
    pub rpc: SocketAddr,
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
}

/// Runs a node until SIGINT or SIGTERM.
///
/// # Errors
///
/// If the data dir, the store, the network or the API address cannot be set
/// up, or the options do not fit the chain's consensus.
pub async fn run(config: NodeConfig) -> Result<()> {
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
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let store = store::Store::open(&config.data_dir, &spec)
        .with_context(|| format!("opening the database in {}", config.data_dir.display()))?;
    let chain = chain::Chain::load((*spec).clone(), store.clone())?;
    let genesis = store.canonical(0)?.context("the database has no genesis block")?;

    let identity = p2p::load_or_create_identity(&config.data_dir).context("loading the network identity")?;
    let peer_id = identity.public().to_peer_id().to_string();
    let (net, events, event_loop) = p2p::new(P2pConfig {
        chain_id: spec.chain_id.clone(),
        listen: config.listen,
        bootnodes: config.bootnodes,
        keypair: identity,
        mdns: config.mdns,
    })?;
    tokio::spawn(event_loop.run());

    let metrics = Arc::new(metrics::Metrics::default());
    let syncing = Arc::new(AtomicBool::new(false));
    let (service, chain) = service::ChainService::new(
        chain,
        mempool::Mempool::new(mempool::DEFAULT_CAPACITY),
        config.key.clone(),
        net.clone(),
        Arc::clone(&metrics),
    );
    tokio::spawn(service.run());

    let (sync_tx, sync_rx) = mpsc::channel(64);
    tokio::spawn(
        gossip::GossipHandler {
            chain: chain.clone(),
            net: net.clone(),
            store: store.clone(),
            genesis,
            metrics: Arc::clone(&metrics),
            sync: sync_tx,
        }
        .run(events),
    );
    tokio::spawn(
        sync::Syncer {
            chain: chain.clone(),
            net: net.clone(),
            genesis,
            syncing: Arc::clone(&syncing),
        }
        .run(sync_rx),
    );

    if let Some(key) = config.key.clone() {
        match &spec.consensus {
            Consensus::Pow(_) if config.mine => {
                // Time the kernels off the async workers; the default if that fails.
                let kernel =
                    tokio::task::spawn_blocking(|| calibrate::fastest_kernel(calibrate::MINER_BUDGET))
                        .await
                        .unwrap_or_else(|_| Kernel::detect());
                let opts = SearchOptions {
                    threads: config.threads.max(1),
                    kernel,
                    hashrate_cap: config.hashrate_cap,
                    chunk: DEFAULT_CHUNK,
                };
                info!(threads = opts.threads, cap = ?opts.hashrate_cap, kernel = %opts.kernel, "mining");
                tokio::spawn(producer::mine(
                    chain.clone(),
                    key,
                    spec.chain_id.clone(),
                    opts,
                    Arc::clone(&metrics),
                ));
            }
            Consensus::Pos(params) if config.stake => {
                info!(address = %key.address(), "staking");
                tokio::spawn(producer::stake(
                    chain.clone(),
                    Arc::clone(&spec),
                    params.clone(),
                    Arc::clone(&syncing),
                ));
            }
            _ => {}
        }
    }

    let listener = tokio::net::TcpListener::bind(config.rpc)
        .await
        .with_context(|| format!("binding the HTTP API to {}", config.rpc))?;
    info!(rpc = %config.rpc, peer_id, chain = spec.chain_id, "node started");
    let app = api::router(api::ApiState {
        chain,
        store,
        spec: Arc::clone(&spec),
        genesis,
        metrics,
        net: net.clone(),
        peer_id,
        syncing,
        proposer: config.key.as_ref().map(Keypair::address),
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving the HTTP API")?;
    info!("shutting down");
    let _ = net.shutdown().await;
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
