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

/// A PoS test spec with an account of 1,000 for each of `addresses`.
fn spec_funding(addresses: impl Iterator<Item = klero_chain::Address>) -> klero_chain::ChainSpec {
    let mut spec = common::test_spec(Kind::Pos);
    spec.accounts
        .extend(addresses.map(|address| klero_chain::spec::GenesisAccount {
            name: None,
            address,
            balance: 1_000,
            stake: 0,
            vrf_key: None,
        }));
    spec
}

/// `key`'s first transaction: `amount` to `to`, fee 1.
fn first_transfer(
    key: &klero_chain::Keypair,
    to: klero_chain::Address,
    amount: u64,
    chain_id: &str,
) -> klero_chain::Tx {
    use klero_chain::types::{TxBody, TxKind};
    let body = TxBody {
        from: key.address(),
        nonce: 0,
        fee: 1,
        kind: TxKind::Transfer { to, amount },
    };
    klero_chain::Tx::sign(body, key, chain_id)
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
                            SyncRequest::Headers { .. } => SyncResponse::Refused,
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

/// The stall of issue 15 as it was reported: a peer claims an unknown head
/// far ahead and answers every block request with the same blocks, the
/// node's own first ones, whatever height is asked. The node must not stay
/// `syncing` (the old syncer looped on it and the staker skipped every
/// slot): it strikes the peer, returns to `synced` and keeps producing.
#[test]
fn a_peer_that_repeats_known_blocks_cannot_keep_the_node_syncing() {
    let mut net = Net::new(Kind::Pos);
    net.start("n0", Some("alice"), &[]);
    net.start("n1", None, &[0]);
    assert!(wait_for(BLOCKS, || net.nodes[0].height() >= 4));
    let n0 = net.nodes[0].peer_id();
    let genesis = genesis_of(&net.nodes[0]);

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (handle, mut events) = rt.block_on(connect_peer(&net.nodes[0]));
    let known = rt.block_on(canonical_blocks(&handle, n0, 1, 64));
    let liar = {
        let handle = handle.clone();
        rt.spawn(async move {
            while let Some(event) = events.recv().await {
                if let NetworkEvent::SyncRequest { req, channel, .. } = event {
                    let resp = match req {
                        SyncRequest::Status => SyncResponse::Status {
                            height: 1_000_000,
                            head: [7; 32],
                            genesis,
                        },
                        SyncRequest::Headers { .. } => SyncResponse::Refused,
                        SyncRequest::Blocks { .. } => SyncResponse::Blocks(known.clone()),
                    };
                    let _ = handle.respond(channel, resp).await;
                }
            }
        })
    };
    let synced = || {
        net.nodes[0]
            .status()
            .is_some_and(|s| s.sync_state == SyncState::Synced)
    };
    // Past the first poll with the liar connected, then synced for good.
    std::thread::sleep(Duration::from_secs(8));
    assert!(
        wait_for(Duration::from_secs(30), synced),
        "still syncing: {}",
        net.nodes[0].metrics()
    );
    assert!(net.nodes[0].metric("klero_peer_strikes_total") >= Some(1.0));
    let height = net.nodes[0].height();
    let nodes: Vec<&Node> = net.nodes.iter().collect();
    assert!(
        wait_for(BLOCKS, || agree(&nodes, height + 5)),
        "the staker stopped: heights {:?}",
        nodes.iter().map(|n| n.height()).collect::<Vec<_>>()
    );
    liar.abort();
    rt.block_on(handle.shutdown()).ok();
}

/// A decodable block whose parent nobody has, about `txs` × 160 bytes
/// (one signed transfer repeated): an orphan, never validated.
fn orphan(tag: u64, txs: usize) -> Vec<u8> {
    use klero_chain::types::{Block, Header, PowSeal, Seal, SignedHeader, TxBody, TxKind};
    use klero_chain::{Hash, Keypair, Tx};
    let key = Keypair::dev("orphan-maker");
    let tx = Tx::sign(
        TxBody {
            from: key.address(),
            nonce: 0,
            fee: 1,
            kind: TxKind::Transfer {
                to: key.address(),
                amount: 1,
            },
        },
        &key,
        "klero-pos-dev",
    );
    let header = Header {
        height: 5,
        parent: Hash::of(&tag.to_le_bytes()),
        timestamp_ms: 0,
        tx_root: Hash::ZERO,
        state_root: Hash::ZERO,
        proposer: key.address(),
        seal: Seal::Pow(PowSeal {
            target: [0xff; 32],
            nonce: tag,
        }),
    };
    codec::encode(&Block {
        signed: SignedHeader::sign(header, &key, "klero-pos-dev"),
        txs: vec![tx; txs],
    })
}

/// A peer gossips 150 orphans of about 650 KB each (about 100 MB), each
/// with a parent nobody has. They wait in its own share of the orphan
/// pool (8 MiB) and push out only each other; they do not each start a
/// sync from it; the node's memory does not follow the flood.
#[test]
fn an_orphan_flood_costs_its_sender_not_the_node() {
    let mut net = Net::new(Kind::Pos);
    net.start("n0", Some("alice"), &[]);
    net.start("n1", None, &[0]);
    assert!(wait_for(BLOCKS, || net.nodes[0].height() >= 2));
    let genesis = genesis_of(&net.nodes[0]);
    let rss_before = net.nodes[0].rss_kib().expect("rss");

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (handle, mut events) = rt.block_on(connect_peer(&net.nodes[0]));
    let syncs = Arc::new(AtomicU64::new(0));
    let server = {
        let (handle, syncs) = (handle.clone(), Arc::clone(&syncs));
        rt.spawn(async move {
            while let Some(event) = events.recv().await {
                if let NetworkEvent::SyncRequest { req, channel, .. } = event {
                    let resp = match req {
                        SyncRequest::Status => {
                            syncs.fetch_add(1, Ordering::Relaxed);
                            SyncResponse::Status {
                                height: 1_000,
                                head: [9; 32],
                                genesis,
                            }
                        }
                        SyncRequest::Headers { .. } => SyncResponse::Refused,
                        SyncRequest::Blocks { .. } => SyncResponse::Blocks(Vec::new()),
                    };
                    let _ = handle.respond(channel, resp).await;
                }
            }
        })
    };
    let started = std::time::Instant::now();
    rt.block_on(async {
        // Let gossipsub exchange subscriptions before publishing.
        tokio::time::sleep(Duration::from_secs(2)).await;
        for tag in 0..150 {
            handle.publish_block(orphan(tag, 4_000)).await.expect("publish");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let orphans = || net.nodes[0].metric("klero_orphans").unwrap_or(0.0);
    assert!(
        wait_for(Duration::from_secs(30), || orphans() >= 10.0),
        "the orphans did not arrive: {}",
        net.nodes[0].metrics()
    );
    // Let the node take in whatever is still queued.
    std::thread::sleep(Duration::from_secs(3));
    let bytes = net.nodes[0].metric("klero_orphan_bytes").expect("orphan bytes");
    assert!(bytes <= f64::from(8u32 << 20), "{bytes} orphan bytes");
    let rss_after = net.nodes[0].rss_kib().expect("rss");
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    // One sync when it connected, then at most one per poll interval.
    let polls = started.elapsed().as_secs() / 5 + 2;
    let asked = syncs.load(Ordering::Relaxed);
    assert!(asked <= polls, "{asked} syncs from the flooder in {polls} polls");
    let height = net.nodes[0].height();
    let nodes: Vec<&Node> = net.nodes.iter().collect();
    assert!(
        wait_for(BLOCKS, || agree(&nodes, height + 3)),
        "honest nodes stalled"
    );
    server.abort();
    rt.block_on(handle.shutdown()).ok();
}

/// A peer floods the node with requests for 64 blocks, 64 at a time. Its
/// requests beyond its budget are refused at once, and a node that joins
/// meanwhile still syncs from the same node.
#[test]
fn a_sync_request_flood_does_not_lock_out_another_peer() {
    let mut net = Net::new(Kind::Pos);
    net.start("n0", Some("alice"), &[]);
    assert!(wait_for(BLOCKS, || net.nodes[0].height() >= 8));
    let n0 = net.nodes[0].peer_id();

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (handle, _events) = rt.block_on(connect_peer(&net.nodes[0]));
    let answered = Arc::new(AtomicU64::new(0));
    let flood: Vec<_> = (0..64)
        .map(|_| {
            let (handle, answered) = (handle.clone(), Arc::clone(&answered));
            rt.spawn(async move {
                let request = SyncRequest::Blocks {
                    from_height: 1,
                    count: 64,
                };
                loop {
                    if let Ok(SyncResponse::Blocks(_)) = handle.request(n0, request.clone()).await {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));

    let late = net.start("late", None, &[0]);
    let target = net.nodes[0].height();
    assert!(
        wait_for(Duration::from_secs(30), || net.nodes[late].height() >= target),
        "the late node could not sync during the flood: {} of {target}; {}",
        net.nodes[late].height(),
        net.nodes[0].metrics()
    );
    assert!(
        net.nodes[0].metric("klero_sync_requests_refused_total") > Some(0.0),
        "nothing was refused"
    );
    let height = net.nodes[0].height();
    let nodes: Vec<&Node> = net.nodes.iter().collect();
    assert!(
        wait_for(BLOCKS, || agree(&nodes, height + 2)),
        "honest nodes stalled"
    );
    for task in flood {
        task.abort();
    }
    rt.block_on(handle.shutdown()).ok();
}

/// A peer gossips thousands of validly signed transfers from accounts the
/// chain has never seen, on a chain of 20,000 accounts. Each is refused
/// from the sender's (missing) account alone, before its signature is
/// checked and without copying the ledger, and past the peer's allowance
/// they are dropped unread; the node keeps producing and agreeing.
#[test]
fn an_unfunded_transaction_flood_is_cheap_to_refuse() {
    use klero_chain::{Address, Keypair};

    let spec = spec_funding((0..20_000u64).map(|i| Address(*blake3::hash(&i.to_le_bytes()).as_bytes())));
    let mut net = Net::with_spec(Kind::Pos, &spec);
    net.start("n0", Some("alice"), &[]);
    net.start("n1", None, &[0]);
    assert!(wait_for(BLOCKS, || net.nodes[0].height() >= 2));

    let flood: Vec<Vec<u8>> = (0..20_000u64)
        .map(|i| {
            let key = Keypair::dev(&format!("unfunded-{i}"));
            codec::encode(&first_transfer(&key, spec.accounts[0].address, 1, &spec.chain_id))
        })
        .collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (handle, _events) = rt.block_on(connect_peer(&net.nodes[0]));
    let height = net.nodes[0].height();
    let flooding = {
        let handle = handle.clone();
        rt.spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            for tx in flood.into_iter().cycle() {
                if handle.publish_tx(tx).await.is_err() {
                    return;
                }
            }
        })
    };
    let nodes: Vec<&Node> = net.nodes.iter().collect();
    assert!(
        wait_for(BLOCKS, || agree(&nodes, height + 5)),
        "the flood stalled the node: heights {:?}; {}",
        nodes.iter().map(|n| n.height()).collect::<Vec<_>>(),
        net.nodes[0].metrics()
    );
    assert!(
        net.nodes[0].metric("klero_txs_rate_limited_total") > Some(0.0),
        "the flooder was never rate-limited: {}",
        net.nodes[0].metrics()
    );
    assert_eq!(net.nodes[0].metric("klero_mempool_size"), Some(0.0));
    flooding.abort();
    rt.block_on(handle.shutdown()).ok();
}

/// A peer gossips a burst of 48 transfers from 48 funded senders, with
/// a forged signature on every sixteenth, so they reach the mempool in
/// batches whose signatures are checked together (ZIP 215). Each forged
/// one is refused as the peer's fault, three strikes drop the peer, and
/// every valid transfer is included: a bad signature in a batch costs its
/// neighbours nothing.
#[test]
fn forged_signatures_in_a_gossiped_burst_strike_only_their_sender() {
    use klero_chain::Keypair;
    use klero_chain::types::TxKind;

    const SENDERS: usize = 48;
    let keys: Vec<Keypair> = (0..SENDERS)
        .map(|i| Keypair::dev(&format!("burst-{i}")))
        .collect();
    let spec = spec_funding(keys.iter().map(Keypair::address));
    let mut net = Net::with_spec(Kind::Pos, &spec);
    net.start("n0", Some("alice"), &[]);
    net.start("n1", None, &[0]);
    assert!(wait_for(BLOCKS, || net.nodes[0].height() >= 2));
    let n0 = net.nodes[0].peer_id();

    let forged = |i: usize| i % 16 == 5;
    let burst: Vec<Vec<u8>> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let mut tx = first_transfer(key, spec.accounts[0].address, 7, &spec.chain_id);
            if forged(i) {
                tx.body.kind = TxKind::Transfer {
                    to: spec.accounts[0].address,
                    amount: 700,
                };
            }
            codec::encode(&tx)
        })
        .collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (handle, _events) = rt.block_on(async {
        let peer = connect_peer(&net.nodes[0]).await;
        // Let gossipsub exchange subscriptions before publishing.
        tokio::time::sleep(Duration::from_secs(2)).await;
        peer
    });
    for tx in burst {
        rt.block_on(handle.publish_tx(tx)).expect("publish");
    }
    assert!(
        wait_for(Duration::from_secs(20), || !rt
            .block_on(handle.peers())
            .unwrap_or_default()
            .contains(&n0)),
        "the peer that gossiped forged signatures is still connected"
    );
    let included = |node: &Node, i: usize| {
        node.account(&keys[i].address().to_bech32())
            .is_some_and(|account| account.nonce == 1)
    };
    let nodes: Vec<&Node> = net.nodes.iter().collect();
    assert!(
        wait_for(BLOCKS, || nodes.iter().all(|node| (0..SENDERS)
            .filter(|&i| !forged(i))
            .all(|i| included(node, i)))),
        "a valid transfer of the burst was not included: {:?}",
        (0..SENDERS)
            .filter(|&i| !forged(i) && !included(nodes[0], i))
            .collect::<Vec<_>>()
    );
    for node in &nodes {
        for i in (0..SENDERS).filter(|&i| forged(i)) {
            assert!(!included(node, i), "{} included forged transfer {i}", node.name);
        }
    }
    let height = net.nodes[0].height();
    assert!(
        wait_for(BLOCKS, || agree(&nodes, height + 2)),
        "honest nodes stalled"
    );
    rt.block_on(handle.shutdown()).ok();
}

/// A client of the HTTP API sends a 1 MiB transaction, then opens 200
/// requests whose bodies never come. The big body is refused (413), the
/// requests beyond the in-flight limit are refused at once (503) instead
/// of queueing, every stalled one is answered 408 after the timeout, and
/// then the API answers again; the node produces throughout.
#[test]
fn an_api_client_that_floods_or_stalls_is_bounded() {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    let mut net = Net::new(Kind::Pos);
    net.start("n0", Some("alice"), &[]);
    assert!(wait_for(BLOCKS, || net.nodes[0].height() >= 2));
    let url = net.nodes[0].api_url();
    let addr = url.trim_start_matches("http://").to_string();
    let client = reqwest::blocking::Client::new();

    let post = |hex_bytes: usize| {
        client
            .post(format!("{url}/txs"))
            .header("content-type", "application/json")
            .body(format!("{{\"tx\": \"{}\"}}", "ab".repeat(hex_bytes)))
            .send()
    };
    // Over the limit but small enough to be sent whole before the answer.
    assert_eq!(post(8 * 1024).expect("answer").status().as_u16(), 413);
    // 1 MiB: the node answers 413 as soon as the limit is passed and may
    // close the connection while the client is still writing.
    match post(512 * 1024) {
        Ok(answer) => assert_eq!(answer.status().as_u16(), 413),
        Err(error) => assert!(error.is_request() && !error.is_timeout(), "{error:?}"),
    }

    let height = net.nodes[0].height();
    let stalled: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut stream = TcpStream::connect(&addr).expect("connect");
            stream
                .write_all(b"POST /txs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
                .expect("write");
            stream
        })
        .collect();
    let busy = || {
        client
            .get(format!("{url}/status"))
            .timeout(Duration::from_secs(5))
            .send()
            .map(|r| r.status().as_u16())
    };
    assert!(
        wait_for(Duration::from_secs(5), || busy().ok() == Some(503)),
        "the API was never busy with 200 requests in flight: {:?}",
        busy()
    );
    for mut stream in stalled {
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let mut head = [0u8; 12];
        stream
            .read_exact(&mut head)
            .expect("an answer to a stalled request");
        let status = String::from_utf8_lossy(&head[9..12]).into_owned();
        assert!(
            status == "408" || status == "503",
            "a stalled request was answered {status}"
        );
    }
    assert_eq!(busy().ok(), Some(200));
    assert!(
        wait_for(BLOCKS, || net.nodes[0].height() >= height + 3),
        "the node stopped producing"
    );
}

/// The side blocks stored on `node` (every stored block off its best
/// chain), from `GET /proposers`.
fn side_blocks(node: &Node) -> u64 {
    let url = format!("{}/proposers", node.api_url());
    let body: serde_json::Value = reqwest::blocking::get(url)
        .and_then(reqwest::blocking::Response::json)
        .expect("GET /proposers");
    body["orphaned"].as_u64().expect("orphaned")
}

/// A PoW test spec on which a fork block stamped now, forking many blocks
/// deep, gives its children the easiest target the spec allows: ASERT with
/// a 4-block half-life, and the future drift cut to 3 s to stay below it.
fn easing_pow_spec() -> klero_chain::ChainSpec {
    let mut spec = common::test_spec(Kind::Pow);
    let klero_chain::spec::Consensus::Pow(params) = &mut spec.consensus else {
        unreachable!("a PoW spec")
    };
    params.half_life_blocks = 4;
    params.max_future_drift_ms = 3_000;
    spec
}

/// `node`'s canonical chain up to `height` (at most 64), replayed to know
/// its state, and its blocks from height 1, encoded.
async fn replay(
    handle: &klero::p2p::NetworkHandle,
    node: libp2p::PeerId,
    spec: &klero_chain::ChainSpec,
    height: u64,
) -> (Replica, Vec<Vec<u8>>) {
    let mut replica = Replica::genesis(spec);
    let blocks = canonical_blocks(handle, node, 1, u32::try_from(height).expect("height")).await;
    for bytes in &blocks {
        replica.extend(codec::decode_block(bytes).expect("block").seal());
    }
    assert_eq!(replica.meta.height, height);
    (replica, blocks)
}

/// A copy of a PoW chain's tip kept by a test peer: enough to validate the
/// next block and to build on it.
struct Replica {
    spec: klero_chain::ChainSpec,
    tip: klero_chain::SealedBlock,
    meta: klero_chain::validate::BlockMeta,
    state: klero_chain::state::MemState,
    timestamps: Vec<u64>,
}

impl Replica {
    fn genesis(spec: &klero_chain::ChainSpec) -> Replica {
        let (tip, state) = spec.genesis();
        Replica {
            meta: klero_chain::validate::genesis_meta(spec),
            timestamps: vec![tip.header().timestamp_ms],
            spec: spec.clone(),
            tip,
            state,
        }
    }

    fn with_parent<R>(&self, f: impl FnOnce(&klero_chain::validate::Parent<'_>) -> R) -> R {
        let recent = &self.timestamps[self.timestamps.len().saturating_sub(11)..];
        f(&klero_chain::validate::Parent {
            id: self.tip.id(),
            header: self.tip.header(),
            meta: &self.meta,
            recent_timestamps: recent,
        })
    }

    /// Validates `block` on the tip and moves the tip to it.
    fn extend(&mut self, block: klero_chain::SealedBlock) {
        let imported = self.with_parent(|parent| {
            klero_chain::validate::validate_block(&self.spec, parent, &self.state, &block, u64::MAX / 2)
                .expect("valid")
        });
        self.state.apply(&imported.changes).expect("apply");
        self.timestamps.push(block.header().timestamp_ms);
        (self.tip, self.meta) = (block, imported.meta);
    }

    /// Mines an empty block on the tip, by `key`, stamped `ts`, and moves
    /// the tip to it.
    fn mine(&mut self, key: &klero_chain::Keypair, ts: u64) -> klero_chain::SealedBlock {
        let template = self.template(key, ts);
        let nonce = winning_nonces(&template).next().expect("nonce");
        let block = template.complete(nonce, key, &self.spec.chain_id).seal();
        self.extend(block.clone());
        block
    }

    /// An empty block template on the tip, by `key`, stamped `ts`.
    fn template(&self, key: &klero_chain::Keypair, ts: u64) -> klero_chain::produce::PowTemplate {
        self.with_parent(|parent| {
            klero_chain::produce::pow_template(&self.spec, parent, &self.state, &[], key, ts)
                .expect("template")
        })
    }
}

/// The nonces whose hash meets the template's target, in order.
fn winning_nonces(template: &klero_chain::produce::PowTemplate) -> impl Iterator<Item = u64> + '_ {
    use klero_chain::pow::{meets_target, pow_hash};
    (0u64..).filter(|n| meets_target(&pow_hash(&template.pre, *n), &template.target))
}

/// PoW, the free-work attack. A peer forks 40 blocks below the head
/// with a block stamped now: 40 block times late, so ASERT (a 4-block
/// half-life here, with the future drift cut to 3 s to stay below it) gives its children the easiest target the spec allows,
/// `pow_limit` = 2^248 - 1, about 256 hashes each. It mines 10,000 such
/// children (about 2.6 million hashes) and gossips the fork block and then
/// the children. The node checks each one's seal and signature, finds its
/// branch more than `SIDE_BRANCH_LAG` blocks of work behind the head, and
/// stores nothing: no side block on the node, none forwarded to its
/// follower; past the peer's small allowance each one is a reject, and
/// three of those ban the peer. The node keeps mining and agreeing.
#[test]
fn ten_thousand_cheap_children_of_a_deep_fork_are_not_stored_nor_forwarded() {
    const DEPTH: u64 = 40;
    const CHILDREN: usize = 10_000;
    let spec = easing_pow_spec();
    let klero_chain::spec::Consensus::Pow(params) = &spec.consensus else {
        unreachable!("a PoW spec")
    };
    let pow_limit = params.pow_limit;
    let mut net = Net::with_spec(Kind::Pow, &spec);
    net.start("n0", Some("alice"), &[]);
    net.start("n1", None, &[0]);
    assert!(
        wait_for(Duration::from_secs(120), || net.nodes[0].height() > DEPTH + 2),
        "the miner did not pass height {DEPTH}"
    );
    let n0 = net.nodes[0].peer_id();
    let side_before = [side_blocks(&net.nodes[0]), side_blocks(&net.nodes[1])];

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (handle, mut events) = rt.block_on(common::peer::connect_peer_on(&net.nodes[0], &spec.chain_id));
    let refuser = {
        let handle = handle.clone();
        rt.spawn(async move {
            while let Some(event) = events.recv().await {
                if let NetworkEvent::SyncRequest { channel, .. } = event {
                    let _ = handle.respond(channel, SyncResponse::Refused).await;
                }
            }
        })
    };
    let fork_height = net.nodes[0].height() - DEPTH;
    let (mut replica, _) = rt.block_on(replay(&handle, n0, &spec, fork_height));
    let mallory = klero_chain::Keypair::dev("mallory");
    let stamp = common::now_ms() + 1_000;
    let fork_block = replica.mine(&mallory, stamp);

    // Its children: one template, 10,000 nonces that meet the eased target.
    let children = replica.template(&mallory, stamp);
    assert_eq!(
        children.target, pow_limit,
        "the fork block's children need only the easiest target"
    );
    let started = std::time::Instant::now();
    let blocks: Vec<Vec<u8>> = winning_nonces(&children)
        .take(CHILDREN)
        .map(|nonce| codec::encode(&children.clone().complete(nonce, &mallory, &spec.chain_id)))
        .collect();
    eprintln!("{CHILDREN} children mined and signed in {:?}", started.elapsed());
    let sample: Vec<String> = blocks
        .iter()
        .step_by(1_000)
        .map(|bytes| codec::decode_block(bytes).expect("child").seal().id().to_string())
        .collect();

    let published = rt.block_on(async {
        // Let gossipsub exchange subscriptions before publishing.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (mut published, mut failures) = (0usize, 0u32);
        for bytes in std::iter::once(codec::encode(fork_block.block())).chain(blocks) {
            // A full queue passes; once the node has banned us, nobody is
            // left to publish to.
            while handle.publish_block(bytes.clone()).await.is_err() {
                failures += 1;
                if failures > 20 {
                    return published;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (published, failures) = (published + 1, 0);
            if published % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        published
    });
    let banned = || net.nodes[0].metric("klero_peers_banned_total").unwrap_or(0.0) >= 1.0;
    assert!(
        wait_for(Duration::from_secs(60), banned),
        "the sender was not banned after {published} blocks ({} side blocks stored): {}",
        side_blocks(&net.nodes[0]),
        net.nodes[0].metrics()
    );
    let light = net.nodes[0]
        .metric("klero_blocks_rejected_total{reason=\"light_branch\"}")
        .unwrap_or(0.0);
    eprintln!("{published} blocks published, {light} refused as light before the ban");
    assert!(light >= 1.0, "no block was refused as light");

    let fork_hex = fork_block.id().to_string();
    for node in &net.nodes {
        assert!(
            node.block_by_id(&fork_hex).is_none(),
            "{} stored the fork block",
            node.name
        );
        for id in &sample {
            assert!(node.block_by_id(id).is_none(), "{} stored a child", node.name);
        }
    }
    let side_after = [side_blocks(&net.nodes[0]), side_blocks(&net.nodes[1])];
    assert_eq!(side_after, side_before, "side blocks stored on n0 and n1");
    let height = net.nodes[0].height();
    let nodes: Vec<&Node> = net.nodes.iter().collect();
    assert!(
        wait_for(BLOCKS, || agree(&nodes, height + 3)),
        "the honest nodes stalled"
    );
    refuser.abort();
    rt.block_on(handle.shutdown()).ok();
}

/// PoW, the light branch sync used to store. A peer forks 40 blocks below
/// the head with a block stamped now, mines 30 children on it (cheap: ASERT
/// eases them, as in the test above) and claims the branch's tip as its
/// head. Its branch is shorter than the node's chain above the fork point
/// and carries far less work. The node finds the fork point with
/// one-header probes, then asks for the branch's headers, checks their seals and
/// signatures, finds the branch lighter than its head and downloads none of
/// its bodies: nothing is stored, no strike (a lighter branch is no fault),
/// and the node keeps mining. Before headers-first sync, the node fetched
/// the 30 blocks and stored them as side blocks.
#[test]
fn a_light_branch_offered_by_sync_is_judged_by_its_headers_and_never_downloaded() {
    const DEPTH: u64 = 40;
    const CHILDREN: u64 = 30;
    let spec = easing_pow_spec();
    let mut net = Net::with_spec(Kind::Pow, &spec);
    net.start("n0", Some("alice"), &[]);
    assert!(
        wait_for(Duration::from_secs(120), || net.nodes[0].height() > DEPTH + 2),
        "the miner did not pass height {DEPTH}"
    );
    let n0 = net.nodes[0].peer_id();
    let genesis = genesis_of(&net.nodes[0]);
    let side_before = side_blocks(&net.nodes[0]);

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (handle, mut events) = rt.block_on(common::peer::connect_peer_on(&net.nodes[0], &spec.chain_id));
    let fork_height = net.nodes[0].height() - DEPTH;
    let (mut replica, mut chain) = rt.block_on(replay(&handle, n0, &spec, fork_height));
    let mallory = klero_chain::Keypair::dev("mallory");
    let stamp = common::now_ms() + 1_000;
    let branch: Vec<klero_chain::SealedBlock> = (0..=CHILDREN)
        .map(|i| replica.mine(&mallory, stamp + i))
        .collect();
    chain.extend(branch.iter().map(|b| codec::encode(b.block())));
    let tip = replica.tip.id();
    let tip_height = replica.meta.height;

    // The peer's sync server: its chain is the node's up to the fork point,
    // then the branch. It counts status requests (one a sync), header
    // requests, and block requests inside the branch (below its tip, where
    // the first request of a sync starts).
    let [statuses, headers_asked, bodies_asked] = [(); 3].map(|()| Arc::new(AtomicU64::new(0)));
    let server = {
        let (handle, statuses, headers_asked, bodies_asked) = (
            handle.clone(),
            Arc::clone(&statuses),
            Arc::clone(&headers_asked),
            Arc::clone(&bodies_asked),
        );
        let branch_heights = fork_height + 1..tip_height;
        rt.spawn(async move {
            let at = |height: u64| {
                height
                    .checked_sub(1)
                    .and_then(|i| chain.get(usize::try_from(i).ok()?))
            };
            while let Some(event) = events.recv().await {
                let NetworkEvent::SyncRequest { req, channel, .. } = event else {
                    continue;
                };
                let resp = match req {
                    SyncRequest::Status => {
                        statuses.fetch_add(1, Ordering::Relaxed);
                        SyncResponse::Status {
                            height: tip_height,
                            head: tip.0,
                            genesis,
                        }
                    }
                    SyncRequest::Blocks { from_height, count } => {
                        if branch_heights.contains(&from_height) {
                            bodies_asked.fetch_add(1, Ordering::Relaxed);
                        }
                        let heights = from_height..from_height.saturating_add(u64::from(count));
                        SyncResponse::Blocks(heights.map_while(|h| at(h).cloned()).collect())
                    }
                    SyncRequest::Headers { from_height, count } => {
                        headers_asked.fetch_add(1, Ordering::Relaxed);
                        let heights = from_height..from_height.saturating_add(u64::from(count));
                        let headers = heights.map_while(|h| {
                            at(h).map(|bytes| codec::decode_block_header(bytes).expect("header"))
                        });
                        SyncResponse::Headers(headers.collect())
                    }
                };
                let _ = handle.respond(channel, resp).await;
            }
        })
    };

    // Two syncs: the second starts only after the first has ended.
    assert!(
        wait_for(Duration::from_secs(60), || statuses.load(Ordering::Relaxed) >= 2),
        "the node did not sync from the peer twice: {}",
        net.nodes[0].metrics()
    );
    assert_eq!(
        side_blocks(&net.nodes[0]),
        side_before,
        "the node stored side blocks"
    );
    assert_eq!(
        bodies_asked.load(Ordering::Relaxed),
        0,
        "the node downloaded the light branch's bodies"
    );
    assert!(
        headers_asked.load(Ordering::Relaxed) >= 1,
        "the node never asked for headers"
    );
    assert!(net.nodes[0].metric("klero_sync_light_branches_total") >= Some(1.0));
    for block in &branch {
        assert!(
            net.nodes[0].block_by_id(&block.id().to_string()).is_none(),
            "the node stored the branch's block {}",
            block.header().height
        );
    }
    assert_eq!(
        net.nodes[0].metric("klero_peer_strikes_total").unwrap_or(0.0),
        0.0,
        "a lighter branch is no fault"
    );
    let height = net.nodes[0].height();
    assert!(
        wait_for(BLOCKS, || net.nodes[0].height() >= height + 3),
        "the node stopped mining"
    );
    server.abort();
    rt.block_on(handle.shutdown()).ok();
}
