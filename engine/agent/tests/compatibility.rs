//! docs/COMPATIBILITY.md stays true: every family its "served under HUATUO's names" table
//! lists is served by the agent running over the recorded fixture node, with the `host`
//! label, and the names it replaced are gone.

mod scrape_common;

use scrape_common::{free_port, repo, scrape_until, start_fixture_agent, TempConfig};
use std::time::Duration;

/// The families of the table under `## Metric families served under HUATUO's names`.
fn documented_families() -> Vec<String> {
    let doc = std::fs::read_to_string(repo().join("docs/COMPATIBILITY.md")).expect("doc");
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("Metric families served under HUATUO's names"))
        .expect("the served-families section");
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn documented_families_are_served_under_huatuo_names() {
    let families = documented_families();
    assert!(families.len() >= 34, "table not found: {families:?}");
    let config = TempConfig::new("compatibility", "");
    let port = free_port();
    // The recorded kernel-template reads serve the per-container block latency families.
    let _agent = start_fixture_agent(
        port,
        &config.path,
        "cgroup",
        30,
        &[(
            "--bpf-recorded",
            "engine/agent/tests/fixtures/node/bpf/maps.jsonl",
        )],
    );
    let served = |body: &str, family: &str| {
        body.lines().any(|l| {
            l.starts_with(&format!("huatuo_bamai_{family}{{"))
                && l.contains("host=\"fixture-host\"")
        })
    };
    let body = scrape_until(port, Duration::from_secs(25), |body| {
        families.iter().all(|f| served(body, f))
    });
    let missing: Vec<&String> = families.iter().filter(|f| !served(&body, f)).collect();
    assert!(missing.is_empty(), "documented but not served: {missing:?}");
    // The names these replaced are not served beside them.
    assert!(
        !body.lines().any(|l| l.starts_with("huatuo_bamai_qdisc_")),
        "qdisc families still served under qdisc_*"
    );
}
