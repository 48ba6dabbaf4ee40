//! Bounded property tests: no input makes the loader panic, and every diagnostic it returns
//! points inside the text.

use huatuo_config::{embedded_default, load_str};
use proptest::prelude::*;

fn check(text: &str) {
    if let Err(diags) = load_str("fuzz.conf", text) {
        assert!(!diags.is_empty());
        for d in diags {
            assert!(d.span.start <= text.len(), "{d:?}");
            assert!(d.span.line >= 1 && d.span.col >= 1, "{d:?}");
            assert!(d.span.line <= text.lines().count().max(1) + 1, "{d:?}");
        }
    }
}

/// One edit of the shipped file: replace a byte range with a fragment.
fn mutate(base: &str, at: usize, len: usize, fragment: &str) -> String {
    let mut start = at % (base.len() + 1);
    while !base.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (start + len).min(base.len());
    while !base.is_char_boundary(end) {
        end += 1;
    }
    format!("{}{}{}", &base[..start], fragment, &base[end..])
}

const FRAGMENTS: &[&str] = &[
    "",
    "=",
    "[",
    "]",
    "[[",
    "\"",
    "'",
    "-1",
    "1e400",
    "nan",
    "inf",
    "99999999999999999999",
    "[Log]",
    "[AutoTracing.CPUSys]",
    "Foo = 1",
    "\n",
    "{",
    "}",
    ",",
    ".",
    "(",
    "[\"(\"]",
    "= [[\"a\", \"(\"]]",
    "= { Field = 1 }",
    "\u{fffd}",
    "é",
    "\t",
    "#",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        check(&text);
    }

    #[test]
    fn toml_like_text_never_panics(text in "([A-Za-z.\\[\\]\"=, \n0-9{}-]){0,120}") {
        check(&text);
    }

    #[test]
    fn mutated_shipped_file_never_panics(
        edits in prop::collection::vec((any::<usize>(), 0usize..40, 0..FRAGMENTS.len()), 1..4)
    ) {
        let mut text = embedded_default().to_string();
        for (at, len, fragment) in edits {
            text = mutate(&text, at, len, FRAGMENTS[fragment]);
        }
        check(&text);
    }
}
