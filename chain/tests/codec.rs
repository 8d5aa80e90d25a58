//! Codec tests: round trips for every wire type, golden bytes that freeze the
//! format, and hostile input (truncated, oversized, random) that must give an
//! error and never a panic.
//!
//! The golden file `vectors/golden.txt` holds `name hex` lines. To change the
//! wire format on purpose, run with `KLERO_BLESS=1` and review the diff.

use klero_chain::codec::{self, CodecError, MAX_BLOCK_BYTES, MAX_TX_BYTES};
use klero_chain::keys::{Keypair, Signature};
use klero_chain::types::{
    Block, Equivocation, Header, PosSeal, PowSeal, Seal, SignedHeader, Tx, TxBody, TxKind, tx_root,
};
use klero_chain::vrf::{VrfOutput, VrfProof, VrfPublicKey};
use klero_chain::{Address, Hash};
use proptest::prelude::*;

const CHAIN: &str = "klero-golden";

fn pow_header() -> Header {
    Header {
        height: 7,
        parent: Hash([0x11; 32]),
        timestamp_ms: 1_767_225_600_123,
        tx_root: Hash([0x22; 32]),
        state_root: Hash([0x33; 32]),
        proposer: Keypair::dev("alice").address(),
        seal: Seal::Pow(PowSeal {
            target: [0x0f; 32],
            nonce: 0x0102_0304_0506_0708,
        }),
    }
}

fn pos_header(tx_byte: u8) -> Header {
    Header {
        height: 9,
        parent: Hash([0x44; 32]),
        timestamp_ms: 1_767_225_609_000,
        tx_root: Hash([tx_byte; 32]),
        state_root: Hash([0x55; 32]),
        proposer: Keypair::dev("bob").address(),
        seal: Seal::Pos(PosSeal {
            slot: 9,
            suite: 0x03,
            vrf_key: VrfPublicKey([0x66; 32]),
            vrf_output: VrfOutput([0x77; 64]),
            vrf_proof: VrfProof([0x88; 80]),
        }),
    }
}

fn txs() -> Vec<(&'static str, Tx)> {
    let alice = Keypair::dev("alice");
    let bob = Keypair::dev("bob");
    let body = |nonce, kind| TxBody {
        from: alice.address(),
        nonce,
        fee: 2,
        kind,
    };
    let evidence = Equivocation {
        a: SignedHeader::sign(pos_header(1), &bob, CHAIN),
        b: SignedHeader::sign(pos_header(2), &bob, CHAIN),
    };
    vec![
        (
            "tx_transfer",
            TxKind::Transfer {
                to: bob.address(),
                amount: 1_000,
            },
        ),
        (
            "tx_stake",
            TxKind::Stake {
                amount: 5_000,
                vrf_key: VrfPublicKey([0x99; 32]),
                pop: Box::new(VrfProof([0xaa; 80])),
            },
        ),
        ("tx_unstake", TxKind::Unstake { amount: 2_500 }),
        ("tx_evidence", TxKind::Evidence(Box::new(evidence))),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (name, kind))| (name, Tx::sign(body(i as u64, kind), &alice, CHAIN)))
    .collect()
}

fn block() -> Block {
    let txs: Vec<Tx> = txs().into_iter().map(|(_, tx)| tx).collect();
    let header = Header {
        tx_root: tx_root(&txs),
        ..pow_header()
    };
    Block {
        signed: SignedHeader::sign(header, &Keypair::dev("alice"), CHAIN),
        txs,
    }
}

/// The genesis headers of the bundled dev specs: they freeze the spec's
/// encoding (the parent is its digest) and the genesis state root, so the
/// state tree's keys and the value encodings of every genesis entry
/// (accounts, VRF keys, epoch data, snapshots) are covered.
fn genesis_headers() -> [(&'static str, Header); 2] {
    let spec = |text| klero_chain::ChainSpec::from_toml(text).unwrap();
    let pos = spec(include_str!("../../testnet/pos.toml")).genesis().0;
    let pow = spec(include_str!("../../testnet/pow.toml")).genesis().0;
    [
        ("header_genesis_pos", pos.header().clone()),
        ("header_genesis_pow", pow.header().clone()),
    ]
}

fn samples() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = vec![
        ("header_pow", codec::encode(&pow_header())),
        ("header_pos", codec::encode(&pos_header(1))),
        ("block", codec::encode(&block())),
    ];
    out.extend(genesis_headers().map(|(name, h)| (name, codec::encode(&h))));
    out.extend(txs().into_iter().map(|(name, tx)| (name, codec::encode(&tx))));
    out
}

#[test]
fn encodings_match_the_golden_vectors() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/golden.txt");
    let rendered: String = samples()
        .iter()
        .map(|(name, bytes)| format!("{name} {}\n", hex::encode(bytes)))
        .collect();
    if std::env::var_os("KLERO_BLESS").is_some() {
        std::fs::write(path, &rendered).unwrap();
    }
    let golden = std::fs::read_to_string(path).unwrap();
    for (line, (name, bytes)) in golden.lines().zip(samples()) {
        let (golden_name, golden_hex) = line.split_once(' ').unwrap();
        assert_eq!(golden_name, name);
        assert_eq!(golden_hex, hex::encode(&bytes), "wire format of {name} changed");
    }
    assert_eq!(golden.lines().count(), samples().len());
}

#[test]
fn every_type_round_trips() {
    let h = pow_header();
    assert_eq!(codec::decode_header(&codec::encode(&h)), Ok(h));
    let h = pos_header(3);
    assert_eq!(codec::decode_header(&codec::encode(&h)), Ok(h));
    let b = block();
    assert_eq!(codec::decode_block(&codec::encode(&b)), Ok(b));
    for (_, tx) in txs() {
        assert_eq!(codec::decode_tx(&codec::encode(&tx)), Ok(tx));
    }
}

#[test]
fn golden_block_signature_and_tx_signatures_verify() {
    let b = block();
    assert_eq!(b.signed.verify(CHAIN), Ok(()));
    for (_, tx) in txs() {
        assert_eq!(tx.verify(CHAIN), Ok(()));
    }
}

#[test]
fn every_truncation_is_an_error() {
    for (name, bytes) in samples() {
        for len in 0..bytes.len() {
            let cut = &bytes[..len];
            let failed = match name {
                n if n.starts_with("header") => codec::decode_header(cut).is_err(),
                "block" => codec::decode_block(cut).is_err(),
                _ => codec::decode_tx(cut).is_err(),
            };
            assert!(failed, "{name} truncated to {len} bytes decoded");
        }
    }
}

#[test]
fn trailing_bytes_are_an_error() {
    let mut bytes = codec::encode(&pow_header());
    bytes.push(0);
    assert!(matches!(
        codec::decode_header(&bytes),
        Err(CodecError::TrailingBytes { extra: 1, .. })
    ));
}

#[test]
fn oversized_input_is_refused_before_decoding() {
    let big = vec![0u8; MAX_TX_BYTES + 1];
    assert!(matches!(codec::decode_tx(&big), Err(CodecError::TooLarge { .. })));
    let big = vec![0u8; MAX_BLOCK_BYTES + 1];
    assert!(matches!(
        codec::decode_block(&big),
        Err(CodecError::TooLarge { .. })
    ));
}

#[test]
fn a_huge_length_prefix_is_refused_without_allocating_it() {
    // A block whose tx count claims 2^60 entries.
    let b = Block {
        txs: Vec::new(),
        ..block()
    };
    let mut bytes = codec::encode(&b);
    let n = bytes.len();
    bytes[n - 8..].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(matches!(
        codec::decode_block(&bytes),
        Err(CodecError::Malformed { .. })
    ));
}

#[test]
fn addresses_in_blocks_are_plain_bytes() {
    // An address is 32 raw bytes on the wire; the bech32m form is for people.
    let a = Address([5; 32]);
    assert_eq!(codec::encode(&a), vec![5; 32]);
    assert_eq!(codec::encode(&Signature([6; 64])), vec![6; 64]);
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = codec::decode_block(&bytes);
        let _ = codec::decode_header(&bytes);
        let _ = codec::decode_tx(&bytes);
    }

    #[test]
    fn mutated_blocks_never_panic(index in 0usize..2000, byte in any::<u8>()) {
        let mut bytes = codec::encode(&block());
        let i = index % bytes.len();
        bytes[i] = byte;
        if let Ok(decoded) = codec::decode_block(&bytes) {
            prop_assert_eq!(codec::encode(&decoded), bytes, "decode then encode is the identity");
        }
    }
}

#[test]
fn tx_hex_decodes_either_case_and_refuses_long_text_before_decoding() {
    for (_, tx) in txs() {
        let text = hex::encode(codec::encode(&tx));
        assert_eq!(codec::decode_tx_hex(&format!(" {text}\n")), Ok(tx.clone()));
        assert_eq!(codec::decode_tx_hex(&text.to_uppercase()), Ok(tx));
    }
    let long = "zz".repeat(MAX_TX_BYTES + 1);
    assert!(matches!(
        codec::decode_tx_hex(&long),
        Err(CodecError::TooLarge { len, .. }) if len == long.len()
    ));
    assert!(matches!(
        codec::decode_tx_hex("0g"),
        Err(CodecError::Malformed { .. })
    ));
}
