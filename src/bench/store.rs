//! `klero bench store`: what the node's store costs as a chain grows.
//!
//! The command builds a PoW chain of `--blocks` blocks of
//! `--txs-per-block` real signed transfers over `--accounts` funded
//! genesis accounts (a share `--fresh-share` of the transfers pays an
//! address the chain has never seen, so the state grows), plus a competing
//! branch of 11 empty blocks from 10 below the tip. Building happens in
//! memory with the chain crate's own production code and is not measured.
//! Then a child process (so that its peak RSS is the importer's alone)
//! imports the blocks into a fresh data dir through the node's
//! `BlockTree`, as sync does: `--batch` blocks (64 by default, a sync
//! response) per `BlockTree::import_batch`, one store commit each; with
//! `--batch 1`, block by block through `BlockTree::import`, as gossip
//! does. It reports:
//!
//! - store bytes per block: the growth of `chain.redb` from genesis, and
//!   the growth of its live data (`Store::live_bytes`: keys, values and
//!   B-tree metadata, without the free pages redb keeps in the file);
//! - the import rate in blocks/s and transactions/s;
//! - the importer's peak RSS (`VmHWM`);
//! - restart time: closing the store, then `Store::open` + `BlockTree::load`;
//! - the time of the import that switches to the competing branch (a
//!   depth-10 reorg).
//!
//! `--max-store-mib` stops the import early when the store outgrows it (a
//! design that copies the state per block fills a disk at 100,000
//! accounts); the report then says how far it got.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use klero_chain::codec;
use klero_chain::spec::GenesisAccount;
use klero_chain::types::{TxBody, TxKind};
use klero_chain::{Address, Block, ChainSpec, Hash, Keypair, SealedBlock, Tx};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::chain_builder::{ChainBuilder, easy_pow_spec};
use crate::node::block_tree::{BlockTree, ImportOutcome};
use crate::node::store::{DB_FILE, Store};
use crate::p2p::MAX_SYNC_BLOCKS;

/// How far below the tip the competing branch forks.
const REORG_DEPTH: u64 = 10;
/// What every genesis account holds: enough for any run.
const GENESIS_BALANCE: u64 = 1 << 40;

/// `klero bench store`
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Funded genesis accounts (the senders).
    #[arg(long, default_value_t = 1_000)]
    accounts: usize,
    /// Blocks to build and import.
    #[arg(long, default_value_t = 1_000)]
    blocks: u64,
    /// Transfers per block.
    #[arg(long, default_value_t = 100)]
    txs_per_block: usize,
    /// Share of transfers that pay a fresh address (0 to 1).
    #[arg(long, default_value_t = 0.1)]
    fresh_share: f64,
    /// Blocks per import: a sync-sized batch ([`BlockTree::import_batch`],
    /// one store commit per batch, as a syncing node does), or 1 for the
    /// per-block path (`BlockTree::import`, one commit each).
    #[arg(long, default_value_t = MAX_SYNC_BLOCKS as usize)]
    batch: usize,
    /// Stop importing once the store is larger than this (MiB).
    #[arg(long, default_value_t = 4_096)]
    max_store_mib: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Internal: import the chain prepared in this dir and print the
    /// measurements as JSON (the parent runs this in a child process).
    #[arg(long, hide = true)]
    import_dir: Option<PathBuf>,
}

/// What the importing child measured.
#[derive(Debug, Serialize, Deserialize)]
struct Measured {
    /// Blocks imported (fewer than asked if the store limit stopped it).
    blocks: u64,
    /// Transactions in them.
    txs: u64,
    /// `chain.redb` right after genesis.
    genesis_bytes: u64,
    /// `chain.redb` after the import.
    store_bytes: u64,
    /// Live data right after genesis ([`Store::live_bytes`]).
    genesis_live_bytes: u64,
    /// Live data after the import.
    live_bytes: u64,
    /// Seconds the import took.
    import_secs: f64,
    /// The importer's peak resident set (kB).
    peak_rss_kb: u64,
    /// Closing and reopening the store (s).
    restart_secs: f64,
    /// The import that switched to the competing branch (s), if it ran.
    reorg_secs: Option<f64>,
    /// Whether the store limit stopped the import.
    stopped_by_store_limit: bool,
}

/// The report.
#[derive(Debug, Serialize)]
struct Report {
    accounts: usize,
    txs_per_block: usize,
    batch: usize,
    fresh_share: f64,
    blocks_asked: u64,
    #[serde(flatten)]
    measured: Measured,
    bytes_per_block: f64,
    live_bytes_per_block: f64,
    blocks_per_sec: f64,
    txs_per_sec: f64,
}

impl StoreArgs {
    /// Runs the benchmark (or, with `--import-dir`, its importing half).
    ///
    /// # Errors
    ///
    /// Bad arguments, or a failure while building or importing.
    pub(crate) fn execute(self) -> Result<()> {
        if let Some(dir) = &self.import_dir {
            let measured = import(dir, self.max_store_mib, self.batch)?;
            println!("{}", serde_json::to_string(&measured)?);
            return Ok(());
        }
        ensure!(
            self.accounts >= 1 && self.blocks > REORG_DEPTH && self.txs_per_block >= 1 && self.batch >= 1,
            "--accounts ≥ 1, --blocks > {REORG_DEPTH}, --txs-per-block ≥ 1 and --batch ≥ 1"
        );
        ensure!(
            (0.0..=1.0).contains(&self.fresh_share),
            "--fresh-share is a share: 0 to 1"
        );
        let dir = TempDir::new()?;
        build(&self, dir.path())?;
        eprintln!("importing in a child process…");
        let output = Command::new(std::env::current_exe().context("finding the klero binary")?)
            .args(["bench", "store", "--max-store-mib"])
            .arg(self.max_store_mib.to_string())
            .arg("--batch")
            .arg(self.batch.to_string())
            .arg("--import-dir")
            .arg(dir.path())
            .output()
            .context("running the importer")?;
        if !output.status.success() {
            bail!(
                "the importer failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let measured: Measured =
            serde_json::from_slice(&output.stdout).context("reading the importer's measurements")?;
        let secs = measured.import_secs.max(f64::MIN_POSITIVE);
        let report = Report {
            accounts: self.accounts,
            txs_per_block: self.txs_per_block,
            batch: self.batch,
            fresh_share: self.fresh_share,
            blocks_asked: self.blocks,
            bytes_per_block: measured.store_bytes.saturating_sub(measured.genesis_bytes) as f64
                / measured.blocks.max(1) as f64,
            live_bytes_per_block: measured.live_bytes.saturating_sub(measured.genesis_live_bytes) as f64
                / measured.blocks.max(1) as f64,
            blocks_per_sec: measured.blocks as f64 / secs,
            txs_per_sec: measured.txs as f64 / secs,
            measured,
        };
        if self.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print_report(&report);
        }
        Ok(())
    }
}

fn print_report(r: &Report) {
    let m = &r.measured;
    println!(
        "store bench: {} accounts, {} blocks of {} transfers ({:.0}% to fresh addresses), imported {} per commit",
        r.accounts,
        r.blocks_asked,
        r.txs_per_block,
        r.fresh_share * 100.0,
        r.batch
    );
    if m.stopped_by_store_limit {
        println!(
            "stopped after {} blocks: the store passed --max-store-mib",
            m.blocks
        );
    }
    println!("store at genesis     {:>12} bytes", m.genesis_bytes);
    println!("store after import   {:>12} bytes", m.store_bytes);
    println!("bytes per block      {:>12.0}  (file growth)", r.bytes_per_block);
    println!(
        "live bytes per block {:>12.0}  (live data: {} at genesis, {} after)",
        r.live_bytes_per_block, m.genesis_live_bytes, m.live_bytes
    );
    println!(
        "import               {:>12.1} blocks/s  {:.0} tx/s  ({:.1} s)",
        r.blocks_per_sec, r.txs_per_sec, m.import_secs
    );
    println!("peak RSS             {:>12} kB", m.peak_rss_kb);
    println!("restart              {:>12.3} s", m.restart_secs);
    match m.reorg_secs {
        Some(s) => println!("depth-{REORG_DEPTH} reorg       {s:>12.3} s"),
        None => println!("depth-{REORG_DEPTH} reorg       {:>12}", "not run"),
    }
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!("klero-bench-store-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn spec_path(dir: &Path) -> PathBuf {
    dir.join("spec.toml")
}

fn blocks_path(dir: &Path) -> PathBuf {
    dir.join("blocks.bin")
}

fn fork_path(dir: &Path) -> PathBuf {
    dir.join("fork.bin")
}

/// The bench chain: the builder's easy PoW rules with `accounts` funded
/// senders.
fn bench_spec(senders: &[Keypair]) -> ChainSpec {
    let mut spec = easy_pow_spec();
    spec.chain_id = "klero-bench-store".to_owned();
    spec.accounts = senders
        .iter()
        .map(|k| GenesisAccount {
            name: None,
            address: k.address(),
            balance: GENESIS_BALANCE,
            stake: 0,
            vrf_key: None,
        })
        .collect();
    spec
}

/// A deterministic 64-bit value for `(tag, i)`.
fn mix(tag: &[u8], i: u64) -> u64 {
    let h = Hash::of_parts(&[tag, &i.to_le_bytes()]);
    u64::from_le_bytes(h.0[..8].try_into().unwrap_or_default())
}

/// The `T` transfers of block `height` (1-based): senders round-robin over
/// the genesis accounts, each with its next nonce; recipients a fresh
/// address with probability `fresh_share`, else a genesis account.
fn block_txs(args: &StoreArgs, spec: &ChainSpec, senders: &[Keypair], height: u64) -> Vec<Tx> {
    let n = senders.len() as u64;
    let t = args.txs_per_block as u64;
    let threshold = (args.fresh_share * u64::MAX as f64) as u64;
    (0..t)
        .into_par_iter()
        .map(|j| {
            let k = (height - 1) * t + j;
            let sender = &senders[(k % n) as usize];
            let to = if mix(b"fresh", k) < threshold {
                Address(Hash::of_parts(&[b"klero/bench/fresh", &k.to_le_bytes()]).0)
            } else {
                senders[(mix(b"to", k) % n) as usize].address()
            };
            let body = TxBody {
                from: sender.address(),
                nonce: k / n,
                fee: 1,
                kind: TxKind::Transfer { to, amount: 1 },
            };
            Tx::sign(body, sender, &spec.chain_id)
        })
        .collect()
}

/// Builds the chain and the competing branch into `dir`.
fn build(args: &StoreArgs, dir: &Path) -> Result<()> {
    let started = Instant::now();
    let senders: Vec<Keypair> = (0..args.accounts)
        .into_par_iter()
        .map(|i| Keypair::dev(&format!("bench-{i}")))
        .collect();
    let spec = bench_spec(&senders);
    std::fs::write(spec_path(dir), spec.to_toml()?).context("writing the spec")?;
    let mut builder = ChainBuilder::genesis(&spec, Keypair::dev("bench-miner"));
    let bar = ProgressBar::new(args.blocks);
    bar.set_style(
        ProgressStyle::with_template("building {bar:40} {pos}/{len} blocks (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut out = BufWriter::new(File::create(blocks_path(dir))?);
    let mut fork_base = None;
    for height in 1..=args.blocks {
        let txs = block_txs(args, &spec, &senders, height);
        write_block(&mut out, builder.extend(&txs)?.block())?;
        if height == args.blocks - REORG_DEPTH {
            fork_base = Some(builder.fork(Keypair::dev("bench-rival")));
        }
        bar.inc(1);
    }
    out.flush()?;
    bar.finish_and_clear();
    let mut rival = fork_base.context("the chain is longer than the reorg depth")?;
    let mut out = BufWriter::new(File::create(fork_path(dir))?);
    for _ in 0..=REORG_DEPTH {
        write_block(&mut out, rival.extend(&[])?.block())?;
    }
    out.flush()?;
    eprintln!("built in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn write_block(out: &mut impl Write, block: &Block) -> Result<()> {
    let bytes = codec::encode(block);
    out.write_all(&u32::try_from(bytes.len())?.to_le_bytes())?;
    out.write_all(&bytes)?;
    Ok(())
}

/// Reads the blocks written by [`write_block`].
fn read_blocks(path: &Path) -> Result<impl Iterator<Item = Result<SealedBlock>> + use<>> {
    let mut input = BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
    Ok(std::iter::from_fn(move || {
        let mut len = [0u8; 4];
        match input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
            Err(e) => return Some(Err(e.into())),
        }
        let mut bytes = vec![0; u32::from_le_bytes(len) as usize];
        Some(
            input
                .read_exact(&mut bytes)
                .map_err(anyhow::Error::from)
                .and_then(|()| Ok(codec::decode_block(&bytes)?.seal())),
        )
    }))
}

/// The importing half: a fresh data dir, the blocks through
/// `BlockTree::import_batch` in batches of `batch` (or one by one through
/// `BlockTree::import` when `batch` is 1), then restart and reorg.
fn import(dir: &Path, max_store_mib: u64, batch: usize) -> Result<Measured> {
    let text = std::fs::read_to_string(spec_path(dir)).context("reading the bench spec")?;
    let spec = ChainSpec::from_toml(&text)?;
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let db_file = data.join(DB_FILE);
    let open = || -> Result<BlockTree> { Ok(BlockTree::load(spec.clone(), Store::open(&data, &spec)?)?) };
    let mut tree = open()?;
    let genesis_bytes = file_size(&db_file)?;
    let genesis_live_bytes = tree.store().live_bytes()?;
    let now = u64::MAX / 2;
    let (mut blocks, mut txs) = (0u64, 0u64);
    let mut stopped_by_store_limit = false;
    let mut input = read_blocks(&blocks_path(dir))?.peekable();
    let started = Instant::now();
    while input.peek().is_some() {
        let chunk = input.by_ref().take(batch).collect::<Result<Vec<_>>>()?;
        txs += chunk.iter().map(|b| b.block().txs.len() as u64).sum::<u64>();
        let outcomes = if batch == 1 {
            chunk
                .into_iter()
                .map(|block| tree.import(block, now))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            let result = tree.import_batch(&chunk, now);
            if let Some((index, error)) = result.failed {
                bail!("block {} failed: {error}", blocks + index as u64 + 1);
            }
            result.outcomes
        };
        for outcome in outcomes {
            blocks += 1;
            ensure!(
                matches!(outcome, ImportOutcome::NewHead { rolled_back: 0 }),
                "block {blocks} did not extend the chain: {outcome:?}"
            );
        }
        if file_size(&db_file)? > max_store_mib << 20 {
            stopped_by_store_limit = true;
            break;
        }
    }
    let import_secs = started.elapsed().as_secs_f64();
    let store_bytes = file_size(&db_file)?;
    let live_bytes = tree.store().live_bytes()?;
    drop(tree);
    let started = Instant::now();
    let mut tree = open()?;
    let restart_secs = started.elapsed().as_secs_f64();
    let reorg_secs = if stopped_by_store_limit {
        None
    } else {
        let mut last = Duration::ZERO;
        let mut outcome = ImportOutcome::Known;
        for block in read_blocks(&fork_path(dir))? {
            let block = block?;
            let started = Instant::now();
            outcome = tree.import(block, now)?;
            last = started.elapsed();
        }
        ensure!(
            outcome
                == ImportOutcome::NewHead {
                    rolled_back: REORG_DEPTH
                },
            "the competing branch did not take over: {outcome:?}"
        );
        Some(last.as_secs_f64())
    };
    Ok(Measured {
        blocks,
        txs,
        genesis_bytes,
        store_bytes,
        genesis_live_bytes,
        live_bytes,
        import_secs,
        peak_rss_kb: peak_rss_kb()?,
        restart_secs,
        reorg_secs,
        stopped_by_store_limit,
    })
}

fn file_size(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("reading the size of {}", path.display()))?
        .len())
}

/// `VmHWM` of this process, from `/proc/self/status` (Linux).
fn peak_rss_kb() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/self/status")
}
