//! The bounded queue from sources to the evaluator, counting what it had to drop.

use huatuo_dsl::value::Sample;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Per-source counts of samples accepted and dropped because the evaluator fell behind.
#[derive(Debug, Default)]
pub struct QueueCounters {
    accepted: AtomicU64,
    dropped: Mutex<BTreeMap<String, u64>>,
}

impl QueueCounters {
    /// Samples that entered the queue.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Samples dropped per source.
    pub fn dropped(&self) -> BTreeMap<String, u64> {
        self.dropped.lock().map(|d| d.clone()).unwrap_or_default()
    }
}

/// The sending side sources hold; cheap to clone.
#[derive(Debug, Clone)]
pub struct SampleSender {
    tx: mpsc::Sender<Sample>,
    counters: Arc<QueueCounters>,
}

impl SampleSender {
    /// Queues a sample without waiting; a full queue drops it and counts the drop.
    pub fn send(&self, sample: Sample) {
        match self.tx.try_send(sample) {
            Ok(()) => {
                self.counters.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(sample))
            | Err(mpsc::error::TrySendError::Closed(sample)) => {
                if let Ok(mut dropped) = self.counters.dropped.lock() {
                    *dropped.entry(sample.source).or_insert(0) += 1;
                }
            }
        }
    }

    /// Wakes an evaluator waiting for a sample so it looks at its stop flag: queues a sample
    /// without a source, which the evaluator skips. A full queue needs no wake.
    pub fn wake(&self) {
        let _ = self.tx.try_send(Sample::default());
    }

    /// The queue's counters.
    pub fn counters(&self) -> Arc<QueueCounters> {
        self.counters.clone()
    }
}

/// A queue holding at most `capacity` samples.
pub fn sample_queue(capacity: usize) -> (SampleSender, mpsc::Receiver<Sample>) {
    let (tx, rx) = mpsc::channel(capacity);
    (
        SampleSender {
            tx,
            counters: Arc::new(QueueCounters::default()),
        },
        rx,
    )
}
