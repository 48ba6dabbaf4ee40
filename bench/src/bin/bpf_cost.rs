//! Measures the in-kernel cost (ns per event, from `kernel.bpf_stats_enabled=1`
//! run_time_ns / run_cnt) of huatuo's runqlat next to an empty program on sched_switch and
//! libbpf-tools' runqlat, under the same fixed load, in interleaved rounds; huatuo both with
//! its task-storage object (≥ 5.11) and with its hash-map object (older kernels), each with
//! the sched_info variant (sched_switch only) and the wakeup-timestamp fallback.
//! Run as root: `cargo run --release -p huatuo-bench --bin bpf_cost -- [rounds] [secs]`.

use aya::Btf;
use huatuo_bench::{bpf_stats, empty_program};
use huatuo_bpf::requires::Requirement;
use huatuo_bpf::{LoadOptions, Templates};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// (run_count, run_time_ns) deltas per program name.
type Cost = BTreeMap<String, (u64, u64)>;

/// Fixed load: 2 busy loops plus a pipe ping-pong between two processes for `secs`.
fn load(secs: u64) {
    let busy: Vec<Child> = (0..2)
        .map(|_| {
            Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .expect("busy")
        })
        .collect();
    let mut echo = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cat");
    let mut tx = echo.stdin.take().expect("stdin");
    let mut rx = echo.stdout.take().expect("stdout");
    let end = Instant::now() + Duration::from_secs(secs);
    let mut byte = [0u8; 1];
    while Instant::now() < end {
        for _ in 0..1000 {
            tx.write_all(b"x").expect("ping");
            rx.read_exact(&mut byte).expect("pong");
        }
    }
    drop(tx);
    let _ = echo.wait();
    for mut b in busy {
        let _ = b.kill();
        let _ = b.wait();
    }
}

/// Run stats of every loaded BPF program whose name contains `needle`, summed by name.
fn bpftool_stats(needle: &str) -> Cost {
    let mut cost = Cost::new();
    let programs = bpf_stats::programs().expect("bpftool prog show");
    for p in programs.into_values().filter(|p| p.name.contains(needle)) {
        let e = cost.entry(p.name).or_default();
        e.0 += p.runs;
        e.1 += p.ns;
    }
    cost
}

fn diff(after: &Cost, before: &Cost) -> Cost {
    after
        .iter()
        .map(|(k, (c, t))| {
            let (c0, t0) = before.get(k).copied().unwrap_or_default();
            (k.clone(), (c - c0, t - t0))
        })
        .collect()
}

fn empty_round(secs: u64, btf: &Btf) -> Cost {
    let ebpf = empty_program::empty_on_sched_switch(btf);
    load(secs);
    Cost::from([(
        "empty sched_switch".to_string(),
        empty_program::empty_cost(&ebpf).expect("empty program cost"),
    )])
}

/// One round of huatuo runqlat; `force_hashmap` loads the pre-5.11 hash-map object,
/// `wakeups` the fallback variant for kernels without sched_info.
fn huatuo_round(secs: u64, per_cgroup: u64, force_hashmap: bool, wakeups: bool) -> Cost {
    let tunables = BTreeMap::from([(
        "runqlat".to_string(),
        BTreeMap::from([("per_cgroup".to_string(), per_cgroup)]),
    )]);
    let options = LoadOptions {
        force_hashmap,
        unmet: if wakeups {
            vec![Requirement::SchedInfo]
        } else {
            vec![]
        },
        ..LoadOptions::default()
    };
    let templates = Templates::load_with(&["runqlat"], &tunables, options);
    let scope = if per_cgroup == 1 {
        "host+cgroup"
    } else {
        "host only"
    };
    let store = if force_hashmap {
        "hash map"
    } else {
        "task storage"
    };
    let method = if wakeups { "wakeups" } else { "sched_info" };
    let label = format!("{method}, {scope}, {store}");
    load(secs);
    let mut cost = Cost::new();
    for st in templates.status() {
        assert!(st.loaded, "{st:?}");
        for p in st.programs.into_iter().filter(|p| p.attached.is_some()) {
            cost.insert(
                format!("huatuo ({label}) {}", p.program),
                (p.run_count, p.run_time_ns),
            );
        }
    }
    cost
}

fn libbpf_round(secs: u64) -> Cost {
    let mut tool = Command::new("runqlat")
        .arg(format!("{}", secs + 2))
        .arg("1")
        .stdout(Stdio::null())
        .spawn()
        .expect("libbpf-tools runqlat (apt-get install libbpf-tools)");
    std::thread::sleep(Duration::from_millis(700));
    let start = bpftool_stats("sched_");
    load(secs);
    let end = bpftool_stats("sched_");
    let _ = tool.kill();
    let _ = tool.wait();
    diff(&end, &start)
        .into_iter()
        .map(|(k, v)| (format!("libbpf-tools {k}"), v))
        .collect()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let stats = bpf_stats::enable().expect("BPF run statistics");
    let btf = Btf::from_sys_fs().expect("kernel BTF");
    let mut totals: BTreeMap<String, Vec<(f64, u64, u64)>> = BTreeMap::new();
    for round in 0..rounds {
        let costs = [
            empty_round(secs, &btf),
            huatuo_round(secs, 1, false, false),
            huatuo_round(secs, 0, false, false),
            huatuo_round(secs, 0, true, false),
            huatuo_round(secs, 0, false, true),
            huatuo_round(secs, 1, true, true),
            huatuo_round(secs, 0, true, true),
            libbpf_round(secs),
        ];
        for cost in costs {
            for (name, (count, time)) in cost {
                if count > 0 {
                    let per = time as f64 / count as f64;
                    eprintln!("round {round}: {name}: {count} runs, {per:.0} ns/run");
                    totals.entry(name).or_default().push((per, count, time));
                }
            }
        }
    }
    drop(stats);
    println!("| program | median ns/run | median runs per round | median BPF µs per s of load | rounds |");
    println!("|---|---|---|---|---|");
    for (name, mut values) in totals {
        values.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut counts: Vec<u64> = values.iter().map(|v| v.1).collect();
        counts.sort_unstable();
        let mut times: Vec<u64> = values.iter().map(|v| v.2).collect();
        times.sort_unstable();
        let mid = values.len() / 2;
        println!(
            "| {name} | {:.0} | {} | {:.0} | {} |",
            values[mid].0,
            counts[mid],
            times[mid] as f64 / secs as f64 / 1000.0,
            values.len()
        );
    }
}
