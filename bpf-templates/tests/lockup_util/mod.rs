//! A real soft lockup, made on purpose and bounded, for the kernel tests of the `softlockup`
//! event (`tests/kernel_softlockup.rs`, and `engine/agent/tests/events_softlockup.rs`, which
//! includes this file with `#[path]`: only `std` and `aya`, no `libc`).
//!
//! How: `kernel.watchdog_thresh` is lowered to 1 s, so the soft lockup detector reports a CPU
//! whose per-CPU watchdog (stopper) thread has not run for more than 2 × 1 s; its hrtimer
//! checks every 2 × thresh / 5 = 0.4 s. Then `tests/bpf/softlockup.bpf.c` is run once by
//! `BPF_PROG_TEST_RUN` from a thread named [`STALL_COMM`]: the kernel's raw_tp test-run
//! handler calls it between get_cpu() and put_cpu(), so the CPU spins for [`STALL`] (5 s) with
//! preemption off and interrupts on. The watchdog thread cannot run there, the hrtimer
//! still fires and prints `watchdog: BUG: soft lockup - CPU#N stuck for Ms! [comm:pid]`
//! naming this thread. Nothing is attached: only that one call runs the program.
//!
//! Bounds, so that the machine never hangs: the stall ends at a deadline (the program caps
//! it at 6 s whatever it is given; a kill takes effect only when it has ended), each
//! [`trigger`] stalls exactly once, and the threshold
//! is restored by a guard ([`WatchdogThresh`]) right after the stall. The original value is
//! kept in a state file until then, under a cross-process lock that also keeps two tests
//! from lowering it at once; if the test is killed, a sentinel process waiting for that lock
//! restores it as soon as the kernel drops the dead test's lock (else the next test does). A
//! test refuses to run ([`lockup_ready`]) where a soft lockup (or a warning, or an RCU stall)
//! would panic the machine.
//!
//! A soft lockup taints the kernel (`TAINT_SOFTLOCKUP`, `L` in /proc/sys/kernel/tainted,
//! until reboot); that is accepted.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[path = "../sysctl_util/mod.rs"]
mod sysctl_util;
pub use sysctl_util::{read_sysctl, write_sysctl};

/// The name of the thread that stalls: the task the kernel's lockup line names.
pub const STALL_COMM: &str = "huatuo-lockup";

/// `kernel.watchdog_thresh` during the stall: lockups of more than 2 s are reported.
pub const THRESH_SECS: u64 = 1;

/// How long the CPU is held. The detector reads time in whole units of 2^30 ns and reports,
/// at an hrtimer tick (every 0.4 s), once the unit count is more than 2 (2 × thresh) past
/// the one its thread last ran in; that thread last ran up to 0.4 s before the stall. So a
/// report comes about 2.1 to 3.6 s into the stall (measured here: 2.7 to 3.5 s, `stuck for
/// 3s` or `4s`); 3 s would miss some, 5 s leaves margin.
pub const STALL: Duration = Duration::from_secs(5);

/// How long the lockup line may take to be readable from /dev/kmsg after the stall began.
pub const KMSG_WAIT: Duration = Duration::from_secs(15);

/// The CPUs of a cpulist (`0-3,5`).
fn cpu_list(text: &str) -> Option<Vec<u32>> {
    let mut cpus = vec![];
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<u32>().ok()?..=b.parse::<u32>().ok()?),
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

/// Why a soft lockup cannot be made safely, or would not be seen, with these kernel sysctls
/// (`sysctl("softlockup_panic")`, `None` when absent) and online CPUs (a cpulist).
pub fn lockup_refusal(sysctl: impl Fn(&str) -> Option<String>, online: &str) -> Option<String> {
    let zero = |name: &str| -> Option<String> {
        match sysctl(name) {
            Some(v) if v == "0" => None,
            other => Some(format!("kernel.{name} is {other:?}, not 0")),
        }
    };
    if sysctl("watchdog_thresh").is_none() {
        return Some("no soft lockup detector (CONFIG_SOFTLOCKUP_DETECTOR)".into());
    }
    for knob in ["watchdog", "soft_watchdog"] {
        if sysctl(knob).as_deref() != Some("1") {
            return Some(format!(
                "the soft lockup detector is off: kernel.{knob} is {:?}",
                sysctl(knob)
            ));
        }
    }
    // the lockup itself would panic the machine
    if let Some(why) = zero("softlockup_panic") {
        return Some(why);
    }
    // no warning is expected, but one during the stall would panic the machine
    if let Some(why) = zero("panic_on_warn") {
        return Some(why);
    }
    // the stall is far below the RCU stall timeout, but do not bet the machine on it
    if sysctl("panic_on_rcu_stall").is_some() {
        if let Some(why) = zero("panic_on_rcu_stall") {
            return Some(why);
        }
    }
    let mask = sysctl("watchdog_cpumask").unwrap_or_default();
    match (cpu_list(online), cpu_list(&mask)) {
        (Some(cpus), Some(mask)) if cpus.iter().all(|c| mask.contains(c)) => None,
        _ => Some(format!(
            "kernel.watchdog_cpumask {mask:?} does not cover the online CPUs {:?}",
            online.trim()
        )),
    }
}

/// Why a soft lockup cannot be made safely (or seen) here, if it cannot.
fn not_ready() -> Option<String> {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    if let Some(why) = lockup_refusal(read_sysctl, &online) {
        return Some(why);
    }
    Kmsg::open_at_end()
        .err()
        .map(|e| format!("cannot read /dev/kmsg: {e}"))
}

/// True when a soft lockup test can run here: the detector is on for every CPU, and neither
/// the lockup, a warning nor an RCU stall would panic the machine. Prints why not otherwise;
/// under `CI=true` that is a failure, not a skip. (Root is the caller's gate.)
pub fn lockup_ready(test: &str) -> bool {
    let Some(why) = not_ready() else { return true };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: refusing to make a soft lockup under CI=true: {why}");
    }
    eprintln!("SKIP {test}: {why}");
    false
}

/// `<temp>/huatuo-softlockup.lock`: held (flock) by the test process that has the threshold
/// lowered. The kernel drops it when that process dies.
const LOCK_FILE: &str = "huatuo-softlockup.lock";
/// `<temp>/huatuo-watchdog-thresh.saved`: the value to restore, while the lock's holder has
/// the threshold lowered. Found by the next lock holder, it is a dead process's: restored.
const STATE_FILE: &str = "huatuo-watchdog-thresh.saved";

/// Run as `flock <lock> sh -c RESTORE sh <state>` by the sentinel: once it has the lock, a
/// state file left means its writer died with the threshold lowered.
const RESTORE: &str = "if [ -f \"$1\" ]; then v=$(cat \"$1\") && \
    echo \"$v\" > /proc/sys/kernel/watchdog_thresh && rm -f \"$1\"; fi";

/// `kernel.watchdog_thresh` lowered for a stall and restored on drop. Writing it restarts the
/// detector's hrtimers with the new period at once.
pub struct WatchdogThresh {
    saved: String,
    state: PathBuf,
    lock: Option<File>,
    /// `flock(1)` waiting for the lock, to restore the value if this process dies holding it
    /// (in a process group of its own: a Ctrl-C of the test does not reach it).
    sentinel: Option<std::process::Child>,
}

impl WatchdogThresh {
    /// Takes the lock (waiting up to 2 minutes for another test process), restores what a
    /// killed test left, and sets the threshold to `secs`.
    pub fn set(secs: u64) -> Result<WatchdogThresh, String> {
        let lock_path = std::env::temp_dir().join(LOCK_FILE);
        let lock =
            File::create(&lock_path).map_err(|e| format!("create {}: {e}", lock_path.display()))?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => return Err(format!("lock {}: {e}", lock_path.display())),
            }
        }
        let state = std::env::temp_dir().join(STATE_FILE);
        if let Ok(left) = std::fs::read_to_string(&state) {
            let left = left.trim();
            if left.parse::<u64>().is_ok() {
                write_sysctl("watchdog_thresh", left)?;
                eprintln!(
                    "lockup_util: restored kernel.watchdog_thresh = {left} left by a killed test"
                );
            }
            let _ = std::fs::remove_file(&state);
        }
        let saved = read_sysctl("watchdog_thresh").ok_or("cannot read kernel.watchdog_thresh")?;
        std::fs::write(&state, format!("{saved}\n"))
            .map_err(|e| format!("write {}: {e}", state.display()))?;
        // started once the lock is ours, else it would take it first
        let sentinel = {
            use std::os::unix::process::CommandExt;
            std::process::Command::new("flock")
                .arg(&lock_path)
                .args(["sh", "-c", RESTORE, "sh"])
                .arg(&state)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .process_group(0)
                .spawn()
                .map_err(|e| {
                    eprintln!(
                        "lockup_util: no flock(1) sentinel ({e}): a killed test's value is \
                         restored by the next test"
                    )
                })
                .ok()
        };
        let guard = WatchdogThresh {
            saved,
            state,
            lock: Some(lock),
            sentinel,
        };
        write_sysctl("watchdog_thresh", &secs.to_string())?;
        Ok(guard)
    }

    /// The value restored on drop.
    pub fn saved(&self) -> &str {
        &self.saved
    }
}

impl Drop for WatchdogThresh {
    fn drop(&mut self) {
        match write_sysctl("watchdog_thresh", &self.saved) {
            Ok(()) => {
                let _ = std::fs::remove_file(&self.state);
            }
            Err(e) => eprintln!("lockup_util: could not restore kernel.watchdog_thresh: {e}"),
        }
        // released once the state file is gone (or, if restoring failed, left for the
        // sentinel); the sentinel then takes the lock and exits
        drop(self.lock.take());
        if let Some(mut sentinel) = self.sentinel.take() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while sentinel.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    // another test took the lock first and holds it for seconds: reap later
                    std::thread::spawn(move || sentinel.wait());
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// `/dev/kmsg` opened non-blocking at its end: only records logged from then on are read.
pub struct Kmsg(File);

/// One record: `prio,seq,ts,flags;message`.
#[derive(Debug, Clone)]
pub struct KmsgRecord {
    /// Time of the record since boot (the printk clock), µs.
    pub usec: u64,
    /// The text after `;`.
    pub message: String,
}

impl Kmsg {
    /// Opens `/dev/kmsg` with O_NONBLOCK and seeks past the last record.
    pub fn open_at_end() -> std::io::Result<Kmsg> {
        use std::os::unix::fs::OpenOptionsExt;
        const O_NONBLOCK: i32 = 0o4000; // Linux, every architecture this builds for
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(O_NONBLOCK)
            .open("/dev/kmsg")?;
        file.seek(SeekFrom::End(0))?;
        Ok(Kmsg(file))
    }

    /// The records logged since the last call (one per read; EPIPE, records overwritten
    /// before they were read, is skipped).
    pub fn read_new(&mut self) -> Vec<KmsgRecord> {
        let mut out = vec![];
        let mut buf = vec![0u8; 8192];
        loop {
            match self.0.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let text = String::from_utf8_lossy(&buf[..n]);
                    let first = text.lines().next().unwrap_or_default();
                    if let Some((prefix, message)) = first.split_once(';') {
                        let usec = prefix.split(',').nth(2).and_then(|t| t.parse().ok());
                        out.push(KmsgRecord {
                            usec: usec.unwrap_or(0),
                            message: message.to_string(),
                        });
                    }
                }
                Err(e) if e.raw_os_error() == Some(32) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break, // EAGAIN: nothing more now
            }
        }
        out
    }
}

/// A parsed `soft lockup - CPU#N stuck for Ms! [comm:pid]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockupLine {
    pub cpu: u32,
    pub stuck_secs: u64,
    pub comm: String,
    pub pid: u32,
    /// The whole message (`watchdog: BUG: soft lockup - ...`).
    pub message: String,
}

/// Parses a kernel lockup message; `None` for any other line.
pub fn parse_lockup(message: &str) -> Option<LockupLine> {
    let rest = &message[message.find("soft lockup - CPU#")? + "soft lockup - CPU#".len()..];
    let (cpu, rest) = rest.split_once(" stuck for ")?;
    let (secs, rest) = rest.split_once("s! [")?;
    let task = &rest[..rest.rfind(']')?];
    let (comm, pid) = task.rsplit_once(':')?;
    Some(LockupLine {
        cpu: cpu.parse().ok()?,
        stuck_secs: secs.parse().ok()?,
        comm: comm.to_string(),
        pid: pid.parse().ok()?,
        message: message.to_string(),
    })
}

/// What the program wrote after its run (`struct stall_result`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct StallResult {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) at the start and the end of the stall.
    pub start_ns: u64,
    pub end_ns: u64,
    /// Clock reads made while spinning (one per inner bpf_loop iteration).
    pub iterations: u64,
    /// The CPU it ran on.
    pub cpu: u32,
    /// Runs so far of this loaded program.
    pub runs: u32,
}

// SAFETY: plain old data, C layout, no padding (3 × u64 + 2 × u32).
unsafe impl aya::Pod for StallResult {}

impl StallResult {
    /// How long the CPU was held.
    pub fn held(&self) -> Duration {
        Duration::from_nanos(self.end_ns.saturating_sub(self.start_ns))
    }

    /// Nanoseconds per spin iteration.
    pub fn ns_per_iteration(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns) as f64 / self.iterations.max(1) as f64
    }
}

/// The loaded stall program (never attached); unloaded on drop.
pub struct StallProgram {
    ebpf: aya::Ebpf,
}

/// The program's name in the object.
const PROGRAM: &str = "huatuo_lockup";

impl StallProgram {
    /// Loads `test_softlockup.bpf.o` (the verifier checks the loops here).
    pub fn load(object: &[u8]) -> Result<StallProgram, String> {
        let mut ebpf = aya::Ebpf::load(object).map_err(|e| format!("load object: {e}"))?;
        let prog: &mut aya::programs::RawTracePoint = ebpf
            .program_mut(PROGRAM)
            .ok_or("no huatuo_lockup program")?
            .try_into()
            .map_err(|e| format!("not a raw_tp program: {e}"))?;
        prog.load().map_err(|e| format!("load {PROGRAM}: {e:?}"))?;
        Ok(StallProgram { ebpf })
    }

    /// Runs the program once for `stall` in a new thread named [`STALL_COMM`]; returns that
    /// thread's id and what the program wrote.
    pub fn run(&self, stall: Duration) -> Result<(u32, StallResult), String> {
        use aya::programs::{RawTracePoint, RawTracePointRunOptions, TestRun};
        let prog: &RawTracePoint = self
            .ebpf
            .program(PROGRAM)
            .ok_or("no huatuo_lockup program")?
            .try_into()
            .map_err(|e| format!("not a raw_tp program: {e}"))?;
        let mut opts = RawTracePointRunOptions::new();
        opts.args[0] = stall.as_nanos() as u64;
        // no cpu: BPF_F_TEST_RUN_ON_CPU for another CPU would run it in an IPI, interrupts off
        let (tid, ret) = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name(STALL_COMM.into())
                .spawn_scoped(scope, move || {
                    let tid = std::fs::read_link("/proc/thread-self")
                        .ok()
                        .and_then(|l| l.file_name()?.to_str()?.parse::<u32>().ok())
                        .unwrap_or(0);
                    (tid, prog.test_run(opts))
                })
                .expect("spawn the stall thread")
                .join()
                .expect("the stall thread panicked")
        });
        let ret = ret.map_err(|e| format!("BPF_PROG_TEST_RUN: {e:?}"))?;
        if ret.return_value != 0 {
            return Err(format!("the program returned {}", ret.return_value));
        }
        let map = self.ebpf.map("stall_result").ok_or("no stall_result map")?;
        let array = aya::maps::Array::<&aya::maps::MapData, StallResult>::try_from(map)
            .map_err(|e| format!("stall_result: {e}"))?;
        let result = array
            .get(&0, 0)
            .map_err(|e| format!("read stall_result: {e}"))?;
        Ok((tid, result))
    }
}

/// A soft lockup made by [`trigger`].
#[derive(Debug)]
pub struct Triggered {
    /// The stalled thread.
    pub tid: u32,
    pub result: StallResult,
    /// The kernel's line naming that thread, if it came within [`KMSG_WAIT`].
    pub line: Option<LockupLine>,
    /// Its record's time minus the stall's start (printk clock against CLOCK_MONOTONIC, both
    /// since boot).
    pub line_after: Option<Duration>,
    /// How long after the stall ended the line was read.
    pub read_after_end: Option<Duration>,
    /// Every record logged meanwhile.
    pub records: Vec<KmsgRecord>,
    /// The threshold before and after (restored).
    pub thresh_before: String,
    pub thresh_after: Option<String>,
}

impl Triggered {
    /// One line on the stall, the kernel's line and the threshold, for the test's output.
    pub fn summary(&self) -> String {
        format!(
            "stall: thread {} on CPU {} held {:?} ({} clock reads, {:.1} ns each); kernel line \
             {:?} logged {:?} after the stall began, read {:?} after it ended; \
             watchdog_thresh {} -> {:?}",
            self.tid,
            self.result.cpu,
            self.result.held(),
            self.result.iterations,
            self.result.ns_per_iteration(),
            self.line.as_ref().map(|l| &l.message),
            self.line_after,
            self.read_after_end,
            self.thresh_before,
            self.thresh_after,
        )
    }

    /// The kernel's line, asserted to have come and to name the stalled CPU and thread, once
    /// the threshold is asserted restored.
    pub fn checked_line(&self) -> &LockupLine {
        assert_eq!(
            self.thresh_after.as_deref(),
            Some(self.thresh_before.as_str()),
            "kernel.watchdog_thresh not restored"
        );
        let line = self.line.as_ref().unwrap_or_else(|| {
            panic!(
                "no soft lockup line for thread {} (CPU {}) within {KMSG_WAIT:?}; logged \
                 meanwhile: {:#?}",
                self.tid,
                self.result.cpu,
                self.records.iter().map(|r| &r.message).collect::<Vec<_>>()
            )
        });
        assert_eq!(
            (line.cpu, line.pid, line.comm.as_str()),
            (self.result.cpu, self.tid, STALL_COMM),
            "{line:?}"
        );
        line
    }
}

/// Lowers the threshold, stalls one CPU once for [`STALL`], restores the threshold and reads
/// /dev/kmsg (from its end before the stall) for the line naming the stalled thread.
pub fn trigger(program: &StallProgram) -> Result<Triggered, String> {
    let mut kmsg = Kmsg::open_at_end().map_err(|e| format!("open /dev/kmsg: {e}"))?;
    let thresh = WatchdogThresh::set(THRESH_SECS)?;
    let thresh_before = thresh.saved().to_string();
    // the restarted hrtimers run with the new period; let the watchdog threads touch once
    std::thread::sleep(Duration::from_millis(500));
    let began = Instant::now();
    let run = program.run(STALL);
    let ended = Instant::now();
    drop(thresh);
    let thresh_after = read_sysctl("watchdog_thresh");
    let (tid, result) = run?;
    let mut records = vec![];
    let mut line = None;
    let mut read_after_end = None;
    while began.elapsed() < KMSG_WAIT {
        for record in kmsg.read_new() {
            if line.is_none() {
                line = parse_lockup(&record.message).filter(|l| l.pid == tid);
                if line.is_some() {
                    read_after_end = Some(ended.elapsed());
                }
            }
            records.push(record);
        }
        if line.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let line_after = records
        .iter()
        .find(|r| line.as_ref().is_some_and(|l| l.message == r.message))
        .map(|r| Duration::from_nanos((r.usec * 1000).saturating_sub(result.start_ns)));
    Ok(Triggered {
        tid,
        result,
        line,
        line_after,
        read_after_end,
        records,
        thresh_before,
        thresh_after,
    })
}
