//! `proc.buddyinfo`: free blocks per (node, zone, order) from `/proc/buddyinfo`.

use crate::common::{int, parse_u64, polled, SampleBuilder};
use crate::file_reader::FileReader;
use huatuo_dsl::catalog::SourceSchema;
use huatuo_dsl::units::Dim;
use huatuo_dsl::value::Sample;
use std::path::Path;

/// Catalog name.
pub const NAME: &str = "proc.buddyinfo";

/// The schema of `proc.buddyinfo`.
pub fn schema() -> SourceSchema {
    polled(
        NAME,
        "free blocks of the buddy allocator per node, zone and order",
        &["node", "zone", "order"],
        vec![int("blocks", Dim::Count, "free blocks of 2^order pages")],
    )
}

/// Parses `/proc/buddyinfo` (`Node 0, zone   Normal  447 9946 ...`).
pub fn parse(text: &str, now_ns: i64) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    let mut orders: Option<usize> = None;
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |msg: String| format!("line {}: {msg}", index + 1);
        let mut words = line.split_whitespace();
        let node = match (words.next(), words.next()) {
            (Some("Node"), Some(node)) => node.trim_end_matches(','),
            _ => return Err(at(format!("expected `Node N,`, found {line:?}"))),
        };
        parse_u64(node, "node").map_err(at)?;
        let zone = match (words.next(), words.next()) {
            (Some("zone"), Some(zone)) => zone,
            _ => return Err(at("expected `zone NAME`".to_string())),
        };
        let counts: Vec<_> = words.collect();
        match orders {
            Some(n) if n != counts.len() => {
                return Err(at(format!(
                    "{} orders where earlier lines have {n} (truncated?)",
                    counts.len()
                )))
            }
            _ => orders = Some(counts.len()),
        }
        for (order, count) in counts.into_iter().enumerate() {
            let blocks = parse_u64(count, "blocks").map_err(at)?;
            samples.push(
                SampleBuilder::new()
                    .label("node", node)
                    .label("zone", zone)
                    .label("order", order.to_string())
                    .uint("blocks", blocks)
                    .build(NAME, now_ns),
            );
        }
    }
    Ok(samples)
}

/// A reader of `<proc>/buddyinfo`.
pub fn reader(proc: &Path) -> FileReader {
    FileReader::single(schema(), proc.join("buddyinfo"), parse)
}
