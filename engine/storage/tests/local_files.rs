//! Local file storage writes HUATUO-shaped records and rotates by size.

use huatuo_dsl::output::{Record, TracerType};
use huatuo_dsl::value::Value;
use huatuo_storage::{Document, HostInfo, LocalFileSettings, LocalFileStore, Storage};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

fn record(name: &str, offtime: i64) -> Record {
    let mut data = BTreeMap::new();
    data.insert("offtime".to_string(), Value::Int(offtime));
    data.insert("comm".to_string(), Value::Str("stress".into()));
    let mut labels = BTreeMap::new();
    labels.insert("container_id".to_string(), "abc".to_string());
    labels.insert("container_level".to_string(), "Guaranteed".to_string());
    Record {
        tracer_name: name.into(),
        tracer_type: TracerType::Auto,
        time_ns: 1_749_629_116_251_000_000,
        labels,
        data,
    }
}

fn host() -> HostInfo {
    HostInfo {
        hostname: "node-1".into(),
        region: "cn-beijing".into(),
        legacy_tracer_names: false,
    }
}

#[test]
fn document_has_huatuo_common_fields() {
    let doc = Document::new(
        &record("softirq_tracing", 237),
        &host(),
        chrono::Local::now(),
    );
    let body = &doc.body;
    assert_eq!(body["hostname"], "node-1");
    assert_eq!(body["region"], "cn-beijing");
    assert_eq!(body["tracer_name"], "softirq_tracing");
    assert_eq!(body["tracer_type"], "auto");
    assert_eq!(body["container_id"], "abc");
    assert_eq!(body["container_qos"], "Guaranteed");
    assert_eq!(body["tracer_data"]["offtime"], 237);
    assert_eq!(body["tracer_data"]["comm"], "stress");
    assert_eq!(body["tracer_id"].as_str().map(str::len), Some(32));
    let time = body["tracer_time"].as_str().unwrap_or_default();
    assert!(time.starts_with("2025-06-1"), "tracer_time {time}");
    assert_eq!(time.len(), "2025-06-11 16:05:16.251 +0800".len());
}

#[test]
fn each_record_is_preceded_by_huatuo_s_header_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = file_store(dir.path(), 1 << 20, 1);
    let mut labels = record("net_rx_latency", 1);
    labels
        .labels
        .insert("container_host".into(), "web-1.docker".into());
    labels
        .labels
        .insert("container_type".into(), "normal".into());
    let in_container = Document::new(&labels, &host(), chrono::Local::now());
    let mut on_host = record("net_rx_latency", 2);
    on_host.labels.clear();
    let on_host = Document::new(&on_host, &host(), chrono::Local::now());
    store.write(&in_container).expect("write");
    store.write(&on_host).expect("write");
    let text = std::fs::read_to_string(store.path_of("net_rx_latency")).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    // The record's local time to the second, then the host and, for a container, the container.
    let second = &in_container.field("tracer_time")[..19];
    assert_eq!(
        lines[0],
        format!(
            "{second} Host=node-1 Region=cn-beijing ContainerHost=web-1.docker \
             ContainerID=abc ContainerType=normal ContainerLevel=Guaranteed"
        )
    );
    assert_eq!(lines[2], format!("{second} Host=node-1 Region=cn-beijing"));
    let docs = huatuo_storage::local::documents(&text);
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["tracer_data"]["offtime"], 1);
    assert_eq!(docs[1]["tracer_data"]["offtime"], 2);
}

#[test]
fn renamed_tracers_are_written_under_huatuo_s_older_names_on_request() {
    let record = record("net_rx_latency", 1);
    let current = Document::new(&record, &host(), chrono::Local::now());
    assert_eq!(current.body["tracer_name"], "net_rx_latency");
    let legacy_host = HostInfo {
        legacy_tracer_names: true,
        ..host()
    };
    let legacy = Document::new(&record, &legacy_host, chrono::Local::now());
    assert_eq!(legacy.body["tracer_name"], "netrecvlat");
    assert_eq!(legacy.tracer_name, "netrecvlat");
    let oom = Document::new(&self::record("oom", 1), &legacy_host, chrono::Local::now());
    assert_eq!(oom.body["tracer_name"], "oom");
}

#[test]
fn records_append_and_rotate_within_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = file_store(&dir.path().join("huatuo-local"), 1500, 2);
    let path = store.path_of("oom");
    let storage = Storage::new(Some(store));
    for i in 0..40 {
        storage.store(&Document::new(
            &record("oom", i),
            &host(),
            chrono::Local::now(),
        ));
    }
    let counters = storage.counters();
    assert_eq!(
        counters
            .local_written
            .load(std::sync::atomic::Ordering::Relaxed),
        40
    );
    let current = std::fs::read_to_string(&path).expect("current file");
    let lines: Vec<&str> = current.lines().collect();
    assert!(lines.len() >= 2 && lines.len().is_multiple_of(2));
    assert!(
        lines[0].contains(" Host=node-1 Region=cn-beijing "),
        "{}",
        lines[0]
    );
    let json: serde_json::Value = serde_json::from_str(lines[1]).expect("json line");
    assert_eq!(json["tracer_name"], "oom");
    assert!(std::fs::metadata(&path).expect("meta").len() <= 1500);
    let names: Vec<String> = std::fs::read_dir(dir.path().join("huatuo-local"))
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    assert!(names.contains(&"oom.1".to_string()) && names.contains(&"oom.2".to_string()));
    assert!(
        !names.contains(&"oom.3".to_string()),
        "kept more than MaxRotation: {names:?}"
    );
    let last = std::fs::read_to_string(&path).expect("read");
    assert!(last.contains("\"offtime\":39"));
}

#[test]
fn unwritable_directory_is_counted_not_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = file_store(dir.path(), 1 << 20, 1);
    // A directory where the tracer file should be makes every append fail.
    std::fs::create_dir(store.path_of("oom")).expect("mkdir");
    let storage = Storage::new(Some(store));
    storage.store(&Document::new(
        &record("oom", 1),
        &host(),
        chrono::Local::now(),
    ));
    assert_eq!(
        storage
            .counters()
            .local_failed
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// The permission bits of `path`, in octal as `ls` shows them.
fn mode(path: &Path) -> String {
    let mode = std::fs::metadata(path).expect("meta").permissions().mode();
    format!("{:o}", mode & 0o777)
}

/// A local file store writing under `dir` with the given rotation limits.
fn file_store(dir: &Path, rotation_bytes: u64, max_rotation: usize) -> LocalFileStore {
    LocalFileStore::new(LocalFileSettings {
        dir: dir.to_path_buf(),
        rotation_bytes,
        max_rotation,
    })
    .expect("store")
}

fn store_in(dir: &Path, rotation_bytes: u64, max_rotation: usize) -> Storage {
    Storage::new(Some(file_store(dir, rotation_bytes, max_rotation)))
}

fn write(storage: &Storage, name: &str, n: i64) {
    storage.store(&Document::new(
        &record(name, n),
        &host(),
        chrono::Local::now(),
    ));
}

#[test]
fn record_files_are_0600_in_a_0700_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("a/huatuo-local");
    let storage = store_in(&dir, 1500, 2);
    for n in 0..20 {
        write(&storage, "oom", n);
    }
    assert_eq!(mode(&dir), "700");
    assert_eq!(mode(&dir.join("oom")), "600");
    assert_eq!(mode(&dir.join("oom.1")), "600");
    // A file an earlier version left world-readable is tightened at the next record.
    let old = dir.join("softirq_tracing");
    std::fs::write(&old, "# old\n{}\n").expect("write");
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    write(&storage, "softirq_tracing", 1);
    assert_eq!(mode(&old), "600");
}

#[test]
fn rotation_touches_only_existing_files_whatever_max_rotation_is() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_path_buf();
    // MaxRotation = 10^12 used to stat every number from 1 up on each rotation.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let worker_dir = dir.clone();
    std::thread::spawn(move || {
        let storage = store_in(&worker_dir, 600, 1_000_000_000_000);
        for n in 0..30 {
            write(&storage, "oom", n);
        }
        let _ = done_tx.send(());
    });
    let start = Instant::now();
    done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("30 records with MaxRotation = 10^12 did not finish in 10 s");
    assert!(start.elapsed() < Duration::from_secs(10));
    let rotated = std::fs::read_dir(&dir).expect("dir").count() - 1;
    assert!(rotated >= 10, "{rotated} rotated files");
    // Newest first: oom holds record 29, oom.1 the records just before it.
    let text = |name: &str| std::fs::read_to_string(dir.join(name)).expect(name);
    assert!(text("oom").contains("\"offtime\":29"));
    let newest_rotated = text("oom.1");
    let oldest = text(&format!("oom.{rotated}"));
    assert!(oldest.contains("\"offtime\":0}"), "{oldest}");
    assert!(!newest_rotated.contains("\"offtime\":0}"));

    // A smaller limit drops the extra files, gaps included.
    std::fs::write(dir.join("oom.77"), "# stale\n").expect("write");
    let storage = store_in(&dir, 600, 3);
    for n in 100..103 {
        write(&storage, "oom", n);
    }
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    assert_eq!(names, ["oom", "oom.1", "oom.2", "oom.3"]);
}
