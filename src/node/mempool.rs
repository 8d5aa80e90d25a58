//! Transactions waiting for a block.
//!
//! Each is checked against the head state before it enters (signature and a
//! stake's proof of possession, once; then the ledger's own rules on an
//! overlay over the head state with the sender's earlier pending
//! transactions applied: it reads the entries they touch, never a copy of
//! the state), so the pool only holds transactions that would apply in
//! nonce order. After every new head (or reorg) [`Mempool::revalidate`]
//! replays the pool against the new state and drops what no longer applies.
//! The pool is bounded: when full, a better-paying transaction evicts the
//! cheapest one that no other pending transaction depends on.

use std::collections::{BTreeMap, HashSet};

use klero_chain::keys::KeyError;
use klero_chain::ledger::{ApplyError, BlockCtx, TxError};
use klero_chain::state::{CommittedState, StateError, StateOverlay};
use klero_chain::{Address, Hash, Tx};

/// Default most transactions held.
pub(crate) const DEFAULT_CAPACITY: usize = 10_000;

/// Why a transaction was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum MempoolError {
    /// The signature does not verify.
    #[error("bad signature: {0}")]
    Signature(#[from] KeyError),
    /// The ledger refuses it against the head state.
    #[error(transparent)]
    Invalid(#[from] TxError),
    /// The pool is full of transactions paying at least as much.
    #[error("mempool is full ({0} transactions) and the fee is too low to evict one")]
    Full(usize),
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

/// The pending transactions, by sender and nonce.
#[derive(Debug)]
pub(crate) struct Mempool {
    by_sender: BTreeMap<Address, BTreeMap<u64, Tx>>,
    ids: HashSet<Hash>,
    capacity: usize,
}

impl Mempool {
    /// An empty pool holding at most `capacity` transactions.
    pub(crate) fn new(capacity: usize) -> Mempool {
        Mempool {
            by_sender: BTreeMap::new(),
            ids: HashSet::new(),
            capacity,
        }
    }

    /// How many transactions wait.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The nonce `sender`'s next transaction needs: after the head state's
    /// and the pool's.
    ///
    /// # Errors
    ///
    /// If the head state cannot be read.
    pub(crate) fn next_nonce(&self, sender: &Address, head: &dyn CommittedState) -> Result<u64, StateError> {
        let pending = self.by_sender.get(sender).map_or(0, BTreeMap::len) as u64;
        Ok(head.account(sender)?.map_or(0, |a| a.nonce) + pending)
    }

    /// Adds `tx` if it applies after the sender's pending ones. Returns
    /// false if it was already here.
    ///
    /// # Errors
    ///
    /// Why it does not apply, or that the pool is full.
    pub(crate) fn insert(
        &mut self,
        tx: Tx,
        head: &dyn CommittedState,
        ctx: &BlockCtx<'_>,
    ) -> Result<bool, MempoolError> {
        let id = tx.id();
        if self.ids.contains(&id) {
            return Ok(false);
        }
        tx.verify(ctx.chain_id())?;
        klero_chain::ledger::verify_pop(&tx, ctx.chain_id())?;
        let mut scratch = StateOverlay::new(head);
        for pending in self
            .by_sender
            .get(&tx.body.from)
            .into_iter()
            .flat_map(|m| m.values())
        {
            scratch.apply_tx(pending, ctx)?;
        }
        scratch.apply_tx(&tx, ctx)?;
        if self.ids.len() >= self.capacity {
            self.evict_for(tx.body.fee)?;
        }
        self.ids.insert(id);
        self.by_sender
            .entry(tx.body.from)
            .or_default()
            .insert(tx.body.nonce, tx);
        Ok(true)
    }

    /// Drops the cheapest last-in-line transaction if it pays less than `fee`.
    fn evict_for(&mut self, fee: u64) -> Result<(), MempoolError> {
        let cheapest = self
            .by_sender
            .iter()
            .filter_map(|(sender, txs)| {
                txs.last_key_value()
                    .map(|(nonce, tx)| (tx.body.fee, *sender, *nonce))
            })
            .min();
        match cheapest {
            Some((cheapest_fee, sender, nonce)) if cheapest_fee < fee => {
                self.remove(&sender, nonce);
                Ok(())
            }
            _ => Err(MempoolError::Full(self.ids.len())),
        }
    }

    fn remove(&mut self, sender: &Address, nonce: u64) {
        if let Some(txs) = self.by_sender.get_mut(sender) {
            if let Some(tx) = txs.remove(&nonce) {
                self.ids.remove(&tx.id());
            }
            if txs.is_empty() {
                self.by_sender.remove(sender);
            }
        }
    }

    /// Replays the pool against a new head state: drops what the chain now
    /// includes, then keeps for each sender the longest run of transactions
    /// that still applies.
    pub(crate) fn revalidate(&mut self, head: &dyn CommittedState, ctx: &BlockCtx<'_>) {
        let senders = std::mem::take(&mut self.by_sender);
        self.ids.clear();
        for (sender, txs) in senders {
            let mut scratch = StateOverlay::new(head);
            // An unreadable head drops the sender's transactions: they are
            // offered again by gossip or their wallet.
            let Ok(account) = head.account(&sender) else {
                continue;
            };
            let included = account.map_or(0, |a| a.nonce);
            let kept: BTreeMap<u64, Tx> = txs
                .into_iter()
                .filter(|(nonce, _)| *nonce >= included)
                .map_while(|(nonce, tx)| scratch.apply_tx(&tx, ctx).is_ok().then_some((nonce, tx)))
                .collect();
            if !kept.is_empty() {
                self.ids.extend(kept.values().map(Tx::id));
                self.by_sender.insert(sender, kept);
            }
        }
    }

    /// Up to `max` transactions for a block: each sender's in nonce order,
    /// senders interleaved by the fee of their next transaction.
    pub(crate) fn candidates(&self, max: usize) -> Vec<Tx> {
        let mut queues: Vec<_> = self
            .by_sender
            .values()
            .map(|txs| txs.values().peekable())
            .collect();
        let mut out = Vec::new();
        while out.len() < max {
            let best = queues
                .iter_mut()
                .enumerate()
                .filter_map(|(i, q)| q.peek().map(|tx| (tx.body.fee, std::cmp::Reverse(i))))
                .max();
            let Some((_, std::cmp::Reverse(i))) = best else {
                break;
            };
            out.extend(queues[i].next().cloned());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use klero_chain::ledger::LedgerParams;
    use klero_chain::state::MemState;
    use klero_chain::types::{TxBody, TxKind};
    use klero_chain::{ChainSpec, Keypair};

    use super::*;

    const CHAIN: &str = "klero-pos-dev";

    fn setup() -> (MemState, LedgerParams) {
        let spec = ChainSpec::from_toml(include_str!("../../testnet/pos.toml")).expect("spec");
        (spec.genesis_state(), spec.ledger_params())
    }

    fn ctx(params: &LedgerParams) -> BlockCtx<'static> {
        BlockCtx::new(CHAIN, 0, Address([0; 32]), *params)
    }

    fn transfer(from: &str, nonce: u64, fee: u64, amount: u64) -> Tx {
        let key = Keypair::dev(from);
        let body = TxBody {
            from: key.address(),
            nonce,
            fee,
            kind: TxKind::Transfer {
                to: Keypair::dev("zed").address(),
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
    }

    #[test]
    fn refuses_a_forged_signature() {
        let (state, params) = setup();
        let mut tx = transfer("alice", 0, 1, 5);
        tx.body.fee = 2;
        let err = Mempool::new(10).insert(tx, &state, &ctx(&params));
        assert!(matches!(err, Err(MempoolError::Signature(_))), "{err:?}");
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
        let mut overlay = StateOverlay::new(&state);
        overlay.apply_tx(&first, &ctx(&params)).expect("apply");
        let set = overlay.finish().expect("finish");
        state.apply(&set).expect("state");
        pool.revalidate(&state, &ctx(&params));
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.candidates(10)[0].body.nonce, 1);
    }
}
