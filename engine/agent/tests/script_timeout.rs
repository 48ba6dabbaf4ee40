//! A stdlib script that runs too long, in the real agent: the call is stopped at the script
//! time limit, its rule disabled, and the timeout counted in `/metrics`, while the agent and
//! its other rules keep running.

mod scrape_common;

use scrape_common::{free_port, repo, scrape_until, start_agent, TempConfig};
use std::time::Duration;

/// 15 000 `contains` on a 9 000-item array: within every operation and size limit, seconds
/// of work per call.
const SLOW: &str = "fn scan(x) {\n    let a = [];\n    for i in 0..9000 { a.push(i); }\n    \
                    for j in 0..15000 { a.contains(-1); }\n    x\n}\n";

const RULES: &str = "metric slow_probe {\n    source proc.loadavg every 1s\n    \
                     script v = slow::scan(load1)\n    emit   v\n}\n\n\
                     metric steady_probe {\n    source proc.loadavg every 1s\n    emit   load1\n}\n";

/// The value of the first series of `family` whose labels include `rule="name"`.
fn rule_value(body: &str, family: &str, rule: &str) -> Option<f64> {
    let label = format!("rule=\"{rule}\"");
    body.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains(&label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn a_slow_script_is_stopped_its_rule_disabled_and_the_timeout_counted() {
    let config = TempConfig::new("script-timeout", "[Rules]\n    ScriptTimeout = 50\n");
    let stdlib = config.dir.join("stdlib");
    let rules = config.dir.join("rules");
    std::fs::create_dir_all(&stdlib).expect("mkdir");
    std::fs::create_dir_all(&rules).expect("mkdir");
    std::fs::write(stdlib.join("slow.rhai"), SLOW).expect("write");
    std::fs::write(rules.join("probe.hto"), RULES).expect("write");
    let proc = repo().join("engine/agent/tests/fixtures/node/proc");
    let args = [
        "--no-bpf".as_ref(),
        "--procfs-root".as_ref(),
        proc.as_os_str(),
        "--rules".as_ref(),
        rules.as_os_str(),
        "--stdlib".as_ref(),
        stdlib.as_os_str(),
        "--run-for".as_ref(),
        "60".as_ref(),
    ];
    let port = free_port();
    let _agent = start_agent(port, &config.path, &args);
    let timeouts = "huatuo_bamai_agent_rule_script_timeouts_total";
    let body = scrape_until(port, Duration::from_secs(45), |body| {
        rule_value(body, timeouts, "slow_probe") == Some(1.0)
            && rule_value(body, "huatuo_bamai_agent_rule_fired_total", "steady_probe")
                .is_some_and(|n| n >= 2.0)
    });
    assert_eq!(
        rule_value(&body, timeouts, "slow_probe"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        rule_value(&body, "huatuo_bamai_agent_rule_enabled", "slow_probe"),
        Some(0.0),
        "{body}"
    );
    assert_eq!(
        rule_value(&body, "huatuo_bamai_agent_rule_enabled", "steady_probe"),
        Some(1.0)
    );
    assert_eq!(rule_value(&body, timeouts, "steady_probe"), Some(0.0));
    assert!(
        rule_value(&body, "huatuo_bamai_agent_rule_fired_total", "steady_probe")
            .is_some_and(|n| n >= 2.0),
        "{body}"
    );
}
