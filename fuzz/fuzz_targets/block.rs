//! A block from gossip, sync or the store: decodes or is refused, and
//! what decodes encodes back to the same bytes (one value, one encoding).
#![no_main]

use klero_chain::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(block) = codec::decode_block(data) {
        assert_eq!(codec::encode(&block), data);
        let _ = block.seal().id();
    }
});
