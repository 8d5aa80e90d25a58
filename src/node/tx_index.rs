//! The transaction index: where each transaction of the best chain is, and
//! every account's transactions in chain order, for `GET /txs/{id}` and
//! `GET /accounts/{address}/txs`.
//!
//! | table            | key                         | value                               |
//! | ---------------- | --------------------------- | ----------------------------------- |
//! | `tx_at`          | [`position`]                | block id, timestamp, the tx         |
//! | `tx_pos`         | tx id                       | [`position`]                        |
//! | `account_tx_pos` | (address, [`position`])     | nothing                             |
//!
//! The transaction itself is stored under its position, which grows with
//! the chain, so a block's rows go to the end of `tx_at`. The tables keyed
//! by a tx id or an address take rows all over their key space, so their
//! rows are kept small (40 bytes): an import's inserts touch fewer pages
//! (docs/performance.md, "What the transaction index costs").
//!
//! Only canonical blocks are indexed. [`on_head_change`] runs inside the
//! store's write transaction of the block that moves the head, before the
//! canonical index is rewritten: it drops the entries of the blocks that
//! leave the best chain and adds those of the blocks that join it, so the
//! index and the chain are committed together and a transaction on an
//! orphaned block is no longer "included". A database written before this
//! index existed (or with the earlier layout, `tx_loc` and `account_txs`)
//! is indexed once when it is opened ([`create`]).

use klero_chain::codec::{self, MAX_TX_BYTES};
use klero_chain::types::TxKind;
use klero_chain::validate::MAX_BLOCK_TXS;
use klero_chain::{Address, Hash, SealedBlock, Tx};
use redb::{ReadableTable, Table, TableDefinition, TableHandle};

use super::store::{BLOCKS, CANON, HeadMove, Store, StoreError, db, decode_block};

const TX_AT: TableDefinition<u64, &[u8]> = TableDefinition::new("tx_at");
const TX_POS: TableDefinition<&[u8; 32], u64> = TableDefinition::new("tx_pos");
const ACCOUNT_TX_POS: TableDefinition<(&[u8; 32], u64), ()> = TableDefinition::new("account_tx_pos");
/// The tables of the earlier layout (a copy of each transaction under its
/// id), dropped when a database that has them is opened.
const EARLIER_TABLES: [&str; 2] = ["tx_loc", "account_txs"];

/// Bits of a [`position`] that hold the index in the block.
const INDEX_BITS: u32 = 16;
const _: () = assert!(MAX_BLOCK_TXS <= 1 << INDEX_BITS);
/// Largest `tx_at` record: the transaction and its block.
const MAX_RECORD_BYTES: usize = MAX_TX_BYTES + 64;

/// A transaction's place in the chain as one number, `height × 65536 +
/// index in the block`: the order of an account's history and its paging
/// cursor. It stays below 2^53 (exact in JavaScript) up to height 2^37.
pub(crate) fn position(height: u64, index: u32) -> u64 {
    (height << INDEX_BITS) | u64::from(index)
}

/// The height and index in the block of a [`position`].
fn place(position: u64) -> (u64, u32) {
    (
        position >> INDEX_BITS,
        (position & ((1 << INDEX_BITS) - 1)) as u32,
    )
}

/// Where a canonical transaction is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Included {
    /// The block's height.
    pub height: u64,
    /// Its place in the block.
    pub index: u32,
    /// The block's id.
    pub block: Hash,
    /// The block's timestamp.
    pub timestamp_ms: u64,
    /// The transaction.
    pub tx: Tx,
}

impl Included {
    /// Its [`position`].
    pub(crate) fn position(&self) -> u64 {
        position(self.height, self.index)
    }
}

/// The accounts a transaction touches: the sender, and the recipient of a
/// transfer or the offender of evidence.
fn accounts_of(tx: &Tx) -> Vec<Address> {
    let mut out = vec![tx.body.from];
    let other = match &tx.body.kind {
        TxKind::Transfer { to, .. } => Some(*to),
        TxKind::Evidence(evidence) => Some(evidence.a.header.proposer),
        TxKind::Stake { .. } | TxKind::Unstake { .. } => None,
    };
    out.extend(other.filter(|a| *a != tx.body.from));
    out
}

/// Creates the tables; if they are new and the chain is not empty, indexes
/// the canonical blocks already stored. An index of the earlier layout is
/// dropped, and then ours is rebuilt even if it exists.
///
/// # Errors
///
/// If the database fails or a stored block is damaged.
pub(super) fn create(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    let ours = [TX_AT.name(), TX_POS.name(), ACCOUNT_TX_POS.name()];
    let (mut exists, mut earlier) = (false, false);
    let mut tables = Vec::new();
    for table in txn.list_tables().map_err(db)? {
        exists |= table.name() == TX_AT.name();
        earlier |= EARLIER_TABLES.contains(&table.name());
        tables.push(table);
    }
    // Earlier tables are the old layout, or, beside ours, the sign that a
    // binary of that layout ran since ours was written and ours missed its
    // blocks: either way ours is built again from the chain.
    if earlier {
        for table in tables {
            if EARLIER_TABLES.contains(&table.name()) || ours.contains(&table.name()) {
                txn.delete_table(table).map_err(db)?;
            }
        }
    }
    let mut index = Index::open(txn)?;
    if exists && !earlier {
        return Ok(());
    }
    let canonical: Vec<(u64, Hash)> = {
        let canon = txn.open_table(CANON).map_err(db)?;
        canon
            .iter()
            .map_err(db)?
            .map(|entry| entry.map(|(h, id)| (h.value(), Hash(*id.value()))).map_err(db))
            .collect::<Result<_, _>>()?
    };
    for (height, id) in canonical {
        index.add_block(&stored_block(txn, &id)?, height)?;
    }
    Ok(())
}

/// Moves the index to the new best chain of `change`: to be called in the
/// block's write transaction after the block is written and before the
/// canonical index (`canon`) is rewritten. `fresh` are blocks of this
/// commit, used as they are instead of being read back and decoded.
///
/// # Errors
///
/// If the database fails or a stored block is damaged; the caller's
/// transaction then commits nothing.
pub(super) fn on_head_change(
    txn: &redb::WriteTransaction,
    change: &HeadMove,
    fresh: &[&SealedBlock],
) -> Result<(), StoreError> {
    let Some(first) = change.canonical.first().map(|(h, _)| *h) else {
        return Ok(());
    };
    let leaving: Vec<Hash> = {
        let canon = txn.open_table(CANON).map_err(db)?;
        canon
            .range(first..=change.old_height)
            .map_err(db)?
            .map(|entry| entry.map(|(_, id)| Hash(*id.value())).map_err(db))
            .collect::<Result<_, _>>()?
    };
    let mut index = Index::open(txn)?;
    for id in &leaving {
        index.remove_block(&stored_block(txn, id)?)?;
    }
    for (height, id) in &change.canonical {
        match fresh.iter().find(|b| b.id() == *id) {
            Some(block) => index.add_block(block, *height)?,
            None => index.add_block(&stored_block(txn, id)?, *height)?,
        }
    }
    Ok(())
}

fn stored_block(txn: &redb::WriteTransaction, id: &Hash) -> Result<SealedBlock, StoreError> {
    let blocks = txn.open_table(BLOCKS).map_err(db)?;
    let bytes = blocks
        .get(&id.0)
        .map_err(db)?
        .ok_or(StoreError::Missing("a canonical block"))?;
    decode_block(bytes.value())
}

/// The index's tables in one write transaction.
struct Index<'t> {
    at: Table<'t, u64, &'static [u8]>,
    pos: Table<'t, &'static [u8; 32], u64>,
    by_account: Table<'t, (&'static [u8; 32], u64), ()>,
}

impl<'t> Index<'t> {
    fn open(txn: &'t redb::WriteTransaction) -> Result<Index<'t>, StoreError> {
        Ok(Index {
            at: txn.open_table(TX_AT).map_err(db)?,
            pos: txn.open_table(TX_POS).map_err(db)?,
            by_account: txn.open_table(ACCOUNT_TX_POS).map_err(db)?,
        })
    }

    fn add_block(&mut self, block: &SealedBlock, height: u64) -> Result<(), StoreError> {
        for (index, tx) in (0u32..).zip(&block.block().txs) {
            let at = position(height, index);
            let record = codec::encode(&(block.id(), block.header().timestamp_ms, tx));
            self.at.insert(at, record.as_slice()).map_err(db)?;
            self.pos.insert(&tx.id().0, at).map_err(db)?;
            for account in accounts_of(tx) {
                self.by_account.insert((&account.0, at), ()).map_err(db)?;
            }
        }
        Ok(())
    }

    fn remove_block(&mut self, block: &SealedBlock) -> Result<(), StoreError> {
        let height = block.header().height;
        for (index, tx) in (0u32..).zip(&block.block().txs) {
            let at = position(height, index);
            self.at.remove(at).map_err(db)?;
            self.pos.remove(&tx.id().0).map_err(db)?;
            for account in accounts_of(tx) {
                self.by_account.remove((&account.0, at)).map_err(db)?;
            }
        }
        Ok(())
    }
}

/// The transaction at `at`, from its `tx_at` record.
fn included(at: u64, record: &[u8]) -> Result<Included, StoreError> {
    let (block, timestamp_ms, tx): (Hash, u64, Tx) =
        codec::decode::<_, MAX_RECORD_BYTES>(record, "tx record").map_err(|source| StoreError::Corrupt {
            what: "tx_at",
            source,
        })?;
    let (height, index) = place(at);
    Ok(Included {
        height,
        index,
        block,
        timestamp_ms,
        tx,
    })
}

/// Reads the record at `at`, which an index row names.
fn read_at(at_table: &impl ReadableTable<u64, &'static [u8]>, at: u64) -> Result<Included, StoreError> {
    let record = at_table
        .get(at)
        .map_err(db)?
        .ok_or(StoreError::Missing("an indexed transaction"))?;
    included(at, record.value())
}

/// Where the best chain has transaction `id`, if it has it.
///
/// # Errors
///
/// If the read fails or the record is damaged.
pub(crate) fn lookup(store: &Store, id: &Hash) -> Result<Option<Included>, StoreError> {
    let txn = store.read()?;
    let pos = txn.open_table(TX_POS).map_err(db)?;
    let Some(at) = pos.get(&id.0).map_err(db)?.map(|v| v.value()) else {
        return Ok(None);
    };
    read_at(&txn.open_table(TX_AT).map_err(db)?, at).map(Some)
}

/// `account`'s canonical transactions with a [`position`] below `before`,
/// newest first, at most `limit`.
///
/// # Errors
///
/// If the read fails or a record is damaged.
pub(crate) fn account_txs(
    store: &Store,
    account: &Address,
    before: u64,
    limit: usize,
) -> Result<Vec<Included>, StoreError> {
    let txn = store.read()?;
    let by_account = txn.open_table(ACCOUNT_TX_POS).map_err(db)?;
    let at_table = txn.open_table(TX_AT).map_err(db)?;
    let mut out = Vec::new();
    for entry in by_account
        .range((&account.0, 0)..(&account.0, before))
        .map_err(db)?
        .rev()
        .take(limit)
    {
        let (key, _) = entry.map_err(db)?;
        out.push(read_at(&at_table, key.value().1)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use klero_chain::Keypair;
    use klero_chain::types::TxBody;

    use super::*;
    use crate::node::block_tree::tests::{mine_with, spec};
    use crate::node::block_tree::{BlockTree, ImportOutcome};

    fn transfer(from: &Keypair, nonce: u64, to: Address, amount: u64) -> Tx {
        let body = TxBody {
            from: from.address(),
            nonce,
            fee: 1,
            kind: TxKind::Transfer { to, amount },
        };
        Tx::sign(body, from, &spec().chain_id)
    }

    fn open(dir: &std::path::Path) -> (BlockTree, Store) {
        let spec = spec();
        let store = Store::open(dir, &spec).expect("store");
        (BlockTree::load(spec, store.clone()).expect("tree"), store)
    }

    #[test]
    fn follows_the_best_chain_through_a_reorg_and_reindexes_on_open() {
        let (dir_a, dir_b) = (tempfile::tempdir().expect("a"), tempfile::tempdir().expect("b"));
        let (alice, bob, erin) = (Keypair::dev("alice"), Keypair::dev("bob"), Keypair::dev("erin"));
        let (mut a, store) = open(dir_a.path());
        let t0 = transfer(&alice, 0, erin.address(), 5);
        let t1 = transfer(&alice, 1, erin.address(), 6);
        let ours = mine_with(&mut a, &alice, &[vec![t0.clone()], vec![t1.clone()]]);

        let found = lookup(&store, &t1.id()).expect("read").expect("indexed");
        assert_eq!((found.height, found.index, found.block), (2, 0, ours[1].id()));
        assert_eq!(found.tx, t1);
        let history = account_txs(&store, &erin.address(), u64::MAX, 10).expect("read");
        let ids: Vec<Hash> = history.iter().map(|i| i.tx.id()).collect();
        assert_eq!(ids, [t1.id(), t0.id()], "newest first, recipient side");
        let page = account_txs(&store, &alice.address(), history[0].position(), 10).expect("read");
        assert_eq!(page.len(), 1, "before is exclusive");
        assert_eq!(page[0].tx, t0);

        // A heavier branch with only t0 (in its second block) takes over.
        let (mut b, _) = open(dir_b.path());
        let theirs = mine_with(&mut b, &bob, &[vec![], vec![t0.clone()], vec![]]);
        for block in &theirs {
            a.import(block.clone(), u64::MAX / 2).expect("import");
        }
        assert_eq!(a.head().id, theirs[2].id());
        assert_eq!(
            lookup(&store, &t1.id()).expect("read"),
            None,
            "t1 left with its block"
        );
        let moved = lookup(&store, &t0.id())
            .expect("read")
            .expect("t0 is on the new branch");
        assert_eq!((moved.height, moved.block), (2, theirs[1].id()));
        let ids: Vec<Hash> = account_txs(&store, &erin.address(), u64::MAX, 10)
            .expect("read")
            .iter()
            .map(|i| i.tx.id())
            .collect();
        assert_eq!(ids, [t0.id()]);

        // A database without the index (as written before it existed) is
        // indexed when it is opened.
        drop(a);
        drop(store);
        {
            let db = redb::Database::create(dir_a.path().join(super::super::store::DB_FILE)).expect("db");
            let txn = db.begin_write().expect("txn");
            assert!(txn.delete_table(TX_AT).expect("delete"));
            assert!(txn.delete_table(TX_POS).expect("delete"));
            assert!(txn.delete_table(ACCOUNT_TX_POS).expect("delete"));
            txn.commit().expect("commit");
        }
        let (_, store) = open(dir_a.path());
        assert_eq!(lookup(&store, &t0.id()).expect("read"), Some(moved));
        assert_eq!(lookup(&store, &t1.id()).expect("read"), None);
    }

    #[test]
    fn an_index_of_the_earlier_layout_is_dropped_and_ours_rebuilt_on_open() {
        let dir = tempfile::tempdir().expect("dir");
        let (alice, erin) = (Keypair::dev("alice"), Keypair::dev("erin"));
        let (mut tree, store) = open(dir.path());
        let t = transfer(&alice, 0, erin.address(), 5);
        mine_with(&mut tree, &alice, &[vec![t.clone()]]);
        let indexed = lookup(&store, &t.id()).expect("read").expect("indexed");
        drop(tree);
        drop(store);
        // The earlier layout: a copy of each transaction under its id.
        const TX_LOC: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("tx_loc");
        const ACCOUNT_TXS: TableDefinition<(&[u8; 32], u64), &[u8; 32]> = TableDefinition::new("account_txs");
        {
            let db = redb::Database::create(dir.path().join(super::super::store::DB_FILE)).expect("db");
            let txn = db.begin_write().expect("txn");
            // Ours missed what a binary of the earlier layout indexed.
            txn.open_table(TX_POS)
                .expect("ours")
                .remove(&t.id().0)
                .expect("remove");
            txn.open_table(TX_LOC)
                .expect("old")
                .insert(&t.id().0, b"old".as_slice())
                .expect("row");
            txn.open_table(ACCOUNT_TXS)
                .expect("old")
                .insert((&erin.address().0, 1), &t.id().0)
                .expect("row");
            txn.commit().expect("commit");
        }
        let (_, store) = open(dir.path());
        assert_eq!(lookup(&store, &t.id()).expect("read"), Some(indexed));
        let history = account_txs(&store, &erin.address(), u64::MAX, 10).expect("read");
        assert_eq!(history.len(), 1);
        let txn = store.read().expect("read");
        let names: Vec<String> = txn
            .list_tables()
            .expect("list")
            .map(|t| t.name().to_string())
            .collect();
        for earlier in EARLIER_TABLES {
            assert!(!names.iter().any(|n| n == earlier), "{earlier} is dropped");
        }
    }

    #[test]
    fn side_branch_blocks_are_not_indexed() {
        let (dir_a, dir_b) = (tempfile::tempdir().expect("a"), tempfile::tempdir().expect("b"));
        let (alice, bob) = (Keypair::dev("alice"), Keypair::dev("bob"));
        let (mut a, store) = open(dir_a.path());
        mine_with(&mut a, &alice, &[vec![], vec![]]);
        let (mut b, _) = open(dir_b.path());
        let t = transfer(&bob, 0, alice.address(), 9);
        let side = mine_with(&mut b, &bob, &[vec![t.clone()]]);
        assert_eq!(
            a.import(side[0].clone(), u64::MAX / 2).expect("import"),
            ImportOutcome::SideBranch
        );
        assert_eq!(lookup(&store, &t.id()).expect("read"), None);
        assert!(
            account_txs(&store, &bob.address(), u64::MAX, 10)
                .expect("read")
                .is_empty()
        );
    }

    #[test]
    fn positions_order_by_height_then_index() {
        assert!(position(1, u32::from(u16::MAX)) < position(2, 0));
        assert_eq!(position(3, 2), 3 * 65536 + 2);
        assert_eq!(place(position(3, 2)), (3, 2));
        assert_eq!(place(position(7, u32::from(u16::MAX))), (7, u32::from(u16::MAX)));
    }
}
