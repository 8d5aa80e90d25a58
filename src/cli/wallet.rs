//! `klero wallet`: keys, balances, transfers, staking and unstaking.
//!
//! Read commands (`list`, `address`, `balance`, `status`, `history`, `tx`)
//! need no passphrase: the keystore keeps the address in clear. Commands
//! that sign ask for it (prompt, `--password-file`, or `KLERO_PASSPHRASE`).
//! `new` shows the seed's recovery phrase once; `import --mnemonic` takes it
//! back (docs/wallet.md).
//!
//! A keystore signs for one chain: the one named at `new`/`import`
//! (`--chain-id` and `--genesis`), or else the chain of the node it first
//! signs through. A node reporting another chain is refused before the
//! passphrase is asked for.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use klero_chain::codec;
use klero_chain::types::{TxBody, TxKind};
use klero_chain::{Keypair, Tx};
use serde_json::json;
use zeroize::Zeroizing;

use crate::api::client::ApiClient;
use crate::api::history::{MAX_PAGE, TxState};
use crate::api::{TxKindView, TxView};
use crate::keyfile;
use crate::wallet::keystore::{self, KdfParams, Keystore};
use crate::wallet::mnemonic;
use crate::wallet::{ChainBinding, WalletDir, WalletError, chain_of, check_chain, check_tx, parse_address};

/// How long a call to the node may take.
const NODE_TIMEOUT: Duration = Duration::from_secs(10);

/// `klero wallet …`
#[derive(Debug, Args)]
pub struct WalletArgs {
    #[command(flatten)]
    opts: Options,
    #[command(subcommand)]
    command: WalletCommand,
}

/// Options every wallet command takes.
#[derive(Debug, Args)]
struct Options {
    /// The node's HTTP API.
    #[arg(
        long,
        global = true,
        env = "KLERO_NODE",
        default_value = "http://127.0.0.1:8645"
    )]
    node: String,
    /// Where keystores live. Default: $HOME/.klero/wallet.
    #[arg(long, global = true, env = "KLERO_WALLET_DIR")]
    wallet_dir: Option<PathBuf>,
    /// Which keystore.
    #[arg(long, global = true, default_value = "default")]
    name: String,
    /// Read the passphrase from this file (first line) instead of a prompt.
    #[arg(long, global = true)]
    password_file: Option<PathBuf>,
    /// Print JSON (read commands).
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum WalletCommand {
    /// Create a new keystore with a random seed, and show its recovery phrase once.
    New {
        #[command(flatten)]
        chain: ChainOpts,
    },
    /// List the keystores and their addresses.
    List,
    /// Print the wallet's address.
    Address,
    /// Import a secret seed (64 hex digits, as `export` or `klero keys new`
    /// write), or with --mnemonic the 24-word recovery phrase `new` showed.
    Import {
        /// Read the seed from this file instead of stdin.
        #[arg(long)]
        seed_file: Option<PathBuf>,
        /// Read the 24-word recovery phrase (prompt, or stdin when it is not a terminal).
        #[arg(long, conflicts_with = "seed_file")]
        mnemonic: bool,
        #[command(flatten)]
        chain: ChainOpts,
    },
    /// Print the secret seed (the key-file format `klero node --key` reads),
    /// or write it to a new private key file.
    Export {
        /// Write a new key file (mode 0600) instead of printing.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Show the balance (of the wallet, or of any ADDRESS).
    Balance {
        /// Another address to look up.
        address: Option<String>,
        /// Check the balance against the head's header (its signature, its
        /// PoW seal) with a state proof, instead of trusting the node.
        #[arg(long)]
        verify: bool,
    },
    /// Send AMOUNT to the address TO.
    Transfer {
        /// The recipient.
        to: String,
        /// The amount.
        amount: u64,
        #[command(flatten)]
        send: SendOpts,
    },
    /// Bond AMOUNT as stake and register the wallet's VRF key.
    Stake {
        /// The amount.
        amount: u64,
        #[command(flatten)]
        send: SendOpts,
    },
    /// Start unbonding AMOUNT; it is spendable again after the unbonding delay.
    Unstake {
        /// The amount.
        amount: u64,
        #[command(flatten)]
        send: SendOpts,
    },
    /// Bonded stake, unbonding stake with the epoch it frees, rewards, blocks proposed.
    Status,
    /// The wallet's (or ADDRESS's) transactions on the best chain, newest first.
    History {
        /// Another address to look up.
        address: Option<String>,
        /// How many, at most 100.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PAGE)))]
        limit: u32,
        /// Only older than this position (the `next_before` of the previous page).
        #[arg(long)]
        before: Option<u64>,
    },
    /// Where a transaction is: pending, included (block, height, confirmations), or unknown.
    Tx {
        /// The transaction id (64 hex digits).
        id: String,
    },
}

/// The chain a new keystore signs for; unnamed, the first node it signs
/// through decides.
#[derive(Debug, Args)]
struct ChainOpts {
    /// Sign only for this chain id (`klero wallet` then refuses nodes of any other).
    #[arg(long, requires = "genesis")]
    chain_id: Option<String>,
    /// The chain's genesis block id (64 hex digits, as `GET /status` shows it).
    #[arg(long, requires = "chain_id")]
    genesis: Option<String>,
}

impl ChainOpts {
    fn binding(&self) -> Result<Option<ChainBinding>, WalletError> {
        match (&self.chain_id, &self.genesis) {
            (Some(id), Some(genesis)) => Ok(Some(ChainBinding::new(id, genesis)?)),
            _ => Ok(None),
        }
    }
}

/// Options of commands that send a transaction.
#[derive(Debug, Args)]
struct SendOpts {
    /// The fee. Default: the chain's minimum.
    #[arg(long)]
    fee: Option<u64>,
    /// Wait until the transaction is in a block.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits, in seconds.
    #[arg(long, default_value_t = 120)]
    wait_secs: u64,
}

impl WalletArgs {
    /// Runs the command.
    ///
    /// # Errors
    ///
    /// Whatever the wallet or the node refuses; the keystore is never changed by a failure.
    pub fn execute(self) -> Result<()> {
        let opts = self.opts;
        let dir = WalletDir(match &opts.wallet_dir {
            Some(dir) => dir.clone(),
            None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set; use --wallet-dir")?)
                .join(".klero/wallet"),
        });
        match self.command {
            WalletCommand::New { chain } => {
                let chain = chain.binding()?;
                let key = keyfile::generate()?;
                let path = dir.path_of(&opts.name)?;
                if path.exists() {
                    return Err(WalletError::Exists(path.display().to_string()).into());
                }
                let passphrase = new_passphrase(&opts)?;
                save_new(&key, &passphrase, chain, &path)?;
                print_created(&opts, &key, &path, Some(&mnemonic::phrase_of(key.seed())));
            }
            WalletCommand::List => {
                let wallets = dir.list()?;
                if opts.json {
                    let list: Vec<_> = wallets
                        .iter()
                        .map(|(n, a)| json!({"name": n, "address": a}))
                        .collect();
                    println!("{}", serde_json::Value::Array(list));
                } else if wallets.is_empty() {
                    println!(
                        "no wallets in {} (create one with `klero wallet new`)",
                        dir.0.display()
                    );
                } else {
                    for (name, address) in wallets {
                        println!("{name:<16} {address}");
                    }
                }
            }
            WalletCommand::Address => {
                let address = keystore::load(&dir.existing(&opts.name)?)?.address;
                if opts.json {
                    println!("{}", json!({"name": opts.name, "address": address}));
                } else {
                    println!("{address}");
                }
            }
            WalletCommand::Import {
                seed_file,
                mnemonic,
                chain,
            } => {
                let chain = chain.binding()?;
                let path = dir.path_of(&opts.name)?;
                if path.exists() {
                    return Err(WalletError::Exists(path.display().to_string()).into());
                }
                let seed = match &seed_file {
                    Some(file) => keyfile::read_seed(file)?,
                    None if mnemonic => read_mnemonic()?,
                    None => {
                        let mut text = Zeroizing::new(Vec::new());
                        std::io::stdin()
                            .read_to_end(&mut text)
                            .context("reading the seed from stdin")?;
                        keyfile::parse_seed(&text).context("the seed must be 64 hex digits")?
                    }
                };
                let key = Keypair::from_seed(*seed);
                eprintln!(
                    "warning: anyone who saw this seed controls its funds; keep the original safe or destroy it"
                );
                let passphrase = new_passphrase(&opts)?;
                save_new(&key, &passphrase, chain, &path)?;
                print_created(&opts, &key, &path, None);
            }
            WalletCommand::Export { out } => {
                let key = unlock(&dir, &opts)?;
                match out {
                    Some(path) => {
                        keyfile::write(&path, &key)?;
                        eprintln!(
                            "wrote {} (mode 0600): whoever has it controls the funds and the stake",
                            path.display()
                        );
                    }
                    None => {
                        eprintln!(
                            "warning: this is the wallet's secret seed; whoever has it controls the funds and the stake"
                        );
                        println!("{}", Zeroizing::new(hex::encode(key.seed())).as_str());
                    }
                }
            }
            WalletCommand::Balance { address, verify } => {
                let address = match address {
                    Some(a) => parse_address(&a)?.to_bech32(),
                    None => keystore::load(&dir.existing(&opts.name)?)?.address,
                };
                let client = ApiClient::new(&opts.node, NODE_TIMEOUT)?;
                let account = if verify {
                    client.account_with_proof(&address)?
                } else {
                    client.account(&address)?
                }
                .ok_or_else(|| WalletError::UnknownAccount(address.clone()))?;
                let verified = if verify {
                    let chain_id = client.status()?.chain_id;
                    let parsed = parse_address(&address)?;
                    Some(
                        crate::wallet::verify::verify_account(&account, &parsed, &chain_id)
                            .map_err(WalletError::from)?,
                    )
                } else {
                    None
                };
                if opts.json {
                    let mut out = json!({"address": address, "balance": account.balance, "bonded": account.bonded, "nonce": account.nonce});
                    if let Some(v) = &verified {
                        out["verified_at"] = json!({"height": v.height, "head": v.id.to_hex(), "seal_checked": v.seal_checked});
                    }
                    println!("{out}");
                } else {
                    println!("{} (bonded {})", account.balance, account.bonded);
                    if let Some(v) = verified {
                        println!("verified against block {} at height {}", v.id.to_hex(), v.height);
                        if !v.seal_checked {
                            println!(
                                "not checked: the header's PoS seal (the proposer's VRF win needs the epoch's \
                                 stake snapshot); a node could sign a header of its own with its own key"
                            );
                        }
                    }
                }
            }
            WalletCommand::Status => status(&dir, &opts)?,
            WalletCommand::History {
                address,
                limit,
                before,
            } => {
                history(&dir, &opts, address.as_deref(), limit, before)?;
            }
            WalletCommand::Tx { id } => show_tx(&opts, &id)?,
            WalletCommand::Transfer { to, amount, send } => {
                let to = parse_address(&to)?;
                send_tx(&dir, &opts, &send, |_, _| TxKind::Transfer { to, amount })?;
            }
            WalletCommand::Stake { amount, send } => {
                send_tx(&dir, &opts, &send, |key, chain_id| {
                    TxKind::stake(key, chain_id, amount)
                })?;
            }
            WalletCommand::Unstake { amount, send } => {
                send_tx(&dir, &opts, &send, |_, _| TxKind::Unstake { amount })?;
            }
        }
        Ok(())
    }
}

fn save_new(key: &Keypair, passphrase: &str, chain: Option<ChainBinding>, path: &Path) -> Result<()> {
    let mut store = keystore::encrypt(key, passphrase, KdfParams::DEFAULT)?;
    store.chain = chain;
    Ok(keystore::save_new(&store, path)?)
}

/// Prints the new keystore and, for `new`, the recovery phrase: the only
/// time it is shown.
fn print_created(opts: &Options, key: &Keypair, path: &std::path::Path, phrase: Option<&str>) {
    let address = key.address().to_bech32();
    if opts.json {
        let mut out = json!({"name": opts.name, "address": address, "keystore": path.display().to_string()});
        if let Some(phrase) = phrase {
            out["mnemonic"] = phrase.into();
        }
        println!("{out}");
        // The JSON value held a copy of the phrase; it is gone with `out`,
        // which serde_json cannot zero.
    } else {
        println!("address   {address}");
        println!("keystore  {}", path.display());
        if let Some(phrase) = phrase {
            println!("recovery phrase ({} words):", mnemonic::WORDS);
            println!("  {phrase}");
        }
    }
    if phrase.is_some() {
        eprintln!(
            "write the recovery phrase down now: it is shown only this once, restores the wallet with `klero wallet import --mnemonic`, and whoever has it controls the funds"
        );
    }
}

/// The passphrase from `--password-file`, `KLERO_PASSPHRASE`, or a prompt;
/// zeroed when dropped.
fn passphrase(opts: &Options, prompt: &str) -> Result<Zeroizing<String>> {
    if let Some(file) = &opts.password_file {
        let text = Zeroizing::new(
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?,
        );
        return Ok(Zeroizing::new(text.lines().next().unwrap_or_default().to_owned()));
    }
    if let Ok(pass) = std::env::var("KLERO_PASSPHRASE") {
        return Ok(Zeroizing::new(pass));
    }
    rpassword::prompt_password(prompt)
        .map(Zeroizing::new)
        .context("reading the passphrase (no terminal? use --password-file or KLERO_PASSPHRASE)")
}

fn new_passphrase(opts: &Options) -> Result<Zeroizing<String>> {
    let interactive = opts.password_file.is_none() && std::env::var_os("KLERO_PASSPHRASE").is_none();
    let pass = passphrase(opts, "new passphrase: ")?;
    if interactive && *passphrase(opts, "repeat passphrase: ")? != *pass {
        bail!("the passphrases differ; nothing was written");
    }
    if pass.is_empty() {
        bail!("an empty passphrase would leave the seed unprotected");
    }
    Ok(pass)
}

fn unlock(dir: &WalletDir, opts: &Options) -> Result<Keypair> {
    decrypt(&keystore::load(&dir.existing(&opts.name)?)?, opts)
}

fn decrypt(store: &Keystore, opts: &Options) -> Result<Keypair> {
    let pass = passphrase(opts, &format!("passphrase for {}: ", opts.name))?;
    Ok(store.decrypt(&pass).map_err(WalletError::from)?)
}

fn status(dir: &WalletDir, opts: &Options) -> Result<()> {
    let address = keystore::load(&dir.existing(&opts.name)?)?.address;
    let account = ApiClient::new(&opts.node, NODE_TIMEOUT)?
        .account(&address)?
        .ok_or_else(|| WalletError::UnknownAccount(address.clone()))?;
    if opts.json {
        // The API's own account type: the same fields as `GET /accounts/{address}`.
        println!("{}", serde_json::to_string(&account)?);
        return Ok(());
    }
    println!("address          {address}");
    println!("balance          {}", account.balance);
    println!("bonded           {}", account.bonded);
    for u in &account.unbonding {
        println!(
            "unbonding        {} (free from epoch {})",
            u.amount, u.release_epoch
        );
    }
    println!("rewards won      {}", account.rewards);
    println!("blocks proposed  {}", account.blocks_proposed);
    println!("epoch now        {}", account.epoch);
    Ok(())
}

/// The seed of a recovery phrase typed at a hidden prompt, or read from
/// stdin when it is not a terminal.
fn read_mnemonic() -> Result<Zeroizing<[u8; 32]>> {
    let seed = if std::io::stdin().is_terminal() {
        let phrase = Zeroizing::new(
            rpassword::prompt_password(format!("recovery phrase ({} words): ", mnemonic::WORDS))
                .context("reading the recovery phrase")?,
        );
        mnemonic::seed_of(&phrase)
    } else {
        let mut bytes = Zeroizing::new(Vec::new());
        std::io::stdin()
            .take(keyfile::MAX_SECRET_BYTES)
            .read_to_end(&mut bytes)
            .context("reading the recovery phrase from stdin")?;
        mnemonic::seed_of(std::str::from_utf8(&bytes).context("the recovery phrase is not UTF-8")?)
    };
    seed.map_err(|e| anyhow::anyhow!("{e}; nothing was written"))
}

/// `klero wallet history`: one page of an account's transactions.
fn history(
    dir: &WalletDir,
    opts: &Options,
    address: Option<&str>,
    limit: u32,
    before: Option<u64>,
) -> Result<()> {
    let address = match address {
        Some(a) => parse_address(a)?.to_bech32(),
        None => keystore::load(&dir.existing(&opts.name)?)?.address,
    };
    let page = ApiClient::new(&opts.node, NODE_TIMEOUT)?.account_txs(&address, limit, before)?;
    if opts.json {
        println!("{}", serde_json::to_string(&page)?);
        return Ok(());
    }
    if page.txs.is_empty() {
        println!("no transactions of {address} on the best chain");
    }
    for entry in &page.txs {
        let direction = if entry.tx.from == address { "out" } else { "in " };
        println!(
            "{:>8}  {}  {direction}  {}",
            entry.height,
            entry.tx.id,
            describe(&entry.tx)
        );
    }
    if let Some(next) = page.next_before {
        eprintln!("older: klero wallet history --before {next}");
    }
    Ok(())
}

/// `klero wallet tx ID`.
fn show_tx(opts: &Options, id: &str) -> Result<()> {
    let status = ApiClient::new(&opts.node, NODE_TIMEOUT)?.tx_status(id.trim())?;
    if opts.json {
        println!("{}", serde_json::to_string(&status)?);
        return Ok(());
    }
    println!("id             {}", status.id);
    match &status.state {
        TxState::Pending { tx } => {
            println!("status         pending (in the node's mempool)");
            print_tx(tx);
        }
        TxState::Included {
            block,
            height,
            confirmations,
            tx,
            ..
        } => {
            println!("status         included");
            println!("block          {block}");
            println!("height         {height}");
            println!("confirmations  {confirmations}");
            print_tx(tx);
        }
        TxState::Unknown => {
            println!("status         unknown (not pending on this node, not on its best chain)");
        }
    }
    Ok(())
}

fn print_tx(tx: &TxView) {
    println!("from           {}", tx.from);
    println!("nonce          {}", tx.nonce);
    println!("fee            {}", tx.fee);
    println!("what           {}", describe(tx));
}

/// A transaction's effect in a few words.
fn describe(tx: &TxView) -> String {
    match &tx.kind {
        TxKindView::Transfer { to, amount } => format!("transfer {amount} to {to}"),
        TxKindView::Stake { amount, .. } => format!("stake {amount}"),
        TxKindView::Unstake { amount } => format!("unstake {amount}"),
        TxKindView::Evidence { offender, .. } => format!("evidence against {offender}"),
    }
}

fn send_tx(
    dir: &WalletDir,
    opts: &Options,
    send: &SendOpts,
    kind: impl FnOnce(&Keypair, &str) -> TxKind,
) -> Result<()> {
    let client = ApiClient::new(&opts.node, NODE_TIMEOUT)?;
    let status = client.status()?;
    let path = dir.existing(&opts.name)?;
    let mut store = keystore::load(&path)?;
    if let Some(chain) = &store.chain {
        check_chain(chain, &status, &opts.node)?;
    }
    let account = client.account(&store.address)?;
    let fee = send.fee.unwrap_or(status.ledger.min_fee);
    let nonce = account.as_ref().map_or(0, |a| a.nonce);
    let key = decrypt(&store, opts)?;
    if store.chain.is_none() {
        let chain = chain_of(&status);
        eprintln!("this wallet now signs only for chain {chain}");
        keystore::bind(&mut store, &path, chain)?;
    }
    let body = TxBody {
        from: key.address(),
        nonce,
        fee,
        kind: kind(&key, &status.chain_id),
    };
    let tx = Tx::sign(body, &key, &status.chain_id);
    check_tx(&tx, account.as_ref(), &status)?;
    let id = client.submit(&codec::encode(&tx))?;
    println!("{id}");
    if send.wait {
        wait_included(
            &client,
            &store.address,
            nonce,
            &id,
            Duration::from_secs(send.wait_secs),
        )?;
    }
    Ok(())
}

/// Polls until the account's nonce has moved past `nonce`.
fn wait_included(client: &ApiClient, address: &str, nonce: u64, id: &str, limit: Duration) -> Result<()> {
    let spinner = indicatif::ProgressBar::new_spinner().with_message("waiting for a block");
    spinner.enable_steady_tick(Duration::from_millis(120));
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if client.account(address)?.is_some_and(|a| a.nonce > nonce) {
            spinner.finish_with_message("included");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    spinner.abandon();
    Err(WalletError::NotIncluded(id.to_owned()).into())
}
