//! The agent's own footprint: resident memory and CPU time, read from /proc/self.

use procfs::WithCurrentSystemInfo;

/// Resident set size in bytes and CPU seconds (user + system) of this process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SelfUsage {
    /// Resident memory in bytes.
    pub rss_bytes: u64,
    /// CPU time used so far, in seconds.
    pub cpu_seconds: f64,
}

/// Reads this process's usage; `None` when /proc/self is unreadable.
pub fn self_usage() -> Option<SelfUsage> {
    let stat = procfs::process::Process::myself().ok()?.stat().ok()?;
    let ticks = procfs::ticks_per_second() as f64;
    Some(SelfUsage {
        rss_bytes: stat.rss_bytes().get(),
        cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
    })
}
