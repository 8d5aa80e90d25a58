//! Transactions waiting for a block.
//!
//! Admission costs O(1) in the size of the ledger: nothing copies the head
//! state. Each sender with pending transactions has an *overlay*: the
//! [`Writes`] its pending transactions make, laid over the head state as a
//! [`StateOverlay`] at each use, with those transactions applied by the
//! ledger's own [`StateOverlay::apply_tx`], so the pool and blocks never
//! disagree. Reads fall through to the head (by key; unbonding entries by
//! the epochs they can have), never a copy of it. A new transaction is
//! checked in this order, cheapest first:
//!
//! 1. already pooled, or its sender already has [`MAX_PENDING_PER_SENDER`];
//! 2. the pool is full and the fee cannot evict anything;
//! 3. the ledger rules on the sender's overlay: unknown sender, nonce
//!    (exactly the next one after the head's and the pool's), fee, balance
//!    and the kind's own rules: an unfunded sender is refused here, before
//!    any signature is checked;
//! 4. the signature (and a stake's proof of possession), except for a
//!    transaction a reorg took off the best chain
//!    ([`Mempool::insert_verified`]): its block's import checked it.
//!
//! Gossip hands the pool what arrived together ([`Mempool::insert_batch`]):
//! there the signatures of a batch are checked together, after steps 1
//! and 2 and the unknown-sender part of 3 and before the rest, at about
//! half the cost per signature. ZIP 215 (see `klero_chain::keys`) makes a batch
//! accept exactly what one-by-one checks accept, so a batch never admits a
//! transaction a block would refuse.
//!
//! A rejected transaction leaves an overlay as it was (the ledger's
//! contract), except after a bad signature, where the overlay is rebuilt
//! from the head (a replay of the sender's pending transactions; the peer
//! that relayed it gets a strike).
//!
//! Each overlay also remembers the head entries its transactions read and
//! the values they read ([`Recording`]). After every new head (or reorg)
//! [`Mempool::revalidate`] looks those entries up in the new head: a
//! sender whose entries all hold the same values (under the same block
//! context) would replay to the same overlay, so it keeps it; only the
//! others are rebuilt over the new head, keeping each sender's longest run
//! of transactions that still applies (per transaction a few key lookups
//! and one `apply_tx` writing a handful of entries, never a state copy).
//! Signatures are never checked again. A head that cannot be read drops
//! the sender's transactions (gossip or the wallet offer them again).
//!
//! When the pool is full, a better-paying transaction evicts the cheapest
//! one that no other pending transaction depends on (the last of its
//! sender's).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::sync::Mutex;

use klero_chain::epoch::Staker;
use klero_chain::keys::KeyError;
use klero_chain::ledger::{ApplyError, BlockCtx, LedgerParams, TxError, verify_each, verify_tx};
use klero_chain::state::{CommittedState, StateError, StateOverlay, StateRead, StateValue, Writes};
use klero_chain::state_tree::{Node, StateKey};
use klero_chain::{Address, Hash, Tx};

/// Default most transactions held.
pub const DEFAULT_CAPACITY: usize = 10_000;
/// Most transactions one sender may have waiting: one account cannot fill
/// the pool, and replaying a sender's run stays short.
pub const MAX_PENDING_PER_SENDER: usize = 64;

/// Why a transaction was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MempoolError {
    /// The signature does not verify.
    #[error("bad signature: {0}")]
    Signature(KeyError),
    /// The ledger refuses it against the head state.
    #[error(transparent)]
    Invalid(#[from] TxError),
    /// The pool is full of transactions paying at least as much.
    #[error("mempool is full ({0} transactions) and the fee is too low to evict one")]
    Full(usize),
    /// The sender already has as many transactions waiting as it may.
    #[error("the sender already has {0} transactions waiting")]
    TooManyPending(usize),
    /// The head state could not be read (the node's fault, not the sender's).
    #[error(transparent)]
    State(#[from] StateError),
}

impl From<ApplyError<TxError>> for MempoolError {
    fn from(error: ApplyError<TxError>) -> Self {
        match error {
            ApplyError::Invalid(error) => MempoolError::Invalid(error),
            ApplyError::State(error) => MempoolError::State(error),
        }
    }
}

impl MempoolError {
    /// Whether the sender cannot pay: unknown, or short of balance. Such a
    /// transaction costs nothing to send and nothing to refuse; a peer that
    /// relays many is rate-limited.
    pub(crate) fn is_unfunded(&self) -> bool {
        matches!(
            self,
            MempoolError::Invalid(TxError::UnknownAccount(_) | TxError::InsufficientBalance { .. })
        )
    }
}

/// The head entries a sender's transactions read, with the values they
/// read (the first read of each key that reached the head); `None` once a
/// read could not be noted by key.
type Reads = Option<BTreeMap<StateKey, Option<StateValue>>>;

/// A head state that notes what is read from it, so a later head can be
/// asked whether it holds the same values ([`Pending::reads_unchanged`]).
struct Recording<'h> {
    head: &'h dyn CommittedState,
    reads: Mutex<Reads>,
}

impl<'h> Recording<'h> {
    /// Noting reads from `head`, after those already in `reads`.
    fn new(head: &'h dyn CommittedState, reads: Reads) -> Recording<'h> {
        Recording {
            head,
            reads: Mutex::new(reads),
        }
    }

    fn into_reads(self) -> Reads {
        self.reads.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    fn note(&self, note: impl FnOnce(&mut Reads)) {
        note(&mut self.reads.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

impl StateRead for Recording<'_> {
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>, StateError> {
        let value = self.head.get(key)?;
        self.note(|reads| {
            if let Some(reads) = reads {
                reads.entry(*key).or_insert_with(|| value.clone());
            }
        });
        Ok(value)
    }

    // The ledger applies a transaction with point reads only; should it
    // ever scan, the sender is simply replayed at every head.
    fn unbonding_due(&self, epoch: u64) -> Result<Vec<(u64, Address, u64)>, StateError> {
        self.note(|reads| *reads = None);
        self.head.unbonding_due(epoch)
    }

    fn stakers(&self) -> Result<Vec<Staker>, StateError> {
        self.note(|reads| *reads = None);
        self.head.stakers()
    }
}

impl CommittedState for Recording<'_> {
    fn root(&self) -> Hash {
        self.head.root()
    }

    fn node(&self, hash: &Hash) -> Result<Option<Node>, StateError> {
        self.head.node(hash)
    }
}

/// One sender's waiting transactions.
#[derive(Debug)]
struct Pending {
    /// By nonce, consecutive from the head's.
    txs: BTreeMap<u64, Tx>,
    /// What `txs` write over the head state.
    writes: Writes,
    /// What `txs` read from the head state.
    reads: Reads,
}

impl Default for Pending {
    fn default() -> Pending {
        Pending {
            txs: BTreeMap::new(),
            writes: Writes::new(),
            reads: Some(BTreeMap::new()),
        }
    }
}

impl Pending {
    /// The overlay of `txs` on `head`, keeping the longest run from the
    /// head's nonce that still applies; returns the ids of the rest, which
    /// are dropped.
    fn rebuild(&mut self, head: &dyn CommittedState, ctx: &BlockCtx<'_>) -> Vec<Hash> {
        let recording = Recording::new(head, Some(BTreeMap::new()));
        let mut overlay = StateOverlay::new(&recording);
        let mut dropped = Vec::new();
        let mut broken = false;
        self.txs.retain(|nonce, tx| {
            if !broken {
                // An unreadable head breaks the run like a failed apply.
                let included = overlay.account(&tx.body.from).map(|a| a.map_or(0, |a| a.nonce));
                broken = match included {
                    Ok(included) if *nonce < included => {
                        dropped.push(tx.id());
                        return false;
                    }
                    Ok(_) => overlay.apply_tx(tx, ctx).is_err(),
                    Err(_) => true,
                };
                if !broken {
                    return true;
                }
            }
            dropped.push(tx.id());
            false
        });
        self.writes = overlay.into_writes();
        self.reads = recording.into_reads();
        dropped
    }

    /// Applies `tx` after the others (a rejected one writes nothing; what
    /// it read is still noted, which can only cost a replay later).
    fn apply(&mut self, tx: &Tx, head: &dyn CommittedState, ctx: &BlockCtx<'_>) -> Result<(), MempoolError> {
        let recording = Recording::new(head, self.reads.take());
        let mut overlay = StateOverlay::with_writes(&recording, std::mem::take(&mut self.writes));
        let applied = overlay.apply_tx(tx, ctx);
        self.writes = overlay.into_writes();
        self.reads = recording.into_reads();
        applied.map_err(MempoolError::from)
    }

    /// Whether `head` holds every entry `txs` read with the value they
    /// read: then replaying them over `head` (in the same block context)
    /// gives the same overlay, read for read.
    fn reads_unchanged(&self, head: &dyn CommittedState) -> bool {
        self.reads.as_ref().is_some_and(|reads| {
            reads
                .iter()
                .all(|(key, value)| matches!(head.get(key), Ok(now) if now == *value))
        })
    }

    /// The sender's overlay over `head`.
    fn overlay<'h>(&self, head: &'h dyn CommittedState) -> StateOverlay<'h> {
        StateOverlay::with_writes(head, self.writes.clone())
    }

    /// The fee and nonce of the last transaction, which nothing pending
    /// depends on.
    fn last(&self) -> Option<(u64, u64)> {
        self.txs.last_key_value().map(|(nonce, tx)| (tx.body.fee, *nonce))
    }
}

/// The head and block context every sender's overlay is over.
#[derive(Debug, PartialEq, Eq)]
struct Basis {
    root: Hash,
    chain_id: String,
    epoch: u64,
    proposer: Address,
    params: LedgerParams,
}

impl Basis {
    fn of(head: &dyn CommittedState, ctx: &BlockCtx<'_>) -> Basis {
        Basis {
            root: head.root(),
            chain_id: ctx.chain_id().to_owned(),
            epoch: ctx.epoch(),
            proposer: ctx.proposer(),
            params: ctx.params(),
        }
    }

    fn is(&self, head: &dyn CommittedState, ctx: &BlockCtx<'_>) -> bool {
        self.root == head.root() && self.same_ctx(ctx)
    }

    fn same_ctx(&self, ctx: &BlockCtx<'_>) -> bool {
        self.chain_id == ctx.chain_id()
            && self.epoch == ctx.epoch()
            && self.proposer == ctx.proposer()
            && self.params == ctx.params()
    }
}

/// The pending transactions, by sender and nonce.
#[derive(Debug)]
pub struct Mempool {
    by_sender: BTreeMap<Address, Pending>,
    /// Every waiting transaction's id, with where it waits (sender, nonce).
    ids: HashMap<Hash, (Address, u64)>,
    /// Each sender's last transaction as (fee, sender, nonce): the
    /// eviction candidates, cheapest first.
    last_in_line: BTreeSet<(u64, Address, u64)>,
    capacity: usize,
    /// What every overlay is over, if one head and context: only then can
    /// [`Mempool::revalidate`] keep the overlays whose reads still hold.
    basis: Option<Basis>,
}

impl Mempool {
    /// An empty pool holding at most `capacity` transactions.
    pub fn new(capacity: usize) -> Mempool {
        Mempool {
            by_sender: BTreeMap::new(),
            ids: HashMap::new(),
            last_in_line: BTreeSet::new(),
            capacity,
            basis: None,
        }
    }

    /// How many transactions wait.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The waiting transaction with this id.
    pub(crate) fn get(&self, id: &Hash) -> Option<&Tx> {
        let (sender, nonce) = self.ids.get(id)?;
        self.by_sender.get(sender)?.txs.get(nonce)
    }

    /// The nonce `sender`'s next transaction needs: after the head state's
    /// and the pool's.
    ///
    /// # Errors
    ///
    /// If the head state cannot be read.
    pub(crate) fn next_nonce(&self, sender: &Address, head: &dyn CommittedState) -> Result<u64, StateError> {
        let account = match self.by_sender.get(sender) {
            Some(pending) => pending.overlay(head).account(sender)?,
            None => head.account(sender)?,
        };
        Ok(account.map_or(0, |a| a.nonce))
    }

    /// Adds `tx` if it applies after the sender's pending ones. Returns
    /// false if it was already here. The checks run cheapest first (see
    /// the module docs).
    ///
    /// # Errors
    ///
    /// Why it does not apply, that its signature does not verify, or that
    /// the pool (or the sender's share of it) is full, or that the head
    /// state cannot be read.
    pub fn insert(
        &mut self,
        tx: Tx,
        head: &dyn CommittedState,
        ctx: &BlockCtx<'_>,
    ) -> Result<bool, MempoolError> {
        self.admit(tx, head, ctx, true)
    }

    /// [`Mempool::insert`] for each of `txs`, in order, with the signatures
    /// checked together ([`verify_each`]: batches, about twice as fast per
    /// signature). What the pool alone refuses (a duplicate, a sender's
    /// full share, a full pool the fee cannot evict from, judged as the
    /// pool stands before the batch) and a sender the pool and the head do
    /// not know are answered before any signature is checked; the rest go
    /// through `insert`'s checks with the signature already known, so a
    /// transaction with a bad signature is refused as such even where
    /// `insert` would have found a state rule it breaks first.
    pub fn insert_batch(
        &mut self,
        txs: Vec<Tx>,
        head: &dyn CommittedState,
        ctx: &BlockCtx<'_>,
    ) -> Vec<Result<bool, MempoolError>> {
        let mut results: Vec<Result<bool, MempoolError>> = txs.iter().map(|_| Ok(false)).collect();
        let mut known = Vec::with_capacity(txs.len());
        for (i, tx) in txs.into_iter().enumerate() {
            let sender = tx.body.from;
            match self.pool_checks(&tx.id(), &tx) {
                Ok(Some(_)) => {}
                Ok(None) => continue,
                Err(error) => {
                    results[i] = Err(error);
                    continue;
                }
            }
            if !self.by_sender.contains_key(&sender) {
                match head.account(&sender) {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        results[i] = Err(MempoolError::Invalid(TxError::UnknownAccount(sender)));
                        continue;
                    }
                    Err(error) => {
                        results[i] = Err(error.into());
                        continue;
                    }
                }
            }
            known.push((i, tx));
        }
        let checks = verify_each(
            &known.iter().map(|(_, tx)| tx).collect::<Vec<_>>(),
            ctx.chain_id(),
        );
        for ((i, tx), checked) in known.into_iter().zip(checks) {
            results[i] = match checked {
                Ok(()) => self.admit(tx, head, ctx, false),
                Err(TxError::BadSignature(error)) => Err(MempoolError::Signature(error)),
                Err(error) => Err(MempoolError::Invalid(error)),
            };
        }
        results
    }

    /// [`Mempool::insert`] of a transaction whose signature (and proof of
    /// possession) was checked when the block that held it was imported:
    /// one a reorg took off the best chain.
    ///
    /// # Errors
    ///
    /// As [`Mempool::insert`], but never a bad signature.
    pub(crate) fn insert_verified(
        &mut self,
        tx: Tx,
        head: &dyn CommittedState,
        ctx: &BlockCtx<'_>,
    ) -> Result<bool, MempoolError> {
        self.admit(tx, head, ctx, false)
    }

    fn admit(
        &mut self,
        tx: Tx,
        head: &dyn CommittedState,
        ctx: &BlockCtx<'_>,
        verify: bool,
    ) -> Result<bool, MempoolError> {
        let (id, sender) = (tx.id(), tx.body.from);
        let Some(evict) = self.pool_checks(&id, &tx)? else {
            return Ok(false);
        };
        if self.by_sender.is_empty() {
            self.basis = Some(Basis::of(head, ctx));
        } else if self.basis.as_ref().is_some_and(|basis| !basis.is(head, ctx)) {
            // Overlays over two heads: the next head change replays all.
            self.basis = None;
        }
        let pending = self.by_sender.entry(sender).or_default();
        if let Err(error) = pending.apply(&tx, head, ctx) {
            if pending.txs.is_empty() {
                self.by_sender.remove(&sender);
            }
            return Err(error);
        }
        if verify && let Err(error) = verify_tx(&tx, ctx.chain_id()) {
            // Only `tx` had changed the overlay: the replay keeps the rest.
            for id in pending.rebuild(head, ctx) {
                self.ids.remove(&id);
            }
            if pending.txs.is_empty() {
                self.by_sender.remove(&sender);
            }
            return Err(match error {
                TxError::BadSignature(error) => MempoolError::Signature(error),
                error => MempoolError::Invalid(error),
            });
        }
        if let Some((fee, nonce)) = pending.last() {
            self.last_in_line.remove(&(fee, sender, nonce));
        }
        self.last_in_line.insert((tx.body.fee, sender, tx.body.nonce));
        self.ids.insert(id, (sender, tx.body.nonce));
        pending.txs.insert(tx.body.nonce, tx);
        if let Some((other, nonce)) = evict {
            self.evict(other, nonce, head, ctx);
        }
        Ok(true)
    }

    /// Steps 1 and 2 of the module docs, from the pool alone: `None` if
    /// `tx` (whose id is `id`) is here already, else what it must evict to
    /// fit (if the pool is full).
    fn pool_checks(&self, id: &Hash, tx: &Tx) -> Result<Option<Option<(Address, u64)>>, MempoolError> {
        if self.ids.contains_key(id) {
            return Ok(None);
        }
        let sender = tx.body.from;
        let waiting = self.by_sender.get(&sender).map_or(0, |p| p.txs.len());
        if waiting >= MAX_PENDING_PER_SENDER {
            return Err(MempoolError::TooManyPending(waiting));
        }
        if self.ids.len() >= self.capacity {
            return Ok(Some(Some(self.eviction_for(tx.body.fee, &sender)?)));
        }
        Ok(Some(None))
    }

    /// The cheapest last-in-line transaction of another sender, if it pays
    /// less than `fee`.
    fn eviction_for(&self, fee: u64, sender: &Address) -> Result<(Address, u64), MempoolError> {
        self.last_in_line
            .iter()
            .take_while(|(cheapest, _, _)| *cheapest < fee)
            .find(|(_, other, _)| other != sender)
            .map(|(_, other, nonce)| (*other, *nonce))
            .ok_or(MempoolError::Full(self.ids.len()))
    }

    /// Drops `sender`'s last transaction, which nothing depends on.
    fn evict(&mut self, sender: Address, nonce: u64, head: &dyn CommittedState, ctx: &BlockCtx<'_>) {
        let Some(pending) = self.by_sender.get_mut(&sender) else {
            return;
        };
        if let Some(tx) = pending.txs.remove(&nonce) {
            self.ids.remove(&tx.id());
            self.last_in_line.remove(&(tx.body.fee, sender, nonce));
        }
        // The overlay had it applied: replay the rest, which still applies.
        for id in pending.rebuild(head, ctx) {
            self.ids.remove(&id);
        }
        match pending.last() {
            Some((fee, last)) => {
                self.last_in_line.insert((fee, sender, last));
            }
            None => {
                self.by_sender.remove(&sender);
            }
        }
    }

    /// Replays the pool against a new head state: drops what the chain now
    /// includes, then keeps for each sender the longest run of transactions
    /// that still applies. A sender whose transactions read only entries
    /// the new head holds unchanged keeps its overlay without a replay.
    /// Signatures are not checked again.
    pub fn revalidate(&mut self, head: &dyn CommittedState, ctx: &BlockCtx<'_>) {
        let same_ctx = self.basis.as_ref().is_some_and(|basis| basis.same_ctx(ctx));
        self.by_sender.retain(|sender, pending| {
            if same_ctx && pending.reads_unchanged(head) {
                return true;
            }
            let before = pending.last();
            for id in pending.rebuild(head, ctx) {
                self.ids.remove(&id);
            }
            let after = pending.last();
            if before != after {
                if let Some((fee, nonce)) = before {
                    self.last_in_line.remove(&(fee, *sender, nonce));
                }
                if let Some((fee, nonce)) = after {
                    self.last_in_line.insert((fee, *sender, nonce));
                }
            }
            !pending.txs.is_empty()
        });
        self.basis = Some(Basis::of(head, ctx));
    }

    /// Up to `max` transactions for a block: each sender's in nonce order,
    /// senders interleaved by the fee of their next transaction (ties go to
    /// the lower address).
    pub(crate) fn candidates(&self, max: usize) -> Vec<Tx> {
        let mut queues: Vec<_> = self
            .by_sender
            .values()
            .map(|pending| pending.txs.values().peekable())
            .collect();
        let mut best: BinaryHeap<(u64, Reverse<usize>)> = queues
            .iter_mut()
            .enumerate()
            .filter_map(|(i, q)| q.peek().map(|tx| (tx.body.fee, Reverse(i))))
            .collect();
        let mut out = Vec::new();
        while out.len() < max {
            let Some((_, Reverse(i))) = best.pop() else { break };
            out.extend(queues[i].next().cloned());
            if let Some(tx) = queues[i].peek() {
                best.push((tx.body.fee, Reverse(i)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use klero_chain::state::MemState;
    use klero_chain::types::{TxBody, TxKind};
    use klero_chain::{ChainSpec, Keypair};

    use super::*;

    const CHAIN: &str = "klero-pos-dev";

    fn setup() -> (MemState, LedgerParams) {
        let spec = ChainSpec::from_toml(include_str!("../../testnet/pos.toml")).expect("spec");
        (spec.genesis_state(), spec.ledger_params())
    }

    /// `state` after `tx`, as a block would leave it.
    fn apply(state: &mut MemState, tx: &Tx, params: &LedgerParams) {
        let mut overlay = StateOverlay::new(state);
        overlay.apply_tx(tx, &ctx(params)).expect("apply");
        let set = overlay.finish().expect("finish");
        state.apply(&set).expect("state");
    }

    fn ctx(params: &LedgerParams) -> BlockCtx<'static> {
        BlockCtx::new(CHAIN, 0, Address([0; 32]), *params)
    }

    fn transfer(from: &str, nonce: u64, fee: u64, amount: u64) -> Tx {
        transfer_to(from, "zed", nonce, fee, amount)
    }

    fn transfer_to(from: &str, to: &str, nonce: u64, fee: u64, amount: u64) -> Tx {
        let key = Keypair::dev(from);
        let body = TxBody {
            from: key.address(),
            nonce,
            fee,
            kind: TxKind::Transfer {
                to: Keypair::dev(to).address(),
                amount,
            },
        };
        Tx::sign(body, &key, CHAIN)
    }

    #[test]
    fn accepts_in_nonce_order_and_refuses_gaps_and_duplicates() {
        let (state, params) = setup();
        let mut pool = Mempool::new(10);
        assert_eq!(
            pool.insert(transfer("alice", 0, 1, 5), &state, &ctx(&params)),
            Ok(true)
        );
        assert_eq!(
            pool.insert(transfer("alice", 0, 1, 5), &state, &ctx(&params)),
            Ok(false)
        );
        assert_eq!(
            pool.insert(transfer("alice", 1, 1, 5), &state, &ctx(&params)),
            Ok(true)
        );
        let gap = pool.insert(transfer("alice", 5, 1, 5), &state, &ctx(&params));
        assert!(
            matches!(gap, Err(MempoolError::Invalid(TxError::BadNonce { .. }))),
            "{gap:?}"
        );
        let broke = pool.insert(transfer("alice", 2, 1, u64::MAX / 2), &state, &ctx(&params));
        assert!(matches!(broke, Err(MempoolError::Invalid(_))), "{broke:?}");
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.next_nonce(&Keypair::dev("alice").address(), &state), Ok(2));
    }

    #[test]
    fn refuses_a_forged_signature_and_keeps_the_senders_run() {
        let (state, params) = setup();
        let mut pool = Mempool::new(10);
        pool.insert(transfer("alice", 0, 1, 5), &state, &ctx(&params))
            .expect("a0");
        let mut forged = transfer("alice", 1, 1, 5);
        forged.body.fee = 2;
        let err = pool.insert(forged, &state, &ctx(&params));
        assert!(matches!(err, Err(MempoolError::Signature(_))), "{err:?}");
        // The forgery's effects were undone: nonce 1 is still free.
        assert_eq!(
            pool.insert(transfer("alice", 1, 1, 5), &state, &ctx(&params)),
            Ok(true)
        );
        assert_eq!(pool.len(), 2);
    }

    #[test]
    fn an_unfunded_sender_is_refused_before_its_signature_is_checked() {
        let (state, params) = setup();
        let mut pool = Mempool::new(10);
        // A forged signature from an account the chain has never seen: the
        // account check answers first.
        let mut tx = transfer("nobody", 0, 1, 5);
        tx.body.fee = 2;
        let err = pool.insert(tx, &state, &ctx(&params)).expect_err("unfunded");
        assert!(
            matches!(err, MempoolError::Invalid(TxError::UnknownAccount(_))),
            "{err:?}"
        );
        assert!(err.is_unfunded());
        let broke = pool
            .insert(transfer("alice", 0, 1, u64::MAX - 1), &state, &ctx(&params))
            .expect_err("broke");
        assert!(broke.is_unfunded(), "{broke:?}");
        assert!(pool.is_empty());
    }

    #[test]
    fn a_batch_answers_each_transaction_as_insert_does() {
        let (state, params) = setup();
        let forge = |mut tx: Tx| {
            tx.body.fee += 1;
            tx
        };
        let txs = vec![
            transfer("alice", 0, 1, 5),
            transfer("alice", 1, 1, 5),
            forge(transfer("alice", 2, 1, 5)),
            transfer("alice", 3, 1, 5),
            forge(transfer("nobody", 0, 1, 5)),
            transfer("alice", 0, 1, 5),
            transfer("bob", 0, 1, 5),
            forge(transfer("carol", 0, 1, 5)),
            transfer("carol", 0, 1, 5),
        ];
        let mut one_by_one = Mempool::new(10);
        let expected: Vec<_> = txs
            .iter()
            .map(|tx| one_by_one.insert(tx.clone(), &state, &ctx(&params)))
            .collect();
        let mut batched = Mempool::new(10);
        let answers = batched.insert_batch(txs, &state, &ctx(&params));
        assert_eq!(answers, expected);
        assert!(
            matches!(answers[2], Err(MempoolError::Signature(_))),
            "{:?}",
            answers[2]
        );
        assert!(
            matches!(answers[3], Err(MempoolError::Invalid(TxError::BadNonce { .. }))),
            "{:?}",
            answers[3]
        );
        assert!(matches!(
            answers[4],
            Err(MempoolError::Invalid(TxError::UnknownAccount(_)))
        ));
        assert_eq!(answers[5], Ok(false));
        assert_eq!(answers[8], Ok(true));
        assert_eq!(batched.len(), 4);
        let ids = |pool: &Mempool| pool.candidates(10).iter().map(Tx::id).collect::<Vec<_>>();
        assert_eq!(ids(&batched), ids(&one_by_one));
    }

    #[test]
    fn a_batch_refuses_what_the_pool_alone_refuses_before_any_signature() {
        let (state, params) = setup();
        let mut pool = Mempool::new(1);
        pool.insert(transfer("alice", 0, 5, 5), &state, &ctx(&params))
            .expect("a0");
        // Forged, so only a check that comes before the signature can
        // give these answers.
        let mut cheap = transfer("bob", 0, 1, 5);
        cheap.body.fee += 1;
        let answers = pool.insert_batch(vec![cheap], &state, &ctx(&params));
        assert_eq!(answers, vec![Err(MempoolError::Full(1))]);

        let mut pool = Mempool::new(1_000);
        let share: Vec<Tx> = (0..MAX_PENDING_PER_SENDER as u64)
            .map(|nonce| transfer("alice", nonce, 1, 1))
            .collect();
        assert!(
            pool.insert_batch(share, &state, &ctx(&params))
                .iter()
                .all(|a| *a == Ok(true))
        );
        let mut over = transfer("alice", MAX_PENDING_PER_SENDER as u64, 1, 1);
        over.body.fee += 1;
        let answers = pool.insert_batch(vec![over], &state, &ctx(&params));
        assert_eq!(
            answers,
            vec![Err(MempoolError::TooManyPending(MAX_PENDING_PER_SENDER))]
        );
    }

    #[test]
    fn a_sender_may_not_fill_the_pool() {
        let (state, params) = setup();
        let mut pool = Mempool::new(1_000);
        for nonce in 0..MAX_PENDING_PER_SENDER as u64 {
            pool.insert(transfer("alice", nonce, 1, 1), &state, &ctx(&params))
                .expect("within the share");
        }
        let over = pool.insert(
            transfer("alice", MAX_PENDING_PER_SENDER as u64, 1, 1),
            &state,
            &ctx(&params),
        );
        assert_eq!(over, Err(MempoolError::TooManyPending(MAX_PENDING_PER_SENDER)));
    }

    #[test]
    fn full_pool_evicts_only_for_a_better_fee() {
        let (state, params) = setup();
        let mut pool = Mempool::new(2);
        pool.insert(transfer("alice", 0, 5, 1), &state, &ctx(&params))
            .expect("a");
        pool.insert(transfer("bob", 0, 3, 1), &state, &ctx(&params))
            .expect("b");
        let low = pool.insert(transfer("carol", 0, 3, 1), &state, &ctx(&params));
        assert_eq!(low, Err(MempoolError::Full(2)));
        assert_eq!(
            pool.insert(transfer("carol", 0, 4, 1), &state, &ctx(&params)),
            Ok(true)
        );
        let fees: Vec<u64> = pool.candidates(10).iter().map(|tx| tx.body.fee).collect();
        assert_eq!(fees, vec![5, 4]);
        // Bob's overlay went with his transaction: his nonce 0 is free again.
        assert_eq!(pool.next_nonce(&Keypair::dev("bob").address(), &state), Ok(0));
    }

    #[test]
    fn a_sender_never_evicts_its_own_predecessor() {
        let (state, params) = setup();
        let mut pool = Mempool::new(2);
        pool.insert(transfer("alice", 0, 1, 1), &state, &ctx(&params))
            .expect("a0");
        pool.insert(transfer("bob", 0, 9, 1), &state, &ctx(&params))
            .expect("b0");
        // Alice's nonce 0 is the only cheaper one, and nonce 1 needs it.
        let own = pool.insert(transfer("alice", 1, 9, 1), &state, &ctx(&params));
        assert_eq!(own, Err(MempoolError::Full(2)));
        assert_eq!(pool.len(), 2);
    }

    #[test]
    fn candidates_keep_nonce_order_within_a_sender() {
        let (state, params) = setup();
        let mut pool = Mempool::new(10);
        pool.insert(transfer("alice", 0, 1, 1), &state, &ctx(&params))
            .expect("a0");
        pool.insert(transfer("alice", 1, 9, 1), &state, &ctx(&params))
            .expect("a1");
        pool.insert(transfer("bob", 0, 2, 1), &state, &ctx(&params))
            .expect("b0");
        let order: Vec<(u64, u64)> = pool
            .candidates(10)
            .iter()
            .map(|tx| (tx.body.fee, tx.body.nonce))
            .collect();
        assert_eq!(order, vec![(2, 0), (1, 0), (9, 1)]);
    }

    #[test]
    fn revalidate_drops_what_the_new_head_included() {
        let (mut state, params) = setup();
        let mut pool = Mempool::new(10);
        let first = transfer("alice", 0, 1, 1);
        pool.insert(first.clone(), &state, &ctx(&params)).expect("a0");
        pool.insert(transfer("alice", 1, 1, 1), &state, &ctx(&params))
            .expect("a1");
        apply(&mut state, &first, &params);
        pool.revalidate(&state, &ctx(&params));
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.candidates(10)[0].body.nonce, 1);
    }

    #[test]
    fn revalidate_cuts_a_run_at_the_first_transaction_that_no_longer_applies() {
        let (mut state, params) = setup();
        let alice = Keypair::dev("alice").address();
        let balance = state.account(&alice).expect("read").expect("alice").balance;
        let mut pool = Mempool::new(10);
        for nonce in 0..3 {
            pool.insert(transfer("alice", nonce, 1, balance / 4), &state, &ctx(&params))
                .expect("run");
        }
        // The new head has alice spend most of her balance elsewhere.
        let elsewhere = transfer_to("alice", "bob", 0, 1, balance / 2);
        apply(&mut state, &elsewhere, &params);
        pool.revalidate(&state, &ctx(&params));
        // Her nonce 0 is taken; 1 still applies (a quarter), 2 does not.
        let left: Vec<u64> = pool.candidates(10).iter().map(|tx| tx.body.nonce).collect();
        assert_eq!(left, vec![1]);
        assert_eq!(pool.next_nonce(&alice, &state), Ok(2));
    }

    /// `state` with `address`'s balance set to `balance`.
    fn with_balance(state: &MemState, address: Address, balance: u64) -> MemState {
        MemState::new(state.entries().map(|(key, value)| {
            let value = match (key, value) {
                (StateKey::Account(a), StateValue::Account(account)) if *a == address => {
                    StateValue::Account(klero_chain::ledger::Account {
                        balance,
                        ..account.clone()
                    })
                }
                _ => value.clone(),
            };
            (*key, value)
        }))
    }

    #[test]
    fn revalidate_replays_a_sender_when_any_entry_it_read_changed() {
        let (state, params) = setup();
        let mut pool = Mempool::new(10);
        pool.insert(transfer_to("alice", "bob", 0, 1, 10), &state, &ctx(&params))
            .expect("alice");
        pool.insert(transfer_to("carol", "dave", 0, 1, 10), &state, &ctx(&params))
            .expect("carol");
        // Only bob changes: alice's own account is as it was, but her
        // transfer would now overflow his balance.
        let bob = Keypair::dev("bob").address();
        let next = with_balance(&state, bob, u64::MAX - 5);
        pool.revalidate(&next, &ctx(&params));
        let left: Vec<Address> = pool.candidates(10).iter().map(|tx| tx.body.from).collect();
        assert_eq!(left, vec![Keypair::dev("carol").address()]);
        // And back: carol kept, alice's gone for good.
        pool.revalidate(&state, &ctx(&params));
        assert_eq!(pool.len(), 1);
    }

    #[test]
    fn revalidate_replays_every_sender_under_new_rules() {
        let (state, params) = setup();
        let mut pool = Mempool::new(10);
        pool.insert(transfer("alice", 0, 1, 10), &state, &ctx(&params))
            .expect("fee 1");
        pool.insert(transfer("bob", 0, 9, 10), &state, &ctx(&params))
            .expect("fee 9");
        // The same state, but a context whose minimum fee is 5.
        let dearer = LedgerParams { min_fee: 5, ..params };
        pool.revalidate(&state, &ctx(&dearer));
        let fees: Vec<u64> = pool.candidates(10).iter().map(|tx| tx.body.fee).collect();
        assert_eq!(fees, vec![9]);
    }

    #[test]
    fn a_transfer_into_an_account_counts_only_once_it_is_on_chain() {
        let (state, params) = setup();
        let mut pool = Mempool::new(10);
        // zed has nothing; alice's pending gift does not fund him yet.
        pool.insert(transfer_to("alice", "zed", 0, 1, 100), &state, &ctx(&params))
            .expect("gift");
        let err = pool
            .insert(transfer_to("zed", "bob", 0, 1, 5), &state, &ctx(&params))
            .expect_err("zed is not funded on chain");
        assert!(err.is_unfunded(), "{err:?}");
    }
}
