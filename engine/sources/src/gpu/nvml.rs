//! The NVIDIA backend: NVML through `nvml-wrapper`, which loads `libnvidia-ml.so` at run
//! time (the agent builds and runs without it; the source is then absent). Each poll asks
//! every device for what [`NvmlDevice`] holds; a query the device or driver does not
//! support is left out, any other NVML error fails the read (counted by the poller).
//!
//! Not run on NVIDIA hardware by this project's tests: the mapping of the answers
//! ([`super::nvml_map`]) is unit-tested, the calls below are not.

use super::nvml_map::{map_snapshot, NvmlDevice, NvmlSnapshot};
use super::reader::{GpuBackend, Opener};
use super::readings::GpuReadings;
use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, MemoryLocation, PcieUtilCounter, RetirementCause,
    TemperatureSensor,
};
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, Nvml};

/// NVML, initialized.
pub struct NvmlGpu {
    nvml: Nvml,
}

impl NvmlGpu {
    /// Initializes NVML on the first read; absent when the library or driver is missing.
    pub fn opener() -> Opener {
        Box::new(|| match Nvml::init() {
            Ok(nvml) => Ok(Box::new(NvmlGpu { nvml }) as Box<dyn GpuBackend>),
            Err(e) => Err(format!("NVML unavailable: {e}")),
        })
    }
}

/// `Ok(None)` for what a device or driver may lack, the error otherwise.
fn optional<T>(call: &str, result: Result<T, NvmlError>) -> Result<Option<T>, String> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(
            NvmlError::NotSupported
            | NvmlError::NoPermission
            | NvmlError::FunctionNotFound
            | NvmlError::FailedToLoadSymbol(_)
            | NvmlError::NoData,
        ) => Ok(None),
        Err(e) => Err(format!("{call}: {e}")),
    }
}

fn device_snapshot(index: u32, device: &Device<'_>) -> Result<NvmlDevice, String> {
    let mut out = NvmlDevice {
        index,
        name: optional("nvmlDeviceGetName", device.name())?,
        uuid: optional("nvmlDeviceGetUUID", device.uuid())?,
        vbios_version: optional("nvmlDeviceGetVbiosVersion", device.vbios_version())?,
        bus_id: optional("nvmlDeviceGetPciInfo", device.pci_info())?.map(|p| p.bus_id),
        power_mw: optional("nvmlDeviceGetPowerUsage", device.power_usage())?,
        pcie_speed_mbps: optional("nvmlDeviceGetPcieSpeed", device.pcie_link_speed())?,
        pcie_gen: optional(
            "nvmlDeviceGetCurrPcieLinkGeneration",
            device.current_pcie_link_gen(),
        )?,
        pcie_width: optional(
            "nvmlDeviceGetCurrPcieLinkWidth",
            device.current_pcie_link_width(),
        )?,
        pcie_rx_kb_per_second: optional(
            "nvmlDeviceGetPcieThroughput",
            device.pcie_throughput(PcieUtilCounter::Receive),
        )?,
        pcie_tx_kb_per_second: optional(
            "nvmlDeviceGetPcieThroughput",
            device.pcie_throughput(PcieUtilCounter::Send),
        )?,
        temperature_c: optional(
            "nvmlDeviceGetTemperature",
            device.temperature(TemperatureSensor::Gpu),
        )?,
        util_encoder: optional(
            "nvmlDeviceGetEncoderUtilization",
            device.encoder_utilization(),
        )?
        .map(|u| u.utilization),
        util_decoder: optional(
            "nvmlDeviceGetDecoderUtilization",
            device.decoder_utilization(),
        )?
        .map(|u| u.utilization),
        throttle_reasons: optional(
            "nvmlDeviceGetCurrentClocksThrottleReasons",
            device.current_throttle_reasons(),
        )?
        .map(|r| r.bits()),
        performance_state: optional("nvmlDeviceGetPerformanceState", device.performance_state())?
            .map(|p| p.as_c())
            .filter(|p| *p <= 15),
        ..NvmlDevice::default()
    };
    if let Some(rates) = optional("nvmlDeviceGetUtilizationRates", device.utilization_rates())? {
        out.util_gpu = Some(rates.gpu);
        out.util_memory = Some(rates.memory);
    }
    if let Some(memory) = optional("nvmlDeviceGetMemoryInfo", device.memory_info())? {
        out.memory_total = Some(memory.total);
        out.memory_used = Some(memory.used);
    }
    for (ip, clock) in [
        ("graphics", Clock::Graphics),
        ("sm", Clock::SM),
        ("memory", Clock::Memory),
        ("video", Clock::Video),
    ] {
        if let Some(mhz) = optional("nvmlDeviceGetClockInfo", device.clock_info(clock))? {
            out.clocks.push((ip, mhz));
        }
    }
    for (memory_type, location) in [
        ("dram", MemoryLocation::Device),
        ("sram", MemoryLocation::SRAM),
    ] {
        for (error_type, error) in [
            ("ce", MemoryError::Corrected),
            ("ue", MemoryError::Uncorrected),
        ] {
            let count = optional(
                "nvmlDeviceGetMemoryErrorCounter",
                device.memory_error_counter(error, EccCounter::Aggregate, location),
            )?;
            if let Some(count) = count {
                out.ecc.push((memory_type, error_type, count));
            }
        }
    }
    let mut retired = None;
    for cause in [
        RetirementCause::MultipleSingleBitEccErrors,
        RetirementCause::DoubleBitEccError,
    ] {
        if let Some(pages) = optional("nvmlDeviceGetRetiredPages", device.retired_pages(cause))? {
            retired = Some(retired.unwrap_or(0) + pages.len() as u64);
        }
    }
    out.retired_pages = retired;
    Ok(out)
}

impl NvmlGpu {
    fn snapshot(&self) -> Result<NvmlSnapshot, String> {
        let nvml = &self.nvml;
        let count = nvml
            .device_count()
            .map_err(|e| format!("nvmlDeviceGetCount: {e}"))?;
        let mut devices = Vec::new();
        for index in 0..count {
            let device = nvml
                .device_by_index(index)
                .map_err(|e| format!("nvmlDeviceGetHandleByIndex({index}): {e}"))?;
            devices.push(device_snapshot(index, &device)?);
        }
        Ok(NvmlSnapshot {
            nvml_version: optional("nvmlSystemGetNVMLVersion", nvml.sys_nvml_version())?,
            driver_version: optional("nvmlSystemGetDriverVersion", nvml.sys_driver_version())?,
            devices,
        })
    }
}

impl GpuBackend for NvmlGpu {
    fn read(&mut self) -> Result<GpuReadings, String> {
        self.snapshot().map(|s| map_snapshot(&s))
    }

    fn origin(&self) -> String {
        "NVML".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_queries_are_left_out_and_others_fail() {
        assert_eq!(optional("q", Ok::<u32, NvmlError>(3)), Ok(Some(3)));
        for skipped in [
            NvmlError::NotSupported,
            NvmlError::NoPermission,
            NvmlError::FunctionNotFound,
            NvmlError::FailedToLoadSymbol("nvmlDeviceGetPcieSpeed".into()),
        ] {
            assert_eq!(optional::<u32>("q", Err(skipped)), Ok(None));
        }
        let lost = optional::<u32>("nvmlDeviceGetPowerUsage", Err(NvmlError::GpuLost));
        assert!(
            lost.as_ref()
                .is_err_and(|e| e.starts_with("nvmlDeviceGetPowerUsage: ")),
            "{lost:?}"
        );
    }
}
