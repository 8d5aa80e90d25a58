//! Where a testnet's keys come from: fresh from the operating system, or
//! derived from `testnet up --seed S`, so that the same seed gives the
//! same faucet, node keys, network identities (peer ids) and link-fault
//! draws every time.
//!
//! A derived secret is `BLAKE3::derive_key("klero testnet --seed v1",
//! len(S) ‖ S ‖ purpose ‖ 0 ‖ name)` with `len(S)` as 8 bytes little-endian:
//! the length prefix and the separator keep every (seed, purpose, name)
//! apart. It is as secret as the seed, which is to say not at all: these are
//! development keys, like `klero keys show --dev alice`.

use klero_chain::spec::GenesisAccount;
use klero_chain::{ChainSpec, Keypair};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::keyfile::{self, KeyFileError};

const CONTEXT: &str = "klero testnet --seed v1";

/// Fresh keys, or keys derived from a seed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeySource {
    /// `--seed`, if one was given.
    pub seed: Option<String>,
}

impl KeySource {
    /// The account key called `name` (`faucet`, `node0`, …).
    ///
    /// # Errors
    ///
    /// Without a seed, if the OS has no random source.
    pub(crate) fn key(&self, name: &str) -> Result<Keypair, KeyFileError> {
        match &self.seed {
            Some(seed) => Ok(Keypair::from_seed(*derive(seed, "account", name))),
            None => keyfile::generate(),
        }
    }

    /// The network identity (the `p2p.key` seed) of node `name`; `None`
    /// without a seed (the node makes a random one on first start).
    pub(crate) fn identity(&self, name: &str) -> Option<Zeroizing<[u8; 32]>> {
        self.seed.as_deref().map(|seed| derive(seed, "identity", name))
    }

    /// The seed of node `name`'s link-fault draws (loss, jitter): fixed
    /// per node name even without `--seed`, so a run can be repeated.
    pub(crate) fn link_seed(&self, name: &str) -> u64 {
        let secret = derive(self.seed.as_deref().unwrap_or(""), "link", name);
        let mut head = [0u8; 8];
        head.copy_from_slice(&secret[..8]);
        u64::from_le_bytes(head)
    }

    /// The keys this source can sign for among `spec`'s named accounts:
    /// a development key of that name (`alice`, as in `testnet/pos.toml`),
    /// or with a seed, the seeded key of that name. In account order.
    pub(crate) fn known<'a>(&self, spec: &'a ChainSpec) -> Vec<(&'a GenesisAccount, Keypair)> {
        spec.accounts
            .iter()
            .filter_map(|account| {
                let name = account.name.as_deref()?;
                let seeded = self
                    .seed
                    .as_deref()
                    .map(|seed| Keypair::from_seed(*derive(seed, "account", name)));
                [Some(Keypair::dev(name)), seeded]
                    .into_iter()
                    .flatten()
                    .find(|key| key.address() == account.address)
                    .map(|key| (account, key))
            })
            .collect()
    }
}

fn derive(seed: &str, purpose: &str, name: &str) -> Zeroizing<[u8; 32]> {
    let mut hasher = blake3::Hasher::new_derive_key(CONTEXT);
    hasher.update(&(seed.len() as u64).to_le_bytes());
    hasher.update(seed.as_bytes());
    hasher.update(purpose.as_bytes());
    hasher.update(&[0]);
    hasher.update(name.as_bytes());
    Zeroizing::new(*hasher.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeded(seed: &str) -> KeySource {
        KeySource {
            seed: Some(seed.to_owned()),
        }
    }

    #[test]
    fn a_seed_fixes_every_key_and_seeds_differ() {
        let (a, b, c) = (seeded("7"), seeded("7"), seeded("8"));
        let address = |s: &KeySource, name| s.key(name).expect("key").address();
        assert_eq!(address(&a, "node0"), address(&b, "node0"));
        assert_ne!(address(&a, "node0"), address(&c, "node0"));
        assert_ne!(address(&a, "node0"), address(&a, "node1"));
        assert_eq!(a.identity("node0"), b.identity("node0"));
        assert_ne!(a.identity("node0"), a.identity("node1"));
        // The identity and the account key of one name are unrelated.
        assert_ne!(
            a.identity("node0").map(|s| *s),
            Some(*a.key("node0").expect("key").seed())
        );
        assert_eq!(a.link_seed("node0"), b.link_seed("node0"));
        assert_ne!(a.link_seed("node0"), c.link_seed("node0"));
    }

    #[test]
    fn without_a_seed_keys_are_fresh_but_link_draws_are_fixed() {
        let random = KeySource::default();
        assert_ne!(
            random.key("node0").expect("key").address(),
            random.key("node0").expect("key").address()
        );
        assert!(random.identity("node0").is_none());
        assert_eq!(random.link_seed("node0"), KeySource::default().link_seed("node0"));
    }

    #[test]
    fn the_dev_spec_s_accounts_are_known_by_name() {
        let spec = ChainSpec::from_toml(include_str!("../../testnet/pos.toml")).expect("dev spec");
        let known = KeySource::default().known(&spec);
        let names: Vec<&str> = known.iter().filter_map(|(a, _)| a.name.as_deref()).collect();
        assert_eq!(names, ["alice", "bob", "carol", "dave"]);
        assert!(known.iter().all(|(a, k)| a.address == k.address()));
    }
}
