//! Kernel test of the hungtask template: a thread is made to hang in TASK_UNINTERRUPTIBLE
//! (on a FUSE directory's inode rwsem, see `hang_util`), kernel.hung_task_timeout_secs is
//! lowered to 1 s, and khungtaskd's sched_process_hang must reach user space with the
//! thread's pid, tid, comm and its own kernel stack. Everything (the hang, the mount, the
//! server process, the sysctls) is undone even when an assertion fails.
//!
//! `fuse_server_child` is the FUSE server, run as a child process of the test (inert unless
//! started by `HungTask::start`).

mod common;
mod events_util;
mod hang_util;

use common::kernel_ready;
use events_util::{int, text, wait_for};
use hang_util::{hang_ready, HungTask, HungTaskKnobs, BLOCKED_COMM};
use huatuo_bpf::schema::AttachKind;
use huatuo_bpf::Templates;
use huatuo_dsl::value::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The FUSE server of `HungTask` (a child process running this binary).
#[test]
#[ignore = "the FUSE server child of the hung-task tests, started by them with --ignored"]
fn fuse_server_child() {
    hang_util::serve_if_child();
}

#[test]
fn a_task_hung_in_d_state_is_reported_with_its_stack() {
    let name = "a_task_hung_in_d_state_is_reported_with_its_stack";
    if !kernel_ready(name) || !hang_ready(name) {
        return;
    }
    let knobs = HungTaskKnobs::set(1).unwrap_or_else(|e| panic!("hung task knobs: {e}"));

    let mut templates = Templates::load(&["hungtask"], &BTreeMap::new());
    let status = templates.status();
    assert!(status[0].loaded, "hungtask did not load: {status:#?}");
    let variant = status[0].programs[0].attached_variant().map(|v| v.kind);
    assert_eq!(variant, Some(AttachKind::TpBtf), "{status:#?}");
    let mut rx = templates.take_events().expect("event stream");

    let hang = HungTask::start("fuse_server_child").unwrap_or_else(|e| panic!("no hang: {e}"));
    let (pid, tid) = (hang.pid() as i64, hang.tid() as i64);
    assert_eq!(hang.state(), Some('D'));
    assert_eq!(hang.proc_file("comm"), BLOCKED_COMM);
    let proc_stack = hang.proc_file("stack");
    let blocked_at = Instant::now();

    // timeout 1 s: khungtaskd notices the thread on its next check and reports it one check later
    let (event, seen) = wait_for(&mut rx, Duration::from_secs(15), |s| {
        int(s, "tid") == Some(tid)
    });
    let waited = blocked_at.elapsed();
    let event = event.unwrap_or_else(|| {
        panic!(
            "no hung task event for tid {tid} in 15 s (state now {:?}); saw {seen:#?}\n\
             /proc stack:\n{proc_stack}\nserver: {:#?}",
            hang.state(),
            hang.server_log()
        )
    });
    println!("hung task event after {waited:?}: {event:#?}\n/proc stack:\n{proc_stack}");
    // the event is for the blocked thread, still blocked
    assert_eq!(hang.state(), Some('D'));
    // a little longer: khungtaskd reports again at every check while it stays blocked
    let (again, _) = wait_for(&mut rx, Duration::from_secs(5), |s| {
        int(s, "tid") == Some(tid)
    });
    let status = templates.status();
    let server = hang.server_log();
    println!("FUSE server: {server:#?}");

    // released and cleaned up before asserting on the event
    let problems = hang.finish();
    assert!(problems.is_empty(), "clean-up: {problems:#?}");
    knobs.restore();

    assert_eq!(event.source, "bpf.hungtask");
    assert_eq!(int(&event, "pid"), Some(pid), "{event:#?}");
    assert_eq!(int(&event, "tid"), Some(tid), "{event:#?}");
    assert_eq!(text(&event, "comm"), Some(BLOCKED_COMM), "{event:#?}");
    let frames: Vec<&str> = match event.fields.get("stack") {
        Some(Value::List(frames)) => frames.iter().filter_map(Value::as_str).collect(),
        other => panic!("stack: {other:?}"),
    };
    let stack = frames.join("\n");
    assert!(!frames.is_empty(), "empty stack: {event:#?}");
    // Where it waits: stack_trace_save_tsk (behind bpf_get_task_stack and /proc/<tid>/stack)
    // leaves out the scheduler and locking functions (__sched: rwsem_down_write_slowpath,
    // down_write_nested), so the top frame is the VFS function taking the parent directory's
    // inode lock for mkdir (filename_create), under the mkdir system call.
    let lock_taker = |f: &str| {
        ["filename_create", "inode_lock", "down_write", "rwsem"]
            .iter()
            .any(|name| f.contains(name))
    };
    assert!(
        lock_taker(frames[0]),
        "the stack does not start where the inode lock is taken:\n{stack}\n/proc stack:\n{proc_stack}"
    );
    assert!(
        frames.iter().any(|f| f.contains("mkdir")),
        "no mkdir frame in the stack:\n{stack}\n/proc stack:\n{proc_stack}"
    );
    // the same frames as the kernel's own view of the thread (the template keeps 32), where
    // /proc/<tid>/stack is readable (CONFIG_STACKTRACE)
    let symbol = |f: &str| f.split('+').next().unwrap_or_default().to_string();
    let theirs: Vec<String> = proc_stack
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(symbol))
        .take(32)
        .collect();
    let ours: Vec<String> = frames.iter().map(|f| symbol(f)).collect();
    assert!(
        theirs.is_empty() || ours == theirs,
        "the event's stack differs from /proc/{pid}/task/{tid}/stack:\n{stack}\n/proc stack:\n{proc_stack}"
    );
    assert!(
        again.is_some(),
        "reported once only in 5 s at a 1 s timeout (server: {server:#?})"
    );
    // only the blocked thread: the lock holder sleeps interruptibly, not in D state
    assert!(
        !seen.iter().any(|s| int(s, "pid") == Some(pid)),
        "events of other threads of the test: {seen:#?}"
    );

    let counters = status[0].counters;
    assert!(counters.emitted >= 1, "{counters:?}");
    assert_eq!(counters.lost, 0, "{counters:?}");
    assert_eq!(counters.decode_errors, 0, "{counters:?}");
    assert!(counters.received >= 1, "{counters:?}");
}
