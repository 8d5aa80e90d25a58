//! The task that owns the swarm.
//!
//! [`EventLoop::run`] selects, in this order of priority, over commands from
//! [`NetworkHandle`](super::NetworkHandle)s (local work first), messages
//! the link conditioner held whose delay is over (`--chaos` only), the
//! redial timer, and swarm events. Handlers are synchronous: the loop never
//! awaits another task, and talks to the node only with `try_send`, so a
//! slow node costs dropped gossip (reported `Ignore`) and refused sync
//! requests, never a stalled swarm.
//!
//! Every message between the node and its peers, either way, is a
//! [`Held`] passed through [`EventLoop::admit`]: without `--chaos` it is
//! delivered at once; with it, the link conditioner may hold or lose it.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, PublishError};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, InboundRequestId, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{Swarm, SwarmEvent};
use libp2p::{Multiaddr, PeerId, identify, mdns};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, trace, warn};

use super::behaviour::{Behaviour, BehaviourEvent};
use super::chaos::{self, Admit, Held, LinkConditioner};
use super::sync_codec::{SyncRequest, SyncResponse};
use super::topics::{Names, TopicKind};
use super::{
    ChaosChange, ChaosState, MAX_BLOCKED, MessageRef, NetworkEvent, P2pError, ResponseChannelRef, Verdict,
};
use crate::api::chaos::LinkFaults;

/// Quiet peers stay connected this long with no stream open; blocks may be
/// minutes apart on a slow chain.
pub(crate) const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);
/// How often disconnected bootnodes are dialled again, so that a healed
/// partition reconnects on its own.
const REDIAL_INTERVAL: Duration = Duration::from_secs(10);
/// Below this many peers every redial tick also runs a kademlia bootstrap;
/// kademlia's own periodic one (every 5 minutes) is for a settled node.
const TARGET_PEERS: usize = 8;
/// Inbound sync requests the node may hold unanswered; more are refused.
const MAX_PENDING_RESPONSES: usize = 64;
/// Of those, how many one peer may have: a flood from one peer is refused
/// here and never fills the queue for the others.
const MAX_PENDING_RESPONSES_PER_PEER: usize = 4;

/// What a [`NetworkHandle`](super::NetworkHandle) asks of the loop.
#[derive(Debug)]
pub(crate) enum Command {
    Publish {
        kind: TopicKind,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<(), P2pError>>,
    },
    Report {
        msg: MessageRef,
        verdict: Verdict,
    },
    Request {
        peer: PeerId,
        req: SyncRequest,
        reply: oneshot::Sender<Result<SyncResponse, P2pError>>,
    },
    Respond {
        channel: ResponseChannelRef,
        resp: SyncResponse,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    Ban {
        peer: PeerId,
    },
    Chaos {
        change: ChaosChange,
        reply: oneshot::Sender<Result<ChaosState, P2pError>>,
    },
    Shutdown,
}

/// A configured bootnode: its address without `/p2p/`, and its peer id,
/// from the address or learned on the first successful dial.
#[derive(Debug)]
struct Bootnode {
    addr: Multiaddr,
    peer: Option<PeerId>,
}

/// Owns the swarm; spawn [`EventLoop::run`] to bring the network up.
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    names: Names,
    bootnodes: Vec<Bootnode>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetworkEvent>,
    /// Our sync requests awaiting an answer; each ends within the request
    /// timeout as a response or an `OutboundFailure`.
    pending_requests: HashMap<OutboundRequestId, oneshot::Sender<Result<SyncResponse, P2pError>>>,
    /// Peers' sync requests the node has not answered yet. libp2p's
    /// channels cannot leave the loop; [`ResponseChannelRef`] names them.
    /// Each kept with the peer that asked.
    pending_responses: HashMap<InboundRequestId, (PeerId, ResponseChannel<SyncResponse>)>,
    /// Peers the node banned for sending invalid data: disconnected, and
    /// any new connection from them is closed at once.
    banned: HashSet<PeerId>,
    /// The link conditioner, with `--chaos` only.
    link: Option<LinkConditioner>,
}

impl EventLoop {
    pub(crate) fn new(
        mut swarm: Swarm<Behaviour>,
        names: Names,
        bootnodes: Vec<Multiaddr>,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<NetworkEvent>,
    ) -> EventLoop {
        let bootnodes: Vec<Bootnode> = bootnodes.into_iter().map(Bootnode::new).collect();
        for bootnode in &bootnodes {
            if let Some(peer) = bootnode.peer {
                swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer, bootnode.addr.clone());
            }
        }
        EventLoop {
            swarm,
            names,
            bootnodes,
            commands,
            events,
            pending_requests: HashMap::new(),
            pending_responses: HashMap::new(),
            banned: HashSet::new(),
            link: None,
        }
    }

    /// Accepts [`NetworkHandle::chaos`](super::NetworkHandle::chaos):
    /// partitions and link faults, for a node started with `--chaos`.
    /// Without this the network has no faults and refuses to be given any.
    pub fn with_chaos(mut self) -> EventLoop {
        self.link = Some(LinkConditioner::new());
        self
    }

    /// Runs the network until [`NetworkHandle::shutdown`](super::NetworkHandle::shutdown)
    /// is called or every handle is dropped. Dropping the swarm on return
    /// closes every connection and listener.
    pub async fn run(mut self) {
        // The first tick fires at once: that is the initial bootnode dial.
        let mut redial = tokio::time::interval(REDIAL_INTERVAL);
        redial.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            // All four futures are cancel-safe: losing the race drops
            // nothing (mpsc recv, the delay queue, interval tick, polling
            // the swarm stream).
            tokio::select! {
                biased;
                command = self.commands.recv() => {
                    // `None`: every handle is gone, so nobody can use the network.
                    let Some(command) = command else { break };
                    if self.on_command(command).is_break() {
                        break;
                    }
                }
                Some(item) = next_due(&mut self.link) => self.deliver(item),
                _ = redial.tick() => self.on_redial(),
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
            }
        }
        info!("network event loop stopped");
    }

    fn on_command(&mut self, command: Command) -> ControlFlow<()> {
        match command {
            Command::Publish { kind, bytes, reply } => {
                let result =
                    check_size(kind, &bytes).and_then(|()| match self.admit(Held::Publish { kind, bytes }) {
                        Some(Held::Publish { kind, bytes }) => self.publish(kind, bytes),
                        // Held or lost: as far as the node can tell, it went out.
                        _ => Ok(()),
                    });
                let _ = reply.send(result);
            }
            // Only an accepted message is forwarded: that is what crosses the link.
            Command::Report {
                msg,
                verdict: Verdict::Accept,
            } => self.pass(Held::Forward(msg)),
            Command::Report { msg, verdict } => self.report(&msg, verdict),
            Command::Request { peer, req, reply } => self.pass(Held::Request { peer, req, reply }),
            Command::Respond { channel, resp } => match self.pending_responses.remove(&channel.0) {
                Some((_, channel)) => self.pass(Held::Respond { channel, resp }),
                None => debug!("sync response dropped: the request timed out or failed"),
            },
            Command::Peers { reply } => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::Ban { peer } => {
                info!(%peer, "banned");
                self.banned.insert(peer);
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::Chaos { change, reply } => {
                let _ = reply.send(self.on_chaos(change));
            }
            Command::Shutdown => return ControlFlow::Break(()),
        }
        ControlFlow::Continue(())
    }

    /// Passes a message through the link conditioner: `Some` to deliver
    /// now. Held ones come back from [`next_due`]; lost ones are dealt
    /// with here.
    fn admit(&mut self, item: Held) -> Option<Held> {
        let Some(link) = self.link.as_mut() else {
            return Some(item);
        };
        match link.admit(item) {
            Admit::Now(item) => Some(item),
            Admit::Later => None,
            Admit::Lost(item) => {
                self.lose(item);
                None
            }
        }
    }

    /// [`EventLoop::admit`], then [`EventLoop::deliver`].
    fn pass(&mut self, item: Held) {
        if let Some(item) = self.admit(item) {
            self.deliver(item);
        }
    }

    /// Publishes a payload [`check_size`] has passed.
    fn publish(&mut self, kind: TopicKind, bytes: Vec<u8>) -> Result<(), P2pError> {
        let topic = self.names.topic(kind).hash();
        match self.swarm.behaviour_mut().gossipsub.publish(topic, bytes) {
            Ok(id) => debug!(message_id = %id, kind = kind.name(), "published"),
            // Alone, the node still produces; its blocks spread through sync.
            Err(PublishError::NoPeersSubscribedToTopic) => {
                debug!(kind = kind.name(), "not published: no peer subscribed");
            }
            // Already seen on the network: there is nothing left to do.
            Err(PublishError::Duplicate) => debug!(kind = kind.name(), "not published: duplicate"),
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Does what a message that crossed the link does.
    fn deliver(&mut self, item: Held) {
        match item {
            Held::Inbound(event) => self.hand_to_node(event),
            Held::Response { id, response } => {
                if let Some(reply) = self.pending_requests.remove(&id) {
                    let _ = reply.send(Ok(response));
                }
            }
            Held::Publish { kind, bytes } => {
                if let Err(error) = self.publish(kind, bytes) {
                    warn!(%error, "delayed publish failed");
                }
            }
            Held::Forward(msg) => self.report(&msg, Verdict::Accept),
            Held::Request { peer, req, reply } => {
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, req);
                self.pending_requests.insert(id, reply);
            }
            Held::Respond { channel, resp } => {
                if self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, resp)
                    .is_err()
                {
                    debug!("sync response dropped: the requester is gone");
                }
            }
        }
    }

    /// Makes of a lost message what the network would have.
    fn lose(&mut self, item: Held) {
        trace!(?item, "lost by the link conditioner");
        match item {
            // Not forwarded, not blamed on anyone.
            Held::Inbound(NetworkEvent::Block { msg, .. } | NetworkEvent::Tx { msg, .. })
            | Held::Forward(msg) => {
                self.report(&msg, Verdict::Ignore);
            }
            // Dropping libp2p's channel closes the peer's stream unanswered.
            Held::Inbound(NetworkEvent::SyncRequest { channel, .. }) => {
                self.pending_responses.remove(&channel.0);
            }
            Held::Request { reply, .. } => {
                let _ = reply.send(Err(P2pError::Dropped));
            }
            Held::Response { id, .. } => {
                if let Some(reply) = self.pending_requests.remove(&id) {
                    let _ = reply.send(Err(P2pError::Dropped));
                }
            }
            Held::Publish { .. } | Held::Respond { .. } | Held::Inbound(_) => {}
        }
    }

    fn on_chaos(&mut self, change: ChaosChange) -> Result<ChaosState, P2pError> {
        let Some(link) = self.link.as_mut() else {
            return Err(P2pError::ChaosOff);
        };
        match change {
            ChaosChange::Show => {}
            ChaosChange::Link(faults) => {
                chaos::check_link(&faults)?;
                info!(?faults, "link faults set");
                link.set(faults);
            }
            ChaosChange::Partition(peers) => self.set_partition(peers)?,
            ChaosChange::Clear => {
                link.set(LinkFaults::default());
                self.set_partition(Vec::new())?;
            }
        }
        let link = self.link.as_ref().map(|l| (l.faults(), l.counters()));
        let (link, counters) = link.unwrap_or_default();
        let mut blocked: Vec<PeerId> = self
            .swarm
            .behaviour()
            .partition
            .blocked_peers()
            .iter()
            .copied()
            .collect();
        blocked.sort();
        Ok(ChaosState {
            blocked,
            link,
            counters,
        })
    }

    /// Makes `peers` the block list: newly blocked peers are disconnected,
    /// and if any peer was unblocked the bootnodes are redialled at once.
    fn set_partition(&mut self, peers: Vec<PeerId>) -> Result<(), P2pError> {
        if peers.len() > MAX_BLOCKED {
            return Err(P2pError::TooManyBlocked { len: peers.len() });
        }
        let wanted: HashSet<PeerId> = peers.into_iter().collect();
        let list = &mut self.swarm.behaviour_mut().partition;
        let healed: Vec<PeerId> = list.blocked_peers().difference(&wanted).copied().collect();
        for peer in &healed {
            list.unblock_peer(*peer);
        }
        for peer in wanted {
            if list.block_peer(peer) {
                info!(%peer, "partitioned: connections refused");
            }
        }
        if !healed.is_empty() {
            info!(peers = healed.len(), "partition healed; redialling");
            self.on_redial();
        }
        Ok(())
    }

    fn report(&mut self, msg: &MessageRef, verdict: Verdict) {
        // `false` means the message left gossipsub's cache (validation came
        // too late); gossipsub logs that itself.
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&msg.id, &msg.source, verdict.into());
    }

    fn on_redial(&mut self) {
        let local = *self.swarm.local_peer_id();
        for bootnode in &self.bootnodes {
            let opts = match bootnode.peer {
                Some(peer) if peer == local || self.swarm.is_connected(&peer) => continue,
                // A testnet may hand every node the same list, this one included.
                None if self.swarm.listeners().any(|a| *a == bootnode.addr) => continue,
                // The default condition skips a peer we are already dialling.
                Some(peer) => DialOpts::peer_id(peer)
                    .addresses(vec![bootnode.addr.clone()])
                    .build(),
                None => DialOpts::unknown_peer_id().address(bootnode.addr.clone()).build(),
            };
            if let Err(error) = self.swarm.dial(opts) {
                debug!(addr = %bootnode.addr, %error, "bootnode not dialled");
            }
        }
        if self.swarm.connected_peers().count() < TARGET_PEERS
            && let Err(error) = self.swarm.behaviour_mut().kad.bootstrap()
        {
            debug!(%error, "kademlia bootstrap not started");
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => self.on_gossipsub(event),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.on_sync(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                // Only peers that speak our chain's kademlia belong in our
                // routing table; their listen addresses are how others will
                // find them through us.
                if info.protocols.contains(&self.names.kad) {
                    for addr in info.listen_addrs {
                        self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    debug!(%peer, %addr, "found by mdns");
                    self.swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
                    let _ = self
                        .swarm
                        .dial(DialOpts::peer_id(peer).addresses(vec![addr]).build());
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                if self.banned.contains(&peer_id) {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                if endpoint.is_dialer() {
                    self.learn_bootnode_peer(peer_id, endpoint.get_remote_address());
                }
                if num_established.get() == 1 {
                    debug!(peer = %peer_id, addr = %endpoint.get_remote_address(), "peer connected");
                    self.emit(NetworkEvent::PeerConnected(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                cause,
                ..
            } => {
                debug!(peer = %peer_id, ?cause, "peer disconnected");
                self.emit(NetworkEvent::PeerDisconnected(peer_id));
            }
            SwarmEvent::NewListenAddr { address, .. } => info!(%address, "listening"),
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                debug!(peer = ?peer_id, %error, "outgoing connection failed");
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => debug!(addr = %send_back_addr, %error, "incoming connection failed"),
            SwarmEvent::ListenerError { error, .. } => warn!(%error, "listener error"),
            SwarmEvent::ListenerClosed {
                addresses, reason, ..
            } => warn!(?addresses, ?reason, "listener closed"),
            event => trace!(?event),
        }
    }

    fn on_gossipsub(&mut self, event: gossipsub::Event) {
        let (propagation_source, message_id, message) = match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => (propagation_source, message_id, message),
            event => {
                trace!(?event, "gossipsub");
                return;
            }
        };
        let msg = MessageRef {
            id: message_id,
            source: propagation_source,
        };
        let Some(kind) = self.names.kind(&message.topic) else {
            // Gossipsub only delivers topics we subscribed to.
            debug!(topic = %message.topic, "gossip on an unknown topic ignored");
            return self.report(&msg, Verdict::Ignore);
        };
        if message.data.len() > kind.max_bytes() {
            debug!(peer = %propagation_source, kind = kind.name(), len = message.data.len(), "oversized gossip rejected");
            self.report(&msg, Verdict::Reject);
            return self.emit(NetworkEvent::Oversized {
                from: propagation_source,
                kind,
                len: message.data.len(),
            });
        }
        let event = match kind {
            TopicKind::Block => NetworkEvent::Block {
                from: propagation_source,
                msg,
                bytes: message.data,
            },
            TopicKind::Tx => NetworkEvent::Tx {
                from: propagation_source,
                msg,
                bytes: message.data,
            },
        };
        self.pass(Held::Inbound(event));
    }

    fn on_sync(&mut self, event: request_response::Event<SyncRequest, SyncResponse>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request_id,
                        request,
                        channel,
                    },
                ..
            } => {
                let of_peer = self
                    .pending_responses
                    .values()
                    .filter(|(p, _)| *p == peer)
                    .count();
                if self.pending_responses.len() >= MAX_PENDING_RESPONSES
                    || of_peer >= MAX_PENDING_RESPONSES_PER_PEER
                {
                    debug!(%peer, of_peer, "sync request refused: too many unanswered");
                    return self.refuse(channel);
                }
                self.pending_responses.insert(request_id, (peer, channel));
                self.pass(Held::Inbound(NetworkEvent::SyncRequest {
                    from: peer,
                    req: request,
                    channel: ResponseChannelRef(request_id),
                }));
            }
            request_response::Event::Message {
                message: request_response::Message::Response { request_id, response },
                ..
            } => self.pass(Held::Response {
                id: request_id,
                response,
            }),
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                debug!(%peer, %error, "sync request failed");
                if let Some(reply) = self.pending_requests.remove(&request_id) {
                    let _ = reply.send(Err(error.into()));
                }
            }
            request_response::Event::InboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                self.pending_responses.remove(&request_id);
                match error {
                    // Bad input from the peer: the codec says what was wrong.
                    request_response::InboundFailure::Io(error) => {
                        warn!(%peer, %error, "bad sync request");
                    }
                    error => debug!(%peer, %error, "inbound sync request failed"),
                }
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn refuse(&mut self, channel: ResponseChannel<SyncResponse>) {
        let _ = self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, SyncResponse::Refused);
    }

    /// Records the peer id behind a bootnode given without `/p2p/`, so the
    /// redial timer can tell when it is connected.
    fn learn_bootnode_peer(&mut self, peer: PeerId, remote: &Multiaddr) {
        let remote = without_p2p(remote.clone());
        for bootnode in &mut self.bootnodes {
            if bootnode.peer.is_none() && bootnode.addr == remote {
                bootnode.peer = Some(peer);
                self.swarm.behaviour_mut().kad.add_address(&peer, remote.clone());
            }
        }
    }

    /// Hands gossip or a sync request to the node without waiting. If the
    /// node is not keeping up, gossip is ignored (not forwarded) and the
    /// request refused.
    fn hand_to_node(&mut self, event: NetworkEvent) {
        let Err(error) = self.events.try_send(event) else {
            return;
        };
        match error.into_inner() {
            NetworkEvent::Block { from, msg, .. } | NetworkEvent::Tx { from, msg, .. } => {
                warn!(peer = %from, "gossip dropped: the node is not keeping up");
                self.report(&msg, Verdict::Ignore);
            }
            NetworkEvent::SyncRequest { from, channel, .. } => {
                warn!(peer = %from, "sync request refused: the node is not keeping up");
                if let Some((_, channel)) = self.pending_responses.remove(&channel.0) {
                    self.refuse(channel);
                }
            }
            event => warn!(?event, "network event dropped: the node is not keeping up"),
        }
    }

    /// Hands an event to the node without waiting; a full queue loses it.
    fn emit(&self, event: NetworkEvent) {
        if let Err(TrySendError::Full(event)) = self.events.try_send(event) {
            warn!(?event, "network event dropped: the node is not keeping up");
        }
    }
}

/// The next message the link conditioner held whose delay is over; `None`
/// at once without `--chaos` or when nothing is held (the `select!` arm
/// is then off until the next turn of the loop).
async fn next_due(link: &mut Option<LinkConditioner>) -> Option<Held> {
    link.as_mut()?.next_due().await
}

/// Refuses a payload over its topic's limit.
fn check_size(kind: TopicKind, bytes: &[u8]) -> Result<(), P2pError> {
    let max = kind.max_bytes();
    if bytes.len() > max {
        return Err(P2pError::TooLarge {
            kind: kind.name(),
            len: bytes.len(),
            max,
        });
    }
    Ok(())
}

impl Bootnode {
    fn new(addr: Multiaddr) -> Bootnode {
        let peer = match addr.iter().last() {
            Some(Protocol::P2p(peer)) => Some(peer),
            _ => None,
        };
        Bootnode {
            addr: without_p2p(addr),
            peer,
        }
    }
}

fn without_p2p(mut addr: Multiaddr) -> Multiaddr {
    if let Some(Protocol::P2p(_)) = addr.iter().last() {
        addr.pop();
    }
    addr
}
