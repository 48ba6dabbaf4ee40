//! The latest value of every series, kept off the request path and rendered on scrape.

use huatuo_dsl::output::{MetricKind, MetricPoint};
use prometheus::proto;
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
    series: BTreeMap<Labels, Series>,
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
            let family = families
                .entry(point.family.clone())
                .or_insert_with(|| Family {
                    help: point.help.clone(),
                    kind: point.kind,
                    series: BTreeMap::new(),
                });
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
            family.series.insert(
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

    /// The families whose name (without the `huatuo_bamai_` prefix) `keep` accepts, as
    /// Prometheus protobuf families with the common labels added.
    fn gather_matching(&self, keep: &dyn Fn(&str) -> bool) -> Vec<proto::MetricFamily> {
        let Ok(families) = self.families.read() else {
            return Vec::new();
        };
        families
            .iter()
            .filter(|(name, _)| keep(name))
            .map(|(name, family)| self.encode_family(name, family))
            .collect()
    }

    /// The store as Prometheus protobuf families, with the common labels added.
    pub fn gather(&self) -> Vec<proto::MetricFamily> {
        self.gather_matching(&|_| true)
    }

    /// The store in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        self.render_matching(&|_| true)
    }

    /// The families whose name (without the `huatuo_bamai_` prefix) `keep` accepts, in the
    /// Prometheus text exposition format.
    pub fn render_matching(&self, keep: &dyn Fn(&str) -> bool) -> String {
        let mut out = String::new();
        let encoder = prometheus::TextEncoder::new();
        if let Err(e) = encoder.encode_utf8(&self.gather_matching(keep), &mut out) {
            log::warn!("metrics encoding failed: {e}");
        }
        out
    }

    fn encode_family(&self, name: &str, family: &Family) -> proto::MetricFamily {
        let mut mf = proto::MetricFamily::default();
        mf.set_name(format!("{PREFIX}{name}"));
        mf.set_help(if family.help.is_empty() {
            name.replace('_', " ")
        } else {
            family.help.clone()
        });
        mf.set_field_type(match family.kind {
            MetricKind::Gauge => proto::MetricType::GAUGE,
            MetricKind::Counter => proto::MetricType::COUNTER,
        });
        for (labels, series) in &family.series {
            let mut metric = proto::Metric::default();
            let mut pairs: Vec<proto::LabelPair> = Vec::new();
            for (k, v) in self.common.iter().chain(labels.iter()) {
                let mut pair = proto::LabelPair::default();
                pair.set_name(k.clone());
                pair.set_value(v.clone());
                pairs.push(pair);
            }
            pairs.sort_by(|a, b| a.name().cmp(b.name()));
            pairs.dedup_by(|a, b| a.name() == b.name());
            metric.label = pairs;
            match family.kind {
                MetricKind::Gauge => {
                    let mut gauge = proto::Gauge::default();
                    gauge.set_value(series.value);
                    metric.gauge = Some(gauge).into();
                }
                MetricKind::Counter => {
                    let mut counter = proto::Counter::default();
                    counter.set_value(series.value);
                    metric.counter = Some(counter).into();
                }
            }
            mf.metric.push(metric);
        }
        mf
    }
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
