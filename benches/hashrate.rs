//! Criterion bench of each PoW hash kernel: one chunk of nonces per
//! iteration through `Kernel::search_range` (the loop the miner runs), so
//! the throughput reads as tries (= SHA-256 compressions) per second.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use klero_chain::pow::Kernel;
use klero_chain::pow::kernel::Template;

const NONCES: u64 = 65_536;

fn kernels(c: &mut Criterion) {
    // An unreachable target: every nonce of the chunk is hashed.
    let template = Template {
        pre: *blake3::hash(b"klero bench").as_bytes(),
        target: [0u8; 32],
    };
    let mut group = c.benchmark_group("pow_kernel");
    group.throughput(Throughput::Elements(NONCES));
    for kernel in Kernel::available() {
        let mut start = 0u64;
        group.bench_function(kernel.name(), |b| {
            b.iter(|| {
                let hit = kernel.search_range(&template, start..start + NONCES);
                start += NONCES;
                hit
            });
        });
    }
    group.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
