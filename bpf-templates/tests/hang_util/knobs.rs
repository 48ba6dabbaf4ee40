//! The hung-task detector's knobs, set for a test and restored on drop, the check that a hang
//! test may run on this machine, and the /proc reads about the tasks involved. Only `std`:
//! shared with the agent's kernel tests (`engine/agent/tests/events_hungtask.rs` includes this
//! file with `#[path]`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

#[path = "../sysctl_util/mod.rs"]
mod sysctl_util;
pub use sysctl_util::{read_sysctl, write_sysctl, SYSCTL};

/// True when a hang test can run here: the hung task detector exists and cannot panic the
/// machine, and FUSE is available. Prints why not otherwise; under `CI=true` a missing
/// prerequisite is a failure, not a skip. (Root and BTF are `common::kernel_ready`'s.)
pub fn hang_ready(test: &str) -> bool {
    let why = if !Path::new(SYSCTL).join("hung_task_timeout_secs").exists() {
        Some("no hung task detector (CONFIG_DETECT_HUNG_TASK)".to_string())
    } else if read_sysctl("hung_task_panic").as_deref() != Some("0") {
        // a hung task would panic this machine
        Some(format!(
            "kernel.hung_task_panic is {:?}, not 0",
            read_sysctl("hung_task_panic")
        ))
    } else if !Path::new("/dev/fuse").exists() {
        Some("no /dev/fuse".to_string())
    } else {
        None
    };
    let Some(why) = why else { return true };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: cannot run the hung task test under CI=true: {why}");
    }
    eprintln!("SKIP {test}: {why}");
    false
}

/// Serializes the users of the knobs within one test process.
static KNOBS: Mutex<()> = Mutex::new(());

/// The knobs a test changes.
const KNOB_NAMES: [&str; 2] = ["hung_task_warnings", "hung_task_timeout_secs"];

/// `<temp>/huatuo-hung-task-knobs.<pid>`: the values to restore, `name=value` lines, while the
/// test process `pid` has the knobs changed. A test killed before its guard ran leaves it; the
/// next guard restores the values from it.
const STATE_PREFIX: &str = "huatuo-hung-task-knobs.";

/// Whether process `pid` exists.
pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The state letter (`D`, `S`, ...) of thread `tid` of this process: the field after the
/// `(comm)` of /proc/self/task/<tid>/stat.
pub fn task_state(tid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// `kernel.hung_task_timeout_secs` lowered for a test and `kernel.hung_task_warnings` set to 0
/// (khungtaskd raises sched_process_hang before it looks at the warning budget, so the
/// tracepoint fires without a kernel log splat per check and without using up the host's
/// warnings). `hung_task_check_interval_secs` is not touched: khungtaskd checks every
/// min(interval or timeout, timeout) seconds. The previous values are restored on drop, and
/// recorded in a state file until then, so that the values a killed test left are restored by
/// the next one.
pub struct HungTaskKnobs {
    saved: Vec<(&'static str, String)>,
    state: PathBuf,
    _lock: MutexGuard<'static, ()>,
}

impl HungTaskKnobs {
    /// Sets the timeout to `timeout_secs` (writing it also wakes khungtaskd, so the new period
    /// applies at once) and the warnings to 0.
    pub fn set(timeout_secs: u64) -> Result<HungTaskKnobs, String> {
        let lock = KNOBS.lock().unwrap_or_else(|e| e.into_inner());
        // the originals, if another live test process has the knobs changed right now
        let live = recover_stale_knobs();
        let mut knobs = HungTaskKnobs {
            saved: vec![],
            state: std::env::temp_dir().join(format!("{STATE_PREFIX}{}", std::process::id())),
            _lock: lock,
        };
        for name in KNOB_NAMES {
            let current = read_sysctl(name).ok_or_else(|| format!("cannot read kernel.{name}"))?;
            let original = live
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(current, |(_, v)| v.clone());
            knobs.saved.push((name, original));
        }
        let record: String = knobs
            .saved
            .iter()
            .map(|(n, v)| format!("{n}={v}\n"))
            .collect();
        std::fs::write(&knobs.state, record)
            .map_err(|e| format!("write {}: {e}", knobs.state.display()))?;
        write_sysctl("hung_task_warnings", "0")?;
        write_sysctl("hung_task_timeout_secs", &timeout_secs.to_string())?;
        Ok(knobs)
    }

    /// Restores the knobs now, as on drop, and asserts that each reads back as it was.
    pub fn restore(self) {
        let saved = self.saved.clone();
        drop(self);
        for (knob, value) in &saved {
            assert_eq!(
                read_sysctl(knob).as_deref(),
                Some(value.as_str()),
                "kernel.{knob} not restored"
            );
        }
    }
}

impl Drop for HungTaskKnobs {
    fn drop(&mut self) {
        let mut restored = true;
        for (name, value) in self.saved.iter().rev() {
            if let Err(e) = write_sysctl(name, value) {
                eprintln!("hang_util: could not restore kernel.{name}: {e}");
                restored = false;
            }
        }
        if restored {
            let _ = std::fs::remove_file(&self.state);
        }
    }
}

/// Restores the knobs recorded by test processes that died with them changed, and removes
/// their records. Returns the originals recorded by a live one, if any.
fn recover_stale_knobs() -> Vec<(&'static str, String)> {
    let mut live = vec![];
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return live;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(STATE_PREFIX)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let values: Vec<(&'static str, String)> = std::fs::read_to_string(entry.path())
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let (n, v) = line.split_once('=')?;
                let known = KNOB_NAMES.into_iter().find(|k| *k == n)?;
                v.parse::<i64>().ok().map(|_| (known, v.to_string()))
            })
            .collect();
        // this process holds KNOBS: a record under its own pid is a dead process's
        if pid != std::process::id() && pid_alive(pid) {
            if live.is_empty() {
                live = values;
            }
            continue;
        }
        for (n, v) in &values {
            match write_sysctl(n, v) {
                Ok(()) => eprintln!("hang_util: restored kernel.{n} = {v} left by test {pid}"),
                Err(e) => eprintln!("hang_util: {e}"),
            }
        }
        let _ = std::fs::remove_file(entry.path());
    }
    live
}
