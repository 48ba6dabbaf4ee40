//! Regular expressions built once with size limits, and pattern lists read from values.

use huatuo_dsl::value::Value;
use regex::{Regex, RegexBuilder};

/// Upper bound on the compiled size of one regex (bytes).
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Upper bound on the lazy DFA cache of one regex (bytes).
const REGEX_DFA_LIMIT: usize = 2 << 20;

/// Compiles a regex with the engine's size limits.
pub fn build(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_LIMIT)
        .build()
        .map_err(|e| format!("invalid regex {pattern:?}: {e}"))
}

/// A regex or a list of regexes (a string, a list of strings, or a JSON array of strings).
/// An empty pattern is no pattern, as an empty `Included`/`Excluded` of huatuo-bamai.conf is no
/// rule: `exclude ""` drops nothing and `matches_any(x, "")` is false.
pub fn build_list(value: &Value) -> Result<Vec<Regex>, String> {
    let strings: Vec<&str> = match value {
        Value::Null => Vec::new(),
        Value::Str(s) => vec![s.as_str()],
        Value::List(items) => items.iter().map(expect_str).collect::<Result<_, _>>()?,
        Value::Json(serde_json::Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                serde_json::Value::String(s) => Ok(s.as_str()),
                other => Err(format!("a pattern must be a string, found {other}")),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(format!(
                "expected a regex or a list of regexes, found {}",
                crate::ops::type_name(other)
            ))
        }
    };
    strings
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(build)
        .collect()
}

fn expect_str(value: &Value) -> Result<&str, String> {
    value.as_str().ok_or_else(|| {
        format!(
            "a pattern must be a string, found {}",
            crate::ops::type_name(value)
        )
    })
}

/// Whether any string inside `value` (a string, or strings in lists and JSON) matches `re`.
pub fn any_string_matches(value: &Value, re: &Regex) -> bool {
    match value {
        Value::Str(s) => re.is_match(s),
        Value::List(items) => items.iter().any(|item| any_string_matches(item, re)),
        Value::Json(json) => json_matches(json, re),
        _ => false,
    }
}

fn json_matches(json: &serde_json::Value, re: &Regex) -> bool {
    match json {
        serde_json::Value::String(s) => re.is_match(s),
        serde_json::Value::Array(items) => items.iter().any(|item| json_matches(item, re)),
        serde_json::Value::Object(map) => map.values().any(|item| json_matches(item, re)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_nested_strings() {
        let res = build_list(&Value::List(vec![
            Value::Str("^a".into()),
            Value::Str("b$".into()),
        ]));
        assert_eq!(res.map(|r| r.len()), Ok(2));
        let re = build("io_schedule").unwrap();
        let stack = Value::List(vec![
            Value::Str("schedule".into()),
            Value::Str("io_schedule+0x18".into()),
        ]);
        assert!(any_string_matches(&stack, &re));
        assert!(!any_string_matches(&Value::Int(3), &re));
    }

    #[test]
    fn empty_patterns_are_no_patterns() {
        assert_eq!(
            build_list(&Value::Str(String::new())).map(|r| r.len()),
            Ok(0)
        );
        let mixed = Value::List(vec![Value::Str(String::new()), Value::Str("^lo$".into())]);
        assert_eq!(build_list(&mixed).map(|r| r.len()), Ok(1));
    }

    #[test]
    fn bad_regex_is_an_error_naming_it() {
        let err = build("a(").unwrap_err();
        assert!(err.contains("\"a(\""), "{err}");
    }
}
