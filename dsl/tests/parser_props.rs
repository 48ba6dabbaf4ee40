//! `parse_file` never panics: not on arbitrary text, not on soups of the language's tokens.

use huatuo_dsl::parser::{parse_file, KEYWORDS};
use huatuo_dsl::render::{render_human, render_json};
use proptest::prelude::*;

/// Tokens besides the keywords (`huatuo_dsl::parser::KEYWORDS`): punctuation, operators,
/// names and literals.
const OTHER_TOKENS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ",",
    "=",
    ":",
    "::",
    ".",
    "*",
    "+",
    "-",
    "/",
    "%",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "=~",
    "!~",
    "x",
    "proc.stat",
    "ema",
    "config",
    "10",
    "10ms",
    "1.5s",
    "45%",
    "1500MiB/s",
    "µs",
    "10min",
    "\"s\"",
    "\"a\\\"b\"",
    "\"open",
    "\\q",
    "# c\n",
    "\n",
    " ",
    "\t",
];

fn soup() -> impl Strategy<Value = String> {
    let tokens: Vec<&'static str> = KEYWORDS.iter().chain(OTHER_TOKENS).copied().collect();
    prop::collection::vec(prop::sample::select(tokens), 0..60).prop_map(|toks| toks.join(" "))
}

/// A valid rule, the seed of the mangled inputs.
const BASE: &str = "event e {\n source bpf.x every 10s\n param t = config(\"K\", 10ms)\n where a > t and b !~ \"^x\"\n capture stack(kernel) as s\n cooldown backoff(1m, max: 3h) per pid\n limit 10 per 1s burst 20\n emit a = b * 2 counter help \"h\", *\n}\n";

/// The valid rule with garbage inserted somewhere.
fn mangled() -> impl Strategy<Value = String> {
    let base = BASE;
    (0..=base.len(), soup()).prop_map(move |(cut, extra)| {
        let cut = (0..=cut)
            .rev()
            .find(|&c| base.is_char_boundary(c))
            .unwrap_or(0);
        format!("{}{}{}", &base[..cut], extra, &base[cut..])
    })
}

fn check(text: &str) {
    match parse_file("p.hto", text) {
        Ok(file) => assert_eq!(file.path, "p.hto"),
        Err(diags) => {
            assert!(!diags.is_empty());
            for d in &diags {
                assert!(
                    d.span.start <= d.span.end && d.span.end <= text.len(),
                    "{d:?}"
                );
                assert!(d.span.line >= 1 && d.span.col >= 1);
            }
            let human = render_human(&diags, &|_| Some(text.to_string()));
            assert!(human.contains("p.hto:"));
            assert!(render_json(&diags).starts_with('['));
        }
    }
}

#[test]
fn the_seed_rule_is_valid() {
    assert!(parse_file("p.hto", BASE).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,300}") {
        check(&text);
    }

    #[test]
    fn token_soups_never_panic(text in soup()) {
        check(&text);
    }

    #[test]
    fn mangled_rules_never_panic(text in mangled()) {
        check(&text);
    }
}
