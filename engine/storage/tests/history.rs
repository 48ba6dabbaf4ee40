//! The record history read back from files the local store wrote: pages newest first with no
//! gap or repeat while records are appended and files rotate, filters, and cursor checks.

use huatuo_storage::history::{Cursor, History, Query};
use huatuo_storage::{Document, LocalFileSettings, LocalFileStore};
use regex::Regex;
use serde_json::json;
use std::collections::HashSet;

/// A stored record of `tracer` at `ms` milliseconds after a fixed instant.
fn doc(tracer: &str, n: usize, ms: i64, container: &str) -> Document {
    let time = chrono::DateTime::from_timestamp_millis(1_780_000_000_000 + ms)
        .expect("time")
        .format("%Y-%m-%d %H:%M:%S%.3f +0000")
        .to_string();
    let id = format!("{tracer}-{n:06}");
    Document {
        tracer_name: tracer.to_string(),
        tracer_id: id.clone(),
        body: json!({
            "hostname": "node-1",
            "tracer_name": tracer,
            "tracer_id": id,
            "tracer_time": time,
            "time": time,
            "container_hostname": container,
            "tracer_data": { "n": n, "word": if n.is_multiple_of(10) { "tenth" } else { "other" } },
        }),
    }
}

fn store(dir: &std::path::Path, rotation_bytes: u64) -> LocalFileStore {
    LocalFileStore::new(LocalFileSettings {
        dir: dir.to_path_buf(),
        rotation_bytes,
        max_rotation: 1000,
    })
    .expect("store")
}

/// Writes `count` records of `tracer` (record n at millisecond n) into a store under `dir`:
/// the store and the history over it.
fn history_of(dir: &std::path::Path, tracer: &str, count: usize) -> (LocalFileStore, History) {
    let local = store(dir, 1 << 20);
    for n in 0..count {
        local.write(&doc(tracer, n, n as i64, "")).expect("write");
    }
    (local, History::new(dir))
}

fn ids(page: &huatuo_storage::history::Page) -> Vec<String> {
    page.records
        .iter()
        .map(|r| r["tracer_id"].as_str().expect("id").to_string())
        .collect()
}

fn all_pages(history: &History, mut query: Query) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let page = history.query(&query).expect("page");
        seen.extend(ids(&page));
        match page.next_cursor {
            Some(c) => query.cursor = Some(Cursor::decode(&c).expect("cursor")),
            None => return seen,
        }
    }
}

#[test]
fn pages_through_a_thousand_records_without_gaps_or_repeats_while_files_rotate() {
    let dir = tempfile::tempdir().expect("dir");
    // Small files: every tracer's records span dozens of rotated files.
    let local = store(dir.path(), 8 * 1024);
    let tracers = ["dropwatch", "oom", "softlockup"];
    let mut expected = Vec::new();
    for n in 0..1000 {
        // Four records share each millisecond: the id breaks the tie.
        let d = doc(tracers[n % 3], n, (n / 4) as i64, "");
        expected.push(((n / 4) as i64, d.tracer_id.clone()));
        local.write(&d).expect("write");
    }
    expected.sort_by(|a, b| b.cmp(a));
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
    let history = History::new(dir.path());
    let mut query = Query {
        limit: 37,
        ..Query::default()
    };
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = history.query(&query).expect("page");
        assert!(page.records.len() <= 37);
        seen.extend(ids(&page));
        pages += 1;
        if pages == 3 {
            // Newer records arrive and files rotate between two pages.
            for n in 1000..1100 {
                local
                    .write(&doc(tracers[n % 3], n, 10_000 + n as i64, ""))
                    .expect("write");
            }
        }
        match page.next_cursor {
            Some(c) => query.cursor = Some(Cursor::decode(&c).expect("cursor")),
            None => break,
        }
    }
    assert_eq!(pages, 1000_usize.div_ceil(37));
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a record was repeated");
    assert_eq!(seen, expected, "records missing or out of order");
    // A fresh walk sees the new records first, then the old ones.
    let fresh = all_pages(
        &history,
        Query {
            limit: 500,
            ..Query::default()
        },
    );
    assert_eq!(fresh.len(), 1100);
    assert_eq!(fresh[0], "oom-001099");
    assert_eq!(&fresh[100..], &expected[..]);
}

#[test]
fn filters_by_tracer_container_time_and_text() {
    let dir = tempfile::tempdir().expect("dir");
    let local = store(dir.path(), 1 << 20);
    for n in 0..300_usize {
        let tracer = if n.is_multiple_of(2) {
            "dropwatch"
        } else {
            "oom"
        };
        let container = if n.is_multiple_of(3) { "web-1" } else { "db-1" };
        local
            .write(&doc(tracer, n, n as i64 * 1000, container))
            .expect("write");
    }
    let history = History::new(dir.path());
    let query = |q: Query| all_pages(&history, Query { limit: 50, ..q });
    let tracer = query(Query {
        tracer: Some(Regex::new("^oom$").expect("re")),
        ..Query::default()
    });
    assert_eq!(tracer.len(), 150);
    assert!(tracer.iter().all(|id| id.starts_with("oom-")));
    // A tracer is found by HUATUO's older name too.
    local
        .write(&doc("softirq_tracing", 1, 1, ""))
        .expect("write");
    let older = query(Query {
        tracer: Some(Regex::new("^softirq$").expect("re")),
        ..Query::default()
    });
    assert_eq!(older, ["softirq_tracing-000001"]);
    let container = query(Query {
        container: Some(Regex::new("web").expect("re")),
        ..Query::default()
    });
    assert_eq!(container.len(), 100);
    let window = query(Query {
        since_ms: Some(1_780_000_000_000 + 100_000),
        until_ms: Some(1_780_000_000_000 + 110_000),
        ..Query::default()
    });
    assert_eq!(window.len(), 10, "{window:?}");
    assert_eq!(window[0], "oom-000109");
    let text = query(Query {
        text: Some(Regex::new("\"tenth\"").expect("re")),
        ..Query::default()
    });
    assert_eq!(text.len(), 30);
    assert!(text.iter().all(|id| id.ends_with('0')));
}

#[test]
fn unreadable_lines_are_counted_and_skipped() {
    let dir = tempfile::tempdir().expect("dir");
    let local = store(dir.path(), 1 << 20);
    local.write(&doc("oom", 1, 1, "")).expect("write");
    let path = local.path_of("oom");
    let mut text = std::fs::read_to_string(&path).expect("read");
    text.push_str("{not json\n{\"tracer_id\": \"no-time\"}\n");
    std::fs::write(&path, text).expect("write");
    local.write(&doc("oom", 2, 2, "")).expect("write");
    // A record still being written (no newline yet) is left for the next look.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open");
    std::io::Write::write_all(&mut file, b"{\"partial\":").expect("append");
    let page = History::new(dir.path())
        .query(&Query {
            limit: 10,
            ..Query::default()
        })
        .expect("page");
    assert_eq!(ids(&page), ["oom-000002", "oom-000001"]);
    assert_eq!(page.unreadable, 2);
    assert!(page.next_cursor.is_none());
}

#[test]
fn a_record_is_found_by_id() {
    let dir = tempfile::tempdir().expect("dir");
    let (_, history) = history_of(dir.path(), "cpusys", 20);
    let found = history
        .find("cpusys-000007")
        .expect("find")
        .expect("record");
    assert_eq!(found["tracer_data"]["n"], 7);
    assert!(history.find("cpusys-999999").expect("find").is_none());
}

#[test]
fn cursors_round_trip_and_foreign_text_is_refused() {
    let cursor = Cursor {
        time_ms: 1_780_000_000_123,
        id: "0123abcd-ef".into(),
    };
    assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
    for bad in ["", "abc", "12", "x_1", "12_", "12_a b", "12_../etc"] {
        assert!(Cursor::decode(bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn a_file_rewritten_in_place_is_indexed_again() {
    let dir = tempfile::tempdir().expect("dir");
    let (local, history) = history_of(dir.path(), "oom", 10);
    let all = Query {
        limit: 500,
        ..Query::default()
    };
    assert_eq!(history.query(&all).expect("page").records.len(), 10);
    // Same inode, other records, longer than what was indexed: as when a deleted file's
    // inode is reused by the next one.
    let path = local.path_of("oom");
    let other = tempfile::tempdir().expect("dir");
    let fresh = store(other.path(), 1 << 20);
    for n in 100..130 {
        fresh.write(&doc("oom", n, n as i64, "")).expect("write");
    }
    let text = std::fs::read(fresh.path_of("oom")).expect("read");
    std::fs::write(&path, text).expect("rewrite in place");
    let page = history.query(&all).expect("page");
    assert_eq!(ids(&page).len(), 30, "{:?}", ids(&page));
    assert!(ids(&page).iter().all(|id| id.as_str() >= "oom-000100"));
    assert_eq!(page.unreadable, 0);
}

#[test]
fn an_idle_index_is_dropped_and_rebuilt_by_the_next_query() {
    let dir = tempfile::tempdir().expect("dir");
    let local = store(dir.path(), 1 << 20);
    for n in 0..200_usize {
        local
            .write(&doc("dropwatch", n, n as i64, ""))
            .expect("write");
    }
    let history = History::new(dir.path());
    let everything = || {
        all_pages(
            &history,
            Query {
                limit: 500,
                ..Query::default()
            },
        )
    };
    let before = everything();
    assert_eq!(before.len(), 200);
    assert_eq!(history.indexed(), 200);
    // Used just now: a long idle bound keeps it.
    assert!(!history.release_idle(std::time::Duration::from_secs(600)));
    assert_eq!(history.indexed(), 200);
    assert!(history.release_idle(std::time::Duration::ZERO));
    assert_eq!(history.indexed(), 0);
    // Never used since: nothing to drop.
    assert!(!history.release_idle(std::time::Duration::ZERO));
    assert_eq!(everything(), before, "the rebuilt index answers the same");
}
