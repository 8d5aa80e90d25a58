//! What `testnet up` starts: the chain spec, the faucet, and one member per
//! node with the key it proposes with.
//!
//! A generated chain (the default) gives every node a key of its own that
//! is a genesis account (a staker on PoS). A chain from `--spec FILE` keeps
//! the file's accounts, so the launcher runs a node for each staked account
//! it holds the key of ([`KeySource::known`]: the development keys by name,
//! `alice` in `testnet/pos.toml`, or the `--seed` keys), and more nodes, if
//! asked, as followers; on PoW any key mines.

use anyhow::{Result, bail};
use klero_chain::spec::Consensus as SpecConsensus;
use klero_chain::{ChainSpec, Keypair};

use super::genesis::{self, Consensus, Overrides, Plan};
use super::keys::KeySource;

/// Most nodes a testnet runs.
pub(crate) const MAX_NODES: usize = 64;
/// Nodes of a generated chain when `--nodes` is not given.
const DEFAULT_NODES: usize = 4;

/// What the command line asks for.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    /// The lottery of a generated chain.
    pub consensus: Consensus,
    /// `--spec FILE`, read and validated.
    pub spec: Option<ChainSpec>,
    /// `--nodes`.
    pub nodes: Option<usize>,
    /// `--weights` (empty: 1 each).
    pub weights: Vec<u64>,
    /// `--genesis-time`.
    pub genesis_time: GenesisTime,
    /// The spec fields to override (`block_ms` included).
    pub overrides: Overrides,
}

/// When the chain starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum GenesisTime {
    /// Two seconds from now: the default. A PoS chain whose genesis lies
    /// far in the past starts with a long catch-up of empty epochs.
    #[default]
    Now,
    /// The `--spec` file's own (to run a shared spec exactly).
    Spec,
    /// Unix milliseconds (to rebuild a genesis).
    At(u64),
}

/// One node to start.
#[derive(Debug)]
pub(crate) struct Member {
    /// `node0`, `node1`, …
    pub name: String,
    /// The key it runs with and the name of its key file (`node0`,
    /// `alice`); `None` for a follower.
    pub key: Option<(String, Keypair)>,
    /// Whether it stakes or mines.
    pub produce: bool,
    /// Its stake or hashrate weight.
    pub weight: u64,
}

/// The testnet to write and start.
#[derive(Debug)]
pub(crate) struct Chain {
    /// The spec, validated.
    pub spec: ChainSpec,
    /// Its lottery.
    pub consensus: Consensus,
    /// The pre-funded account users draw on, if the launcher holds its key.
    pub faucet: Option<Keypair>,
    /// The nodes.
    pub members: Vec<Member>,
}

/// Builds the chain asked for.
///
/// # Errors
///
/// Bad counts or weights, an override out of range (naming the flag and
/// the field), or a `--spec` PoS chain with no staker the launcher can run.
pub(crate) fn build(request: Request, keys: &KeySource, now_ms: u64) -> Result<Chain> {
    if let Some(n) = request.nodes
        && !(1..=MAX_NODES).contains(&n)
    {
        bail!("--nodes must be between 1 and {MAX_NODES}");
    }
    let mut chain = match request.spec.clone() {
        None => generated(&request, keys)?,
        Some(spec) => from_file(spec, &request, keys)?,
    };
    match (request.genesis_time, &request.spec) {
        (GenesisTime::Now, _) => chain.spec.genesis_time_ms = now_ms + 2_000,
        (GenesisTime::At(ms), _) => chain.spec.genesis_time_ms = ms,
        (GenesisTime::Spec, Some(_)) => {}
        (GenesisTime::Spec, None) => bail!("--genesis-time spec needs --spec FILE"),
    }
    genesis::apply(&mut chain.spec, &request.overrides)?;
    Ok(chain)
}

fn weights(request: &Request, nodes: usize) -> Result<Vec<u64>> {
    if request.weights.is_empty() {
        Ok(vec![1; nodes])
    } else if request.weights.len() == nodes && request.weights.iter().all(|w| *w > 0) {
        Ok(request.weights.clone())
    } else {
        bail!("--weights needs {nodes} positive numbers, one per node");
    }
}

fn generated(request: &Request, keys: &KeySource) -> Result<Chain> {
    let n = request.nodes.unwrap_or(DEFAULT_NODES);
    let weights = weights(request, n)?;
    let block_ms = request.overrides.block_ms.unwrap_or(match request.consensus {
        Consensus::Pos => 1_000,
        Consensus::Pow => 2_000,
    });
    let faucet = keys.key("faucet")?;
    let node_keys: Vec<Keypair> = (0..n)
        .map(|i| keys.key(&format!("node{i}")))
        .collect::<Result<_, _>>()?;
    let plan = Plan {
        consensus: request.consensus,
        weights: weights.clone(),
        block_ms,
        // Set by `build`.
        genesis_time_ms: 0,
    };
    let spec = genesis::chain_spec(&plan, &node_keys, &faucet);
    let members = node_keys
        .into_iter()
        .zip(weights)
        .enumerate()
        .map(|(i, (key, weight))| {
            let name = format!("node{i}");
            Member {
                key: Some((name.clone(), key)),
                name,
                produce: true,
                weight,
            }
        })
        .collect();
    Ok(Chain {
        spec,
        consensus: request.consensus,
        faucet: Some(faucet),
        members,
    })
}

fn from_file(spec: ChainSpec, request: &Request, keys: &KeySource) -> Result<Chain> {
    let known = keys.known(&spec);
    let faucet = known
        .iter()
        .find(|(a, _)| a.name.as_deref() == Some("faucet"))
        .map(|(_, k)| k.clone());
    let named = |(account, key): &(&klero_chain::spec::GenesisAccount, Keypair)| {
        (account.name.clone().unwrap_or_default(), key.clone())
    };
    let (consensus, members) = match &spec.consensus {
        SpecConsensus::Pos(_) => {
            if !request.weights.is_empty() {
                bail!("--weights sets the stakes of a generated chain; a --spec chain has the spec's");
            }
            let stakers: Vec<(String, Keypair)> =
                known.iter().filter(|(a, _)| a.stake > 0).map(named).collect();
            if stakers.is_empty() {
                bail!(
                    "the launcher holds the key of none of the spec's staked accounts, so no node could \
                     propose: it knows an account named like a development key (`klero keys show --dev \
                     alice`) or, with --seed, like a key of `testnet up --seed` (node0, …)"
                );
            }
            let n = request.nodes.unwrap_or(stakers.len());
            let mut stakers = stakers.into_iter();
            let members = (0..n)
                .map(|i| {
                    let key = stakers.next();
                    Member {
                        name: format!("node{i}"),
                        produce: key.is_some(),
                        key,
                        weight: 1,
                    }
                })
                .collect();
            (Consensus::Pos, members)
        }
        SpecConsensus::Pow(_) => {
            let n = request.nodes.unwrap_or(DEFAULT_NODES);
            let weights = weights(request, n)?;
            let mut accounts = known
                .iter()
                .filter(|(a, _)| a.name.as_deref() != Some("faucet"))
                .map(named);
            let members = weights
                .into_iter()
                .enumerate()
                .map(|(i, weight)| {
                    let name = format!("node{i}");
                    let key = match accounts.next() {
                        Some(account) => account,
                        None => (name.clone(), keys.key(&name)?),
                    };
                    Ok(Member {
                        name,
                        key: Some(key),
                        produce: true,
                        weight,
                    })
                })
                .collect::<Result<_>>()?;
            (Consensus::Pow, members)
        }
    };
    Ok(Chain {
        spec,
        consensus,
        faucet,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(spec: Option<&str>) -> Request {
        Request {
            consensus: Consensus::Pos,
            spec: spec.map(|text| ChainSpec::from_toml(text).expect("spec")),
            nodes: None,
            weights: Vec::new(),
            genesis_time: GenesisTime::Now,
            overrides: Overrides::default(),
        }
    }

    #[test]
    fn a_seed_gives_the_same_chain_twice() {
        let keys = KeySource {
            seed: Some("7".into()),
        };
        let request = Request {
            genesis_time: GenesisTime::At(1_800_000_000_000),
            ..request(None)
        };
        let a = build(request.clone(), &keys, 1).expect("chain");
        let b = build(request, &keys, 2).expect("chain");
        assert_eq!(a.spec, b.spec);
        assert_eq!(a.spec.genesis().0.id(), b.spec.genesis().0.id());
        assert_eq!(a.members.len(), 4);
    }

    #[test]
    fn the_dev_pos_spec_runs_its_four_stakers_and_followers() {
        let chain = build(
            Request {
                nodes: Some(5),
                genesis_time: GenesisTime::Spec,
                ..request(Some(include_str!("../../testnet/pos.toml")))
            },
            &KeySource::default(),
            0,
        )
        .expect("chain");
        let keys: Vec<Option<&str>> = chain
            .members
            .iter()
            .map(|m| m.key.as_ref().map(|(name, _)| name.as_str()))
            .collect();
        assert_eq!(
            keys,
            [Some("alice"), Some("bob"), Some("carol"), Some("dave"), None]
        );
        assert!(!chain.members[4].produce);
        // --genesis-time spec keeps the file's.
        assert_eq!(chain.spec.genesis_time_ms, 1_767_225_600_000);
        assert!(chain.faucet.is_none());
    }

    #[test]
    fn a_pos_spec_without_a_known_staker_is_refused() {
        // A generated chain's stakers have random keys: nobody else holds them.
        let spec = build(request(None), &KeySource::default(), 0)
            .expect("chain")
            .spec;
        let text = spec.to_toml().expect("toml");
        let err = build(request(Some(&text)), &KeySource::default(), 0).expect_err("no staker");
        assert!(err.to_string().contains("staked accounts"), "{err}");
    }
}
