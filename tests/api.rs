//! The HTTP API of a real `klero node` on 127.0.0.1: its OpenAPI document,
//! the addresses file that port 0 needs, and errors that are always the
//! documented JSON. `.ci/run` also runs schemathesis against it
//! (`.ci/api-conformance`).

mod common;

use std::time::Duration;

use common::{Kind, Net};
use klero::api::ErrorBody;
use klero::node::{ADDRESSES_FILE, Addresses};

fn get(url: &str) -> reqwest::blocking::Response {
    reqwest::blocking::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .expect("the node answers")
}

#[test]
fn openapi_addresses_and_json_errors() {
    let mut net = Net::new(Kind::Pos);
    net.start("n0", None, &[]);
    let node = &net.nodes[0];
    let api = node.api_url();

    let doc: serde_json::Value = get(&format!("{api}/openapi.json"))
        .json()
        .expect("a JSON document");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{doc}"
    );
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(String::as_str)
        .collect();
    for path in [
        "/status",
        "/blocks/{height}",
        "/blocks/id/{id}",
        "/accounts/{address}",
        "/txs",
        "/metrics",
        "/txs/{id}",
        "/accounts/{address}/txs",
        "/blocks",
        "/reorgs",
        "/peers",
        "/proposers",
    ] {
        assert!(paths.contains(&path), "{path} missing from {paths:?}");
    }
    // The examples are real on this node: its genesis block answers.
    let genesis = node.block(0).expect("genesis").id;
    let example = &doc["paths"]["/blocks/id/{id}"]["get"]["parameters"][0]["example"];
    assert_eq!(example.as_str(), Some(genesis.as_str()));

    // The addresses file names what the node bound, as /status reports it.
    let addresses = Addresses::read(&node.data_dir).expect("addresses");
    assert_ne!(addresses.api.port(), 0);
    let status = node.status().expect("status");
    assert_eq!(status.listen, addresses.p2p);

    // A path segment that is not UTF-8 gets the JSON error body too.
    for path in [
        "/accounts/%FF",
        "/blocks/%FF",
        "/blocks/id/%FF",
        "/blocks/x",
        "/accounts/klero1x",
        "/txs/xyz",
        "/blocks?limit=0",
        "/blocks?limit=101",
        "/blocks?before=-1",
        "/blocks?before=9223372036854775808",
        "/accounts/klero1x/txs",
    ] {
        let response = get(&format!("{api}{path}"));
        assert_eq!(response.status(), 400, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .is_ok_and(|c| c.starts_with("application/json")),
            "{path}: {:?}",
            response.headers()["content-type"]
        );
        let body: ErrorBody = response.json().expect("an error body");
        assert!(!body.error.is_empty());
    }

    // The new reads answer on an empty chain: genesis is the only block,
    // an unknown transaction is "unknown", a page of history is empty.
    let list: klero::api::overview::BlockList = get(&format!("{api}/blocks")).json().expect("list");
    assert_eq!(list.blocks.len(), 1);
    assert_eq!(list.blocks[0].id, genesis);
    assert_eq!(list.next_before, None);
    let unknown: klero::api::history::TxStatus = get(&format!("{api}/txs/{}", "ab".repeat(32)))
        .json()
        .expect("tx status");
    assert_eq!(unknown.state, klero::api::history::TxState::Unknown);
    let alice = klero_chain::Keypair::dev("alice").address().to_bech32();
    let history: klero::api::history::AccountTxs = get(&format!("{api}/accounts/{alice}/txs?limit=5"))
        .json()
        .expect("history");
    assert!(history.txs.is_empty() && history.next_before.is_none());
    for path in ["/reorgs", "/peers", "/proposers"] {
        assert_eq!(get(&format!("{api}{path}")).status(), 200, "{path}");
    }

    // The explorer page and its assets, with a policy that allows no other origin.
    for (path, kind) in [
        ("/", "text/html"),
        ("/explorer", "text/html"),
        ("/explorer/app.js", "text/javascript"),
        ("/explorer/style.css", "text/css"),
    ] {
        let response = get(&format!("{api}{path}"));
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| response.headers()[name].to_str().unwrap_or_default().to_owned();
        assert!(header("content-type").starts_with(kind), "{path}");
        assert!(
            header("content-security-policy").starts_with("default-src 'none'"),
            "{path}"
        );
    }

    // A clean stop exits 0 and takes the addresses file away.
    let data_dir = node.data_dir.clone();
    let status = net.nodes[0].terminate().expect("exit status");
    assert!(status.success(), "SIGTERM exit: {status}");
    assert!(!data_dir.join(ADDRESSES_FILE).exists());
}
