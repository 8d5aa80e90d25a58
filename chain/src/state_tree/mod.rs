//! The state commitment: a sparse Merkle tree over 256-bit keys and BLAKE3.
//!
//! Every piece of ledger state is one entry: its key is a [`TreeKey`] built
//! from a typed [`StateKey`], its value is the [`value_hash`] of the encoded
//! value. A subtree that holds no entry is [`EMPTY`] and one that holds a
//! single entry *is* that entry's leaf, so a tree of n random keys is about
//! log2(n) deep, an [`update`] of k keys reads and hashes O(k log n) nodes,
//! and a [`Proof`] of membership or non-membership carries O(log n) hashes.
//!
//! Nodes are content-addressed: the store maps a node's hash to the node.
//! A state root is therefore all it takes to read, update or prove against
//! the tree of any block on any branch, and undoing a block is forgetting
//! the nodes its [`NodeBatch`] created (docs/state.md compares this with
//! the version-keyed nodes of the `jmt` crate and gives the store's rules
//! for undo and pruning).
//!
//! Nothing here does I/O: nodes come through a [`NodeReader`], which the
//! node implements on its store; [`MemNodes`] and [`Overlay`] are the
//! in-memory ones.
//!
//! # Format
//!
//! ```text
//! EMPTY          = BLAKE3("klero/smt/empty/v1")
//! leaf(key, v)   = BLAKE3-keyed(K_leaf, key || v)     key, v: 32 bytes
//! node(l, r)     = BLAKE3-keyed(K_node, l || r)       l, r: 32 bytes
//! K_leaf         = BLAKE3("klero/smt/leaf/v1")
//! K_node         = BLAKE3("klero/smt/node/v1")
//!
//! subtree(P) = EMPTY                        no key starts with the bits P
//!            = leaf(key, v)                 exactly one key does
//!            = node(subtree(P||0), subtree(P||1))   otherwise
//! root       = subtree(the empty prefix)
//! ```
//!
//! Keyed hashing separates the two kinds and hashes the 64-byte input in
//! one BLAKE3 compression (a tag in front would take two). Bits are read
//! most significant first: bit `d` of a key picks the child at depth `d`
//! (0 = left). A stored [`Node`] is encoded with [`crate::codec`]: `u32`
//! variant (0 = leaf, 1 = internal), then its two 32-byte fields.

mod key;
mod mem;
mod proof;
mod update;

pub use key::{StateKey, value_hash};
pub use mem::{MemNodes, Overlay};
pub use proof::{MAX_PROOF_BYTES, PROOF_VERSION, Proof, ProofError, prove, verify};
pub use update::{NodeBatch, update};

use bincode::{Decode, Encode};
use std::fmt;
use std::sync::LazyLock;

use crate::codec::{self, CodecError};
use crate::hash::Hash;

/// Depth of the deepest possible leaf: one level per key bit.
pub const MAX_DEPTH: usize = 256;

/// The hash of a subtree without entries: BLAKE3("klero/smt/empty/v1").
pub const EMPTY: Hash = Hash([
    0xce, 0xfa, 0x8b, 0xd4, 0xab, 0x0a, 0x2e, 0x3d, 0x83, 0x10, 0x78, 0x27, 0x5a, 0x2b, 0xdb, 0x9e, 0xc7,
    0x3a, 0x8c, 0xc3, 0xd8, 0x61, 0x4d, 0x7f, 0x9f, 0x59, 0x4f, 0x3f, 0x64, 0x6e, 0x8a, 0xdb,
]);

static LEAF_KEY: LazyLock<[u8; 32]> = LazyLock::new(|| Hash::of(b"klero/smt/leaf/v1").0);
static NODE_KEY: LazyLock<[u8; 32]> = LazyLock::new(|| Hash::of(b"klero/smt/node/v1").0);

/// Largest encoded [`Node`]: a variant index and two hashes.
pub const MAX_NODE_BYTES: usize = 4 + 2 * 32;

/// A position in the tree: 256 bits. Outside this crate the only way to
/// make one is [`StateKey::tree_key`], so every key has a kind.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct TreeKey(pub(crate) [u8; 32]);

impl TreeKey {
    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Bit `depth` (most significant first): which child holds the key at
    /// that depth. `depth` must be below [`MAX_DEPTH`].
    fn bit(&self, depth: usize) -> bool {
        self.0[depth / 8] & (0x80 >> (depth % 8)) != 0
    }

    /// How many leading bits `self` and `other` share (256 if equal).
    fn common_prefix(&self, other: &TreeKey) -> usize {
        for (i, (a, b)) in self.0.iter().zip(&other.0).enumerate() {
            let diff = a ^ b;
            if diff != 0 {
                return i * 8 + diff.leading_zeros() as usize;
            }
        }
        MAX_DEPTH
    }
}

impl fmt::Debug for TreeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TreeKey({})", hex::encode(&self.0[..4]))
    }
}

/// A stored node. The empty subtree is not a node: it is [`EMPTY`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Node {
    /// A subtree with exactly one entry.
    Leaf {
        /// The entry's key.
        key: TreeKey,
        /// The hash of its value.
        value: Hash,
    },
    /// A subtree with at least two entries. A child is [`EMPTY`] when all
    /// entries lie on the other side.
    Internal {
        /// The subtree of bit 0.
        left: Hash,
        /// The subtree of bit 1.
        right: Hash,
    },
}

impl Node {
    /// The node's hash, under which it is stored and referenced.
    pub fn hash(&self) -> Hash {
        match self {
            Node::Leaf { key, value } => leaf_hash(key, value),
            Node::Internal { left, right } => node_hash(left, right),
        }
    }

    /// The node's encoding for a store.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes a stored node.
    ///
    /// # Errors
    ///
    /// [`CodecError`] if the bytes are not exactly one node.
    pub fn decode(bytes: &[u8]) -> Result<Node, CodecError> {
        codec::decode::<_, MAX_NODE_BYTES>(bytes, "state tree node")
    }
}

fn leaf_hash(key: &TreeKey, value: &Hash) -> Hash {
    keyed_hash(&LEAF_KEY, &key.0, &value.0)
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    keyed_hash(&NODE_KEY, &left.0, &right.0)
}

fn keyed_hash(key: &[u8; 32], a: &[u8; 32], b: &[u8; 32]) -> Hash {
    let mut input = [0u8; 64];
    input[..32].copy_from_slice(a);
    input[32..].copy_from_slice(b);
    Hash(*blake3::keyed_hash(key, &input).as_bytes())
}

/// Where the tree's nodes live. The node implements it on its store; the
/// reader's own error comes back inside [`TreeError::Store`]. Readers are
/// shared between threads: a large update reads subtrees in parallel.
pub trait NodeReader: Sync {
    /// What can go wrong reading the store.
    type Error: std::error::Error + Send + 'static;

    /// The node with hash `hash`, or `None` if the store does not hold it.
    ///
    /// # Errors
    ///
    /// Whatever the store fails with.
    fn get(&self, hash: &Hash) -> Result<Option<Node>, Self::Error>;
}

/// Why the tree could not be read or updated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TreeError<E: std::error::Error + 'static> {
    /// The node store failed.
    #[error("node store: {0}")]
    Store(#[source] E),
    /// A node the tree refers to is not in the store (pruned, or never
    /// written).
    #[error("state tree node {0} is not in the store")]
    MissingNode(Hash),
    /// A node sits where no node of a 256-bit tree can: an internal node
    /// at depth 256, or a leaf whose key is not under its position.
    #[error("state tree node {node} at depth {depth} is malformed")]
    Malformed {
        /// The node's hash.
        node: Hash,
        /// Its depth.
        depth: usize,
    },
    /// The same key appears twice in one update.
    #[error("key {0:?} is changed twice in one update")]
    DuplicateKey(TreeKey),
}

/// Reads the node `hash`; missing is an error, since the tree refers to it.
fn load<R: NodeReader>(reader: &R, hash: Hash) -> Result<Node, TreeError<R::Error>> {
    reader
        .get(&hash)
        .map_err(TreeError::Store)?
        .ok_or(TreeError::MissingNode(hash))
}

/// Checks that a leaf found at `depth` on the path of `path` lies under
/// that path's prefix, and that an internal node is not at the last depth,
/// so walking a corrupt store returns an error instead of going astray.
fn check_position<E: std::error::Error>(
    node: &Node,
    hash: Hash,
    path: &TreeKey,
    depth: usize,
) -> Result<(), TreeError<E>> {
    let fits = match node {
        Node::Leaf { key, .. } => key.common_prefix(path) >= depth,
        Node::Internal { .. } => depth < MAX_DEPTH,
    };
    if fits {
        Ok(())
    } else {
        Err(TreeError::Malformed { node: hash, depth })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_the_hash_of_its_domain_tag() {
        assert_eq!(EMPTY, Hash::of(b"klero/smt/empty/v1"));
    }

    #[test]
    fn leaf_and_node_hashes_are_domain_separated() {
        let a = Hash([1; 32]);
        let b = Hash([2; 32]);
        assert_ne!(leaf_hash(&TreeKey(a.0), &b), node_hash(&a, &b));
        let keyed = |tag: &[u8]| {
            let mut hasher = blake3::Hasher::new_keyed(blake3::hash(tag).as_bytes());
            hasher.update(&a.0).update(&b.0);
            Hash(*hasher.finalize().as_bytes())
        };
        assert_eq!(leaf_hash(&TreeKey(a.0), &b), keyed(b"klero/smt/leaf/v1"));
        assert_eq!(node_hash(&a, &b), keyed(b"klero/smt/node/v1"));
    }

    #[test]
    fn bits_are_read_most_significant_first() {
        let mut k = [0u8; 32];
        k[0] = 0b1000_0001;
        k[31] = 1;
        let k = TreeKey(k);
        let ones: Vec<usize> = (0..MAX_DEPTH).filter(|&d| k.bit(d)).collect();
        assert_eq!(ones, vec![0, 7, 255]);
    }

    #[test]
    fn common_prefix_counts_shared_leading_bits() {
        let a = TreeKey([0; 32]);
        let mut b = [0; 32];
        b[2] = 0b0001_0000;
        assert_eq!(a.common_prefix(&TreeKey(b)), 19);
        assert_eq!(a.common_prefix(&a), MAX_DEPTH);
    }

    #[test]
    fn nodes_round_trip_and_refuse_bad_encodings() {
        let nodes = [
            Node::Leaf {
                key: TreeKey([3; 32]),
                value: Hash([4; 32]),
            },
            Node::Internal {
                left: Hash([5; 32]),
                right: EMPTY,
            },
        ];
        for node in nodes {
            let bytes = node.encode();
            assert_eq!(bytes.len(), MAX_NODE_BYTES);
            assert_eq!(Node::decode(&bytes), Ok(node));
            assert!(Node::decode(&bytes[..bytes.len() - 1]).is_err());
            let mut long = bytes.clone();
            long.push(0);
            assert!(Node::decode(&long).is_err());
        }
        let mut bad_variant = nodes[0].encode();
        bad_variant[0] = 2;
        assert!(matches!(
            Node::decode(&bad_variant),
            Err(CodecError::Malformed { .. })
        ));
    }
}
