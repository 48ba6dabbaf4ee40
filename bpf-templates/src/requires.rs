//! Kernel facilities an attach variant needs besides its attach point, declared in
//! schema.toml as `requires = [...]` on the variant and checked before the variant is tried:
//! a variant whose requirement is unmet is skipped with the reason, and the chain moves on.
//!
//! - `sched_info`: the scheduler keeps per-task run-queue accounting (`task->sched_info`:
//!   `run_delay`, `pcount`; CONFIG_SCHED_INFO, and on kernels before 5.14 also schedstats or
//!   delay accounting switched on). Seen from user space as a non-zero /proc/<pid>/schedstat.

use serde::Deserialize;
use std::path::Path;

/// One kernel facility a variant requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Requirement {
    /// Per-task run-queue accounting in `task->sched_info`.
    SchedInfo,
}

impl Requirement {
    /// The name used in schema.toml.
    pub fn name(self) -> &'static str {
        match self {
            Requirement::SchedInfo => "sched_info",
        }
    }

    /// Checks the requirement on this machine (`/proc` rooted at `proc_root`).
    pub fn check(self, proc_root: &Path) -> Result<(), String> {
        match self {
            Requirement::SchedInfo => sched_info_live(proc_root),
        }
    }
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
