//! The HTTP API served from the start of the agent: `/healthz` answers at once and `/readyz`
//! says 503 until the rules run; `/status`, the scrape hook and the reload route are filled in
//! ([`Late::fill`]) once everything started, answering 503 (or nothing extra) before.

use super::api::{self, ApiSettings};
use super::process_metrics::ProcessMetrics;
use super::reload::Reloader;
use super::selfmetrics::SelfMetrics;
use super::status::StatusView;
use crate::profiling::continuous::ProfilingShared;
use huatuo_http::api::NodeApi;
use huatuo_http::metric_store::MetricStore;
use huatuo_http::server::{ApiState, ScrapeHook, StatusFn};
use huatuo_http::watch::WatchHub;
use huatuo_storage::history::History;
use huatuo_storage::Storage;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The parts of a started agent that `/status` and the scrape hook read.
pub struct Started {
    /// The status document's rules, templates, sources and storage.
    pub status: Arc<Mutex<StatusView>>,
    /// The API's own settings (auth, TLS, limits) shown under `api`.
    pub settings: Arc<ApiSettings>,
    /// Runs reloads and reports the rule-set generation.
    pub reloader: Arc<Reloader>,
    /// The agent's self-metrics.
    pub self_metrics: Arc<SelfMetrics>,
    /// Record storage (Elasticsearch delivery state).
    pub storage: Arc<Storage>,
    /// The continuous profiler, when enabled.
    pub profiling: Option<Arc<ProfilingShared>>,
}

/// What the API serves once the agent started.
#[derive(Default, Clone)]
pub struct Late {
    status: Arc<OnceLock<StatusFn>>,
    scrape: Arc<OnceLock<ScrapeHook>>,
    /// Runs reloads (`POST /v1/rules/reload`, read by the node API's reload route).
    pub reloader: Arc<OnceLock<Arc<Reloader>>>,
}

impl Late {
    /// The API state over `node`, the record `history`, `/status` and the scrape hook reading what [`Late::fill`]
    /// sets.
    pub fn state(
        &self,
        metrics: Arc<MetricStore>,
        watch: Arc<WatchHub>,
        node: NodeApi,
        history: Option<Arc<History>>,
        settings: &ApiSettings,
        keep_alive: Duration,
    ) -> ApiState {
        let status = self.status.clone();
        let scrape = self.scrape.clone();
        ApiState {
            metrics,
            watch,
            status: Arc::new(move || status.get().and_then(|status| status())),
            on_scrape: Arc::new(move |store: &MetricStore| {
                if let Some(scrape) = scrape.get() {
                    scrape(store);
                }
            }),
            keep_alive,
            node,
            history,
            auth: settings.auth.clone(),
            body: settings.body,
        }
    }

    /// Fills in `/status` (with the API part, Elasticsearch delivery, the rule set and the
    /// continuous profiler), the self-metrics of a scrape and the reloader, then marks the
    /// agent ready.
    pub fn fill(&self, started: Started, node: &NodeApi) {
        let Started {
            status,
            settings,
            reloader,
            self_metrics,
            storage,
            profiling,
        } = started;
        let process = ProcessMetrics::default();
        let profiling_metrics = profiling.clone();
        let _ = self.status.set({
            let reloader = reloader.clone();
            Arc::new(move || {
                let mut document = status.lock().map(|s| s.to_json()).unwrap_or_default();
                document["api"] = api::status(&settings);
                if let Some(es) = storage.es_counters() {
                    document["storage"]["elasticsearch"]["delivery"] = es.status();
                }
                document["rule_set"] = reloader.status();
                document["profiling"] = profiling
                    .as_ref()
                    .map_or_else(|| serde_json::json!({ "enabled": false }), |p| p.status());
                Some(document)
            })
        });
        let _ = self.scrape.set(Arc::new(move |store: &MetricStore| {
            store.update(&self_metrics.points(store));
            store.update(&process.points());
            if let Some(p) = &profiling_metrics {
                store.update(&p.points());
            }
        }));
        let _ = self.reloader.set(reloader);
        node.ready.store(true, Ordering::Release);
    }
}
