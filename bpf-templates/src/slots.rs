//! Per-CPU direct-mapped tables in front of a hash map (`slots` of a `[[histogram]]`): the
//! kernel side keeps a key's value on each CPU in the slot the key hashes to when that slot
//! is free or already the key's, and in the hash otherwise. Each slot value is the key that
//! claimed it (0: free) followed by the value. This module reads the claimed slots and frees
//! the slots of keys user space no longer publishes, so other keys can claim them.

use aya::maps::{Map, MapData, PerCpuArray, PerCpuValues};
use aya::Pod;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// The slot of `key` in a table of `2^bits` slots, `bits` in 1..=32: the top bits of a
/// multiply, fold, multiply by 2^64/phi, the function `huatuo_key_slot` of `include/huatuo.h`.
pub fn slot_of(key: u64, bits: u32) -> u32 {
    const PHI: u64 = 0x9E37_79B9_7F4A_7C15;
    let h = key.wrapping_mul(PHI);
    ((h ^ (h >> 32)).wrapping_mul(PHI) >> (64 - bits)) as u32
}

/// One slot as the kernel lays it out: the owning key, then the value (`V` is made of
/// `u64`s, so there is no padding).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Keyed<V> {
    key: u64,
    value: V,
}

// SAFETY: `Keyed<V>` is `repr(C)`, a u64 followed by a `V` of u64s: no padding, every bit
// pattern valid.
unsafe impl<V: Pod> Pod for Keyed<V> {}

/// `(key, value)` of every claimed slot on every CPU (a key appears once per CPU holding it).
pub(crate) fn read_slots<V: Pod>(map: &Map) -> Result<Vec<(u64, V)>, String> {
    let err = |e: aya::maps::MapError| e.to_string();
    let table: PerCpuArray<&MapData, Keyed<V>> = PerCpuArray::try_from(map).map_err(err)?;
    let mut claimed = vec![];
    for index in 0..table.len() {
        for slot in table.get(&index, 0).map_err(err)?.iter() {
            if slot.key != 0 {
                claimed.push((slot.key, slot.value));
            }
        }
    }
    Ok(claimed)
}

/// Frees, on every CPU, the slots held by one of `keys` (key 0, value `zero`); returns how
/// many were freed. A user-space write replaces a slot index on all CPUs at once, so the
/// other CPUs' slots of that index are written back as read just before.
///
/// Races, accepted: the kernel side writes slots without locks. An observation its program
/// adds between this read and this write is lost: on a freed slot (a cgroup that is no
/// container), or on another CPU's slot of the same index (an observation of another cgroup,
/// lost, never counted twice: published totals only grow). A program that matched the key
/// just before the write may add its observation to the freed slot afterwards, so the next
/// cgroup to claim it starts with that one observation.
pub(crate) fn free_slots<V: Pod>(
    map: &Map,
    keys: &BTreeSet<u64>,
    zero: V,
) -> Result<usize, String> {
    let err = |e: aya::maps::MapError| e.to_string();
    let Map::PerCpuArray(data) = map else {
        return Err("a slot table must be a per-CPU array".into());
    };
    // Writing needs the map owned: a second descriptor of the same map.
    let fd = data
        .fd()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| e.to_string())?;
    let owned = MapData::from_fd(fd).map_err(err)?;
    let mut table: PerCpuArray<MapData, Keyed<V>> =
        PerCpuArray::try_from(Map::PerCpuArray(owned)).map_err(err)?;
    let mut freed = 0;
    for index in 0..table.len() {
        let current = table.get(&index, 0).map_err(err)?;
        if !current.iter().any(|s| keys.contains(&s.key)) {
            continue;
        }
        let next: Vec<Keyed<V>> = current
            .iter()
            .map(|s| {
                if keys.contains(&s.key) {
                    freed += 1;
                    Keyed {
                        key: 0,
                        value: zero,
                    }
                } else {
                    *s
                }
            })
            .collect();
        let values = PerCpuValues::try_from(next).map_err(|e| e.to_string())?;
        table.set(index, values, 0).map_err(err)?;
    }
    Ok(freed)
}

/// Which slot owners to free, across reads: a key found in a slot table and not published
/// (a cgroup that is no container, or no longer one) is freed once it has been unpublished
/// at every read for `grace`, so a container created since the last container discovery
/// keeps its counts until discovery finds it. Bounded by the claimed slots of the tables.
#[derive(Debug)]
pub struct SlotEviction {
    grace: Duration,
    /// Per slot table: key -> first read that found it unpublished.
    unpublished_since: BTreeMap<String, HashMap<u64, Instant>>,
}

impl SlotEviction {
    /// Frees keys unpublished for `grace` (zero: at the first read that finds them).
    pub fn new(grace: Duration) -> SlotEviction {
        SlotEviction {
            grace,
            unpublished_since: BTreeMap::new(),
        }
    }

    /// Notes the keys of `table` unpublished at the read at `now` (keys published again are
    /// forgotten) and returns those due to be freed. A due key is forgotten too: if it claims
    /// a slot again, its grace starts over instead of its slots being freed at every read.
    pub fn due(&mut self, table: &str, unpublished: &BTreeSet<u64>, now: Instant) -> BTreeSet<u64> {
        let since = self.unpublished_since.entry(table.to_string()).or_default();
        since.retain(|key, _| unpublished.contains(key));
        let due: BTreeSet<u64> = unpublished
            .iter()
            .filter(|key| {
                let first = *since.entry(**key).or_insert(now);
                now.saturating_duration_since(first) >= self.grace
            })
            .copied()
            .collect();
        since.retain(|key, _| !due.contains(key));
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stepped_ids_spread_over_the_slots() {
        // Kernfs ids of cgroups made one after another advance by the files of a directory
        // (14 for a v1 cpu cgroup here). 64 random keys take 40.6 of 64 slots on average; by
        // the low bits, ids 64 apart would all take one, by one multiply ids 16 apart 19.
        for step in 1..=256u64 {
            let used: BTreeSet<u32> = (0..64).map(|i| slot_of(13_443 + i * step, 6)).collect();
            assert!(used.len() >= 32, "step {step}: {} of 64 slots", used.len());
        }
        assert!((0..10_000u64).all(|k| slot_of(k, 6) < 64));
    }

    #[test]
    fn keys_are_due_after_the_grace_unpublished_at_every_read() {
        let t0 = Instant::now();
        let mut eviction = SlotEviction::new(Duration::from_secs(60));
        let set = |keys: &[u64]| keys.iter().copied().collect::<BTreeSet<u64>>();
        assert!(eviction.due("t", &set(&[1, 2]), t0).is_empty());
        // 2 was published at the read in between: its wait starts again.
        assert!(eviction
            .due("t", &set(&[1]), t0 + Duration::from_secs(30))
            .is_empty());
        let later = t0 + Duration::from_secs(61);
        assert_eq!(eviction.due("t", &set(&[1, 2]), later), set(&[1]));
        // 1 was freed: found again, it waits a whole grace before it is freed again.
        assert_eq!(
            eviction.due("t", &set(&[1, 2]), later + Duration::from_secs(1)),
            set(&[])
        );
        assert!(eviction.due("other", &set(&[1]), later).is_empty());
        let mut at_once = SlotEviction::new(Duration::ZERO);
        assert_eq!(at_once.due("t", &set(&[5]), t0), set(&[5]));
    }
}
