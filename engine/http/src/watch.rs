//! `POST /v1/events/watch`: stored records pushed to subscribers as CloudEvents over SSE.
//!
//! Every event gets an id `<boot id>-<sequence>`; the hub keeps the last events in a bounded
//! replay ring so a client reconnecting with `Last-Event-ID` receives what it missed (first a
//! `lost` frame when part of it left the ring). Each client has its own bounded queue fed by
//! its own task: a slow client loses events (counted per client) and is eventually dropped
//! with a final frame naming the reason; it never slows the publisher or other clients.

use huatuo_dsl::tracer_names;
use regex::{Regex, RegexBuilder};
use serde::Deserialize;
use serde_json::{json, Value as Json};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc, watch};

/// Events a slow client may have queued before new ones are dropped for it.
pub const CLIENT_BUFFER: usize = 256;
/// Consecutive events dropped for a full queue after which a client is disconnected.
pub const MAX_FAILED_WRITES: u32 = 3;
/// Fields a subscriber may filter on, each a regex.
pub const FILTER_FIELDS: &[&str] = &[
    "tracer_name",
    "hostname",
    "container_hostname",
    "container_host_namespace",
    "region",
];
/// Longest filter pattern accepted.
pub const MAX_PATTERN: usize = 1024;
/// Bytes the replay ring's events take at most, whatever their count (their text, id, filter
/// values and bookkeeping, as allocated): a handful of records with flame graphs must not take
/// a large share of the agent's memory.
pub const REPLAY_BYTES: usize = 4 * 1024 * 1024;
/// Events in flight between the publisher and the client tasks.
const FANOUT: usize = 1024;

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
    fields: Vec<(usize, Regex)>,
}

impl WatchFilter {
    /// Compiles a request's filters; an unknown field or bad regex names the field.
    pub fn compile(request: &WatchRequest) -> Result<Self, String> {
        let mut fields = Vec::new();
        for (field, pattern) in &request.filters {
            let Some(index) = FILTER_FIELDS.iter().position(|f| f == field) else {
                return Err(format!(
                    "filters.{field}: unknown filter field (known: {})",
                    FILTER_FIELDS.join(", ")
                ));
            };
            if pattern.is_empty() {
                continue;
            }
            fields.push((
                index,
                compile_pattern(&format!("filters.{field}"), pattern)?,
            ));
        }
        Ok(WatchFilter { fields })
    }

    /// Whether a published event passes every filter.
    pub fn matches(&self, event: &Published) -> bool {
        self.matches_values(&event.fields)
    }

    /// Whether a stored record passes every filter.
    pub fn matches_record(&self, doc: &Json) -> bool {
        self.matches_values(&filter_values(doc))
    }

    /// A `tracer_name` filter matches a record by any of its tracer's names, so a filter
    /// written for HUATUO's older names (`^softirq$`) still finds `softirq_tracing` records.
    fn matches_values(&self, values: &[String]) -> bool {
        self.fields.iter().all(|(index, regex)| {
            let value = &values[*index];
            if FILTER_FIELDS[*index] == "tracer_name" {
                tracer_names::all_names(value)
                    .iter()
                    .any(|name| regex.is_match(name))
            } else {
                regex.is_match(value)
            }
        })
    }
}

/// Compiles one filter pattern within the bounds every filter of the API shares (length,
/// compiled size, nesting); the error starts with `place`.
pub fn compile_pattern(place: &str, pattern: &str) -> Result<Regex, String> {
    if pattern.len() > MAX_PATTERN {
        return Err(format!("{place}: pattern longer than {MAX_PATTERN} bytes"));
    }
    RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .nest_limit(64)
        .build()
        .map_err(|e| format!("{place}: invalid regex: {e}"))
}

/// One published event, serialized once for every client.
#[derive(Debug)]
pub struct Published {
    /// Position in this boot's sequence, from 1.
    pub seq: u64,
    /// The SSE `id:`, `<boot id>-<seq>`.
    pub id: String,
    /// The CloudEvent as JSON text.
    pub json: String,
    /// Values of [`FILTER_FIELDS`], in that order.
    fields: Vec<String>,
}

impl Published {
    /// Event `seq` of boot `boot`: the document as a CloudEvent and its filterable fields.
    pub fn new(boot: &str, seq: u64, doc: &Json) -> Published {
        let id = format!("{boot}-{seq}");
        // Serializing grows the text by doubling: without the spare capacity a kept event
        // holds what its text needs, not up to twice that.
        let mut json = cloud_event(doc, &id).to_string();
        json.shrink_to_fit();
        Published {
            seq,
            json,
            id,
            fields: filter_values(doc),
        }
    }

    /// Heap bytes this event holds while the replay ring keeps it: its allocations (text, id,
    /// filter values), the shared allocation it lives in and the ring's slot.
    pub fn footprint(&self) -> usize {
        let strings: usize = self.fields.iter().map(String::capacity).sum();
        self.json.capacity()
            + self.id.capacity()
            + self.fields.capacity() * std::mem::size_of::<String>()
            + strings
            + std::mem::size_of::<Published>()
            + 2 * std::mem::size_of::<usize>()
            + std::mem::size_of::<Arc<Published>>()
    }
}

/// Wraps a stored document in a CloudEvents 1.0 envelope with the event id `id`.
pub fn cloud_event(doc: &Json, id: &str) -> Json {
    let field = |name: &str| text(doc, name);
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
        "id": id,
        "source": format!("/huatuo/{}/{}", field("hostname"), field("tracer_name")),
        "type": "tech.huatuo.kernel.event",
        "datacontenttype": "application/json",
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "data": data,
    })
}

/// The values of [`FILTER_FIELDS`] in a record, in that order (empty when absent).
fn filter_values(doc: &Json) -> Vec<String> {
    FILTER_FIELDS.iter().map(|f| text(doc, f)).collect()
}

fn text(doc: &Json, name: &str) -> String {
    doc.get(name)
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_string()
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
    /// Clients disconnected for being slow.
    pub disconnected: AtomicU64,
    /// Clients connected now.
    pub clients: AtomicU64,
}

/// What a client receives, in order.
#[derive(Debug)]
pub enum Frame {
    /// A published event.
    Event(Arc<Published>),
    /// Events missed before a resumed stream: they left the replay ring (or the agent
    /// restarted).
    Lost {
        /// Events lost.
        count: u64,
        /// `replay_buffer_exceeded` or `agent_restarted`.
        reason: &'static str,
    },
}

/// Why a stream ended, sent as its last frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending {
    /// `slow_client` or `agent_stopping`.
    pub reason: &'static str,
    /// Events this client lost.
    pub lost: u64,
}

/// A client's side of a subscription.
#[derive(Debug)]
pub struct Subscription {
    /// The client's frames; ends when the client is dropped or the hub closes.
    pub frames: mpsc::Receiver<Frame>,
    /// Set before `frames` ends when the hub ended the stream.
    pub ending: Arc<Mutex<Option<Ending>>>,
}

/// Why a subscription was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `MaxClients` clients are connected.
    TooManyClients,
    /// The agent is stopping.
    Closed,
    /// `Last-Event-ID` is not an id this agent hands out.
    BadLastEventId(String),
}

#[derive(Debug)]
struct Ring {
    next_seq: u64,
    events: VecDeque<Arc<Published>>,
    bytes: usize,
}

/// Fan-out of stored documents to subscribers, bounded per client, in client count and in
/// replay memory.
#[derive(Debug)]
pub struct WatchHub {
    boot: String,
    sender: broadcast::Sender<Arc<Published>>,
    ring: Mutex<Ring>,
    replay: usize,
    slots: Arc<Mutex<Vec<bool>>>,
    client_drops: Arc<Vec<AtomicU64>>,
    counters: Arc<WatchCounters>,
    stop: watch::Sender<bool>,
}

/// Holds a client slot; dropping it frees the slot.
#[derive(Debug)]
struct ClientSlot {
    index: usize,
    slots: Arc<Mutex<Vec<bool>>>,
    counters: Arc<WatchCounters>,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Ok(mut slots) = self.slots.lock() {
            slots[self.index] = false;
        }
        self.counters.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

impl WatchHub {
    /// A hub admitting at most `max_clients` subscribers and keeping `replay` events for
    /// clients that resume.
    pub fn new(max_clients: usize, replay: usize) -> Self {
        let (sender, _) = broadcast::channel(FANOUT);
        WatchHub {
            boot: uuid::Uuid::new_v4().simple().to_string(),
            sender,
            ring: Mutex::new(Ring {
                next_seq: 1,
                events: VecDeque::new(),
                bytes: 0,
            }),
            replay,
            slots: Arc::new(Mutex::new(vec![false; max_clients])),
            client_drops: Arc::new((0..max_clients).map(|_| AtomicU64::new(0)).collect()),
            counters: Arc::new(WatchCounters::default()),
            stop: watch::channel(false).0,
        }
    }

    /// This boot's id, the first part of every event id.
    pub fn boot_id(&self) -> &str {
        &self.boot
    }

    /// Publishes a stored document to every subscriber and keeps it for replay.
    pub fn publish(&self, doc: Json) {
        let Ok(mut ring) = self.ring.lock() else {
            return;
        };
        let seq = ring.next_seq;
        ring.next_seq += 1;
        let event = Arc::new(Published::new(&self.boot, seq, &doc));
        if self.replay > 0 {
            ring.bytes += event.footprint();
            ring.events.push_back(event.clone());
            while ring.events.len() > self.replay || ring.bytes > REPLAY_BYTES {
                match ring.events.pop_front() {
                    Some(old) => ring.bytes -= old.footprint(),
                    None => break,
                }
            }
        }
        // Sent under the ring lock: a subscriber sees the ring and the live events in order.
        // No subscriber is not an error.
        let _ = self.sender.send(event);
    }

    /// Events the replay ring keeps now and the heap bytes they take (bounded by the
    /// `ReplayBuffer` count and [`REPLAY_BYTES`]).
    pub fn replay_held(&self) -> (usize, usize) {
        self.ring
            .lock()
            .map_or((0, 0), |ring| (ring.events.len(), ring.bytes))
    }

    /// The endpoint's counters.
    pub fn counters(&self) -> &WatchCounters {
        &self.counters
    }

    /// Events dropped for each client slot (`0..MaxClients`) since the start.
    pub fn client_drops(&self) -> Vec<u64> {
        self.client_drops
            .iter()
            .map(|d| d.load(Ordering::Relaxed))
            .collect()
    }

    /// Ends every stream (each gets a final `agent_stopping` frame) and refuses new ones.
    pub fn close(&self) {
        self.stop.send_replace(true);
    }

    /// Subscribes with a filter, resuming after `last_event_id` when given.
    pub fn subscribe(
        &self,
        filter: WatchFilter,
        last_event_id: Option<&str>,
    ) -> Result<Subscription, Refusal> {
        if *self.stop.borrow() {
            return Err(Refusal::Closed);
        }
        let resume_after = last_event_id.map(|id| self.parse_id(id)).transpose()?;
        let slot = self.take_slot()?;
        let mut stop = self.stop.subscribe();
        let ring = self.ring.lock().map_err(|_| Refusal::Closed)?;
        let mut source = self.sender.subscribe();
        let mut lost = None;
        let mut replay = Vec::new();
        if let Some(after) = resume_after {
            let oldest = ring.events.front().map_or(ring.next_seq, |e| e.seq);
            let (after, reason) = match after {
                Some(after) => (after.min(ring.next_seq - 1), "replay_buffer_exceeded"),
                None => (0, "agent_restarted"),
            };
            let missing = oldest.saturating_sub(after + 1);
            if missing > 0 || reason == "agent_restarted" {
                lost = Some(Frame::Lost {
                    count: missing,
                    reason,
                });
            }
            replay.extend(
                ring.events
                    .iter()
                    .filter(|e| e.seq > after && filter.matches(e))
                    .cloned(),
            );
        }
        let live_after = ring.next_seq - 1;
        drop(ring);

        let (tx, frames) =
            mpsc::channel(CLIENT_BUFFER + replay.len() + usize::from(lost.is_some()));
        if let Some(lost) = lost {
            let _ = tx.try_send(lost);
        }
        for event in replay {
            let _ = tx.try_send(Frame::Event(event));
        }
        let ending = Arc::new(Mutex::new(None));
        let client_ending = ending.clone();
        let counters = self.counters.clone();
        let drops = self.client_drops.clone();
        tokio::spawn(async move {
            let index = slot.index;
            let mut lost = 0u64;
            let mut failures = 0u32;
            let mut count_drop = |n: u64| {
                lost += n;
                counters.dropped.fetch_add(n, Ordering::Relaxed);
                drops[index].fetch_add(n, Ordering::Relaxed);
            };
            let reason = loop {
                tokio::select! {
                    biased;
                    _ = tx.closed() => break None,
                    _ = stop.wait_for(|stopped| *stopped) => break Some("agent_stopping"),
                    received = source.recv() => match received {
                        Ok(event) => {
                            if event.seq <= live_after || !filter.matches(&event) {
                                continue;
                            }
                            match tx.try_send(Frame::Event(event)) {
                                Ok(()) => {
                                    failures = 0;
                                    counters.delivered.fetch_add(1, Ordering::Relaxed);
                                }
                                Err(mpsc::error::TrySendError::Full(_)) => {
                                    count_drop(1);
                                    failures += 1;
                                    if failures >= MAX_FAILED_WRITES {
                                        counters.disconnected.fetch_add(1, Ordering::Relaxed);
                                        break Some("slow_client");
                                    }
                                }
                                Err(mpsc::error::TrySendError::Closed(_)) => break None,
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => count_drop(n),
                        Err(broadcast::error::RecvError::Closed) => break Some("agent_stopping"),
                    },
                }
            };
            if let (Some(reason), Ok(mut ending)) = (reason, client_ending.lock()) {
                *ending = Some(Ending { reason, lost });
            }
            drop(slot);
        });
        Ok(Subscription { frames, ending })
    }

    /// `Some(seq)` for an id of this boot, `None` for one of an earlier boot.
    fn parse_id(&self, id: &str) -> Result<Option<u64>, Refusal> {
        let bad = || Refusal::BadLastEventId("Last-Event-ID is not `<boot id>-<sequence>`".into());
        let (boot, seq) = id.trim().rsplit_once('-').ok_or_else(bad)?;
        let seq: u64 = seq.parse().map_err(|_| bad())?;
        if boot.len() != 32 || !boot.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok((boot == self.boot).then_some(seq))
    }

    fn take_slot(&self) -> Result<ClientSlot, Refusal> {
        let mut slots = self.slots.lock().map_err(|_| Refusal::Closed)?;
        let Some(index) = slots.iter().position(|taken| !taken) else {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::TooManyClients);
        };
        slots[index] = true;
        self.counters.clients.fetch_add(1, Ordering::Relaxed);
        Ok(ClientSlot {
            index,
            slots: self.slots.clone(),
            counters: self.counters.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(pattern: &str) -> WatchFilter {
        let mut request = WatchRequest::default();
        request
            .filters
            .insert("tracer_name".into(), pattern.to_string());
        WatchFilter::compile(&request).expect("filter compiles")
    }

    #[test]
    fn a_tracer_filter_matches_any_name_of_the_tracer() {
        let current = json!({"tracer_name": "softirq_tracing", "hostname": "n1"});
        let legacy = json!({"tracer_name": "lacp"});
        assert!(filter("^softirq$").matches_record(&current));
        assert!(filter("^softirq_tracing$").matches_record(&current));
        assert!(filter("^netdev_bonding_lacp$").matches_record(&legacy));
        assert!(!filter("^oom$").matches_record(&current));
        assert!(!filter("^dropwatch$").matches_record(&legacy));
    }

    /// A stored record with `payload` bytes of tracer data.
    fn record(payload: usize) -> Json {
        json!({
            "hostname": "node-1",
            "region": "r1",
            "tracer_name": "dropwatch",
            "tracer_data": {"stack": "x".repeat(payload)},
        })
    }

    #[test]
    fn the_replay_ring_holds_at_most_its_byte_bound_as_allocated() {
        // Small events, so an event's id, filter values and bookkeeping are a sizeable part of
        // what it holds besides its text; a count bound well above what fits in the bytes.
        let hub = WatchHub::new(1, 65_536);
        for i in 0..40_000 {
            hub.publish(record(100 + i % 300));
        }
        let ring = hub.ring.lock().expect("ring lock");
        let held: usize = ring
            .events
            .iter()
            .map(|e| {
                e.json.capacity()
                    + e.id.capacity()
                    + e.fields.capacity() * std::mem::size_of::<String>()
                    + std::mem::size_of::<Published>()
            })
            .sum();
        let counted = (ring.events.len(), ring.bytes);
        drop(ring);
        assert!(counted.0 < 40_000, "the byte bound evicted nothing");
        assert!(
            held <= REPLAY_BYTES,
            "{held} bytes held, bound {REPLAY_BYTES}"
        );
        assert!(
            held >= REPLAY_BYTES / 2,
            "{held} bytes held: the ring is not full"
        );
        assert_eq!(hub.replay_held(), counted);
    }

    #[test]
    fn a_kept_event_has_no_spare_text_capacity() {
        let hub = WatchHub::new(1, 16);
        for payload in [10, 1000, 5000, 70_000] {
            hub.publish(record(payload));
        }
        let ring = hub.ring.lock().expect("ring lock");
        for event in &ring.events {
            assert_eq!(event.json.capacity(), event.json.len());
        }
    }
}
