//! Harness of the end-to-end kernel tests (`events_kernel`, `events_hungtask`,
//! `events_softlockup`, `autotrace_kernel`): the real `huatuo run` on the live kernel with
//! shipped rules, its records stored as local files in a scratch directory, its `/status`
//! read over HTTP.
//! Builds on `scrape_common` (repository root, root check, ports, scratch config, HTTP GET).

#![allow(dead_code)]

/// The `/metrics` tests' helpers, included from `tests/scrape_common`.
#[path = "../scrape_common/mod.rs"]
mod scrape_common;

/// Repository root, `CI=true`, effective-uid root check and free port, as the metrics tests.
pub use scrape_common::{ci, free_port, is_root, repo};

use scrape_common::TempConfig;
use serde_json::Value as Json;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// True when a kernel test should run (root, or `CI=true`, which makes it run or fail);
/// prints `SKIPPED: <test> needs <needs>` otherwise.
pub fn kernel_tests_enabled(test: &str, needs: &str) -> bool {
    if !ci() && !is_root() {
        println!("SKIPPED: {test} needs {needs} (set CI=true to require it)");
        return false;
    }
    true
}

/// Polls `probe` every 100 ms until it gives a value or `timeout` passes.
pub fn wait_until<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What differs between the tests' agents.
pub struct Setup<'a> {
    /// Names the scratch directory `<temp>/huatuo-<tag>-<pid>`.
    pub tag: &'a str,
    /// The `--rules` path, relative to the repository root (`rules/`, `rules/autotrace`).
    pub rules: &'a str,
    /// Config text put before the `[Storage.LocalFile]` section (e.g. `[EventTracing.Netdev]`).
    pub config: &'a str,
    /// Extra `huatuo run` arguments (e.g. `--run-for 60`).
    pub args: &'a [&'a str],
}

/// The running agent and its scratch directory; killed, then the directory removed, on drop.
pub struct Agent {
    // field order is drop order: the process goes before its directory
    child: scrape_common::Agent,
    scratch: TempConfig,
    port: u16,
}

impl Agent {
    /// Starts `huatuo run --rules <rules> --stdlib stdlib --listen 127.0.0.1:<port> --config
    /// <scratch>/huatuo-bamai.conf <args>` from the repository root, stderr to `agent.log`.
    pub fn start(setup: Setup) -> Agent {
        let scratch = TempConfig::new(setup.tag, setup.config);
        std::fs::create_dir_all(scratch.dir.join("local")).expect("scratch dir");
        let port = free_port();
        let log = std::fs::File::create(scratch.dir.join("agent.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_huatuo"))
            .current_dir(repo())
            .args([
                "run",
                "--rules",
                setup.rules,
                "--stdlib",
                "stdlib",
                "--listen",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--config")
            .arg(&scratch.path)
            .args(setup.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the agent");
        Agent {
            child: scrape_common::Agent(child),
            scratch,
            port,
        }
    }

    /// The agent's listen address (`127.0.0.1:<port>`).
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The scratch directory (config, log, local records).
    pub fn dir(&self) -> &std::path::Path {
        &self.scratch.dir
    }

    /// The body of `GET path`, or `None` while the agent is not serving.
    pub fn get(&self, path: &str) -> Option<String> {
        scrape_common::get(self.port, path)
    }

    /// `GET /status` parsed, or `None` while the agent is not serving.
    pub fn status(&self) -> Option<Json> {
        serde_json::from_str(&self.get("/status")?).ok()
    }

    /// The local record file of `tracer`.
    pub fn record_file(&self, tracer: &str) -> PathBuf {
        self.scratch.dir.join("local").join(tracer)
    }

    /// Every stored document of `tracer` (a header line, then the JSON document, per record;
    /// each asserted to name `tracer`).
    pub fn documents(&self, tracer: &str) -> Vec<Json> {
        let text = std::fs::read_to_string(self.record_file(tracer)).unwrap_or_default();
        let documents = huatuo_storage::local::documents(&text);
        for doc in &documents {
            assert_eq!(doc["tracer_name"], tracer, "{doc}");
        }
        documents
    }

    /// The `tracer_data` of every stored record of `tracer`.
    pub fn records(&self, tracer: &str) -> Vec<Json> {
        self.documents(tracer)
            .into_iter()
            .map(|doc| doc["tracer_data"].clone())
            .collect()
    }

    /// The first record of `tracer` for which `what` holds, waiting up to `within` for it.
    pub fn wait_record(
        &self,
        tracer: &str,
        within: Duration,
        what: impl Fn(&Json) -> bool,
    ) -> Option<Json> {
        wait_until(within, || {
            self.records(tracer).into_iter().find(|r| what(r))
        })
    }

    /// The first `/status` the agent serves (waiting up to 60 s); panics with the log
    /// otherwise. The stream sources (kmsg) are open by then.
    pub fn wait_serving(&self) -> Json {
        wait_until(Duration::from_secs(60), || self.status())
            .unwrap_or_else(|| panic!("the agent never served /status\nlog:\n{}", self.log()))
    }

    /// The `/status` once every one of `templates` is attached (waiting up to 60 s); panics
    /// with the last status and the log otherwise.
    pub fn wait_attached(&self, templates: &[&str]) -> Json {
        wait_until(Duration::from_secs(60), || {
            self.status()
                .filter(|s| templates.iter().all(|t| template_attached(s, t)))
        })
        .unwrap_or_else(|| {
            panic!(
                "{} never attached; status {:?}\nlog:\n{}",
                templates.join(" and "),
                self.status(),
                self.log()
            )
        })
    }

    /// The port the agent serves HTTP on (loopback).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// The agent's exit status if it has exited already.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.0.try_wait().ok().flatten()
    }

    /// What the agent wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.dir.join("agent.log")).unwrap_or_default()
    }
}

/// The names of the rules a `/status` lists as loaded.
pub fn rule_names(status: &Json) -> Vec<&str> {
    status["rules"]
        .as_array()
        .map(|rs| rs.iter().filter_map(|r| r["name"].as_str()).collect())
        .unwrap_or_default()
}

/// Whether template `name` loaded with every required program attached.
pub fn template_attached(status: &Json, name: &str) -> bool {
    status["templates"].as_array().is_some_and(|ts| {
        ts.iter().any(|t| {
            t["name"] == name
                && t["loaded"] == true
                && t["programs"].as_array().is_some_and(|ps| {
                    ps.iter()
                        .filter(|p| p["required"] == true)
                        .all(|p| !p["attached"].is_null())
                })
        })
    })
}

/// The value of the sample of metric `name` (`huatuo_bamai_...`) whose labels include
/// `label="value"`, in a `/metrics` text (label values with commas are not told apart).
pub fn sample_value(metrics: &str, name: &str, (label, value): (&str, &str)) -> Option<f64> {
    let wanted = format!("{label}=\"{value}\"");
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (labels, sample) = rest.split_once("} ")?;
        labels
            .split(',')
            .any(|l| l == wanted)
            .then(|| sample.trim().parse().ok())?
    })
}

/// The tasks a `tasks(state: ...)` capture stored as `field` of `record`: panics (with the
/// record) unless it is a non-empty list of tasks all in `state`, each with a numeric tid.
pub fn captured_tasks<'a>(record: &'a Json, field: &str, state: &str) -> &'a [Json] {
    let tasks = record[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field}: {record:#}"));
    assert!(!tasks.is_empty(), "empty {field}: {record:#}");
    assert!(
        tasks
            .iter()
            .all(|t| t["state"] == state && t["tid"].is_number()),
        "{field} lists tasks not in state {state}: {record:#}"
    );
    tasks
}

/// The text form of a task capture (`text_field`, HUATUO's kernel-log text) names the same
/// tasks, in the same order, as its list form (`list_field`): one `task:<comm> state:<S>
/// pid:<tid>` line per listed task, followed by that task's frames.
pub fn text_matches_tasks(record: &Json, text_field: &str, list_field: &str) {
    let text = record[text_field]
        .as_str()
        .unwrap_or_else(|| panic!("{text_field} is not text: {record:#}"));
    let headers: Vec<&str> = text.lines().filter(|l| l.starts_with("task:")).collect();
    let tasks = record[list_field]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    assert_eq!(
        headers.len(),
        tasks.len(),
        "{text_field} vs {list_field}: {record:#}"
    );
    for (header, task) in headers.iter().zip(tasks) {
        let words: Vec<&str> = header.split_whitespace().collect();
        assert!(
            words.contains(&format!("pid:{}", task["tid"]).as_str()),
            "{header} / {task}"
        );
        assert!(words.contains(&format!("state:{}", task["state"].as_str().unwrap_or("")).as_str()));
        assert!(header.starts_with(&format!("task:{}", task["comm"].as_str().unwrap_or(""))));
        for frame in task["stack"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let frame = frame.as_str().unwrap_or("");
            assert!(
                text.contains(&format!("\n  {frame}\n")),
                "{frame} not in {text_field}"
            );
        }
    }
}

/// A v1 memory cgroup limited to 20 MiB (`huatuo-test-<pid>`), removed on drop.
pub struct MemCgroup(pub PathBuf);

impl MemCgroup {
    pub fn create() -> MemCgroup {
        let path = PathBuf::from(format!(
            "/sys/fs/cgroup/memory/huatuo-test-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("create the v1 memory cgroup");
        let cg = MemCgroup(path);
        std::fs::write(cg.0.join("memory.limit_in_bytes"), "20971520").expect("limit");
        let memsw = cg.0.join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            std::fs::write(&memsw, "20971520").expect("memsw limit");
        }
        cg
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("could not remove {}", self.0.display());
    }
}

/// A `docker/<64 hex>` cgroup of the v1 cpu controller, which container discovery takes for
/// a Docker container; removed on drop (after its processes left).
pub struct CpuContainer {
    /// The container id.
    pub id: String,
    /// The cgroup directory.
    pub dir: PathBuf,
}

impl CpuContainer {
    /// Creates the cgroup; `None` without a v1 cpu controller.
    pub fn create(seed: u8) -> Option<CpuContainer> {
        let cpu = PathBuf::from("/sys/fs/cgroup/cpu");
        if !cpu.is_dir() {
            return None;
        }
        let id = format!(
            "{}{:04x}",
            format!("{seed:02x}").repeat(30),
            std::process::id() & 0xffff
        );
        let dir = cpu.join("docker").join(&id);
        std::fs::create_dir_all(&dir).expect("create the container cgroup");
        Some(CpuContainer { id, dir })
    }
}

impl Drop for CpuContainer {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("could not remove {}", self.dir.display());
    }
}

/// A veth pair, deleted on drop.
pub struct Veth(pub String);

impl Veth {
    pub fn create(name: &str) -> Veth {
        let peer = format!("{name}p");
        let status = Command::new("ip")
            .args(["link", "add", name, "type", "veth", "peer", "name", &peer])
            .status()
            .expect("run ip");
        assert!(status.success(), "ip link add {name} failed");
        Veth(name.to_string())
    }

    pub fn set(&self, state: &str) {
        let status = Command::new("ip")
            .args(["link", "set", &self.0, state])
            .status()
            .expect("run ip");
        assert!(status.success(), "ip link set {} {state} failed", self.0);
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

/// A 64 MiB loop device over a scratch file, detached and removed on drop.
pub struct LoopDevice {
    file: PathBuf,
    /// The device path (`/dev/loopN`).
    pub dev: String,
}

impl LoopDevice {
    /// Attaches a new loop device; `None` (with the reason on stderr) when losetup fails.
    pub fn create(tag: &str) -> Option<LoopDevice> {
        let file = std::env::temp_dir().join(format!("huatuo-{tag}-{}.img", std::process::id()));
        std::fs::File::create(&file).ok()?.set_len(64 << 20).ok()?;
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&file)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!("losetup failed: {}", String::from_utf8_lossy(&out.stderr));
            let _ = std::fs::remove_file(&file);
            return None;
        }
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Some(LoopDevice { file, dev })
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
        let _ = std::fs::remove_file(&self.file);
    }
}

/// The function a [`Busy`] thread spends its time in; unmangled so profiles and flame graphs
/// name it plainly.
#[no_mangle]
#[inline(never)]
pub extern "C" fn huatuo_test_busy_spin(rounds: u64) -> u64 {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..rounds {
        x = std::hint::black_box(x.rotate_left(7) ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d));
    }
    x
}

/// A thread calling [`huatuo_test_busy_spin`] until dropped.
pub struct Busy {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Busy {
    /// Starts the spinning thread.
    pub fn start() -> Busy {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::hint::black_box(huatuo_test_busy_spin(std::hint::black_box(5_000_000)));
            }
        });
        Busy {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A program running in a Docker-style v1 cpu cgroup (`docker/<64 hex>`), which container
/// discovery takes for a container on a host without a container runtime; the program is
/// killed and the cgroup removed on drop.
pub struct DockerContainer {
    /// The container id (64 hex digits).
    pub id: String,
    dir: PathBuf,
    child: std::process::Child,
}

impl DockerContainer {
    /// Starts `program` and moves it into a new container cgroup whose id begins with `seed`.
    pub fn start(seed: u16, mut program: Command) -> DockerContainer {
        // The short id (first 12 digits) names the seed and this test process.
        let id = format!("{seed:04x}{:08x}{}", std::process::id(), "0".repeat(52));
        let dir = PathBuf::from("/sys/fs/cgroup/cpu/docker").join(&id);
        std::fs::create_dir_all(&dir).expect("create the container's cpu cgroup");
        let child = program
            .stdout(Stdio::null())
            .spawn()
            .expect("start the container's program");
        let container = DockerContainer { id, dir, child };
        std::fs::write(
            container.dir.join("cgroup.procs"),
            container.child.id().to_string(),
        )
        .expect("move the program into its container cgroup");
        container
    }
}

impl Drop for DockerContainer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The parent stays when another test's container still lives in it.
        let _ = std::fs::remove_dir("/sys/fs/cgroup/cpu/docker");
    }
}

/// Builds the busy C program of the profiling fixtures (it spins in `huatuo_c_hot_loop`)
/// into `dir`; `None` after saying so when gcc is missing outside CI.
pub fn build_busy_c(dir: &std::path::Path) -> Option<PathBuf> {
    if Command::new("gcc").arg("--version").output().is_err() {
        assert!(!ci(), "gcc is required in CI (scripts/deps.sh --test)");
        println!("SKIPPED: this test needs gcc to build its busy program");
        return None;
    }
    let out = dir.join("busy");
    let status = Command::new("gcc")
        .args(["-O0", "-fno-omit-frame-pointer", "-o"])
        .arg(&out)
        .arg(repo().join("engine/agent/tests/fixtures/profiling/busy.c"))
        .status()
        .expect("run gcc");
    assert!(status.success(), "gcc busy.c failed");
    Some(out)
}
