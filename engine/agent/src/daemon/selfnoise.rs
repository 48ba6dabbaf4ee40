//! The agent never reports itself: a template event whose task is the agent's own process
//! (`pid`, a process id), or whose packet belongs to a connection of the agent's HTTP port
//! (`sport` or `dport`, in the agent's network namespace), is left out before evaluation and
//! counted per source. `EventTracing.ExcludedSelf = false` turns this off.

use huatuo_dsl::value::{Sample, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

/// What marks a sample as the agent's own, and how many were left out.
#[derive(Debug)]
pub struct SelfFilter {
    pid: i64,
    port: Option<i64>,
    netns: Option<i64>,
    excluded: Mutex<BTreeMap<String, u64>>,
}

/// The inode of a namespace link such as `/proc/self/ns/net` (`net:[4026531840]`).
fn namespace_inode(link: &Path) -> Option<i64> {
    let target = std::fs::read_link(link).ok()?;
    let text = target.to_str()?;
    let inode = text.split_once('[')?.1.strip_suffix(']')?;
    inode.parse().ok()
}

fn int(sample: &Sample, field: &str) -> Option<i64> {
    match sample.fields.get(field) {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    }
}

impl SelfFilter {
    /// A filter for process `pid` serving HTTP on `port` (0: no port) in network namespace
    /// `netns` (an inode; `None` matches a port in any namespace).
    pub fn new(pid: u32, port: u16, netns: Option<i64>) -> SelfFilter {
        SelfFilter {
            pid: i64::from(pid),
            port: (port != 0).then_some(i64::from(port)),
            netns,
            excluded: Mutex::default(),
        }
    }

    /// The filter of this process serving on `port`, in the namespace `/proc/self/ns/net`
    /// names.
    pub fn of_this_process(port: u16) -> SelfFilter {
        SelfFilter::new(
            std::process::id(),
            port,
            namespace_inode(Path::new("/proc/self/ns/net")),
        )
    }

    /// Whether `sample` was caused by the agent: its task, or a packet of its HTTP port in
    /// its network namespace (a sample without `netns` counts as in it).
    pub fn is_own(&self, sample: &Sample) -> bool {
        if int(sample, "pid") == Some(self.pid) {
            return true;
        }
        let Some(port) = self.port else {
            return false;
        };
        let same_netns = match (self.netns, int(sample, "netns")) {
            (Some(own), Some(theirs)) => own == theirs,
            _ => true,
        };
        same_netns && (int(sample, "sport") == Some(port) || int(sample, "dport") == Some(port))
    }

    /// False (and counted) for the agent's own samples, true for every other.
    pub fn keep(&self, sample: &Sample) -> bool {
        if !self.is_own(sample) {
            return true;
        }
        if let Ok(mut excluded) = self.excluded.lock() {
            *excluded.entry(sample.source.clone()).or_insert(0) += 1;
        }
        false
    }

    /// Samples left out so far, per source.
    pub fn excluded(&self) -> BTreeMap<String, u64> {
        self.excluded.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drop_sample(pid: i64, sport: i64, dport: i64, netns: i64) -> Sample {
        Sample {
            source: "bpf.drops".into(),
            time_ns: 0,
            labels: BTreeMap::new(),
            fields: [
                ("pid".to_string(), Value::Int(pid)),
                ("sport".to_string(), Value::Int(sport)),
                ("dport".to_string(), Value::Int(dport)),
                ("netns".to_string(), Value::Int(netns)),
            ]
            .into(),
        }
    }

    #[test]
    fn own_pid_and_own_port_are_left_out_and_counted() {
        let filter = SelfFilter::new(100, 19704, Some(7));
        assert!(!filter.keep(&drop_sample(100, 40000, 10255, 7)));
        assert!(!filter.keep(&drop_sample(200, 40000, 19704, 7)));
        assert!(!filter.keep(&drop_sample(200, 19704, 40000, 7)));
        assert_eq!(filter.excluded()["bpf.drops"], 3);
    }

    #[test]
    fn other_processes_ports_and_namespaces_are_kept() {
        let filter = SelfFilter::new(100, 19704, Some(7));
        assert!(filter.keep(&drop_sample(200, 40000, 8080, 7)));
        // the same port number in a container's namespace is not the agent's
        assert!(filter.keep(&drop_sample(200, 40000, 19704, 8)));
        assert!(filter.excluded().is_empty());
        let no_port = SelfFilter::new(100, 0, None);
        assert!(no_port.keep(&drop_sample(200, 0, 0, 7)));
    }

    #[test]
    fn this_process_has_a_network_namespace() {
        let filter = SelfFilter::of_this_process(1);
        assert!(filter.netns.is_some_and(|n| n > 0), "{filter:?}");
        assert_eq!(filter.pid, i64::from(std::process::id()));
    }
}
