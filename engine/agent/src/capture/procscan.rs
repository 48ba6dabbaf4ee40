//! Captures that read /proc: tasks in a state, top processes, file snapshots.

use procfs::process::{all_processes_with_root, Process};
use procfs::WithCurrentSystemInfo;
use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};

/// Largest file snapshot kept in a record.
pub const MAX_FILE_BYTES: usize = 64 * 1024;
/// Most tasks or processes a capture lists.
pub const MAX_LISTED: usize = 256;

/// Where process information is read from (a fixture tree in tests).
#[derive(Debug, Clone)]
pub struct ProcRoot(pub PathBuf);

impl Default for ProcRoot {
    fn default() -> Self {
        ProcRoot(PathBuf::from("/proc"))
    }
}

/// Whether the process belongs to the container (its cgroup paths mention the id).
fn in_container(process: &Process, container_id: Option<&str>) -> bool {
    let Some(id) = container_id else {
        return true;
    };
    process
        .cgroups()
        .map(|groups| groups.0.iter().any(|g| g.pathname.contains(id)))
        .unwrap_or(false)
}

fn kernel_stack(root: &ProcRoot, pid: i32) -> Vec<String> {
    std::fs::read_to_string(root.0.join(pid.to_string()).join("stack"))
        .map(|text| {
            text.lines()
                .filter_map(|line| line.split_whitespace().nth(1).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn processes(root: &ProcRoot) -> Result<Vec<Process>, String> {
    let all = all_processes_with_root(&root.0).map_err(|e| format!("{}: {e}", root.0.display()))?;
    Ok(all.filter_map(Result::ok).collect())
}

/// Tasks in `state` (`D`, `R`, ...), optionally only a container's, with kernel stacks.
pub fn tasks(
    root: &ProcRoot,
    state: char,
    container_id: Option<&str>,
    max: usize,
) -> Result<Json, String> {
    let mut out = Vec::new();
    for process in processes(root)? {
        if out.len() >= max.min(MAX_LISTED) {
            break;
        }
        let Ok(stat) = process.stat() else { continue };
        if stat.state != state || !in_container(&process, container_id) {
            continue;
        }
        out.push(json!({
            "pid": stat.pid,
            "comm": stat.comm,
            "state": stat.state.to_string(),
            "stack": kernel_stack(root, stat.pid),
        }));
    }
    Ok(Json::Array(out))
}

/// What `top` ranks processes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopBy {
    /// Resident memory in bytes.
    Rss,
    /// CPU time in clock ticks.
    Cpu,
    /// Bytes read plus written to storage.
    Io,
}

impl TopBy {
    /// Parses the `by` argument.
    pub fn parse(word: &str) -> Option<TopBy> {
        match word {
            "rss" => Some(TopBy::Rss),
            "cpu" => Some(TopBy::Cpu),
            "io" => Some(TopBy::Io),
            _ => None,
        }
    }
}

fn open_files(process: &Process, max: usize) -> Vec<String> {
    let Ok(fds) = process.fd() else {
        return Vec::new();
    };
    fds.filter_map(Result::ok)
        .filter_map(|fd| match fd.target {
            procfs::process::FDTarget::Path(path) => Some(path.display().to_string()),
            _ => None,
        })
        .take(max)
        .collect()
}

/// The `n` processes with the most `by`, with up to `files` open file paths each.
pub fn top(
    root: &ProcRoot,
    by: TopBy,
    n: usize,
    files: usize,
    container_id: Option<&str>,
) -> Result<Json, String> {
    let mut ranked: Vec<(u64, Process, String)> = Vec::new();
    for process in processes(root)? {
        if !in_container(&process, container_id) {
            continue;
        }
        let Ok(stat) = process.stat() else { continue };
        let value = match by {
            TopBy::Rss => stat.rss_bytes().get(),
            TopBy::Cpu => stat.utime + stat.stime,
            TopBy::Io => process
                .io()
                .map(|io| io.read_bytes + io.write_bytes)
                .unwrap_or(0),
        };
        ranked.push((value, process, stat.comm));
    }
    ranked.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    let listed = ranked
        .into_iter()
        .take(n.min(MAX_LISTED))
        .map(|(value, process, comm)| {
            let mut entry = json!({ "pid": process.pid(), "comm": comm, "value": value });
            if files > 0 {
                entry["files"] = json!(open_files(&process, files));
            }
            entry
        })
        .collect();
    Ok(Json::Array(listed))
}

/// The first 64 KiB of a file under /proc or /sys.
pub fn file_snapshot(path: &Path) -> Result<String, String> {
    if !(path.starts_with("/proc") || path.starts_with("/sys")) {
        return Err(format!(
            "{}: file captures read only /proc and /sys",
            path.display()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let end = bytes.len().min(MAX_FILE_BYTES);
    Ok(String::from_utf8_lossy(&bytes[..end]).into_owned())
}
