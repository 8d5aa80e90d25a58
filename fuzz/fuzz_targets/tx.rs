//! A transaction from gossip: decodes or is refused, and its signature
//! check never panics.
#![no_main]

use klero_chain::{codec, ledger};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = codec::decode_tx(data) {
        assert_eq!(codec::encode(&tx), data);
        let _ = ledger::verify_tx(&tx, "klero-fuzz");
    }
});
