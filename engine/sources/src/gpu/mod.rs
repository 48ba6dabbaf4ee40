//! GPU sources, one per vendor: `gpu.metax` (HUATUO's `metax_gpu_*` families) and
//! `gpu.nvidia` (ours, `nvidia_gpu_*`). Both read vendor-neutral [`readings::GpuReadings`]
//! from a [`reader::GpuBackend`] and share one sample layout ([`samples`]).
//!
//! Backends: recorded JSON ([`recorded`], `--gpu-recorded DIR` with `metax.json` and
//! `nvidia.json`) for fixtures; NVML ([`nvml`]) for NVIDIA on a live node. MetaX's SML
//! library is not bound (no headers or library to build against here), so on a live node
//! `gpu.metax` is always absent and its families come only from recorded readings.
//! A source without a backend is absent: no samples, no errors, the reason in `/status`.

pub mod nvml;
pub mod nvml_map;
pub mod reader;
pub mod readings;
pub mod recorded;
pub mod samples;

use crate::common::{field, int, polled};
use huatuo_dsl::catalog::{FieldSchema, FieldType, SourceSchema};
use huatuo_dsl::source::Reader;
use huatuo_dsl::units::Dim;
use reader::GpuReader;
use std::path::Path;

/// A GPU vendor's source.
#[derive(Debug)]
pub struct Vendor {
    /// Catalog name.
    pub source: &'static str,
    /// One line for the catalog.
    pub description: &'static str,
    /// File of the vendor's readings in a `--gpu-recorded` directory.
    pub recorded_file: &'static str,
    /// Label of GPU-to-GPU links, when the vendor's backend reports them.
    pub link_label: Option<&'static str>,
    /// Whether dies have their own index (the `die` label).
    pub dies: bool,
}

/// MetaX: SML's readings, recorded only.
pub static METAX: Vendor = Vendor {
    source: "gpu.metax",
    description: "MetaX GPUs per GPU, MetaXLink, die and IP block (HUATUO's metax_gpu collector; recorded readings only, SML is not bound)",
    recorded_file: "metax.json",
    link_label: Some("metaxlink"),
    dies: true,
};

/// NVIDIA: NVML.
pub static NVIDIA: Vendor = Vendor {
    source: "gpu.nvidia",
    description: "NVIDIA GPUs per GPU and clock/utilization domain through NVML (libnvidia-ml.so loaded at run time), or recorded readings",
    recorded_file: "nvidia.json",
    link_label: None,
    dies: false,
};

fn float(name: &str, dim: Dim, description: &str) -> FieldSchema {
    field(name, FieldType::Float, dim, description)
}

/// The schema of `vendor`'s source. Samples carry only the fields of their label set
/// (see [`samples`]); the descriptions say which.
pub fn schema(vendor: &Vendor) -> SourceSchema {
    let mut fields = vec![
        int(
            "sdk_info",
            Dim::Count,
            "1, labelled with the management library's version (MetaX SML, NVML)",
        ),
        int(
            "driver_info",
            Dim::Count,
            "1, labelled with the driver's version",
        ),
        int("info", Dim::Count, "1 per GPU, labelled with its identity"),
        float("board_power", Dim::Count, "board power, watts (per gpu)"),
        float(
            "pcie_link_speed",
            Dim::Count,
            "current PCIe link speed, GT/s per lane (per gpu)",
        ),
        int(
            "pcie_link_width",
            Dim::Count,
            "current PCIe link width, lanes (per gpu)",
        ),
        int(
            "pcie_receive",
            Dim::BytesPerSec,
            "PCIe receive throughput (per gpu)",
        ),
        int(
            "pcie_transmit",
            Dim::BytesPerSec,
            "PCIe transmit throughput (per gpu)",
        ),
    ];
    if let Some(link) = vendor.link_label {
        let per = |what: &str| format!("{what} (per gpu, {link})");
        fields.extend([
            float("link_speed", Dim::Count, &per("current link speed, GT/s")),
            int("link_width", Dim::Count, &per("current link width, lanes")),
            int(
                "link_receive",
                Dim::BytesPerSec,
                &per("link receive throughput"),
            ),
            int(
                "link_transmit",
                Dim::BytesPerSec,
                &per("link transmit throughput"),
            ),
            int("link_received", Dim::Bytes, &per("bytes received")),
            int("link_transmitted", Dim::Bytes, &per("bytes transmitted")),
            int(
                "link_aer_errors",
                Dim::Count,
                &format!("AER errors (per gpu, {link}, error_type)"),
            ),
        ]);
    }
    let die = if vendor.dies {
        "per gpu, die"
    } else {
        "per gpu"
    };
    fields.extend([
        int("status", Dim::Count, &format!("status, 0 normal ({die})")),
        float(
            "temperature",
            Dim::Count,
            &format!("temperature, °C ({die})"),
        ),
        int("memory_total", Dim::Bytes, &format!("memory size ({die})")),
        int("memory_used", Dim::Bytes, &format!("memory in use ({die})")),
        float(
            "utilization",
            Dim::Percent,
            &format!("utilization ({die}, ip)"),
        ),
        int("clock", Dim::Count, &format!("clock, MHz ({die}, ip)")),
        int(
            "throttling",
            Dim::Count,
            &format!("1 per reason the clocks are throttled now ({die}, reason)"),
        ),
        int(
            "ecc_errors",
            Dim::Count,
            &format!("ECC memory errors ({die}, memory_type, error_type)"),
        ),
        int(
            "ecc_retired_pages",
            Dim::Count,
            &format!("memory pages retired after ECC errors ({die})"),
        ),
    ]);
    if vendor.dies {
        fields.push(int(
            "dpm_performance_level",
            Dim::Count,
            "DPM performance level (per gpu, die, ip)",
        ));
    } else {
        fields.push(int(
            "performance_state",
            Dim::Count,
            "performance state, 0 = P0 the highest (per gpu)",
        ));
        fields.retain(|f| f.name != "status");
    }
    let mut labels = vec!["version", "gpu", "model", "uuid", "bios_version", "bdf"];
    if vendor.dies {
        labels.extend(["mode", "die_count", "die"]);
    }
    labels.extend(vendor.link_label);
    labels.extend(["ip", "reason", "memory_type", "error_type"]);
    polled(vendor.source, vendor.description, &labels, fields)
}

/// The GPU readers: from `<recorded>/metax.json` and `<recorded>/nvidia.json` when a
/// recorded directory is given, else NVML for NVIDIA and nothing for MetaX.
pub fn readers(recorded: Option<&Path>) -> Vec<Box<dyn Reader>> {
    match recorded {
        Some(dir) => [&METAX, &NVIDIA]
            .into_iter()
            .map(|vendor| {
                let open = recorded::RecordedGpu::opener(
                    vendor.source,
                    dir.join(vendor.recorded_file),
                );
                Box::new(GpuReader::new(vendor, open)) as Box<dyn Reader>
            })
            .collect(),
        None => vec![
            Box::new(GpuReader::absent(
                &METAX,
                "MetaX SML is not bound in this build; MetaX GPUs are read only from --gpu-recorded",
            )),
            Box::new(GpuReader::new(&NVIDIA, nvml::NvmlGpu::opener())),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_differ_where_the_vendors_do() {
        let metax = schema(&METAX);
        let nvidia = schema(&NVIDIA);
        let names = |s: &SourceSchema| s.fields.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
        assert!(names(&metax).contains(&"link_aer_errors".to_string()));
        assert!(names(&metax).contains(&"dpm_performance_level".to_string()));
        assert!(!names(&nvidia)
            .iter()
            .any(|n| n.starts_with("link_") || n == "status"));
        assert!(names(&nvidia).contains(&"performance_state".to_string()));
        assert!(metax.has_label("metaxlink") && metax.has_label("die"));
        assert!(!nvidia.has_label("die") && !nvidia.has_label("metaxlink"));
        assert_eq!(metax.default_interval_s, Some(10));
    }

    #[test]
    fn live_readers_are_metax_absent_and_nvidia_unopened() {
        let readers = readers(None);
        let names: Vec<String> = readers.iter().map(|r| r.schema().name).collect();
        assert_eq!(names, ["gpu.metax", "gpu.nvidia"]);
        assert!(readers[0].unavailable().is_some());
        assert_eq!(
            readers[1].unavailable(),
            None,
            "NVML is loaded on the first read"
        );
    }
}
