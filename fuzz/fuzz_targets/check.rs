//! Fuzzes the checker on whatever parses, against the config key catalog: no input may panic.
#![no_main]

use huatuo_dsl::catalog::Catalog;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = huatuo_dsl::parser::parse_file("fuzz.hto", text) else {
        return;
    };
    let mut catalog = Catalog::new();
    for key in huatuo_config::key_schemas() {
        catalog.add_config_key(key);
    }
    let _ = huatuo_dsl::check::check(&[file], &catalog);
});
