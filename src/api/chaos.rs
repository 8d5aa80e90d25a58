//! The admin API of a node started with `--chaos`: its network faults.
//!
//! These routes are served on their own socket, bound to 127.0.0.1 only
//! and written to `addresses.json` as `admin`; a node started without
//! `--chaos` has no such socket and no such routes. The testnet launcher
//! (`klero testnet partition`, `delay`, `loss`, `clear`, `status`) is
//! their user. Peer ids are libp2p's base58 text (`12D3KooW…`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Delay, jitter and loss on everything the node sends and receives over
/// gossip and sync. All zero: no fault.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkFaults {
    /// Added to each message, in each direction.
    pub delay_ms: u64,
    /// Each message's delay is drawn uniformly from `delay_ms ± jitter_ms`
    /// (at least 0), so messages may overtake each other.
    pub jitter_ms: u64,
    /// Share of messages lost, in parts per million (100000 = 10%), drawn
    /// for each message and each direction.
    pub loss_ppm: u32,
    /// Seeds the draws of loss and jitter: the same faults with the same
    /// seed make the same decisions for the same sequence of messages.
    pub seed: u64,
}

impl LinkFaults {
    /// Whether no fault is set (the seed aside).
    pub fn is_clear(&self) -> bool {
        self.delay_ms == 0 && self.jitter_ms == 0 && self.loss_ppm == 0
    }
}

/// What the link conditioner has done since the node started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LinkCounters {
    /// Received messages lost (never seen by the node).
    pub dropped_in: u64,
    /// Messages the node sent that were lost (never seen by a peer).
    pub dropped_out: u64,
    /// Received messages held for the delay.
    pub delayed_in: u64,
    /// Sent messages held for the delay.
    pub delayed_out: u64,
    /// Messages lost because the delay queue was full.
    pub overflow: u64,
    /// Messages held right now.
    pub held: u64,
}

/// `GET /chaos` and the answer of every `POST`: the node's active faults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChaosStatus {
    /// Peers whose connections the node refuses and closes (a partition).
    pub blocked: Vec<String>,
    /// The link faults.
    pub link: LinkFaults,
    /// What they have done.
    pub counters: LinkCounters,
}

/// The body of `POST /chaos/partition`: the whole block list (it replaces
/// the one before; empty heals).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// Peer ids to refuse, at most 1024.
    pub blocked: Vec<String>,
}
