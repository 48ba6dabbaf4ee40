//! `sys.xfs`: counters of each mounted XFS filesystem from `/sys/fs/xfs/<device>/stats/stats`,
//! and its free journal space (see [`crate::xfs_log`]).

use crate::common::{int, parse_u64, polled, read_error, read_text, saturate, SampleBuilder};
use crate::xfs_log;
use huatuo_dsl::catalog::SourceSchema;
use huatuo_dsl::source::{ReadError, Reader};
use huatuo_dsl::units::Dim;
use huatuo_dsl::value::{Sample, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Catalog name.
pub const NAME: &str = "sys.xfs";

/// The directory of the counters summed over every XFS filesystem, not a device.
const GLOBAL_DIR: &str = "stats";

/// Each field: its name, the stats line it is on, its position after the line's name, and
/// its meaning (the kernel's `struct __xfsstats` order).
const FIELDS: [(&str, &str, usize, &str); 7] = [
    ("alloc_extents", "extent_alloc", 0, "extents allocated"),
    ("alloc_blocks", "extent_alloc", 1, "blocks allocated"),
    ("inode_attempts", "ig", 0, "inode cache lookups"),
    ("inode_missed", "ig", 3, "inode cache lookups that missed"),
    (
        "buf_locked_waited",
        "buf",
        3,
        "buffer lookups that waited for the buffer lock",
    ),
    (
        "buf_busy_locked",
        "buf",
        4,
        "buffer lookups that found the buffer locked and busy",
    ),
    (
        "log_space_sleep",
        "push_ail",
        1,
        "transactions that slept waiting for log space",
    ),
];

/// The field of the free journal space.
const LOG_FREE: &str = "log_free_bytes";

/// The schema of `sys.xfs`.
pub fn schema() -> SourceSchema {
    let mut fields: Vec<_> = FIELDS
        .iter()
        .map(|(name, _, _, doc)| int(name, Dim::Count, doc))
        .collect();
    fields.push(int(
        LOG_FREE,
        Dim::Bytes,
        "free journal space: the log size (XFS_IOC_FSGEOMETRY) less the space between the log \
         tail and head and the reserve grant head (/sys/fs/xfs/<device>/log); absent when the \
         mount point or the log files cannot be read",
    ));
    polled(
        NAME,
        "counters of each mounted XFS filesystem from /sys/fs/xfs/<device>/stats/stats, and \
         its free journal space",
        &["device"],
        fields,
    )
}

/// Parses one `stats` file into the fields of [`FIELDS`]; an error names the line missing.
pub fn parse(text: &str, device: &str, now_ns: i64) -> Result<Sample, String> {
    let mut sample = SampleBuilder::new().label("device", device);
    for (name, line, index, _) in FIELDS {
        let values = text
            .lines()
            .find_map(|l| l.strip_prefix(line)?.strip_prefix(' '))
            .ok_or_else(|| format!("no `{line}` line"))?;
        let token = values
            .split_whitespace()
            .nth(index)
            .ok_or_else(|| format!("`{line}` line has no value {}", index + 1))?;
        sample = sample.uint(name, parse_u64(token, name)?);
    }
    Ok(sample.build(NAME, now_ns))
}

/// Finds the log size in bytes of the XFS filesystem on a device (as `/sys/fs/xfs` names it).
pub type LogSizeFn = Box<dyn Fn(&str) -> std::io::Result<u64> + Send>;

/// Reads every `<sys>/fs/xfs/<device>/stats/stats` and `<device>/log`; no XFS (the directory
/// absent) is no samples.
pub struct XfsReader {
    root: PathBuf,
    log_size: LogSizeFn,
    /// Devices whose free log space could not be computed, each logged once.
    no_log: BTreeSet<String>,
}

impl XfsReader {
    /// A reader rooted at the sysfs mount `sys`, finding each filesystem's mount point in
    /// `<proc>/self/mountinfo` for its log size.
    pub fn new(sys: &Path, proc: &Path) -> Self {
        let (sys_root, proc_root) = (sys.to_path_buf(), proc.to_path_buf());
        Self::with_log_size(
            sys,
            Box::new(move |device| {
                xfs_log::log_size(&xfs_log::mount_point(&sys_root, &proc_root, device)?)
            }),
        )
    }

    /// A reader rooted at `sys` taking log sizes from the recorded JSON `file`
    /// (`{"<device>": <bytes>}`), read at each poll.
    pub fn recorded(sys: &Path, file: &Path) -> Self {
        let file = file.to_path_buf();
        Self::with_log_size(
            sys,
            Box::new(move |device| {
                let text = std::fs::read_to_string(&file)?;
                let sizes: std::collections::BTreeMap<String, u64> = serde_json::from_str(&text)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                sizes.get(device).copied().ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("{device} not in {}", file.display()),
                    )
                })
            }),
        )
    }

    /// A reader rooted at `sys` that asks `log_size` for each filesystem's log size.
    pub fn with_log_size(sys: &Path, log_size: LogSizeFn) -> Self {
        Self {
            root: sys.join("fs/xfs"),
            log_size,
            no_log: BTreeSet::new(),
        }
    }

    /// The free log space of `device`, `None` (logged once per device) when unknown.
    fn log_free(&mut self, device: &str) -> Option<u64> {
        let free = (self.log_size)(device)
            .map_err(|e| format!("log size: {e}"))
            .and_then(|size| {
                let used = xfs_log::read_log_use(&self.root.join(device).join("log"))?;
                Ok(used.free_bytes(size))
            });
        match free {
            Ok(free) => {
                self.no_log.remove(device);
                Some(free)
            }
            Err(e) => {
                if self.no_log.insert(device.to_string()) {
                    log::warn!("{NAME}: no {LOG_FREE} for {device}: {e}");
                }
                None
            }
        }
    }
}

impl Reader for XfsReader {
    fn schema(&self) -> SourceSchema {
        schema()
    }

    fn read(&mut self, now_ns: i64) -> Result<Vec<Sample>, ReadError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(read_error(NAME, &self.root, e.to_string())),
        };
        let mut devices: Vec<String> = entries
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name != GLOBAL_DIR)
            .collect();
        devices.sort();
        let mut samples = Vec::new();
        for device in &devices {
            let path = self.root.join(device).join("stats/stats");
            let text = match read_text(NAME, &path) {
                Ok(text) => text,
                // Unmounted between listing and reading.
                Err(_) if !self.root.join(device).exists() => continue,
                Err(e) => return Err(e),
            };
            let mut sample =
                parse(&text, device, now_ns).map_err(|m| read_error(NAME, &path, m))?;
            if let Some(free) = self.log_free(device) {
                sample
                    .fields
                    .insert(LOG_FREE.into(), Value::Int(saturate(free)));
            }
            samples.push(sample);
        }
        self.no_log.retain(|d| devices.contains(d));
        Ok(samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use huatuo_dsl::value::Value;

    const STATS: &str = "extent_alloc 12 340 5 60\nig 100 80 0 20 0 3 1\n\
        push_ail 9 4 0 0 0 0 0 0 0 0\nbuf 500 20 7 6 2 1 0 0 30\n";

    #[test]
    fn fields_come_from_their_line_and_position() {
        let sample = parse(STATS, "vdb", 0).expect("parses");
        let value = |name: &str| sample.fields.get(name).cloned();
        assert_eq!(value("alloc_extents"), Some(Value::Int(12)));
        assert_eq!(value("alloc_blocks"), Some(Value::Int(340)));
        assert_eq!(value("inode_attempts"), Some(Value::Int(100)));
        assert_eq!(value("inode_missed"), Some(Value::Int(20)));
        assert_eq!(value("buf_locked_waited"), Some(Value::Int(6)));
        assert_eq!(value("buf_busy_locked"), Some(Value::Int(2)));
        assert_eq!(value("log_space_sleep"), Some(Value::Int(4)));
        assert_eq!(sample.labels.get("device").map(String::as_str), Some("vdb"));
    }

    #[test]
    fn a_missing_line_or_value_is_named() {
        let err = parse("extent_alloc 1 2 3 4\n", "vdb", 0).unwrap_err();
        assert!(err.contains("`ig`"), "{err}");
        let err = parse(
            &STATS.replace("buf 500 20 7 6 2 1 0 0 30", "buf 500 20 7"),
            "vdb",
            0,
        )
        .unwrap_err();
        assert!(err.contains("`buf` line has no value 4"), "{err}");
    }

    #[test]
    fn no_xfs_is_no_samples_and_the_global_directory_is_skipped() {
        let dir = std::env::temp_dir().join(format!("huatuo-xfs-{}", std::process::id()));
        let mut reader = XfsReader::new(&dir, &dir);
        assert!(reader.read(0).expect("absent is fine").is_empty());
        for device in ["stats", "vdb"] {
            let stats = dir.join("fs/xfs").join(device).join("stats");
            std::fs::create_dir_all(&stats).expect("mkdir");
            std::fs::write(stats.join("stats"), STATS).expect("write");
        }
        let samples = reader.read(0).expect("reads");
        assert_eq!(samples.len(), 1);
        assert_eq!(
            samples[0].labels.get("device").map(String::as_str),
            Some("vdb")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
