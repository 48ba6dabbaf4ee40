//! Help for an unknown key: the nearest known name, else the names the section does know.

use crate::section::Entry;
use huatuo_dsl::diag::did_you_mean;

/// `(parent, leaf)` of a dotted path; the parent of a top-level name is `""`.
fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('.').unwrap_or(("", path))
}

/// The hint for unknown `path`, a section when `is_section`, given every known entry.
pub(crate) fn unknown_key_help(entries: &[Entry], path: &str, is_section: bool) -> Option<String> {
    let (parent, leaf) = split(path);
    let same_kind = || {
        entries
            .iter()
            .filter(move |entry| entry.key.is_none() == is_section)
    };
    // 1. A misspelling of a name in the same section.
    let siblings = same_kind().filter(|entry| split(&entry.path).0 == parent);
    if let Some(near) = did_you_mean(leaf, siblings.map(|entry| split(&entry.path).1)) {
        return Some(format!(
            "did you mean `{}`?",
            crate::section::join(parent, near)
        ));
    }
    // 2. A name of another section: the closest one, sharing the longest prefix with `path`.
    if let Some(near) = did_you_mean(leaf, same_kind().map(|entry| split(&entry.path).1)) {
        let best = same_kind()
            .filter(|entry| split(&entry.path).1 == near)
            .max_by_key(|entry| common_prefix(&entry.path, path))?;
        return Some(format!("did you mean `{}`?", best.path));
    }
    // 3. Everything the section knows.
    let names: Vec<&str> = entries
        .iter()
        .filter(|entry| split(&entry.path).0 == parent)
        .map(|entry| split(&entry.path).1)
        .collect();
    let place = if parent.is_empty() {
        "the top level".to_string()
    } else {
        format!("`[{parent}]`")
    };
    (!names.is_empty()).then(|| format!("known names in {place}: {}", names.join(", ")))
}

/// Length in bytes of the common prefix of two paths.
fn common_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}
