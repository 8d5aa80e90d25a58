//! Criterion bench of the state root after one block: protocol v2's root
//! (BLAKE3 of the whole encoded state; here of the accounts map, the bulk
//! of it) next to the sparse Merkle
//! tree's incremental update for a block touching 100 and 1,000 accounts
//! (`state_tree::update`, including the hashing of the touched keys and
//! values, over the in-memory store), on states of 100,000 and 1,000,000
//! accounts.

use criterion::{Criterion, criterion_group, criterion_main};
use std::collections::BTreeMap;

use klero_chain::codec;
use klero_chain::ledger::Account;
use klero_chain::state_tree::{EMPTY, MemNodes, StateKey, TreeKey, update, value_hash};
use klero_chain::{Address, Hash};

fn address(i: u64) -> Address {
    Address(Hash::of(&i.to_le_bytes()).0)
}

fn account(balance: u64) -> Account {
    Account {
        balance,
        nonce: balance % 7,
        ..Account::default()
    }
}

/// The tree key and value hash of each account, as a block would commit them.
fn changes<'a>(accounts: impl Iterator<Item = (&'a Address, &'a Account)>) -> Vec<(TreeKey, Option<Hash>)> {
    accounts
        .map(|(a, acct)| (StateKey::Account(*a).tree_key(), Some(value_hash(acct))))
        .collect()
}

fn state_root(c: &mut Criterion) {
    for size in [100_000u64, 1_000_000] {
        let accounts: BTreeMap<Address, Account> =
            (0..size).map(|i| (address(i), account(1_000 + i))).collect();
        let mut store = MemNodes::default();
        let (root, batch) = update(EMPTY, &changes(accounts.iter()), &store).expect("in-memory store");
        store.apply(&batch);
        drop(batch);

        let mut group = c.benchmark_group(format!("state_root_{size}_accounts"));
        group.sample_size(20);
        group.bench_function("full_rehash", |b| b.iter(|| Hash::of(&codec::encode(&accounts))));
        for touched in [100u64, 1_000] {
            // A block's changes: every 97th account gets a new balance.
            let block: Vec<(Address, Account)> = (0..touched)
                .map(|i| (address(i * 97), account(5_000_000 + i)))
                .collect();
            group.bench_function(format!("smt_update_{touched}"), |b| {
                b.iter(|| {
                    let changes = changes(block.iter().map(|(a, acct)| (a, acct)));
                    update(root, &changes, &store).expect("in-memory store")
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, state_root);
criterion_main!(benches);
