//! The agent's own health as metric families: footprint, drops, errors, rule counters.

use super::channel::QueueCounters;
use super::evaluate::EvalShared;
use super::poller::SourceStatsMap;
use super::selfnoise::SelfFilter;
use super::selfstats::self_usage;
use huatuo_bpf::Templates;
use huatuo_containers::kubelet::PodStore;
use huatuo_dsl::output::{MetricKind, MetricPoint};
use huatuo_http::conn::ConnCounters;
use huatuo_http::metric_store::MetricStore;
use huatuo_http::watch::WatchHub;
use huatuo_storage::Storage;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Everything whose counters the agent exports about itself.
pub struct SelfMetrics {
    /// Sample queue counters.
    pub queue: Arc<QueueCounters>,
    /// Per-source read statistics.
    pub sources: SourceStatsMap,
    /// Evaluator counters.
    pub eval: Arc<EvalShared>,
    /// Storage counters.
    pub storage: Arc<Storage>,
    /// Watch counters.
    pub watch: Arc<WatchHub>,
    /// HTTP connection counters.
    pub connections: Arc<ConnCounters>,
    /// Loaded templates.
    pub templates: Option<Arc<Mutex<Templates>>>,
    /// The filter leaving out the agent's own events, when on.
    pub own: Option<Arc<SelfFilter>>,
    /// The kubelet's pods, when `[Pod]` enables the kubelet.
    pub pods: Option<Arc<PodStore>>,
    /// Profiles that failed (their records are stored with the error).
    pub capture_errors: Arc<AtomicU64>,
}

/// One self-metric point.
pub(crate) fn point(
    family: &str,
    help: &str,
    kind: MetricKind,
    labels: &[(&str, &str)],
    value: f64,
) -> MetricPoint {
    MetricPoint {
        family: family.into(),
        help: help.into(),
        kind,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        value,
    }
}

impl SelfMetrics {
    /// Current self-metric points.
    pub fn points(&self, store: &MetricStore) -> Vec<MetricPoint> {
        use MetricKind::{Counter, Gauge};
        let mut out = Vec::new();
        if let Some(usage) = self_usage() {
            out.push(point(
                "agent_rss_bytes",
                "resident memory of the agent",
                Gauge,
                &[],
                usage.rss_bytes as f64,
            ));
            let heap = super::heap::usage();
            for (state, bytes) in heap
                .iter()
                .flat_map(|h| [("allocated", h.allocated), ("free", h.free)])
            {
                out.push(point(
                    "agent_heap_bytes",
                    "heap of the agent: allocated (in use), or free (kept by malloc, not yet returned)",
                    Gauge,
                    &[("state", state)],
                    bytes as f64,
                ));
            }
            out.push(point(
                "agent_cpu_seconds_total",
                "CPU time used by the agent",
                Counter,
                &[],
                usage.cpu_seconds,
            ));
        }
        out.push(point(
            "agent_samples_total",
            "samples queued for evaluation",
            Counter,
            &[],
            self.queue.accepted() as f64,
        ));
        for (source, dropped) in self.queue.dropped() {
            out.push(point(
                "agent_samples_dropped_total",
                "samples dropped because the evaluator fell behind",
                Counter,
                &[("source", &source)],
                dropped as f64,
            ));
        }
        for (source, excluded) in self.own.iter().flat_map(|own| own.excluded()) {
            out.push(point(
                "agent_self_events_excluded_total",
                "kernel events left out because the agent caused them (EventTracing.ExcludedSelf)",
                Counter,
                &[("source", &source)],
                excluded as f64,
            ));
        }
        if let Some(pods) = &self.pods {
            let stats = pods.stats();
            for (outcome, n) in [
                ("ok", stats.fetches),
                ("unreachable", stats.unreachable),
                ("malformed", stats.malformed),
            ] {
                out.push(point(
                    "agent_kubelet_requests_total",
                    "requests of the kubelet's pod list, by outcome",
                    Counter,
                    &[("outcome", outcome)],
                    n as f64,
                ));
            }
            out.push(point(
                "agent_kubelet_absent_total",
                "looks at the socket tables that found no kubelet port listening (no request made)",
                Counter,
                &[],
                stats.absent as f64,
            ));
        }
        if let Ok(sources) = self.sources.lock() {
            for (source, stats) in sources.iter() {
                let labels = [("source", source.as_str())];
                out.push(point(
                    "agent_source_reads_total",
                    "reads of a polled source",
                    Counter,
                    &labels,
                    stats.reads as f64,
                ));
                out.push(point(
                    "agent_source_read_errors_total",
                    "failed reads of a polled source",
                    Counter,
                    &labels,
                    stats.errors as f64,
                ));
                out.push(point(
                    "agent_source_read_duration_seconds",
                    "duration of the last read of a polled source",
                    Gauge,
                    &labels,
                    stats.last_duration_s,
                ));
            }
        }
        if let Ok(stats) = self.eval.stats.lock() {
            for (rule, s) in &stats.rules {
                let labels = [("rule", rule.as_str())];
                out.push(point(
                    "agent_rule_fired_total",
                    "records or metric samples a rule produced",
                    Counter,
                    &labels,
                    s.fired as f64,
                ));
                out.push(point(
                    "agent_rule_suppressed_total",
                    "triggers suppressed by cooldown",
                    Counter,
                    &labels,
                    s.suppressed_by_cooldown as f64,
                ));
                out.push(point(
                    "agent_rule_shed_total",
                    "triggers shed by the rule's rate limit",
                    Counter,
                    &labels,
                    s.shed_by_limit as f64,
                ));
                out.push(point(
                    "agent_rule_errors_total",
                    "runtime errors of a rule",
                    Counter,
                    &labels,
                    s.errors as f64,
                ));
                out.push(point(
                    "agent_rule_script_timeouts_total",
                    "script calls of a rule stopped at the script time limit",
                    Counter,
                    &labels,
                    s.script_timeouts as f64,
                ));
                out.push(point(
                    "agent_rule_enabled",
                    "1 while the rule runs, 0 once disabled",
                    Gauge,
                    &labels,
                    if s.disabled.is_some() { 0.0 } else { 1.0 },
                ));
            }
        }
        out.push(point(
            "agent_capture_errors_total",
            "deferred captures (profiles) that failed; the record is stored with the error",
            Counter,
            &[],
            self.capture_errors.load(Ordering::Relaxed) as f64,
        ));
        out.push(point(
            "agent_records_dropped_total",
            "records dropped because storage fell behind",
            Counter,
            &[],
            self.eval.records_dropped.load(Ordering::Relaxed) as f64,
        ));
        let counters = self.storage.counters();
        out.push(point(
            "agent_storage_written_total",
            "records written to local files",
            Counter,
            &[("sink", "local")],
            counters.local_written.load(Ordering::Relaxed) as f64,
        ));
        out.push(point(
            "agent_storage_failed_total",
            "records local files failed to take",
            Counter,
            &[("sink", "local")],
            counters.local_failed.load(Ordering::Relaxed) as f64,
        ));
        if let Some(es) = self.storage.es_counters() {
            let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed) as f64;
            let es_sink = [("sink", "es")];
            out.push(point(
                "agent_storage_written_total",
                "records a storage sink accepted",
                Counter,
                &es_sink,
                load(&es.indexed),
            ));
            out.push(point(
                "agent_storage_failed_total",
                "records a storage sink refused or failed to take",
                Counter,
                &es_sink,
                load(&es.failed),
            ));
            out.push(point(
                "agent_es_dead_lettered_total",
                "records Elasticsearch refused for their content, kept in the dead-letter file",
                Counter,
                &[],
                load(&es.dead_lettered),
            ));
            out.push(point(
                "agent_es_dead_letter_dropped_total",
                "dead letters removed when the rotated dead-letter file was replaced",
                Counter,
                &[],
                load(&es.dead_letter_dropped),
            ));
            out.push(point(
                "agent_es_auth_failures_total",
                "requests Elasticsearch refused for their credentials or roles (401, 403)",
                Counter,
                &[],
                load(&es.auth_failures),
            ));
            out.push(point(
                "agent_es_spooled_total",
                "records written to the on-disk spool while Elasticsearch was unreachable",
                Counter,
                &[],
                load(&es.spooled),
            ));
            out.push(point(
                "agent_es_replayed_total",
                "spooled records delivered later",
                Counter,
                &[],
                load(&es.replayed),
            ));
            out.push(point(
                "agent_es_spool_dropped_total",
                "spooled records dropped because the spool was full",
                Counter,
                &[],
                load(&es.spool_dropped),
            ));
            out.push(point(
                "agent_es_lost_total",
                "records lost because the spool could not be written",
                Counter,
                &[],
                load(&es.lost),
            ));
            out.push(point(
                "agent_es_spool_bytes",
                "bytes waiting in the spool",
                Gauge,
                &[],
                load(&es.spool_bytes),
            ));
        }
        out.extend(super::api_metrics::points(&self.watch, &self.connections));
        let rdns = huatuo_eval::rdns::global_counters();
        for (name, help, counter) in [
            (
                "agent_reverse_dns_resolved_total",
                "reverse DNS lookups that found a name",
                &rdns.resolved,
            ),
            (
                "agent_reverse_dns_failed_total",
                "reverse DNS lookups that found no name",
                &rdns.failed,
            ),
            (
                "agent_reverse_dns_queue_full_total",
                "addresses not looked up because the reverse DNS queue was full",
                &rdns.queue_full,
            ),
        ] {
            out.push(point(
                name,
                help,
                Counter,
                &[],
                counter.load(Ordering::Relaxed) as f64,
            ));
        }
        out.push(point(
            "agent_metric_series_dropped_total",
            "new series refused because the series cap was reached",
            Counter,
            &[],
            store.dropped_series() as f64,
        ));
        if let Some(templates) = &self.templates {
            if let Ok(templates) = templates.lock() {
                for status in templates.status() {
                    let labels = [("template", status.name.as_str())];
                    out.push(point(
                        "agent_bpf_template_loaded",
                        "1 when the template loaded and attached",
                        Gauge,
                        &labels,
                        if status.loaded { 1.0 } else { 0.0 },
                    ));
                    out.push(point(
                        "agent_bpf_events_emitted_total",
                        "events the template emitted in the kernel",
                        Counter,
                        &labels,
                        status.counters.emitted as f64,
                    ));
                    out.push(point(
                        "agent_bpf_events_shed_total",
                        "events shed by the in-kernel rate limit",
                        Counter,
                        &labels,
                        status.counters.shed as f64,
                    ));
                    out.push(point(
                        "agent_bpf_events_lost_total",
                        "events lost because the ring buffer was full",
                        Counter,
                        &labels,
                        status.counters.lost as f64,
                    ));
                    out.push(point(
                        "agent_bpf_events_dropped_total",
                        "decoded events dropped because the agent fell behind",
                        Counter,
                        &labels,
                        status.counters.dropped as f64,
                    ));
                }
            }
        }
        out
    }
}
