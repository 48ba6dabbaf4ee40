//! What NVML returns, as plain numbers ([`NvmlSnapshot`]), mapped onto [`GpuReadings`]:
//! pure functions, tested without the library (the calls are in [`super::nvml`]).
//!
//! - power: `nvmlDeviceGetPowerUsage` milliwatts → watts;
//! - PCIe speed: `nvmlDeviceGetPcieSpeed` Mbps per lane → GT/s, else the current link
//!   generation's rate (gen 1 2.5 … gen 6 64 GT/s); width as is;
//! - PCIe throughput: `nvmlDeviceGetPcieThroughput` KB/s (over 20 ms) → bytes/s, ×1000;
//! - utilization: `gpu` and `memory` (`nvmlDeviceGetUtilizationRates`), `encoder`,
//!   `decoder`; clocks: `graphics`, `sm`, `memory`, `video` (MHz), as the `ip` label;
//! - throttle reasons: the set bits of `nvmlDeviceGetCurrentClocksThrottleReasons`, named
//!   after NVML's constants in snake case;
//! - ECC: aggregate (lifetime) corrected/uncorrected counts of device memory (`dram`) and
//!   SRAM (`sram`) as `error_type` `ce`/`ue`; retired pages: single- plus double-bit.

use super::readings::{Die, EccCount, Gpu, GpuInfo, GpuReadings};
use nvml_wrapper::bitmasks::device::ThrottleReasons;

/// One NVIDIA device as NVML reports it; `None` where the query is not supported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NvmlDevice {
    /// NVML index.
    pub index: u32,
    /// `nvmlDeviceGetName`.
    pub name: Option<String>,
    /// `nvmlDeviceGetUUID`.
    pub uuid: Option<String>,
    /// `nvmlDeviceGetVbiosVersion`.
    pub vbios_version: Option<String>,
    /// PCI bus id of `nvmlDeviceGetPciInfo`.
    pub bus_id: Option<String>,
    /// Milliwatts.
    pub power_mw: Option<u32>,
    /// Mbps per lane (`nvmlDeviceGetPcieSpeed`).
    pub pcie_speed_mbps: Option<u32>,
    /// Current link generation.
    pub pcie_gen: Option<u32>,
    /// Current link width.
    pub pcie_width: Option<u32>,
    /// KB/s received.
    pub pcie_rx_kb_per_second: Option<u32>,
    /// KB/s sent.
    pub pcie_tx_kb_per_second: Option<u32>,
    /// GPU core temperature, °C.
    pub temperature_c: Option<u32>,
    /// Percent of time a kernel ran.
    pub util_gpu: Option<u32>,
    /// Percent of time device memory was read or written.
    pub util_memory: Option<u32>,
    /// Encoder utilization, percent.
    pub util_encoder: Option<u32>,
    /// Decoder utilization, percent.
    pub util_decoder: Option<u32>,
    /// Framebuffer bytes.
    pub memory_total: Option<u64>,
    /// Framebuffer bytes in use.
    pub memory_used: Option<u64>,
    /// Current clocks, MHz, by `ip` name.
    pub clocks: Vec<(&'static str, u32)>,
    /// Current throttle reason bits.
    pub throttle_reasons: Option<u64>,
    /// P-state 0..15.
    pub performance_state: Option<u32>,
    /// Aggregate ECC counts: (memory_type, error_type, count).
    pub ecc: Vec<(&'static str, &'static str, u64)>,
    /// Pages retired for single-bit and double-bit errors.
    pub retired_pages: Option<u64>,
}

/// One NVML poll.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NvmlSnapshot {
    /// `nvmlSystemGetNVMLVersion`.
    pub nvml_version: Option<String>,
    /// `nvmlSystemGetDriverVersion`.
    pub driver_version: Option<String>,
    /// The devices.
    pub devices: Vec<NvmlDevice>,
}

/// Names of the throttle reason bits, in bit order (`applications_clocks_setting` is the
/// bit NVML also calls `UserDefinedClocks`).
pub const THROTTLE_REASONS: [(ThrottleReasons, &str); 9] = [
    (ThrottleReasons::GPU_IDLE, "gpu_idle"),
    (
        ThrottleReasons::APPLICATIONS_CLOCKS_SETTING,
        "applications_clocks_setting",
    ),
    (ThrottleReasons::SW_POWER_CAP, "sw_power_cap"),
    (ThrottleReasons::HW_SLOWDOWN, "hw_slowdown"),
    (ThrottleReasons::SYNC_BOOST, "sync_boost"),
    (ThrottleReasons::SW_THERMAL_SLOWDOWN, "sw_thermal_slowdown"),
    (ThrottleReasons::HW_THERMAL_SLOWDOWN, "hw_thermal_slowdown"),
    (
        ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN,
        "hw_power_brake_slowdown",
    ),
    (
        ThrottleReasons::DISPLAY_CLOCK_SETTING,
        "display_clock_setting",
    ),
];

/// The reasons whose bit is set in `mask`; unknown bits are ignored.
pub fn throttle_reasons(mask: u64) -> Vec<String> {
    THROTTLE_REASONS
        .iter()
        .filter(|(bit, _)| mask & bit.bits() != 0)
        .map(|(_, name)| name.to_string())
        .collect()
}

/// Transfer rate per lane of a PCIe generation, GT/s.
pub fn pcie_gen_gt_per_second(generation: u32) -> Option<f64> {
    match generation {
        1 => Some(2.5),
        2 => Some(5.0),
        3 => Some(8.0),
        4 => Some(16.0),
        5 => Some(32.0),
        6 => Some(64.0),
        _ => None,
    }
}

/// The current link speed: NVML's Mbps per lane when it reports one, else the generation's.
pub fn pcie_gt_per_second(speed_mbps: Option<u32>, generation: Option<u32>) -> Option<f64> {
    speed_mbps
        .filter(|s| *s > 0)
        .map(|s| f64::from(s) / 1000.0)
        .or_else(|| generation.and_then(pcie_gen_gt_per_second))
}

/// One device's readings.
pub fn map_device(device: &NvmlDevice) -> Gpu {
    let info = GpuInfo {
        model: device.name.clone().unwrap_or_default(),
        uuid: device.uuid.clone().unwrap_or_default(),
        bios_version: device.vbios_version.clone().unwrap_or_default(),
        bdf: device.bus_id.clone().unwrap_or_default(),
        ..GpuInfo::default()
    };
    let utilization = [
        ("gpu", device.util_gpu),
        ("memory", device.util_memory),
        ("encoder", device.util_encoder),
        ("decoder", device.util_decoder),
    ]
    .into_iter()
    .filter_map(|(ip, v)| v.map(|v| (ip.to_string(), f64::from(v))))
    .collect();
    let die = Die {
        die: None,
        temperature_celsius: device.temperature_c.map(f64::from),
        utilization_percent: utilization,
        memory_total_bytes: device.memory_total,
        memory_used_bytes: device.memory_used,
        clock_mhz: device
            .clocks
            .iter()
            .map(|(ip, mhz)| (ip.to_string(), u64::from(*mhz)))
            .collect(),
        clocks_throttling: device
            .throttle_reasons
            .map(throttle_reasons)
            .unwrap_or_default(),
        performance_state: device.performance_state,
        ecc_memory_errors: device
            .ecc
            .iter()
            .map(|(memory_type, error_type, count)| EccCount {
                memory_type: memory_type.to_string(),
                error_type: error_type.to_string(),
                count: *count,
            })
            .collect(),
        ecc_memory_retired_pages: device.retired_pages,
        ..Die::default()
    };
    Gpu {
        gpu: device.index,
        info,
        board_power_watts: device.power_mw.map(|mw| f64::from(mw) / 1000.0),
        pcie_link_speed_gt_per_second: pcie_gt_per_second(device.pcie_speed_mbps, device.pcie_gen),
        pcie_link_width_lanes: device.pcie_width.map(u64::from),
        pcie_receive_bytes_per_second: device.pcie_rx_kb_per_second.map(|k| u64::from(k) * 1000),
        pcie_transmit_bytes_per_second: device.pcie_tx_kb_per_second.map(|k| u64::from(k) * 1000),
        links: Vec::new(),
        dies: vec![die],
    }
}

/// A whole poll: the NVML version is the SDK version.
pub fn map_snapshot(snapshot: &NvmlSnapshot) -> GpuReadings {
    GpuReadings {
        sdk_version: snapshot.nvml_version.clone(),
        driver_version: snapshot.driver_version.clone(),
        gpus: snapshot.devices.iter().map(map_device).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_bits_are_named_and_unknown_bits_ignored() {
        // nvml.h: GpuIdle 0x1, SwPowerCap 0x4, HwThermalSlowdown 0x40, 0x1000 undefined.
        assert_eq!(
            throttle_reasons(0x1 | 0x4 | 0x40 | 0x1000),
            ["gpu_idle", "sw_power_cap", "hw_thermal_slowdown"]
        );
        assert!(throttle_reasons(0).is_empty());
        let all: u64 = THROTTLE_REASONS.iter().map(|(b, _)| b.bits()).sum();
        assert_eq!(throttle_reasons(all).len(), 9, "one bit per name");
    }

    #[test]
    fn pcie_speed_prefers_nvml_mbps_then_the_generation() {
        assert_eq!(pcie_gt_per_second(Some(16000), Some(3)), Some(16.0));
        assert_eq!(pcie_gt_per_second(None, Some(3)), Some(8.0));
        assert_eq!(pcie_gt_per_second(Some(0), Some(1)), Some(2.5));
        assert_eq!(pcie_gt_per_second(None, Some(9)), None);
        assert_eq!(pcie_gt_per_second(None, None), None);
    }

    #[test]
    fn a_device_maps_onto_the_shared_readings() {
        let device = NvmlDevice {
            index: 2,
            name: Some("NVIDIA A100-SXM4-80GB".into()),
            uuid: Some("GPU-1".into()),
            vbios_version: Some("92.00.36.00.02".into()),
            bus_id: Some("00000000:07:00.0".into()),
            power_mw: Some(61_250),
            pcie_speed_mbps: None,
            pcie_gen: Some(4),
            pcie_width: Some(16),
            pcie_rx_kb_per_second: Some(2048),
            pcie_tx_kb_per_second: Some(3),
            temperature_c: Some(33),
            util_gpu: Some(87),
            util_memory: Some(40),
            util_encoder: None,
            util_decoder: Some(0),
            memory_total: Some(85_899_345_920),
            memory_used: Some(4_194_304),
            clocks: vec![("graphics", 1410), ("memory", 1593)],
            throttle_reasons: Some(0x4),
            performance_state: Some(0),
            ecc: vec![("dram", "ce", 5), ("dram", "ue", 0)],
            retired_pages: Some(2),
        };
        let gpu = map_device(&device);
        assert_eq!(gpu.gpu, 2);
        assert_eq!(gpu.info.model, "NVIDIA A100-SXM4-80GB");
        assert_eq!(gpu.info.bdf, "00000000:07:00.0");
        assert_eq!(gpu.board_power_watts, Some(61.25));
        assert_eq!(gpu.pcie_link_speed_gt_per_second, Some(16.0));
        assert_eq!(gpu.pcie_link_width_lanes, Some(16));
        assert_eq!(gpu.pcie_receive_bytes_per_second, Some(2_048_000));
        assert_eq!(gpu.pcie_transmit_bytes_per_second, Some(3000));
        assert!(gpu.links.is_empty());
        let [die] = gpu.dies.as_slice() else {
            panic!("one die: {:?}", gpu.dies)
        };
        assert_eq!(die.die, None, "no die label for NVIDIA");
        assert_eq!(die.temperature_celsius, Some(33.0));
        assert_eq!(
            die.utilization_percent.keys().collect::<Vec<_>>(),
            ["decoder", "gpu", "memory"]
        );
        assert_eq!(die.utilization_percent["gpu"], 87.0);
        assert_eq!(die.clock_mhz["memory"], 1593);
        assert_eq!(die.clocks_throttling, ["sw_power_cap"]);
        assert_eq!(die.performance_state, Some(0));
        assert_eq!(die.ecc_memory_errors.len(), 2);
        assert_eq!(die.ecc_memory_errors[0].count, 5);
        assert_eq!(die.ecc_memory_retired_pages, Some(2));
        assert_eq!(die.status, None);
        assert!(die.dpm_performance_level.is_empty());
    }

    #[test]
    fn a_snapshot_names_nvml_as_the_sdk() {
        let readings = map_snapshot(&NvmlSnapshot {
            nvml_version: Some("12.535.104.05".into()),
            driver_version: Some("535.104.05".into()),
            devices: vec![NvmlDevice::default()],
        });
        assert_eq!(readings.sdk_version.as_deref(), Some("12.535.104.05"));
        assert_eq!(readings.driver_version.as_deref(), Some("535.104.05"));
        assert_eq!(readings.gpus.len(), 1);
        let die = &readings.gpus[0].dies[0];
        assert!(die.clocks_throttling.is_empty() && die.ecc_memory_errors.is_empty());
    }
}
