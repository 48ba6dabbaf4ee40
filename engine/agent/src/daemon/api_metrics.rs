//! Self-metrics of the HTTP API: connections and event-stream clients.

use super::selfmetrics::point;
use huatuo_dsl::output::{MetricKind, MetricPoint};
use huatuo_http::conn::ConnCounters;
use huatuo_http::watch::WatchHub;
use std::sync::atomic::{AtomicU64, Ordering};

fn load(counter: &AtomicU64) -> f64 {
    counter.load(Ordering::Relaxed) as f64
}

/// The API's points: connection counters, watch counters, the replay ring's size, and the
/// events each watch client slot lost (one series per slot that ever lost one, so at most
/// `EventsWatch.MaxClients`).
pub fn points(watch: &WatchHub, connections: &ConnCounters) -> Vec<MetricPoint> {
    use MetricKind::{Counter, Gauge};
    let w = watch.counters();
    let c = connections;
    let mut out: Vec<MetricPoint> = [
        (
            "agent_watch_delivered_total",
            "events delivered to watch clients",
            Counter,
            &w.delivered,
        ),
        (
            "agent_watch_dropped_total",
            "events dropped for slow watch clients",
            Counter,
            &w.dropped,
        ),
        (
            "agent_watch_refused_total",
            "watch requests refused by MaxClients",
            Counter,
            &w.refused,
        ),
        (
            "agent_watch_disconnected_total",
            "watch clients disconnected for being slow",
            Counter,
            &w.disconnected,
        ),
        (
            "agent_watch_clients",
            "watch clients connected",
            Gauge,
            &w.clients,
        ),
        (
            "agent_http_connections",
            "HTTP connections open",
            Gauge,
            &c.open,
        ),
        (
            "agent_http_connections_accepted_total",
            "HTTP connections accepted",
            Counter,
            &c.accepted,
        ),
        (
            "agent_http_connections_refused_total",
            "HTTP connections closed at once: MaxConnections reached",
            Counter,
            &c.refused,
        ),
        (
            "agent_http_connections_evicted_total",
            "HTTP connections without a request closed to make room",
            Counter,
            &c.evicted,
        ),
        (
            "agent_http_connections_idle_closed_total",
            "HTTP connections closed by IdleTimeout",
            Counter,
            &c.idle_closed,
        ),
        (
            "agent_http_accept_errors_total",
            "failed accepts of HTTP connections",
            Counter,
            &c.accept_errors,
        ),
        (
            "agent_http_tls_failures_total",
            "failed or timed-out TLS handshakes",
            Counter,
            &c.tls_failures,
        ),
    ]
    .into_iter()
    .map(|(family, help, kind, value)| point(family, help, kind, &[], load(value)))
    .collect();
    // What the replay ring keeps: its growth to the bound is not a leak.
    let (events, bytes) = watch.replay_held();
    out.push(point(
        "agent_watch_replay_events",
        "events kept for watch clients that resume",
        Gauge,
        &[],
        events as f64,
    ));
    out.push(point(
        "agent_watch_replay_bytes",
        "heap bytes the kept events take (at most 4 MiB)",
        Gauge,
        &[],
        bytes as f64,
    ));
    for (slot, lost) in watch.client_drops().into_iter().enumerate() {
        if lost > 0 {
            out.push(point(
                "agent_watch_client_dropped_total",
                "events dropped for the watch client in this slot",
                Counter,
                &[("client", &slot.to_string())],
                lost as f64,
            ));
        }
    }
    out
}
