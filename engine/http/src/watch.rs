//! `POST /v1/events/watch`: stored records pushed to subscribers as CloudEvents over SSE.

use regex::{Regex, RegexBuilder};
use serde::Deserialize;
use serde_json::{json, Value as Json};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};

/// Events a slow client may have queued before new ones are dropped for it.
pub const CLIENT_BUFFER: usize = 256;
/// Consecutive failed deliveries after which a client is disconnected.
pub const MAX_FAILED_WRITES: u32 = 3;
/// Fields a subscriber may filter on, each a regex.
pub const FILTER_FIELDS: &[&str] = &[
    "tracer_name",
    "hostname",
    "container_hostname",
    "container_host_namespace",
    "region",
];

/// The body of a watch request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchRequest {
    /// Regex per field; all must match (AND).
    #[serde(default)]
    pub filters: std::collections::BTreeMap<String, String>,
}

/// Compiled filters of one subscriber.
#[derive(Debug)]
pub struct WatchFilter {
    fields: Vec<(String, Regex)>,
}

impl WatchFilter {
    /// Compiles a request's filters; an unknown field or bad regex names the field.
    pub fn compile(request: &WatchRequest) -> Result<Self, String> {
        let mut fields = Vec::new();
        for (field, pattern) in &request.filters {
            if !FILTER_FIELDS.contains(&field.as_str()) {
                return Err(format!(
                    "filters.{field}: unknown filter field (known: {})",
                    FILTER_FIELDS.join(", ")
                ));
            }
            if pattern.is_empty() {
                continue;
            }
            let regex = RegexBuilder::new(pattern)
                .size_limit(1 << 20)
                .dfa_size_limit(1 << 20)
                .build()
                .map_err(|e| format!("filters.{field}: invalid regex: {e}"))?;
            fields.push((field.clone(), regex));
        }
        Ok(WatchFilter { fields })
    }

    /// Whether a stored document passes every filter.
    pub fn matches(&self, doc: &Json) -> bool {
        self.fields.iter().all(|(field, regex)| {
            regex.is_match(doc.get(field).and_then(Json::as_str).unwrap_or(""))
        })
    }
}

/// Wraps a stored document in a CloudEvents 1.0 envelope.
pub fn cloud_event(doc: &Json) -> Json {
    let field = |name: &str| {
        doc.get(name)
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut data = json!({
        "hostname": field("hostname"),
        "region": field("region"),
        "observed_timestamp": field("uploaded_time"),
        "tracer_name": field("tracer_name"),
        "tracer_id": field("tracer_id"),
        "tracer_run_type": field("tracer_type"),
    });
    for name in [
        "container_id",
        "container_hostname",
        "container_host_namespace",
        "container_type",
        "container_qos",
    ] {
        if let Some(value) = doc.get(name) {
            data[name] = value.clone();
        }
    }
    if let Some(tracer_data) = doc.get("tracer_data") {
        data["tracer_data"] = tracer_data.clone();
    }
    json!({
        "specversion": "1.0",
        "id": uuid::Uuid::new_v4().to_string(),
        "source": format!("/huatuo/{}/{}", field("hostname"), field("tracer_name")),
        "type": "tech.huatuo.kernel.event",
        "datacontenttype": "application/json",
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "data": data,
    })
}

/// Counters of the watch endpoint.
#[derive(Debug, Default)]
pub struct WatchCounters {
    /// Events delivered to a client queue.
    pub delivered: AtomicU64,
    /// Events dropped for a slow client.
    pub dropped: AtomicU64,
    /// Requests refused with 429.
    pub refused: AtomicU64,
    /// Clients disconnected after repeated failed deliveries.
    pub disconnected: AtomicU64,
}

/// Fan-out of stored documents to subscribers, bounded per client and in client count.
#[derive(Debug)]
pub struct WatchHub {
    sender: broadcast::Sender<Arc<Json>>,
    clients: Arc<AtomicUsize>,
    max_clients: usize,
    counters: Arc<WatchCounters>,
}

/// Holds a client slot; dropping it frees the slot.
#[derive(Debug)]
pub struct ClientSlot(Arc<AtomicUsize>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl WatchHub {
    /// A hub admitting at most `max_clients` subscribers.
    pub fn new(max_clients: usize) -> Self {
        let (sender, _) = broadcast::channel(1024);
        WatchHub {
            sender,
            clients: Arc::new(AtomicUsize::new(0)),
            max_clients,
            counters: Arc::new(WatchCounters::default()),
        }
    }

    /// Publishes a stored document to every subscriber.
    pub fn publish(&self, doc: Json) {
        // No subscriber is not an error.
        let _ = self.sender.send(Arc::new(doc));
    }

    /// The endpoint's counters.
    pub fn counters(&self) -> &WatchCounters {
        &self.counters
    }

    /// Subscribes with a filter: a bounded queue of CloudEvents, or `None` when full.
    pub fn subscribe(&self, filter: WatchFilter) -> Option<(ClientSlot, mpsc::Receiver<Json>)> {
        let taken = self.clients.fetch_add(1, Ordering::SeqCst);
        let slot = ClientSlot(self.clients.clone());
        if taken >= self.max_clients {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
        let mut source = self.sender.subscribe();
        let counters = self.counters.clone();
        tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                let doc = match source.recv().await {
                    Ok(doc) => doc,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        counters.dropped.fetch_add(n, Ordering::Relaxed);
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if !filter.matches(&doc) {
                    continue;
                }
                match tx.try_send(cloud_event(&doc)) {
                    Ok(()) => {
                        failures = 0;
                        counters.delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                        failures += 1;
                        if failures >= MAX_FAILED_WRITES {
                            counters.disconnected.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => break,
                }
            }
        });
        Some((slot, rx))
    }
}
