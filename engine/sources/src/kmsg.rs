//! `kmsg`: the kernel log as a stream, from `/dev/kmsg` or from a recorded file in the same
//! text format (one record per line: `prio,seq,usec,flags;message`; lines starting with a
//! space are the record's `KEY=value` continuation and are skipped).

use crate::common::{field, int, read_error, read_text};
use crate::stream::{SampleStream, Sink, DEFAULT_CAPACITY};
use huatuo_dsl::catalog::{FieldType, SourceMode, SourceSchema};
use huatuo_dsl::source::ReadError;
use huatuo_dsl::units::Dim;
use huatuo_dsl::value::{Sample, Value};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// Catalog name.
pub const NAME: &str = "kmsg";

/// Largest record the kernel hands out in one read (`CONSOLE_EXT_LOG_MAX`).
const RECORD_BUFFER: usize = 8192;

/// One kernel log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgRecord {
    /// Syslog priority 0 (emerg) .. 7 (debug).
    pub priority: u8,
    /// Syslog facility (0 for the kernel).
    pub facility: u32,
    /// Sequence number; a gap means records were lost.
    pub seq: u64,
    /// Monotonic time of the record in nanoseconds since boot.
    pub timestamp_ns: u64,
    /// The message text.
    pub message: String,
}

/// The schema of `kmsg`.
pub fn schema() -> SourceSchema {
    SourceSchema {
        name: NAME.to_string(),
        description: "kernel log records from /dev/kmsg".to_string(),
        mode: SourceMode::Stream,
        default_interval_s: None,
        per_container: false,
        container_only: false,
        labels: Vec::new(),
        fields: vec![
            int(
                "priority",
                Dim::Count,
                "syslog priority, 0 emerg .. 7 debug",
            ),
            int("facility", Dim::Count, "syslog facility, 0 for the kernel"),
            int("seq", Dim::Count, "record sequence number"),
            int("timestamp", Dim::Time, "time since boot"),
            field("message", FieldType::Str, Dim::Count, "the log message"),
        ],
        open_fields: None,
        captures: Vec::new(),
        tunables: Vec::new(),
    }
}

/// Parses one record (`6,339,5140900,-;text`, continuation lines ignored).
pub fn parse_record(text: &str) -> Result<KmsgRecord, String> {
    let first = text.lines().next().unwrap_or_default();
    let (prefix, message) = first
        .split_once(';')
        .ok_or_else(|| format!("record without `;`: {first:?}"))?;
    let mut parts = prefix.split(',');
    let mut number = |what: &str| -> Result<u64, String> {
        let token = parts.next().ok_or_else(|| format!("record lacks {what}"))?;
        token
            .parse::<u64>()
            .map_err(|_| format!("{what}: expected a number, found {token:?}"))
    };
    let level = number("priority")?;
    let seq = number("sequence")?;
    let usec = number("timestamp")?;
    Ok(KmsgRecord {
        priority: (level & 7) as u8,
        facility: u32::try_from(level >> 3).unwrap_or(u32::MAX),
        seq,
        timestamp_ns: usec.saturating_mul(1000),
        message: unescape(message),
    })
}

/// Undoes the kernel's `\xNN` escaping of non-printable bytes.
fn unescape(message: &str) -> String {
    let mut out = Vec::with_capacity(message.len());
    let bytes = message.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 2..i + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], bytes.get(i + 1), hex) {
            (b'\\', Some(b'x'), Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The sample of one record, stamped `now_ns`.
pub fn to_sample(record: &KmsgRecord, now_ns: i64) -> Sample {
    let fields = BTreeMap::from([
        ("priority".to_string(), Value::Int(record.priority.into())),
        ("facility".to_string(), Value::Int(record.facility.into())),
        (
            "seq".to_string(),
            Value::Int(i64::try_from(record.seq).unwrap_or(i64::MAX)),
        ),
        (
            "timestamp".to_string(),
            Value::Int(i64::try_from(record.timestamp_ns).unwrap_or(i64::MAX)),
        ),
        ("message".to_string(), Value::Str(record.message.clone())),
    ]);
    Sample {
        source: NAME.to_string(),
        time_ns: now_ns,
        labels: BTreeMap::new(),
        fields,
    }
}

/// Parses a recorded kmsg file into records; the error names the line.
pub fn parse_file(text: &str) -> Result<Vec<KmsgRecord>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.is_empty() && !line.starts_with(' '))
        .map(|(index, line)| parse_record(line).map_err(|m| format!("line {}: {m}", index + 1)))
        .collect()
}

fn wall_clock_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// Starts the kmsg stream. On a character device (`/dev/kmsg`) records are read as they
/// come (from the oldest kept record when `from_start`, else only new ones); a regular file
/// is a recording, replayed once.
pub fn spawn(path: &Path, from_start: bool) -> Result<SampleStream, ReadError> {
    let metadata = std::fs::metadata(path).map_err(|e| read_error(NAME, path, e.to_string()))?;
    let path_buf = path.to_path_buf();
    let thread_error = |e: std::io::Error| read_error(NAME, path, e.to_string());
    if !metadata.file_type().is_char_device() {
        let records = parse_file(&read_text(NAME, path)?).map_err(|m| read_error(NAME, path, m))?;
        return SampleStream::spawn("huatuo-kmsg-replay", DEFAULT_CAPACITY, move |sink| {
            for record in &records {
                if !sink.push(to_sample(record, wall_clock_ns())) {
                    break;
                }
            }
            Ok(())
        })
        .map_err(thread_error);
    }
    let mut file = std::fs::File::open(path).map_err(|e| read_error(NAME, path, e.to_string()))?;
    if !from_start {
        file.seek(SeekFrom::End(0))
            .map_err(|e| read_error(NAME, path, e.to_string()))?;
    }
    SampleStream::spawn("huatuo-kmsg", DEFAULT_CAPACITY, move |sink| {
        follow(file, &path_buf, sink)
    })
    .map_err(thread_error)
}

/// Reads `/dev/kmsg` record by record until the consumer goes away.
fn follow(mut file: std::fs::File, path: &Path, sink: &Sink) -> Result<(), ReadError> {
    let mut buf = vec![0u8; RECORD_BUFFER];
    let mut last_seq: Option<u64> = None;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            // EPIPE: records were overwritten before we read them; the gap is counted below.
            Err(e) if e.raw_os_error() == Some(32) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(NAME, path, e.to_string())),
        };
        let text = String::from_utf8_lossy(&buf[..n]);
        let record = match parse_record(&text) {
            Ok(record) => record,
            Err(m) => {
                log::debug!("{NAME}: {}: {m}", path.display());
                sink.count_dropped(1);
                continue;
            }
        };
        if let Some(last) = last_seq {
            sink.count_dropped(record.seq.saturating_sub(last).saturating_sub(1));
        }
        last_seq = Some(record.seq);
        if !sink.push(to_sample(&record, wall_clock_ns())) {
            return Ok(());
        }
    }
}
