//! Criterion bench of block import: a PoW block of 1,000 transfers (from
//! 1,000 distinct senders), checked with signatures in parallel, applied to
//! the ledger and committed to a real redb file.
//!
//! `validate` is the consensus work alone (`klero_chain::validate_block`);
//! `import` adds the node's store transaction (`BlockTree::import`).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use klero::node::block_tree::BlockTree;
use klero::node::store::Store;
use klero_chain::pow::{meets_target, pow_hash};
use klero_chain::spec::{Consensus, GenesisAccount, PowParams};
use klero_chain::types::{TxBody, TxKind};
use klero_chain::validate::{Parent, genesis_meta, validate_block};
use klero_chain::{ChainSpec, Keypair, SealedBlock, Tx, produce};

const TXS: usize = 1_000;

fn setup() -> (ChainSpec, SealedBlock) {
    let mut spec = ChainSpec::from_toml(include_str!("../testnet/pow.toml")).expect("spec");
    // A target easy enough to mine the bench block at once.
    let mut easy = [0xff; 32];
    easy[0] = 0x0f;
    spec.consensus = Consensus::Pow(PowParams::dev(2_000, easy));
    let senders: Vec<Keypair> = (0..TXS).map(|i| Keypair::dev(&format!("sender-{i}"))).collect();
    spec.accounts.extend(senders.iter().map(|k| GenesisAccount {
        name: None,
        address: k.address(),
        balance: 1_000_000,
        stake: 0,
        vrf_key: None,
    }));
    let to = Keypair::dev("zed").address();
    let txs: Vec<Tx> = senders
        .iter()
        .map(|k| {
            let body = TxBody {
                from: k.address(),
                nonce: 0,
                fee: 1,
                kind: TxKind::Transfer { to, amount: 10 },
            };
            Tx::sign(body, k, &spec.chain_id)
        })
        .collect();
    let (genesis, state) = spec.genesis();
    let meta = genesis_meta(&spec);
    let timestamps = [genesis.header().timestamp_ms];
    let parent = Parent {
        id: genesis.id(),
        header: genesis.header(),
        meta: &meta,
        recent_timestamps: &timestamps,
    };
    let miner = Keypair::dev("alice");
    let template = produce::pow_template(&spec, &parent, &state, &txs, &miner, spec.genesis_time_ms + 2_000)
        .expect("template");
    assert_eq!(template.txs.len(), TXS);
    let nonce = (0..)
        .find(|n| meets_target(&pow_hash(&template.pre, *n), &template.target))
        .expect("nonce");
    let block = template.complete(nonce, &miner, &spec.chain_id).seal();
    (spec, block)
}

fn import(c: &mut Criterion) {
    let (spec, block) = setup();
    let (genesis, state) = spec.genesis();
    let meta = genesis_meta(&spec);
    let timestamps = [genesis.header().timestamp_ms];
    let now = u64::MAX / 2;

    let mut group = c.benchmark_group("block_1000_transfers");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.bench_function("validate", |b| {
        b.iter(|| {
            let parent = Parent {
                id: genesis.id(),
                header: genesis.header(),
                meta: &meta,
                recent_timestamps: &timestamps,
            };
            validate_block(&spec, &parent, &state, &block, now).expect("valid")
        })
    });
    group.bench_function("import", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("dir");
                let store = Store::open(dir.path(), &spec).expect("store");
                (BlockTree::load(spec.clone(), store).expect("chain"), dir)
            },
            |(mut chain, _dir)| chain.import(block.clone(), now).expect("imported"),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, import);
criterion_main!(benches);
