//! End-to-end kernel test of the shipped `hungtask` rule: the real agent runs `rules/`, a
//! thread of this test is made to hang in TASK_UNINTERRUPTIBLE, kernel.hung_task_timeout_secs
//! is lowered to 1 s, and the record stored in `local/hungtask` must name that thread.
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
mod kernel_agent;
#[path = "../../../bpf-templates/tests/hang_util/knobs.rs"]
mod knobs;

use kernel_agent::*;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const SERVER_ENV: &str = "HUATUO_FUSE_SERVER_DIR";
const BLOCKED_COMM: &str = "huatuo-hung-b";

/// True when the test should run; prints why it is skipped otherwise.
fn enabled(test: &str) -> bool {
    kernel_tests_enabled(test, "root, BPF and FUSE") && knobs::hang_ready(test)
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
        knobs::task_state(self.tid)
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

#[test]
fn the_hungtask_rule_records_a_task_hung_in_d_state() {
    let name = "the_hungtask_rule_records_a_task_hung_in_d_state";
    if !enabled(name) {
        return;
    }
    let pid = std::process::id();
    let knobs = knobs::HungTaskKnobs::set(1).unwrap_or_else(|e| panic!("hung task knobs: {e}"));
    let agent = Agent::start(Setup {
        tag: "agent-hungtask",
        rules: "rules/",
        config: "",
        args: &[],
    });
    let status = agent.wait_attached(&["hungtask"]);
    let rules = rule_names(&status);
    assert!(
        rules.contains(&"hungtask"),
        "hungtask not loaded: {rules:?}"
    );

    let hang = Hang::start();
    let tid = hang.tid;
    let record = agent.wait_record("hungtask", Duration::from_secs(20), |r| r["pid"] == pid);
    let state_then = hang.state();
    drop(hang);
    knobs.restore();
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
    let listed = captured_tasks(&record, "blocked_processes_stack_tasks", "D")
        .iter()
        .find(|t| t["tid"].as_i64() == Some(tid as i64))
        .unwrap_or_else(|| panic!("hung tid {tid} not in the D tasks: {record:#}"));
    assert_eq!(listed["comm"], BLOCKED_COMM, "{record:#}");
    assert!(
        listed["stack"].to_string().contains("filename_create"),
        "{record:#}"
    );
    // HUATUO's text of the same tasks: the hung thread's header line and its frames.
    text_matches_tasks(
        &record,
        "blocked_processes_stack",
        "blocked_processes_stack_tasks",
    );
    let text = record["blocked_processes_stack"].as_str().unwrap_or("");
    assert!(
        text.contains(&format!("task:{BLOCKED_COMM}")) && text.contains("filename_create"),
        "{record:#}"
    );
    // The R-state capture: the running tasks (the capturing thread at least).
    captured_tasks(&record, "cpus_stack_tasks", "R");
    text_matches_tasks(&record, "cpus_stack", "cpus_stack_tasks");
}
