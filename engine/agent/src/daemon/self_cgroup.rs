//! The agent's own cgroup (`[RuntimeCgroup]`): at start the agent moves itself into a child
//! cgroup `huatuo` of the one it runs in (cgroup v2 when its cpu and memory controllers are
//! available there, otherwise the v1 cpu and memory hierarchies), held to `LimitInitCPU`
//! while templates load, then to `LimitCPU`, with `LimitMem` throughout. Where it cannot (no
//! write access, a read-only cgroupfs, or a limit already set by its container or service
//! manager), it says so once in the log and in `/status` and runs unlimited by itself. On
//! exit it moves back and removes the cgroup when no other process is left in it.

use huatuo_config::RuntimeCgroup;
use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Name of the agent's cgroup under the one it starts in.
pub const NAME: &str = "huatuo";
/// cgroup v1 memory limits at or above this are "no limit" (the kernel's page-rounded max).
const V1_UNLIMITED_BYTES: u64 = 1 << 62;
/// CFS period used when the cgroup does not say.
const DEFAULT_PERIOD_US: u64 = 100_000;

/// How the limits are written in one hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// cgroup v1 `cpu` controller: `cpu.cfs_quota_us`.
    V1Cpu,
    /// cgroup v1 `memory` controller: `memory.limit_in_bytes`.
    V1Memory,
    /// cgroup v2 with cpu and memory: `cpu.max`, `memory.max`.
    V2,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::V1Cpu => "cpu",
            Kind::V1Memory => "memory",
            Kind::V2 => "unified",
        }
    }
}

/// The agent's cgroup in one hierarchy, once it moved in.
#[derive(Debug)]
struct Entered {
    kind: Kind,
    /// The cgroup the agent started in.
    parent: PathBuf,
    /// The agent's own cgroup.
    dir: PathBuf,
}

/// The agent's own cgroups; leaving them happens on drop.
pub struct SelfCgroup {
    entered: Vec<Entered>,
    limits: RuntimeCgroup,
    report: Arc<Mutex<Json>>,
}

impl SelfCgroup {
    /// Moves the agent into its cgroup with the start-up CPU limit and the memory limit;
    /// logs (once) and reports each hierarchy where it cannot.
    pub fn enter(limits: &RuntimeCgroup) -> SelfCgroup {
        let mut entered = Vec::new();
        let mut report = Vec::new();
        match places() {
            Ok(places) => {
                for (kind, parent) in places {
                    let dir = parent.join(NAME);
                    let entry = match enter_one(kind, &parent, &dir, limits) {
                        Ok(()) => {
                            let held = match kind {
                                Kind::V1Cpu => format!(
                                    "LimitInitCPU {} cores while starting",
                                    limits.limit_init_cpu
                                ),
                                Kind::V1Memory => format!("LimitMem {} MB", limits.limit_mem),
                                Kind::V2 => format!(
                                    "LimitInitCPU {} cores while starting, LimitMem {} MB",
                                    limits.limit_init_cpu, limits.limit_mem
                                ),
                            };
                            log::info!(
                                "RuntimeCgroup: agent moved into {} ({held})",
                                dir.display()
                            );
                            entered.push(Entered {
                                kind,
                                parent,
                                dir: dir.clone(),
                            });
                            let mut entry =
                                json!({"hierarchy": kind.name(), "path": dir, "state": "starting"});
                            if kind != Kind::V1Memory {
                                entry["cpu_cores"] = json!(limits.limit_init_cpu);
                            }
                            if kind != Kind::V1Cpu {
                                entry["memory_mb"] = json!(limits.limit_mem);
                            }
                            entry
                        }
                        Err(reason) => {
                            log::warn!(
                                "RuntimeCgroup: cannot limit the agent in the {} hierarchy: {reason}; running without its own limits there",
                                kind.name()
                            );
                            json!({"hierarchy": kind.name(), "path": dir, "state": "unavailable", "reason": reason})
                        }
                    };
                    report.push(entry);
                }
            }
            Err(reason) => {
                log::warn!("RuntimeCgroup: cannot limit the agent: {reason}");
                report.push(json!({"state": "unavailable", "reason": reason}));
            }
        }
        SelfCgroup {
            entered,
            limits: limits.clone(),
            report: Arc::new(Mutex::new(Json::Array(report))),
        }
    }

    /// Leaves the agent where it is: `reason` is shown in `/status`.
    pub fn off(limits: &RuntimeCgroup, reason: &str) -> SelfCgroup {
        log::info!("RuntimeCgroup: not applied ({reason})");
        SelfCgroup {
            entered: Vec::new(),
            limits: limits.clone(),
            report: Arc::new(Mutex::new(json!([{"state": "off", "reason": reason}]))),
        }
    }

    /// Start-up is over: sets the CPU limit to `LimitCPU`.
    pub fn settle(&self) {
        for cgroup in &self.entered {
            let state = match cgroup.kind {
                Kind::V1Memory => "running".to_string(),
                kind => match write_cpu(kind, &cgroup.dir, self.limits.limit_cpu) {
                    Ok(()) => "running".to_string(),
                    Err(e) => {
                        log::warn!("RuntimeCgroup: LimitCPU not applied: {e}");
                        format!("LimitCPU not applied: {e}")
                    }
                },
            };
            let Ok(mut report) = self.report.lock() else {
                continue;
            };
            for entry in report.as_array_mut().into_iter().flatten() {
                if entry["path"] == json!(cgroup.dir) {
                    entry["state"] = json!(state);
                    if cgroup.kind != Kind::V1Memory {
                        entry["cpu_cores"] = json!(self.limits.limit_cpu);
                    }
                }
            }
        }
    }

    /// What the agent's cgroups are, for `/status`: one entry per hierarchy.
    pub fn report(&self) -> Arc<Mutex<Json>> {
        self.report.clone()
    }
}

impl Drop for SelfCgroup {
    fn drop(&mut self) {
        let pid = std::process::id().to_string();
        for cgroup in &self.entered {
            if let Err(e) = move_back(cgroup.kind, &cgroup.parent, &pid) {
                log::warn!(
                    "RuntimeCgroup: cannot move back to {}: {e}",
                    cgroup.parent.display()
                );
                continue;
            }
            match std::fs::remove_dir(&cgroup.dir) {
                Ok(()) => log::info!("RuntimeCgroup: removed {}", cgroup.dir.display()),
                Err(e) => log::info!(
                    "RuntimeCgroup: {} kept ({e}): other processes are still in it",
                    cgroup.dir.display()
                ),
            }
        }
    }
}

/// The cgroups the agent runs in, per hierarchy it limits itself in: v2 when the unified
/// hierarchy offers cpu and memory where the agent runs, else the v1 cpu and memory ones.
fn places() -> Result<Vec<(Kind, PathBuf)>, String> {
    let me = procfs::process::Process::myself().map_err(|e| format!("/proc/self: {e}"))?;
    let cgroups = me
        .cgroups()
        .map_err(|e| format!("/proc/self/cgroup: {e}"))?
        .0;
    let mounts = me
        .mountinfo()
        .map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
    let dir_in = |fs_type: &str, controller: Option<&str>, pathname: &str| -> Option<PathBuf> {
        mounts
            .iter()
            .filter(|m| m.fs_type == fs_type)
            .find(|m| controller.is_none_or(|c| m.super_options.contains_key(c)))
            .and_then(|m| cgroup_dir(&m.mount_point, &m.root, pathname))
    };
    let unified = cgroups
        .iter()
        .find(|c| c.hierarchy == 0)
        .and_then(|c| dir_in("cgroup2", None, &c.pathname))
        .filter(|dir| {
            let controllers =
                std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
            let has = |c: &str| controllers.split_whitespace().any(|w| w == c);
            has("cpu") && has("memory")
        });
    if let Some(dir) = unified {
        return Ok(vec![(Kind::V2, dir)]);
    }
    let mut places = Vec::new();
    for (kind, controller) in [(Kind::V1Cpu, "cpu"), (Kind::V1Memory, "memory")] {
        let dir = cgroups
            .iter()
            .find(|c| c.controllers.iter().any(|x| x == controller))
            .and_then(|c| dir_in("cgroup", Some(controller), &c.pathname));
        match dir {
            Some(dir) => places.push((kind, dir)),
            None => log::warn!(
                "RuntimeCgroup: no cgroup v1 {controller} hierarchy is mounted; not limited there"
            ),
        }
    }
    if places.is_empty() {
        return Err("neither cgroup v2 with cpu and memory nor the v1 cpu and memory hierarchies are available".into());
    }
    Ok(places)
}

/// The directory of cgroup `pathname` (as `/proc/self/cgroup` names it) in a hierarchy mounted
/// at `mount_point` from `mount_root`; `None` when the cgroup is outside the mounted part.
fn cgroup_dir(mount_point: &Path, mount_root: &str, pathname: &str) -> Option<PathBuf> {
    let relative = if mount_root == "/" {
        pathname
    } else {
        pathname.strip_prefix(mount_root)?
    };
    let relative = relative.trim_start_matches('/');
    if relative.split('/').any(|part| part == "..") {
        return None;
    }
    Some(mount_point.join(relative))
}

/// Creates `dir` under `parent` with the start-up limits and moves the agent in, unless a
/// limit is already set on `parent` or above it. On cgroup v2 the agent moves in first: a
/// non-root cgroup can hand controllers to its children only once no process is left in it
/// (the unit's `Delegate=yes` gives the service's cgroup to the agent). On failure the agent
/// is back where it started and the cgroup it created is removed.
fn enter_one(kind: Kind, parent: &Path, dir: &Path, limits: &RuntimeCgroup) -> Result<(), String> {
    if let Some(limited) = already_limited(kind, parent) {
        return Err(format!(
            "already limited by its container or service manager ({limited})"
        ));
    }
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(format!("cannot create {}: {e}", dir.display()));
        }
        _ => {}
    }
    let pid = std::process::id().to_string();
    let bytes = ((limits.limit_mem.max(1) as u64) << 20).to_string();
    let result = match kind {
        Kind::V1Cpu => write_cpu(kind, dir, limits.limit_init_cpu)
            .and_then(|()| write(&dir.join("cgroup.procs"), &pid)),
        Kind::V1Memory => write(&dir.join("memory.limit_in_bytes"), &bytes)
            .and_then(|()| write(&dir.join("cgroup.procs"), &pid)),
        Kind::V2 => write(&dir.join("cgroup.procs"), &pid)
            .and_then(|()| write(&parent.join("cgroup.subtree_control"), "+cpu +memory"))
            .and_then(|()| write_cpu(kind, dir, limits.limit_init_cpu))
            .and_then(|()| write(&dir.join("memory.max"), &bytes)),
    };
    if result.is_err() {
        let _ = move_back(kind, parent, &pid);
        let _ = std::fs::remove_dir(dir);
    }
    result
}

/// Moves the agent back into `parent`. On cgroup v2 a non-root cgroup that hands controllers
/// to its children may hold no process: the controllers are taken back first if needed.
fn move_back(kind: Kind, parent: &Path, pid: &str) -> Result<(), String> {
    let procs = parent.join("cgroup.procs");
    write(&procs, pid).or_else(|e| match kind {
        Kind::V2 => write(&parent.join("cgroup.subtree_control"), "-cpu -memory")
            .and_then(|()| write(&procs, pid)),
        _ => Err(e),
    })
}

/// The first limit set on `dir` or a cgroup above it, as `file = value`.
fn already_limited(kind: Kind, dir: &Path) -> Option<String> {
    let mut at = Some(dir);
    while let Some(dir) = at {
        let read = |file: &str| {
            std::fs::read_to_string(dir.join(file))
                .ok()
                .map(|s| s.trim().to_string())
        };
        let limited = match kind {
            Kind::V1Cpu => read("cpu.cfs_quota_us")
                .filter(|q| q.parse::<i64>().is_ok_and(|q| q > 0))
                .map(|q| ("cpu.cfs_quota_us", q)),
            Kind::V1Memory => read("memory.limit_in_bytes")
                .filter(|b| b.parse::<u64>().is_ok_and(|b| b < V1_UNLIMITED_BYTES))
                .map(|b| ("memory.limit_in_bytes", b)),
            Kind::V2 => read("cpu.max")
                .filter(|m| !m.starts_with("max"))
                .map(|m| ("cpu.max", m))
                .or_else(|| {
                    read("memory.max")
                        .filter(|m| m != "max")
                        .map(|m| ("memory.max", m))
                }),
        };
        if let Some((file, value)) = limited {
            return Some(format!("{} = {value}", dir.join(file).display()));
        }
        // The hierarchy's root has no limit files: stop there.
        at = dir.parent().filter(|p| p.join("cgroup.procs").exists());
    }
    None
}

/// Sets the CPU bandwidth of `dir` to `cores` (quota per CFS period).
fn write_cpu(kind: Kind, dir: &Path, cores: f64) -> Result<(), String> {
    match kind {
        Kind::V2 => {
            let quota = quota_us(cores, DEFAULT_PERIOD_US);
            write(
                &dir.join("cpu.max"),
                &format!("{quota} {DEFAULT_PERIOD_US}"),
            )
        }
        _ => {
            let period = std::fs::read_to_string(dir.join("cpu.cfs_period_us"))
                .ok()
                .and_then(|p| p.trim().parse::<u64>().ok())
                .unwrap_or(DEFAULT_PERIOD_US);
            write(
                &dir.join("cpu.cfs_quota_us"),
                &quota_us(cores, period).to_string(),
            )
        }
    }
}

/// The quota giving `cores` CPUs per `period` (at least the kernel's 1 ms minimum).
fn quota_us(cores: f64, period: u64) -> u64 {
    ((cores * period as f64).round() as u64).max(1000)
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value)
        .map_err(|e| format!("cannot write {value} to {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_dirs_follow_the_mount_root() {
        let mnt = Path::new("/sys/fs/cgroup/cpu");
        assert_eq!(
            cgroup_dir(mnt, "/", "/system.slice/x.service"),
            Some(PathBuf::from("/sys/fs/cgroup/cpu/system.slice/x.service"))
        );
        assert_eq!(cgroup_dir(mnt, "/", "/"), Some(mnt.to_path_buf()));
        // A container sees its own cgroup as the mount root.
        assert_eq!(
            cgroup_dir(mnt, "/kubepods/pod1", "/kubepods/pod1"),
            Some(mnt.to_path_buf())
        );
        assert_eq!(cgroup_dir(mnt, "/kubepods/pod1", "/other"), None);
        assert_eq!(cgroup_dir(mnt, "/", "/a/../b"), None);
    }

    #[test]
    fn cpu_quota_is_cores_times_period() {
        assert_eq!(quota_us(0.5, 100_000), 50_000);
        assert_eq!(quota_us(2.0, 100_000), 200_000);
        assert_eq!(quota_us(0.001, 100_000), 1000);
    }

    #[test]
    fn a_limit_above_the_agent_is_reported() {
        let root = std::env::temp_dir().join(format!("huatuo-selfcg-{}", std::process::id()));
        let child = root.join("pod");
        std::fs::create_dir_all(&child).expect("dirs");
        for dir in [&root, &child] {
            std::fs::write(dir.join("cgroup.procs"), "").expect("procs");
        }
        std::fs::write(root.join("memory.limit_in_bytes"), "9223372036854771712").expect("w");
        std::fs::write(child.join("memory.limit_in_bytes"), "9223372036854771712").expect("w");
        assert_eq!(already_limited(Kind::V1Memory, &child), None);
        std::fs::write(root.join("memory.limit_in_bytes"), "1073741824").expect("w");
        let limited = already_limited(Kind::V1Memory, &child).expect("limited");
        assert!(
            limited.ends_with("memory.limit_in_bytes = 1073741824"),
            "{limited}"
        );
        std::fs::write(child.join("cpu.cfs_quota_us"), "-1").expect("w");
        assert_eq!(already_limited(Kind::V1Cpu, &child), None);
        let _ = std::fs::remove_dir_all(&root);
    }
}
