//! The leader election inside Multi-Paxos (Lamport 2001, "Paxos Made
//! Simple" §3): a proposer leads once phase 1 of a higher ballot wins a
//! majority of promises.
//!
//! - Ballots are `(round, proposer)`, packed as `round << 16 | proposer`, so
//!   no two proposers ever share one. Each acceptor keeps its highest
//!   promise across crashes (it is on disk in a real acceptor).
//! - A node that has not heard the leader for a randomised timeout picks a
//!   ballot above every one it has seen and sends PREPARE. An acceptor
//!   promises a ballot higher than its promise (PROMISE) and refuses lower
//!   ones with NACK, naming its promise.
//! - A majority of promises (its own included) makes the proposer leader. It
//!   then sends phase-2 traffic; here only empty heartbeats carrying its
//!   ballot, which acceptors acknowledge as they would a phase-2a ACCEPT.
//!   An acceptor that has promised higher answers with NACK, and a NACK
//!   above its own ballot makes a leader or candidate step down.
//! - A leader whose heartbeats a majority did not acknowledge within a
//!   timeout steps down: it could not get a value chosen anyway, and
//!   without that rule a leader cut off in a minority would act as one
//!   until the partition heals.
//!
//! Out of scope: values. Promises carry no accepted values and phase 2
//! chooses nothing.

use std::collections::BTreeSet;

use super::metrics::Kind;
use super::monitor::Backing;
use super::rng::Rng;
use super::sim::{Ctx, Env, Message, NodeId, Protocol};

/// The ballot of `round` for proposer `id`.
fn ballot(round: u64, id: NodeId) -> u64 {
    round << 16 | u64::from(id)
}

/// Multi-Paxos leader-election messages.
#[derive(Clone, Debug, Hash)]
pub(crate) enum Msg {
    /// Phase 1a.
    Prepare {
        /// The proposed ballot.
        ballot: u64,
    },
    /// Phase 1b.
    Promise {
        /// The ballot promised.
        ballot: u64,
    },
    /// A refusal naming the higher ballot already promised.
    Nack {
        /// The acceptor's promise.
        promised: u64,
    },
    /// The leader's phase-2 traffic, reduced to a heartbeat.
    Heartbeat {
        /// The leader's ballot.
        ballot: u64,
    },
    /// Phase 2b: an acceptor acknowledges a heartbeat.
    Accepted {
        /// The leader's ballot.
        ballot: u64,
    },
}

impl Message for Msg {
    fn kind(&self) -> &'static str {
        match self {
            Msg::Prepare { .. } => "PREPARE",
            Msg::Promise { .. } => "PROMISE",
            Msg::Nack { .. } => "NACK",
            Msg::Heartbeat { .. } => "HEARTBEAT",
            Msg::Accepted { .. } => "ACCEPTED",
        }
    }

    fn is_heartbeat(&self) -> bool {
        matches!(self, Msg::Heartbeat { .. } | Msg::Accepted { .. })
    }
}

/// Paxos timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Timer {
    /// Randomised: no heartbeat from a leader, try phase 1.
    Election,
    /// The leader's heartbeat period.
    Heartbeat,
    /// The leader checks that a majority acknowledged it (one base timeout).
    CheckQuorum,
}

type Cx<'a> = Ctx<'a, Msg, Timer>;

#[derive(Clone, Debug)]
enum Role {
    Follower { leader: Option<NodeId> },
    Candidate { ballot: u64, promises: BTreeSet<NodeId> },
    Leader { ballot: u64, backing: Backing },
}

/// One Paxos node (proposer and acceptor).
#[derive(Debug)]
pub(crate) struct Paxos {
    id: NodeId,
    quorum: usize,
    /// The highest ballot promised: persistent.
    promised: u64,
    role: Role,
}

impl Paxos {
    fn own_ballot(&self) -> Option<u64> {
        match self.role {
            Role::Candidate { ballot, .. } | Role::Leader { ballot, .. } => Some(ballot),
            Role::Follower { .. } => None,
        }
    }

    /// Makes way for `ballot` unless this node itself runs it or a higher one.
    fn yield_to(&mut self, ctx: &mut Cx<'_>, ballot: u64, leader: Option<NodeId>) {
        if self.own_ballot().is_none_or(|own| own < ballot) {
            self.step_down(ctx, leader);
        }
    }

    /// Becomes a follower (of `leader`, if known) and waits for a timeout.
    fn step_down(&mut self, ctx: &mut Cx<'_>, leader: Option<NodeId>) {
        ctx.cancel_timer(Timer::Heartbeat);
        ctx.cancel_timer(Timer::CheckQuorum);
        self.role = Role::Follower { leader };
        let timeout = ctx.random_timeout();
        ctx.set_timer(timeout, Timer::Election);
    }

    fn prepare(&mut self, ctx: &mut Cx<'_>) {
        ctx.election_started();
        let b = ballot((self.promised >> 16) + 1, self.id);
        self.promised = b;
        self.role = Role::Candidate {
            ballot: b,
            promises: BTreeSet::from([self.id]),
        };
        ctx.broadcast(&Msg::Prepare { ballot: b });
        let timeout = ctx.random_timeout();
        ctx.set_timer(timeout, Timer::Election);
        self.maybe_lead(ctx);
    }

    fn maybe_lead(&mut self, ctx: &mut Cx<'_>) {
        if let Role::Candidate { ballot, promises } = &self.role
            && promises.len() >= self.quorum
        {
            self.role = Role::Leader {
                ballot: *ballot,
                backing: Backing::default(),
            };
            ctx.cancel_timer(Timer::Election);
            self.heartbeat(ctx);
            ctx.set_timer(ctx.env().timing.timeout, Timer::CheckQuorum);
        }
    }

    fn heartbeat(&self, ctx: &mut Cx<'_>) {
        if let Role::Leader { ballot, .. } = self.role {
            ctx.broadcast(&Msg::Heartbeat { ballot });
            ctx.set_timer(ctx.env().timing.heartbeat, Timer::Heartbeat);
        }
    }
}

impl Protocol for Paxos {
    type Msg = Msg;
    type Timer = Timer;
    const KIND: Kind = Kind::Quorum;

    fn new(id: NodeId, env: &Env, _: &mut Rng) -> Paxos {
        Paxos {
            id,
            quorum: env.quorum(),
            promised: 0,
            role: Role::Follower { leader: None },
        }
    }

    fn on_start(&mut self, ctx: &mut Cx<'_>) {
        let timeout = ctx.random_timeout();
        ctx.set_timer(timeout, Timer::Election);
    }

    fn on_message(&mut self, ctx: &mut Cx<'_>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Prepare { ballot } => {
                if ballot > self.promised {
                    self.promised = ballot;
                    self.yield_to(ctx, ballot, None);
                    ctx.send(from, Msg::Promise { ballot });
                } else {
                    ctx.send(
                        from,
                        Msg::Nack {
                            promised: self.promised,
                        },
                    );
                }
            }
            Msg::Promise { ballot } => {
                if let Role::Candidate {
                    ballot: own,
                    promises,
                } = &mut self.role
                    && *own == ballot
                {
                    promises.insert(from);
                    self.maybe_lead(ctx);
                }
            }
            Msg::Nack { promised } => {
                self.promised = self.promised.max(promised);
                if self.own_ballot().is_some_and(|own| own < promised) {
                    self.yield_to(ctx, promised, None);
                }
            }
            Msg::Heartbeat { ballot } => {
                if ballot >= self.promised {
                    self.promised = ballot;
                    self.yield_to(ctx, ballot, Some(from));
                    ctx.send(from, Msg::Accepted { ballot });
                } else {
                    ctx.send(
                        from,
                        Msg::Nack {
                            promised: self.promised,
                        },
                    );
                }
            }
            Msg::Accepted { ballot } => {
                if let Role::Leader { ballot: own, backing } = &mut self.role
                    && *own == ballot
                {
                    backing.heard(from);
                }
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Cx<'_>, timer: Timer) {
        match timer {
            Timer::Election => self.prepare(ctx),
            Timer::Heartbeat => self.heartbeat(ctx),
            Timer::CheckQuorum => {
                if let Role::Leader { backing, .. } = &mut self.role {
                    if backing.check(self.quorum) {
                        ctx.set_timer(ctx.env().timing.timeout, Timer::CheckQuorum);
                    } else {
                        self.step_down(ctx, None);
                    }
                }
            }
        }
    }

    fn on_crash(&mut self) {
        self.role = Role::Follower { leader: None };
    }

    fn on_recover(&mut self, ctx: &mut Cx<'_>) {
        self.on_start(ctx);
    }

    fn leader(&self) -> Option<(NodeId, u64)> {
        match self.role {
            Role::Follower { leader } => leader.map(|l| (l, self.promised)),
            Role::Candidate { .. } => None,
            Role::Leader { ballot, .. } => Some((self.id, ballot)),
        }
    }
}
