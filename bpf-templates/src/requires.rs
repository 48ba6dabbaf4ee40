//! Kernel facilities an attach variant needs besides its attach point, declared in
//! schema.toml as `requires = [...]` on the variant and checked before the variant is tried:
//! a variant whose requirement is unmet is skipped with the reason, and the chain moves on.
//!
//! - `sched_info`: the scheduler keeps per-task run-queue accounting (`task->sched_info`:
//!   `run_delay`, `pcount`; CONFIG_SCHED_INFO, and on kernels before 5.14 also schedstats or
//!   delay accounting switched on). Seen from user space as a non-zero /proc/<pid>/schedstat.
//! - `block_rq_one_arg` / `block_rq_queue_arg`: block_rq_insert and block_rq_issue pass
//!   `(rq)` (5.11 and later) or `(q, rq)` (before). Read from the kernel BTF's
//!   `btf_trace_block_rq_issue`, or from the kernel release where there is no BTF. A program
//!   of the other form would read the wrong argument, so each form requires its own.

use serde::Deserialize;
use std::path::Path;
use std::sync::OnceLock;

/// One kernel facility a variant requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Requirement {
    /// Per-task run-queue accounting in `task->sched_info`.
    SchedInfo,
    /// Group scheduling: every task's `se.cfs_rq` leads to its run queue.
    GroupSched,
    /// block_rq_insert/issue pass the request only (>= 5.11).
    BlockRqOneArg,
    /// block_rq_insert/issue pass the queue, then the request (< 5.11).
    BlockRqQueueArg,
}

impl Requirement {
    /// The name used in schema.toml.
    pub fn name(self) -> &'static str {
        match self {
            Requirement::SchedInfo => "sched_info",
            Requirement::GroupSched => "group_sched",
            Requirement::BlockRqOneArg => "block_rq_one_arg",
            Requirement::BlockRqQueueArg => "block_rq_queue_arg",
        }
    }

    /// Checks the requirement on this machine (`/proc` rooted at `proc_root`).
    pub fn check(self, proc_root: &Path) -> Result<(), String> {
        match self {
            Requirement::SchedInfo => sched_info_live(proc_root),
            Requirement::GroupSched => group_sched(proc_root),
            Requirement::BlockRqOneArg => block_rq_args(proc_root, 1),
            Requirement::BlockRqQueueArg => block_rq_args(proc_root, 2),
        }
    }
}

/// block_rq_issue passes `want` arguments on this kernel.
fn block_rq_args(proc_root: &Path, want: usize) -> Result<(), String> {
    // The kernel BTF is megabytes: parsed once, however many variants ask.
    static FROM_BTF: OnceLock<Result<usize, String>> = OnceLock::new();
    let from_btf =
        FROM_BTF.get_or_init(|| crate::kernel_btf::kernel_tracepoint_args("block_rq_issue"));
    let (args, from) = match from_btf.clone() {
        Ok(n) => (n, "kernel BTF".to_string()),
        Err(btf) => {
            let path = proc_root.join("sys/kernel/osrelease");
            let release = std::fs::read_to_string(&path)
                .map_err(|e| format!("{btf}; {}: {e}", path.display()))?;
            (
                args_by_release(release.trim())?,
                format!("kernel {}", release.trim()),
            )
        }
    };
    if args == want {
        Ok(())
    } else {
        Err(format!(
            "requires block_rq_issue with {want} argument(s); it has {args} ({from})"
        ))
    }
}

/// Arguments of block_rq_issue by kernel release: 1 from 5.11 on, 2 before.
fn args_by_release(release: &str) -> Result<usize, String> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let number = |p: Option<&str>| p.and_then(|n| n.parse::<u32>().ok());
    let (Some(major), Some(minor)) = (number(parts.next()), number(parts.next())) else {
        return Err(format!("kernel release `{release}` is not major.minor"));
    };
    Ok(if (major, minor) >= (5, 11) { 1 } else { 2 })
}

/// The kernel schedules by group (CONFIG_FAIR_GROUP_SCHED) when it has the `cpu` cgroup
/// controller, listed in `/proc/cgroups` whether or not it is mounted.
fn group_sched(proc_root: &Path) -> Result<(), String> {
    let path = proc_root.join("cgroups");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("requires group_sched: {}: {e}", path.display()))?;
    if text
        .lines()
        .any(|line| line.split_whitespace().next() == Some("cpu"))
    {
        return Ok(());
    }
    Err(format!(
        "requires group_sched: {} lists no `cpu` controller (no CONFIG_FAIR_GROUP_SCHED)",
        path.display()
    ))
}

/// The kernel accounts run-queue waits when init or this process has any in its schedstat
/// (`<on-cpu ns> <run_delay ns> <pcount>`); a kernel that keeps none prints `0 0 0`.
fn sched_info_live(proc_root: &Path) -> Result<(), String> {
    let mut seen = vec![];
    for pid in ["1", "self"] {
        let path = proc_root.join(pid).join("schedstat");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "requires sched_info: {}: {e} (the kernel has no CONFIG_SCHED_INFO)",
                path.display()
            )
        })?;
        let numbers: Vec<u64> = text
            .split_whitespace()
            .map(|n| n.parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("requires sched_info: {}: {e}", path.display()))?;
        if numbers.len() < 3 {
            return Err(format!(
                "requires sched_info: {}: expected 3 numbers, read {:?}",
                path.display(),
                text.trim()
            ));
        }
        if numbers[1] > 0 || numbers[2] > 0 {
            return Ok(());
        }
        seen.push(text.trim().to_string());
    }
    Err(format!(
        "requires sched_info: the kernel keeps no run-queue accounting (/proc/1/schedstat and \
         /proc/self/schedstat read {:?}; schedstats or delay accounting are off)",
        seen
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(init: &str, me: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (pid, text) in [("1", init), ("self", me)] {
            std::fs::create_dir(dir.path().join(pid)).unwrap();
            std::fs::write(dir.path().join(pid).join("schedstat"), text).unwrap();
        }
        dir
    }

    #[test]
    fn live_when_any_task_has_accounting() {
        let dir = tree("123 456 7\n", "0 0 0\n");
        assert_eq!(Requirement::SchedInfo.check(dir.path()), Ok(()));
        let dir = tree("0 0 0\n", "5 0 1\n");
        assert_eq!(Requirement::SchedInfo.check(dir.path()), Ok(()));
    }

    #[test]
    fn group_sched_from_the_cpu_controller() {
        let dir = tempfile::tempdir().unwrap();
        let cgroups = dir.path().join("cgroups");
        std::fs::write(
            &cgroups,
            "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t2\t1\t1\n",
        )
        .unwrap();
        assert_eq!(Requirement::GroupSched.check(dir.path()), Ok(()));
        std::fs::write(
            &cgroups,
            "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t1\t1\t1\n",
        )
        .unwrap();
        let err = Requirement::GroupSched.check(dir.path()).unwrap_err();
        assert!(err.contains("no `cpu` controller"), "{err}");
    }

    #[test]
    fn block_rq_arguments_by_release() {
        assert_eq!(args_by_release("4.18.0-553.el8_10.x86_64"), Ok(2));
        assert_eq!(args_by_release("5.10.0-30-amd64"), Ok(2));
        assert_eq!(args_by_release("5.11.0"), Ok(1));
        assert_eq!(args_by_release("6.18.44-fc-v1045"), Ok(1));
        assert!(args_by_release("linux").is_err());
    }

    #[test]
    fn unmet_with_the_reason() {
        let dir = tree("0 0 0\n", "0 0 0\n");
        let err = Requirement::SchedInfo.check(dir.path()).unwrap_err();
        assert!(err.contains("no run-queue accounting"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = Requirement::SchedInfo.check(empty.path()).unwrap_err();
        assert!(err.contains("CONFIG_SCHED_INFO"), "{err}");
        let dir = tree("a b c\n", "0 0 0\n");
        let err = Requirement::SchedInfo.check(dir.path()).unwrap_err();
        assert!(err.contains("1/schedstat"), "{err}");
    }
}
