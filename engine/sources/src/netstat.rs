//! `proc.netstat`: the protocol counters of `<net>/netstat` and `<net>/snmp`, as open
//! fields named `Group_Key` (`TcpExt_ListenDrops`, `Tcp_ActiveOpens`).

use crate::common::{int, polled, SampleBuilder};
use crate::file_reader::{FileReader, FileSpec, ParseFailure};
use huatuo_dsl::catalog::SourceSchema;
use huatuo_dsl::units::Dim;
use huatuo_dsl::value::{Sample, Value};
use std::path::Path;

/// Catalog name.
pub const NAME: &str = "proc.netstat";

/// The schema of `proc.netstat`.
pub fn schema() -> SourceSchema {
    let mut schema = polled(
        NAME,
        "protocol counters of /proc/net/netstat and /proc/net/snmp, named Group_Key",
        &[],
        vec![
            int("TcpExt_ListenDrops", Dim::Count, "SYNs dropped at listen"),
            int(
                "TcpExt_ListenOverflows",
                Dim::Count,
                "accept queue overflows",
            ),
            int("Tcp_ActiveOpens", Dim::Count, "active TCP opens"),
            int("Tcp_PassiveOpens", Dim::Count, "passive TCP opens"),
            int("Tcp_RetransSegs", Dim::Count, "retransmitted segments"),
            int("Udp_InDatagrams", Dim::Count, "UDP datagrams received"),
        ],
    );
    schema.open_fields = Some(int("", Dim::Count, "a netstat/snmp counter"));
    schema
}

/// Adds the counters of one netstat-format text (pairs of `Group: names` / `Group: values`).
pub fn parse_into(text: &str, sample: &mut SampleBuilder) -> Result<(), String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    while let Some((index, header)) = lines.next() {
        let at = |msg: String| format!("line {}: {msg}", index + 1);
        let Some((group, names)) = header.split_once(':') else {
            return Err(at(format!("expected `Group: names`, found {header:?}")));
        };
        let Some((_, values_line)) = lines.next() else {
            return Err(at(format!("{group}: header without a values line")));
        };
        let Some((value_group, values)) = values_line.split_once(':') else {
            return Err(at(format!("{group}: values line lacks its `{group}:`")));
        };
        if value_group != group {
            return Err(at(format!(
                "{group}: followed by {value_group:?} instead of its values"
            )));
        }
        let names: Vec<_> = names.split_whitespace().collect();
        let values: Vec<_> = values.split_whitespace().collect();
        if names.len() != values.len() {
            return Err(at(format!(
                "{group}: {} names but {} values",
                names.len(),
                values.len()
            )));
        }
        for (name, value) in names.into_iter().zip(values) {
            let value: i64 = value
                .parse()
                .map_err(|_| at(format!("{group} {name}: not a number: {value:?}")))?;
            sample.set(format!("{group}_{name}"), Value::Int(value));
        }
    }
    Ok(())
}

/// Parses the texts of `netstat` and `snmp` (either may be missing) into one sample.
pub fn parse(texts: &[Option<String>], now_ns: i64) -> Result<Vec<Sample>, ParseFailure> {
    let mut sample = SampleBuilder::new();
    for (index, text) in texts.iter().enumerate() {
        if let Some(text) = text {
            parse_into(text, &mut sample).map_err(|m| ParseFailure::new(index, m))?;
        }
    }
    Ok(vec![sample.build(NAME, now_ns)])
}

/// A reader of `<net>/netstat` and `<net>/snmp`; the first is required.
pub fn reader(net: &Path) -> FileReader {
    FileReader::new(
        schema(),
        vec![
            FileSpec {
                path: net.join("netstat"),
                required: true,
            },
            FileSpec {
                path: net.join("snmp"),
                required: true,
            },
        ],
        Box::new(parse),
    )
}
