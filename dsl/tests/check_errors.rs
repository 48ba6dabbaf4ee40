//! One test per diagnostic code: the code, the place and the hint an operator reads.

mod check_support;

use check_support::{check_files, check_text, help, single};

#[test]
fn unknown_source_suggests_the_closest() {
    let d = single(
        "\nevent e {\n    source bpf.softirq_of\n    emit now\n}\n",
        "unknown-source",
        3,
        12,
    );
    assert!(
        help(&d).contains("did you mean `bpf.softirq_off`?"),
        "{d:#?}"
    );
}

#[test]
fn every_on_a_stream_source() {
    let d = single(
        "\nevent e {\n    source bpf.softirq_off every 1s\n    emit pid\n}\n",
        "every-on-stream",
        3,
        34,
    );
    assert!(d.message.contains("bpf.softirq_off is a stream source"));
}

#[test]
fn every_must_be_a_duration() {
    let d = single(
        "\nmetric m {\n    source proc.stat every 10\n    emit user\n}\n",
        "unit-mismatch",
        3,
        28,
    );
    assert_eq!(help(&d), "write 10ms");
}

#[test]
fn unknown_name_lists_fields_and_suggests() {
    let d = single(
        "\nevent e {\n    source bpf.softirq_off\n    where offtim > 1ms\n    emit pid\n}\n",
        "unknown-name",
        4,
        11,
    );
    assert!(help(&d).contains("did you mean `offtime`?"), "{d:#?}");
    assert!(help(&d).contains("offtime, comm, pid, cpu"), "{d:#?}");
}

#[test]
fn params_are_constant() {
    let d = single(
        "\nevent e {\n    source bpf.softirq_off\n    param p = pid + 1\n    emit p\n}\n",
        "not-constant",
        4,
        15,
    );
    assert!(d.message.contains("`pid` is a field"), "{d:#?}");
}

#[test]
fn where_is_stateless() {
    let d = single(
        "\nevent e {\n    source bpf.softirq_off\n    where delta(pid) > 0\n    emit pid\n}\n",
        "stateful-in-where",
        4,
        11,
    );
    assert_eq!(help(&d), "move this condition to `when`");
    let d = single(
        "\nevent e {\n    source bpf.softirq_off\n    let big = offtime > 1ms\n    where big\n    emit pid\n}\n",
        "stateful-in-where",
        5,
        11,
    );
    assert!(d.message.contains("`big` is a let binding"), "{d:#?}");
}

#[test]
fn unknown_function_suggests_a_builtin() {
    let d = single(
        "\nautotrace a {\n    source proc.stat\n    when delt(user) > 1s\n    emit user\n}\n",
        "unknown-function",
        4,
        10,
    );
    assert!(help(&d).contains("did you mean `delta`?"), "{d:#?}");
}

#[test]
fn arity_errors_name_the_problem() {
    let d = single(
        "\nautotrace a {\n    source proc.stat\n    when ema(user) > 1s\n    emit user\n}\n",
        "arity",
        4,
        10,
    );
    assert!(d.message.contains("missing its argument `n`"), "{d:#?}");
    assert_eq!(help(&d), "usage: ema(x, n)");
    let d = single(
        "\nautotrace a {\n    source proc.stat\n    when abs(user, 2) > 1s\n    emit user\n}\n",
        "arity",
        4,
        20,
    );
    assert!(d.message.contains("abs() takes 1 arguments"), "{d:#?}");
    let diags = check_text(
        "\nautotrace a {\n    source proc.stat\n    when ema(user, m: 5) > 1s\n    emit user\n}\n",
    );
    let found: Vec<_> = diags
        .iter()
        .map(|d| (d.code, d.span.col, d.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("arity", 10, "ema() is missing its argument `n`"),
            ("arity", 20, "ema() has no argument `m`"),
        ]
    );
}

#[test]
fn duration_compared_with_percentage() {
    let d = single(
        "\nevent e {\n    source bpf.softirq_off\n    where offtime > 45%\n    emit pid\n}\n",
        "unit-mismatch",
        4,
        21,
    );
    assert_eq!(d.message, "offtime is a duration, 45% is a percentage");
}

#[test]
fn unitless_number_against_a_duration() {
    let d = single(
        "\nevent e {\n    source bpf.softirq_off\n    where offtime > 10\n    emit pid\n}\n",
        "unit-mismatch",
        4,
        21,
    );
    assert_eq!(d.message, "offtime is a duration, 10 is a plain number");
    assert_eq!(help(&d), "write 10ms");
}

#[test]
fn products_of_incompatible_dimensions() {
    let d = single(
        "\nmetric m {\n    source proc.stat\n    emit x = user * system\n}\n",
        "unit-mismatch",
        4,
        21,
    );
    assert!(d
        .message
        .contains("cannot multiply user (a duration) by system (a duration)"));
    single(
        "\nmetric m {\n    source proc.stat\n    emit x = user + 5%\n}\n",
        "unit-mismatch",
        4,
        21,
    );
}

#[test]
fn rate_of_a_percentage() {
    let d = single(
        "\nmetric m {\n    source proc.stat\n    emit x = rate(percent(user, total))\n}\n",
        "unit-mismatch",
        4,
        19,
    );
    assert!(
        d.message
            .contains("must be a plain number or a size in bytes"),
        "{d:#?}"
    );
}

#[test]
fn strings_are_not_numbers() {
    let d = single(
        "\nevent e {\n    source bpf.softirq_off\n    where comm > 5\n    emit pid\n}\n",
        "type-mismatch",
        4,
        18,
    );
    assert_eq!(d.message, "comm is a string, 5 is a plain number");
}

#[test]
fn histograms_are_not_numbers() {
    let d = single(
        "\nmetric m {\n    source bpf.runqlat\n    emit x = latency + 1ms\n}\n",
        "type-mismatch",
        4,
        14,
    );
    assert!(d.message.contains("latency is a histogram"), "{d:#?}");
    assert!(help(&d).contains("histogram"), "{d:#?}");
}

#[test]
fn lists_are_not_scalars() {
    let d = single(
        "\nautotrace a {\n    source proc.stat\n    let w = window(user, 3)\n    when w > 1s\n    emit user\n}\n",
        "type-mismatch",
        5,
        10,
    );
    assert!(
        help(&d).contains("first, last, min, max, avg, sum or len"),
        "{d:#?}"
    );
}

#[test]
fn conditions_need_booleans() {
    let d = single(
        "\nautotrace a {\n    source proc.stat\n    when user and idle > 1s\n    emit user\n}\n",
        "type-mismatch",
        4,
        10,
    );
    assert!(
        d.message
            .contains("`and` needs a boolean, but user is a duration"),
        "{d:#?}"
    );
}

#[test]
fn regex_must_compile_and_be_literal() {
    let d = single(
        "\nevent e {\n    source bpf.softirq_off\n    where comm =~ \"(ksoftirqd\"\n    emit pid\n}\n",
        "bad-regex",
        4,
        19,
    );
    assert!(help(&d).contains("unclosed group"), "{d:#?}");
    single(
        "\nevent e {\n    source bpf.softirq_off\n    where comm =~ \"\\\\w{1000}{1000}\"\n    emit pid\n}\n",
        "bad-regex",
        4,
        19,
    );
    single(
        "\nevent e {\n    source bpf.softirq_off\n    where comm =~ comm\n    emit pid\n}\n",
        "type-mismatch",
        4,
        19,
    );
    single(
        "\nevent e {\n    source bpf.softirq_off\n    where matches_any(comm, [\"[\"])\n    emit pid\n}\n",
        "bad-regex",
        4,
        30,
    );
}

#[test]
fn unknown_config_key_suggests() {
    let d = single(
        "\nevent e {\n    source bpf.softirq_off\n    param t = config(\"EventTracing.Softirq.DisabledThreshhold\", 10ms)\n    emit t\n}\n",
        "unknown-config-key",
        4,
        22,
    );
    assert!(
        help(&d).contains("did you mean `EventTracing.Softirq.DisabledThreshold`?"),
        "{d:#?}"
    );
}

#[test]
fn config_default_must_fit_the_key() {
    let d = single(
        "\nevent e {\n    source bpf.softirq_off\n    param t = config(\"EventTracing.Softirq.DisabledThreshold\", 10)\n    emit t\n}\n",
        "unit-mismatch",
        4,
        64,
    );
    assert_eq!(help(&d), "write 10ms");
    single(
        "\nevent e {\n    source bpf.softirq_off\n    param t = config(\"Region\", 1)\n    emit t\n}\n",
        "type-mismatch",
        4,
        32,
    );
}

#[test]
fn unknown_script_function() {
    let d = single(
        "\nautotrace a {\n    source proc.stat\n    script s = window::slop(user)\n    emit s\n}\n",
        "unknown-script-fn",
        4,
        16,
    );
    assert!(help(&d).contains("did you mean `window::slope`?"), "{d:#?}");
    single(
        "\nautotrace a {\n    source proc.stat\n    script s = window::slope(user, 2)\n    emit s\n}\n",
        "arity",
        4,
        16,
    );
}

#[test]
fn duplicate_rules_across_files_point_at_the_first() {
    let a = "\nevent dup {\n    source bpf.softirq_off\n    emit pid\n}\n";
    let b = "\n\nautotrace dup {\n    source proc.stat\n    when user > 0\n    emit user\n}\n";
    let diags = check_files(&[("rules/a.hto", a), ("rules/b.hto", b)]);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0].code, "duplicate-rule");
    assert_eq!(diags[0].location(), "rules/b.hto:3:11");
    assert!(help(&diags[0]).contains("first defined at rules/a.hto:2:7"));
}

#[test]
fn duplicate_bindings() {
    single(
        "\nautotrace a {\n    source proc.stat\n    param x = 1\n    let x = user\n    emit user\n}\n",
        "duplicate-binding",
        5,
        9,
    );
}

#[test]
fn rules_must_produce_something() {
    let d = single(
        "\nmetric m {\n    source proc.stat\n}\n",
        "missing-output",
        2,
        8,
    );
    assert!(help(&d).contains("`emit` or `histogram`"));
    single(
        "\nevent e {\n    source bpf.softirq_off\n    capture stack(kernel)\n}\n",
        "missing-output",
        2,
        7,
    );
}

#[test]
fn histogram_bounds_increase_in_the_field_unit() {
    let d = single(
        "\nmetric m {\n    source bpf.runqlat\n    histogram latency zones [10ms, 50ms, 20ms]\n}\n",
        "bad-histogram",
        4,
        42,
    );
    assert!(d.label.contains("not above 50ms"), "{d:#?}");
    single(
        "\nmetric m {\n    source bpf.runqlat\n    histogram latency zones [10ms, 20KiB]\n}\n",
        "unit-mismatch",
        4,
        36,
    );
    single(
        "\nmetric m {\n    source bpf.softirq_off\n    histogram comm zones [1, 2]\n}\n",
        "type-mismatch",
        4,
        15,
    );
}

#[test]
fn labels_must_belong_to_the_source() {
    let d = single(
        "\nmetric m {\n    source proc.diskstats\n    labels disc\n    emit reads\n}\n",
        "unknown-label",
        4,
        12,
    );
    assert!(help(&d).contains("did you mean `disk`?"), "{d:#?}");
}

#[test]
fn container_scope_needs_a_per_container_source() {
    let d = single(
        "\nmetric m {\n    source proc.stat\n    scope host, container\n    emit user\n}\n",
        "bad-scope",
        4,
        17,
    );
    assert!(d
        .message
        .contains("proc.stat does not report per container"));
    let d = single(
        "\nmetric m {\n    source cgroup.cpu\n    scope hots\n    emit usage\n}\n",
        "bad-scope",
        4,
        11,
    );
    assert!(help(&d).contains("did you mean `host`?"), "{d:#?}");
}

#[test]
fn clauses_that_do_not_fit_the_kind() {
    let d = single(
        "\nmetric m {\n    source bpf.softirq_off\n    capture stack(kernel)\n    emit pid\n}\n",
        "not-for-kind",
        4,
        13,
    );
    assert_eq!(d.message, "`capture` cannot be used in a metric rule");
    single(
        "\nmetric m {\n    source proc.stat\n    cooldown 1s\n    emit user\n}\n",
        "not-for-kind",
        4,
        5,
    );
    single(
        "\nmetric m {\n    source proc.stat\n    emit user\n    issues config(\"IssuesList\", [])\n}\n",
        "not-for-kind",
        5,
        12,
    );
    single(
        "\nevent e {\n    source bpf.softirq_off\n    emit *\n}\n",
        "not-for-kind",
        4,
        10,
    );
    single(
        "\nevent e {\n    source bpf.runqlat\n    histogram latency zones [1ms]\n    emit now\n}\n",
        "not-for-kind",
        4,
        5,
    );
}

#[test]
fn emitted_names_must_resolve() {
    let d = single(
        "\nevent e {\n    source bpf.softirq_off\n    emit pid, stak\n}\n",
        "unknown-name",
        4,
        15,
    );
    assert!(help(&d).contains("did you mean `pid`?") || help(&d).contains("fields:"));
    single(
        "\nevent e {\n    source bpf.softirq_off\n    emit pid, pid\n}\n",
        "duplicate-emit",
        4,
        15,
    );
    single(
        "\nmetric m {\n    source bpf.softirq_off\n    emit comm\n}\n",
        "type-mismatch",
        4,
        10,
    );
}

#[test]
fn capture_results_are_only_for_emit() {
    let d = single(
        "\nautotrace a {\n    source proc.stat\n    capture profile(host, 1s)\n    when flamedata\n    emit user\n}\n",
        "unknown-name",
        5,
        10,
    );
    assert!(
        d.message.contains("`flamedata` is a capture result"),
        "{d:#?}"
    );
}

#[test]
fn unknown_capture_suggests() {
    let d = single(
        "\nautotrace a {\n    source proc.stat\n    capture profil(host, 1s)\n    emit user\n}\n",
        "unknown-capture",
        4,
        13,
    );
    assert!(help(&d).contains("did you mean `profile`?"), "{d:#?}");
}

#[test]
fn source_specific_capture_on_another_source() {
    let d = single(
        "\nautotrace a {\n    source proc.stat\n    capture stack(kernel)\n    emit user\n}\n",
        "capture-unsupported",
        4,
        13,
    );
    assert_eq!(d.message, "proc.stat cannot capture `stack`");
    assert_eq!(help(&d), "proc.stat supplies no source-specific captures");
}

#[test]
fn capture_arguments_follow_the_schema() {
    let d = single(
        "\nevent e {\n    source bpf.softirq_off\n    capture stack(kernal)\n    emit pid\n}\n",
        "bad-choice",
        4,
        19,
    );
    assert!(help(&d).contains("did you mean `kernel`?"), "{d:#?}");
    single(
        "\nautotrace a {\n    source proc.stat\n    capture profile(scope: host, duration: 5)\n    emit user\n}\n",
        "unit-mismatch",
        4,
        44,
    );
    single(
        "\nautotrace a {\n    source proc.stat\n    capture profile(scope: host)\n    emit user\n}\n",
        "arity",
        4,
        13,
    );
    single(
        "\nautotrace a {\n    source proc.stat\n    capture file(path: 3)\n    emit user\n}\n",
        "type-mismatch",
        4,
        24,
    );
}

#[test]
fn cooldown_limit_and_issues_have_types() {
    single(
        "\nevent e {\n    source bpf.softirq_off\n    cooldown 10\n    emit pid\n}\n",
        "unit-mismatch",
        4,
        14,
    );
    single(
        "\nevent e {\n    source bpf.softirq_off\n    cooldown backoff(10m, factor: 2s)\n    emit pid\n}\n",
        "unit-mismatch",
        4,
        35,
    );
    single(
        "\nevent e {\n    source bpf.softirq_off\n    cooldown backoff(factor: 2)\n    emit pid\n}\n",
        "arity",
        4,
        5,
    );
    let d = single(
        "\nevent e {\n    source bpf.softirq_off\n    cooldown 1m per cpus\n    emit pid\n}\n",
        "unknown-label",
        4,
        21,
    );
    assert!(help(&d).contains("did you mean `cpu`?"), "{d:#?}");
    single(
        "\nevent e {\n    source bpf.softirq_off\n    limit 10 per 1\n    emit pid\n}\n",
        "unit-mismatch",
        4,
        18,
    );
    single(
        "\nevent e {\n    source bpf.softirq_off\n    issues config(\"Region\", \"x\")\n    emit pid\n}\n",
        "type-mismatch",
        4,
        12,
    );
}

#[test]
fn diagnostics_are_sorted_by_place() {
    let diags = check_text(
        "\nevent e {\n    source bpf.softirq_off\n    where nope > 1 and comm > 1\n    emit zzz\n}\n",
    );
    let places: Vec<_> = diags.iter().map(|d| (d.span.line, d.span.col)).collect();
    let mut sorted = places.clone();
    sorted.sort();
    assert_eq!(places, sorted);
    assert_eq!(diags.len(), 3, "{diags:#?}");
}

#[test]
fn script_bindings_must_call_a_script() {
    let text = "\nautotrace a {\n    source proc.stat\n    script s = window::slope(user)\n    emit s\n}\n";
    let mut file = huatuo_dsl::parser::parse_file("rules/test.hto", text).expect("parses");
    // The grammar only lets `file::fn(...)` through; a tree built by other means may not.
    let binding = &mut file.rules[0].lets[0];
    binding.value.kind = huatuo_dsl::ast::ExprKind::Name("user".into());
    let diags = huatuo_dsl::check::check(&[file], &check_support::catalog());
    let codes: Vec<_> = diags.iter().map(|d| (d.code, d.span.line)).collect();
    assert_eq!(codes, [("not-a-script", 4)]);
}
