//! Chain spec tests: the shipped specs parse and use the development keys
//! they claim to, and broken specs are refused with the field named.

use klero_chain::Keypair;
use klero_chain::spec::{ChainSpec, Consensus, SpecError};
use klero_chain::state::{CommittedState, StateRead};

const POS: &str = include_str!("../../testnet/pos.toml");
const POW: &str = include_str!("../../testnet/pow.toml");

#[test]
fn shipped_specs_parse() {
    let pos = ChainSpec::from_toml(POS).unwrap();
    assert!(matches!(pos.consensus, Consensus::Pos(_)));
    let pow = ChainSpec::from_toml(POW).unwrap();
    assert!(matches!(pow.consensus, Consensus::Pow(_)));
}

#[test]
fn shipped_specs_hold_the_dev_keys_they_name() {
    for text in [POS, POW] {
        let spec = ChainSpec::from_toml(text).unwrap();
        for account in &spec.accounts {
            let key = Keypair::dev(account.name.as_deref().unwrap());
            assert_eq!(account.address, key.address());
            if let Some(vrf_key) = account.vrf_key {
                assert_eq!(vrf_key, key.vrf().public_key(), "regenerate testnet/*.toml");
            }
        }
    }
}

#[test]
fn genesis_is_deterministic_and_bound_to_the_spec() {
    let (a, state_a) = ChainSpec::from_toml(POS).unwrap().genesis();
    let (b, _) = ChainSpec::from_toml(POS).unwrap().genesis();
    assert_eq!(a.id(), b.id());
    assert_eq!(a.header().state_root, CommittedState::root(&state_a));
    let other = POS.replace("block_reward = 1000", "block_reward = 1001");
    let (c, _) = ChainSpec::from_toml(&other).unwrap().genesis();
    assert_ne!(a.id(), c.id(), "any change of the spec changes genesis");
}

fn field_of(text: &str) -> String {
    match ChainSpec::from_toml(text) {
        Err(SpecError::Field { field, .. }) => field,
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn broken_specs_name_the_field() {
    let cases = [
        (POS.replace("slot_ms = 1000", "slot_ms = 5"), "pos.slot_ms"),
        (
            POS.replace("freeze_slots = 3", "freeze_slots = 10"),
            "pos.freeze_slots",
        ),
        (
            POS.replace("id = \"klero-pos-dev\"", "id = \"Bad Id!\""),
            "chain.id",
        ),
        (
            POS.replace("consensus = \"pos\"", "consensus = \"poa\""),
            "chain.consensus",
        ),
        (
            POS.replacen("stake = 10000", "stake = 10", 1),
            "accounts[0].stake",
        ),
        (
            POS.replacen("address = \"klero1q", "address = \"klero1p", 1),
            "accounts[0].address",
        ),
        (
            POW.replace("half_life_blocks = 32", "half_life_blocks = 0"),
            "pow.half_life_blocks",
        ),
        (
            POW.replace("max_future_drift_ms = 4000", "max_future_drift_ms = 640000"),
            "pow.max_future_drift_ms",
        ),
        (POW.replace("consensus = \"pow\"", "consensus = \"pos\""), "pos"),
    ];
    for (text, field) in cases {
        assert_eq!(field_of(&text), field);
    }
}

#[test]
fn a_pos_spec_whose_unbonding_ends_before_the_stake_leaves_the_draw_is_refused() {
    for short in [
        "unbonding_epochs = 0",
        "unbonding_epochs = 1",
        "unbonding_epochs = 2",
    ] {
        let text = POS.replace("unbonding_epochs = 3", short);
        assert_eq!(field_of(&text), "ledger.unbonding_epochs", "{short}");
    }
    // PoW has no snapshots to outlast.
    let pow = POW.replace("unbonding_epochs = 2", "unbonding_epochs = 1");
    assert!(ChainSpec::from_toml(&pow).is_ok());
}

#[test]
fn two_genesis_accounts_with_one_vrf_key_are_refused() {
    let spec = ChainSpec::from_toml(POS).unwrap();
    let first = hex::encode(spec.accounts[0].vrf_key.unwrap().0);
    let second = hex::encode(spec.accounts[1].vrf_key.unwrap().0);
    let text = POS.replace(&second, &first);
    assert_eq!(field_of(&text), "accounts[1].vrf_key");
}

#[test]
fn genesis_registers_every_vrf_key_to_its_account() {
    let spec = ChainSpec::from_toml(POS).unwrap();
    let state = spec.genesis_state();
    for account in &spec.accounts {
        let key = account.vrf_key.unwrap();
        assert_eq!(state.vrf_owner(&key).unwrap(), Some(account.address));
    }
}

#[test]
fn staker_without_vrf_key_is_refused() {
    let text = POS.replacen("vrf_key = ", "# vrf_key = ", 1);
    assert_eq!(field_of(&text), "accounts[0].vrf_key");
}

#[test]
fn type_errors_and_unknown_fields_are_parse_errors_with_a_location() {
    let text = POS.replace("slot_ms = 1000", "slot_ms = \"fast\"");
    let Err(SpecError::Parse(msg)) = ChainSpec::from_toml(&text) else {
        panic!("expected a parse error")
    };
    assert!(msg.contains("slot_ms"), "{msg}");
    let text = POS.replace("[ledger]", "[ledger]\nblock_rewrd = 5");
    assert!(matches!(ChainSpec::from_toml(&text), Err(SpecError::Parse(_))));
}

#[test]
fn shipped_specs_use_the_dev_presets() {
    use klero_chain::spec::{LedgerSection, PosParams, PowParams};
    let pos = ChainSpec::from_toml(POS).unwrap();
    assert_eq!(pos.ledger, LedgerSection::DEV);
    assert_eq!(pos.consensus, Consensus::Pos(PosParams::dev(1000)));
    let pow = ChainSpec::from_toml(POW).unwrap();
    assert_eq!(pow.ledger, LedgerSection::DEV);
    let Consensus::Pow(params) = &pow.consensus else {
        panic!("pow")
    };
    assert_eq!(*params, PowParams::dev(2000, params.initial_target));
}

#[test]
fn a_spec_built_as_a_value_round_trips_through_toml() {
    use klero_chain::spec::{GenesisAccount, PowParams};
    for text in [POS, POW] {
        let spec = ChainSpec::from_toml(text).unwrap();
        let written = spec.to_toml().unwrap();
        assert_eq!(ChainSpec::from_toml(&written).unwrap(), spec, "{written}");
    }
    // Changed as a value (no string patching), then written and read back.
    let mut spec = ChainSpec::from_toml(POW).unwrap();
    spec.genesis_time_ms = 1_800_000_000_000;
    spec.consensus = Consensus::Pow(PowParams::dev(1000, [0x0f; 32]));
    spec.accounts.push(GenesisAccount {
        name: None,
        address: Keypair::dev("erin").address(),
        balance: 7,
        stake: 0,
        vrf_key: None,
    });
    let back = ChainSpec::from_toml(&spec.to_toml().unwrap()).unwrap();
    assert_eq!(back, spec);
    assert_eq!(back.genesis().0.id(), spec.genesis().0.id());
}
