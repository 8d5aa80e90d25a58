//! A misbehaving peer for the hostile-peer tests, built from the library's
//! own network layer (or, where that layer would refuse to misbehave, from
//! bare libp2p), connected to a real `klero node`.

use std::time::Duration;

use klero::p2p::{self, NetworkEvent, NetworkHandle, P2pConfig, SyncRequest, SyncResponse};
use libp2p::PeerId;
use tokio::sync::mpsc;

use super::Node;

/// A peer of klero's own network layer, connected to `node` (of the PoS
/// dev chain).
pub async fn connect_peer(node: &Node) -> (NetworkHandle, mpsc::Receiver<NetworkEvent>) {
    connect_peer_on(node, "klero-pos-dev").await
}

/// A peer of klero's own network layer on the chain `chain_id`, connected
/// to `node`.
pub async fn connect_peer_on(node: &Node, chain_id: &str) -> (NetworkHandle, mpsc::Receiver<NetworkEvent>) {
    let (handle, mut events, event_loop) = p2p::new(P2pConfig {
        chain_id: chain_id.to_owned(),
        listen: vec![],
        bootnodes: vec![node.multiaddr().parse().expect("addr")],
        keypair: libp2p::identity::Keypair::generate_ed25519(),
        mdns: false,
    })
    .expect("p2p");
    tokio::spawn(event_loop.run());
    let id = node.peer_id();
    loop {
        if let Some(NetworkEvent::PeerConnected(peer)) = events.recv().await
            && peer == id
        {
            return (handle, events);
        }
    }
}

/// `count` of `node`'s canonical blocks from `from`, encoded, fetched by
/// sync.
pub async fn canonical_blocks(handle: &NetworkHandle, node: PeerId, from: u64, count: u32) -> Vec<Vec<u8>> {
    let request = SyncRequest::Blocks {
        from_height: from,
        count,
    };
    match handle.request(node, request).await.expect("sync") {
        SyncResponse::Blocks(blocks) => blocks,
        other => panic!("no blocks: {other:?}"),
    }
}

/// `node`'s block 1 under a changed header: the proposer's signature no
/// longer holds, a forgery.
pub async fn forged_block_1(handle: &NetworkHandle, node: PeerId) -> Vec<u8> {
    let blocks = canonical_blocks(handle, node, 1, 1).await;
    let mut forged = klero_chain::codec::decode_block(&blocks[0]).expect("block");
    forged.signed.header.state_root.0[0] ^= 1;
    klero_chain::codec::encode(&forged)
}

/// Connects a bare gossipsub peer to `node`, publishes `payloads` on `topic`
/// once the node has subscribed to it, and reports whether the node then
/// closed the connection (within 30 s).
pub async fn flood_raw_gossip(
    node: libp2p::Multiaddr,
    node_id: PeerId,
    topic: &str,
    payloads: Vec<Vec<u8>>,
) -> bool {
    use futures::StreamExt;
    use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity};
    use libp2p::swarm::SwarmEvent;
    use libp2p::{SwarmBuilder, noise, tcp, yamux};

    let key = libp2p::identity::Keypair::generate_ed25519();
    let config = gossipsub::ConfigBuilder::default()
        .max_transmit_size(4 << 20)
        .build()
        .expect("gossipsub config");
    let behaviour: gossipsub::Behaviour =
        gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), config).expect("gossipsub");
    let mut swarm = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .expect("tcp")
        .with_behaviour(|_| behaviour)
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    swarm.dial(node).expect("dial");
    let topic = IdentTopic::new(topic);
    let mut payloads = Some(payloads);
    let run = async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(gossipsub::Event::Subscribed { peer_id, topic: t })
                    if peer_id == node_id && t == topic.hash() =>
                {
                    for payload in payloads.take().unwrap_or_default() {
                        swarm
                            .behaviour_mut()
                            .publish(topic.clone(), payload)
                            .expect("publish");
                    }
                }
                SwarmEvent::ConnectionClosed {
                    peer_id,
                    num_established: 0,
                    ..
                } if peer_id == node_id && payloads.is_none() => return true,
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .unwrap_or(false)
}
