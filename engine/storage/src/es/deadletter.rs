//! The dead-letter file: documents the cluster refused for their content (a bulk item
//! answered 400 `mapper_parsing_exception`, a whole request answered 4xx) are kept here with
//! the cluster's reason instead of being dropped, one JSON line each:
//! `{"refused_at":…,"status":400,"reason":"…","index":"…","document":{…}}`.
//!
//! The file is bounded: when a line would take it past its cap it is renamed to `<name>.1`
//! (replacing the previous one, whose documents are counted in `dead_letter_dropped`) and a
//! new file is started, so at most twice the cap is kept on disk.

use super::bulk::Pending;
use super::counters::EsCounters;
use super::ratelog::RateLog;
use serde_json::{json, Value as Json};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Mode of the dead-letter files: documents carry process names, paths and addresses.
const FILE_MODE: u32 = 0o600;

/// The dead-letter file of one sink (see the module documentation).
#[derive(Debug)]
pub struct DeadLetters {
    path: PathBuf,
    max_bytes: u64,
    counters: Arc<EsCounters>,
    log: RateLog,
}

impl DeadLetters {
    /// Dead letters kept in `path`, at most `max_bytes` per file.
    pub fn new(path: PathBuf, max_bytes: u64, counters: Arc<EsCounters>) -> DeadLetters {
        DeadLetters {
            path,
            max_bytes: max_bytes.max(1),
            counters,
            log: RateLog::new("dead letters"),
        }
    }

    /// The file dead letters are written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps `doc`, refused with `status` for `reason`, in the file; counts it.
    pub fn keep(&mut self, doc: &Pending, index: &str, status: u16, reason: &str) {
        let document = serde_json::from_str::<Json>(&doc.line).unwrap_or(Json::Null);
        let mut line = json!({
            "refused_at": chrono::Local::now().to_rfc3339(),
            "status": status,
            "reason": reason,
            "index": index,
            "document": document,
        })
        .to_string();
        line.push('\n');
        match self.append(line.as_bytes()) {
            Ok(()) => EsCounters::add(&self.counters.dead_lettered, 1),
            Err(e) => {
                EsCounters::add(&self.counters.lost, 1);
                self.log.warn(format!(
                    "{}: {e}; the refused document is lost",
                    self.path.display()
                ));
            }
        }
    }

    fn append(&mut self, line: &[u8]) -> std::io::Result<()> {
        let size = fs::metadata(&self.path).map_or(0, |m| m.len());
        if size > 0 && size + line.len() as u64 > self.max_bytes {
            let rotated = PathBuf::from(format!("{}.1", self.path.display()));
            let dropped = fs::read(&rotated)
                .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
                .unwrap_or(0);
            fs::rename(&self.path, &rotated)?;
            EsCounters::add(&self.counters.dead_letter_dropped, dropped);
        }
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(FILE_MODE)
            .open(&self.path)?;
        file.write_all(line)
    }
}
