//! Keys, addresses and domain-separated signatures.
//!
//! A klero wallet holds one 32-byte seed. Two keys are derived from it under
//! separate BLAKE3 `derive_key` contexts: the ed25519 *signing* key (its
//! public half is the account address) and the ECVRF key used in the
//! proof-of-stake draw. They must differ: ECVRF and EdDSA derive their nonce
//! from the same secret prefix, so an EdDSA signature over a VRF hash string
//! would leak the key (DESIGN.md, "A VRF key separate from the signing key").
//!
//! Every signature covers a fixed 40-byte domain prefix, the chain id and
//! the message, so no signed object can be replayed as another kind, on
//! another chain, or be mistaken for a 32-byte VRF hash string.
//!
//! A stake transaction proves possession of the VRF key it registers with an
//! ECVRF proof over [`vrf_pop_input`], which names the chain and the staker:
//! a key copied from someone else cannot come with a valid proof, and the
//! proof cannot be replayed for another account or chain. It is a VRF proof,
//! never an EdDSA signature made with the VRF key (see above).
//!
//! Addresses are the 32-byte ed25519 public key written in bech32m with the
//! human-readable part `klero`.

use bech32::primitives::decode::CheckedHrpstring;
use bech32::{Bech32m, Hrp};
use bincode::{Decode, Encode};
use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_dalek::{Signer, SigningKey};
use std::fmt;
use std::str::FromStr;

use crate::vrf::{self, VrfError, VrfProof, VrfPublicKey, VrfSecretKey};

/// The human-readable part of every address.
pub const ADDRESS_HRP: &str = "klero";

const SIGNING_KEY_CONTEXT: &str = "klero 2026-11 ed25519 signing key";
const VRF_KEY_CONTEXT: &str = "klero 2026-11 ecvrf-edwards25519-sha512-tai key";
const DEV_SEED_CONTEXT: &str = "klero 2026-11 well-known development seed";

/// What a signature is for; part of the signed bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignDomain {
    /// A block header's id.
    Block,
    /// A transaction body.
    Tx,
}

impl SignDomain {
    /// The 40-byte prefix: longer than a VRF hash string, and distinct per domain.
    fn prefix(self) -> &'static [u8; 40] {
        match self {
            SignDomain::Block => b"klero/v1/signature/block-header/........",
            SignDomain::Tx => b"klero/v1/signature/transaction-body/....",
        }
    }
}

/// An account address: an ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Encode, Decode)]
pub struct Address(pub [u8; 32]);

/// An ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    /// The all-zero placeholder of genesis, which nobody signs.
    pub const ZERO: Signature = Signature([0; 64]);

    fn zip215(&self) -> ed25519_zebra::Signature {
        ed25519_zebra::Signature::from_bytes(&self.0)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", hex::encode(&self.0[..8]))
    }
}

/// Why a string is not an address, or a key is not usable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// Not bech32m at all, or the checksum does not match (a typo).
    #[error("not a klero address (bad bech32m encoding or checksum): {0}")]
    BadEncoding(String),
    /// Valid bech32m, but for another prefix.
    #[error("address prefix is `{found}`, expected `{ADDRESS_HRP}`")]
    WrongPrefix {
        /// The prefix that was found.
        found: String,
    },
    /// The payload is not 32 bytes.
    #[error("address payload is {len} bytes, expected 32")]
    WrongLength {
        /// The payload length.
        len: usize,
    },
    /// The bytes are not an ed25519 public key.
    #[error("address is not a valid ed25519 public key")]
    NotAPublicKey,
    /// A signature did not verify.
    #[error("signature does not verify")]
    BadSignature,
}

impl Address {
    /// The bech32m form, `klero1…`.
    pub fn to_bech32(&self) -> String {
        // The HRP is a valid constant and 32 bytes are far below bech32's
        // length limit, so neither call can fail.
        let hrp = Hrp::parse_unchecked(ADDRESS_HRP);
        bech32::encode::<Bech32m>(hrp, &self.0).unwrap_or_default()
    }

    /// Checks `signature` over `domain || chain_id || message` with this key.
    ///
    /// The rule is ZIP 215's ([`ed25519_zebra`]): `s` canonical, `R` any
    /// encoding of a curve point, and the cofactored equation
    /// `[8][s]B = [8]R + [8][k]A`. Unlike RFC 8032's strict check, it gives
    /// the same answer one by one and in a batch ([`verify_batch`]), so
    /// every node (and a pool that checks in batches) agrees on every
    /// signature. On top of ZIP 215, the key must not have small order
    /// (anyone could sign for such a key).
    ///
    /// # Errors
    ///
    /// [`KeyError::NotAPublicKey`] or [`KeyError::BadSignature`].
    pub fn verify(
        &self,
        domain: SignDomain,
        chain_id: &str,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), KeyError> {
        self.check_key()?;
        let key = ed25519_zebra::VerificationKey::try_from(self.0).map_err(|_| KeyError::NotAPublicKey)?;
        key.verify(&signature.zip215(), &signed_bytes(domain, chain_id, message))
            .map_err(|_| KeyError::BadSignature)
    }

    /// A signer's key must decode and must not have small order.
    fn check_key(&self) -> Result<(), KeyError> {
        match CompressedEdwardsY(self.0).decompress() {
            Some(point) if !point.is_small_order() => Ok(()),
            _ => Err(KeyError::NotAPublicKey),
        }
    }
}

/// Checks many signatures of one domain at once with ed25519 batch
/// verification: `(signer, message, signature)` each. About twice as fast
/// per signature as [`Address::verify`] one by one, and under ZIP 215 it
/// accepts exactly when each signature alone would.
///
/// The batch's random coefficients come from a BLAKE3 XOF over everything
/// in the batch (as Fiat–Shamir: no signature can be chosen after them),
/// so the check stays a pure function of its input.
///
/// # Errors
///
/// [`KeyError::NotAPublicKey`] for a signer that is not a valid key, else
/// [`KeyError::BadSignature`] if the batch does not verify (which does not
/// say which signature is wrong).
pub fn verify_batch<'a>(
    items: impl Iterator<Item = (&'a Address, &'a [u8], &'a Signature)>,
    domain: SignDomain,
    chain_id: &str,
) -> Result<(), KeyError> {
    let mut batch = ed25519_zebra::batch::Verifier::new();
    let mut seed = blake3::Hasher::new_derive_key("klero 2026-12 ed25519 batch coefficients");
    for (signer, message, signature) in items {
        signer.check_key()?;
        let signed = signed_bytes(domain, chain_id, message);
        seed.update(&signer.0)
            .update(&signature.0)
            .update(blake3::hash(&signed).as_bytes());
        batch.queue((
            ed25519_zebra::VerificationKeyBytes::from(signer.0),
            signature.zip215(),
            &signed,
        ));
    }
    batch
        .verify(BatchRng(seed.finalize_xof()))
        .map_err(|_| KeyError::BadSignature)
}

/// The coefficients' source for [`verify_batch`]: a BLAKE3 output stream.
struct BatchRng(blake3::OutputReader);

impl rand_core::TryRng for BatchRng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut bytes = [0; 4];
        self.0.fill(&mut bytes);
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut bytes = [0; 8];
        self.0.fill(&mut bytes);
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.0.fill(dst);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for BatchRng {}

impl FromStr for Address {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let checked =
            CheckedHrpstring::new::<Bech32m>(s.trim()).map_err(|e| KeyError::BadEncoding(e.to_string()))?;
        if checked.hrp().as_str() != ADDRESS_HRP {
            return Err(KeyError::WrongPrefix {
                found: checked.hrp().to_string(),
            });
        }
        let bytes: Vec<u8> = checked.byte_iter().collect();
        let bytes: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::WrongLength { len: bytes.len() })?;
        Ok(Address(bytes))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_bech32())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.to_bech32())
    }
}

fn signed_bytes(domain: SignDomain, chain_id: &str, message: &[u8]) -> Vec<u8> {
    let chain = chain_tag(chain_id);
    let mut bytes = Vec::with_capacity(40 + 32 + message.len());
    bytes.extend_from_slice(domain.prefix());
    bytes.extend_from_slice(&chain);
    bytes.extend_from_slice(message);
    bytes
}

/// Binds a signature to one chain with a fixed-length field.
fn chain_tag(chain_id: &str) -> [u8; 32] {
    blake3::derive_key("klero 2026-11 chain id tag", chain_id.as_bytes())
}

/// The VRF input a proof of possession proves.
///
/// # Format
///
/// ```text
/// "klero/vrf-pop/v1" (16 bytes) | chain_tag [32] | staker address [32]
/// ```
/// `chain_tag` is the one signatures use. Every field has a fixed length,
/// and the prefix differs from the slot input's `"klero/slot"` at byte 6, so
/// a proof of possession is never a slot ticket nor the other way round.
pub fn vrf_pop_input(chain_id: &str, staker: &Address) -> Vec<u8> {
    let mut alpha = Vec::with_capacity(16 + 32 + 32);
    alpha.extend_from_slice(b"klero/vrf-pop/v1");
    alpha.extend_from_slice(&chain_tag(chain_id));
    alpha.extend_from_slice(&staker.0);
    alpha
}

/// Checks that `proof` shows possession of `vrf_key` by `staker` on `chain_id`.
///
/// # Errors
///
/// The [`VrfError`] of [`vrf::verify`]: a key that does not decode or has
/// small order, or a proof made with another key or for another input.
pub fn verify_vrf_pop(
    vrf_key: &VrfPublicKey,
    chain_id: &str,
    staker: &Address,
    proof: &VrfProof,
) -> Result<(), VrfError> {
    vrf::verify(vrf_key, &vrf_pop_input(chain_id, staker), proof).map(|_| ())
}

/// A wallet's 32-byte master seed and the two keys derived from it. The
/// seed is zeroed when the key is dropped (so is the signing key, by
/// ed25519-dalek's own `zeroize` feature).
#[derive(Clone)]
pub struct Keypair {
    seed: [u8; 32],
    signing: SigningKey,
    vrf: VrfSecretKey,
}

impl Drop for Keypair {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.seed);
    }
}

impl Keypair {
    /// Derives both keys from a master seed.
    pub fn from_seed(seed: [u8; 32]) -> Keypair {
        let signing = SigningKey::from_bytes(&blake3::derive_key(SIGNING_KEY_CONTEXT, &seed));
        let vrf = VrfSecretKey::from_seed(&blake3::derive_key(VRF_KEY_CONTEXT, &seed));
        Keypair { seed, signing, vrf }
    }

    /// A well-known, *insecure* development key (`alice`, `bob`, …), like a
    /// Substrate dev chain's `//Alice`: anyone can recompute it.
    pub fn dev(name: &str) -> Keypair {
        Keypair::from_seed(blake3::derive_key(DEV_SEED_CONTEXT, name.as_bytes()))
    }

    /// The master seed (for the keystore; never log it).
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The account address (the signing public key).
    pub fn address(&self) -> Address {
        Address(self.signing.verifying_key().to_bytes())
    }

    /// The VRF secret key.
    pub fn vrf(&self) -> &VrfSecretKey {
        &self.vrf
    }

    /// The proof of possession of this wallet's VRF key that a stake
    /// transaction on `chain_id` carries.
    pub fn vrf_pop(&self, chain_id: &str) -> VrfProof {
        self.vrf.prove(&vrf_pop_input(chain_id, &self.address()))
    }

    /// Signs `domain || chain_id_tag || message`.
    pub fn sign(&self, domain: SignDomain, chain_id: &str, message: &[u8]) -> Signature {
        Signature(
            self.signing
                .sign(&signed_bytes(domain, chain_id, message))
                .to_bytes(),
        )
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", self.address())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::{EdwardsPoint, Scalar};

    #[test]
    fn address_round_trips_through_bech32m() {
        let addr = Keypair::dev("alice").address();
        let text = addr.to_string();
        assert!(text.starts_with("klero1"));
        assert_eq!(text.parse::<Address>(), Ok(addr));
    }

    #[test]
    fn address_with_a_typo_fails_the_checksum() {
        let mut text = Keypair::dev("alice").address().to_string();
        let last = text.pop().unwrap_or('q');
        text.push(if last == 'q' { 'p' } else { 'q' });
        assert!(matches!(text.parse::<Address>(), Err(KeyError::BadEncoding(_))));
    }

    #[test]
    fn address_with_another_prefix_is_refused() {
        let other = bech32::encode::<Bech32m>(Hrp::parse_unchecked("other"), &[7u8; 32]).unwrap();
        assert_eq!(
            other.parse::<Address>(),
            Err(KeyError::WrongPrefix {
                found: "other".into()
            })
        );
    }

    #[test]
    fn address_of_wrong_length_is_refused() {
        let short = bech32::encode::<Bech32m>(Hrp::parse_unchecked("klero"), &[7u8; 20]).unwrap();
        assert_eq!(short.parse::<Address>(), Err(KeyError::WrongLength { len: 20 }));
    }

    #[test]
    fn signatures_are_bound_to_domain_and_chain() {
        let key = Keypair::dev("bob");
        let sig = key.sign(SignDomain::Tx, "test", b"hello");
        let addr = key.address();
        assert_eq!(addr.verify(SignDomain::Tx, "test", b"hello", &sig), Ok(()));
        assert_eq!(
            addr.verify(SignDomain::Block, "test", b"hello", &sig),
            Err(KeyError::BadSignature)
        );
        assert_eq!(
            addr.verify(SignDomain::Tx, "other", b"hello", &sig),
            Err(KeyError::BadSignature)
        );
        assert_eq!(
            addr.verify(SignDomain::Tx, "test", b"hellO", &sig),
            Err(KeyError::BadSignature)
        );
    }

    /// A signature over `message` whose `R` carries the small-order point
    /// `torsion`, made with the secret scalar `a` (RFC 8032's steps with
    /// `R = rB + T`): valid under ZIP 215's cofactored equation, refused
    /// by the cofactorless strict one.
    fn sign_with_torsion(a: Scalar, message: &[u8], torsion: EdwardsPoint) -> (Address, Signature) {
        use sha2::{Digest, Sha512};
        let public = EdwardsPoint::mul_base(&a).compress();
        let r = Scalar::from_hash(Sha512::new().chain_update(b"nonce").chain_update(message));
        let big_r = (EdwardsPoint::mul_base(&r) + torsion).compress();
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(big_r.as_bytes())
                .chain_update(public.as_bytes())
                .chain_update(message),
        );
        let mut sig = [0; 64];
        sig[..32].copy_from_slice(big_r.as_bytes());
        sig[32..].copy_from_slice((r + k * a).as_bytes());
        (Address(public.to_bytes()), Signature(sig))
    }

    #[test]
    fn one_signature_gets_the_same_answer_alone_and_in_a_batch() {
        use curve25519_dalek::constants::EIGHT_TORSION;
        let message = b"pay bob";
        let signed = signed_bytes(SignDomain::Tx, "test", message);
        let (mallory, torsioned) = sign_with_torsion(Scalar::from(7u64), &signed, EIGHT_TORSION[1]);
        let strict = ed25519_dalek::VerifyingKey::from_bytes(&mallory.0)
            .unwrap()
            .verify_strict(&signed, &ed25519_dalek::Signature::from_bytes(&torsioned.0));
        assert!(
            strict.is_err(),
            "RFC 8032 strict refuses a torsion component in R"
        );
        assert_eq!(
            mallory.verify(SignDomain::Tx, "test", message, &torsioned),
            Ok(())
        );

        let honest: Vec<(Address, Vec<u8>, Signature)> = (0..5u8)
            .map(|i| {
                let key = Keypair::dev(&format!("signer {i}"));
                let message = vec![i; 40];
                let sig = key.sign(SignDomain::Tx, "test", &message);
                (key.address(), message, sig)
            })
            .collect();
        let batch = |extra: &[(Address, Vec<u8>, Signature)]| {
            let all: Vec<_> = honest.iter().chain(extra).collect();
            verify_batch(
                all.iter().map(|(a, m, s)| (a, m.as_slice(), s)),
                SignDomain::Tx,
                "test",
            )
        };
        assert_eq!(batch(&[]), Ok(()));
        assert_eq!(batch(&[(mallory, message.to_vec(), torsioned)]), Ok(()));
        let mut forged = torsioned;
        forged.0[40] ^= 1;
        assert_eq!(
            mallory.verify(SignDomain::Tx, "test", message, &forged),
            Err(KeyError::BadSignature)
        );
        assert_eq!(
            batch(&[(mallory, message.to_vec(), forged)]),
            Err(KeyError::BadSignature)
        );
    }

    #[test]
    fn a_small_order_key_signs_nothing() {
        use curve25519_dalek::constants::EIGHT_TORSION;
        // With a small-order A the cofactored equation ignores `k`: any
        // `(R, s)` with [8]R = [8][s]B passes, for every message.
        let identity = Address(EIGHT_TORSION[0].compress().to_bytes());
        let s = Scalar::from(5u64);
        let mut sig = [0; 64];
        sig[..32].copy_from_slice(EdwardsPoint::mul_base(&s).compress().as_bytes());
        sig[32..].copy_from_slice(s.as_bytes());
        let sig = Signature(sig);
        assert_eq!(
            identity.verify(SignDomain::Tx, "test", b"any", &sig),
            Err(KeyError::NotAPublicKey)
        );
        let batch = [(&identity, &b"any"[..], &sig)];
        assert_eq!(
            verify_batch(batch.into_iter(), SignDomain::Tx, "test"),
            Err(KeyError::NotAPublicKey)
        );
    }

    #[test]
    fn a_proof_of_possession_verifies_for_its_key_staker_and_chain_only() {
        let alice = Keypair::dev("alice");
        let mallory = Keypair::dev("mallory");
        let (key, pop) = (alice.vrf().public_key(), alice.vrf_pop("test"));
        assert_eq!(verify_vrf_pop(&key, "test", &alice.address(), &pop), Ok(()));
        assert_eq!(
            verify_vrf_pop(&mallory.vrf().public_key(), "test", &alice.address(), &pop),
            Err(VrfError::ProofMismatch),
            "wrong key"
        );
        assert_eq!(
            verify_vrf_pop(&key, "test", &mallory.address(), &pop),
            Err(VrfError::ProofMismatch),
            "wrong address: a copied proof is worthless to another account"
        );
        assert_eq!(
            verify_vrf_pop(&key, "other", &alice.address(), &pop),
            Err(VrfError::ProofMismatch),
            "wrong chain"
        );
        // Mallory's own proof over Alice's address does not verify under Alice's key.
        let forged = mallory.vrf().prove(&vrf_pop_input("test", &alice.address()));
        assert_eq!(
            verify_vrf_pop(&key, "test", &alice.address(), &forged),
            Err(VrfError::ProofMismatch)
        );
    }

    #[test]
    fn signing_and_vrf_keys_differ() {
        let key = Keypair::dev("carol");
        assert_ne!(key.address().0, key.vrf().public_key().0);
        assert_ne!(Keypair::dev("carol").address(), Keypair::dev("dave").address());
    }
}
