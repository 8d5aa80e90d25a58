//! ZooKeeper's fast leader election and Zab's epoch establishment (Junqueira,
//! Reed and Serafini 2011; `FastLeaderElection.java`), up to the point where
//! a leader is established.
//!
//! - A LOOKING node bumps its election round and votes for itself with
//!   `(current epoch, last zxid, id)`. Votes compare in that order, so the
//!   node with the most recent history wins. It broadcasts its vote and
//!   re-broadcasts with doubling back-off while still looking.
//! - On a notification of a higher round it jumps to that round and
//!   restarts counting; of its own round with a better vote, it adopts the
//!   vote and re-broadcasts. When a majority holds its vote, it waits a
//!   short finalisation delay for better votes, then decides: LEADING or
//!   FOLLOWING.
//! - Nodes already out of the election answer a LOOKING notification with
//!   their decided vote and state. A quorum naming a leader that itself says
//!   LEADING lets a late or recovered node join at once: a quorum of the
//!   node's own round, its own vote included, or of all decided nodes.
//! - Zab phase 1 (discovery): followers send FOLLOWERINFO with their
//!   accepted epoch. With a majority (itself included) the prospective
//!   leader proposes `max + 1` as NEWEPOCH. A follower acknowledges only an
//!   epoch above the one it accepted before (ACKEPOCH), and goes back to
//!   looking otherwise. A majority of acknowledgements establishes the
//!   leader of that epoch; the accepted and current epochs are persistent.
//! - The established leader pings its followers, which go back to looking
//!   when it is silent for a timeout. The leader does the same when fewer
//!   than a majority answered its pings during a timeout.
//!
//! Out of scope: synchronisation and broadcast. A follower simply adopts
//! the leader's zxid. Initial histories (zxids) are random, so the votes
//! matter.

use std::collections::{BTreeMap, BTreeSet};

use super::metrics::Kind;
use super::monitor::{Backing, Monitor};
use super::rng::Rng;
use super::sim::{Ctx, Env, Message, NodeId, Protocol, Time};

/// A vote: the proposed leader and the history it would bring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Vote {
    /// The candidate's current epoch.
    pub epoch: u64,
    /// The candidate's last transaction id.
    pub zxid: u64,
    /// The candidate.
    pub leader: NodeId,
}

/// The sender's state in a notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum PeerState {
    /// Still electing.
    Looking,
    /// Following the vote's leader.
    Following,
    /// Leading.
    Leading,
}

/// Zab messages.
#[derive(Clone, Debug, Hash)]
pub(crate) enum Msg {
    /// A fast-leader-election notification.
    Notification {
        /// The sender's vote.
        vote: Vote,
        /// The sender's election round (logical clock).
        round: u64,
        /// The sender's state.
        state: PeerState,
    },
    /// Follower → prospective leader.
    FollowerInfo {
        /// The follower's accepted epoch.
        accepted_epoch: u64,
    },
    /// Leader → follower: the proposed epoch.
    NewEpoch {
        /// The new epoch.
        epoch: u64,
        /// The leader's history, adopted in place of synchronisation.
        zxid: u64,
    },
    /// Follower → leader.
    AckEpoch {
        /// The epoch acknowledged.
        epoch: u64,
    },
    /// Established leader → follower.
    Ping {
        /// The leader's epoch.
        epoch: u64,
    },
    /// Its answer.
    PingAck,
}

impl Message for Msg {
    fn kind(&self) -> &'static str {
        match self {
            Msg::Notification { .. } => "NOTIFICATION",
            Msg::FollowerInfo { .. } => "FOLLOWERINFO",
            Msg::NewEpoch { .. } => "NEWEPOCH",
            Msg::AckEpoch { .. } => "ACKEPOCH",
            Msg::Ping { .. } => "PING",
            Msg::PingAck => "PINGACK",
        }
    }

    fn is_heartbeat(&self) -> bool {
        matches!(self, Msg::Ping { .. } | Msg::PingAck)
    }
}

/// Zab timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Timer {
    /// Re-broadcast the vote while looking.
    Notify,
    /// A majority holds our vote: decide unless a better vote came.
    Finalize,
    /// Discovery did not complete in time: look again.
    Sync,
    /// The leader's ping period.
    Ping,
    /// Follower: is the leader silent? Leader: did a majority answer?
    Watch,
}

type Cx<'a> = Ctx<'a, Msg, Timer>;

/// Each node's latest report, with a running count per value, so that
/// "how many back this" is one lookup even with 1,000 nodes.
#[derive(Clone, Debug)]
struct Tally<K> {
    by_node: BTreeMap<NodeId, K>,
    count: BTreeMap<K, usize>,
}

impl<K: Ord + Copy> Tally<K> {
    fn new() -> Tally<K> {
        Tally {
            by_node: BTreeMap::new(),
            count: BTreeMap::new(),
        }
    }

    fn insert(&mut self, node: NodeId, value: K) {
        if let Some(old) = self.by_node.insert(node, value)
            && let Some(c) = self.count.get_mut(&old)
        {
            *c -= 1;
        }
        *self.count.entry(value).or_default() += 1;
    }

    fn count(&self, value: &K) -> usize {
        self.count.get(value).copied().unwrap_or(0)
    }
}

#[derive(Clone, Debug)]
enum State {
    Looking {
        /// Votes of this round from looking peers.
        votes: Tally<Vote>,
        /// Leaders named by peers already out of the election.
        decided: Tally<NodeId>,
        /// Peers that said they lead.
        leading: BTreeSet<NodeId>,
        finalizing: bool,
    },
    Following {
        leader: NodeId,
        synced: bool,
    },
    Leading {
        /// Accepted epochs reported in FOLLOWERINFO (own included).
        infos: BTreeMap<NodeId, u64>,
        proposed: Option<u64>,
        /// Followers that acknowledged the proposed epoch (self included).
        acks: BTreeSet<NodeId>,
        established: bool,
        /// Followers that answered a ping since the last check.
        backing: Backing,
    },
}

/// One ZooKeeper server.
#[derive(Debug)]
pub(crate) struct Zab {
    id: NodeId,
    quorum: usize,
    /// Persistent.
    accepted_epoch: u64,
    /// Persistent.
    current_epoch: u64,
    /// Persistent: the last transaction id.
    zxid: u64,
    round: u64,
    vote: Vote,
    backoff: Time,
    state: State,
    monitor: Monitor,
}

impl State {
    fn looking() -> State {
        State::Looking {
            votes: Tally::new(),
            decided: Tally::new(),
            leading: BTreeSet::new(),
            finalizing: false,
        }
    }
}

impl Zab {
    fn own_vote(&self) -> Vote {
        Vote {
            epoch: self.current_epoch,
            zxid: self.zxid,
            leader: self.id,
        }
    }

    fn peer_state(&self) -> PeerState {
        match self.state {
            State::Looking { .. } => PeerState::Looking,
            State::Following { .. } => PeerState::Following,
            State::Leading { .. } => PeerState::Leading,
        }
    }

    fn notification(&self) -> Msg {
        Msg::Notification {
            vote: self.vote,
            round: self.round,
            state: self.peer_state(),
        }
    }

    fn look(&mut self, ctx: &mut Cx<'_>) {
        ctx.election_started();
        for timer in [Timer::Finalize, Timer::Sync, Timer::Ping, Timer::Watch] {
            ctx.cancel_timer(timer);
        }
        self.round += 1;
        self.vote = self.own_vote();
        self.state = State::looking();
        self.backoff = ctx.env().timing.timeout;
        ctx.broadcast(&self.notification());
        ctx.set_timer(self.backoff, Timer::Notify);
        self.tally(ctx);
    }

    /// Adopts a better vote and tells everyone.
    fn change_vote(&mut self, ctx: &mut Cx<'_>, vote: Vote) {
        self.vote = vote;
        if let State::Looking { finalizing, .. } = &mut self.state {
            *finalizing = false;
        }
        ctx.cancel_timer(Timer::Finalize);
        ctx.broadcast(&self.notification());
    }

    /// How many looking nodes of this round hold our vote (us included).
    fn backing(&self) -> usize {
        match &self.state {
            State::Looking { votes, .. } => 1 + votes.count(&self.vote),
            _ => 0,
        }
    }

    /// Starts the finalisation wait once a majority holds our vote.
    fn tally(&mut self, ctx: &mut Cx<'_>) {
        let quorum = self.backing() >= self.quorum;
        if let State::Looking { finalizing, .. } = &mut self.state
            && quorum
            && !*finalizing
        {
            *finalizing = true;
            ctx.set_timer(ctx.env().timing.heartbeat, Timer::Finalize);
        }
    }

    fn decide(&mut self, ctx: &mut Cx<'_>, vote: Vote) {
        self.vote = vote;
        ctx.cancel_timer(Timer::Notify);
        ctx.cancel_timer(Timer::Finalize);
        ctx.set_timer(ctx.env().timing.timeout, Timer::Sync);
        if vote.leader == self.id {
            self.state = State::Leading {
                infos: BTreeMap::from([(self.id, self.accepted_epoch)]),
                proposed: None,
                acks: BTreeSet::new(),
                established: false,
                backing: Backing::default(),
            };
            self.propose(ctx);
        } else {
            self.state = State::Following {
                leader: vote.leader,
                synced: false,
            };
            ctx.send(
                vote.leader,
                Msg::FollowerInfo {
                    accepted_epoch: self.accepted_epoch,
                },
            );
        }
    }

    fn on_notification(&mut self, ctx: &mut Cx<'_>, from: NodeId, vote: Vote, round: u64, state: PeerState) {
        let own = self.vote;
        let State::Looking {
            votes,
            decided,
            leading,
            ..
        } = &mut self.state
        else {
            if state == PeerState::Looking {
                ctx.send(from, self.notification());
            }
            return;
        };
        if state != PeerState::Looking {
            if round == self.round {
                votes.insert(from, vote);
            }
            decided.insert(from, vote.leader);
            if state == PeerState::Leading {
                leading.insert(from);
            }
            let confirmed = vote.leader == self.id || leading.contains(&vote.leader);
            // A quorum of this round (our own vote included), or of the
            // nodes already out of the election, names that leader.
            let this_round =
                round == self.round && votes.count(&vote) + usize::from(own == vote) >= self.quorum;
            if confirmed && (this_round || decided.count(&vote.leader) >= self.quorum) {
                self.round = self.round.max(round);
                self.decide(ctx, vote);
            }
            return;
        }
        if round > self.round {
            self.round = round;
            *votes = Tally::new();
            votes.insert(from, vote);
            let best = vote.max(self.own_vote());
            self.change_vote(ctx, best);
        } else if round == self.round {
            votes.insert(from, vote);
            if vote > self.vote {
                self.change_vote(ctx, vote);
            }
        }
        self.tally(ctx);
    }

    /// The prospective leader proposes an epoch once a majority reported.
    fn propose(&mut self, ctx: &mut Cx<'_>) {
        let State::Leading {
            infos,
            proposed: proposed @ None,
            acks,
            ..
        } = &mut self.state
        else {
            return;
        };
        if infos.len() < self.quorum {
            return;
        }
        let epoch = infos.values().max().copied().unwrap_or(0) + 1;
        *proposed = Some(epoch);
        self.accepted_epoch = epoch;
        acks.insert(self.id);
        for follower in infos.keys().filter(|f| **f != self.id) {
            ctx.send(
                *follower,
                Msg::NewEpoch {
                    epoch,
                    zxid: self.zxid,
                },
            );
        }
        self.maybe_establish(ctx);
    }

    fn maybe_establish(&mut self, ctx: &mut Cx<'_>) {
        if let State::Leading {
            proposed: Some(epoch),
            acks,
            established: established @ false,
            ..
        } = &mut self.state
            && acks.len() >= self.quorum
        {
            *established = true;
            self.current_epoch = *epoch;
            ctx.cancel_timer(Timer::Sync);
            self.ping(ctx);
            ctx.set_timer(ctx.env().timing.timeout, Timer::Watch);
        }
    }

    fn ping(&self, ctx: &mut Cx<'_>) {
        // Every registered follower, so one whose ACKEPOCH was lost still
        // hears the leader it synced with.
        if let State::Leading { infos, .. } = &self.state {
            for follower in infos.keys().filter(|f| **f != self.id) {
                ctx.send(
                    *follower,
                    Msg::Ping {
                        epoch: self.current_epoch,
                    },
                );
            }
            ctx.set_timer(ctx.env().timing.heartbeat, Timer::Ping);
        }
    }
}

impl Protocol for Zab {
    type Msg = Msg;
    type Timer = Timer;
    const KIND: Kind = Kind::Quorum;

    fn new(id: NodeId, env: &Env, rng: &mut Rng) -> Zab {
        let zxid = rng.below(1_000);
        Zab {
            id,
            quorum: env.quorum(),
            accepted_epoch: 0,
            current_epoch: 0,
            zxid,
            round: 0,
            vote: Vote {
                epoch: 0,
                zxid,
                leader: id,
            },
            backoff: env.timing.timeout,
            state: State::looking(),
            monitor: Monitor::default(),
        }
    }

    fn on_start(&mut self, ctx: &mut Cx<'_>) {
        self.look(ctx);
    }

    fn on_message(&mut self, ctx: &mut Cx<'_>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Notification { vote, round, state } => self.on_notification(ctx, from, vote, round, state),
            Msg::FollowerInfo { accepted_epoch } => {
                if let State::Leading { infos, proposed, .. } = &mut self.state {
                    infos.insert(from, accepted_epoch);
                    match *proposed {
                        // Late: it joins the epoch already proposed.
                        Some(epoch) => ctx.send(
                            from,
                            Msg::NewEpoch {
                                epoch,
                                zxid: self.zxid,
                            },
                        ),
                        None => self.propose(ctx),
                    }
                }
            }
            Msg::NewEpoch { epoch, zxid } => {
                if let State::Following { leader, synced } = &mut self.state
                    && *leader == from
                    && !*synced
                {
                    if epoch < self.accepted_epoch {
                        return self.look(ctx);
                    }
                    // An epoch it already accepted (it is coming back to the
                    // same leader) syncs it without another ACKEPOCH: one
                    // acceptance counts towards one quorum only.
                    if epoch > self.accepted_epoch {
                        self.accepted_epoch = epoch;
                        ctx.send(from, Msg::AckEpoch { epoch });
                    }
                    self.current_epoch = epoch;
                    self.zxid = zxid;
                    *synced = true;
                    ctx.cancel_timer(Timer::Sync);
                    self.monitor.heard(ctx.now());
                    ctx.set_timer(ctx.env().timing.heartbeat, Timer::Watch);
                }
            }
            Msg::AckEpoch { epoch } => {
                if let State::Leading {
                    proposed: Some(p),
                    acks,
                    ..
                } = &mut self.state
                    && *p == epoch
                {
                    acks.insert(from);
                    self.maybe_establish(ctx);
                }
            }
            Msg::Ping { epoch } => {
                if let State::Following { leader, synced: true } = self.state
                    && leader == from
                    && epoch == self.current_epoch
                {
                    self.monitor.heard(ctx.now());
                    ctx.send(from, Msg::PingAck);
                }
            }
            Msg::PingAck => {
                if let State::Leading { backing, .. } = &mut self.state {
                    backing.heard(from);
                }
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Cx<'_>, timer: Timer) {
        let timing = ctx.env().timing;
        match (timer, &mut self.state) {
            (Timer::Notify, State::Looking { .. }) => {
                ctx.broadcast(&self.notification());
                self.backoff = (2 * self.backoff).min(8 * timing.timeout);
                ctx.set_timer(self.backoff, Timer::Notify);
            }
            (Timer::Finalize, State::Looking { finalizing, .. }) => {
                *finalizing = false;
                if self.backing() >= self.quorum {
                    self.decide(ctx, self.vote);
                }
            }
            (Timer::Sync, _) => self.look(ctx),
            (Timer::Ping, State::Leading { .. }) => self.ping(ctx),
            (Timer::Watch, State::Leading { backing, .. }) => {
                if backing.check(self.quorum) {
                    ctx.set_timer(timing.timeout, Timer::Watch);
                } else {
                    self.look(ctx);
                }
            }
            (Timer::Watch, State::Following { .. }) => {
                if self.monitor.silent(ctx.now(), timing.timeout) {
                    self.look(ctx);
                } else {
                    ctx.set_timer(timing.heartbeat, Timer::Watch);
                }
            }
            _ => {}
        }
    }

    fn on_crash(&mut self) {
        self.round = 0;
        self.state = State::looking();
    }

    fn on_recover(&mut self, ctx: &mut Cx<'_>) {
        self.look(ctx);
    }

    fn leader(&self) -> Option<(NodeId, u64)> {
        match self.state {
            State::Leading {
                established: true, ..
            } => Some((self.id, self.current_epoch)),
            State::Following { leader, synced: true } => Some((leader, self.current_epoch)),
            _ => None,
        }
    }
}
