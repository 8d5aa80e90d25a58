//! The Bully algorithm (Garcia-Molina, 1982).
//!
//! - A node starts an election at boot, on recovery, when its coordinator
//!   stops answering pings, and when an ELECTION reaches it: it sends
//!   ELECTION to every higher id and waits one reply deadline.
//! - A node answers every ELECTION from a lower id with OK and takes the
//!   election over by running its own, unless it has already run one since
//!   it booted ("unless it has begun one already"): without that rule,
//!   ELECTIONs still in flight after a COORDINATOR restart the election
//!   forever. The coordinator answers a late ELECTION with COORDINATOR to
//!   its sender instead of re-electing itself. An OK means a higher node is
//!   alive: wait for its COORDINATOR, and start over if none comes within a
//!   timeout.
//! - Without an OK the node is the highest live one: it sends COORDINATOR
//!   to all.
//! - A COORDINATOR from a lower id than oneself is refused by starting an
//!   election: that is how a recovering higher node bullies its way back.
//!
//! Started by the lowest id with all `n` nodes up and none yet elected, an
//! election costs exactly `n² − 1` messages: every node but the highest sends
//! ELECTION to each higher one (`n(n−1)/2`), each is answered (OK, or
//! COORDINATOR from the highest once it has won: `n(n−1)/2` together), and
//! the winner announces itself to the `n − 1` others. Every node starting at
//! once costs the same; that is the worst case.

use super::metrics::Kind;
use super::monitor::{Monitor, Pings};
use super::rng::Rng;
use super::sim::{Ctx, Env, Message, NodeId, Protocol};

/// Bully messages.
#[derive(Clone, Debug, Hash)]
pub(crate) enum Msg {
    /// "I am running an election; are you alive?" (to higher ids).
    Election,
    /// "Yes, and I take over the election from here."
    Ok,
    /// "I am the coordinator."
    Coordinator,
    /// Liveness ping to the coordinator.
    Ping,
    /// Its answer.
    Pong,
}

impl Message for Msg {
    fn kind(&self) -> &'static str {
        match self {
            Msg::Election => "ELECTION",
            Msg::Ok => "OK",
            Msg::Coordinator => "COORDINATOR",
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

/// Bully timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Timer {
    /// Heartbeat tick of the failure detector.
    Ping,
    /// No OK arrived: this node wins.
    AwaitOk,
    /// An OK arrived but no COORDINATOR followed: start over.
    AwaitCoordinator,
}

type Cx<'a> = Ctx<'a, Msg, Timer>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Electing,
    AwaitingCoordinator,
}

/// One Bully node. Nothing survives a crash.
#[derive(Debug)]
pub(crate) struct Bully {
    id: NodeId,
    max_id: NodeId,
    coordinator: Option<NodeId>,
    phase: Phase,
    /// Whether this node has run an election since it booted.
    joined: bool,
    monitor: Monitor,
}

impl Bully {
    fn start_election(&mut self, ctx: &mut Cx<'_>) {
        if self.phase != Phase::Idle {
            return;
        }
        ctx.election_started();
        self.joined = true;
        if self.id == self.max_id {
            return self.become_coordinator(ctx);
        }
        for higher in self.id + 1..=self.max_id {
            ctx.send(higher, Msg::Election);
        }
        self.phase = Phase::Electing;
        ctx.set_timer(ctx.env().timing.reply, Timer::AwaitOk);
    }

    fn become_coordinator(&mut self, ctx: &mut Cx<'_>) {
        self.coordinator = Some(self.id);
        self.phase = Phase::Idle;
        ctx.cancel_timer(Timer::AwaitOk);
        ctx.cancel_timer(Timer::AwaitCoordinator);
        ctx.broadcast(&Msg::Coordinator);
    }
}

impl Protocol for Bully {
    type Msg = Msg;
    type Timer = Timer;
    const KIND: Kind = Kind::Classic;

    fn new(id: NodeId, env: &Env, _: &mut Rng) -> Bully {
        Bully {
            id,
            max_id: env.max_id(),
            coordinator: None,
            phase: Phase::Idle,
            joined: false,
            monitor: Monitor::default(),
        }
    }

    fn on_start(&mut self, ctx: &mut Cx<'_>) {
        ctx.set_timer(ctx.env().timing.heartbeat, Timer::Ping);
        if ctx.env().initiates(self.id) {
            self.start_election(ctx);
        }
    }

    fn on_message(&mut self, ctx: &mut Cx<'_>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Election if self.coordinator == Some(self.id) => ctx.send(from, Msg::Coordinator),
            Msg::Election => {
                ctx.send(from, Msg::Ok);
                if !self.joined {
                    self.start_election(ctx);
                }
            }
            Msg::Ok => {
                if self.phase == Phase::Electing {
                    self.phase = Phase::AwaitingCoordinator;
                    ctx.cancel_timer(Timer::AwaitOk);
                    ctx.set_timer(ctx.env().timing.timeout, Timer::AwaitCoordinator);
                }
            }
            Msg::Coordinator if from < self.id => self.start_election(ctx),
            Msg::Coordinator => {
                self.coordinator = Some(from);
                self.phase = Phase::Idle;
                ctx.cancel_timer(Timer::AwaitOk);
                ctx.cancel_timer(Timer::AwaitCoordinator);
                self.monitor.heard(ctx.now());
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
                    self.start_election(ctx);
                }
            }
            Timer::AwaitOk => self.become_coordinator(ctx),
            Timer::AwaitCoordinator => {
                self.phase = Phase::Idle;
                self.start_election(ctx);
            }
        }
    }

    fn on_crash(&mut self) {
        self.coordinator = None;
        self.phase = Phase::Idle;
        self.joined = false;
    }

    fn on_recover(&mut self, ctx: &mut Cx<'_>) {
        ctx.set_timer(ctx.env().timing.heartbeat, Timer::Ping);
        self.start_election(ctx);
    }

    fn leader(&self) -> Option<(NodeId, u64)> {
        self.coordinator.map(|c| (c, 0))
    }
}
