//! The chain task: the one owner of the [`BlockTree`] and the [`Mempool`].
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

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use klero_chain::codec;
use klero_chain::ledger::BlockCtx;
use klero_chain::produce::{self, PowTemplate};
use klero_chain::types::{Equivocation, TxBody, TxKind};
use klero_chain::validate::{BlockError, MAX_BLOCK_TXS};
use klero_chain::{Address, Keypair, SealedBlock, Tx};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use super::block_tree::{BlockTree, Head, ImportError, ImportOutcome};
use super::mempool::{Mempool, MempoolError};
use super::metrics::Metrics;
use super::store::StoreError;
use crate::p2p::NetworkHandle;

/// Commands queued before senders wait.
const COMMAND_BUFFER: usize = 256;

/// Where a block came from, which decides what happens after import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Gossip: gossipsub forwards it if we accept it.
    Gossip,
    /// A sync response.
    Sync,
    /// Our own miner or staker: we publish it.
    Local,
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
    SubmitTx {
        tx: Tx,
        publish: bool,
        reply: oneshot::Sender<Result<bool, MempoolError>>,
    },
    PowTemplate {
        reply: oneshot::Sender<Option<PowTemplate>>,
    },
    ProposePos {
        slot: u64,
        reply: oneshot::Sender<Option<SealedBlock>>,
    },
    Contains {
        id: klero_chain::Hash,
        reply: oneshot::Sender<bool>,
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

    /// A PoW template on the head for the node's key.
    ///
    /// # Errors
    ///
    /// [`ChainError::Stopped`] if the chain task has ended.
    pub(crate) async fn pow_template(&self) -> Result<Option<PowTemplate>, ChainError> {
        self.ask(|reply| Command::PowTemplate { reply }).await
    }

    /// The node's block for `slot` on the head, if its key wins the slot.
    ///
    /// # Errors
    ///
    /// [`ChainError::Stopped`] if the chain task has ended.
    pub(crate) async fn propose_pos(&self, slot: u64) -> Result<Option<SealedBlock>, ChainError> {
        self.ask(|reply| Command::ProposePos { slot, reply }).await
    }

    /// Whether a block is stored.
    ///
    /// # Errors
    ///
    /// [`ChainError::Stopped`] if the chain task has ended.
    pub(crate) async fn contains(&self, id: klero_chain::Hash) -> Result<bool, ChainError> {
        self.ask(|reply| Command::Contains { id, reply }).await
    }

    /// The current head.
    pub(crate) fn head(&self) -> Head {
        self.head.borrow().clone()
    }

    /// A receiver that wakes on every head change.
    pub(crate) fn watch_head(&self) -> watch::Receiver<Head> {
        self.head.clone()
    }
}

/// The chain task's state.
pub(crate) struct ChainTask {
    tree: BlockTree,
    mempool: Mempool,
    key: Option<Keypair>,
    net: NetworkHandle,
    metrics: Arc<Metrics>,
    head_tx: watch::Sender<Head>,
    commands: mpsc::Receiver<Command>,
}

impl ChainTask {
    /// The task and its handle.
    pub(crate) fn new(
        tree: BlockTree,
        mempool: Mempool,
        key: Option<Keypair>,
        net: NetworkHandle,
        metrics: Arc<Metrics>,
    ) -> (ChainTask, ChainHandle) {
        let (tx, rx) = mpsc::channel(COMMAND_BUFFER);
        let (head_tx, head_rx) = watch::channel(tree.head().clone());
        metrics.height.store(tree.head().meta.height, Ordering::Relaxed);
        let task = ChainTask {
            tree,
            mempool,
            key,
            net,
            metrics,
            head_tx,
            commands: rx,
        };
        let handle = ChainHandle {
            commands: tx,
            head: head_rx,
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
                Command::SubmitTx { tx, publish, reply } => {
                    let result = self.submit_tx(tx, publish).await;
                    let _ = reply.send(result);
                }
                Command::PowTemplate { reply } => {
                    let _ = reply.send(self.pow_template());
                }
                Command::ProposePos { slot, reply } => {
                    let _ = reply.send(self.propose_pos(slot));
                }
                Command::Contains { id, reply } => {
                    let _ = reply.send(self.tree.contains(&id));
                }
            }
        }
        self.tree
    }

    async fn import(&mut self, block: SealedBlock, origin: Origin) -> Result<ImportOutcome, ImportError> {
        let before = self.tree.head().id;
        let bytes = (origin == Origin::Local).then(|| codec::encode(block.block()));
        let timestamp = block.header().timestamp_ms;
        let id = block.id();
        // Validation is CPU work (signatures, VRF, state root): keep it off
        // the async scheduler's toes.
        let result = tokio::task::block_in_place(|| self.tree.import(block, now_ms()));
        match &result {
            Ok(ImportOutcome::NewHead { .. } | ImportOutcome::SideBranch) => {
                self.metrics.blocks_imported.fetch_add(1, Ordering::Relaxed);
                if origin == Origin::Gossip {
                    let latency = now_ms().saturating_sub(timestamp) as f64 / 1000.0;
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
        if let Ok(ImportOutcome::NewHead { rolled_back }) = result
            && rolled_back > 0
        {
            self.metrics.reorg(rolled_back);
        }
        if self.tree.head().id != before {
            self.on_new_head();
        }
        for evidence in self.tree.take_equivocations() {
            self.submit_evidence(evidence).await;
        }
        if let (Some(bytes), Ok(ImportOutcome::NewHead { .. })) = (bytes, &result) {
            self.metrics.blocks_proposed.fetch_add(1, Ordering::Relaxed);
            info!(height = self.tree.head().meta.height, block = %id.short(), "proposed");
            if let Err(error) = self.net.publish_block(bytes).await {
                warn!(%error, "could not gossip our block");
            }
        }
        result
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
                let back = txs
                    .into_iter()
                    .filter(|tx| {
                        matches!(
                            self.mempool.insert(tx.clone(), head.state.as_ref(), &ctx),
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

    fn propose_pos(&self, slot: u64) -> Option<SealedBlock> {
        let key = self.key.as_ref()?;
        let spec = self.tree.spec();
        self.tree.with_head_parent(|parent, state| {
            let claim = produce::pos_claim(spec, parent, state, key, slot)?;
            let candidates = self.mempool.candidates(MAX_BLOCK_TXS);
            produce::pos_block(spec, parent, state, key, &claim, &candidates).map(klero_chain::Block::seal)
        })
    }
}

#[cfg(test)]
mod tests {
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reorged_out_transaction_returns_to_the_mempool_and_lands_on_the_new_branch() {
        let spec = spec();
        let (dir, other) = (
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        );
        let tree =
            BlockTree::load(spec.clone(), Store::open(dir.path(), &spec).expect("store")).expect("tree");
        let alice = Keypair::dev("alice");
        let (task, chain) = ChainTask::new(
            tree,
            Mempool::new(DEFAULT_CAPACITY),
            Some(alice.clone()),
            lone_network(),
            Arc::new(Metrics::default()),
        );
        let task = tokio::spawn(task.run());

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

        // T is back in the pool, and the next block on the new branch has it.
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
