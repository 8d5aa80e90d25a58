//! A block's writes over a committed state, and the change set they make.

use std::collections::BTreeMap;
use std::sync::Arc;

use rayon::prelude::*;

use super::{Change, ChangeSet, CommittedState, StateError, StateRead, StateValue, TreeNodes};
use crate::epoch::{EpochInfo, StakeSnapshot, Staker};
use crate::keys::Address;
use crate::ledger::Account;
use crate::state_tree::{self, StateKey};
use crate::vrf::VrfPublicKey;

/// The writes of an overlay without its base: a mempool sender's pending
/// transactions, laid again over the head state at each use
/// ([`StateOverlay::with_writes`]).
pub type Writes = BTreeMap<StateKey, Option<StateValue>>;

/// Writes over a committed state that is never changed: what a block, a
/// block being produced, or a mempool's pending transactions do to the
/// state. Reads see the writes first, then the base. Dropping the overlay
/// forgets them; [`StateOverlay::finish`] turns them into a [`ChangeSet`].
/// It costs the entries written, never a copy of the state.
pub struct StateOverlay<'b> {
    base: &'b dyn CommittedState,
    writes: Writes,
}

impl<'b> StateOverlay<'b> {
    /// An overlay with no writes over `base`.
    pub fn new(base: &'b dyn CommittedState) -> StateOverlay<'b> {
        StateOverlay {
            base,
            writes: BTreeMap::new(),
        }
    }

    /// An overlay over `base` holding `writes`, taken by
    /// [`StateOverlay::into_writes`] from an overlay over the same state.
    pub fn with_writes(base: &'b dyn CommittedState, writes: Writes) -> StateOverlay<'b> {
        StateOverlay { base, writes }
    }

    /// The writes, without the base.
    pub fn into_writes(self) -> Writes {
        self.writes
    }

    /// The state under the writes.
    pub fn base(&self) -> &'b dyn CommittedState {
        self.base
    }

    /// How many entries have been written.
    pub fn written(&self) -> usize {
        self.writes.len()
    }

    pub(crate) fn set(&mut self, key: StateKey, value: Option<StateValue>) {
        self.writes.insert(key, value);
    }

    /// Writes an account.
    pub fn set_account(&mut self, address: Address, account: Account) {
        self.set(StateKey::Account(address), Some(StateValue::Account(account)));
    }

    /// Registers `vrf_key` to `owner`.
    pub fn set_vrf_owner(&mut self, vrf_key: VrfPublicKey, owner: Address) {
        self.set(StateKey::VrfKey(vrf_key), Some(StateValue::VrfKey(owner)));
    }

    /// Sets (or, with `None`, removes) an unbonding entry.
    pub fn set_unbonding(&mut self, release_epoch: u64, owner: Address, amount: Option<u64>) {
        let key = StateKey::Unbonding { release_epoch, owner };
        self.set(key, amount.map(StateValue::Unbonding));
    }

    /// Marks the equivocation of `offender` in `slot` as slashed.
    pub fn set_slashed(&mut self, offender: Address, slot: u64) {
        self.set(StateKey::Slashed { offender, slot }, Some(StateValue::Slashed));
    }

    /// Records the epoch of `offender`'s latest slash.
    pub fn set_slashed_in(&mut self, offender: Address, epoch: u64) {
        self.set(StateKey::SlashedIn(offender), Some(StateValue::SlashedIn(epoch)));
    }

    /// Sets the total burned.
    pub fn set_burned(&mut self, amount: u64) {
        self.set(StateKey::Burned, Some(StateValue::Burned(amount)));
    }

    /// Sets the epoch data.
    pub fn set_epoch_info(&mut self, info: EpochInfo) {
        self.set(StateKey::Epoch, Some(StateValue::Epoch(info)));
    }

    /// Sets (or removes) the snapshot drawn from in `epoch`.
    pub fn set_snapshot(&mut self, epoch: u64, snapshot: Option<Arc<StakeSnapshot>>) {
        self.set(StateKey::Snapshot { epoch }, snapshot.map(StateValue::Snapshot));
    }

    /// The writes as a change set over the base: each written entry whose
    /// value differs from the base's, with both values, and the state
    /// tree updated from the base's root along their keys only.
    ///
    /// # Errors
    ///
    /// [`StateError`] if the base cannot be read.
    pub fn finish(self) -> Result<ChangeSet, StateError> {
        let base = self.base;
        let writes: Vec<(StateKey, Option<StateValue>)> = self.writes.into_iter().collect();
        let changes: Vec<Change> = writes
            .into_par_iter()
            .map(|(key, after)| {
                let before = base.get(&key)?;
                Ok((before != after).then_some(Change { key, before, after }))
            })
            .filter_map(Result::transpose)
            .collect::<Result<_, StateError>>()?;
        let tree_changes: Vec<_> = changes
            .par_iter()
            .map(|c| (c.key.tree_key(), c.after.as_ref().map(StateValue::hash)))
            .collect();
        let parent_root = base.root();
        let (root, nodes) =
            state_tree::update(parent_root, &tree_changes, &TreeNodes(base)).map_err(StateError::tree)?;
        Ok(ChangeSet::new(parent_root, root, changes, nodes))
    }
}

impl StateRead for StateOverlay<'_> {
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>, StateError> {
        match self.writes.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.base.get(key),
        }
    }

    fn unbonding_due(&self, epoch: u64) -> Result<Vec<(u64, Address, u64)>, StateError> {
        unbonding_due_over(self.base, &self.writes, epoch)
    }

    fn stakers(&self) -> Result<Vec<Staker>, StateError> {
        stakers_over(self.base, &self.writes)
    }
}

/// [`StateRead::unbonding_due`] of `base` under `writes`.
pub(super) fn unbonding_due_over(
    base: &dyn StateRead,
    writes: &BTreeMap<StateKey, Option<StateValue>>,
    epoch: u64,
) -> Result<Vec<(u64, Address, u64)>, StateError> {
    let mut due: BTreeMap<(u64, Address), u64> = base
        .unbonding_due(epoch)?
        .into_iter()
        .map(|(release, owner, amount)| ((release, owner), amount))
        .collect();
    let range = super::unbonding_keys(epoch);
    for (key, value) in writes.range(range) {
        let StateKey::Unbonding { release_epoch, owner } = *key else {
            continue;
        };
        match value {
            Some(StateValue::Unbonding(amount)) => due.insert((release_epoch, owner), *amount),
            Some(_) => return Err(StateError::WrongKind(*key)),
            None => due.remove(&(release_epoch, owner)),
        };
    }
    Ok(due.into_iter().map(|((r, o), a)| (r, o, a)).collect())
}

/// [`StateRead::stakers`] of `base` under `writes`.
pub(super) fn stakers_over(
    base: &dyn StateRead,
    writes: &BTreeMap<StateKey, Option<StateValue>>,
) -> Result<Vec<Staker>, StateError> {
    let mut stakers: BTreeMap<Address, Staker> =
        base.stakers()?.into_iter().map(|s| (s.address, s)).collect();
    let range = super::account_keys();
    for (key, value) in writes.range(range) {
        let StateKey::Account(address) = *key else {
            continue;
        };
        match value {
            Some(StateValue::Account(account)) => match Staker::of(address, account) {
                Some(staker) => stakers.insert(address, staker),
                None => stakers.remove(&address),
            },
            Some(_) => return Err(StateError::WrongKind(*key)),
            None => stakers.remove(&address),
        };
    }
    Ok(stakers.into_values().collect())
}
