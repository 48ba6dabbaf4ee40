//! `proc.arp`: neighbour entries per device from `<net>/arp`, and the kernel's table size
//! from `<net>/stat/arp_cache`.

use crate::common::{int, polled, SampleBuilder};
use crate::file_reader::{FileReader, FileSpec, ParseFailure};
use huatuo_dsl::catalog::SourceSchema;
use huatuo_dsl::units::Dim;
use huatuo_dsl::value::Sample;
use std::collections::BTreeMap;
use std::path::Path;

/// Catalog name of the namespace-wide counts.
pub const NAME: &str = "proc.arp";
/// Catalog name of the per-device counts.
pub const DEVICES: &str = "proc.arp_devices";

/// The schema of `proc.arp`: one sample per network namespace.
pub fn schema() -> SourceSchema {
    polled(
        NAME,
        "ARP entries of a network namespace (/proc/net/arp) and the kernel's ARP table size",
        &[],
        vec![
            int("entries", Dim::Count, "entries listed in /proc/net/arp"),
            int(
                "arp_total",
                Dim::Count,
                "entries of the kernel's ARP table (stat/arp_cache), else `entries`",
            ),
        ],
    )
}

/// The schema of `proc.arp_devices`: one sample per device.
pub fn devices_schema() -> SourceSchema {
    polled(
        DEVICES,
        "ARP entries per device from /proc/net/arp",
        &["device"],
        vec![int("entries", Dim::Count, "ARP entries of the device")],
    )
}

/// Counts the entries of `/proc/net/arp` per device (the last column).
pub fn count_entries(text: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.starts_with("IP address") => {}
        _ => return Err("line 1: expected the `IP address ...` header".to_string()),
    }
    let mut per_device = BTreeMap::new();
    for (index, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let words: Vec<_> = line.split_whitespace().collect();
        let [_ip, _hw_type, _flags, _mac, _mask, device] = words.as_slice() else {
            return Err(format!(
                "line {}: expected 6 columns, found {}",
                index + 1,
                words.len()
            ));
        };
        *per_device.entry(device.to_string()).or_insert(0u64) += 1;
    }
    Ok(per_device)
}

/// Parses the `entries` column (hex) of the first row of `/proc/net/stat/arp_cache`.
pub fn parse_arp_cache(text: &str) -> Result<u64, String> {
    let mut lines = text.lines();
    let header: Vec<_> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    if header.first() != Some(&"entries") {
        return Err("line 1: expected a header starting with `entries`".to_string());
    }
    let row = lines.next().unwrap_or_default();
    let first = row.split_whitespace().next().unwrap_or_default();
    u64::from_str_radix(first, 16)
        .map_err(|_| format!("line 2: entries: expected a hex number, found {first:?}"))
}

/// Parses the texts of `arp` and `stat/arp_cache` (which may be missing) into the
/// namespace-wide sample.
pub fn parse(texts: &[Option<String>], now_ns: i64) -> Result<Vec<Sample>, ParseFailure> {
    let arp = texts.first().and_then(|t| t.as_deref()).unwrap_or_default();
    let entries: u64 = count_entries(arp)
        .map_err(|m| ParseFailure::new(0, m))?
        .values()
        .sum();
    let total = match texts.get(1).and_then(|t| t.as_deref()) {
        Some(text) => parse_arp_cache(text).map_err(|m| ParseFailure::new(1, m))?,
        None => entries,
    };
    Ok(vec![SampleBuilder::new()
        .uint("entries", entries)
        .uint("arp_total", total)
        .build(NAME, now_ns)])
}

/// Parses `arp` into one sample per device.
pub fn parse_devices(text: &str, now_ns: i64) -> Result<Vec<Sample>, String> {
    Ok(count_entries(text)?
        .into_iter()
        .map(|(device, entries)| {
            SampleBuilder::new()
                .label("device", device)
                .uint("entries", entries)
                .build(DEVICES, now_ns)
        })
        .collect())
}

/// A reader of `<net>/arp` and `<net>/stat/arp_cache`.
pub fn reader(net: &Path) -> FileReader {
    FileReader::new(
        schema(),
        vec![
            FileSpec {
                path: net.join("arp"),
                required: true,
            },
            FileSpec {
                path: net.join("stat/arp_cache"),
                required: false,
            },
        ],
        Box::new(parse),
    )
}

/// A reader of `<net>/arp`, per device.
pub fn devices_reader(net: &Path) -> FileReader {
    FileReader::single(devices_schema(), net.join("arp"), parse_devices)
}
