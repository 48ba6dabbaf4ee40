//! Kernel tests of softirq_latency hosted by softirq_off: with both needed, the kernel runs one
//! program per softirq hook (not two), the latency histograms still fill under loopback UDP and
//! softirq_off still reports; a reload that drops either template, or brings it back, moves
//! softirq_latency between its own object and its host and keeps both working.

mod common;
mod events_util;

use common::kernel_ready;
use events_util::{drain_rx, Flood};
use huatuo_bpf::schema::AttachKind;
use huatuo_bpf::{LoadOptions, Templates};
use huatuo_dsl::value::{Sample, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc::Receiver;

/// The tests count this process's programs: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Both templates; softirq_off reports every pending softirq (threshold 0).
const BOTH: [&str; 2] = ["softirq_latency", "softirq_off"];

fn tunables() -> BTreeMap<String, BTreeMap<String, u64>> {
    BTreeMap::from([(
        "softirq_off".to_string(),
        BTreeMap::from([("threshold_ns".to_string(), 0)]),
    )])
}

/// BPF programs this process holds whose (kernel-truncated) name starts with `prefix`,
/// found through the program ids in `/proc/self/fdinfo`.
fn own_programs(prefix: &str) -> usize {
    let mut ids = BTreeSet::new();
    for entry in std::fs::read_dir("/proc/self/fdinfo").expect("fdinfo") {
        let Ok(text) = std::fs::read_to_string(entry.expect("entry").path()) else {
            continue;
        };
        // Program fds name `prog_id`; link fds name theirs too (the same program).
        if let Some(id) = text
            .lines()
            .find_map(|l| l.strip_prefix("prog_id:"))
            .and_then(|v| v.trim().parse::<u32>().ok())
        {
            ids.insert(id);
        }
    }
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| ids.contains(&p.id()))
        .filter(|p| p.name_as_str().is_some_and(|n| n.starts_with(prefix)))
        .count()
}

/// NET_RX observations in softirq_latency's histograms.
fn net_rx(samples: &[Sample]) -> u64 {
    samples
        .iter()
        .filter(|s| s.source == "bpf.softirq_latency")
        .filter(|s| s.labels.get("type").map(String::as_str) == Some("NET_RX"))
        .filter_map(|s| match s.fields.get("latency") {
            Some(Value::Hist(h)) => Some(h.count_between(0, u64::MAX)),
            _ => None,
        })
        .sum()
}

/// Sends loopback UDP datagrams and checks softirq_latency's NET_RX histograms grew.
fn assert_latency_fills(templates: &Templates, when: &str) {
    let before = net_rx(&templates.read_histograms());
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = peer.local_addr().expect("addr");
    for _ in 0..2000 {
        let _ = socket.send_to(b"huatuo", addr);
    }
    let after = net_rx(&templates.read_histograms());
    assert!(after > before + 50, "{when}: NET_RX {before} -> {after}");
}

/// Floods loopback TCP and checks softirq_off reported pending softirqs.
fn assert_off_reports(rx: &mut Receiver<Sample>, when: &str) {
    let flood = Flood::start(2);
    let events = drain_rx(rx, Duration::from_secs(3));
    drop(flood);
    let off: Vec<&Sample> = events
        .iter()
        .filter(|e| e.source == "bpf.softirq_off")
        .collect();
    assert!(
        !off.is_empty(),
        "{when}: softirq_off reported nothing in 3 s of flood"
    );
    // the flood's own softirqs are among the episodes
    let net = off.iter().any(
        |e| matches!(e.fields.get("vec"), Some(Value::Str(v)) if v == "NET_RX" || v == "NET_TX"),
    );
    assert!(net, "{when}: no NET_RX/NET_TX episode in {off:#?}");
}

fn status_of(templates: &Templates, name: &str) -> huatuo_bpf::TemplateStatus {
    templates
        .status()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no status of {name}: {:#?}", templates.status()))
}

#[test]
fn both_softirq_templates_run_one_program_per_hook() {
    if !kernel_ready("both_softirq_templates_run_one_program_per_hook") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut shared = Templates::load(&BOTH, &tunables());
    let latency = status_of(&shared, "softirq_latency");
    let off = status_of(&shared, "softirq_off");
    assert!(latency.loaded && off.loaded, "{:#?}", shared.status());
    assert_eq!(latency.hosted_by.as_deref(), Some("softirq_off"));
    assert_eq!(off.hosted_by, None);
    // softirq_latency's status shows the host's raise/entry programs, attached as tp_btf.
    let names: Vec<&str> = latency
        .programs
        .iter()
        .map(|p| p.program.as_str())
        .collect();
    assert_eq!(names, ["softirq_raise", "softirq_entry"]);
    for p in &latency.programs {
        let host = off.programs.iter().find(|h| h.program == p.program);
        assert_eq!(Some(p), host, "{:#?}", off.programs);
        assert_eq!(
            p.attached_variant().map(|v| v.kind),
            Some(AttachKind::TpBtf)
        );
    }
    // One program per hook: raise and entry, nothing else on the softirq tracepoints.
    assert_eq!(own_programs("tp_btf_softirq"), 2);
    assert_latency_fills(&shared, "hosted");
    let mut rx = shared.take_events().expect("events");
    assert_off_reports(&mut rx, "hosting softirq_latency");
    drop(rx);
    drop(shared);
    assert_eq!(own_programs("tp_btf_softirq"), 0);

    // The same rule set with hosting off: each template on its own object, two per hook.
    let options = LoadOptions {
        share_hooks: false,
        ..LoadOptions::default()
    };
    let apart = Templates::load_with(&BOTH, &tunables(), options);
    assert!(apart
        .status()
        .iter()
        .all(|s| s.loaded && s.hosted_by.is_none()));
    assert_eq!(own_programs("tp_btf_softirq"), 4);
    assert_latency_fills(&apart, "apart");
    drop(apart);

    // Without tp_btf the host's raw_tp programs do the latency work as well.
    let options = LoadOptions {
        excluded_kinds: vec![AttachKind::TpBtf],
        ..LoadOptions::default()
    };
    let raw = Templates::load_with(&BOTH, &tunables(), options);
    let latency = status_of(&raw, "softirq_latency");
    assert_eq!(
        latency.hosted_by.as_deref(),
        Some("softirq_off"),
        "{latency:#?}"
    );
    assert!(latency
        .programs
        .iter()
        .all(|p| p.attached_variant().map(|v| v.kind) == Some(AttachKind::RawTp)));
    assert_eq!(own_programs("raw_tp_softirq"), 2);
    assert_latency_fills(&raw, "hosted, raw_tp");
}

#[test]
fn a_reload_moves_softirq_latency_between_its_host_and_its_own_object() {
    if !kernel_ready("a_reload_moves_softirq_latency_between_its_host_and_its_own_object") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut templates = Templates::load(&BOTH, &tunables());
    let mut rx = templates.take_events().expect("events");
    assert_eq!(
        status_of(&templates, "softirq_latency")
            .hosted_by
            .as_deref(),
        Some("softirq_off")
    );

    // softirq_off goes: softirq_latency back on its own object.
    let done = templates.reconcile(&["softirq_latency"], &tunables());
    assert_eq!(done.detached, ["softirq_off"], "{done:?}");
    assert_eq!(done.reloaded, ["softirq_latency"], "{done:?}");
    let latency = status_of(&templates, "softirq_latency");
    assert!(
        latency.loaded && latency.hosted_by.is_none(),
        "{latency:#?}"
    );
    assert_eq!(own_programs("tp_btf_softirq"), 2);
    assert_latency_fills(&templates, "own object after softirq_off went");

    // softirq_off comes back: softirq_latency moves onto it.
    let done = templates.reconcile(&BOTH, &tunables());
    assert_eq!(done.attached, ["softirq_off"], "{done:?}");
    assert_eq!(done.reloaded, ["softirq_latency"], "{done:?}");
    assert_eq!(
        status_of(&templates, "softirq_latency")
            .hosted_by
            .as_deref(),
        Some("softirq_off")
    );
    assert_eq!(own_programs("tp_btf_softirq"), 2);
    assert_latency_fills(&templates, "hosted again");
    assert_off_reports(&mut rx, "hosting again");

    // A reload that changes only softirq_off's threshold keeps the guest on the new host.
    let mut strict = tunables();
    strict.insert(
        "softirq_off".into(),
        BTreeMap::from([("threshold_ns".to_string(), 1_000_000_000)]),
    );
    let done = templates.reconcile(&BOTH, &strict);
    assert_eq!(done.reloaded, ["softirq_off"], "{done:?}");
    assert_eq!(own_programs("tp_btf_softirq"), 2);
    assert_latency_fills(&templates, "host reloaded");

    // softirq_latency goes: softirq_off reloaded without its work, and still reports.
    let done = templates.reconcile(&["softirq_off"], &tunables());
    assert_eq!(done.detached, ["softirq_latency"], "{done:?}");
    assert_eq!(done.reloaded, ["softirq_off"], "{done:?}");
    assert_eq!(templates.loaded(), ["softirq_off"]);
    assert_eq!(own_programs("tp_btf_softirq"), 2);
    assert_eq!(net_rx(&templates.read_histograms()), 0);
    assert_off_reports(&mut rx, "softirq_latency gone");
}
