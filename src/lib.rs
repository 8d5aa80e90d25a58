//! klero: a permissionless leader-lottery node.
//!
//! The consensus rules, and every parameter and rule derived from the chain
//! spec, live in the pure `klero-chain` crate; this crate wires them to the
//! world.
//!
//! # Layout
//!
//! - [`cli`]: the `klero` command line, one thin file per subcommand.
//! - [`node`]: the node: block tree, chain task, store, mempool, gossip,
//!   sync (client and server), producers, the HTTP API server; [`node::run`]
//!   is handed its sockets and a shutdown future.
//! - [`api`]: the HTTP API's request and response types (the OpenAPI
//!   document is generated from them) and the client every caller uses.
//! - [`p2p`]: the libp2p network: gossip, sync requests, peer discovery.
//! - [`keyfile`]: the one reader and writer of secret key files (plain
//!   keys, the network identity, keystores): 0600, no overwrite, refused
//!   when others may read them.
//! - [`wallet`]: the encrypted keystore and the wallet's checks.
//! - [`testnet`]: the local testnet launcher's spec and process control.
//! - [`bench`]: the hashrate and fairness benchmarks, their statistics, the
//!   SHA unit ceiling and the kernel calibration the miner runs at start.
//! - [`chain_builder`]: a PoW chain mined in memory, the input of the store
//!   bench and of the store's crash and reorg tests.
//! - [`lab`]: the deterministic leader-election simulator behind `klero lab`.
//! - `rng`: the seeded generator of the lab and of the link conditioner.

pub mod api;
pub(crate) mod bench;
pub mod chain_builder;
pub mod cli;
pub mod keyfile;
pub(crate) mod lab;
pub mod node;
pub mod p2p;
pub(crate) mod rng;
pub(crate) mod testnet;
pub(crate) mod wallet;
