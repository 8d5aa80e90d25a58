//! `klero spec`: validate a chain spec and show its genesis.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use klero_chain::ChainSpec;

/// `klero spec …`
#[derive(Debug, Subcommand)]
pub enum SpecCommand {
    /// Parse and validate a chain spec; print its genesis id and accounts.
    Check {
        /// The spec file (TOML).
        file: PathBuf,
    },
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
        let SpecCommand::Check { file } = self;
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
