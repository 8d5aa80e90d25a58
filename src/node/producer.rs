//! Block production: the PoW miner and the PoS staker, each a task that
//! asks the chain task for work and hands back the block it makes, until
//! the node shuts down.
//!
//! The staker times its blocks by the slot-battle policy
//! ([`super::slot_battle`]): in a slot it wins, it waits a delay that grows
//! with its score, then builds on the head as it is then, unless a better
//! block of the slot has arrived meanwhile.
//!
//! The miner's hashrate cap (`--hashrate-cap`, how one machine emulates
//! miners of different power) is a [`Pacer`] between the chunks of the
//! nonce search: `klero_chain::pow::search_paced` hands it every chunk's
//! tries, and it sleeps the worker until the tries are due at the cap.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::sync::SyncStatus;
use std::time::{Duration, Instant};

use klero_chain::pos;
use klero_chain::pow::search::{SearchOptions, SearchOutcome, search_paced};
use klero_chain::spec::PosParams;
use klero_chain::{ChainSpec, Keypair};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::chain_task::{ChainError, ChainHandle, Origin, now_ms};
use super::metrics::Metrics;
use super::slot_battle::publish_delay;
use super::stopped;

/// A template is rebuilt this often even without a new head, so waiting
/// transactions get in and the timestamp stays fresh.
const TEMPLATE_REFRESH: Duration = Duration::from_secs(5);
/// Longest single sleep of a paced worker, so a stop is seen quickly.
const PACE_STEP: Duration = Duration::from_millis(5);

/// How the miner searches.
#[derive(Clone, Debug)]
pub(crate) struct MinerOptions {
    /// Threads, kernel and chunk size of the search.
    pub search: SearchOptions,
    /// Tries per second for the whole search, if capped.
    pub hashrate_cap: Option<u64>,
}

/// Mines on the head until `shutdown` turns true, importing each block
/// with `origin` (`Local`: published; `Withheld`: a testnet strategy's).
pub(crate) async fn mine(
    chain: ChainHandle,
    key: Keypair,
    chain_id: String,
    opts: MinerOptions,
    metrics: Arc<Metrics>,
    origin: Origin,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut head_rx = chain.watch_head();
    while !*shutdown.borrow() {
        head_rx.borrow_and_update();
        let template = match chain.pow_template().await {
            Ok(Some(template)) => template,
            Ok(None) => {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    () = stopped(&mut shutdown) => return,
                }
            }
            Err(_) => return,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let worker = {
            let (stop, opts) = (Arc::clone(&stop), opts.clone());
            let (pre, target) = (template.pre, template.target);
            tokio::task::spawn_blocking(move || {
                let pacer = opts.hashrate_cap.map(Pacer::new);
                let pace = |tries: u64| {
                    if let Some(pacer) = &pacer {
                        pacer.pace(tries, &stop);
                    }
                };
                search_paced(&pre, &target, 0, &opts.search, &stop, &pace)
            })
        };
        let mut worker = std::pin::pin!(worker);
        let outcome = tokio::select! {
            outcome = &mut worker => outcome,
            _ = head_rx.changed() => { stop.store(true, Ordering::Relaxed); worker.await }
            () = tokio::time::sleep(TEMPLATE_REFRESH) => { stop.store(true, Ordering::Relaxed); worker.await }
            () = stopped(&mut shutdown) => { stop.store(true, Ordering::Relaxed); worker.await }
        };
        let Ok(outcome) = outcome else { return };
        let tries = match outcome {
            SearchOutcome::Found { tries, .. }
            | SearchOutcome::Stopped { tries }
            | SearchOutcome::Exhausted { tries } => tries,
        };
        let elapsed = started.elapsed().as_secs_f64();
        if elapsed > 0.0 {
            metrics.set_hashrate(tries as f64 / elapsed);
        }
        if let SearchOutcome::Found { nonce, .. } = outcome {
            let block = template.complete(nonce, &key, &chain_id).seal();
            match chain.import(block, origin).await {
                Ok(_) => {}
                Err(ChainError::Stopped) => return,
                Err(error) => warn!(%error, "our own block was refused"),
            }
        }
    }
}

/// Proposes in every slot the node's key wins (after the slot-battle
/// delay), until `shutdown` turns true, importing each block with
/// `origin` (as [`mine`]).
pub(crate) async fn stake(
    chain: ChainHandle,
    spec: Arc<ChainSpec>,
    params: PosParams,
    sync: Arc<SyncStatus>,
    origin: Origin,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut slot = pos::slot_at(&spec, &params, now_ms());
    loop {
        slot += 1;
        let start = pos::slot_start(&spec, &params, slot);
        let now = now_ms();
        if start > now {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(start - now)) => {}
                () = stopped(&mut shutdown) => return,
            }
        } else {
            // We fell behind (a long import or a suspended machine): skip to now.
            slot = pos::slot_at(&spec, &params, now).max(slot);
        }
        if sync.holds_production() {
            debug!(slot, "catching up with a chain far ahead: not proposing");
            continue;
        }
        let proposed = match chain.pos_ticket(slot).await {
            Ok(Some(ticket)) => {
                let publish_at = start.saturating_add(millis(publish_delay(&params, &ticket)));
                let now = now_ms();
                if publish_at > now {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(publish_at - now)) => {}
                        () = stopped(&mut shutdown) => return,
                    }
                }
                match chain.propose_pos(slot).await {
                    Ok(Some(block)) => chain.import(block, origin).await.map(drop),
                    Ok(None) => Ok(()),
                    Err(error) => Err(error),
                }
            }
            Ok(None) => Ok(()),
            Err(error) => Err(error),
        };
        match proposed {
            Ok(()) => {}
            Err(ChainError::Stopped) => return,
            Err(error) => warn!(slot, %error, "our own block was refused"),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Paces a search to at most `rate` tries per second: each chunk's tries
/// are due at `total / rate` seconds after the start, and a worker that is
/// ahead sleeps (in steps of [`PACE_STEP`], watching `stop`) until then.
#[derive(Debug)]
pub(crate) struct Pacer {
    rate: u64,
    started: Instant,
    tries: AtomicU64,
}

impl Pacer {
    /// A pacer starting now; `rate` is raised to at least 1.
    pub(crate) fn new(rate: u64) -> Pacer {
        Pacer {
            rate: rate.max(1),
            started: Instant::now(),
            tries: AtomicU64::new(0),
        }
    }

    /// Accounts `tries` more and waits until they are due, or `stop` is set.
    pub(crate) fn pace(&self, tries: u64, stop: &AtomicBool) {
        let total = self
            .tries
            .fetch_add(tries, Ordering::Relaxed)
            .saturating_add(tries);
        let due = self.started + Duration::from_secs_f64(total as f64 / self.rate as f64);
        loop {
            let now = Instant::now();
            if now >= due || stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep((due - now).min(PACE_STEP));
        }
    }
}

#[cfg(test)]
mod tests {
    use klero_chain::pow::kernel::Kernel;

    use super::*;

    #[test]
    fn a_paced_search_stays_under_its_cap() {
        let opts = SearchOptions {
            threads: 2,
            kernel: Kernel::Portable,
            chunk: 1_000,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let setter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            flag.store(true, Ordering::Relaxed);
        });
        let pacer = Pacer::new(50_000);
        let outcome = search_paced(&[2; 32], &[0; 32], 0, &opts, &stop, &|tries| {
            pacer.pace(tries, &stop);
        });
        setter.join().expect("setter");
        let SearchOutcome::Stopped { tries } = outcome else {
            panic!("{outcome:?}")
        };
        // 0.5 s at 50k/s is 25k tries (plus a chunk per worker in flight);
        // uncapped it would be millions.
        assert!((1_000..=40_000).contains(&tries), "{tries} tries despite the cap");
    }

    #[test]
    fn a_stop_wakes_a_paced_worker() {
        let pacer = Pacer::new(1);
        let stop = AtomicBool::new(true);
        let started = Instant::now();
        pacer.pace(1_000_000, &stop);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
