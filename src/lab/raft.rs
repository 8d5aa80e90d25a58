//! Raft leader election (Ongaro and Ousterhout 2014, §5.2), with optional
//! CheckQuorum (Ongaro's thesis §6.2).
//!
//! - `current_term` and `voted_for` are persistent: they survive a crash,
//!   which is what makes "at most one leader per term" hold.
//! - A follower or candidate whose randomised election timeout (`[T, 2T)`)
//!   expires increments its term, votes for itself and sends RequestVote to
//!   all. A node grants one vote per term, first come first served. Any
//!   message with a higher term turns the receiver into a follower of it.
//! - Votes from a majority make a leader, which sends AppendEntries
//!   heartbeats; each accepted heartbeat resets the follower's timeout.
//! - With CheckQuorum, a leader that has not heard heartbeat answers from a
//!   majority within one election timeout steps down, which ends the split
//!   brain of a leader cut off in a minority.
//!
//! Out of scope: the log. RequestVote carries no log position and no
//! up-to-date check; AppendEntries carries no entries. Also not modelled:
//! PreVote, so a node cut off keeps raising its term and disrupts the
//! majority when it comes back.

use std::collections::BTreeSet;

use super::metrics::Kind;
use super::monitor::Backing;
use super::rng::Rng;
use super::sim::{Ctx, Env, Message, NodeId, Protocol};

/// Raft messages.
#[derive(Clone, Debug, Hash)]
pub(crate) enum Msg {
    /// "Vote for me in `term`."
    RequestVote {
        /// The candidate's term.
        term: u64,
    },
    /// The answer.
    Vote {
        /// The voter's term.
        term: u64,
        /// Whether the vote was granted.
        granted: bool,
    },
    /// Heartbeat from the leader of `term`.
    AppendEntries {
        /// The leader's term.
        term: u64,
    },
    /// The answer to a heartbeat.
    AppendResponse {
        /// The follower's term (higher than the leader's: step down).
        term: u64,
    },
}

impl Message for Msg {
    fn kind(&self) -> &'static str {
        match self {
            Msg::RequestVote { .. } => "RequestVote",
            Msg::Vote { .. } => "Vote",
            Msg::AppendEntries { .. } => "AppendEntries",
            Msg::AppendResponse { .. } => "AppendResponse",
        }
    }

    fn is_heartbeat(&self) -> bool {
        matches!(self, Msg::AppendEntries { .. } | Msg::AppendResponse { .. })
    }
}

/// Raft timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Timer {
    /// The randomised election timeout.
    Election,
    /// The leader's heartbeat period.
    Heartbeat,
    /// The leader's CheckQuorum period (one base timeout).
    CheckQuorum,
}

type Cx<'a> = Ctx<'a, Msg, Timer>;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Role {
    Follower { leader: Option<NodeId> },
    Candidate { votes: BTreeSet<NodeId> },
    Leader { backing: Backing },
}

/// One Raft node; `CHECK_QUORUM` turns the leader's step-down on.
#[derive(Debug)]
pub(crate) struct Raft<const CHECK_QUORUM: bool> {
    id: NodeId,
    quorum: usize,
    current_term: u64,
    voted_for: Option<NodeId>,
    role: Role,
}

impl<const CHECK_QUORUM: bool> Raft<CHECK_QUORUM> {
    fn reset_election_timer(&self, ctx: &mut Cx<'_>) {
        let timeout = ctx.random_timeout();
        ctx.set_timer(timeout, Timer::Election);
    }

    /// Adopts a higher term seen in any message.
    fn observe_term(&mut self, ctx: &mut Cx<'_>, term: u64) {
        if term > self.current_term {
            self.current_term = term;
            self.voted_for = None;
            self.become_follower(ctx, None);
        }
    }

    fn become_follower(&mut self, ctx: &mut Cx<'_>, leader: Option<NodeId>) {
        if matches!(self.role, Role::Leader { .. }) {
            ctx.cancel_timer(Timer::Heartbeat);
            ctx.cancel_timer(Timer::CheckQuorum);
            self.reset_election_timer(ctx);
        }
        self.role = Role::Follower { leader };
    }

    fn become_candidate(&mut self, ctx: &mut Cx<'_>) {
        ctx.election_started();
        self.current_term += 1;
        self.voted_for = Some(self.id);
        self.role = Role::Candidate {
            votes: BTreeSet::from([self.id]),
        };
        ctx.broadcast(&Msg::RequestVote {
            term: self.current_term,
        });
        self.reset_election_timer(ctx);
        self.maybe_win(ctx);
    }

    fn maybe_win(&mut self, ctx: &mut Cx<'_>) {
        if let Role::Candidate { votes } = &self.role
            && votes.len() >= self.quorum
        {
            self.role = Role::Leader {
                backing: Backing::default(),
            };
            ctx.cancel_timer(Timer::Election);
            self.heartbeat(ctx);
            if CHECK_QUORUM {
                ctx.set_timer(ctx.env().timing.timeout, Timer::CheckQuorum);
            }
        }
    }

    fn heartbeat(&self, ctx: &mut Cx<'_>) {
        ctx.broadcast(&Msg::AppendEntries {
            term: self.current_term,
        });
        ctx.set_timer(ctx.env().timing.heartbeat, Timer::Heartbeat);
    }
}

impl<const CHECK_QUORUM: bool> Protocol for Raft<CHECK_QUORUM> {
    type Msg = Msg;
    type Timer = Timer;
    const KIND: Kind = Kind::Quorum;

    fn new(id: NodeId, env: &Env, _: &mut Rng) -> Self {
        Raft {
            id,
            quorum: env.quorum(),
            current_term: 0,
            voted_for: None,
            role: Role::Follower { leader: None },
        }
    }

    fn on_start(&mut self, ctx: &mut Cx<'_>) {
        self.reset_election_timer(ctx);
    }

    fn on_message(&mut self, ctx: &mut Cx<'_>, from: NodeId, msg: Msg) {
        match msg {
            Msg::RequestVote { term } => {
                self.observe_term(ctx, term);
                let granted = term == self.current_term && self.voted_for.is_none_or(|v| v == from);
                if granted {
                    self.voted_for = Some(from);
                    self.reset_election_timer(ctx);
                }
                ctx.send(
                    from,
                    Msg::Vote {
                        term: self.current_term,
                        granted,
                    },
                );
            }
            Msg::Vote { term, granted } => {
                self.observe_term(ctx, term);
                if let Role::Candidate { votes } = &mut self.role
                    && granted
                    && term == self.current_term
                {
                    votes.insert(from);
                    self.maybe_win(ctx);
                }
            }
            Msg::AppendEntries { term } => {
                self.observe_term(ctx, term);
                if term == self.current_term {
                    // A candidate of this term yields to its leader.
                    self.become_follower(ctx, Some(from));
                    self.reset_election_timer(ctx);
                }
                ctx.send(
                    from,
                    Msg::AppendResponse {
                        term: self.current_term,
                    },
                );
            }
            Msg::AppendResponse { term } => {
                self.observe_term(ctx, term);
                if let Role::Leader { backing } = &mut self.role
                    && term == self.current_term
                {
                    backing.heard(from);
                }
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Cx<'_>, timer: Timer) {
        match timer {
            Timer::Election => self.become_candidate(ctx),
            Timer::Heartbeat => self.heartbeat(ctx),
            Timer::CheckQuorum => {
                if let Role::Leader { backing } = &mut self.role {
                    if backing.check(self.quorum) {
                        ctx.set_timer(ctx.env().timing.timeout, Timer::CheckQuorum);
                    } else {
                        self.become_follower(ctx, None);
                    }
                }
            }
        }
    }

    fn on_crash(&mut self) {
        self.role = Role::Follower { leader: None };
    }

    fn on_recover(&mut self, ctx: &mut Cx<'_>) {
        self.reset_election_timer(ctx);
    }

    fn leader(&self) -> Option<(NodeId, u64)> {
        match &self.role {
            Role::Follower { leader } => leader.map(|l| (l, self.current_term)),
            Role::Candidate { .. } => None,
            Role::Leader { .. } => Some((self.id, self.current_term)),
        }
    }
}
