//! Keystore files: one wallet seed per file, in the format of the
//! `klero-keystore` crate (argon2id and ChaCha20-Poly1305; every field is
//! checked, and argon2 costs bounded, before a key is derived). Here they
//! are read and written as secret files by [`crate::keyfile`] (mode 0600,
//! never overwritten, refused if others may read them), with the salt and
//! nonce drawn from the OS. The passphrase (the caller's `Zeroizing`), the
//! derived key and the decrypted seed are zeroed after use.

use std::path::Path;

use klero_chain::Keypair;
pub(crate) use klero_keystore::{KdfParams, Keystore};

use super::{ChainBinding, WalletError};
use crate::keyfile::{self, KeyFileError};

fn random<const N: usize>() -> Result<[u8; N], WalletError> {
    keyfile::random::<N>().map_err(|e| WalletError::Keystore(e.to_string()))
}

/// Encrypts `key`'s seed under `passphrase` with a fresh salt and nonce.
///
/// # Errors
///
/// If the system has no randomness or the parameters are out of bounds.
pub(crate) fn encrypt(key: &Keypair, passphrase: &str, params: KdfParams) -> Result<Keystore, WalletError> {
    Ok(Keystore::encrypt(key, passphrase, params, random()?, random()?)?)
}

/// Reads a keystore file.
///
/// # Errors
///
/// If it cannot be read, others may read it, or it is not a keystore.
pub(crate) fn load(path: &Path) -> Result<Keystore, WalletError> {
    let bytes = keyfile::read_private(path).map_err(|e| WalletError::Io(e.to_string()))?;
    Keystore::parse(&bytes).map_err(|e| WalletError::Keystore(format!("{}: {e}", path.display())))
}

/// Binds an unbound keystore to `chain` and rewrites its file at `path`
/// (the encrypted seed unchanged).
///
/// # Errors
///
/// [`WalletError::Keystore`] if it is bound already; I/O errors.
pub(crate) fn bind(store: &mut Keystore, path: &Path, chain: ChainBinding) -> Result<(), WalletError> {
    if let Some(bound) = &store.chain {
        return Err(WalletError::Keystore(format!("already bound to chain {bound}")));
    }
    store.chain = Some(chain);
    keyfile::replace(path, store.to_json()?.as_bytes()).map_err(|e| WalletError::Io(e.to_string()))
}

/// Writes a new keystore file (mode 0600); never replaces one.
///
/// # Errors
///
/// [`WalletError::Exists`] if `path` exists; I/O errors.
pub(crate) fn save_new(store: &Keystore, path: &Path) -> Result<(), WalletError> {
    keyfile::write_new(path, store.to_json()?.as_bytes()).map_err(|e| match e {
        KeyFileError::Exists { path } => WalletError::Exists(path),
        e => WalletError::Io(e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Argon2's cheapest costs: these tests check the files, not the cost.
    const FAST: KdfParams = KdfParams {
        m_cost_kib: 8,
        t_cost: 1,
        p_cost: 1,
    };

    #[test]
    fn save_is_private_and_never_overwrites() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("w.json");
        let store = encrypt(&Keypair::dev("dave"), "pw", FAST).expect("encrypt");
        save_new(&store, &path).expect("save");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let before = std::fs::read(&path).expect("read");
        let again = encrypt(&Keypair::dev("erin"), "pw", FAST).expect("encrypt");
        assert!(matches!(save_new(&again, &path), Err(WalletError::Exists(_))));
        assert_eq!(std::fs::read(&path).expect("read"), before);
        assert_eq!(load(&path).expect("load"), store);
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn binding_keeps_the_seed_and_happens_once() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("w.json");
        let key = Keypair::dev("erin");
        let mut store = encrypt(&key, "pw", FAST).expect("encrypt");
        save_new(&store, &path).expect("save");
        let chain = ChainBinding::new("c", &"ab".repeat(32)).expect("chain");
        bind(&mut store, &path, chain.clone()).expect("bind");
        let loaded = load(&path).expect("load");
        assert_eq!(loaded.chain, Some(chain.clone()));
        assert_eq!(loaded.ciphertext, store.ciphertext);
        assert_eq!(loaded.decrypt("pw").expect("decrypt").seed(), key.seed());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let mut again = loaded;
        assert!(bind(&mut again, &path, chain).is_err(), "bound once only");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
    }
}
