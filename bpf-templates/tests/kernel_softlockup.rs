//! Kernel test of a real soft lockup, the input of the `softlockup` event (a kmsg rule):
//! `kernel.watchdog_thresh` is lowered to 1 s and one CPU is held with preemption off for
//! 5 s by a BPF program run once through `BPF_PROG_TEST_RUN` (see `lockup_util`); the
//! kernel must log `soft lockup - CPU#N stuck for Ms! [huatuo-lockup:<tid>]` for that CPU
//! and thread, readable from /dev/kmsg within 15 s.
//!
//! Needs root and BTF (skipped with a message otherwise, failing under `CI=true`), and a
//! machine where the lockup cannot panic it (`lockup_util::lockup_ready`). The lockup taints
//! the kernel (TAINT_SOFTLOCKUP, `L`) until reboot; that is accepted.

mod common;
mod lockup_util;

use common::kernel_ready;
use lockup_util::*;
use std::time::Duration;

const OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/test_softlockup.bpf.o"));

/// TAINT_SOFTLOCKUP
const TAINT_SOFTLOCKUP: u64 = 1 << 14;

#[test]
fn lockup_lines_parse() {
    let line = parse_lockup("watchdog: BUG: soft lockup - CPU#1 stuck for 3s! [kworker/1:2:88]")
        .expect("a lockup line");
    assert_eq!(
        (line.cpu, line.stuck_secs, line.comm.as_str(), line.pid),
        (1, 3, "kworker/1:2", 88)
    );
    assert!(parse_lockup("watchdog: BUG: soft lockup - CPU#1 stuck for 3s!").is_none());
    assert!(parse_lockup("rcu: INFO: rcu_preempt detected stalls").is_none());
}

#[test]
fn a_machine_a_lockup_could_panic_is_refused() {
    let host = [
        ("watchdog_thresh", "10"),
        ("watchdog", "1"),
        ("soft_watchdog", "1"),
        ("softlockup_panic", "0"),
        ("panic_on_warn", "0"),
        ("panic_on_rcu_stall", "0"),
        ("watchdog_cpumask", "0-1"),
    ];
    let with = |changed: &[(&str, Option<&str>)]| {
        let sysctls: Vec<(&str, Option<&str>)> = host
            .iter()
            .map(|(k, v)| {
                changed
                    .iter()
                    .find(|(c, _)| c == k)
                    .map_or((*k, Some(*v)), |c| *c)
            })
            .collect();
        lockup_refusal(
            |name| {
                sysctls
                    .iter()
                    .find(|(k, _)| *k == name)
                    .and_then(|(_, v)| v.map(str::to_string))
            },
            "0-1\n",
        )
    };
    assert_eq!(with(&[]), None);
    assert_eq!(
        with(&[("panic_on_rcu_stall", None)]),
        None,
        "an absent knob"
    );
    for (knob, value) in [
        ("softlockup_panic", "1"),
        ("panic_on_warn", "1"),
        ("panic_on_rcu_stall", "1"),
        ("soft_watchdog", "0"),
        ("watchdog", "0"),
        ("watchdog_cpumask", "0"),
    ] {
        let why = with(&[(knob, Some(value))]).unwrap_or_else(|| panic!("{knob}={value} accepted"));
        assert!(why.contains(knob), "{knob}={value}: {why}");
    }
    let why = with(&[("watchdog_thresh", None)]).expect("no detector accepted");
    assert!(why.contains("CONFIG_SOFTLOCKUP_DETECTOR"), "{why}");
}

#[test]
fn the_stall_program_holds_the_cpu_for_the_time_asked() {
    let name = "the_stall_program_holds_the_cpu_for_the_time_asked";
    if !kernel_ready(name) {
        return;
    }
    let program = StallProgram::load(OBJECT).unwrap_or_else(|e| panic!("{e}"));
    // far below any lockup threshold: 100 ms
    let (tid, first) = program
        .run(Duration::from_millis(100))
        .unwrap_or_else(|e| panic!("{e}"));
    let (_, second) = program
        .run(Duration::from_millis(100))
        .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "100 ms stalls by thread {tid}: held {:?} and {:?}, {} and {} clock reads, {:.1} ns each",
        first.held(),
        second.held(),
        first.iterations,
        second.iterations,
        second.ns_per_iteration()
    );
    assert_eq!((first.runs, second.runs), (1, 2), "one run per call");
    for r in [first, second] {
        assert!(
            r.held() >= Duration::from_millis(100) && r.held() < Duration::from_millis(150),
            "held {:?}",
            r.held()
        );
        assert!(r.iterations > 1000, "{r:?}");
    }
    assert_ne!(tid, 0, "the stall thread's id");
}

#[test]
fn a_real_soft_lockup_is_logged_for_the_stalled_cpu_and_thread() {
    let name = "a_real_soft_lockup_is_logged_for_the_stalled_cpu_and_thread";
    if !kernel_ready(name) || !lockup_ready(name) {
        return;
    }
    let program = StallProgram::load(OBJECT).unwrap_or_else(|e| panic!("{e}"));
    let t = trigger(&program).unwrap_or_else(|e| panic!("{e}"));
    println!("{}", t.summary());
    let line = t.checked_line();
    assert_eq!(t.result.runs, 1, "{:?}", t.result);
    assert!(
        t.result.held() >= STALL && t.result.held() < STALL + Duration::from_millis(500),
        "held {:?}",
        t.result.held()
    );
    assert!(
        line.message
            .starts_with("watchdog: BUG: soft lockup - CPU#"),
        "{line:?}"
    );
    // more than 2 × thresh, and no more than the stall
    assert!(
        (2..=STALL.as_secs() + 1).contains(&line.stuck_secs),
        "{line:?}"
    );
    let after = t.line_after.expect("the line's record");
    assert!(
        after >= Duration::from_secs(2) && after <= STALL + Duration::from_secs(1),
        "logged {after:?} after the stall began"
    );
    let tainted: u64 = read_sysctl("tainted")
        .and_then(|t| t.parse().ok())
        .expect("kernel.tainted");
    assert_ne!(tainted & TAINT_SOFTLOCKUP, 0, "tainted = {tainted}");
}
