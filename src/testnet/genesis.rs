//! The chain spec and keys of a new local testnet.
//!
//! Every node gets a fresh key that is also a genesis account: on a PoS
//! testnet it is bonded with a stake proportional to its weight; on a PoW
//! testnet its miner is capped at a hashrate proportional to its weight and
//! the initial target is set so the capped total finds a block per block
//! time. A `faucet` account holds most of the money for users to draw on.
//!
//! The spec is built as a [`ChainSpec`] value from the chain's development
//! presets and written with the spec's own serializer, so it is exactly what
//! the nodes will read back.

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
