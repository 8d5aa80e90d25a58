//! klero: a permissionless leader-lottery node.
//!
//! The consensus rules live in the pure `klero-chain` crate; this crate
//! wires them to the world.
//!
//! # Layout
//!
//! - [`cli`]: the `klero` command line, one file per subcommand.
//! - [`keyfile`]: the plain key files that `klero keys` writes and nodes read.
//! - [`lab`]: the deterministic leader-election simulator behind `klero lab`.

pub mod cli;
pub mod keyfile;
pub mod lab;
