//! The wallet's encrypted keystore format: one wallet seed per JSON file.
//!
//! `passphrase → argon2id(salt, m, t, p) → 32-byte key → ChaCha20-Poly1305
//! (96-bit nonce) over the seed`. The address is stored in clear so
//! read-only commands need no passphrase, and so is the chain the keystore
//! signs for (`chain`, absent until it is named or first used). The
//! derived key and the decrypted seed are zeroed after use.
//!
//! A keystore file is outside input: [`Keystore::parse`] checks every
//! field before anything is derived, and refuses argon2 costs above
//! [`KdfParams::MAX`], so a crafted file cannot make the wallet allocate
//! gigabytes or hash for hours. This crate does no I/O and draws no
//! randomness: the `klero` crate reads and writes the files (mode 0600)
//! and supplies the salt and nonce.

use std::fmt;

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use klero_chain::{Address, Keypair};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The keystore format version.
pub const VERSION: u32 = 1;
/// Salt bytes.
pub const SALT_LEN: usize = 16;
/// Nonce bytes.
pub const NONCE_LEN: usize = 12;
/// The encrypted seed and its 16-byte tag.
const CIPHERTEXT_LEN: usize = 32 + 16;

/// Why a keystore was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeystoreError {
    /// The passphrase does not open it (or the ciphertext was changed).
    #[error("wrong passphrase (or a corrupted keystore)")]
    WrongPassphrase,
    /// Not JSON of the keystore's shape.
    #[error("not a keystore: {0}")]
    Malformed(String),
    /// Another version, key derivation or cipher.
    #[error("unsupported keystore (version {version}, {kdf}, {cipher})")]
    Unsupported {
        /// The file's version.
        version: u32,
        /// Its `kdf`.
        kdf: String,
        /// Its `cipher`.
        cipher: String,
    },
    /// Argon2 costs outside what argon2 accepts or above [`KdfParams::MAX`].
    #[error(
        "argon2 parameters {}: allowed are at most {}, with at least 8 KiB per lane",
        .0,
        KdfParams::MAX
    )]
    Costs(KdfParams),
    /// A hex field of the wrong length or not hex.
    #[error("{field} is not {len} bytes of hex")]
    Field {
        /// The field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The stored address is not an address.
    #[error("the stored address {0:?} is not a klero address")]
    Address(String),
    /// The seed decrypts but is not the stored address's.
    #[error("the seed does not match the stored address")]
    AddressMismatch,
    /// A chain binding that cannot be one.
    #[error("{0}")]
    BadChain(String),
    /// Argon2 or the cipher failed on valid input (not expected).
    #[error("{0} failed")]
    Crypto(&'static str),
}

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// OWASP's argon2id minimum (19 MiB, 2 passes, 1 lane): about 50 ms.
    /// What the wallet writes.
    pub const DEFAULT: KdfParams = KdfParams {
        m_cost_kib: 19 * 1024,
        t_cost: 2,
        p_cost: 1,
    };

    /// The most a keystore may ask for: 256 MiB, 8 passes, 8 lanes (a few
    /// seconds at worst), far above [`KdfParams::DEFAULT`].
    pub const MAX: KdfParams = KdfParams {
        m_cost_kib: 256 * 1024,
        t_cost: 8,
        p_cost: 8,
    };

    /// Argon2's parameters, if these are within [`KdfParams::MAX`] and
    /// argon2's own rules.
    fn checked(self) -> Result<Params, KeystoreError> {
        let max = KdfParams::MAX;
        if self.m_cost_kib > max.m_cost_kib || self.t_cost > max.t_cost || self.p_cost > max.p_cost {
            return Err(KeystoreError::Costs(self));
        }
        Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32))
            .map_err(|_| KeystoreError::Costs(self))
    }
}

impl fmt::Display for KdfParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} KiB, {} passes, {} lanes",
            self.m_cost_kib, self.t_cost, self.p_cost
        )
    }
}

/// The chain a keystore signs for: its id and its genesis block's id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainBinding {
    /// The chain id.
    pub chain_id: String,
    /// The genesis block id, 64 lower-case hex digits.
    pub genesis: String,
}

impl ChainBinding {
    /// A binding the user names (the genesis id in either case).
    ///
    /// # Errors
    ///
    /// [`KeystoreError::BadChain`] for an empty chain id or a genesis that
    /// is not 64 hex digits.
    pub fn new(chain_id: &str, genesis: &str) -> Result<ChainBinding, KeystoreError> {
        let binding = ChainBinding {
            chain_id: chain_id.to_owned(),
            genesis: genesis.trim().to_ascii_lowercase(),
        };
        binding.check()?;
        Ok(binding)
    }

    fn check(&self) -> Result<(), KeystoreError> {
        if self.chain_id.is_empty() {
            return Err(KeystoreError::BadChain("the chain id is empty".into()));
        }
        let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if self.genesis.len() != 64 || !self.genesis.bytes().all(lower_hex) {
            return Err(KeystoreError::BadChain(format!(
                "the genesis id {:?} is not 64 hex digits (`GET /status` shows a node's)",
                self.genesis
            )));
        }
        Ok(())
    }
}

impl fmt::Display for ChainBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} (genesis {})", self.chain_id, self.genesis)
    }
}

/// A keystore file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keystore {
    /// Format version.
    pub version: u32,
    /// The wallet's address, in clear.
    pub address: String,
    /// `"argon2id"`.
    pub kdf: String,
    /// Its parameters.
    pub kdf_params: KdfParams,
    /// [`SALT_LEN`] random bytes, hex.
    pub salt: String,
    /// `"chacha20poly1305"`.
    pub cipher: String,
    /// [`NONCE_LEN`] random bytes, hex.
    pub nonce: String,
    /// The encrypted seed and its tag, hex.
    pub ciphertext: String,
    /// The chain it signs for; absent until named or first used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainBinding>,
}

/// The raw fields of a checked keystore.
struct Fields {
    params: Params,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    ciphertext: [u8; CIPHERTEXT_LEN],
}

fn hex_field<const N: usize>(field: &'static str, text: &str) -> Result<[u8; N], KeystoreError> {
    let wrong = || KeystoreError::Field { field, len: N };
    if text.len() != 2 * N {
        return Err(wrong());
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|_| wrong())?;
    Ok(out)
}

fn derive_key(passphrase: &str, salt: &[u8], params: Params) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
        .map_err(|_| KeystoreError::Crypto("argon2"))?;
    Ok(key)
}

fn cipher(key: &Zeroizing<[u8; 32]>) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(&Key::from(**key))
}

impl Keystore {
    /// Encrypts `key`'s seed under `passphrase` with a fresh random `salt`
    /// and `nonce` (the caller's: this crate draws no randomness).
    ///
    /// # Errors
    ///
    /// [`KeystoreError::Costs`] if `params` are out of bounds.
    pub fn encrypt(
        key: &Keypair,
        passphrase: &str,
        params: KdfParams,
        salt: [u8; SALT_LEN],
        nonce: [u8; NONCE_LEN],
    ) -> Result<Keystore, KeystoreError> {
        let derived = derive_key(passphrase, &salt, params.checked()?)?;
        let ciphertext = cipher(&derived)
            .encrypt(&Nonce::from(nonce), key.seed().as_slice())
            .map_err(|_| KeystoreError::Crypto("encryption"))?;
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

    /// Reads a keystore file's bytes and checks every field (no key is
    /// derived: no passphrase is needed).
    ///
    /// # Errors
    ///
    /// Not JSON of this shape, or a field [`Keystore::check`] refuses.
    pub fn parse(bytes: &[u8]) -> Result<Keystore, KeystoreError> {
        let store: Keystore =
            serde_json::from_slice(bytes).map_err(|e| KeystoreError::Malformed(e.to_string()))?;
        store.check()?;
        Ok(store)
    }

    /// The file's text: pretty JSON.
    ///
    /// # Errors
    ///
    /// Not expected (every field is a string, number or struct).
    pub fn to_json(&self) -> Result<String, KeystoreError> {
        serde_json::to_string_pretty(self).map_err(|e| KeystoreError::Malformed(e.to_string()))
    }

    /// Checks every field, cheapest first: version, kdf and cipher, the
    /// argon2 costs, the hex fields' lengths, the address, the binding.
    ///
    /// # Errors
    ///
    /// The first field that is wrong.
    pub fn check(&self) -> Result<(), KeystoreError> {
        self.fields().map(drop)
    }

    fn fields(&self) -> Result<Fields, KeystoreError> {
        if self.version != VERSION || self.kdf != "argon2id" || self.cipher != "chacha20poly1305" {
            return Err(KeystoreError::Unsupported {
                version: self.version,
                kdf: self.kdf.clone(),
                cipher: self.cipher.clone(),
            });
        }
        let fields = Fields {
            params: self.kdf_params.checked()?,
            salt: hex_field("salt", &self.salt)?,
            nonce: hex_field("nonce", &self.nonce)?,
            ciphertext: hex_field("ciphertext", &self.ciphertext)?,
        };
        self.address
            .parse::<Address>()
            .map_err(|_| KeystoreError::Address(self.address.clone()))?;
        if let Some(chain) = &self.chain {
            chain.check()?;
        }
        Ok(fields)
    }

    /// Decrypts the seed.
    ///
    /// # Errors
    ///
    /// [`KeystoreError::WrongPassphrase`] if the passphrase (or the
    /// ciphertext) is wrong, [`KeystoreError::AddressMismatch`] if the seed
    /// is not the stored address's, or what [`Keystore::check`] refuses.
    pub fn decrypt(&self, passphrase: &str) -> Result<Keypair, KeystoreError> {
        let fields = self.fields()?;
        let plain = Zeroizing::new(
            cipher(&derive_key(passphrase, &fields.salt, fields.params)?)
                .decrypt(&Nonce::from(fields.nonce), fields.ciphertext.as_slice())
                .map_err(|_| KeystoreError::WrongPassphrase)?,
        );
        let mut seed = Zeroizing::new([0u8; 32]);
        // The tag checked, the plaintext is as long as the encrypted seed.
        seed.copy_from_slice(&plain);
        let key = Keypair::from_seed(*seed);
        if key.address().to_bech32() != self.address {
            return Err(KeystoreError::AddressMismatch);
        }
        Ok(key)
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

    fn store(name: &str, passphrase: &str) -> Keystore {
        Keystore::encrypt(
            &Keypair::dev(name),
            passphrase,
            FAST,
            [7; SALT_LEN],
            [9; NONCE_LEN],
        )
        .expect("encrypt")
    }

    #[test]
    fn round_trip_and_wrong_passphrase() {
        let key = Keypair::dev("alice");
        let store = store("alice", "correct horse");
        assert_eq!(store.address, key.address().to_bech32());
        let parsed = Keystore::parse(store.to_json().expect("json").as_bytes()).expect("parse");
        assert_eq!(parsed, store);
        assert_eq!(
            parsed.decrypt("correct horse").expect("decrypt").seed(),
            key.seed()
        );
        assert_eq!(
            store.decrypt("wrong").map(|k| *k.seed()),
            Err(KeystoreError::WrongPassphrase)
        );
    }

    /// `tests/vectors/keystore.json` (also the fuzz target's seed) is what
    /// this crate writes for fixed inputs, and it decrypts: the format
    /// does not drift.
    #[test]
    fn the_golden_keystore_is_what_encrypt_writes() {
        let key = Keypair::dev("keystore-vector");
        let written = Keystore::encrypt(&key, "fuzz", FAST, [7; SALT_LEN], [9; NONCE_LEN]).expect("encrypt");
        let vector = include_str!("../tests/vectors/keystore.json");
        assert_eq!(vector.trim_end(), written.to_json().expect("json"));
        let parsed = Keystore::parse(vector.as_bytes()).expect("parse");
        assert_eq!(parsed.decrypt("fuzz").expect("decrypt").seed(), key.seed());
    }

    #[test]
    fn tampering_is_detected() {
        let store = store("bob", "pw");
        let mut bad = store.clone();
        let mut bytes = hex::decode(&bad.ciphertext).expect("hex");
        bytes[0] ^= 1;
        bad.ciphertext = hex::encode(bytes);
        assert_eq!(
            bad.decrypt("pw").map(|k| *k.seed()),
            Err(KeystoreError::WrongPassphrase)
        );
        let mut other = store;
        other.address = Keypair::dev("carol").address().to_bech32();
        assert_eq!(
            other.decrypt("pw").map(|k| *k.seed()),
            Err(KeystoreError::AddressMismatch)
        );
    }

    /// A crafted file cannot make the wallet derive with huge costs: it is
    /// refused on reading, before argon2 runs.
    #[test]
    fn costs_above_the_bound_are_refused_before_deriving() {
        let good = store("dave", "pw");
        for params in [
            KdfParams {
                m_cost_kib: u32::MAX,
                ..FAST
            },
            KdfParams {
                t_cost: u32::MAX,
                ..FAST
            },
            KdfParams {
                p_cost: 1 << 20,
                m_cost_kib: KdfParams::MAX.m_cost_kib,
                ..FAST
            },
            // Below argon2's own minimum of 8 KiB per lane.
            KdfParams {
                m_cost_kib: 8,
                p_cost: 2,
                t_cost: 1,
            },
            KdfParams { t_cost: 0, ..FAST },
        ] {
            let crafted = Keystore {
                kdf_params: params,
                ..good.clone()
            };
            let text = crafted.to_json().expect("json");
            assert_eq!(
                Keystore::parse(text.as_bytes()),
                Err(KeystoreError::Costs(params))
            );
            assert_eq!(
                crafted.decrypt("pw").map(|k| *k.seed()),
                Err(KeystoreError::Costs(params))
            );
        }
        assert!(KdfParams::DEFAULT.checked().is_ok() && KdfParams::MAX.checked().is_ok());
    }

    #[test]
    fn malformed_fields_are_named() {
        let good = store("erin", "pw");
        let cases = [
            (
                Keystore {
                    salt: "00".into(),
                    ..good.clone()
                },
                KeystoreError::Field {
                    field: "salt",
                    len: SALT_LEN,
                },
            ),
            (
                Keystore {
                    nonce: "zz".repeat(NONCE_LEN),
                    ..good.clone()
                },
                KeystoreError::Field {
                    field: "nonce",
                    len: NONCE_LEN,
                },
            ),
            (
                Keystore {
                    ciphertext: good.ciphertext[2..].to_owned(),
                    ..good.clone()
                },
                KeystoreError::Field {
                    field: "ciphertext",
                    len: CIPHERTEXT_LEN,
                },
            ),
            (
                Keystore {
                    address: "klero1nope".into(),
                    ..good.clone()
                },
                KeystoreError::Address("klero1nope".into()),
            ),
        ];
        for (bad, error) in cases {
            assert_eq!(
                Keystore::parse(bad.to_json().expect("json").as_bytes()),
                Err(error)
            );
        }
        let unknown = good.to_json().expect("json").replacen('{', "{\"extra\": 1,", 1);
        assert!(matches!(
            Keystore::parse(unknown.as_bytes()),
            Err(KeystoreError::Malformed(_))
        ));
        let v2 = Keystore { version: 2, ..good };
        assert!(matches!(
            Keystore::parse(v2.to_json().expect("json").as_bytes()),
            Err(KeystoreError::Unsupported { version: 2, .. })
        ));
    }

    #[test]
    fn a_binding_needs_a_chain_id_and_a_genesis_id() {
        let named = ChainBinding::new("c", &"AB".repeat(32)).expect("named");
        assert_eq!(named.genesis, "ab".repeat(32));
        assert!(ChainBinding::new("c", "abc").is_err());
        assert!(ChainBinding::new("", &"ab".repeat(32)).is_err());
        let mut bound = store("frank", "pw");
        bound.chain = Some(ChainBinding {
            chain_id: "c".into(),
            genesis: "AB".repeat(32),
        });
        assert!(matches!(
            Keystore::parse(bound.to_json().expect("json").as_bytes()),
            Err(KeystoreError::BadChain(_))
        ));
    }
}
