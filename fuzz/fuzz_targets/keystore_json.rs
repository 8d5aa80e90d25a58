//! A wallet keystore file (JSON): it parses and passes every field check,
//! or is refused. An accepted one has argon2 costs within the bound, and
//! writes back to JSON that parses as the same keystore. One with cheap
//! costs (at most 64 KiB and 2 passes, as the seed corpus's) is also
//! decrypted with the corpus's passphrase, which reaches the cipher and
//! the address check; dearer ones are not, to keep executions fast: at
//! the bound a derivation takes seconds, and the bound is what keeps a
//! crafted file from costing more.
#![no_main]

use klero_keystore::{KdfParams, Keystore};
use libfuzzer_sys::fuzz_target;

/// The passphrase of fuzz/seed.py's keystores.
const PASSPHRASE: &str = "fuzz";

fuzz_target!(|data: &[u8]| {
    let Ok(store) = Keystore::parse(data) else {
        return;
    };
    let (costs, max) = (store.kdf_params, KdfParams::MAX);
    assert!(costs.m_cost_kib <= max.m_cost_kib && costs.t_cost <= max.t_cost && costs.p_cost <= max.p_cost);
    let again = store.to_json().expect("an accepted keystore writes");
    assert_eq!(Keystore::parse(again.as_bytes()).expect("and reads back"), store);
    if costs.m_cost_kib <= 64
        && costs.t_cost <= 2
        && let Ok(key) = store.decrypt(PASSPHRASE)
    {
        assert_eq!(key.address().to_bech32(), store.address);
    }
});
