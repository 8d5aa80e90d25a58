//! Next-in-line failover: the leader names its successors in advance.
//!
//! - Every leader broadcasts ANNOUNCE with its epoch and its ranked list of
//!   alternatives. The policy here: the other nodes by descending id, with
//!   the leader it replaced last (it may come back, but should not be tried
//!   first). At boot all nodes share the configured ranking `n−1, …, 0`;
//!   node `n−1` announces itself.
//! - Followers ping the leader (the same detector as Bully and Ring). A
//!   follower that suspects it contacts the highest-ranked alternative with
//!   TAKEOVER; that node announces itself with epoch + 1. A contacted node
//!   that does not answer within the reply deadline is skipped for the next
//!   one. A detector that is itself the next alternative announces itself.
//! - A node that knows a newer leader answers a TAKEOVER with that leader's
//!   ANNOUNCE; a recovering node broadcasts QUERY and only the leader
//!   answers. Between two announcements, the higher (epoch, id) wins.
//!
//! There is no election at all: a failover costs about one message per
//! detector plus one broadcast, and a recovering node never takes back its
//! old post.

use std::sync::Arc;

use super::metrics::Kind;
use super::monitor::{Monitor, Pings};
use super::rng::Rng;
use super::sim::{Ctx, Env, Message, NodeId, Protocol};

/// Next-in-line messages.
#[derive(Clone, Debug, Hash)]
pub(crate) enum Msg {
    /// "`leader` leads `epoch`; if it fails, try `ranking` in order."
    Announce {
        /// The leader.
        leader: NodeId,
        /// Its epoch.
        epoch: u64,
        /// Its alternatives, best first.
        ranking: Arc<[NodeId]>,
    },
    /// "The leader of `epoch` is gone: take over."
    Takeover {
        /// The failed leader's epoch, as the detector knows it.
        epoch: u64,
    },
    /// "Who leads?" (from a recovering node; only the leader answers).
    Query,
    /// Liveness ping to the leader.
    Ping,
    /// Its answer.
    Pong,
}

impl Message for Msg {
    fn kind(&self) -> &'static str {
        match self {
            Msg::Announce { .. } => "ANNOUNCE",
            Msg::Takeover { .. } => "TAKEOVER",
            Msg::Query => "QUERY",
            Msg::Ping => "PING",
            Msg::Pong => "PONG",
        }
    }

    fn is_heartbeat(&self) -> bool {
        matches!(self, Msg::Ping | Msg::Pong)
    }
}

impl Pings for Msg {
    fn ping() -> Msg {
        Msg::Ping
    }

    fn pong() -> Msg {
        Msg::Pong
    }
}

/// Next-in-line timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Timer {
    /// Heartbeat tick of the failure detector.
    Ping,
    /// Waiting for an ANNOUNCE (after boot, recovery, or a TAKEOVER).
    AwaitAnnounce,
}

type Cx<'a> = Ctx<'a, Msg, Timer>;

/// One node. Nothing survives a crash.
#[derive(Debug)]
pub(crate) struct NextInLine {
    id: NodeId,
    leader: Option<NodeId>,
    epoch: u64,
    ranking: Arc<[NodeId]>,
    /// The alternative being contacted during a failover.
    cursor: Option<usize>,
    /// The leader being replaced: skipped if it appears in the ranking.
    failed: Option<NodeId>,
    monitor: Monitor,
}

impl NextInLine {
    fn configured_ranking(n: usize) -> Arc<[NodeId]> {
        (0..n as NodeId).rev().collect()
    }

    fn failover(&mut self, ctx: &mut Cx<'_>) {
        ctx.election_started();
        self.failed = self.leader.take();
        self.cursor = Some(0);
        self.contact(ctx);
    }

    /// Contacts the alternative at the cursor (or takes over, if it is us).
    fn contact(&mut self, ctx: &mut Cx<'_>) {
        let Some(mut i) = self.cursor else { return };
        if Some(self.ranking[i % self.ranking.len()]) == self.failed {
            i += 1;
        }
        i %= self.ranking.len();
        self.cursor = Some(i);
        let candidate = self.ranking[i];
        if candidate == self.id {
            return self.announce(ctx, self.epoch + 1);
        }
        ctx.send(candidate, Msg::Takeover { epoch: self.epoch });
        ctx.set_timer(ctx.env().timing.reply, Timer::AwaitAnnounce);
    }

    fn announce(&mut self, ctx: &mut Cx<'_>, epoch: u64) {
        let previous = self.failed.or(self.leader).filter(|p| *p != self.id);
        let mut ranking: Vec<NodeId> = (0..ctx.env().n as NodeId)
            .rev()
            .filter(|i| *i != self.id && Some(*i) != previous)
            .collect();
        ranking.extend(previous);
        self.adopt(ctx, self.id, epoch, ranking.into());
        ctx.broadcast(&self.announcement());
    }

    fn announcement(&self) -> Msg {
        Msg::Announce {
            leader: self.leader.unwrap_or(self.id),
            epoch: self.epoch,
            ranking: self.ranking.clone(),
        }
    }

    fn adopt(&mut self, ctx: &mut Cx<'_>, leader: NodeId, epoch: u64, ranking: Arc<[NodeId]>) {
        self.leader = Some(leader);
        self.epoch = epoch;
        self.ranking = ranking;
        self.cursor = None;
        self.failed = None;
        self.monitor.heard(ctx.now());
        ctx.cancel_timer(Timer::AwaitAnnounce);
    }

    fn leading(&self) -> bool {
        self.leader == Some(self.id)
    }
}

impl Protocol for NextInLine {
    type Msg = Msg;
    type Timer = Timer;
    const KIND: Kind = Kind::Classic;

    fn new(id: NodeId, env: &Env, _: &mut Rng) -> NextInLine {
        NextInLine {
            id,
            leader: None,
            epoch: 0,
            ranking: NextInLine::configured_ranking(env.n),
            cursor: None,
            failed: None,
            monitor: Monitor::default(),
        }
    }

    fn on_start(&mut self, ctx: &mut Cx<'_>) {
        ctx.set_timer(ctx.env().timing.heartbeat, Timer::Ping);
        if self.ranking[0] == self.id {
            ctx.election_started();
            self.announce(ctx, 1);
        } else {
            ctx.set_timer(ctx.env().timing.timeout, Timer::AwaitAnnounce);
        }
    }

    fn on_message(&mut self, ctx: &mut Cx<'_>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Announce {
                leader,
                epoch,
                ranking,
            } => {
                if (epoch, leader) >= (self.epoch, self.leader.unwrap_or(0)) {
                    self.adopt(ctx, leader, epoch, ranking);
                }
            }
            Msg::Takeover { epoch } => {
                if self.leader.is_some() && (self.leading() || self.epoch > epoch) {
                    ctx.send(from, self.announcement());
                } else {
                    self.failed = self.leader.take();
                    self.announce(ctx, self.epoch.max(epoch) + 1);
                }
            }
            Msg::Query => {
                if self.leading() {
                    ctx.send(from, self.announcement());
                }
            }
            Msg::Ping => Monitor::answer(ctx, from, self.leading()),
            Msg::Pong => self.monitor.heard(ctx.now()),
        }
    }

    fn on_timer(&mut self, ctx: &mut Cx<'_>, timer: Timer) {
        match timer {
            Timer::Ping => {
                if self.monitor.tick(ctx, Timer::Ping, self.leader) {
                    self.failover(ctx);
                }
            }
            Timer::AwaitAnnounce => match self.cursor {
                Some(i) => {
                    self.cursor = Some(i + 1);
                    self.contact(ctx);
                }
                None => self.failover(ctx),
            },
        }
    }

    fn on_crash(&mut self) {
        self.leader = None;
        self.epoch = 0;
        self.cursor = None;
        self.failed = None;
    }

    fn on_recover(&mut self, ctx: &mut Cx<'_>) {
        self.ranking = NextInLine::configured_ranking(ctx.env().n);
        ctx.set_timer(ctx.env().timing.heartbeat, Timer::Ping);
        ctx.broadcast(&Msg::Query);
        ctx.set_timer(ctx.env().timing.timeout, Timer::AwaitAnnounce);
    }

    fn leader(&self) -> Option<(NodeId, u64)> {
        self.leader.map(|l| (l, self.epoch))
    }
}
