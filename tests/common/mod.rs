//! Shared by the integration tests: real `klero node` processes on
//! 127.0.0.1, free ports, temp dirs, bounded waits, and cleanup on drop
//! (a failing test prints the tail of each node's log).

#![allow(dead_code, unreachable_pub)] // each test binary uses its own subset

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use klero_chain::Keypair;
use serde_json::Value;

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

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

fn now_ms() -> u64 {
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
    /// Proof of work: testnet/pow.toml with an easier target.
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

impl Net {
    /// A new chain whose genesis is now.
    pub fn new(kind: Kind) -> Net {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let template = match kind {
            Kind::Pos => fs::read_to_string(root.join("testnet/pos.toml")),
            Kind::Pow => fs::read_to_string(root.join("testnet/pow.toml")),
        }
        .expect("spec template");
        let mut text: String = template
            .lines()
            .map(|line| {
                if line.starts_with("genesis_time_ms") {
                    format!("genesis_time_ms = {}", now_ms())
                } else {
                    line.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        // About 65k tries a block: ~0.3 s at the test miners' capped rate.
        text = text.replace(
            "00000fffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "0000ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        );
        text = text.replace("target_block_ms = 2000", "target_block_ms = 1000");
        let spec = dir.path().join("spec.toml");
        fs::write(&spec, text).expect("write spec");
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
    pub rpc: u16,
    pub p2p: u16,
    pub data_dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    peer_id: String,
}

impl Node {
    fn spawn(name: &str, data_dir: PathBuf, args: Vec<String>) -> Node {
        fs::create_dir_all(&data_dir).expect("data dir");
        let mut node = Node {
            name: name.to_owned(),
            rpc: free_port(),
            p2p: free_port(),
            data_dir,
            args,
            child: None,
            peer_id: String::new(),
        };
        node.launch();
        node
    }

    fn launch(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("node.log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_klero"))
            .args(&self.args)
            .args(["--data-dir", &self.data_dir.display().to_string()])
            .args(["--listen", &format!("/ip4/127.0.0.1/tcp/{}", self.p2p)])
            .args(["--rpc", &format!("127.0.0.1:{}", self.rpc)])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn klero node");
        self.child = Some(child);
        assert!(
            wait_for(Duration::from_secs(20), || self.status().is_some()),
            "{} did not start",
            self.name
        );
        self.peer_id = self.status().expect("status")["peer_id"]
            .as_str()
            .expect("peer id")
            .to_owned();
    }

    /// `/ip4/127.0.0.1/tcp/PORT/p2p/ID`.
    pub fn multiaddr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", self.p2p, self.peer_id)
    }

    /// GET a JSON path of the API, `None` if unreachable or not 200.
    pub fn get(&self, path: &str) -> Option<Value> {
        let response = reqwest::blocking::Client::new()
            .get(format!("http://127.0.0.1:{}{path}", self.rpc))
            .timeout(Duration::from_secs(5))
            .send()
            .ok()?;
        response.status().is_success().then(|| response.json().ok())?
    }

    /// GET /status.
    pub fn status(&self) -> Option<Value> {
        self.get("/status")
    }

    /// GET /metrics.
    pub fn metrics(&self) -> String {
        reqwest::blocking::get(format!("http://127.0.0.1:{}/metrics", self.rpc))
            .and_then(|r| r.text())
            .unwrap_or_default()
    }

    /// Head height, 0 if unreachable.
    pub fn height(&self) -> u64 {
        self.status().and_then(|s| s["height"].as_u64()).unwrap_or(0)
    }

    /// Head id.
    pub fn head(&self) -> Option<String> {
        self.status().and_then(|s| s["head"].as_str().map(str::to_owned))
    }

    /// Id of the canonical block at `height`.
    pub fn block_id(&self, height: u64) -> Option<String> {
        self.get(&format!("/blocks/{height}"))
            .and_then(|b| b["id"].as_str().map(str::to_owned))
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
    let heads: Vec<Option<Value>> = nodes.iter().map(|n| n.status()).collect();
    let first = &heads[0];
    first
        .as_ref()
        .is_some_and(|f| f["height"].as_u64().unwrap_or(0) >= min_height)
        && heads
            .iter()
            .all(|h| h.as_ref().map(|h| &h["head"]) == first.as_ref().map(|f| &f["head"]))
}
