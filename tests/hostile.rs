//! Attacks on a real `klero node` process by peers that lie or flood, each
//! made with the library's own network layer (tests/common/peer.rs), and
//! each ending with the node still producing and agreeing with an honest
//! follower.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::peer::{canonical_blocks, connect_peer};
use common::{Kind, Net, Node, agree, wait_for};
use klero::api::SyncState;
use klero::p2p::{NetworkEvent, SyncRequest, SyncResponse};
use klero_chain::codec;

const BLOCKS: Duration = Duration::from_secs(60);

/// The node's genesis id.
fn genesis_of(node: &Node) -> [u8; 32] {
    let mut genesis = [0u8; 32];
    hex::decode_to_slice(node.status().expect("status").genesis, &mut genesis).expect("genesis id");
    genesis
}

/// A peer claims a head far ahead and answers every block request with
/// blocks that do not answer it: the same 64 blocks again and again (the
/// stall that kept the old syncer looping), blocks of other heights, blocks
/// that do not connect. Each sync from it ends at the first such answer
/// with a strike, the third bans it, the staker never stops and
/// `sync_state` comes back to `synced`.
#[test]
fn a_peer_that_stalls_sync_is_struck_and_the_staker_keeps_producing() {
    let mut net = Net::new(Kind::Pos);
    net.start("n0", Some("alice"), &[]);
    net.start("n1", None, &[0]);
    assert!(wait_for(BLOCKS, || net.nodes[0].height() >= 2));
    let n0 = net.nodes[0].peer_id();
    let genesis = genesis_of(&net.nodes[0]);

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (handle, mut events) = rt.block_on(connect_peer(&net.nodes[0]));
    let block_1 = rt.block_on(canonical_blocks(&handle, n0, 1, 1)).remove(0);
    let disconnected = Arc::new(AtomicBool::new(false));
    let syncs = Arc::new(AtomicU64::new(0));
    let liar = {
        let (handle, disconnected, syncs) = (handle.clone(), Arc::clone(&disconnected), Arc::clone(&syncs));
        rt.spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    NetworkEvent::SyncRequest { req, channel, .. } => {
                        let resp = match req {
                            SyncRequest::Status => {
                                syncs.fetch_add(1, Ordering::Relaxed);
                                SyncResponse::Status {
                                    height: 1_000,
                                    head: [7; 32],
                                    genesis,
                                }
                            }
                            SyncRequest::Blocks { from_height, .. } => {
                                let lie = match syncs.load(Ordering::Relaxed) % 3 {
                                    // The same 64 blocks, whatever is asked.
                                    1 => vec![block_1.clone(); 64],
                                    // Blocks from another height.
                                    2 => vec![block_1.clone()],
                                    // The asked-for block, then one of the
                                    // next height that is not its child.
                                    _ => {
                                        let asked = canonical_blocks(&handle, n0, from_height, 1).await;
                                        let mut next = codec::decode_block(&asked[0]).expect("block");
                                        next.signed.header.height += 1;
                                        vec![asked[0].clone(), codec::encode(&next)]
                                    }
                                };
                                SyncResponse::Blocks(lie)
                            }
                        };
                        let _ = handle.respond(channel, resp).await;
                    }
                    NetworkEvent::PeerDisconnected(peer) if peer == n0 => {
                        disconnected.store(true, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        })
    };

    let height = net.nodes[0].height();
    let nodes: Vec<&Node> = net.nodes.iter().collect();
    assert!(
        wait_for(BLOCKS, || agree(&nodes, height + 5)),
        "the staker stopped while the liar was connected: heights {:?}, {}",
        nodes.iter().map(|n| n.height()).collect::<Vec<_>>(),
        net.nodes[0].metrics()
    );
    assert!(
        wait_for(BLOCKS, || disconnected.load(Ordering::Relaxed)),
        "the liar was not banned after {} syncs: {}",
        syncs.load(Ordering::Relaxed),
        net.nodes[0].metrics()
    );
    assert!(net.nodes[0].metric("klero_peers_banned_total") >= Some(1.0));
    assert!(net.nodes[0].metric("klero_peer_strikes_total") >= Some(3.0));
    assert!(
        wait_for(Duration::from_secs(20), || net.nodes[0]
            .status()
            .is_some_and(|s| s.sync_state == SyncState::Synced)),
        "still syncing"
    );
    let height = net.nodes[0].height();
    assert!(
        wait_for(BLOCKS, || agree(&nodes, height + 2)),
        "honest nodes stalled"
    );
    liar.abort();
    rt.block_on(handle.shutdown()).ok();
}
