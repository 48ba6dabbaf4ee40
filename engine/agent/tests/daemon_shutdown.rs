//! SIGTERM stops the real agent within `ShutdownTimeout` even while a rule's script is stuck
//! and Elasticsearch never answers, and every record it made is kept: in the local file and,
//! for Elasticsearch, in the on-disk spool to be replayed by the next run.

mod scrape_common;

use scrape_common::{free_port, repo, Agent};
use std::collections::BTreeSet;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The bound the test configures.
const BOUND: Duration = Duration::from_secs(3);

/// An "Elasticsearch" that accepts connections, reads what is sent and never answers.
struct BlackHole {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl BlackHole {
    fn start() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counted.fetch_add(1, Ordering::Relaxed);
                let mut reader = stream.try_clone().expect("clone");
                held.lock().expect("held").push(stream);
                std::thread::spawn(move || {
                    let mut sink = [0u8; 4096];
                    while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
                });
            }
        });
        BlackHole { port, connections }
    }
}

/// A temporary tree: procfs root, rules, stdlib, config, local files and spool.
struct Tree(PathBuf);

impl Tree {
    fn new(es_port: u16) -> Tree {
        let root = std::env::temp_dir().join(format!("huatuo-shutdown-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for dir in ["proc", "cgroup", "rules", "stdlib"] {
            std::fs::create_dir_all(root.join(dir)).expect("mkdir");
        }
        let tree = Tree(root);
        tree.set_load("0.30");
        // Records at every poll; a second rule runs a script that takes minutes, once the
        // load goes above 5 (when the test says so).
        std::fs::write(
            tree.0.join("rules/shutdown.hto"),
            "event store_probe {\n    source proc.loadavg every 100ms\n    cooldown none\n    emit load1\n}\n\n\
             event stuck_script {\n    source proc.loadavg every 100ms\n    where load1 > 5\n    \
             script spun = slow::spin(load1)\n    cooldown none\n    emit spun\n}\n",
        )
        .expect("rules");
        std::fs::write(
            tree.0.join("stdlib/slow.rhai"),
            "/// Thousands of scans of a 9000-element array: within the operation limit, minutes long.\n\
             fn spin(load) {\n    let a = [];\n    a.pad(9000, 0);\n    let n = 0;\n    \
             for i in 0..15000 {\n        if a.contains(-1) { n += 1; }\n    }\n    n + load\n}\n",
        )
        .expect("script");
        std::fs::write(
            tree.0.join("huatuo-bamai.conf"),
            format!(
                "ShutdownTimeout = {}\n[Storage.ES]\nAddress = \"http://127.0.0.1:{es_port}\"\n\
                 Username = \"elastic\"\nPassword = \"secret\"\n[Storage.LocalFile]\nPath = \"{}\"\n",
                BOUND.as_secs(),
                tree.0.join("local").display()
            ),
        )
        .expect("config");
        tree
    }

    fn set_load(&self, load1: &str) {
        let tmp = self.0.join("proc/loadavg.tmp");
        std::fs::write(&tmp, format!("{load1} 0.20 0.22 2/300 4242\n")).expect("loadavg");
        std::fs::rename(&tmp, self.0.join("proc/loadavg")).expect("rename");
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The tracer ids of the records in a local record file (`# time name id` header lines).
fn local_ids(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("# "))
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect()
}

/// The tracer ids of the documents in the spool's segment files.
fn spooled_ids(dir: &Path) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if !entry.file_name().to_string_lossy().ends_with(".ndjson") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines() {
            let doc: serde_json::Value = serde_json::from_str(line).expect("spooled JSON");
            ids.insert(doc["tracer_id"].as_str().expect("tracer_id").to_string());
        }
    }
    ids
}

fn wait_until(what: &str, within: Duration, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigterm_exits_within_the_bound_and_spools_the_queued_documents() {
    let es = BlackHole::start();
    let tree = Tree::new(es.port);
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_huatuo"))
        .current_dir(repo())
        .arg("run")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--config")
        .arg(tree.path("huatuo-bamai.conf"))
        .args(["--no-bpf", "--procfs-root"])
        .arg(tree.path("proc"))
        .arg("--cgroup-root")
        .arg(tree.path("cgroup"))
        .arg("--rules")
        .arg(tree.path("rules"))
        .arg("--stdlib")
        .arg(tree.path("stdlib"))
        .arg("--spool-dir")
        .arg(tree.path("spool"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start huatuo");
    let mut agent = Agent(child);
    let local = tree.path("local/store_probe");
    wait_until(
        "records and a bulk request in flight",
        Duration::from_secs(60),
        || local_ids(&local).len() >= 5 && es.connections.load(Ordering::Relaxed) >= 1,
    );
    // The next poll starts the minutes-long script: the evaluator is stuck from then on.
    tree.set_load("9.00");
    std::thread::sleep(Duration::from_secs(2));
    let stored = local_ids(&local);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        local_ids(&local),
        stored,
        "the evaluator should be stuck in the script"
    );

    let pid = agent.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = agent.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            start.elapsed() < BOUND + Duration::from_secs(3),
            "still running {:?} after SIGTERM (ShutdownTimeout = {BOUND:?})",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = start.elapsed();
    assert!(status.success(), "{status:?}");
    // Nothing reached the cluster, so every record stored locally waits in the spool.
    let spooled = spooled_ids(&tree.path("spool"));
    assert!(stored.len() >= 5, "{stored:?}");
    assert_eq!(spooled, stored, "spool vs local records");
    println!(
        "exited {took:?} after SIGTERM; {} documents spooled",
        spooled.len()
    );
}
