//! `io_tracing` operations: which processes did IO during the operation, from their
//! `/proc/<pid>/io` counters read at the start and at the end (only a container's processes
//! for container scope), ranked by bytes moved to and from storage, then through read/write
//! calls.

use super::blockwin::BlockWindow;
use crate::capture::procscan::{io_counters, IoCounters, ProcRoot};
use huatuo_dsl::value::Value;
use huatuo_http::api::operations::{Control, Finished};
use huatuo_http::api::request::OperationRequest;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Processes listed in the record.
pub const MAX_LISTED: usize = 50;

/// What one process moved during the window.
fn delta(end: &IoCounters, start: Option<&IoCounters>) -> IoCounters {
    let start = start.copied().unwrap_or_default();
    IoCounters {
        fs_read: end.fs_read.saturating_sub(start.fs_read),
        fs_write: end.fs_write.saturating_sub(start.fs_write),
        disk_read: end.disk_read.saturating_sub(start.disk_read),
        disk_write: end.disk_write.saturating_sub(start.disk_write),
    }
}

/// Scans process IO at the start and the end of the duration (or the stop) and reads the
/// block window (`Err`: why there is none) at the end; fills `data`.
pub fn run(
    request: &OperationRequest,
    proc_root: &ProcRoot,
    block: Result<BlockWindow, String>,
    container_id: Option<&str>,
    control: &Control,
    data: &mut BTreeMap<String, Value>,
) -> Result<Finished, String> {
    let started = Instant::now();
    let before = io_counters(proc_root, container_id)?;
    control.started();
    let stopped = control.wait(Duration::from_secs(request.duration_seconds));
    let after = io_counters(proc_root, container_id)?;
    let window = started.elapsed();
    let disks = block.map(|b| b.finish(container_id));
    let mut moved: Vec<(i32, String, IoCounters)> = after
        .iter()
        .map(|(key, (comm, end))| {
            (
                key.0,
                comm.clone(),
                delta(end, before.get(key).map(|b| &b.1)),
            )
        })
        .filter(|(_, _, d)| *d != IoCounters::default())
        .collect();
    let active = moved.len();
    moved.sort_by_key(|(_, _, d)| {
        std::cmp::Reverse((
            d.disk_read.saturating_add(d.disk_write),
            d.fs_read.saturating_add(d.fs_write),
        ))
    });
    let listed: Vec<serde_json::Value> = moved
        .into_iter()
        .take(MAX_LISTED)
        .map(|(pid, comm, d)| {
            json!({
                "pid": pid,
                "comm": comm,
                "fs_read": d.fs_read,
                "fs_write": d.fs_write,
                "disk_read": d.disk_read,
                "disk_write": d.disk_write,
            })
        })
        .collect();
    data.insert("interval_ns".into(), Value::Int(window.as_nanos() as i64));
    data.insert("processes_with_io".into(), Value::Int(active as i64));
    data.insert("processes".into(), Value::Json(json!(listed)));
    data.insert("stopped_early".into(), Value::Bool(stopped));
    let disk_count = disks.as_ref().map_or(0, Vec::len);
    match disks {
        Ok(disks) => {
            data.insert("disks".into(), Value::Json(json!(disks)));
        }
        Err(reason) => {
            data.insert("block_unavailable".into(), Value::Str(reason));
        }
    }
    Ok(Finished {
        summary: json!({
            "processes_with_io": active,
            "listed": listed.len(),
            "disks": disk_count,
            "stopped_early": stopped,
        }),
        svg: None,
    })
}
