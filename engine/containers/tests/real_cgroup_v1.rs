//! On a real cgroup v1 host as root: a docker-shaped cgroup with a busy child is discovered
//! and its CPU usage grows in `cgroup.cpu`. Skipped (with a message) when not root, unless
//! `CI=true`.

use huatuo_containers::{cgroup_readers, Discovery, DiscoveryOptions, Runtime};
use huatuo_dsl::value::Value;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod cgroup_v1;

use cgroup_v1::{docker_cgroups, CONTROLLERS, ROOT};

/// Removes everything the test created, in reverse order, even when an assertion fails.
struct Cleanup {
    child: Option<Child>,
    dirs: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for dir in self.dirs.iter().rev() {
            // rmdir of a cgroup may fail briefly while the killed task is being reaped.
            for _ in 0..50 {
                if fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The tests share the `docker` parent cgroups, which the one that finds them missing creates
/// and removes: they run one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn must_run() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn usage_of(readers: &mut [Box<dyn huatuo_dsl::source::Reader>], id: &str) -> i64 {
    let reader = readers
        .iter_mut()
        .find(|r| r.schema().name == "cgroup.cpu")
        .expect("cgroup.cpu reader");
    let samples = reader.read(0).expect("read cgroup.cpu");
    let sample = samples
        .iter()
        .find(|s| s.labels.get("container_id").map(String::as_str) == Some(id))
        .expect("sample for the test container");
    match sample.fields.get("usage") {
        Some(Value::Int(ns)) => *ns,
        other => panic!("usage field: {other:?}"),
    }
}

#[test]
fn docker_shaped_v1_cgroup_is_discovered_and_its_usage_grows() {
    let is_root = is_root();
    let v1 = PathBuf::from(ROOT).join("cpu/cgroup.procs").is_file();
    if !(is_root && v1) {
        assert!(!must_run(), "CI=true but not root on a cgroup v1 host");
        eprintln!("SKIPPED: needs root and cgroup v1 cpu/cpuacct/memory hierarchies");
        return;
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let id = format!(
        "{:032x}{:016x}{:016x}",
        nanos,
        std::process::id(),
        0xfeed_u64
    );
    assert_eq!(id.len(), 64);

    // Declared before the cleanup, so released after it.
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut cleanup = Cleanup {
        child: None,
        dirs: Vec::new(),
    };
    docker_cgroups(&CONTROLLERS, &id, &mut cleanup.dirs);
    let child = Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .spawn()
        .expect("spawn busy child");
    let pid = child.id();
    cleanup.child = Some(child);
    for ctl in CONTROLLERS {
        let procs = PathBuf::from(ROOT)
            .join(ctl)
            .join("docker")
            .join(&id)
            .join("cgroup.procs");
        fs::write(&procs, pid.to_string()).expect("move child into cgroup");
    }

    let discovery = Arc::new(Discovery::new(DiscoveryOptions {
        root: PathBuf::from(ROOT),
        refresh_interval: Duration::from_secs(60),
        ..DiscoveryOptions::default()
    }));
    let found = discovery.scan().expect("scan");
    let container = found
        .iter()
        .find(|c| c.id == id)
        .expect("test container discovered");
    assert_eq!(container.runtime, Runtime::Docker);
    assert_eq!(container.cgroup_path, format!("docker/{id}"));
    assert_eq!(container.init_pid, Some(pid));
    assert!(container.cgroup_ids.v1_cpu.is_some());

    let mut readers = cgroup_readers(discovery.clone());
    let first = usage_of(&mut readers, &id);
    std::thread::sleep(Duration::from_millis(500));
    let second = usage_of(&mut readers, &id);
    assert!(
        second - first > 100_000_000,
        "busy child used at least 100 ms of CPU in 500 ms: {first} -> {second}"
    );

    let load = readers
        .iter_mut()
        .find(|r| r.schema().name == "cgroup.load")
        .expect("load reader")
        .read(0)
        .expect("read load");
    let sample = load
        .iter()
        .find(|s| s.labels.get("container_id") == Some(&id))
        .expect("load sample");
    assert_eq!(sample.fields.get("nr_tasks"), Some(&Value::Int(1)));
    assert_eq!(sample.fields.get("nr_running"), Some(&Value::Int(1)));
}

/// Root check without libc: the effective uid from /proc/self/status.
fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// A 64 MiB loop device over a scratch file, detached and removed on drop.
struct LoopDevice {
    file: PathBuf,
    dev: String,
}

impl LoopDevice {
    fn create() -> LoopDevice {
        let file = std::env::temp_dir().join(format!("huatuo-iowait-{}.img", std::process::id()));
        fs::File::create(&file)
            .and_then(|f| f.set_len(64 << 20))
            .expect("scratch file");
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&file)
            .output()
            .expect("losetup");
        assert!(out.status.success(), "losetup: {out:?}");
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        LoopDevice { file, dev }
    }

    /// `major:minor` of the device.
    fn majmin(&self) -> String {
        let name = self.dev.trim_start_matches("/dev/");
        fs::read_to_string(format!("/sys/class/block/{name}/dev"))
            .expect("device number")
            .trim()
            .to_string()
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
        let _ = fs::remove_file(&self.file);
    }
}

/// The `/proc/<pid>/stat` state letter.
fn proc_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// A controlled set of tasks in a docker-shaped cgroup: one blocked reading an empty pipe
/// (S), one stopped (T) and one reading a block device throttled to 4 KiB/s through the page
/// cache, which waits for each read in a killable sleep in IO wait (/proc says D).
/// `cgroup.load` has its states from the kernel's cgroupstats: the reader is in `nr_iowait` (a
/// /proc scan cannot tell IO wait), the others count as /proc shows them. (`sleep` would not
/// do for S: its sleep is also freezable, a state cgroupstats counts nowhere.)
#[test]
fn cgroupstats_counts_a_task_in_io_wait() {
    let blkio = PathBuf::from(ROOT).join("blkio/blkio.throttle.read_bps_device");
    if !(is_root() && blkio.is_file()) {
        assert!(
            !must_run(),
            "CI=true but not root on a cgroup v1 host with blkio"
        );
        eprintln!("SKIPPED: needs root and the cgroup v1 cpu and blkio hierarchies");
        return;
    }
    let id = format!("{:060x}{:04x}", 0x10a17u64, std::process::id() & 0xffff);
    // Declared before the cleanup, so released after it.
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut cleanup = Cleanup {
        child: None,
        dirs: Vec::new(),
    };
    let dirs = docker_cgroups(&["cpu", "blkio"], &id, &mut cleanup.dirs);
    let device = LoopDevice::create();
    let joins: String = dirs
        .iter()
        .map(|d| format!("echo $$ > {}/cgroup.procs && ", d.display()))
        .collect();
    let spawn = |command: &str| {
        Command::new("sh")
            .args(["-c", &format!("{joins}exec {command}")])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("spawn a task")
    };
    let mut tasks = TaskSet(vec![spawn("cat"), spawn("cat")]);
    // Lifted first on the way out, so the reader's queued reads finish and it exits at once.
    let _throttle = Throttle::set(&dirs[1], &device.majmin());
    tasks
        .0
        .push(spawn(&format!("dd if={} of=/dev/null bs=64k", device.dev)));
    let pids: Vec<u32> = tasks.0.iter().map(Child::id).collect();
    // Stopped only once in its cgroups: stopped before its shell joined them, it would stay out.
    let joined = |pid: u32| {
        dirs.iter().all(|d| {
            std::fs::read_to_string(d.join("cgroup.procs"))
                .is_ok_and(|procs| procs.lines().any(|l| l.trim() == pid.to_string()))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !joined(pids[1]) {
        assert!(
            Instant::now() < deadline,
            "task {} never joined {dirs:?}",
            pids[1]
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = Command::new("kill")
        .args(["-STOP", &pids[1].to_string()])
        .status();

    let discovery = Arc::new(Discovery::new(DiscoveryOptions {
        root: PathBuf::from(ROOT),
        refresh_interval: Duration::from_secs(60),
        ..DiscoveryOptions::default()
    }));
    discovery.scan().expect("scan");
    let mut readers = cgroup_readers(discovery);
    let load = readers
        .iter_mut()
        .find(|r| r.schema().name == "cgroup.load")
        .expect("load reader");
    // Wait until every task has joined and reached its state (the reader its first IO).
    let expected = [
        ('S', "nr_sleeping"),
        ('T', "nr_stopped"),
        ('D', "nr_iowait"),
    ];
    let mut last = None;
    for _ in 0..100 {
        let samples = load.read(0).expect("read load");
        let sample = samples
            .into_iter()
            .find(|s| s.labels.get("container_id") == Some(&id))
            .expect("load sample");
        let states: Vec<Option<char>> = pids.iter().map(|p| proc_state(*p)).collect();
        let settled = states == [Some('S'), Some('T'), Some('D')];
        let counted = expected
            .iter()
            .all(|(_, field)| sample.fields.get(*field) == Some(&Value::Int(1)));
        last = Some((states, sample));
        if settled && counted {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (states, sample) = last.expect("read at least once");
    println!("/proc states {states:?}, cgroup.load {:?}", sample.fields);
    assert_eq!(
        sample.fields.get("states_from"),
        Some(&Value::Str("cgroupstats".into()))
    );
    assert_eq!(states, [Some('S'), Some('T'), Some('D')], "/proc states");
    for (_, field) in expected {
        assert_eq!(
            sample.fields.get(field),
            Some(&Value::Int(1)),
            "{field}: {sample:?}"
        );
    }
    // The reader's killable sleep is no TASK_UNINTERRUPTIBLE to cgroupstats.
    assert_eq!(sample.fields.get("nr_running"), Some(&Value::Int(0)));
    assert_eq!(
        sample.fields.get("nr_uninterruptible"),
        Some(&Value::Int(0))
    );
}

/// A read limit of one device in a blkio cgroup, lifted on drop.
struct Throttle {
    file: PathBuf,
    majmin: String,
}

impl Throttle {
    fn set(blkio: &std::path::Path, majmin: &str) -> Throttle {
        let file = blkio.join("blkio.throttle.read_bps_device");
        fs::write(&file, format!("{majmin} 4096")).expect("throttle reads");
        Throttle {
            file,
            majmin: majmin.to_string(),
        }
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        let _ = fs::write(&self.file, format!("{} 0", self.majmin));
    }
}

/// Child processes killed and reaped on drop.
struct TaskSet(Vec<Child>);

impl Drop for TaskSet {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
