//! Record storage: local rotating files and Elasticsearch/OpenSearch with an on-disk spool.

pub mod document;
pub mod es;
pub mod history;
pub mod local;

pub use document::{Document, HostInfo};
pub use es::{EsCounters, EsError, EsSettings, EsSink};
pub use local::{LocalFileSettings, LocalFileStore};

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a record could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl StorageError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        StorageError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Counts of what storage did, exported as agent metrics.
#[derive(Debug, Default)]
pub struct StorageCounters {
    /// Records written to local files.
    pub local_written: AtomicU64,
    /// Records local files failed to take (disk full, permissions).
    pub local_failed: AtomicU64,
}

/// Every configured sink; a sink that fails is counted and the others still get the record.
#[derive(Debug, Default)]
pub struct Storage {
    local: Option<LocalFileStore>,
    es: Option<EsSink>,
    counters: StorageCounters,
}

impl Storage {
    /// Storage with local files when `local` is given (an empty `[Storage.LocalFile] Path`
    /// disables them).
    pub fn new(local: Option<LocalFileStore>) -> Self {
        Storage {
            local,
            es: None,
            counters: StorageCounters::default(),
        }
    }

    /// Adds the Elasticsearch/OpenSearch sink (`[Storage.ES]` enabled).
    pub fn with_es(mut self, es: EsSink) -> Self {
        self.es = Some(es);
        self
    }

    /// Stores one document in every sink.
    pub fn store(&self, doc: &Document) {
        if let Some(local) = &self.local {
            match local.write(doc) {
                Ok(()) => self.counters.local_written.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    log::warn!("local storage: {e}");
                    self.counters.local_failed.fetch_add(1, Ordering::Relaxed)
                }
            };
        }
        if let Some(es) = &self.es {
            es.store(doc);
        }
    }

    /// Moves what waits in memory for Elasticsearch to its on-disk spool and stops sending;
    /// later documents still reach every sink (Elasticsearch's through the spool).
    pub fn flush(&self) {
        if let Some(es) = &self.es {
            es.flush();
        }
    }

    /// What storage has done so far.
    pub fn counters(&self) -> &StorageCounters {
        &self.counters
    }

    /// What the Elasticsearch sink has done so far, when there is one.
    pub fn es_counters(&self) -> Option<&EsCounters> {
        self.es.as_ref().map(EsSink::counters)
    }
}
