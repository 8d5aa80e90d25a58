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

use bincode::{Decode, Encode};
use std::collections::BTreeMap;

use crate::hash::Hash;
use crate::keys::Address;
use crate::ledger::Account;
use crate::vrf::{VrfOutput, VrfPublicKey};

/// How many epochs old the stakes of an epoch's draw are: epoch `e` draws
/// from the stakes at the end of `e - SNAPSHOT_LAG_EPOCHS`. A change of stake
/// (an unstake, a slash) reaches the draw only this many epoch boundaries
/// later, which is why a slash bars its offender at once
/// ([`State::is_barred`](crate::ledger::State::is_barred)) and why unbonding
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

/// The stakes frozen for one epoch's draw, sorted by address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct StakeSnapshot {
    stakers: Vec<Staker>,
    total: u64,
}

impl StakeSnapshot {
    /// Every account with bonded stake and a VRF key.
    ///
    /// The total saturates; a spec whose supply does not fit 64 bits is
    /// refused long before (see `spec`), so it never does.
    pub fn of(accounts: &BTreeMap<Address, Account>) -> StakeSnapshot {
        let stakers: Vec<Staker> = accounts
            .iter()
            .filter(|(_, a)| a.bonded > 0)
            .filter_map(|(address, a)| {
                a.vrf_key.map(|vrf_key| Staker {
                    address: *address,
                    vrf_key,
                    stake: a.bonded,
                })
            })
            .collect();
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

/// The epoch a state is in, its randomness and its snapshots.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct EpochState {
    /// The current epoch.
    pub epoch: u64,
    /// `eta` of the current epoch.
    pub eta: Hash,
    /// Running hash of this epoch's VRF outputs before the freeze point.
    pub acc: Hash,
    /// Stakes drawn from in this epoch (end of `epoch - 2`).
    pub snapshot: StakeSnapshot,
    /// Stakes at the end of `epoch - 1`, drawn from in the next epoch.
    pub next_snapshot: StakeSnapshot,
}

impl EpochState {
    /// The state at genesis: epoch 0, `eta_0` from the chain's spec digest,
    /// both snapshots the genesis stakes.
    pub fn genesis(spec_digest: Hash, stakes: StakeSnapshot) -> EpochState {
        EpochState {
            epoch: 0,
            eta: Hash::of_parts(&[b"klero/eta0/v1", spec_digest.as_bytes()]),
            acc: Hash::ZERO,
            snapshot: stakes.clone(),
            next_snapshot: stakes,
        }
    }

    /// Moves to `epoch` (no-op if already there). `current` gives the stakes
    /// now, i.e. at the end of the epoch being left; it is asked at most
    /// twice, since after two empty epochs both snapshots equal it.
    pub fn advance_to(&mut self, epoch: u64, current: impl Fn() -> StakeSnapshot) {
        let mut steps = 0u32;
        while self.epoch < epoch {
            self.eta = Hash::of_parts(&[b"klero/eta/v1", self.eta.as_bytes(), self.acc.as_bytes()]);
            self.acc = Hash::ZERO;
            if steps < 2 {
                self.snapshot = std::mem::replace(&mut self.next_snapshot, current());
            }
            steps += 1;
            self.epoch += 1;
        }
    }

    /// Mixes a block's VRF output into the current epoch's accumulator.
    /// The caller decides whether the block is before the freeze point.
    pub fn contribute(&mut self, output: &VrfOutput) {
        self.acc = Hash::of_parts(&[b"klero/acc/v1", self.acc.as_bytes(), &output.0]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keypair;

    fn accounts(stakes: &[(&str, u64)]) -> BTreeMap<Address, Account> {
        stakes
            .iter()
            .map(|(name, stake)| {
                let key = Keypair::dev(name);
                let account = Account {
                    bonded: *stake,
                    vrf_key: Some(key.vrf().public_key()),
                    ..Account::default()
                };
                (key.address(), account)
            })
            .collect()
    }

    #[test]
    fn snapshot_skips_accounts_without_stake() {
        let snap = StakeSnapshot::of(&accounts(&[("a", 5), ("b", 0), ("c", 7)]));
        assert_eq!(snap.stakers().len(), 2);
        assert_eq!(snap.total(), 12);
        assert!(snap.get(&Keypair::dev("b").address()).is_none());
        assert_eq!(snap.get(&Keypair::dev("c").address()).map(|s| s.stake), Some(7));
    }

    #[test]
    fn stake_added_in_epoch_e_is_drawn_from_in_epoch_e_plus_2() {
        let genesis = StakeSnapshot::of(&accounts(&[("a", 5)]));
        let later = StakeSnapshot::of(&accounts(&[("a", 5), ("b", 9)]));
        let mut state = EpochState::genesis(Hash::ZERO, genesis.clone());
        // "b" stakes during epoch 0; at the end of epoch 0 the stakes are `later`.
        state.advance_to(1, || later.clone());
        assert_eq!(
            state.snapshot, genesis,
            "epoch 1 draws from the end of epoch -1 (genesis)"
        );
        state.advance_to(2, || later.clone());
        assert_eq!(state.snapshot, later, "epoch 2 draws from the end of epoch 0");
    }

    #[test]
    fn empty_epochs_still_advance_eta_and_carry_snapshots() {
        let stakes = StakeSnapshot::of(&accounts(&[("a", 5)]));
        let mut one_by_one = EpochState::genesis(Hash::ZERO, stakes.clone());
        for e in 1..=5 {
            one_by_one.advance_to(e, || stakes.clone());
        }
        let mut jump = EpochState::genesis(Hash::ZERO, stakes.clone());
        jump.advance_to(5, || stakes.clone());
        assert_eq!(one_by_one, jump);
        assert_eq!(jump.epoch, 5);
        assert_ne!(jump.eta, EpochState::genesis(Hash::ZERO, stakes).eta);
    }

    #[test]
    fn eta_depends_on_contributed_outputs() {
        let mut a = EpochState::genesis(Hash::ZERO, StakeSnapshot::default());
        let mut b = a.clone();
        a.contribute(&VrfOutput([1; 64]));
        b.contribute(&VrfOutput([2; 64]));
        a.advance_to(1, StakeSnapshot::default);
        b.advance_to(1, StakeSnapshot::default);
        assert_ne!(a.eta, b.eta);
        assert_eq!(a.acc, Hash::ZERO);
    }
}
