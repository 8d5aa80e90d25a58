//! The libp2p networking layer: gossip for blocks and transactions, a
//! request-response protocol for sync, and peer discovery.
//!
//! One task, the [`EventLoop`], owns the libp2p `Swarm`. The rest of the
//! node talks to it through a cloneable [`NetworkHandle`] (commands over a
//! bounded channel, answers over oneshots) and hears from it through a
//! bounded `Receiver<NetworkEvent>`. This is the shape of rust-libp2p's
//! file-sharing example, with the fixes a node needs: every channel is
//! bounded, the loop never awaits anyone, and nothing a peer sends can make
//! it panic.
//!
//! # Layout
//!
//! - `topics`: topic and protocol names, scoped by chain id.
//! - `behaviour`: the composed `NetworkBehaviour` and its configuration.
//! - `sync_codec`: the bounded wire codec of the sync protocol.
//! - `event_loop`: the task that owns the swarm.
//! - `chaos`: the link conditioner of a node started with `--chaos` (delay,
//!   jitter and loss on gossip and sync); partitions are the behaviour's
//!   block list. Both are driven through [`NetworkHandle::chaos`].
//!
//! # Gossip validation
//!
//! Gossipsub runs with `validate_messages()`: a received block or
//! transaction is not forwarded until the node answers the
//! [`NetworkEvent::Block`] / [`NetworkEvent::Tx`] with
//! [`NetworkHandle::report`]. [`Verdict::Reject`] lowers the sender's
//! gossipsub score (a few rejects and its messages are dropped unread);
//! [`Verdict::Ignore`] drops the message without blame.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod behaviour;
mod chaos;
mod event_loop;
mod sync_codec;
mod topics;

use std::io;
use std::path::Path;

use libp2p::gossipsub::{self, MessageId};
use libp2p::identity::Keypair;
use libp2p::request_response::{InboundRequestId, OutboundFailure};
use libp2p::swarm::{DialError, Swarm};
use libp2p::{Multiaddr, PeerId, SwarmBuilder, TransportError, noise, tcp, yamux};
use tokio::sync::{mpsc, oneshot};

use self::behaviour::Behaviour;
pub use self::chaos::{MAX_LINK_DELAY_MS, MAX_LOSS_PPM, check_link};
pub use self::event_loop::EventLoop;
use self::event_loop::{Command, IDLE_CONNECTION_TIMEOUT};
pub use self::sync_codec::{MAX_SYNC_BLOCKS, MAX_SYNC_HEADERS, SyncRequest, SyncResponse};
pub use self::topics::TopicKind;
use crate::api::chaos::{LinkCounters, LinkFaults};
use crate::keyfile::{self, KeyFileError};

/// Largest block payload published or accepted on the blocks topic: the
/// largest block the codec decodes. Gossipsub's own frame limit adds room
/// for the signed envelope on top of this.
pub const MAX_GOSSIP_BYTES: usize = klero_chain::codec::MAX_BLOCK_BYTES;

/// Commands waiting for the event loop. Callers wait when it is full.
const COMMAND_BUFFER: usize = 256;
/// Events waiting for the node. When full, the loop drops new gossip with
/// [`Verdict::Ignore`] and refuses sync requests instead of blocking.
const EVENT_BUFFER: usize = 1024;
/// Most peers a partition's block list holds.
pub const MAX_BLOCKED: usize = 1024;
/// Name of the identity file inside the data directory.
const IDENTITY_FILE: &str = "p2p.key";

/// Everything [`new`] needs to start a node's network.
#[derive(Debug, Clone)]
pub struct P2pConfig {
    /// Scopes every topic and protocol name: nodes of other chains never
    /// exchange gossip, sync or routing entries with us.
    pub chain_id: String,
    /// Addresses to listen on; `/udp/<port>/quic-v1` ones listen on QUIC.
    /// Empty means dial-only.
    pub listen: Vec<Multiaddr>,
    /// Peers dialled at start and re-dialled while disconnected. A trailing
    /// `/p2p/<peer id>` lets the node tell when it is already connected.
    pub bootnodes: Vec<Multiaddr>,
    /// The node's network identity (see [`load_or_create_identity`]).
    pub keypair: Keypair,
    /// Discover peers on the local network by multicast DNS. Off unless a
    /// user asks for it: it sends traffic to everyone on the LAN.
    pub mdns: bool,
}

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    /// The chain id cannot be part of a protocol name.
    #[error("chain id {0:?} must be non-empty ASCII letters, digits, '-', '_' or '.'")]
    InvalidChainId(String),
    /// The noise handshake configuration could not be built from the key.
    #[error("noise setup failed: {0}")]
    Noise(#[from] noise::Error),
    /// Gossipsub rejected its configuration (a bug in this module).
    #[error("gossipsub setup failed: {0}")]
    Gossipsub(String),
    /// Multicast DNS could not start.
    #[error("mdns setup failed: {0}")]
    Mdns(#[source] io::Error),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address from [`P2pConfig::listen`].
        addr: Multiaddr,
        /// The transport's reason.
        source: TransportError<io::Error>,
    },
    /// A dial could not start.
    #[error("dial failed: {0}")]
    Dial(#[from] DialError),
    /// A gossip payload is larger than its topic accepts.
    #[error("{kind} payload of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// `"block"` or `"transaction"`.
        kind: &'static str,
        /// The payload's length.
        len: usize,
        /// The topic's limit.
        max: usize,
    },
    /// Gossipsub refused to publish.
    #[error("publish failed: {0}")]
    Publish(#[from] gossipsub::PublishError),
    /// A sync request got no response: dial failure, timeout, closed
    /// connection, unsupported protocol or a malformed answer.
    #[error("sync request failed: {0}")]
    Request(#[from] OutboundFailure),
    /// The event loop has stopped (shut down, or its task ended).
    #[error("the network event loop has stopped")]
    Stopped,
    /// The link conditioner lost the message ([`LinkFaults::loss_ppm`]).
    #[error("lost by the link conditioner (--chaos)")]
    Dropped,
    /// Faults asked of a network whose loop was not built
    /// [`EventLoop::with_chaos`].
    #[error("this node was started without --chaos")]
    ChaosOff,
    /// Link faults out of range.
    #[error("{field} must be at most {max}")]
    BadLink {
        /// The field (or sum of fields) of [`LinkFaults`].
        field: &'static str,
        /// Its largest value.
        max: u64,
    },
    /// A partition's block list is too long.
    #[error("a block list of {len} peers exceeds the limit of {MAX_BLOCKED}")]
    TooManyBlocked {
        /// The list's length.
        len: usize,
    },
}

/// The node's judgement of a gossiped block or transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: forward it to our mesh peers.
    Accept,
    /// Invalid by the sender's fault: drop it and lower the sender's score.
    Reject,
    /// Not useful now (duplicate, unknown parent, our own failure): drop
    /// it without blaming anyone.
    Ignore,
}

impl From<Verdict> for gossipsub::MessageAcceptance {
    fn from(verdict: Verdict) -> Self {
        match verdict {
            Verdict::Accept => Self::Accept,
            Verdict::Reject => Self::Reject,
            Verdict::Ignore => Self::Ignore,
        }
    }
}

/// Names one received gossip message, to be passed back in
/// [`NetworkHandle::report`].
#[derive(Debug, Clone)]
pub struct MessageRef {
    id: MessageId,
    /// The peer that sent it to us, who is credited or blamed for it.
    source: PeerId,
}

/// Names one inbound sync request, to be answered once with
/// [`NetworkHandle::respond`]. The libp2p response channel itself cannot
/// leave the event loop; this is the key it is kept under there.
#[derive(Debug)]
pub struct ResponseChannelRef(InboundRequestId);

/// What the network tells the node.
#[derive(Debug)]
pub enum NetworkEvent {
    /// A gossiped block. It is not forwarded until the node calls
    /// [`NetworkHandle::report`] with `msg`; `from` is the peer that sent
    /// it to us (not necessarily its author), a good peer to sync from.
    Block {
        /// The sending peer.
        from: PeerId,
        /// Pass back to [`NetworkHandle::report`].
        msg: MessageRef,
        /// The encoded block, at most [`MAX_GOSSIP_BYTES`].
        bytes: Vec<u8>,
    },
    /// A gossiped transaction; like [`NetworkEvent::Block`].
    Tx {
        /// The sending peer.
        from: PeerId,
        /// Pass back to [`NetworkHandle::report`].
        msg: MessageRef,
        /// The encoded transaction, at most `MAX_TX_BYTES`.
        bytes: Vec<u8>,
    },
    /// A gossiped message over its topic's limit. It has been rejected
    /// already (which lowers the sender's gossipsub score) and is not
    /// passed on; the node decides whether the sender is banned.
    Oversized {
        /// The sending peer.
        from: PeerId,
        /// Its topic.
        kind: TopicKind,
        /// Its length in bytes.
        len: usize,
    },
    /// A peer asks for sync data; answer with [`NetworkHandle::respond`]
    /// within the request timeout (10 s).
    SyncRequest {
        /// The asking peer.
        from: PeerId,
        /// What it asks for (already checked against [`MAX_SYNC_BLOCKS`]
        /// and [`MAX_SYNC_HEADERS`]).
        req: SyncRequest,
        /// Pass back to [`NetworkHandle::respond`].
        channel: ResponseChannelRef,
    },
    /// The first connection to a peer is up.
    PeerConnected(PeerId),
    /// The last connection to a peer has closed.
    PeerDisconnected(PeerId),
}

/// A change to the network's faults ([`NetworkHandle::chaos`]).
#[derive(Debug, Clone)]
pub enum ChaosChange {
    /// None: just report them.
    Show,
    /// Refuse and close connections to exactly these peers (empty heals).
    Partition(Vec<PeerId>),
    /// Set the link faults.
    Link(LinkFaults),
    /// Remove every fault: no block list, no link faults.
    Clear,
}

/// The network's active faults and what they have done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChaosState {
    /// The partition's block list.
    pub blocked: Vec<PeerId>,
    /// The link faults.
    pub link: LinkFaults,
    /// The link conditioner's counters.
    pub counters: LinkCounters,
}

/// The node's side of the network: cheap to clone, every method a round
/// trip to the event loop.
///
/// # Errors
///
/// Every method returns [`P2pError::Stopped`] once the event loop has
/// ended, besides the errors listed on it.
#[derive(Debug, Clone)]
pub struct NetworkHandle {
    commands: mpsc::Sender<Command>,
}

impl NetworkHandle {
    /// Gossips an encoded block. Having no peer to send it to is not an
    /// error: the block will reach the network through sync.
    ///
    /// # Errors
    ///
    /// [`P2pError::TooLarge`] over [`MAX_GOSSIP_BYTES`];
    /// [`P2pError::Publish`] if gossipsub cannot queue it.
    pub async fn publish_block(&self, bytes: Vec<u8>) -> Result<(), P2pError> {
        self.publish(TopicKind::Block, bytes).await
    }

    /// Gossips an encoded transaction; like [`NetworkHandle::publish_block`]
    /// with the transaction size limit.
    ///
    /// # Errors
    ///
    /// As [`NetworkHandle::publish_block`].
    pub async fn publish_tx(&self, bytes: Vec<u8>) -> Result<(), P2pError> {
        self.publish(TopicKind::Tx, bytes).await
    }

    async fn publish(&self, kind: TopicKind, bytes: Vec<u8>) -> Result<(), P2pError> {
        self.call(|reply| Command::Publish { kind, bytes, reply }).await?
    }

    /// Reports the node's verdict on a gossiped message: `Accept` forwards
    /// it, `Reject` penalises the sender, `Ignore` drops it.
    ///
    /// # Errors
    ///
    /// Only [`P2pError::Stopped`].
    pub async fn report(&self, msg: MessageRef, verdict: Verdict) -> Result<(), P2pError> {
        self.send(Command::Report { msg, verdict }).await
    }

    /// Sends a sync request and waits for the answer (at most 10 s).
    ///
    /// # Errors
    ///
    /// [`P2pError::Request`] if no valid response arrives in time.
    pub async fn request(&self, peer: PeerId, req: SyncRequest) -> Result<SyncResponse, P2pError> {
        self.call(|reply| Command::Request { peer, req, reply }).await?
    }

    /// Answers an inbound sync request. An answer that comes too late, or
    /// after the peer left, is dropped with a debug log.
    ///
    /// # Errors
    ///
    /// Only [`P2pError::Stopped`].
    pub async fn respond(&self, channel: ResponseChannelRef, resp: SyncResponse) -> Result<(), P2pError> {
        self.send(Command::Respond { channel, resp }).await
    }

    /// The peers we have at least one connection to.
    ///
    /// # Errors
    ///
    /// Only [`P2pError::Stopped`].
    pub async fn peers(&self) -> Result<Vec<PeerId>, P2pError> {
        self.call(|reply| Command::Peers { reply }).await
    }

    /// The addresses we listen on. Empty until the listeners have bound,
    /// which happens once the event loop runs: poll it.
    ///
    /// # Errors
    ///
    /// Only [`P2pError::Stopped`].
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, P2pError> {
        self.call(|reply| Command::ListenAddrs { reply }).await
    }

    /// Disconnects `peer` and refuses its connections from now on (until
    /// the node restarts): for peers that keep sending invalid data.
    ///
    /// # Errors
    ///
    /// Only [`P2pError::Stopped`].
    pub async fn ban(&self, peer: PeerId) -> Result<(), P2pError> {
        self.send(Command::Ban { peer }).await
    }

    /// Applies `change` to the network's faults and reports them. A
    /// partition takes effect at once (connections to newly blocked peers
    /// close; a healed one redials the bootnodes at once); link faults
    /// apply to the messages that cross from now on.
    ///
    /// # Errors
    ///
    /// [`P2pError::ChaosOff`] unless the loop runs [`EventLoop::with_chaos`];
    /// [`P2pError::BadLink`] or [`P2pError::TooManyBlocked`] for faults out
    /// of range.
    pub async fn chaos(&self, change: ChaosChange) -> Result<ChaosState, P2pError> {
        self.call(|reply| Command::Chaos { change, reply }).await?
    }

    /// Asks the event loop to stop; [`EventLoop::run`] returns soon after
    /// and every connection closes.
    ///
    /// # Errors
    ///
    /// Only [`P2pError::Stopped`], if it had already stopped.
    pub async fn shutdown(&self) -> Result<(), P2pError> {
        self.send(Command::Shutdown).await
    }

    async fn send(&self, command: Command) -> Result<(), P2pError> {
        self.commands.send(command).await.map_err(|_| P2pError::Stopped)
    }

    async fn call<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, P2pError> {
        let (reply, answer) = oneshot::channel();
        self.send(command(reply)).await?;
        answer.await.map_err(|_| P2pError::Stopped)
    }
}

/// Builds the swarm and starts listening; the network is live once the
/// returned [`EventLoop`] is spawned with [`EventLoop::run`].
///
/// # Errors
///
/// [`P2pError::InvalidChainId`], a setup error, or [`P2pError::Listen`]
/// if an address cannot be bound.
///
/// # Panics
///
/// Outside a tokio runtime: binding a socket needs one.
pub fn new(config: P2pConfig) -> Result<(NetworkHandle, mpsc::Receiver<NetworkEvent>, EventLoop), P2pError> {
    let names = topics::Names::new(&config.chain_id)?;
    let behaviour = Behaviour::new(&config.keypair, &names, config.mdns)?;
    let Ok(with_behaviour) = SwarmBuilder::with_existing_identity(config.keypair)
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)?
        .with_quic()
        .with_behaviour(|_| behaviour);
    let mut swarm: Swarm<Behaviour> = with_behaviour
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();
    for addr in config.listen {
        if let Err(source) = swarm.listen_on(addr.clone()) {
            return Err(P2pError::Listen { addr, source });
        }
    }

    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_BUFFER);
    let (events_tx, events_rx) = mpsc::channel(EVENT_BUFFER);
    let event_loop = EventLoop::new(swarm, names, config.bootnodes, commands_rx, events_tx);
    Ok((
        NetworkHandle {
            commands: commands_tx,
        },
        events_rx,
        event_loop,
    ))
}

/// Reads the node's network key from `dir/p2p.key`, creating a fresh
/// ed25519 key there on first start, so the peer id survives restarts and
/// bootnode addresses stay valid. The file is a plain key file
/// ([`crate::keyfile`]: mode 0600, never overwritten, refused if others may
/// read it) holding the 32-byte ed25519 secret.
///
/// # Errors
///
/// If the file cannot be read or written, is not private, or does not hold
/// 64 hex digits.
pub(crate) fn load_or_create_identity(dir: &Path) -> Result<Keypair, KeyFileError> {
    let mut secret = keyfile::load_or_create_seed(&dir.join(IDENTITY_FILE))?;
    // Any 32 bytes are a valid ed25519 secret; libp2p zeroes the copy it
    // is given, `secret` zeroes itself on drop.
    let secret = libp2p::identity::ed25519::SecretKey::try_from_bytes(secret.as_mut()).map_err(|_| {
        KeyFileError::NotHex {
            path: dir.join(IDENTITY_FILE).display().to_string(),
        }
    })?;
    Ok(libp2p::identity::ed25519::Keypair::from(secret).into())
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::time::Duration;

    use klero_chain::codec::MAX_TX_BYTES;
    use libp2p::multiaddr::Protocol;
    use tokio::task::JoinHandle;
    use tokio::time::{sleep, timeout};

    use super::*;

    const TEST_TIMEOUT: Duration = Duration::from_secs(30);

    struct Node {
        handle: NetworkHandle,
        id: PeerId,
        /// `/ip4/127.0.0.1/tcp/<port>/p2p/<id>`, for listening nodes.
        addr: Option<Multiaddr>,
        task: JoinHandle<()>,
    }

    async fn within(test: impl Future<Output = ()>) {
        timeout(TEST_TIMEOUT, test).await.expect("test timed out");
    }

    /// Starts a node on 127.0.0.1 over TCP, or a dial-only one that nobody
    /// can find or dial, and waits until it listens.
    async fn start(bootnodes: Vec<Multiaddr>, listen: bool) -> (Node, mpsc::Receiver<NetworkEvent>) {
        let listen = if listen { "/ip4/127.0.0.1/tcp/0" } else { "" };
        start_on(bootnodes, listen).await
    }

    async fn start_on(bootnodes: Vec<Multiaddr>, listen: &str) -> (Node, mpsc::Receiver<NetworkEvent>) {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
        let keypair = Keypair::generate_ed25519();
        let id = keypair.public().to_peer_id();
        let wants_addr = !listen.is_empty();
        let listen = if wants_addr {
            vec![listen.parse().unwrap()]
        } else {
            Vec::new()
        };
        let config = P2pConfig {
            chain_id: "klero-test".into(),
            listen,
            bootnodes,
            keypair,
            mdns: false,
        };
        let (handle, events, event_loop) = new(config).unwrap();
        let task = tokio::spawn(event_loop.with_chaos().run());
        let mut addr = None;
        while wants_addr && addr.is_none() {
            addr = handle.listen_addrs().await.unwrap().into_iter().next();
            sleep(Duration::from_millis(20)).await;
        }
        let addr = addr.map(|a| a.with(Protocol::P2p(id)));
        (
            Node {
                handle,
                id,
                addr,
                task,
            },
            events,
        )
    }

    async fn wait_connected(node: &Node, peer: PeerId) {
        while !node.handle.peers().await.unwrap().contains(&peer) {
            sleep(Duration::from_millis(50)).await;
        }
    }

    /// Plays the node's validator: answers every gossip message with
    /// `verdict(bytes)` and tells the test what it judged.
    fn spawn_validator(
        handle: NetworkHandle,
        mut events: mpsc::Receiver<NetworkEvent>,
        verdict: fn(&[u8]) -> Verdict,
    ) -> mpsc::UnboundedReceiver<(Vec<u8>, Verdict)> {
        let (judged_tx, judged) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if let NetworkEvent::Block { msg, bytes, .. } | NetworkEvent::Tx { msg, bytes, .. } = event {
                    let v = verdict(&bytes);
                    handle.report(msg, v).await.unwrap();
                    let _ = judged_tx.send((bytes, v));
                }
            }
        });
        judged
    }

    async fn next_block(events: &mut mpsc::Receiver<NetworkEvent>) -> (PeerId, Vec<u8>) {
        loop {
            if let Some(NetworkEvent::Block { from, bytes, .. }) = events.recv().await {
                return (from, bytes);
            }
        }
    }

    /// Publishes fresh blocks until one arrives: the first ones may find
    /// no subscribed peer while subscriptions are still propagating.
    async fn publish_until_received(
        publisher: &NetworkHandle,
        events: &mut mpsc::Receiver<NetworkEvent>,
    ) -> (PeerId, Vec<u8>) {
        for i in 0u32.. {
            publisher
                .publish_block(format!("block {i}").into_bytes())
                .await
                .unwrap();
            if let Ok(got) = timeout(Duration::from_millis(500), next_block(events)).await {
                return got;
            }
        }
        unreachable!()
    }

    #[tokio::test]
    async fn block_gossip_reaches_a_peer_through_the_bootnode() {
        within(async {
            let (boot, boot_events) = start(Vec::new(), true).await;
            let _judged = spawn_validator(boot.handle.clone(), boot_events, |_| Verdict::Accept);
            let boot_addr = boot.addr.clone().unwrap();
            let (b, _b_events) = start(vec![boot_addr.clone()], true).await;
            let (c, mut c_events) = start(vec![boot_addr], true).await;
            wait_connected(&boot, b.id).await;
            wait_connected(&boot, c.id).await;

            let (from, bytes) = publish_until_received(&b.handle, &mut c_events).await;
            assert!(bytes.starts_with(b"block "));
            assert!(from == boot.id || from == b.id, "from an unexpected peer {from}");
        })
        .await;
    }

    #[tokio::test]
    async fn rejected_gossip_is_not_forwarded() {
        within(async {
            // A and C are dial-only: the middle node is their only path.
            let (mid, mid_events) = start(Vec::new(), true).await;
            let mut judged = spawn_validator(mid.handle.clone(), mid_events, |bytes| {
                if bytes.starts_with(b"bad") {
                    Verdict::Reject
                } else {
                    Verdict::Accept
                }
            });
            let mid_addr = mid.addr.clone().unwrap();
            let (a, _a_events) = start(vec![mid_addr.clone()], false).await;
            let (c, mut c_events) = start(vec![mid_addr], false).await;
            wait_connected(&mid, a.id).await;
            wait_connected(&mid, c.id).await;

            // Accepted messages flow A -> mid -> C.
            let (from, _) = publish_until_received(&a.handle, &mut c_events).await;
            assert_eq!(from, mid.id);

            a.handle.publish_block(b"bad block".to_vec()).await.unwrap();
            loop {
                let (bytes, verdict) = judged.recv().await.unwrap();
                if bytes == b"bad block" {
                    assert_eq!(verdict, Verdict::Reject);
                    break;
                }
            }
            // Published after the reject: had mid forwarded the bad block,
            // C would see it first.
            a.handle.publish_block(b"good block".to_vec()).await.unwrap();
            loop {
                let (_, bytes) = next_block(&mut c_events).await;
                assert_ne!(bytes, b"bad block");
                if bytes == b"good block" {
                    break;
                }
            }
            assert!(!c.handle.peers().await.unwrap().contains(&a.id));
        })
        .await;
    }

    #[tokio::test]
    async fn sync_status_and_blocks_roundtrip() {
        within(async {
            let (a, mut a_events) = start(Vec::new(), true).await;
            let (b, _b_events) = start(vec![a.addr.clone().unwrap()], true).await;
            wait_connected(&b, a.id).await;

            // A answers like a node: its "blocks" are their heights.
            let a_handle = a.handle.clone();
            tokio::spawn(async move {
                while let Some(event) = a_events.recv().await {
                    if let NetworkEvent::SyncRequest { req, channel, .. } = event {
                        let resp = match req {
                            SyncRequest::Status => SyncResponse::Status {
                                height: 42,
                                head: [1; 32],
                                genesis: [2; 32],
                            },
                            SyncRequest::Blocks { from_height, count } => SyncResponse::Blocks(
                                (from_height..from_height + u64::from(count))
                                    .map(|h| h.to_le_bytes().to_vec())
                                    .collect(),
                            ),
                            SyncRequest::Headers { .. } => SyncResponse::Refused,
                        };
                        a_handle.respond(channel, resp).await.unwrap();
                    }
                }
            });

            let status = b.handle.request(a.id, SyncRequest::Status).await.unwrap();
            assert_eq!(
                status,
                SyncResponse::Status {
                    height: 42,
                    head: [1; 32],
                    genesis: [2; 32]
                }
            );
            let blocks = SyncRequest::Blocks {
                from_height: 5,
                count: 3,
            };
            let expected = (5u64..8).map(|h| h.to_le_bytes().to_vec()).collect();
            assert_eq!(
                b.handle.request(a.id, blocks).await.unwrap(),
                SyncResponse::Blocks(expected)
            );
            // Over the limit: refused by our own codec before it leaves.
            let too_many = SyncRequest::Blocks {
                from_height: 0,
                count: MAX_SYNC_BLOCKS + 1,
            };
            assert!(matches!(
                b.handle.request(a.id, too_many).await,
                Err(P2pError::Request(OutboundFailure::Io(_)))
            ));
        })
        .await;
    }

    #[tokio::test]
    async fn three_nodes_find_each_other_through_one_bootnode() {
        within(async {
            let (boot, _boot_events) = start(Vec::new(), true).await;
            let boot_addr = boot.addr.clone().unwrap();
            let (b, _b_events) = start(vec![boot_addr.clone()], true).await;
            wait_connected(&boot, b.id).await;
            // C knows only the bootnode; kademlia tells it about B.
            let (c, _c_events) = start(vec![boot_addr], true).await;
            wait_connected(&c, b.id).await;
            wait_connected(&b, c.id).await;
        })
        .await;
    }

    #[tokio::test]
    async fn connects_over_quic() {
        within(async {
            let (a, _a_events) = start_on(Vec::new(), "/ip4/127.0.0.1/udp/0/quic-v1").await;
            let a_addr = a.addr.clone().unwrap();
            assert!(a_addr.iter().any(|p| p == Protocol::QuicV1), "{a_addr}");
            let (b, _b_events) = start(vec![a_addr], false).await;
            wait_connected(&b, a.id).await;
        })
        .await;
    }

    #[tokio::test]
    async fn lone_node_publishes_refuses_oversize_and_shuts_down() {
        within(async {
            let (node, _events) = start(Vec::new(), true).await;
            // No peer to send to: not an error.
            node.handle.publish_block(vec![1, 2, 3]).await.unwrap();
            let too_big = node.handle.publish_block(vec![0; MAX_GOSSIP_BYTES + 1]).await;
            assert!(matches!(too_big, Err(P2pError::TooLarge { len, .. }) if len == MAX_GOSSIP_BYTES + 1));
            let too_big = node.handle.publish_tx(vec![0; MAX_TX_BYTES + 1]).await;
            assert!(matches!(
                too_big,
                Err(P2pError::TooLarge {
                    max: MAX_TX_BYTES,
                    ..
                })
            ));

            node.handle.shutdown().await.unwrap();
            node.task.await.unwrap();
            assert!(matches!(node.handle.peers().await, Err(P2pError::Stopped)));
        })
        .await;
    }

    #[tokio::test]
    async fn event_loop_ends_when_every_handle_is_dropped() {
        within(async {
            let (node, _events) = start(Vec::new(), true).await;
            let Node { handle, task, .. } = node;
            drop(handle);
            task.await.unwrap();
        })
        .await;
    }

    fn link(delay_ms: u64, loss_ppm: u32) -> ChaosChange {
        ChaosChange::Link(LinkFaults {
            delay_ms,
            jitter_ms: 0,
            loss_ppm,
            seed: 1,
        })
    }

    #[tokio::test]
    async fn a_partition_closes_and_refuses_connections_until_healed() {
        within(async {
            let (a, _a_events) = start(Vec::new(), true).await;
            // B redials A every 10 s, and at once on a heal.
            let (b, _b_events) = start(vec![a.addr.clone().unwrap()], true).await;
            wait_connected(&b, a.id).await;

            let state = a.handle.chaos(ChaosChange::Partition(vec![b.id])).await.unwrap();
            assert_eq!(state.blocked, vec![b.id]);
            while a.handle.peers().await.unwrap().contains(&b.id) {
                sleep(Duration::from_millis(50)).await;
            }
            // B's redials are refused by A for as long as the list holds.
            sleep(Duration::from_secs(1)).await;
            assert!(!a.handle.peers().await.unwrap().contains(&b.id));

            // B blocks A too, so healing A alone does not reconnect them.
            b.handle.chaos(ChaosChange::Partition(vec![a.id])).await.unwrap();
            a.handle.chaos(ChaosChange::Partition(Vec::new())).await.unwrap();
            let healed = b.handle.chaos(ChaosChange::Clear).await.unwrap();
            assert_eq!(healed, ChaosState::default());
            wait_connected(&b, a.id).await;
        })
        .await;
    }

    #[tokio::test]
    async fn a_node_with_full_loss_neither_hears_nor_is_heard() {
        within(async {
            let (a, mut a_events) = start(Vec::new(), true).await;
            let (b, mut b_events) = start(vec![a.addr.clone().unwrap()], true).await;
            wait_connected(&b, a.id).await;
            // Gossip flows before the fault.
            publish_until_received(&b.handle, &mut a_events).await;

            a.handle.chaos(link(0, MAX_LOSS_PPM)).await.unwrap();
            for i in 0..5 {
                b.handle
                    .publish_block(format!("to a {i}").into_bytes())
                    .await
                    .unwrap();
                a.handle
                    .publish_block(format!("to b {i}").into_bytes())
                    .await
                    .unwrap();
            }
            assert!(matches!(
                a.handle.request(b.id, SyncRequest::Status).await,
                Err(P2pError::Dropped)
            ));
            // A peer's request gets no answer: its stream closes.
            assert!(matches!(
                b.handle.request(a.id, SyncRequest::Status).await,
                Err(P2pError::Request(_))
            ));
            sleep(Duration::from_secs(2)).await;
            let quiet = |events: &mut mpsc::Receiver<NetworkEvent>| {
                std::iter::from_fn(|| events.try_recv().ok())
                    .all(|e| !matches!(e, NetworkEvent::Block { .. }))
            };
            assert!(quiet(&mut a_events), "A heard gossip through 100% loss");
            assert!(quiet(&mut b_events), "B heard A through 100% loss");
            let state = a.handle.chaos(ChaosChange::Show).await.unwrap();
            assert!(state.counters.dropped_in >= 6, "{:?}", state.counters);
            assert!(state.counters.dropped_out >= 6, "{:?}", state.counters);
            assert!(
                a.handle.peers().await.unwrap().contains(&b.id),
                "loss must not disconnect"
            );

            // Delayed, not lost: it arrives, and the counter says it waited.
            a.handle.chaos(link(300, 0)).await.unwrap();
            publish_until_received(&b.handle, &mut a_events).await;
            let state = a.handle.chaos(ChaosChange::Show).await.unwrap();
            assert!(state.counters.delayed_in >= 1, "{:?}", state.counters);
        })
        .await;
    }

    #[tokio::test]
    async fn without_chaos_the_network_refuses_faults() {
        within(async {
            let config = P2pConfig {
                chain_id: "klero-test".into(),
                listen: Vec::new(),
                bootnodes: Vec::new(),
                keypair: Keypair::generate_ed25519(),
                mdns: false,
            };
            let (handle, _events, event_loop) = new(config).unwrap();
            tokio::spawn(event_loop.run());
            for change in [ChaosChange::Show, ChaosChange::Clear, link(10, 0)] {
                assert!(matches!(handle.chaos(change).await, Err(P2pError::ChaosOff)));
            }
        })
        .await;
    }

    #[test]
    fn identity_is_created_once_then_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = load_or_create_identity(&data).unwrap();
        let again = load_or_create_identity(&data).unwrap();
        assert_eq!(first.public().to_peer_id(), again.public().to_peer_id());
        let path = data.join(IDENTITY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::remove_file(&path).unwrap();
        keyfile::write_new(&path, b"not hex\n").unwrap();
        let err = load_or_create_identity(&data).unwrap_err();
        assert!(matches!(err, KeyFileError::NotHex { .. }), "{err}");
    }
}
