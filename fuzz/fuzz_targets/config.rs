//! Fuzzes the huatuo-bamai.conf loader: no input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = huatuo_config::load_str("fuzz.conf", text);
});
