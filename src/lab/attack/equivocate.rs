//! Equivocation: what signing two blocks for one slot is worth, per attempt.
//!
//! Two blocks of one proposer for one slot have the same height, slot and
//! score, so at most one of them is canonical: the most a second block can
//! add is one block's reward and fees (say it lands on a branch the first
//! one would have lost). Against that, anyone who sees both headers may
//! submit them as evidence; klero's nodes do so on their own the moment they
//! import the second (`BlockTree::take_equivocations`), so `p`, the chance
//! that evidence lands on chain while the stake is still bonded or
//! unbonding, is close to 1 once both blocks reach one honest node.
//!
//! The amounts are not computed here but measured on the ledger: two real
//! signed headers of one slot, an `Evidence` transaction, `StateOverlay::apply_tx`
//! with the development ledger rules, and the accounts before and after,
//! once with an honest reporter and once with the offender reporting itself
//! (which v2 pays nothing; v1 paid half, shown as a counterfactual).
//! Then `E[net] = gain − p · slashed` per attempt (`− p · (slashed − refund)`
//! when self-reported), and the break-even is `p* = gain / slashed`.

use klero_chain::ledger::{ApplyError, TxError};
use klero_chain::spec::{Consensus, GenesisAccount, LedgerSection, PosParams};
use klero_chain::state::{MemState, StateOverlay, StateRead, StateValue};
use klero_chain::state_tree::StateKey;
use klero_chain::types::{Equivocation, PosSeal, Seal, SignedHeader, TxBody, TxKind};
use klero_chain::vrf::{self, VrfOutput, VrfProof};
use klero_chain::{Address, ChainSpec, Hash, Header, Keypair, Tx};
use serde::Serialize;

/// One stake's row.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Row {
    /// The equivocator's bonded stake.
    pub stake: u64,
    /// What the second block can add: reward + fees.
    pub gain: u64,
    /// Taken from the offender by the evidence (ledger).
    pub slashed: u64,
    /// Paid to an honest reporter (ledger).
    pub reporter_reward: u64,
    /// The offender's net change when it reports itself, fee included (ledger, v2).
    pub self_report_change: i128,
    /// v1's self-report refund, half the slash (counterfactual, not run).
    pub v1_self_report_refund: u64,
    /// `gain / slashed`: above this chance of evidence, equivocating loses.
    pub break_even_p: f64,
    /// `(p, E[net])` per attempt, honest reporter.
    pub expected_net: Vec<(f64, f64)>,
    /// `(p, E[net])` if the offender reported itself first, v2.
    pub expected_net_self_report: Vec<(f64, f64)>,
    /// `(p, E[net])` if it reported itself first under v1's half refund.
    pub expected_net_self_report_v1: Vec<(f64, f64)>,
}

/// Why the measurement failed (a bug in this experiment or the ledger).
#[derive(Debug, thiserror::Error)]
#[error("the evidence transaction was refused: {0}")]
pub(crate) struct Refused(ApplyError<TxError>);

/// Measures one row for a stake, fees per block and the chances `ps`.
///
/// # Errors
///
/// If the ledger refuses the evidence (it never should).
pub(crate) fn row(stake: u64, fees: u64, ps: &[f64]) -> Result<Row, Refused> {
    let offender = Keypair::dev("equivocator");
    let reporter = Keypair::dev("reporter");
    let spec = spec(&offender, &reporter, stake);
    let gain = spec.ledger.block_reward.saturating_add(fees);
    let evidence = evidence(&spec, &offender);

    let honest = apply(&spec, &reporter, &evidence)?;
    let before = wealth(&spec.genesis_state(), &offender.address());
    let slashed = before - wealth(&honest, &offender.address());
    let reporter_reward = (wealth(&honest, &reporter.address()) + i128::from(spec.ledger.min_fee)
        - wealth(&spec.genesis_state(), &reporter.address())) as u64;
    let own = apply(&spec, &offender, &evidence)?;
    let self_report_change = wealth(&own, &offender.address()) - before;

    let slashed_u = slashed as u64;
    let v1_refund = slashed_u / 2;
    let net = |p: f64, loss: f64| (p, gain as f64 - p * loss);
    Ok(Row {
        stake,
        gain,
        slashed: slashed_u,
        reporter_reward,
        self_report_change,
        v1_self_report_refund: v1_refund,
        break_even_p: gain as f64 / slashed.max(1) as f64,
        expected_net: ps.iter().map(|p| net(*p, slashed as f64)).collect(),
        expected_net_self_report: ps.iter().map(|p| net(*p, -self_report_change as f64)).collect(),
        expected_net_self_report_v1: ps
            .iter()
            .map(|p| net(*p, (slashed_u - v1_refund) as f64 + spec.ledger.min_fee as f64))
            .collect(),
    })
}

/// A PoS chain whose genesis has the equivocator (bonded `stake`) and a reporter.
fn spec(offender: &Keypair, reporter: &Keypair, stake: u64) -> ChainSpec {
    let account = |name: &str, key: &Keypair, stake: u64| GenesisAccount {
        name: Some(name.to_owned()),
        address: key.address(),
        balance: 1_000_000,
        stake,
        vrf_key: Some(key.vrf().public_key()),
    };
    ChainSpec {
        chain_id: "klero-lab-equivocate".to_owned(),
        genesis_time_ms: 0,
        ledger: LedgerSection::DEV,
        consensus: Consensus::Pos(PosParams::dev(1_000)),
        accounts: vec![
            account("equivocator", offender, stake),
            account("reporter", reporter, LedgerSection::DEV.min_stake),
        ],
    }
}

/// Two signed headers of `offender` for slot 7 that differ in their tx root.
fn evidence(spec: &ChainSpec, offender: &Keypair) -> Equivocation {
    let header = |tx_root: Hash| Header {
        height: 1,
        parent: spec.digest(),
        timestamp_ms: 7_000,
        tx_root,
        state_root: Hash::ZERO,
        proposer: offender.address(),
        seal: Seal::Pos(PosSeal {
            slot: 7,
            suite: vrf::SUITE,
            vrf_key: offender.vrf().public_key(),
            vrf_output: VrfOutput([0; 64]),
            vrf_proof: VrfProof([0; 80]),
        }),
    };
    Equivocation {
        a: SignedHeader::sign(header(Hash::of_parts(&[b"a"])), offender, &spec.chain_id),
        b: SignedHeader::sign(header(Hash::of_parts(&[b"b"])), offender, &spec.chain_id),
    }
}

/// The genesis state after `reporter`'s evidence transaction.
fn apply(spec: &ChainSpec, reporter: &Keypair, evidence: &Equivocation) -> Result<MemState, Refused> {
    let mut state = spec.genesis_state();
    let tx = Tx::sign(
        TxBody {
            from: reporter.address(),
            nonce: 0,
            fee: spec.ledger.min_fee,
            kind: TxKind::Evidence(Box::new(evidence.clone())),
        },
        reporter,
        &spec.chain_id,
    );
    // The block's proposer is nobody involved, so the fee leaves both.
    let ctx = spec.block_ctx(0, Address([0; 32]));
    let mut overlay = StateOverlay::new(&state);
    overlay.apply_tx(&tx, &ctx).map_err(Refused)?;
    let changes = overlay.finish().map_err(|e| Refused(e.into()))?;
    state.apply(&changes).map_err(|e| Refused(e.into()))?;
    Ok(state)
}

/// Balance, bonded and unbonding stake of an account.
fn wealth(state: &MemState, address: &Address) -> i128 {
    let account = state.account(address).ok().flatten().unwrap_or_default();
    let unbonding: u64 = state
        .entries()
        .filter_map(|entry| match entry {
            (StateKey::Unbonding { owner, .. }, StateValue::Unbonding(amount)) if owner == address => {
                Some(*amount)
            }
            _ => None,
        })
        .fold(0, u64::saturating_add);
    i128::from(account.balance) + i128::from(account.bonded) + i128::from(unbonding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slashing_takes_the_stake_and_self_reporting_refunds_nothing() {
        let row = row(40_000, 0, &[0.0, 0.5, 1.0]).expect("evidence applies");
        assert_eq!(row.slashed, 40_000);
        assert_eq!(row.reporter_reward, 20_000);
        // Self-reported: the whole stake and the fee are gone.
        assert_eq!(row.self_report_change, -40_001);
        assert_eq!(row.gain, LedgerSection::DEV.block_reward);
        assert_eq!(row.expected_net[0].1, 1_000.0);
        assert_eq!(row.expected_net[2].1, 1_000.0 - 40_000.0);
        assert!(row.expected_net_self_report_v1[2].1 > row.expected_net_self_report[2].1);
        assert!((row.break_even_p - 0.025).abs() < 1e-12);
    }
}
