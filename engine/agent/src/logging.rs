//! The agent's own log: standard error always, plus `[Log] File` rotated by size into a
//! bounded number of older files; `[Log] Level` sets the most verbose level written.
//!
//! `RUST_LOG`, when set, replaces `Level` (per-module filters for debugging).

use huatuo_config::Log;
use log::LevelFilter;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The log file, once `[Log] File` is applied.
static FILE: Mutex<Option<RotatingFile>> = Mutex::new(None);
/// Log lines the file could not take (disk full, file removed and not re-creatable).
static FILE_FAILURES: AtomicU64 = AtomicU64::new(0);

/// Starts logging to standard error at Info (or as `RUST_LOG` says) until [`apply`] reads
/// the config.
pub fn init() {
    let from_env = std::env::var_os("RUST_LOG").is_some();
    let mut builder = env_logger::Builder::from_env(env_logger::Env::default());
    if !from_env {
        builder.filter_level(LevelFilter::Trace);
    }
    builder.target(env_logger::Target::Pipe(Box::new(Tee)));
    if builder.try_init().is_ok() && !from_env {
        log::set_max_level(LevelFilter::Info);
    }
}

/// Applies `[Log]`: the level (unless `RUST_LOG` is set) and the file. A file that cannot be
/// opened is reported in the log and the agent keeps logging to standard error.
pub fn apply(config: &Log, limits: Rotation) {
    if std::env::var_os("RUST_LOG").is_none() {
        log::set_max_level(level_filter(&config.level));
    }
    if config.file.is_empty() {
        return;
    }
    let path = PathBuf::from(&config.file);
    match RotatingFile::open(&path, limits) {
        Ok(file) => {
            if let Ok(mut slot) = FILE.lock() {
                *slot = Some(file);
            }
            log::info!(
                "logging to {} (rotated at {} bytes, {} older files kept)",
                path.display(),
                limits.max_bytes,
                limits.keep
            );
        }
        Err(e) => log::error!(
            "[Log] File {}: {e}; logging to standard error only",
            path.display()
        ),
    }
}

/// Where the log file is and how many lines it could not take, for `/status`.
pub fn status() -> serde_json::Value {
    let file = FILE
        .lock()
        .ok()
        .and_then(|f| f.as_ref().map(|f| f.path.display().to_string()));
    serde_json::json!({
        "level": log::max_level().to_string(),
        "file": file,
        "file_write_failures": FILE_FAILURES.load(Ordering::Relaxed),
    })
}

/// HUATUO's level names (any case) as a filter; Panic logs errors only.
fn level_filter(level: &str) -> LevelFilter {
    match level.to_ascii_lowercase().as_str() {
        "debug" => LevelFilter::Debug,
        "warn" => LevelFilter::Warn,
        "error" | "panic" => LevelFilter::Error,
        _ => LevelFilter::Info,
    }
}

/// Size rotation bounds of the log file.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    /// The file is rotated before a line would take it past this size.
    pub max_bytes: u64,
    /// Older files kept (`FILE.1` newest .. `FILE.keep` oldest); older ones are removed.
    pub keep: u32,
}

impl Rotation {
    /// The bounds `[Log] MaxSize` (MB) and `MaxBackups` set.
    pub fn of(config: &Log) -> Rotation {
        Rotation {
            max_bytes: (config.max_size.max(1) as u64) << 20,
            keep: config.max_backups.clamp(1, 1000) as u32,
        }
    }
}

/// Writes every log record to standard error and to the log file, if any.
struct Tee;

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        if let Ok(mut slot) = FILE.lock() {
            if let Some(file) = slot.as_mut() {
                if file.write_record(buf).is_err() {
                    FILE_FAILURES.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// A log file rotated by size as the local record files are: `FILE` is renamed `FILE.1`,
/// `FILE.1` to `FILE.2`, ... and the oldest beyond `keep` is removed.
pub struct RotatingFile {
    path: PathBuf,
    file: Option<File>,
    written: u64,
    limits: Rotation,
}

impl RotatingFile {
    /// Opens (appends to) `path`, creating its directory.
    pub fn open(path: &Path, limits: Rotation) -> std::io::Result<RotatingFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = append(path)?;
        let written = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            file: Some(file),
            written,
            limits,
        })
    }

    /// Writes one record whole, rotating first when it would pass the size bound.
    pub fn write_record(&mut self, record: &[u8]) -> std::io::Result<()> {
        if self.written > 0 && self.written + record.len() as u64 > self.limits.max_bytes {
            self.rotate().map_err(std::io::Error::other)?;
        }
        let file = match self.file.as_mut() {
            Some(file) => file,
            None => self.file.insert(append(&self.path)?),
        };
        file.write_all(record)?;
        self.written += record.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), huatuo_storage::StorageError> {
        self.file = None;
        huatuo_storage::local::rotate(&self.path, u64::from(self.limits.keep))?;
        self.file =
            Some(append(&self.path).map_err(|e| huatuo_storage::StorageError::io(&self.path, e))?);
        self.written = 0;
        Ok(())
    }
}

fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_a_bounded_number_of_files() {
        let dir = std::env::temp_dir().join(format!("huatuo-logrot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub/agent.log");
        let limits = Rotation {
            max_bytes: 100,
            keep: 2,
        };
        let mut file = RotatingFile::open(&path, limits).expect("open");
        for i in 0..10 {
            file.write_record(format!("{i:039}\n").as_bytes())
                .expect("write");
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
        // 40-byte records, 100-byte bound: two per file; records 8, 9 in the live file,
        // 6, 7 in .1, 4, 5 in .2, nothing older.
        assert_eq!(read(&path), format!("{:039}\n{:039}\n", 8, 9));
        assert!(read(&numbered(1)).starts_with(&format!("{:039}", 6)));
        assert!(read(&numbered(2)).starts_with(&format!("{:039}", 4)));
        assert!(!numbered(3).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn huatuo_level_names_map_to_filters() {
        assert_eq!(level_filter("Debug"), LevelFilter::Debug);
        assert_eq!(level_filter("warn"), LevelFilter::Warn);
        assert_eq!(level_filter("Panic"), LevelFilter::Error);
        assert_eq!(level_filter("Info"), LevelFilter::Info);
    }
}
