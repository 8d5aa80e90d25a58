//! `klero testnet`: start, watch, break and stop a local multi-node testnet.

use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

use crate::api::chaos::LinkFaults;
use crate::keyfile;
use crate::node::{ADDRESSES_FILE, Addresses};
use crate::testnet::chaos::{self, Pushed};
use crate::testnet::fairness::{self, ChainWalk};
use crate::testnet::genesis::{self, Consensus, Overrides};
use crate::testnet::keys::KeySource;
use crate::testnet::members::{self, Chain, GenesisTime, Request};
use crate::testnet::strategy::Strategy;
use crate::testnet::{NodeEntry, State, ensure_stopped, ports, process, render_table, view, with_fairness};

/// `klero testnet …`
#[derive(Debug, Args)]
pub struct TestnetArgs {
    /// The testnet's directory.
    #[arg(long, global = true, default_value = "klero-testnet")]
    dir: PathBuf,
    #[command(subcommand)]
    command: TestnetCommand,
}

#[derive(Debug, Subcommand)]
enum TestnetCommand {
    /// Write a spec and keys, start the nodes, and show a live table until Ctrl-C.
    Up(Box<UpArgs>),
    /// Each node's height, head, peers, blocks won and orphaned, faults, and its share of the chain.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Each node's share of the canonical chain against its weight, with
    /// 95% intervals, orphans and a chi-square test (walked on the chain).
    Fairness {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a node's log.
    Logs {
        /// The node (node0, node1, …).
        node: String,
        /// Keep printing new lines.
        #[arg(short, long)]
        follow: bool,
    },
    /// SIGKILL a node (to test crash recovery).
    Kill {
        /// The node.
        node: String,
    },
    /// Stop a node cleanly and start it again (its faults stay).
    Restart {
        /// The node.
        node: String,
    },
    /// Start one more node with a key of your own.
    Add {
        /// The key file (`klero wallet export > me.key` writes one);
        /// without it a new key is written to DIR/keys/nodeN.key.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Propose blocks (PoS: needs bonded stake; PoW: mines).
        #[arg(long)]
        produce: bool,
        /// PoW: hashrate weight (the miner is capped like `up --weights`).
        #[arg(long)]
        weight: Option<u64>,
        /// Run an attack for real: selfish (PoW selfish mining) or
        /// withhold (PoS late publication); implies --produce.
        #[arg(long, value_enum)]
        strategy: Option<Strategy>,
    },
    /// Slot battles of a running PoS testnet over the next SLOTS slots:
    /// slot fill, blocks produced per canonical block, head reorgs, gossip
    /// latency and publication delay.
    Measure {
        /// How many slots to measure over.
        #[arg(long, default_value_t = 300)]
        slots: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Split the nodes into groups that cannot reach each other.
    ///
    /// `partition node0,node1 node2,node3`: the nodes not named form one
    /// more group. Replaces any partition before; `heal` ends it.
    Partition {
        /// Comma-separated node names, one group per argument.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// End the partition: every node may reach every other again.
    Heal,
    /// Delay everything NODE sends and receives over gossip and sync.
    Delay {
        /// The node.
        node: String,
        /// The delay in each direction: 200ms, 1.5s (0ms removes it).
        delay: String,
        /// Each message's delay is drawn from DELAY ± JITTER.
        #[arg(long, default_value = "0ms")]
        jitter: String,
    },
    /// Lose a share of what NODE sends and receives over gossip and sync.
    Loss {
        /// The node.
        node: String,
        /// The share lost in each direction: 10%, 0.5% (0% removes it).
        percent: String,
    },
    /// Remove every fault of NODE, its place in the partition included.
    ///
    /// Its delay, jitter and loss go, and it reaches every node again.
    Clear {
        /// The node.
        node: String,
    },
    /// Freeze a node (SIGSTOP): it keeps its connections and answers nothing.
    Pause {
        /// The node.
        node: String,
    },
    /// Let a paused node run again (SIGCONT).
    Resume {
        /// The node.
        node: String,
    },
    /// Stop every node; the data stays unless --clean.
    Down {
        /// Also delete the directory.
        #[arg(long)]
        clean: bool,
    },
}

#[derive(Debug, Args)]
struct UpArgs {
    /// How many nodes. Default: 4; with --spec, one per staker whose key
    /// the launcher holds (PoS).
    #[arg(long)]
    nodes: Option<usize>,
    /// Which lottery.
    #[arg(long, value_enum, default_value_t = Consensus::Pos, conflicts_with = "spec")]
    consensus: Consensus,
    /// Run this chain spec instead of a generated one (its rules and
    /// accounts; a fresh genesis time unless `--genesis-time spec`). Nodes
    /// stake with the keys the launcher holds: development keys by account
    /// name (testnet/pos.toml's alice…dave) or, with --seed, the seeded ones.
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Derive every key (faucet, nodes, network identities) from this seed:
    /// the same seed gives the same addresses and peer ids every time, and
    /// with the same --genesis-time the same genesis.
    #[arg(long)]
    seed: Option<String>,
    /// Genesis time: Unix milliseconds, `now` (now + 2 s, the default) or
    /// `spec` (the --spec file's own). `up` prints the one it used.
    #[arg(long)]
    genesis_time: Option<String>,
    /// First port: node i listens on BASE+i (p2p) and BASE+100+i (HTTP API);
    /// 0 lets the OS choose every port (the table shows them). Default:
    /// 30400, or the next free range if that one is taken.
    #[arg(long)]
    base_port: Option<u16>,
    /// Stake (PoS) or hashrate (PoW) weight of each node, e.g. 1,1,2,4.
    #[arg(long, value_delimiter = ',')]
    weights: Vec<u64>,
    /// Slot length (PoS) or target block time (PoW), in seconds. Default 1 (PoS), 2 (PoW).
    #[arg(long)]
    block_time: Option<f64>,
    /// Slots per epoch (PoS: pos.epoch_slots).
    #[arg(long)]
    epoch_slots: Option<u64>,
    /// The leader threshold c (PoS: pos.leader_c_milli = c × 1000): a slot has
    /// a leader with probability 1 - e^-c.
    #[arg(long = "c")]
    c: Option<f64>,
    /// The deepest reorganisation a node accepts, in blocks (PoS: pos.max_rollback).
    #[arg(long)]
    rollback: Option<u64>,
    /// The ASERT half-life in block intervals (PoW: pow.half_life_blocks).
    #[arg(long)]
    half_life: Option<u64>,
    /// The first target, 64 hex digits big-endian (PoW: pow.initial_target;
    /// pow.pow_limit follows, 256 times easier).
    #[arg(long)]
    initial_target: Option<String>,
    /// Return once the nodes answer, leaving them running.
    #[arg(long)]
    detach: bool,
}

impl TestnetArgs {
    /// Runs the command.
    ///
    /// # Errors
    ///
    /// Bad options, busy ports, an unknown node, or a testnet in the wrong state.
    pub fn execute(self) -> Result<()> {
        let dir = self.dir;
        match self.command {
            TestnetCommand::Up(args) => up(&dir, *args),
            TestnetCommand::Status { json } => {
                let state = State::load(&dir)?;
                let mut views = view(&state);
                let fairness = with_fairness(&state, &mut views, &mut ChainWalk::default());
                if json {
                    println!("{}", serde_json::to_string_pretty(&views)?);
                } else {
                    print!("{}", render_table(state.consensus, &views));
                    match fairness {
                        Ok(report) => print!("\n{}", fairness::render(state.consensus, &report)),
                        Err(error) => println!("\nfairness: {error:#}"),
                    }
                }
                Ok(())
            }
            TestnetCommand::Fairness { json } => {
                let state = State::load(&dir)?;
                let report = fairness::measure(&state, &mut ChainWalk::default(), true)?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    print!("{}", fairness::render(state.consensus, &report));
                }
                Ok(())
            }
            TestnetCommand::Logs { node, follow } => {
                let mut state = State::load(&dir)?;
                let log = state.node_mut(&node)?.data_dir.join("node.log");
                print_log(&log, follow)
            }
            TestnetCommand::Kill { node } => {
                let mut state = State::load(&dir)?;
                let entry = state.node_mut(&node)?;
                match entry.pid.take() {
                    Some(pid) if process::alive(pid) => process::signal(pid, "KILL"),
                    _ => bail!("{node} is not running"),
                }
                state.save(&dir)?;
                println!("killed {node} (SIGKILL); `klero testnet restart {node}` starts it again");
                Ok(())
            }
            TestnetCommand::Restart { node } => {
                let mut state = State::load(&dir)?;
                let entry = state.node_mut(&node)?;
                if let Some(pid) = entry.pid.take() {
                    process::stop(pid);
                }
                let started = start(entry);
                state.save(&dir)?;
                started?;
                push(&state, &node)?;
                println!("restarted {node}");
                Ok(())
            }
            TestnetCommand::Add {
                key,
                produce,
                weight,
                strategy,
            } => add(&dir, key.as_deref(), produce, weight, strategy),
            TestnetCommand::Measure { slots, json } => {
                let report = crate::testnet::measure::measure(&State::load(&dir)?, slots)?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    print!("{report}");
                }
                Ok(())
            }
            TestnetCommand::Partition { groups } => partition(&dir, &groups),
            TestnetCommand::Heal => heal(&dir),
            TestnetCommand::Delay { node, delay, jitter } => {
                let (delay_ms, jitter_ms) = (chaos::parse_ms(&delay)?, chaos::parse_ms(&jitter)?);
                set_link(&dir, &node, |link| {
                    link.delay_ms = delay_ms;
                    link.jitter_ms = jitter_ms;
                })
            }
            TestnetCommand::Loss { node, percent } => {
                let loss_ppm = chaos::parse_percent(&percent)?;
                set_link(&dir, &node, |link| link.loss_ppm = loss_ppm)
            }
            TestnetCommand::Clear { node } => clear(&dir, &node),
            TestnetCommand::Pause { node } => pause(&dir, &node, true),
            TestnetCommand::Resume { node } => pause(&dir, &node, false),
            TestnetCommand::Down { clean } => down(&dir, clean),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The command line's chain request.
fn request(args: &UpArgs) -> Result<Request> {
    let block_ms = match args.block_time {
        Some(s) if (0.1..=600.0).contains(&s) => Some((s * 1000.0).round() as u64),
        Some(_) => bail!("--block-time must be between 0.1 and 600 seconds"),
        None => None,
    };
    let c_milli = match args.c {
        Some(c) if (0.0..1e9).contains(&c) => Some((c * 1000.0).round() as u64),
        Some(c) => bail!("--c {c} is not a number between 0.001 and 20"),
        None => None,
    };
    let initial_target = match &args.initial_target {
        Some(text) => {
            let mut target = [0u8; 32];
            hex::decode_to_slice(text, &mut target)
                .with_context(|| format!("--initial-target {text:?} is not 64 hex digits"))?;
            Some(target)
        }
        None => None,
    };
    let genesis_time =
        match args.genesis_time.as_deref() {
            None | Some("now") => GenesisTime::Now,
            Some("spec") => GenesisTime::Spec,
            Some(text) => GenesisTime::At(text.parse().with_context(|| {
                format!("--genesis-time {text:?} is not Unix milliseconds, `now` or `spec`")
            })?),
        };
    Ok(Request {
        consensus: args.consensus,
        spec: args.spec.as_deref().map(super::spec::load).transpose()?,
        nodes: args.nodes,
        weights: args.weights.clone(),
        genesis_time,
        overrides: Overrides {
            block_ms,
            epoch_slots: args.epoch_slots,
            c_milli,
            rollback: args.rollback,
            half_life: args.half_life,
            initial_target,
        },
    })
}

fn up(dir: &Path, args: UpArgs) -> Result<()> {
    let keys = KeySource {
        seed: args.seed.clone(),
    };
    let Chain {
        spec: chain_spec,
        consensus,
        faucet,
        members,
    } = members::build(request(&args)?, &keys, now_ms())?;
    ensure_stopped(dir)?;
    if dir.join(crate::testnet::STATE_FILE).exists() {
        bail!(
            "{} holds a stopped testnet; `klero testnet down --clean --dir {0}` removes it, or use another --dir",
            dir.display()
        );
    }
    let count = u16::try_from(members.len()).context("too many nodes")?;
    let (base_port, port_note) = ports::choose(args.base_port, count)?;
    if let Some(note) = &port_note {
        println!("{note}");
    }

    let keys_dir = dir.join("keys");
    std::fs::create_dir_all(&keys_dir).with_context(|| format!("creating {}", keys_dir.display()))?;
    let faucet_key = match &faucet {
        Some(key) => {
            let path = keys_dir.join("faucet.key");
            keyfile::write(&path, key)?;
            Some(path)
        }
        None => None,
    };
    let toml = genesis::spec_toml(&chain_spec)?;
    genesis::check(&toml, &chain_spec).context("the generated spec is invalid (a bug)")?;
    let spec = dir.join("spec.toml");
    std::fs::write(&spec, toml).with_context(|| format!("writing {}", spec.display()))?;

    let mut state = State {
        consensus,
        spec: spec.clone(),
        faucet_key: faucet_key.clone(),
        base_port,
        keys,
        partition: Vec::new(),
        nodes: Vec::new(),
    };
    // One after the other: node0's address, read back, is everyone's bootnode.
    for (i, member) in members.iter().enumerate() {
        let (p2p, rpc) = ports::of(base_port, i as u16)?;
        let key_file = match &member.key {
            Some((file, key)) => {
                let path = keys_dir.join(format!("{file}.key"));
                keyfile::write(&path, key)?;
                Some(path)
            }
            None => None,
        };
        let bootnode = state.nodes.first().map(|n| n.p2p.clone());
        let mut entry = node_entry(
            dir,
            &state,
            &member.name,
            (p2p, rpc),
            key_file.as_deref(),
            member.produce,
            bootnode.as_deref(),
        )?;
        entry.weight = member.weight;
        if consensus == Consensus::Pow && member.produce {
            entry.args.extend([
                "--hashrate-cap".to_owned(),
                genesis::hashrate_cap(member.weight).to_string(),
            ]);
        }
        let started = start(&mut entry);
        state.nodes.push(entry);
        if let Err(error) = started {
            stop_all(dir, &mut state)?;
            return Err(error.context(format!("see the logs in {}/node*/node.log", dir.display())));
        }
    }
    state.save(dir)?;

    println!("klero {} testnet in {}", consensus_name(consensus), dir.display());
    println!(
        "  chain     {}  genesis {}  time {}",
        chain_spec.chain_id,
        chain_spec.genesis().0.id(),
        chain_spec.genesis_time_ms
    );
    println!("  spec      {}", spec.display());
    if let Some(seed) = &state.keys.seed {
        println!(
            "  seed      {seed:?}: the same keys every time; the same genesis with --genesis-time {}",
            chain_spec.genesis_time_ms
        );
    }
    match (&faucet, &faucet_key) {
        (Some(key), Some(path)) => println!("  faucet    {}  key {}", key.address(), path.display()),
        _ => {
            println!("  faucet    none: the spec has no account named `faucet` whose key the launcher holds")
        }
    }
    for (entry, member) in state.nodes.iter().zip(&members) {
        let address = member.key.as_ref().map_or_else(
            || "(follower, no key)".to_owned(),
            |(_, k)| k.address().to_string(),
        );
        let peer = chaos::peer_id(entry).unwrap_or_default();
        println!("  {:<8}  {address}  api {}  peer {peer}", entry.name, entry.api);
        if let Some(key) = &entry.key {
            println!("            key {}", key.display());
        }
    }
    let explorer = explorer_url(&state);
    println!("  explorer  {explorer}");
    if args.detach {
        println!(
            "running; `klero testnet status --dir {0}`, `klero testnet down --dir {0}`",
            dir.display()
        );
        return Ok(());
    }
    watch(dir, &mut state)
}

/// node0's block explorer page (served on its API address).
fn explorer_url(state: &State) -> String {
    state
        .nodes
        .first()
        .map(|node| format!("{}/", node.api.trim_end_matches('/')))
        .unwrap_or_default()
}

/// The entry (and arguments) for a node; `produce` adds --stake or --mine.
/// Every node runs with `--chaos`. With `--seed` its network identity is
/// the seeded one.
fn node_entry(
    dir: &Path,
    state: &State,
    name: &str,
    (p2p, rpc): (u16, u16),
    key: Option<&Path>,
    produce: bool,
    bootnode: Option<&str>,
) -> Result<NodeEntry> {
    let data_dir = dir.join(name);
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let identity_file = data_dir.join("p2p.key");
    if let Some(seed) = state.keys.identity(name)
        && !identity_file.exists()
    {
        keyfile::write_seed(&identity_file, &seed)?;
    }
    let identity =
        crate::p2p::load_or_create_identity(&data_dir).context("creating the node's network identity")?;
    let peer_id = identity.public().to_peer_id();
    let mut args: Vec<String> = [
        "node",
        "--spec",
        &state.spec.display().to_string(),
        "--data-dir",
        &data_dir.display().to_string(),
        "--listen",
        &format!("/ip4/127.0.0.1/tcp/{p2p}"),
        "--rpc",
        &format!("127.0.0.1:{rpc}"),
        "--chaos",
    ]
    .map(str::to_owned)
    .to_vec();
    if let Some(key) = key {
        args.extend(["--key".to_owned(), key.display().to_string()]);
        if produce {
            args.push(
                match state.consensus {
                    Consensus::Pos => "--stake",
                    Consensus::Pow => "--mine",
                }
                .to_owned(),
            );
        }
    }
    if let Some(bootnode) = bootnode {
        args.extend(["--bootnode".to_owned(), bootnode.to_owned()]);
    }
    Ok(NodeEntry {
        name: name.to_owned(),
        pid: None,
        api: format!("http://127.0.0.1:{rpc}"),
        admin: None,
        p2p: format!("/ip4/127.0.0.1/tcp/{p2p}/p2p/{peer_id}"),
        key: key.map(Path::to_path_buf),
        data_dir,
        args,
        weight: 0,
        link: LinkFaults {
            seed: state.keys.link_seed(name),
            ..LinkFaults::default()
        },
        strategy: None,
    })
}

/// Starts a node and reads back where it listens (its `addresses.json`),
/// then pins those ports in its arguments so a restart keeps its addresses.
fn start(entry: &mut NodeEntry) -> Result<()> {
    let _ = std::fs::remove_file(entry.data_dir.join(ADDRESSES_FILE));
    let pid = process::spawn(&entry.args, &entry.data_dir.join("node.log"))?;
    entry.pid = Some(pid);
    let deadline = Instant::now() + Duration::from_secs(30);
    let addresses = loop {
        match Addresses::read(&entry.data_dir) {
            Ok(addresses) => break addresses,
            Err(_) if Instant::now() < deadline && process::alive(pid) => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(error) => bail!("{} did not come up within 30 s: {error:#}", entry.name),
        }
    };
    let p2p = addresses.p2p.first().context("the node reports no p2p address")?;
    let mut listen: Multiaddr = p2p.parse().context("the node's p2p address")?;
    if let Some(Protocol::P2p(_)) = listen.iter().last() {
        listen.pop();
    }
    set_flag(&mut entry.args, "--rpc", addresses.api.to_string());
    set_flag(&mut entry.args, "--listen", listen.to_string());
    entry.api = format!("http://{}", addresses.api);
    entry.admin = addresses.admin.map(|a| format!("http://{a}"));
    entry.p2p = p2p.clone();
    Ok(())
}

/// Sets the value that follows `flag` in `args`.
fn set_flag(args: &mut [String], flag: &str, value: String) {
    if let Some(i) = args.iter().position(|a| a == flag)
        && let Some(slot) = args.get_mut(i + 1)
    {
        *slot = value;
    }
}

fn consensus_name(consensus: Consensus) -> &'static str {
    match consensus {
        Consensus::Pos => "proof-of-stake",
        Consensus::Pow => "proof-of-work",
    }
}

/// The live table, until Ctrl-C; then stops every node.
fn watch(dir: &Path, state: &mut State) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let interactive = std::io::stdout().is_terminal();
    let consensus = state.consensus;
    let explorer = explorer_url(state);
    let snapshot = state.clone();
    let walk = std::sync::Arc::new(std::sync::Mutex::new(ChainWalk::default()));
    runtime.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_secs(if interactive { 1 } else { 5 }));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = tick.tick() => {
                    let (s, walk) = (snapshot.clone(), std::sync::Arc::clone(&walk));
                    let table = tokio::task::spawn_blocking(move || {
                        let mut views = view(&s);
                        let mut walk = walk.lock().unwrap_or_else(|e| e.into_inner());
                        let fairness = with_fairness(&s, &mut views, &mut walk)
                            .map(|f| fairness::render(consensus, &f))
                            .unwrap_or_default();
                        format!("{}\n{fairness}", render_table(consensus, &views))
                    })
                    .await
                    .unwrap_or_default();
                    let mut out = std::io::stdout().lock();
                    if interactive {
                        let _ = write!(out, "\x1b[2J\x1b[H{table}\nexplorer {explorer} · Ctrl-C stops the testnet\n");
                    } else {
                        let _ = writeln!(out, "{table}");
                    }
                    let _ = out.flush();
                }
            }
        }
    });
    println!("\nstopping…");
    stop_all(dir, state)
}

fn stop_all(dir: &Path, state: &mut State) -> Result<()> {
    for node in &mut state.nodes {
        if let Some(pid) = node.pid.take() {
            let clean = process::stop(pid);
            println!(
                "  {:<8} {}",
                node.name,
                if clean { "stopped" } else { "killed after timeout" }
            );
        }
    }
    state.save(dir)?;
    println!("data kept in {}", dir.display());
    Ok(())
}

fn down(dir: &Path, clean: bool) -> Result<()> {
    let mut state = State::load(dir)?;
    stop_all(dir, &mut state)?;
    if clean {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        println!("removed {}", dir.display());
    }
    Ok(())
}

fn add(
    dir: &Path,
    key: Option<&Path>,
    produce: bool,
    weight: Option<u64>,
    strategy: Option<Strategy>,
) -> Result<()> {
    let mut state = State::load(dir)?;
    let index = state.nodes.len();
    let name = format!("node{index}");
    if let Some(strategy) = strategy {
        strategy
            .check(state.consensus == Consensus::Pow)
            .map_err(anyhow::Error::msg)?;
    }
    if weight.is_some() && state.consensus == Consensus::Pos {
        bail!("--weight is a hashrate weight (PoW); on a PoS testnet stake with the wallet");
    }
    let key = match key {
        Some(key) => std::path::absolute(key).unwrap_or_else(|_| key.to_path_buf()),
        None => {
            let path = std::path::absolute(dir.join("keys").join(format!("{name}.key")))?;
            keyfile::write(&path, &keyfile::generate()?)?;
            path
        }
    };
    let keypair = keyfile::read(&key)?;
    let bootnode = state
        .nodes
        .first()
        .context("the testnet has no nodes")?
        .p2p
        .clone();
    let index = u16::try_from(index).context("too many nodes")?;
    let ports = ports::free(state.base_port, index)?;
    let produce = produce || strategy.is_some();
    let mut entry = node_entry(dir, &state, &name, ports, Some(&key), produce, Some(&bootnode))?;
    if let Some(weight) = weight.filter(|w| *w > 0) {
        entry.weight = weight;
        entry.args.extend([
            "--hashrate-cap".to_owned(),
            genesis::hashrate_cap(weight).to_string(),
        ]);
    }
    if let Some(strategy) = strategy {
        // The launcher is the one place that starts an attacking node.
        entry.strategy = Some(strategy);
        entry.args.extend([
            "--strategy".to_owned(),
            strategy.name().to_owned(),
            "--i-know-this-is-an-attack".to_owned(),
        ]);
    }
    let started = start(&mut entry);
    let api = entry.api.clone();
    state.nodes.push(entry);
    state.save(dir)?;
    started?;
    push(&state, &name)?;
    println!(
        "started {name} for {} at {api}{}",
        keypair.address(),
        strategy.map_or_else(String::new, |s| format!(" (strategy {})", s.name()))
    );
    Ok(())
}

/// Tells one node the faults the state file asks of it, saying so when it
/// cannot be told now.
fn push(state: &State, name: &str) -> Result<()> {
    let node = state
        .nodes
        .iter()
        .find(|n| n.name == name)
        .with_context(|| format!("no node {name:?}"))?;
    match chaos::push(state, node)? {
        Pushed::Applied => {}
        Pushed::Stopped => println!("  {name} is not running: its faults apply when it starts"),
        Pushed::Paused => println!("  {name} is paused: its faults apply when it resumes"),
    }
    Ok(())
}

/// [`push`] to every node; one that fails does not stop the others.
fn push_all(state: &State) -> Result<()> {
    let mut failed = Vec::new();
    for node in &state.nodes {
        if let Err(error) = push(state, &node.name) {
            eprintln!("  {}: {error:#}", node.name);
            failed.push(node.name.as_str());
        }
    }
    if !failed.is_empty() {
        bail!("the faults could not be set on {}", failed.join(", "));
    }
    Ok(())
}

fn partition(dir: &Path, groups: &[String]) -> Result<()> {
    let mut state = State::load(dir)?;
    let names: Vec<String> = state.nodes.iter().map(|n| n.name.clone()).collect();
    state.partition = chaos::groups(&names, groups)?;
    state.save(dir)?;
    push_all(&state)?;
    let groups: Vec<String> = state.partition.iter().map(|g| g.join(",")).collect();
    println!("partitioned: {}", groups.join(" | "));
    Ok(())
}

fn heal(dir: &Path) -> Result<()> {
    let mut state = State::load(dir)?;
    state.partition.clear();
    state.save(dir)?;
    push_all(&state)?;
    println!("healed: the nodes redial each other now; `klero testnet status` shows the heads agree");
    Ok(())
}

/// Changes NODE's link faults with `change` and tells it.
fn set_link(dir: &Path, name: &str, change: impl FnOnce(&mut LinkFaults)) -> Result<()> {
    let mut state = State::load(dir)?;
    let entry = state.node_mut(name)?;
    let mut link = entry.link;
    change(&mut link);
    crate::p2p::check_link(&link)?;
    entry.link = link;
    state.save(dir)?;
    push(&state, name)?;
    let faults = chaos::describe(&link);
    if faults.is_empty() {
        println!("{name}: no link faults");
    } else {
        println!("{name}: {}", faults.join(", "));
    }
    Ok(())
}

fn clear(dir: &Path, name: &str) -> Result<()> {
    let mut state = State::load(dir)?;
    let entry = state.node_mut(name)?;
    entry.link = LinkFaults {
        seed: entry.link.seed,
        ..LinkFaults::default()
    };
    chaos::leave(&mut state.partition, name);
    state.save(dir)?;
    // Every node's block list may name it.
    push_all(&state)?;
    println!("{name}: no faults left");
    Ok(())
}

/// `pause` (SIGSTOP) or `resume` (SIGCONT, then the faults it may have
/// missed while paused).
fn pause(dir: &Path, name: &str, stop: bool) -> Result<()> {
    let mut state = State::load(dir)?;
    let entry = state.node_mut(name)?;
    let Some(pid) = entry.pid.filter(|p| process::alive(*p)) else {
        bail!("{name} is not running");
    };
    match (stop, process::paused(pid)) {
        (true, true) => println!("{name} is already paused"),
        (false, false) => println!("{name} is not paused"),
        (true, false) => {
            process::signal(pid, "STOP");
            println!("paused {name} (SIGSTOP): it holds its connections and answers nothing");
        }
        (false, true) => {
            process::signal(pid, "CONT");
            push(&state, name)?;
            println!("resumed {name} (SIGCONT)");
        }
    }
    Ok(())
}

fn print_log(log: &Path, follow: bool) -> Result<()> {
    let mut file = std::fs::File::open(log).with_context(|| format!("opening {}", log.display()))?;
    let mut out = std::io::stdout().lock();
    std::io::copy(&mut file, &mut out)?;
    if !follow {
        return Ok(());
    }
    // Until Ctrl-C, like `tail -f`.
    loop {
        let position = file.stream_position()?;
        let mut chunk = String::new();
        file.read_to_string(&mut chunk)?;
        if chunk.is_empty() {
            file.seek(SeekFrom::Start(position))?;
            std::thread::sleep(Duration::from_millis(300));
        } else {
            out.write_all(chunk.as_bytes())?;
            out.flush()?;
        }
    }
}
