//! Kernel test: every event template of engineer B loads and attaches on this kernel, with
//! the preferred variant, and a missing RAS tracepoint is reported without failing `ras`.

mod common;

use common::kernel_ready;
use huatuo_bpf::schema::AttachKind;
use huatuo_bpf::Templates;
use std::collections::BTreeMap;

const TEMPLATES: [&str; 9] = [
    "drops",
    "oom",
    "reclaim",
    "hungtask",
    "txqueue_timeout",
    "ras",
    "softirq_off",
    "netrx_latency",
    "profiler",
];

#[test]
fn event_templates_load_and_attach() {
    if !kernel_ready("event_templates_load_and_attach") {
        return;
    }
    let templates = Templates::load(&TEMPLATES, &BTreeMap::new());
    let status = templates.status();
    assert_eq!(status.len(), TEMPLATES.len());
    for st in &status {
        assert!(st.loaded, "{} did not load: {st:#?}", st.name);
        for program in &st.programs {
            if st.name == "ras" {
                continue;
            }
            let variant = program.attached_variant().unwrap_or_else(|| {
                panic!(
                    "{}: {} did not attach: {program:#?}",
                    st.name, program.program
                )
            });
            // tp_btf (or the perf sampler) is the first choice and works on this kernel
            assert!(
                matches!(variant.kind, AttachKind::TpBtf | AttachKind::PerfEvent),
                "{}: {program:#?}",
                st.name
            );
            assert_eq!(program.tried.len(), program.attached.unwrap() + 1);
        }
        if st.name != "profiler" {
            assert!(st.transport.is_some(), "{}: no event transport", st.name);
        }
    }

    // ras: mc_event, non_standard_event and arm_event exist here; mce_record (no x86 MCE
    // tracepoint in this kernel) and aer_event (no PCIe AER) do not, and only those fail.
    let ras = status.iter().find(|s| s.name == "ras").expect("ras status");
    let attached = |name: &str| {
        ras.programs
            .iter()
            .find(|p| p.program == name)
            .unwrap_or_else(|| panic!("ras program {name} missing: {ras:#?}"))
            .attached_variant()
            .is_some()
    };
    assert!(attached("mc_event") && attached("non_standard_event") && attached("arm_event"));
    for missing in ["mce_record", "aer_event"] {
        let program = ras.programs.iter().find(|p| p.program == missing).unwrap();
        assert!(!program.required);
        assert!(program.attached.is_none(), "{program:#?}");
        let error = program.tried[0].error.as_deref().unwrap_or_default();
        assert!(error.contains(missing), "{missing}: {error}");
    }
}
