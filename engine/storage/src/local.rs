//! Local file storage: `<dir>/<tracer_name>`, rotated by size, a bounded number kept.
//!
//! Records hold commands, paths, connection tuples and stacks: files are created 0600 and the
//! directory 0700 (a file an earlier version left readable to others is tightened when next
//! written; an existing directory keeps its mode, it may be shared).

use crate::document::Document;
use crate::StorageError;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of record files.
pub const FILE_MODE: u32 = 0o600;
/// Mode of the record directory when the agent creates it.
pub const DIR_MODE: u32 = 0o700;

/// Settings of `[Storage.LocalFile]`.
#[derive(Debug, Clone)]
pub struct LocalFileSettings {
    /// Directory holding one file per tracer.
    pub dir: PathBuf,
    /// Size in bytes at which a tracer's file is rotated.
    pub rotation_bytes: u64,
    /// How many rotated files are kept per tracer.
    pub max_rotation: usize,
}

/// Appends records to one file per tracer: HUATUO's header line (see [`header`]), then the
/// JSON document on one line.
#[derive(Debug)]
pub struct LocalFileStore {
    settings: LocalFileSettings,
}

impl LocalFileStore {
    /// Creates the store, creating its directory (mode 0700).
    pub fn new(settings: LocalFileSettings) -> Result<Self, StorageError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&settings.dir)
            .map_err(|e| StorageError::io(&settings.dir, e))?;
        Ok(LocalFileStore { settings })
    }

    /// The file that holds the newest records of `tracer_name`.
    pub fn path_of(&self, tracer_name: &str) -> PathBuf {
        self.settings.dir.join(sanitize(tracer_name))
    }

    /// Writes one document, rotating the tracer's file first when it would grow too large.
    pub fn write(&self, doc: &Document) -> Result<(), StorageError> {
        let path = self.path_of(&doc.tracer_name);
        let entry = format!("{}\n{}\n", header(doc), doc.body);
        let meta = fs::metadata(&path).ok();
        let current = meta.as_ref().map_or(0, fs::Metadata::len);
        if current > 0 && current + entry.len() as u64 > self.settings.rotation_bytes {
            rotate(&path, self.settings.max_rotation as u64)?;
        } else if meta.is_some_and(|m| m.permissions().mode() & 0o077 != 0) {
            fs::set_permissions(&path, fs::Permissions::from_mode(FILE_MODE))
                .map_err(|e| StorageError::io(&path, e))?;
        }
        let mut file: File = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(|e| StorageError::io(&path, e))?;
        file.write_all(entry.as_bytes())
            .map_err(|e| StorageError::io(&path, e))
    }
}

/// The line written before each record, as HUATUO writes it: the record's local time to the
/// second, `Host=` and `Region=`, and for a container's record `ContainerHost=`,
/// `ContainerID=`, `ContainerType=` and `ContainerLevel=`:
/// `2025-06-11 15:54:46 Host=node1 Region=us01 ContainerHost=web-1 ContainerID=ab12 ContainerType=normal ContainerLevel=1`.
pub fn header(doc: &Document) -> String {
    // `tracer_time` is `YYYY-MM-DD HH:MM:SS.mmm +zzzz`: its first 19 characters are the second.
    let time = doc.field("tracer_time");
    let mut line = format!(
        "{} Host={} Region={}",
        time.get(..19).unwrap_or(time),
        doc.field("hostname"),
        doc.field("region")
    );
    if !doc.field("container_id").is_empty() {
        for (key, field) in [
            ("ContainerHost", "container_hostname"),
            ("ContainerID", "container_id"),
            ("ContainerType", "container_type"),
            ("ContainerLevel", "container_qos"),
        ] {
            line.push_str(&format!(" {key}={}", doc.field(field)));
        }
    }
    line
}

/// The JSON documents of a local record file's text, in order: every line that is a JSON
/// object (the header lines are not).
pub fn documents(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|line| line.starts_with('{'))
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Rotates `path` keeping `keep` older files: shifts `name.N-1` → `name.N` … `name` →
/// `name.1`, dropping what exceeds the limit (`keep` 0 removes `path`). Only the rotated files
/// that exist are touched (the directory is listed once), so the cost does not depend on `keep`.
pub fn rotate(path: &Path, keep: u64) -> Result<(), StorageError> {
    let numbered = |n: u64| PathBuf::from(format!("{}.{}", path.display(), n));
    if keep == 0 {
        return fs::remove_file(path).map_err(|e| StorageError::io(path, e));
    }
    let mut rotated = rotated_numbers(path)?;
    // Oldest first, so a rename never lands on a file still to be moved.
    rotated.sort_unstable_by(|a, b| b.cmp(a));
    for n in rotated {
        let from = numbered(n);
        if n >= keep {
            fs::remove_file(&from).map_err(|e| StorageError::io(&from, e))?;
        } else {
            fs::rename(&from, numbered(n + 1)).map_err(|e| StorageError::io(&from, e))?;
        }
    }
    fs::rename(path, numbered(1)).map_err(|e| StorageError::io(path, e))
}

/// The numbers `N` of the existing `name.N` files next to `path`.
fn rotated_numbers(path: &Path) -> Result<Vec<u64>, StorageError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{name}.");
    let mut numbers = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))? {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        let file_name = entry.file_name();
        let number = file_name
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u64>().ok());
        numbers.extend(number);
    }
    Ok(numbers)
}

/// Keeps a tracer name usable as a file name.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
