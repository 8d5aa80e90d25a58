//! The chain task: the one owner of the [`BlockTree`], the [`Orphans`] and
//! the [`Mempool`].
//!
//! Everything that changes them (gossip, sync, the API, the miner and the
//! staker) sends a command through a cloneable [`ChainHandle`] and awaits
//! the reply, so imports are serialised without locks. Readers that only
//! need the head (the API, the producers) watch it through a
//! `tokio::sync::watch` channel and never wait for the task. Every call
//! fails with one error type, [`ChainError`], whose [`ChainError::Stopped`]
//! says the task has ended.
//!
//! The task ends when the last handle is dropped, after it has served the
//! commands already queued: the import in flight at shutdown completes.
//! After a reorg the transactions of the blocks it removed go back to the
//! mempool (those the new branch does not include yet).
//!
//! It also keeps the best score seen for each recent PoS (slot, parent)
//! ([`SlotBests`]): the staker stays silent when its block would lose its
//! slot, and gossip does not forward a block that already lost its slot
//! ([`super::slot_battle`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use klero_chain::codec;
use klero_chain::ledger::BlockCtx;
use klero_chain::pos;
use klero_chain::produce::{self, PowTemplate};
use klero_chain::spec::Consensus;
use klero_chain::state::{StateOverlay, StateRead};
use klero_chain::types::{Equivocation, TxBody, TxKind};
use klero_chain::validate::{BlockError, HeaderChain, MAX_BLOCK_TXS};
use klero_chain::{Address, Keypair, SealedBlock, Tx};
use libp2p::PeerId;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use super::block_tree::{BatchImport, BlockTree, Head, ImportError, ImportOutcome};
use super::mempool::{Mempool, MempoolError};
use super::metrics::Metrics;
use super::orphans::Orphans;
use super::recent::{ChainStats, Recent, RecentBlock, Reorg};
use super::slot_battle::{SlotBests, Ticket};
use super::store::StoreError;
use super::withheld::{ImportEvent, Withheld};
use crate::p2p::NetworkHandle;

/// Commands queued before senders wait.
const COMMAND_BUFFER: usize = 256;
/// Import events kept for a slow subscriber (only a strategy subscribes).
const IMPORT_EVENTS: usize = 256;

/// Where a block came from, which decides what happens after import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Gossip from this peer: gossipsub forwards it if we accept it; an
    /// orphan is charged to the peer's share of the orphan pool.
    Gossip(PeerId),
    /// A sync response.
    Sync,
    /// Our own miner or staker: we publish it.
    Local,
    /// Our own, made under a testnet strategy: stored, not published until
    /// the strategy releases it (`super::withheld`).
    Withheld,
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

enum Command {
    Import {
        block: Box<SealedBlock>,
        origin: Origin,
        reply: oneshot::Sender<Result<ImportOutcome, ImportError>>,
    },
    ImportBatch {
        blocks: Vec<SealedBlock>,
        reply: oneshot::Sender<BatchImport>,
    },
    SubmitTx {
        tx: Tx,
        publish: bool,
        reply: oneshot::Sender<Result<bool, MempoolError>>,
    },
    SubmitTxs {
        txs: Vec<Tx>,
        reply: oneshot::Sender<Vec<Result<bool, MempoolError>>>,
    },
    PowTemplate {
        reply: oneshot::Sender<Option<PowTemplate>>,
    },
    PosTicket {
        slot: u64,
        reply: oneshot::Sender<Option<Ticket>>,
    },
    ProposePos {
        slot: u64,
        reply: oneshot::Sender<Option<SealedBlock>>,
    },
    BeatenInSlot {
        id: klero_chain::Hash,
        parent: klero_chain::Hash,
        reply: oneshot::Sender<bool>,
    },
    Contains {
        id: klero_chain::Hash,
        reply: oneshot::Sender<bool>,
    },
    HeaderChain {
        id: klero_chain::Hash,
        reply: oneshot::Sender<Result<Option<HeaderChain>, ImportError>>,
    },
    Pending {
        id: klero_chain::Hash,
        reply: oneshot::Sender<Option<Tx>>,
    },
}

/// The context transactions are checked in against the head: the head's
/// epoch, and a proposer nobody owns, so no sender is credited its own fee.
fn checks_ctx(tree: &BlockTree) -> BlockCtx<'_> {
    tree.spec().block_ctx(tree.head().epoch, Address([0; 32]))
}

/// Why a call to the chain task failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChainError {
    /// The block breaks a consensus rule.
    #[error(transparent)]
    Invalid(#[from] BlockError),
    /// The store failed; the block is not imported.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The mempool refused the transaction.
    #[error(transparent)]
    Tx(#[from] MempoolError),
    /// The chain task has stopped (the node is shutting down).
    #[error("the chain task has stopped")]
    Stopped,
}

impl From<ImportError> for ChainError {
    fn from(error: ImportError) -> Self {
        match error {
            ImportError::Invalid(error) => ChainError::Invalid(error),
            ImportError::Store(error) => ChainError::Store(error),
        }
    }
}

/// A cloneable way to talk to the chain task.
#[derive(Clone, Debug)]
pub(crate) struct ChainHandle {
    commands: mpsc::Sender<Command>,
    head: watch::Receiver<Head>,
    imports: broadcast::Sender<ImportEvent>,
    withheld: Withheld,
}

impl ChainHandle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, ChainError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| ChainError::Stopped)?;
        rx.await.map_err(|_| ChainError::Stopped)
    }

    /// Imports a block.
    ///
    /// # Errors
    ///
    /// [`ChainError::Invalid`] or [`ChainError::Store`] if it is not
    /// imported; [`ChainError::Stopped`] if the chain task has ended.
    pub(crate) async fn import(
        &self,
        block: SealedBlock,
        origin: Origin,
    ) -> Result<ImportOutcome, ChainError> {
        self.ask(|reply| Command::Import {
            block: Box::new(block),
            origin,
            reply,
        })
        .await?
        .map_err(ChainError::from)
    }

    /// Imports a sync response's blocks (each the child of the one before)
    /// as one batch: [`BlockTree::import_batch`].
    ///
    /// # Errors
    ///
    /// [`ChainError::Stopped`] if the chain task has ended; a block that
    /// fails is in [`BatchImport::failed`].
    pub(crate) async fn import_batch(&self, blocks: Vec<SealedBlock>) -> Result<BatchImport, ChainError> {
        self.ask(|reply| Command::ImportBatch { blocks, reply }).await
    }

    /// Offers a transaction to the mempool; `publish` gossips it if new.
    /// Returns false if the pool had it already.
    ///
    /// # Errors
    ///
    /// [`ChainError::Tx`] with the mempool's reason; [`ChainError::Stopped`].
    pub(crate) async fn submit_tx(&self, tx: Tx, publish: bool) -> Result<bool, ChainError> {
        Ok(self
            .ask(|reply| Command::SubmitTx { tx, publish, reply })
            .await??)
    }

    /// Offers gossiped transactions to the mempool together
    /// ([`Mempool::insert_batch`]), one answer each, in order.
    ///
    /// # Errors
    ///
    /// [`ChainError::Stopped`].
    pub(crate) async fn submit_txs(
        &self,
        txs: Vec<Tx>,
    ) -> Result<Vec<Result<bool, MempoolError>>, ChainError> {
        self.ask(|reply| Command::SubmitTxs { txs, reply }).await
    }

    /// A PoW template on the head for the node's key.
    ///
    /// # Errors
    ///
    /// [`ChainError::Stopped`] if the chain task has ended.
    pub(crate) async fn pow_template(&self) -> Result<Option<PowTemplate>, ChainError> {
        self.ask(|reply| Command::PowTemplate { reply }).await
    }

    /// The node key's winning ticket for `slot` on the head, if it has one.
    ///
    /// # Errors
    ///
    /// [`ChainError::Stopped`] if the chain task has ended.
    pub(crate) async fn pos_ticket(&self, slot: u64) -> Result<Option<Ticket>, ChainError> {
        self.ask(|reply| Command::PosTicket { slot, reply }).await
    }

    /// The node's block for `slot` on the head as it is now, if its key
    /// wins the slot there and no block seen for the slot on that parent
    /// has a better score. If the head is itself a block of `slot`, the
    /// block is built on the head's parent, to replace it if ours scores
    /// lower.
    ///
    /// # Errors
    ///
    /// [`ChainError::Stopped`] if the chain task has ended.
    pub(crate) async fn propose_pos(&self, slot: u64) -> Result<Option<SealedBlock>, ChainError> {
        self.ask(|reply| Command::ProposePos { slot, reply }).await
    }

    /// Whether the stored PoS block `id` on `parent` lost its slot: a block
    /// seen for the same slot and parent has a lower score.
    ///
    /// # Errors
    ///
    /// [`ChainError::Stopped`] if the chain task has ended.
    pub(crate) async fn beaten_in_slot(
        &self,
        id: klero_chain::Hash,
        parent: klero_chain::Hash,
    ) -> Result<bool, ChainError> {
        self.ask(|reply| Command::BeatenInSlot { id, parent, reply })
            .await
    }

    /// Whether a block is stored.
    ///
    /// # Errors
    ///
    /// [`ChainError::Stopped`] if the chain task has ended.
    pub(crate) async fn contains(&self, id: klero_chain::Hash) -> Result<bool, ChainError> {
        self.ask(|reply| Command::Contains { id, reply }).await
    }

    /// The stored block `id` as the start of a branch checked from its
    /// headers ([`BlockTree::header_chain`]): `None` on a PoS chain.
    ///
    /// # Errors
    ///
    /// [`ChainError::Stopped`]; or if the block is unknown or forks deeper
    /// than the rollback limit.
    pub(crate) async fn header_chain(
        &self,
        id: klero_chain::Hash,
    ) -> Result<Option<HeaderChain>, ChainError> {
        Ok(self.ask(|reply| Command::HeaderChain { id, reply }).await??)
    }

    /// The mempool's transaction with this id, if it waits there.
    ///
    /// # Errors
    ///
    /// [`ChainError::Stopped`] if the chain task has ended.
    pub(crate) async fn pending_tx(&self, id: klero_chain::Hash) -> Result<Option<Tx>, ChainError> {
        self.ask(|reply| Command::Pending { id, reply }).await
    }

    /// The current head.
    pub(crate) fn head(&self) -> Head {
        self.head.borrow().clone()
    }

    /// A receiver that wakes on every head change.
    pub(crate) fn watch_head(&self) -> watch::Receiver<Head> {
        self.head.clone()
    }

    /// Every block stored from now on (for a testnet strategy).
    pub(crate) fn subscribe_imports(&self) -> broadcast::Receiver<ImportEvent> {
        self.imports.subscribe()
    }

    /// The blocks imported as [`Origin::Withheld`] and not yet released.
    pub(crate) fn withheld(&self) -> &Withheld {
        &self.withheld
    }
}

/// What the task notes of a block before importing it, for the
/// bookkeeping after.
struct Arrival {
    /// What a strategy hears of the block; the outcome is filled in after.
    event: ImportEvent,
    summary: RecentBlock,
    timestamp: u64,
}

impl Arrival {
    fn of(block: &SealedBlock, origin: Origin) -> Arrival {
        let header = block.header();
        Arrival {
            event: ImportEvent {
                id: block.id(),
                parent: header.parent,
                height: header.height,
                slot: header.slot().unwrap_or(0),
                proposer: header.proposer,
                origin,
                outcome: ImportOutcome::Known,
            },
            summary: RecentBlock::of(block),
            timestamp: header.timestamp_ms,
        }
    }
}

/// The chain task's state.
pub(crate) struct ChainTask {
    tree: BlockTree,
    orphans: Orphans,
    mempool: Mempool,
    key: Option<Keypair>,
    net: NetworkHandle,
    metrics: Arc<Metrics>,
    recent: Arc<Recent>,
    head_tx: watch::Sender<Head>,
    commands: mpsc::Receiver<Command>,
    slot_bests: SlotBests,
    imports: broadcast::Sender<ImportEvent>,
    withheld: Withheld,
}

impl ChainTask {
    /// The task and its handle.
    pub(crate) fn new(
        tree: BlockTree,
        mempool: Mempool,
        key: Option<Keypair>,
        net: NetworkHandle,
        metrics: Arc<Metrics>,
        recent: Arc<Recent>,
    ) -> (ChainTask, ChainHandle) {
        let (tx, rx) = mpsc::channel(COMMAND_BUFFER);
        let (head_tx, head_rx) = watch::channel(tree.head().clone());
        metrics.height.store(tree.head().meta.height, Ordering::Relaxed);
        let (imports, _) = broadcast::channel(IMPORT_EVENTS);
        let withheld = Withheld::default();
        recent.set_stats(ChainStats::of(&tree));
        let task = ChainTask {
            tree,
            orphans: Orphans::default(),
            mempool,
            key,
            net,
            metrics,
            recent,
            head_tx,
            commands: rx,
            slot_bests: SlotBests::default(),
            imports: imports.clone(),
            withheld: withheld.clone(),
        };
        let handle = ChainHandle {
            commands: tx,
            head: head_rx,
            imports,
            withheld,
        };
        (task, handle)
    }

    /// Serves commands until every handle is dropped (the queued ones
    /// included), then hands back the block tree, whose store closes when
    /// it is dropped.
    pub(crate) async fn run(mut self) -> BlockTree {
        while let Some(command) = self.commands.recv().await {
            match command {
                Command::Import { block, origin, reply } => {
                    let result = self.import(*block, origin).await;
                    let _ = reply.send(result);
                }
                Command::ImportBatch { blocks, reply } => {
                    let _ = reply.send(self.import_batch(blocks).await);
                }
                Command::SubmitTx { tx, publish, reply } => {
                    let result = self.submit_tx(tx, publish).await;
                    let _ = reply.send(result);
                }
                Command::SubmitTxs { txs, reply } => {
                    let results = self.mempool.insert_batch(
                        txs,
                        self.tree.head().state.as_ref(),
                        &checks_ctx(&self.tree),
                    );
                    self.metrics
                        .mempool
                        .store(self.mempool.len() as u64, Ordering::Relaxed);
                    let _ = reply.send(results);
                }
                Command::PowTemplate { reply } => {
                    let _ = reply.send(self.pow_template());
                }
                Command::PosTicket { slot, reply } => {
                    let _ = reply.send(self.pos_ticket(slot));
                }
                Command::ProposePos { slot, reply } => {
                    let _ = reply.send(self.propose_pos(slot));
                }
                Command::BeatenInSlot { id, parent, reply } => {
                    let _ = reply.send(self.beaten_in_slot(&id, parent));
                }
                Command::Contains { id, reply } => {
                    let _ = reply.send(self.tree.contains(&id));
                }
                Command::HeaderChain { id, reply } => {
                    let _ = reply.send(self.tree.header_chain(id));
                }
                Command::Pending { id, reply } => {
                    let _ = reply.send(self.mempool.get(&id).cloned());
                }
            }
        }
        self.tree
    }

    async fn import(&mut self, block: SealedBlock, origin: Origin) -> Result<ImportOutcome, ImportError> {
        let before = self.head_mark();
        let bytes = (origin == Origin::Local).then(|| codec::encode(block.block()));
        let arrival = Arrival::of(&block, origin);
        let from = match origin {
            Origin::Gossip(peer) => Some(peer),
            Origin::Sync | Origin::Local | Origin::Withheld => None,
        };
        // Validation is CPU work (signatures, VRF, state root): keep it off
        // the async scheduler's toes.
        let result =
            tokio::task::block_in_place(|| self.orphans.import(&mut self.tree, block, from, now_ms()));
        self.note_orphans();
        self.record(&arrival, result.as_ref());
        self.settle(before).await;
        if let Ok(outcome) = &result {
            self.announce(&arrival.event, *outcome);
        }
        if let (Some(bytes), Ok(ImportOutcome::NewHead { .. })) = (bytes, &result) {
            self.metrics.blocks_proposed.fetch_add(1, Ordering::Relaxed);
            if self.is_pos() {
                // A PoS block's timestamp is its slot's start.
                let delay = now_ms().saturating_sub(arrival.timestamp) as f64 / 1000.0;
                self.metrics.publish_delay(delay);
            }
            info!(height = self.tree.head().meta.height, block = %arrival.event.id.short(), "proposed");
            if let Err(error) = self.net.publish_block(bytes).await {
                warn!(%error, "could not gossip our block");
            }
        }
        result
    }

    /// A sync response's blocks, each the child of the one before, as one
    /// batch ([`BlockTree::import_batch`]); the bookkeeping of a single
    /// import runs for each block, in order.
    async fn import_batch(&mut self, blocks: Vec<SealedBlock>) -> BatchImport {
        let before = self.head_mark();
        let arrivals: Vec<Arrival> = blocks.iter().map(|b| Arrival::of(b, Origin::Sync)).collect();
        let batch =
            tokio::task::block_in_place(|| self.orphans.import_batch(&mut self.tree, blocks, now_ms()));
        self.note_orphans();
        for (arrival, outcome) in arrivals.iter().zip(&batch.outcomes) {
            self.record(arrival, Ok(outcome));
        }
        if let Some((index, error)) = &batch.failed
            && let Some(arrival) = arrivals.get(*index)
        {
            self.record(arrival, Err(error));
        }
        self.settle(before).await;
        for (arrival, outcome) in arrivals.into_iter().zip(&batch.outcomes) {
            self.announce(&arrival.event, *outcome);
        }
        batch
    }

    /// The head before an import, for [`ChainTask::settle`].
    fn head_mark(&self) -> (klero_chain::Hash, u64) {
        (self.tree.head().id, self.tree.head().meta.height)
    }

    fn note_orphans(&self) {
        self.metrics
            .orphans
            .store(self.orphans.len() as u64, Ordering::Relaxed);
        self.metrics
            .orphan_bytes
            .store(self.orphans.bytes() as u64, Ordering::Relaxed);
    }

    /// The bookkeeping of one block's import: withheld, metrics, the slot
    /// index, the recent blocks, or the reason it was refused.
    fn record(&mut self, arrival: &Arrival, result: Result<&ImportOutcome, &ImportError>) {
        let (id, origin) = (arrival.event.id, arrival.event.origin);
        let stored = matches!(
            result,
            Ok(ImportOutcome::NewHead { .. } | ImportOutcome::SideBranch)
        );
        // Private before the head watch shows it, so sync never serves it.
        if origin == Origin::Withheld && stored {
            self.withheld.insert(id);
        }
        match result {
            Ok(ImportOutcome::NewHead { .. } | ImportOutcome::SideBranch) => {
                self.metrics.blocks_imported.fetch_add(1, Ordering::Relaxed);
                if let Some(meta) = self.tree.meta(&id).filter(|_| self.is_pos()) {
                    self.slot_bests
                        .record(arrival.event.parent, meta.slot, meta.score());
                }
                self.recent.on_import(arrival.summary.clone());
                self.recent.set_stats(ChainStats::of(&self.tree));
                if let Origin::Gossip(_) = origin {
                    let latency = now_ms().saturating_sub(arrival.timestamp) as f64 / 1000.0;
                    self.metrics.gossip_latency(latency);
                }
            }
            Ok(ImportOutcome::Known | ImportOutcome::Orphan) => {}
            Err(ImportError::Invalid(error)) => {
                self.metrics.reject(error.reason());
                warn!(block = %id.short(), ?origin, %error, "block rejected");
            }
            Err(ImportError::Store(error)) => warn!(block = %id.short(), %error, "store failed"),
        }
    }

    /// After an import that started at head `before`: the reorgs it did,
    /// the new head for the mempool and the watchers, the equivocations it
    /// found.
    async fn settle(&mut self, (before, before_height): (klero_chain::Hash, u64)) {
        for depth in self.tree.take_reorgs() {
            self.metrics.reorg(depth);
            let head = self.tree.head();
            self.recent.on_reorg(Reorg {
                at_ms: now_ms(),
                depth,
                old_head: before,
                old_height: before_height,
                new_head: head.id,
                new_height: head.meta.height,
            });
        }
        if self.tree.head().id != before {
            self.on_new_head();
        }
        for evidence in self.tree.take_equivocations() {
            self.submit_evidence(evidence).await;
        }
    }

    /// Tells a strategy (if one listens) that a block was stored.
    fn announce(&self, event: &ImportEvent, outcome: ImportOutcome) {
        if !matches!(outcome, ImportOutcome::NewHead { .. } | ImportOutcome::SideBranch) {
            return;
        }
        if event.origin == Origin::Withheld && matches!(outcome, ImportOutcome::NewHead { .. }) {
            self.metrics.blocks_proposed.fetch_add(1, Ordering::Relaxed);
        }
        // Nobody listens on an honest node: the send just fails.
        let _ = self.imports.send(ImportEvent {
            outcome,
            ..event.clone()
        });
    }

    /// Replays the mempool on the new head, gives it back the transactions
    /// of blocks a reorg removed, and publishes the head.
    fn on_new_head(&mut self) {
        let reverted = self.tree.take_reverted_txs();
        let head = self.tree.head().clone();
        let ctx = checks_ctx(&self.tree);
        self.mempool.revalidate(head.state.as_ref(), &ctx);
        match reverted {
            Ok(txs) => {
                // Oldest block first, so each sender's come back in nonce
                // order; those the new branch includes no longer apply.
                // Their signatures were checked when their blocks came in.
                let back = txs
                    .into_iter()
                    .filter(|tx| {
                        matches!(
                            self.mempool
                                .insert_verified(tx.clone(), head.state.as_ref(), &ctx),
                            Ok(true)
                        )
                    })
                    .count();
                if back > 0 {
                    debug!(back, "reorged-out transactions returned to the mempool");
                }
            }
            Err(error) => warn!(%error, "could not read back the blocks a reorg removed"),
        }
        self.metrics.height.store(head.meta.height, Ordering::Relaxed);
        self.metrics
            .mempool
            .store(self.mempool.len() as u64, Ordering::Relaxed);
        self.head_tx.send_replace(head);
    }

    /// Turns an equivocation into an evidence transaction from the node's
    /// key, which gossips it; a node without a key (or funds) only logs it.
    async fn submit_evidence(&mut self, evidence: Equivocation) {
        let Some(key) = self.key.clone() else { return };
        let nonce = match self
            .mempool
            .next_nonce(&key.address(), self.tree.head().state.as_ref())
        {
            Ok(nonce) => nonce,
            Err(error) => {
                warn!(%error, "could not read our account to report an equivocation");
                return;
            }
        };
        let body = TxBody {
            from: key.address(),
            nonce,
            fee: self.tree.spec().ledger.min_fee,
            kind: TxKind::Evidence(Box::new(evidence)),
        };
        let tx = Tx::sign(body, &key, &self.tree.spec().chain_id);
        match self.submit_tx(tx, true).await {
            Ok(_) => info!("submitted equivocation evidence"),
            Err(error) => warn!(%error, "could not submit equivocation evidence"),
        }
    }

    async fn submit_tx(&mut self, tx: Tx, publish: bool) -> Result<bool, MempoolError> {
        let bytes = publish.then(|| codec::encode(&tx));
        let result = self
            .mempool
            .insert(tx, self.tree.head().state.as_ref(), &checks_ctx(&self.tree));
        self.metrics
            .mempool
            .store(self.mempool.len() as u64, Ordering::Relaxed);
        if let (Some(bytes), Ok(true)) = (bytes, &result)
            && let Err(error) = self.net.publish_tx(bytes).await
        {
            warn!(%error, "could not gossip a transaction");
        }
        result
    }

    fn pow_template(&self) -> Option<PowTemplate> {
        let key = self.key.as_ref()?;
        let candidates = self.mempool.candidates(MAX_BLOCK_TXS);
        self.tree.with_head_parent(|parent, state| {
            produce::pow_template(self.tree.spec(), parent, state, &candidates, key, now_ms())
        })
    }

    fn is_pos(&self) -> bool {
        matches!(self.tree.spec().consensus, Consensus::Pos(_))
    }

    fn pos_ticket(&self, slot: u64) -> Option<Ticket> {
        let key = self.key.as_ref()?;
        let spec = self.tree.spec();
        let Consensus::Pos(params) = &spec.consensus else {
            return None;
        };
        self.tree.with_head_parent(|parent, state| {
            let claim = produce::pos_claim(spec, parent, state, key, slot)?;
            let mut overlay = StateOverlay::new(state);
            pos::advance_epoch(&mut overlay, params, slot).ok()?;
            let snapshot = overlay.snapshot(params.epoch_of_slot(slot)).ok()??;
            Some(Ticket {
                score: claim.score,
                total_stake: snapshot.total(),
                step: pos::failover_step(params, slot, parent.meta.slot),
            })
        })
    }

    fn propose_pos(&self, slot: u64) -> Option<SealedBlock> {
        let key = self.key.as_ref()?;
        let spec = self.tree.spec();
        let head = self.tree.head();
        // A block of this slot already heads the chain: ours can only win
        // as its sibling, by a lower score.
        let parent_id = if head.meta.slot == slot && head.meta.height > 0 {
            head.header.parent
        } else {
            head.id
        };
        let built = self.tree.with_parent(parent_id, |parent, state| {
            let claim = produce::pos_claim(spec, parent, state, key, slot)?;
            if self
                .best_seen(parent_id, slot)
                .is_some_and(|best| best <= claim.score)
            {
                debug!(slot, "a better block of the slot is out: not proposing");
                return None;
            }
            let candidates = self.mempool.candidates(MAX_BLOCK_TXS);
            produce::pos_block(spec, parent, state, key, &claim, &candidates).map(klero_chain::Block::seal)
        });
        match built {
            Ok(block) => block,
            Err(error) => {
                warn!(slot, %error, "could not read the parent to propose on");
                None
            }
        }
    }

    /// The best score of the blocks seen for `slot` on `parent`: the index,
    /// and the head (which may have come out of the orphan pool unrecorded).
    fn best_seen(&self, parent: klero_chain::Hash, slot: u64) -> Option<klero_chain::draw::Score> {
        let head = self.tree.head();
        let head_score = (head.meta.slot == slot && head.header.parent == parent).then(|| head.meta.score());
        match (self.slot_bests.best(parent, slot), head_score) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn beaten_in_slot(&self, id: &klero_chain::Hash, parent: klero_chain::Hash) -> bool {
        let Some(meta) = self.tree.meta(id).filter(|_| self.is_pos()) else {
            return false;
        };
        self.best_seen(parent, meta.slot)
            .is_some_and(|best| best < meta.score())
    }
}

#[cfg(test)]
mod tests {
    use klero_chain::ChainSpec;
    use klero_chain::pow::{meets_target, pow_hash};
    use klero_chain::state::StateRead;
    use klero_chain::types::{TxBody, TxKind};

    use super::*;
    use crate::node::block_tree::tests::{mine, spec};
    use crate::node::mempool::DEFAULT_CAPACITY;
    use crate::node::store::Store;
    use crate::p2p::{self, P2pConfig};

    /// A lone network (no listener, no peer): publishing succeeds and
    /// reaches nobody.
    fn lone_network() -> NetworkHandle {
        let (net, _events, event_loop) = p2p::new(P2pConfig {
            chain_id: spec().chain_id,
            listen: Vec::new(),
            bootnodes: Vec::new(),
            keypair: libp2p::identity::Keypair::generate_ed25519(),
            mdns: false,
        })
        .expect("p2p");
        tokio::spawn(event_loop.run());
        net
    }

    /// Mines the chain task's own template (with the mempool's transactions).
    async fn mine_template(chain: &ChainHandle, miner: &Keypair) -> SealedBlock {
        let template = chain.pow_template().await.expect("task").expect("template");
        let nonce = (0..)
            .find(|n| meets_target(&pow_hash(&template.pre, *n), &template.target))
            .expect("nonce");
        template.complete(nonce, miner, &spec().chain_id).seal()
    }

    /// A running chain task producing with `key` on a fresh chain of `spec`.
    fn task_on(
        spec: &ChainSpec,
        key: &Keypair,
        dir: &std::path::Path,
        recent: &Arc<Recent>,
    ) -> (ChainHandle, tokio::task::JoinHandle<BlockTree>) {
        let tree = BlockTree::load(spec.clone(), Store::open(dir, spec).expect("store")).expect("tree");
        let (task, chain) = ChainTask::new(
            tree,
            Mempool::new(DEFAULT_CAPACITY),
            Some(key.clone()),
            lone_network(),
            Arc::new(Metrics::default()),
            Arc::clone(recent),
        );
        (chain, tokio::spawn(task.run()))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_staker_is_silent_behind_a_better_block_of_its_slot_and_replaces_a_worse_one() {
        let spec = ChainSpec::from_toml(include_str!("../../testnet/pos.toml")).expect("spec");
        let (alice, bob) = (Keypair::dev("alice"), Keypair::dev("bob"));
        let (genesis, state) = spec.genesis();
        let meta = klero_chain::validate::genesis_meta(&spec);
        let parent = klero_chain::validate::Parent {
            id: genesis.id(),
            header: genesis.header(),
            meta: &meta,
            recent_timestamps: &[genesis.header().timestamp_ms],
        };
        // A slot both win on genesis; `better` scores lower.
        let (slot, better, worse) = (1..10_000)
            .find_map(|slot| {
                let a = produce::pos_claim(&spec, &parent, &state, &alice, slot)?;
                let b = produce::pos_claim(&spec, &parent, &state, &bob, slot)?;
                Some(if a.score < b.score {
                    (slot, alice.clone(), bob.clone())
                } else {
                    (slot, bob.clone(), alice.clone())
                })
            })
            .expect("a slot both win");
        let block_of = |key: &Keypair| {
            let claim = produce::pos_claim(&spec, &parent, &state, key, slot).expect("claim");
            produce::pos_block(&spec, &parent, &state, key, &claim, &[])
                .expect("block")
                .seal()
        };
        let (best_block, worse_block) = (block_of(&better), block_of(&worse));

        // Behind a better block of the slot, the worse staker stays silent.
        let dir = tempfile::tempdir().expect("dir");
        let (chain, task) = task_on(&spec, &worse, dir.path(), &Arc::default());
        assert!(chain.pos_ticket(slot).await.expect("task").is_some());
        chain
            .import(best_block.clone(), Origin::Gossip(libp2p::PeerId::random()))
            .await
            .expect("best");
        assert!(chain.propose_pos(slot).await.expect("task").is_none());
        drop(chain);
        task.await.expect("task");

        // Ahead of a worse one, the better staker builds beside it and wins
        // the slot; the worse block has lost its slot and is not relayed.
        let dir = tempfile::tempdir().expect("dir");
        let (chain, task) = task_on(&spec, &better, dir.path(), &Arc::default());
        chain
            .import(worse_block.clone(), Origin::Gossip(libp2p::PeerId::random()))
            .await
            .expect("worse");
        let ours = chain.propose_pos(slot).await.expect("task").expect("our block");
        assert_eq!(ours.header().parent, genesis.id());
        assert_eq!(
            chain.import(ours.clone(), Origin::Local).await.expect("ours"),
            ImportOutcome::NewHead { rolled_back: 1 }
        );
        assert!(
            chain
                .beaten_in_slot(worse_block.id(), genesis.id())
                .await
                .expect("task")
        );
        assert!(!chain.beaten_in_slot(ours.id(), genesis.id()).await.expect("task"));
        drop(chain);
        task.await.expect("task");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reorged_out_transaction_returns_to_the_mempool_and_lands_on_the_new_branch() {
        let spec = spec();
        let (dir, other) = (
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        );
        let alice = Keypair::dev("alice");
        let recent = Arc::new(Recent::default());
        let (chain, task) = task_on(&spec, &alice, dir.path(), &recent);

        // T: alice pays erin; our own block 1 includes it.
        let erin = Keypair::dev("erin").address();
        let body = TxBody {
            from: alice.address(),
            nonce: 0,
            fee: 1,
            kind: TxKind::Transfer { to: erin, amount: 77 },
        };
        let t = Tx::sign(body, &alice, &spec.chain_id);
        assert!(chain.submit_tx(t.clone(), false).await.expect("T accepted"));
        let ours = mine_template(&chain, &alice).await;
        assert!(ours.block().txs.contains(&t));
        assert_eq!(
            chain.import(ours.clone(), Origin::Sync).await.expect("ours"),
            ImportOutcome::NewHead { rolled_back: 0 }
        );
        assert!(
            chain
                .pow_template()
                .await
                .expect("task")
                .expect("template")
                .txs
                .is_empty()
        );

        // A heavier branch without T, mined elsewhere, takes over.
        let mut rival =
            BlockTree::load(spec.clone(), Store::open(other.path(), &spec).expect("store")).expect("rival");
        let branch = mine(&mut rival, &Keypair::dev("bob"), 3);
        for block in branch {
            chain.import(block, Origin::Sync).await.expect("rival block");
        }
        let head = chain.head();
        assert_eq!(head.id, rival.head().id, "the rival branch is the head");
        assert_eq!(
            head.state.account(&erin).expect("read").map(|a| a.balance),
            None,
            "T is off the chain"
        );

        // The switch is in the reorg ring; our lost block stays in the block ring.
        let (reorgs, total) = recent.reorgs();
        assert_eq!(total, 1);
        assert_eq!(
            (reorgs[0].depth, reorgs[0].fork_height(), reorgs[0].old_head),
            (1, 0, ours.id())
        );
        assert!(
            rival.contains(&reorgs[0].new_head),
            "switched to the rival branch"
        );
        assert!(recent.blocks_in(1..=1).iter().any(|b| b.id == ours.id()));

        // T is back in the pool, and the next block on the new branch has it.
        assert_eq!(chain.pending_tx(t.id()).await.expect("task"), Some(t.clone()));
        let next = mine_template(&chain, &alice).await;
        assert!(
            next.block().txs.contains(&t),
            "T was not given back to the mempool"
        );
        chain.import(next, Origin::Sync).await.expect("next");
        let head = chain.head();
        assert_eq!(
            head.state.account(&erin).expect("read").map(|a| a.balance),
            Some(77)
        );
        assert_eq!(
            head.state
                .account(&alice.address())
                .expect("read")
                .map(|a| a.nonce),
            Some(1)
        );

        drop(chain);
        let tree = task.await.expect("task ends with its last handle");
        assert_eq!(tree.head().id, head.id);
    }
}
