//! The interfaces every source and the config implement, shared by all engine crates.

use crate::catalog::SourceSchema;
use crate::value::{Sample, Value};

/// Why a read failed; the agent counts it per source and keeps running.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {path}: {message}")]
pub struct ReadError {
    /// Catalog name of the source.
    pub source_name: String,
    /// The file, netlink request or map that failed.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

/// A polled source: reads the kernel's view on demand and returns samples.
pub trait Reader: Send {
    /// The schema this reader registers into the catalog.
    fn schema(&self) -> SourceSchema;
    /// Reads once; `now_ns` is the wall-clock time to stamp samples with.
    fn read(&mut self, now_ns: i64) -> Result<Vec<Sample>, ReadError>;
    /// Why the source is absent on this machine (no device, no vendor library), when it is:
    /// its reads then return no samples and no error. `None` for a source that is there.
    fn unavailable(&self) -> Option<String> {
        None
    }
}

/// Read access to configuration values by dotted path, in base units.
pub trait ConfigValues {
    /// The value of `Section.Key`, or `None` when the key is unknown.
    fn value(&self, path: &str) -> Option<Value>;
}
