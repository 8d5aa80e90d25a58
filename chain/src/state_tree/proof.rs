//! Proofs that a key has a value, or no value, under a state root.
//!
//! A [`Proof`] is the path from the root to where the key's leaf is or
//! would be: the sibling hash at every depth, then what the path ends in:
//! the key's own leaf (membership), nothing, or another key's leaf sharing
//! the path (both non-membership). [`verify`] hashes back up to the root;
//! it is pure, so a wallet checks a node's answer against a header's state
//! root without trusting the node.
//!
//! # Format
//!
//! ```text
//! u8          version (PROOF_VERSION = 1)
//! u64 + 32*n  siblings, root first (n <= 256)
//! u8 [+ 64]   the leaf ending the path: 0, or 1 then its key and value hash
//! ```
//!
//! Decoding refuses more than [`MAX_PROOF_BYTES`] before reading anything.

use bincode::{Decode, Encode};

use super::{
    EMPTY, MAX_DEPTH, Node, NodeReader, TreeError, TreeKey, check_position, leaf_hash, load, node_hash,
};
use crate::codec::{self, CodecError};
use crate::hash::Hash;

/// The proof encoding this code writes and reads.
pub const PROOF_VERSION: u8 = 1;

/// Largest encoded proof: version, 256 siblings and a leaf.
pub const MAX_PROOF_BYTES: usize = 1 + 8 + MAX_DEPTH * 32 + 1 + 64;

/// A membership or non-membership proof for one key. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Proof {
    version: u8,
    siblings: Vec<Hash>,
    leaf: Option<ProofLeaf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
struct ProofLeaf {
    key: TreeKey,
    value: Hash,
}

/// Why a proof does not prove the claim.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    /// The bytes are not a proof.
    #[error("undecodable state proof: {0}")]
    Decode(#[from] CodecError),
    /// A proof encoding this code does not know.
    #[error("state proof version {got} is not supported (expected {PROOF_VERSION})")]
    UnsupportedVersion {
        /// The version in the proof.
        got: u8,
    },
    /// More siblings than a 256-bit key has bits.
    #[error("state proof has {depth} levels, more than {MAX_DEPTH}")]
    TooDeep {
        /// The number of siblings.
        depth: usize,
    },
    /// The path ends in another key's leaf that is not on the key's path.
    #[error("the proof's leaf is not on the key's path")]
    LeafOffPath,
    /// The proof shows another value (or presence, or absence) for the key
    /// than the one claimed.
    #[error("the proof shows value {proven:?} for the key, not {claimed:?}")]
    ValueMismatch {
        /// What the proof shows (`None`: the key is absent).
        proven: Option<Hash>,
        /// What was claimed.
        claimed: Option<Hash>,
    },
    /// The path does not hash to the trusted root.
    #[error("the proof leads to root {computed}, not {expected}")]
    RootMismatch {
        /// The trusted root.
        expected: Hash,
        /// Where the proof leads.
        computed: Hash,
    },
}

impl Proof {
    /// The proof's encoding (for the API).
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes a proof from an untrusted source, bounded by [`MAX_PROOF_BYTES`].
    ///
    /// # Errors
    ///
    /// [`ProofError::Decode`] for bytes that are not one proof,
    /// [`ProofError::UnsupportedVersion`] and [`ProofError::TooDeep`] for
    /// proofs no tree can produce.
    pub fn decode(bytes: &[u8]) -> Result<Proof, ProofError> {
        let proof: Proof = codec::decode::<_, MAX_PROOF_BYTES>(bytes, "state proof")?;
        proof.check_shape()?;
        Ok(proof)
    }

    /// How deep the path goes: the number of siblings.
    pub fn depth(&self) -> usize {
        self.siblings.len()
    }

    fn check_shape(&self) -> Result<(), ProofError> {
        if self.version != PROOF_VERSION {
            return Err(ProofError::UnsupportedVersion { got: self.version });
        }
        if self.siblings.len() > MAX_DEPTH {
            return Err(ProofError::TooDeep {
                depth: self.siblings.len(),
            });
        }
        Ok(())
    }
}

/// The proof for `key` in the tree `root`: of its value if it has one, of
/// its absence otherwise.
///
/// # Errors
///
/// The reader's failures and missing or malformed nodes.
pub fn prove<R: NodeReader>(root: Hash, key: &TreeKey, reader: &R) -> Result<Proof, TreeError<R::Error>> {
    let mut siblings = Vec::new();
    let mut hash = root;
    let leaf = loop {
        if hash == EMPTY {
            break None;
        }
        let node = load(reader, hash)?;
        check_position(&node, hash, key, siblings.len())?;
        match node {
            Node::Leaf { key, value } => break Some(ProofLeaf { key, value }),
            Node::Internal { left, right } => {
                let (next, sibling) = if key.bit(siblings.len()) {
                    (right, left)
                } else {
                    (left, right)
                };
                siblings.push(sibling);
                hash = next;
            }
        }
    };
    Ok(Proof {
        version: PROOF_VERSION,
        siblings,
        leaf,
    })
}

/// Checks that `proof` shows `key` with value hash `value` (`None`: absent)
/// under `root`.
///
/// # Errors
///
/// [`ProofError`] naming the first check that fails, cheapest first.
pub fn verify(root: &Hash, key: &TreeKey, value: Option<&Hash>, proof: &Proof) -> Result<(), ProofError> {
    proof.check_shape()?;
    let depth = proof.siblings.len();
    let (proven, mut hash) = match &proof.leaf {
        None => (None, EMPTY),
        Some(leaf) if leaf.key == *key => (Some(leaf.value), leaf_hash(&leaf.key, &leaf.value)),
        Some(leaf) if leaf.key.common_prefix(key) >= depth => (None, leaf_hash(&leaf.key, &leaf.value)),
        Some(_) => return Err(ProofError::LeafOffPath),
    };
    if proven.as_ref() != value {
        return Err(ProofError::ValueMismatch {
            proven,
            claimed: value.copied(),
        });
    }
    for (depth, sibling) in proof.siblings.iter().enumerate().rev() {
        hash = if key.bit(depth) {
            node_hash(sibling, &hash)
        } else {
            node_hash(&hash, sibling)
        };
    }
    if hash == *root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch {
            expected: *root,
            computed: hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::update::tests::{entries, key, tree, value};
    use super::*;
    use proptest::prelude::*;

    fn members_and_absentees_verify(entries: &std::collections::BTreeMap<TreeKey, Hash>, absent: &[TreeKey]) {
        let (root, store) = tree(entries);
        for (key, value) in entries {
            let proof = prove(root, key, &store).unwrap();
            let decoded = Proof::decode(&proof.encode()).unwrap();
            assert_eq!(verify(&root, key, Some(value), &decoded), Ok(()));
            assert!(matches!(
                verify(&root, key, None, &decoded),
                Err(ProofError::ValueMismatch { .. })
            ));
        }
        for key in absent.iter().filter(|k| !entries.contains_key(k)) {
            let proof = Proof::decode(&prove(root, key, &store).unwrap().encode()).unwrap();
            assert_eq!(verify(&root, key, None, &proof), Ok(()));
            assert!(matches!(
                verify(&root, key, Some(&Hash([0; 32])), &proof),
                Err(ProofError::ValueMismatch { .. })
            ));
        }
    }

    #[test]
    fn proofs_in_an_empty_and_a_one_entry_tree() {
        members_and_absentees_verify(&Default::default(), &[TreeKey([1; 32])]);
        let one = [(TreeKey([1; 32]), Hash([2; 32]))].into_iter().collect();
        members_and_absentees_verify(&one, &[TreeKey([3; 32]), TreeKey([0; 32])]);
    }

    #[test]
    fn the_largest_proof_fits_the_limit() {
        let mut last = [0u8; 32];
        last[31] = 1;
        let entries = [(TreeKey([0; 32]), Hash([1; 32])), (TreeKey(last), Hash([2; 32]))]
            .into_iter()
            .collect();
        let (root, store) = tree(&entries);
        let proof = prove(root, &TreeKey(last), &store).unwrap();
        assert_eq!(proof.depth(), MAX_DEPTH);
        assert_eq!(proof.encode().len(), MAX_PROOF_BYTES);
        assert_eq!(
            verify(&root, &TreeKey(last), Some(&Hash([2; 32])), &proof),
            Ok(())
        );
    }

    fn proof_with(siblings: Vec<Hash>, leaf: Option<ProofLeaf>) -> Vec<u8> {
        Proof {
            version: PROOF_VERSION,
            siblings,
            leaf,
        }
        .encode()
    }

    #[test]
    fn hostile_encodings_are_refused() {
        // 257 siblings and no leaf still fit the byte limit: the depth check refuses them.
        let deep = proof_with(vec![EMPTY; MAX_DEPTH + 1], None);
        assert!(deep.len() <= MAX_PROOF_BYTES);
        assert_eq!(
            Proof::decode(&deep),
            Err(ProofError::TooDeep { depth: MAX_DEPTH + 1 })
        );
        // With a leaf, 257 siblings are over the limit before decoding starts.
        let leaf = Some(ProofLeaf {
            key: TreeKey([0; 32]),
            value: EMPTY,
        });
        let too_long = proof_with(vec![EMPTY; MAX_DEPTH + 1], leaf);
        assert!(matches!(
            Proof::decode(&too_long),
            Err(ProofError::Decode(CodecError::TooLarge { .. }))
        ));
        // A length prefix claiming far more siblings than there are bytes.
        let mut huge = vec![PROOF_VERSION];
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        huge.extend_from_slice(&[0; 64]);
        assert!(matches!(
            Proof::decode(&huge),
            Err(ProofError::Decode(CodecError::Malformed { .. }))
        ));
        let mut future = proof_with(vec![], None);
        future[0] = 2;
        assert_eq!(
            Proof::decode(&future),
            Err(ProofError::UnsupportedVersion { got: 2 })
        );
        let good = proof_with(vec![Hash([1; 32])], leaf);
        for cut in 0..good.len() {
            assert!(
                Proof::decode(&good[..cut]).is_err(),
                "prefix of {cut} bytes decoded"
            );
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(matches!(
            Proof::decode(&trailing),
            Err(ProofError::Decode(CodecError::TrailingBytes { .. }))
        ));
        let mut bad_tag = good;
        bad_tag[1 + 8 + 32] = 2;
        assert!(matches!(Proof::decode(&bad_tag), Err(ProofError::Decode(_))));
    }

    #[test]
    fn a_leaf_off_the_keys_path_is_refused() {
        // Key 0x00.. at depth 1 cannot end in the leaf of 0xff.. (first bit differs).
        let stray = ProofLeaf {
            key: TreeKey([0xff; 32]),
            value: Hash([1; 32]),
        };
        let proof = Proof::decode(&proof_with(vec![EMPTY], Some(stray))).unwrap();
        assert_eq!(
            verify(&Hash([0; 32]), &TreeKey([0; 32]), None, &proof),
            Err(ProofError::LeafOffPath)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn membership_and_non_membership_proofs_verify(
            entries in entries(),
            absent in prop::collection::vec(key(), 0..8),
        ) {
            members_and_absentees_verify(&entries, &absent);
        }

        #[test]
        fn tampering_with_proof_value_or_root_fails(
            entries in entries(),
            probe in key(),
            other in value(),
            pick in any::<prop::sample::Index>(),
            flip in 0usize..256,
        ) {
            let (root, store) = tree(&entries);
            let value = entries.get(&probe);
            let proof = prove(root, &probe, &store).unwrap();
            prop_assert_eq!(verify(&root, &probe, value, &proof), Ok(()));

            let mut wrong_root = root;
            wrong_root.0[flip / 8] ^= 1 << (flip % 8);
            prop_assert!(verify(&wrong_root, &probe, value, &proof).is_err());

            let wrong_value = match value {
                Some(v) if *v == other => None,
                _ => Some(other),
            };
            prop_assert!(verify(&root, &probe, wrong_value.as_ref(), &proof).is_err());

            if !proof.siblings.is_empty() {
                let mut bent = proof.clone();
                let at = pick.index(bent.siblings.len());
                bent.siblings[at].0[flip / 8] ^= 1 << (flip % 8);
                prop_assert!(verify(&root, &probe, value, &bent).is_err());
                let mut short = proof.clone();
                short.siblings.remove(at);
                prop_assert!(verify(&root, &probe, value, &short).is_err());
            }
            if let Some(leaf) = proof.leaf {
                let mut moved = proof.clone();
                moved.leaf = Some(ProofLeaf { value: Hash([0xee; 32]), ..leaf });
                prop_assert!(verify(&root, &probe, value, &moved).is_err());
                let mut hidden = proof.clone();
                hidden.leaf = None;
                prop_assert!(verify(&root, &probe, None, &hidden).is_err());
            }
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600), probe in key()) {
            if let Ok(proof) = Proof::decode(&bytes) {
                prop_assert!(verify(&Hash([0x5a; 32]), &probe, None, &proof).is_err());
            }
        }
    }
}
