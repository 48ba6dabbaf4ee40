//! The waitrate capture: loads the `waitrate` template for a duration and reads which cgroups
//! ran on the CPUs where the target cgroup had runnable tasks waiting, with the CPU time each
//! took there, ranked by that time.

use crate::attach::attach_variant;
use crate::schema::TemplateSchema;
use aya::maps::{HashMap as BpfHashMap, MapData};
use aya::{Btf, EbpfLoader};
use std::collections::BTreeMap;
use std::time::Duration;

/// What to watch and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitOptions {
    /// The cgroup whose waits are attributed (v1 cpu controller, or v2).
    pub cgroup_id: u64,
    /// `cgroup_id` names a cgroup v2 directory.
    pub cgroup_v2: bool,
    /// How long to watch.
    pub duration: Duration,
}

/// One cgroup that held a CPU while the target waited for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Competitor {
    /// Its cgroup id (same hierarchy as the target's).
    pub cgroup_id: u64,
    /// CPU time it took while the target waited, in ns.
    pub cpu_time_ns: u64,
    /// Scheduler slices that time was made of.
    pub slices: u64,
    /// The CPUs it took them on, ascending.
    pub cpus: Vec<u32>,
}

/// The result of one capture.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contention {
    /// Competitors, most CPU time first.
    pub competitors: Vec<Competitor>,
    /// (cgroup, CPU) slices not counted because the map was full.
    pub lost: u64,
}

/// The key of the `competitors` map (`struct competitor_key` in waitrate.bpf.c).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct RawKey {
    cgroup_id: u64,
    cpu: u32,
    pad: u32,
}

/// Its value (`struct competitor`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct RawValue {
    ns: u64,
    slices: u64,
}

// SAFETY: plain old data without padding (8 + 4 + 4 and 8 + 8 bytes, align 8).
unsafe impl aya::Pod for RawKey {}
// SAFETY: as above.
unsafe impl aya::Pod for RawValue {}

/// Merges per-(cgroup, CPU) entries into competitors ranked by CPU time, most first.
fn rank(entries: impl IntoIterator<Item = (RawKey, RawValue)>) -> Vec<Competitor> {
    let mut by_cgroup: BTreeMap<u64, Competitor> = BTreeMap::new();
    for (key, value) in entries {
        let c = by_cgroup.entry(key.cgroup_id).or_insert(Competitor {
            cgroup_id: key.cgroup_id,
            cpu_time_ns: 0,
            slices: 0,
            cpus: vec![],
        });
        c.cpu_time_ns += value.ns;
        c.slices += value.slices;
        c.cpus.push(key.cpu);
    }
    let mut ranked: Vec<Competitor> = by_cgroup.into_values().collect();
    for c in &mut ranked {
        c.cpus.sort_unstable();
        c.cpus.dedup();
    }
    ranked.sort_by_key(|c| std::cmp::Reverse(c.cpu_time_ns));
    ranked
}

/// Watches for `opts.duration` and returns the competitors (blocking).
pub fn run(opts: &WaitOptions) -> Result<Contention, String> {
    let template = crate::embedded::find("waitrate")
        .ok_or("the waitrate template is not embedded in this build")?;
    let schema = TemplateSchema::parse(template.name, template.schema)?;
    let btf = Btf::from_sys_fs().ok();
    let cgroup_v2 = u64::from(opts.cgroup_v2);
    let mut ebpf = EbpfLoader::new()
        .override_global("cgroup_id", &opts.cgroup_id, true)
        .override_global("cgroup_v2", &cgroup_v2, true)
        .load(template.object)
        .map_err(|e| format!("loading the waitrate template: {e}"))?;
    let mut failures = vec![];
    let attached = schema
        .attach
        .iter()
        .flat_map(|p| p.variants.iter())
        .any(
            |variant| match attach_variant(&mut ebpf, variant, btf.as_ref()) {
                Ok(_) => true,
                Err(e) => {
                    failures.push(format!("{:?} {}: {e}", variant.kind, variant.prog));
                    false
                }
            },
        );
    if !attached {
        return Err(format!(
            "attaching the waitrate template: {}",
            failures.join("; ")
        ));
    }
    std::thread::sleep(opts.duration);
    let map = ebpf
        .take_map("competitors")
        .ok_or("the waitrate object has no `competitors` map")?;
    let counters = ebpf.take_map("huatuo_counters");
    // Dropping the object detaches the program: the map no longer changes while read.
    drop(ebpf);
    let map: BpfHashMap<MapData, RawKey, RawValue> =
        BpfHashMap::try_from(map).map_err(|e| format!("waitrate `competitors` map: {e}"))?;
    let entries: Result<Vec<_>, _> = map.iter().collect();
    let entries = entries.map_err(|e| format!("reading waitrate competitors: {e}"))?;
    Ok(Contention {
        competitors: rank(entries),
        lost: counters.map_or(0, |m| crate::profiler::lost_samples(&m)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(cgroup_id: u64, cpu: u32, ns: u64) -> (RawKey, RawValue) {
        (
            RawKey {
                cgroup_id,
                cpu,
                pad: 0,
            },
            RawValue { ns, slices: 1 },
        )
    }

    #[test]
    fn competitors_merge_over_cpus_and_rank_by_cpu_time() {
        let ranked = rank([
            entry(7, 1, 5),
            entry(9, 0, 4),
            entry(7, 0, 3),
            entry(11, 2, 1),
        ]);
        let summary: Vec<(u64, u64, u64, Vec<u32>)> = ranked
            .into_iter()
            .map(|c| (c.cgroup_id, c.cpu_time_ns, c.slices, c.cpus))
            .collect();
        assert_eq!(
            summary,
            vec![
                (7, 8, 2, vec![0, 1]),
                (9, 4, 1, vec![0]),
                (11, 1, 1, vec![2])
            ]
        );
    }

    #[test]
    fn key_layout_matches_the_bpf_struct() {
        assert_eq!(std::mem::size_of::<RawKey>(), 16);
        assert_eq!(std::mem::size_of::<RawValue>(), 16);
    }
}
