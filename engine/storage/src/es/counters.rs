//! What the Elasticsearch sink did, readable at any time (exported as agent metrics).

use std::sync::atomic::{AtomicU64, Ordering};

/// Counts of the Elasticsearch/OpenSearch sink; every document ends in exactly one of
/// `indexed`, `failed`, `spool_dropped` or `lost`, or is still queued or spooled.
#[derive(Debug, Default)]
pub struct EsCounters {
    /// Documents the cluster confirmed (live and replayed).
    pub indexed: AtomicU64,
    /// Documents the cluster refused for good (a 4xx item or request); not retried.
    pub failed: AtomicU64,
    /// Documents written to the on-disk spool (a document retried twice counts twice).
    pub spooled: AtomicU64,
    /// Of `indexed`, the documents that came from the spool.
    pub replayed: AtomicU64,
    /// Documents dropped from the spool: the oldest segment when the spool is full, a
    /// document larger than the whole spool, or an unreadable spooled line.
    pub spool_dropped: AtomicU64,
    /// Documents lost because the spool could not be written (disk error).
    pub lost: AtomicU64,
    /// Bytes the spool holds on disk now.
    pub spool_bytes: AtomicU64,
    /// Documents waiting in the spool now.
    pub spool_docs: AtomicU64,
}

impl EsCounters {
    /// Adds `n` to a counter.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
