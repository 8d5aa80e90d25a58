//! The encrypted keystore: one wallet seed per file.
//!
//! `passphrase → argon2id(salt, m, t, p) → 32-byte key → ChaCha20-Poly1305
//! (random 96-bit nonce) over the seed`. The file is JSON, written and
//! read as a secret file by [`crate::keyfile`] (mode 0600, never
//! overwritten, refused if others may read it). The address is stored in
//! clear so read-only commands need no passphrase, and so is the chain the
//! keystore signs for (`chain`, absent until it is named or first used;
//! see [`super::ChainBinding`]). The derived key, the
//! decrypted seed and the passphrase (the caller's `Zeroizing`) are zeroed
//! after use.

use std::path::Path;

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use klero_chain::Keypair;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{ChainBinding, WalletError};
use crate::keyfile::{self, KeyFileError};

/// The keystore format version.
const VERSION: u32 = 1;

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// OWASP's argon2id minimum (19 MiB, 2 passes, 1 lane): about 50 ms.
    pub(crate) const DEFAULT: KdfParams = KdfParams {
        m_cost_kib: 19 * 1024,
        t_cost: 2,
        p_cost: 1,
    };
}

/// A keystore file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Keystore {
    /// Format version.
    pub version: u32,
    /// The wallet's address, in clear.
    pub address: String,
    /// `"argon2id"`.
    pub kdf: String,
    /// Its parameters.
    pub kdf_params: KdfParams,
    /// 16 random bytes, hex.
    pub salt: String,
    /// `"chacha20poly1305"`.
    pub cipher: String,
    /// 12 random bytes, hex.
    pub nonce: String,
    /// The encrypted seed and its tag, hex.
    pub ciphertext: String,
    /// The chain it signs for; absent until named or first used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainBinding>,
}

fn derive_key(passphrase: &str, salt: &[u8], params: KdfParams) -> Result<Zeroizing<[u8; 32]>, WalletError> {
    let params = Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(32))
        .map_err(|e| WalletError::Keystore(format!("bad argon2 parameters: {e}")))?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
        .map_err(|e| WalletError::Keystore(format!("argon2 failed: {e}")))?;
    Ok(key)
}

fn cipher(key: &Zeroizing<[u8; 32]>) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(&Key::from(**key))
}

fn random<const N: usize>() -> Result<[u8; N], WalletError> {
    keyfile::random::<N>().map_err(|e| WalletError::Keystore(e.to_string()))
}

impl Keystore {
    /// Encrypts `key`'s seed under `passphrase`.
    ///
    /// # Errors
    ///
    /// If the system has no randomness or the parameters are invalid.
    pub(crate) fn encrypt(
        key: &Keypair,
        passphrase: &str,
        params: KdfParams,
    ) -> Result<Keystore, WalletError> {
        let salt = random::<16>()?;
        let nonce = random::<12>()?;
        let ciphertext = cipher(&derive_key(passphrase, &salt, params)?)
            .encrypt(&Nonce::from(nonce), key.seed().as_slice())
            .map_err(|_| WalletError::Keystore("encryption failed".into()))?;
        Ok(Keystore {
            version: VERSION,
            address: key.address().to_bech32(),
            kdf: "argon2id".into(),
            kdf_params: params,
            salt: hex::encode(salt),
            cipher: "chacha20poly1305".into(),
            nonce: hex::encode(nonce),
            ciphertext: hex::encode(ciphertext),
            chain: None,
        })
    }

    /// Decrypts the seed.
    ///
    /// # Errors
    ///
    /// [`WalletError::WrongPassphrase`] if the passphrase (or the file) is
    /// wrong; [`WalletError::Keystore`] if the file is malformed.
    pub(crate) fn decrypt(&self, passphrase: &str) -> Result<Keypair, WalletError> {
        if self.version != VERSION || self.kdf != "argon2id" || self.cipher != "chacha20poly1305" {
            return Err(WalletError::Keystore(format!(
                "unsupported keystore (version {}, {}, {})",
                self.version, self.kdf, self.cipher
            )));
        }
        let field = |name: &str, hex_text: &str| {
            hex::decode(hex_text).map_err(|e| WalletError::Keystore(format!("{name} is not hex: {e}")))
        };
        let salt = field("salt", &self.salt)?;
        let nonce: [u8; 12] = field("nonce", &self.nonce)?
            .try_into()
            .map_err(|_| WalletError::Keystore("nonce is not 12 bytes".into()))?;
        let ciphertext = field("ciphertext", &self.ciphertext)?;
        let plain = Zeroizing::new(
            cipher(&derive_key(passphrase, &salt, self.kdf_params)?)
                .decrypt(&Nonce::from(nonce), ciphertext.as_slice())
                .map_err(|_| WalletError::WrongPassphrase)?,
        );
        let mut seed = Zeroizing::new([0u8; 32]);
        if plain.len() != seed.len() {
            return Err(WalletError::Keystore("seed is not 32 bytes".into()));
        }
        seed.copy_from_slice(&plain);
        let key = Keypair::from_seed(*seed);
        if key.address().to_bech32() != self.address {
            return Err(WalletError::Keystore(
                "the seed does not match the stored address".into(),
            ));
        }
        Ok(key)
    }

    /// Reads a keystore file.
    ///
    /// # Errors
    ///
    /// If it cannot be read, others may read it, or it is not a keystore.
    pub(crate) fn load(path: &Path) -> Result<Keystore, WalletError> {
        let bytes = keyfile::read_private(path).map_err(|e| WalletError::Io(e.to_string()))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| WalletError::Keystore(format!("{} is not a keystore: {e}", path.display())))
    }

    /// Binds an unbound keystore to `chain` and rewrites its file at
    /// `path` (the encrypted seed unchanged).
    ///
    /// # Errors
    ///
    /// [`WalletError::Keystore`] if it is bound already; I/O errors.
    pub(crate) fn bind(&mut self, path: &Path, chain: ChainBinding) -> Result<(), WalletError> {
        if let Some(bound) = &self.chain {
            return Err(WalletError::Keystore(format!("already bound to chain {bound}")));
        }
        self.chain = Some(chain);
        let text = serde_json::to_string_pretty(self).map_err(|e| WalletError::Keystore(e.to_string()))?;
        keyfile::replace(path, text.as_bytes()).map_err(|e| WalletError::Io(e.to_string()))
    }

    /// Writes a new keystore file (mode 0600); never replaces one.
    ///
    /// # Errors
    ///
    /// [`WalletError::Exists`] if `path` exists; I/O errors.
    pub(crate) fn save_new(&self, path: &Path) -> Result<(), WalletError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| WalletError::Keystore(e.to_string()))?;
        keyfile::write_new(path, text.as_bytes()).map_err(|e| match e {
            KeyFileError::Exists { path } => WalletError::Exists(path),
            e => WalletError::Io(e.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters: the tests check the format, not the cost.
    const FAST: KdfParams = KdfParams {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };

    #[test]
    fn round_trip_and_wrong_passphrase() {
        let key = Keypair::dev("alice");
        let store = Keystore::encrypt(&key, "correct horse", FAST).expect("encrypt");
        assert_eq!(store.address, key.address().to_bech32());
        assert_eq!(
            store.decrypt("correct horse").expect("decrypt").seed(),
            key.seed()
        );
        assert!(matches!(
            store.decrypt("wrong"),
            Err(WalletError::WrongPassphrase)
        ));
    }

    #[test]
    fn tampering_is_detected() {
        let store = Keystore::encrypt(&Keypair::dev("bob"), "pw", FAST).expect("encrypt");
        let mut bad = store.clone();
        let mut bytes = hex::decode(&bad.ciphertext).expect("hex");
        bytes[0] ^= 1;
        bad.ciphertext = hex::encode(bytes);
        assert!(matches!(bad.decrypt("pw"), Err(WalletError::WrongPassphrase)));
        let mut other = store;
        other.address = Keypair::dev("carol").address().to_bech32();
        assert!(matches!(other.decrypt("pw"), Err(WalletError::Keystore(_))));
    }

    #[test]
    fn save_is_private_and_never_overwrites() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("w.json");
        let store = Keystore::encrypt(&Keypair::dev("dave"), "pw", FAST).expect("encrypt");
        store.save_new(&path).expect("save");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let before = std::fs::read(&path).expect("read");
        let again = Keystore::encrypt(&Keypair::dev("erin"), "pw", FAST).expect("encrypt");
        assert!(matches!(again.save_new(&path), Err(WalletError::Exists(_))));
        assert_eq!(std::fs::read(&path).expect("read"), before);
        assert_eq!(Keystore::load(&path).expect("load"), store);
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
        let mut store = Keystore::encrypt(&key, "pw", FAST).expect("encrypt");
        store.save_new(&path).expect("save");
        let chain = ChainBinding::new("c", &"ab".repeat(32)).expect("chain");
        store.bind(&path, chain.clone()).expect("bind");
        let loaded = Keystore::load(&path).expect("load");
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
        assert!(again.bind(&path, chain).is_err(), "bound once only");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
    }
}
