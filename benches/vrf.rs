//! Criterion bench of ECVRF prove and verify on one core, beside its peer,
//! BABE's VRF (schnorrkel's `vrf_sign`/`vrf_verify` on Ristretto255, with
//! the slot's merlin transcript built as BABE builds it), and ed25519 sign
//! and verify_strict for scale (the same curve, similar work).
//!
//! Both VRFs cycle through the same 64 slots: ECVRF's hash to the curve
//! (try-and-increment) costs a different number of tries per input, so one
//! fixed input would be luck, good or bad.
//!
//! The four VRF benchmarks run in [`ROUNDS`] alternating rounds
//! (`vrf/<name>/<round>`), each short, so that a change of the shared
//! machine's load while criterion works through them lands on both VRFs
//! instead of on whichever ran during it; the ratios are taken round by
//! round and their median reported (docs/performance.md).

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ed25519_dalek::{Signer, SigningKey};
use klero_chain::Keypair;
use klero_chain::vrf;
use schnorrkel::{ExpansionMode, MiniSecretKey};

const SLOTS: u64 = 64;
/// Alternating rounds of the four VRF benchmarks.
const ROUNDS: usize = 3;

/// ECVRF's input for a slot: an epoch seed and the slot, as the PoS draw builds it.
fn alpha(slot: u64) -> Vec<u8> {
    let mut alpha = [5u8; 32].to_vec();
    alpha.extend_from_slice(&slot.to_le_bytes());
    alpha
}

/// BABE's VRF transcript for a slot (sp-consensus-babe's `make_vrf_transcript`).
fn babe_transcript(slot: u64) -> merlin::Transcript {
    let mut transcript = merlin::Transcript::new(b"BABE");
    transcript.append_u64(b"slot number", slot);
    transcript.append_u64(b"current epoch", 1);
    transcript.append_message(b"chain randomness", &[5u8; 32]);
    transcript
}

fn vrf_and_peers(c: &mut Criterion) {
    let key = Keypair::from_seed([7u8; 32]);
    let secret = key.vrf().clone();
    let public = secret.public_key();
    let alphas: Vec<Vec<u8>> = (0..SLOTS).map(alpha).collect();
    let proofs: Vec<vrf::VrfProof> = alphas.iter().map(|a| secret.prove(a)).collect();

    let babe = MiniSecretKey::from_bytes(&[7u8; 32])
        .expect("32 bytes make a mini secret key")
        .expand_to_keypair(ExpansionMode::Ed25519);
    let transcripts: Vec<merlin::Transcript> = (0..SLOTS).map(babe_transcript).collect();
    let babe_proofs: Vec<_> = transcripts
        .iter()
        .map(|t| {
            let (inout, proof, _) = babe.vrf_sign(t.clone());
            (inout.to_preout(), proof)
        })
        .collect();
    for (t, (preout, proof)) in transcripts.iter().zip(&babe_proofs) {
        assert!(babe.public.vrf_verify(t.clone(), preout, proof).is_ok());
    }

    let mut group = c.benchmark_group("vrf");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let mut slot = 0;
    let mut next = move || {
        slot = (slot + 1) % SLOTS as usize;
        slot
    };
    for round in 0..ROUNDS {
        group.bench_function(BenchmarkId::new("ecvrf_prove", round), |b| {
            b.iter(|| secret.prove(&alphas[next()]))
        });
        group.bench_function(BenchmarkId::new("schnorrkel_vrf_sign", round), |b| {
            b.iter(|| babe.vrf_sign(transcripts[next()].clone()))
        });
        group.bench_function(BenchmarkId::new("ecvrf_verify", round), |b| {
            b.iter(|| {
                let i = next();
                vrf::verify(&public, &alphas[i], &proofs[i])
            })
        });
        group.bench_function(BenchmarkId::new("schnorrkel_vrf_verify", round), |b| {
            b.iter(|| {
                let i = next();
                let (preout, proof) = &babe_proofs[i];
                babe.public.vrf_verify(transcripts[i].clone(), preout, proof)
            })
        });
    }

    let message = &alphas[0];
    let signing = SigningKey::from_bytes(&[7u8; 32]);
    let verifying = signing.verifying_key();
    let signature = signing.sign(message);
    group.bench_function("ed25519_sign", |b| b.iter(|| signing.sign(message)));
    group.bench_function("ed25519_verify_strict", |b| {
        b.iter(|| verifying.verify_strict(message, &signature))
    });
    group.finish();
}

criterion_group!(benches, vrf_and_peers);
criterion_main!(benches);
