//! klero-chain: the pure, deterministic consensus core of klero.
//!
//! Nothing in this crate reads a clock, a socket, a file or a random number
//! generator: time, randomness and parent state come in as arguments, so
//! every function is a function of its inputs and every node computes the
//! same verdict on the same block.
//!
//! # Layout
//!
//! - [`hash`]: BLAKE3 ids and roots.
//! - [`codec`]: the only encoder/decoder; size limits on every decode.
//! - [`keys`]: addresses (bech32m), domain-separated ed25519 signatures,
//!   a wallet seed's signing and VRF keys.
//! - [`vrf`]: ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381).
//! - [`types`]: headers, seals, blocks, transactions.
//! - [`ledger`]: accounts and the state transition.
//! - [`state`]: the ledger state behind one read interface (in memory, in a
//!   node's store, or a branch over either), overlays of a block's writes
//!   and the change sets they make; [`state_tree`]: the sparse Merkle tree
//!   whose root a header commits to, with proofs.
//! - [`epoch`]: stake snapshots and epoch randomness for the PoS draw.
//! - [`spec`]: the TOML chain spec (read and written), the genesis block,
//!   the rules derived from the parameters (`ChainSpec::epoch_of`,
//!   `ChainSpec::block_ctx`) and the development presets.
//! - [`u256`], [`difficulty`], [`pow`]: 256-bit targets, ASERT, the
//!   SHA-256 puzzle with its hash kernels and the parallel nonce search
//!   (paced by its caller: a hashrate cap needs a clock, which lives in the node).
//! - [`draw`], [`pos`]: the fixed-point exponential race, slots, epochs,
//!   the VRF input and eligibility.
//! - [`validate`]: the block validation pipeline; [`produce`]: building
//!   blocks; [`fork_choice`]: which tip to follow.
//!
//! # Validating a block
//!
//! decode (bounded) → header alone → against the parent → seal (PoW target
//! and hash, or PoS VRF proof) → proposer signature → tx root, all without
//! the parent's state; then, on it: PoS eligibility → signatures (batched)
//! and proofs of possession → ledger apply on an overlay → state root →
//! fork choice.
#![warn(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod codec;
pub mod difficulty;
pub mod draw;
pub mod epoch;
pub mod fork_choice;
pub mod hash;
pub mod keys;
pub mod ledger;
pub mod pos;
pub mod pow;
pub mod produce;
pub mod spec;
pub mod state;
pub mod state_tree;
pub mod sync_wire;
pub mod types;
pub mod u256;
pub mod validate;
pub mod vrf;

pub use hash::Hash;
pub use keys::{Address, Keypair};
pub use spec::ChainSpec;
pub use types::{Block, Header, SealedBlock, Tx};
