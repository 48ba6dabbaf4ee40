//! What a GPU backend reads in one poll, vendor-neutral: versions, then per GPU its identity,
//! board power, PCIe link, inter-GPU links and per-die values. Every value is optional (a
//! query the device does not support is left out, not zero). Values are in the units of
//! HUATUO's family names (watts, GT/s, lanes, bytes per second, bytes, °C, percent, MHz).
//!
//! The recorded backend reads this shape from JSON; the NVML backend fills it from NVML.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One poll of every GPU of one vendor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpuReadings {
    /// Version of the management library (MetaX SML, NVML).
    pub sdk_version: Option<String>,
    /// Version of the kernel driver.
    pub driver_version: Option<String>,
    /// The GPUs.
    pub gpus: Vec<Gpu>,
}

/// One GPU.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Gpu {
    /// Index of the GPU (the `gpu` label).
    pub gpu: u32,
    /// Identity, exported as labels of `info`.
    pub info: GpuInfo,
    /// Board power, watts (MetaX: the sum over the board's power ways).
    pub board_power_watts: Option<f64>,
    /// Current PCIe link speed, GT/s per lane.
    pub pcie_link_speed_gt_per_second: Option<f64>,
    /// Current PCIe link width, lanes.
    pub pcie_link_width_lanes: Option<u64>,
    /// PCIe receive throughput, bytes per second.
    pub pcie_receive_bytes_per_second: Option<u64>,
    /// PCIe transmit throughput, bytes per second.
    pub pcie_transmit_bytes_per_second: Option<u64>,
    /// GPU-to-GPU links (MetaXLink), numbered from 1.
    pub links: Vec<GpuLink>,
    /// Dies; an NVIDIA GPU has one whose `die` is absent (no `die` label).
    pub dies: Vec<Die>,
}

/// The identity of a GPU; empty fields are not exported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpuInfo {
    /// Product name.
    pub model: String,
    /// UUID.
    pub uuid: String,
    /// BIOS (VBIOS) version.
    pub bios_version: String,
    /// PCI bus address, `domain:bus:device.function`.
    pub bdf: String,
    /// MetaX: native, vf or pf.
    pub mode: String,
    /// MetaX: number of dies.
    pub die_count: Option<u32>,
}

/// One GPU-to-GPU link.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpuLink {
    /// Link number (the link label), from 1.
    pub link: u32,
    /// Current speed, GT/s.
    pub speed_gt_per_second: Option<f64>,
    /// Current width, lanes.
    pub width_lanes: Option<u64>,
    /// Receive throughput, bytes per second.
    pub receive_bytes_per_second: Option<u64>,
    /// Transmit throughput, bytes per second.
    pub transmit_bytes_per_second: Option<u64>,
    /// Bytes received since the counter started.
    pub receive_bytes_total: Option<u64>,
    /// Bytes transmitted since the counter started.
    pub transmit_bytes_total: Option<u64>,
    /// AER errors by type (`ce` correctable, `ue` uncorrectable).
    pub aer_errors: BTreeMap<String, u64>,
}

/// One die of a GPU.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Die {
    /// Die index (the `die` label); absent for GPUs without dies.
    pub die: Option<u32>,
    /// Status code, 0 normal (MetaX).
    pub status: Option<i64>,
    /// Temperature, °C.
    pub temperature_celsius: Option<f64>,
    /// Utilization per IP block, percent.
    pub utilization_percent: BTreeMap<String, f64>,
    /// Memory size, bytes.
    pub memory_total_bytes: Option<u64>,
    /// Memory in use, bytes.
    pub memory_used_bytes: Option<u64>,
    /// Clock per IP block, MHz.
    pub clock_mhz: BTreeMap<String, u64>,
    /// Reasons the clocks are throttled right now (only active ones).
    pub clocks_throttling: Vec<String>,
    /// DPM performance level per IP block (MetaX).
    pub dpm_performance_level: BTreeMap<String, i64>,
    /// Performance state, 0 = P0 the highest (NVIDIA).
    pub performance_state: Option<u32>,
    /// ECC error counts.
    pub ecc_memory_errors: Vec<EccCount>,
    /// Memory pages retired after ECC errors.
    pub ecc_memory_retired_pages: Option<u64>,
}

/// An ECC error counter of one memory type and error type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EccCount {
    /// `sram` or `dram`.
    pub memory_type: String,
    /// `ce` (correctable) or `ue` (uncorrectable).
    pub error_type: String,
    /// Errors counted.
    pub count: u64,
}
