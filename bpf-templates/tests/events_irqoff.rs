//! Kernel test of irqoff. Holding hard interrupts off for milliseconds needs kernel code this
//! test cannot load, so it checks the attach chain and the mechanism with thresholds at both
//! ends. This kernel has no preemptirq tracepoints: both tracepoint variants fail with the
//! reason and the 1 kHz sampler attaches. With threshold 0 every gap between two samples of a
//! CPU longer than one period (timer jitter) is reported, with the CPU and the kernel stack;
//! with a 1 s threshold nothing is reported on a healthy host.

mod common;
mod events_util;

use common::kernel_ready;
use events_util::{drain, int, load_with_threshold};
use huatuo_bpf::schema::AttachKind;
use huatuo_dsl::value::Value;
use std::time::Duration;

#[test]
fn irqoff_falls_back_to_the_sampler_and_reports_gaps_above_the_threshold_only() {
    if !kernel_ready("irqoff_falls_back_to_the_sampler_and_reports_gaps_above_the_threshold_only") {
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
    assert_eq!(
        irqoff.attached_variant().map(|v| v.kind),
        Some(AttachKind::PerfEvent),
        "{irqoff:#?}"
    );
    // the exact mechanism was tried first and says why it is not here
    let kinds: Vec<AttachKind> = irqoff.tried.iter().map(|t| t.kind).collect();
    assert_eq!(
        kinds,
        [AttachKind::TpBtf, AttachKind::RawTp, AttachKind::PerfEvent],
        "{irqoff:#?}"
    );
    assert!(
        irqoff.tried[..2].iter().all(|t| t.error.is_some()),
        "{irqoff:#?}"
    );

    let events = drain(&mut every, Duration::from_secs(2));
    let strict_events = drain(&mut strict, Duration::from_millis(10));
    assert!(!events.is_empty(), "threshold 0: no gap reported in 2 s");
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
