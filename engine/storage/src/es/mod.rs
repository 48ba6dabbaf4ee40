//! Elasticsearch 7/8 and OpenSearch 2 storage (`[Storage.ES]`) with a bounded on-disk spool.
//!
//! [`EsSink::store`] never waits: it queues the document in a bounded channel; a worker
//! thread batches documents into `_bulk` requests (basic auth, http or https). Documents the
//! cluster cannot take now (connection errors, 5xx, 429) go to the spool on disk and are
//! replayed in order with exponential backoff; a document leaves the spool only once the
//! bulk response confirms it. Documents the cluster refuses for their content (a 4xx item
//! such as 400 `mapper_parsing_exception`, or a 4xx request) are not retried: they are kept
//! in a bounded dead-letter file and counted. 401/403 answers are retried like 5xx and 429,
//! and reported in the counters' delivery state (`/status`). Before the first document, the
//! worker installs the index template of the daily `<Index>_cases_YYYY-MM-DD` indices.
//! When the queue is full, `store` appends the document to the spool directly, so a slow
//! cluster costs disk space, not documents (at the price of ordering against the queue).

mod bulk;
mod client;
mod counters;
mod deadletter;
mod ratelog;
mod spool;
pub mod template;
mod worker;

pub use counters::{Delivery, EsCounters};

use crate::document::Document;
use bulk::Pending;
use client::{BulkClient, ClientSettings};
use deadletter::DeadLetters;
use spool::Spool;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use worker::{lock, Worker, WorkerSettings};

/// Why the Elasticsearch sink could not start.
#[derive(Debug, thiserror::Error)]
pub enum EsError {
    /// `Address` is not a usable http(s) address.
    #[error("Storage.ES.Address {0:?}: {1}")]
    Address(String, String),
    /// The HTTP client could not be built (TLS setup, CA file).
    #[error("Storage.ES: {0}")]
    Client(String),
    /// The spool directory could not be opened.
    #[error("Storage.ES spool: {0}")]
    Spool(#[from] crate::StorageError),
    /// The worker thread or its runtime could not start.
    #[error("Storage.ES: worker: {0}")]
    Worker(std::io::Error),
}

/// Settings of the sink: `[Storage.ES]` plus the spool and batching knobs.
#[derive(Debug, Clone)]
pub struct EsSettings {
    /// `Address`: `http(s)://host:port`, or several separated by commas (tried in turn);
    /// `:9200` means localhost, no scheme means http.
    pub address: String,
    /// `Index`.
    pub index: String,
    /// `Username` (basic auth).
    pub username: String,
    /// `Password` (basic auth).
    pub password: String,
    /// Directory of the on-disk spool.
    pub spool_dir: PathBuf,
    /// Cap on the spool's size on disk, in bytes.
    pub spool_max_bytes: u64,
    /// Size at which a spool segment is closed (the unit dropped when the spool is full).
    pub spool_segment_bytes: u64,
    /// The dead-letter file: documents the cluster refused for their content.
    pub dead_letter_path: PathBuf,
    /// Cap on the dead-letter file, in bytes (one rotated file is kept besides).
    pub dead_letter_max_bytes: u64,
    /// Documents per bulk request at most.
    pub batch_docs: usize,
    /// Approximate bytes per bulk request at most.
    pub batch_bytes: usize,
    /// How long a document may wait for its batch to fill.
    pub batch_interval: Duration,
    /// Documents the in-memory queue holds before `store` writes to the spool directly.
    pub queue_capacity: usize,
    /// Timeout of one bulk request.
    pub request_timeout: Duration,
    /// First replay delay after a failure (doubling up to `retry_max`).
    pub retry_initial: Duration,
    /// Longest replay delay.
    pub retry_max: Duration,
    /// `CACertPath`: PEM file of CA certificates trusted besides the system roots.
    pub ca_cert_path: Option<PathBuf>,
    /// `InsecureSkipVerify`: accept https certificates that do not verify (off by default;
    /// with it on, records and credentials go to whoever answers).
    pub insecure_skip_verify: bool,
}

impl EsSettings {
    /// Settings with the given `[Storage.ES]` values and spool, and default batching:
    /// 500 documents or 5 MiB or 1 s per request, retries 1 s doubling to 60 s; dead letters
    /// in `<spool_dir>.dead-letter.ndjson`, 64 MiB at most.
    pub fn new(
        address: &str,
        index: &str,
        username: &str,
        password: &str,
        spool_dir: impl Into<PathBuf>,
        spool_max_bytes: u64,
    ) -> EsSettings {
        let spool_dir: PathBuf = spool_dir.into();
        let dead_letter_path = PathBuf::from(format!("{}.dead-letter.ndjson", spool_dir.display()));
        EsSettings {
            address: address.to_string(),
            index: index.to_string(),
            username: username.to_string(),
            password: password.to_string(),
            spool_dir,
            spool_max_bytes,
            spool_segment_bytes: (spool_max_bytes / 16).clamp(64 * 1024, 16 * 1024 * 1024),
            dead_letter_path,
            dead_letter_max_bytes: 64 * 1024 * 1024,
            batch_docs: 500,
            batch_bytes: 5 * 1024 * 1024,
            batch_interval: Duration::from_secs(1),
            queue_capacity: 4096,
            request_timeout: Duration::from_secs(10),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            ca_cert_path: None,
            insecure_skip_verify: false,
        }
    }
}

/// The Elasticsearch/OpenSearch sink: a queue in front of a worker thread (see the module
/// documentation). [`EsSink::flush`], [`EsSink::close`] or dropping it moves what is still in
/// memory to the spool, to be replayed by the next run.
pub struct EsSink {
    tx: mpsc::Sender<Pending>,
    stop: watch::Sender<bool>,
    worker: Mutex<Option<JoinHandle<()>>>,
    spool: Arc<Mutex<Spool>>,
    counters: Arc<EsCounters>,
}

impl std::fmt::Debug for EsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EsSink")
            .field("counters", &self.counters)
            .finish()
    }
}

impl EsSink {
    /// Opens the spool (taking over an earlier run's) and starts the worker thread.
    pub fn start(settings: EsSettings) -> Result<EsSink, EsError> {
        let client = BulkClient::new(&ClientSettings {
            address: &settings.address,
            index: &settings.index,
            username: &settings.username,
            password: &settings.password,
            timeout: settings.request_timeout,
            ca_cert_path: settings.ca_cert_path.as_deref(),
            insecure_skip_verify: settings.insecure_skip_verify,
        })?;
        let counters = Arc::new(EsCounters::default());
        let spool = Spool::open(
            &settings.spool_dir,
            settings.spool_max_bytes,
            settings.spool_segment_bytes,
            Arc::clone(&counters),
        )?;
        let spool = Arc::new(Mutex::new(spool));
        let (tx, rx) = mpsc::channel(settings.queue_capacity.max(1));
        let (stop, stop_rx) = watch::channel(false);
        let worker = Worker::new(
            client,
            Arc::clone(&spool),
            Arc::clone(&counters),
            WorkerSettings {
                batch_docs: settings.batch_docs.max(1),
                batch_bytes: settings.batch_bytes,
                batch_interval: settings.batch_interval,
                retry_initial: settings.retry_initial,
                retry_max: settings.retry_max,
            },
            DeadLetters::new(
                settings.dead_letter_path.clone(),
                settings.dead_letter_max_bytes,
                Arc::clone(&counters),
            ),
            rx,
            stop_rx,
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(EsError::Worker)?;
        let handle = std::thread::Builder::new()
            .name("huatuo-es".into())
            .spawn(move || runtime.block_on(worker.run()))
            .map_err(EsError::Worker)?;
        Ok(EsSink {
            tx,
            stop,
            worker: Mutex::new(Some(handle)),
            spool,
            counters,
        })
    }

    /// Queues one document for indexing; never waits for the network.
    pub fn store(&self, doc: &Document) {
        let pending = Pending::new(
            Some(doc.tracer_id.clone()),
            doc.field("time"),
            doc.body.to_string(),
        );
        // Once the worker has stopped the queue is closed: documents go to the spool.
        if let Err(e) = self.tx.try_send(pending) {
            let pending = match e {
                mpsc::error::TrySendError::Full(p) | mpsc::error::TrySendError::Closed(p) => p,
            };
            lock(&self.spool).append(&[pending]);
        }
    }

    /// What the sink has done so far.
    pub fn counters(&self) -> &EsCounters {
        &self.counters
    }

    /// A handle on the counters that outlives the sink.
    pub fn counters_handle(&self) -> Arc<EsCounters> {
        Arc::clone(&self.counters)
    }

    /// Stops the worker (interrupting a request in flight) and spools what is in memory.
    pub fn close(self) {
        self.flush();
    }

    /// Stops the worker (interrupting a request in flight) and waits until it has moved
    /// its batch and queue to the spool; documents stored afterwards go to the spool
    /// directly. Waits only for local disk writes, never for the cluster.
    pub fn flush(&self) {
        let _ = self.stop.send(true);
        let worker = self
            .worker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(worker) = worker {
            if worker.join().is_err() {
                log::error!("Storage.ES worker panicked");
            }
        }
    }
}

impl Drop for EsSink {
    fn drop(&mut self) {
        self.flush();
    }
}
