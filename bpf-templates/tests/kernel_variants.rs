//! Kernel test: every attach variant of every program of every template (both objects of
//! event and task-storage templates) loads and attaches on its own, so the fallback chain
//! has somewhere to fall; optional programs that cannot attach leave the template loaded; and
//! load errors are reported per template, not fatal.

mod common;

use common::{kernel_ready, TracefsGuard};
use huatuo_bpf::attach::attach_variant;
use huatuo_bpf::requires::Requirement;
use huatuo_bpf::schema::AttachKind;
use huatuo_bpf::{embedded, TemplateSchema, Templates};
use std::collections::BTreeMap;
use std::path::Path;

/// Whether the running kernel has the tracepoint `name` (its `btf_trace_<name>` typedef is
/// in the kernel BTF's string table).
fn kernel_has_tracepoint(btf_bytes: &[u8], name: &str) -> bool {
    let needle = format!("\0btf_trace_{name}\0");
    btf_bytes
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn every_variant_of_every_template_attaches() {
    if !kernel_ready("every_variant_of_every_template_attaches") {
        return;
    }
    let _guard = TracefsGuard::new();
    let btf = aya::Btf::from_sys_fs().expect("btf");
    let btf_bytes = std::fs::read("/sys/kernel/btf/vmlinux").expect("read btf");
    let mut attached = 0;
    let mut skipped = 0;
    let mut failures = vec![];
    for template in embedded::TEMPLATES {
        let schema = TemplateSchema::parse(template.name, template.schema).expect("schema");
        let objects = [
            Some(template.object),
            template.perfbuf_object,
            template.hashmap_object,
        ];
        for point in &schema.attach {
            for variant in &point.variants {
                // The task-storage object of a template built twice holds only its tp_btf
                // programs; every variant must be in some object.
                let in_object = |object: &[u8]| {
                    let ebpf = aya::EbpfLoader::new()
                        .btf(Some(&btf))
                        .allow_unsupported_maps()
                        .load(object);
                    ebpf.expect("load object").program(&variant.prog).is_some()
                };
                if !objects.into_iter().flatten().any(in_object) {
                    failures.push(format!("{}: {} in no object", template.name, variant.prog));
                }
            }
        }
        for object in objects.into_iter().flatten() {
            for point in &schema.attach {
                for variant in &point.variants {
                    let mut ebpf = aya::EbpfLoader::new()
                        .btf(Some(&btf))
                        .allow_unsupported_maps()
                        .load(object)
                        .expect("load object");
                    if ebpf.program(&variant.prog).is_none() {
                        continue;
                    }
                    let unmet: Vec<String> = variant
                        .requires
                        .iter()
                        .filter_map(|r| r.check(Path::new("/proc")).err())
                        .collect();
                    let result = attach_variant(&mut ebpf, variant, Some(&btf));
                    if !unmet.is_empty() {
                        // The loader skips it here. A program for another kernel generation's
                        // tracepoint arguments must not attach either (it would misread them).
                        let wrong_form = variant
                            .requires
                            .iter()
                            .any(|r| matches!(r, Requirement::BlockRqQueueArg));
                        if wrong_form && result.is_ok() {
                            failures.push(format!(
                                "{}: {} attached on a kernel it was not written for ({unmet:?})",
                                template.name, variant.prog
                            ));
                        }
                        skipped += 1;
                        continue;
                    }
                    let Err(e) = result else {
                        attached += 1;
                        continue;
                    };
                    // What this kernel cannot do at all: no kprobes, fentry not permitted,
                    // tracepoints of absent hardware (x86 MCE, PCIe AER). Everything else,
                    // verifier rejections first, is a failure.
                    let unsupported_kind = matches!(
                        variant.kind,
                        AttachKind::Kprobe | AttachKind::Kretprobe | AttachKind::Fentry
                    );
                    let tracepoint = variant.target.rsplit('/').next().unwrap_or_default();
                    let absent = matches!(variant.kind, AttachKind::TpBtf | AttachKind::RawTp)
                        && !kernel_has_tracepoint(&btf_bytes, tracepoint);
                    // The verifier rejects with EACCES or EINVAL; EPERM is a missing permission.
                    let verifier =
                        e.contains("Permission denied") || e.contains("Invalid argument");
                    if verifier || !(unsupported_kind || absent) {
                        failures.push(format!(
                            "{}: {:?} {} failed: {e}",
                            template.name, variant.kind, variant.prog
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(attached > 60, "only {attached} variants attached");
    // the (q, rq) block programs of kernels before 5.11, in the two objects that hold them
    assert!(
        skipped >= 4,
        "only {skipped} variants had unmet requirements"
    );
}

#[test]
fn bad_requests_are_reported_per_template() {
    if !kernel_ready("bad_requests_are_reported_per_template") {
        return;
    }
    let mut tunables = BTreeMap::new();
    // Keyed by the catalog name: applies to the template requested by folder name.
    tunables.insert(
        "bpf.softirq_latency".to_string(),
        BTreeMap::from([("threshold".to_string(), 5u64)]),
    );
    let templates = Templates::load(
        &["runqlat", "no_such_template", "softirq_latency"],
        &tunables,
    );
    let status = templates.status();
    assert_eq!(status.len(), 3);
    assert!(status[0].loaded, "{:?}", status[0]);
    let unknown = status[1].error.as_deref().unwrap_or_default();
    assert!(
        unknown.contains("no_such_template") && unknown.contains("runqlat"),
        "{unknown}"
    );
    let bad = status[2].error.as_deref().unwrap_or_default();
    assert!(!status[2].loaded);
    assert!(
        bad.contains("threshold") && bad.contains("softirq_latency"),
        "{bad}"
    );
    assert_eq!(templates.loaded(), vec!["runqlat"]);
}

#[test]
fn an_optional_program_that_cannot_attach_leaves_the_template_loaded() {
    if !kernel_ready("an_optional_program_that_cannot_attach_leaves_the_template_loaded") {
        return;
    }
    let templates = Templates::load(&["blockio"], &BTreeMap::new());
    let st = &templates.status()[0];
    assert!(st.loaded, "{st:#?}");
    let freeze = st
        .programs
        .iter()
        .find(|p| p.program == "queue_freeze")
        .expect("queue_freeze program");
    assert!(!freeze.required);
    if freeze.attached.is_none() {
        // e.g. this kernel: no kprobes, fentry not permitted. Each attempt says why.
        assert_eq!(freeze.tried.len(), 2, "{freeze:#?}");
        for t in &freeze.tried {
            assert!(t.error.as_deref().is_some_and(|e| !e.is_empty()), "{t:#?}");
        }
    }
    // The counter map reads (zeros or counts) without error alongside the histograms.
    let _ = templates.read_histograms();
}
