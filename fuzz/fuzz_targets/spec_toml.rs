//! A chain spec file: parses and validates, or is refused; what is
//! accepted writes back to TOML that reads as the same spec.
#![no_main]

use klero_chain::ChainSpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(spec) = ChainSpec::from_toml(text) {
        let again = spec.to_toml().expect("an accepted spec writes");
        assert_eq!(ChainSpec::from_toml(&again).expect("and reads back"), spec);
    }
});
