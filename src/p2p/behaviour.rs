//! The composed `NetworkBehaviour` and the configuration of each part.
//!
//! - partition: a block list of peers whose connections are refused and
//!   closed (libp2p's own connection gating); empty unless a `--chaos`
//!   node is told to partition.
//! - connection limits: bound what strangers can make us hold open.
//! - gossipsub: blocks and transactions, validated by the node before
//!   forwarding, with peer scoring so that rejected messages cost the sender.
//! - request-response: the sync protocol ([`SyncCodec`]).
//! - identify: learn peers' listen addresses (fed into kademlia).
//! - kademlia: find more peers than the bootnodes.
//! - mdns: only when the user asks for it.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use libp2p::gossipsub::{
    self, MessageAuthenticity, MessageId, PeerScoreParams, PeerScoreThresholds, TopicScoreParams,
    ValidationMode,
};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{allow_block_list, connection_limits, identify, kad, mdns};

use super::MAX_GOSSIP_BYTES;
use super::P2pError;
use super::sync_codec::SyncCodec;
use super::topics::{IDENTIFY_PROTOCOL_VERSION, Names};

/// Room above [`MAX_GOSSIP_BYTES`] for gossipsub's framing: signature,
/// public key, sequence number, topic and protobuf tags.
const GOSSIP_ENVELOPE_SLACK: usize = 64 * 1024;
/// A sync request must be answered within this, or it fails on both sides.
pub(crate) const SYNC_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent sync streams per connection, in and out together.
const MAX_SYNC_STREAMS_PER_CONNECTION: usize = 16;
/// Connections strangers may hold open or half-open with us.
const MAX_INCOMING_CONNECTIONS: u32 = 64;
const MAX_PENDING_INCOMING: u32 = 16;
/// Two, so a simultaneous dial by both sides is not an error.
const MAX_CONNECTIONS_PER_PEER: u32 = 2;

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) partition: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    limits: connection_limits::Behaviour,
    pub(crate) gossipsub: gossipsub::Behaviour,
    pub(crate) sync: request_response::Behaviour<SyncCodec>,
    identify: identify::Behaviour,
    pub(crate) kad: kad::Behaviour<kad::store::MemoryStore>,
    mdns: Toggle<mdns::tokio::Behaviour>,
}

impl Behaviour {
    /// Builds every part and subscribes to both topics.
    ///
    /// # Errors
    ///
    /// [`P2pError::Gossipsub`] if gossipsub refuses its configuration,
    /// [`P2pError::Mdns`] if mdns is asked for and cannot start.
    pub(crate) fn new(keypair: &Keypair, names: &Names, mdns: bool) -> Result<Behaviour, P2pError> {
        let peer_id = keypair.public().to_peer_id();

        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established_incoming(Some(MAX_INCOMING_CONNECTIONS))
            .with_max_pending_incoming(Some(MAX_PENDING_INCOMING))
            .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER));

        let mut gossipsub =
            gossipsub::Behaviour::new(MessageAuthenticity::Signed(keypair.clone()), gossipsub_config()?)
                .map_err(gossipsub_error)?;
        gossipsub
            .with_peer_score(score_params(names), PeerScoreThresholds::default())
            .map_err(gossipsub_error)?;
        for topic in [&names.blocks, &names.txs] {
            gossipsub.subscribe(topic).map_err(gossipsub_error)?;
        }

        let sync = request_response::Behaviour::new(
            [(names.sync.clone(), ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(SYNC_TIMEOUT)
                .with_max_concurrent_streams(MAX_SYNC_STREAMS_PER_CONNECTION),
        );

        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL_VERSION.to_owned(), keypair.public())
                .with_agent_version(format!("klero/{}", env!("CARGO_PKG_VERSION"))),
        );

        let mut kad_config = kad::Config::new(names.kad.clone());
        // We store no records; refuse to keep the ones peers push at us.
        kad_config.set_record_filtering(kad::StoreInserts::FilterBoth);
        let mut kad = kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), kad_config);
        // Answer lookups even without a confirmed public address: on a
        // testnet every node is a useful routing peer.
        kad.set_mode(Some(kad::Mode::Server));

        let mdns = if mdns {
            Some(mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id).map_err(P2pError::Mdns)?)
        } else {
            None
        };

        Ok(Behaviour {
            partition: allow_block_list::Behaviour::default(),
            limits: connection_limits::Behaviour::new(limits),
            gossipsub,
            sync,
            identify,
            kad,
            mdns: mdns.into(),
        })
    }
}

fn gossipsub_config() -> Result<gossipsub::Config, P2pError> {
    gossipsub::ConfigBuilder::default()
        .max_transmit_size(MAX_GOSSIP_BYTES + GOSSIP_ENVELOPE_SLACK)
        .validation_mode(ValidationMode::Strict)
        .validate_messages()
        .message_id_fn(message_id)
        .heartbeat_initial_delay(Duration::from_millis(500))
        .heartbeat_interval(Duration::from_secs(1))
        // Small meshes, so that two or three nodes already form one.
        .mesh_n(4)
        .mesh_n_low(1)
        .mesh_n_high(8)
        .mesh_outbound_min(0)
        .build()
        .map_err(gossipsub_error)
}

fn gossipsub_error(reason: impl std::fmt::Display) -> P2pError {
    P2pError::Gossipsub(reason.to_string())
}

/// BLAKE3 of topic and payload: the same block relayed by several peers,
/// or published by two nodes, is one message and is deduplicated.
fn message_id(message: &gossipsub::Message) -> MessageId {
    let topic = message.topic.as_str().as_bytes();
    let mut hasher = blake3::Hasher::new();
    hasher.update(&(topic.len() as u64).to_le_bytes());
    hasher.update(topic);
    hasher.update(&message.data);
    MessageId::from(hasher.finalize().as_bytes().to_vec())
}

/// Peer scoring tuned so that `Reject` is what costs a peer.
///
/// Per topic, the only penalty is P4 (invalid messages, squared): one
/// reject takes a peer below zero (pruned from our mesh) unless it has
/// earned credit, three put it below the graylist threshold (-80), where
/// its messages are dropped unread. The counter decays over about an hour.
/// Credit is capped low (P1 time in mesh +10, P2 first deliveries +20) so
/// it cannot buy many rejects. P3 (mesh delivery rate) is off: blocks come
/// every few seconds and a quiet mesh peer is not misbehaving. Loopback is
/// exempt from the same-IP penalty, as a local testnet is all on 127.0.0.1.
fn score_params(names: &Names) -> PeerScoreParams {
    let topic = TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.1,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 100.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: gossipsub::score_parameter_decay(Duration::from_secs(600)),
        first_message_deliveries_cap: 20.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -20.0,
        invalid_message_deliveries_decay: gossipsub::score_parameter_decay(Duration::from_secs(3600)),
        ..TopicScoreParams::default()
    };
    PeerScoreParams {
        topics: HashMap::from([(names.blocks.hash(), topic.clone()), (names.txs.hash(), topic)]),
        ip_colocation_factor_whitelist: HashSet::from([
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]),
        ..PeerScoreParams::default()
    }
}
