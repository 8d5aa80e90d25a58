//! ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381, suite 0x03).
//!
//! A verifiable random function: the holder of a secret key maps an input
//! `alpha` to a 64-byte output `beta` and an 80-byte proof `pi`; anyone
//! with the public key can check that `beta` is the only output for
//! `alpha`. klero's PoS draw uses it so that each staker's ticket is
//! unpredictable to others and unforgeable.
//!
//! - Keys: a 32-byte seed as in RFC 8032: `h = SHA-512(seed)`, `x` = clamped
//!   `h[0..32]`, `Y = x·B`; `h[32..64]` is the nonce prefix.
//! - `encode_to_curve` (try-and-increment, 5.4.1.1): for `ctr = 0, 1, …`,
//!   `SHA-512(0x03 ‖ 0x01 ‖ Y ‖ alpha ‖ ctr ‖ 0x00)[0..32]` decoded as a
//!   point, multiplied by the cofactor 8.
//! - Nonce (5.4.2.2): `k = SHA-512(prefix ‖ H) mod q`.
//! - Challenge (5.4.3): `c = SHA-512(0x03 ‖ 0x02 ‖ Y ‖ H ‖ Gamma ‖ U ‖ V ‖ 0x00)[0..16]`.
//! - Proof: `Gamma (32) ‖ c (16, little-endian) ‖ s (32, little-endian)` with
//!   `Gamma = x·H`, `s = k + c·x mod q`.
//! - Output (5.2): `beta = SHA-512(0x03 ‖ 0x03 ‖ 8·Gamma ‖ 0x00)`.
//! - Verify (5.3): the key must decode and not be of small order; `Gamma`
//!   must decode; `s < q`; then `U = s·B − c·Y`, `V = s·H − c·Gamma` and
//!   the recomputed challenge must equal `c`.
//!
//! Test vectors: RFC 9381 Appendix B.3.

use bincode::{Decode, Encode};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::{Scalar, clamp_integer};
use curve25519_dalek::traits::VartimeMultiscalarMul;
use sha2::{Digest, Sha512};

/// The suite byte of ECVRF-EDWARDS25519-SHA512-TAI.
pub const SUITE: u8 = 0x03;
/// Public key length.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Proof length.
pub const PROOF_LEN: usize = 80;
/// Output length.
pub const OUTPUT_LEN: usize = 64;

/// Why a proof or key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum VrfError {
    /// The public key is not a point encoding.
    #[error("public key does not decode to a curve point")]
    InvalidPublicKey,
    /// The public key has small order (no security).
    #[error("public key has small order")]
    SmallOrderPublicKey,
    /// Gamma in the proof does not decode.
    #[error("proof's Gamma does not decode to a curve point")]
    InvalidGamma,
    /// `s >= q`.
    #[error("proof's s is not a canonical scalar")]
    NonCanonicalScalar,
    /// The challenge does not match: the proof is for another key or input.
    #[error("proof does not verify")]
    ProofMismatch,
    /// No counter value hashed to a point (probability 2^-256).
    #[error("input did not hash to a curve point")]
    HashToCurveFailed,
}

/// A VRF secret key.
#[derive(Clone)]
pub struct VrfSecretKey {
    x: Scalar,
    prefix: [u8; 32],
    public: VrfPublicKey,
}

/// A VRF public key (a compressed Edwards point). Ordered by its bytes,
/// so the ledger can keep a registry of keys in a sorted map.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode)]
pub struct VrfPublicKey(pub [u8; 32]);

/// A VRF proof `Gamma ‖ c ‖ s`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Encode, Decode)]
pub struct VrfProof(pub [u8; 80]);

/// A VRF output (beta).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Encode, Decode)]
pub struct VrfOutput(pub [u8; 64]);

impl std::fmt::Debug for VrfSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VrfSecretKey(public {})", hex::encode(self.public.0))
    }
}

impl VrfSecretKey {
    /// The key of a 32-byte seed, derived as RFC 8032 derives ed25519 keys.
    pub fn from_seed(seed: &[u8; 32]) -> VrfSecretKey {
        let h: [u8; 64] = Sha512::digest(seed).into();
        let mut low = [0u8; 32];
        low.copy_from_slice(&h[..32]);
        let mut prefix = [0u8; 32];
        prefix.copy_from_slice(&h[32..]);
        // Reducing the clamped integer mod q changes nothing: B has order q.
        let x = Scalar::from_bytes_mod_order(clamp_integer(low));
        let public = VrfPublicKey(EdwardsPoint::mul_base(&x).compress().to_bytes());
        VrfSecretKey { x, prefix, public }
    }

    /// The public key.
    pub fn public_key(&self) -> VrfPublicKey {
        self.public
    }

    /// Proves `alpha`.
    pub fn prove(&self, alpha: &[u8]) -> VrfProof {
        // The public key is a valid point (we made it), so hashing to the
        // curve only fails with probability 2^-256; the identity is then a
        // harmless stand-in that verifies as nothing.
        let h = encode_to_curve(&self.public.0, alpha).unwrap_or_default();
        let h_bytes = h.compress().to_bytes();
        let gamma = self.x * h;
        let k = nonce(&self.prefix, &h_bytes);
        // One field inversion for the three encodings instead of three.
        let [gamma_bytes, u, v] = EdwardsPoint::compress_batch(&[gamma, EdwardsPoint::mul_base(&k), k * h]);
        let c = challenge(&self.public.0, &h_bytes, &gamma_bytes.0, &u.0, &v.0);
        let s = k + c * self.x;
        let mut pi = [0u8; 80];
        pi[..32].copy_from_slice(&gamma_bytes.0);
        pi[32..48].copy_from_slice(&c.to_bytes()[..16]);
        pi[48..].copy_from_slice(&s.to_bytes());
        VrfProof(pi)
    }
}

impl VrfPublicKey {
    fn point(&self) -> Result<EdwardsPoint, VrfError> {
        let point = CompressedEdwardsY(self.0)
            .decompress()
            .ok_or(VrfError::InvalidPublicKey)?;
        if point.is_small_order() {
            return Err(VrfError::SmallOrderPublicKey);
        }
        Ok(point)
    }

    /// RFC 9381 5.4.5: the key decodes and is not of small order.
    ///
    /// # Errors
    ///
    /// [`VrfError::InvalidPublicKey`] or [`VrfError::SmallOrderPublicKey`].
    pub fn validate(&self) -> Result<(), VrfError> {
        self.point().map(|_| ())
    }
}

fn encode_to_curve(public: &[u8; 32], alpha: &[u8]) -> Option<EdwardsPoint> {
    (0u8..=255).find_map(|ctr| {
        let digest = Sha512::new()
            .chain_update([SUITE, 0x01])
            .chain_update(public)
            .chain_update(alpha)
            .chain_update([ctr, 0x00])
            .finalize();
        let mut candidate = [0u8; 32];
        candidate.copy_from_slice(&digest[..32]);
        CompressedEdwardsY(candidate)
            .decompress()
            .map(|p| p.mul_by_cofactor())
    })
}

fn nonce(prefix: &[u8; 32], h: &[u8; 32]) -> Scalar {
    let digest: [u8; 64] = Sha512::new()
        .chain_update(prefix)
        .chain_update(h)
        .finalize()
        .into();
    Scalar::from_bytes_mod_order_wide(&digest)
}

/// RFC 9381 5.4.3 over the encoded points.
fn challenge(public: &[u8; 32], h: &[u8; 32], gamma: &[u8; 32], u: &[u8; 32], v: &[u8; 32]) -> Scalar {
    let digest = Sha512::new()
        .chain_update([SUITE, 0x02])
        .chain_update(public)
        .chain_update(h)
        .chain_update(gamma)
        .chain_update(u)
        .chain_update(v)
        .chain_update([0x00])
        .finalize();
    let mut c = [0u8; 32];
    c[..16].copy_from_slice(&digest[..16]);
    Scalar::from_bytes_mod_order(c)
}

struct DecodedProof {
    gamma: EdwardsPoint,
    c: Scalar,
    s: Scalar,
}

fn decode_proof(proof: &VrfProof) -> Result<DecodedProof, VrfError> {
    let mut gamma = [0u8; 32];
    gamma.copy_from_slice(&proof.0[..32]);
    let gamma = CompressedEdwardsY(gamma)
        .decompress()
        .ok_or(VrfError::InvalidGamma)?;
    let mut c = [0u8; 32];
    c[..16].copy_from_slice(&proof.0[32..48]);
    let mut s = [0u8; 32];
    s.copy_from_slice(&proof.0[48..]);
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s)).ok_or(VrfError::NonCanonicalScalar)?;
    Ok(DecodedProof {
        gamma,
        c: Scalar::from_bytes_mod_order(c),
        s,
    })
}

/// RFC 9381 5.2 from the encoding of `8·Gamma`.
fn output_of(eight_gamma: &CompressedEdwardsY) -> VrfOutput {
    let digest = Sha512::new()
        .chain_update([SUITE, 0x03])
        .chain_update(eight_gamma.as_bytes())
        .chain_update([0x00])
        .finalize();
    VrfOutput(digest.into())
}

/// RFC 9381 5.2: the output of a proof, without verifying it.
///
/// # Errors
///
/// If the proof does not decode.
pub fn proof_to_hash(proof: &VrfProof) -> Result<VrfOutput, VrfError> {
    decode_proof(proof).map(|d| output_of(&d.gamma.mul_by_cofactor().compress()))
}

/// RFC 9381 5.3: verifies `proof` for `alpha` under `public` and returns the output.
///
/// # Errors
///
/// [`VrfError`] naming the first check that failed.
pub fn verify(public: &VrfPublicKey, alpha: &[u8], proof: &VrfProof) -> Result<VrfOutput, VrfError> {
    let y = public.point()?;
    let d = decode_proof(proof)?;
    let h = encode_to_curve(&public.0, alpha).ok_or(VrfError::HashToCurveFailed)?;
    // U = s·B − c·Y and V = s·H − c·Gamma; everything here is public, so
    // variable time is fine. c has 128 bits: negating the points instead of
    // c keeps its non-adjacent form short, and c·(−Y) alone in the
    // double-base routine (which skips leading zero digits) runs 128
    // doublings where s·B − c·Y together would run 253; s·B is the
    // precomputed fixed-base table's.
    let u = EdwardsPoint::mul_base(&d.s)
        + EdwardsPoint::vartime_double_scalar_mul_basepoint(&d.c, &(-y), &Scalar::ZERO);
    let v = EdwardsPoint::vartime_multiscalar_mul([d.s, d.c], [h, -d.gamma]);
    // One field inversion for the five encodings, the output's `8·Gamma` too.
    let [h, gamma, u, v, eight_gamma] =
        EdwardsPoint::compress_batch(&[h, d.gamma, u, v, d.gamma.mul_by_cofactor()]);
    let c = challenge(&public.0, &h.0, &gamma.0, &u.0, &v.0);
    if c != d.c {
        return Err(VrfError::ProofMismatch);
    }
    Ok(output_of(&eight_gamma))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn seed(s: &str) -> [u8; 32] {
        h(s).try_into().unwrap()
    }

    /// RFC 9381 Appendix B.3, Example 16 (the RFC 8032 test-1 key, alpha = "").
    #[test]
    fn rfc9381_b3_example_16() {
        let sk = VrfSecretKey::from_seed(&seed(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        ));
        assert_eq!(
            hex::encode(sk.public_key().0),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let pi = sk.prove(b"");
        assert_eq!(
            hex::encode(pi.0),
            "8657106690b5526245a92b003bb079ccd1a92130477671f6fc01ad16f26f723f\
             26f8a57ccaed74ee1b190bed1f479d9727d2d0f9b005a6e456a35d4fb0daab12\
             68a1b0db10836d9826a528ca76567805"
        );
        let beta = verify(&sk.public_key(), b"", &pi).unwrap();
        assert_eq!(
            hex::encode(beta.0),
            "90cf1df3b703cce59e2a35b925d411164068269d7b2d29f3301c03dd757876ff\
             66b71dda49d2de59d03450451af026798e8f81cd2e333de5cdf4f3e140fdd8ae"
        );
        assert_eq!(proof_to_hash(&pi), Ok(beta));
    }

    fn key() -> VrfSecretKey {
        VrfSecretKey::from_seed(&[42; 32])
    }

    #[test]
    fn round_trip_for_many_seeds_and_inputs() {
        for i in 0..20u8 {
            let sk = VrfSecretKey::from_seed(&[i; 32]);
            let alpha = [i; 7];
            let pi = sk.prove(&alpha);
            assert_eq!(verify(&sk.public_key(), &alpha, &pi), proof_to_hash(&pi));
        }
    }

    #[test]
    fn every_flipped_byte_of_the_proof_fails() {
        let sk = key();
        let pi = sk.prove(b"slot 7");
        for i in 0..PROOF_LEN {
            for bit in [0x01u8, 0x80] {
                let mut bad = pi;
                bad.0[i] ^= bit;
                assert!(
                    verify(&sk.public_key(), b"slot 7", &bad).is_err(),
                    "byte {i} bit {bit:#x}"
                );
            }
        }
    }

    #[test]
    fn wrong_input_or_key_fails() {
        let sk = key();
        let pi = sk.prove(b"a");
        assert_eq!(verify(&sk.public_key(), b"b", &pi), Err(VrfError::ProofMismatch));
        let other = VrfSecretKey::from_seed(&[1; 32]).public_key();
        assert_eq!(verify(&other, b"a", &pi), Err(VrfError::ProofMismatch));
    }

    #[test]
    fn non_canonical_s_is_refused() {
        let sk = key();
        let pi = sk.prove(b"x");
        // s + q, still 32 bytes (s < q < 2^253, so s + q < 2^254).
        let mut s = [0u8; 32];
        s.copy_from_slice(&pi.0[48..]);
        let q: [u8; 32] = h("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
            .try_into()
            .unwrap();
        let mut carry = 0u16;
        for i in 0..32 {
            let sum = u16::from(s[i]) + u16::from(q[i]) + carry;
            s[i] = sum as u8;
            carry = sum >> 8;
        }
        let mut bad = pi;
        bad.0[48..].copy_from_slice(&s);
        assert_eq!(
            verify(&sk.public_key(), b"x", &bad),
            Err(VrfError::NonCanonicalScalar)
        );
    }

    #[test]
    fn undecodable_gamma_is_refused() {
        let sk = key();
        let mut bad = sk.prove(b"x");
        // y = 2 is not on the curve (x^2 = (y^2 - 1)/(d y^2 + 1) is not a square).
        let mut gamma = [0u8; 32];
        gamma[0] = 2;
        assert!(CompressedEdwardsY(gamma).decompress().is_none());
        bad.0[..32].copy_from_slice(&gamma);
        assert_eq!(verify(&sk.public_key(), b"x", &bad), Err(VrfError::InvalidGamma));
    }

    #[test]
    fn small_order_and_invalid_public_keys_are_refused() {
        let pi = key().prove(b"x");
        // The identity (y = 1) and the point of order 2 (y = -1).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut minus_one = [0xffu8; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        // A point of order 8 (y = 0, x^2 = -1 has a root).
        let order8 = [0u8; 32];
        for bad in [identity, minus_one, order8] {
            assert_eq!(
                verify(&VrfPublicKey(bad), b"x", &pi),
                Err(VrfError::SmallOrderPublicKey)
            );
        }
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        assert_eq!(
            verify(&VrfPublicKey(not_a_point), b"x", &pi),
            Err(VrfError::InvalidPublicKey)
        );
    }
}
