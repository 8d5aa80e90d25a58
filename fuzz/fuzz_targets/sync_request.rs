//! A peer's sync request: what decodes keeps the count limit.
#![no_main]

use klero_chain::codec;
use klero_chain::sync_wire::{self, MAX_SYNC_BLOCKS, SyncRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = sync_wire::decode_request(data) {
        assert_eq!(codec::encode(&req), data);
        if let SyncRequest::Blocks { count, .. } = req {
            assert!((1..=MAX_SYNC_BLOCKS).contains(&count));
        }
    }
});
