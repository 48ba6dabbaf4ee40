//! The evaluator thread: samples in, metric points to the store, records to the sink.

use super::enrich::Enricher;
use crate::capture::runner::DaemonCaptures;
use huatuo_dsl::output::Record;
use huatuo_dsl::value::Sample;
use huatuo_eval::{EvalStats, Evaluator, Output};
use huatuo_http::metric_store::MetricStore;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What the evaluator thread shares with the rest of the daemon.
#[derive(Debug, Default)]
pub struct EvalShared {
    /// Latest per-rule counters.
    pub stats: Mutex<EvalStats>,
    /// Rules disabled at run time, with the reason.
    pub disabled: Mutex<Vec<(String, String)>>,
    /// Records dropped because the record sink fell behind.
    pub records_dropped: AtomicU64,
}

/// Starts the evaluator on its own thread; it ends when the sample queue closes. Once `stop`
/// is set the queue is closed (later samples are counted as dropped by their senders), what
/// it holds is still evaluated, and the thread ends (a waiting evaluator is woken by
/// `SampleSender::wake`). The plan's unlabelled running-total counters are exported at 0 (and
/// never expire) from the start.
#[allow(clippy::too_many_arguments)]
pub fn spawn_evaluator(
    mut evaluator: Evaluator,
    mut samples: mpsc::Receiver<Sample>,
    mut captures: DaemonCaptures,
    enricher: Arc<Enricher>,
    metrics: Arc<MetricStore>,
    records: mpsc::Sender<Record>,
    shared: Arc<EvalShared>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("huatuo-eval".into())
        .spawn(move || {
            metrics.pin(&huatuo_eval::metrics::zero_points(
                evaluator.plan(),
                &crate::catalog::source_catalog(),
            ));
            let mut last_publish = Instant::now();
            let mut points = Vec::new();
            while let Some(mut sample) = samples.blocking_recv() {
                if stop.load(Ordering::Acquire) {
                    samples.close();
                }
                if sample.source.is_empty() {
                    // A wake-up, not a reading.
                    continue;
                }
                enricher.enrich(&mut sample);
                for output in evaluator.push(&sample, &mut captures) {
                    match output {
                        Output::Metric(point) => points.push(point),
                        Output::Record(record) => {
                            if records.try_send(record).is_err() {
                                shared.records_dropped.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
                if !points.is_empty() {
                    metrics.update(&points);
                    points.clear();
                }
                if last_publish.elapsed() >= Duration::from_secs(1) {
                    last_publish = Instant::now();
                    if let Ok(mut stats) = shared.stats.lock() {
                        *stats = evaluator.stats();
                    }
                    if let Ok(mut disabled) = shared.disabled.lock() {
                        *disabled = evaluator.disabled_rules();
                    }
                }
            }
        })
}
