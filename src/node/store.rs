//! The node's database: one redb file, `chain.redb`, in the data dir.
//!
//! | table     | key                 | value                                            |
//! | --------- | ------------------- | ------------------------------------------------ |
//! | `blocks`  | block id            | the encoded block                                |
//! | `info`    | block id            | header + [`BlockMeta`] (the fork tree)            |
//! | `canon`   | height              | id of the best chain's block                     |
//! | `meta`    | `"head"`, …         | the best block's id, the genesis id, the spec's digest |
//! | `state`   | entry key (below)   | the entry's value: the state after the head      |
//! | `stakers` | address             | VRF key `[32]` ‖ stake `u64` LE: the stakers index |
//! | `nodes`   | node hash           | node (68 bytes) ‖ reference count `u64` LE       |
//! | `changes` | block id            | the block's [`ChangeSet`], while it can be undone |
//! | `marks`   | `"pruned"`          | the highest canonical height pruned              |
//!
//! The state is flat: one row per entry of the head's state, under a key
//! that sorts by kind, then by the entry's fields big-endian (so the
//! unbonding queue is a range scan in release order):
//!
//! ```text
//! 0 ‖ address                  account
//! 1 ‖ release epoch ‖ owner    unbonding
//! 2 ‖ offender ‖ slot          slashed equivocation
//! 3 ‖ VRF key                  VRF key registry
//! 4                            burned
//! 5                            epoch data
//! 6 ‖ offender                 epoch of the latest slash
//! 7 ‖ epoch                    the snapshot drawn from in that epoch
//! ```
//!
//! Every block import is one write transaction ([`Store::commit`]), and so
//! is a sync batch of blocks that extend the head: the blocks, their change
//! sets and, when they move the head, the undo of the
//! blocks the head leaves, the change sets of the blocks it takes on, the
//! state tree's reference counts, the canonical index, the head pointer and
//! the pruning of what fell out of the reorg window: all land together or
//! not at all. A `kill -9` at any moment leaves a database that opens at
//! the last committed head, with the flat state and the tree of exactly
//! that head. The rules (docs/state.md, "Rules for a node store") are
//! those of `klero_chain::state_tree::MemNodes`, here on redb.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use klero_chain::codec::{self, CodecError, MAX_BLOCK_BYTES, MAX_HEADER_BYTES};
use klero_chain::epoch::Staker;
use klero_chain::state::{ChangeSet, CommittedState, MemState, StateError, StateRead, StateValue};
use klero_chain::state_tree::{Node, StateKey};
use klero_chain::validate::{BlockMeta, Imported, genesis_meta};
use klero_chain::vrf::VrfPublicKey;
use klero_chain::{Address, Block, ChainSpec, Hash, Header, SealedBlock};
use redb::{
    Database, ReadOnlyTable, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table, TableDefinition,
};

pub(super) const BLOCKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blocks");
const INFO: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("info");
pub(super) const CANON: TableDefinition<u64, &[u8; 32]> = TableDefinition::new("canon");
const META: TableDefinition<&str, &[u8; 32]> = TableDefinition::new("meta");
const STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state");
const STAKERS: TableDefinition<&[u8; 32], &[u8; 40]> = TableDefinition::new("stakers");
const NODES: TableDefinition<&[u8; 32], &[u8; 76]> = TableDefinition::new("nodes");
const CHANGES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("changes");
const MARKS: TableDefinition<&str, u64> = TableDefinition::new("marks");

const HEAD_KEY: &str = "head";
const GENESIS_KEY: &str = "genesis";
/// The digest of the spec the store was last opened with ([`spec_digest`]).
const SPEC_KEY: &str = "spec";
const PRUNED_KEY: &str = "pruned";

/// Largest stored header + metadata record.
const MAX_INFO_BYTES: usize = MAX_HEADER_BYTES + 512;

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
    /// The state behind the database could not be read.
    #[error(transparent)]
    State(#[from] StateError),
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

/// Turns any of redb's error types into a [`StateError`], for reads behind
/// the [`StateRead`] interface.
fn state_err(error: impl Into<redb::Error>) -> StateError {
    StateError::store(error.into())
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

/// How an import moves the head, computed by the block tree.
#[derive(Clone, Debug, Default)]
pub struct HeadMove {
    /// The canonical blocks the head leaves, newest first: their change
    /// sets are undone.
    pub undo: Vec<Hash>,
    /// Stored blocks of the new branch before the imported one, oldest
    /// first: their change sets are applied.
    pub redo: Vec<Hash>,
    /// `(height, id)` of every block from the fork point (exclusive) to the
    /// new head.
    pub canonical: Vec<(u64, Hash)>,
    /// The old head's height, to drop canonical entries above the new one.
    pub old_height: u64,
    /// Canonical blocks now deeper than the reorg window, oldest first: the
    /// tree nodes they made stale are released and their change sets
    /// dropped. Empty for an archive node.
    pub prune: Vec<Hash>,
    /// Side blocks now deeper than the window: their change sets are
    /// dropped (no branch through them can become the head).
    pub forget: Vec<Hash>,
    /// The highest canonical height pruned after this import.
    pub pruned_through: u64,
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
        txn.open_table(CANON).map_err(self::db)?;
        txn.open_table(META).map_err(self::db)?;
        super::tx_index::create(&txn)?;
        txn.open_table(STATE).map_err(self::db)?;
        txn.open_table(STAKERS).map_err(self::db)?;
        txn.open_table(NODES).map_err(self::db)?;
        txn.open_table(CHANGES).map_err(self::db)?;
        txn.open_table(MARKS).map_err(self::db)?;
        txn.commit().map_err(self::db)?;
        let store = Store { db: Arc::new(db) };
        let digest = spec_digest(spec);
        match store.meta(GENESIS_KEY)? {
            // The spec that made (or last opened) the store: its genesis is
            // the stored one, and deriving it again would hash every
            // genesis account into the state tree (0.4 s at 100,000).
            Some(_) if store.meta(SPEC_KEY)? == Some(digest) => Ok(store),
            Some(found) => {
                let (genesis, _) = spec.genesis();
                if found != genesis.id() {
                    return Err(StoreError::WrongChain {
                        expected: genesis.id(),
                        found,
                    });
                }
                let txn = store.db.begin_write().map_err(self::db)?;
                txn.open_table(META)
                    .map_err(self::db)?
                    .insert(SPEC_KEY, &digest.0)
                    .map_err(self::db)?;
                txn.commit().map_err(self::db)?;
                Ok(store)
            }
            None => {
                let (genesis, state) = spec.genesis();
                store.commit_genesis(spec, &genesis, &state, digest)?;
                Ok(store)
            }
        }
    }

    /// Genesis is applied like a block (its change set creates the state
    /// from nothing) and is never undone, so its change set is not kept.
    fn commit_genesis(
        &self,
        spec: &ChainSpec,
        genesis: &SealedBlock,
        state: &MemState,
        digest: Hash,
    ) -> Result<(), StoreError> {
        let id = genesis.id();
        let changes = state.creation()?;
        let txn = self.db.begin_write().map_err(db)?;
        {
            let mut w = Writer::open(&txn)?;
            w.put_block(genesis, &genesis_meta(spec))?;
            let mut flat = BTreeMap::new();
            let mut nodes = NodeDeltas::default();
            flat.extend(changes.changes().iter().map(|c| (c.key, c.after.clone())));
            nodes.apply(&changes);
            w.write_entries(&flat)?;
            w.write_nodes(nodes)?;
            w.canon.insert(0, &id.0).map_err(db)?;
            w.meta.insert(GENESIS_KEY, &id.0).map_err(db)?;
            w.meta.insert(HEAD_KEY, &id.0).map_err(db)?;
            w.meta.insert(SPEC_KEY, &digest.0).map_err(db)?;
            w.marks.insert(PRUNED_KEY, 0).map_err(db)?;
        }
        txn.commit().map_err(db)
    }

    /// Stores validated blocks with their change sets and, if `head` is
    /// given, moves the head to the last of them: undoes and applies change
    /// sets to the flat state and the tree's reference counts, writes the
    /// canonical index and the head pointer, prunes. All in one transaction.
    ///
    /// One block is a single import; several (each the child of the one
    /// before, the first a child of the head) are a sync batch, whose
    /// change sets the head move applies in order after `head.redo`'s.
    ///
    /// # Errors
    ///
    /// If the write fails or a change set it needs is missing; nothing of
    /// it is then stored.
    pub fn commit(
        &self,
        blocks: &[(&SealedBlock, &Imported)],
        head: Option<&HeadMove>,
    ) -> Result<(), StoreError> {
        let Some((last, _)) = blocks.last() else {
            return Ok(());
        };
        let txn = self.db.begin_write().map_err(db)?;
        {
            let mut w = Writer::open(&txn)?;
            for (block, imported) in blocks {
                w.put_block(block, &imported.meta)?;
                w.changes
                    .insert(&block.id().0, imported.changes.encode().as_slice())
                    .map_err(db)?;
            }
        }
        if let Some(head) = head {
            // The index reads the canonical entries the head leaves, so it
            // goes before they are rewritten; the writer's tables are
            // closed meanwhile (redb opens a table once per transaction).
            let fresh: Vec<&SealedBlock> = blocks.iter().map(|(block, _)| *block).collect();
            super::tx_index::on_head_change(&txn, head, &fresh)?;
            let applied = blocks.iter().map(|(_, imported)| &imported.changes);
            Writer::open(&txn)?.move_head(last.id(), last.header().height, applied, head)?;
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

    /// The highest canonical height whose change set has been pruned.
    ///
    /// # Errors
    ///
    /// If the read fails.
    pub fn pruned_through(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let table = txn.open_table(MARKS).map_err(db)?;
        Ok(table.get(PRUNED_KEY).map_err(db)?.map_or(0, |v| v.value()))
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
            out.push(decode_info(Hash(*key.value()), value.value())?);
        }
        Ok(out)
    }

    /// The header and metadata of one stored block.
    ///
    /// # Errors
    ///
    /// If the read fails or the record is damaged.
    pub fn info(&self, id: &Hash) -> Result<Option<BlockInfo>, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let table = txn.open_table(INFO).map_err(db)?;
        table
            .get(&id.0)
            .map_err(db)?
            .map(|v| decode_info(*id, v.value()))
            .transpose()
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

    /// The canonical ids from genesis to `height`, in order.
    ///
    /// # Errors
    ///
    /// If the read fails or the index has a gap.
    pub fn canonical_chain(&self, height: u64) -> Result<Vec<Hash>, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let table = txn.open_table(CANON).map_err(db)?;
        let mut out = Vec::with_capacity(usize::try_from(height).unwrap_or(0).saturating_add(1));
        for entry in table.range(0..=height).map_err(db)? {
            let (key, value) = entry.map_err(db)?;
            if key.value() != out.len() as u64 {
                return Err(StoreError::Missing("a canonical index entry"));
            }
            out.push(Hash(*value.value()));
        }
        Ok(out)
    }

    /// The change set of a block still inside the reorg window (every
    /// block with an archive node).
    ///
    /// # Errors
    ///
    /// If the read fails or the record is damaged.
    pub fn change_set(&self, id: &Hash) -> Result<Option<ChangeSet>, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let table = txn.open_table(CHANGES).map_err(db)?;
        table
            .get(&id.0)
            .map_err(db)?
            .map(|v| decode_change_set(v.value()))
            .transpose()
    }

    /// A consistent view of the state after the head as it is now, with
    /// `root` as its root (the head header's state root). It reads one
    /// redb snapshot: later commits do not change what it shows.
    ///
    /// # Errors
    ///
    /// If the read transaction cannot be opened.
    pub fn head_state(&self, root: Hash) -> Result<StoreState, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        Ok(StoreState {
            state: txn.open_table(STATE).map_err(db)?,
            stakers: txn.open_table(STAKERS).map_err(db)?,
            nodes: txn.open_table(NODES).map_err(db)?,
            root,
        })
    }

    /// The state root recomputed from scratch from the flat state table
    /// (docs/state.md, rule 8): a check that the flat state and the stored
    /// tree describe the same state.
    ///
    /// # Errors
    ///
    /// If the read fails or a row is damaged.
    pub fn recompute_root(&self) -> Result<Hash, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let table = txn.open_table(STATE).map_err(db)?;
        let mut entries = Vec::new();
        for row in table.iter().map_err(db)? {
            let (key, value) = row.map_err(db)?;
            let key = parse_state_key(key.value()).ok_or(StoreError::Missing("a valid state key"))?;
            let value = StateValue::decode(&key, value.value()).map_err(|source| StoreError::Corrupt {
                what: "state entry",
                source,
            })?;
            entries.push((key, value));
        }
        Ok(CommittedState::root(&MemState::new(entries)))
    }

    /// Bytes of live data: keys and values plus the B-trees' own metadata,
    /// without free pages or fragmentation. The file's size does not tell
    /// this: redb grows `chain.redb` in steps and keeps the pages a write
    /// transaction frees for later ones. redb reports these statistics in a
    /// write transaction only, so this waits for any commit under way (the
    /// bench calls it between imports).
    ///
    /// # Errors
    ///
    /// If the store cannot be read.
    pub fn live_bytes(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_write().map_err(db)?;
        let stats = txn.stats().map_err(db)?;
        txn.abort().map_err(db)?;
        Ok(stats.stored_bytes() + stats.metadata_bytes())
    }

    /// How many tree nodes the store holds (for tests of the pruning rules).
    ///
    /// # Errors
    ///
    /// If the read fails.
    pub fn node_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let table = txn.open_table(NODES).map_err(db)?;
        table.len().map_err(db)
    }

    /// How many change sets the store holds.
    ///
    /// # Errors
    ///
    /// If the read fails.
    pub fn change_set_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let table = txn.open_table(CHANGES).map_err(db)?;
        table.len().map_err(db)
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

/// A digest of everything `spec` says, under a domain that names how a
/// genesis block is derived from a spec: a protocol change to that
/// derivation must change the domain, so that a store made before it is
/// checked against the new genesis again.
fn spec_digest(spec: &ChainSpec) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"klero/store/spec/v1");
    hasher.update(&codec::encode(spec));
    Hash(*hasher.finalize().as_bytes())
}

fn decode_info(id: Hash, bytes: &[u8]) -> Result<BlockInfo, StoreError> {
    let (header, meta): (Header, BlockMeta) = codec::decode::<_, MAX_INFO_BYTES>(bytes, "block info")
        .map_err(|source| StoreError::Corrupt { what: "info", source })?;
    Ok(BlockInfo { id, header, meta })
}

fn decode_change_set(bytes: &[u8]) -> Result<ChangeSet, StoreError> {
    ChangeSet::decode(bytes).map_err(|source| StoreError::Corrupt {
        what: "change set",
        source,
    })
}

/// The row key of a state entry (see the module docs).
fn state_key(key: &StateKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(41);
    match key {
        StateKey::Account(address) => {
            out.push(0);
            out.extend_from_slice(&address.0);
        }
        StateKey::Unbonding { release_epoch, owner } => {
            out.push(1);
            out.extend_from_slice(&release_epoch.to_be_bytes());
            out.extend_from_slice(&owner.0);
        }
        StateKey::Slashed { offender, slot } => {
            out.push(2);
            out.extend_from_slice(&offender.0);
            out.extend_from_slice(&slot.to_be_bytes());
        }
        StateKey::VrfKey(key) => {
            out.push(3);
            out.extend_from_slice(&key.0);
        }
        StateKey::Burned => out.push(4),
        StateKey::Epoch => out.push(5),
        StateKey::SlashedIn(offender) => {
            out.push(6);
            out.extend_from_slice(&offender.0);
        }
        StateKey::Snapshot { epoch } => {
            out.push(7);
            out.extend_from_slice(&epoch.to_be_bytes());
        }
    }
    out
}

/// The entry key of a row key; `None` if it is not one [`state_key`] makes.
fn parse_state_key(bytes: &[u8]) -> Option<StateKey> {
    let (kind, rest) = bytes.split_first()?;
    let hash = |b: &[u8]| -> Option<[u8; 32]> { b.try_into().ok() };
    let num = |b: &[u8]| -> Option<u64> { Some(u64::from_be_bytes(b.try_into().ok()?)) };
    Some(match (kind, rest.len()) {
        (0, 32) => StateKey::Account(Address(hash(rest)?)),
        (1, 40) => StateKey::Unbonding {
            release_epoch: num(&rest[..8])?,
            owner: Address(hash(&rest[8..])?),
        },
        (2, 40) => StateKey::Slashed {
            offender: Address(hash(&rest[..32])?),
            slot: num(&rest[32..])?,
        },
        (3, 32) => StateKey::VrfKey(VrfPublicKey(hash(rest)?)),
        (4, 0) => StateKey::Burned,
        (5, 0) => StateKey::Epoch,
        (6, 32) => StateKey::SlashedIn(Address(hash(rest)?)),
        (7, 8) => StateKey::Snapshot { epoch: num(rest)? },
        _ => return None,
    })
}

fn staker_row(staker: &Staker) -> [u8; 40] {
    let mut row = [0; 40];
    row[..32].copy_from_slice(&staker.vrf_key.0);
    row[32..].copy_from_slice(&staker.stake.to_le_bytes());
    row
}

fn node_row(node: &Node, count: u64) -> Result<[u8; 76], StoreError> {
    let mut row = [0; 76];
    let bytes = node.encode();
    if bytes.len() != 68 {
        return Err(StoreError::Missing("a 68-byte tree node encoding"));
    }
    row[..68].copy_from_slice(&bytes);
    row[68..].copy_from_slice(&count.to_le_bytes());
    Ok(row)
}

fn parse_node_row(row: &[u8; 76]) -> Result<(Node, u64), CodecError> {
    Ok((Node::decode(&row[..68])?, row_count(row)))
}

/// The reference count of a stored node row.
fn row_count(row: &[u8; 76]) -> u64 {
    let mut count = [0; 8];
    count.copy_from_slice(&row[68..]);
    u64::from_le_bytes(count)
}

/// The reference-count changes of one commit, one entry per change: a
/// sync batch makes hundreds of thousands, and pushing them, then sorting
/// and summing once ([`NodeDeltas::net`]), measured faster than a map
/// update each (docs/performance.md, "1,000-transfer blocks").
#[derive(Default)]
struct NodeDeltas {
    changes: Vec<(Hash, i64, Option<Node>)>,
}

impl NodeDeltas {
    /// Rule 2: one more reference to each node a block's tree adds.
    fn apply(&mut self, set: &ChangeSet) {
        let new = set.nodes().new_nodes();
        self.changes
            .extend(new.iter().map(|(hash, node)| (*hash, 1, Some(*node))));
    }

    /// Rule 3: one reference less to each node an undone block added.
    fn undo(&mut self, set: &ChangeSet) {
        let new = set.nodes().new_nodes();
        self.changes.extend(new.iter().map(|(hash, _)| (*hash, -1, None)));
    }

    /// Rule 4: one reference less to each node a pruned block made stale.
    fn prune(&mut self, set: &ChangeSet) {
        let stale = set.nodes().stale_nodes();
        self.changes.extend(stale.iter().map(|hash| (*hash, -1, None)));
    }

    /// The net change of each node whose count changes, sorted by hash so
    /// the writes walk the table in order.
    fn net(mut self) -> Vec<(Hash, i64, Option<Node>)> {
        self.changes.sort_unstable_by_key(|(hash, _, _)| *hash);
        // `dedup_by` hands the later entry first: fold it into the kept one.
        self.changes.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 += later.1;
                kept.2 = kept.2.or(later.2);
            }
            same
        });
        self.changes.retain(|(_, delta, _)| *delta != 0);
        self.changes
    }
}

/// The tables of one write transaction.
struct Writer<'t> {
    blocks: Table<'t, &'static [u8; 32], &'static [u8]>,
    info: Table<'t, &'static [u8; 32], &'static [u8]>,
    canon: Table<'t, u64, &'static [u8; 32]>,
    meta: Table<'t, &'static str, &'static [u8; 32]>,
    state: Table<'t, &'static [u8], &'static [u8]>,
    stakers: Table<'t, &'static [u8; 32], &'static [u8; 40]>,
    nodes: Table<'t, &'static [u8; 32], &'static [u8; 76]>,
    changes: Table<'t, &'static [u8; 32], &'static [u8]>,
    marks: Table<'t, &'static str, u64>,
}

impl<'t> Writer<'t> {
    fn open(txn: &'t redb::WriteTransaction) -> Result<Writer<'t>, StoreError> {
        Ok(Writer {
            blocks: txn.open_table(BLOCKS).map_err(db)?,
            info: txn.open_table(INFO).map_err(db)?,
            canon: txn.open_table(CANON).map_err(db)?,
            meta: txn.open_table(META).map_err(db)?,
            state: txn.open_table(STATE).map_err(db)?,
            stakers: txn.open_table(STAKERS).map_err(db)?,
            nodes: txn.open_table(NODES).map_err(db)?,
            changes: txn.open_table(CHANGES).map_err(db)?,
            marks: txn.open_table(MARKS).map_err(db)?,
        })
    }

    fn put_block(&mut self, block: &SealedBlock, meta: &BlockMeta) -> Result<(), StoreError> {
        let id = block.id();
        self.blocks
            .insert(&id.0, codec::encode(block.block()).as_slice())
            .map_err(db)?;
        self.info
            .insert(
                &id.0,
                codec::encode(&(block.header().clone(), meta.clone())).as_slice(),
            )
            .map_err(db)?;
        Ok(())
    }

    fn stored_change_set(&self, id: &Hash) -> Result<ChangeSet, StoreError> {
        let row = self.changes.get(&id.0).map_err(db)?.ok_or(StoreError::Missing(
            "the change set of a block in the reorg window",
        ))?;
        decode_change_set(row.value())
    }

    /// Moves the head to `id` (at `height`): after `head.redo`, applies
    /// `applied`, the change sets of the blocks this commit stores, oldest
    /// first (the last is `id`'s).
    fn move_head<'c>(
        &mut self,
        id: Hash,
        height: u64,
        applied: impl Iterator<Item = &'c ChangeSet>,
        head: &HeadMove,
    ) -> Result<(), StoreError> {
        let mut flat: BTreeMap<StateKey, Option<StateValue>> = BTreeMap::new();
        let mut nodes = NodeDeltas::default();
        for undone in &head.undo {
            let set = self.stored_change_set(undone)?;
            flat.extend(set.changes().iter().map(|c| (c.key, c.before.clone())));
            nodes.undo(&set);
        }
        for redone in &head.redo {
            let set = self.stored_change_set(redone)?;
            flat.extend(set.changes().iter().map(|c| (c.key, c.after.clone())));
            nodes.apply(&set);
        }
        for changes in applied {
            flat.extend(changes.changes().iter().map(|c| (c.key, c.after.clone())));
            nodes.apply(changes);
        }
        for pruned in &head.prune {
            let set = self.stored_change_set(pruned)?;
            nodes.prune(&set);
            self.changes.remove(&pruned.0).map_err(db)?;
        }
        for forgotten in &head.forget {
            self.changes.remove(&forgotten.0).map_err(db)?;
        }
        self.write_entries(&flat)?;
        self.write_nodes(nodes)?;
        for (h, block) in &head.canonical {
            self.canon.insert(*h, &block.0).map_err(db)?;
        }
        for h in height + 1..=head.old_height {
            self.canon.remove(h).map_err(db)?;
        }
        self.meta.insert(HEAD_KEY, &id.0).map_err(db)?;
        self.marks.insert(PRUNED_KEY, head.pruned_through).map_err(db)?;
        Ok(())
    }

    /// Writes the final value of each entry (and the stakers index).
    fn write_entries(&mut self, flat: &BTreeMap<StateKey, Option<StateValue>>) -> Result<(), StoreError> {
        for (key, value) in flat {
            let row = state_key(key);
            match value {
                Some(value) => {
                    self.state
                        .insert(row.as_slice(), value.encode().as_slice())
                        .map_err(db)?;
                }
                None => {
                    self.state.remove(row.as_slice()).map_err(db)?;
                }
            }
            if let StateKey::Account(address) = key {
                let staker = match value {
                    Some(StateValue::Account(account)) => Staker::of(*address, account),
                    _ => None,
                };
                match staker {
                    Some(staker) => self
                        .stakers
                        .insert(&address.0, &staker_row(&staker))
                        .map_err(db)?,
                    None => self.stakers.remove(&address.0).map_err(db)?,
                };
            }
        }
        Ok(())
    }

    /// Applies reference-count changes: a node whose count reaches zero goes.
    /// One B-tree operation in the common cases (a node new to the store is
    /// inserted, a node released for the last time removed); the old row
    /// either returns corrects the rest.
    fn write_nodes(&mut self, nodes: NodeDeltas) -> Result<(), StoreError> {
        for (hash, delta, node) in nodes.net() {
            let (previous, inserted) = match (delta > 0, &node) {
                (true, Some(body)) => {
                    let row = node_row(body, delta.unsigned_abs())?;
                    let old = self
                        .nodes
                        .insert(&hash.0, &row)
                        .map_err(db)?
                        .map(|old| *old.value());
                    (old, true)
                }
                _ => (
                    self.nodes.remove(&hash.0).map_err(db)?.map(|old| *old.value()),
                    false,
                ),
            };
            let Some(mut row) = previous else {
                if inserted {
                    continue;
                }
                return Err(StoreError::Missing("a tree node whose count is released"));
            };
            let count = i128::from(row_count(&row)) + i128::from(delta);
            if count > 0 {
                row[68..].copy_from_slice(&u64::try_from(count).unwrap_or(u64::MAX).to_le_bytes());
                self.nodes.insert(&hash.0, &row).map_err(db)?;
            }
        }
        Ok(())
    }
}

/// The state after the head, read from one redb snapshot of the flat
/// tables: what validation, the producers, the mempool and the API read.
pub struct StoreState {
    state: ReadOnlyTable<&'static [u8], &'static [u8]>,
    stakers: ReadOnlyTable<&'static [u8; 32], &'static [u8; 40]>,
    nodes: ReadOnlyTable<&'static [u8; 32], &'static [u8; 76]>,
    root: Hash,
}

impl std::fmt::Debug for StoreState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreState({})", self.root.short())
    }
}

impl StateRead for StoreState {
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>, StateError> {
        let row = self.state.get(state_key(key).as_slice()).map_err(state_err)?;
        row.map(|v| StateValue::decode(key, v.value()).map_err(StateError::store))
            .transpose()
    }

    fn unbonding_due(&self, epoch: u64) -> Result<Vec<(u64, Address, u64)>, StateError> {
        let from = state_key(&StateKey::Unbonding {
            release_epoch: 0,
            owner: Address([0; 32]),
        });
        let to = state_key(&StateKey::Unbonding {
            release_epoch: epoch,
            owner: Address([0xff; 32]),
        });
        let mut out = Vec::new();
        for row in self
            .state
            .range(from.as_slice()..=to.as_slice())
            .map_err(state_err)?
        {
            let (key, value) = row.map_err(state_err)?;
            let key = parse_state_key(key.value())
                .ok_or_else(|| StateError::store(StoreError::Missing("a valid state key")))?;
            match (
                key,
                StateValue::decode(&key, value.value()).map_err(StateError::store)?,
            ) {
                (StateKey::Unbonding { release_epoch, owner }, StateValue::Unbonding(amount)) => {
                    out.push((release_epoch, owner, amount));
                }
                _ => return Err(StateError::WrongKind(key)),
            }
        }
        Ok(out)
    }

    fn stakers(&self) -> Result<Vec<Staker>, StateError> {
        let mut out = Vec::new();
        for row in self.stakers.iter().map_err(state_err)? {
            let (address, value) = row.map_err(state_err)?;
            let value = value.value();
            let mut key = [0; 32];
            key.copy_from_slice(&value[..32]);
            let mut stake = [0; 8];
            stake.copy_from_slice(&value[32..]);
            out.push(Staker {
                address: Address(*address.value()),
                vrf_key: VrfPublicKey(key),
                stake: u64::from_le_bytes(stake),
            });
        }
        Ok(out)
    }
}

impl CommittedState for StoreState {
    fn root(&self) -> Hash {
        self.root
    }

    fn node(&self, hash: &Hash) -> Result<Option<Node>, StateError> {
        let row = self.nodes.get(&hash.0).map_err(state_err)?;
        row.map(|v| {
            parse_node_row(v.value())
                .map(|(node, _)| node)
                .map_err(StateError::store)
        })
        .transpose()
    }
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
            assert_eq!(store.all_info().expect("info").len(), 1);
            let head = store.head_state(genesis.header().state_root).expect("state");
            for (key, value) in state.entries() {
                assert_eq!(head.get(key).expect("read").as_ref(), Some(value));
            }
            assert_eq!(
                head.stakers().expect("stakers"),
                state.stakers().expect("stakers")
            );
            assert_eq!(store.recompute_root().expect("root"), genesis.header().state_root);
        }
        let store = Store::open(dir.path(), &spec).expect("reopen");
        assert_eq!(store.head().expect("head"), genesis.id());
    }

    #[test]
    fn a_store_without_the_spec_digest_checks_the_genesis_and_records_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), &spec()).expect("open");
        assert_eq!(store.meta(SPEC_KEY).expect("read"), Some(spec_digest(&spec())));
        // As a store made before the digest was kept: the genesis is checked.
        let txn = store.db.begin_write().expect("write");
        txn.open_table(META)
            .expect("meta")
            .remove(SPEC_KEY)
            .expect("remove");
        txn.commit().expect("commit");
        drop(store);
        let other = ChainSpec::from_toml(include_str!("../../testnet/pow.toml")).expect("spec");
        let err = Store::open(dir.path(), &other).expect_err("other chain");
        assert!(matches!(err, StoreError::WrongChain { .. }), "{err}");
        let store = Store::open(dir.path(), &spec()).expect("reopen");
        assert_eq!(store.meta(SPEC_KEY).expect("read"), Some(spec_digest(&spec())));
    }

    #[test]
    fn node_counts_add_up_through_every_write_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), &spec()).expect("open");
        let before = store.node_count().expect("count");
        let node = Node::Internal {
            left: Hash([1; 32]),
            right: Hash([2; 32]),
        };
        // The table takes the hash as given: any key will do here.
        let id = Hash([7; 32]);
        let write = |changes: Vec<(Hash, i64, Option<Node>)>| -> Result<(), StoreError> {
            let txn = store.db.begin_write().map_err(db)?;
            Writer::open(&txn)?.write_nodes(NodeDeltas { changes })?;
            txn.commit().map_err(db)
        };
        let stored = || {
            let txn = store.db.begin_read().expect("read");
            let table = txn.open_table(NODES).expect("nodes");
            let row = table.get(&id.0).expect("get").map(|row| *row.value());
            row.map(|row| parse_node_row(&row).expect("row"))
        };
        let add = (id, 1, Some(node));
        let release = (id, -1, None);
        write(vec![add]).expect("a new node");
        assert_eq!(stored(), Some((node, 1)));
        write(vec![add, add]).expect("two more references");
        assert_eq!(stored(), Some((node, 3)));
        write(vec![release]).expect("one released");
        assert_eq!(stored(), Some((node, 2)));
        write(vec![add, release, release, release]).expect("the last released");
        assert_eq!(stored(), None);
        assert_eq!(store.node_count().expect("count"), before);
        for unknown in [release, (id, 1, None)] {
            assert!(matches!(write(vec![unknown]), Err(StoreError::Missing(_))));
        }
        assert_eq!(stored(), None);
    }

    #[test]
    fn refuses_another_chains_data_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        Store::open(dir.path(), &spec()).expect("open");
        let other = ChainSpec::from_toml(include_str!("../../testnet/pow.toml")).expect("spec");
        let err = Store::open(dir.path(), &other).expect_err("other chain");
        assert!(matches!(err, StoreError::WrongChain { .. }), "{err}");
    }

    #[test]
    fn row_keys_round_trip_and_sort_the_unbonding_queue_by_epoch() {
        let a = Address([0xff; 32]);
        let b = Address([0; 32]);
        let keys = [
            StateKey::Account(a),
            StateKey::Unbonding {
                release_epoch: 2,
                owner: a,
            },
            StateKey::Slashed { offender: a, slot: 3 },
            StateKey::VrfKey(VrfPublicKey([4; 32])),
            StateKey::Burned,
            StateKey::Epoch,
            StateKey::SlashedIn(a),
            StateKey::Snapshot { epoch: 9 },
        ];
        for key in keys {
            assert_eq!(parse_state_key(&state_key(&key)), Some(key));
        }
        let early = state_key(&StateKey::Unbonding {
            release_epoch: 1,
            owner: a,
        });
        let late = state_key(&StateKey::Unbonding {
            release_epoch: 256,
            owner: b,
        });
        assert!(early < late, "release epochs sort numerically");
        assert_eq!(parse_state_key(&[0; 5]), None);
    }
}
