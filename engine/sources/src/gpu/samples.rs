//! [`GpuReadings`] to samples of a `gpu.*` source: one sample per label set (versions, a
//! GPU's identity, a GPU, a link, a die, a die's IP block, a throttle reason, an ECC
//! counter), carrying only the fields that apply to it. Readings that land on the same
//! label set (an NVIDIA GPU and its die without a `die` label; SDK and driver of the same
//! version) are merged into one sample, so every sample of a read is its own entity.

use super::readings::{Die, Gpu, GpuLink, GpuReadings};
use super::Vendor;
use crate::common::saturate;
use huatuo_dsl::value::{Sample, Value};
use std::collections::BTreeMap;

type Labels = BTreeMap<String, String>;

/// Samples under construction, keyed by their labels.
#[derive(Default)]
struct Collector {
    samples: BTreeMap<Labels, BTreeMap<String, Value>>,
}

impl Collector {
    fn put(&mut self, labels: &Labels, field: &str, value: Value) {
        self.samples
            .entry(labels.clone())
            .or_default()
            .insert(field.to_string(), value);
    }

    fn uint(&mut self, labels: &Labels, field: &str, value: Option<u64>) {
        if let Some(v) = value {
            self.put(labels, field, Value::Int(saturate(v)));
        }
    }

    fn float(&mut self, labels: &Labels, field: &str, value: Option<f64>) {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            self.put(labels, field, Value::Float(v));
        }
    }

    fn finish(self, source: &str, now_ns: i64) -> Vec<Sample> {
        self.samples
            .into_iter()
            .map(|(labels, fields)| Sample {
                source: source.to_string(),
                time_ns: now_ns,
                labels,
                fields,
            })
            .collect()
    }
}

fn labels(pairs: &[(&str, String)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn with(base: &Labels, name: &str, value: impl Into<String>) -> Labels {
    let mut out = base.clone();
    out.insert(name.to_string(), value.into());
    out
}

/// The samples of one read of `vendor`'s source at `now_ns`.
pub fn to_samples(vendor: &Vendor, readings: &GpuReadings, now_ns: i64) -> Vec<Sample> {
    let mut out = Collector::default();
    for (field, version) in [
        ("sdk_info", &readings.sdk_version),
        ("driver_info", &readings.driver_version),
    ] {
        if let Some(version) = version {
            out.put(
                &labels(&[("version", version.clone())]),
                field,
                Value::Int(1),
            );
        }
    }
    for gpu in &readings.gpus {
        gpu_samples(&mut out, vendor, gpu);
    }
    out.finish(vendor.source, now_ns)
}

fn gpu_samples(out: &mut Collector, vendor: &Vendor, gpu: &Gpu) {
    let base = labels(&[("gpu", gpu.gpu.to_string())]);
    let info = &gpu.info;
    let mut identity = base.clone();
    for (name, value) in [
        ("model", &info.model),
        ("uuid", &info.uuid),
        ("bios_version", &info.bios_version),
        ("bdf", &info.bdf),
        ("mode", &info.mode),
    ] {
        if !value.is_empty() {
            identity.insert(name.to_string(), value.clone());
        }
    }
    if let Some(count) = info.die_count {
        identity.insert("die_count".to_string(), count.to_string());
    }
    out.put(&identity, "info", Value::Int(1));
    out.float(&base, "board_power", gpu.board_power_watts);
    out.float(&base, "pcie_link_speed", gpu.pcie_link_speed_gt_per_second);
    out.uint(&base, "pcie_link_width", gpu.pcie_link_width_lanes);
    out.uint(&base, "pcie_receive", gpu.pcie_receive_bytes_per_second);
    out.uint(&base, "pcie_transmit", gpu.pcie_transmit_bytes_per_second);
    if let Some(link_label) = vendor.link_label {
        for link in &gpu.links {
            link_samples(out, &with(&base, link_label, link.link.to_string()), link);
        }
    }
    for die in &gpu.dies {
        let die_labels = match die.die {
            Some(index) => with(&base, "die", index.to_string()),
            None => base.clone(),
        };
        die_samples(out, &die_labels, die);
    }
}

fn link_samples(out: &mut Collector, base: &Labels, link: &GpuLink) {
    out.float(base, "link_speed", link.speed_gt_per_second);
    out.uint(base, "link_width", link.width_lanes);
    out.uint(base, "link_receive", link.receive_bytes_per_second);
    out.uint(base, "link_transmit", link.transmit_bytes_per_second);
    out.uint(base, "link_received", link.receive_bytes_total);
    out.uint(base, "link_transmitted", link.transmit_bytes_total);
    for (error_type, count) in &link.aer_errors {
        out.uint(
            &with(base, "error_type", error_type.clone()),
            "link_aer_errors",
            Some(*count),
        );
    }
}

fn die_samples(out: &mut Collector, base: &Labels, die: &Die) {
    if let Some(status) = die.status {
        out.put(base, "status", Value::Int(status));
    }
    out.float(base, "temperature", die.temperature_celsius);
    out.uint(base, "memory_total", die.memory_total_bytes);
    out.uint(base, "memory_used", die.memory_used_bytes);
    out.uint(
        base,
        "performance_state",
        die.performance_state.map(u64::from),
    );
    out.uint(base, "ecc_retired_pages", die.ecc_memory_retired_pages);
    for (ip, percent) in &die.utilization_percent {
        out.float(&with(base, "ip", ip.clone()), "utilization", Some(*percent));
    }
    for (ip, mhz) in &die.clock_mhz {
        out.uint(&with(base, "ip", ip.clone()), "clock", Some(*mhz));
    }
    for (ip, level) in &die.dpm_performance_level {
        out.put(
            &with(base, "ip", ip.clone()),
            "dpm_performance_level",
            Value::Int(*level),
        );
    }
    for reason in &die.clocks_throttling {
        out.put(
            &with(base, "reason", reason.clone()),
            "throttling",
            Value::Int(1),
        );
    }
    for ecc in &die.ecc_memory_errors {
        let labels = with(
            &with(base, "memory_type", ecc.memory_type.clone()),
            "error_type",
            ecc.error_type.clone(),
        );
        out.uint(&labels, "ecc_errors", Some(ecc.count));
    }
}

#[cfg(test)]
mod tests {
    use super::super::readings::{EccCount, GpuInfo};
    use super::super::{METAX, NVIDIA};
    use super::*;

    fn find<'a>(samples: &'a [Sample], pairs: &[(&str, &str)]) -> &'a Sample {
        let wanted: Labels = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        samples
            .iter()
            .find(|s| s.labels == wanted)
            .unwrap_or_else(|| panic!("no sample labelled {wanted:?} in {samples:#?}"))
    }

    #[test]
    fn each_reading_lands_on_its_label_set() {
        let readings = GpuReadings {
            sdk_version: Some("2.1".into()),
            driver_version: Some("3.0".into()),
            gpus: vec![Gpu {
                gpu: 0,
                info: GpuInfo {
                    model: "C500".into(),
                    die_count: Some(1),
                    ..GpuInfo::default()
                },
                board_power_watts: Some(85.5),
                links: vec![GpuLink {
                    link: 1,
                    receive_bytes_total: Some(7),
                    aer_errors: [("ce".to_string(), 2)].into(),
                    ..GpuLink::default()
                }],
                dies: vec![Die {
                    die: Some(0),
                    temperature_celsius: Some(40.0),
                    clock_mhz: [("xcore".to_string(), 1600)].into(),
                    clocks_throttling: vec!["idle".into()],
                    ecc_memory_errors: vec![EccCount {
                        memory_type: "dram".into(),
                        error_type: "ue".into(),
                        count: 3,
                    }],
                    ..Die::default()
                }],
                ..Gpu::default()
            }],
        };
        let samples = to_samples(&METAX, &readings, 5);
        assert_eq!(samples.len(), 10, "{samples:#?}");
        assert!(samples
            .iter()
            .all(|s| s.source == "gpu.metax" && s.time_ns == 5));
        let field = |pairs: &[(&str, &str)], name: &str| find(&samples, pairs).fields[name].clone();
        assert_eq!(field(&[("version", "2.1")], "sdk_info"), Value::Int(1));
        assert_eq!(field(&[("version", "3.0")], "driver_info"), Value::Int(1));
        assert_eq!(
            field(
                &[("gpu", "0"), ("model", "C500"), ("die_count", "1")],
                "info"
            ),
            Value::Int(1)
        );
        assert_eq!(field(&[("gpu", "0")], "board_power"), Value::Float(85.5));
        assert_eq!(
            field(&[("gpu", "0"), ("metaxlink", "1")], "link_received"),
            Value::Int(7)
        );
        assert_eq!(
            field(
                &[("gpu", "0"), ("metaxlink", "1"), ("error_type", "ce")],
                "link_aer_errors"
            ),
            Value::Int(2)
        );
        assert_eq!(
            field(&[("gpu", "0"), ("die", "0")], "temperature"),
            Value::Float(40.0)
        );
        assert_eq!(
            field(&[("gpu", "0"), ("die", "0"), ("ip", "xcore")], "clock"),
            Value::Int(1600)
        );
        assert_eq!(
            field(
                &[("gpu", "0"), ("die", "0"), ("reason", "idle")],
                "throttling"
            ),
            Value::Int(1)
        );
        assert_eq!(
            field(
                &[
                    ("gpu", "0"),
                    ("die", "0"),
                    ("memory_type", "dram"),
                    ("error_type", "ue")
                ],
                "ecc_errors"
            ),
            Value::Int(3)
        );
    }

    #[test]
    fn same_label_sets_merge_and_links_need_a_link_label() {
        let readings = GpuReadings {
            sdk_version: Some("1.0".into()),
            driver_version: Some("1.0".into()),
            gpus: vec![Gpu {
                gpu: 1,
                board_power_watts: Some(300.0),
                links: vec![GpuLink {
                    link: 1,
                    width_lanes: Some(16),
                    ..GpuLink::default()
                }],
                dies: vec![Die {
                    die: None,
                    memory_used_bytes: Some(1024),
                    temperature_celsius: Some(f64::NAN),
                    ..Die::default()
                }],
                ..Gpu::default()
            }],
        };
        let samples = to_samples(&NVIDIA, &readings, 0);
        let versions = find(&samples, &[("version", "1.0")]);
        assert_eq!(versions.fields.len(), 2);
        let gpu = find(&samples, &[("gpu", "1")]);
        assert_eq!(gpu.fields["board_power"], Value::Float(300.0));
        assert_eq!(gpu.fields["memory_used"], Value::Int(1024));
        assert!(!gpu.fields.contains_key("temperature"), "NaN is left out");
        assert!(samples.iter().all(|s| !s.fields.contains_key("link_width")));
        // versions, identity (just gpu="1", merged with the GPU sample)
        assert_eq!(samples.len(), 2, "{samples:#?}");
    }
}
