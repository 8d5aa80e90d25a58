//! Golden vectors of the state commitment: the empty root, the tree key of
//! every kind of state entry, a stored node, the root of a small fixed set
//! and its proofs. They freeze the hashing and encodings of
//! `klero_chain::state_tree` (docs/state.md).
//!
//! The file `vectors/state_tree.txt` holds `name hex` lines. To change the
//! format on purpose, run with `KLERO_BLESS=1` and review the diff. The
//! values are plain integers, not ledger types, so that a change to the
//! ledger's types does not move these vectors.

use klero_chain::state_tree::{
    EMPTY, MemNodes, Node, Proof, StateKey, TreeKey, prove, update, value_hash, verify,
};
use klero_chain::{Hash, Keypair};

fn key_kinds() -> Vec<(&'static str, StateKey)> {
    let alice = Keypair::dev("alice");
    let bob = Keypair::dev("bob").address();
    vec![
        ("key_account", StateKey::Account(alice.address())),
        (
            "key_unbonding",
            StateKey::Unbonding {
                release_epoch: 3,
                owner: alice.address(),
            },
        ),
        (
            "key_slashed",
            StateKey::Slashed {
                offender: bob,
                slot: 9,
            },
        ),
        ("key_vrf", StateKey::VrfKey(alice.vrf().public_key())),
        ("key_burned", StateKey::Burned),
        ("key_epoch", StateKey::Epoch),
    ]
}

/// The fixed set: one entry of every kind, valued by small integers.
fn entries() -> Vec<(TreeKey, Hash)> {
    key_kinds()
        .iter()
        .enumerate()
        .map(|(i, (_, key))| (key.tree_key(), value_hash(&(1_000 * i as u64))))
        .collect()
}

/// Two absent keys: the path of "dave" ends in another entry's leaf, the
/// path of "erin" in an empty subtree (the two kinds of non-membership).
fn absent() -> [(&'static str, TreeKey); 2] {
    [("proof_absent_leaf", "dave"), ("proof_absent_empty", "erin")]
        .map(|(vector, name)| (vector, StateKey::Account(Keypair::dev(name).address()).tree_key()))
}

fn fixed_tree() -> (Hash, MemNodes) {
    let changes: Vec<_> = entries().into_iter().map(|(k, v)| (k, Some(v))).collect();
    let mut store = MemNodes::default();
    let (root, batch) = update(EMPTY, &changes, &store).unwrap();
    store.apply(&batch);
    (root, store)
}

/// Kinds added after the fixed set was frozen (protocol v3): their keys
/// only, so the set's root and proofs stay as they were.
fn later_key_kinds() -> Vec<(&'static str, StateKey)> {
    vec![
        (
            "key_slashed_in",
            StateKey::SlashedIn(Keypair::dev("bob").address()),
        ),
        ("key_snapshot", StateKey::Snapshot { epoch: 7 }),
    ]
}

fn samples() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = vec![("empty", EMPTY.0.to_vec())];
    out.extend(
        key_kinds()
            .into_iter()
            .chain(later_key_kinds())
            .map(|(name, key)| (name, key.tree_key().as_bytes().to_vec())),
    );
    let (key, value) = entries()[0];
    out.push(("node_leaf", Node::Leaf { key, value }.encode()));
    let (root, store) = fixed_tree();
    out.push(("root_small", root.0.to_vec()));
    out.push(("proof_member", prove(root, &key, &store).unwrap().encode()));
    for (name, key) in absent() {
        out.push((name, prove(root, &key, &store).unwrap().encode()));
    }
    out
}

#[test]
fn commitment_matches_the_golden_vectors() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/state_tree.txt");
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
        assert_eq!(
            golden_hex,
            hex::encode(&bytes),
            "state commitment vector {name} changed"
        );
    }
    assert_eq!(golden.lines().count(), samples().len());
}

#[test]
fn golden_proofs_verify_against_the_golden_root() {
    let golden = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/state_tree.txt"
    ))
    .unwrap();
    let field = |name: &str| {
        let line = golden
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap();
        hex::decode(line.split_once(' ').unwrap().1).unwrap()
    };
    let root = Hash(field("root_small").try_into().unwrap());
    let (key, value) = entries()[0];
    let member = Proof::decode(&field("proof_member")).unwrap();
    assert_eq!(verify(&root, &key, Some(&value), &member), Ok(()));
    assert!(verify(&root, &key, None, &member).is_err());
    for (name, absent) in absent() {
        let nonmember = Proof::decode(&field(name)).unwrap();
        assert_eq!(verify(&root, &absent, None, &nonmember), Ok(()));
        assert!(verify(&root, &absent, Some(&value), &nonmember).is_err());
    }
}
