//! `klero node` end to end: real processes gossiping and syncing over
//! libp2p on 127.0.0.1, each with its own redb file.

mod common;

use std::time::Duration;

use common::peer::{connect_peer, flood_raw_gossip, forged_block_1};
use common::{Kind, Net, agree, wait_for};
use klero::p2p::{NetworkEvent, SyncRequest, SyncResponse};
use libp2p::PeerId;

const BLOCKS: Duration = Duration::from_secs(60);

fn three_nodes_agree(kind: Kind) {
    let mut net = Net::new(kind);
    net.start("n0", Some("alice"), &[]);
    net.start("n1", Some("bob"), &[0]);
    net.start("n2", Some("carol"), &[0]);
    let nodes: Vec<_> = net.nodes.iter().collect();
    assert!(
        wait_for(BLOCKS, || agree(&nodes, 6)),
        "nodes did not agree on a head at height ≥ 6: {:?}",
        nodes.iter().map(|n| (n.height(), n.head())).collect::<Vec<_>>()
    );
    // n1 and n2 only knew n0; they found each other through it.
    assert!(wait_for(Duration::from_secs(20), || nodes
        .iter()
        .all(|n| n.status().is_some_and(|s| s.peers == 2))));
    // The lottery is not stuck on one winner. One node can win the first
    // six blocks by chance (carol, with half the running PoS stake, about
    // 1.6 % of the time), so look at up to 30 more before concluding.
    let proposers = || -> std::collections::BTreeSet<String> {
        (1..=nodes[0].height())
            .filter_map(|h| nodes[0].block(h))
            .map(|b| b.proposer)
            .collect()
    };
    assert!(
        wait_for(Duration::from_secs(30), || proposers().len() >= 2),
        "only {:?} proposed",
        proposers()
    );
}

#[test]
fn pos_three_nodes_find_each_other_and_agree() {
    three_nodes_agree(Kind::Pos);
}

#[test]
fn pow_three_nodes_find_each_other_and_agree() {
    three_nodes_agree(Kind::Pow);
}

#[test]
fn late_node_syncs_and_survives_sigkill_mid_sync() {
    let mut net = Net::new(Kind::Pos);
    net.start("n0", Some("alice"), &[]);
    net.start("n1", Some("dave"), &[0]);
    assert!(
        wait_for(BLOCKS, || net.nodes[0].height() >= 15),
        "no chain to sync"
    );

    let late = net.start("late", None, &[0]);
    // Kill it as soon as it has imported anything: mid-sync.
    assert!(wait_for(Duration::from_secs(30), || net.nodes[late].height() >= 1));
    let before = net.nodes[late].height();
    net.nodes[late].kill9();
    net.nodes[late].restart();
    assert!(net.nodes[late].height() >= before, "committed blocks were lost");

    let target = net.nodes[0].height();
    assert!(
        wait_for(BLOCKS, || net.nodes[late].height() >= target),
        "late node stuck at {}",
        net.nodes[late].height()
    );
    for h in [1, target / 2, target] {
        assert_eq!(
            net.nodes[late].block_id(h),
            net.nodes[0].block_id(h),
            "height {h}"
        );
    }
    // A clean stop exits 0.
    let status = net.nodes[late].terminate().expect("exit status");
    assert!(status.success(), "SIGTERM exit: {status}");
}

#[test]
fn partitioned_groups_converge_on_the_longer_fork() {
    let mut net = Net::new(Kind::Pos);
    // Two groups that do not know each other, each with its own stakers.
    net.start("a0", Some("alice"), &[]);
    net.start("a1", Some("bob"), &[0]);
    net.start("b0", Some("carol"), &[]);
    net.start("b1", Some("dave"), &[2]);
    assert!(
        wait_for(BLOCKS, || net.nodes[0].height() >= 4
            && net.nodes[2].height() >= 4),
        "groups did not grow"
    );
    // With failover both sides fill almost every slot, so which fork ends
    // up longer would be a race: side a stops producing, and side b's fork
    // becomes the longer one.
    net.nodes[0].stop_producing();
    net.nodes[1].stop_producing();
    assert!(
        wait_for(Duration::from_secs(20), || agree(
            &[&net.nodes[0], &net.nodes[1]],
            4
        )),
        "side a did not settle on one head"
    );
    let a_height = net.nodes[0].height();
    assert!(
        wait_for(BLOCKS, || net.nodes[2].height() >= a_height + 2),
        "side b did not outgrow side a"
    );
    let b_fork = net.nodes[2].block_id(3).expect("b's block");
    assert_ne!(net.nodes[0].block_id(3), Some(b_fork.clone()), "no fork to heal");

    // A node that knows both sides joins them.
    net.start("bridge", None, &[0, 2]);
    let nodes: Vec<_> = net.nodes.iter().collect();
    assert!(
        wait_for(BLOCKS, || agree(&nodes, a_height + 2)),
        "no convergence: {:?}",
        nodes
            .iter()
            .map(|n| (n.name.clone(), n.height(), n.head()))
            .collect::<Vec<_>>()
    );
    assert_eq!(net.nodes[0].block_id(3), Some(b_fork));
    // Every node holds the same state: the accounts of all four stakers,
    // read between two equal readings of the node's head.
    let snapshot = |n: &common::Node| {
        let head = n.head()?;
        let accounts: Vec<_> = ["alice", "bob", "carol", "dave"]
            .iter()
            .map(|name| {
                let address = klero_chain::Keypair::dev(name).address().to_bech32();
                n.account(&address).map(|a| (a.balance, a.bonded, a.rewards))
            })
            .collect();
        (n.head()? == head).then_some((head, accounts))
    };
    assert!(
        wait_for(Duration::from_secs(20), || {
            let states: Vec<_> = nodes.iter().map(|n| snapshot(n)).collect();
            states[0].is_some() && states.iter().all(|s| *s == states[0])
        }),
        "states differ: {:?}",
        nodes.iter().map(|n| snapshot(n)).collect::<Vec<_>>()
    );
    let metrics = net.nodes[0].metrics();
    assert!(metrics.contains("klero_reorgs_total"), "{metrics}");
    assert!(
        !metrics.contains("klero_reorgs_total 0\n"),
        "a0 never reorganised: {metrics}"
    );
}

/// A misbehaving peer built from the library's own network layer.
#[test]
fn hostile_gossip_is_rejected_and_the_sender_banned() {
    let mut net = Net::new(Kind::Pos);
    net.start("n0", Some("alice"), &[]);
    net.start("n1", Some("dave"), &[0]);
    assert!(wait_for(BLOCKS, || net.nodes[0].height() >= 2));
    let n0: PeerId = net.nodes[0].peer_id();

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // The events are kept (unread) for as long as the peer lives.
    let (handle, _events, forged) = rt.block_on(async {
        let (handle, events) = connect_peer(&net.nodes[0]).await;
        // Let gossipsub exchange subscriptions before publishing.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let forged = forged_block_1(&handle, n0).await;
        (handle, events, forged)
    });

    let rejected = |reason: &str| {
        net.nodes[0]
            .metrics()
            .contains(&format!("klero_blocks_rejected_total{{reason=\"{reason}\"}}"))
    };
    rt.block_on(handle.publish_block(forged)).expect("publish forged");
    assert!(wait_for(Duration::from_secs(10), || rejected("bad_signature")));
    for garbage in [vec![0xde, 0xad], vec![0xbe, 0xef, 0x01]] {
        rt.block_on(handle.publish_block(garbage))
            .expect("publish garbage");
    }
    assert!(wait_for(Duration::from_secs(10), || rejected("undecodable")));
    // Three strikes: n0 drops the hostile peer and keeps refusing it.
    assert!(
        wait_for(Duration::from_secs(15), || !rt
            .block_on(handle.peers())
            .unwrap_or_default()
            .contains(&n0)),
        "the hostile peer is still connected"
    );
    // Oversized blocks from a second peer, which bypasses the size check
    // that klero's own network layer applies before publishing.
    let oversized = vec![
        vec![1; klero::p2p::MAX_GOSSIP_BYTES + 1],
        vec![2; klero::p2p::MAX_GOSSIP_BYTES + 2],
        vec![3; klero::p2p::MAX_GOSSIP_BYTES + 3],
    ];
    let addr = net.nodes[0].multiaddr().parse().expect("addr");
    let dropped = rt.block_on(flood_raw_gossip(
        addr,
        n0,
        "/klero/klero-pos-dev/blocks/1",
        oversized,
    ));
    assert!(rejected("oversized"), "{}", net.nodes[0].metrics());
    assert!(dropped, "n0 kept the peer that sent oversized blocks");
    // The honest nodes carry on together.
    let height = net.nodes[0].height();
    let nodes: Vec<_> = net.nodes.iter().collect();
    assert!(
        wait_for(BLOCKS, || agree(&nodes, height + 3)),
        "honest nodes stalled"
    );
    rt.block_on(handle.shutdown()).ok();
}

/// A peer that answers sync requests with forged blocks is struck for each
/// one, on the same path as bad gossip, and banned at the third.
#[test]
fn a_sync_peer_serving_invalid_blocks_is_banned() {
    let mut net = Net::new(Kind::Pos);
    net.start("n0", Some("alice"), &[]);
    assert!(wait_for(BLOCKS, || net.nodes[0].height() >= 1));
    let n0: PeerId = net.nodes[0].peer_id();
    let mut genesis = [0u8; 32];
    hex::decode_to_slice(net.nodes[0].status().expect("status").genesis, &mut genesis).expect("genesis id");

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let banned = rt.block_on(async {
        let (handle, mut events) = connect_peer(&net.nodes[0]).await;
        let forged = forged_block_1(&handle, n0).await;
        // Claim an unknown head far ahead, and answer every fetch with the forgery.
        let serve = async {
            while let Some(event) = events.recv().await {
                match event {
                    NetworkEvent::SyncRequest { req, channel, .. } => {
                        let resp = match req {
                            SyncRequest::Status => SyncResponse::Status {
                                height: 1_000,
                                head: [7; 32],
                                genesis,
                            },
                            SyncRequest::Blocks { .. } => SyncResponse::Blocks(vec![forged.clone()]),
                        };
                        let _ = handle.respond(channel, resp).await;
                    }
                    NetworkEvent::PeerDisconnected(peer) if peer == n0 => return true,
                    _ => {}
                }
            }
            false
        };
        let banned = tokio::time::timeout(Duration::from_secs(45), serve)
            .await
            .unwrap_or(false);
        handle.shutdown().await.ok();
        banned
    });
    assert!(banned, "n0 kept syncing from a peer that serves forged blocks");
    let metrics = net.nodes[0].metrics();
    assert!(
        metrics.contains("klero_blocks_rejected_total{reason=\"bad_signature\"}"),
        "{metrics}"
    );
}
