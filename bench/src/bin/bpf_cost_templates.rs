//! Measures the in-kernel cost (ns per event, from `kernel.bpf_stats_enabled=1`
//! run_time_ns / run_count) of every huatuo template that a fixed load exercises here, next
//! to an empty tp_btf program on the same tracepoints and, where Debian's libbpf-tools has
//! one, the matching tool, under the same load, in interleaved rounds; medians at the end.
//!
//! Sections (each variant runs alone for one round of the section's load):
//! - blockio: O_DIRECT 4 KiB writes to a loop device (created by `bench/bpf/run.sh`);
//!   empty on block_rq_insert/issue/complete; libbpf-tools `biolatency` and `biolatency -Q`.
//! - softirq: loopback UDP flood; empty on softirq_raise/entry; softirq_latency,
//!   softirq_off (its raise/entry programs and its check at timer interrupts), both loaded
//!   together as the agent loads them (softirq_off hosting softirq_latency: one program per
//!   hook) and each on its own object (two programs per hook); the parts of their work
//!   apart on both hooks (a per-CPU value updated, the same value set from the clock);
//!   libbpf-tools `softirqs`.
//! - drops: TCP connects to a closed loopback port; empty on kfree_skb; drops without a
//!   rate limit (every drop is an event with its stack) and at 100 events/s (shed path).
//! - reclaim: page-cache writes inside a small memory cgroup (v1, made by run.sh); empty on
//!   mm_vmscan_memcg_reclaim_begin/end.
//! - netrx: a loopback TCP stream; empty on netif_receive_skb; netrx_latency.
//! - profiler: two busy loops; the 99 Hz sampler (cost per sample).
//!
//! Run as root (normally through `bench/bpf/run.sh`):
//! `bpf_cost_templates <loop-device> <memcg-dir> <scratch-dir> [rounds] [secs] [section]`
//! (a section name runs only that section).

use aya::{Btf, Ebpf};
use huatuo_bench::{bpf_stats, empty_program};
use huatuo_bpf::{LoadOptions, Templates};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One measured program of one round: (row name, run count, run time ns, note).
type Row = (String, u64, u64, String);

/// What the loads need: the loop device, the memory cgroup and a scratch directory.
struct Env {
    loop_dev: String,
    memcg: PathBuf,
    scratch: PathBuf,
}

/// The fixed loads, one per section.
#[derive(Clone, Copy)]
enum Load {
    DirectWrites,
    UdpFlood,
    ClosedPortConnects,
    MemcgPageCache,
    TcpStream,
    BusyLoops,
}

/// One thing measured under a load.
enum Variant {
    /// The empty tp_btf program attached to each of these tracepoints at once.
    Empty(&'static [&'static str]),
    /// Another program of the bench object (`bench/bpf/empty.bpf.c`) on each of these.
    Bench(&'static str, &'static [&'static str]),
    /// A huatuo template with its tunables, labelled.
    Huatuo(&'static str, &'static str, &'static [(&'static str, u64)]),
    /// Several huatuo templates loaded together, as one rule set needing all of them does;
    /// `false`: each on its own object even where one could host another.
    Together(&'static [&'static str], bool),
    /// A libbpf-tools command line; its programs are the new ones whose name has `needle`.
    Tool(&'static [&'static str], &'static str),
}

struct Section {
    name: &'static str,
    load: Load,
    variants: Vec<Variant>,
}

fn sections() -> Vec<Section> {
    use Variant::*;
    vec![
        Section {
            name: "blockio",
            load: Load::DirectWrites,
            variants: vec![
                Empty(&["block_rq_insert", "block_rq_issue", "block_rq_complete"]),
                Huatuo("blockio", "host+cgroup", &[("per_cgroup", 1)]),
                Huatuo("blockio", "host only", &[("per_cgroup", 0)]),
                Tool(&["biolatency"], "block_rq"),
                Tool(&["biolatency", "-Q"], "block_rq"),
            ],
        },
        Section {
            name: "softirq",
            load: Load::UdpFlood,
            variants: vec![
                Empty(&["softirq_raise", "softirq_entry"]),
                Huatuo("softirq_latency", "", &[]),
                Huatuo("softirq_off", "", &[]),
                Together(&["softirq_latency", "softirq_off"], true),
                Together(&["softirq_latency", "softirq_off"], false),
                Bench("tp_btf_per_cpu_store", &["softirq_raise", "softirq_entry"]),
                Bench("tp_btf_per_cpu_clock", &["softirq_raise", "softirq_entry"]),
                Tool(&["softirqs"], "softirq"),
            ],
        },
        Section {
            name: "drops",
            load: Load::ClosedPortConnects,
            variants: vec![
                Empty(&["kfree_skb"]),
                Huatuo("drops", "no rate limit", &[]),
                Huatuo("drops", "100/s", &[("rate_per_sec", 100), ("burst", 100)]),
            ],
        },
        Section {
            name: "reclaim",
            load: Load::MemcgPageCache,
            variants: vec![
                Empty(&[
                    "mm_vmscan_memcg_reclaim_begin",
                    "mm_vmscan_memcg_reclaim_end",
                ]),
                Huatuo("reclaim", "", &[]),
            ],
        },
        Section {
            name: "netrx",
            load: Load::TcpStream,
            variants: vec![
                Empty(&["netif_receive_skb", "tcp_probe", "skb_copy_datagram_iovec"]),
                Huatuo("netrx_latency", "", &[]),
            ],
        },
        Section {
            name: "profiler",
            load: Load::BusyLoops,
            variants: vec![Huatuo("profiler", "", &[])],
        },
    ]
}

/// Runs `body` until `secs` have passed.
fn for_secs(secs: u64, mut body: impl FnMut() -> Result<(), String>) -> Result<(), String> {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        body()?;
    }
    Ok(())
}

#[repr(align(4096))]
struct Block([u8; 4096]);

/// 4 KiB O_DIRECT writes cycling over the first 32 MiB of the loop device.
fn direct_writes(env: &Env, secs: u64) -> Result<(), String> {
    use std::io::{Seek, SeekFrom};
    let mut dev = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&env.loop_dev)
        .map_err(|e| format!("{}: {e}", env.loop_dev))?;
    let block = Block([0x5a; 4096]);
    let mut offset = 0u64;
    for_secs(secs, || {
        for _ in 0..64 {
            if offset >= 32 << 20 {
                offset = 0;
                dev.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
            }
            dev.write_all(&block.0)
                .map_err(|e| format!("direct write: {e}"))?;
            offset += 4096;
        }
        Ok(())
    })
}

/// Sends 64-byte UDP datagrams to a loopback socket drained by a second thread.
fn udp_flood(secs: u64) -> Result<(), String> {
    let rx = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let tx = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = rx.local_addr().map_err(|e| e.to_string())?;
    rx.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let drain = std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while !stop2.load(Ordering::Relaxed) {
            let _ = rx.recv(&mut buf);
        }
    });
    let payload = [7u8; 64];
    let result = for_secs(secs, || {
        for _ in 0..256 {
            // A full receive queue drops the datagram; the load stays the same.
            let _ = tx.send_to(&payload, addr);
        }
        Ok(())
    });
    stop.store(true, Ordering::Relaxed);
    let _ = drain.join();
    result
}

/// TCP connects to a loopback port nobody listens on (the SYN is dropped, NO_SOCKET).
fn closed_port_connects(secs: u64) -> Result<(), String> {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        l.local_addr().map_err(|e| e.to_string())?.port()
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    for_secs(secs, || match TcpStream::connect(addr) {
        Ok(_) => Err(format!("port {port} unexpectedly accepted a connection")),
        Err(_) => Ok(()),
    })
}

/// `dd` writing 128 MiB files in a loop, inside the memory cgroup (limit set by run.sh).
fn memcg_page_cache(env: &Env, secs: u64) -> Result<(), String> {
    let procs = env.memcg.join("cgroup.procs");
    let file = env.scratch.join("reclaim.dat");
    let script = format!(
        "echo $$ > {} && end=$(( $(date +%s) + {secs} )); \
         while [ $(date +%s) -lt $end ]; do \
         dd if=/dev/zero of={} bs=1M count=128 status=none || exit 1; done",
        procs.display(),
        file.display()
    );
    let status = Command::new("sh")
        .args(["-c", &script])
        .status()
        .map_err(|e| format!("sh: {e}"))?;
    let _ = std::fs::remove_file(&file);
    if status.success() {
        Ok(())
    } else {
        Err(format!("memcg page-cache load failed: {status}"))
    }
}

/// A loopback TCP stream of 16 KiB writes, read by a second thread.
fn tcp_stream(secs: u64) -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let reader = std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            let mut buf = vec![0u8; 65536];
            while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
        }
    });
    let mut conn = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let chunk = vec![1u8; 16384];
    let result = for_secs(secs, || {
        conn.write_all(&chunk)
            .map_err(|e| format!("tcp write: {e}"))
    });
    drop(conn);
    let _ = reader.join();
    result
}

fn busy_loops(secs: u64) -> Result<(), String> {
    let mut busy: Vec<Child> = vec![];
    for _ in 0..2 {
        busy.push(
            Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .map_err(|e| format!("sh: {e}"))?,
        );
    }
    std::thread::sleep(Duration::from_secs(secs));
    for mut b in busy {
        let _ = b.kill();
        let _ = b.wait();
    }
    Ok(())
}

fn run_load(load: Load, env: &Env, secs: u64) -> Result<(), String> {
    match load {
        Load::DirectWrites => direct_writes(env, secs),
        Load::UdpFlood => udp_flood(secs),
        Load::ClosedPortConnects => closed_port_connects(secs),
        Load::MemcgPageCache => memcg_page_cache(env, secs),
        Load::TcpStream => tcp_stream(secs),
        Load::BusyLoops => busy_loops(secs),
    }
}

/// Program `prog` of the bench object on each of `tracepoints`, rows named `label: <tp>`.
fn bench_round(
    prog: &str,
    label: &str,
    tracepoints: &[&str],
    btf: &Btf,
    load: Load,
    env: &Env,
    secs: u64,
) -> Result<Vec<Row>, String> {
    let mut objects: Vec<(&str, Ebpf)> = vec![];
    for tp in tracepoints {
        let ebpf = empty_program::program_on(prog, tp, btf)?;
        objects.push((tp, ebpf));
    }
    run_load(load, env, secs)?;
    let mut rows = vec![];
    for (tp, ebpf) in &objects {
        let (runs, ns) = empty_program::program_cost(ebpf, prog)?;
        rows.push((format!("{label}: {tp}"), runs, ns, String::new()));
    }
    Ok(rows)
}

fn huatuo_round(
    loads: &[&str],
    share_hooks: bool,
    label: &str,
    tunables: &[(&str, u64)],
    load: Load,
    env: &Env,
    secs: u64,
) -> Result<Vec<Row>, String> {
    let values: BTreeMap<String, u64> = tunables.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let all: BTreeMap<String, BTreeMap<String, u64>> = loads
        .iter()
        .map(|t| (t.to_string(), values.clone()))
        .collect();
    let template = loads.join("+");
    let options = LoadOptions {
        share_hooks,
        ..LoadOptions::default()
    };
    let mut templates = Templates::load_with(loads, &all, options);
    // Events are drained (and discarded) so the transport never backs up into the kernel.
    let events = templates.take_events();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let drain = std::thread::spawn(move || {
        if let Some(mut rx) = events {
            while !stop2.load(Ordering::Relaxed) {
                while rx.try_recv().is_ok() {}
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    });
    let loaded = run_load(load, env, secs);
    stop.store(true, Ordering::Relaxed);
    let _ = drain.join();
    loaded?;
    let mut rows = vec![];
    let name = match (label.is_empty(), loads.len() > 1) {
        (true, false) => template.to_string(),
        (true, true) if share_hooks => format!("{template} (one program per hook)"),
        (true, true) => format!("{template} (each its own object)"),
        _ => format!("{template} ({label})"),
    };
    for st in templates.status() {
        if !st.loaded {
            return Err(format!("{template} did not load: {:?}", st.error));
        }
        if st.hosted_by.is_some() {
            // Its programs are its host's, measured in the host's rows.
            continue;
        }
        let c = &st.counters;
        let note = if c.emitted + c.shed + c.lost > 0 {
            format!("events {} emitted, {} shed", c.emitted, c.shed)
        } else {
            String::new()
        };
        for p in st.programs.iter().filter(|p| p.attached.is_some()) {
            rows.push((
                if loads.len() > 1 {
                    format!("huatuo {name}: {} {}", st.name, p.program)
                } else {
                    format!("huatuo {name}: {}", p.program)
                },
                p.run_count,
                p.run_time_ns,
                note.clone(),
            ));
        }
    }
    Ok(rows)
}

fn tool_round(
    argv: &[&str],
    needle: &str,
    load: Load,
    env: &Env,
    secs: u64,
) -> Result<Vec<Row>, String> {
    let before: BTreeSet<u64> = bpf_stats::programs()?.into_keys().collect();
    let mut tool = Command::new(argv[0])
        .args(&argv[1..])
        .arg(format!("{}", secs + 3))
        .arg("1")
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("{} (apt-get install libbpf-tools): {e}", argv[0]))?;
    std::thread::sleep(Duration::from_millis(1000));
    let mine = |all: BTreeMap<u64, bpf_stats::ProgramRuns>| {
        all.into_iter()
            .filter(|(id, p)| !before.contains(id) && p.name.contains(needle))
            .collect::<BTreeMap<_, _>>()
    };
    let start = mine(bpf_stats::programs()?);
    let loaded = run_load(load, env, secs);
    let end = mine(bpf_stats::programs()?);
    let _ = tool.kill();
    let _ = tool.wait();
    loaded?;
    if start.is_empty() {
        return Err(format!(
            "{}: no program named *{needle}* appeared",
            argv.join(" ")
        ));
    }
    Ok(end
        .into_iter()
        .map(|(id, p)| {
            let was = start.get(&id).cloned().unwrap_or_default();
            (
                format!("libbpf-tools {}: {}", argv.join(" "), p.name),
                p.runs - was.runs,
                p.ns - was.ns,
                String::new(),
            )
        })
        .collect())
}

/// Per row: (ns per run, runs, note) of each round.
type Totals = BTreeMap<(usize, String), Vec<(f64, u64, String)>>;

fn run(env: &Env, rounds: usize, secs: u64, only: Option<&str>) -> Result<Totals, String> {
    let btf = Btf::from_sys_fs().map_err(|e| format!("kernel BTF: {e}"))?;
    let mut totals = Totals::new();
    for round in 0..rounds {
        for (order, section) in sections().iter().enumerate() {
            if only.is_some_and(|name| name != section.name) {
                continue;
            }
            for variant in &section.variants {
                let rows = match variant {
                    Variant::Empty(tps) => bench_round(
                        empty_program::EMPTY_PROG,
                        "empty",
                        tps,
                        &btf,
                        section.load,
                        env,
                        secs,
                    ),
                    Variant::Bench(prog, tps) => {
                        bench_round(prog, prog, tps, &btf, section.load, env, secs)
                    }
                    Variant::Huatuo(t, label, tun) => {
                        huatuo_round(&[t], true, label, tun, section.load, env, secs)
                    }
                    Variant::Together(ts, share) => {
                        huatuo_round(ts, *share, "", &[], section.load, env, secs)
                    }
                    Variant::Tool(argv, needle) => {
                        tool_round(argv, needle, section.load, env, secs)
                    }
                }
                .map_err(|e| format!("{}: {e}", section.name))?;
                for (name, count, time, note) in rows {
                    let per = if count > 0 {
                        time as f64 / count as f64
                    } else {
                        f64::NAN
                    };
                    eprintln!(
                        "round {round} {}: {name}: {count} runs, {per:.0} ns/run {note}",
                        section.name
                    );
                    totals
                        .entry((order, format!("{} | {name}", section.name)))
                        .or_default()
                        .push((per, count, note));
                }
            }
        }
    }
    Ok(totals)
}

fn print_table(totals: Totals) {
    println!("| section | program | median ns/run | min–max ns/run | median runs per round | rounds | note (last round) |");
    println!("|---|---|---|---|---|---|---|");
    let mut idle = vec![];
    for ((_, name), mut values) in totals {
        let note = values.last().map(|v| v.2.clone()).unwrap_or_default();
        let mut counts: Vec<u64> = values.iter().map(|v| v.1).collect();
        counts.sort_unstable();
        values.retain(|v| v.0.is_finite());
        values.sort_by(|a, b| a.0.total_cmp(&b.0));
        let rounds = counts.len();
        let runs = counts[rounds / 2];
        if values.is_empty() {
            idle.push(name);
            continue;
        }
        println!(
            "| {name} | {:.0} | {:.0}–{:.0} | {runs} | {rounds} | {note} |",
            values[values.len() / 2].0,
            values[0].0,
            values[values.len() - 1].0,
        );
    }
    if !idle.is_empty() {
        println!(
            "\nAttached but never ran under its section's load: {}",
            idle.join("; ")
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!(
            "usage: bpf_cost_templates <loop-device> <memcg-dir> <scratch-dir> [rounds] [secs] [section]"
        );
        std::process::exit(2);
    }
    let env = Env {
        loop_dev: args[0].clone(),
        memcg: PathBuf::from(&args[1]),
        scratch: PathBuf::from(&args[2]),
    };
    let rounds: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(3);
    let secs: u64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(3);
    let stats = match bpf_stats::enable() {
        Ok(stats) => stats,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let result = run(&env, rounds, secs, args.get(5).map(String::as_str));
    // Written back before the exit below, which runs no destructors.
    drop(stats);
    match result {
        Ok(totals) => print_table(totals),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
