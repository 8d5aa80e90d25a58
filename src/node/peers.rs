//! Strikes against peers: every piece of invalid data a peer sends us, by
//! gossip or in a sync response, is one strike; at [`MAX_STRIKES`] the
//! peer is banned (disconnected and refused until the node restarts).
//! Gossipsub's own peer score has already dropped with each gossip reject.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use libp2p::PeerId;
use tracing::warn;

use crate::p2p::NetworkHandle;

/// Strikes after which a peer is banned.
pub(crate) const MAX_STRIKES: u32 = 3;

/// The strike count of every peer that has sent invalid data; cheap to
/// clone (gossip and sync share one).
#[derive(Clone, Debug)]
pub(crate) struct Strikes {
    net: NetworkHandle,
    counts: Arc<Mutex<HashMap<PeerId, u32>>>,
}

impl Strikes {
    /// No strikes yet; bans go through `net`.
    pub(crate) fn new(net: NetworkHandle) -> Strikes {
        Strikes {
            net,
            counts: Arc::default(),
        }
    }

    /// Counts one strike against `peer` (for `what` it sent) and bans it at
    /// the limit.
    pub(crate) async fn strike(&self, peer: PeerId, what: &'static str) {
        let count = {
            let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            let count = counts.entry(peer).or_default();
            *count += 1;
            *count
        };
        if count >= MAX_STRIKES {
            warn!(%peer, what, "banning a peer that keeps sending invalid data");
            let _ = self.net.ban(peer).await;
        }
    }
}
