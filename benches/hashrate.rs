//! Criterion bench of each PoW hash kernel: one chunk of nonces per
//! iteration through `Kernel::search_range` (the loop the miner runs), so
//! the throughput reads as tries (= SHA-256 compressions) per second. In the
//! same run, the SHA unit's probe (`sha_unit/…`, one try's SHA instructions
//! per element on that many independent chains) gives the ceiling those
//! tries are judged against.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use klero_chain::pow::Kernel;
use klero_chain::pow::kernel::Template;
use klero_chain::pow::kernel::probe::{self, Mix};

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

    if probe::run(1, Mix::Try, 1).is_none() {
        eprintln!("SKIPPED: sha_unit probe (no SHA-NI on this CPU)");
        return;
    }
    let mut group = c.benchmark_group("sha_unit");
    // Blocks per iteration such that every chain count does NONCES tries' worth.
    for chains in probe::CHAINS {
        let blocks = NONCES / chains as u64;
        group.throughput(Throughput::Elements(blocks * chains as u64));
        group.bench_function(format!("try_mix_{chains}_chains"), |b| {
            b.iter(|| probe::run(chains, Mix::Try, blocks));
        });
    }
    group.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
