//! The block side of `io_tracing`: the `blockio` template loaded for the operation's window
//! alone (its histograms start empty), read once at the end into, per disk, the requests
//! completed and the q2c / d2c / flush latency bounds, plus a container's share of them.

use huatuo_bpf::{CgroupResolver, LoadOptions, Templates};
use huatuo_dsl::value::{Histogram, Sample, Value};
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The template the window runs on.
pub const TEMPLATE: &str = "blockio";

/// Disks listed in a record (the busiest first).
pub const MAX_DISKS: usize = 64;

/// `blockio` loaded and attached for one operation; unloaded when finished or dropped.
pub struct BlockWindow(Templates);

impl BlockWindow {
    /// Loads and attaches `blockio`; the error says why the block part will be missing.
    pub fn start(bpf: bool, resolver: Arc<dyn CgroupResolver>) -> Result<BlockWindow, String> {
        super::admit_template(bpf, TEMPLATE).map_err(|e| e.message)?;
        let templates = Templates::load_with(
            &[TEMPLATE],
            &BTreeMap::new(),
            LoadOptions {
                resolver,
                ..LoadOptions::default()
            },
        );
        if !templates.loaded().contains(&TEMPLATE) {
            return Err(super::trace::attach_failure(&templates, TEMPLATE));
        }
        Ok(BlockWindow(templates))
    }

    /// Reads the window's histograms, unloads the template and summarizes per disk, with
    /// `container_id`'s share when given.
    pub fn finish(self, container_id: Option<&str>) -> Vec<Json> {
        let samples = self.0.read_histograms();
        drop(self.0);
        disks(&samples, container_id, &disk_name)
    }
}

/// The kernel's name of a disk (`loop0`, `nvme0n1`) from its `major:minor`, through the
/// `/sys/dev/block/<major:minor>` link; `None` when the disk is gone.
pub fn disk_name(dev: &str) -> Option<String> {
    let target = std::fs::read_link(format!("/sys/dev/block/{dev}")).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

/// The histogram `field` of a sample.
fn hist<'a>(sample: &'a Sample, field: &str) -> Option<&'a Histogram> {
    match sample.fields.get(field) {
        Some(Value::Hist(h)) => Some(h),
        _ => None,
    }
}

/// Observations of `field`, 0 when the sample has none.
fn count(sample: Option<&Sample>, field: &str) -> u64 {
    sample
        .and_then(|s| hist(s, field))
        .map_or(0, Histogram::total)
}

/// The p50 / p99 / max bucket bounds (ns) of `field`, `null` without observations.
fn latency(sample: &Sample, field: &str) -> Json {
    let Some(h) = hist(sample, field) else {
        return Json::Null;
    };
    match (
        h.quantile_bound(0.5),
        h.quantile_bound(0.99),
        h.quantile_bound(1.0),
    ) {
        (Some(p50), Some(p99), Some(max)) => json!({
            "p50_ns": p50,
            "p99_ns": p99,
            "max_bucket_ns": max,
        }),
        _ => Json::Null,
    }
}

/// One entry per disk that completed requests in the window, busiest first: `disk` (kernel
/// name, or `major:minor` when unknown), `dev`, `requests` (q2c observations), `q2c`, `d2c`,
/// `flush_requests`, `flush`; with `container_id`, `container_requests` and
/// `container_share` (its part of the disk's requests, 0..1).
pub fn disks(
    samples: &[Sample],
    container_id: Option<&str>,
    name_of: &dyn Fn(&str) -> Option<String>,
) -> Vec<Json> {
    let per_disk: BTreeMap<&str, &Sample> = samples
        .iter()
        .filter(|s| !s.labels.contains_key("container_id"))
        .filter_map(|s| Some((s.labels.get("disk")?.as_str(), s)))
        .collect();
    let mut listed: Vec<(u64, Json)> = per_disk
        .into_iter()
        .filter_map(|(dev, sample)| {
            let requests = count(Some(sample), "q2c");
            if requests == 0 {
                return None;
            }
            let mut entry = json!({
                "disk": name_of(dev).unwrap_or_else(|| dev.to_string()),
                "dev": dev,
                "requests": requests,
                "q2c": latency(sample, "q2c"),
                "d2c": latency(sample, "d2c"),
                "flush_requests": count(Some(sample), "flush"),
                "flush": latency(sample, "flush"),
            });
            if let Some(id) = container_id {
                let theirs = samples.iter().find(|s| {
                    s.labels.get("container_id").map(String::as_str) == Some(id)
                        && s.labels.get("disk").map(String::as_str) == Some(dev)
                });
                let container_requests = count(theirs, "q2c");
                entry["container_requests"] = json!(container_requests);
                entry["container_share"] = json!(container_requests as f64 / requests as f64);
            }
            Some((requests, entry))
        })
        .collect();
    listed.sort_by_key(|(requests, _)| std::cmp::Reverse(*requests));
    listed
        .into_iter()
        .take(MAX_DISKS)
        .map(|(_, entry)| entry)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(labels: &[(&str, &str)], q2c: &[(u64, u64)]) -> Sample {
        let h = Value::Hist(Histogram {
            buckets: q2c.to_vec(),
        });
        Sample {
            source: "bpf.blockio".into(),
            time_ns: 0,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            fields: [("q2c".to_string(), h.clone()), ("d2c".to_string(), h)].into(),
        }
    }

    #[test]
    fn disks_rank_by_requests_and_give_the_container_share() {
        let samples = vec![
            sample(&[("disk", "7:0")], &[(1_000, 0), (2_000, 10)]),
            sample(&[("disk", "8:0")], &[(1_000, 30), (50_000, 10)]),
            sample(&[("disk", "8:16")], &[(1_000, 0)]),
            sample(&[("disk", "8:0"), ("container_id", "c1")], &[(1_000, 10)]),
        ];
        let name = |dev: &str| (dev == "8:0").then(|| "sda".to_string());
        let listed = disks(&samples, Some("c1"), &name);
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert_eq!(listed[0]["disk"], "sda");
        assert_eq!(listed[0]["requests"], 40);
        assert_eq!(listed[0]["q2c"]["p50_ns"], 1_000);
        assert_eq!(listed[0]["q2c"]["p99_ns"], 50_000);
        assert_eq!(listed[0]["q2c"]["max_bucket_ns"], 50_000);
        assert_eq!(listed[0]["container_requests"], 10);
        assert_eq!(listed[0]["container_share"], 0.25);
        assert_eq!(listed[0]["flush"], Json::Null);
        assert_eq!(listed[1]["disk"], "7:0");
        assert_eq!(listed[1]["container_requests"], 0);
        assert!(disks(&samples, None, &name)[0]
            .get("container_share")
            .is_none());
    }
}
