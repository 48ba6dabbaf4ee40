//! `proc.sockstat`: socket counts of `<net>/sockstat`, plus the TCP memory limit from
//! `<proc>/sys/net/ipv4/tcp_mem` and the page size, so rules can compute TCP memory usage.

use crate::common::{int, parse_u64, polled, saturate, SampleBuilder};
use crate::file_reader::{FileReader, FileSpec, ParseFailure};
use huatuo_dsl::catalog::SourceSchema;
use huatuo_dsl::units::Dim;
use huatuo_dsl::value::{Sample, Value};
use std::path::Path;

/// Catalog name.
pub const NAME: &str = "proc.sockstat";

/// The schema of `proc.sockstat`.
pub fn schema() -> SourceSchema {
    let counts = [
        "sockets_used",
        "TCP_inuse",
        "TCP_orphan",
        "TCP_tw",
        "TCP_alloc",
        "UDP_inuse",
        "UDPLITE_inuse",
        "RAW_inuse",
        "FRAG_inuse",
    ];
    let mut fields: Vec<_> = counts
        .iter()
        .map(|n| int(n, Dim::Count, "a /proc/net/sockstat count"))
        .collect();
    fields.push(int("TCP_mem", Dim::Count, "pages used by TCP"));
    fields.push(int("UDP_mem", Dim::Count, "pages used by UDP"));
    fields.push(int("FRAG_memory", Dim::Bytes, "memory of IP fragments"));
    fields.push(int(
        "tcp_mem_limit_pages",
        Dim::Count,
        "third value of net.ipv4.tcp_mem (pages)",
    ));
    fields.push(int("page_size", Dim::Bytes, "size of a memory page"));
    let mut schema = polled(
        NAME,
        "socket counts of /proc/net/sockstat, TCP memory limit and page size",
        &[],
        fields,
    );
    schema.open_fields = Some(int("", Dim::Count, "a /proc/net/sockstat value"));
    schema
}

/// Adds the `Proto: key value ...` lines of a sockstat text as `Proto_key` fields.
pub fn parse_sockstat(text: &str, sample: &mut SampleBuilder) -> Result<(), String> {
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |msg: String| format!("line {}: {msg}", index + 1);
        let Some((proto, rest)) = line.split_once(':') else {
            return Err(at(format!("expected `Proto: key value`, found {line:?}")));
        };
        let words: Vec<_> = rest.split_whitespace().collect();
        if words.is_empty() || words.len() % 2 != 0 {
            return Err(at(format!("{proto}: expected key value pairs")));
        }
        for pair in words.chunks(2) {
            let value = parse_u64(pair[1], pair[0]).map_err(at)?;
            sample.set(format!("{proto}_{}", pair[0]), Value::Int(saturate(value)));
        }
    }
    Ok(())
}

/// Parses the third value (pressure limit, in pages) of `tcp_mem`.
pub fn parse_tcp_mem(text: &str) -> Result<u64, String> {
    let words: Vec<_> = text.split_whitespace().collect();
    match words.as_slice() {
        [_, _, limit] => parse_u64(limit, "tcp_mem limit"),
        _ => Err(format!("expected three numbers, found {text:?}")),
    }
}

/// Parses the texts of `sockstat` and `tcp_mem` (missing: the limit is left out).
pub fn parse(
    texts: &[Option<String>],
    now_ns: i64,
    page_size: u64,
) -> Result<Vec<Sample>, ParseFailure> {
    let mut sample = SampleBuilder::new().uint("page_size", page_size);
    if let Some(text) = texts.first().and_then(|t| t.as_deref()) {
        parse_sockstat(text, &mut sample).map_err(|m| ParseFailure::new(0, m))?;
    }
    if let Some(text) = texts.get(1).and_then(|t| t.as_deref()) {
        let limit = parse_tcp_mem(text).map_err(|m| ParseFailure::new(1, m))?;
        sample = sample.uint("tcp_mem_limit_pages", limit);
    }
    Ok(vec![sample.build(NAME, now_ns)])
}

/// A reader of `<net>/sockstat` and `<proc>/sys/net/ipv4/tcp_mem`.
pub fn reader(net: &Path, proc: &Path) -> FileReader {
    let page_size = procfs::page_size();
    FileReader::new(
        schema(),
        vec![
            FileSpec {
                path: net.join("sockstat"),
                required: true,
            },
            FileSpec {
                path: proc.join("sys/net/ipv4/tcp_mem"),
                required: false,
            },
        ],
        Box::new(move |texts, now| parse(texts, now, page_size)),
    )
}
