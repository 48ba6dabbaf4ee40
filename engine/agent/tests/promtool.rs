//! The real agent's `/metrics` passes `promtool check metrics` (the Prometheus project's own
//! exposition linter): with every shipped rule on the live node, without and (as root) with
//! the kernel templates. promtool comes from Debian's `prometheus` package (scripts/deps.sh).

mod scrape_common;

use scrape_common::*;
use std::time::Duration;

const CONFIG: &str = r#"
[Storage.ES]
    Address = ""
[Pod]
    KubeletReadOnlyPort = 0
    KubeletAuthorizedPort = 0
"#;

/// promtool's naming lints, which HUATUO's family names trigger.
const NAMING_LINTS: [&str; 3] = [
    "metric names should be written in 'snake_case' not 'camelCase'",
    "counter metrics should have \"_total\" suffix",
    "non-counter metrics should not have \"_total\" suffix",
];

/// Runs the agent with all shipped rules, waits for host families and the agent's own, and
/// checks the scrape with promtool.
fn scrape_passes_promtool(tag: &str, bpf: bool) {
    let config = TempConfig::new(tag, CONFIG);
    let port = free_port();
    let mut args: Vec<&std::ffi::OsStr> = ["--rules", "rules", "--stdlib", "stdlib"]
        .iter()
        .map(std::ffi::OsStr::new)
        .collect();
    args.extend(["--run-for", "60"].iter().map(std::ffi::OsStr::new));
    if !bpf {
        args.push(std::ffi::OsStr::new("--no-bpf"));
    }
    let _agent = start_agent(port, &config.path, &args);
    let wanted = [
        "huatuo_bamai_loadavg_load1{",
        "huatuo_bamai_cpu_util_total{",
        "huatuo_bamai_netdev_receive_bytes_total{",
        "huatuo_bamai_sockstat_sockets_used{",
        "huatuo_bamai_softlockup_total{",
        "huatuo_bamai_agent_rss_bytes{",
    ];
    let body = scrape_until(port, Duration::from_secs(40), |body| {
        wanted.iter().all(|w| body.contains(w))
    });
    let missing: Vec<&&str> = wanted.iter().filter(|w| !body.contains(**w)).collect();
    assert!(missing.is_empty(), "missing {missing:?} in:\n{body}");
    let (ok, report) = promtool_check(&body);
    let families: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    // promtool exits 1 on naming lints too; those of HUATUO's own family names are accepted
    // (netstat_TcpExt_* camelCase, arp_total/cpu_util_total gauges, zone-count counters
    // without `_total`). Anything else (a parse error, a missing HELP) fails.
    let problems: Vec<&str> = report
        .lines()
        .filter(|line| {
            let (name, message) = line.split_once(' ').unwrap_or((line, ""));
            !(families.contains(&name) && NAMING_LINTS.contains(&message))
        })
        .collect();
    assert!(
        problems.is_empty(),
        "promtool check metrics (exit ok: {ok}) reported:\n{}",
        problems.join("\n")
    );
    println!(
        "{tag}: {} families, {} naming lints from HUATUO's names",
        families.len(),
        report.lines().count()
    );
}

#[test]
fn scrape_without_bpf_passes_promtool() {
    if promtool_available() {
        scrape_passes_promtool("promtool-nobpf", false);
    }
}

#[test]
fn scrape_with_bpf_passes_promtool() {
    if !promtool_available() {
        return;
    }
    if !ci() && !is_root() {
        println!("SKIPPED: the BPF scrape needs root (set CI=true to require it)");
        return;
    }
    scrape_passes_promtool("promtool-bpf", true);
}
