//! Reading and writing `kernel.*` sysctls for the kernel tests that change them (hung task
//! and soft lockup knobs). Included with `#[path]` by those tests' helpers, here and in
//! engine/agent/tests; std only.

use std::path::Path;

/// Where the `kernel.*` sysctls live.
pub const SYSCTL: &str = "/proc/sys/kernel";

/// The trimmed value of `kernel.<name>`.
pub fn read_sysctl(name: &str) -> Option<String> {
    std::fs::read_to_string(Path::new(SYSCTL).join(name))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Writes `kernel.<name>` and checks it reads back as written.
pub fn write_sysctl(name: &str, value: &str) -> Result<(), String> {
    std::fs::write(Path::new(SYSCTL).join(name), value)
        .map_err(|e| format!("write {value} to kernel.{name}: {e}"))?;
    match read_sysctl(name) {
        Some(v) if v == value => Ok(()),
        other => Err(format!(
            "kernel.{name} reads {other:?} after writing {value}"
        )),
    }
}
