//! What the real agent costs when nothing happens: a recorded kernel log that was replayed to
//! its end leaves no thread behind waiting on it, and the agent sits idle.

mod api_agent;

use api_agent::*;
use std::time::Duration;

/// CPU time of the agent (all its threads, the dead included), in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // utime and stime: fields 14 and 15, counted after the command's closing parenthesis.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// Names of the agent's live threads.
fn threads(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("task dir")
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .collect()
}

#[test]
fn a_replayed_kernel_log_that_ended_costs_nothing() {
    let agent = ApiAgent::start_healthy(Setup {
        tag: "idle-kmsg",
        extra_rules:
            "metric lockups {\n    source kmsg\n    where  message =~ \"soft lockup\"\n    \
                      emit   total = total(1) counter\n}\n",
        ..Setup::default()
    });
    let pid = agent.pid();
    // The fixture's recording is replayed at start; its pump ends with it.
    let mut waited = Duration::ZERO;
    while threads(pid).iter().any(|t| t == "huatuo-kmsg") && waited < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
        waited += Duration::from_millis(100);
    }
    assert!(
        !threads(pid).iter().any(|t| t == "huatuo-kmsg"),
        "the kmsg pump outlived its recording: {:?}\nlog:\n{}",
        threads(pid),
        agent.log()
    );
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(3));
    let used = (cpu_ticks(pid) - before) as f64 / hz / 3.0;
    // Polling the fixture's files every few seconds takes a few per cent at most; a thread
    // spinning on the ended stream took a whole CPU.
    assert!(
        used < 0.3,
        "the idle agent used {used:.2} CPUs\nlog:\n{}",
        agent.log()
    );
}
