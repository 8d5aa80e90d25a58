//! `klero node`: run a node. Every option can also come from a TOML file
//! (`--config`), whose keys are the long option names with underscores;
//! the command line wins over the file.
//!
//! This is where the API socket is bound and the signals are caught: the
//! node itself ([`node::run`]) is handed both. Port 0 works for `--rpc` and
//! `--listen`; the bound addresses are in `DATA_DIR/addresses.json`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use libp2p::Multiaddr;
use serde::Deserialize;

use crate::keyfile;
use crate::node::{self, Listeners, NodeConfig};
use crate::testnet::strategy::Strategy;

/// The API address when none is given.
const DEFAULT_RPC: &str = "127.0.0.1:8645";
/// The network address when none is given: loopback, a free port.
const DEFAULT_LISTEN: &str = "/ip4/127.0.0.1/tcp/0";

/// `klero node …`
#[derive(Debug, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeArgs {
    /// The chain spec (TOML).
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Where the database and the network identity live.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Network listen address (repeatable). Default: /ip4/127.0.0.1/tcp/0.
    #[arg(long)]
    #[serde(default)]
    listen: Vec<String>,
    /// HTTP API address (port 0: any free port). Default: 127.0.0.1:8645.
    #[arg(long)]
    rpc: Option<SocketAddr>,
    /// A peer to dial at start, /ip4/…/tcp/…/p2p/… (repeatable).
    #[arg(long)]
    #[serde(default)]
    bootnode: Vec<String>,
    /// The proposer key file (see `klero keys new`).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Mine (proof-of-work chains).
    #[arg(long)]
    #[serde(default)]
    mine: bool,
    /// Miner threads. Default: 1.
    #[arg(long)]
    threads: Option<usize>,
    /// Cap on the miner's hashes per second (to simulate a weaker miner).
    #[arg(long)]
    hashrate_cap: Option<u64>,
    /// Propose blocks in won slots (proof-of-stake chains).
    #[arg(long)]
    #[serde(default)]
    stake: bool,
    /// Discover peers on the LAN by multicast DNS (off by default: it
    /// sends traffic to every host on the network).
    #[arg(long)]
    #[serde(default)]
    mdns: bool,
    /// Serve an admin API on 127.0.0.1 that sets network faults (partitions,
    /// delay, jitter, loss) for testing; `klero testnet` uses it. Its
    /// address is written to DATA_DIR/addresses.json as `admin`.
    #[arg(long)]
    #[serde(default)]
    chaos: bool,
    /// The admin API's port on 127.0.0.1 (with --chaos). Default: 0, any free port.
    #[arg(long)]
    chaos_port: Option<u16>,
    /// Testnets only: follow an attack strategy (selfish: PoW selfish
    /// mining; withhold: PoS late publication). `klero testnet add
    /// --strategy` starts such a node; by hand it needs
    /// --i-know-this-is-an-attack.
    #[arg(long, value_enum)]
    strategy: Option<Strategy>,
    /// Confirms that --strategy is meant: the node then deviates from the
    /// protocol on purpose.
    #[arg(long)]
    #[serde(default)]
    i_know_this_is_an_attack: bool,
    /// Keep every block's change set and old state tree (default: prune
    /// those deeper than the chain's max_rollback).
    #[arg(long)]
    #[serde(default)]
    archive: bool,
    /// Read options from this TOML file.
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
}

impl NodeArgs {
    /// Runs the node.
    ///
    /// # Errors
    ///
    /// Bad options, or whatever stops the node from starting.
    pub fn execute(self) -> Result<()> {
        let (config, rpc, admin) = self.resolve()?;
        init_logging();
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the tokio runtime")?
            .block_on(async {
                let api = tokio::net::TcpListener::bind(rpc)
                    .await
                    .with_context(|| format!("binding the HTTP API to {rpc}"))?;
                let admin = match admin {
                    Some(addr) => Some(
                        tokio::net::TcpListener::bind(addr)
                            .await
                            .with_context(|| format!("binding the admin API to {addr}"))?,
                    ),
                    None => None,
                };
                node::run(Listeners { api, admin }, shutdown_signal(), config).await
            })
    }

    /// Merges the config file under the command line and checks everything;
    /// the node's config, the API address to bind, and the admin API's
    /// (always on 127.0.0.1) with `--chaos`.
    fn resolve(self) -> Result<(NodeConfig, SocketAddr, Option<SocketAddr>)> {
        let args = match self.config.clone() {
            Some(path) => self.over(read_config(&path)?),
            None => self,
        };
        let Some(spec_path) = args.spec else {
            bail!("--spec FILE is required (e.g. testnet/pos.toml)")
        };
        let Some(data_dir) = args.data_dir else {
            bail!("--data-dir DIR is required")
        };
        let listen = if args.listen.is_empty() {
            vec![DEFAULT_LISTEN.to_owned()]
        } else {
            args.listen
        };
        if args.strategy.is_some() && !args.i_know_this_is_an_attack {
            bail!(
                "--strategy makes this node attack the network it joins; it is for local testnets \
                 (`klero testnet add --strategy …`). Add --i-know-this-is-an-attack to run it by hand"
            );
        }
        let rpc = args
            .rpc
            .unwrap_or_else(|| DEFAULT_RPC.parse().expect("valid default"));
        let config = NodeConfig {
            spec: super::spec::load(&spec_path)?,
            data_dir,
            listen: parse_addrs(&listen, "--listen")?,
            bootnodes: parse_addrs(&args.bootnode, "--bootnode")?,
            key: args.key.as_deref().map(keyfile::read).transpose()?,
            mine: args.mine,
            threads: args.threads.unwrap_or(1),
            hashrate_cap: args.hashrate_cap,
            stake: args.stake,
            mdns: args.mdns,
            strategy: args.strategy,
            archive: args.archive,
        };
        if args.chaos_port.is_some() && !args.chaos {
            bail!("--chaos-port needs --chaos");
        }
        let admin = args
            .chaos
            .then(|| SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, args.chaos_port.unwrap_or(0))));
        Ok((config, rpc, admin))
    }

    /// `self` with every option it leaves unset taken from `file`.
    fn over(self, file: NodeArgs) -> NodeArgs {
        NodeArgs {
            spec: self.spec.or(file.spec),
            data_dir: self.data_dir.or(file.data_dir),
            listen: if self.listen.is_empty() {
                file.listen
            } else {
                self.listen
            },
            rpc: self.rpc.or(file.rpc),
            bootnode: if self.bootnode.is_empty() {
                file.bootnode
            } else {
                self.bootnode
            },
            key: self.key.or(file.key),
            mine: self.mine || file.mine,
            threads: self.threads.or(file.threads),
            hashrate_cap: self.hashrate_cap.or(file.hashrate_cap),
            stake: self.stake || file.stake,
            mdns: self.mdns || file.mdns,
            chaos: self.chaos || file.chaos,
            chaos_port: self.chaos_port.or(file.chaos_port),
            strategy: self.strategy.or(file.strategy),
            i_know_this_is_an_attack: self.i_know_this_is_an_attack || file.i_know_this_is_an_attack,
            archive: self.archive || file.archive,
            config: self.config,
        }
    }
}

fn read_config(path: &Path) -> Result<NodeArgs> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))
}

fn parse_addrs(addrs: &[String], flag: &str) -> Result<Vec<Multiaddr>> {
    addrs
        .iter()
        .map(|a| {
            a.parse()
                .with_context(|| format!("{flag} {a:?} is not a multiaddr (e.g. /ip4/127.0.0.1/tcp/30333)"))
        })
        .collect()
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

/// Logs to stderr; `RUST_LOG` overrides the default `info`.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,libp2p_gossipsub=warn,libp2p_kad=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_wins_over_the_config_file() {
        let file: NodeArgs = toml::from_str(
            "spec = \"a.toml\"\ndata_dir = \"d\"\nthreads = 4\nbootnode = [\"/ip4/127.0.0.1/tcp/1\"]\nmine = true",
        )
        .expect("config");
        let cli = NodeArgs {
            threads: Some(2),
            ..NodeArgs::default()
        };
        let merged = cli.over(file);
        assert_eq!(merged.threads, Some(2));
        assert_eq!(merged.spec, Some(PathBuf::from("a.toml")));
        assert_eq!(merged.bootnode.len(), 1);
        assert!(merged.mine);
    }

    #[test]
    fn a_strategy_is_refused_without_the_explicit_flag() {
        let args = NodeArgs {
            spec: Some(PathBuf::from("unused.toml")),
            data_dir: Some(PathBuf::from("unused")),
            strategy: Some(Strategy::Selfish),
            ..NodeArgs::default()
        };
        let err = args.resolve().expect_err("refused");
        assert!(err.to_string().contains("--i-know-this-is-an-attack"), "{err}");
    }

    #[test]
    fn unknown_config_keys_are_refused() {
        let err = toml::from_str::<NodeArgs>("threds = 4").expect_err("typo");
        assert!(err.to_string().contains("threds"), "{err}");
    }
}
