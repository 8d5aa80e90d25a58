//! `klero keys`: create and show the plain key files nodes use.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use klero_chain::Keypair;

use crate::keyfile;

/// `klero keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a new random key and write it to FILE (mode 0600).
    New {
        /// Where to write the key.
        #[arg(long)]
        out: PathBuf,
        /// Write a well-known, insecure development key (alice, bob, …)
        /// instead of a random one: the testnet specs' genesis accounts.
        #[arg(long)]
        dev: Option<String>,
    },
    /// Show the address and VRF public key of a key file or a development key.
    Show {
        /// The key file.
        #[arg(required_unless_present = "dev", conflicts_with = "dev")]
        file: Option<PathBuf>,
        /// A well-known, insecure development key (alice, bob, …).
        #[arg(long)]
        dev: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

impl KeysCommand {
    /// Runs the command.
    ///
    /// # Errors
    ///
    /// If a key file cannot be read or written.
    pub fn execute(self) -> Result<()> {
        match self {
            KeysCommand::New { out, dev } => {
                let key = match dev {
                    Some(name) => Keypair::dev(&name),
                    None => keyfile::generate()?,
                };
                keyfile::write(&out, &key)?;
                println!("wrote {}", out.display());
                print_key(&key, false);
            }
            KeysCommand::Show { file, dev, json } => {
                let key = match (file, dev) {
                    (Some(path), _) => keyfile::read(&path)?,
                    (None, Some(name)) => Keypair::dev(&name),
                    (None, None) => unreachable!("clap requires FILE or --dev"),
                };
                print_key(&key, json);
            }
        }
        Ok(())
    }
}

fn print_key(key: &Keypair, json: bool) {
    let address = key.address().to_string();
    let vrf_key = hex::encode(key.vrf().public_key().0);
    if json {
        println!(
            "{}",
            serde_json::json!({ "address": address, "vrf_key": vrf_key })
        );
    } else {
        println!("address  {address}");
        println!("vrf key  {vrf_key}");
    }
}
