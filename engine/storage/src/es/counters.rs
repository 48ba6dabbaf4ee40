//! What the Elasticsearch sink did, readable at any time (exported as agent metrics and
//! shown in `/status`).

use serde_json::{json, Value as Json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Counts of the Elasticsearch/OpenSearch sink; every document ends in exactly one of
/// `indexed`, `failed`, `spool_dropped` or `lost`, or is still queued or spooled.
#[derive(Debug, Default)]
pub struct EsCounters {
    /// Documents the cluster confirmed (live and replayed).
    pub indexed: AtomicU64,
    /// Documents the cluster refused for good (a 4xx item or request); not retried, kept in
    /// the dead-letter file.
    pub failed: AtomicU64,
    /// Of `failed`, the documents written to the dead-letter file.
    pub dead_lettered: AtomicU64,
    /// Dead letters removed when the rotated dead-letter file was replaced.
    pub dead_letter_dropped: AtomicU64,
    /// Requests the cluster answered 401 or 403 (credentials or roles); retried.
    pub auth_failures: AtomicU64,
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
    /// What `/status` shows of the delivery: the index template and the last auth failure.
    pub delivery: Mutex<Delivery>,
}

/// The state of delivery an operator must see in `/status`.
#[derive(Debug, Default, Clone)]
pub struct Delivery {
    /// `installed`, or why the index template is not (yet) installed; empty before the try.
    pub template: String,
    /// The cluster's answer to the last request refused for its credentials, until a request
    /// succeeds.
    pub auth_error: Option<String>,
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

    /// Changes the delivery state.
    pub(crate) fn set_delivery(&self, change: impl FnOnce(&mut Delivery)) {
        change(&mut self.delivery.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// The delivery state and the document counts, as `/status` shows them.
    pub fn status(&self) -> Json {
        let delivery = self
            .delivery
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        json!({
            "index_template": delivery.template,
            "auth_error": delivery.auth_error,
            "auth_failures": Self::get(&self.auth_failures),
            "indexed": Self::get(&self.indexed),
            "failed": Self::get(&self.failed),
            "dead_lettered": Self::get(&self.dead_lettered),
            "spool_docs": Self::get(&self.spool_docs),
        })
    }
}
