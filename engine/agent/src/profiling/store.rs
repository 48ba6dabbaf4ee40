//! The continuous profiles kept in memory: one aggregated profile per interval and type,
//! packed, bounded in count and bytes (oldest dropped first, counted), merged over a time
//! range to answer `GET /v1/profiles` as pprof or folded stacks.

use super::packed::PackedProfile;
use super::pprof;
use huatuo_http::api::error::ApiError;
use huatuo_http::api::profiles::{
    ProfileBody, ProfileFormat, ProfileQuery, ProfileScope, ProfileType,
};
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// The container a stack ran in, with the labels Pyroscope and pprof carry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerTag {
    /// Full container id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Pod name, when the kubelet knows it.
    pub pod: String,
    /// Pod namespace.
    pub namespace: String,
}

impl ContainerTag {
    /// Whether `wanted` names this container: its full id, an id prefix of 12 or more
    /// characters, or its name.
    pub fn matches(&self, wanted: &str) -> bool {
        self.id == wanted
            || (wanted.len() >= 12 && self.id.starts_with(wanted))
            || self.name == wanted
    }
}

/// One aggregated stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredStack {
    /// The container, `None` for a host process.
    pub container: Option<Arc<ContainerTag>>,
    /// Command of the task.
    pub comm: String,
    /// Frames root first, joined by `;`.
    pub frames: String,
    /// Samples (CPU) or microseconds (off-CPU).
    pub count: u64,
}

/// One interval's profile of one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntervalProfile {
    /// CPU or off-CPU.
    pub kind: ProfileType,
    /// Start, Unix nanoseconds.
    pub start_ns: i64,
    /// End, Unix nanoseconds.
    pub end_ns: i64,
    /// Sampling frequency in force (CPU), for the sample period.
    pub frequency_hz: u64,
    /// The stacks.
    pub stacks: Vec<StoredStack>,
}

impl IntervalProfile {
    /// Approximate heap bytes held, unpacked (what a packed profile is compared with).
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.stacks
            .iter()
            .map(|s| s.frames.len() + s.comm.len() + std::mem::size_of::<StoredStack>())
            .sum::<usize>()
            + std::mem::size_of::<Self>()
    }

    /// pprof units of this profile.
    pub fn units(&self) -> pprof::Units {
        units(self.kind, self.frequency_hz)
    }
}

/// pprof units of a profile of a kind taken at a frequency.
fn units(kind: ProfileType, frequency_hz: u64) -> pprof::Units {
    match kind {
        ProfileType::Cpu => pprof::Units {
            count: ("samples", "count"),
            time: ("cpu", "nanoseconds"),
            nanos_per_count: 1_000_000_000 / frequency_hz.max(1) as i64,
        },
        ProfileType::OffCpu => pprof::Units {
            count: ("events", "count"),
            time: ("offcpu", "nanoseconds"),
            nanos_per_count: 1000,
        },
    }
}

/// Labels of a stack as pprof carries them.
pub fn labels(stack: &StoredStack) -> Vec<(&str, &str)> {
    let mut out = vec![("comm", stack.comm.as_str())];
    if let Some(c) = &stack.container {
        out.extend([
            ("container_id", c.id.as_str()),
            ("container", c.name.as_str()),
            ("pod", c.pod.as_str()),
            ("namespace", c.namespace.as_str()),
        ]);
    }
    out
}

/// Encodes stacks as gzip pprof.
pub fn encode(stacks: &[&StoredStack], units: pprof::Units, start_ns: i64, end_ns: i64) -> Vec<u8> {
    let frames: Vec<Vec<&str>> = stacks
        .iter()
        .map(|s| {
            std::iter::once(s.comm.as_str())
                .chain(s.frames.split(';').filter(|f| !f.is_empty()))
                .collect()
        })
        .collect();
    let labels: Vec<Vec<(&str, &str)>> = stacks.iter().map(|s| labels(s)).collect();
    let input: Vec<pprof::StackIn> = stacks
        .iter()
        .zip(frames.iter().zip(labels.iter()))
        .map(|(s, (frames, labels))| pprof::StackIn {
            frames,
            labels,
            count: s.count,
        })
        .collect();
    pprof::gzip(&pprof::build(&input, units, start_ns, end_ns - start_ns))
}

/// The bounded store.
#[derive(Debug)]
pub struct ProfileStore {
    profiles: VecDeque<PackedProfile>,
    bytes: usize,
    max_profiles: usize,
    max_bytes: usize,
    /// Profiles dropped to stay within the bounds.
    pub dropped: u64,
}

impl ProfileStore {
    /// An empty store holding at most `max_profiles` profiles and `max_bytes` bytes.
    pub fn new(max_profiles: usize, max_bytes: usize) -> ProfileStore {
        ProfileStore {
            profiles: VecDeque::new(),
            bytes: 0,
            max_profiles: max_profiles.max(1),
            max_bytes,
            dropped: 0,
        }
    }

    /// Adds a profile, dropping the oldest beyond the bounds.
    pub fn push(&mut self, profile: PackedProfile) {
        self.bytes += profile.bytes();
        self.profiles.push_back(profile);
        while self.profiles.len() > self.max_profiles
            || (self.bytes > self.max_bytes && self.profiles.len() > 1)
        {
            if let Some(old) = self.profiles.pop_front() {
                self.bytes = self.bytes.saturating_sub(old.bytes());
                self.dropped += 1;
            }
        }
    }

    /// Profiles and bytes held.
    pub fn size(&self) -> (usize, usize) {
        (self.profiles.len(), self.bytes)
    }

    /// Answers a query: the profiles of its type overlapping its range, stacks filtered by
    /// scope and container, merged by (container, comm, frames).
    pub fn query(&self, query: &ProfileQuery, now_ns: i64) -> Result<ProfileBody, ApiError> {
        let since = query
            .since_s
            .map_or(i64::MIN, |s| s.saturating_mul(1_000_000_000));
        let until = query
            .until_s
            .map_or(now_ns, |s| s.saturating_mul(1_000_000_000));
        let chosen: Vec<&PackedProfile> = self
            .profiles
            .iter()
            .filter(|p| p.kind == query.kind && p.end_ns > since && p.start_ns <= until)
            .collect();
        if let Some(wanted) = &query.container {
            let known = self
                .profiles
                .iter()
                .flat_map(|p| &p.containers)
                .any(|c| c.matches(wanted));
            if !known {
                return Err(ApiError::container_not_found(wanted));
            }
        }
        let keep = |s: &StoredStack| match (&query.scope, &query.container, &s.container) {
            (ProfileScope::Host, _, _) => true,
            (ProfileScope::Container, None, c) => c.is_some(),
            (ProfileScope::Container, Some(w), Some(c)) => c.matches(w),
            (ProfileScope::Container, Some(_), None) => false,
        };
        // One interval unpacked at a time: the merge holds each distinct stack once.
        let mut merged: BTreeMap<(Option<String>, String, String), StoredStack> = BTreeMap::new();
        for profile in &chosen {
            let unpacked = profile.unpack().map_err(ApiError::internal)?;
            for stack in unpacked.into_iter().filter(|s| keep(s)) {
                let key = (
                    stack.container.as_ref().map(|c| c.id.clone()),
                    stack.comm.clone(),
                    stack.frames.clone(),
                );
                match merged.entry(key) {
                    Entry::Occupied(mut held) => held.get_mut().count += stack.count,
                    Entry::Vacant(slot) => {
                        slot.insert(stack);
                    }
                }
            }
        }
        let stacks: Vec<StoredStack> = merged.into_values().collect();
        let start = chosen.iter().map(|p| p.start_ns).min().unwrap_or(now_ns);
        let end = chosen.iter().map(|p| p.end_ns).max().unwrap_or(now_ns);
        match query.format {
            ProfileFormat::Folded => {
                let mut lines: Vec<(String, u64)> = stacks
                    .iter()
                    .map(|s| {
                        let root = match &s.container {
                            Some(c) => format!("{};{}", c.name, s.comm),
                            None => s.comm.clone(),
                        };
                        (format!("{root};{}", s.frames), s.count)
                    })
                    .collect();
                lines.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                let text: String = lines
                    .into_iter()
                    .map(|(path, count)| format!("{path} {count}\n"))
                    .collect();
                Ok(ProfileBody {
                    content_type: "text/plain; charset=utf-8",
                    body: text.into_bytes(),
                })
            }
            ProfileFormat::Pprof => {
                let units = chosen
                    .last()
                    .map_or(units(query.kind, 99), |p| units(p.kind, p.frequency_hz));
                let refs: Vec<&StoredStack> = stacks.iter().collect();
                Ok(ProfileBody {
                    content_type: "application/vnd.google.protobuf+gzip",
                    body: encode(&refs, units, start, end),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(container: Option<&Arc<ContainerTag>>, frames: &str, count: u64) -> StoredStack {
        StoredStack {
            container: container.cloned(),
            comm: "app".into(),
            frames: frames.into(),
            count,
        }
    }

    fn query(scope: ProfileScope, container: Option<&str>, since: Option<i64>) -> ProfileQuery {
        ProfileQuery {
            kind: ProfileType::Cpu,
            scope,
            container: container.map(str::to_string),
            since_s: since,
            until_s: None,
            format: ProfileFormat::Folded,
        }
    }

    fn text(body: ProfileBody) -> String {
        String::from_utf8(body.body).unwrap()
    }

    #[test]
    fn merges_over_the_range_and_filters_by_container() {
        let web = Arc::new(ContainerTag {
            id: "a".repeat(64),
            name: "web".into(),
            ..Default::default()
        });
        let mut store = ProfileStore::new(10, 1 << 20);
        for (i, n) in [(0i64, 3u64), (1, 4)] {
            store.push(PackedProfile::pack(&IntervalProfile {
                kind: ProfileType::Cpu,
                start_ns: i * 10_000_000_000,
                end_ns: (i + 1) * 10_000_000_000,
                frequency_hz: 99,
                stacks: vec![
                    stack(Some(&web), "main;spin", n),
                    stack(None, "main;idle", 1),
                ],
            }));
        }
        let now = 20_000_000_000;
        let all = text(
            store
                .query(&query(ProfileScope::Host, None, None), now)
                .unwrap(),
        );
        assert_eq!(all, "web;app;main;spin 7\napp;main;idle 2\n");
        let late = text(
            store
                .query(&query(ProfileScope::Host, None, Some(10)), now)
                .unwrap(),
        );
        assert_eq!(late, "web;app;main;spin 4\napp;main;idle 1\n");
        let short = "a".repeat(12);
        let web_only = store
            .query(&query(ProfileScope::Container, Some(&short), None), now)
            .unwrap();
        assert_eq!(text(web_only), "web;app;main;spin 7\n");
        let err = store
            .query(&query(ProfileScope::Container, Some("nope"), None), now)
            .unwrap_err();
        assert_eq!(err.code, "container_not_found");
    }

    #[test]
    fn stays_within_its_bounds() {
        let mut store = ProfileStore::new(3, 1 << 20);
        for i in 0..10 {
            store.push(PackedProfile::pack(&IntervalProfile {
                kind: ProfileType::Cpu,
                start_ns: i,
                end_ns: i + 1,
                frequency_hz: 99,
                stacks: vec![stack(None, "f", 1)],
            }));
        }
        assert_eq!(store.size().0, 3);
        assert_eq!(store.dropped, 7);
        let mut small = ProfileStore::new(100, 600);
        for i in 0..10 {
            small.push(PackedProfile::pack(&IntervalProfile {
                kind: ProfileType::Cpu,
                start_ns: i,
                end_ns: i + 1,
                frequency_hz: 99,
                stacks: vec![stack(None, &"x".repeat(200), 1)],
            }));
        }
        assert!(small.size().1 <= 600, "{:?}", small.size());
        assert!(small.dropped > 0);
    }
}
