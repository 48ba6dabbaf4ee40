//! Kernel tests of irqoff. Holding hard interrupts off for milliseconds needs kernel code these
//! tests cannot load, so they check the attach chain, the mechanism with thresholds at both
//! ends, and that sleep and steal are not mistaken for interrupts held off. This kernel has no
//! preemptirq tracepoints: both tracepoint variants fail with the reason and the timer-lateness
//! check on timer:hrtimer_expire_entry attaches (no companion: the 1 kHz sampler and its
//! cpu_idle companion are the last fallback, whose attaching `kernel_variants` checks). With
//! threshold 0 every timer interrupt that came later than its timer's expiry (always, by
//! microseconds) is reported, with the CPU and the kernel stack, except those whose interrupt
//! came from user mode (interrupts were on there), though busy loops in user mode take most of
//! them; with a 1 s threshold nothing is reported on a healthy host, and with the shipped 10 ms
//! threshold nothing is reported over 30 s of a mostly idle VM. The two tests take turns: the
//! first one's busy loops and event flood would not leave the VM idle.

mod common;
mod events_util;

use common::{kernel_ready, Busy};
use events_util::{drain, int, load_with_threshold};
use huatuo_bpf::schema::AttachKind;
use huatuo_dsl::value::Value;
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

/// Held by each test while it runs: they must not overlap.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Names of the kernel's entry code symbols (between `__entry_text_start` and
/// `__entry_text_end` in /proc/kallsyms).
fn entry_text_symbols() -> HashSet<String> {
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").expect("read /proc/kallsyms");
    let symbols: Vec<(u64, &str)> = kallsyms
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let addr = u64::from_str_radix(parts.next()?, 16).ok()?;
            Some((addr, parts.nth(1)?))
        })
        .collect();
    let bound = |name: &str| {
        symbols
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(a, _)| *a)
            .unwrap_or_else(|| panic!("{name} not in /proc/kallsyms"))
    };
    let (start, end) = (bound("__entry_text_start"), bound("__entry_text_end"));
    symbols
        .iter()
        .filter(|(a, _)| (start..end).contains(a))
        .map(|(_, n)| n.to_string())
        .collect()
}

/// The function names of an event's kernel stack, innermost first.
fn frames(event: &huatuo_dsl::value::Sample) -> Vec<&str> {
    match event.fields.get("stack") {
        Some(Value::List(frames)) => frames
            .iter()
            .filter_map(|f| match f {
                Value::Str(s) => Some(s.split('+').next().unwrap_or(s)),
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

#[test]
fn irqoff_falls_back_to_timer_lateness_and_reports_above_the_threshold_only() {
    if !kernel_ready("irqoff_falls_back_to_timer_lateness_and_reports_above_the_threshold_only") {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut every = load_with_threshold("irqoff", 0);
    let mut strict = load_with_threshold("irqoff", 1_000_000_000);
    let st = &every.status()[0];
    let irqoff = st
        .programs
        .iter()
        .find(|p| p.program == "irqoff")
        .expect("irqoff program");
    let attached = irqoff.attached_variant().expect("irqoff attached");
    assert_eq!(
        (attached.kind, attached.target.as_str()),
        (AttachKind::TpBtf, "hrtimer_expire_entry"),
        "{irqoff:#?}"
    );
    // the exact mechanism was tried first and says why it is not here
    let kinds: Vec<AttachKind> = irqoff.tried.iter().map(|t| t.kind).collect();
    assert_eq!(
        kinds,
        [AttachKind::TpBtf, AttachKind::RawTp, AttachKind::TpBtf],
        "{irqoff:#?}"
    );
    assert!(
        irqoff.tried[..2].iter().all(|t| t.error.is_some()),
        "{irqoff:#?}"
    );
    // neither the tracepoints' companion nor the sampler's is needed: no sampler runs
    let program = |name: &str| st.programs.iter().find(|p| p.program == name).unwrap();
    assert!(program("irq_disable").not_needed.is_some(), "{st:#?}");
    assert!(program("cpu_idle").not_needed.is_some(), "{st:#?}");

    let busy = Busy::start(2);
    let events = drain(&mut every, Duration::from_secs(2));
    drop(busy);
    let strict_events = drain(&mut strict, Duration::from_millis(10));
    assert!(
        !events.is_empty(),
        "threshold 0: no late timer reported in 2 s"
    );
    for event in &events {
        assert_eq!(event.source, "bpf.irqoff");
        assert!(int(event, "offtime").unwrap_or(0) > 0, "{event:#?}");
        assert!(event.labels.contains_key("cpu"), "{event:#?}");
    }
    assert!(
        events
            .iter()
            .any(|e| matches!(e.fields.get("stack"), Some(Value::List(f)) if !f.is_empty())),
        "no event with a kernel stack: {:#?}",
        &events[..events.len().min(5)]
    );
    // An interrupt from kernel code unwinds past its entry into the code it interrupted, which
    // began in entry code too; one from user mode stops at its entry. Only the first are left.
    let entry = entry_text_symbols();
    let entries = |e| frames(e).iter().filter(|f| entry.contains(**f)).count();
    let from_user = |e| entries(e) == 1 && frames(e).last().is_some_and(|f| entry.contains(*f));
    let user: Vec<_> = events.iter().filter(|e| from_user(e)).collect();
    assert!(
        user.is_empty(),
        "{} of {} late timers reported came from user mode: {:#?}",
        user.len(),
        events.len(),
        &user[..user.len().min(3)]
    );
    assert!(
        events.iter().any(|e| entries(e) >= 2),
        "no late timer that interrupted kernel code: {:#?}",
        &events[..events.len().min(5)]
    );
    assert!(strict_events.is_empty(), "{strict_events:#?}");
}

/// The threshold `rules/events/irqoff.hto` ships with (its `DisabledThreshold` default).
fn shipped_threshold_ns() -> u64 {
    let rule = include_str!("../../rules/events/irqoff.hto");
    let default = rule
        .lines()
        .find_map(|l| l.split_once("config(\"EventTracing.Irqoff.DisabledThreshold\", "))
        .and_then(|(_, rest)| rest.split_once("ms)"))
        .map(|(ms, _)| ms.trim().parse::<u64>().expect("threshold in ms"))
        .expect("DisabledThreshold default in irqoff.hto");
    default * 1_000_000
}

#[test]
fn irqoff_reports_nothing_on_an_idle_vm_at_the_shipped_threshold() {
    if !kernel_ready("irqoff_reports_nothing_on_an_idle_vm_at_the_shipped_threshold") {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let threshold = shipped_threshold_ns();
    assert_eq!(threshold, 10_000_000);
    let mut templates = load_with_threshold("irqoff", threshold);
    let events = drain(&mut templates, Duration::from_secs(30));
    let status = &templates.status()[0];
    let runs = |name: &str| {
        status
            .programs
            .iter()
            .find(|p| p.program == name)
            .map_or((0, 0), |p| (p.run_count, p.run_time_ns))
    };
    assert!(
        events.is_empty(),
        "{} irqoff records in 30 s: {:#?}",
        events.len(),
        &events[..events.len().min(5)]
    );
    // How much ran meanwhile (counted while kernel.bpf_stats_enabled=1), for the log.
    let (count, time_ns) = runs("irqoff");
    eprintln!(
        "timer checks {count}, {} ns each",
        time_ns.checked_div(count).unwrap_or(0)
    );
}
