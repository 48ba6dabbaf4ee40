//! Stopping the running daemon within a bound (`ShutdownTimeout`).
//!
//! On a signal every part is told to stop at once: the poller and stream readers, the
//! evaluator (once it has evaluated the samples already queued), the HTTP server. The record sink then stores what
//! the evaluator already produced, and finally what waits in memory for Elasticsearch is
//! moved to its on-disk spool. Each wait has a deadline, and the spool gets a reserved share
//! of the bound, so a wedged storage call, a slow script or a stuck client delays the exit by
//! at most the bound; what did not stop in time is named in the log and left behind.

use super::channel::SampleSender;
use huatuo_storage::Storage;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::time::{timeout_at, Instant};

/// How often a thread that cannot be awaited is checked for having ended.
const THREAD_POLL: Duration = Duration::from_millis(20);
/// Longest share of the bound kept for moving the Elasticsearch queue to disk.
const FLUSH_RESERVE: Duration = Duration::from_secs(2);

/// The parts of a running daemon that must be stopped.
pub struct Running {
    /// Seen by the poller, the stream readers and the evaluator.
    pub stop: Arc<AtomicBool>,
    /// Wakes an evaluator waiting for samples.
    pub waker: SampleSender,
    /// The poller thread.
    pub poller: JoinHandle<()>,
    /// Stream reader threads (kmsg, link events).
    pub streams: Vec<JoinHandle<()>>,
    /// The evaluator thread.
    pub evaluator: JoinHandle<()>,
    /// The record sink task.
    pub sink: tokio::task::JoinHandle<()>,
    /// Tells the sink to store what is queued and end.
    pub sink_stop: watch::Sender<bool>,
    /// The HTTP server task.
    pub server: tokio::task::JoinHandle<()>,
    /// Tells the HTTP server to stop.
    pub server_stop: oneshot::Sender<()>,
    /// Periodic tasks, aborted at once.
    pub background: Vec<tokio::task::JoinHandle<()>>,
    /// The continuous profiling thread (sees `stop`).
    pub profiling: Option<JoinHandle<()>>,
    /// The kubelet pod watcher, whose drop waits for a request in flight.
    pub kubelet: Option<huatuo_containers::kubelet::KubeletWatcher>,
    /// Storage, flushed last.
    pub storage: Arc<Storage>,
}

impl Running {
    /// Stops everything within `bound`; returns what did not stop in time (left running until
    /// the process exits).
    pub async fn shutdown(self, bound: Duration) -> Vec<&'static str> {
        let deadline = Instant::now() + bound;
        let reserve = (bound / 4).min(FLUSH_RESERVE);
        let stages_end = deadline - reserve;
        let mut left = Vec::new();

        self.stop.store(true, Ordering::Release);
        self.waker.wake();
        drop(self.waker);
        let _ = self.server_stop.send(());
        for task in &self.background {
            task.abort();
        }

        // The evaluator gets the first half of the stages' time to finish its sample; the
        // sink then stores whatever it produced.
        let eval_end = Instant::now() + (stages_end - Instant::now()) / 2;
        if !thread_ended(self.evaluator, eval_end).await {
            left.push("the evaluator (a rule still evaluating)");
        }
        let _ = self.sink_stop.send(true);
        if timeout_at(stages_end, self.sink).await.is_err() {
            left.push("the record sink (a storage call still running)");
        }
        if !thread_ended(self.poller, stages_end).await {
            left.push("the poller (a source read still running)");
        }
        for stream in self.streams {
            if !thread_ended(stream, stages_end).await {
                left.push("a stream reader");
            }
        }
        if timeout_at(stages_end, self.server).await.is_err() {
            left.push("the HTTP server (a client connection still open)");
        }
        if let Some(profiling) = self.profiling {
            if !thread_ended(profiling, stages_end).await {
                left.push("the continuous profiler (a profile still being read or pushed)");
            }
        }
        let kubelet = self.kubelet;
        let kubelet = tokio::task::spawn_blocking(move || drop(kubelet));
        if timeout_at(stages_end, kubelet).await.is_err() {
            left.push("the kubelet watcher (a request still running)");
        }

        let storage = self.storage;
        let flush = tokio::task::spawn_blocking(move || storage.flush());
        if timeout_at(deadline, flush).await.is_err() {
            left.push("the Elasticsearch spool (a disk write still running)");
        }
        for what in &left {
            log::warn!("shutdown: {what} did not stop within {bound:?}; exiting without it");
        }
        left
    }
}

/// Waits until `thread` has ended or `deadline` passes; whether it ended.
async fn thread_ended(thread: JoinHandle<()>, deadline: Instant) -> bool {
    while !thread.is_finished() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(THREAD_POLL).await;
    }
    let _ = thread.join();
    true
}
