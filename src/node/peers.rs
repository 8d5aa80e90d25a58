//! What a peer may cost us.
//!
//! Strikes: every piece of invalid data a peer sends us, by gossip or in a
//! sync response (a block that breaks a rule, a response that does not
//! answer the request), is one strike; at [`MAX_STRIKES`] the peer is
//! banned (disconnected and refused until the node restarts). Gossipsub's
//! own peer score has already dropped with each gossip reject.
//!
//! Budgets: what is not invalid but still costs work (sync requests and
//! the bytes they draw, transactions from senders that cannot pay) is
//! metered per peer by a [`TokenBucket`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use libp2p::PeerId;
use tokio::time::Instant;
use tracing::warn;

use super::metrics::Metrics;
use crate::p2p::NetworkHandle;

/// Strikes after which a peer is banned.
pub(crate) const MAX_STRIKES: u32 = 3;

/// The strike count of every peer that has sent invalid data; cheap to
/// clone (gossip and sync share one).
#[derive(Clone, Debug)]
pub(crate) struct Strikes {
    net: NetworkHandle,
    metrics: Arc<Metrics>,
    counts: Arc<Mutex<HashMap<PeerId, u32>>>,
}

impl Strikes {
    /// No strikes yet; bans go through `net`, and both are counted in
    /// `metrics`.
    pub(crate) fn new(net: NetworkHandle, metrics: Arc<Metrics>) -> Strikes {
        Strikes {
            net,
            metrics,
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
        self.metrics.strike(count >= MAX_STRIKES);
        if count >= MAX_STRIKES {
            warn!(%peer, what, "banning a peer that keeps sending invalid data");
            let _ = self.net.ban(peer).await;
        }
    }
}

/// A token bucket's shape: `burst` tokens at most, earned back at
/// `per_second`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rate {
    /// Most tokens held.
    pub burst: u64,
    /// Tokens earned per second.
    pub per_second: u64,
}

/// A peer's allowance of something (requests, bytes, refusals): spent by
/// [`TokenBucket::take`] or [`TokenBucket::charge`], earned back with time.
/// It may go below zero when a cost is known only afterwards (a response's
/// size); the peer then waits until it is positive again.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TokenBucket {
    rate: Rate,
    left: i128,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn full(rate: Rate, now: Instant) -> TokenBucket {
        TokenBucket {
            rate,
            left: i128::from(rate.burst),
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let earned = now.saturating_duration_since(self.at).as_micros() as i128
            * i128::from(self.rate.per_second)
            / 1_000_000;
        if earned > 0 {
            self.left = (self.left + earned).min(i128::from(self.rate.burst));
            self.at = now;
        }
    }

    /// Whether anything is left (after earning what is due by `now`).
    pub(crate) fn has_some(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.left > 0
    }

    /// Takes `n` tokens if that many are left.
    pub(crate) fn take(&mut self, n: u64, now: Instant) -> bool {
        self.refill(now);
        let ok = self.left >= i128::from(n);
        if ok {
            self.left -= i128::from(n);
        }
        ok
    }

    /// Spends `n` tokens whether or not they are there.
    pub(crate) fn charge(&mut self, n: u64) {
        self.left -= i128::from(n);
    }

    /// Whether it is full again (after earning what is due by `now`): a
    /// full bucket need not be remembered.
    pub(crate) fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.left >= i128::from(self.rate.burst)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const RATE: Rate = Rate {
        burst: 100,
        per_second: 50,
    };

    #[test]
    fn a_bucket_gives_its_burst_then_its_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::full(RATE, start);
        let taken = (0..RATE.burst + 10).filter(|_| bucket.take(1, start)).count() as u64;
        assert_eq!(taken, RATE.burst);
        // 100 ms at 50 a second: five more.
        let later = start + Duration::from_millis(100);
        assert_eq!((0..10).filter(|_| bucket.take(1, later)).count(), 5);
        assert!(bucket.is_full(later + Duration::from_secs(3)));
    }

    #[test]
    fn a_bucket_overdrawn_by_a_charge_refuses_until_it_is_earned_back() {
        let start = Instant::now();
        let mut bucket = TokenBucket::full(RATE, start);
        bucket.charge(3 * RATE.burst);
        // Two bursts below zero: four seconds at 50 a second.
        assert!(!bucket.has_some(start + Duration::from_secs(3)));
        assert!(bucket.has_some(start + Duration::from_secs(5)));
    }
}
