//! End-to-end kernel test of the shipped `softlockup` event and the `softlockup_total`
//! counter: the real agent runs `rules/`, the kernel is made to report a real soft lockup,
//! and the one record stored in `local/softlockup` must name the CPU and the task of the
//! kernel's `soft lockup - CPU#N stuck for Ms! [comm:pid]` line, with the running tasks
//! captured (`cpus_stack`), while `/metrics` counts it for the host.
//! Needs root and BPF: skipped with a message when not root, unless `CI=true`; refused where
//! a soft lockup could panic the machine (see `lockup_util`).
//!
//! The lockup is the one of `bpf-templates/tests/lockup_util` (included from there):
//! `kernel.watchdog_thresh` lowered to 1 s for the stall and restored by a guard, and a
//! thread of this test named `huatuo-lockup` holding its CPU with preemption off for 5 s
//! in a BPF program run once by `BPF_PROG_TEST_RUN` (never attached). The program is
//! `bpf-templates/tests/bpf/softlockup.bpf.c` as huatuo-bpf's build script compiled it: that
//! script builds every `tests/bpf` program into its OUT_DIR whenever the huatuo-bpf library
//! this crate depends on is built, so the object is next to this test binary's build.
//!
//! The lockup taints the kernel (TAINT_SOFTLOCKUP, `L`) until reboot; that is accepted.

mod kernel_agent;
#[path = "../../../bpf-templates/tests/lockup_util/mod.rs"]
mod lockup_util;

use kernel_agent::*;
use serde_json::Value as Json;
use std::time::Duration;

/// How long the stored record may take after the kernel's line.
const RECORD_WAIT: Duration = Duration::from_secs(20);

const COUNTER: &str = "huatuo_bamai_softlockup_total";

/// `test_softlockup.bpf.o`, compiled by huatuo-bpf's build script.
fn stall_object() -> Vec<u8> {
    let path = std::path::Path::new(huatuo_bpf::TEST_OBJECTS_DIR).join("test_softlockup.bpf.o");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_softlockup_rule_records_a_real_soft_lockup() {
    let name = "the_softlockup_rule_records_a_real_soft_lockup";
    if !kernel_tests_enabled(name, "root and BPF") || !lockup_util::lockup_ready(name) {
        return;
    }
    let host = lockup_util::read_sysctl("hostname").expect("hostname");
    let program = lockup_util::StallProgram::load(&stall_object())
        .unwrap_or_else(|e| panic!("the stall program: {e}"));
    let agent = Agent::start(Setup {
        tag: "agent-softlockup",
        rules: "rules/",
        config: "",
        args: &[],
    });
    // kmsg is open (at its end) before /status is served
    let status = agent.wait_serving();
    let rules = rule_names(&status);
    assert!(
        rules.contains(&"softlockup"),
        "softlockup not loaded: {rules:?}"
    );
    // exported at 0 before any event (once the first scrape has it); the agent reads kmsg
    // from its end
    let counter = || {
        agent
            .get("/metrics")
            .and_then(|m| sample_value(&m, COUNTER, ("host", &host)))
    };
    let before = wait_until(Duration::from_secs(10), counter).unwrap_or_else(|| {
        panic!(
            "no {COUNTER}{{host={host:?}}} before the lockup: {:?}",
            agent.get("/metrics").map(|m| m
                .lines()
                .filter(|l| l.contains("softlockup"))
                .map(str::to_string)
                .collect::<Vec<_>>())
        )
    });
    assert_eq!(before, 0.0, "{COUNTER} before the lockup");

    let t = lockup_util::trigger(&program).unwrap_or_else(|e| panic!("{e}"));
    println!("{}", t.summary());
    let line = t.checked_line();

    // The line's pid is the stalled thread's id. The kmsg rule emits it as `pid` (and as
    // `tid` once the rule has one); a kernel template emits it as `tid`, with the process id
    // (this test's) as `pid`.
    let test_pid = std::process::id();
    let names_thread =
        |r: &Json| r["tid"] == line.pid || (r["tid"].is_null() && r["pid"] == line.pid);
    let record = agent
        .wait_record("softlockup", RECORD_WAIT, names_thread)
        .unwrap_or_else(|| {
            panic!(
                "no softlockup record for pid {} ({:?}): {:#?}\nlog:\n{}",
                line.pid,
                line.message,
                agent.records("softlockup"),
                agent.log()
            )
        });
    let stack = &record["cpus_stack_tasks"];
    println!(
        "softlockup record: cpu {} pid {} tid {} comm {}; cpus_stack lists {:?}",
        record["cpu"],
        record["pid"],
        record["tid"],
        record["comm"],
        stack.as_array().map(|ts| ts
            .iter()
            .map(|t| format!("{}:{}", t["comm"], t["tid"]))
            .collect::<Vec<_>>())
    );
    assert_eq!(record["cpu"], line.cpu, "{record:#}");
    assert!(
        record["pid"] == line.pid || record["pid"] == test_pid,
        "pid neither the thread's {} nor the process's {test_pid}: {record:#}",
        line.pid
    );
    assert_eq!(record["comm"], line.comm.as_str(), "{record:#}");
    captured_tasks(&record, "cpus_stack_tasks", "R");
    text_matches_tasks(&record, "cpus_stack", "cpus_stack_tasks");
    assert_eq!(
        agent.records("softlockup").len(),
        1,
        "one lockup, one record: {:#?}",
        agent.records("softlockup")
    );

    let after = wait_until(Duration::from_secs(10), || {
        counter().filter(|v| *v >= before + 1.0)
    });
    let metrics = agent.get("/metrics").unwrap_or_default();
    let after = after.unwrap_or_else(|| {
        panic!(
            "{COUNTER}{{host={host:?}}} did not move from {before}: {:?}",
            metrics
                .lines()
                .filter(|l| l.starts_with(COUNTER))
                .collect::<Vec<_>>()
        )
    });
    println!("{COUNTER}{{host={host:?}}}: {before} -> {after}");
}
