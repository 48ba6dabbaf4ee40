//! End-to-end kernel test of the shipped `hungtask` rule: the real agent runs `rules/`, a
//! thread of this test is made to hang in TASK_UNINTERRUPTIBLE, kernel.hung_task_timeout_secs
//! is lowered to 1 s, and the record stored in `huatuo-local/hungtask` must name that thread.
//! Needs root, BPF and FUSE: skipped with a message otherwise, unless `CI=true`.
//!
//! The hang is the one of `bpf-templates/tests/hang_util` (its FUSE server and sysctl guard
//! are included from there), made without `libc`, which this crate does not depend on:
//! - the server, `fuse_server_child` (this binary run again, inert unless started by
//!   `Hang::start`), runs under `unshare --mount --propagation private`, so its mount lives in
//!   a namespace of its own and goes away with it; it opens /dev/fuse and has `mount(8)` mount
//!   it (the descriptor passed as the helper's stdin, `fd=0`);
//! - the test's threads reach that mount through `/proc/<server>/root`: one holds the root
//!   directory's inode lock in a MKDIR the server never answers, the other blocks on the lock
//!   in D state;
//! - the server exits when its stdin closes (at clean-up, or when the test dies); its
//!   /dev/fuse closes, the kernel aborts the connection and both threads return.

#[path = "../../../bpf-templates/tests/hang_util/fuse.rs"]
mod fuse;
#[path = "../../../bpf-templates/tests/hang_util/knobs.rs"]
mod knobs;

use serde_json::Value as Json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const SERVER_ENV: &str = "HUATUO_FUSE_SERVER_DIR";
const BLOCKED_COMM: &str = "huatuo-hung-b";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// True when the test should run; prints why it is skipped otherwise.
fn enabled(test: &str) -> bool {
    if std::env::var("CI").as_deref() != Ok("true") && !is_root() {
        println!("SKIPPED: {test} needs root, BPF and FUSE (set CI=true to require it)");
        return false;
    }
    knobs::hang_ready(test)
}

fn wait_until<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The FUSE server (see the file's documentation). Does nothing unless `SERVER_ENV` is set.
#[test]
#[ignore = "the FUSE server child of the hung-task tests, started by them with --ignored"]
fn fuse_server_child() {
    let Some(dir) = std::env::var_os(SERVER_ENV) else {
        return;
    };
    // the parent closes our stdin at clean-up, or by dying: then exit, which closes /dev/fuse
    // and aborts the connection
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let fuse = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .expect("open /dev/fuse");
    let helper_fd = fuse.try_clone().expect("dup /dev/fuse");
    let out = Command::new("mount")
        .args(["-i", "-t", "fuse", "-o"])
        .arg("fd=0,rootmode=40000,user_id=0,group_id=0")
        .arg("huatuo-hang")
        .arg(&dir)
        .stdin(helper_fd)
        .output()
        .expect("run mount");
    if !out.status.success() {
        println!(
            "{}error mount: {} {}",
            fuse::MARK,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        std::process::exit(1);
    }
    println!("{}ready", fuse::MARK);
    fuse::serve(&fuse);
}

/// A thread of this process blocked in D state on a FUSE directory's inode lock, released
/// and cleaned up on drop.
struct Hang {
    dir: PathBuf,
    server: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    holder: Option<JoinHandle<std::io::Result<()>>>,
    blocked: Option<JoinHandle<std::io::Result<()>>>,
    tid: u32,
}

impl Hang {
    fn start() -> Hang {
        let dir = std::env::temp_dir().join(format!("huatuo-agent-hang-{}", std::process::id()));
        std::fs::create_dir(&dir).expect("mount point");
        let exe = std::env::current_exe().expect("test binary");
        let mut server = Command::new("unshare")
            .args(["--mount", "--propagation", "private"])
            .arg(exe)
            .args([
                "--exact",
                "--ignored",
                "fuse_server_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(SERVER_ENV, &dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the FUSE server");
        let stdin = server.stdin.take();
        let stdout = server.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut hang = Hang {
            dir,
            server,
            stdin,
            lines,
            holder: None,
            blocked: None,
            tid: 0,
        };
        hang.expect("ready");
        // the mount, seen through the server's root (its mount namespace)
        let root = PathBuf::from(format!("/proc/{}/root", hang.server.id()))
            .join(hang.dir.strip_prefix("/").expect("absolute temp dir"));
        let held = root.join("held");
        hang.holder = Some(
            std::thread::Builder::new()
                .name("huatuo-hang-a".into())
                .spawn(move || std::fs::create_dir(held))
                .expect("spawn the holder"),
        );
        hang.expect("withheld");
        let (tid_tx, tid_rx) = mpsc::channel();
        let blocked = root.join("blocked");
        hang.blocked = Some(
            std::thread::Builder::new()
                .name(BLOCKED_COMM.into())
                .spawn(move || {
                    // /proc/thread-self -> "<pid>/task/<tid>"
                    let tid = std::fs::read_link("/proc/thread-self")
                        .ok()
                        .and_then(|l| l.file_name()?.to_str()?.parse::<u32>().ok());
                    let _ = tid_tx.send(tid.unwrap_or(0));
                    std::fs::create_dir(blocked)
                })
                .expect("spawn the blocked thread"),
        );
        hang.tid = tid_rx.recv_timeout(Duration::from_secs(5)).expect("tid");
        let state = wait_until(Duration::from_secs(10), || {
            (hang.state() == Some('D')).then_some(())
        });
        assert!(
            state.is_some(),
            "thread {} is in state {:?}, not D",
            hang.tid,
            hang.state()
        );
        hang
    }

    fn expect(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = vec![];
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if let Some(at) = line.find(fuse::MARK) {
                if line[at + fuse::MARK.len()..].starts_with(what) {
                    return;
                }
            }
            seen.push(line);
        }
        panic!("no `{what}` from the FUSE server; its output: {seen:#?}");
    }

    fn state(&self) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{}/stat", self.tid)).ok()?;
        stat.rsplit_once(')')?.1.trim_start().chars().next()
    }
}

impl Drop for Hang {
    fn drop(&mut self) {
        // EOF on the server's stdin: it exits, the connection is aborted, its namespace (and
        // the mount) goes away
        drop(self.stdin.take());
        let exited = wait_until(Duration::from_secs(3), || {
            self.server.try_wait().ok().flatten()
        });
        if exited.is_none() {
            let _ = self.server.kill();
            let _ = self.server.wait();
        }
        for handle in [self.holder.take(), self.blocked.take()]
            .into_iter()
            .flatten()
        {
            if wait_until(Duration::from_secs(10), || {
                handle.is_finished().then_some(())
            })
            .is_some()
            {
                let _ = handle.join();
            } else {
                eprintln!("a hang thread is still blocked");
            }
        }
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            eprintln!("remove {}: {e}", self.dir.display());
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The running agent and its scratch directory; killed and removed on drop.
struct Agent {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Agent {
    fn start(dir: PathBuf) -> Agent {
        std::fs::create_dir_all(dir.join("local")).expect("scratch dir");
        let config = format!(
            "[Storage.LocalFile]\n    Path = \"{}\"\n",
            dir.join("local").display()
        );
        std::fs::write(dir.join("huatuo-bamai.conf"), config).expect("config");
        let port = free_port();
        let log = std::fs::File::create(dir.join("agent.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_huatuo"))
            .current_dir(repo())
            .args(["run", "--rules", "rules/", "--stdlib", "stdlib", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--config")
            .arg(dir.join("huatuo-bamai.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the agent");
        Agent { child, dir, port }
    }

    fn status(&self) -> Option<Json> {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "GET /status HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        serde_json::from_str(text.split_once("\r\n\r\n")?.1).ok()
    }

    /// The `tracer_data` of every stored record of `tracer` (a `#` header line, then JSON).
    fn records(&self, tracer: &str) -> Vec<Json> {
        std::fs::read_to_string(self.dir.join("local").join(tracer))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str::<Json>(l).ok())
            .map(|doc| {
                assert_eq!(doc["tracer_name"], tracer, "{doc}");
                doc["tracer_data"].clone()
            })
            .collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether template `name` loaded with every required program attached.
fn template_attached(status: &Json, name: &str) -> bool {
    status["templates"].as_array().is_some_and(|ts| {
        ts.iter().any(|t| {
            t["name"] == name
                && t["loaded"] == true
                && t["programs"].as_array().is_some_and(|ps| {
                    ps.iter()
                        .filter(|p| p["required"] == true)
                        .all(|p| !p["attached"].is_null())
                })
        })
    })
}

#[test]
fn the_hungtask_rule_records_a_task_hung_in_d_state() {
    let name = "the_hungtask_rule_records_a_task_hung_in_d_state";
    if !enabled(name) {
        return;
    }
    let pid = std::process::id();
    let knobs = knobs::HungTaskKnobs::set(1).unwrap_or_else(|e| panic!("hung task knobs: {e}"));
    let saved = knobs.saved().to_vec();
    let agent = Agent::start(std::env::temp_dir().join(format!("huatuo-agent-hungtask-{pid}")));
    let status = wait_until(Duration::from_secs(60), || {
        agent.status().filter(|s| template_attached(s, "hungtask"))
    })
    .unwrap_or_else(|| {
        panic!(
            "hungtask never attached; status {:?}\nlog:\n{}",
            agent.status(),
            agent.log()
        )
    });
    let rules: Vec<&str> = status["rules"]
        .as_array()
        .map(|rs| rs.iter().filter_map(|r| r["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        rules.contains(&"hungtask"),
        "hungtask not loaded: {rules:?}"
    );

    let hang = Hang::start();
    let tid = hang.tid;
    let record = wait_until(Duration::from_secs(20), || {
        agent
            .records("hungtask")
            .into_iter()
            .find(|r| r["pid"] == pid)
    });
    let state_then = hang.state();
    drop(hang);
    drop(knobs);
    for (knob, value) in &saved {
        assert_eq!(
            knobs::read_sysctl(knob).as_deref(),
            Some(value.as_str()),
            "kernel.{knob} not restored"
        );
    }
    let record = record.unwrap_or_else(|| {
        panic!(
            "no hungtask record for pid {pid} (tid {tid}, state {state_then:?}): {:#?}\nlog:\n{}",
            agent.records("hungtask"),
            agent.log()
        )
    });
    println!("hungtask record: {record:#}");
    assert_eq!(record["comm"], BLOCKED_COMM, "{record:#}");
    let stack = record["stack"].to_string();
    assert!(
        stack.contains("filename_create") && stack.contains("mkdir"),
        "stack of the hung thread: {record:#}"
    );
    // The D-state capture lists every thread in D, the hung one with its own stack.
    let blocked = record["blocked_processes_stack"]
        .as_array()
        .unwrap_or_else(|| panic!("no blocked_processes_stack: {record:#}"));
    let listed = blocked
        .iter()
        .find(|t| t["tid"].as_i64() == Some(tid as i64))
        .unwrap_or_else(|| panic!("hung tid {tid} not in blocked_processes_stack: {record:#}"));
    assert_eq!(listed["comm"], BLOCKED_COMM, "{record:#}");
    assert!(
        listed["stack"].to_string().contains("filename_create"),
        "{record:#}"
    );
    assert!(record["cpus_stack"].is_array(), "no cpus_stack: {record:#}");
}
