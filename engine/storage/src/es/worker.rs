//! The background task: batches live documents, sends them, spools what cannot be delivered
//! and replays the spool with exponential backoff.
//!
//! Ordering: while the spool holds anything (or a retry is pending), live batches are
//! appended to the spool instead of being sent, so documents reach the cluster in the order
//! they were stored (except per-item retries, which go back to the spool's tail).

use super::bulk::{Failure, ItemOutcome, Pending};
use super::client::BulkClient;
use super::counters::EsCounters;
use super::deadletter::DeadLetters;
use super::ratelog::RateLog;
use super::spool::Spool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};

/// Batching and retry knobs of the worker.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Documents per bulk request at most.
    pub batch_docs: usize,
    /// Approximate bytes per bulk request at most.
    pub batch_bytes: usize,
    /// How long a document may wait for its batch to fill.
    pub batch_interval: Duration,
    /// First replay delay after a failure.
    pub retry_initial: Duration,
    /// Longest replay delay.
    pub retry_max: Duration,
}

/// Exponential backoff between `initial` and `max`.
#[derive(Debug)]
struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// The delay to wait now; the following one doubles, up to `max`.
    fn fail(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Back to the initial delay after a success.
    fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// Live documents gathered for one bulk request.
#[derive(Debug, Default)]
struct Batch {
    docs: Vec<Pending>,
    bytes: usize,
    /// When the batch is sent even if not full (set by its first document).
    deadline: Option<Instant>,
}

impl Batch {
    /// Adds a document, starting the batch's clock when it is the first.
    fn push(&mut self, doc: Pending, settings: &WorkerSettings) {
        self.bytes += doc.line.len();
        self.docs.push(doc);
        self.deadline
            .get_or_insert_with(|| Instant::now() + settings.batch_interval);
    }

    /// Whether the batch has reached its document or byte limit.
    fn is_full(&self, settings: &WorkerSettings) -> bool {
        !self.docs.is_empty()
            && (self.docs.len() >= settings.batch_docs || self.bytes >= settings.batch_bytes)
    }

    /// Takes the documents out, leaving an empty batch.
    fn take(&mut self) -> Vec<Pending> {
        self.bytes = 0;
        self.deadline = None;
        std::mem::take(&mut self.docs)
    }
}

/// The state of the background task.
pub struct Worker {
    client: BulkClient,
    spool: Arc<Mutex<Spool>>,
    counters: Arc<EsCounters>,
    settings: WorkerSettings,
    rx: mpsc::Receiver<Pending>,
    stop: watch::Receiver<bool>,
    backoff: Backoff,
    /// No live send and no replay before this instant.
    quiet_until: Instant,
    rejected_log: RateLog,
    delivery_log: RateLog,
    /// Where refused documents are kept.
    dead: DeadLetters,
    /// Whether the index template is installed, or was refused for good.
    template_done: bool,
}

/// Locks the spool; a panic elsewhere while it was held leaves it usable.
pub fn lock(spool: &Mutex<Spool>) -> MutexGuard<'_, Spool> {
    spool.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Worker {
    /// A worker taking documents from `rx` until `stop` turns true or every sender is gone.
    pub fn new(
        client: BulkClient,
        spool: Arc<Mutex<Spool>>,
        counters: Arc<EsCounters>,
        settings: WorkerSettings,
        dead: DeadLetters,
        rx: mpsc::Receiver<Pending>,
        stop: watch::Receiver<bool>,
    ) -> Worker {
        let backoff = Backoff {
            initial: settings.retry_initial,
            max: settings.retry_max.max(settings.retry_initial),
            next: settings.retry_initial,
        };
        Worker {
            client,
            spool,
            counters,
            settings,
            rx,
            stop,
            backoff,
            quiet_until: Instant::now(),
            rejected_log: RateLog::new("rejected documents"),
            delivery_log: RateLog::new("delivery"),
            dead,
            template_done: false,
        }
    }

    /// Runs until stopped; what is still in memory then goes to the spool.
    ///
    /// A due replay goes before new intake, and intake takes up to a whole batch at a time,
    /// so a steady stream of documents cannot starve the replay of the spool.
    pub async fn run(mut self) {
        let mut batch = Batch::default();
        loop {
            let replay_due = !lock(&self.spool).is_empty();
            let full = batch.is_full(&self.settings);
            let stopped = tokio::select! {
                biased;
                _ = self.stop.changed() => true,
                _ = std::future::ready(()), if full => !self.flush(batch.take()).await,
                _ = sleep_until(self.quiet_until), if replay_due => !self.replay().await,
                doc = self.rx.recv() => match doc {
                    Some(doc) => {
                        batch.push(doc, &self.settings);
                        while !batch.is_full(&self.settings) {
                            match self.rx.try_recv() {
                                Ok(doc) => batch.push(doc, &self.settings),
                                Err(_) => break,
                            }
                        }
                        false
                    }
                    None => true,
                },
                _ = sleep_until(batch.deadline.unwrap_or_else(Instant::now)), if batch.deadline.is_some() => {
                    !self.flush(batch.take()).await
                }
            };
            if stopped {
                break;
            }
        }
        let mut rest = batch.take();
        // Closed first, so a document stored meanwhile is either drained here or refused
        // (and spooled by the sender): none is left behind in the queue.
        self.rx.close();
        while let Ok(doc) = self.rx.try_recv() {
            rest.push(doc);
        }
        lock(&self.spool).append(&rest);
    }

    /// Sends a live batch, or spools it while the spool is draining or the cluster is down.
    /// Returns false when the worker was stopped meanwhile.
    async fn flush(&mut self, batch: Vec<Pending>) -> bool {
        if batch.is_empty() {
            return true;
        }
        if !lock(&self.spool).is_empty() || Instant::now() < self.quiet_until {
            lock(&self.spool).append(&batch);
            return true;
        }
        let Some(result) = self.send(&batch).await else {
            lock(&self.spool).append(&batch);
            return false;
        };
        let retry = self.settle(&batch, result, false);
        lock(&self.spool).append(&retry);
        true
    }

    /// Sends the head of the spool; confirmed documents leave it. Returns false when stopped.
    async fn replay(&mut self) -> bool {
        let chunk =
            lock(&self.spool).peek(self.settings.batch_docs.max(1), self.settings.batch_bytes);
        let chunk = match chunk {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return true,
            Err(e) => {
                // A segment that cannot be read would block every later document.
                log::warn!("Storage.ES spool: {e}; dropping the unreadable segment");
                lock(&self.spool).drop_oldest();
                return true;
            }
        };
        if chunk.docs.is_empty() {
            lock(&self.spool).commit(&chunk);
            return true;
        }
        let Some(result) = self.send(&chunk.docs).await else {
            return false;
        };
        let keep_chunk = matches!(&result, Err(f) if f.is_retryable());
        let retry = self.settle(&chunk.docs, result, true);
        if !keep_chunk {
            let mut spool = lock(&self.spool);
            spool.commit(&chunk);
            spool.append(&retry);
        }
        true
    }

    /// Sends one bulk request, installing the index template first until that is done;
    /// `None` when the worker is stopped before the answer.
    async fn send(&mut self, docs: &[Pending]) -> Option<Result<Vec<ItemOutcome>, Failure>> {
        if !self.template_done {
            let installed = tokio::select! {
                biased;
                _ = self.stop.changed() => return None,
                result = self.client.install_template() => result,
            };
            match installed {
                Ok(()) => {
                    self.template_done = true;
                    self.counters
                        .set_delivery(|d| d.template = "installed".into());
                    log::info!("Storage.ES: index template installed");
                }
                Err(Failure::Permanent(reason)) => {
                    // An old cluster without composable templates or flattened fields:
                    // documents still go, with the cluster's dynamic mappings.
                    self.template_done = true;
                    log::warn!("Storage.ES: index template refused ({reason}); sending without it");
                    self.counters
                        .set_delivery(|d| d.template = format!("refused: {reason}"));
                }
                Err(failure) => {
                    self.counters
                        .set_delivery(|d| d.template = format!("not yet installed: {failure}"));
                    return Some(Err(failure));
                }
            }
        }
        tokio::select! {
            biased;
            _ = self.stop.changed() => None,
            result = self.client.send(docs) => Some(result),
        }
    }

    /// Keeps refused documents in the dead-letter file and counts them.
    fn dead_letter(&mut self, docs: &[&Pending], status: u16, reason: &str) {
        EsCounters::add(&self.counters.failed, docs.len() as u64);
        for doc in docs {
            let index = doc.index(self.client.index());
            self.dead.keep(doc, &index, status, reason);
        }
        self.rejected_log.warn(format!(
            "{} documents refused ({reason}); kept in {}",
            docs.len(),
            self.dead.path().display()
        ));
    }

    /// Counts the outcome of a request and sets the next replay time; returns the documents
    /// to retry (all of them when the whole request is to be retried).
    fn settle(
        &mut self,
        docs: &[Pending],
        result: Result<Vec<ItemOutcome>, Failure>,
        replayed: bool,
    ) -> Vec<Pending> {
        let n = docs.len() as u64;
        let items = match result {
            Ok(items) => items,
            Err(failure @ (Failure::Retryable(_) | Failure::Auth(_))) => {
                if let Failure::Auth(reason) = &failure {
                    EsCounters::add(&self.counters.auth_failures, 1);
                    let reason = reason.clone();
                    self.counters.set_delivery(|d| d.auth_error = Some(reason));
                }
                let delay = self.backoff.fail();
                self.quiet_until = Instant::now() + delay;
                self.delivery_log.warn(format!(
                    "{n} documents not delivered ({failure}); spooled, next try in {delay:?}"
                ));
                return docs.to_vec();
            }
            Err(Failure::Permanent(reason)) => {
                let status = reason
                    .strip_prefix("HTTP ")
                    .and_then(|r| r.get(..3))
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                self.dead_letter(&docs.iter().collect::<Vec<_>>(), status, &reason);
                self.backoff.reset();
                return Vec::new();
            }
        };
        self.counters.set_delivery(|d| d.auth_error = None);
        let mut retry = Vec::new();
        let mut indexed = 0u64;
        for (doc, outcome) in docs.iter().zip(items) {
            match outcome {
                ItemOutcome::Indexed => indexed += 1,
                ItemOutcome::Rejected(status, reason) => self.dead_letter(&[doc], status, &reason),
                ItemOutcome::Retry => retry.push(doc.clone()),
            }
        }
        EsCounters::add(&self.counters.indexed, indexed);
        if replayed {
            EsCounters::add(&self.counters.replayed, indexed);
        }
        if retry.is_empty() {
            self.backoff.reset();
            self.quiet_until = Instant::now();
        } else {
            self.quiet_until = Instant::now() + self.backoff.fail();
        }
        retry
    }
}
