//! Plain key files: one line of 64 hex digits, the wallet seed from which
//! the signing and VRF keys are derived. Written with mode 0600.
//!
//! Nodes read these (`klero node --key FILE`); people keep their funds in
//! the encrypted wallet keystore instead.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use klero_chain::Keypair;

/// Reads a key file.
///
/// # Errors
///
/// If the file cannot be read or is not 64 hex digits.
pub fn read(path: &Path) -> Result<Keypair> {
    let text = fs::read_to_string(path).with_context(|| format!("reading key file {}", path.display()))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed)
        .with_context(|| format!("key file {} is not 64 hex digits", path.display()))?;
    Ok(Keypair::from_seed(seed))
}

/// Writes `key`'s seed to a new file readable only by its owner.
///
/// # Errors
///
/// If the file exists or cannot be written.
pub fn write(path: &Path, key: &Keypair) -> Result<()> {
    if path.exists() {
        bail!("{} already exists; refusing to overwrite a key", path.display());
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating key file {}", path.display()))?;
    writeln!(file, "{}", hex::encode(key.seed())).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A fresh key from the operating system's random source.
///
/// # Errors
///
/// If the OS has no random source.
pub fn generate() -> Result<Keypair> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    Ok(Keypair::from_seed(seed))
}
