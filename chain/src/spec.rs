//! The chain spec: a TOML file that fixes a chain's genesis and rules.
//!
//! [`ChainSpec::from_toml`] parses and validates in one step; every
//! validation error names the field (`pos.slot_ms`, `accounts[2].vrf_key`).
//! [`ChainSpec::to_toml`] writes a spec back in the same format (a spec
//! built as a value, as the testnet launcher does, round-trips).
//! [`ChainSpec::genesis`] builds the genesis block and state
//! deterministically: the same file gives the same genesis id everywhere.
//!
//! The rules derived from the parameters live here too:
//! [`ChainSpec::epoch_of`] (the epoch of a block, for both lotteries) and
//! [`ChainSpec::block_ctx`] (what the ledger needs to apply a block). The
//! development presets ([`LedgerSection::DEV`], [`PosParams::dev`],
//! [`PowParams::dev`]) are the parameters of `testnet/*.toml`, of every
//! `klero testnet` chain and of the election lab's PoS draw.
//!
//! # Format
//!
//! ```toml
//! [chain]
//! id = "klero-pos-dev"            # 1..=64 chars of [a-z0-9-]
//! consensus = "pos"               # "pos" or "pow"
//! genesis_time_ms = 1767225600000 # Unix time in milliseconds
//!
//! [ledger]
//! block_reward = 1000
//! min_fee = 1
//! min_stake = 100
//! unbonding_epochs = 3           # PoS: at least the snapshot lag (2) + 1
//!
//! [pos]                           # only with consensus = "pos"
//! slot_ms = 1000
//! epoch_slots = 20
//! freeze_slots = 5                # VRF outputs after this point do not feed eta
//! leader_c_milli = 3000           # c = 3: P(slot has a leader) = 1 - e^-3
//! max_failover_steps = 8
//! max_rollback = 50               # k: never reorganise deeper
//!
//! [pow]                           # only with consensus = "pow"
//! target_block_ms = 2000
//! half_life_blocks = 32
//! initial_target = "0000ffff…"    # 64 hex digits, big-endian
//! pow_limit = "00ffffff…"         # the easiest target ASERT may reach
//! max_future_drift_ms = 4000
//! epoch_blocks = 20
//! max_rollback = 100              # never reorganise deeper
//!
//! [[accounts]]
//! name = "alice"                  # optional label
//! address = "klero1…"
//! balance = 1000000
//! stake = 10000                   # optional; needs vrf_key
//! vrf_key = "…"                   # 64 hex digits; one account per key
//! ```
//!
//! Genesis VRF keys carry no proof of possession: the spec's author vouches
//! for them. They must still be valid keys and distinct, and they are
//! registered to their accounts like keys staked later.

use std::collections::{BTreeMap, BTreeSet};

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::codec;
use crate::epoch::{EpochInfo, SNAPSHOT_LAG_EPOCHS, StakeSnapshot, Staker};
use crate::hash::Hash;
use crate::keys::{Address, Signature};
use crate::ledger::{Account, BlockCtx, LedgerParams};
use crate::state::{CommittedState, MemState, StateValue};
use crate::state_tree::StateKey;
use crate::types::{Block, Header, PosSeal, PowSeal, Seal, SealedBlock, SignedHeader, tx_root};
use crate::vrf::{self, VrfOutput, VrfProof, VrfPublicKey};

/// Why a spec was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    /// Not TOML, or a field has the wrong type or is missing.
    #[error("chain spec is not valid TOML for klero: {0}")]
    Parse(String),
    /// A field has a value the rules forbid.
    #[error("chain spec field `{field}`: {reason}")]
    Field {
        /// The field's path, e.g. `pos.slot_ms`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The spec could not be written as TOML.
    #[error("chain spec cannot be written as TOML: {0}")]
    Write(String),
}

fn field_err(field: impl Into<String>, reason: impl Into<String>) -> SpecError {
    SpecError::Field {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The proof-of-stake timing and draw parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
#[serde(deny_unknown_fields)]
pub struct PosParams {
    /// Slot length.
    pub slot_ms: u64,
    /// Slots per epoch.
    pub epoch_slots: u64,
    /// Slots before an epoch's end after which VRF outputs no longer feed eta.
    pub freeze_slots: u64,
    /// The threshold c in thousandths: P(a slot has an eligible staker) = 1 - e^-c.
    pub leader_c_milli: u32,
    /// Cap on the failover step j (threshold widens to c·(j+1)).
    pub max_failover_steps: u32,
    /// k: the deepest reorganisation a node accepts.
    pub max_rollback: u64,
}

/// The proof-of-work difficulty parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
#[serde(deny_unknown_fields)]
pub struct PowParams {
    /// Target time between blocks.
    pub target_block_ms: u64,
    /// ASERT half-life in block intervals.
    pub half_life_blocks: u64,
    /// Target of the first block after genesis, 64 hex digits big-endian.
    #[serde(deserialize_with = "hex32", serialize_with = "to_hex")]
    pub initial_target: [u8; 32],
    /// The easiest target allowed (Bitcoin's powLimit): ASERT never goes
    /// above it, so a branch forked with old timestamps cannot make its
    /// blocks nearly free. At least `initial_target`.
    #[serde(deserialize_with = "hex32", serialize_with = "to_hex")]
    pub pow_limit: [u8; 32],
    /// How far into the future a timestamp may be.
    pub max_future_drift_ms: u64,
    /// Blocks per epoch (times unbonding).
    pub epoch_blocks: u64,
    /// The deepest reorganisation a node accepts; a block forking deeper
    /// is refused before it is validated.
    pub max_rollback: u64,
}

/// Which lottery chooses proposers.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Consensus {
    /// Proof of work.
    Pow(PowParams),
    /// Proof of stake.
    Pos(PosParams),
}

/// An account at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct GenesisAccount {
    /// A label for people (`alice`); not part of the state.
    pub name: Option<String>,
    /// The address.
    pub address: Address,
    /// Spendable balance.
    pub balance: u64,
    /// Bonded stake.
    pub stake: u64,
    /// VRF key, required with stake.
    pub vrf_key: Option<VrfPublicKey>,
}

/// A validated chain spec.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ChainSpec {
    /// The chain id: gossip topics and signatures are bound to it.
    pub chain_id: String,
    /// Genesis time; PoS slot 0 starts here.
    pub genesis_time_ms: u64,
    /// Ledger rules.
    pub ledger: LedgerSection,
    /// The lottery.
    pub consensus: Consensus,
    /// Genesis accounts.
    pub accounts: Vec<GenesisAccount>,
}

/// The `[ledger]` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
#[serde(deny_unknown_fields)]
pub struct LedgerSection {
    /// Newly issued per block.
    pub block_reward: u64,
    /// Smallest fee.
    pub min_fee: u64,
    /// Smallest bonded stake.
    pub min_stake: u64,
    /// Unbonding delay in epochs.
    pub unbonding_epochs: u64,
}

impl LedgerSection {
    /// The development ledger rules (`testnet/*.toml`, `klero testnet`).
    pub const DEV: LedgerSection = LedgerSection {
        block_reward: 1000,
        min_fee: 1,
        min_stake: 1000,
        unbonding_epochs: 3,
    };
}

impl PosParams {
    /// The epoch of `slot`: epoch `e` holds slots `e * epoch_slots ..
    /// (e + 1) * epoch_slots`.
    pub fn epoch_of_slot(&self, slot: u64) -> u64 {
        slot / self.epoch_slots
    }

    /// The development draw with slots of `slot_ms` (`testnet/pos.toml`
    /// has 1000): 10-slot epochs frozen 3 slots before their end, c = 3,
    /// up to 8 failover steps, rollbacks of at most 50 blocks.
    pub fn dev(slot_ms: u64) -> PosParams {
        PosParams {
            slot_ms,
            epoch_slots: 10,
            freeze_slots: 3,
            leader_c_milli: 3_000,
            max_failover_steps: 8,
            max_rollback: 50,
        }
    }
}

impl PowParams {
    /// The epoch of the block at `height` (it times unbonding).
    pub fn epoch_of_height(&self, height: u64) -> u64 {
        height / self.epoch_blocks
    }

    /// The development difficulty rules for a block every
    /// `target_block_ms` starting at `initial_target` (`testnet/pow.toml`
    /// has 2000 ms): a 32-block half-life, targets at most 256 times easier
    /// than the initial one, a future drift of two block times but at least
    /// 4 s, 10-block epochs, rollbacks of at most 100 blocks.
    pub fn dev(target_block_ms: u64, initial_target: [u8; 32]) -> PowParams {
        PowParams {
            target_block_ms,
            half_life_blocks: 32,
            initial_target,
            pow_limit: times_256(initial_target),
            max_future_drift_ms: target_block_ms.saturating_mul(2).max(4_000),
            epoch_blocks: 10,
            max_rollback: 100,
        }
    }
}

/// `target × 256`, saturating at 2^256 − 1: one byte to the left.
fn times_256(target: [u8; 32]) -> [u8; 32] {
    if target[0] != 0 {
        return [0xff; 32];
    }
    let mut out = [0xff; 32];
    out[..31].copy_from_slice(&target[1..]);
    out
}

/// The file's shape, read by [`ChainSpec::from_toml`] and written by
/// [`ChainSpec::to_toml`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    chain: RawChain,
    ledger: LedgerSection,
    #[serde(skip_serializing_if = "Option::is_none")]
    pos: Option<PosParams>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pow: Option<PowParams>,
    #[serde(default)]
    accounts: Vec<RawAccount>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChain {
    id: String,
    consensus: String,
    genesis_time_ms: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    address: String,
    #[serde(default)]
    balance: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    stake: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    vrf_key: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn hex32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
    let s = String::deserialize(d)?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(&s, &mut out)
        .map_err(|e| serde::de::Error::custom(format!("expected 64 hex digits: {e}")))?;
    Ok(out)
}

fn to_hex<S: serde::Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

impl ChainSpec {
    /// Parses and validates a spec.
    ///
    /// # Errors
    ///
    /// [`SpecError::Parse`] for TOML or type errors (with toml's location),
    /// [`SpecError::Field`] naming the first field whose value is invalid.
    pub fn from_toml(text: &str) -> Result<ChainSpec, SpecError> {
        let raw: RawSpec = toml::from_str(text).map_err(|e| SpecError::Parse(e.to_string()))?;
        let chain_id = raw.chain.id;
        if chain_id.is_empty()
            || chain_id.len() > 64
            || !chain_id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(field_err(
                "chain.id",
                "must be 1 to 64 characters of a-z, 0-9 and -",
            ));
        }
        let consensus = match (raw.chain.consensus.as_str(), raw.pos, raw.pow) {
            ("pos", Some(pos), None) => Consensus::Pos(validate_pos(pos)?),
            ("pow", None, Some(pow)) => Consensus::Pow(validate_pow(pow)?),
            ("pos", None, _) => return Err(field_err("pos", "a pos chain needs a [pos] section")),
            ("pow", _, None) => return Err(field_err("pow", "a pow chain needs a [pow] section")),
            ("pos", Some(_), Some(_)) => {
                return Err(field_err("pow", "a pos chain must not have a [pow] section"));
            }
            ("pow", Some(_), Some(_)) => {
                return Err(field_err("pos", "a pow chain must not have a [pos] section"));
            }
            (other, _, _) => {
                return Err(field_err(
                    "chain.consensus",
                    format!("`{other}` is neither \"pos\" nor \"pow\""),
                ));
            }
        };
        let ledger = raw.ledger;
        if ledger.min_stake == 0 {
            return Err(field_err("ledger.min_stake", "must be at least 1"));
        }
        // Stake unbonded in epoch e still draws until e + lag; it must stay
        // slashable for a whole epoch after its last slot.
        let min_unbonding = SNAPSHOT_LAG_EPOCHS + 1;
        if matches!(consensus, Consensus::Pos(_)) && ledger.unbonding_epochs < min_unbonding {
            return Err(field_err(
                "ledger.unbonding_epochs",
                format!(
                    "must be at least {min_unbonding} on a pos chain (the stake snapshot lag of \
                     {SNAPSHOT_LAG_EPOCHS} epochs plus one), so stake stays slashable while it draws"
                ),
            ));
        }
        let accounts = validate_accounts(raw.accounts, &ledger)?;
        if matches!(consensus, Consensus::Pos(_)) && !accounts.iter().any(|a| a.stake > 0) {
            return Err(field_err(
                "accounts",
                "a pos chain needs at least one account with stake",
            ));
        }
        Ok(ChainSpec {
            chain_id,
            genesis_time_ms: raw.chain.genesis_time_ms,
            ledger,
            consensus,
            accounts,
        })
    }

    /// Writes the spec as TOML in the format [`ChainSpec::from_toml`] reads.
    ///
    /// # Errors
    ///
    /// [`SpecError::Write`] if the TOML writer refuses a value (it takes
    /// every spec this crate builds; the error exists so that a future field
    /// it cannot write is reported, not a panic).
    pub fn to_toml(&self) -> Result<String, SpecError> {
        let (pos, pow) = match &self.consensus {
            Consensus::Pos(pos) => (Some(pos.clone()), None),
            Consensus::Pow(pow) => (None, Some(pow.clone())),
        };
        let raw = RawSpec {
            chain: RawChain {
                id: self.chain_id.clone(),
                consensus: self.consensus_name().to_owned(),
                genesis_time_ms: self.genesis_time_ms,
            },
            ledger: self.ledger.clone(),
            pos,
            pow,
            accounts: self
                .accounts
                .iter()
                .map(|a| RawAccount {
                    name: a.name.clone(),
                    address: a.address.to_bech32(),
                    balance: a.balance,
                    stake: a.stake,
                    vrf_key: a.vrf_key.map(|k| hex::encode(k.0)),
                })
                .collect(),
        };
        toml::to_string(&raw).map_err(|e| SpecError::Write(e.to_string()))
    }

    /// The epoch a block belongs to: on a PoS chain the epoch of its slot
    /// ([`PosParams::epoch_of_slot`]), on a PoW chain that of its height
    /// ([`PowParams::epoch_of_height`]). The one rule validation,
    /// production, the node and the API all use. A header whose seal does
    /// not match the chain (refused by validation) counts as slot 0.
    pub fn epoch_of(&self, header: &Header) -> u64 {
        match &self.consensus {
            Consensus::Pos(params) => params.epoch_of_slot(header.slot().unwrap_or(0)),
            Consensus::Pow(params) => params.epoch_of_height(header.height),
        }
    }

    /// What the ledger needs to apply transactions in `epoch` with fees and
    /// the reward going to `proposer`.
    pub fn block_ctx(&self, epoch: u64, proposer: Address) -> BlockCtx<'_> {
        BlockCtx::new(&self.chain_id, epoch, proposer, self.ledger_params())
    }

    /// The ledger rules.
    pub fn ledger_params(&self) -> LedgerParams {
        LedgerParams {
            block_reward: self.ledger.block_reward,
            min_fee: self.ledger.min_fee,
            min_stake: self.ledger.min_stake,
            unbonding_epochs: self.ledger.unbonding_epochs,
            slashing: matches!(self.consensus, Consensus::Pos(_)),
        }
    }

    /// The deepest reorganisation the chain allows (`pos.max_rollback` or
    /// `pow.max_rollback`): a node refuses blocks that fork deeper, and
    /// keeps the change sets of this many blocks to undo them.
    pub fn max_rollback(&self) -> u64 {
        match &self.consensus {
            Consensus::Pos(params) => params.max_rollback,
            Consensus::Pow(params) => params.max_rollback,
        }
    }

    /// "pos" or "pow".
    pub fn consensus_name(&self) -> &'static str {
        match self.consensus {
            Consensus::Pos(_) => "pos",
            Consensus::Pow(_) => "pow",
        }
    }

    /// BLAKE3 of the validated spec's encoding; genesis's parent, so every
    /// chain descends from exactly one spec.
    pub fn digest(&self) -> Hash {
        Hash::of_parts(&[b"klero/spec/v1", &codec::encode(self)])
    }

    /// The genesis state: the spec's accounts, their VRF keys registered,
    /// epoch 0 with `eta_0`, and the genesis stakes as the snapshots of
    /// epochs 0 and 1.
    pub fn genesis_state(&self) -> MemState {
        let mut entries = Vec::with_capacity(2 * self.accounts.len() + 3);
        let mut stakers = Vec::new();
        for genesis in &self.accounts {
            let account = Account {
                balance: genesis.balance,
                bonded: genesis.stake,
                vrf_key: genesis.vrf_key,
                ..Account::default()
            };
            stakers.extend(Staker::of(genesis.address, &account));
            entries.push((StateKey::Account(genesis.address), StateValue::Account(account)));
            if let Some(key) = genesis.vrf_key {
                entries.push((StateKey::VrfKey(key), StateValue::VrfKey(genesis.address)));
            }
        }
        let snapshot = Arc::new(StakeSnapshot::of(stakers));
        entries.push((
            StateKey::Epoch,
            StateValue::Epoch(EpochInfo::genesis(self.digest())),
        ));
        for epoch in [0, 1] {
            entries.push((
                StateKey::Snapshot { epoch },
                StateValue::Snapshot(Arc::clone(&snapshot)),
            ));
        }
        MemState::new(entries)
    }

    /// The genesis block and state. Nobody signs genesis; its seal carries
    /// the initial target (PoW) or slot 0 (PoS).
    pub fn genesis(&self) -> (SealedBlock, MemState) {
        let state = self.genesis_state();
        let seal = match &self.consensus {
            Consensus::Pow(pow) => Seal::Pow(PowSeal {
                target: pow.initial_target,
                nonce: 0,
            }),
            Consensus::Pos(_) => Seal::Pos(PosSeal {
                slot: 0,
                suite: vrf::SUITE,
                vrf_key: VrfPublicKey([0; 32]),
                vrf_output: VrfOutput([0; 64]),
                vrf_proof: VrfProof([0; 80]),
            }),
        };
        let header = Header {
            height: 0,
            parent: self.digest(),
            timestamp_ms: self.genesis_time_ms,
            tx_root: tx_root(&[]),
            state_root: CommittedState::root(&state),
            proposer: Address::default(),
            seal,
        };
        let block = Block {
            signed: SignedHeader {
                header,
                signature: Signature::ZERO,
            },
            txs: Vec::new(),
        };
        (block.seal(), state)
    }
}

fn validate_pos(pos: PosParams) -> Result<PosParams, SpecError> {
    if pos.slot_ms < 100 {
        return Err(field_err("pos.slot_ms", "must be at least 100 ms"));
    }
    if pos.epoch_slots < 4 {
        return Err(field_err("pos.epoch_slots", "must be at least 4"));
    }
    if pos.freeze_slots >= pos.epoch_slots {
        return Err(field_err(
            "pos.freeze_slots",
            "must be smaller than pos.epoch_slots",
        ));
    }
    if pos.leader_c_milli == 0 || pos.leader_c_milli > 20_000 {
        return Err(field_err(
            "pos.leader_c_milli",
            "must be between 1 and 20000 (c between 0.001 and 20)",
        ));
    }
    if pos.max_rollback == 0 {
        return Err(field_err("pos.max_rollback", "must be at least 1"));
    }
    Ok(pos)
}

fn validate_pow(pow: PowParams) -> Result<PowParams, SpecError> {
    if pow.target_block_ms < 100 {
        return Err(field_err("pow.target_block_ms", "must be at least 100 ms"));
    }
    if pow.half_life_blocks == 0 {
        return Err(field_err("pow.half_life_blocks", "must be at least 1"));
    }
    if pow.initial_target == [0; 32] {
        return Err(field_err("pow.initial_target", "must not be zero"));
    }
    let half_life_ms = pow.half_life_blocks.saturating_mul(pow.target_block_ms);
    if pow.max_future_drift_ms == 0 || pow.max_future_drift_ms >= half_life_ms {
        return Err(field_err(
            "pow.max_future_drift_ms",
            format!("must be between 1 and the half-life ({half_life_ms} ms)"),
        ));
    }
    if pow.epoch_blocks == 0 {
        return Err(field_err("pow.epoch_blocks", "must be at least 1"));
    }
    if pow.pow_limit < pow.initial_target {
        return Err(field_err("pow.pow_limit", "must be at least pow.initial_target"));
    }
    if pow.max_rollback == 0 {
        return Err(field_err("pow.max_rollback", "must be at least 1"));
    }
    Ok(pow)
}

fn validate_accounts(raw: Vec<RawAccount>, ledger: &LedgerSection) -> Result<Vec<GenesisAccount>, SpecError> {
    let mut accounts: Vec<GenesisAccount> = Vec::with_capacity(raw.len());
    // Seen addresses, and VRF keys with the account that has each: a spec
    // of many accounts is checked in O(n log n).
    let mut addresses = BTreeSet::new();
    let mut vrf_keys = BTreeMap::new();
    let mut supply: u64 = 0;
    for (i, a) in raw.into_iter().enumerate() {
        let address: Address = a
            .address
            .parse()
            .map_err(|e| field_err(format!("accounts[{i}].address"), format!("{e}")))?;
        if !addresses.insert(address) {
            return Err(field_err(format!("accounts[{i}].address"), "appears twice"));
        }
        let vrf_key = match a.vrf_key {
            Some(text) => {
                let mut key = [0u8; 32];
                hex::decode_to_slice(&text, &mut key).map_err(|e| {
                    field_err(
                        format!("accounts[{i}].vrf_key"),
                        format!("expected 64 hex digits: {e}"),
                    )
                })?;
                let key = VrfPublicKey(key);
                key.validate()
                    .map_err(|e| field_err(format!("accounts[{i}].vrf_key"), format!("{e}")))?;
                if let Some(j) = vrf_keys.insert(key, i) {
                    return Err(field_err(
                        format!("accounts[{i}].vrf_key"),
                        format!("is also the vrf_key of accounts[{j}]; every account needs its own"),
                    ));
                }
                Some(key)
            }
            None => None,
        };
        if a.stake > 0 {
            if vrf_key.is_none() {
                return Err(field_err(
                    format!("accounts[{i}].vrf_key"),
                    "an account with stake needs a vrf_key",
                ));
            }
            if a.stake < ledger.min_stake {
                return Err(field_err(
                    format!("accounts[{i}].stake"),
                    format!("{} is below ledger.min_stake ({})", a.stake, ledger.min_stake),
                ));
            }
        }
        supply = supply
            .checked_add(a.balance)
            .and_then(|s| s.checked_add(a.stake))
            .ok_or_else(|| field_err(format!("accounts[{i}].balance"), "total supply exceeds 2^64 - 1"))?;
        accounts.push(GenesisAccount {
            name: a.name,
            address,
            balance: a.balance,
            stake: a.stake,
            vrf_key,
        });
    }
    Ok(accounts)
}
