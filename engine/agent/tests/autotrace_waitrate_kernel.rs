//! Kernel test of the shipped waitrate rule (root + BPF): the real `huatuo run`, two docker-like
//! CPU cgroups with one busy loop each pinned to one CPU, the rival weighing a hundred times more;
//! the target's `waitrate` record names the rival as the top competitor with CPU time that
//! fits the capture. Skips without root unless `CI=true`.

mod kernel_agent;

use kernel_agent::*;
use serde_json::Value as Json;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `docker/<64 hex>` v1 cpu cgroup (a container to discovery) running one busy loop
/// pinned to CPU 0; the loop is killed and the directory removed on drop.
struct Container {
    id: String,
    dir: PathBuf,
    child: Child,
}

impl Container {
    fn start(seed: u8, shares: u32) -> Container {
        let id =
            format!("{:02x}", seed).repeat(30) + &format!("{:04x}", std::process::id() & 0xffff);
        let dir = PathBuf::from("/sys/fs/cgroup/cpu/docker").join(&id);
        std::fs::create_dir_all(&dir).expect("create the container cgroup");
        std::fs::write(dir.join("cpu.shares"), shares.to_string()).expect("cpu.shares");
        let child = Command::new("taskset")
            .args(["-c", "0", "sh", "-c", "while :; do :; done"])
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn the busy loop");
        std::fs::write(dir.join("cgroup.procs"), child.id().to_string()).expect("join");
        Container { id, dir, child }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("could not remove {}", self.dir.display());
    }
}

#[test]
fn waitrate_names_the_container_holding_the_cpu() {
    if !kernel_tests_enabled("autotrace_waitrate_kernel", "root and BPF") {
        return;
    }
    if !PathBuf::from("/sys/fs/cgroup/cpu").is_dir() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no v1 cpu controller at /sys/fs/cgroup/cpu"
        );
        eprintln!("SKIP waitrate_names_the_container_holding_the_cpu: no v1 cpu controller");
        return;
    }
    let target = Container::start(0xa1, 1024);
    let rival = Container::start(0xb2, 102_400);
    let mut agent = Agent::start(Setup {
        tag: "waitrate",
        rules: "rules/autotrace",
        config: "[AutoTracing.WaitRate]\n    Threshold = 20\n    Interval = 1\n    \
                 RunTracingToolTimeout = 2\n    IntervalTracing = 600\n",
        args: &["--run-for", "60"],
    });
    // The target's record (the rival may wait too, behind the machine's other work).
    let targets = |agent: &Agent| -> Vec<Json> {
        let text = std::fs::read_to_string(agent.record_file("waitrate")).unwrap_or_default();
        huatuo_storage::local::documents(&text)
            .into_iter()
            .filter(|doc| doc["container_id"] == target.id.as_str())
            .map(|doc| doc["tracer_data"].clone())
            .collect()
    };
    let found = wait_until(Duration::from_secs(45), || {
        if let Some(status) = agent.exited() {
            panic!("huatuo exited early ({status}):\n{}", agent.log());
        }
        targets(&agent)
            .into_iter()
            .find(|data| data["competitors"].is_array())
    });
    let data: Json = found.unwrap_or_else(|| {
        panic!(
            "no waitrate record of the target with competitors (all: {:?})\nagent log:\n{}",
            agent.records("waitrate"),
            agent.log()
        )
    });
    eprintln!("{data}");
    assert!(data["wait_rate"].as_f64().unwrap_or(0.0) > 20.0, "{data}");
    // Host tasks (the agent starting, other work on the machine) compete as well and are
    // listed without a container; among containers the rival comes first.
    let competitors = data["competitors"].as_array().cloned().unwrap_or_default();
    let times: Vec<u64> = competitors
        .iter()
        .map(|c| c["cpu_time"].as_u64().unwrap_or(0))
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "ranked by cpu_time: {data}"
    );
    let top = competitors
        .iter()
        .find(|c| c["container_id"] != "")
        .unwrap_or_else(|| panic!("no container among the competitors: {data}"));
    assert_eq!(top["container_id"], rival.id.as_str(), "{data}");
    assert_eq!(top["cpus"], serde_json::json!([0]), "{data}");
    let cpu_time = top["cpu_time"].as_u64().unwrap_or(0);
    assert!(
        (400_000_000..=2_100_000_000).contains(&cpu_time),
        "rival cpu_time {cpu_time} ns in a 2 s capture: {data}"
    );
}
