//! `klero bench`: the hashrate, fairness and store benchmarks (their code
//! is in [`crate::bench`]).

use anyhow::Result;
use clap::Subcommand;

use super::attack::AttackCommand;
use crate::bench::fairness_report::FairnessArgs;
use crate::bench::hashrate::{self, HashrateArgs};
use crate::bench::store::StoreArgs;

/// `klero bench …`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Hashes per second of each PoW kernel and thread count.
    Hashrate(HashrateArgs),
    /// Does each staker or miner win in proportion to its weight?
    Fairness(FairnessArgs),
    /// Store bytes per block, import rate, peak RSS, restart and reorg time.
    Store(StoreArgs),
    /// What a strategic miner or staker gains: selfish mining, withholding,
    /// grinding, equivocation (simulated against the chain's own rules).
    #[command(subcommand)]
    Attack(AttackCommand),
}

impl BenchCommand {
    /// Runs the benchmark.
    ///
    /// # Errors
    ///
    /// Bad arguments, or a failure inside the benchmark.
    pub fn execute(self) -> Result<()> {
        match self {
            BenchCommand::Hashrate(args) => hashrate::run(args),
            BenchCommand::Fairness(args) => args.execute(),
            BenchCommand::Store(args) => args.execute(),
            BenchCommand::Attack(cmd) => cmd.execute(),
        }
    }
}
