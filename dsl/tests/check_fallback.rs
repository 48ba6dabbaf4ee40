//! `fallback for RULE`: the rule named must exist with the same kind, be no fallback itself,
//! have no other fallback and read another source, and both must produce the same output.

mod check_support;

use check_support::{check_files, check_text, help, single};
use huatuo_dsl::parser::parse_file;

const PREFERRED: &str = "
event lockup {
    source bpf.softirq_off
    capture tasks(state: \"R\") as frames
    emit pid, comm, offtime, frames
}
";

/// A fallback `name` for `lockup` reading proc.stat, with the same fields.
fn stat_fallback(name: &str) -> String {
    format!(
        "event {name} {{
    fallback for lockup
    source proc.stat
    capture tasks(state: \"R\") as frames
    emit pid = 0, comm = \"\", offtime = system, frames
}}
"
    )
}

#[test]
fn a_fallback_with_the_same_fields_checks_clean() {
    let text = format!("{PREFERRED}\n{}", stat_fallback("lockup_stat"));
    let diags = check_text(&text);
    assert!(diags.is_empty(), "{diags:#?}");
}

#[test]
fn the_clause_parses_into_the_rule() {
    let file = parse_file(
        "t.hto",
        "event b {\n  source proc.stat\n  fallback for a\n  emit user\n}\n",
    )
    .expect("parses");
    let rule = &file.rules[0];
    let target = rule.fallback.as_ref().expect("fallback");
    assert_eq!(
        (target.name.as_str(), target.span.line, target.span.col),
        ("a", 3, 16)
    );
    assert_eq!(rule.output_name(), "a");
    // `for` is not reserved: it names a rule like any word.
    let file = parse_file("t.hto", "event for {\n  source proc.stat\n  emit user\n}\n")
        .expect("`for` is a name");
    assert_eq!(file.rules[0].output_name(), "for");
}

#[test]
fn a_second_fallback_clause_is_a_duplicate_clause() {
    let diags = parse_file(
        "t.hto",
        "event b {\n  source proc.stat\n  fallback for a\n  fallback for c\n  emit user\n}\n",
    )
    .expect_err("two fallback clauses");
    assert_eq!(diags[0].code, "duplicate-clause");
    assert_eq!((diags[0].span.line, diags[0].span.col), (4, 3));
}

#[test]
fn an_unknown_rule_is_reported_at_its_name_with_a_suggestion() {
    let text = format!(
        "{PREFERRED}
event lockup_stat {{
    fallback for lockpu
    source proc.stat
    emit pid = 0
}}
"
    );
    let d = single(&text, "unknown-rule", 9, 18);
    assert!(d.message.contains("no event rule `lockpu`"), "{d:#?}");
    assert_eq!(help(&d), "did you mean `lockup`?");
}

#[test]
fn a_rule_of_another_kind_is_not_a_match() {
    let text = "
metric lockup {
    source bpf.softirq_off
    emit total = total(1) counter
}
event lockup_stat {
    fallback for lockup
    source proc.stat
    emit user
}
";
    let d = single(text, "unknown-rule", 7, 18);
    assert!(
        help(&d).contains("`lockup` is a metric rule; a fallback stands in for an event rule"),
        "{d:#?}"
    );
}

#[test]
fn a_rule_cannot_be_its_own_fallback() {
    let d = single(
        "\nevent a {\n    fallback for a\n    source proc.stat\n    emit user\n}\n",
        "bad-fallback",
        3,
        18,
    );
    assert!(d.message.contains("its own fallback"), "{d:#?}");
}

#[test]
fn a_fallback_of_a_fallback_is_rejected() {
    let text = format!(
        "{PREFERRED}
{}event lockup_disk {{
    fallback for lockup_stat
    source proc.diskstats
    emit pid = 0
}}
",
        stat_fallback("lockup_stat")
    );
    let diags = check_text(&text);
    let chain: Vec<_> = diags
        .iter()
        .filter(|d| d.message.contains("is itself a fallback"))
        .collect();
    assert_eq!(chain.len(), 1, "{diags:#?}");
    assert_eq!((chain[0].span.line, chain[0].span.col), (15, 18));
    assert!(
        help(chain[0]).contains("rules/test.hto:8:7"),
        "{:#?}",
        chain[0]
    );
}

#[test]
fn a_fallback_reads_another_source() {
    let text = format!(
        "{PREFERRED}
event lockup_again {{
    fallback for lockup
    source bpf.softirq_off
    capture tasks(state: \"R\") as frames
    emit pid, comm, offtime, frames
}}
"
    );
    let d = single(&text, "bad-fallback", 9, 18);
    assert!(d.message.contains("reads bpf.softirq_off too"), "{d:#?}");
}

#[test]
fn a_rule_has_at_most_one_fallback() {
    let diags = check_files(&[
        ("rules/a.hto", PREFERRED),
        ("rules/b.hto", &stat_fallback("first")),
        ("rules/c.hto", &stat_fallback("second")),
    ]);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    let d = &diags[0];
    assert_eq!(
        (d.code, d.path.as_str(), d.span.line, d.span.col),
        ("bad-fallback", "rules/c.hto", 2, 18)
    );
    assert!(help(d).contains("`first` at rules/b.hto:1:7"), "{d:#?}");
}

#[test]
fn the_records_must_have_the_same_fields_and_types() {
    let text = format!(
        "{PREFERRED}
event lockup_stat {{
    fallback for lockup
    source proc.stat
    emit pid = \"x\", offtime = system, user
}}
"
    );
    let d = single(&text, "bad-fallback", 9, 18);
    for part in [
        "`comm` is missing (`lockup` emits it)",
        "`frames` is missing",
        "`pid` is a string here but a plain number in `lockup`",
        "`user` is extra (`lockup` does not emit it)",
    ] {
        assert!(d.message.contains(part), "{part}: {d:#?}");
    }
    assert!(!d.message.contains("`offtime`"), "{d:#?}");
}

#[test]
fn families_must_have_the_same_names_types_and_labels() {
    let text = "
metric lockup {
    source bpf.softirq_off
    labels cpu
    emit total = total(1) counter
}
metric lockup_stat {
    fallback for lockup
    source proc.stat
    emit total = total(1)
}
";
    let d = single(text, "bad-fallback", 8, 18);
    assert!(
        d.message
            .contains("`total` is a gauge of a plain number here but a counter of a plain number"),
        "{d:#?}"
    );
    assert!(d.message.contains("the `labels` clauses differ"), "{d:#?}");
    let clean = "
metric lockup {
    source bpf.softirq_off
    help \"lockups\"
    emit total = total(1) counter
}
metric lockup_stat {
    fallback for lockup
    source proc.stat
    help \"lockups (from /proc/stat)\"
    emit total = total(1) counter
}
";
    assert!(check_text(clean).is_empty());
}
