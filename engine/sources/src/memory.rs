//! `proc.vmstat` (open counters) and `proc.meminfo` (sizes in bytes).

use crate::common::{int, parse_u64, polled, scaled, SampleBuilder};
use crate::file_reader::FileReader;
use huatuo_dsl::catalog::SourceSchema;
use huatuo_dsl::units::Dim;
use huatuo_dsl::value::{Sample, Value};
use procfs::{FromRead, VmStat};
use std::path::Path;

/// Catalog name of the vmstat source.
pub const VMSTAT: &str = "proc.vmstat";
/// Catalog name of the meminfo source.
pub const MEMINFO: &str = "proc.meminfo";

/// Meminfo keys that carry no unit: page counts, not sizes.
const MEMINFO_COUNTS: [&str; 4] = [
    "HugePages_Total",
    "HugePages_Free",
    "HugePages_Rsvd",
    "HugePages_Surp",
];

/// Meminfo keys every kernel since 3.14 prints, declared so rules get them checked.
const MEMINFO_BYTES: [&str; 12] = [
    "MemTotal",
    "MemFree",
    "MemAvailable",
    "Buffers",
    "Cached",
    "SwapTotal",
    "SwapFree",
    "AnonPages",
    "Mapped",
    "Shmem",
    "Slab",
    "Dirty",
];

/// The schema of `proc.vmstat`: every key of /proc/vmstat as an open count field.
pub fn vmstat_schema() -> SourceSchema {
    let mut schema = polled(
        VMSTAT,
        "host virtual memory counters from /proc/vmstat, named as the kernel names them",
        &[],
        vec![
            int("pgfault", Dim::Count, "page faults"),
            int("pgmajfault", Dim::Count, "major page faults"),
        ],
    );
    schema.open_fields = Some(int("", Dim::Count, "a /proc/vmstat counter"));
    schema
}

/// The schema of `proc.meminfo`: sizes in bytes, hugepage counts as counts.
pub fn meminfo_schema() -> SourceSchema {
    let mut fields: Vec<_> = MEMINFO_BYTES
        .iter()
        .map(|name| int(name, Dim::Bytes, "a /proc/meminfo size"))
        .collect();
    fields.extend(
        MEMINFO_COUNTS
            .iter()
            .map(|name| int(name, Dim::Count, "a /proc/meminfo hugepage count")),
    );
    let mut schema = polled(
        MEMINFO,
        "host memory sizes from /proc/meminfo, in bytes",
        &[],
        fields,
    );
    schema.open_fields = Some(int("", Dim::Bytes, "a /proc/meminfo size"));
    schema
}

/// Parses `/proc/vmstat` into one sample with a field per key.
pub fn parse_vmstat(text: &str, now_ns: i64) -> Result<Vec<Sample>, String> {
    let stat = VmStat::from_read(text.as_bytes()).map_err(|e| e.to_string())?;
    let mut sample = SampleBuilder::new();
    for (key, value) in stat.0 {
        sample.set(key, Value::Int(value));
    }
    Ok(vec![sample.build(VMSTAT, now_ns)])
}

/// Parses `/proc/meminfo` (`Key:   value [kB]` lines) into one sample in bytes.
pub fn parse_meminfo(text: &str, now_ns: i64) -> Result<Vec<Sample>, String> {
    let mut sample = SampleBuilder::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |msg: String| format!("line {}: {msg}", index + 1);
        let mut words = line.split_whitespace();
        let (Some(key), Some(value)) = (words.next(), words.next()) else {
            return Err(at(format!("expected `Key: value`, found {line:?}")));
        };
        let Some(key) = key.strip_suffix(':') else {
            return Err(at(format!("key {key:?} lacks its colon")));
        };
        let value = parse_u64(value, key).map_err(at)?;
        let scale = match words.next() {
            None => 1,
            Some("kB") => 1024,
            Some(unit) => return Err(at(format!("{key}: unknown unit {unit:?}"))),
        };
        sample.set(key, Value::Int(scaled(value, scale)));
    }
    let sample = sample.build(MEMINFO, now_ns);
    if !sample.fields.contains_key("MemTotal") {
        return Err("MemTotal missing".to_string());
    }
    Ok(vec![sample])
}

/// A reader of `<proc>/vmstat`.
pub fn vmstat_reader(proc: &Path) -> FileReader {
    FileReader::single(vmstat_schema(), proc.join("vmstat"), parse_vmstat)
}

/// A reader of `<proc>/meminfo`.
pub fn meminfo_reader(proc: &Path) -> FileReader {
    FileReader::single(meminfo_schema(), proc.join("meminfo"), parse_meminfo)
}
