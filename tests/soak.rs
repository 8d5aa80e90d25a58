//! The soak run (issue 15): four PoS nodes (the dev spec's stakers) under a
//! steady load of transfers from 100 senders while one node after another
//! is SIGKILLed and restarted. At the end every transaction a node's API
//! accepted is on the final canonical chain exactly once (the chain walked
//! block by block, and `GET /txs/{id}` on every node), the heads agree,
//! and no node's resident memory grew without bound.
//!
//! It runs 60 s by default with a kill every 20 s. The long run of
//! docs/reliability.md sets both:
//!
//! ```sh
//! KLERO_SOAK_SECS=600 KLERO_SOAK_KILL_EVERY_SECS=120 cargo test --test soak -- --nocapture
//! ```
//!
//! The senders behave as a wallet does. Each signs its transactions in
//! nonce order and submits each one until a node accepts it, trying the
//! next node when one does not answer. When a node refuses a nonce because
//! it lacks the sender's earlier pending transactions (a restarted node's
//! pool is empty; gossip may not have reached it), the sender gives it
//! those again. After the load, a transaction that no node knows any more
//! (accepted by a node that was killed before it could gossip it) is
//! submitted again. Both are counted and printed: they are what the
//! crashes cost a wallet.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{Kind, Net, Node, agree, test_spec, wait_for};
use klero::api::TxView;
use klero::api::client::{ApiClient, ClientError};
use klero::api::history::TxState;
use klero_chain::types::{TxBody, TxKind};
use klero_chain::{Address, Keypair, Tx, codec};

/// Senders, each with a funded account of its own.
const SENDERS: usize = 100;
/// Transactions per second offered by all senders together.
const RATE: u64 = 100;
/// Threads that submit, each for `SENDERS / WORKERS` senders.
const WORKERS: usize = 10;
/// How long a killed node stays down.
const DOWN: Duration = Duration::from_secs(5);
/// What each sender is funded with: far more than its transfers and fees.
const FUNDING: u64 = 10_000_000;
/// How often each node's RSS is read.
const RSS_EVERY: Duration = Duration::from_secs(5);
/// No node of this chain needs anything near this much memory.
const RSS_CEILING_KIB: u64 = 2 * 1024 * 1024;

/// The dev spec's stakers, one per node; `alice` (node 0) is never killed
/// and is the others' bootnode.
const STAKERS: [&str; 4] = ["alice", "bob", "carol", "dave"];

fn env_secs(name: &str, default: u64) -> Duration {
    let secs = std::env::var(name)
        .ok()
        .map(|v| {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("{name}={v} is not whole seconds"))
        })
        .unwrap_or(default);
    Duration::from_secs(secs)
}

/// One sending account.
struct Sender {
    key: Keypair,
    address: String,
    /// Whom it pays (another sender).
    to: Address,
    /// The node it submits to; it moves on when that one does not answer.
    node: usize,
    /// Its signed transactions, by nonce.
    txs: Vec<Tx>,
    /// Whether some node's API answered "accepted", by nonce.
    accepted: Vec<bool>,
    /// The nonce it submits: every one below was accepted or is known to a node.
    next: u64,
}

impl Sender {
    fn new(i: usize) -> Sender {
        let key = Keypair::dev(&format!("soak-sender-{i}"));
        Sender {
            address: key.address().to_bech32(),
            key,
            to: Keypair::dev(&format!("soak-sender-{}", (i + 1) % SENDERS)).address(),
            node: i % STAKERS.len(),
            txs: Vec::new(),
            accepted: Vec::new(),
            next: 0,
        }
    }

    /// The encoded transaction of `nonce`, signed once.
    fn encoded(&mut self, nonce: u64, chain_id: &str) -> Vec<u8> {
        while self.txs.len() as u64 <= nonce {
            let body = TxBody {
                from: self.key.address(),
                nonce: self.txs.len() as u64,
                fee: 1,
                kind: TxKind::Transfer {
                    to: self.to,
                    amount: 1,
                },
            };
            self.txs.push(Tx::sign(body, &self.key, chain_id));
            self.accepted.push(false);
        }
        codec::encode(&self.txs[nonce as usize])
    }
}

/// What the submitting threads saw.
#[derive(Debug, Default)]
struct Tally {
    /// `POST /txs` calls.
    posts: u64,
    /// Answered "accepted".
    accepted: u64,
    /// Refused, by the node's reason (up to its first colon).
    refused: BTreeMap<String, u64>,
    /// No answer, or 503 (stopping, full): another node is tried.
    unreachable: u64,
    /// Transactions given again to a node that lacked them (nonce gap).
    regapped: u64,
    /// Ticks skipped because a thread was behind its pace.
    skipped: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.posts += other.posts;
        self.accepted += other.accepted;
        for (reason, n) in &other.refused {
            *self.refused.entry(reason.clone()).or_default() += n;
        }
        self.unreachable += other.unreachable;
        self.regapped += other.regapped;
        self.skipped += other.skipped;
    }
}

/// The nonce a node expects, from its refusal "bad nonce: expected E, got G".
fn expected_nonce(message: &str) -> Option<u64> {
    let (_, rest) = message.split_once("bad nonce: expected ")?;
    rest.split(',').next()?.trim().parse().ok()
}

/// One submission of `sender`'s next transaction, and what follows from the answer.
fn step(sender: &mut Sender, clients: &[ApiClient], chain_id: &str, tally: &mut Tally) {
    let nonce = sender.next;
    let bytes = sender.encoded(nonce, chain_id);
    tally.posts += 1;
    match clients[sender.node].submit(&bytes) {
        Ok(_) => {
            tally.accepted += 1;
            sender.accepted[nonce as usize] = true;
            sender.next += 1;
        }
        Err(ClientError::Refused { status, message }) if status != 503 => {
            let reason = message.split(':').next().unwrap_or_default().to_owned();
            *tally.refused.entry(reason).or_default() += 1;
            match expected_nonce(&message) {
                // Known there already (an earlier try's answer was lost).
                Some(expected) if expected == nonce + 1 => sender.next = expected,
                // The node lacks earlier ones: give them in order.
                Some(expected) if expected < nonce => {
                    for earlier in expected..nonce {
                        let bytes = sender.encoded(earlier, chain_id);
                        tally.posts += 1;
                        if clients[sender.node].submit(&bytes).is_err() {
                            break;
                        }
                        sender.accepted[earlier as usize] = true;
                        tally.regapped += 1;
                    }
                }
                _ => {}
            }
        }
        Err(_) => {
            tally.unreachable += 1;
            sender.node = (sender.node + 1) % clients.len();
        }
    }
}

/// Submits for `senders` at `rate` transactions a second until `end`.
fn submit_until(
    mut senders: Vec<Sender>,
    urls: &[String],
    chain_id: &str,
    rate: u64,
    end: Instant,
) -> (Vec<Sender>, Tally) {
    let clients: Vec<ApiClient> = urls
        .iter()
        .map(|u| ApiClient::new(u, Duration::from_secs(5)).expect("client"))
        .collect();
    let period = Duration::from_nanos(1_000_000_000 / rate);
    let mut tally = Tally::default();
    let start = Instant::now();
    let mut tick: u32 = 0;
    while Instant::now() < end {
        let due = start + period * tick;
        let now = Instant::now();
        if now < due {
            sleep(due - now);
        } else if now > due + period {
            // Behind: keep the pace rather than burst.
            let caught_up = ((now - start).as_nanos() / period.as_nanos()) as u32;
            tally.skipped += u64::from(caught_up - tick);
            tick = caught_up;
        }
        let n = senders.len();
        let sender = &mut senders[tick as usize % n];
        step(sender, &clients, chain_id, &mut tally);
        tick += 1;
    }
    (senders, tally)
}

/// RSS samples of one node, in KiB, with the pid each was read from.
#[derive(Default)]
struct Memory {
    samples: Vec<(Duration, u32, u64)>,
}

impl Memory {
    fn sample(&mut self, at: Duration, node: &Node) {
        if let (Some(pid), Some(kib)) = (node.pid(), node.rss_kib()) {
            self.samples.push((at, pid, kib));
        }
    }

    fn max(&self) -> u64 {
        self.samples.iter().map(|s| s.2).max().unwrap_or(0)
    }

    /// The highest RSS of one process (the first pid sampled: a node
    /// never killed) in the middle and in the last third of the samples.
    fn thirds(&self) -> (u64, u64) {
        let pid = self.samples.first().map(|s| s.1);
        let own: Vec<u64> = self
            .samples
            .iter()
            .filter(|s| Some(s.1) == pid)
            .map(|s| s.2)
            .collect();
        let third = own.len() / 3;
        let max = |part: &[u64]| part.iter().copied().max().unwrap_or(0);
        (max(&own[third..2 * third]), max(&own[2 * third..]))
    }

    fn summary(&self) -> String {
        let mib = |kib: u64| kib as f64 / 1024.0;
        match (self.samples.first(), self.samples.last()) {
            (Some(first), Some(last)) => format!(
                "first {:.0} MiB, last {:.0} MiB, max {:.0} MiB over {} samples",
                mib(first.2),
                mib(last.2),
                mib(self.max()),
                self.samples.len()
            ),
            _ => "no samples".to_owned(),
        }
    }
}

/// Funds every sender from the four dev accounts and waits until all
/// nodes agree on a head that has them.
fn fund(net: &Net, senders: &[Sender], chain_id: &str) {
    for (f, name) in STAKERS.iter().enumerate() {
        let key = Keypair::dev(name);
        let mine = senders.iter().skip(f).step_by(STAKERS.len());
        for (nonce, sender) in mine.enumerate() {
            let body = TxBody {
                from: key.address(),
                nonce: nonce as u64,
                fee: 1,
                kind: TxKind::Transfer {
                    to: sender.key.address(),
                    amount: FUNDING,
                },
            };
            let tx = Tx::sign(body, &key, chain_id);
            net.nodes[f].submit(&tx).expect("a funding transfer");
        }
    }
    let node0 = &net.nodes[0];
    assert!(
        wait_for(Duration::from_secs(120), || senders.iter().all(|s| node0
            .account(&s.address)
            .is_some_and(|a| a.balance == FUNDING))),
        "the senders were not funded"
    );
    let height = node0.height();
    let nodes: Vec<&Node> = net.nodes.iter().collect();
    assert!(
        wait_for(Duration::from_secs(120), || agree(&nodes, height)),
        "no common head after the funding: {:?}",
        nodes.iter().map(|n| n.height()).collect::<Vec<_>>()
    );
}

/// After the load: waits until every sender's nonce on node 0's head has
/// reached the last it got through and the heads agree. A transaction that
/// no node knows any more is submitted again, with the sender's later
/// ones, to every node; how many were is returned.
fn drain(net: &Net, clients: &[ApiClient], senders: &[Sender], limit: Duration) -> u64 {
    let nodes: Vec<&Node> = net.nodes.iter().collect();
    let deadline = Instant::now() + limit;
    let mut resubmitted = 0;
    let mut last_repair = Instant::now();
    loop {
        let behind: Vec<(&Sender, u64)> = senders
            .iter()
            .filter_map(|s| {
                let nonce = nodes[0].account(&s.address).map_or(0, |a| a.nonce);
                (nonce < s.next).then_some((s, nonce))
            })
            .collect();
        if behind.is_empty() && agree(&nodes, 0) {
            return resubmitted;
        }
        assert!(
            Instant::now() < deadline,
            "after {limit:?}, {} senders' transactions are still not all on node 0's chain \
             (first: {:?}); heights {:?}",
            behind.len(),
            behind.first().map(|(s, n)| (&s.address, n, s.next)),
            nodes.iter().map(|n| n.height()).collect::<Vec<_>>()
        );
        if last_repair.elapsed() >= Duration::from_secs(10) {
            last_repair = Instant::now();
            for (sender, nonce) in &behind {
                let id = sender.txs[*nonce as usize].id().to_hex();
                let unknown =
                    |c: &ApiClient| matches!(c.tx_status(&id), Ok(s) if s.state == TxState::Unknown);
                let known = !clients.iter().all(unknown);
                if known {
                    continue;
                }
                resubmitted += 1;
                for tx in &sender.txs[*nonce as usize..sender.next as usize] {
                    let bytes = codec::encode(tx);
                    for client in clients {
                        let _ = client.submit(&bytes);
                    }
                }
            }
        }
        sleep(Duration::from_secs(2));
    }
}

#[test]
fn every_accepted_transaction_is_included_once_through_crashes() {
    let duration = env_secs("KLERO_SOAK_SECS", 60);
    let kill_every = env_secs("KLERO_SOAK_KILL_EVERY_SECS", 20);
    assert!(
        kill_every > DOWN,
        "KLERO_SOAK_KILL_EVERY_SECS must exceed the {DOWN:?} a node stays down"
    );
    let spec = test_spec(Kind::Pos);
    let chain_id = spec.chain_id.clone();
    let mut net = Net::with_spec(Kind::Pos, &spec);
    for (i, name) in STAKERS.iter().enumerate() {
        let boot: &[usize] = if i == 0 { &[] } else { &[0] };
        net.start(&format!("n{i}-{name}"), Some(*name), boot);
    }
    {
        let nodes: Vec<&Node> = net.nodes.iter().collect();
        assert!(
            wait_for(Duration::from_secs(60), || agree(&nodes, 2)),
            "the four nodes did not start a common chain"
        );
    }
    let senders: Vec<Sender> = (0..SENDERS).map(Sender::new).collect();
    fund(&net, &senders, &chain_id);
    let start_height = net.nodes[0].height();

    // The load, and the kills beside it on this thread.
    let urls: Vec<String> = net.nodes.iter().map(Node::api_url).collect();
    let mut groups: Vec<Vec<Sender>> = (0..WORKERS).map(|_| Vec::new()).collect();
    for (i, sender) in senders.into_iter().enumerate() {
        groups[i % WORKERS].push(sender);
    }
    let mut memory: Vec<Memory> = (0..STAKERS.len()).map(|_| Memory::default()).collect();
    let mut kills = Vec::new();
    let started = Instant::now();
    let end = started + duration;
    let (senders, tally) = std::thread::scope(|scope| {
        let workers: Vec<_> = groups
            .into_iter()
            .map(|group| {
                let (urls, chain_id) = (&urls, &chain_id);
                scope.spawn(move || submit_until(group, urls, chain_id, RATE / WORKERS as u64, end))
            })
            .collect();
        let mut next_kill = kill_every;
        let mut next_sample = Duration::ZERO;
        let mut down: Option<(usize, Duration)> = None;
        while Instant::now() < end {
            let at = started.elapsed();
            if at >= next_sample {
                for (m, node) in memory.iter_mut().zip(&net.nodes) {
                    m.sample(at, node);
                }
                next_sample += RSS_EVERY;
            }
            if down.is_none() && at >= next_kill && at + DOWN < duration {
                // Nodes 1, 2, 3 in turn; node 0 is the bootnode.
                let victim = 1 + kills.len() % (STAKERS.len() - 1);
                net.nodes[victim].kill9();
                kills.push((victim, at));
                down = Some((victim, at));
                next_kill += kill_every;
            }
            if let Some((victim, since)) = down
                && at >= since + DOWN
            {
                net.nodes[victim].restart();
                down = None;
            }
            sleep(Duration::from_millis(200));
        }
        if let Some((victim, _)) = down {
            net.nodes[victim].restart();
        }
        let mut senders = Vec::new();
        let mut tally = Tally::default();
        for worker in workers {
            let (group, t) = worker.join().expect("a submitting thread");
            senders.extend(group);
            tally.add(&t);
        }
        (senders, tally)
    });
    let load_secs = started.elapsed().as_secs_f64();

    let clients: Vec<ApiClient> = urls
        .iter()
        .map(|u| ApiClient::new(u, Duration::from_secs(5)).expect("client"))
        .collect();
    let resubmitted = drain(&net, &clients, &senders, Duration::from_secs(120) + duration / 4);
    let at = started.elapsed();
    for (m, node) in memory.iter_mut().zip(&net.nodes) {
        m.sample(at, node);
    }

    // The final canonical chain, walked on node 0 (the heads agree).
    let head = net.nodes[0].height();
    let mut on_chain: HashMap<String, (u64, TxView)> = HashMap::new();
    let mut duplicates = Vec::new();
    let mut chain_txs = 0;
    for height in 1..=head {
        let block = net.nodes[0].block(height).expect("a canonical block");
        for tx in block.txs {
            chain_txs += 1;
            if let Some((first, _)) = on_chain.get(&tx.id) {
                duplicates.push((tx.id.clone(), *first, height));
            }
            on_chain.insert(tx.id.clone(), (height, tx));
        }
    }
    let mut missing = Vec::new();
    let mut accepted_ids = Vec::new();
    let mut signed = 0;
    let mut landed_unanswered = 0;
    for sender in &senders {
        signed += sender.txs.len();
        for (tx, accepted) in sender.txs.iter().zip(&sender.accepted) {
            let id = tx.id().to_hex();
            match (accepted, on_chain.contains_key(&id)) {
                (true, true) => accepted_ids.push(id),
                (true, false) => missing.push(id),
                (false, true) => landed_unanswered += 1,
                (false, false) => {}
            }
        }
    }
    // Every node's transaction index agrees with the walk (every 7th, to stay quick).
    let mut index_wrong = Vec::new();
    for id in accepted_ids.iter().step_by(7) {
        let height = on_chain[id].0;
        for (client, node) in clients.iter().zip(&net.nodes) {
            match client.tx_status(id).map(|s| s.state) {
                Ok(TxState::Included { height: h, .. }) if h == height => {}
                other => index_wrong.push((node.name.clone(), id.clone(), format!("{other:?}"))),
            }
        }
    }

    let kill_list: Vec<String> = kills
        .iter()
        .map(|(v, at)| format!("{} at {:.0}s", net.nodes[*v].name, at.as_secs_f64()))
        .collect();
    println!("soak: {duration:?} of load at {RATE} tx/s from {SENDERS} senders, a kill every {kill_every:?}");
    println!("  load ran {load_secs:.1} s; chain {start_height} -> {head} ({chain_txs} transactions on it)");
    println!(
        "  transactions signed {signed}, POST /txs {} (accepted {}, unreachable or 503 {}, refused {:?}), \
         skipped ticks {}",
        tally.posts, tally.accepted, tally.unreachable, tally.refused, tally.skipped
    );
    println!(
        "  accepted {} distinct, included {}, missing {}, duplicates {}, included without an accepted answer {}",
        accepted_ids.len() + missing.len(),
        accepted_ids.len(),
        missing.len(),
        duplicates.len(),
        landed_unanswered
    );
    println!(
        "  given again after a nonce-gap refusal {}, lost by every node and submitted again {}",
        tally.regapped, resubmitted
    );
    println!(
        "  kills (SIGKILL, restart {DOWN:?} later): {}",
        kill_list.join(", ")
    );
    println!(
        "  heads agree at height {head}: {}",
        net.nodes[0].head().unwrap_or_default()
    );
    for (m, node) in memory.iter().zip(&net.nodes) {
        println!("  RSS {}: {}", node.name, m.summary());
    }
    let (middle, last) = memory[0].thirds();
    println!(
        "  RSS {}: highest {middle} KiB in the middle third of the run, {last} KiB in the last",
        net.nodes[0].name
    );

    assert!(
        kills.len() >= 2 || duration < kill_every * 3,
        "only {} kills",
        kills.len()
    );
    assert!(duplicates.is_empty(), "included twice: {duplicates:?}");
    assert!(missing.is_empty(), "accepted but not on the chain: {missing:?}");
    assert!(
        index_wrong.is_empty(),
        "GET /txs/{{id}} disagrees with the chain: {index_wrong:?}"
    );
    assert!(
        !accepted_ids.is_empty() && tally.accepted as f64 >= 0.25 * (RATE as f64 * load_secs),
        "too little was accepted for a soak: {tally:?}"
    );
    // Node 0 runs throughout: under a steady load its memory levels off
    // after the first third of the run (a leak of even a few bytes per
    // transaction would not).
    let (middle, last) = memory[0].thirds();
    assert!(
        last <= middle + middle / 2 + 64 * 1024,
        "node 0's RSS kept growing: at most {middle} KiB in the middle third, {last} KiB in the last: {}",
        memory[0].summary()
    );
    for (m, node) in memory.iter().zip(&net.nodes) {
        assert!(
            m.max() < RSS_CEILING_KIB,
            "{}'s RSS reached {} KiB: {}",
            node.name,
            m.max(),
            m.summary()
        );
    }
}
