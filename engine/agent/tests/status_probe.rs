//! `huatuo status --probe` on this kernel: every template is listed with the variant that
//! attached or why none did. A template may be unavailable only when every variant of a
//! program it requires is a kprobe or fentry (kernels without kprobes, or refusing fentry, as
//! the one these tests run on): it is then `loaded: false` with every variant's reason. Needs
//! root and BPF; skips with a message otherwise unless CI=true.

use std::process::Command;

fn should_run() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let btf = std::path::Path::new("/sys/kernel/btf/vmlinux").exists();
    if root && btf {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but this test needs root and kernel BTF"
    );
    eprintln!("skipping status_probe: needs root and /sys/kernel/btf/vmlinux");
    false
}

#[test]
fn every_template_reports_what_attached() {
    if !should_run() {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_huatuo"))
        .args(["status", "--probe", "--json"])
        .output()
        .expect("huatuo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let templates = status.as_array().expect("a list of templates");
    let names: Vec<&str> = templates
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for expected in [
        "blockio",
        "drops",
        "hungtask",
        "irqoff",
        "netrx_latency",
        "oom",
        "profiler",
        "ras",
        "reclaim",
        "reschedipi",
        "runqlat",
        "softirq_latency",
        "softirq_off",
        "softlockup",
        "txqueue_timeout",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    // This kernel keeps sched_info and schedules by group: runqlat runs on sched_switch
    // alone, from the scheduler's own queue stamp.
    let runqlat = templates
        .iter()
        .find(|t| t["name"] == "runqlat")
        .expect("runqlat");
    let programs = runqlat["programs"].as_array().expect("programs");
    let switch = &programs[0];
    let attached = &switch["tried"][switch["attached"].as_u64().expect("attached") as usize];
    assert_eq!(attached["prog"], "tp_btf_sched_switch_queued", "{switch}");
    assert!(
        programs[1..].iter().all(|p| p["not_needed"].is_string()),
        "{runqlat}"
    );
    // Both softirq templates are wanted: softirq_off's programs do softirq_latency's work too,
    // and softirq_latency shows them as its own, naming its host.
    let template = |name: &str| templates.iter().find(|t| t["name"] == name).expect(name);
    let (latency, off) = (template("softirq_latency"), template("softirq_off"));
    assert_eq!(latency["hosted_by"], "softirq_off", "{latency}");
    assert!(off["hosted_by"].is_null(), "{off}");
    let attached = |t: &serde_json::Value| -> Vec<(String, String)> {
        let programs = t["programs"].as_array().expect("programs");
        programs
            .iter()
            .map(|p| {
                let at = p["attached"].as_u64().unwrap_or(u64::MAX) as usize;
                (p["program"].to_string(), p["tried"][at]["prog"].to_string())
            })
            .collect()
    };
    assert_eq!(attached(latency), attached(off)[..2], "{latency}\n{off}");
    // softlockup has no tracepoint: fentry, then kprobe, on add_taint. Either one attached, or
    // the template is unavailable and both say why.
    let softlockup = templates
        .iter()
        .find(|t| t["name"] == "softlockup")
        .expect("softlockup");
    let add_taint = &softlockup["programs"][0];
    assert_eq!(add_taint["program"], "add_taint", "{softlockup}");
    let kinds: Vec<&str> = add_taint["tried"]
        .as_array()
        .expect("tried")
        .iter()
        .filter_map(|t| t["kind"].as_str())
        .collect();
    if softlockup["loaded"] == true {
        assert!(add_taint["attached"].is_u64(), "{softlockup}");
    } else {
        assert_eq!(kinds, ["fentry", "kprobe"], "{softlockup}");
        assert!(add_taint["attached"].is_null(), "{softlockup}");
    }
    for template in templates {
        let programs = template["programs"].as_array().expect("programs");
        // Only kprobe/fentry variants: what a kernel without kprobes (or refusing fentry)
        // cannot attach at all.
        let probes_only = |program: &serde_json::Value| {
            program["tried"].as_array().is_some_and(|tried| {
                tried
                    .iter()
                    .all(|t| matches!(t["kind"].as_str(), Some("kprobe" | "kretprobe" | "fentry")))
            })
        };
        let unavailable = template["loaded"] == false;
        if unavailable {
            let error = template["error"].as_str().unwrap_or_default();
            assert!(error.contains("is unavailable"), "{template}");
            // Some required program had nothing but probes, and none of its variants attached.
            assert!(
                programs
                    .iter()
                    .any(|p| p["required"] == true && p["attached"].is_null() && probes_only(p)),
                "{template}"
            );
        }
        for program in programs {
            let tried = program["tried"].as_array().expect("tried variants");
            if program["not_needed"].is_string() {
                // A companion no attached variant needs: nothing tried, nothing attached.
                assert!(
                    tried.is_empty() && program["attached"].is_null(),
                    "{program}"
                );
                continue;
            }
            assert!(!tried.is_empty(), "{program}");
            match program["attached"].as_u64() {
                // The attached variant attached without error.
                Some(i) => assert!(tried[i as usize]["error"].is_null(), "{program}"),
                // Otherwise every variant says why not, and only optional programs, or the
                // probe-only programs of an unavailable template, may fail.
                None => {
                    let required = program["required"] == true;
                    assert!(
                        !required || (unavailable && probes_only(program)),
                        "{program}"
                    );
                    assert!(tried.iter().all(|t| t["error"].is_string()), "{program}");
                }
            }
        }
    }
}
