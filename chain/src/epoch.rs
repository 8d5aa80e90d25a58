//! Epoch bookkeeping for the proof-of-stake draw: stake snapshots and the
//! epoch randomness `eta`.
//!
//! The draw in epoch `e` uses the stakes as they were at the end of epoch
//! `e - 2` and `eta_e = BLAKE3("klero/eta/v1" || eta_{e-1} || acc_{e-1})`,
//! where `acc_{e-1}` is a running BLAKE3 over the VRF outputs of the blocks
//! of epoch `e - 1` whose slot lies before the freeze point (`freeze_slots`
//! before the epoch's end). Whoever wrote the snapshot's last block cannot
//! grind `eta`: honest VRF outputs of a whole epoch come after it
//! (DESIGN.md, "Proof of stake"). An epoch without blocks still advances:
//! `acc` stays zero and the snapshots carry over.
//!
//! PoW chains keep the same structure; only `epoch` matters to them (it
//! times unbonding).

use std::sync::Arc;

use bincode::{Decode, Encode};

use crate::hash::Hash;
use crate::keys::Address;
use crate::ledger::Account;
use crate::state::{StateError, StateOverlay, StateRead};
use crate::vrf::{VrfOutput, VrfPublicKey};

/// How many epochs old the stakes of an epoch's draw are: epoch `e` draws
/// from the stakes at the end of `e - SNAPSHOT_LAG_EPOCHS`. A change of stake
/// (an unstake, a slash) reaches the draw only this many epoch boundaries
/// later, which is why a slash bars its offender at once
/// ([`is_barred`](crate::ledger::is_barred)) and why unbonding
/// must outlast the lag (`ledger.unbonding_epochs` ≥ lag + 1 on PoS chains).
pub const SNAPSHOT_LAG_EPOCHS: u64 = 2;

/// A staker in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Staker {
    /// The staker's account.
    pub address: Address,
    /// Its registered VRF key.
    pub vrf_key: VrfPublicKey,
    /// Its bonded stake.
    pub stake: u64,
}

impl Staker {
    /// The staker `account` is, if it has bonded stake and a VRF key.
    pub fn of(address: Address, account: &Account) -> Option<Staker> {
        let vrf_key = account.vrf_key.filter(|_| account.bonded > 0)?;
        Some(Staker {
            address,
            vrf_key,
            stake: account.bonded,
        })
    }
}

/// The stakes frozen for one epoch's draw, sorted by address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct StakeSnapshot {
    stakers: Vec<Staker>,
    total: u64,
}

impl StakeSnapshot {
    /// The snapshot of `stakers` (sorted here by address).
    ///
    /// The total saturates; a spec whose supply does not fit 64 bits is
    /// refused long before (see `spec`), so it never does.
    pub fn of(mut stakers: Vec<Staker>) -> StakeSnapshot {
        stakers.sort_by_key(|s| s.address);
        let total = stakers.iter().fold(0u64, |t, s| t.saturating_add(s.stake));
        StakeSnapshot { stakers, total }
    }

    /// The stakers, sorted by address.
    pub fn stakers(&self) -> &[Staker] {
        &self.stakers
    }

    /// Sum of all stakes.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The entry of `address`, if it had stake.
    pub fn get(&self, address: &Address) -> Option<&Staker> {
        self.stakers
            .binary_search_by(|s| s.address.cmp(address))
            .ok()
            .map(|i| &self.stakers[i])
    }
}

/// The epoch a state is in and its randomness.
///
/// # Format
///
/// ```text
/// epoch u64 | eta [32] | acc [32]
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct EpochInfo {
    /// The current epoch.
    pub epoch: u64,
    /// `eta` of the current epoch.
    pub eta: Hash,
    /// Running hash of this epoch's VRF outputs before the freeze point.
    pub acc: Hash,
}

impl EpochInfo {
    /// Epoch 0: `eta_0` from the chain's spec digest.
    pub fn genesis(spec_digest: Hash) -> EpochInfo {
        EpochInfo {
            epoch: 0,
            eta: Hash::of_parts(&[b"klero/eta0/v1", spec_digest.as_bytes()]),
            acc: Hash::ZERO,
        }
    }

    /// The epoch data in `epoch` (no change if not later): each epoch
    /// boundary hashes the accumulator into `eta` and clears it. One hash
    /// per epoch passed.
    pub fn at(&self, epoch: u64) -> EpochInfo {
        let mut info = *self;
        while info.epoch < epoch {
            info.eta = Hash::of_parts(&[b"klero/eta/v1", info.eta.as_bytes(), info.acc.as_bytes()]);
            info.acc = Hash::ZERO;
            info.epoch += 1;
        }
        info
    }

    /// `eta` of `epoch`, for a block of that epoch whose parent's epoch
    /// data is `self`.
    pub fn eta_at(&self, epoch: u64) -> Hash {
        self.at(epoch).eta
    }

    /// Mixes a block's VRF output into the current epoch's accumulator.
    /// The caller decides whether the block is before the freeze point.
    pub fn contribute(&mut self, output: &VrfOutput) {
        self.acc = Hash::of_parts(&[b"klero/acc/v1", self.acc.as_bytes(), &output.0]);
    }
}

/// Moves `state` to `epoch` (no-op if already there): the epoch data
/// advances ([`EpochInfo::at`]) and the snapshots move along. The draw of
/// epoch `e` reads the snapshot entry of `e`; entering `e + 1` drops the
/// entry of `e` and writes that of `e + 2` from the stakers index (the
/// stakes at the end of `e`); a jump of two epochs or more leaves both
/// entries equal to the stakes now, since no block changed them in
/// between.
///
/// # Errors
///
/// [`StateError`] if the state cannot be read.
pub fn advance(state: &mut StateOverlay<'_>, epoch: u64) -> Result<(), StateError> {
    let info = state.epoch_info()?;
    let from = info.epoch;
    if from >= epoch {
        return Ok(());
    }
    let now = Arc::new(StakeSnapshot::of(state.stakers()?));
    state.set_snapshot(from, None);
    if epoch == from + 1 {
        state.set_snapshot(from + 2, Some(now));
    } else {
        state.set_snapshot(from + 1, None);
        state.set_snapshot(epoch, Some(Arc::clone(&now)));
        state.set_snapshot(epoch + 1, Some(now));
    }
    state.set_epoch_info(info.at(epoch));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keypair;
    use crate::state::{CommittedState, MemState, StateValue};
    use crate::state_tree::StateKey;

    fn account(name: &str, stake: u64) -> (Address, Account) {
        let key = Keypair::dev(name);
        let account = Account {
            bonded: stake,
            vrf_key: Some(key.vrf().public_key()),
            ..Account::default()
        };
        (key.address(), account)
    }

    fn stakers(stakes: &[(&str, u64)]) -> Vec<Staker> {
        stakes
            .iter()
            .filter_map(|(name, stake)| {
                let (address, account) = account(name, *stake);
                Staker::of(address, &account)
            })
            .collect()
    }

    /// A state at epoch 0 with these stakes, both snapshots taken from them.
    fn genesis(stakes: &[(&str, u64)]) -> MemState {
        let snapshot = Arc::new(StakeSnapshot::of(stakers(stakes)));
        let mut entries: Vec<(StateKey, StateValue)> = stakes
            .iter()
            .map(|(name, stake)| {
                let (address, account) = account(name, *stake);
                (StateKey::Account(address), StateValue::Account(account))
            })
            .collect();
        entries.push((StateKey::Epoch, StateValue::Epoch(EpochInfo::genesis(Hash::ZERO))));
        for epoch in [0, 1] {
            entries.push((
                StateKey::Snapshot { epoch },
                StateValue::Snapshot(Arc::clone(&snapshot)),
            ));
        }
        MemState::new(entries)
    }

    /// Runs `f` on an overlay over `state` and applies the result.
    fn step(state: &mut MemState, f: impl FnOnce(&mut StateOverlay<'_>)) {
        let base = state.clone();
        let mut overlay = StateOverlay::new(&base);
        f(&mut overlay);
        let set = overlay.finish().unwrap();
        state.apply(&set).unwrap();
    }

    fn snapshot(state: &MemState, epoch: u64) -> StakeSnapshot {
        state.snapshot(epoch).unwrap().unwrap().as_ref().clone()
    }

    #[test]
    fn snapshot_skips_accounts_without_stake() {
        let snap = StakeSnapshot::of(stakers(&[("c", 7), ("b", 0), ("a", 5)]));
        assert_eq!(snap.stakers().len(), 2);
        assert!(snap.stakers().windows(2).all(|w| w[0].address < w[1].address));
        assert_eq!(snap.total(), 12);
        assert!(snap.get(&Keypair::dev("b").address()).is_none());
        assert_eq!(snap.get(&Keypair::dev("c").address()).map(|s| s.stake), Some(7));
    }

    #[test]
    fn stake_added_in_epoch_e_is_drawn_from_in_epoch_e_plus_2() {
        let mut state = genesis(&[("a", 5)]);
        let before = StakeSnapshot::of(stakers(&[("a", 5)]));
        let after = StakeSnapshot::of(stakers(&[("a", 5), ("b", 9)]));
        // "b" stakes during epoch 0.
        step(&mut state, |s| {
            let (address, account) = account("b", 9);
            s.set_account(address, account);
        });
        step(&mut state, |s| advance(s, 1).unwrap());
        assert_eq!(
            snapshot(&state, 1),
            before,
            "epoch 1 draws from the end of epoch -1 (genesis)"
        );
        assert_eq!(
            state.snapshot(0).unwrap(),
            None,
            "the past epoch's snapshot is dropped"
        );
        step(&mut state, |s| advance(s, 2).unwrap());
        assert_eq!(
            snapshot(&state, 2),
            after,
            "epoch 2 draws from the end of epoch 0"
        );
        assert_eq!(snapshot(&state, 3), after);
    }

    #[test]
    fn empty_epochs_still_advance_eta_and_carry_snapshots() {
        let stakes = [("a", 5)];
        let mut one_by_one = genesis(&stakes);
        for e in 1..=5 {
            step(&mut one_by_one, |s| advance(s, e).unwrap());
        }
        let mut jump = genesis(&stakes);
        step(&mut jump, |s| advance(s, 5).unwrap());
        assert_eq!(one_by_one.root(), jump.root());
        let info = jump.epoch_info().unwrap();
        assert_eq!(info.epoch, 5);
        assert_ne!(info.eta, EpochInfo::genesis(Hash::ZERO).eta);
        assert_eq!(info, EpochInfo::genesis(Hash::ZERO).at(5));
        assert_eq!(snapshot(&jump, 5), snapshot(&jump, 6));
        assert_eq!(jump.snapshot(4).unwrap(), None);
    }

    #[test]
    fn eta_depends_on_contributed_outputs() {
        let mut a = EpochInfo::genesis(Hash::ZERO);
        let mut b = a;
        a.contribute(&VrfOutput([1; 64]));
        b.contribute(&VrfOutput([2; 64]));
        assert_ne!(a.eta_at(1), b.eta_at(1));
        assert_eq!(a.at(1).acc, Hash::ZERO);
        assert_eq!(a.eta_at(0), a.eta, "no change within the epoch");
    }
}
