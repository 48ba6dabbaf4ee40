//! One thread that reads every polled source on its interval, off the request path.

use super::channel::SampleSender;
use huatuo_dsl::source::Reader;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the poller has done per source, exported as agent metrics and in the status.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SourceStats {
    /// Reads attempted.
    pub reads: u64,
    /// Reads that failed.
    pub errors: u64,
    /// Samples produced.
    pub samples: u64,
    /// Duration of the last read, seconds.
    pub last_duration_s: f64,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// Why the source is absent on this node (no device, no vendor library), if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

/// Shared per-source statistics.
pub type SourceStatsMap = Arc<Mutex<BTreeMap<String, SourceStats>>>;

/// A polled source and its interval.
pub struct Polled {
    name: String,
    reader: Box<dyn Reader>,
    interval: Duration,
}

impl Polled {
    /// Polls `reader` every `interval` (at least 100 ms).
    pub fn new(reader: Box<dyn Reader>, interval: Duration) -> Self {
        Polled {
            name: reader.schema().name,
            reader,
            interval: interval.max(Duration::from_millis(100)),
        }
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Starts the poller thread; it stops when `stop` is set.
pub fn spawn_poller(
    mut sources: Vec<Polled>,
    sender: SampleSender,
    stats: SourceStatsMap,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("huatuo-poller".into())
        .spawn(move || {
            let start = Instant::now();
            let mut due: Vec<Instant> = vec![start; sources.len()];
            while !stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                for (index, source) in sources.iter_mut().enumerate() {
                    if due[index] > now {
                        continue;
                    }
                    due[index] = now + source.interval;
                    read_once(source, &sender, &stats);
                }
                let next = due
                    .iter()
                    .min()
                    .copied()
                    .unwrap_or(now + Duration::from_secs(1));
                let wait = next
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(200));
                std::thread::sleep(wait);
            }
        })
}

fn read_once(source: &mut Polled, sender: &SampleSender, stats: &SourceStatsMap) {
    let started = Instant::now();
    let result = source.reader.read(now_ns());
    let elapsed = started.elapsed().as_secs_f64();
    let Ok(mut stats) = stats.lock() else { return };
    let entry = stats.entry(source.name.clone()).or_default();
    entry.reads += 1;
    entry.last_duration_s = elapsed;
    let unavailable = source.reader.unavailable();
    if unavailable.is_some() && entry.unavailable != unavailable {
        log::info!(
            "{}: absent ({}); rules reading it produce nothing",
            source.name,
            unavailable.as_deref().unwrap_or_default()
        );
    }
    entry.unavailable = unavailable;
    match result {
        Ok(samples) => {
            entry.samples += samples.len() as u64;
            for sample in samples {
                sender.send(sample);
            }
        }
        Err(e) => {
            entry.errors += 1;
            if entry.last_error.as_deref() != Some(&e.to_string()) {
                log::warn!("{e}");
            }
            entry.last_error = Some(e.to_string());
        }
    }
}
