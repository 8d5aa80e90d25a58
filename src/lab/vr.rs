//! Viewstamped Replication's view change (Liskov and Cowling, "Viewstamped
//! Replication Revisited", 2012, §4.2 and §4.3).
//!
//! - The primary of view `v` is replica `v mod n`; view 0 starts with
//!   replica 0 as primary, as configured. The primary sends COMMIT
//!   heartbeats while idle; backups acknowledge them as they would a
//!   PREPARE (PREPAREOK). A primary that did not hear `f` acknowledgements
//!   within a timeout starts a view change itself: it could not commit
//!   anything, and without that rule a primary cut off in a minority would
//!   act as one until the partition heals.
//! - A backup that hears nothing from the primary for a timeout moves to
//!   view `v + 1` and broadcasts STARTVIEWCHANGE. A replica that learns of a
//!   higher view does the same for it.
//! - Once it has STARTVIEWCHANGE for its view from `f` others (`f + 1` with
//!   itself), a replica sends DOVIEWCHANGE to the new primary. With `f + 1`
//!   of those (its own included), the new primary enters the view and
//!   broadcasts STARTVIEW. `f + 1` is a majority: `n = 2f + 1`, and for even
//!   `n` the simulator uses `n/2 + 1`.
//! - A view change that does not finish within a timeout moves on to the
//!   next view (whose primary is the next replica).
//! - A replica that sees a message of a higher view in normal operation
//!   joins that view (state transfer, instantaneous here).
//! - Recovery: a restarted replica has lost its state (VR keeps nothing on
//!   disk). It broadcasts RECOVERY and rejoins once `f + 1` replicas have
//!   answered, including the primary of the latest view among the answers.
//!
//! Out of scope: the log, op and commit numbers. DOVIEWCHANGE carries no log
//! and the new primary does not pick the longest one; COMMIT carries no
//! commit number.

use std::collections::{BTreeMap, BTreeSet};

use super::metrics::Kind;
use super::monitor::{Backing, Monitor};
use super::rng::Rng;
use super::sim::{Ctx, Env, Message, NodeId, Protocol};

/// View-change messages.
#[derive(Clone, Debug, Hash)]
pub(crate) enum Msg {
    /// "I want to move to `view`."
    StartViewChange {
        /// The new view.
        view: u64,
    },
    /// To the new primary: a majority wants `view`.
    DoViewChange {
        /// The new view.
        view: u64,
    },
    /// The new primary starts `view`.
    StartView {
        /// The view.
        view: u64,
    },
    /// The primary's idle heartbeat.
    Commit {
        /// The primary's view.
        view: u64,
    },
    /// A backup acknowledges the heartbeat.
    PrepareOk {
        /// The backup's view.
        view: u64,
    },
    /// A restarted replica asks for the current view.
    Recovery {
        /// Matches the answers to this attempt.
        nonce: u64,
    },
    /// The answer from a replica in normal operation.
    RecoveryResponse {
        /// The responder's view.
        view: u64,
        /// The attempt answered.
        nonce: u64,
    },
}

impl Message for Msg {
    fn kind(&self) -> &'static str {
        match self {
            Msg::StartViewChange { .. } => "STARTVIEWCHANGE",
            Msg::DoViewChange { .. } => "DOVIEWCHANGE",
            Msg::StartView { .. } => "STARTVIEW",
            Msg::Commit { .. } => "COMMIT",
            Msg::PrepareOk { .. } => "PREPAREOK",
            Msg::Recovery { .. } => "RECOVERY",
            Msg::RecoveryResponse { .. } => "RECOVERYRESPONSE",
        }
    }

    fn is_heartbeat(&self) -> bool {
        matches!(self, Msg::Commit { .. } | Msg::PrepareOk { .. })
    }
}

/// VR timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Timer {
    /// The primary's heartbeat period.
    Heartbeat,
    /// A backup checks whether the primary went silent.
    Watch,
    /// The view change took too long: try the next view.
    ViewChange,
    /// Recovery got no quorum: ask again.
    Recovery,
    /// The primary checks that a majority acknowledged it (one timeout).
    CheckQuorum,
}

type Cx<'a> = Ctx<'a, Msg, Timer>;

#[derive(Clone, Debug)]
enum Status {
    Normal,
    ViewChange {
        start: BTreeSet<NodeId>,
        sent_do: bool,
        done: BTreeSet<NodeId>,
    },
    Recovering {
        nonce: u64,
        answers: BTreeMap<NodeId, u64>,
    },
}

/// One VR replica.
#[derive(Debug)]
pub(crate) struct Vr {
    id: NodeId,
    n: u64,
    quorum: usize,
    view: u64,
    status: Status,
    monitor: Monitor,
    /// As primary: the backups that acknowledged since the last check.
    backing: Backing,
}

/// The primary of `view` among `n` replicas.
fn primary_of(view: u64, n: u64) -> NodeId {
    (view % n) as NodeId
}

impl Vr {
    fn primary(&self, view: u64) -> NodeId {
        primary_of(view, self.n)
    }

    fn enter_view(&mut self, ctx: &mut Cx<'_>, view: u64) {
        self.view = view;
        self.status = Status::Normal;
        self.monitor.heard(ctx.now());
        ctx.cancel_timer(Timer::ViewChange);
        ctx.cancel_timer(Timer::Recovery);
        if self.primary(view) == self.id {
            self.backing = Backing::default();
            self.heartbeat(ctx);
            ctx.set_timer(ctx.env().timing.timeout, Timer::CheckQuorum);
        } else {
            ctx.cancel_timer(Timer::CheckQuorum);
        }
    }

    fn heartbeat(&self, ctx: &mut Cx<'_>) {
        if matches!(self.status, Status::Normal) && self.primary(self.view) == self.id {
            ctx.broadcast(&Msg::Commit { view: self.view });
            ctx.set_timer(ctx.env().timing.heartbeat, Timer::Heartbeat);
        }
    }

    fn start_view_change(&mut self, ctx: &mut Cx<'_>, view: u64) {
        ctx.election_started();
        ctx.cancel_timer(Timer::Heartbeat);
        ctx.cancel_timer(Timer::CheckQuorum);
        self.view = view;
        self.status = Status::ViewChange {
            start: BTreeSet::from([self.id]),
            sent_do: false,
            done: BTreeSet::new(),
        };
        ctx.broadcast(&Msg::StartViewChange { view });
        ctx.set_timer(ctx.env().timing.timeout, Timer::ViewChange);
        self.progress(ctx);
    }

    /// Sends DOVIEWCHANGE and completes the view change once quorums allow.
    fn progress(&mut self, ctx: &mut Cx<'_>) {
        let primary = self.primary(self.view);
        let Status::ViewChange { start, sent_do, done } = &mut self.status else {
            return;
        };
        if start.len() >= self.quorum && !*sent_do {
            *sent_do = true;
            if primary == self.id {
                done.insert(self.id);
            } else {
                ctx.send(primary, Msg::DoViewChange { view: self.view });
            }
        }
        if primary == self.id && done.len() >= self.quorum && done.contains(&self.id) {
            ctx.broadcast(&Msg::StartView { view: self.view });
            self.enter_view(ctx, self.view);
        }
    }

    fn recover(&mut self, ctx: &mut Cx<'_>) {
        let nonce = ctx.rng().next_u64();
        self.status = Status::Recovering {
            nonce,
            answers: BTreeMap::new(),
        };
        ctx.broadcast(&Msg::Recovery { nonce });
        ctx.set_timer(ctx.env().timing.timeout, Timer::Recovery);
    }
}

impl Protocol for Vr {
    type Msg = Msg;
    type Timer = Timer;
    const KIND: Kind = Kind::Quorum;

    fn new(id: NodeId, env: &Env, _: &mut Rng) -> Vr {
        Vr {
            id,
            n: env.n as u64,
            quorum: env.quorum(),
            view: 0,
            status: Status::Normal,
            monitor: Monitor::default(),
            backing: Backing::default(),
        }
    }

    fn on_start(&mut self, ctx: &mut Cx<'_>) {
        ctx.set_timer(ctx.env().timing.heartbeat, Timer::Watch);
        self.enter_view(ctx, 0);
    }

    fn on_message(&mut self, ctx: &mut Cx<'_>, from: NodeId, msg: Msg) {
        if let Status::Recovering { nonce, answers } = &mut self.status {
            if let Msg::RecoveryResponse { view, nonce: n } = msg
                && n == *nonce
            {
                answers.insert(from, view);
                let latest = answers.values().copied().max().unwrap_or(0);
                let primary = primary_of(latest, self.n);
                if answers.len() >= self.quorum && answers.get(&primary) == Some(&latest) {
                    self.enter_view(ctx, latest);
                }
            }
            return;
        }
        match msg {
            Msg::StartViewChange { view } | Msg::DoViewChange { view } if view > self.view => {
                self.start_view_change(ctx, view);
                self.on_message(ctx, from, msg);
            }
            Msg::StartViewChange { view } => {
                if let Status::ViewChange { start, .. } = &mut self.status
                    && view == self.view
                {
                    start.insert(from);
                    self.progress(ctx);
                }
            }
            Msg::DoViewChange { view } => {
                if let Status::ViewChange { done, .. } = &mut self.status
                    && view == self.view
                {
                    done.insert(from);
                    self.progress(ctx);
                }
            }
            Msg::StartView { view } | Msg::Commit { view } => {
                if view > self.view || (view == self.view && !matches!(self.status, Status::Normal)) {
                    self.enter_view(ctx, view);
                } else if view == self.view {
                    self.monitor.heard(ctx.now());
                }
                if matches!(msg, Msg::Commit { .. }) && view == self.view {
                    ctx.send(from, Msg::PrepareOk { view });
                }
            }
            Msg::PrepareOk { view } => {
                if view == self.view && self.primary(view) == self.id {
                    self.backing.heard(from);
                }
            }
            Msg::Recovery { nonce } => {
                if matches!(self.status, Status::Normal) {
                    ctx.send(
                        from,
                        Msg::RecoveryResponse {
                            view: self.view,
                            nonce,
                        },
                    );
                }
            }
            Msg::RecoveryResponse { .. } => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Cx<'_>, timer: Timer) {
        match timer {
            Timer::Heartbeat => self.heartbeat(ctx),
            Timer::Watch => {
                let timing = ctx.env().timing;
                ctx.set_timer(timing.heartbeat, Timer::Watch);
                let backup = self.primary(self.view) != self.id;
                if matches!(self.status, Status::Normal)
                    && backup
                    && self.monitor.silent(ctx.now(), timing.timeout)
                {
                    self.start_view_change(ctx, self.view + 1);
                }
            }
            Timer::ViewChange => {
                if matches!(self.status, Status::ViewChange { .. }) {
                    self.start_view_change(ctx, self.view + 1);
                }
            }
            Timer::Recovery => {
                if matches!(self.status, Status::Recovering { .. }) {
                    self.recover(ctx);
                }
            }
            Timer::CheckQuorum => {
                if self.backing.check(self.quorum) {
                    ctx.set_timer(ctx.env().timing.timeout, Timer::CheckQuorum);
                } else {
                    self.start_view_change(ctx, self.view + 1);
                }
            }
        }
    }

    fn on_crash(&mut self) {
        self.view = 0;
        self.status = Status::Recovering {
            nonce: 0,
            answers: BTreeMap::new(),
        };
    }

    fn on_recover(&mut self, ctx: &mut Cx<'_>) {
        ctx.set_timer(ctx.env().timing.heartbeat, Timer::Watch);
        self.recover(ctx);
    }

    fn leader(&self) -> Option<(NodeId, u64)> {
        matches!(self.status, Status::Normal).then(|| (self.primary(self.view), self.view))
    }
}
