//! Shared by the integration tests: real `klero node` processes on
//! 127.0.0.1, temp dirs, bounded waits, and cleanup on drop (a failing test
//! prints the tail of each node's log).
//!
//! A node starts on port 0 for both its API and its p2p listener and
//! writes the ports it got to `DATA_DIR/addresses.json`, which is read back
//! here: no port is guessed. A restarted node asks for the ports it had,
//! so peers that know its address find it again. Nodes are read through
//! the API's own client and types.

#![allow(dead_code, unreachable_pub)] // each test binary uses its own subset

pub mod peer;

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use klero::api::client::ApiClient;
use klero::api::{Account, BlockView, Status};
use klero::node::{ADDRESSES_FILE, Addresses};
use klero_chain::spec::{Consensus, PowParams};
use klero_chain::{ChainSpec, Keypair};
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

/// Polls `cond` every 200 ms until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        sleep(Duration::from_millis(200));
    }
    cond()
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .expect("clock")
}

/// Which lottery a test chain runs.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// Proof of stake: testnet/pos.toml.
    Pos,
    /// Proof of work: testnet/pow.toml, faster and easier.
    Pow,
}

/// A temp dir with a fresh chain spec, dev key files, and the nodes.
pub struct Net {
    // Declared first so the processes stop before their dir is removed.
    pub nodes: Vec<Node>,
    pub dir: tempfile::TempDir,
    pub spec: PathBuf,
    pub kind: Kind,
}

/// The dev spec of `kind` with genesis now, as a value.
pub fn test_spec(kind: Kind) -> ChainSpec {
    let text = match kind {
        Kind::Pos => include_str!("../../testnet/pos.toml"),
        Kind::Pow => include_str!("../../testnet/pow.toml"),
    };
    let mut spec = ChainSpec::from_toml(text).expect("dev spec");
    spec.genesis_time_ms = now_ms();
    if let Kind::Pow = kind {
        // About 65k tries a block: ~0.65 s at the test miners' capped rate.
        let mut target = [0xff; 32];
        target[..2].fill(0);
        spec.consensus = Consensus::Pow(PowParams::dev(1_000, target));
    }
    spec
}

impl Net {
    /// A new chain whose genesis is now.
    pub fn new(kind: Kind) -> Net {
        Net::with_spec(kind, &test_spec(kind))
    }

    /// A new chain of `spec` (a [`test_spec`] changed by the test).
    pub fn with_spec(kind: Kind, spec: &ChainSpec) -> Net {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec_path = dir.path().join("spec.toml");
        fs::write(&spec_path, spec.to_toml().expect("toml")).expect("write spec");
        let spec = spec_path;
        for name in ["alice", "bob", "carol", "dave"] {
            klero::keyfile::write(&dir.path().join(format!("{name}.key")), &Keypair::dev(name)).expect("key");
        }
        Net {
            dir,
            spec,
            kind,
            nodes: Vec::new(),
        }
    }

    /// Starts a node named `name`; `key` is a dev account that produces
    /// blocks (stakes or mines), `bootnodes` are indexes of running nodes.
    pub fn start(&mut self, name: &str, key: Option<&str>, bootnodes: &[usize]) -> usize {
        let mut args = vec![
            "node".to_owned(),
            "--spec".to_owned(),
            self.spec.display().to_string(),
        ];
        if let Some(key) = key {
            args.push("--key".to_owned());
            args.push(self.dir.path().join(format!("{key}.key")).display().to_string());
            match self.kind {
                Kind::Pos => args.push("--stake".to_owned()),
                Kind::Pow => args.extend(["--mine", "--hashrate-cap", "100000"].map(str::to_owned)),
            }
        }
        for &i in bootnodes {
            args.push("--bootnode".to_owned());
            args.push(self.nodes[i].multiaddr());
        }
        let node = Node::spawn(name, self.dir.path().join(name), args);
        self.nodes.push(node);
        self.nodes.len() - 1
    }
}

/// One `klero node` process.
pub struct Node {
    pub name: String,
    pub data_dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    /// Where the running process listens, as it wrote it.
    addresses: Option<Addresses>,
    client: Option<ApiClient>,
}

impl Node {
    fn spawn(name: &str, data_dir: PathBuf, args: Vec<String>) -> Node {
        fs::create_dir_all(&data_dir).expect("data dir");
        let mut node = Node {
            name: name.to_owned(),
            data_dir,
            args,
            child: None,
            addresses: None,
            client: None,
        };
        node.launch();
        node
    }

    /// Starts the process: on port 0 the first time, on the ports it had
    /// after that; returns once it has written its addresses and answers.
    fn launch(&mut self) {
        let (rpc, listen) = match &self.addresses {
            Some(a) => (a.api.to_string(), format!("/ip4/127.0.0.1/tcp/{}", p2p_port(a))),
            None => ("127.0.0.1:0".to_owned(), "/ip4/127.0.0.1/tcp/0".to_owned()),
        };
        // A SIGKILLed node leaves its old file behind.
        let _ = fs::remove_file(self.data_dir.join(ADDRESSES_FILE));
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("node.log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_klero"))
            .args(&self.args)
            .args(["--data-dir", &self.data_dir.display().to_string()])
            .args(["--listen", &listen])
            .args(["--rpc", &rpc])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn klero node");
        self.child = Some(child);
        assert!(
            wait_for(Duration::from_secs(20), || Addresses::read(&self.data_dir)
                .is_ok()),
            "{} did not start",
            self.name
        );
        let addresses = Addresses::read(&self.data_dir).expect("addresses");
        self.client = Some(
            ApiClient::new(&format!("http://{}", addresses.api), Duration::from_secs(5)).expect("client"),
        );
        self.addresses = Some(addresses);
        assert!(
            wait_for(Duration::from_secs(20), || self.status().is_some()),
            "{} does not answer",
            self.name
        );
    }

    /// The API's base URL, `http://127.0.0.1:PORT`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addresses.as_ref().expect("started").api)
    }

    /// `/ip4/127.0.0.1/tcp/PORT/p2p/ID`.
    pub fn multiaddr(&self) -> String {
        self.addresses.as_ref().expect("started").p2p[0].clone()
    }

    /// The node's libp2p peer id.
    pub fn peer_id(&self) -> libp2p::PeerId {
        let addr: Multiaddr = self.multiaddr().parse().expect("multiaddr");
        addr.iter()
            .find_map(|p| match p {
                Protocol::P2p(id) => Some(id),
                _ => None,
            })
            .expect("a /p2p/ suffix")
    }

    fn client(&self) -> &ApiClient {
        self.client.as_ref().expect("started")
    }

    /// GET /status, `None` if unreachable.
    pub fn status(&self) -> Option<Status> {
        self.client().status().ok()
    }

    /// GET /blocks/{height}, `None` if unreachable or absent.
    pub fn block(&self, height: u64) -> Option<BlockView> {
        self.client().block_at(height).ok().flatten()
    }

    /// GET /blocks/id/{id}, `None` if unreachable or not stored.
    pub fn block_by_id(&self, id: &str) -> Option<BlockView> {
        self.client().block_by_id(id).ok().flatten()
    }

    /// POST /txs: the transaction's id, or the node's reason for refusing it.
    pub fn submit(&self, tx: &klero_chain::Tx) -> Result<String, String> {
        self.client()
            .submit(&klero_chain::codec::encode(tx))
            .map_err(|e| e.to_string())
    }

    /// GET /accounts/{address}, `None` if unreachable or unknown.
    pub fn account(&self, address: &str) -> Option<Account> {
        self.client().account(address).ok().flatten()
    }

    /// GET /metrics, empty if unreachable.
    pub fn metrics(&self) -> String {
        self.client().metrics().unwrap_or_default()
    }

    /// One sample of `/metrics` by its full name (labels included), if
    /// the node reports it.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics().lines().find_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            (key == name).then(|| value.parse().ok()).flatten()
        })
    }

    /// Head height, 0 if unreachable.
    pub fn height(&self) -> u64 {
        self.status().map_or(0, |s| s.height)
    }

    /// Head id.
    pub fn head(&self) -> Option<String> {
        self.status().map(|s| s.head)
    }

    /// Id of the canonical block at `height`.
    pub fn block_id(&self, height: u64) -> Option<String> {
        self.block(height).map(|b| b.id)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The process's resident set size in KiB (Linux), while it runs.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// Starts the process again on the same ports and data dir.
    pub fn restart(&mut self) {
        self.kill9();
        self.launch();
    }

    /// Restarts the node (SIGTERM) without its key: it keeps following the
    /// chain but no longer stakes or mines.
    pub fn stop_producing(&mut self) {
        self.terminate();
        let mut args = Vec::new();
        let mut rest = std::mem::take(&mut self.args).into_iter();
        while let Some(arg) = rest.next() {
            match arg.as_str() {
                "--key" | "--hashrate-cap" => {
                    rest.next();
                }
                "--stake" | "--mine" => {}
                _ => args.push(arg),
            }
        }
        self.args = args;
        self.launch();
    }
}

/// The TCP port of a node's first p2p address.
fn p2p_port(addresses: &Addresses) -> u16 {
    let addr: Multiaddr = addresses.p2p[0].parse().expect("multiaddr");
    addr.iter()
        .find_map(|p| match p {
            Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .expect("a tcp address")
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let log = fs::read_to_string(self.data_dir.join("node.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(25).collect();
            eprintln!("--- last lines of {}'s log ---", self.name);
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// Whether all `nodes` report the same head at height ≥ `min_height`.
pub fn agree(nodes: &[&Node], min_height: u64) -> bool {
    let heads: Vec<Option<Status>> = nodes.iter().map(|n| n.status()).collect();
    let first = &heads[0];
    first.as_ref().is_some_and(|f| f.height >= min_height)
        && heads
            .iter()
            .all(|h| h.as_ref().map(|h| &h.head) == first.as_ref().map(|f| &f.head))
}
