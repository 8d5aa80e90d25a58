//! Sync over the request-response protocol of [`crate::p2p`]: the
//! [`client`] catches up with peers, the [`server`] answers their requests
//! from the store, each in its own task. A block received by sync that
//! breaks a rule, and a response that does not answer the request (wrong
//! heights, blocks that do not connect), count against the peer that sent
//! it, on the same strike path as gossip ([`super::peers`]).

pub(crate) mod client;
pub(crate) mod server;

use std::sync::atomic::{AtomicUsize, Ordering};

pub(crate) use self::client::Syncer;
pub(crate) use self::server::SyncServer;

/// What the syncs in progress tell the rest of the node: `/status` shows
/// `syncing` while blocks are being fetched, and the staker holds back
/// while a peer is proving, block by valid block, a chain more than the
/// rollback limit ahead of our head (a peer's claim alone never holds it).
#[derive(Debug, Default)]
pub(crate) struct SyncStatus {
    fetching: AtomicUsize,
    holding: AtomicUsize,
}

impl SyncStatus {
    /// Whether some sync is fetching blocks.
    pub(crate) fn is_syncing(&self) -> bool {
        self.fetching.load(Ordering::Relaxed) > 0
    }

    /// Whether the staker should skip its slots: a sync is importing a
    /// chain that is too far ahead for our blocks to matter.
    pub(crate) fn holds_production(&self) -> bool {
        self.holding.load(Ordering::Relaxed) > 0
    }
}

/// One sync's share of a [`SyncStatus`], given back when it is dropped.
#[derive(Debug)]
struct Fetching<'a> {
    status: &'a SyncStatus,
    holding: bool,
}

impl<'a> Fetching<'a> {
    fn new(status: &'a SyncStatus) -> Fetching<'a> {
        status.fetching.fetch_add(1, Ordering::Relaxed);
        Fetching {
            status,
            holding: false,
        }
    }

    fn hold(&mut self, hold: bool) {
        if hold != self.holding {
            self.holding = hold;
            if hold {
                self.status.holding.fetch_add(1, Ordering::Relaxed);
            } else {
                self.status.holding.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Fetching<'_> {
    fn drop(&mut self) {
        self.hold(false);
        self.status.fetching.fetch_sub(1, Ordering::Relaxed);
    }
}
