//! The node's database: one redb file, `chain.redb`, in the data dir.
//!
//! | table    | key          | value                                   |
//! | -------- | ------------ | --------------------------------------- |
//! | `blocks` | block id     | the encoded block                       |
//! | `info`   | block id     | header + [`BlockMeta`] (the fork tree)   |
//! | `states` | block id     | the ledger state after the block        |
//! | `canon`  | height       | id of the best chain's block            |
//! | `meta`   | `"head"`, …  | the best block's id, the genesis id     |
//!
//! Every block import is one write transaction ([`Store::commit`]): the
//! block, its state and, when it becomes the head, the canonical index and
//! the head pointer land together or not at all, so a `kill -9` at any
//! moment leaves a database that opens at the last committed head.
//!
//! A full state per block (rather than undo records) makes a reorg of any
//! depth a pointer move, at a cost that is negligible for testnet-sized
//! ledgers; `docs/architecture.md` says when this would change.

use std::path::Path;
use std::sync::Arc;

use klero_chain::codec::{self, CodecError, MAX_BLOCK_BYTES, MAX_HEADER_BYTES};
use klero_chain::ledger::State;
use klero_chain::validate::{BlockMeta, genesis_meta};
use klero_chain::{Block, ChainSpec, Hash, Header, SealedBlock};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

pub(super) const BLOCKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blocks");
const INFO: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("info");
const STATES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("states");
pub(super) const CANON: TableDefinition<u64, &[u8; 32]> = TableDefinition::new("canon");
const META: TableDefinition<&str, &[u8; 32]> = TableDefinition::new("meta");

const HEAD_KEY: &str = "head";
const GENESIS_KEY: &str = "genesis";

/// Largest stored state we will decode; far above any testnet ledger.
const MAX_STATE_BYTES: usize = 256 << 20;
/// Largest stored header + metadata record.
const MAX_INFO_BYTES: usize = MAX_HEADER_BYTES + 256;

/// File name of the database inside the data dir.
pub const DB_FILE: &str = "chain.redb";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb reported an error (I/O, corruption, a second process holding the file).
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    /// A stored record does not decode: the file is damaged.
    #[error("database record {what} is damaged: {source}")]
    Corrupt {
        /// Which record.
        what: &'static str,
        /// The decode error.
        source: CodecError,
    },
    /// A required record is missing: the file is damaged.
    #[error("database is missing {0}")]
    Missing(&'static str),
    /// The data dir belongs to another chain.
    #[error(
        "the data dir holds chain with genesis {found}, but the spec's genesis is {expected}; use another --data-dir"
    )]
    WrongChain {
        /// The spec's genesis id.
        expected: Hash,
        /// The stored genesis id.
        found: Hash,
    },
}

/// Turns any of redb's error types into a [`StoreError`].
pub(super) fn db(error: impl Into<redb::Error>) -> StoreError {
    StoreError::Db(error.into())
}

/// A block's place in the fork tree, as loaded at start-up.
#[derive(Clone, Debug)]
pub struct BlockInfo {
    /// The block id.
    pub id: Hash,
    /// Its header.
    pub header: Header,
    /// What fork choice needs.
    pub meta: BlockMeta,
}

/// The canonical index changes that come with a new head.
#[derive(Clone, Debug)]
pub struct HeadChange {
    /// `(height, id)` of every block from the fork point (exclusive) to the
    /// new head.
    pub canonical: Vec<(u64, Hash)>,
    /// The old head's height, to drop canonical entries above the new one.
    pub old_height: u64,
}

/// The database; cheap to clone (readers run concurrently with the writer).
#[derive(Clone, Debug)]
pub struct Store {
    db: Arc<Database>,
}

impl Store {
    /// Opens (or creates, with `spec`'s genesis) the database in `dir`.
    ///
    /// # Errors
    ///
    /// If the file cannot be opened, is damaged, or belongs to another chain.
    pub fn open(dir: &Path, spec: &ChainSpec) -> Result<Store, StoreError> {
        let db = Database::create(dir.join(DB_FILE)).map_err(db)?;
        // Readers fail on a table that was never created: create them all.
        let txn = db.begin_write().map_err(self::db)?;
        txn.open_table(BLOCKS).map_err(self::db)?;
        txn.open_table(INFO).map_err(self::db)?;
        txn.open_table(STATES).map_err(self::db)?;
        txn.open_table(CANON).map_err(self::db)?;
        txn.open_table(META).map_err(self::db)?;
        super::tx_index::create(&txn)?;
        txn.commit().map_err(self::db)?;
        let store = Store { db: Arc::new(db) };
        let (genesis, state) = spec.genesis();
        match store.meta(GENESIS_KEY)? {
            Some(found) if found != genesis.id() => Err(StoreError::WrongChain {
                expected: genesis.id(),
                found,
            }),
            Some(_) => Ok(store),
            None => {
                store.commit_genesis(&genesis, &state)?;
                Ok(store)
            }
        }
    }

    fn commit_genesis(&self, genesis: &SealedBlock, state: &State) -> Result<(), StoreError> {
        let id = genesis.id();
        let txn = self.db.begin_write().map_err(db)?;
        write_block(&txn, genesis, &genesis_meta(), state)?;
        {
            let mut canon = txn.open_table(CANON).map_err(db)?;
            canon.insert(0, &id.0).map_err(db)?;
            let mut meta = txn.open_table(META).map_err(db)?;
            meta.insert(GENESIS_KEY, &id.0).map_err(db)?;
            meta.insert(HEAD_KEY, &id.0).map_err(db)?;
        }
        txn.commit().map_err(db)
    }

    /// Stores a validated block with its post-state, and if `head` is given
    /// makes it the head: all in one transaction.
    ///
    /// # Errors
    ///
    /// If the write fails; nothing of it is then stored.
    pub fn commit(
        &self,
        block: &SealedBlock,
        meta: &BlockMeta,
        state: &State,
        head: Option<&HeadChange>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db)?;
        write_block(&txn, block, meta, state)?;
        if let Some(change) = head {
            super::tx_index::on_head_change(&txn, change)?;
            write_head(&txn, block.id(), change, meta.height)?;
        }
        txn.commit().map_err(db)
    }

    /// The head's id.
    ///
    /// # Errors
    ///
    /// If the read fails or the record is missing.
    pub fn head(&self) -> Result<Hash, StoreError> {
        self.meta(HEAD_KEY)?
            .ok_or(StoreError::Missing("the head pointer"))
    }

    fn meta(&self, key: &str) -> Result<Option<Hash>, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let table = txn.open_table(META).map_err(db)?;
        Ok(table.get(key).map_err(db)?.map(|v| Hash(*v.value())))
    }

    /// Every stored block's header and metadata (the fork tree), in no order.
    ///
    /// # Errors
    ///
    /// If the read fails or a record is damaged.
    pub fn all_info(&self) -> Result<Vec<BlockInfo>, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let table = txn.open_table(INFO).map_err(db)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db)? {
            let (key, value) = entry.map_err(db)?;
            let (header, meta): (Header, BlockMeta) =
                codec::decode::<_, MAX_INFO_BYTES>(value.value(), "block info")
                    .map_err(|source| StoreError::Corrupt { what: "info", source })?;
            out.push(BlockInfo {
                id: Hash(*key.value()),
                header,
                meta,
            });
        }
        Ok(out)
    }

    /// The encoded block with this id.
    ///
    /// # Errors
    ///
    /// If the read fails.
    pub fn block_bytes(&self, id: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let table = txn.open_table(BLOCKS).map_err(db)?;
        Ok(table.get(&id.0).map_err(db)?.map(|v| v.value().to_vec()))
    }

    /// The block with this id.
    ///
    /// # Errors
    ///
    /// If the read fails or the record is damaged.
    pub fn block(&self, id: &Hash) -> Result<Option<SealedBlock>, StoreError> {
        self.block_bytes(id)?
            .map(|bytes| decode_block(&bytes))
            .transpose()
    }

    /// A read transaction, for the indexes kept beside the chain.
    pub(super) fn read(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.db.begin_read().map_err(db)
    }

    /// The canonical block id at `height`.
    ///
    /// # Errors
    ///
    /// If the read fails.
    pub fn canonical(&self, height: u64) -> Result<Option<Hash>, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let table = txn.open_table(CANON).map_err(db)?;
        Ok(table.get(height).map_err(db)?.map(|v| Hash(*v.value())))
    }

    /// The state after block `id`.
    ///
    /// # Errors
    ///
    /// If the read fails or the record is damaged.
    pub fn state(&self, id: &Hash) -> Result<Option<State>, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let table = txn.open_table(STATES).map_err(db)?;
        let Some(value) = table.get(&id.0).map_err(db)? else {
            return Ok(None);
        };
        codec::decode::<State, MAX_STATE_BYTES>(value.value(), "state")
            .map(Some)
            .map_err(|source| StoreError::Corrupt {
                what: "state",
                source,
            })
    }
}

/// A stored block record.
pub(super) fn decode_block(bytes: &[u8]) -> Result<SealedBlock, StoreError> {
    codec::decode::<Block, MAX_BLOCK_BYTES>(bytes, "block")
        .map(Block::seal)
        .map_err(|source| StoreError::Corrupt {
            what: "block",
            source,
        })
}

fn write_head(
    txn: &redb::WriteTransaction,
    head: Hash,
    change: &HeadChange,
    new_height: u64,
) -> Result<(), StoreError> {
    let mut canon = txn.open_table(CANON).map_err(db)?;
    for (height, id) in &change.canonical {
        canon.insert(*height, &id.0).map_err(db)?;
    }
    for height in new_height + 1..=change.old_height {
        canon.remove(height).map_err(db)?;
    }
    let mut meta = txn.open_table(META).map_err(db)?;
    meta.insert(HEAD_KEY, &head.0).map_err(db)?;
    Ok(())
}

fn write_block(
    txn: &redb::WriteTransaction,
    block: &SealedBlock,
    meta: &BlockMeta,
    state: &State,
) -> Result<(), StoreError> {
    let id = block.id();
    let mut blocks = txn.open_table(BLOCKS).map_err(db)?;
    blocks
        .insert(&id.0, codec::encode(block.block()).as_slice())
        .map_err(db)?;
    let mut info = txn.open_table(INFO).map_err(db)?;
    info.insert(
        &id.0,
        codec::encode(&(block.header().clone(), meta.clone())).as_slice(),
    )
    .map_err(db)?;
    let mut states = txn.open_table(STATES).map_err(db)?;
    states
        .insert(&id.0, codec::encode(state).as_slice())
        .map_err(db)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ChainSpec {
        ChainSpec::from_toml(include_str!("../../testnet/pos.toml")).expect("spec")
    }

    #[test]
    fn creates_genesis_and_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = spec();
        let (genesis, state) = spec.genesis();
        {
            let store = Store::open(dir.path(), &spec).expect("open");
            assert_eq!(store.head().expect("head"), genesis.id());
            assert_eq!(store.canonical(0).expect("canon"), Some(genesis.id()));
            assert_eq!(store.state(&genesis.id()).expect("state"), Some(state));
            assert_eq!(store.all_info().expect("info").len(), 1);
        }
        let store = Store::open(dir.path(), &spec).expect("reopen");
        assert_eq!(store.head().expect("head"), genesis.id());
    }

    #[test]
    fn refuses_another_chains_data_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        Store::open(dir.path(), &spec()).expect("open");
        let other = ChainSpec::from_toml(include_str!("../../testnet/pow.toml")).expect("spec");
        let err = Store::open(dir.path(), &other).expect_err("other chain");
        assert!(matches!(err, StoreError::WrongChain { .. }), "{err}");
    }
}
