//! The hex text of `POST /txs`, parsed as the API parses it.
#![no_main]

use klero_chain::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = codec::decode_tx_hex(text);
    }
});
