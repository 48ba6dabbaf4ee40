//! Captures that read /proc: tasks in a state, top processes, file snapshots.

use procfs::process::{all_processes_with_root, Process, Stat};
use procfs::WithCurrentSystemInfo;
use serde_json::{json, Map, Value as Json};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
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

/// The kernel stack of thread `tid` of process `pid` (function names), empty when unreadable.
fn kernel_stack(root: &ProcRoot, pid: i32, tid: i32) -> Vec<String> {
    let path = root
        .0
        .join(pid.to_string())
        .join("task")
        .join(tid.to_string())
        .join("stack");
    std::fs::read_to_string(path)
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

/// Threads in `state` (`D`, `R`, ...), optionally only a container's, with kernel stacks:
/// every thread of every process, since the thread that hangs is often not the main one.
pub fn tasks(
    root: &ProcRoot,
    state: char,
    container_id: Option<&str>,
    max: usize,
) -> Result<Json, String> {
    let limit = max.min(MAX_LISTED);
    let mut out = Vec::new();
    for process in processes(root)? {
        if out.len() >= limit {
            break;
        }
        let Ok(threads) = process.tasks() else {
            continue;
        };
        let mut in_scope = None;
        for thread in threads.flatten() {
            if out.len() >= limit {
                break;
            }
            let Ok(stat) = thread.stat() else { continue };
            if stat.state != state {
                continue;
            }
            if !*in_scope.get_or_insert_with(|| in_container(&process, container_id)) {
                break;
            }
            out.push(json!({
                "pid": thread.pid,
                "tid": thread.tid,
                "comm": stat.comm,
                "state": stat.state.to_string(),
                "stack": kernel_stack(root, thread.pid, thread.tid),
            }));
        }
    }
    Ok(Json::Array(out))
}

/// What `top` ranks processes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopBy {
    /// Resident memory in bytes.
    Rss,
    /// CPU time (user + system).
    Cpu,
    /// Bytes read plus written to storage.
    Io,
}

/// One process's ranking value and the fields it is listed with.
type Measure = (u64, Vec<(&'static str, Json)>);

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

    /// The key of the process name: HUATUO's memburst writes `process_name`, its iotracing
    /// `comm` (the record examples of HUATUO's manual).
    fn name_key(self) -> &'static str {
        match self {
            TopBy::Rss => "process_name",
            TopBy::Cpu | TopBy::Io => "comm",
        }
    }

    /// The ranking value and HUATUO's fields for one process; `None` when the counters
    /// cannot be read (a process that exited, or an `io` file the agent may not read).
    fn measure(self, process: &Process, stat: &Stat) -> Option<Measure> {
        match self {
            TopBy::Rss => {
                let rss = stat.rss_bytes().get();
                Some((rss, vec![("memory_size", json!(rss))]))
            }
            TopBy::Cpu => {
                let ticks = stat.utime.saturating_add(stat.stime);
                let ns = ticks.saturating_mul(1_000_000_000) / procfs::ticks_per_second().max(1);
                Some((ns, vec![("cpu_time", json!(ns))]))
            }
            TopBy::Io => {
                let io = process.io().ok()?;
                let fields = vec![
                    ("fs_read", json!(io.rchar)),
                    ("fs_write", json!(io.wchar)),
                    ("disk_read", json!(io.read_bytes)),
                    ("disk_write", json!(io.write_bytes)),
                ];
                Some((io.read_bytes.saturating_add(io.write_bytes), fields))
            }
        }
    }
}

/// A process's open files (with `under`, only those on the filesystem mounted there: below
/// its path and, where both can be stat'ed, on its device, so `/dev/null` is not on `/`): the
/// first `max` paths with the inode of each (through `/proc/<pid>/fd/<n>`, so a deleted file
/// still has one; `None` when it cannot be read), and how many there are in all.
fn open_files(root: &ProcRoot, process: &Process, max: usize, under: Option<&Path>) -> OpenFiles {
    let mut files = OpenFiles::default();
    let Ok(fds) = process.fd() else {
        return files;
    };
    let under_dev = under.and_then(|dir| std::fs::metadata(dir).ok().map(|m| m.dev()));
    for fd in fds.filter_map(Result::ok) {
        let procfs::process::FDTarget::Path(path) = fd.target else {
            continue;
        };
        if under.is_some_and(|dir| !path.starts_with(dir)) {
            continue;
        }
        let link = root
            .0
            .join(process.pid.to_string())
            .join("fd")
            .join(fd.fd.to_string());
        let meta = (under_dev.is_some() || files.paths.len() < max)
            .then(|| std::fs::metadata(link).ok())
            .flatten();
        if let (Some(dev), Some(meta)) = (under_dev, &meta) {
            if meta.dev() != dev {
                continue;
            }
        }
        files.count += 1;
        if files.paths.len() < max {
            files.paths.push(path.display().to_string());
            files.inodes.push(meta.map(|m| m.ino()));
        }
    }
    files
}

/// What [`open_files`] found.
#[derive(Default)]
struct OpenFiles {
    paths: Vec<String>,
    inodes: Vec<Option<u64>>,
    count: usize,
}

/// The `n` processes with the most `by`, in HUATUO's record shape: `{pid, process_name,
/// memory_size}` by rss, `{pid, comm, fs_read, fs_write, disk_read, disk_write}` by io,
/// `{pid, comm, cpu_time}` by cpu; with `files` > 0 also `file_stat` (up to `files` open file
/// paths), `file_inode` (the inode of each, null when unreadable) and `file_count` (all open
/// files). With `under`, only processes with files open under that directory (a mount point)
/// are listed, with those files.
pub fn top(
    root: &ProcRoot,
    by: TopBy,
    n: usize,
    files: usize,
    under: Option<&Path>,
    container_id: Option<&str>,
) -> Result<Json, String> {
    let mut ranked: Vec<(u64, Process, Json)> = Vec::new();
    for process in processes(root)? {
        if !in_container(&process, container_id) {
            continue;
        }
        let Ok(stat) = process.stat() else { continue };
        let Some((value, fields)) = by.measure(&process, &stat) else {
            continue;
        };
        let mut entry = Map::new();
        entry.insert("pid".into(), json!(stat.pid));
        entry.insert(by.name_key().into(), json!(stat.comm));
        entry.extend(fields.into_iter().map(|(k, v)| (k.to_string(), v)));
        ranked.push((value, process, Json::Object(entry)));
    }
    ranked.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    let listed = ranked
        .into_iter()
        .filter_map(|(_, process, mut entry)| {
            if files > 0 || under.is_some() {
                let open = open_files(root, &process, files, under);
                if under.is_some() && open.count == 0 {
                    return None;
                }
                entry["file_stat"] = json!(open.paths);
                entry["file_inode"] = json!(open.inodes);
                entry["file_count"] = json!(open.count);
            }
            Some(entry)
        })
        .take(n.min(MAX_LISTED))
        .collect();
    Ok(Json::Array(listed))
}

/// One process's cumulative IO counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoCounters {
    /// Bytes read through read-like calls (`rchar`).
    pub fs_read: u64,
    /// Bytes written through write-like calls (`wchar`).
    pub fs_write: u64,
    /// Bytes fetched from storage (`read_bytes`).
    pub disk_read: u64,
    /// Bytes sent to storage (`write_bytes`).
    pub disk_write: u64,
}

/// IO counters by (pid, start time), so a reused pid is a new process, with the command.
pub type IoByProcess = BTreeMap<(i32, u64), (String, IoCounters)>;

/// Every process's IO counters (only a container's when `container_id` is set).
pub fn io_counters(root: &ProcRoot, container_id: Option<&str>) -> Result<IoByProcess, String> {
    let mut out = BTreeMap::new();
    for process in processes(root)? {
        if !in_container(&process, container_id) {
            continue;
        }
        let (Ok(stat), Ok(io)) = (process.stat(), process.io()) else {
            continue;
        };
        let counters = IoCounters {
            fs_read: io.rchar,
            fs_write: io.wchar,
            disk_read: io.read_bytes,
            disk_write: io.write_bytes,
        };
        out.insert((stat.pid, stat.starttime), (stat.comm, counters));
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A fixture /proc tree in a fresh temporary directory, removed on drop.
    struct Fixture(PathBuf);

    impl Fixture {
        fn new(name: &str) -> Fixture {
            let dir =
                std::env::temp_dir().join(format!("huatuo-procscan-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Fixture(dir)
        }

        /// A process with `rss_pages` resident pages, `ticks` of CPU, IO counters
        /// (rchar, wchar, read_bytes, write_bytes) when given, and open files.
        fn process(
            &self,
            pid: i32,
            comm: &str,
            rss_pages: u64,
            ticks: u64,
            io: Option<[u64; 4]>,
            files: &[&str],
        ) {
            let dir = self.0.join(pid.to_string());
            fs::create_dir_all(dir.join("fd")).unwrap();
            let stat = format!(
                "{pid} ({comm}) S 1 {pid} {pid} 0 -1 4194560 100 0 0 0 {ticks} 0 0 0 20 0 1 0 100 \
                 1000000 {rss_pages} 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
            );
            fs::write(dir.join("stat"), stat).unwrap();
            fs::write(dir.join("cgroup"), format!("0::/docker/c{pid}\n")).unwrap();
            if let Some([rchar, wchar, read_bytes, write_bytes]) = io {
                let text = format!(
                    "rchar: {rchar}\nwchar: {wchar}\nsyscr: 1\nsyscw: 1\nread_bytes: {read_bytes}\n\
                     write_bytes: {write_bytes}\ncancelled_write_bytes: 0\n"
                );
                fs::write(dir.join("io"), text).unwrap();
            }
            for (fd, path) in files.iter().enumerate() {
                std::os::unix::fs::symlink(path, dir.join("fd").join(fd.to_string())).unwrap();
            }
            std::os::unix::fs::symlink("socket:[1234]", dir.join("fd").join("99")).unwrap();
        }

        /// Thread `tid` of process `pid` in `state`, with a kernel stack of `frames`.
        fn thread(&self, pid: i32, tid: i32, comm: &str, state: char, frames: &[&str]) {
            let dir = self
                .0
                .join(pid.to_string())
                .join("task")
                .join(tid.to_string());
            fs::create_dir_all(&dir).unwrap();
            let stat = format!(
                "{tid} ({comm}) {state} 1 {pid} {pid} 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 100 \
                 1000000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
            );
            fs::write(dir.join("stat"), stat).unwrap();
            let stack: String = frames
                .iter()
                .map(|f| format!("[<0>] {f}+0x10/0x20\n"))
                .collect();
            fs::write(dir.join("stack"), stack).unwrap();
        }

        fn root(&self) -> ProcRoot {
            ProcRoot(self.0.clone())
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn names(listed: &Json, key: &str) -> Vec<String> {
        listed
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry[key].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn tasks_lists_every_thread_in_the_state_with_its_own_stack() {
        let fx = Fixture::new("tasks");
        fx.process(100, "server", 10, 0, None, &[]);
        fx.thread(100, 100, "server", 'S', &["do_epoll_wait"]);
        fx.thread(100, 101, "worker", 'D', &["filename_create", "do_mkdirat"]);
        fx.process(200, "db", 10, 0, None, &[]);
        fx.thread(200, 200, "db", 'D', &["io_schedule", "folio_wait_bit"]);
        let listed = tasks(&fx.root(), 'D', None, 10).unwrap();
        let mut entries = listed.as_array().unwrap().clone();
        entries.sort_by_key(|e| e["tid"].as_i64());
        assert_eq!(
            entries,
            vec![
                json!({"pid": 100, "tid": 101, "comm": "worker", "state": "D",
                       "stack": ["filename_create+0x10/0x20", "do_mkdirat+0x10/0x20"]}),
                json!({"pid": 200, "tid": 200, "comm": "db", "state": "D",
                       "stack": ["io_schedule+0x10/0x20", "folio_wait_bit+0x10/0x20"]}),
            ]
        );
        // a container's threads only (the fixture's cgroup of pid 200 is /docker/c200)
        let only = tasks(&fx.root(), 'D', Some("c200"), 10).unwrap();
        assert_eq!(names(&only, "comm"), ["db"]);
        assert_eq!(
            tasks(&fx.root(), 'D', None, 1)
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn top_by_rss_is_memburst_top_memory_usage() {
        let fx = Fixture::new("rss");
        fx.process(3456, "java", 2048, 10, None, &[]);
        fx.process(3789, "python3", 512, 10, None, &[]);
        fx.process(42, "sshd", 16, 10, None, &[]);
        let listed = top(&fx.root(), TopBy::Rss, 2, 0, None, None).unwrap();
        let page = procfs::page_size();
        assert_eq!(
            listed,
            json!([
                {"pid": 3456, "process_name": "java", "memory_size": 2048 * page},
                {"pid": 3789, "process_name": "python3", "memory_size": 512 * page},
            ])
        );
    }

    #[test]
    fn top_by_io_is_iotracing_process_io_data() {
        let fx = Fixture::new("io");
        fx.process(
            12345,
            "java",
            1,
            0,
            Some([100, 52_428_800, 0, 49_152_000]),
            &["/data/logs/app.log", "/data/logs/gc.log"],
        );
        let backup = fx.0.join("backup.tar");
        fs::write(&backup, b"tar").unwrap();
        let backup_inode = fs::metadata(&backup).unwrap().ino();
        let backup = backup.display().to_string();
        fx.process(
            200,
            "tar",
            1,
            0,
            Some([8_000_000, 0, 4_096_000, 0]),
            &[backup.as_str()],
        );
        // A process whose io file cannot be read is not listed with made-up zeros.
        fx.process(300, "secret", 1, 0, None, &["/etc/shadow"]);
        let listed = top(&fx.root(), TopBy::Io, 10, 1, None, None).unwrap();
        // Under a mount point: only the processes with files open there, with those files.
        let under_data = top(&fx.root(), TopBy::Io, 10, 5, Some(Path::new("/data")), None);
        assert_eq!(
            under_data.unwrap(),
            json!([{"pid": 12345, "comm": "java", "fs_read": 100, "fs_write": 52_428_800,
                    "disk_read": 0, "disk_write": 49_152_000,
                    "file_stat": ["/data/logs/app.log", "/data/logs/gc.log"],
                    "file_inode": [null, null], "file_count": 2}])
        );
        assert_eq!(
            listed,
            json!([
                {"pid": 12345, "comm": "java", "fs_read": 100, "fs_write": 52_428_800,
                 "disk_read": 0, "disk_write": 49_152_000,
                 "file_stat": ["/data/logs/app.log"], "file_inode": [null], "file_count": 2},
                {"pid": 200, "comm": "tar", "fs_read": 8_000_000, "fs_write": 0,
                 "disk_read": 4_096_000, "disk_write": 0,
                 "file_stat": [backup], "file_inode": [backup_inode], "file_count": 1},
            ])
        );
    }

    #[test]
    fn top_by_cpu_in_nanoseconds_and_container_scope() {
        let fx = Fixture::new("cpu");
        let hz = procfs::ticks_per_second();
        fx.process(10, "busy", 1, 3 * hz, None, &[]);
        fx.process(11, "idle", 1, hz, None, &[]);
        let listed = top(&fx.root(), TopBy::Cpu, 5, 0, None, None).unwrap();
        assert_eq!(names(&listed, "comm"), ["busy", "idle"]);
        assert_eq!(listed[0]["cpu_time"], json!(3_000_000_000u64));
        let scoped = top(&fx.root(), TopBy::Cpu, 5, 0, None, Some("c11")).unwrap();
        assert_eq!(names(&scoped, "comm"), ["idle"]);
    }

    #[test]
    fn a_missing_proc_root_is_an_error_naming_it() {
        let err = top(
            &ProcRoot(PathBuf::from("/nonexistent/proc")),
            TopBy::Rss,
            1,
            0,
            None,
            None,
        )
        .unwrap_err();
        assert!(err.contains("/nonexistent/proc"), "{err}");
    }
}
