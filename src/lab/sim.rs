//! The discrete-event engine every algorithm runs on.
//!
//! One priority queue holds message deliveries, timers and scheduled faults,
//! ordered by (time, insertion number); one seeded [`Rng`] draws latencies,
//! losses and the algorithms' own random choices in that order. Nothing else
//! is consulted, so a seed fixes the whole trace, and every processed event
//! is folded into an FNV-1a hash that tests compare.
//!
//! # Network model
//!
//! - Latency of each message: `L/2 + Exp(mean L/2)` (mean `L`, never below
//!   `L/2`, a long tail), independent per message, so messages reorder.
//! - Loss: each message is dropped independently with probability `p`.
//! - Partitions: each node has a side; a message is dropped if sender and
//!   receiver are on different sides when it is sent or when it would arrive.
//! - Crashes are fail-stop with recovery: a crashed node loses its timers and
//!   whatever the algorithm calls volatile ([`Protocol::on_crash`]); messages
//!   to it are dropped. Messages it sent before crashing still arrive.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Debug;
use std::hash::{Hash, Hasher};

use super::metrics::{Kind, Recorder, RunMetrics};
use super::rng::Rng;

/// A node's index, `0..n`; algorithms that rank nodes use it as the id.
pub(crate) type NodeId = u32;

/// Simulated time in microseconds.
pub(crate) type Time = u64;

/// One millisecond of [`Time`].
pub(crate) const MS: Time = 1_000;

/// The protocol clocks, all derived from the mean latency `L` so that a
/// slower network slows every algorithm alike instead of breaking some.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    /// Mean one-way latency `L`.
    pub latency: Time,
    /// How long to wait for a direct reply before giving up on a peer: `10 L`.
    pub reply: Time,
    /// Heartbeat (or ping) period: `5 L`.
    pub heartbeat: Time,
    /// Failure-detection timeout, and the base of randomised election
    /// timeouts `[T, 2T)`: `20 L`, four heartbeats.
    pub timeout: Time,
    /// PoS slot length: `20 L`.
    pub slot: Time,
    /// PoW mean block interval: `50 L`.
    pub block_interval: Time,
}

impl Timing {
    /// The clocks for a mean one-way latency (at least 1 µs).
    pub(crate) fn from_latency(latency: Time) -> Timing {
        let l = latency.max(1);
        Timing {
            latency: l,
            reply: 10 * l,
            heartbeat: 5 * l,
            timeout: 20 * l,
            slot: 20 * l,
            block_interval: 50 * l,
        }
    }
}

/// What every node knows about the system it runs in.
#[derive(Clone, Debug)]
pub(crate) struct Env {
    /// Number of nodes.
    pub n: usize,
    /// The protocol clocks.
    pub timing: Timing,
    /// Each node's hashrate (PoW) or stake (PoS), uniform in `1..=10`.
    pub weights: Vec<u64>,
    /// The sum of `weights`.
    pub total_weight: u64,
    /// The one node that starts an election at boot, if not every node.
    pub initiator: Option<NodeId>,
}

impl Env {
    /// A strict majority of all nodes, live or not.
    pub(crate) fn quorum(&self) -> usize {
        self.n / 2 + 1
    }

    /// The highest node id.
    pub(crate) fn max_id(&self) -> NodeId {
        self.n as NodeId - 1
    }

    /// Whether node `id` starts an election when it boots (algorithms that
    /// elect on a trigger rather than on a clock).
    pub(crate) fn initiates(&self, id: NodeId) -> bool {
        self.initiator.is_none_or(|i| i == id)
    }
}

/// A protocol message.
pub(crate) trait Message: Clone + Debug + Hash {
    /// Its type, for the per-type message counts.
    fn kind(&self) -> &'static str;

    /// Steady-state liveness traffic (pings, heartbeats), which is not
    /// counted as the cost of an election.
    fn is_heartbeat(&self) -> bool {
        false
    }
}

/// What a timer must be: small, comparable (a timer equal to a pending one
/// replaces it) and hashable (it is part of the trace).
pub(crate) trait TimerKey: Copy + Eq + Debug + Hash {}

impl<T: Copy + Eq + Debug + Hash> TimerKey for T {}

/// An election algorithm as a state machine of one node.
///
/// Every handler may send and set timers through the [`Ctx`]; after each
/// handler the engine reads [`Protocol::leader`] to track agreement, split
/// brain and safety.
pub(crate) trait Protocol: Sized {
    /// Its messages.
    type Msg: Message;
    /// Its timers. Setting a timer equal to a pending one replaces it.
    type Timer: TimerKey;
    /// Which metrics apply.
    const KIND: Kind;

    /// Node `id` before it starts (construction may draw from `rng`).
    fn new(id: NodeId, env: &Env, rng: &mut Rng) -> Self;
    /// The node boots at time 0.
    fn on_start(&mut self, ctx: &mut Ctx<'_, Self::Msg, Self::Timer>);
    /// A message arrives.
    fn on_message(&mut self, ctx: &mut Ctx<'_, Self::Msg, Self::Timer>, from: NodeId, msg: Self::Msg);
    /// A timer fires.
    fn on_timer(&mut self, ctx: &mut Ctx<'_, Self::Msg, Self::Timer>, timer: Self::Timer);
    /// The node crashes: forget what a real node would keep only in memory.
    fn on_crash(&mut self);
    /// The node comes back after a crash.
    fn on_recover(&mut self, ctx: &mut Ctx<'_, Self::Msg, Self::Timer>);
    /// Whom this node follows and in which term (ballot, epoch, view,
    /// height, slot; 0 for the algorithms without one). The node acts as
    /// leader exactly when this names itself.
    fn leader(&self) -> Option<(NodeId, u64)>;
}

/// A scheduled fault.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Crash this node.
    Crash(NodeId),
    /// Recover this node.
    Recover(NodeId),
    /// Crash the leader that most live nodes follow (if it is live).
    CrashLeader,
    /// Cut the network in two, with that leader in the minority side of
    /// `(n - 1) / 2` nodes; the rest of the minority is drawn at random.
    IsolateLeader,
    /// Put node `i` on side `sides[i]` (the property tests' random
    /// partitions; the command line has `IsolateLeader`).
    #[cfg(test)]
    Split(Vec<u16>),
    /// Rejoin all sides.
    Heal,
}

/// One simulation run.
#[derive(Clone, Debug)]
pub(crate) struct RunConfig {
    /// Number of nodes.
    pub n: usize,
    /// Mean one-way latency.
    pub latency: Time,
    /// Per-message loss probability.
    pub loss: f64,
    /// The run's seed.
    pub seed: u64,
    /// The one node that starts an election at boot (None: every node).
    pub initiator: Option<NodeId>,
    /// Faults and when they strike.
    pub faults: Vec<(Time, Fault)>,
    /// The moment the measured election starts (0, or the leader's crash):
    /// time to agreement counts from here.
    pub trigger: Time,
    /// When the run stops.
    pub horizon: Time,
}

/// Runs protocol `P` under `cfg` and returns what was measured.
pub(crate) fn simulate<P: Protocol>(cfg: &RunConfig) -> RunMetrics {
    let mut rng = Rng::new(cfg.seed);
    let weights: Vec<u64> = (0..cfg.n).map(|_| 1 + rng.below(10)).collect();
    let env = Env {
        n: cfg.n,
        timing: Timing::from_latency(cfg.latency),
        total_weight: weights.iter().sum(),
        weights,
        initiator: cfg.initiator,
    };
    let nodes = (0..cfg.n).map(|i| P::new(i as NodeId, &env, &mut rng)).collect();
    let net = Net {
        now: 0,
        rng,
        loss: cfg.loss,
        queue: Queue::new(),
        seq: 0,
        alive: vec![true; cfg.n],
        side: vec![0; cfg.n],
        timers: vec![Vec::new(); cfg.n],
        rec: Recorder::new(P::KIND, cfg.n, cfg.trigger),
        env,
    };
    Sim { nodes, net }.run(cfg)
}

/// A node's handle on the world while one of its handlers runs.
pub(crate) struct Ctx<'a, M, T> {
    net: &'a mut Net<M, T>,
    id: NodeId,
}

impl<M: Message, T: TimerKey> Ctx<'_, M, T> {
    /// This node.
    pub(crate) fn id(&self) -> NodeId {
        self.id
    }

    /// The current simulated time.
    pub(crate) fn now(&self) -> Time {
        self.net.now
    }

    /// The system parameters.
    pub(crate) fn env(&self) -> &Env {
        &self.net.env
    }

    /// The shared random stream.
    pub(crate) fn rng(&mut self) -> &mut Rng {
        &mut self.net.rng
    }

    /// Sends `msg` to `to` (never to oneself: handle that locally).
    pub(crate) fn send(&mut self, to: NodeId, msg: M) {
        debug_assert_ne!(to, self.id, "{msg:?} to self");
        self.net.send(self.id, to, msg);
    }

    /// Sends `msg` to every other node.
    pub(crate) fn broadcast(&mut self, msg: &M) {
        for to in 0..self.net.env.n as NodeId {
            if to != self.id {
                self.net.send(self.id, to, msg.clone());
            }
        }
    }

    /// Fires `timer` after `delay`, replacing a pending timer equal to it.
    pub(crate) fn set_timer(&mut self, delay: Time, timer: T) {
        let seq = self
            .net
            .push(self.net.now + delay, Event::Timer { node: self.id, timer });
        let pending = &mut self.net.timers[self.id as usize];
        match pending.iter_mut().find(|(t, _)| *t == timer) {
            Some(entry) => entry.1 = seq,
            None => pending.push((timer, seq)),
        }
    }

    /// Cancels a pending timer equal to `timer`, if any.
    pub(crate) fn cancel_timer(&mut self, timer: T) {
        self.net.timers[self.id as usize].retain(|(t, _)| *t != timer);
    }

    /// A randomised election timeout, uniform in `[T, 2T)`.
    pub(crate) fn random_timeout(&mut self) -> Time {
        let t = self.net.env.timing.timeout;
        self.net.rng.range(t, 2 * t)
    }

    /// Records that this node started an election (or a view change, or a
    /// failover).
    pub(crate) fn election_started(&mut self) {
        self.net.rec.election_started();
    }

    /// Records that lottery round `round` took place (PoS slots), so that
    /// rounds without a block count as empty.
    pub(crate) fn round_opened(&mut self, round: u64) {
        self.net.rec.round_opened(round);
    }

    /// Records a block produced for lottery round `round`.
    pub(crate) fn block_produced(&mut self, round: u64) {
        self.net.rec.block_produced(round);
    }
}

#[derive(Debug, Hash)]
enum Event<M, T> {
    Deliver { from: NodeId, to: NodeId, msg: M },
    Timer { node: NodeId, timer: T },
    Fault(Fault),
}

/// The event queue: a min-heap of small keys `(at, seq, slot)` over a slab
/// of events, so that sifting moves 24 bytes instead of whole messages (with
/// a million messages in flight, the heap is most of the run time).
struct Queue<E> {
    heap: BinaryHeap<Reverse<(Time, u64, u32)>>,
    slab: Vec<Option<E>>,
    free: Vec<u32>,
}

impl<E> Queue<E> {
    fn new() -> Queue<E> {
        Queue {
            heap: BinaryHeap::new(),
            slab: Vec::new(),
            free: Vec::new(),
        }
    }

    fn push(&mut self, at: Time, seq: u64, event: E) {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slab[slot as usize] = Some(event);
                slot
            }
            None => {
                self.slab.push(Some(event));
                (self.slab.len() - 1) as u32
            }
        };
        self.heap.push(Reverse((at, seq, slot)));
    }

    /// The earliest event with its time and insertion number.
    fn pop(&mut self) -> Option<(Time, u64, E)> {
        let Reverse((at, seq, slot)) = self.heap.pop()?;
        self.free.push(slot);
        let event = self.slab[slot as usize].take()?;
        Some((at, seq, event))
    }
}

/// Everything but the nodes, so a node and its [`Ctx`] borrow disjoint parts.
struct Net<M, T> {
    env: Env,
    now: Time,
    rng: Rng,
    loss: f64,
    queue: Queue<Event<M, T>>,
    seq: u64,
    alive: Vec<bool>,
    side: Vec<u16>,
    /// Pending timers per node, with the insertion number of the live one;
    /// a popped timer whose number differs was replaced or cancelled.
    timers: Vec<Vec<(T, u64)>>,
    rec: Recorder,
}

impl<M: Message, T: Copy + Eq> Net<M, T> {
    fn push(&mut self, at: Time, event: Event<M, T>) -> u64 {
        self.seq += 1;
        self.queue.push(at, self.seq, event);
        self.seq
    }

    fn send(&mut self, from: NodeId, to: NodeId, msg: M) {
        self.rec.message_sent(msg.kind(), msg.is_heartbeat(), self.now);
        if self.side[from as usize] != self.side[to as usize] || self.rng.chance(self.loss) {
            return;
        }
        let half = self.env.timing.latency as f64 / 2.0;
        let delay = (half + self.rng.exp(half)).round() as Time;
        self.push(self.now + delay, Event::Deliver { from, to, msg });
    }

    /// Whether the timer popped with insertion number `seq` is still live
    /// (and, if so, consumes it).
    fn take_timer(&mut self, node: NodeId, timer: T, seq: u64) -> bool {
        let pending = &mut self.timers[node as usize];
        match pending.iter().position(|(t, s)| *t == timer && *s == seq) {
            Some(i) => {
                pending.swap_remove(i);
                true
            }
            None => false,
        }
    }
}

struct Sim<P: Protocol> {
    nodes: Vec<P>,
    net: Net<P::Msg, P::Timer>,
}

impl<P: Protocol> Sim<P> {
    fn run(mut self, cfg: &RunConfig) -> RunMetrics {
        for (at, fault) in &cfg.faults {
            self.net.push(*at, Event::Fault(fault.clone()));
        }
        for i in 0..cfg.n as NodeId {
            self.dispatch(i, |p, ctx| p.on_start(ctx));
        }
        let mut trace = Fnv::default();
        while let Some((at, seq, event)) = self.net.queue.pop() {
            if at > cfg.horizon {
                break;
            }
            self.net.now = at;
            (at, &event).hash(&mut trace);
            match event {
                Event::Deliver { from, to, msg } => {
                    if self.net.side[from as usize] == self.net.side[to as usize] {
                        self.dispatch(to, |p, ctx| p.on_message(ctx, from, msg));
                    }
                }
                Event::Timer { node, timer } => {
                    if self.net.take_timer(node, timer, seq) {
                        self.dispatch(node, |p, ctx| p.on_timer(ctx, timer));
                    }
                }
                Event::Fault(fault) => {
                    self.apply(fault);
                    self.net.rec.check(at);
                }
            }
        }
        self.net.rec.finish(cfg.horizon, trace.finish(), self.net.side)
    }

    /// Runs a handler of live node `id`, then records its view of the leader.
    fn dispatch(&mut self, id: NodeId, handler: impl FnOnce(&mut P, &mut Ctx<'_, P::Msg, P::Timer>)) {
        let i = id as usize;
        if !self.net.alive[i] {
            return;
        }
        handler(
            &mut self.nodes[i],
            &mut Ctx {
                net: &mut self.net,
                id,
            },
        );
        let view = self.nodes[i].leader();
        self.net.rec.observe(id, Some(view), self.net.now);
    }

    fn apply(&mut self, fault: Fault) {
        match fault {
            Fault::Crash(id) => self.crash(id),
            Fault::Recover(id) => {
                if !self.net.alive[id as usize] {
                    self.net.alive[id as usize] = true;
                    self.dispatch(id, |p, ctx| p.on_recover(ctx));
                }
            }
            Fault::CrashLeader => {
                if let Some(leader) = self.net.rec.followed_leader() {
                    self.crash(leader);
                }
            }
            Fault::IsolateLeader => self.isolate_leader(),
            #[cfg(test)]
            Fault::Split(sides) => self.net.side = sides,
            Fault::Heal => self.net.side.fill(0),
        }
    }

    fn crash(&mut self, id: NodeId) {
        let i = id as usize;
        if self.net.alive[i] {
            self.net.alive[i] = false;
            self.net.timers[i].clear();
            self.nodes[i].on_crash();
            self.net.rec.observe(id, None, self.net.now);
        }
    }

    fn isolate_leader(&mut self) {
        let n = self.net.env.n as NodeId;
        let leader = match self.net.rec.followed_leader() {
            Some(l) => l,
            None => self.net.rng.below(u64::from(n)) as NodeId,
        };
        let mut others: Vec<NodeId> = (0..n).filter(|i| *i != leader).collect();
        self.net.rng.shuffle(&mut others);
        let minority = (self.net.env.n - 1) / 2;
        self.net.side.fill(0);
        for id in std::iter::once(leader).chain(others).take(minority.max(1)) {
            self.net.side[id as usize] = 1;
        }
    }
}

/// FNV-1a, 64-bit, fed little-endian integers: a trace fingerprint that
/// does not depend on std's unspecified default hasher.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u16(&mut self, i: u16) {
        self.write(&i.to_le_bytes());
    }

    fn write_u32(&mut self, i: u32) {
        self.write(&i.to_le_bytes());
    }

    fn write_u64(&mut self, i: u64) {
        self.write(&i.to_le_bytes());
    }

    fn write_usize(&mut self, i: usize) {
        self.write(&(i as u64).to_le_bytes());
    }
}
