//! The kernel's BPF run statistics, as the in-kernel cost tools read them:
//! `kernel.bpf_stats_enabled` switched on for a measurement and back after it, and every
//! loaded program's run count and run time from bpftool.

use std::collections::BTreeMap;
use std::process::Command;

const STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// BPF run statistics switched on; the setting found before is written back on drop.
pub struct StatsEnabled {
    previous: String,
}

/// Switches the kernel's BPF run statistics on (root only).
pub fn enable() -> Result<StatsEnabled, String> {
    let previous = std::fs::read_to_string(STATS)
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|_| "0".into());
    std::fs::write(STATS, "1").map_err(|e| format!("enable {STATS} (run as root): {e}"))?;
    Ok(StatsEnabled { previous })
}

impl Drop for StatsEnabled {
    fn drop(&mut self) {
        let _ = std::fs::write(STATS, &self.previous);
    }
}

/// What the kernel counted for one loaded program so far.
#[derive(Debug, Clone, Default)]
pub struct ProgramRuns {
    /// The program's name as bpftool prints it.
    pub name: String,
    /// Times it ran.
    pub runs: u64,
    /// Nanoseconds it ran in all.
    pub ns: u64,
}

/// Every loaded BPF program by id, from `bpftool prog show --json`.
pub fn programs() -> Result<BTreeMap<u64, ProgramRuns>, String> {
    let out = Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output()
        .map_err(|e| format!("bpftool: {e}"))?;
    let progs: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("bpftool json: {e}"))?;
    let mut all = BTreeMap::new();
    for p in progs.as_array().into_iter().flatten() {
        let (Some(id), Some(name)) = (p["id"].as_u64(), p["name"].as_str()) else {
            continue;
        };
        all.insert(
            id,
            ProgramRuns {
                name: name.to_string(),
                runs: p["run_cnt"].as_u64().unwrap_or(0),
                ns: p["run_time_ns"].as_u64().unwrap_or(0),
            },
        );
    }
    Ok(all)
}
