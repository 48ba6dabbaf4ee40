//! Event transport: a thread per event template drains its ring buffer (or per-CPU perf
//! buffers), decodes each record and hands the sample to a bounded tokio channel. Whatever
//! cannot be delivered is counted, never queued without bound.

use crate::cgroup::CgroupResolver;
use crate::decode::EventDecoder;
use aya::maps::perf::PerfEvent;
use aya::maps::{Map, MapData, PerfEventArray, RingBuf};
use huatuo_dsl::value::Sample;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::Sender;

/// User-side counters of one event template.
#[derive(Debug, Default)]
pub struct EventStats {
    /// Records read from the buffer.
    pub received: AtomicU64,
    /// Samples the channel could not take.
    pub dropped: AtomicU64,
    /// Records that did not decode.
    pub decode_errors: AtomicU64,
}

/// What a transport thread needs.
pub struct Sink {
    /// Template name, for logs.
    pub name: String,
    /// The template's decoder.
    pub decoder: EventDecoder,
    /// Container attribution.
    pub resolver: Arc<dyn CgroupResolver>,
    /// Where samples go.
    pub tx: Sender<Sample>,
    /// Counters.
    pub stats: Arc<EventStats>,
    /// Stops the thread.
    pub stop: Arc<StopSignal>,
}

/// Tells an event thread to stop and wakes it. The thread sleeps in poll(2) on its buffers
/// and this signal's eventfd, so it wakes for records or for the stop, not on a short timer
/// (ten wakeups a second per template otherwise, on a node where nothing happens).
#[derive(Debug)]
pub struct StopSignal {
    stopped: AtomicBool,
    /// The eventfd `stop` writes; `None` when none could be made (then the thread polls).
    wake: Option<OwnedFd>,
}

impl Default for StopSignal {
    fn default() -> Self {
        StopSignal::new()
    }
}

impl StopSignal {
    /// A signal not yet given.
    pub fn new() -> StopSignal {
        // SAFETY: eventfd takes no pointers; a non-negative result is a new fd we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        let wake = (fd >= 0).then(|| {
            // SAFETY: `fd` was just returned by eventfd and is owned by nothing else.
            unsafe { OwnedFd::from_raw_fd(fd) }
        });
        StopSignal {
            stopped: AtomicBool::new(false),
            wake,
        }
    }

    /// Stops the thread and wakes it from its poll.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        if let Some(fd) = &self.wake {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to an eventfd we own.
            unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }

    /// Whether `stop` was called.
    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Waits until one of `fds` is readable or the signal is given; bounded by
    /// [`IDLE_POLL_MS`] (or [`POLL_MS`] without an eventfd).
    fn wait(&self, fds: &[i32]) {
        let mut pollfds: Vec<libc::pollfd> = fds
            .iter()
            .chain(self.wake.as_ref().map(|fd| fd.as_raw_fd()).as_ref())
            .map(|fd| libc::pollfd {
                fd: *fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let timeout = if self.wake.is_some() {
            IDLE_POLL_MS
        } else {
            POLL_MS
        };
        // SAFETY: `pollfds` is a valid array of `pollfd` of the given length.
        unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, timeout) };
    }
}

impl Sink {
    fn deliver(&self, bytes: &[u8]) {
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        match self.decoder.decode(bytes, now, self.resolver.as_ref()) {
            Ok(sample) => match self.tx.try_send(sample) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Closed(_)) => {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            },
            Err(e) => {
                let n = self.stats.decode_errors.fetch_add(1, Ordering::Relaxed);
                if n == 0 {
                    log::warn!("{e}");
                }
            }
        }
    }
}

/// How long a thread without an eventfd sleeps before it looks at its stop flag again.
const POLL_MS: i32 = 100;
/// The bound on one poll of a thread the stop signal wakes.
const IDLE_POLL_MS: i32 = 5_000;

/// Starts the thread draining a ring buffer map.
pub fn spawn_ringbuf(map: Map, sink: Sink) -> Result<JoinHandle<()>, String> {
    let mut ring: RingBuf<MapData> =
        RingBuf::try_from(map).map_err(|e| format!("events map: {e}"))?;
    std::thread::Builder::new()
        .name(format!("bpf-{}", sink.name))
        .spawn(move || {
            let fd = ring.as_raw_fd();
            while !sink.stop.stopped() {
                sink.stop.wait(&[fd]);
                while let Some(item) = ring.next() {
                    sink.deliver(&item);
                }
            }
        })
        .map_err(|e| format!("cannot start the event thread: {e}"))
}

/// Starts the thread draining per-CPU perf buffers (kernels before 5.8).
pub fn spawn_perfbuf(map: Map, pages: usize, sink: Sink) -> Result<JoinHandle<()>, String> {
    let mut array: PerfEventArray<MapData> =
        PerfEventArray::try_from(map).map_err(|e| format!("events map: {e}"))?;
    let cpus = aya::util::online_cpus().map_err(|(path, e)| format!("{path}: {e}"))?;
    let mut buffers = vec![];
    for cpu in cpus {
        buffers.push(
            array
                .open(cpu, Some(pages))
                .map_err(|e| format!("perf buffer of cpu {cpu}: {e}"))?,
        );
    }
    std::thread::Builder::new()
        .name(format!("bpf-{}", sink.name))
        .spawn(move || {
            let fds: Vec<i32> = buffers.iter().map(|b| b.as_raw_fd()).collect();
            let mut scratch = vec![];
            while !sink.stop.stopped() {
                sink.stop.wait(&fds);
                for buf in buffers.iter_mut() {
                    buf.for_each(|event| {
                        // Lost records are counted by the kernel side (`lost` counter).
                        if let PerfEvent::Sample { head, tail } = event {
                            if tail.is_empty() {
                                sink.deliver(head);
                            } else {
                                scratch.clear();
                                scratch.extend_from_slice(head);
                                scratch.extend_from_slice(tail);
                                sink.deliver(&scratch);
                            }
                        }
                    });
                }
            }
            drop(array);
        })
        .map_err(|e| format!("cannot start the event thread: {e}"))
}
