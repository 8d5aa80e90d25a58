//! `klero wallet` as a user runs it: the real binary, a temp wallet dir,
//! and for the checks that need a chain, a real node on 127.0.0.1.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Kind, Net, wait_for};
use klero_chain::Keypair;

const PASS: &str = "correct horse battery staple";

fn wallet(dir: &Path, node: &str, args: &[&str]) -> Output {
    wallet_with_pass(dir, node, PASS, args)
}

fn wallet_with_pass(dir: &Path, node: &str, pass: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_klero"))
        .arg("wallet")
        .args(args)
        .args(["--wallet-dir", &dir.display().to_string(), "--node", node])
        .env("KLERO_PASSPHRASE", pass)
        .stdin(Stdio::null())
        .output()
        .expect("run klero wallet")
}

/// `klero wallet ARGS` with `input` on stdin.
fn wallet_with_stdin(dir: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_klero"))
        .arg("wallet")
        .args(args)
        .args(["--wallet-dir", &dir.display().to_string(), "--node", &nowhere()])
        .env("KLERO_PASSPHRASE", PASS)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run klero wallet");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// BIP39's English test vector for the entropy 0x7f × 32.
const VECTOR_7F: &str = "legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth title";

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn fails_with(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "unexpected success: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
}

/// A node URL nothing can answer: port 0 is never a listening port.
fn nowhere() -> String {
    "http://127.0.0.1:0".to_owned()
}

/// `klero wallet new --name NAME --json`, parsed.
fn new_json(dir: &Path, node: &str, name: &str) -> serde_json::Value {
    serde_json::from_str(&ok(&wallet(dir, node, &["new", "--name", name, "--json"]))).expect("json")
}

#[test]
fn keystore_lifecycle_new_list_export_import() {
    let dir = tempfile::tempdir().expect("dir");
    let node = nowhere();
    let created = new_json(dir.path(), &node, "me");
    let address = created["address"].as_str().expect("address").to_owned();
    assert!(address.starts_with("klero1"));
    let path = dir.path().join("me.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
            0o600
        );
    }
    assert_eq!(
        ok(&wallet(dir.path(), &node, &["address", "--name", "me"])),
        address
    );
    assert!(ok(&wallet(dir.path(), &node, &["list"])).contains(&address));

    // Refuses to overwrite; the keystore stays byte for byte.
    let before = fs::read(&path).expect("read");
    fails_with(
        &wallet(dir.path(), &node, &["new", "--name", "me"]),
        "already exists",
    );
    assert_eq!(fs::read(&path).expect("read"), before);

    // export → import under another name gives the same address.
    let seed = ok(&wallet(dir.path(), &node, &["export", "--name", "me"]));
    assert_eq!(seed.len(), 64, "a seed is 64 hex digits");
    let seed_file = dir.path().join("seed.key");
    let seed_arg = seed_file.display().to_string();
    ok(&wallet(
        dir.path(),
        &node,
        &["export", "--name", "me", "--out", &seed_arg],
    ));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&seed_file).expect("meta").permissions().mode() & 0o777,
            0o600
        );
    }
    assert_eq!(fs::read_to_string(&seed_file).expect("seed file").trim(), seed);
    fails_with(
        &wallet(dir.path(), &node, &["export", "--name", "me", "--out", &seed_arg]),
        "refusing to overwrite",
    );
    ok(&wallet(
        dir.path(),
        &node,
        &["import", "--name", "copy", "--seed-file", &seed_arg],
    ));
    assert_eq!(
        ok(&wallet(dir.path(), &node, &["address", "--name", "copy"])),
        address
    );
    // The exported seed is a node key file.
    assert_eq!(
        klero::keyfile::read(&seed_file)
            .expect("key file")
            .address()
            .to_bech32(),
        address
    );
}

#[test]
fn the_recovery_phrase_is_shown_once_and_restores_the_wallet() {
    let dir = tempfile::tempdir().expect("dir");
    let node = nowhere();
    let created = new_json(dir.path(), &node, "me");
    let phrase = created["mnemonic"].as_str().expect("a mnemonic").to_owned();
    assert_eq!(phrase.split(' ').count(), 24, "{phrase}");
    let text = ok(&wallet(dir.path(), &node, &["new", "--name", "other"]));
    assert!(text.contains("recovery phrase (24 words)"), "{text}");
    // Shown once: nothing else prints it.
    for args in [["address", "--name", "me"], ["list", "--name", "me"]] {
        assert!(!ok(&wallet(dir.path(), &node, &args)).contains(&phrase));
    }

    // The phrase restores the same key (address and seed).
    let restored = ok(&wallet_with_stdin(
        dir.path(),
        &["import", "--mnemonic", "--name", "restored", "--json"],
        &format!("  {}\n", phrase.to_uppercase()),
    ));
    let restored: serde_json::Value = serde_json::from_str(&restored).expect("json");
    assert_eq!(restored["address"], created["address"]);
    assert_eq!(
        ok(&wallet(dir.path(), &node, &["export", "--name", "restored"])),
        ok(&wallet(dir.path(), &node, &["export", "--name", "me"]))
    );

    // The seed is the phrase's entropy: the published vector gives seed 0x7f × 32.
    ok(&wallet_with_stdin(
        dir.path(),
        &["import", "--mnemonic", "--name", "vector"],
        VECTOR_7F,
    ));
    assert_eq!(
        ok(&wallet(dir.path(), &node, &["export", "--name", "vector"])),
        hex::encode([0x7f; 32])
    );

    // A wrong checksum word, an unknown word, a short phrase: a clear
    // error each, and no keystore written.
    let wrong_last = VECTOR_7F.replace("worth title", "worth abandon");
    let unknown = VECTOR_7F.replacen("legal", "klero", 1);
    for (input, needle) in [
        (wrong_last.as_str(), "checksum does not match"),
        (
            unknown.as_str(),
            "word 1 of the recovery phrase is not in the BIP39",
        ),
        ("legal winner thank", "has 24 words; this one has 3"),
    ] {
        let out = wallet_with_stdin(dir.path(), &["import", "--mnemonic", "--name", "bad"], input);
        fails_with(&out, needle);
        fails_with(&out, "nothing was written");
        assert!(!dir.path().join("bad.json").exists());
    }
    let names: Vec<String> = fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(names.is_empty(), "no temp files left: {names:?}");
}

/// A key file others may read is refused everywhere one is read, with the fix.
#[cfg(unix)]
#[test]
fn a_seed_file_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("dir");
    let seed_file = dir.path().join("open.key");
    fs::write(&seed_file, hex::encode(Keypair::dev("erin").seed())).expect("write");
    fs::set_permissions(&seed_file, fs::Permissions::from_mode(0o644)).expect("chmod");
    let seed_arg = seed_file.display().to_string();
    fails_with(
        &wallet(
            dir.path(),
            &nowhere(),
            &["import", "--name", "x", "--seed-file", &seed_arg],
        ),
        "readable by group or others",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_klero"))
        .args(["keys", "show", &seed_arg])
        .output()
        .expect("run klero keys");
    fails_with(&out, "chmod 600");
    assert!(!dir.path().join("x.json").exists());
}

#[test]
fn wrong_passphrase_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let node = nowhere();
    ok(&wallet(dir.path(), &node, &["new"]));
    let path = dir.path().join("default.json");
    let before = fs::read(&path).expect("read");
    fails_with(
        &wallet_with_pass(dir.path(), &node, "not it", &["export"]),
        "wrong passphrase",
    );
    assert_eq!(fs::read(&path).expect("read"), before);
}

#[test]
fn input_errors_are_clear() {
    let dir = tempfile::tempdir().expect("dir");
    let node = nowhere();
    ok(&wallet(dir.path(), &node, &["new"]));
    let mut address = Keypair::dev("bob").address().to_bech32();
    let last = address.pop().expect("char");
    address.push(if last == 'q' { 'p' } else { 'q' });
    fails_with(
        &wallet(dir.path(), &node, &["transfer", &address, "5"]),
        "bad address",
    );
    fails_with(
        &wallet(dir.path(), &node, &["transfer", "klero1abc", "five"]),
        "invalid value 'five'",
    );
    fails_with(&wallet(dir.path(), &node, &["balance"]), "cannot reach the node");
    fails_with(
        &wallet(dir.path(), &node, &["address", "--name", "nobody"]),
        "no wallet named",
    );
}

#[test]
fn a_live_node_refuses_what_the_ledger_would() {
    let mut net = Net::new(Kind::Pos);
    // Dave (40% of the stake) produces, so the transfer below gets into a
    // block; alice's balance, checked against, earns no rewards meanwhile.
    net.start("n0", Some("dave"), &[]);
    let node = net.nodes[0].api_url();
    let dir = tempfile::tempdir().expect("dir");
    let bob = Keypair::dev("bob").address().to_bech32();

    ok(&wallet(dir.path(), &node, &["new", "--name", "poor"]));
    fails_with(
        &wallet(dir.path(), &node, &["transfer", &bob, "5", "--name", "poor"]),
        "unknown account",
    );
    fails_with(
        &wallet(dir.path(), &node, &["status", "--name", "poor"]),
        "unknown account",
    );

    let alice_seed = net.dir.path().join("alice.key").display().to_string();
    ok(&wallet(
        dir.path(),
        &node,
        &["import", "--name", "alice", "--seed-file", &alice_seed],
    ));
    let status: serde_json::Value = serde_json::from_str(&ok(&wallet(
        dir.path(),
        &node,
        &["status", "--name", "alice", "--json"],
    )))
    .expect("json");
    let balance = status["balance"].as_u64().expect("balance");
    let bonded = status["bonded"].as_u64().expect("bonded");
    assert!(balance > 0 && bonded > 0, "{status}");

    let too_much = (balance + 1).to_string();
    fails_with(
        &wallet(
            dir.path(),
            &node,
            &["transfer", &bob, &too_much, "--name", "alice"],
        ),
        "insufficient balance",
    );
    // Alice is bonded already: unstaking all but 10 leaves less than the minimum.
    let leave_ten = (bonded - 10).to_string();
    fails_with(
        &wallet(dir.path(), &node, &["unstake", &leave_ten, "--name", "alice"]),
        "below the minimum stake",
    );
    let poor_address = ok(&wallet(dir.path(), &node, &["address", "--name", "poor"]));
    // A valid transfer is accepted by the node and gets an id.
    let id = ok(&wallet(
        dir.path(),
        &node,
        &["transfer", &poor_address, "500", "--name", "alice"],
    ));
    assert_eq!(id.len(), 64, "{id}");

    // `wallet tx` follows it from the mempool into a block.
    let tx_status = |id: &str| -> serde_json::Value {
        serde_json::from_str(&ok(&wallet(dir.path(), &node, &["tx", id, "--json"]))).expect("json")
    };
    let first = tx_status(&id);
    assert!(
        ["pending", "included"].contains(&first["status"].as_str().unwrap_or_default()),
        "{first}"
    );
    assert_eq!(first["tx"]["amount"], 500, "{first}");
    assert!(
        wait_for(Duration::from_secs(60), || tx_status(&id)["status"] == "included"),
        "never included: {}",
        tx_status(&id)
    );
    let included = tx_status(&id);
    let height = included["height"].as_u64().expect("height");
    let block: serde_json::Value = reqwest::blocking::get(format!("{node}/blocks/{height}"))
        .expect("GET block")
        .json()
        .expect("json");
    assert_eq!(
        included["block"], block["id"],
        "the canonical block at that height"
    );
    assert!(included["confirmations"].as_u64() >= Some(1));
    let text = ok(&wallet(dir.path(), &node, &["tx", &id]));
    assert!(
        text.contains("included") && text.contains(&poor_address),
        "{text}"
    );
    let never = "00".repeat(32);
    assert_eq!(tx_status(&never)["status"], "unknown");
    fails_with(
        &wallet(dir.path(), &node, &["tx", "xyz"]),
        "not a 64-digit hex id",
    );

    // Both sides' histories have it, newest first.
    for name in ["alice", "poor"] {
        let page: serde_json::Value = serde_json::from_str(&ok(&wallet(
            dir.path(),
            &node,
            &["history", "--name", name, "--json"],
        )))
        .expect("json");
        assert_eq!(page["txs"][0]["tx"]["id"], id.as_str(), "{name}: {page}");
        assert_eq!(page["txs"][0]["height"], height);
    }
    let text = ok(&wallet(dir.path(), &node, &["history", &poor_address]));
    assert!(text.contains(&id) && text.contains(" in "), "{text}");
    fails_with(
        &wallet(
            dir.path(),
            &node,
            &["history", "--name", "alice", "--limit", "101"],
        ),
        "101 is not in 1..=100",
    );
}

/// A keystore signs for the chain it was first used on (or the one named
/// at import): a node of another chain, even under the same chain id, is
/// refused before anything is signed.
#[test]
fn a_wallet_signs_for_one_chain_only() {
    let mut first = Net::new(Kind::Pos);
    // A staker, so the first transfer lands and the next takes nonce 1.
    first.start("a", Some("bob"), &[]);
    // Same spec but a later genesis time: the same chain id, another chain.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let mut second = Net::new(Kind::Pos);
    second.start("b", None, &[]);
    let (a, b) = (&first.nodes[0], &second.nodes[0]);
    let (sa, sb) = (a.status().expect("a"), b.status().expect("b"));
    assert_eq!(sa.chain_id, sb.chain_id);
    assert_ne!(sa.genesis, sb.genesis);
    let (url_a, url_b) = (a.api_url(), b.api_url());
    let dir = tempfile::tempdir().expect("dir");
    let bob = Keypair::dev("bob").address().to_bech32();
    let alice = Keypair::dev("alice").address().to_bech32();
    let seed = first.dir.path().join("alice.key").display().to_string();

    // Unbound at import: the first transfer binds it to chain a.
    ok(&wallet(
        dir.path(),
        &url_a,
        &["import", "--name", "alice", "--seed-file", &seed],
    ));
    let keystore = dir.path().join("alice.json");
    assert!(
        !fs::read_to_string(&keystore)
            .expect("keystore")
            .contains("chain_id")
    );
    let sent = wallet(
        dir.path(),
        &url_a,
        &["transfer", &bob, "5", "--name", "alice", "--wait"],
    );
    ok(&sent);
    assert!(String::from_utf8_lossy(&sent.stderr).contains("now signs only for chain"));
    let bound = fs::read(&keystore).expect("keystore");
    assert!(String::from_utf8_lossy(&bound).contains(&sa.genesis));

    // Chain b is refused: nothing reaches its mempool, the keystore stays.
    fails_with(
        &wallet(dir.path(), &url_b, &["transfer", &bob, "5", "--name", "alice"]),
        "nothing was signed",
    );
    fails_with(
        &wallet(dir.path(), &url_b, &["stake", "1000", "--name", "alice"]),
        &format!("reports chain {:?} (genesis {})", sb.chain_id, sb.genesis),
    );
    assert_eq!(fs::read(&keystore).expect("keystore"), bound);
    assert_eq!(b.status().expect("b").mempool, 0);
    assert_eq!(b.account(&alice).expect("alice on b").nonce, 0);
    // Chain a still signs.
    ok(&wallet(
        dir.path(),
        &url_a,
        &["transfer", &bob, "6", "--name", "alice"],
    ));

    // Named at import: bound to chain b from the start, so chain a is refused.
    ok(&wallet(
        dir.path(),
        &nowhere(),
        &[
            "import",
            "--name",
            "alice-b",
            "--seed-file",
            &seed,
            "--chain-id",
            &sb.chain_id,
            "--genesis",
            &sb.genesis,
        ],
    ));
    fails_with(
        &wallet(dir.path(), &url_a, &["transfer", &bob, "5", "--name", "alice-b"]),
        "nothing was signed",
    );
    ok(&wallet(
        dir.path(),
        &url_b,
        &["transfer", &bob, "5", "--name", "alice-b"],
    ));
    fails_with(
        &wallet(
            dir.path(),
            &nowhere(),
            &["new", "--name", "x", "--chain-id", "c", "--genesis", "beef"],
        ),
        "not 64 hex digits",
    );
}

/// An HTTP proxy on 127.0.0.1 in front of `node` that adds `extra` to every
/// balance it relays: a node that lies. Returns its URL.
fn lying_proxy(node: String, extra: u64) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        let http = reqwest::blocking::Client::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            // Skip the request's headers (the wallet only sends GETs).
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let Ok(response) = http.get(format!("{node}{path}")).send() else {
                continue;
            };
            let status = response.status().as_u16();
            let mut body = response.text().unwrap_or_default();
            if path.starts_with("/accounts/")
                && let Ok(mut json) = serde_json::from_str::<serde_json::Value>(&body)
                && let Some(balance) = json["balance"].as_u64()
            {
                json["balance"] = (balance + extra).into();
                body = json.to_string();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn balance_verify_checks_the_proof_and_catches_a_lying_node() {
    let mut net = Net::new(Kind::Pow);
    let node = net.start("a", Some("alice"), &[]);
    assert!(
        common::wait_for(std::time::Duration::from_secs(120), || net.nodes[node].height()
            >= 2),
        "the node mines"
    );
    let dir = tempfile::tempdir().expect("dir");
    let url = net.nodes[node].api_url();
    let alice = Keypair::dev("alice").address().to_bech32();

    let honest: serde_json::Value = serde_json::from_str(&ok(&wallet(
        dir.path(),
        &url,
        &["balance", &alice, "--verify", "--json"],
    )))
    .expect("json");
    assert!(
        honest["verified_at"]["height"].as_u64().is_some_and(|h| h >= 2),
        "{honest}"
    );
    assert_eq!(
        honest["verified_at"]["seal_checked"], true,
        "PoW work is checked: {honest}"
    );
    let balance = honest["balance"].as_u64().expect("balance");

    let liar = lying_proxy(url, 1_000_000);
    // Without --verify the lie goes through; with it, it is caught.
    let told: serde_json::Value =
        serde_json::from_str(&ok(&wallet(dir.path(), &liar, &["balance", &alice, "--json"]))).expect("json");
    assert!(told["balance"].as_u64().expect("balance") >= balance + 1_000_000);
    fails_with(
        &wallet(dir.path(), &liar, &["balance", &alice, "--verify"]),
        "does not check out",
    );
}

#[test]
fn balance_verify_on_pos_says_the_seal_is_not_checked() {
    let mut net = Net::new(Kind::Pos);
    let node = net.start("a", Some("alice"), &[]);
    assert!(
        common::wait_for(std::time::Duration::from_secs(120), || net.nodes[node].height()
            >= 1),
        "the staker produces"
    );
    let dir = tempfile::tempdir().expect("dir");
    let url = net.nodes[node].api_url();
    let alice = Keypair::dev("alice").address().to_bech32();
    let json: serde_json::Value = serde_json::from_str(&ok(&wallet(
        dir.path(),
        &url,
        &["balance", &alice, "--verify", "--json"],
    )))
    .expect("json");
    assert_eq!(json["verified_at"]["seal_checked"], false, "{json}");
    let text = ok(&wallet(dir.path(), &url, &["balance", &alice, "--verify"]));
    assert!(text.contains("not checked: the header's PoS seal"), "{text}");
}
