//! Fuzzes the rule parser and both diagnostic renderings: no input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(diags) = huatuo_dsl::parser::parse_file("fuzz.hto", text) {
        let owned = text.to_string();
        let _ = huatuo_dsl::render::render_human(&diags, &|_| Some(owned.clone()));
        let _ = huatuo_dsl::render::render_json(&diags);
    }
});
