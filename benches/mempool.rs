//! Criterion bench of the mempool on a large ledger: 10,000 senders, each
//! with one pending transfer, on a head state of 100,000 accounts.
//!
//! - `admit`: admissions of signed transfers from distinct senders into a
//!   pool that fills up to the 10,000 (each iteration admits the next
//!   [`BATCH`]; a full pool is emptied between iterations, untimed).
//!   Signature verification included.
//! - `admit_batch`: the same admissions through `Mempool::insert_batch`
//!   (what gossip uses), [`BATCH`] at a time: signatures checked in
//!   batches (ZIP 215), on one core.
//! - `head_change`: `Mempool::revalidate` of the full pool on a new head
//!   state, alternating between two heads so every call replays all 10,000
//!   senders (the worst case: the new block included none of them). The
//!   second head differs from the first in 10,000 balances, 1,000 of them
//!   pool senders'.
//! - `verify_tx`: one transaction's signature check alone (`verify_tx`),
//!   what each admission pays after its cheap checks: the ceiling on
//!   admissions per second on this machine.
//!
//! The same file builds against the previous mempool (which copied the
//! state per admission and per sender), so the two can be run back to back:
//! docs/reliability.md has the commands and the figures.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use klero::node::mempool::Mempool;
use klero_chain::ledger::{Account, BlockCtx, LedgerParams, verify_tx};
use klero_chain::state::{MemState, StateValue};
use klero_chain::state_tree::StateKey;
use klero_chain::types::{TxBody, TxKind};
use klero_chain::{Address, Keypair, Tx};

const ACCOUNTS: usize = 100_000;
const SENDERS: usize = 10_000;
const BATCH: usize = 100;
const CHAIN: &str = "klero-bench";

const PARAMS: LedgerParams = LedgerParams {
    block_reward: 1_000,
    min_fee: 1,
    min_stake: 1_000,
    unbonding_epochs: 3,
    slashing: true,
};

fn ctx() -> BlockCtx<'static> {
    BlockCtx::new(CHAIN, 0, Address([0; 32]), PARAMS)
}

/// An address for account `i` that no key owns (the receivers).
fn plain_address(i: usize) -> Address {
    Address(*blake3::hash(&i.to_le_bytes()).as_bytes())
}

/// The head state, the senders' signed transfers, and a second head.
fn setup() -> (MemState, Vec<Tx>, MemState) {
    let senders: Vec<Keypair> = (0..SENDERS)
        .map(|i| Keypair::dev(&format!("sender-{i}")))
        .collect();
    let addresses: Vec<Address> = senders
        .iter()
        .map(Keypair::address)
        .chain((SENDERS..ACCOUNTS).map(plain_address))
        .collect();
    assert_eq!(addresses.len(), ACCOUNTS);
    let accounts = |bump: bool| {
        addresses.iter().enumerate().map(move |(i, address)| {
            let account = Account {
                balance: 1_000_000_000 + u64::from(bump && i % 10 == 0),
                ..Account::default()
            };
            (StateKey::Account(*address), StateValue::Account(account))
        })
    };
    let head = MemState::new(accounts(false));
    let txs = senders
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let body = TxBody {
                from: key.address(),
                nonce: 0,
                fee: 1 + (i as u64 % 7),
                kind: TxKind::Transfer {
                    to: plain_address(SENDERS + i * 9),
                    amount: 1_000,
                },
            };
            Tx::sign(body, key, CHAIN)
        })
        .collect();
    let next = MemState::new(accounts(true));
    (head, txs, next)
}

fn mempool(c: &mut Criterion) {
    let (head, txs, next) = setup();
    let ctx = ctx();

    let mut group = c.benchmark_group("mempool_10k_senders_100k_accounts");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(BATCH as u64));
    // Each iteration admits the next BATCH into a pool that fills up to
    // SENDERS, emptied (untimed) when the transactions run out.
    let mut admit = |name: &str, admit: &dyn Fn(&mut Mempool, &[Tx])| {
        group.bench_function(name, |b| {
            let mut pool = Mempool::new(SENDERS);
            let mut next_tx = 0;
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    if next_tx + BATCH > txs.len() {
                        pool = Mempool::new(SENDERS);
                        next_tx = 0;
                    }
                    let start = Instant::now();
                    admit(&mut pool, &txs[next_tx..next_tx + BATCH]);
                    spent += start.elapsed();
                    next_tx += BATCH;
                }
                spent
            })
        });
    };
    admit("admit", &|pool, batch| {
        for tx in batch {
            assert_eq!(pool.insert(tx.clone(), &head, &ctx), Ok(true));
        }
    });
    admit("admit_batch", &|pool, batch| {
        let answers = pool.insert_batch(batch.to_vec(), &head, &ctx);
        assert!(answers.iter().all(|answer| *answer == Ok(true)));
    });

    let mut pool = Mempool::new(SENDERS);
    for tx in &txs {
        assert_eq!(pool.insert(tx.clone(), &head, &ctx), Ok(true));
    }
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify_tx", |b| {
        let mut next_tx = 0;
        b.iter(|| {
            next_tx = (next_tx + 1) % txs.len();
            assert_eq!(verify_tx(&txs[next_tx], CHAIN), Ok(()));
        })
    });

    group.throughput(Throughput::Elements(SENDERS as u64));
    group.bench_function("head_change", |b| {
        let mut flip = false;
        b.iter(|| {
            flip = !flip;
            pool.revalidate(if flip { &next } else { &head }, &ctx);
            assert_eq!(pool.len(), SENDERS);
        })
    });
    group.finish();
}

criterion_group!(benches, mempool);
criterion_main!(benches);
