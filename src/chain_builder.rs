//! A PoW chain mined in memory with the chain crate's own production and
//! validation code, never through the node's store: the one builder of
//! `klero bench store` and of the store's crash and reorg tests
//! (`tests/store_crash.rs`), so the chains they feed the store are made
//! alike.

use klero_chain::pow::{meets_target, pow_hash};
use klero_chain::spec::{Consensus, PowParams};
use klero_chain::state::{MemState, StateError};
use klero_chain::validate::{BlockError, BlockMeta, MEDIAN_TIME_SPAN, Parent, genesis_meta, validate_block};
use klero_chain::{ChainSpec, Hash, Header, Keypair, SealedBlock, Tx, produce};

/// Milliseconds between the builder's blocks: the dev spec's target.
pub const BLOCK_MS: u64 = 2_000;

/// Why a block could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The spec is not a PoW spec.
    #[error("the chain builder mines PoW blocks only")]
    NotPow,
    /// Some of the transactions given do not apply to the tip's state.
    #[error("{refused} of the block's transactions do not apply")]
    Refused {
        /// How many were left out of the template.
        refused: usize,
    },
    /// The mined block does not validate (a bug of the builder's caller).
    #[error("the built block is invalid: {0}")]
    Invalid(#[from] BlockError),
    /// The tip's state refused the block's change set.
    #[error("applying the built block: {0}")]
    State(#[from] StateError),
}

/// The PoW dev rules (`testnet/pow.toml`) with a target met in a few
/// tries and [`BLOCK_MS`] between blocks.
pub fn easy_pow_spec() -> ChainSpec {
    let mut easy = [0xff; 32];
    easy[0] = 0x0f;
    let mut spec = ChainSpec::from_toml(include_str!("../testnet/pow.toml"))
        .unwrap_or_else(|e| unreachable!("the bundled spec is valid: {e}"));
    spec.consensus = Consensus::Pow(PowParams::dev(BLOCK_MS, easy));
    spec
}

/// The tip of a chain held in memory: its block, its state and the last
/// [`MEDIAN_TIME_SPAN`] timestamps. Cloning it (or [`ChainBuilder::fork`]) starts a branch.
#[derive(Clone)]
pub struct ChainBuilder<'s> {
    spec: &'s ChainSpec,
    miner: Keypair,
    id: Hash,
    header: Header,
    meta: BlockMeta,
    state: MemState,
    timestamps: Vec<u64>,
}

impl<'s> ChainBuilder<'s> {
    /// The chain of `spec` at its genesis block; `miner` signs the blocks.
    pub fn genesis(spec: &'s ChainSpec, miner: Keypair) -> ChainBuilder<'s> {
        let (genesis, state) = spec.genesis();
        ChainBuilder {
            spec,
            miner,
            id: genesis.id(),
            header: genesis.header().clone(),
            meta: genesis_meta(spec),
            state,
            timestamps: vec![genesis.header().timestamp_ms],
        }
    }

    /// A branch from this tip whose blocks `miner` signs.
    pub fn fork(&self, miner: Keypair) -> ChainBuilder<'s> {
        ChainBuilder {
            miner,
            ..self.clone()
        }
    }

    /// The tip's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The state after the tip.
    pub fn state(&self) -> &MemState {
        &self.state
    }

    /// Mines a block of exactly `txs` on the tip, [`BLOCK_MS`] after it,
    /// validates it like any import and makes it the tip.
    ///
    /// # Errors
    ///
    /// If the spec is not PoW, a transaction does not apply, or the block
    /// does not validate.
    pub fn extend(&mut self, txs: &[Tx]) -> Result<SealedBlock, BuildError> {
        let parent = Parent {
            id: self.id,
            header: &self.header,
            meta: &self.meta,
            recent_timestamps: &self.timestamps,
        };
        let ts = self.header.timestamp_ms + BLOCK_MS;
        let template = produce::pow_template(self.spec, &parent, &self.state, txs, &self.miner, ts)
            .ok_or(BuildError::NotPow)?;
        if template.txs.len() != txs.len() {
            return Err(BuildError::Refused {
                refused: txs.len() - template.txs.len(),
            });
        }
        // The target is easy (a few tries) and a u64 nonce never runs out
        // before one meets it in practice; `find` on `0..` cannot end empty.
        let nonce = (0..)
            .find(|n| meets_target(&pow_hash(&template.pre, *n), &template.target))
            .unwrap_or_default();
        let block = template.complete(nonce, &self.miner, &self.spec.chain_id).seal();
        let imported = validate_block(self.spec, &parent, &self.state, &block, u64::MAX / 2)?;
        self.state.apply(&imported.changes)?;
        self.id = block.id();
        self.header = block.header().clone();
        self.meta = imported.meta;
        if self.timestamps.len() == MEDIAN_TIME_SPAN {
            self.timestamps.remove(0);
        }
        self.timestamps.push(self.header.timestamp_ms);
        Ok(block)
    }
}
