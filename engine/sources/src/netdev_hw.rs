//! `sys.netdev_hw`: per-device `rx_dropped` from sysfs and the driver behind the device.

use crate::common::{int, parse_u64, polled, read_error, read_text, SampleBuilder};
use huatuo_dsl::catalog::SourceSchema;
use huatuo_dsl::source::{ReadError, Reader};
use huatuo_dsl::units::Dim;
use huatuo_dsl::value::Sample;
use std::path::{Path, PathBuf};

/// Catalog name.
pub const NAME: &str = "sys.netdev_hw";

/// The schema of `sys.netdev_hw`.
pub fn schema() -> SourceSchema {
    polled(
        NAME,
        "hardware drop counters of network devices from /sys/class/net",
        &["device", "driver"],
        vec![int(
            "rx_dropped",
            Dim::Count,
            "packets dropped by the device on receive",
        )],
    )
}

/// Reads `<sys>/class/net/*`; devices without a `device` link (virtual) are skipped
/// unless `include_virtual`; a device list, when given, selects devices by name instead.
pub struct NetdevHwReader {
    class_net: PathBuf,
    include_virtual: bool,
    devices: Vec<String>,
}

impl NetdevHwReader {
    /// A reader rooted at the sysfs mount `sys`.
    pub fn new(sys: &Path, include_virtual: bool) -> Self {
        Self {
            class_net: sys.join("class/net"),
            include_virtual,
            devices: Vec::new(),
        }
    }

    /// Reads only the named devices, virtual or not (HUATUO's `NetdevHW.DeviceList`).
    pub fn only(mut self, devices: Vec<String>) -> Self {
        self.devices = devices;
        self
    }

    fn device_sample(
        &self,
        dir: &Path,
        name: &str,
        now_ns: i64,
    ) -> Result<Option<Sample>, ReadError> {
        let device_link = dir.join("device");
        let physical = device_link.symlink_metadata().is_ok();
        let wanted = if self.devices.is_empty() {
            physical || self.include_virtual
        } else {
            self.devices.iter().any(|d| d == name)
        };
        if !wanted {
            return Ok(None);
        }
        let counter = dir.join("statistics/rx_dropped");
        let text = match read_text(NAME, &counter) {
            Ok(text) => text,
            // The device went away between listing and reading.
            Err(_) if !dir.exists() => return Ok(None),
            Err(e) => return Err(e),
        };
        let rx_dropped =
            parse_u64(text.trim(), "rx_dropped").map_err(|m| read_error(NAME, &counter, m))?;
        let driver = std::fs::read_link(device_link.join("driver"))
            .ok()
            .and_then(|target| target.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        Ok(Some(
            SampleBuilder::new()
                .label("device", name)
                .label("driver", driver)
                .uint("rx_dropped", rx_dropped)
                .build(NAME, now_ns),
        ))
    }
}

impl Reader for NetdevHwReader {
    fn schema(&self) -> SourceSchema {
        schema()
    }

    fn read(&mut self, now_ns: i64) -> Result<Vec<Sample>, ReadError> {
        let entries = std::fs::read_dir(&self.class_net)
            .map_err(|e| read_error(NAME, &self.class_net, e.to_string()))?;
        let mut names: Vec<String> = entries
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut samples = Vec::new();
        for name in names {
            let dir = self.class_net.join(&name);
            if let Some(sample) = self.device_sample(&dir, &name, now_ns)? {
                samples.push(sample);
            }
        }
        Ok(samples)
    }
}
