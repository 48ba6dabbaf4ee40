//! `proc.diskstats`: per-device I/O counters from `/proc/diskstats`.

use crate::common::{int, polled, SampleBuilder};
use crate::file_reader::FileReader;
use huatuo_dsl::catalog::SourceSchema;
use huatuo_dsl::units::Dim;
use huatuo_dsl::value::Sample;
use procfs::{DiskStats, FromRead};
use std::path::Path;

/// Catalog name.
pub const NAME: &str = "proc.diskstats";

const SECTOR_BYTES: u64 = 512;
const NS_PER_MS: u64 = 1_000_000;

/// The schema of `proc.diskstats`.
pub fn schema() -> SourceSchema {
    polled(
        NAME,
        "block device I/O counters from /proc/diskstats",
        &["device"],
        vec![
            int("reads", Dim::Count, "reads completed"),
            int("reads_merged", Dim::Count, "reads merged"),
            int("read_bytes", Dim::Bytes, "bytes read (sectors x 512)"),
            int("read_time", Dim::Time, "time spent reading"),
            int("writes", Dim::Count, "writes completed"),
            int("writes_merged", Dim::Count, "writes merged"),
            int("write_bytes", Dim::Bytes, "bytes written (sectors x 512)"),
            int("write_time", Dim::Time, "time spent writing"),
            int("in_flight", Dim::Count, "I/Os currently in progress"),
            int("io_ticks", Dim::Time, "time the device had I/O in flight"),
            int("time_in_queue", Dim::Time, "weighted time spent doing I/Os"),
            int("major", Dim::Count, "the device's major number"),
            int("minor", Dim::Count, "the device's minor number"),
        ],
    )
}

/// Parses `/proc/diskstats`.
pub fn parse(text: &str, now_ns: i64) -> Result<Vec<Sample>, String> {
    let disks = DiskStats::from_read(text.as_bytes()).map_err(|e| e.to_string())?;
    Ok(disks
        .0
        .into_iter()
        .map(|d| {
            SampleBuilder::new()
                .label("device", d.name)
                .uint("reads", d.reads)
                .uint("reads_merged", d.merged)
                .uint("read_bytes", d.sectors_read.saturating_mul(SECTOR_BYTES))
                .uint("read_time", d.time_reading.saturating_mul(NS_PER_MS))
                .uint("writes", d.writes)
                .uint("writes_merged", d.writes_merged)
                .uint(
                    "write_bytes",
                    d.sectors_written.saturating_mul(SECTOR_BYTES),
                )
                .uint("write_time", d.time_writing.saturating_mul(NS_PER_MS))
                .uint("in_flight", d.in_progress)
                .uint("io_ticks", d.time_in_progress.saturating_mul(NS_PER_MS))
                .uint(
                    "time_in_queue",
                    d.weighted_time_in_progress.saturating_mul(NS_PER_MS),
                )
                .int("major", d.major.into())
                .int("minor", d.minor.into())
                .build(NAME, now_ns)
        })
        .collect())
}

/// A reader of `<proc>/diskstats`.
pub fn reader(proc: &Path) -> FileReader {
    FileReader::single(schema(), proc.join("diskstats"), parse)
}
