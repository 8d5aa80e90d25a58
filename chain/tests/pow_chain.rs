//! A proof-of-work chain mined and validated by the rules: ASERT targets,
//! median time past, future drift, the puzzle itself, and fork choice by work.

mod common;

use common::TestChain;
use klero_chain::fork_choice::prefer;
use klero_chain::keys::Keypair;
use klero_chain::pow::{meets_target, pow_hash};
use klero_chain::produce::{PowTemplate, pow_template};
use klero_chain::spec::ChainSpec;
use klero_chain::types::{Block, Seal, SignedHeader};
use klero_chain::u256::U256;
use klero_chain::validate::BlockError;

fn spec() -> ChainSpec {
    let miner = Keypair::dev("alice");
    ChainSpec::from_toml(&format!(
        "[chain]\nid = \"pow-test\"\nconsensus = \"pow\"\ngenesis_time_ms = 1000000\n\
         [ledger]\nblock_reward = 10\nmin_fee = 1\nmin_stake = 100\nunbonding_epochs = 1\n\
         [pow]\ntarget_block_ms = 1000\nhalf_life_blocks = 8\n\
         initial_target = \"00ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\"\n\
         pow_limit = \"0fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\"\n\
         max_future_drift_ms = 4000\nepoch_blocks = 10\nmax_rollback = 50\n\
         [[accounts]]\naddress = \"{}\"\nbalance = 1000\n",
        miner.address()
    ))
    .unwrap()
}

/// Brute-forces the nonce of a template (the target is easy).
fn solve(template: PowTemplate, key: &Keypair, chain_id: &str) -> Block {
    let nonce = (0u64..)
        .find(|n| meets_target(&pow_hash(&template.pre, *n), &template.target))
        .unwrap();
    template.complete(nonce, key, chain_id)
}

fn mine(chain: &mut TestChain, key: &Keypair, timestamp_ms: u64) {
    let template = pow_template(
        &chain.spec,
        &chain.parent(),
        chain.state(),
        &[],
        key,
        timestamp_ms,
    )
    .unwrap();
    let block = solve(template, key, &chain.spec.chain_id);
    chain.push(block, timestamp_ms);
}

fn target_of(block: &Block) -> U256 {
    match &block.header().seal {
        Seal::Pow(s) => U256::from_be_bytes(s.target),
        Seal::Pos(_) => unreachable!(),
    }
}

#[test]
fn mined_blocks_validate_and_asert_follows_the_block_rate() {
    let key = Keypair::dev("alice");
    let mut fast = TestChain::new(spec());
    let mut slow = TestChain::new(spec());
    let start = fast.spec.genesis_time_ms;
    for i in 1..=24u64 {
        mine(&mut fast, &key, start + i * 250); // 4x faster than target
        mine(&mut slow, &key, start + i * 4_000); // 4x slower
    }
    let first = target_of(fast.blocks[1].0.block());
    let initial = match &fast.spec.consensus {
        klero_chain::spec::Consensus::Pow(p) => U256::from_be_bytes(p.initial_target),
        klero_chain::spec::Consensus::Pos(_) => unreachable!(),
    };
    assert_eq!(first, initial, "block 1 carries the initial target");
    let fast_target = target_of(fast.tip().0.block());
    let slow_target = target_of(slow.tip().0.block());
    assert!(fast_target < first, "fast blocks make it harder");
    assert!(slow_target > first, "slow blocks make it easier");
    assert!(
        U256::from_be_bytes(fast.tip().2.cumulative_work) > U256::from_be_bytes(slow.tip().2.cumulative_work),
        "the harder chain has more work at equal length"
    );
}

fn resign(
    block: &Block,
    key: &Keypair,
    chain_id: &str,
    edit: impl FnOnce(&mut klero_chain::Header),
) -> Block {
    let mut header = block.header().clone();
    edit(&mut header);
    Block {
        signed: SignedHeader::sign(header, key, chain_id),
        txs: block.txs.clone(),
    }
}

#[test]
fn every_broken_pow_block_is_rejected_with_its_reason() {
    let key = Keypair::dev("alice");
    let mut chain = TestChain::new(spec());
    let start = chain.spec.genesis_time_ms;
    for i in 1..=12 {
        mine(&mut chain, &key, start + i * 1_000);
    }
    let id = chain.spec.chain_id.clone();
    let at = start + 13_000;
    let template = pow_template(&chain.spec, &chain.parent(), chain.state(), &[], &key, at).unwrap();
    let good = solve(template.clone(), &key, &id);
    assert!(chain.validate(&good, at).is_ok());

    // A nonce that misses the target.
    let bad_nonce = (0u64..)
        .find(|n| !meets_target(&pow_hash(&template.pre, *n), &template.target))
        .unwrap();
    let weak = template.clone().complete(bad_nonce, &key, &id);
    assert!(matches!(
        chain.validate(&weak, at),
        Err(BlockError::InsufficientWork { .. })
    ));

    // An easier target than ASERT requires.
    let easy = resign(&good, &key, &id, |h| {
        if let Seal::Pow(s) = &mut h.seal {
            s.target = [0xff; 32];
        }
    });
    assert!(matches!(
        chain.validate(&easy, at),
        Err(BlockError::WrongTarget { .. })
    ));

    // Timestamps at or below the median of the last 11.
    let median = klero_chain::validate::median_time_past(
        &chain
            .blocks
            .iter()
            .map(|b| b.0.header().timestamp_ms)
            .collect::<Vec<_>>(),
    );
    let old = pow_template(&chain.spec, &chain.parent(), chain.state(), &[], &key, 0).unwrap();
    assert_eq!(
        old.header.timestamp_ms,
        median + 1,
        "templates clamp to just above the median"
    );
    let mut early = old.clone();
    early.header.timestamp_ms = median;
    early.pre = early.header.pow_pre().unwrap();
    let early = solve(early, &key, &id);
    assert!(matches!(
        chain.validate(&early, at),
        Err(BlockError::TimestampTooOld { .. })
    ));

    // Too far in the future: ignored, not the peer's fault.
    let future = pow_template(&chain.spec, &chain.parent(), chain.state(), &[], &key, at + 4_001).unwrap();
    let future = solve(future, &key, &id);
    let err = chain.validate(&future, at).unwrap_err();
    assert!(matches!(err, BlockError::FromTheFuture { .. }));
    assert!(!err.is_peer_fault());

    // A relayed block re-signed by someone else changes `pre`, so the work is lost.
    let thief = Keypair::dev("mallory");
    let stolen = resign(&good, &thief, &id, |h| h.proposer = thief.address());
    assert!(matches!(
        chain.validate(&stolen, at),
        Err(BlockError::InsufficientWork { .. })
    ));

    // A PoS seal on a PoW chain.
    let pos_spec = ChainSpec::from_toml(include_str!("../../testnet/pos.toml")).unwrap();
    let (pos_genesis, _) = pos_spec.genesis();
    let wrong = resign(&good, &key, &id, |h| h.seal = pos_genesis.header().seal.clone());
    assert_eq!(
        chain.validate(&wrong, at),
        Err(BlockError::WrongConsensus { expected: "pow" })
    );
}

#[test]
fn fork_choice_follows_the_most_work() {
    let key = Keypair::dev("alice");
    let spec = spec();
    let mut a = TestChain::new(spec.clone());
    let mut b = TestChain::new(spec.clone());
    let start = spec.genesis_time_ms;
    for i in 1..=6 {
        mine(&mut a, &key, start + i * 1_000);
    }
    for i in 1..=5 {
        mine(&mut b, &key, start + i * 1_000);
    }
    assert!(
        prefer(&spec, &b.tip().2, &a.tip().2),
        "six equal blocks beat five"
    );
    assert!(!prefer(&spec, &a.tip().2, &b.tip().2));
    assert!(
        !prefer(&spec, &a.tip().2, &a.tip().2),
        "a tie keeps the first seen"
    );
}

/// Headers-first sync's check: a mined chain's signed headers, with no
/// state and no body, give each block the metadata full validation gives
/// it (so the same cumulative work), and a header whose seal, signature or
/// parent is wrong is refused with the reason full validation gives.
#[test]
fn a_header_chain_proves_the_work_full_validation_finds() {
    use klero_chain::validate::HeaderChain;

    let key = Keypair::dev("alice");
    let spec = spec();
    let mut chain = TestChain::new(spec.clone());
    let start = spec.genesis_time_ms;
    for i in 1..=12 {
        mine(&mut chain, &key, start + i * 700);
    }
    let (genesis, _, genesis_meta) = &chain.blocks[0];
    let start_chain = || {
        HeaderChain::start(
            &spec,
            genesis.id(),
            genesis.header().clone(),
            genesis_meta.clone(),
            vec![genesis.header().timestamp_ms],
        )
        .expect("a PoW chain")
    };
    let mut headers = start_chain();
    for (block, _, meta) in &chain.blocks[1..] {
        headers
            .extend(&spec, &block.block().signed, u64::MAX / 2)
            .expect("a mined header");
        assert_eq!(headers.tip(), block.id());
        assert_eq!(headers.meta(), meta, "the header gives what validation gives");
    }
    assert!(prefer(&spec, &chain.blocks[11].2, headers.meta()));

    let block_1 = chain.blocks[1].0.block();
    /// What is wrong, the header, and the refusal expected.
    type Case = (&'static str, SignedHeader, fn(&BlockError) -> bool);
    let cases: [Case; 3] = [
        (
            "a seal that misses its target",
            resign(block_1, &key, &spec.chain_id, |h| h.timestamp_ms += 1).signed,
            |e| matches!(e, BlockError::InsufficientWork { .. }),
        ),
        (
            "a signature by another key",
            SignedHeader::sign(block_1.header().clone(), &Keypair::dev("mallory"), &spec.chain_id),
            |e| matches!(e, BlockError::BadSignature(_)),
        ),
        (
            "a header that skips its parent",
            chain.blocks[2].0.block().signed.clone(),
            |e| matches!(e, BlockError::WrongParent { .. }),
        ),
    ];
    for (what, signed, expected) in cases {
        let mut headers = start_chain();
        let error = headers.extend(&spec, &signed, u64::MAX / 2).expect_err(what);
        assert!(expected(&error), "{what}: {error:?}");
        assert_eq!(headers.tip(), genesis.id(), "{what}: the tip moved");
    }

    let pos = ChainSpec::from_toml(include_str!("../../testnet/pos.toml")).unwrap();
    let (pos_genesis, _) = pos.genesis();
    let meta = klero_chain::validate::genesis_meta(&pos);
    assert!(
        HeaderChain::start(
            &pos,
            pos_genesis.id(),
            pos_genesis.header().clone(),
            meta,
            Vec::new()
        )
        .is_none(),
        "PoS has no header chain"
    );
}
