//! `proc.loadavg`: load averages and task counts from `/proc/loadavg`.

use crate::common::{field, int, polled, SampleBuilder};
use crate::file_reader::FileReader;
use huatuo_dsl::catalog::{FieldType, SourceSchema};
use huatuo_dsl::units::Dim;
use huatuo_dsl::value::{Sample, Value};
use procfs::{FromRead, LoadAverage};
use std::path::Path;

/// Catalog name.
pub const NAME: &str = "proc.loadavg";

/// The schema of `proc.loadavg`.
pub fn schema() -> SourceSchema {
    polled(
        NAME,
        "host load averages from /proc/loadavg",
        &[],
        vec![
            field(
                "load1",
                FieldType::Float,
                Dim::Count,
                "1-minute load average",
            ),
            field(
                "load5",
                FieldType::Float,
                Dim::Count,
                "5-minute load average",
            ),
            field(
                "load15",
                FieldType::Float,
                Dim::Count,
                "15-minute load average",
            ),
            int("nr_running", Dim::Count, "runnable scheduling entities"),
            int("nr_threads", Dim::Count, "scheduling entities that exist"),
        ],
    )
}

/// Parses `/proc/loadavg`.
pub fn parse(text: &str, now_ns: i64) -> Result<Vec<Sample>, String> {
    let load = LoadAverage::from_read(text.as_bytes()).map_err(|e| e.to_string())?;
    let mut sample = SampleBuilder::new()
        .uint("nr_running", load.cur.into())
        .uint("nr_threads", load.max.into());
    // The kernel prints two decimals; going through the text keeps 0.74 exact as an f64.
    for (name, value) in [
        ("load1", load.one),
        ("load5", load.five),
        ("load15", load.fifteen),
    ] {
        let exact = format!("{value:.2}").parse::<f64>().unwrap_or(value.into());
        sample.set(name, Value::Float(exact));
    }
    Ok(vec![sample.build(NAME, now_ns)])
}

/// A reader of `<proc>/loadavg`.
pub fn reader(proc: &Path) -> FileReader {
    FileReader::single(schema(), proc.join("loadavg"), parse)
}
