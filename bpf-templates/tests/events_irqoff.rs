//! Kernel tests of irqoff. Holding hard interrupts off for milliseconds needs kernel code these
//! tests cannot load, so they check the attach chain, the mechanism with thresholds at both
//! ends, and that sleep and steal are not mistaken for interrupts held off. This kernel has no
//! preemptirq tracepoints: both tracepoint variants fail with the reason and the timer-lateness
//! check on timer:hrtimer_expire_entry attaches (no companion: the 1 kHz sampler and its
//! cpu_idle companion are the last fallback, whose attaching `kernel_variants` checks). With
//! threshold 0 every timer interrupt that came later than its timer's expiry (always, by
//! microseconds) is reported, with the CPU and the kernel stack; with a 1 s threshold nothing is
//! reported on a healthy host, and with the shipped 10 ms threshold nothing is reported over
//! 30 s of a mostly idle VM.

mod common;
mod events_util;

use common::kernel_ready;
use events_util::{drain, int, load_with_threshold};
use huatuo_bpf::schema::AttachKind;
use huatuo_dsl::value::Value;
use std::time::Duration;

#[test]
fn irqoff_falls_back_to_timer_lateness_and_reports_above_the_threshold_only() {
    if !kernel_ready("irqoff_falls_back_to_timer_lateness_and_reports_above_the_threshold_only") {
        return;
    }
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

    let events = drain(&mut every, Duration::from_secs(2));
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
            .map_or(0, |p| p.run_count)
    };
    assert!(
        events.is_empty(),
        "{} irqoff records in 30 s: {:#?}",
        events.len(),
        &events[..events.len().min(5)]
    );
    // How much ran meanwhile (counted while kernel.bpf_stats_enabled=1), for the log.
    eprintln!("timer checks {}", runs("irqoff"));
}
