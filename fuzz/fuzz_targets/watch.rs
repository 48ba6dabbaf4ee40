//! Fuzzes the watch request body as the server reads it: JSON into `WatchRequest`, the filters
//! compiled, the compiled filter run on a record. No input may panic.
#![no_main]

use huatuo_http::watch::{Published, WatchFilter, WatchRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = serde_json::from_slice::<WatchRequest>(data) else {
        return;
    };
    let Ok(filter) = WatchFilter::compile(&request) else {
        return;
    };
    let record = serde_json::json!({"tracer_name": "oom", "hostname": "node-1", "region": "dev"});
    let _ = filter.matches(&Published::new("boot", 1, &record));
});
