//! Failure detection in both directions.
//!
//! - [`Monitor`], the follower's side, used by Bully, Ring and Next-in-line:
//!   each follower pings the node it follows every heartbeat, and that node
//!   answers only while it still considers itself the leader. A follower
//!   that has not heard an answer for the failure-detection timeout suspects
//!   the leader. Because a node that stopped leading falls silent too, a
//!   follower stuck on a stale leader also finds out.
//! - [`Backing`], the leader's side, used by the quorum protocols: a leader
//!   that did not hear from a majority during a timeout stops leading, so a
//!   leader cut off in a minority does not act as one for long (Raft's
//!   CheckQuorum, ZooKeeper's leader ping check, a lease in Paxos and VR
//!   deployments).

use std::collections::BTreeSet;

use super::sim::{Ctx, Message, NodeId, Time, TimerKey};

/// A message type with a ping and its answer.
pub(crate) trait Pings: Message {
    /// "Are you still the leader?"
    fn ping() -> Self;
    /// "Yes."
    fn pong() -> Self;
}

/// One follower's view of its leader's liveness.
#[derive(Clone, Debug, Default)]
pub(crate) struct Monitor {
    last_heard: Time,
}

impl Monitor {
    /// The leader was heard from (or a new one adopted) at `now`.
    pub(crate) fn heard(&mut self, now: Time) {
        self.last_heard = now;
    }

    /// Whether nothing was heard for longer than `timeout`.
    pub(crate) fn silent(&self, now: Time, timeout: Time) -> bool {
        now.saturating_sub(self.last_heard) > timeout
    }

    /// One heartbeat tick: re-arms `tick`, pings `leader` unless this node is
    /// the leader, and returns true if the leader has been silent too long.
    pub(crate) fn tick<M: Pings, T: TimerKey>(
        &mut self,
        ctx: &mut Ctx<'_, M, T>,
        tick: T,
        leader: Option<NodeId>,
    ) -> bool {
        let timing = ctx.env().timing;
        ctx.set_timer(timing.heartbeat, tick);
        match leader {
            Some(l) if l != ctx.id() => {
                if self.silent(ctx.now(), timing.timeout) {
                    return true;
                }
                ctx.send(l, M::ping());
                false
            }
            _ => false,
        }
    }

    /// Answers a ping if this node leads.
    pub(crate) fn answer<M: Pings, T: TimerKey>(ctx: &mut Ctx<'_, M, T>, from: NodeId, leading: bool) {
        if leading {
            ctx.send(from, M::pong());
        }
    }
}

/// The followers that answered a leader's heartbeats since its last check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Backing(BTreeSet<NodeId>);

impl Backing {
    /// `from` answered a heartbeat.
    pub(crate) fn heard(&mut self, from: NodeId) {
        self.0.insert(from);
    }

    /// Whether a quorum, the leader included, answered since the last check;
    /// starts the next period.
    pub(crate) fn check(&mut self, quorum: usize) -> bool {
        let backed = self.0.len() + 1 >= quorum;
        self.0.clear();
        backed
    }
}
