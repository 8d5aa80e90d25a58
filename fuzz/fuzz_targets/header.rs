//! A header (inside blocks and equivocation evidence).
#![no_main]

use klero_chain::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = codec::decode_header(data) {
        assert_eq!(codec::encode(&header), data);
        let _ = header.pow_pre();
    }
});
