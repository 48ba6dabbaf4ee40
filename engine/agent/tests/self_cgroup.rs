//! `[RuntimeCgroup]`: the agent moves itself into its own cgroup with `LimitCPU` and
//! `LimitMem` (read back from the cgroup files, its pid among the cgroup's processes) and
//! leaves it on exit; run unprivileged it says once that it cannot and keeps serving. Needs
//! root; skips with a message otherwise unless CI=true.

mod scrape_common;

use scrape_common::{ci, fixture_args, free_port, get, is_root, repo, Agent, TempConfig};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIMITS: &str =
    "[RuntimeCgroup]\n    LimitInitCPU = 0.5\n    LimitCPU = 1.5\n    LimitMem = 512\n";

fn should_run() -> bool {
    if is_root() {
        return true;
    }
    assert!(!ci(), "CI=true but this test needs root");
    println!("SKIPPED: the agent's own cgroup needs root");
    false
}

/// Starts the agent over the fixture node for `seconds`, optionally through `setpriv` as
/// the unprivileged user `nobody`.
fn start(port: u16, config: &TempConfig, seconds: u32, as_nobody: bool) -> Agent {
    let mut command = if as_nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_huatuo"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_huatuo"))
    };
    command
        .current_dir(repo())
        .env_remove("RUST_LOG")
        .arg("run")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--config")
        .arg(&config.path)
        .arg("--spool-dir")
        .arg(config.dir.join("spool"))
        // The fixture arguments without `--no-self-limit`: this agent is to limit itself.
        .args(
            fixture_args("cgroup", seconds)
                .into_iter()
                .filter(|a| a != "--no-self-limit"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Agent(command.spawn().expect("start huatuo"))
}

/// `/status` once its `runtime_cgroup` entries are past start-up (or after 30 s).
fn settled_status(port: u16) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status: serde_json::Value = get(port, "/status")
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or_default();
        let entries = status["runtime_cgroup"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if (!entries.is_empty() && entries.iter().all(|e| e["state"] != "starting"))
            || Instant::now() > deadline
        {
            return status;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The directory of `pid`'s cgroup in the v1 hierarchy of `controller`.
fn v1_dir(pid: u32, controller: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup file");
    let path = text
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':').skip(1);
            parts.next().zip(parts.next())
        })
        .find(|(controllers, _)| controllers.split(',').any(|c| c == controller))
        .map(|(_, path)| path.trim_start_matches('/').to_string())
        .expect("controller listed");
    PathBuf::from("/sys/fs/cgroup").join(controller).join(path)
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

fn wait_exit(agent: &mut Agent) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while agent.0.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "the agent did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn agent_limits_itself_in_its_own_cgroup_and_leaves_it_on_exit() {
    if !should_run() {
        return;
    }
    let unified = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").is_ok();
    if unified {
        assert!(
            !ci(),
            "this test reads cgroup v1 files; the host runs cgroup v2 only"
        );
        println!("SKIPPED: cgroup v2-only host (the test reads v1 files)");
        return;
    }
    let config = TempConfig::new("self-cgroup", LIMITS);
    let port = free_port();
    let mut agent = start(port, &config, 6, false);
    let pid = agent.0.id();
    let status = settled_status(port);
    let entries = status["runtime_cgroup"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(entries.len(), 2, "cpu and memory hierarchies: {status}");
    for entry in &entries {
        assert_eq!(entry["state"], "running", "{entry}");
    }

    let cpu = v1_dir(pid, "cpu");
    let memory = v1_dir(pid, "memory");
    for dir in [&cpu, &memory] {
        assert!(
            dir.ends_with("huatuo"),
            "agent not in its own cgroup: {}",
            dir.display()
        );
        let procs = read(dir.join("cgroup.procs"));
        assert!(
            procs.lines().any(|l| l == pid.to_string()),
            "pid {pid} not in {}: {procs}",
            dir.display()
        );
    }
    let period: u64 = read(cpu.join("cpu.cfs_period_us")).parse().expect("period");
    let quota: u64 = read(cpu.join("cpu.cfs_quota_us")).parse().expect("quota");
    assert_eq!(quota, period * 3 / 2, "LimitCPU 1.5 cores");
    assert_eq!(
        read(memory.join("memory.limit_in_bytes")),
        (512u64 << 20).to_string()
    );

    wait_exit(&mut agent);
    for dir in [&cpu, &memory] {
        // Gone, unless another agent (another test) still runs in it.
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        assert!(
            !procs.lines().any(|l| l == pid.to_string()),
            "{} still lists the exited agent",
            dir.display()
        );
        assert!(
            !dir.exists() || !procs.trim().is_empty(),
            "{} left behind empty",
            dir.display()
        );
    }
}

#[test]
fn unprivileged_agent_says_once_it_cannot_and_keeps_serving() {
    if !should_run() {
        return;
    }
    let log = std::env::temp_dir().join(format!(
        "huatuo-self-cgroup-nobody-{}.log",
        std::process::id()
    ));
    let config = TempConfig::new(
        "self-cgroup-nobody",
        &format!("{LIMITS}[Log]\n    File = \"{}\"\n", log.display()),
    );
    // The unprivileged agent writes its records and spool under the config's directory.
    std::fs::set_permissions(&config.dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let port = free_port();
    let mut agent = start(port, &config, 4, true);
    let status = settled_status(port);
    let entries = status["runtime_cgroup"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!entries.is_empty(), "{status}");
    for entry in &entries {
        assert_eq!(entry["state"], "unavailable", "{entry}");
        let reason = entry["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("ermission denied") || reason.contains("already limited"),
            "{reason}"
        );
    }
    assert!(
        get(port, "/metrics").is_some_and(|m| m.contains("huatuo_bamai_")),
        "not serving"
    );
    wait_exit(&mut agent);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let said = text
        .lines()
        .filter(|l| l.contains("RuntimeCgroup: cannot"))
        .count();
    assert_eq!(said, entries.len(), "once per hierarchy:\n{text}");
}
