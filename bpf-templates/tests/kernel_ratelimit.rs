//! Kernel test: huatuo.h's rate limit and output account for every event exactly
//! (emitted + shed + lost == events the program saw), the limit holds for the whole machine
//! (not per CPU), and user space receives every emitted record through the transport.

mod common;

use aya::maps::{MapData, PerCpuArray};
use aya::programs::RawTracePoint;
use aya::EbpfLoader;
use common::kernel_ready;
use huatuo_bpf::decode::EventDecoder;
use huatuo_bpf::transport::{spawn_perfbuf, spawn_ringbuf, EventStats, Sink, StopSignal};
use huatuo_bpf::{NoContainers, TemplateSchema};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const SCHEMA: &str = r#"
[source]
name = "bpf.ratelimit"
mode = "stream"
fields = [ { name = "seq", type = "int" } ]
[event]
fields = [ { name = "seq", c = "u64" } ]
[[attach]]
program = "sys_enter"
variants = [ { kind = "raw_tp", target = "sys_enter", prog = "raw_tp_sys_enter" } ]
"#;

const CALLS: u64 = 20_000;

/// Sums one counter (`HUATUO_CNT_*` index) of the object over all CPUs.
fn counter(ebpf: &aya::Ebpf, index: u32) -> u64 {
    let map = ebpf.map("huatuo_counters").expect("counters");
    let array = PerCpuArray::<&MapData, u64>::try_from(map).expect("per-cpu array");
    array.get(&index, 0).expect("read").iter().sum()
}

/// Loads the test object's sys_enter program with `globals` and a ring buffer of
/// `ring_bytes`, and attaches it.
fn load_attached(globals: &[(&str, u64)], ring_bytes: u32) -> aya::Ebpf {
    let object = std::fs::read(concat!(env!("OUT_DIR"), "/test_ratelimit.bpf.o"))
        .expect("test object built by build.rs");
    let mut loader = EbpfLoader::new();
    for (name, value) in globals {
        loader.override_global(name, value, true);
    }
    let mut ebpf = loader
        .map_max_entries("events", ring_bytes)
        .load(&object)
        .expect("load test object");
    let prog: &mut RawTracePoint = ebpf
        .program_mut("raw_tp_sys_enter")
        .expect("program")
        .try_into()
        .expect("raw tp");
    prog.load().expect("load program");
    prog.attach("sys_enter").expect("attach");
    ebpf
}

#[test]
fn the_rate_limit_holds_for_the_whole_machine_not_per_cpu() {
    if !kernel_ready("the_rate_limit_holds_for_the_whole_machine_not_per_cpu") {
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    // `limit 1000 per 1s`: one window of 1000 events per second for the machine.
    let (rate, burst) = (1_000u64, 1_000u64);
    let tgid = std::process::id() as u64;
    let syscall = libc::SYS_getpgid as u64;
    let ebpf = load_attached(
        &[
            ("target_tgid", tgid),
            ("target_syscall", syscall),
            ("rate_per_sec", rate),
            ("burst", burst),
        ],
        1 << 20,
    );
    // One thread pinned to each CPU calls getpgid in a loop for 300 ms: every CPU alone
    // makes far more calls than the burst, so a per-CPU limit would pass `cpus` bursts.
    let started = std::time::Instant::now();
    let workers: Vec<_> = (0..cpus as usize)
        .map(|cpu| {
            std::thread::spawn(move || {
                // SAFETY: a zeroed cpu_set_t is valid; CPU_SET and sched_setaffinity only
                // touch it and the calling thread.
                unsafe {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(cpu, &mut set);
                    libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
                }
                let mut calls = 0u64;
                let until = std::time::Instant::now() + Duration::from_millis(300);
                while std::time::Instant::now() < until {
                    // SAFETY: getpgid(0) has no preconditions.
                    unsafe { libc::syscall(libc::SYS_getpgid, 0) };
                    calls += 1;
                }
                // SAFETY: sched_getcpu has no preconditions.
                (calls, unsafe { libc::sched_getcpu() })
            })
        })
        .collect();
    let results: Vec<(u64, i32)> = workers
        .into_iter()
        .map(|w| w.join().expect("join"))
        .collect();
    let elapsed = started.elapsed();
    let calls: u64 = results.iter().map(|r| r.0).sum();
    let mut used_cpus: Vec<i32> = results.iter().map(|r| r.1).collect();
    used_cpus.sort_unstable();
    used_cpus.dedup();
    assert_eq!(
        used_cpus.len() as u64,
        cpus,
        "threads ran on CPUs {used_cpus:?}"
    );
    assert!(
        results.iter().all(|r| r.0 > burst),
        "each CPU must call more than the burst: {results:?}"
    );

    let (emitted, shed, lost) = (counter(&ebpf, 0), counter(&ebpf, 1), counter(&ebpf, 2));
    assert_eq!(emitted + shed + lost, calls, "every call accounted for");
    // Windows opened since the first event; CPUs racing on one window may add CPUs - 1 each
    // (and a reset racing with an increment one more per CPU).
    let windows = elapsed.as_nanos() as u64 / (burst * 1_000_000_000 / rate) + 1;
    let bound = windows * (burst + 2 * cpus);
    println!(
        "{cpus} CPUs, {elapsed:?}, {calls} calls: emitted {emitted}, shed {shed}, lost {lost}, \
         bound {bound}"
    );
    assert!(
        emitted + lost <= bound,
        "{} records passed the limit of {burst} per window over {windows} window(s)",
        emitted + lost
    );
    assert!(
        emitted >= burst,
        "the first window passes a full burst: {emitted}"
    );
}

#[test]
fn emitted_shed_and_lost_add_up_to_what_the_program_saw() {
    if !kernel_ready("emitted_shed_and_lost_add_up_to_what_the_program_saw") {
        return;
    }
    // SAFETY: gettid has no preconditions. Tests run in parallel threads: filter by thread.
    let tid = unsafe { libc::gettid() } as u64;
    // A window of 1000 events (10 ms at 100 000/s) lets ~1000 records through at once; a
    // one-page ring buffer holds 256 of the 16-byte records, so both the limiter and the
    // buffer shed.
    let (rate, burst) = (100_000u64, 1_000u64);
    let mut ebpf = load_attached(
        &[
            ("target_tid", tid),
            ("rate_per_sec", rate),
            ("burst", burst),
        ],
        4096,
    );

    for _ in 0..CALLS {
        // SAFETY: getppid has no preconditions.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }

    let (emitted, shed, lost) = (counter(&ebpf, 0), counter(&ebpf, 1), counter(&ebpf, 2));
    assert_eq!(
        emitted + shed + lost,
        CALLS,
        "emitted {emitted} + shed {shed} + lost {lost}"
    );
    assert!(shed > 0, "the rate limit shed nothing");
    assert!(lost > 0, "the tiny ring buffer lost nothing");
    assert!(emitted >= 200, "emitted {emitted}");

    // Drain through the transport: every emitted record arrives and decodes.
    let schema = TemplateSchema::parse("ratelimit", SCHEMA).expect("schema");
    let (tx, mut rx) = tokio::sync::mpsc::channel(100_000);
    let stats = Arc::new(EventStats::default());
    let stop = Arc::new(StopSignal::new());
    let sink = Sink {
        name: "ratelimit".into(),
        decoder: EventDecoder::new(&schema).expect("decoder"),
        resolver: Arc::new(NoContainers),
        tx,
        stats: stats.clone(),
        stop: stop.clone(),
    };
    let handle = spawn_ringbuf(ebpf.take_map("events").expect("events"), sink).expect("spawn");
    std::thread::sleep(Duration::from_millis(400));
    // The thread sleeps in poll on the ring and the stop's eventfd (bounded at 5 s): the
    // stop wakes it at once, not at its next timeout.
    let stopping = std::time::Instant::now();
    stop.stop();
    handle.join().expect("join");
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "the event thread took {:?} to stop",
        stopping.elapsed()
    );
    let mut received = 0;
    while let Ok(sample) = rx.try_recv() {
        assert_eq!(sample.source, "bpf.ratelimit");
        assert_eq!(sample.fields["seq"], huatuo_dsl::value::Value::Int(110));
        received += 1;
    }
    assert_eq!(received, emitted);
    assert_eq!(stats.received.load(Ordering::Relaxed), emitted);
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);
}

#[test]
fn perf_buffer_transport_delivers_every_record() {
    if !kernel_ready("perf_buffer_transport_delivers_every_record") {
        return;
    }
    let object = std::fs::read(concat!(env!("OUT_DIR"), "/test_ratelimit.perfbuf.bpf.o"))
        .expect("perf buffer test object built by build.rs");
    // SAFETY: gettid has no preconditions. Tests run in parallel threads: filter by thread.
    let tid = unsafe { libc::gettid() } as u64;
    let mut ebpf = EbpfLoader::new()
        .override_global("target_tid", &tid, true)
        .load(&object)
        .expect("load test object");
    let schema = TemplateSchema::parse("ratelimit", SCHEMA).expect("schema");
    let (tx, mut rx) = tokio::sync::mpsc::channel(10_000);
    let stats = Arc::new(EventStats::default());
    let stop = Arc::new(StopSignal::new());
    let sink = Sink {
        name: "ratelimit".into(),
        decoder: EventDecoder::new(&schema).expect("decoder"),
        resolver: Arc::new(NoContainers),
        tx,
        stats: stats.clone(),
        stop: stop.clone(),
    };
    let handle = spawn_perfbuf(ebpf.take_map("events").expect("events"), 64, sink).expect("spawn");
    let prog: &mut RawTracePoint = ebpf
        .program_mut("raw_tp_sys_enter")
        .expect("program")
        .try_into()
        .expect("raw tp");
    prog.load().expect("load program");
    prog.attach("sys_enter").expect("attach");
    const N: u64 = 500;
    for _ in 0..N {
        // SAFETY: getppid has no preconditions.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
    std::thread::sleep(Duration::from_millis(400));
    stop.stop();
    handle.join().expect("join");
    let map = ebpf.map("huatuo_counters").expect("counters");
    let array = PerCpuArray::<&MapData, u64>::try_from(map).expect("per-cpu array");
    let emitted: u64 = array.get(&0, 0).expect("read").iter().sum();
    let mut received = 0;
    while rx.try_recv().is_ok() {
        received += 1;
    }
    assert_eq!(
        emitted, N,
        "no rate limit, big buffers: every call is emitted"
    );
    assert_eq!(received, N);
    assert_eq!(stats.decode_errors.load(Ordering::Relaxed), 0);
}
