//! Picks the fastest hash kernel on this CPU by timing them.
//!
//! Which lane count of a SIMD kernel is fastest depends on the CPU (the
//! round instruction's latency against its throughput, the register file):
//! rather than a table of CPU families, the node's miner and `klero bench
//! hashrate --kernel auto` time every kernel [`Kernel::available`] lists for
//! a moment and take the fastest. `klero-chain` has no clock, so this lives
//! here and hands the choice to [`klero_chain::pow::SearchOptions`].

use std::time::{Duration, Instant};

use klero_chain::pow::kernel::{Kernel, Template};
use klero_chain::pow::search::DEFAULT_CHUNK;

use crate::bench::stats::median;

/// How long the node's miner spends choosing, in total.
pub(crate) const MINER_BUDGET: Duration = Duration::from_millis(300);

/// Rounds over the kernels: alternating them spreads the machine's other
/// load over all of them.
const ROUNDS: u32 = 5;

/// The fastest kernel of those this CPU can run, timed for about `budget`
/// in total (at least one chunk per kernel and round).
pub(crate) fn fastest_kernel(budget: Duration) -> Kernel {
    let kernels = Kernel::available();
    if kernels.len() == 1 {
        return kernels[0];
    }
    let slice = budget / (ROUNDS * kernels.len() as u32);
    // An unreachable target: every nonce of every chunk is hashed.
    let template = Template {
        pre: *blake3::hash(b"klero kernel calibration").as_bytes(),
        target: [0; 32],
    };
    let mut rates = vec![Vec::new(); kernels.len()];
    let mut next = 0u64;
    for _ in 0..ROUNDS {
        for (kernel, rates) in kernels.iter().zip(&mut rates) {
            let started = Instant::now();
            let first = next;
            while next == first || started.elapsed() < slice {
                kernel.search_range(&template, next..next + DEFAULT_CHUNK);
                next += DEFAULT_CHUNK;
            }
            rates.push((next - first) as f64 / started.elapsed().as_secs_f64());
        }
    }
    let medians: Vec<f64> = rates.iter_mut().map(|r| median(r)).collect();
    fastest_of(&kernels, &medians)
}

/// The kernel with the highest rate (the first of equals).
fn fastest_of(kernels: &[Kernel], rates: &[f64]) -> Kernel {
    let mut best = (Kernel::detect(), f64::MIN);
    for (&kernel, &rate) in kernels.iter().zip(rates) {
        if rate > best.1 {
            best = (kernel, rate);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use klero_chain::pow::kernel::Lanes;

    #[test]
    fn picks_a_kernel_this_cpu_runs() {
        let kernel = fastest_kernel(Duration::from_millis(30));
        assert!(Kernel::available().contains(&kernel), "{kernel}");
    }

    #[test]
    fn the_highest_rate_wins() {
        let kernels = [
            Kernel::Portable,
            Kernel::ShaNi(Lanes::Two),
            Kernel::ShaNi(Lanes::Three),
        ];
        assert_eq!(fastest_of(&kernels, &[1.0, 3.0, 2.0]), Kernel::ShaNi(Lanes::Two));
        assert_eq!(
            fastest_of(&kernels, &[1.0, 2.0, 3.0]),
            Kernel::ShaNi(Lanes::Three)
        );
        assert_eq!(fastest_of(&kernels, &[5.0, 5.0, 5.0]), Kernel::Portable);
    }
}
