//! `klero testnet`: start, watch and stop a local multi-node testnet.

use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use klero_chain::Keypair;

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

use crate::keyfile;
use crate::node::{ADDRESSES_FILE, Addresses};
use crate::testnet::genesis::{self, Consensus, Plan};
use crate::testnet::{NodeEntry, State, ensure_stopped, process, render_table, view};

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
    Up(UpArgs),
    /// Each node's height, head and peers.
    Status {
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
    /// Stop a node cleanly and start it again.
    Restart {
        /// The node.
        node: String,
    },
    /// Start one more node with a key of your own.
    Add {
        /// The key file (`klero wallet export > me.key` writes one).
        #[arg(long)]
        key: PathBuf,
        /// Propose blocks (PoS: needs bonded stake; PoW: mines).
        #[arg(long)]
        produce: bool,
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
    /// How many nodes.
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    /// Which lottery.
    #[arg(long, value_enum, default_value_t = Consensus::Pos)]
    consensus: Consensus,
    /// First port: node i listens on BASE+i (p2p) and BASE+100+i (HTTP API);
    /// 0 lets the OS choose every port (the table shows them).
    #[arg(long, default_value_t = 30400)]
    base_port: u16,
    /// Stake (PoS) or hashrate (PoW) weight of each node, e.g. 1,1,2,4.
    #[arg(long, value_delimiter = ',')]
    weights: Vec<u64>,
    /// Slot length (PoS) or target block time (PoW), in seconds. Default 1 (PoS), 2 (PoW).
    #[arg(long)]
    block_time: Option<f64>,
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
            TestnetCommand::Up(args) => up(&dir, args),
            TestnetCommand::Status { json } => {
                let state = State::load(&dir)?;
                let views = view(&state);
                if json {
                    println!("{}", serde_json::to_string_pretty(&views)?);
                } else {
                    print!("{}", render_table(state.consensus, &views));
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
                println!("restarted {node}");
                Ok(())
            }
            TestnetCommand::Add { key, produce } => add(&dir, &key, produce),
            TestnetCommand::Down { clean } => down(&dir, clean),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn port_free(port: u16) -> Result<()> {
    TcpListener::bind(("127.0.0.1", port))
        .map(drop)
        .with_context(|| format!("port {port} on 127.0.0.1 is in use; choose another --base-port"))
}

fn up(dir: &Path, args: UpArgs) -> Result<()> {
    if args.nodes == 0 || args.nodes > 64 {
        bail!("--nodes must be between 1 and 64");
    }
    let weights = if args.weights.is_empty() {
        vec![1; args.nodes]
    } else if args.weights.len() == args.nodes && args.weights.iter().all(|w| *w > 0) {
        args.weights.clone()
    } else {
        bail!("--weights needs {} positive numbers, one per node", args.nodes);
    };
    let block_s = args.block_time.unwrap_or(match args.consensus {
        Consensus::Pos => 1.0,
        Consensus::Pow => 2.0,
    });
    if !(0.1..=600.0).contains(&block_s) {
        bail!("--block-time must be between 0.1 and 600 seconds");
    }
    ensure_stopped(dir)?;
    if dir.join(crate::testnet::STATE_FILE).exists() {
        bail!(
            "{} holds a stopped testnet; `klero testnet down --clean --dir {0}` removes it, or use another --dir",
            dir.display()
        );
    }
    let ports: Vec<(u16, u16)> = (0..args.nodes as u16)
        .map(|i| ports_of(args.base_port, i))
        .collect::<Result<_>>()?;

    let keys_dir = dir.join("keys");
    std::fs::create_dir_all(&keys_dir).with_context(|| format!("creating {}", keys_dir.display()))?;
    let faucet = keyfile::generate()?;
    let faucet_key = keys_dir.join("faucet.key");
    keyfile::write(&faucet_key, &faucet)?;
    let node_keys: Vec<Keypair> = (0..args.nodes)
        .map(|_| keyfile::generate())
        .collect::<Result<_, _>>()?;
    let plan = Plan {
        consensus: args.consensus,
        weights: weights.clone(),
        block_ms: (block_s * 1000.0).round() as u64,
        genesis_time_ms: now_ms() + 2_000,
    };
    let chain_spec = genesis::chain_spec(&plan, &node_keys, &faucet);
    let toml = genesis::spec_toml(&chain_spec)?;
    genesis::check(&toml, &chain_spec).context("the generated spec is invalid (a bug)")?;
    let spec = dir.join("spec.toml");
    std::fs::write(&spec, toml).with_context(|| format!("writing {}", spec.display()))?;

    let mut state = State {
        consensus: args.consensus,
        spec: spec.clone(),
        faucet_key: faucet_key.clone(),
        base_port: args.base_port,
        nodes: Vec::new(),
    };
    // One after the other: node0's address, read back, is everyone's bootnode.
    for (i, (key, (p2p, rpc))) in node_keys.iter().zip(&ports).enumerate() {
        let name = format!("node{i}");
        let key_file = keys_dir.join(format!("{name}.key"));
        keyfile::write(&key_file, key)?;
        let bootnode = state.nodes.first().map(|n| n.p2p.clone());
        let mut entry = node_entry(
            dir,
            &state,
            &name,
            *p2p,
            *rpc,
            Some(&key_file),
            true,
            bootnode.as_deref(),
        )?;
        entry.weight = weights[i];
        if args.consensus == Consensus::Pow {
            entry.args.extend([
                "--hashrate-cap".to_owned(),
                genesis::hashrate_cap(weights[i]).to_string(),
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

    println!(
        "klero {} testnet in {}",
        consensus_name(args.consensus),
        dir.display()
    );
    println!("  spec      {}", spec.display());
    println!("  faucet    {}  key {}", faucet.address(), faucet_key.display());
    for (entry, key) in state.nodes.iter().zip(&node_keys) {
        println!(
            "  {:<8}  {}  key {}  api {}",
            entry.name,
            key.address(),
            entry
                .key
                .as_deref()
                .map(Path::display)
                .map(|d| d.to_string())
                .unwrap_or_default(),
            entry.api
        );
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
#[allow(clippy::too_many_arguments)]
fn node_entry(
    dir: &Path,
    state: &State,
    name: &str,
    p2p: u16,
    rpc: u16,
    key: Option<&Path>,
    produce: bool,
    bootnode: Option<&str>,
) -> Result<NodeEntry> {
    let data_dir = dir.join(name);
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
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
        p2p: format!("/ip4/127.0.0.1/tcp/{p2p}/p2p/{peer_id}"),
        key: key.map(Path::to_path_buf),
        data_dir,
        args,
        weight: 0,
    })
}

/// Node `index`'s p2p and API ports: `base + index` and `base + 100 +
/// index`, checked free; with base 0, zeros for the OS to choose.
fn ports_of(base: u16, index: u16) -> Result<(u16, u16)> {
    if base == 0 {
        return Ok((0, 0));
    }
    let p2p = base.checked_add(index).context("--base-port too high")?;
    let rpc = base.checked_add(100 + index).context("--base-port too high")?;
    port_free(p2p)?;
    port_free(rpc)?;
    Ok((p2p, rpc))
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
    runtime.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_secs(if interactive { 1 } else { 5 }));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = tick.tick() => {
                    let s = snapshot.clone();
                    let views = tokio::task::spawn_blocking(move || view(&s)).await.unwrap_or_default();
                    let table = render_table(consensus, &views);
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

fn add(dir: &Path, key: &Path, produce: bool) -> Result<()> {
    let keypair = keyfile::read(key)?;
    let mut state = State::load(dir)?;
    let index = state.nodes.len();
    let name = format!("node{index}");
    let bootnode = state
        .nodes
        .first()
        .context("the testnet has no nodes")?
        .p2p
        .clone();
    let index = u16::try_from(index).context("too many nodes")?;
    let (p2p, rpc) = ports_of(state.base_port, index)?;
    let key = std::path::absolute(key).unwrap_or_else(|_| key.to_path_buf());
    let mut entry = node_entry(dir, &state, &name, p2p, rpc, Some(&key), produce, Some(&bootnode))?;
    let started = start(&mut entry);
    let api = entry.api.clone();
    state.nodes.push(entry);
    state.save(dir)?;
    started?;
    println!("started {name} for {} at {api}", keypair.address());
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
