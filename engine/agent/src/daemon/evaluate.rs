//! The evaluator thread: samples in, metric points to the store, records to the sink.

use super::enrich::Enricher;
use crate::capture::runner::DaemonCaptures;
use huatuo_dsl::output::Record;
use huatuo_dsl::value::Sample;
use huatuo_eval::carry::Carried;
use huatuo_eval::{EvalStats, Evaluator, Output, Plan};
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
    /// A new rule set waiting to be swapped in between two samples (reload).
    pub swap: Mutex<Option<Swap>>,
    /// Set while `swap` holds a set, so the evaluator looks only then.
    pub swap_pending: AtomicBool,
}

/// A rule set handed to the evaluator thread by a reload.
#[derive(Debug)]
pub struct Swap {
    /// The new plan, fallbacks settled.
    pub plan: Plan,
    /// The script library changed: rules calling scripts start fresh.
    pub scripts_changed: bool,
    /// Gets what was kept once the new set runs.
    pub done: std::sync::mpsc::SyncSender<Carried>,
}

impl EvalShared {
    /// Runs the pending swap, if any: `evaluator` becomes the new set, keeping the state of
    /// the rules whose compiled form did not change. True when a swap happened.
    fn take_swap(&self, evaluator: &mut Evaluator, metrics: &MetricStore) -> bool {
        if !self.swap_pending.swap(false, Ordering::AcqRel) {
            return false;
        }
        let Some(swap) = self.swap.lock().ok().and_then(|mut s| s.take()) else {
            return false;
        };
        let empty = Plan {
            rules: Vec::new(),
            scripts: None,
        };
        let previous = std::mem::replace(evaluator, Evaluator::new(empty));
        let (next, carried) = Evaluator::carry_over(swap.plan, previous, swap.scripts_changed);
        *evaluator = next;
        metrics.pin(&huatuo_eval::metrics::zero_points(
            evaluator.plan(),
            &crate::catalog::source_catalog(),
        ));
        let _ = swap.done.send(carried);
        true
    }
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
                if shared.take_swap(&mut evaluator, &metrics) {
                    publish(&shared, &evaluator);
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
                    publish(&shared, &evaluator);
                }
            }
        })
}

/// Publishes the evaluator's counters and disabled rules for `/status` and `/metrics`.
fn publish(shared: &EvalShared, evaluator: &Evaluator) {
    if let Ok(mut stats) = shared.stats.lock() {
        *stats = evaluator.stats();
    }
    if let Ok(mut disabled) = shared.disabled.lock() {
        *disabled = evaluator.disabled_rules();
    }
}
