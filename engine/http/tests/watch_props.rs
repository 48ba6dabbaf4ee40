//! The watch request body as a network client may send it: any bytes, any JSON, any filter
//! field, any regex. Parsing and compiling never panic, an error names the field, and a
//! compiled filter runs on any record. (Stand-in for the `watch` cargo-fuzz target.)

use huatuo_http::watch::{WatchFilter, WatchRequest, FILTER_FIELDS};
use proptest::prelude::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// Pieces regexes are made of, hostile ones included (nested repetition, huge counts).
const REGEX_PARTS: &[&str] = &[
    "a",
    ".",
    "*",
    "+",
    "?",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "|",
    "^",
    "$",
    "\\",
    "\\w",
    "\\d",
    "{1000}",
    "{1,100000}",
    "(a*)*",
    "[^x]",
    "(?i)",
    "\\p{L}",
    "é",
    "\u{0}",
];

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(FILTER_FIELDS).prop_map(str::to_string),
        "[a-z_]{0,12}",
    ]
}

fn regex() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(REGEX_PARTS), 0..12).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bytes_are_parsed_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(request) = serde_json::from_slice::<WatchRequest>(&bytes) {
            let _ = WatchFilter::compile(&request);
        }
    }

    #[test]
    fn any_filters_compile_or_name_their_field(
        filters in prop::collection::btree_map(field(), regex(), 0..5),
        record in prop::collection::btree_map(field(), "[ -~]{0,20}", 0..5),
    ) {
        let body = serde_json::to_vec(&json!({ "filters": filters })).unwrap();
        let request: WatchRequest = serde_json::from_slice(&body).unwrap();
        let started = Instant::now();
        match WatchFilter::compile(&request) {
            Ok(filter) => {
                prop_assert!(filters.keys().all(|f| FILTER_FIELDS.contains(&f.as_str())));
                let _ = filter.matches_record(&json!(record));
            }
            Err(message) => {
                prop_assert!(message.starts_with("filters."), "{}", message);
                prop_assert!(filters.keys().any(|f| message.starts_with(&format!("filters.{f}:"))), "{}", message);
            }
        }
        // Regex size limits keep even hostile patterns cheap to compile.
        prop_assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }

    #[test]
    fn unknown_top_level_keys_are_refused(key in "[a-z]{1,8}") {
        prop_assume!(key != "filters");
        let body = serde_json::to_vec(&json!({ key: {} })).unwrap();
        prop_assert!(serde_json::from_slice::<WatchRequest>(&body).is_err());
    }
}
