//! The `klero` command line: one subcommand per file, each an `XCommand`
//! struct with an `execute` method. `anyhow` lives here and nowhere deeper.

mod attack;
mod bench;
mod keys;
mod lab;
mod node;
mod spec;
mod testnet;
mod wallet;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// klero: a permissionless leader-lottery node (PoW puzzle or stake-weighted VRF draw).
#[derive(Debug, Parser)]
#[command(name = "klero", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node: gossip, sync, store, mine or stake, serve the HTTP API.
    Node(node::NodeArgs),
    /// Keys, balances, transfers, staking and unstaking.
    Wallet(wallet::WalletArgs),
    /// Start, watch, break (partitions, delay, loss, pause) and stop a local multi-node testnet.
    Testnet(testnet::TestnetArgs),
    /// Hashrate and fairness benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Create and show node keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Check a chain spec.
    #[command(subcommand)]
    Spec(spec::SpecCommand),
    /// Leader-election lab: classical elections beside the lotteries, simulated.
    Lab(lab::LabArgs),
}

/// Runs a parsed command line.
///
/// # Errors
///
/// Whatever the subcommand fails with; `main` prints the chain.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Keys(cmd) => cmd.execute().map(|()| ExitCode::SUCCESS),
        Command::Spec(cmd) => cmd.execute().map(|()| ExitCode::SUCCESS),
        Command::Bench(cmd) => cmd.execute().map(|()| ExitCode::SUCCESS),
        Command::Node(args) => args.execute().map(|()| ExitCode::SUCCESS),
        Command::Wallet(args) => args.execute().map(|()| ExitCode::SUCCESS),
        Command::Testnet(args) => args.execute().map(|()| ExitCode::SUCCESS),
        Command::Lab(args) => args.execute().map(|()| ExitCode::SUCCESS),
    }
}
