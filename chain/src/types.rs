//! The objects of the chain: headers, blocks, transactions and their seals.
//!
//! Ids are BLAKE3 of the [`codec`](crate::codec) encoding. A header's seal
//! says which lottery chose its proposer: a proof-of-work nonce under a
//! target, or a proof-of-stake VRF proof for a slot. Every block, of either
//! kind, is signed by its proposer over its id, so a relayed block cannot be
//! re-credited and two blocks of one proposer for one PoS slot are
//! self-evident equivocation.

use bincode::{Decode, Encode};

use crate::codec;
use crate::hash::Hash;
use crate::keys::{Address, KeyError, Keypair, SignDomain, Signature};
use crate::vrf::{VrfOutput, VrfProof, VrfPublicKey};

/// A block header.
///
/// # Format
///
/// ```text
/// height u64 | parent [32] | timestamp_ms u64 | tx_root [32] | state_root [32]
/// | proposer [32] | seal: u32 tag (0 = Pow, 1 = Pos) + fields
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Header {
    /// Height: genesis is 0.
    pub height: u64,
    /// Id of the parent block (for genesis: the chain's spec digest).
    pub parent: Hash,
    /// Milliseconds since the Unix epoch. For PoS, the start of `slot`.
    pub timestamp_ms: u64,
    /// [`tx_root`] of the block's transactions.
    pub tx_root: Hash,
    /// [`State::root`](crate::ledger::State::root) after applying the block.
    pub state_root: Hash,
    /// The proposer's address; it receives the reward and the fees.
    pub proposer: Address,
    /// The lottery ticket that made `proposer` eligible.
    pub seal: Seal,
}

/// How the proposer won the right to propose.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Seal {
    /// Proof of work: `SHA-256(pre || nonce_le64) <= target`.
    Pow(PowSeal),
    /// Proof of stake: a VRF proof for a slot.
    Pos(PosSeal),
}

/// The proof-of-work seal.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct PowSeal {
    /// The target the hash must not exceed, big-endian.
    pub target: [u8; 32],
    /// The nonce found by the miner.
    pub nonce: u64,
}

/// The proof-of-stake seal.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct PosSeal {
    /// The slot this block was made for.
    pub slot: u64,
    /// The VRF suite byte (0x03, ECVRF-EDWARDS25519-SHA512-TAI), so a later
    /// move to another suite is additive.
    pub suite: u8,
    /// The proposer's registered VRF public key.
    pub vrf_key: VrfPublicKey,
    /// The VRF output (beta) for this slot's input.
    pub vrf_output: VrfOutput,
    /// The VRF proof (pi).
    pub vrf_proof: VrfProof,
}

impl Header {
    /// The block id: BLAKE3 of the encoded header.
    pub fn id(&self) -> Hash {
        Hash::of(&codec::encode(self))
    }

    /// The PoW puzzle's prefix: BLAKE3 of the header encoded with nonce 0.
    /// `None` for a PoS header.
    pub fn pow_pre(&self) -> Option<[u8; 32]> {
        let Seal::Pow(seal) = &self.seal else { return None };
        let mut template = self.clone();
        template.seal = Seal::Pow(PowSeal {
            target: seal.target,
            nonce: 0,
        });
        Some(*template.id().as_bytes())
    }

    /// The PoS slot, if this is a PoS header.
    pub fn slot(&self) -> Option<u64> {
        match &self.seal {
            Seal::Pos(seal) => Some(seal.slot),
            Seal::Pow(_) => None,
        }
    }
}

/// A header and its proposer's signature over the header's id.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SignedHeader {
    /// The header.
    pub header: Header,
    /// `proposer`'s signature of `id` in the block domain.
    pub signature: Signature,
}

impl SignedHeader {
    /// Signs `header` with `key`, which must be the header's proposer.
    pub fn sign(header: Header, key: &Keypair, chain_id: &str) -> SignedHeader {
        let signature = key.sign(SignDomain::Block, chain_id, header.id().as_bytes());
        SignedHeader { header, signature }
    }

    /// Checks the proposer's signature.
    ///
    /// # Errors
    ///
    /// [`KeyError`] if the proposer is not a key or the signature is wrong.
    pub fn verify(&self, chain_id: &str) -> Result<(), KeyError> {
        self.header.proposer.verify(
            SignDomain::Block,
            chain_id,
            self.header.id().as_bytes(),
            &self.signature,
        )
    }
}

/// A block: a signed header and its transactions.
///
/// # Format
///
/// ```text
/// header (see Header) | signature [64] | txs: u64 count + Tx…
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Block {
    /// The signed header.
    pub signed: SignedHeader,
    /// The transactions, applied in order.
    pub txs: Vec<Tx>,
}

impl Block {
    /// The header.
    pub fn header(&self) -> &Header {
        &self.signed.header
    }

    /// Computes the id once and remembers it.
    pub fn seal(self) -> SealedBlock {
        let id = self.header().id();
        SealedBlock { block: self, id }
    }
}

/// A block whose id has been computed once, so nobody hashes it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedBlock {
    block: Block,
    id: Hash,
}

impl SealedBlock {
    /// The block id.
    pub fn id(&self) -> Hash {
        self.id
    }

    /// The block.
    pub fn block(&self) -> &Block {
        &self.block
    }

    /// The header.
    pub fn header(&self) -> &Header {
        self.block.header()
    }

    /// Gives the block back.
    pub fn into_block(self) -> Block {
        self.block
    }
}

/// The root of a block's transactions: BLAKE3 over the hashes of the whole
/// encoded transactions, signatures included, in order. So the block id
/// (which covers the root) commits to every byte of the block except the
/// proposer's own signature, which signs that id.
pub fn tx_root(txs: &[Tx]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"klero/tx-root/v2");
    for tx in txs {
        hasher.update(Hash::of(&codec::encode(tx)).as_bytes());
    }
    Hash(*hasher.finalize().as_bytes())
}

/// What a transaction does.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum TxKind {
    /// Move `amount` from the sender to `to`.
    Transfer {
        /// The recipient (created if new).
        to: Address,
        /// The amount moved.
        amount: u64,
    },
    /// Bond `amount` of the sender's balance as stake and register the VRF
    /// key that will prove its slots.
    Stake {
        /// The amount bonded.
        amount: u64,
        /// The VRF public key (derived from the wallet seed, not the signing key).
        vrf_key: VrfPublicKey,
        /// Proof of possession: `vrf_key`'s proof over
        /// [`vrf_pop_input`](crate::keys::vrf_pop_input) of the chain and the
        /// sender. Boxed, like the evidence, to keep every `Tx` small; the
        /// encoding is the 80 bytes.
        pop: Box<VrfProof>,
    },
    /// Start unbonding `amount`; it returns to the balance after the
    /// unbonding delay.
    Unstake {
        /// The amount unbonded.
        amount: u64,
    },
    /// Proof that one proposer signed two blocks for one slot: its stake is slashed.
    Evidence(Box<Equivocation>),
}

impl TxKind {
    /// A stake of `amount` by `key` on `chain_id`: registers the wallet's
    /// VRF key with its proof of possession.
    pub fn stake(key: &Keypair, chain_id: &str, amount: u64) -> TxKind {
        TxKind::Stake {
            amount,
            vrf_key: key.vrf().public_key(),
            pop: Box::new(key.vrf_pop(chain_id)),
        }
    }
}

/// Two different signed headers by one proposer for one PoS slot.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Equivocation {
    /// The first header.
    pub a: SignedHeader,
    /// The second header.
    pub b: SignedHeader,
}

/// The signed part of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct TxBody {
    /// The sender, who signs and pays the fee.
    pub from: Address,
    /// The sender's account nonce: the count of its earlier transactions.
    pub nonce: u64,
    /// Fee paid to the block's proposer.
    pub fee: u64,
    /// What the transaction does.
    pub kind: TxKind,
}

/// A signed transaction.
///
/// # Format
///
/// ```text
/// from [32] | nonce u64 | fee u64 | kind: u32 tag + fields | signature [64]
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Tx {
    /// What is signed.
    pub body: TxBody,
    /// The sender's signature over the encoded body in the tx domain.
    pub signature: Signature,
}

impl Tx {
    /// Signs `body` with `key` for `chain_id`.
    pub fn sign(body: TxBody, key: &Keypair, chain_id: &str) -> Tx {
        let signature = key.sign(SignDomain::Tx, chain_id, &codec::encode(&body));
        Tx { body, signature }
    }

    /// The transaction id: BLAKE3 of the encoded body. The signature is left
    /// out so the id cannot be changed without the sender's key.
    pub fn id(&self) -> Hash {
        Hash::of(&codec::encode(&self.body))
    }

    /// Checks the sender's signature.
    ///
    /// # Errors
    ///
    /// [`KeyError`] if the sender is not a key or the signature is wrong.
    pub fn verify(&self, chain_id: &str) -> Result<(), KeyError> {
        self.body.from.verify(
            SignDomain::Tx,
            chain_id,
            &codec::encode(&self.body),
            &self.signature,
        )
    }
}
