//! `proc.stat`: host (and optionally per-CPU) CPU time from `/proc/stat`, in nanoseconds.

use crate::common::{int, polled, SampleBuilder};
use crate::file_reader::FileReader;
use huatuo_dsl::catalog::SourceSchema;
use huatuo_dsl::units::Dim;
use huatuo_dsl::value::Sample;
use procfs::{CpuTime, ExplicitSystemInfo, FromReadSI, KernelStats};
use std::path::Path;

/// Catalog name.
pub const NAME: &str = "proc.stat";

const TIME_FIELDS: [(&str, &str); 11] = [
    ("user", "time in user mode (includes guest)"),
    ("nice", "time in user mode at low priority"),
    ("system", "time in kernel mode"),
    ("idle", "idle time"),
    ("iowait", "idle time with I/O outstanding"),
    ("irq", "time servicing hard interrupts"),
    ("softirq", "time servicing softirqs"),
    ("steal", "time stolen by the hypervisor"),
    ("guest", "time running guests"),
    ("guest_nice", "time running niced guests"),
    (
        "total",
        "user+nice+system+idle+iowait+irq+softirq+steal (guest is inside user)",
    ),
];

/// Catalog name of the per-CPU source.
pub const CPUS: &str = "proc.stat_cpu";

fn time_fields() -> Vec<huatuo_dsl::catalog::FieldSchema> {
    TIME_FIELDS
        .iter()
        .map(|(name, doc)| int(name, Dim::Time, doc))
        .collect()
}

/// The schema of `proc.stat`: the host's CPU time and scheduler counters.
pub fn schema() -> SourceSchema {
    let mut fields = time_fields();
    fields.push(int("ctxt", Dim::Count, "context switches since boot"));
    fields.push(int("processes", Dim::Count, "forks since boot"));
    fields.push(int("procs_running", Dim::Count, "runnable tasks"));
    fields.push(int("procs_blocked", Dim::Count, "tasks blocked on I/O"));
    polled(NAME, "CPU time of the host from /proc/stat", &[], fields)
}

/// The schema of `proc.stat_cpu`: CPU time per CPU (label `cpu`).
pub fn cpu_schema() -> SourceSchema {
    polled(
        CPUS,
        "CPU time per CPU from the cpuN lines of /proc/stat",
        &["cpu"],
        time_fields(),
    )
}

fn kernel_stats(text: &str, ticks_per_second: u64) -> Result<KernelStats, String> {
    let info = ExplicitSystemInfo {
        boot_time_secs: 0,
        ticks_per_second,
        page_size: 4096,
        is_little_endian: cfg!(target_endian = "little"),
    };
    KernelStats::from_read(text.as_bytes(), &info).map_err(|e| e.to_string())
}

fn ns_per_tick(ticks_per_second: u64) -> u64 {
    1_000_000_000 / ticks_per_second.max(1)
}

/// Parses `/proc/stat` into the host sample; `ticks_per_second` is USER_HZ.
pub fn parse(text: &str, now_ns: i64, ticks_per_second: u64) -> Result<Vec<Sample>, String> {
    let stats = kernel_stats(text, ticks_per_second)?;
    let mut host = cpu_fields(
        SampleBuilder::new(),
        &stats.total,
        ns_per_tick(ticks_per_second),
    )
    .uint("ctxt", stats.ctxt)
    .uint("processes", stats.processes);
    if let Some(running) = stats.procs_running {
        host = host.uint("procs_running", running.into());
    }
    if let Some(blocked) = stats.procs_blocked {
        host = host.uint("procs_blocked", blocked.into());
    }
    Ok(vec![host.build(NAME, now_ns)])
}

/// Parses `/proc/stat` into one sample per CPU.
pub fn parse_cpus(text: &str, now_ns: i64, ticks_per_second: u64) -> Result<Vec<Sample>, String> {
    let stats = kernel_stats(text, ticks_per_second)?;
    Ok(stats
        .cpu_time
        .iter()
        .enumerate()
        .map(|(index, cpu)| {
            let builder = SampleBuilder::new().label("cpu", index.to_string());
            cpu_fields(builder, cpu, ns_per_tick(ticks_per_second)).build(CPUS, now_ns)
        })
        .collect())
}
fn cpu_fields(builder: SampleBuilder, cpu: &CpuTime, ns_per_tick: u64) -> SampleBuilder {
    let optional = [
        cpu.iowait,
        cpu.irq,
        cpu.softirq,
        cpu.steal,
        cpu.guest,
        cpu.guest_nice,
    ]
    .map(|v| v.unwrap_or(0));
    let ticks = [cpu.user, cpu.nice, cpu.system, cpu.idle]
        .into_iter()
        .chain(optional)
        .collect::<Vec<_>>();
    let total = ticks[..8]
        .iter()
        .fold(0u64, |acc, t| acc.saturating_add(*t));
    ticks
        .iter()
        .chain(std::iter::once(&total))
        .zip(TIME_FIELDS.iter())
        .fold(builder, |b, (value, (name, _))| {
            b.uint(name, value.saturating_mul(ns_per_tick))
        })
}

/// A reader of `<proc>/stat` for the host sample.
pub fn reader(proc: &Path) -> FileReader {
    let tps = procfs::ticks_per_second();
    FileReader::single(schema(), proc.join("stat"), move |text, now| {
        parse(text, now, tps)
    })
}

/// A reader of `<proc>/stat` for per-CPU samples.
pub fn cpu_reader(proc: &Path) -> FileReader {
    let tps = procfs::ticks_per_second();
    FileReader::single(cpu_schema(), proc.join("stat"), move |text, now| {
        parse_cpus(text, now, tps)
    })
}
