//! Event transport: a thread per event template drains its ring buffer (or per-CPU perf
//! buffers), decodes each record and hands the sample to a bounded tokio channel. Whatever
//! cannot be delivered is counted, never queued without bound.

use crate::cgroup::CgroupResolver;
use crate::decode::EventDecoder;
use aya::maps::perf::PerfEvent;
use aya::maps::{Map, MapData, PerfEventArray, RingBuf};
use huatuo_dsl::value::Sample;
use std::os::fd::AsRawFd;
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
    /// Set to stop the thread.
    pub stop: Arc<AtomicBool>,
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

const POLL_MS: i32 = 100;

fn poll_readable(fds: &[i32]) -> bool {
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: *fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `pollfds` is a valid array of `pollfd` of the given length.
    let rc = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, POLL_MS) };
    rc > 0
}

/// Starts the thread draining a ring buffer map.
pub fn spawn_ringbuf(map: Map, sink: Sink) -> Result<JoinHandle<()>, String> {
    let mut ring: RingBuf<MapData> =
        RingBuf::try_from(map).map_err(|e| format!("events map: {e}"))?;
    std::thread::Builder::new()
        .name(format!("bpf-{}", sink.name))
        .spawn(move || {
            let fd = ring.as_raw_fd();
            while !sink.stop.load(Ordering::Relaxed) {
                poll_readable(&[fd]);
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
            while !sink.stop.load(Ordering::Relaxed) {
                poll_readable(&fds);
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
