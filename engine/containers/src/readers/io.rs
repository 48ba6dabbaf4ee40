//! `cgroup.io`: per container and block device (`device` label, `major:minor`), bytes and
//! operations read and written. v2: `io.stat`; v1: `blkio.throttle.io_service_bytes` and
//! `blkio.throttle.io_serviced`.

use super::{field, int, schema, Ctx, Entity};
use crate::cgroupfs::{read_text, FsError};
use crate::container::Container;
use huatuo_dsl::catalog::{FieldType, SourceSchema};
use huatuo_dsl::units::Dim;
use huatuo_dsl::value::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Schema of `cgroup.io`.
pub(crate) fn io_schema() -> SourceSchema {
    let mut s = schema(
        "cgroup.io",
        "container block IO per device (cumulative)",
        vec![
            field("read_bytes", FieldType::Int, Dim::Bytes, "bytes read"),
            field("write_bytes", FieldType::Int, Dim::Bytes, "bytes written"),
            field("read_ios", FieldType::Int, Dim::Count, "read operations"),
            field("write_ios", FieldType::Int, Dim::Count, "write operations"),
        ],
    );
    s.labels = vec!["device".to_string()];
    s
}

type Devices = BTreeMap<String, BTreeMap<String, Value>>;

/// Reads `cgroup.io` for one container: one entity per device.
pub(crate) fn read_io(ctx: &Ctx<'_>, c: &Container) -> Result<Vec<Entity>, FsError> {
    let mut devices = Devices::new();
    if ctx.v2() {
        let path = ctx.file("io", c, "io.stat")?;
        parse_io_stat(&path, &read_text(&path)?, &mut devices)?;
    } else {
        for (file, read_key, write_key) in [
            (
                "blkio.throttle.io_service_bytes",
                "read_bytes",
                "write_bytes",
            ),
            ("blkio.throttle.io_serviced", "read_ios", "write_ios"),
        ] {
            let path = ctx.file("blkio", c, file)?;
            parse_blkio(&path, &read_text(&path)?, read_key, write_key, &mut devices)?;
        }
    }
    Ok(devices
        .into_iter()
        .map(|(dev, fields)| (BTreeMap::from([("device".to_string(), dev)]), fields))
        .collect())
}

fn number(path: &Path, line: usize, text: &str) -> Result<u64, FsError> {
    text.parse()
        .map_err(|e| FsError::parse(path, format!("line {line}: {text:?}: {e}")))
}

/// `8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0`.
fn parse_io_stat(path: &Path, text: &str, out: &mut Devices) -> Result<(), FsError> {
    for (idx, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        let Some(dev) = words.next() else { continue };
        let fields = out.entry(dev.to_string()).or_default();
        for word in words {
            let Some((key, value)) = word.split_once('=') else {
                return Err(FsError::parse(path, format!("line {}: {word:?}", idx + 1)));
            };
            let name = match key {
                "rbytes" => "read_bytes",
                "wbytes" => "write_bytes",
                "rios" => "read_ios",
                "wios" => "write_ios",
                _ => continue,
            };
            fields.insert(name.to_string(), int(number(path, idx + 1, value)?));
        }
    }
    Ok(())
}

/// `8:0 Read 123` lines (and `Write`, `Sync`, `Async`, `Discard`, `Total`), then `Total N`.
fn parse_blkio(
    path: &Path,
    text: &str,
    read_key: &str,
    write_key: &str,
    out: &mut Devices,
) -> Result<(), FsError> {
    for (idx, line) in text.lines().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (dev, op, value) = match words[..] {
            [dev, op, value] => (dev, op, value),
            [] | ["Total", _] => continue,
            _ => return Err(FsError::parse(path, format!("line {}: {line:?}", idx + 1))),
        };
        let name = match op {
            "Read" => read_key,
            "Write" => write_key,
            _ => continue,
        };
        let value = int(number(path, idx + 1, value)?);
        out.entry(dev.to_string())
            .or_default()
            .insert(name.to_string(), value);
    }
    Ok(())
}
