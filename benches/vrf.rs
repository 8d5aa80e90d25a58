//! Criterion bench of ECVRF prove and verify on one core, next to ed25519
//! sign and verify_strict for scale (the same curve, similar work).

use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::{Signer, SigningKey};
use klero_chain::Keypair;
use klero_chain::vrf;

fn vrf_and_ed25519(c: &mut Criterion) {
    let key = Keypair::from_seed([7u8; 32]);
    let secret = key.vrf().clone();
    let public = secret.public_key();
    let alpha = b"klero/bench/vrf alpha: an epoch seed and a slot";
    let proof = secret.prove(alpha);

    let mut group = c.benchmark_group("vrf");
    group.bench_function("ecvrf_prove", |b| b.iter(|| secret.prove(alpha)));
    group.bench_function("ecvrf_verify", |b| b.iter(|| vrf::verify(&public, alpha, &proof)));
    let signing = SigningKey::from_bytes(&[7u8; 32]);
    let verifying = signing.verifying_key();
    let signature = signing.sign(alpha);
    group.bench_function("ed25519_sign", |b| b.iter(|| signing.sign(alpha)));
    group.bench_function("ed25519_verify_strict", |b| {
        b.iter(|| verifying.verify_strict(alpha, &signature))
    });
    group.finish();
}

criterion_group!(benches, vrf_and_ed25519);
criterion_main!(benches);
