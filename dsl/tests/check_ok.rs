//! Rules that use each feature correctly check without any diagnostic.

mod check_support;

use check_support::{assert_clean, check_text, errors};
use huatuo_dsl::check::{infer_file, Ty};
use huatuo_dsl::parser::parse_file;
use huatuo_dsl::units::Dim;

#[test]
fn softirq_event_from_the_design() {
    assert_clean(
        r#"
event softirq_tracing {
    source   bpf.softirq_off
    param    threshold = config("EventTracing.Softirq.DisabledThreshold", 10ms)
    where    offtime > threshold and comm !~ "^(ksoftirqd|swapper)"
    capture  stack(kernel)
    cooldown none
    limit    100 per 1s burst 200
    emit     offtime, threshold, comm, pid, cpu, now, stack
}
"#,
    );
}

#[test]
fn runqlat_histogram_metric_with_container_scope() {
    assert_clean(
        r#"
metric runqlat_latency {
    source    bpf.runqlat
    histogram latency zones [10ms, 20ms, 50ms] label zone
    scope     host, container
    labels    container_id
    help      "cpu run queue latency"
}
"#,
    );
}

#[test]
fn cpusys_autotrace_with_deltas_and_profile() {
    assert_clean(
        r#"
autotrace cpusys {
    source   proc.stat every config("AutoTracing.CPUSys.Interval", 10s)
    param    sys_threshold = config("AutoTracing.CPUSys.SysThreshold", 45%)
    param    deltasys_threshold = config("AutoTracing.CPUSys.DeltaSysThreshold", 20%)
    let      sys = percent(delta(system), delta(total))
    when     sys > sys_threshold and delta(sys) > deltasys_threshold
    capture  profile(scope: host, duration: config("AutoTracing.CPUSys.RunTracingToolTimeout", 10s))
    cooldown backoff(10m, factor: 2, max: 3h, reset: 3h)
    emit     now_sys = sys, sys_threshold, deltasys = delta(sys), deltasys_threshold, flamedata
}
"#,
    );
}

#[test]
fn memburst_window_and_open_fields() {
    assert_clean(
        r#"
autotrace memburst {
    source   cgroup.memory_stat every 1s
    let      history = window(anon, config("AutoTracing.MemoryBurst.HistoryWindowLength", 60))
    when     anon >= 2 * first(history) and len(history) >= 60 and anon > 1GiB
    capture  top(by: rss, n: 10) as top_rss
    cooldown 1m per container_id
    emit     anon, oldest = first(history), top_rss
}
"#,
    );
}

#[test]
fn iotracing_rates_lists_and_scripts() {
    assert_clean(
        r#"
autotrace iotracing {
    source   proc.diskstats every 5s
    let      wbps = rate(write_bytes)
    let      util = percent(delta(io_ticks), delta(now))
    let      over = window(util > 90% or wbps > 100MB/s, 2)
    script   slope = window::slope(window(util, 10))
    when     all(over) and max(window(wbps, 3)) > 50MB/s and slope > 0
    capture  tasks(D), file(path: "/proc/diskstats")
    issues   config("IssuesList", [])
    emit     wbps, util, slope, tasks, nr_tasks, content
}
"#,
    );
}

#[test]
fn metrics_emit_all_fields_with_filters_and_arithmetic() {
    assert_clean(
        r#"
metric memory_vmstat_container {
    source cgroup.memory_stat
    emit   * include ["^anon", "^file"] exclude "_total$" gauge,
           cache_ratio = file / (anon + file) counter help "file share"
}
"#,
    );
    assert_clean(
        r#"
metric cpu_util_container {
    source cgroup.cpu every 10s
    scope  container
    emit   usage_pct = percent(delta(usage), delta(now)),
           throttled_per_s = rate(nr_throttled),
           cores, abs_change = abs(delta(cores)), smooth = ema(cores, 5)
}
"#,
    );
}

#[test]
fn strings_match_and_contain() {
    assert_clean(
        r#"
event busy_softirq {
    source bpf.softirq_off
    where  contains(comm, "kworker") or matches_any(comm, ["^nginx", "^java$"]) or comm == "x"
    when   changed(cpu) and not (pid == 0) and offtime >= 0 and -offtime < 0
    emit   comm, pid
}
"#,
    );
}

#[test]
fn unit_arithmetic_follows_dimensions() {
    // Time / Time is a plain number, D / Count keeps D, rate() gives per-second values.
    assert_clean(
        r#"
metric disk {
    source proc.diskstats
    emit   bw = rate(write_bytes), busy = io_ticks / 5s, iops = rate(reads),
           half = io_ticks / 2, left = io_ticks % 1s
}
"#,
    );
    // Mixing a size and a duration in `/` would need a scale: rejected, rate() instead.
    let diags = check_text(
        r#"
metric disk {
    source proc.diskstats
    emit   bw = write_bytes / 5s
}
"#,
    );
    assert_eq!(errors(&diags).len(), 1, "{diags:#?}");
}

#[test]
fn shadowing_is_only_a_warning() {
    let diags = check_text(
        r#"
event e {
    source bpf.softirq_off
    let    comm = "x"
    emit   comm
}
"#,
    );
    assert!(errors(&diags).is_empty(), "{diags:#?}");
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].code, "shadowing");
    assert_eq!((diags[0].span.line, diags[0].span.col), (4, 12));
}

#[test]
fn inferred_types_are_exposed() {
    let text = r#"
autotrace cpusys {
    source  proc.stat
    param   limit_pct = config("AutoTracing.CPUSys.SysThreshold")
    let     sys = percent(delta(system), delta(total))
    let     busy_rate = rate(reads_missing_is_unknown)
    when    sys > limit_pct
    capture profile(host, 5s)
    emit    sys, flamedata
}
"#;
    let file = parse_file("rules/t.hto", text).expect("parses");
    let (types, diags) = infer_file(&file, &check_support::catalog());
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0].code, "unknown-name");
    let rule = &types["cpusys"];
    assert_eq!(rule.params["limit_pct"], Ty::Num(Dim::Percent));
    assert_eq!(rule.lets["sys"], Ty::Num(Dim::Percent));
    assert_eq!(rule.captured["flamedata"], Ty::Json);
}

#[test]
fn labels_read_as_strings() {
    assert_clean(
        r#"
event slow_disk {
    source proc.diskstats
    where  disk =~ "^(sd|nvme)"
    when   rate(reads) > 1000/s
    emit   disk, reads
}

event cpu_hog {
    source cgroup.cpu
    when   container_id != "" and delta(usage) > 1s
    emit   container_id, usage
}
"#,
    );
    let diags = check_text(
        "\nevent e {\n    source proc.diskstats\n    where disk > 5\n    emit disk\n}\n",
    );
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0].code, "type-mismatch");
    assert_eq!(diags[0].message, "disk is a string, 5 is a plain number");
}

#[test]
fn structured_config_fits_regex_lists() {
    assert_clean(
        r#"
event cpuidle_filter {
    source cgroup.cpu
    where  matches_any(container_id, config("AutoTracing.CPUIdle.Filter.Included", []))
    emit   usage
}
"#,
    );
}
