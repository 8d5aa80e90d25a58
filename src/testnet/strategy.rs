//! A testnet node that deviates on purpose: `klero testnet add --strategy
//! selfish` (PoW) or `--strategy withhold` (PoS).
//!
//! The node runs as usual except that its producer imports its own blocks
//! as [`Origin::Withheld`]: stored and followed, not gossiped, hidden from
//! sync (`node::withheld`). This task hears every import and publishes the
//! private blocks, through the normal gossip path, when the strategy says:
//!
//! - **selfish** (Eyal and Sirer's SM1; the lab's `attack::selfish` runs
//!   the same rules): with `lead` = height of the private tip minus the
//!   highest published height after an honest block arrives: behind → the
//!   node's own fork choice adopts the public chain and the private blocks
//!   are lost; lead 0 → publish, a 1-1 race; lead 1 → publish all, we win;
//!   lead ≥ 2 → publish up to the public height. A block found during a race
//!   is published at once.
//! - **withhold** (the lab's `attack::withhold` with delay 1): a won block of
//!   slot `s` is published at the end of slot `s` if a rival block of its
//!   height appeared, else at the end of slot `s + 1`. Unlike the lab's
//!   adversary the node keeps staking meanwhile, on its own best chain, so
//!   a block it wins in `s + 1` goes out with the held one.
//!
//! What it did is in `DATA_DIR/strategy.json` ([`Record`]), including, for
//! selfish mining, the measured γ: of the races decided by an honest block,
//! the share in which that block extended ours.
//!
//! `klero node` refuses a strategy unless it is started by the testnet
//! launcher, which passes `--i-know-this-is-an-attack`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use klero_chain::spec::{Consensus, PosParams};
use klero_chain::{Address, ChainSpec, Hash, pos};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::node::block_tree::ImportOutcome;
use crate::node::chain_task::{ChainHandle, Origin, now_ms};
use crate::node::store::Store;
use crate::node::withheld::ImportEvent;
use crate::p2p::NetworkHandle;

/// The record's file name in the node's data dir.
pub(crate) const RECORD_FILE: &str = "strategy.json";

/// How a strategy node deviates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Strategy {
    /// PoW selfish mining (SM1).
    Selfish,
    /// PoS: publish won blocks one slot late unless a rival appeared.
    Withhold,
}

impl Strategy {
    /// Its name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Strategy::Selfish => "selfish",
            Strategy::Withhold => "withhold",
        }
    }

    /// Whether it applies to a chain that is proof of work (`pow`) or not.
    ///
    /// # Errors
    ///
    /// The reason it does not.
    pub(crate) fn check(self, pow: bool) -> Result<(), String> {
        match (self, pow) {
            (Strategy::Selfish, true) | (Strategy::Withhold, false) => Ok(()),
            (Strategy::Selfish, false) => Err("--strategy selfish needs a proof-of-work chain".to_owned()),
            (Strategy::Withhold, true) => Err("--strategy withhold needs a proof-of-stake chain".to_owned()),
        }
    }
}

/// What a strategy node has done, in `DATA_DIR/strategy.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// The strategy.
    pub strategy: Option<Strategy>,
    /// Blocks it made.
    pub made: u64,
    /// Blocks it published.
    pub released: u64,
    /// Private blocks the public chain overtook before they were published.
    pub lost: u64,
    /// Selfish: 1-1 races it started.
    pub races: u64,
    /// Selfish: races decided by an honest block.
    pub races_decided_by_honest: u64,
    /// Selfish: of those, the ones whose deciding block extended ours.
    pub honest_on_ours: u64,
}

impl Record {
    /// The measured γ: the share of honest-decided races in which the honest
    /// block was built on ours.
    pub(crate) fn gamma(&self) -> Option<f64> {
        (self.races_decided_by_honest > 0)
            .then(|| self.honest_on_ours as f64 / self.races_decided_by_honest as f64)
    }

    /// Reads a node's record, if it has one.
    pub(crate) fn read(data_dir: &Path) -> Option<Record> {
        let text = std::fs::read_to_string(data_dir.join(RECORD_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn write(&self, data_dir: &Path) {
        let path = data_dir.join(RECORD_FILE);
        let tmp = data_dir.join(format!("{RECORD_FILE}.tmp"));
        let written = serde_json::to_vec_pretty(self)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(error) = written {
            warn!(%error, "could not write {}", path.display());
        }
    }
}

/// What the strategy task works with.
pub(crate) struct StrategyCtx {
    /// The chain task.
    pub chain: ChainHandle,
    /// The store, to read back the blocks it releases.
    pub store: Store,
    /// The network, to publish them.
    pub net: NetworkHandle,
    /// The chain spec.
    pub spec: Arc<ChainSpec>,
    /// The node's proposer address.
    pub me: Address,
    /// Where the record goes.
    pub data_dir: PathBuf,
}

/// A private block.
#[derive(Clone, Copy, Debug)]
struct Held {
    id: Hash,
    height: u64,
    slot: u64,
}

/// Runs `strategy` until `shutdown` turns true.
pub(crate) async fn run(strategy: Strategy, ctx: StrategyCtx, mut shutdown: watch::Receiver<bool>) {
    let mut imports = ctx.chain.subscribe_imports();
    let mut state = Deviation {
        record: Record {
            strategy: Some(strategy),
            ..Record::default()
        },
        held: Vec::new(),
        public_height: ctx.chain.head().meta.height,
        race: None,
        ctx,
    };
    state.record.write(&state.ctx.data_dir);
    info!(
        strategy = strategy.name(),
        "running a testnet strategy: own blocks are withheld"
    );
    let pos_params = match &state.ctx.spec.consensus {
        Consensus::Pos(params) => Some(params.clone()),
        Consensus::Pow(_) => None,
    };
    loop {
        let slot_end = pos_params
            .as_ref()
            .map_or(Duration::from_secs(3600), |p| until_next_slot(&state.ctx.spec, p));
        tokio::select! {
            event = imports.recv() => match event {
                Ok(event) => match strategy {
                    Strategy::Selfish => state.on_import_selfish(&event).await,
                    Strategy::Withhold => state.on_import_withhold(&event),
                },
                Err(RecvError::Lagged(missed)) => warn!(missed, "the strategy missed import events"),
                Err(RecvError::Closed) => return,
            },
            () = tokio::time::sleep(slot_end) => {
                if let Some(params) = &pos_params {
                    state.on_slot_withhold(params).await;
                }
            }
            () = crate::node::stopped(&mut shutdown) => return,
        }
        state.record.write(&state.ctx.data_dir);
    }
}

fn until_next_slot(spec: &ChainSpec, params: &PosParams) -> Duration {
    let now = now_ms();
    let next = pos::slot_start(spec, params, pos::slot_at(spec, params, now) + 1);
    Duration::from_millis(next.saturating_sub(now).max(1))
}

struct Deviation {
    ctx: StrategyCtx,
    record: Record,
    /// Private blocks, oldest first (each the child of the one before).
    held: Vec<Held>,
    /// The highest published height we know of.
    public_height: u64,
    /// Selfish: the height and id of our block in a 1-1 race.
    race: Option<(u64, Hash)>,
}

impl Deviation {
    fn ours(&self, event: &ImportEvent) -> bool {
        event.origin == Origin::Withheld
    }

    async fn on_import_selfish(&mut self, event: &ImportEvent) {
        if self.ours(event) {
            self.record.made += 1;
            if event.outcome == ImportOutcome::SideBranch {
                // Found on a head that had just been overtaken: it cannot
                // lead anything, so it goes out like an honest block.
                self.release(&[(event.id, event.height)]).await;
                return;
            }
            self.held.push(Held {
                id: event.id,
                height: event.height,
                slot: event.slot,
            });
            if let Some((height, id)) = self.race
                && event.parent == id
                && event.height == height + 1
            {
                // SM1 in a race: our branch is now longer, publish.
                self.race = None;
                self.release_up_to(u64::MAX).await;
            }
            return;
        }
        if event.proposer == self.ctx.me {
            return;
        }
        self.public_height = self.public_height.max(event.height);
        if let Some((height, id)) = self.race
            && event.height > height
        {
            self.race = None;
            if event.height == height + 1 {
                self.record.races_decided_by_honest += 1;
                self.record.honest_on_ours += u64::from(event.parent == id);
            }
        }
        let Some(tip) = self.held.last().copied() else {
            return;
        };
        if tip.height < self.public_height {
            // Behind: fork choice has moved the head to the public chain.
            self.record.lost += self.held.len() as u64;
            self.held.clear();
            return;
        }
        match tip.height - self.public_height {
            0 => {
                self.release_up_to(u64::MAX).await;
                self.race = Some((tip.height, tip.id));
                self.record.races += 1;
            }
            1 => self.release_up_to(u64::MAX).await,
            _ => self.release_up_to(self.public_height).await,
        }
    }

    fn on_import_withhold(&mut self, event: &ImportEvent) {
        if self.ours(event) {
            self.record.made += 1;
            self.held.push(Held {
                id: event.id,
                height: event.height,
                slot: event.slot,
            });
        } else if event.proposer != self.ctx.me {
            self.public_height = self.public_height.max(event.height);
        }
    }

    /// At a slot boundary: publish what is due.
    async fn on_slot_withhold(&mut self, params: &PosParams) {
        let Some(first) = self.held.first().copied() else {
            return;
        };
        let slot = pos::slot_at(&self.ctx.spec, params, now_ms());
        let rival = self.public_height >= first.height;
        if slot >= first.slot + 2 || (slot > first.slot && rival) {
            // The public chain may have outgrown a held block meanwhile;
            // published anyway, it is simply not followed.
            self.release_up_to(u64::MAX).await;
        }
    }

    /// Publishes the held blocks up to `height`, oldest first.
    async fn release_up_to(&mut self, height: u64) {
        let due: Vec<(Hash, u64)> = self
            .held
            .iter()
            .filter(|h| h.height <= height)
            .map(|h| (h.id, h.height))
            .collect();
        self.held.retain(|h| h.height > height);
        self.release(&due).await;
    }

    /// Publishes blocks through gossip, reading them back from the store.
    async fn release(&mut self, blocks: &[(Hash, u64)]) {
        for (id, height) in blocks {
            let store = self.ctx.store.clone();
            let key = *id;
            let bytes = tokio::task::spawn_blocking(move || store.block_bytes(&key)).await;
            self.ctx.chain.withheld().remove(id);
            self.public_height = self.public_height.max(*height);
            match bytes {
                Ok(Ok(Some(bytes))) => {
                    self.record.released += 1;
                    if let Err(error) = self.ctx.net.publish_block(bytes).await {
                        warn!(%error, block = %id.short(), "could not gossip a released block");
                    }
                }
                Ok(Ok(None)) => warn!(block = %id.short(), "a withheld block is not in the store"),
                Ok(Err(error)) => warn!(%error, "reading a withheld block"),
                Err(error) => warn!(%error, "reading a withheld block"),
            }
        }
    }
}
