//! Arbitrary blocks validated as children of a fixed parent, the genesis
//! of the PoS and PoW testnet specs: refused with a reason, never a panic.
#![no_main]

use std::sync::LazyLock;

use klero_chain::state::MemState;
use klero_chain::types::SealedBlock;
use klero_chain::validate::{self, Parent, genesis_meta};
use klero_chain::{ChainSpec, codec};
use libfuzzer_sys::fuzz_target;

struct Fixed {
    spec: ChainSpec,
    genesis: SealedBlock,
    state: MemState,
}

fn fixed(toml: &str) -> Fixed {
    let spec = ChainSpec::from_toml(toml).expect("testnet spec");
    let (genesis, state) = spec.genesis();
    Fixed { spec, genesis, state }
}

static PARENTS: LazyLock<[Fixed; 2]> = LazyLock::new(|| {
    [
        fixed(include_str!("../../testnet/pos.toml")),
        fixed(include_str!("../../testnet/pow.toml")),
    ]
});

fuzz_target!(|data: &[u8]| {
    let Some((&which, data)) = data.split_first() else {
        return;
    };
    let Ok(block) = codec::decode_block(data) else {
        return;
    };
    let f = &PARENTS[usize::from(which & 1)];
    let meta = genesis_meta(&f.spec);
    let ts = f.genesis.header().timestamp_ms;
    let parent = Parent {
        id: f.genesis.id(),
        header: f.genesis.header(),
        meta: &meta,
        recent_timestamps: &[ts],
    };
    let now = block.header().timestamp_ms.saturating_add(1);
    let _ = validate::validate_block(&f.spec, &parent, &f.state, &block.seal(), now);
});
