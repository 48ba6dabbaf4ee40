//! Local file storage: `<dir>/<tracer_name>`, rotated by size, a bounded number kept.

use crate::document::Document;
use crate::StorageError;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

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

/// Appends records to one file per tracer: a `#` header line, then the JSON document.
#[derive(Debug)]
pub struct LocalFileStore {
    settings: LocalFileSettings,
}

impl LocalFileStore {
    /// Creates the store, creating its directory.
    pub fn new(settings: LocalFileSettings) -> Result<Self, StorageError> {
        fs::create_dir_all(&settings.dir).map_err(|e| StorageError::io(&settings.dir, e))?;
        Ok(LocalFileStore { settings })
    }

    /// The file that holds the newest records of `tracer_name`.
    pub fn path_of(&self, tracer_name: &str) -> PathBuf {
        self.settings.dir.join(sanitize(tracer_name))
    }

    /// Writes one document, rotating the tracer's file first when it would grow too large.
    pub fn write(&self, doc: &Document) -> Result<(), StorageError> {
        let path = self.path_of(&doc.tracer_name);
        let entry = format!(
            "# {} {} {}\n{}\n",
            doc.field("tracer_time"),
            doc.tracer_name,
            doc.tracer_id,
            doc.body
        );
        let current = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if current > 0 && current + entry.len() as u64 > self.settings.rotation_bytes {
            self.rotate(&path)?;
        }
        let mut file: File = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| StorageError::io(&path, e))?;
        file.write_all(entry.as_bytes())
            .map_err(|e| StorageError::io(&path, e))
    }

    /// Shifts `name.N-1` → `name.N` … `name` → `name.1`, dropping what exceeds the limit.
    fn rotate(&self, path: &Path) -> Result<(), StorageError> {
        let keep = self.settings.max_rotation;
        let numbered = |n: usize| PathBuf::from(format!("{}.{}", path.display(), n));
        if keep == 0 {
            return fs::remove_file(path).map_err(|e| StorageError::io(path, e));
        }
        let oldest = numbered(keep);
        if oldest.exists() {
            fs::remove_file(&oldest).map_err(|e| StorageError::io(&oldest, e))?;
        }
        for n in (1..keep).rev() {
            let from = numbered(n);
            if from.exists() {
                let to = numbered(n + 1);
                fs::rename(&from, &to).map_err(|e| StorageError::io(&from, e))?;
            }
        }
        fs::rename(path, numbered(1)).map_err(|e| StorageError::io(path, e))
    }
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
