//! Hot reload on the live kernel: templates that newly have readers are attached, those that
//! lost them detached (their programs leave the kernel), and a template whose pushed-down
//! threshold changed is loaded again with the new value. Root and BPF; run under the
//! kernel-test lock.

mod kernel_agent;

use kernel_agent::{kernel_tests_enabled, template_attached, wait_until, Agent, Setup};
use serde_json::Value as Json;
use std::collections::BTreeSet;
use std::time::Duration;

const OOM: &str = "metric rk_oom {\n    source bpf.oom\n    help \"oom kills\"\n    \
                   emit total = total(1) counter\n}\n";

fn softirq(threshold: &str) -> String {
    format!(
        "event rk_softirq {{\n    source bpf.softirq_off\n    where offtime > {threshold}\n    \
         cooldown none\n    emit offtime\n}}\n"
    )
}

const DROPS: &str = "event rk_drops {\n    source bpf.drops\n    where l4_proto == 6\n    \
                     cooldown none\n    emit comm\n}\n";

/// Ids of the BPF programs the process `pid` holds open (fdinfo names `prog_id`).
fn held_programs(pid: u32) -> BTreeSet<u32> {
    std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| {
                    let info = std::fs::read_to_string(e.path()).ok()?;
                    info.lines()
                        .find_map(|l| l.strip_prefix("prog_id:"))
                        .and_then(|id| id.trim().parse().ok())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Ids of every BPF program loaded in the kernel.
fn kernel_programs() -> BTreeSet<u32> {
    aya::programs::loaded_programs()
        .filter_map(|p| p.ok().map(|p| p.id()))
        .collect()
}

fn reload(agent: &Agent) -> Json {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_huatuo"))
        .args(["reload", "--json", "--addr", &agent.addr()])
        .output()
        .expect("huatuo reload");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&text).expect("JSON reply")
}

fn listed(status: &Json, name: &str) -> bool {
    status["templates"]
        .as_array()
        .is_some_and(|ts| ts.iter().any(|t| t["name"] == name))
}

#[test]
fn reload_attaches_detaches_and_repushes_templates() {
    if !kernel_tests_enabled("reload_kernel", "root and BPF") {
        return;
    }
    let rules =
        std::env::temp_dir().join(format!("huatuo-reload-kernel-rules-{}", std::process::id()));
    std::fs::create_dir_all(&rules).expect("rules dir");
    let file = rules.join("rk.hto");
    std::fs::write(&file, format!("{OOM}{}", softirq("20ms"))).expect("rules");
    let agent = Agent::start(Setup {
        tag: "reload-kernel",
        rules: rules.to_str().expect("utf-8"),
        config: "",
        args: &["--no-self-limit"],
    });
    agent.wait_attached(&["oom", "softirq_off"]);
    let first = held_programs(agent.pid());
    assert!(!first.is_empty(), "the agent holds its programs");

    // oom loses its reader, drops gains one, softirq_off's threshold moves 20 -> 30 ms.
    std::fs::write(&file, format!("{DROPS}{}", softirq("30ms"))).expect("rules");
    let reply = reload(&agent);
    let templates = &reply["data"]["templates"];
    assert_eq!(
        templates["attached"],
        serde_json::json!(["drops"]),
        "{reply}"
    );
    assert_eq!(templates["detached"], serde_json::json!(["oom"]), "{reply}");
    assert_eq!(
        templates["reloaded"],
        serde_json::json!(["softirq_off"]),
        "{reply}"
    );
    let status = wait_until(Duration::from_secs(10), || {
        agent
            .status()
            .filter(|s| template_attached(s, "drops") && template_attached(s, "softirq_off"))
    })
    .unwrap_or_else(|| panic!("drops and softirq_off attached\n{}", agent.log()));
    assert!(!listed(&status, "oom"), "oom is gone: {status}");
    let second = held_programs(agent.pid());
    let kernel = kernel_programs();
    assert!(
        first.iter().all(|id| !kernel.contains(id)),
        "every program of the first set left the kernel (oom detached, softirq_off replaced)"
    );
    assert!(second.iter().all(|id| kernel.contains(id)));

    // Back to the first rules: drops detached, oom attached, softirq_off loaded again.
    std::fs::write(&file, format!("{OOM}{}", softirq("20ms"))).expect("rules");
    let reply = reload(&agent);
    let templates = &reply["data"]["templates"];
    assert_eq!(templates["attached"], serde_json::json!(["oom"]), "{reply}");
    assert_eq!(
        templates["detached"],
        serde_json::json!(["drops"]),
        "{reply}"
    );
    assert_eq!(
        templates["reloaded"],
        serde_json::json!(["softirq_off"]),
        "{reply}"
    );
    let kernel = kernel_programs();
    assert!(
        second.iter().all(|id| !kernel.contains(id)),
        "drops' programs left the kernel"
    );
    let third = held_programs(agent.pid());
    assert_eq!(
        third.len(),
        first.len(),
        "as many programs as the same rules had at start"
    );

    // A reload that changes nothing touches no template.
    let reply = reload(&agent);
    let templates = &reply["data"]["templates"];
    for key in ["attached", "detached", "reloaded"] {
        assert_eq!(templates[key], serde_json::json!([]), "{reply}");
    }
    assert_eq!(
        held_programs(agent.pid()),
        third,
        "the same programs stay attached"
    );
    let _ = std::fs::remove_dir_all(&rules);
}
