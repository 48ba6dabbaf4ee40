//! What the record history's index costs in memory: writes N records (ten tracers, half of
//! them in one of 50 containers, bodies like the agent's) into a scratch directory with the
//! local file store, then, in a fresh process, reads the process's RSS before and after the
//! first history query (which indexes every record) and prints both.
//!
//! `cargo run --release -p huatuo-storage --example history_rss -- 10000 200000`

use huatuo_storage::history::{History, Query};
use huatuo_storage::{Document, LocalFileSettings, LocalFileStore};
use serde_json::json;
use std::path::Path;
use std::process::Command;

/// The process's resident set in KiB (`VmRSS`).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn write(dir: &Path, records: usize) {
    let store = LocalFileStore::new(LocalFileSettings {
        dir: dir.to_path_buf(),
        rotation_bytes: 100 << 20,
        max_rotation: 100,
    })
    .expect("store");
    let tracers = [
        "dropwatch",
        "oom",
        "softirq",
        "netdev_events",
        "cpusys",
        "memory_reclaim_events",
        "iotracing",
        "softlockup",
        "hungtask",
        "netrecvlat",
    ];
    let start = chrono::Local::now() - chrono::Duration::hours(24);
    for n in 0..records {
        let tracer = tracers[n % tracers.len()];
        let time = huatuo_storage::document::tracer_time(
            &(start + chrono::Duration::milliseconds(n as i64 * 10)),
        );
        let id = uuid::Uuid::new_v4().simple().to_string();
        let container = (n % 2 == 0).then(|| format!("{:064x}", n % 50));
        store
            .write(&Document {
                tracer_name: tracer.into(),
                tracer_id: id.clone(),
                body: json!({
                    "hostname": "node-1", "region": "dc1", "tracer_name": tracer,
                    "tracer_id": id, "tracer_time": time, "time": time,
                    "tracer_type": "auto", "container_id": container,
                    "container_hostname": container.as_ref().map(|c| format!("web-{}", &c[60..])),
                    "tracer_data": { "n": n, "comm": "stored", "pid": n % 32768 },
                }),
            })
            .expect("write");
    }
}

fn measure(dir: &Path) {
    let before = rss_kib();
    let history = History::new(dir);
    let page = history
        .query(&Query {
            limit: 100,
            ..Query::default()
        })
        .expect("query");
    let after = rss_kib();
    println!(
        "indexed {} records: RSS {before} KiB before, {after} KiB after the first query: \
         +{} KiB, {} bytes a record",
        page.indexed,
        after.saturating_sub(before),
        (after.saturating_sub(before) * 1024) / page.indexed.max(1) as u64
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--measure") {
        measure(Path::new(&args[1]));
        return;
    }
    for count in &args {
        let records: usize = count.parse().expect("a record count");
        let dir = tempfile::tempdir().expect("temp dir");
        write(dir.path(), records);
        // A fresh process: the writer's allocations do not blur the figure.
        let status = Command::new(std::env::current_exe().expect("own path"))
            .arg("--measure")
            .arg(dir.path())
            .status()
            .expect("run the measurement");
        assert!(status.success(), "the measurement failed");
    }
}
