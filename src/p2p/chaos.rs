//! The link conditioner of a node started with `--chaos`: delay, jitter
//! and loss on gossip and sync, in both directions, inside the event loop.
//!
//! Every message the loop is about to hand to the node (a gossiped block
//! or transaction, a peer's sync request, the response to one of ours) or
//! to the network (a publish, the forwarding of a validated message, a sync
//! request, a response) passes [`LinkConditioner::admit`] first. It is
//! lost with probability `loss_ppm / 10^6`, else held for `delay_ms ±
//! jitter_ms` in a bounded [`DelayQueue`] that the loop polls beside its
//! other sources (it never sleeps), else passed on at once. A node with
//! 100% loss neither hears nor is heard, sync included, while its
//! connections stay up (that is a partition's job: the block list in
//! `behaviour`). The draws come from a generator seeded by
//! [`LinkFaults::seed`], so a run can be repeated.
//!
//! What a lost message becomes is what the network would have made of it:
//! received gossip is reported `Ignore` (not forwarded), a forward does not
//! happen, a peer's sync request gets no answer (its stream closes), our
//! own request fails with [`P2pError::Dropped`](super::P2pError::Dropped).

use std::time::Duration;

use futures::StreamExt;
use libp2p::PeerId;
use libp2p::request_response::{OutboundRequestId, ResponseChannel};
use tokio::sync::oneshot;
use tokio_util::time::DelayQueue;

use super::sync_codec::{SyncRequest, SyncResponse};
use super::topics::TopicKind;
use super::{MessageRef, NetworkEvent, P2pError};
use crate::api::chaos::{LinkCounters, LinkFaults};
use crate::rng::Rng;

/// The longest delay (`delay_ms + jitter_ms`): a sync request must still be
/// answerable within the 10 s request timeout.
pub const MAX_LINK_DELAY_MS: u64 = 10_000;
/// `loss_ppm` of 100%.
pub const MAX_LOSS_PPM: u32 = 1_000_000;
/// Messages held at once; more are lost (and counted as overflow), as a
/// router's full buffer loses them.
const MAX_HELD: usize = 4096;
/// Payload bytes held at once.
const MAX_HELD_BYTES: usize = 64 << 20;

/// A message crossing the link.
#[derive(Debug)]
pub(super) enum Held {
    /// Received gossip or a peer's sync request, for the node.
    Inbound(NetworkEvent),
    /// The response to one of our sync requests.
    Response {
        id: OutboundRequestId,
        response: SyncResponse,
    },
    /// A block or transaction we publish.
    Publish { kind: TopicKind, bytes: Vec<u8> },
    /// A validated message we forward (the node's `Accept`).
    Forward(MessageRef),
    /// A sync request we send.
    Request {
        peer: PeerId,
        req: SyncRequest,
        reply: oneshot::Sender<Result<SyncResponse, P2pError>>,
    },
    /// Our answer to a peer's sync request.
    Respond {
        channel: ResponseChannel<SyncResponse>,
        resp: SyncResponse,
    },
}

impl Held {
    fn inbound(&self) -> bool {
        matches!(self, Held::Inbound(_) | Held::Response { .. })
    }

    /// Payload bytes, for the bound on what is held.
    fn bytes(&self) -> usize {
        let blocks = |resp: &SyncResponse| match resp {
            SyncResponse::Blocks(blocks) => blocks.iter().map(Vec::len).sum(),
            SyncResponse::Headers(headers) => headers.len() * klero_chain::codec::MAX_SIGNED_HEADER_BYTES,
            _ => 0,
        };
        match self {
            Held::Inbound(NetworkEvent::Block { bytes, .. } | NetworkEvent::Tx { bytes, .. })
            | Held::Publish { bytes, .. } => bytes.len(),
            Held::Response { response: resp, .. } | Held::Respond { resp, .. } => blocks(resp),
            _ => 0,
        }
    }
}

/// What [`LinkConditioner::admit`] decided.
#[derive(Debug)]
pub(super) enum Admit {
    /// Deliver it now.
    Now(Held),
    /// Held; [`LinkConditioner::next_due`] returns it when its delay is over.
    Later,
    /// Lost: the caller makes of it what the network would.
    Lost(Held),
}

/// The faults, their generator, the held messages and the counters.
pub(super) struct LinkConditioner {
    faults: LinkFaults,
    rng: Rng,
    held: DelayQueue<(Held, usize)>,
    held_bytes: usize,
    counters: LinkCounters,
}

/// Refuses faults the conditioner cannot honour (the node does so on
/// [`ChaosChange::Link`](super::ChaosChange::Link); the testnet launcher
/// asks first).
///
/// # Errors
///
/// [`P2pError::BadLink`] naming the field.
pub fn check_link(faults: &LinkFaults) -> Result<(), P2pError> {
    if faults.delay_ms.saturating_add(faults.jitter_ms) > MAX_LINK_DELAY_MS {
        return Err(P2pError::BadLink {
            field: "delay_ms + jitter_ms",
            max: MAX_LINK_DELAY_MS,
        });
    }
    if faults.loss_ppm > MAX_LOSS_PPM {
        return Err(P2pError::BadLink {
            field: "loss_ppm",
            max: u64::from(MAX_LOSS_PPM),
        });
    }
    Ok(())
}

impl LinkConditioner {
    /// A conditioner with no faults.
    pub(super) fn new() -> LinkConditioner {
        LinkConditioner {
            faults: LinkFaults::default(),
            rng: Rng::new(0),
            held: DelayQueue::new(),
            held_bytes: 0,
            counters: LinkCounters::default(),
        }
    }

    /// Sets the faults (already checked by [`check_link`]) and reseeds the generator.
    /// Held messages keep their due times.
    pub(super) fn set(&mut self, faults: LinkFaults) {
        self.faults = faults;
        self.rng = Rng::new(faults.seed);
    }

    pub(super) fn faults(&self) -> LinkFaults {
        self.faults
    }

    pub(super) fn counters(&self) -> LinkCounters {
        LinkCounters {
            held: self.held.len() as u64,
            ..self.counters
        }
    }

    /// Loses, holds or passes one message (see the module docs).
    pub(super) fn admit(&mut self, item: Held) -> Admit {
        if self.faults.is_clear() {
            return Admit::Now(item);
        }
        let inbound = item.inbound();
        let lost = self.faults.loss_ppm > 0
            && self.rng.below(u64::from(MAX_LOSS_PPM)) < u64::from(self.faults.loss_ppm);
        if lost {
            *if inbound {
                &mut self.counters.dropped_in
            } else {
                &mut self.counters.dropped_out
            } += 1;
            return Admit::Lost(item);
        }
        let delay = self.delay();
        if delay.is_zero() {
            return Admit::Now(item);
        }
        let bytes = item.bytes();
        if self.held.len() >= MAX_HELD || self.held_bytes.saturating_add(bytes) > MAX_HELD_BYTES {
            self.counters.overflow += 1;
            return Admit::Lost(item);
        }
        *if inbound {
            &mut self.counters.delayed_in
        } else {
            &mut self.counters.delayed_out
        } += 1;
        self.held_bytes += bytes;
        self.held.insert((item, bytes), delay);
        Admit::Later
    }

    /// `delay_ms ± jitter_ms`, uniform, at least 0.
    fn delay(&mut self) -> Duration {
        let LinkFaults {
            delay_ms, jitter_ms, ..
        } = self.faults;
        let lo = delay_ms.saturating_sub(jitter_ms);
        let hi = delay_ms.saturating_add(jitter_ms);
        Duration::from_millis(self.rng.range(lo, hi.saturating_add(1)))
    }

    /// The next held message whose delay is over; `None` at once when
    /// nothing is held. Cancel-safe: a message is taken only in the poll
    /// that returns it.
    pub(super) async fn next_due(&mut self) -> Option<Held> {
        let (item, bytes) = self.held.next().await?.into_inner();
        self.held_bytes -= bytes;
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish() -> Held {
        Held::Publish {
            kind: TopicKind::Block,
            bytes: vec![0; 10],
        }
    }

    fn faults(delay_ms: u64, jitter_ms: u64, loss_ppm: u32, seed: u64) -> LinkFaults {
        LinkFaults {
            delay_ms,
            jitter_ms,
            loss_ppm,
            seed,
        }
    }

    /// The fates of `n` publishes: `true` for lost.
    fn fates(link: &mut LinkConditioner, n: usize) -> Vec<bool> {
        (0..n)
            .map(|_| matches!(link.admit(publish()), Admit::Lost(_)))
            .collect()
    }

    #[test]
    fn no_faults_pass_everything_at_once() {
        let mut link = LinkConditioner::new();
        assert!(matches!(link.admit(publish()), Admit::Now(_)));
        assert_eq!(link.counters(), LinkCounters::default());
    }

    #[test]
    fn loss_follows_its_rate_and_the_seed_repeats_it() {
        let mut a = LinkConditioner::new();
        a.set(faults(0, 0, 100_000, 7));
        let first = fates(&mut a, 10_000);
        let lost = first.iter().filter(|l| **l).count();
        assert!((800..1200).contains(&lost), "{lost} of 10000 lost at 10%");
        assert_eq!(a.counters().dropped_out, lost as u64);
        assert_eq!(a.counters().dropped_in, 0);
        // Setting the same faults again restarts the same stream.
        a.set(faults(0, 0, 100_000, 7));
        assert_eq!(fates(&mut a, 10_000), first);
        a.set(faults(0, 0, 100_000, 8));
        assert_ne!(fates(&mut a, 10_000), first);
    }

    #[test]
    fn full_loss_loses_both_directions() {
        let mut link = LinkConditioner::new();
        link.set(faults(0, 0, MAX_LOSS_PPM, 1));
        assert!(fates(&mut link, 100).iter().all(|l| *l));
        let inbound = Held::Inbound(NetworkEvent::PeerConnected(PeerId::random()));
        assert!(matches!(link.admit(inbound), Admit::Lost(_)));
        assert_eq!(link.counters().dropped_in, 1);
        assert_eq!(link.counters().dropped_out, 100);
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_messages_come_out_after_their_delay() {
        let mut link = LinkConditioner::new();
        link.set(faults(200, 50, 0, 3));
        let start = tokio::time::Instant::now();
        for _ in 0..20 {
            assert!(matches!(link.admit(publish()), Admit::Later));
        }
        assert_eq!(link.counters().held, 20);
        assert_eq!(link.counters().delayed_out, 20);
        for _ in 0..20 {
            assert!(link.next_due().await.is_some());
            let waited = start.elapsed();
            // The queue counts whole milliseconds.
            assert!(
                (Duration::from_millis(149)..=Duration::from_millis(252)).contains(&waited),
                "{waited:?}"
            );
        }
        assert!(link.next_due().await.is_none());
        assert_eq!(link.held_bytes, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_loses_and_counts_overflow() {
        let mut link = LinkConditioner::new();
        link.set(faults(1_000, 0, 0, 0));
        for _ in 0..MAX_HELD {
            assert!(matches!(link.admit(publish()), Admit::Later));
        }
        assert!(matches!(link.admit(publish()), Admit::Lost(_)));
        assert_eq!(link.counters().overflow, 1);
    }

    #[test]
    fn out_of_range_faults_are_refused_by_name() {
        assert!(check_link(&faults(MAX_LINK_DELAY_MS, 0, MAX_LOSS_PPM, 0)).is_ok());
        assert!(matches!(
            check_link(&faults(MAX_LINK_DELAY_MS, 1, 0, 0)),
            Err(P2pError::BadLink {
                field: "delay_ms + jitter_ms",
                ..
            })
        ));
        assert!(matches!(
            check_link(&faults(0, 0, MAX_LOSS_PPM + 1, 0)),
            Err(P2pError::BadLink {
                field: "loss_ppm",
                ..
            })
        ));
    }
}
