//! A peer's sync response: what decodes keeps the limits, and each block
//! in it goes through the block decoder as the syncer does.
#![no_main]

use klero_chain::codec;
use klero_chain::sync_wire::{self, MAX_SYNC_BLOCKS, SyncResponse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(resp) = sync_wire::decode_response(data) {
        assert_eq!(codec::encode(&resp), data);
        if let SyncResponse::Blocks(blocks) = resp {
            assert!(blocks.len() <= MAX_SYNC_BLOCKS as usize);
            for bytes in blocks {
                let _ = codec::decode_block(&bytes);
            }
        }
    }
});
