//! Measures the in-kernel cost (ns per run, from `kernel.bpf_stats_enabled=1` run_time_ns /
//! run_cnt) of runqlat's sched_switch program under `perf bench sched messaging -g 10 -l 500`
//! run inside a cpu cgroup made here (so its switches write per-container histograms), with an
//! empty tp_btf program attached on sched_switch next to it in the same round as the
//! reference. Each round loads runqlat once per configuration named on the command line:
//! `cgroup` (per-container histograms, the shipped rule's scope), `root` (the same, the load
//! in the root cgroup like a host's own tasks: no container to count), `host`
//! (`per_cgroup = 0`), or a number written to `per_cgroup` as it is (for experimental builds
//! of the template). `HUATUO_EMPTY_LAST=1` attaches the empty program after runqlat instead
//! of before (the first program on a hook takes the cache misses of calling any).
//! Run as root: `cargo run --release -p huatuo-bench --bin bpf_cost_runqlat_messaging --
//! [rounds] [configurations...]`.

use aya::Btf;
use huatuo_bench::{bpf_stats, empty_program, runqlat_cost};
use huatuo_bpf::{LoadOptions, Templates};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const CPU_ROOT: &str = "/sys/fs/cgroup/cpu";

/// The fixed load, its processes in `cgroup`: 10 groups of 40 processes, 500 messages each.
fn messaging(cgroup: &Path) {
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec perf bench sched messaging -g 10 -l 500",
        cgroup.display()
    );
    let status = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .status()
        .expect("perf bench");
    assert!(status.success(), "perf bench sched messaging failed");
}

/// A cpu cgroup made for the run; removed on drop.
struct Cgroup(PathBuf);

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// One round of configuration `per_cgroup`: runqlat and the empty program attached together,
/// the load run; (runqlat runs, runqlat ns, empty runs, empty ns).
fn round(per_cgroup: u64, cgroup: &Path, btf: &Btf) -> (u64, u64, u64, u64) {
    let empty_last = std::env::var("HUATUO_EMPTY_LAST").is_ok_and(|v| v == "1");
    let empty_first = (!empty_last).then(|| empty_program::empty_on_sched_switch(btf));
    let tunables = BTreeMap::from([(
        "runqlat".to_string(),
        BTreeMap::from([("per_cgroup".to_string(), per_cgroup)]),
    )]);
    let templates = Templates::load_with(&["runqlat"], &tunables, LoadOptions::default());
    let empty = empty_first.unwrap_or_else(|| empty_program::empty_on_sched_switch(btf));
    messaging(cgroup);
    let (empty_runs, empty_ns) = empty_program::empty_cost(&empty).expect("empty program cost");
    let (runs, ns) = runqlat_cost::sched_switch_cost(&templates);
    (runs, ns, empty_runs, empty_ns)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let mut configs: Vec<String> = args.collect();
    if configs.is_empty() {
        configs = vec!["cgroup".into(), "host".into()];
    }
    let btf = Btf::from_sys_fs().expect("kernel BTF");
    let dir = PathBuf::from(CPU_ROOT).join(format!("huatuo-runqlat-bench-{}", std::process::id()));
    std::fs::create_dir(&dir).expect("make the cpu cgroup (root, cgroup v1 cpu controller)");
    let cgroup = Cgroup(dir);
    let stats = bpf_stats::enable().expect("BPF run statistics");
    println!("| round | configuration | runqlat ns/run (runs) | empty ns/run (runs) | × empty |");
    println!("|---|---|---|---|---|");
    for r in 1..=rounds {
        for config in &configs {
            let (per_cgroup, load_in) = match config.as_str() {
                "host" => (0, cgroup.0.as_path()),
                "cgroup" => (1, cgroup.0.as_path()),
                "root" => (1, Path::new(CPU_ROOT)),
                other => (
                    other
                        .parse()
                        .expect("configuration: cgroup, root, host or a number"),
                    cgroup.0.as_path(),
                ),
            };
            let (rc, rt, ec, et) = round(per_cgroup, load_in, &btf);
            let q = rt as f64 / rc.max(1) as f64;
            let e = et as f64 / ec.max(1) as f64;
            println!(
                "| {r} | {config} | {q:.0} ({rc}) | {e:.0} ({ec}) | {:.2} |",
                q / e
            );
        }
    }
    drop(stats);
}
