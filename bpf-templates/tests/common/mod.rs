//! Helpers shared by the kernel tests: the root/BTF gate and cleanup guards.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// True when the kernel tests can run; prints why not otherwise. Under `CI=true` a missing
/// prerequisite is a failure, not a skip.
pub fn kernel_ready(test: &str) -> bool {
    let root = unsafe { libc::geteuid() } == 0;
    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    if root && btf {
        return true;
    }
    let why = if !root { "not root" } else { "no kernel BTF" };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: cannot run the kernel test under CI=true: {why}");
    }
    eprintln!("SKIP {test}: {why}");
    false
}

/// Busy-loop child processes, killed on drop.
pub struct Busy(pub Vec<Child>);

impl Busy {
    /// Starts `n` shell busy loops.
    pub fn start(n: usize) -> Busy {
        Busy(
            (0..n)
                .map(|_| {
                    Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .stdout(Stdio::null())
                        .spawn()
                        .expect("spawn busy loop")
                })
                .collect(),
        )
    }

    /// Pids of the loops.
    pub fn pids(&self) -> Vec<u32> {
        self.0.iter().map(Child::id).collect()
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A cgroup directory created for a test; its processes are killed by their own guards,
/// the directory is removed on drop.
pub struct TestCgroup {
    /// The directory.
    pub dir: PathBuf,
}

impl TestCgroup {
    /// Creates `name` under the cgroup hierarchy that attributes `v1_controller` (the v1
    /// controller's mount in hybrid/v1 mode, the unified root in pure v2 mode).
    pub fn create(v1_controller: &str, name: &str) -> TestCgroup {
        let v1 = Path::new("/sys/fs/cgroup").join(v1_controller);
        let base = if huatuo_bpf::cgroup::unified_hierarchy() {
            PathBuf::from("/sys/fs/cgroup")
        } else {
            v1
        };
        let dir = base.join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create test cgroup");
        TestCgroup { dir }
    }

    /// The cgroup id the kernel reports (the directory's inode number).
    pub fn id(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&self.dir).expect("stat cgroup").ino()
    }

    /// Moves a process into the cgroup.
    pub fn add(&self, pid: u32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).expect("move to cgroup");
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // Processes must have left; retry briefly while they exit.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        eprintln!("could not remove {}", self.dir.display());
    }
}

/// A resolver knowing one cgroup id as one container (hostname: its id and `-host`).
pub struct OneContainer(pub u64, pub &'static str);

impl huatuo_bpf::CgroupResolver for OneContainer {
    fn container_id(&self, cgroup_id: u64) -> Option<String> {
        (cgroup_id == self.0).then(|| self.1.to_string())
    }
    fn container_hostname(&self, cgroup_id: u64) -> Option<String> {
        (cgroup_id == self.0).then(|| format!("{}-host", self.1))
    }
}

/// Unmounts tracefs on drop when it was not mounted at creation (classic tracepoint variants
/// mount it when they attach).
pub struct TracefsGuard(bool);

impl TracefsGuard {
    /// Notes whether tracefs is mounted now.
    pub fn new() -> TracefsGuard {
        TracefsGuard(!std::path::Path::new("/sys/kernel/tracing/events").is_dir())
    }
}

impl Drop for TracefsGuard {
    fn drop(&mut self) {
        if self.0 {
            let target = std::ffi::CString::new("/sys/kernel/tracing").expect("path");
            // SAFETY: valid NUL-terminated path.
            unsafe { libc::umount(target.as_ptr()) };
        }
    }
}

/// Turns `kernel.bpf_stats_enabled` on (programs count their runs and run time), restoring
/// the previous value on drop.
pub struct BpfStats(String);

impl BpfStats {
    const PATH: &'static str = "/proc/sys/kernel/bpf_stats_enabled";

    /// Switches the statistics on.
    pub fn enable() -> BpfStats {
        let previous = std::fs::read_to_string(Self::PATH).unwrap_or_else(|_| "0".into());
        std::fs::write(Self::PATH, "1").expect("enable bpf stats");
        BpfStats(previous.trim().to_string())
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::PATH, &self.0);
    }
}
