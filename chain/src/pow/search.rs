//! The parallel nonce search.
//!
//! Workers of a dedicated rayon pool take disjoint chunks of nonces from a
//! shared counter and hash them with one kernel. A shared `AtomicBool` is
//! checked between chunks (a chunk is well under a millisecond), so a
//! solution or a new head stops every worker within milliseconds.
//!
//! [`search_paced`] also hands every finished chunk's try count to a
//! `pace` callback on the worker's thread, between chunks: the node's
//! hashrate cap lives there (it reads the clock and sleeps, which this crate
//! never does).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::kernel::{Kernel, Template};

/// Nonces per chunk: ~1 ms for one core at ~16 MH/s, much less per worker
/// with SHA-NI.
pub const DEFAULT_CHUNK: u64 = 8_192;

/// How to search.
#[derive(Clone, Debug)]
pub struct SearchOptions {
    /// Worker threads.
    pub threads: usize,
    /// Hash kernel.
    pub kernel: Kernel,
    /// Nonces per chunk.
    pub chunk: u64,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            threads: 1,
            kernel: Kernel::detect(),
            chunk: DEFAULT_CHUNK,
        }
    }
}

/// How a search ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchOutcome {
    /// A nonce whose hash meets the target.
    Found {
        /// The nonce.
        nonce: u64,
        /// Its hash.
        hash: [u8; 32],
        /// Nonces hashed by all workers.
        tries: u64,
    },
    /// `stop` was set first.
    Stopped {
        /// Nonces hashed.
        tries: u64,
    },
    /// Every nonce from `start_nonce` to `u64::MAX` was tried.
    Exhausted {
        /// Nonces hashed.
        tries: u64,
    },
}

/// A rayon pool per thread count, built once: building one per search would
/// cost more than a whole search at testnet difficulty.
fn pool(threads: usize) -> Arc<rayon::ThreadPool> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let pools = POOLS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut pools = pools.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    pools
        .entry(threads)
        .or_insert_with(|| {
            Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("klero-pow-{i}"))
                    .build()
                    // A pool fails to build only if the OS refuses threads;
                    // then the global pool is the only option left.
                    .unwrap_or_else(|_| {
                        rayon::ThreadPoolBuilder::new()
                            .build()
                            .unwrap_or_else(|_| std::process::abort())
                    }),
            )
        })
        .clone()
}

/// Searches nonces from `start_nonce` upward for `pre` under `target`.
pub fn search(
    pre: &[u8; 32],
    target: &[u8; 32],
    start_nonce: u64,
    opts: &SearchOptions,
    stop: &AtomicBool,
) -> SearchOutcome {
    search_paced(pre, target, start_nonce, opts, stop, &|_| {})
}

/// [`search`], calling `pace(tries)` on the worker after each chunk it
/// hashed (before it takes the next), so the caller can slow the search
/// down or stop it (through `stop`).
pub fn search_paced(
    pre: &[u8; 32],
    target: &[u8; 32],
    start_nonce: u64,
    opts: &SearchOptions,
    stop: &AtomicBool,
    pace: &(dyn Fn(u64) + Sync),
) -> SearchOutcome {
    let template = Template {
        pre: *pre,
        target: *target,
    };
    let threads = opts.threads.max(1);
    let chunk = opts.chunk.max(1);
    let next_chunk = AtomicU64::new(0);
    let tries = AtomicU64::new(0);
    let found: Mutex<Option<(u64, [u8; 32])>> = Mutex::new(None);
    let done = AtomicBool::new(false);
    pool(threads).scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|_| {
                while !stop.load(Ordering::Relaxed) && !done.load(Ordering::Relaxed) {
                    let index = next_chunk.fetch_add(1, Ordering::Relaxed);
                    let Some(first) = index.checked_mul(chunk).and_then(|o| start_nonce.checked_add(o))
                    else {
                        done.store(true, Ordering::Relaxed);
                        break;
                    };
                    let end = first.saturating_add(chunk);
                    let hit = opts.kernel.search_range(&template, first..end);
                    let hashed = match hit {
                        Some((nonce, _)) => nonce - first + 1,
                        None => end - first,
                    };
                    tries.fetch_add(hashed, Ordering::Relaxed);
                    if let Some(hit) = hit {
                        let mut best = found.lock().unwrap_or_else(|p| p.into_inner());
                        // Keep the lowest nonce if two workers hit at once.
                        if best.is_none_or(|(n, _)| hit.0 < n) {
                            *best = Some(hit);
                        }
                        done.store(true, Ordering::Relaxed);
                    }
                    if end == u64::MAX {
                        done.store(true, Ordering::Relaxed);
                    }
                    pace(hashed);
                }
            });
        }
    });
    let tries = tries.into_inner();
    match found.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some((nonce, hash)) => SearchOutcome::Found { nonce, hash, tries },
        None if stop.load(Ordering::Relaxed) => SearchOutcome::Stopped { tries },
        None => SearchOutcome::Exhausted { tries },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pow::{meets_target, pow_hash};

    fn easy_target(zero_bits: usize) -> [u8; 32] {
        let mut t = [0xffu8; 32];
        for i in 0..zero_bits {
            t[i / 8] &= !(0x80 >> (i % 8));
        }
        t
    }

    #[test]
    fn finds_a_valid_nonce_with_each_kernel_and_thread_count() {
        for kernel in Kernel::available() {
            for threads in [1, 2] {
                let opts = SearchOptions {
                    threads,
                    kernel,
                    ..SearchOptions::default()
                };
                let target = easy_target(14);
                match search(&[9; 32], &target, 1_000, &opts, &AtomicBool::new(false)) {
                    SearchOutcome::Found { nonce, hash, .. } => {
                        assert!(nonce >= 1_000);
                        assert_eq!(hash, pow_hash(&[9; 32], nonce));
                        assert!(meets_target(&hash, &target));
                    }
                    other => panic!("{kernel} {threads}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn stop_flag_ends_an_impossible_search_within_a_chunk_per_worker() {
        // The pace callback stands in for the node: it sets `stop` after the
        // tenth chunk, and every worker then finishes at most the chunk it
        // is hashing.
        let stop = AtomicBool::new(false);
        let chunks = AtomicU64::new(0);
        let opts = SearchOptions {
            threads: 2,
            chunk: 1_000,
            ..SearchOptions::default()
        };
        let pace = |hashed: u64| {
            assert_eq!(hashed, 1_000);
            if chunks.fetch_add(1, Ordering::Relaxed) + 1 == 10 {
                stop.store(true, Ordering::Relaxed);
            }
        };
        let outcome = search_paced(&[1; 32], &[0; 32], 0, &opts, &stop, &pace);
        let SearchOutcome::Stopped { tries } = outcome else {
            panic!("{outcome:?}")
        };
        assert!((10_000..=12_000).contains(&tries), "{tries} tries");
        assert_eq!(tries, chunks.load(Ordering::Relaxed) * 1_000);
    }

    #[test]
    fn exhausts_at_the_top_of_the_nonce_space() {
        let opts = SearchOptions {
            threads: 2,
            chunk: 100,
            ..SearchOptions::default()
        };
        let outcome = search(
            &[3; 32],
            &[0; 32],
            u64::MAX - 1_000,
            &opts,
            &AtomicBool::new(false),
        );
        assert!(
            matches!(outcome, SearchOutcome::Exhausted { tries: 1_000 }),
            "{outcome:?}"
        );
    }
}
