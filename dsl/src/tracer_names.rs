//! HUATUO's tracer names across its versions: the name a record is written under today, the
//! older names an existing fleet's queries and filters may still use, and the one function
//! that resolves any of them (watch filters, `BlackList`, the event history all call it).
//!
//! HUATUO renamed several tracers in mid-2025 (`softirq` became `softirq_tracing`,
//! `netrecvlat` became `net_rx_latency`, `memreclaim`, whose records said `directreclaim`,
//! became `memory_reclaim_events`, `netdev_event` became `netdev_events`, `lacp` became
//! `netdev_bonding_lacp`). Records are written under the current names unless
//! `[Storage] LegacyTracerNames = true` asks for the older ones.

/// One renamed tracer: its current name, the older name records were written under, and
/// every other older name it was known by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renamed {
    /// The current name (the rule's name, what records carry by default).
    pub current: &'static str,
    /// The name HUATUO's records carried before the rename.
    pub legacy: &'static str,
    /// Other older names (module names, names in older documentation).
    pub other: &'static [&'static str],
}

/// Every tracer HUATUO renamed.
pub const RENAMED: &[Renamed] = &[
    Renamed {
        current: "softirq_tracing",
        legacy: "softirq",
        other: &[],
    },
    Renamed {
        current: "net_rx_latency",
        legacy: "netrecvlat",
        other: &["netrcvlat"],
    },
    Renamed {
        current: "memory_reclaim_events",
        legacy: "directreclaim",
        other: &["memreclaim", "memory_reclaim"],
    },
    Renamed {
        current: "netdev_events",
        legacy: "netdev_event",
        other: &["netdev"],
    },
    Renamed {
        current: "netdev_bonding_lacp",
        legacy: "lacp",
        other: &[],
    },
];

/// The entry of a renamed tracer, found by any of its names.
fn find(name: &str) -> Option<&'static Renamed> {
    RENAMED
        .iter()
        .find(|r| r.current == name || r.legacy == name || r.other.contains(&name))
}

/// The current name of the tracer called `name` (any of its names); `name` itself when the
/// tracer was never renamed.
pub fn canonical(name: &str) -> &str {
    find(name).map_or(name, |r| r.current)
}

/// Every name of the tracer called `name`: the current one first, then the older ones.
pub fn all_names(name: &str) -> Vec<&str> {
    match find(name) {
        Some(r) => std::iter::once(r.current)
            .chain(std::iter::once(r.legacy))
            .chain(r.other.iter().copied())
            .collect(),
        None => vec![name],
    }
}

/// Whether `a` and `b` name the same tracer.
pub fn same_tracer(a: &str, b: &str) -> bool {
    canonical(a) == canonical(b)
}

/// The name a record of tracer `name` is written under: the current name, or with `legacy`
/// the name HUATUO's records carried before the rename.
pub fn written_name(name: &str, legacy: bool) -> &str {
    match find(name) {
        Some(r) if legacy => r.legacy,
        Some(r) => r.current,
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_resolves_to_the_current_one() {
        assert_eq!(canonical("softirq"), "softirq_tracing");
        assert_eq!(canonical("directreclaim"), "memory_reclaim_events");
        assert_eq!(canonical("memreclaim"), "memory_reclaim_events");
        assert_eq!(canonical("netdev_event"), "netdev_events");
        assert_eq!(canonical("lacp"), "netdev_bonding_lacp");
        assert_eq!(canonical("netrecvlat"), "net_rx_latency");
        assert_eq!(canonical("oom"), "oom");
        assert!(same_tracer("lacp", "netdev_bonding_lacp"));
        assert!(!same_tracer("lacp", "oom"));
        assert_eq!(all_names("softirq"), ["softirq_tracing", "softirq"]);
        assert_eq!(all_names("dropwatch"), ["dropwatch"]);
    }

    #[test]
    fn records_are_written_under_legacy_names_only_on_request() {
        assert_eq!(written_name("net_rx_latency", false), "net_rx_latency");
        assert_eq!(written_name("net_rx_latency", true), "netrecvlat");
        assert_eq!(written_name("memory_reclaim_events", true), "directreclaim");
        assert_eq!(written_name("oom", true), "oom");
    }

    #[test]
    fn no_name_belongs_to_two_tracers() {
        let mut seen = std::collections::BTreeSet::new();
        for r in RENAMED {
            for name in std::iter::once(r.current)
                .chain(std::iter::once(r.legacy))
                .chain(r.other.iter().copied())
            {
                assert!(seen.insert(name), "{name} listed twice");
            }
        }
    }
}
