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

/// The schema of `proc.stat`.
pub fn schema() -> SourceSchema {
    let mut fields: Vec<_> = TIME_FIELDS
        .iter()
        .map(|(name, doc)| int(name, Dim::Time, doc))
        .collect();
    fields.push(int("ctxt", Dim::Count, "context switches since boot"));
    fields.push(int("processes", Dim::Count, "forks since boot"));
    fields.push(int("procs_running", Dim::Count, "runnable tasks"));
    fields.push(int("procs_blocked", Dim::Count, "tasks blocked on I/O"));
    polled(
        NAME,
        "CPU time of the host from /proc/stat; per-CPU samples carry label `cpu` when enabled",
        &["cpu"],
        fields,
    )
}

/// Parses `/proc/stat`; `ticks_per_second` is USER_HZ; per-CPU samples when `per_cpu`.
pub fn parse(
    text: &str,
    now_ns: i64,
    ticks_per_second: u64,
    per_cpu: bool,
) -> Result<Vec<Sample>, String> {
    let info = ExplicitSystemInfo {
        boot_time_secs: 0,
        ticks_per_second,
        page_size: 4096,
        is_little_endian: cfg!(target_endian = "little"),
    };
    let stats = KernelStats::from_read(text.as_bytes(), &info).map_err(|e| e.to_string())?;
    let ns_per_tick = 1_000_000_000 / ticks_per_second.max(1);
    let mut host = cpu_fields(SampleBuilder::new(), &stats.total, ns_per_tick)
        .uint("ctxt", stats.ctxt)
        .uint("processes", stats.processes);
    if let Some(running) = stats.procs_running {
        host = host.uint("procs_running", running.into());
    }
    if let Some(blocked) = stats.procs_blocked {
        host = host.uint("procs_blocked", blocked.into());
    }
    let mut samples = vec![host.build(NAME, now_ns)];
    if per_cpu {
        for (index, cpu) in stats.cpu_time.iter().enumerate() {
            let builder = SampleBuilder::new().label("cpu", index.to_string());
            samples.push(cpu_fields(builder, cpu, ns_per_tick).build(NAME, now_ns));
        }
    }
    Ok(samples)
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

/// A reader of `<proc>/stat`.
pub fn reader(proc: &Path, per_cpu: bool) -> FileReader {
    let tps = procfs::ticks_per_second();
    FileReader::single(schema(), proc.join("stat"), move |text, now| {
        parse(text, now, tps, per_cpu)
    })
}
