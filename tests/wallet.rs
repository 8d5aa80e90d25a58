//! `klero wallet` as a user runs it: the real binary, a temp wallet dir,
//! and for the checks that need a chain, a real node on 127.0.0.1.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{Kind, Net};
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

#[test]
fn keystore_lifecycle_new_list_export_import() {
    let dir = tempfile::tempdir().expect("dir");
    let node = nowhere();
    let created: serde_json::Value = serde_json::from_str(&ok(&wallet(
        dir.path(),
        &node,
        &["new", "--name", "me", "--json"],
    )))
    .expect("json");
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
    net.start("n0", None, &[]);
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
