//! The chain spec and keys of a new local testnet.
//!
//! Every node gets a fresh key that is also a genesis account: on a PoS
//! testnet it is bonded with a stake proportional to its weight; on a PoW
//! testnet its miner is capped at a hashrate proportional to its weight and
//! the initial target is set so the capped total finds a block per block
//! time. A `faucet` account holds most of the money for users to draw on.
//!
//! The spec is built as a [`ChainSpec`] value from the chain's development
//! presets (or read from `--spec FILE`), changed by the command line's
//! [`Overrides`], and written with the spec's own serializer, so it is
//! exactly what the nodes will read back. Every override is checked by the
//! spec's own validation ([`ChainSpec::from_toml`]), so the rules have one
//! home and the error names the field.

use klero_chain::spec::{self, GenesisAccount, LedgerSection, PosParams, PowParams, SpecError};
use klero_chain::{ChainSpec, Keypair};

/// Stake per unit of weight (PoS).
pub(crate) const STAKE_UNIT: u64 = 10_000;
/// Hashes per second per unit of weight (PoW).
pub(crate) const HASHRATE_UNIT: u64 = 200_000;
/// Each node's spendable balance at genesis.
pub(crate) const NODE_BALANCE: u64 = 1_000_000_000;
/// The faucet's balance.
pub(crate) const FAUCET_BALANCE: u64 = 1_000_000_000_000;

/// Which lottery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consensus {
    /// Stake-weighted VRF draw.
    Pos,
    /// Proof-of-work race.
    Pow,
}

/// What a new testnet looks like.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// The lottery.
    pub consensus: Consensus,
    /// One weight per node.
    pub weights: Vec<u64>,
    /// Slot length (PoS) or target block time (PoW), in ms.
    pub block_ms: u64,
    /// Genesis time.
    pub genesis_time_ms: u64,
}

/// A hashrate cap for a node of `weight` (PoW).
pub(crate) fn hashrate_cap(weight: u64) -> u64 {
    weight.saturating_mul(HASHRATE_UNIT)
}

/// The spec for `plan`, with the node keys and the faucet as genesis accounts.
pub(crate) fn chain_spec(plan: &Plan, nodes: &[Keypair], faucet: &Keypair) -> ChainSpec {
    let (name, consensus) = match plan.consensus {
        Consensus::Pos => ("pos", spec::Consensus::Pos(PosParams::dev(plan.block_ms))),
        Consensus::Pow => {
            let total: u64 = plan.weights.iter().map(|w| hashrate_cap(*w)).sum();
            let target = initial_target(total, plan.block_ms);
            ("pow", spec::Consensus::Pow(PowParams::dev(plan.block_ms, target)))
        }
    };
    let mut accounts = vec![GenesisAccount {
        name: Some("faucet".to_owned()),
        address: faucet.address(),
        balance: FAUCET_BALANCE,
        stake: 0,
        vrf_key: None,
    }];
    accounts.extend(
        nodes
            .iter()
            .zip(&plan.weights)
            .enumerate()
            .map(|(i, (key, weight))| {
                let staking = plan.consensus == Consensus::Pos;
                GenesisAccount {
                    name: Some(format!("node{i}")),
                    address: key.address(),
                    balance: NODE_BALANCE,
                    stake: if staking {
                        weight.saturating_mul(STAKE_UNIT)
                    } else {
                        0
                    },
                    vrf_key: staking.then(|| key.vrf().public_key()),
                }
            }),
    );
    ChainSpec {
        chain_id: format!("klero-testnet-{name}"),
        genesis_time_ms: plan.genesis_time_ms,
        ledger: LedgerSection::DEV,
        consensus,
        accounts,
    }
}

/// Spec fields `testnet up` may set, each named after its flag.
#[derive(Clone, Debug, Default)]
pub(crate) struct Overrides {
    /// `--block-time`: `pos.slot_ms` or `pow.target_block_ms`.
    pub block_ms: Option<u64>,
    /// `--epoch-slots`: `pos.epoch_slots`.
    pub epoch_slots: Option<u64>,
    /// `--c`: `pos.leader_c_milli`, in thousandths.
    pub c_milli: Option<u64>,
    /// `--rollback`: `pos.max_rollback`.
    pub rollback: Option<u64>,
    /// `--half-life`: `pow.half_life_blocks`.
    pub half_life: Option<u64>,
    /// `--initial-target`: `pow.initial_target`, with `pow.pow_limit` kept
    /// 256 times easier (as [`PowParams::dev`] sets it).
    pub initial_target: Option<[u8; 32]>,
}

/// Why an override was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OverrideError {
    /// The flag sets a parameter of the other lottery.
    #[error("{flag} sets a proof-of-{needs} parameter, but this chain is proof of {has}")]
    WrongConsensus {
        /// The flag.
        flag: &'static str,
        /// `stake` or `work`.
        needs: &'static str,
        /// `stake` or `work`.
        has: &'static str,
    },
    /// The spec's validation refused the value.
    #[error("{flag} {value} is out of range: {reason}")]
    OutOfRange {
        /// The flag.
        flag: &'static str,
        /// Its value as given.
        value: String,
        /// The spec's error, which names the field.
        reason: SpecError,
    },
}

/// Applies `overrides` to `spec` one at a time, validating after each, so
/// the first bad one is named together with the spec field it broke.
///
/// # Errors
///
/// The first override of the wrong lottery or out of range.
pub(crate) fn apply(spec: &mut ChainSpec, overrides: &Overrides) -> Result<(), OverrideError> {
    use spec::Consensus::{Pos, Pow};
    let o = overrides;
    if let Some(ms) = o.block_ms {
        edit(spec, "--block-time", format!("{ms}ms"), |c| {
            match c {
                Pos(p) => p.slot_ms = ms,
                Pow(p) => p.target_block_ms = ms,
            }
            Some(())
        })?;
    }
    if let Some(n) = o.epoch_slots {
        edit(spec, "--epoch-slots", n, |c| pos(c).map(|p| p.epoch_slots = n))?;
    }
    if let Some(milli) = o.c_milli {
        // Above u32 is out of range as surely as 20001 is: let the spec say so.
        let value = u32::try_from(milli).unwrap_or(u32::MAX);
        edit(spec, "--c", milli as f64 / 1000.0, |c| {
            pos(c).map(|p| p.leader_c_milli = value)
        })?;
    }
    if let Some(k) = o.rollback {
        edit(spec, "--rollback", k, |c| pos(c).map(|p| p.max_rollback = k))?;
    }
    if let Some(n) = o.half_life {
        edit(spec, "--half-life", n, |c| pow(c).map(|p| p.half_life_blocks = n))?;
    }
    if let Some(target) = o.initial_target {
        edit(spec, "--initial-target", hex::encode(target), |c| {
            pow(c).map(|p| {
                p.initial_target = target;
                p.pow_limit = PowParams::dev(p.target_block_ms, target).pow_limit;
            })
        })?;
    }
    Ok(())
}

fn pos(c: &mut spec::Consensus) -> Option<&mut PosParams> {
    match c {
        spec::Consensus::Pos(p) => Some(p),
        spec::Consensus::Pow(_) => None,
    }
}

fn pow(c: &mut spec::Consensus) -> Option<&mut PowParams> {
    match c {
        spec::Consensus::Pow(p) => Some(p),
        spec::Consensus::Pos(_) => None,
    }
}

/// One override: `set` returns `None` when the chain has no such field.
fn edit(
    spec: &mut ChainSpec,
    flag: &'static str,
    value: impl std::fmt::Display,
    set: impl FnOnce(&mut spec::Consensus) -> Option<()>,
) -> Result<(), OverrideError> {
    let lottery = |c: &spec::Consensus| match c {
        spec::Consensus::Pos(_) => "stake",
        spec::Consensus::Pow(_) => "work",
    };
    let has = lottery(&spec.consensus);
    if set(&mut spec.consensus).is_none() {
        let needs = if has == "stake" { "work" } else { "stake" };
        return Err(OverrideError::WrongConsensus { flag, needs, has });
    }
    validate(spec).map_err(|reason| OverrideError::OutOfRange {
        flag,
        value: value.to_string(),
        reason,
    })
}

/// The spec's own validation of a spec value: what a node reading it would say.
fn validate(spec: &ChainSpec) -> Result<(), SpecError> {
    ChainSpec::from_toml(&spec.to_toml()?).map(drop)
}

/// The spec file's text: a header comment, then [`ChainSpec::to_toml`].
///
/// # Errors
///
/// If the spec cannot be written.
pub(crate) fn spec_toml(spec: &ChainSpec) -> Result<String, SpecError> {
    Ok(format!(
        "# A local klero testnet written by `klero testnet up`.\n\n{}",
        spec.to_toml()?
    ))
}

/// The target at which `hashrate` tries per second find one block per `block_ms`.
fn initial_target(hashrate: u64, block_ms: u64) -> [u8; 32] {
    let tries = (u128::from(hashrate) * u128::from(block_ms) / 1000).max(1);
    let mut target = [0xffu8; 32];
    let head = (u128::from(u64::MAX) / tries) as u64;
    target[..8].copy_from_slice(&head.to_be_bytes());
    target
}

/// Parses and validates the written spec: what the nodes will read must
/// be the spec that was built (a mismatch is a bug here, not the user's).
///
/// # Errors
///
/// The spec error, or [`SpecError::Write`] if it reads back differently.
pub(crate) fn check(toml: &str, built: &ChainSpec) -> Result<(), SpecError> {
    if ChainSpec::from_toml(toml)? == *built {
        Ok(())
    } else {
        Err(SpecError::Write("the written spec reads back differently".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(plan: &Plan, nodes: &[Keypair]) -> ChainSpec {
        let spec = chain_spec(plan, nodes, &Keypair::dev("f"));
        let text = spec_toml(&spec).expect("toml");
        check(&text, &spec).expect("reads back");
        ChainSpec::from_toml(&text).expect("valid spec")
    }

    fn keys(n: usize) -> Vec<Keypair> {
        (0..n).map(|i| Keypair::dev(&format!("t{i}"))).collect()
    }

    #[test]
    fn pos_spec_stakes_follow_weights() {
        let plan = Plan {
            consensus: Consensus::Pos,
            weights: vec![1, 1, 2, 4],
            block_ms: 500,
            genesis_time_ms: 1_800_000_000_000,
        };
        let nodes = keys(4);
        let spec = built(&plan, &nodes);
        let stakes: Vec<u64> = spec.accounts[1..].iter().map(|a| a.stake).collect();
        assert_eq!(stakes, vec![10_000, 10_000, 20_000, 40_000]);
        assert_eq!(spec.accounts[0].balance, FAUCET_BALANCE);
        assert!(matches!(spec.consensus, spec::Consensus::Pos(ref p) if p.slot_ms == 500));
        for (account, key) in spec.accounts[1..].iter().zip(&nodes) {
            assert_eq!(account.vrf_key, Some(key.vrf().public_key()));
        }
    }

    #[test]
    fn overrides_set_their_fields_and_refuse_by_field_name() {
        let plan = Plan {
            consensus: Consensus::Pos,
            weights: vec![1, 1],
            block_ms: 500,
            genesis_time_ms: 1_800_000_000_000,
        };
        let mut spec = built(&plan, &keys(2));
        let good = Overrides {
            epoch_slots: Some(20),
            c_milli: Some(2_500),
            rollback: Some(200),
            ..Overrides::default()
        };
        apply(&mut spec, &good).expect("in range");
        let spec::Consensus::Pos(pos) = &spec.consensus else {
            panic!("pos")
        };
        assert_eq!(
            (pos.epoch_slots, pos.leader_c_milli, pos.max_rollback),
            (20, 2_500, 200)
        );

        let bad = |o: Overrides| apply(&mut spec.clone(), &o).expect_err("refused").to_string();
        let err = bad(Overrides {
            epoch_slots: Some(2),
            ..Overrides::default()
        });
        assert!(
            err.contains("--epoch-slots 2") && err.contains("pos.epoch_slots"),
            "{err}"
        );
        let err = bad(Overrides {
            c_milli: Some(0),
            ..Overrides::default()
        });
        assert!(
            err.contains("--c 0") && err.contains("pos.leader_c_milli"),
            "{err}"
        );
        let err = bad(Overrides {
            rollback: Some(0),
            ..Overrides::default()
        });
        assert!(err.contains("pos.max_rollback"), "{err}");
        let err = bad(Overrides {
            half_life: Some(64),
            ..Overrides::default()
        });
        assert!(
            err.contains("--half-life") && err.contains("proof of stake"),
            "{err}"
        );
    }

    #[test]
    fn pow_overrides_are_checked_against_the_rest_of_the_spec() {
        let plan = Plan {
            consensus: Consensus::Pow,
            weights: vec![1],
            block_ms: 2_000,
            genesis_time_ms: 1_800_000_000_000,
        };
        let mut spec = built(&plan, &keys(1));
        apply(
            &mut spec,
            &Overrides {
                half_life: Some(64),
                initial_target: Some([0x0f; 32]),
                ..Overrides::default()
            },
        )
        .expect("in range");
        let spec::Consensus::Pow(pow) = &spec.consensus else {
            panic!("pow")
        };
        assert_eq!((pow.half_life_blocks, pow.initial_target), (64, [0x0f; 32]));
        // A 1-block half-life (2 s) is below the 4 s drift the spec allows.
        let err = apply(
            &mut spec,
            &Overrides {
                half_life: Some(1),
                ..Overrides::default()
            },
        )
        .expect_err("refused")
        .to_string();
        assert!(
            err.contains("--half-life 1") && err.contains("pow.max_future_drift_ms"),
            "{err}"
        );
        let err = apply(
            &mut spec,
            &Overrides {
                initial_target: Some([0; 32]),
                ..Overrides::default()
            },
        )
        .expect_err("refused")
        .to_string();
        assert!(err.contains("pow.initial_target"), "{err}");
    }

    #[test]
    fn pow_target_matches_the_capped_hashrate() {
        let plan = Plan {
            consensus: Consensus::Pow,
            weights: vec![1, 3],
            block_ms: 2_000,
            genesis_time_ms: 1_800_000_000_000,
        };
        let spec = built(&plan, &keys(2));
        let spec::Consensus::Pow(pow) = &spec.consensus else {
            panic!("pow")
        };
        // 800k H/s × 2 s = 1.6M tries a block: the target's top 64 bits are 2^64 / 1.6M.
        let head = u64::from_be_bytes(pow.initial_target[..8].try_into().expect("8 bytes"));
        assert_eq!(head, u64::MAX / 1_600_000);
        assert!(spec.accounts.iter().all(|a| a.stake == 0));
    }
}
