//! The ring election (Chang and Roberts 1979, with the live-id list of the
//! textbook variant and skipping of dead successors).
//!
//! Nodes form the logical ring `0 → 1 → … → n−1 → 0`.
//!
//! - An initiator (at boot, on recovery, or when its coordinator stops
//!   answering pings) sends ELECTION carrying the list `[self]` to its
//!   successor. Each node appends its id and passes it on.
//! - Every hop is acknowledged. Without an ACK within the reply deadline the
//!   sender retries once, then declares that successor dead and tries the
//!   next one: this is how dead nodes are skipped.
//! - A node that already forwarded an election of a higher initiator drops
//!   a lower one (Chang–Roberts extinction), so concurrent initiators cost
//!   one hop each, not a lap each.
//! - When the ELECTION is back at its initiator, the highest id in the list
//!   is the coordinator; the initiator sends COORDINATOR once around the
//!   ring. If the initiator died meanwhile, the first node to see its own
//!   id in the list again announces in its place.
//!
//! One initiator costs `n` ELECTION hops plus `n` COORDINATOR hops, each
//! with its ACK: `4n` messages, and `n` more hop pairs per concurrent
//! initiator at most.

use super::metrics::Kind;
use super::monitor::{Monitor, Pings};
use super::rng::Rng;
use super::sim::{Ctx, Env, Message, NodeId, Protocol, Time};

/// An election's identity: its initiator and the time it started.
type Origin = (NodeId, Time);

/// Ring messages. `token` names the hop for its ACK.
#[derive(Clone, Debug, Hash)]
pub(crate) enum Msg {
    /// The election collecting live ids.
    Election {
        /// Hop number, echoed by the ACK.
        token: u64,
        /// Who started it, and when.
        origin: Origin,
        /// Live ids collected so far.
        ids: Vec<NodeId>,
    },
    /// The result, sent once around the ring.
    Coordinator {
        /// Hop number, echoed by the ACK.
        token: u64,
        /// The election it concludes.
        origin: Origin,
        /// The highest live id.
        leader: NodeId,
    },
    /// Hop acknowledged.
    Ack {
        /// The hop.
        token: u64,
    },
    /// Liveness ping to the coordinator.
    Ping,
    /// Its answer.
    Pong,
}

impl Message for Msg {
    fn kind(&self) -> &'static str {
        match self {
            Msg::Election { .. } => "ELECTION",
            Msg::Coordinator { .. } => "COORDINATOR",
            Msg::Ack { .. } => "ACK",
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

/// Ring timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Timer {
    /// Heartbeat tick of the failure detector.
    Ping,
    /// No ACK for this hop yet.
    Ack(u64),
    /// This node's election never came back: start another.
    Guard,
}

type Cx<'a> = Ctx<'a, Msg, Timer>;

/// A hop waiting for its ACK.
#[derive(Debug)]
struct Hop {
    token: u64,
    to: NodeId,
    msg: Msg,
    retried: bool,
}

/// One ring node. Nothing survives a crash.
#[derive(Debug)]
pub(crate) struct Ring {
    id: NodeId,
    n: NodeId,
    coordinator: Option<NodeId>,
    /// The election this node started last.
    own: Option<Origin>,
    /// The highest election this node forwarded since the last COORDINATOR.
    participant: Option<Origin>,
    /// The last COORDINATOR forwarded, to stop it after one lap.
    announced: Option<Origin>,
    hops: Vec<Hop>,
    next_token: u64,
    monitor: Monitor,
}

impl Ring {
    fn successor(&self, of: NodeId) -> NodeId {
        (of + 1) % self.n
    }

    fn initiate(&mut self, ctx: &mut Cx<'_>) {
        ctx.election_started();
        let origin = (self.id, ctx.now());
        self.own = Some(origin);
        self.participant = Some(origin);
        let timing = ctx.env().timing;
        // Two laps of average hops, each possibly retried once past a dead node.
        ctx.set_timer(
            timing.timeout + 4 * u64::from(self.n) * timing.latency,
            Timer::Guard,
        );
        let ids = vec![self.id];
        self.pass(ctx, self.successor(self.id), |token| Msg::Election {
            token,
            origin,
            ids,
        });
    }

    /// Sends a ring message to `to`, or handles it here if the ring has
    /// shrunk to this node alone.
    fn pass(&mut self, ctx: &mut Cx<'_>, to: NodeId, msg: impl FnOnce(u64) -> Msg) {
        self.next_token += 1;
        let msg = msg(self.next_token);
        if to == self.id {
            return self.on_ring(ctx, msg);
        }
        ctx.send(to, msg.clone());
        ctx.set_timer(ctx.env().timing.reply, Timer::Ack(self.next_token));
        self.hops.push(Hop {
            token: self.next_token,
            to,
            msg,
            retried: false,
        });
    }

    fn announce(&mut self, ctx: &mut Cx<'_>, origin: Origin, ids: &[NodeId]) {
        let leader = ids.iter().copied().max().unwrap_or(self.id);
        self.adopt(ctx, leader, origin);
        self.pass(ctx, self.successor(self.id), |token| Msg::Coordinator {
            token,
            origin,
            leader,
        });
    }

    fn adopt(&mut self, ctx: &mut Cx<'_>, leader: NodeId, origin: Origin) {
        self.coordinator = Some(leader);
        self.participant = None;
        self.announced = Some(origin);
        self.monitor.heard(ctx.now());
        ctx.cancel_timer(Timer::Guard);
    }

    /// An ELECTION or COORDINATOR that reached this node.
    fn on_ring(&mut self, ctx: &mut Cx<'_>, msg: Msg) {
        match msg {
            Msg::Election { origin, mut ids, .. } => {
                if Some(origin) == self.own || ids.contains(&self.id) {
                    // Back home, or a full lap without its (dead) initiator.
                    if self.participant == Some(origin) {
                        self.announce(ctx, origin, &ids);
                    }
                } else if self.participant.is_none_or(|p| p < origin) {
                    self.participant = Some(origin);
                    ids.push(self.id);
                    self.pass(ctx, self.successor(self.id), |token| Msg::Election {
                        token,
                        origin,
                        ids,
                    });
                }
            }
            Msg::Coordinator { origin, leader, .. } => {
                if self.announced == Some(origin) {
                    return;
                }
                self.adopt(ctx, leader, origin);
                self.pass(ctx, self.successor(self.id), |token| Msg::Coordinator {
                    token,
                    origin,
                    leader,
                });
                if leader < self.id {
                    // Skipped by a lost ACK though alive and higher.
                    self.initiate(ctx);
                }
            }
            Msg::Ack { .. } | Msg::Ping | Msg::Pong => {}
        }
    }
}

impl Protocol for Ring {
    type Msg = Msg;
    type Timer = Timer;
    const KIND: Kind = Kind::Classic;

    fn new(id: NodeId, env: &Env, _: &mut Rng) -> Ring {
        Ring {
            id,
            n: env.n as NodeId,
            coordinator: None,
            own: None,
            participant: None,
            announced: None,
            hops: Vec::new(),
            next_token: 0,
            monitor: Monitor::default(),
        }
    }

    fn on_start(&mut self, ctx: &mut Cx<'_>) {
        ctx.set_timer(ctx.env().timing.heartbeat, Timer::Ping);
        self.initiate(ctx);
    }

    fn on_message(&mut self, ctx: &mut Cx<'_>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Election { token, .. } | Msg::Coordinator { token, .. } => {
                ctx.send(from, Msg::Ack { token });
                self.on_ring(ctx, msg);
            }
            Msg::Ack { token } => {
                self.hops.retain(|h| h.token != token);
                ctx.cancel_timer(Timer::Ack(token));
            }
            Msg::Ping => Monitor::answer(ctx, from, self.coordinator == Some(self.id)),
            Msg::Pong => self.monitor.heard(ctx.now()),
        }
    }

    fn on_timer(&mut self, ctx: &mut Cx<'_>, timer: Timer) {
        match timer {
            Timer::Ping => {
                if self.monitor.tick(ctx, Timer::Ping, self.coordinator) {
                    self.coordinator = None;
                    self.initiate(ctx);
                }
            }
            Timer::Ack(token) => {
                let Some(i) = self.hops.iter().position(|h| h.token == token) else {
                    return;
                };
                if self.hops[i].retried {
                    let hop = self.hops.swap_remove(i);
                    let skip_to = self.successor(hop.to);
                    self.pass(ctx, skip_to, |token| hop.msg.with_token(token));
                } else {
                    let hop = &mut self.hops[i];
                    hop.retried = true;
                    ctx.send(hop.to, hop.msg.clone());
                    ctx.set_timer(ctx.env().timing.reply, Timer::Ack(token));
                }
            }
            Timer::Guard => self.initiate(ctx),
        }
    }

    fn on_crash(&mut self) {
        self.coordinator = None;
        self.own = None;
        self.participant = None;
        self.announced = None;
        self.hops.clear();
    }

    fn on_recover(&mut self, ctx: &mut Cx<'_>) {
        self.on_start(ctx);
    }

    fn leader(&self) -> Option<(NodeId, u64)> {
        self.coordinator.map(|c| (c, 0))
    }
}

impl Msg {
    /// The same ring message under a new hop number.
    fn with_token(self, token: u64) -> Msg {
        match self {
            Msg::Election { origin, ids, .. } => Msg::Election { token, origin, ids },
            Msg::Coordinator { origin, leader, .. } => Msg::Coordinator {
                token,
                origin,
                leader,
            },
            other => other,
        }
    }
}
