//! `proc.bonding`: one sample per bonding master from `/proc/net/bonding/<bond>`.
//!
//! The file is what the kernel's `drivers/net/bonding/bond_procfs.c` prints: a driver banner,
//! `Key: value` lines of the master (`Bonding Mode`, `MII Status`, ...), for 802.3ad an
//! `802.3ad info` block whose `Active Aggregator Info:` lines are tab-indented, then one
//! block per slave starting at `Slave Interface: <name>` with its churn states and counts
//! and the indented `details actor lacp pdu:` / `details partner lacp pdu:` sub-blocks.
//! Lines this parser does not know are kept in `content` and otherwise ignored, so older and
//! newer kernels (which add or drop lines) read alike.

use crate::common::{field, int, polled, read_error, read_text, saturate, SampleBuilder};
use huatuo_dsl::catalog::{FieldType, SourceSchema};
use huatuo_dsl::source::{ReadError, Reader};
use huatuo_dsl::units::Dim;
use huatuo_dsl::value::{Sample, Value};
use std::path::{Path, PathBuf};

/// Catalog name.
pub const NAME: &str = "proc.bonding";
/// Most bytes of a bond's file kept in `content`; the rest is cut and counted.
pub const MAX_CONTENT_BYTES: usize = 64 << 10;
/// How `Bonding Mode:` names IEEE 802.3ad (mode 4) in every kernel since 2.6.
const LACP_MODE_PREFIX: &str = "IEEE 802.3ad";

/// The schema of `proc.bonding`.
pub fn schema() -> SourceSchema {
    let text = |name: &str, description: &str| field(name, FieldType::Str, Dim::Count, description);
    polled(
        NAME,
        "bonding masters from /proc/net/bonding/*: mode, 802.3ad aggregator and LACP state per slave",
        &["device"],
        vec![
            text("mode", "Bonding Mode line (IEEE 802.3ad Dynamic link aggregation, ...)"),
            field(
                "lacp_mode",
                FieldType::Bool,
                Dim::Count,
                "true when the bond runs IEEE 802.3ad (mode 4, LACP)",
            ),
            text("mii_status", "MII Status of the master (up, down)"),
            int(
                "aggregator_id",
                Dim::Count,
                "Aggregator ID of the active aggregator; 0 when there is none",
            ),
            int(
                "ports",
                Dim::Count,
                "Number of ports of the active aggregator; 0 when there is none",
            ),
            text(
                "partner_mac",
                "Partner Mac Address of the active aggregator; empty when there is none",
            ),
            int("slaves", Dim::Count, "slave interfaces of the bond"),
            int("slaves_up", Dim::Count, "slave interfaces whose MII Status is up"),
            int(
                "link_failures",
                Dim::Count,
                "Link Failure Count summed over the slaves",
            ),
            int(
                "churned",
                Dim::Count,
                "Actor and Partner Churned Count summed over the slaves",
            ),
            text(
                "lacp_state",
                "one line of every LACP-relevant value (active aggregator, and per slave MII status, \
                 aggregator, churn states and counts, link failures, actor/partner port state); \
                 it changes whenever one of them does",
            ),
            text(
                "content",
                "`/proc/net/bonding/<bond>` and the file's text, cut at 64 KiB",
            ),
            int(
                "content_truncated",
                Dim::Bytes,
                "bytes of the file cut from content (0 when it fits)",
            ),
        ],
    )
}

/// One slave of a bond as the file describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slave {
    /// Slave Interface name.
    pub name: String,
    /// MII Status.
    pub mii_status: String,
    /// Link Failure Count.
    pub link_failures: u64,
    /// Aggregator ID the slave belongs to (802.3ad only).
    pub aggregator_id: Option<u64>,
    /// Actor Churn State (none, monitoring, churned).
    pub actor_churn: String,
    /// Partner Churn State.
    pub partner_churn: String,
    /// Actor Churned Count.
    pub actor_churned: u64,
    /// Partner Churned Count.
    pub partner_churned: u64,
    /// `port state` of the actor's LACP PDU (the LACP state bits).
    pub actor_port_state: Option<u64>,
    /// `port state` of the partner's LACP PDU.
    pub partner_port_state: Option<u64>,
}

/// The parsed content of one `/proc/net/bonding/<bond>` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bond {
    /// Bonding Mode line.
    pub mode: String,
    /// MII Status of the master.
    pub mii_status: String,
    /// Aggregator ID of the active aggregator.
    pub aggregator_id: Option<u64>,
    /// Number of ports of the active aggregator.
    pub ports: Option<u64>,
    /// Partner Mac Address of the active aggregator.
    pub partner_mac: String,
    /// The slaves in file order.
    pub slaves: Vec<Slave>,
}

/// Which block of the file a line belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Master,
    ActiveAggregator,
    Slave,
    ActorPdu,
    PartnerPdu,
}

fn number(value: &str, key: &str, line_no: usize) -> Result<u64, String> {
    value
        .parse::<u64>()
        .map_err(|_| format!("line {line_no}: {key}: expected a number, found {value:?}"))
}

impl Bond {
    /// True when the bond runs IEEE 802.3ad.
    pub fn is_lacp(&self) -> bool {
        self.mode.starts_with(LACP_MODE_PREFIX)
    }

    /// The LACP-relevant values in one line, stable while none of them changes.
    pub fn lacp_state(&self) -> String {
        let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
        let mut state = format!(
            "aggregator={} ports={} partner={}",
            opt(self.aggregator_id),
            opt(self.ports),
            if self.partner_mac.is_empty() {
                "-"
            } else {
                &self.partner_mac
            }
        );
        for s in &self.slaves {
            state.push_str(&format!(
                "; {} mii={} aggregator={} churn={}/{} churned={}/{} failures={} port_state={}/{}",
                s.name,
                s.mii_status,
                opt(s.aggregator_id),
                s.actor_churn,
                s.partner_churn,
                s.actor_churned,
                s.partner_churned,
                s.link_failures,
                opt(s.actor_port_state),
                opt(s.partner_port_state),
            ));
        }
        state
    }
}

/// Parses the text of one bond's file; a number that does not parse is an error naming
/// its line.
pub fn parse_bond(text: &str) -> Result<Bond, String> {
    let mut bond = Bond::default();
    let mut block = Block::Master;
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let indented = line.starts_with([' ', '\t']);
        let trimmed = line.trim();
        let Some((key, value)) = trimmed.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if !indented {
            block = match (key, bond.slaves.is_empty()) {
                ("Slave Interface", _) => {
                    bond.slaves.push(Slave {
                        name: value.to_string(),
                        ..Slave::default()
                    });
                    continue;
                }
                ("Active Aggregator Info", _) => Block::ActiveAggregator,
                ("details actor lacp pdu", false) => Block::ActorPdu,
                ("details partner lacp pdu", false) => Block::PartnerPdu,
                (_, true) => Block::Master,
                (_, false) => Block::Slave,
            };
        }
        let slave = bond.slaves.last_mut();
        match (block, slave) {
            (Block::Master, _) => match key {
                "Bonding Mode" => bond.mode = value.to_string(),
                "MII Status" => bond.mii_status = value.to_string(),
                _ => {}
            },
            (Block::ActiveAggregator, _) => match key {
                "Aggregator ID" => bond.aggregator_id = Some(number(value, key, line_no)?),
                "Number of ports" => bond.ports = Some(number(value, key, line_no)?),
                "Partner Mac Address" => bond.partner_mac = value.to_string(),
                _ => {}
            },
            (Block::Slave, Some(slave)) => match key {
                "MII Status" => slave.mii_status = value.to_string(),
                "Link Failure Count" => slave.link_failures = number(value, key, line_no)?,
                "Aggregator ID" => slave.aggregator_id = Some(number(value, key, line_no)?),
                "Actor Churn State" => slave.actor_churn = value.to_string(),
                "Partner Churn State" => slave.partner_churn = value.to_string(),
                "Actor Churned Count" => slave.actor_churned = number(value, key, line_no)?,
                "Partner Churned Count" => slave.partner_churned = number(value, key, line_no)?,
                _ => {}
            },
            (Block::ActorPdu, Some(slave)) if key == "port state" => {
                slave.actor_port_state = Some(number(value, key, line_no)?);
            }
            (Block::PartnerPdu, Some(slave)) if key == "port state" => {
                slave.partner_port_state = Some(number(value, key, line_no)?);
            }
            _ => {}
        }
    }
    Ok(bond)
}

/// `content` as HUATUO records it (the file's path, then its text), cut at
/// [`MAX_CONTENT_BYTES`] on a character boundary; also returns how many bytes were cut.
pub fn bounded_content(path_line: &str, text: &str) -> (String, usize) {
    let mut content = format!("{path_line}\n{text}");
    if content.len() <= MAX_CONTENT_BYTES {
        return (content, 0);
    }
    let mut end = MAX_CONTENT_BYTES;
    while !content.is_char_boundary(end) {
        end -= 1;
    }
    let cut = content.len() - end;
    content.truncate(end);
    (content, cut)
}

/// The sample of bond `device` whose file reads `text`; `shown_path` is the path recorded
/// at the head of `content` (`/proc/net/bonding/<bond>` on a live host).
pub fn sample(device: &str, shown_path: &str, text: &str, now_ns: i64) -> Result<Sample, String> {
    let bond = parse_bond(text)?;
    let count = |n: usize| saturate(n as u64);
    let sum = |f: fn(&Slave) -> u64| {
        saturate(
            bond.slaves
                .iter()
                .map(f)
                .fold(0u64, |acc, v| acc.saturating_add(v)),
        )
    };
    let (content, truncated) = bounded_content(shown_path, text);
    let mut builder = SampleBuilder::new()
        .label("device", device)
        .int("aggregator_id", saturate(bond.aggregator_id.unwrap_or(0)))
        .int("ports", saturate(bond.ports.unwrap_or(0)))
        .int("slaves", count(bond.slaves.len()))
        .int(
            "slaves_up",
            count(bond.slaves.iter().filter(|s| s.mii_status == "up").count()),
        )
        .int("link_failures", sum(|s| s.link_failures))
        .int(
            "churned",
            sum(|s| s.actor_churned.saturating_add(s.partner_churned)),
        )
        .int("content_truncated", count(truncated));
    builder.set("lacp_mode", Value::Bool(bond.is_lacp()));
    builder.set("lacp_state", Value::Str(bond.lacp_state()));
    builder.set("mode", Value::Str(bond.mode));
    builder.set("mii_status", Value::Str(bond.mii_status));
    builder.set("partner_mac", Value::Str(bond.partner_mac));
    builder.set("content", Value::Str(content));
    Ok(builder.build(NAME, now_ns))
}

/// Reads every file of `<proc>/net/bonding`; a missing directory means no bonds.
pub struct BondingReader {
    dir: PathBuf,
}

impl BondingReader {
    /// A reader rooted at the procfs mount `proc`.
    pub fn new(proc: &Path) -> Self {
        Self {
            dir: proc.join("net/bonding"),
        }
    }
}

impl Reader for BondingReader {
    fn schema(&self) -> SourceSchema {
        schema()
    }

    fn read(&mut self, now_ns: i64) -> Result<Vec<Sample>, ReadError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            // No bonding driver loaded, or no bond: nothing to report.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(read_error(NAME, &self.dir, e.to_string())),
        };
        let mut names: Vec<String> = entries
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut samples = Vec::with_capacity(names.len());
        for name in names {
            let path = self.dir.join(&name);
            let text = match read_text(NAME, &path) {
                Ok(text) => text,
                // The bond was deleted between listing and reading.
                Err(_) if !path.exists() => continue,
                Err(e) => return Err(e),
            };
            let shown = format!("/proc/net/bonding/{name}");
            let sample =
                sample(&name, &shown, &text, now_ns).map_err(|m| read_error(NAME, &path, m))?;
            samples.push(sample);
        }
        Ok(samples)
    }
}
