//! Where runqlat's cost per context switch comes from: the incoming task's run queue stamp
//! (`sched_info.last_queued`, the one field of `next` runqlat reads) on a local or a remote
//! cache line. A ring of processes passes a token through pipes, so every pass switches to a
//! task that last ran a lap ago; pinned to one CPU, the task that wakes the next (and so
//! writes its stamp) runs on the CPU that switches to it; pinned alternately to two CPUs, every
//! stamp is written on the other CPU, as in `perf bench sched messaging`, whose wakers and
//! wakees run on both CPUs. Each configuration (nothing attached, the empty program, a program
//! that only loads `last_queued`, runqlat as shipped) runs in interleaved rounds whose order
//! rotates; each gets its program's bpf_stats ns per run and the wall-clock ns per pass.
//! The scheduler reads and writes the same line right after the tracepoint
//! (`sched_info_arrive`), so what bpf_stats charges a program for that load is a miss moved
//! from the kernel to the program; the wall clock would tell moved from added only at a
//! resolution this VM does not have (its rounds spread by 10 % and more).
//! With one token and two CPUs the CPU woken is idle and the kernel has it enqueue the task
//! itself (the stamp is written locally again); with two tokens or more both CPUs stay busy and
//! the waker enqueues on the other CPU's run queue, as in `perf bench sched messaging`.
//! Each task can also write `touch_kib` KiB of its own memory per pass, a footprint that
//! pushes the other tasks' lines out of the CPU's caches between their turns, as the socket
//! buffers of `perf bench sched messaging` do.
//! `HUATUO_RING_CONFIGS` names the configurations (default `nothing,empty,load_queued,runqlat`;
//! also `load_clock` and `load_cgroup`, runqlat's other loads alone).
//! Run as root: `cargo run --release -p huatuo-bench --bin bpf_cost_switch_ring --
//! [rounds] [tasks] [laps] [cpus] [tokens] [touch_kib]` (defaults 7 rounds, 400 tasks, 200
//! laps, CPUs `1`, 1 token, 0 KiB; CPUs `0,1` alternates the ring's tasks between CPUs 0 and 1).

use aya::{Btf, Ebpf};
use huatuo_bench::{bpf_stats, empty_program, runqlat_cost};
use huatuo_bpf::{LoadOptions, Templates};
use std::time::{Duration, Instant};

/// What is attached on sched_switch while the ring runs: nothing, runqlat as shipped, or
/// one program of the bench object (the empty one, or one part of runqlat's work alone).
#[derive(Clone, Copy, PartialEq)]
enum Config {
    None,
    Bench(&'static str),
    Runqlat,
}

/// Every configuration by its command-line name.
const CONFIGS: [(&str, Config); 6] = [
    ("nothing", Config::None),
    ("empty", Config::Bench(empty_program::EMPTY_PROG)),
    (
        "load_queued",
        Config::Bench(empty_program::LOAD_QUEUED_PROG),
    ),
    (
        "load_clock",
        Config::Bench("tp_btf_sched_switch_load_clock"),
    ),
    (
        "load_cgroup",
        Config::Bench("tp_btf_sched_switch_load_cgroup"),
    ),
    ("runqlat", Config::Runqlat),
];

/// What one configuration attached: kept alive while the ring runs, then asked for its cost.
enum Attached {
    None,
    Bench(Ebpf, &'static str),
    Runqlat(Templates),
}

impl Attached {
    fn new(config: Config, btf: &Btf) -> Attached {
        let bench = |name| {
            Attached::Bench(
                empty_program::program_on(name, "sched_switch", btf).expect("bench program"),
                name,
            )
        };
        match config {
            Config::None => Attached::None,
            Config::Bench(name) => bench(name),
            Config::Runqlat => Attached::Runqlat(Templates::load_with(
                &["runqlat"],
                &Default::default(),
                LoadOptions::default(),
            )),
        }
    }

    /// (runs, ns) its sched_switch program counted so far.
    fn cost(&self) -> (u64, u64) {
        match self {
            Attached::None => (0, 0),
            Attached::Bench(ebpf, name) => {
                empty_program::program_cost(ebpf, name).expect("bench program cost")
            }
            Attached::Runqlat(templates) => runqlat_cost::sched_switch_cost(templates),
        }
    }
}

/// Pins the calling process to `cpu`.
fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0,
            "pin to CPU {cpu}"
        );
    }
}

fn pipe() -> [i32; 2] {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    fds
}

/// Reads one byte from `fd`; false at end of file or on error.
fn take(fd: i32) -> bool {
    let mut byte = 0u8;
    // SAFETY: one byte into a local.
    unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) == 1 }
}

/// Writes one byte to `fd`.
fn give(fd: i32) -> bool {
    let byte = b't';
    // SAFETY: one byte from a local.
    unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) == 1 }
}

/// Runs a ring of `tasks` processes (this one and `tasks - 1` forked), process `i` pinned to
/// `cpus[i % cpus.len()]`: `tokens` tokens go round `laps` times each, each pass one pipe
/// write, one read and one switch to the next process, each process writing one byte per
/// cache line of its `touch_kib` KiB buffer per pass. Returns the time of the laps.
fn ring(tasks: usize, laps: usize, cpus: &[usize], tokens: usize, touch_kib: usize) -> Duration {
    pin(cpus[0]);
    let pipes: Vec<[i32; 2]> = (0..tasks).map(|_| pipe()).collect();
    let close_all_but = |keep_read: usize, keep_write: usize| {
        for (i, fds) in pipes.iter().enumerate() {
            // SAFETY: closing descriptors this process owns and does not use.
            unsafe {
                if i != keep_read {
                    libc::close(fds[0]);
                }
                if i != keep_write {
                    libc::close(fds[1]);
                }
            }
        }
    };
    let mut children = Vec::with_capacity(tasks);
    for i in 1..tasks {
        // SAFETY: this bench is single-threaded; the child only reads, writes and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            pin(cpus[i % cpus.len()]);
            let next = (i + 1) % tasks;
            close_all_but(i, next);
            let mut buffer = vec![0u8; touch_kib * 1024];
            let mut pass = 0u8;
            while take(pipes[i][0]) {
                pass = pass.wrapping_add(1);
                for line in buffer.chunks_mut(64) {
                    line[0] = pass;
                }
                std::hint::black_box(&buffer);
                if !give(pipes[next][1]) {
                    break;
                }
            }
            // SAFETY: leave the child without running the parent's exit handlers.
            unsafe { libc::_exit(0) };
        }
        children.push(pid);
    }
    close_all_but(0, 1);
    (0..tokens).for_each(|_| assert!(give(pipes[1][1]), "token lost"));
    let lap = || {
        assert!(take(pipes[0][0]) && give(pipes[1][1]), "token lost");
    };
    (0..10 * tokens).for_each(|_| lap());
    let start = Instant::now();
    (0..laps * tokens).for_each(|_| lap());
    let elapsed = start.elapsed();
    // SAFETY: closing the ring's ends ends every child in turn (end of file, or SIGPIPE for
    // the one still passing a token to this process).
    unsafe {
        libc::close(pipes[1][1]);
        libc::close(pipes[0][0]);
    }
    for pid in children {
        // SAFETY: reaping a child of this process.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    }
    elapsed
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .take(3)
        .map(|a| a.parse::<usize>().ok());
    let rounds = args.next().flatten().unwrap_or(7);
    let tasks = args.next().flatten().unwrap_or(400).max(2);
    let laps = args.next().flatten().unwrap_or(200);
    let cpus: Vec<usize> = std::env::args()
        .nth(4)
        .unwrap_or_else(|| "1".into())
        .split(',')
        .map(|c| c.parse().expect("CPUs: numbers separated by commas"))
        .collect();
    let tokens: usize = std::env::args()
        .nth(5)
        .map_or(1, |t| t.parse().expect("tokens: a number"))
        .max(1);
    let touch_kib: usize = std::env::args()
        .nth(6)
        .map_or(0, |t| t.parse().expect("touch_kib: a number"));
    let btf = Btf::from_sys_fs().expect("kernel BTF");
    let stats = bpf_stats::enable().expect("BPF run statistics");
    let passes = (tasks * laps * tokens) as f64;
    let names = std::env::var("HUATUO_RING_CONFIGS")
        .unwrap_or_else(|_| "nothing,empty,load_queued,runqlat".into());
    let configs: Vec<(&str, Config)> = names
        .split(',')
        .map(|n| {
            *CONFIGS
                .iter()
                .find(|(name, _)| *name == n)
                .unwrap_or_else(|| panic!("unknown configuration {n}"))
        })
        .collect();
    let mut wall: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    let mut bpf: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    println!(
        "ring of {tasks} processes on CPUs {cpus:?}, {tokens} token(s), {touch_kib} KiB \
         written per pass, {laps} laps per measure\n"
    );
    println!("| round | attached | wall ns per pass | program ns per run | runs per pass |");
    println!("|---|---|---|---|---|");
    for r in 0..rounds {
        for k in 0..configs.len() {
            let index = (k + r) % configs.len();
            let (name, config) = configs[index];
            let attached = Attached::new(config, &btf);
            let before = attached.cost();
            let elapsed = ring(tasks, laps, &cpus, tokens, touch_kib);
            let after = attached.cost();
            let (runs, ns) = (after.0 - before.0, after.1 - before.1);
            let per_pass = elapsed.as_nanos() as f64 / passes;
            let per_run = ns as f64 / runs.max(1) as f64;
            wall[index].push(per_pass);
            bpf[index].push(per_run);
            println!(
                "| {} | {} | {per_pass:.0} | {per_run:.0} | {:.2} |",
                r + 1,
                name,
                runs as f64 / passes
            );
        }
    }
    drop(stats);
    println!(
        "\n| attached | median wall ns per pass | over the first | median program ns per run |"
    );
    println!("|---|---|---|---|");
    let first = median(wall[0].clone());
    for (i, (name, config)) in configs.iter().enumerate() {
        let w = median(wall[i].clone());
        let b = median(bpf[i].clone());
        let program = if *config == Config::None {
            "-".to_string()
        } else {
            format!("{b:.0}")
        };
        println!("| {name} | {w:.0} | {:+.0} | {program} |", w - first);
    }
}
