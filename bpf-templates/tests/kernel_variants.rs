//! Kernel test: every attach variant of every required program of runqlat,
//! softirq_latency and blockio loads and attaches on its own, so the fallback chain has
//! somewhere to fall; optional programs that cannot attach leave the template loaded; and
//! load errors are reported per template, not fatal.

mod common;

use common::kernel_ready;
use huatuo_bpf::attach::attach_variant;
use huatuo_bpf::{embedded, TemplateSchema, Templates};
use std::collections::BTreeMap;
use std::path::Path;

/// Unmounts tracefs on drop when the test mounted it.
struct TracefsGuard(bool);

impl Drop for TracefsGuard {
    fn drop(&mut self) {
        if self.0 {
            let target = std::ffi::CString::new("/sys/kernel/tracing").expect("path");
            // SAFETY: valid NUL-terminated path.
            unsafe { libc::umount(target.as_ptr()) };
        }
    }
}

#[test]
fn every_variant_of_the_polled_templates_attaches() {
    if !kernel_ready("every_variant_of_the_polled_templates_attaches") {
        return;
    }
    let _guard = TracefsGuard(!Path::new("/sys/kernel/tracing/events").is_dir());
    let btf = aya::Btf::from_sys_fs().expect("btf");
    for name in ["runqlat", "softirq_latency", "blockio"] {
        let template = embedded::find(name).expect("embedded");
        let schema = TemplateSchema::parse(name, template.schema).expect("schema");
        for point in schema.attach.iter().filter(|p| p.required) {
            for variant in &point.variants {
                let mut ebpf = aya::EbpfLoader::new()
                    .btf(Some(&btf))
                    .load(template.object)
                    .expect("load object");
                if let Err(e) = attach_variant(&mut ebpf, variant, Some(&btf)) {
                    panic!("{name}: {:?} {} failed: {e}", variant.kind, variant.prog);
                }
            }
        }
    }
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
