//! Measures the in-kernel cost (ns per run, from `kernel.bpf_stats_enabled=1` run_time_ns /
//! run_cnt) of the waitrate template's sched_switch program next to an empty program on the
//! same hook, under `perf bench sched messaging`, in interleaved rounds. The target cgroup (a
//! cpu cgroup v1 made here) holds a busy loop, so it has runnable tasks waiting while the
//! messaging processes run: the template's full path (queue check, map update) is exercised.
//! Run as root: `cargo run --release -p huatuo-bench --bin bpf_cost_waitrate -- [rounds]`.

use aya::programs::BtfTracePoint;
use aya::{Btf, EbpfLoader};
use huatuo_bench::bpf_stats;
use huatuo_bench::empty_program::{EMPTY, EMPTY_PROG};
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command};

const CPU_ROOT: &str = "/sys/fs/cgroup/cpu";

/// The fixed load: 10 groups of 40 processes exchanging 300 messages each over sockets.
fn messaging() {
    let status = Command::new("perf")
        .args(["bench", "sched", "messaging", "-g", "10", "-l", "300"])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("perf bench");
    assert!(status.success(), "perf bench sched messaging failed");
}

/// Loads `object`, attaches its tp_btf program `prog` on sched_switch, runs the load and
/// returns (runs, ns) of the program.
fn round(object: &[u8], prog: &str, cgroup_id: Option<&u64>, btf: &Btf) -> (u64, u64) {
    let mut loader = EbpfLoader::new();
    if let Some(id) = cgroup_id {
        loader.override_global("cgroup_id", id, true);
    }
    let mut ebpf = loader.load(object).expect("load object");
    let program: &mut BtfTracePoint = ebpf
        .program_mut(prog)
        .expect("program")
        .try_into()
        .expect("tp_btf");
    program.load("sched_switch", btf).expect("load program");
    program.attach().expect("attach");
    messaging();
    let info = program.info().expect("program info");
    (info.run_count(), info.run_time().as_nanos() as u64)
}

/// A busy loop in a fresh cpu cgroup; killed and the cgroup removed on drop.
struct Target {
    dir: std::path::PathBuf,
    busy: Child,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.busy.kill();
        let _ = self.busy.wait();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let btf = Btf::from_sys_fs().expect("kernel BTF");
    let waitrate = huatuo_bpf::embedded::find("waitrate").expect("waitrate template");
    let dir = std::path::PathBuf::from(CPU_ROOT)
        .join(format!("huatuo-waitrate-bench-{}", std::process::id()));
    std::fs::create_dir(&dir).expect("make the cpu cgroup (root, cgroup v1 cpu controller)");
    let busy = Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .spawn()
        .expect("busy loop");
    let target = Target { dir, busy };
    std::fs::write(
        target.dir.join("cgroup.procs"),
        target.busy.id().to_string(),
    )
    .expect("move the busy loop into the cgroup");
    let cgroup_id = std::fs::metadata(&target.dir).expect("stat cgroup").ino();
    let stats = bpf_stats::enable().expect("BPF run statistics");
    println!("| round | waitrate ns/run (runs) | empty ns/run (runs) | × empty |");
    println!("|---|---|---|---|");
    for r in 1..=rounds {
        let (wc, wt) = round(
            waitrate.object,
            "tp_btf_sched_switch",
            Some(&cgroup_id),
            &btf,
        );
        let (ec, et) = round(EMPTY, EMPTY_PROG, None, &btf);
        let w = wt as f64 / wc.max(1) as f64;
        let e = et as f64 / ec.max(1) as f64;
        println!("| {r} | {w:.0} ({wc}) | {e:.0} ({ec}) | {:.2} |", w / e);
    }
    drop(stats);
    drop(target);
}
