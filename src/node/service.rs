//! The chain task: the one owner of the [`Chain`] and the [`Mempool`].
//!
//! Everything that changes them (gossip, sync, the API, the miner and the
//! staker) sends a command through a cloneable [`ChainHandle`] and awaits
//! the reply, so imports are serialised without locks. Readers that only
//! need the head (the API, the producers) watch it through a
//! `tokio::sync::watch` channel and never wait for the task.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use klero_chain::codec;
use klero_chain::ledger::{BlockCtx, LedgerParams};
use klero_chain::produce::{self, PowTemplate};
use klero_chain::types::{Equivocation, TxBody, TxKind};
use klero_chain::validate::MAX_BLOCK_TXS;
use klero_chain::{Address, Keypair, SealedBlock, Tx};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

use super::chain::{Chain, Head, ImportError, Imported};
use super::mempool::{Mempool, MempoolError};
use super::metrics::Metrics;
use crate::p2p::NetworkHandle;

/// Commands queued before senders wait.
const COMMAND_BUFFER: usize = 256;

/// Where a block came from, which decides what happens after import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Gossip: gossipsub forwards it if we accept it.
    Gossip,
    /// A sync response.
    Sync,
    /// Our own miner or staker: we publish it.
    Local,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

enum Command {
    Import {
        block: Box<SealedBlock>,
        origin: Origin,
        reply: oneshot::Sender<Result<Imported, ImportError>>,
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

/// The context transactions are checked in against the head: fees go to
/// the proposer, and a checks-only context credits nobody we know.
fn checks_ctx<'a>(chain: &'a Chain, params: &'a LedgerParams) -> BlockCtx<'a> {
    BlockCtx {
        chain_id: &chain.spec().chain_id,
        epoch: chain.head().epoch,
        proposer: Address([0; 32]),
        params,
    }
}

/// The chain task stopped (the node is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the chain task has stopped")]
pub struct Stopped;

/// A cloneable way to talk to the chain task.
#[derive(Clone, Debug)]
pub struct ChainHandle {
    commands: mpsc::Sender<Command>,
    head: watch::Receiver<Head>,
}

impl ChainHandle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(make(reply)).await.map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// Imports a block.
    ///
    /// # Errors
    ///
    /// [`Stopped`] if the chain task has ended.
    pub async fn import(
        &self,
        block: SealedBlock,
        origin: Origin,
    ) -> Result<Result<Imported, ImportError>, Stopped> {
        self.ask(|reply| Command::Import {
            block: Box::new(block),
            origin,
            reply,
        })
        .await
    }

    /// Offers a transaction to the mempool; `publish` gossips it if new.
    ///
    /// # Errors
    ///
    /// [`Stopped`] if the chain task has ended.
    pub async fn submit_tx(&self, tx: Tx, publish: bool) -> Result<Result<bool, MempoolError>, Stopped> {
        self.ask(|reply| Command::SubmitTx { tx, publish, reply }).await
    }

    /// A PoW template on the head for the node's key.
    ///
    /// # Errors
    ///
    /// [`Stopped`] if the chain task has ended.
    pub async fn pow_template(&self) -> Result<Option<PowTemplate>, Stopped> {
        self.ask(|reply| Command::PowTemplate { reply }).await
    }

    /// The node's block for `slot` on the head, if its key wins the slot.
    ///
    /// # Errors
    ///
    /// [`Stopped`] if the chain task has ended.
    pub async fn propose_pos(&self, slot: u64) -> Result<Option<SealedBlock>, Stopped> {
        self.ask(|reply| Command::ProposePos { slot, reply }).await
    }

    /// Whether a block is stored.
    ///
    /// # Errors
    ///
    /// [`Stopped`] if the chain task has ended.
    pub async fn contains(&self, id: klero_chain::Hash) -> Result<bool, Stopped> {
        self.ask(|reply| Command::Contains { id, reply }).await
    }

    /// The current head.
    pub fn head(&self) -> Head {
        self.head.borrow().clone()
    }

    /// A receiver that wakes on every head change.
    pub fn watch_head(&self) -> watch::Receiver<Head> {
        self.head.clone()
    }
}

/// The chain task's state.
pub struct ChainService {
    chain: Chain,
    mempool: Mempool,
    params: LedgerParams,
    key: Option<Keypair>,
    net: NetworkHandle,
    metrics: Arc<Metrics>,
    head_tx: watch::Sender<Head>,
    commands: mpsc::Receiver<Command>,
}

impl ChainService {
    /// The task and its handle.
    pub fn new(
        chain: Chain,
        mempool: Mempool,
        key: Option<Keypair>,
        net: NetworkHandle,
        metrics: Arc<Metrics>,
    ) -> (ChainService, ChainHandle) {
        let (tx, rx) = mpsc::channel(COMMAND_BUFFER);
        let (head_tx, head_rx) = watch::channel(chain.head().clone());
        metrics.height.store(chain.head().meta.height, Ordering::Relaxed);
        let params = chain.spec().ledger_params();
        let service = ChainService {
            chain,
            mempool,
            params,
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
        (service, handle)
    }

    /// Serves commands until every handle is dropped.
    pub async fn run(mut self) {
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
                    let _ = reply.send(self.chain.contains(&id));
                }
            }
        }
    }

    async fn import(&mut self, block: SealedBlock, origin: Origin) -> Result<Imported, ImportError> {
        let before = self.chain.head().id;
        let bytes = (origin == Origin::Local).then(|| codec::encode(block.block()));
        let timestamp = block.header().timestamp_ms;
        let id = block.id();
        // Validation is CPU work (signatures, VRF, state root): keep it off
        // the async scheduler's toes.
        let result = tokio::task::block_in_place(|| self.chain.import(block, now_ms()));
        match &result {
            Ok(Imported::NewHead { .. } | Imported::SideBranch) => {
                self.metrics.blocks_imported.fetch_add(1, Ordering::Relaxed);
                if origin == Origin::Gossip {
                    let latency = now_ms().saturating_sub(timestamp) as f64 / 1000.0;
                    self.metrics.gossip_latency(latency);
                }
            }
            Ok(Imported::Known | Imported::Orphan) => {}
            Err(ImportError::Invalid(error)) => {
                self.metrics.reject(error.reason());
                warn!(block = %id.short(), ?origin, %error, "block rejected");
            }
            Err(ImportError::Store(error)) => warn!(block = %id.short(), %error, "store failed"),
        }
        if let Ok(Imported::NewHead { rolled_back }) = result
            && rolled_back > 0
        {
            self.metrics.reorg(rolled_back);
        }
        if self.chain.head().id != before {
            self.on_new_head();
        }
        for evidence in self.chain.take_equivocations() {
            self.submit_evidence(evidence).await;
        }
        if let (Some(bytes), Ok(Imported::NewHead { .. })) = (bytes, &result) {
            self.metrics.blocks_proposed.fetch_add(1, Ordering::Relaxed);
            info!(height = self.chain.head().meta.height, block = %id.short(), "proposed");
            if let Err(error) = self.net.publish_block(bytes).await {
                warn!(%error, "could not gossip our block");
            }
        }
        result
    }

    fn on_new_head(&mut self) {
        let head = self.chain.head().clone();
        self.mempool
            .revalidate(&head.state, &checks_ctx(&self.chain, &self.params));
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
        let body = TxBody {
            from: key.address(),
            nonce: self.mempool.next_nonce(&key.address(), &self.chain.head().state),
            fee: self.params.min_fee,
            kind: TxKind::Evidence(Box::new(evidence)),
        };
        let tx = Tx::sign(body, &key, &self.chain.spec().chain_id);
        match self.submit_tx(tx, true).await {
            Ok(_) => info!("submitted equivocation evidence"),
            Err(error) => warn!(%error, "could not submit equivocation evidence"),
        }
    }

    async fn submit_tx(&mut self, tx: Tx, publish: bool) -> Result<bool, MempoolError> {
        let bytes = publish.then(|| codec::encode(&tx));
        let result = self.mempool.insert(
            tx,
            &self.chain.head().state,
            &checks_ctx(&self.chain, &self.params),
        );
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
        self.chain.with_head_parent(|parent| {
            produce::pow_template(self.chain.spec(), parent, &candidates, key, now_ms())
        })
    }

    fn propose_pos(&self, slot: u64) -> Option<SealedBlock> {
        let key = self.key.as_ref()?;
        let spec = self.chain.spec();
        self.chain.with_head_parent(|parent| {
            let claim = produce::pos_claim(spec, parent, key, slot)?;
            let candidates = self.mempool.candidates(MAX_BLOCK_TXS);
            produce::pos_block(spec, parent, key, &claim, &candidates).map(klero_chain::Block::seal)
        })
    }
}
