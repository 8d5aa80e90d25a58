//! The chain spec and keys of a new local testnet.
//!
//! Every node gets a fresh key that is also a genesis account: on a PoS
//! testnet it is bonded with a stake proportional to its weight; on a PoW
//! testnet its miner is capped at a hashrate proportional to its weight and
//! the initial target is set so the capped total finds a block per block
//! time. A `faucet` account holds most of the money for users to draw on.

use std::fmt::Write;

use klero_chain::{ChainSpec, Keypair};

/// Stake per unit of weight (PoS).
pub const STAKE_UNIT: u64 = 10_000;
/// Hashes per second per unit of weight (PoW).
pub const HASHRATE_UNIT: u64 = 200_000;
/// Each node's spendable balance at genesis.
pub const NODE_BALANCE: u64 = 1_000_000_000;
/// The faucet's balance.
pub const FAUCET_BALANCE: u64 = 1_000_000_000_000;

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
pub struct Plan {
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
pub fn hashrate_cap(weight: u64) -> u64 {
    weight.saturating_mul(HASHRATE_UNIT)
}

/// The spec's TOML for `plan`, with the node keys and the faucet as genesis
/// accounts.
pub fn spec_toml(plan: &Plan, nodes: &[Keypair], faucet: &Keypair) -> String {
    let mut out = String::new();
    let consensus = match plan.consensus {
        Consensus::Pos => "pos",
        Consensus::Pow => "pow",
    };
    let _ = writeln!(
        out,
        "# A local klero testnet written by `klero testnet up`.\n\n[chain]\nid = \"klero-testnet-{consensus}\"\nconsensus = \"{consensus}\"\ngenesis_time_ms = {}\n",
        plan.genesis_time_ms
    );
    let _ = writeln!(
        out,
        "[ledger]\nblock_reward = 1000\nmin_fee = 1\nmin_stake = 1000\nunbonding_epochs = 3\n"
    );
    match plan.consensus {
        Consensus::Pos => {
            let _ = writeln!(
                out,
                "[pos]\nslot_ms = {}\nepoch_slots = 10\nfreeze_slots = 3\nleader_c_milli = 3000\nmax_failover_steps = 8\nmax_rollback = 50\n",
                plan.block_ms
            );
        }
        Consensus::Pow => {
            let total: u64 = plan.weights.iter().map(|w| hashrate_cap(*w)).sum();
            let _ = writeln!(
                out,
                "[pow]\ntarget_block_ms = {}\nhalf_life_blocks = 32\ninitial_target = \"{}\"\nmax_future_drift_ms = {}\nepoch_blocks = 10\n",
                plan.block_ms,
                hex::encode(initial_target(total, plan.block_ms)),
                (plan.block_ms * 2).max(4_000),
            );
        }
    }
    let _ = writeln!(
        out,
        "[[accounts]]\nname = \"faucet\"\naddress = \"{}\"\nbalance = {FAUCET_BALANCE}\n",
        faucet.address()
    );
    for (i, (key, weight)) in nodes.iter().zip(&plan.weights).enumerate() {
        let _ = writeln!(
            out,
            "[[accounts]]\nname = \"node{i}\"\naddress = \"{}\"\nbalance = {NODE_BALANCE}",
            key.address()
        );
        if plan.consensus == Consensus::Pos {
            let _ = writeln!(
                out,
                "stake = {}\nvrf_key = \"{}\"",
                weight.saturating_mul(STAKE_UNIT),
                hex::encode(key.vrf().public_key().0)
            );
        }
        out.push('\n');
    }
    out
}

/// The target at which `hashrate` tries per second find one block per `block_ms`.
fn initial_target(hashrate: u64, block_ms: u64) -> [u8; 32] {
    let tries = (u128::from(hashrate) * u128::from(block_ms) / 1000).max(1);
    let mut target = [0xffu8; 32];
    let head = (u128::from(u64::MAX) / tries) as u64;
    target[..8].copy_from_slice(&head.to_be_bytes());
    target
}

/// Parses and validates the generated spec (a bug here is ours, not the user's).
///
/// # Errors
///
/// The spec error.
pub fn check(toml: &str) -> Result<ChainSpec, klero_chain::spec::SpecError> {
    ChainSpec::from_toml(toml)
}

#[cfg(test)]
mod tests {
    use klero_chain::spec;

    use super::*;

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
        let spec = check(&spec_toml(&plan, &nodes, &Keypair::dev("f"))).expect("valid spec");
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
        let spec = check(&spec_toml(&plan, &keys(2), &Keypair::dev("f"))).expect("valid spec");
        let spec::Consensus::Pow(pow) = &spec.consensus else {
            panic!("pow")
        };
        // 800k H/s × 2 s = 1.6M tries a block: the target's top 64 bits are 2^64 / 1.6M.
        let head = u64::from_be_bytes(pow.initial_target[..8].try_into().expect("8 bytes"));
        assert_eq!(head, u64::MAX / 1_600_000);
        assert!(spec.accounts.iter().all(|a| a.stake == 0));
    }
}
