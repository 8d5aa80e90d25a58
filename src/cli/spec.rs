//! `klero spec`: validate a chain spec and show its genesis; write a fresh
//! development spec.

use std::io::Write;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Subcommand;
use klero_chain::ChainSpec;

use crate::testnet::genesis::Consensus;

/// `klero spec …`
#[derive(Debug, Subcommand)]
pub enum SpecCommand {
    /// Parse and validate a chain spec; print its genesis id and accounts.
    Check {
        /// The spec file (TOML).
        file: PathBuf,
    },
    /// Write the development chain of `testnet/pos.toml` or `testnet/pow.toml`
    /// (the dev accounts alice, bob, carol, dave) with a fresh genesis time.
    Dev {
        /// Which lottery.
        #[arg(long, value_enum, default_value_t = Consensus::Pos)]
        consensus: Consensus,
        /// Genesis time, Unix milliseconds. Default: now.
        #[arg(long)]
        genesis_time_ms: Option<u64>,
        /// Where to write it (a new file).
        #[arg(long)]
        out: PathBuf,
    },
}

/// The shipped development spec of `consensus`, as a value.
fn dev_spec(consensus: Consensus) -> Result<ChainSpec> {
    let text = match consensus {
        Consensus::Pos => include_str!("../../testnet/pos.toml"),
        Consensus::Pow => include_str!("../../testnet/pow.toml"),
    };
    ChainSpec::from_toml(text).context("the shipped dev spec is invalid (a bug)")
}

/// Reads and validates a chain spec file.
///
/// # Errors
///
/// If the file cannot be read or the spec is invalid (the error names the field).
pub(crate) fn load(path: &std::path::Path) -> Result<ChainSpec> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading chain spec {}", path.display()))?;
    ChainSpec::from_toml(&text).with_context(|| format!("invalid chain spec {}", path.display()))
}

impl SpecCommand {
    /// Runs the command.
    ///
    /// # Errors
    ///
    /// If the spec cannot be read or is invalid.
    pub fn execute(self) -> Result<()> {
        let file = match self {
            SpecCommand::Check { file } => file,
            SpecCommand::Dev {
                consensus,
                genesis_time_ms,
                out,
            } => {
                let mut spec = dev_spec(consensus)?;
                spec.genesis_time_ms = match genesis_time_ms {
                    Some(ms) => ms,
                    None => SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                };
                let text = spec.to_toml()?;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&out)
                    .and_then(|mut file| file.write_all(text.as_bytes()))
                    .with_context(|| format!("writing {} (it must not exist yet)", out.display()))?;
                println!("wrote {} (genesis id {})", out.display(), spec.genesis().0.id());
                return Ok(());
            }
        };
        let spec = load(&file)?;
        let (genesis, _) = spec.genesis();
        println!("chain id    {}", spec.chain_id);
        println!("consensus   {}", spec.consensus_name());
        println!("genesis id  {}", genesis.id());
        for account in &spec.accounts {
            println!(
                "account     {} {} balance {} stake {}",
                account.name.as_deref().unwrap_or("-"),
                account.address,
                account.balance,
                account.stake
            );
        }
        println!("ok");
        Ok(())
    }
}
