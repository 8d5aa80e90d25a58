//! A chain held in memory for the consensus tests: blocks with their
//! post-states and metadata, and the `Parent` view validation needs.
#![allow(dead_code)]

use klero_chain::Block;
use klero_chain::ledger::State;
use klero_chain::spec::ChainSpec;
use klero_chain::types::SealedBlock;
use klero_chain::validate::{self, BlockError, BlockMeta, Imported, Parent, genesis_meta};

#[derive(Clone)]
pub(crate) struct TestChain {
    pub(crate) spec: ChainSpec,
    pub(crate) blocks: Vec<(SealedBlock, State, BlockMeta)>,
    timestamps: Vec<u64>,
}

impl TestChain {
    pub(crate) fn new(spec: ChainSpec) -> TestChain {
        let (genesis, state) = spec.genesis();
        let ts = genesis.header().timestamp_ms;
        TestChain {
            spec,
            blocks: vec![(genesis, state, genesis_meta())],
            timestamps: vec![ts],
        }
    }

    pub(crate) fn tip(&self) -> &(SealedBlock, State, BlockMeta) {
        self.blocks.last().unwrap()
    }

    pub(crate) fn height(&self) -> u64 {
        self.tip().2.height
    }

    pub(crate) fn parent(&self) -> Parent<'_> {
        let (block, state, meta) = self.tip();
        let n = self.timestamps.len();
        Parent {
            id: block.id(),
            header: block.header(),
            meta,
            state,
            recent_timestamps: &self.timestamps[n.saturating_sub(validate::MEDIAN_TIME_SPAN)..],
        }
    }

    pub(crate) fn validate(&self, block: &Block, now_ms: u64) -> Result<Imported, BlockError> {
        validate::validate_block(&self.spec, &self.parent(), &block.clone().seal(), now_ms)
    }

    /// Validates and appends; panics with the error if invalid.
    pub(crate) fn push(&mut self, block: Block, now_ms: u64) {
        let imported = self
            .validate(&block, now_ms)
            .unwrap_or_else(|e| panic!("block refused: {e}"));
        self.timestamps.push(block.header().timestamp_ms);
        self.blocks.push((block.seal(), imported.state, imported.meta));
    }
}
