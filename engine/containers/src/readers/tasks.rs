//! `cgroup.load` (tasks by state) and `cgroup.pids` (pids.current, pids.max).
//!
//! On cgroup v1 the task states come from the kernel (cgroupstats over taskstats netlink, as
//! HUATUO reads them, with the tasks in IO wait); where it cannot answer (no taskstats, cgroup
//! v2, a recorded tree) from a scan: the task list is `tasks` in the v1 cpu hierarchy,
//! `cgroup.threads` on v2, each task's state the field after the command in
//! `/proc/<tid>/stat`. `states_from` says which. Only the container's own cgroup is counted,
//! not nested cgroups below it.

use super::{field, int, one, schema, Ctx, Entity};
use crate::cgroupfs::{read_text, read_u64, FsError};
use crate::container::Container;
use huatuo_dsl::catalog::{FieldType, SourceSchema};
use huatuo_dsl::units::Dim;
use huatuo_dsl::value::Value;
use huatuo_sources::taskstats::{CgroupStats, StatsError, Taskstats};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Schema of `cgroup.load`.
pub(crate) fn load_schema() -> SourceSchema {
    schema(
        "cgroup.load",
        "container tasks by state (running, sleeping, uninterruptible, stopped, in IO wait), \
         from the kernel's cgroupstats (v1) or a task scan",
        vec![
            field("nr_running", FieldType::Int, Dim::Count, "tasks in state R"),
            field(
                "nr_sleeping",
                FieldType::Int,
                Dim::Count,
                "tasks in interruptible sleep (S)",
            ),
            field(
                "nr_uninterruptible",
                FieldType::Int,
                Dim::Count,
                "tasks in state D",
            ),
            field(
                "nr_stopped",
                FieldType::Int,
                Dim::Count,
                "tasks stopped by a signal (T)",
            ),
            field(
                "nr_iowait",
                FieldType::Int,
                Dim::Count,
                "tasks in another sleep while waiting for IO (cgroupstats' nr_io_wait); absent \
                 when the states come from the task scan, which cannot tell",
            ),
            field(
                "states_from",
                FieldType::Str,
                Dim::Count,
                "where the states come from: `cgroupstats` (the kernel, over taskstats \
                 netlink) or `scan` (/proc/<tid>/stat of each task)",
            ),
            field(
                "nr_tasks",
                FieldType::Int,
                Dim::Count,
                "tasks the scan examined, or cgroupstats counted in a state",
            ),
            field(
                "nr_unscanned",
                FieldType::Int,
                Dim::Count,
                "tasks not examined because of the per-container cap",
            ),
        ],
    )
}

/// Schema of `cgroup.pids`.
pub(crate) fn pids_schema() -> SourceSchema {
    schema(
        "cgroup.pids",
        "container task count and limit (pids controller)",
        vec![
            field("current", FieldType::Int, Dim::Count, "tasks in the cgroup"),
            field(
                "limit",
                FieldType::Int,
                Dim::Count,
                "pids.max; absent when unlimited",
            ),
        ],
    )
}

/// The state letter of `/proc/<tid>/stat` (after the last `)` of the command).
fn task_state(stat: &str) -> Option<char> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().next()?.chars().next()
}

/// Tasks of one container by state, as the kernel's cgroupstats counts them (R, S, D, T;
/// idle, traced and dead tasks are examined but in no state count).
#[derive(Debug, Default, PartialEq, Eq)]
struct StateCounts {
    running: u64,
    sleeping: u64,
    uninterruptible: u64,
    stopped: u64,
}

impl StateCounts {
    /// Counts one task by the state letter of its stat line.
    fn add(&mut self, state: Option<char>) {
        match state {
            Some('R') => self.running += 1,
            Some('S') => self.sleeping += 1,
            Some('D') => self.uninterruptible += 1,
            Some('T') => self.stopped += 1,
            _ => {}
        }
    }
}

/// How long the task states come from scans after the kernel failed to answer one request
/// (no reply within its timeout, a refusal), before the connection is opened again: one stalled
/// exchange costs a poll round one reply timeout, not one per container.
const LINK_RETRY_AFTER: Duration = Duration::from_secs(30);

/// A reader's taskstats connection: opened at the first use, given up for good when the
/// kernel has no taskstats family (said once in the log), closed for `LINK_RETRY_AFTER` when
/// an exchange fails.
#[derive(Default)]
pub(crate) struct TaskstatsLink {
    client: Option<Taskstats>,
    unavailable: bool,
    /// No request before this instant (the last exchange failed).
    retry_at: Option<Instant>,
}

impl TaskstatsLink {
    /// The kernel's task states of the cgroup v1 directory `dir`; `None` when taskstats cannot
    /// answer.
    fn cgroup_stats(&mut self, dir: &Path) -> Option<CgroupStats> {
        if self.unavailable || !retry_due(self.retry_at, Instant::now()) {
            return None;
        }
        if self.client.is_none() {
            match Taskstats::open() {
                Ok(client) => self.client = Some(client),
                Err(e) => {
                    log::info!("cgroup.load: no taskstats ({e}): task states by /proc scan");
                    self.unavailable = true;
                    return None;
                }
            }
        }
        match self.client.as_mut()?.cgroup_stats(dir) {
            Ok(stats) => {
                self.retry_at = None;
                Some(stats)
            }
            Err(StatsError::Directory(e)) => {
                log::debug!("cgroup.load: cgroupstats: {e}: task states by /proc scan");
                None
            }
            Err(StatsError::Link(e)) => {
                log::warn!(
                    "cgroup.load: cgroupstats failed ({e}): task states by /proc scan for \
                     {}s",
                    LINK_RETRY_AFTER.as_secs()
                );
                self.client = None;
                self.retry_at = Some(Instant::now() + LINK_RETRY_AFTER);
                None
            }
        }
    }
}

/// Whether a request may be made at `now`, the link closed until `retry_at`.
fn retry_due(retry_at: Option<Instant>, now: Instant) -> bool {
    retry_at.is_none_or(|at| now >= at)
}

/// Reads `cgroup.load` for one container.
pub(crate) fn read_load(ctx: &Ctx<'_>, c: &Container) -> Result<Vec<Entity>, FsError> {
    if !ctx.v2() {
        let dir = ctx.file("cpu", c, "")?;
        if let Some(stats) = ctx.taskstats.borrow_mut().cgroup_stats(&dir) {
            let counted = stats.running
                + stats.sleeping
                + stats.uninterruptible
                + stats.stopped
                + stats.io_wait;
            return Ok(one(BTreeMap::from([
                ("nr_running".to_string(), int(stats.running)),
                ("nr_sleeping".to_string(), int(stats.sleeping)),
                ("nr_uninterruptible".to_string(), int(stats.uninterruptible)),
                ("nr_stopped".to_string(), int(stats.stopped)),
                ("nr_iowait".to_string(), int(stats.io_wait)),
                ("states_from".to_string(), Value::Str("cgroupstats".into())),
                ("nr_tasks".to_string(), int(counted)),
                ("nr_unscanned".to_string(), int(0)),
            ])));
        }
    }
    scan_load(ctx, c)
}

/// `cgroup.load` by a scan of the container's tasks.
fn scan_load(ctx: &Ctx<'_>, c: &Container) -> Result<Vec<Entity>, FsError> {
    let list = if ctx.v2() { "cgroup.threads" } else { "tasks" };
    let text = read_text(&ctx.file("cpu", c, list)?)?;
    let (mut counts, mut scanned, mut unscanned) = (StateCounts::default(), 0u64, 0u64);
    for tid in text.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
        if scanned as usize >= ctx.options.max_tasks {
            unscanned += 1;
            continue;
        }
        let path = ctx.options.proc_root.join(tid.to_string()).join("stat");
        // A task that exited between the two reads is simply not counted.
        let Ok(stat) = std::fs::read_to_string(&path) else {
            continue;
        };
        scanned += 1;
        counts.add(task_state(&stat));
    }
    let fields = BTreeMap::from([
        ("nr_running".to_string(), int(counts.running)),
        ("nr_sleeping".to_string(), int(counts.sleeping)),
        (
            "nr_uninterruptible".to_string(),
            int(counts.uninterruptible),
        ),
        ("nr_stopped".to_string(), int(counts.stopped)),
        ("states_from".to_string(), Value::Str("scan".into())),
        ("nr_tasks".to_string(), int(scanned)),
        ("nr_unscanned".to_string(), int(unscanned)),
    ]);
    Ok(one(fields))
}

/// Reads `cgroup.pids` for one container.
pub(crate) fn read_pids(ctx: &Ctx<'_>, c: &Container) -> Result<Vec<Entity>, FsError> {
    let mut fields = BTreeMap::new();
    if let Some(v) = read_u64(&ctx.file("pids", c, "pids.current")?)? {
        fields.insert("current".to_string(), int(v));
    }
    if let Some(v) = read_u64(&ctx.file("pids", c, "pids.max")?)? {
        fields.insert("limit".to_string(), int(v));
    }
    Ok(one(fields))
}

#[cfg(test)]
mod tests {
    use super::{retry_due, task_state, StateCounts, LINK_RETRY_AFTER};
    use std::time::Instant;

    #[test]
    fn a_failed_exchange_closes_the_link_until_its_retry_time() {
        let now = Instant::now();
        assert!(retry_due(None, now));
        let retry_at = now + LINK_RETRY_AFTER;
        assert!(!retry_due(Some(retry_at), now));
        assert!(!retry_due(Some(retry_at), retry_at - LINK_RETRY_AFTER / 2));
        assert!(retry_due(Some(retry_at), retry_at));
    }

    #[test]
    fn states_count_as_cgroupstats_does() {
        let mut counts = StateCounts::default();
        for state in ['R', 'R', 'S', 'D', 'T', 't', 'I', 'Z', 'X'] {
            counts.add(Some(state));
        }
        counts.add(None);
        let expected = StateCounts {
            running: 2,
            sleeping: 1,
            uninterruptible: 1,
            stopped: 1,
        };
        assert_eq!(counts, expected);
    }

    #[test]
    fn state_after_command_with_parens_and_spaces() {
        assert_eq!(task_state("42 (a) b) c) D 1 2 3"), Some('D'));
        assert_eq!(task_state("7 (bash) R 1"), Some('R'));
        assert_eq!(task_state("garbage"), None);
        assert_eq!(task_state("1 (x)"), None);
    }
}
