//! The `prefix` query of `GET /metrics`: `?prefix=agent_&prefix=runqlat` serves only the
//! families whose name (without `huatuo_bamai_`) starts with one of the prefixes, so a reader
//! that needs a few families (the console) does not fetch every container's series.

use crate::api::error::ApiError;

/// Most prefixes one query may give.
const MAX_PREFIXES: usize = 16;

/// The prefixes of a raw query string (empty: every family). Only `prefix` keys are known,
/// and a prefix is 1 to 64 lower-case letters, digits or `_`.
pub fn prefixes(query: &str) -> Result<Vec<String>, ApiError> {
    let mut prefixes = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "prefix" {
            return Err(ApiError::invalid(format!(
                "{key}: unknown parameter (known: prefix)"
            )));
        }
        let valid = (1..=64).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(ApiError::invalid(
                "prefix: 1 to 64 lower-case letters, digits or _",
            ));
        }
        if prefixes.len() == MAX_PREFIXES {
            return Err(ApiError::invalid(format!(
                "prefix: at most {MAX_PREFIXES} prefixes"
            )));
        }
        prefixes.push(value.to_string());
    }
    Ok(prefixes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prefixes_and_names_bad_keys_and_values() {
        assert_eq!(prefixes("").unwrap(), Vec::<String>::new());
        assert_eq!(
            prefixes("prefix=agent_&prefix=runqlat").unwrap(),
            vec!["agent_", "runqlat"]
        );
        for (query, start) in [
            ("name=x", "name:"),
            ("prefix=", "prefix:"),
            ("prefix=Agent", "prefix:"),
            ("prefix=a%20b", "prefix:"),
        ] {
            let err = prefixes(query).unwrap_err();
            assert!(err.message.starts_with(start), "{query}: {}", err.message);
        }
        let many = vec!["prefix=a"; MAX_PREFIXES + 1].join("&");
        assert!(prefixes(&many).is_err());
    }
}
