//! klero: a permissionless leader-lottery node.
//!
//! The consensus rules live in the pure `klero-chain` crate; this crate
//! wires them to the world.
//!
//! # Layout
//!
//! - [`bench`]: measurement code: the SHA unit's ceiling, the kernel calibration.
//! - [`cli`]: the `klero` command line, one file per subcommand.
//! - [`keyfile`]: the plain key files that `klero keys` writes and nodes read.
//! - [`fairness`], [`stats`]: the fairness benchmark's lotteries and its
//!   goodness-of-fit statistics.
//! - [`node`]: the node: store, chain task, mempool, sync, producers, HTTP API.
//! - [`testnet`]: the local testnet launcher's spec generation and process control.
//! - [`wallet`]: the encrypted keystore and the wallet's node client.
//! - [`p2p`]: the libp2p network: gossip, sync requests, peer discovery.
//! - [`lab`]: the deterministic leader-election simulator behind `klero lab`.

pub mod bench;
pub mod cli;
pub mod fairness;
pub mod keyfile;
pub mod lab;
pub mod node;
pub mod p2p;
pub mod stats;
pub mod testnet;
pub mod wallet;
