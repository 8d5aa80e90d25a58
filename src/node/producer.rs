//! Block production: the PoW miner and the PoS staker, each a task that
//! asks the chain task for work and hands back the block it makes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use klero_chain::pos;
use klero_chain::pow::search::{SearchOptions, SearchOutcome, search};
use klero_chain::spec::PosParams;
use klero_chain::{ChainSpec, Keypair};
use tracing::{debug, warn};

use super::metrics::Metrics;
use super::service::{ChainHandle, Origin, now_ms};

/// A template is rebuilt this often even without a new head, so waiting
/// transactions get in and the timestamp stays fresh.
const TEMPLATE_REFRESH: Duration = Duration::from_secs(5);

/// Mines on the head until the node stops.
pub async fn mine(
    chain: ChainHandle,
    key: Keypair,
    chain_id: String,
    opts: SearchOptions,
    metrics: Arc<Metrics>,
) {
    let mut head_rx = chain.watch_head();
    loop {
        head_rx.borrow_and_update();
        let template = match chain.pow_template().await {
            Ok(Some(template)) => template,
            Ok(None) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(_) => return,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let worker = {
            let (stop, opts) = (Arc::clone(&stop), opts.clone());
            let (pre, target) = (template.pre, template.target);
            tokio::task::spawn_blocking(move || search(&pre, &target, 0, &opts, &stop))
        };
        let mut worker = std::pin::pin!(worker);
        let outcome = tokio::select! {
            outcome = &mut worker => outcome,
            _ = head_rx.changed() => { stop.store(true, Ordering::Relaxed); worker.await }
            () = tokio::time::sleep(TEMPLATE_REFRESH) => { stop.store(true, Ordering::Relaxed); worker.await }
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
            match chain.import(block, Origin::Local).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => warn!(%error, "our own block was refused"),
                Err(_) => return,
            }
        }
    }
}

/// Proposes in every slot the node's key wins, until the node stops.
pub async fn stake(chain: ChainHandle, spec: Arc<ChainSpec>, params: PosParams, syncing: Arc<AtomicBool>) {
    let mut slot = pos::slot_at(&spec, &params, now_ms());
    loop {
        slot += 1;
        let start = pos::slot_start(&spec, &params, slot);
        let now = now_ms();
        if start > now {
            tokio::time::sleep(Duration::from_millis(start - now)).await;
        } else {
            // We fell behind (a long import or a suspended machine): skip to now.
            slot = pos::slot_at(&spec, &params, now).max(slot);
        }
        if syncing.load(Ordering::Relaxed) {
            debug!(slot, "syncing: not proposing");
            continue;
        }
        match chain.propose_pos(slot).await {
            Ok(Some(block)) => match chain.import(block, Origin::Local).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => warn!(slot, %error, "our own block was refused"),
                Err(_) => return,
            },
            Ok(None) => {}
            Err(_) => return,
        }
    }
}
