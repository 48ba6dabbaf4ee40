//! Kernel test: huatuo.h's rate limit and output account for every event exactly
//! (emitted + shed + lost == events the program saw), and user space receives every
//! emitted record through the transport.

mod common;

use aya::maps::{MapData, PerCpuArray};
use aya::programs::RawTracePoint;
use aya::EbpfLoader;
use common::kernel_ready;
use huatuo_bpf::decode::EventDecoder;
use huatuo_bpf::transport::{spawn_perfbuf, spawn_ringbuf, EventStats, Sink};
use huatuo_bpf::{NoContainers, TemplateSchema};
use std::sync::atomic::{AtomicBool, Ordering};
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

#[test]
fn emitted_shed_and_lost_add_up_to_what_the_program_saw() {
    if !kernel_ready("emitted_shed_and_lost_add_up_to_what_the_program_saw") {
        return;
    }
    let object = std::fs::read(concat!(env!("OUT_DIR"), "/test_ratelimit.bpf.o"))
        .expect("test object built by build.rs");
    // SAFETY: gettid has no preconditions. Tests run in parallel threads: filter by thread.
    let tid = unsafe { libc::gettid() } as u64;
    // 1000 tokens of burst let ~1000 records through at once; a one-page ring buffer
    // holds 256 of the 16-byte records, so both the limiter and the buffer shed.
    let (rate, burst) = (100_000u64, 1_000u64);
    let mut ebpf = EbpfLoader::new()
        .override_global("target_tid", &tid, true)
        .override_global("rate_per_sec", &rate, true)
        .override_global("burst", &burst, true)
        .map_max_entries("events", 4096)
        .load(&object)
        .expect("load test object");
    let prog: &mut RawTracePoint = ebpf
        .program_mut("raw_tp_sys_enter")
        .expect("program")
        .try_into()
        .expect("raw tp");
    prog.load().expect("load program");
    prog.attach("sys_enter").expect("attach");

    for _ in 0..CALLS {
        // SAFETY: getppid has no preconditions.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }

    let counters = {
        let map = ebpf.map("huatuo_counters").expect("counters");
        let array = PerCpuArray::<&MapData, u64>::try_from(map).expect("per-cpu array");
        let sum = |i: u32| array.get(&i, 0).expect("read").iter().sum::<u64>();
        [sum(0), sum(1), sum(2)]
    };
    let [emitted, shed, lost] = counters;
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
    let stop = Arc::new(AtomicBool::new(false));
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
    stop.store(true, Ordering::Relaxed);
    handle.join().expect("join");
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
    let stop = Arc::new(AtomicBool::new(false));
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
    stop.store(true, Ordering::Relaxed);
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
