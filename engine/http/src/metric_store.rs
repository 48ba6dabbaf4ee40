//! The latest value of every series, kept off the request path and rendered on scrape.

use crate::exposition;
use huatuo_dsl::output::{MetricKind, MetricPoint};
use indexmap::IndexMap;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Every metric family is exported under this prefix.
pub const PREFIX: &str = "huatuo_bamai_";

type Labels = BTreeMap<String, String>;

#[derive(Debug)]
struct Series {
    value: f64,
    updated: Instant,
    /// Never expires (a counter exported from the start, see [`MetricStore::pin`]).
    pinned: bool,
}

#[derive(Debug)]
struct Family {
    help: String,
    kind: MetricKind,
    /// Found by hashing the labels; kept in label order.
    series: IndexMap<Labels, Series>,
}

/// Latest points per series with a bound on how many series it holds.
#[derive(Debug)]
pub struct MetricStore {
    families: RwLock<BTreeMap<String, Family>>,
    common: Labels,
    max_series: usize,
    series_count: AtomicU64,
    dropped: AtomicU64,
}

impl MetricStore {
    /// A store adding `common` labels (host, region) to every series, holding at most
    /// `max_series` series.
    pub fn new(common: Labels, max_series: usize) -> Self {
        MetricStore {
            families: RwLock::new(BTreeMap::new()),
            common,
            max_series,
            series_count: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Records new values; a new series beyond the bound is dropped and counted.
    pub fn update(&self, points: &[MetricPoint]) {
        self.insert(points, false);
    }

    /// Records values whose series never expire: the host's counters exported from the start
    /// (`softlockup_total`), which may go long without an event.
    pub fn pin(&self, points: &[MetricPoint]) {
        self.insert(points, true);
    }

    fn insert(&self, points: &[MetricPoint], pin: bool) {
        let Ok(mut families) = self.families.write() else {
            return;
        };
        let now = Instant::now();
        for point in points {
            if !families.contains_key(&point.family) {
                families.insert(
                    point.family.clone(),
                    Family {
                        help: point.help.clone(),
                        kind: point.kind,
                        series: IndexMap::new(),
                    },
                );
            }
            let Some(family) = families.get_mut(&point.family) else {
                continue;
            };
            // A known series (nearly every point): one hash of its labels, no comparisons
            // along a tree of series that share most of their labels.
            if let Some(series) = family.series.get_mut(&point.labels) {
                series.value = point.value;
                series.updated = now;
                series.pinned |= pin;
                continue;
            }
            if self.series_count.load(Ordering::Relaxed) as usize >= self.max_series {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.series_count.fetch_add(1, Ordering::Relaxed);
            // A new one goes to its place in label order, the order a render walks.
            family.series.insert_sorted(
                point.labels.clone(),
                Series {
                    value: point.value,
                    updated: now,
                    pinned: pin,
                },
            );
        }
    }

    /// Forgets series not updated for `max_age` (a container that went away), except pinned ones.
    pub fn expire(&self, max_age: Duration) {
        let Ok(mut families) = self.families.write() else {
            return;
        };
        let now = Instant::now();
        let mut removed = 0u64;
        for family in families.values_mut() {
            let before = family.series.len();
            // Keeps the label order of the rest.
            family
                .series
                .retain(|_, s| s.pinned || now.duration_since(s.updated) <= max_age);
            removed += (before - family.series.len()) as u64;
        }
        families.retain(|_, f| !f.series.is_empty());
        self.series_count.fetch_sub(removed, Ordering::Relaxed);
    }

    /// New series refused because the store was full.
    pub fn dropped_series(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Series currently held.
    pub fn series(&self) -> u64 {
        self.series_count.load(Ordering::Relaxed)
    }

    /// The store in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        self.render_matching(&|_| true)
    }

    /// The families whose name (without the `huatuo_bamai_` prefix) `keep` accepts, in the
    /// Prometheus text exposition format, with the common labels added (a series label of
    /// the same name gives way to the common one). Series come in label order.
    pub fn render_matching(&self, keep: &dyn Fn(&str) -> bool) -> String {
        let Ok(families) = self.families.read() else {
            return String::new();
        };
        // About 200 bytes a series; growing the buffer as it fills is what it saves.
        let mut out = String::with_capacity(self.series() as usize * 200);
        let mut name = String::new();
        let mut help = String::new();
        for (short, family) in families.iter().filter(|(n, _)| keep(n)) {
            if family.series.is_empty() {
                continue;
            }
            name.clear();
            name.push_str(PREFIX);
            name.push_str(short);
            let help = if family.help.is_empty() {
                help.clear();
                help.extend(short.chars().map(|c| if c == '_' { ' ' } else { c }));
                help.as_str()
            } else {
                family.help.as_str()
            };
            let kind = match family.kind {
                MetricKind::Gauge => "gauge",
                MetricKind::Counter => "counter",
            };
            exposition::write_head(&mut out, &name, help, kind);
            for (labels, series) in &family.series {
                let labels = exposition::merge_sorted(pairs(&self.common), pairs(labels));
                exposition::write_sample(&mut out, &name, labels, series.value);
            }
        }
        out
    }
}

/// The pairs of a label map as borrowed strings, in name order.
fn pairs(labels: &Labels) -> impl Iterator<Item = (&str, &str)> {
    labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(family: &str, value: f64) -> MetricPoint {
        MetricPoint {
            family: family.into(),
            help: "h".into(),
            kind: MetricKind::Counter,
            labels: Labels::new(),
            value,
        }
    }

    fn point(family: &str, kind: MetricKind, labels: &[(&str, &str)], value: f64) -> MetricPoint {
        MetricPoint {
            family: family.into(),
            help: String::new(),
            kind,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        }
    }

    /// What the `prometheus` crate's text encoder writes for the same families, series and
    /// common labels: the reference the renderer must match byte for byte.
    fn reference(
        common: &Labels,
        families: &[(&str, &str, MetricKind, Vec<MetricPoint>)],
    ) -> String {
        use prometheus::proto;
        let encoded: Vec<proto::MetricFamily> = families
            .iter()
            .map(|(name, help, kind, points)| {
                let mut mf = proto::MetricFamily::default();
                mf.set_name(format!("{PREFIX}{name}"));
                mf.set_help(help.to_string());
                mf.set_field_type(match kind {
                    MetricKind::Gauge => proto::MetricType::GAUGE,
                    MetricKind::Counter => proto::MetricType::COUNTER,
                });
                for point in points {
                    let mut metric = proto::Metric::default();
                    let mut pairs: Vec<proto::LabelPair> = common
                        .iter()
                        .chain(point.labels.iter())
                        .map(|(k, v)| {
                            let mut pair = proto::LabelPair::default();
                            pair.set_name(k.clone());
                            pair.set_value(v.clone());
                            pair
                        })
                        .collect();
                    pairs.sort_by(|a, b| a.name().cmp(b.name()));
                    pairs.dedup_by(|a, b| a.name() == b.name());
                    metric.label = pairs;
                    if *kind == MetricKind::Gauge {
                        let mut gauge = proto::Gauge::default();
                        gauge.set_value(point.value);
                        metric.gauge = Some(gauge).into();
                    } else {
                        let mut counter = proto::Counter::default();
                        counter.set_value(point.value);
                        metric.counter = Some(counter).into();
                    }
                    mf.metric.push(metric);
                }
                mf
            })
            .collect();
        let mut out = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&encoded, &mut out)
            .expect("encode");
        out
    }

    #[test]
    fn the_text_is_what_the_prometheus_encoder_writes() {
        let common: Labels = [("host", "node-1"), ("region", "r\\"), ("zone", "z")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let store = MetricStore::new(common.clone(), 100);
        // The reference lists families by name and series by labels, as the store renders them.
        let gauge = vec![
            point("a_gauge", MetricKind::Gauge, &[], 0.25),
            point("a_gauge", MetricKind::Gauge, &[("cpu", "0")], -3.0),
            point(
                "a_gauge",
                MetricKind::Gauge,
                &[("cpu", "1"), ("host", "own")],
                1e21,
            ),
            point(
                "a_gauge",
                MetricKind::Gauge,
                &[("dev", "q\"x\ny")],
                f64::NAN,
            ),
        ];
        let counter = vec![point(
            "b_total",
            MetricKind::Counter,
            &[("container_id", "c1"), ("zz", "last")],
            12345678.0,
        )];
        store.update(&counter);
        // Out of order: a new series takes its place among the others.
        store.update(&gauge.iter().rev().cloned().collect::<Vec<_>>());
        let text = store.render();
        let expected = reference(
            &common,
            &[
                ("a_gauge", "a gauge", MetricKind::Gauge, gauge),
                ("b_total", "b total", MetricKind::Counter, counter),
            ],
        );
        assert_eq!(text, expected);
        let only_b = store.render_matching(&|name| name.starts_with("b_"));
        assert_eq!(
            only_b,
            expected[expected.find("# HELP huatuo_bamai_b_total").unwrap()..]
        );
    }

    #[test]
    fn pinned_series_outlive_expiry_and_keep_their_updates() {
        let store = MetricStore::new(Labels::new(), 10);
        store.pin(&[counter("softlockup_total", 0.0)]);
        store.update(&[counter("loadavg_load1", 0.5)]);
        std::thread::sleep(Duration::from_millis(5));
        store.expire(Duration::from_millis(1));
        assert_eq!(store.series(), 1);
        // An event updates the pinned series in place; it stays pinned.
        store.update(&[counter("softlockup_total", 1.0)]);
        std::thread::sleep(Duration::from_millis(5));
        store.expire(Duration::from_millis(1));
        let text = store.render();
        assert!(text.contains("huatuo_bamai_softlockup_total 1\n"), "{text}");
        assert!(!text.contains("loadavg_load1"), "{text}");
    }
}
