//! Kernel test of the shipped autotracing rules (root + BPF): the real `huatuo run` with
//! lowered cpusys thresholds, a thread hammering stat(2), and a `cpusys` record in the local
//! file store whose flame data shows the syscall path. Skips without root unless `CI=true`.

mod kernel_agent;

use kernel_agent::*;
use serde_json::Value as Json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A thread in tight stat(2) calls (system CPU), stopped and joined on drop.
struct SyscallLoad {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl SyscallLoad {
    fn start() -> SyscallLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut calls = 0u64;
            while !flag.load(Ordering::Relaxed) {
                for _ in 0..1000 {
                    let _ = std::fs::metadata("/proc/self/stat");
                }
                calls += 1000;
            }
            calls
        });
        SyscallLoad {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SyscallLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The flame frames of a cpusys record's `tracer_data`: `flamedata`, a list as HUATUO stores it.
fn frames(data: &Json) -> Vec<Json> {
    data["flamedata"].as_array().cloned().unwrap_or_default()
}

#[test]
fn cpusys_profiles_a_system_cpu_burst() {
    if !kernel_tests_enabled("autotrace_kernel", "root and BPF") {
        return;
    }
    let mut agent = Agent::start(Setup {
        tag: "autotrace",
        rules: "rules/autotrace",
        config: "[AutoTracing.CPUSys]\n    SysThreshold = 1\n    DeltaSysThreshold = 1\n    \
                 Interval = 1\n    RunTracingToolTimeout = 2\n",
        args: &["--run-for", "60"],
    });

    // Let the agent take its quiet baseline samples, then raise system CPU.
    std::thread::sleep(Duration::from_secs(3));
    let load = SyscallLoad::start();
    // `records` asserts that every stored document names `cpusys`.
    let found = wait_until(Duration::from_secs(40), || {
        if let Some(status) = agent.exited() {
            panic!("huatuo exited early ({status}):\n{}", agent.log());
        }
        agent
            .records("cpusys")
            .into_iter()
            .find(|data| !frames(data).is_empty())
    });
    drop(load);
    let records = agent.records("cpusys");
    let data = found.unwrap_or_else(|| {
        panic!(
            "no cpusys record with flame frames in {} ({} records: {records:?})\nagent log:\n{}",
            agent.record_file("cpusys").display(),
            records.len(),
            agent.log()
        )
    });
    assert!(data["now_sys"].as_f64().unwrap_or(0.0) > 1.0, "{data}");
    assert!(data["deltasys"].as_f64().unwrap_or(0.0) > 1.0, "{data}");
    assert_eq!(data["sys_threshold"].as_f64(), Some(1.0), "{data}");
    let frames = frames(&data);
    for frame in &frames {
        for key in ["level", "value", "self", "label"] {
            assert!(frame.get(key).is_some(), "frame without {key}: {frame}");
        }
    }
    // Entry points and handlers of the syscall path (x86_64 and arm64 names).
    const SYSCALL_PATH: &[&str] = &[
        "do_syscall_64",
        "entry_SYSCALL_64",
        "x64_sys_call",
        "__x64_sys_",
        "__do_sys_",
        "el0_svc",
        "invoke_syscall",
        "vfs_statx",
        "vfs_fstatat",
    ];
    let labels: Vec<&str> = frames.iter().filter_map(|f| f["label"].as_str()).collect();
    assert!(
        labels
            .iter()
            .any(|l| SYSCALL_PATH.iter().any(|s| l.starts_with(s))),
        "no syscall-path kernel symbol among {} frame labels: {:?}",
        labels.len(),
        &labels[..labels.len().min(80)]
    );
}
