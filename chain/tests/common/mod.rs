//! A chain held in memory for the consensus tests: blocks with their
//! post-states and metadata, and the `Parent` view validation needs.
#![allow(dead_code)]

use klero_chain::Block;
use klero_chain::spec::ChainSpec;
use klero_chain::state::MemState;
use klero_chain::types::SealedBlock;
use klero_chain::validate::{self, BlockError, BlockMeta, Imported, Parent, genesis_meta};

#[derive(Clone)]
pub(crate) struct TestChain {
    pub(crate) spec: ChainSpec,
    pub(crate) blocks: Vec<(SealedBlock, MemState, BlockMeta)>,
    timestamps: Vec<u64>,
}

impl TestChain {
    pub(crate) fn new(spec: ChainSpec) -> TestChain {
        let (genesis, state) = spec.genesis();
        let ts = genesis.header().timestamp_ms;
        let meta = genesis_meta(&spec);
        TestChain {
            spec,
            blocks: vec![(genesis, state, meta)],
            timestamps: vec![ts],
        }
    }

    pub(crate) fn tip(&self) -> &(SealedBlock, MemState, BlockMeta) {
        self.blocks.last().unwrap()
    }

    pub(crate) fn height(&self) -> u64 {
        self.tip().2.height
    }

    pub(crate) fn parent(&self) -> Parent<'_> {
        let (block, _, meta) = self.tip();
        let n = self.timestamps.len();
        Parent {
            id: block.id(),
            header: block.header(),
            meta,
            recent_timestamps: &self.timestamps[n.saturating_sub(validate::MEDIAN_TIME_SPAN)..],
        }
    }

    pub(crate) fn validate(&self, block: &Block, now_ms: u64) -> Result<Imported, BlockError> {
        validate::validate_block(
            &self.spec,
            &self.parent(),
            self.state(),
            &block.clone().seal(),
            now_ms,
        )
    }

    /// The tip's state.
    pub(crate) fn state(&self) -> &MemState {
        &self.tip().1
    }

    /// Validates and appends; panics with the error if invalid.
    pub(crate) fn push(&mut self, block: Block, now_ms: u64) {
        let imported = self
            .validate(&block, now_ms)
            .unwrap_or_else(|e| panic!("block refused: {e}"));
        let mut state = self.state().clone();
        state.apply(&imported.changes).unwrap();
        self.timestamps.push(block.header().timestamp_ms);
        self.blocks.push((block.seal(), state, imported.meta));
    }
}
