//! Kernel test of softirq_off. No workload holds bottom halves off for milliseconds on
//! demand, so this checks the mechanism with thresholds at both ends. A loopback TCP flood
//! raises NET_RX inside the sender's bottom-half-disabled sections; with threshold 0 the
//! check at timer interrupts catches softirqs pending there and reports them with the CPU, the
//! vector and the interrupted kernel stack. With a 1 s threshold nothing is reported on a
//! healthy host. Where the timer tracepoint exists (here) the check runs on it, with no
//! sampler interrupt of its own.

mod common;
mod events_util;

use common::kernel_ready;
use events_util::{drain, int, load_with_threshold, text, Flood};
use huatuo_dsl::value::Value;
use std::time::Duration;

#[test]
fn the_sampler_reports_pending_softirqs_above_the_threshold_only() {
    if !kernel_ready("the_sampler_reports_pending_softirqs_above_the_threshold_only") {
        return;
    }
    let mut every = load_with_threshold("softirq_off", 0);
    let mut strict = load_with_threshold("softirq_off", 1_000_000_000);
    let status = every.status();
    let check = status[0]
        .programs
        .iter()
        .find(|p| p.program == "sampler")
        .and_then(|p| p.attached_variant())
        .map(|v| v.prog.clone());
    assert_eq!(
        check.as_deref(),
        Some("tp_btf_timer_check"),
        "{:#?}",
        status[0].programs
    );
    let flood = Flood::start(2);
    let events = drain(&mut every, Duration::from_secs(3));
    drop(flood);
    let strict_events = drain(&mut strict, Duration::from_millis(10));

    assert!(!events.is_empty(), "threshold 0: no event in 3 s of flood");
    let vecs = [
        "HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED", "HRTIMER",
        "RCU",
    ];
    for event in &events {
        assert_eq!(event.source, "bpf.softirq_off");
        assert!(int(event, "offtime").unwrap_or(0) > 0, "{event:#?}");
        assert!(
            vecs.contains(&text(event, "vec").unwrap_or("?")),
            "{event:#?}"
        );
        assert!(event.labels.contains_key("cpu"), "{event:#?}");
    }
    // interrupted kernel code comes with its stack
    assert!(
        events
            .iter()
            .any(|e| matches!(e.fields.get("stack"), Some(Value::List(f)) if !f.is_empty())),
        "no event with a kernel stack: {:#?}",
        &events[..events.len().min(5)]
    );
    assert!(strict_events.is_empty(), "{strict_events:#?}");
    // the check runs in the timer interrupt: its stack goes on into the interrupted code
    let interrupt = |f: &Value| {
        matches!(f, Value::Str(s) if ["__hrtimer", "hrtimer_", "__sysvec", "sysvec", "asm_sysvec"]
            .iter()
            .any(|p| s.starts_with(p)))
    };
    assert!(
        events.iter().any(|e| matches!(e.fields.get("stack"),
            Some(Value::List(f)) if f.iter().any(|x| !interrupt(x)))),
        "no stack reaches the interrupted code: {:#?}",
        &events[..events.len().min(5)]
    );
}
