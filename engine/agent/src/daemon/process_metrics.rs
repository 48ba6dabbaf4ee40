//! The standard process families about the agent itself, as every Prometheus client exports
//! them and HUATUO's dashboards query them (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`,
//! `process_max_fds`, `process_threads`, `process_start_time_seconds`), read by the
//! `prometheus` crate's process collector at every scrape.

use huatuo_dsl::output::{MetricKind, MetricPoint};
use prometheus::core::Collector;
use prometheus::process_collector::ProcessCollector;
use prometheus::proto::MetricType;

/// Reads the agent's own process families.
pub struct ProcessMetrics(ProcessCollector);

impl Default for ProcessMetrics {
    fn default() -> Self {
        ProcessMetrics(ProcessCollector::for_self())
    }
}

impl ProcessMetrics {
    /// The current values, one point per family (a family /proc cannot give is left out).
    pub fn points(&self) -> Vec<MetricPoint> {
        let mut points = Vec::new();
        for family in self.0.collect() {
            let counter = family.get_field_type() == MetricType::COUNTER;
            for metric in family.get_metric() {
                let value = if counter {
                    metric.get_counter().value()
                } else {
                    metric.get_gauge().value()
                };
                points.push(MetricPoint {
                    family: family.name().to_string(),
                    help: family.help().to_string(),
                    kind: if counter {
                        MetricKind::Counter
                    } else {
                        MetricKind::Gauge
                    },
                    labels: Default::default(),
                    value,
                });
            }
        }
        points
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let points = ProcessMetrics::default().points();
        let value = |name: &str| {
            points
                .iter()
                .find(|p| p.family == name)
                .map(|p| p.value)
                .unwrap_or_else(|| panic!("{name} missing from {points:?}"))
        };
        assert!(value("process_resident_memory_bytes") > 0.0);
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        assert!(value("process_cpu_seconds_total") >= 0.0);
        assert!(value("process_threads") >= 1.0);
        let kind = |name: &str| points.iter().find(|p| p.family == name).map(|p| p.kind);
        assert_eq!(kind("process_cpu_seconds_total"), Some(MetricKind::Counter));
        assert_eq!(kind("process_open_fds"), Some(MetricKind::Gauge));
    }
}
