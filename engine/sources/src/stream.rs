//! Stream sources: a producer thread pushing samples into a bounded channel; what does not
//! fit is dropped and counted.

use huatuo_dsl::source::ReadError;
use huatuo_dsl::value::Sample;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Default capacity of a stream's channel.
pub const DEFAULT_CAPACITY: usize = 4096;

/// The receiving end of a stream source.
pub struct SampleStream {
    rx: Receiver<Sample>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    dropped: AtomicU64,
    error: Mutex<Option<ReadError>>,
}

/// What waiting on a stream gave.
#[derive(Debug)]
pub enum Next {
    /// A sample.
    Sample(Sample),
    /// Nothing within the timeout; the stream goes on.
    Waiting,
    /// The stream ended (a recording replayed to its end, or an error: see
    /// [`SampleStream::error`]); nothing more will come.
    Ended,
}

/// The producing end handed to a stream's thread.
pub struct Sink {
    tx: SyncSender<Sample>,
    shared: Arc<Shared>,
}

impl Sink {
    /// Pushes a sample; a full channel drops it (counted). False once the receiver is gone.
    pub fn push(&self, sample: Sample) -> bool {
        match self.tx.try_send(sample) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.count_dropped(1);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Counts samples lost before they reached the channel (a kernel overrun).
    pub fn count_dropped(&self, n: u64) {
        self.shared.dropped.fetch_add(n, Ordering::Relaxed);
    }
}

impl SampleStream {
    /// Runs `producer` on a thread named `name`; its error, if any, is kept for [`Self::error`].
    pub fn spawn<F>(name: &str, capacity: usize, producer: F) -> std::io::Result<Self>
    where
        F: FnOnce(&Sink) -> Result<(), ReadError> + Send + 'static,
    {
        let (tx, rx) = sync_channel(capacity.max(1));
        let shared = Arc::new(Shared::default());
        let sink = Sink {
            tx,
            shared: Arc::clone(&shared),
        };
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                if let Err(e) = producer(&sink) {
                    log::warn!("{e}");
                    if let Ok(mut slot) = sink.shared.error.lock() {
                        *slot = Some(e);
                    }
                }
            })?;
        Ok(Self { rx, shared })
    }

    /// Waits up to `timeout` for the next sample; `None` on timeout or when the stream ended.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Sample> {
        match self.next(timeout) {
            Next::Sample(sample) => Some(sample),
            Next::Waiting | Next::Ended => None,
        }
    }

    /// Waits up to `timeout` for the next sample, telling a quiet stream from one that ended
    /// (which answers at once, every time).
    pub fn next(&self, timeout: Duration) -> Next {
        match self.rx.recv_timeout(timeout) {
            Ok(sample) => Next::Sample(sample),
            Err(RecvTimeoutError::Timeout) => Next::Waiting,
            Err(RecvTimeoutError::Disconnected) => Next::Ended,
        }
    }

    /// The next sample, blocking; `None` when the stream ended.
    pub fn recv(&self) -> Option<Sample> {
        self.rx.recv().ok()
    }

    /// Samples dropped so far because the consumer was slow or the kernel overran.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// The error that ended the stream, if it ended by one.
    pub fn error(&self) -> Option<String> {
        self.shared
            .error
            .lock()
            .ok()
            .and_then(|slot| slot.as_ref().map(|e| e.to_string()))
    }
}
