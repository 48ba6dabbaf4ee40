//! Kernel test: runqlat loads and attaches, and its histograms move under CPU contention,
//! for the host and for a container cgroup; per-container histograms are summed from the
//! per-CPU slots and the shared hash, and slots of cgroups that are no container are freed.

mod common;

use aya::maps::{HashMap, Map, MapData, PerCpuArray};
use common::{kernel_ready, BpfStats, Busy, OneContainer, TestCgroup, TracefsGuard};
use huatuo_bpf::hist::SLOTS;
use huatuo_bpf::requires::Requirement;
use huatuo_bpf::schema::AttachKind;
use huatuo_bpf::slots::slot_of;
use huatuo_bpf::{LoadOptions, NoContainers, Templates};
use huatuo_dsl::value::{Sample, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The tests of this file one at a time: the slot test finds the maps it loaded as the
/// newest runqlat maps of the system (other binaries' kernel tests wait on a file lock).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn total(samples: &[Sample], container: Option<&str>) -> (u64, u64) {
    let sample = samples
        .iter()
        .find(|s| s.labels.get("container_id").map(String::as_str) == container);
    match sample.and_then(|s| s.fields.get("latency")) {
        Some(Value::Hist(h)) => (
            h.count_between(0, u64::MAX),
            h.count_between(1_000_000, u64::MAX),
        ),
        _ => (0, 0),
    }
}

/// How the template is loaded: which object, whether sched_info may be used, and the attach
/// kind the sched_switch program is expected to get (the kinds preferred to it are excluded).
#[derive(Clone, Copy)]
struct Mode {
    force_hashmap: bool,
    no_sched_info: bool,
    /// With sched_info: the queue-stamp variant (no per-task state) rather than run_delay.
    queued: bool,
    kind: AttachKind,
}

impl Mode {
    fn new(force_hashmap: bool, no_sched_info: bool, kind: AttachKind) -> Mode {
        Mode {
            force_hashmap,
            no_sched_info,
            queued: !no_sched_info,
            kind,
        }
    }

    /// The run_delay variant (per-task state) instead of the queue stamp.
    fn run_delay(self) -> Mode {
        Mode {
            queued: false,
            ..self
        }
    }

    fn options(self, resolver: Arc<dyn huatuo_bpf::CgroupResolver>) -> LoadOptions {
        let order = [AttachKind::TpBtf, AttachKind::RawTp, AttachKind::Tracepoint];
        let preferred = order.iter().position(|k| *k == self.kind).unwrap_or(0);
        LoadOptions {
            resolver,
            force_hashmap: self.force_hashmap,
            unmet: if self.no_sched_info {
                vec![Requirement::SchedInfo]
            } else if !self.queued {
                vec![Requirement::GroupSched]
            } else {
                vec![]
            },
            excluded_kinds: order[..preferred].to_vec(),
            ..LoadOptions::default()
        }
    }

    /// The sched_switch program this mode should attach.
    fn switch_prog(self) -> String {
        let prefix = match self.kind {
            AttachKind::TpBtf => "tp_btf",
            AttachKind::RawTp => "raw_tp",
            _ => "tp",
        };
        let suffix = if self.no_sched_info {
            ""
        } else if self.queued {
            "_queued"
        } else {
            "_schedinfo"
        };
        format!("{prefix}_sched_switch{suffix}")
    }

    fn cgroup_name(self) -> String {
        format!(
            "huatuo-runqlat-{}-{}-{:?}",
            if self.force_hashmap {
                "hash"
            } else {
                "storage"
            },
            if self.no_sched_info {
                "wakeup"
            } else if self.queued {
                "queued"
            } else {
                "schedinfo"
            },
            self.kind
        )
    }
}

#[test]
fn runqlat_attaches_and_counts_contention() {
    if !kernel_ready("runqlat_attaches_and_counts_contention") {
        return;
    }
    let _serial = serial();
    counts_contention(Mode::new(false, false, AttachKind::TpBtf));
    counts_contention(Mode::new(false, false, AttachKind::RawTp));
}

/// The run_delay variant (where the run queue clock is out of reach) counts the same way.
#[test]
fn runqlat_run_delay_variant_counts_contention() {
    if !kernel_ready("runqlat_run_delay_variant_counts_contention") {
        return;
    }
    let _serial = serial();
    counts_contention(Mode::new(false, false, AttachKind::TpBtf).run_delay());
}

/// The hash-map object (kernels without task storage) counts the same way, on each kind.
#[test]
fn runqlat_hashmap_object_counts_contention() {
    if !kernel_ready("runqlat_hashmap_object_counts_contention") {
        return;
    }
    let _serial = serial();
    let _tracefs = TracefsGuard::new();
    for kind in [AttachKind::TpBtf, AttachKind::RawTp, AttachKind::Tracepoint] {
        counts_contention(Mode::new(true, false, kind).run_delay());
    }
}

/// Without sched_info the wakeup-timestamp variant and its two companions attach instead.
#[test]
fn runqlat_wakeup_variant_counts_contention() {
    if !kernel_ready("runqlat_wakeup_variant_counts_contention") {
        return;
    }
    let _serial = serial();
    for force_hashmap in [false, true] {
        counts_contention(Mode::new(force_hashmap, true, AttachKind::TpBtf));
    }
}

/// Both ways of measuring, attached side by side under the same load, agree on how many
/// waits there were and how many were long.
#[test]
fn runqlat_sched_info_agrees_with_wakeup_timestamps() {
    if !kernel_ready("runqlat_sched_info_agrees_with_wakeup_timestamps") {
        return;
    }
    let _serial = serial();
    let load = |no_sched_info| {
        let mode = Mode::new(false, no_sched_info, AttachKind::TpBtf);
        let templates = Templates::load_with(
            &["bpf.runqlat"],
            &BTreeMap::new(),
            mode.options(Arc::new(NoContainers)),
        );
        assert!(templates.status()[0].loaded, "{:#?}", templates.status());
        templates
    };
    let sched_info = load(false);
    let wakeups = load(true);
    let before = (
        total(&sched_info.read_histograms(), None),
        total(&wakeups.read_histograms(), None),
    );
    {
        let _busy = Busy::start(4);
        std::thread::sleep(Duration::from_millis(1500));
    }
    // Waits are counted when the task leaves the CPU: let the last ones end.
    std::thread::sleep(Duration::from_millis(200));
    let after = (
        total(&sched_info.read_histograms(), None),
        total(&wakeups.read_histograms(), None),
    );
    let counts = (after.0 .0 - before.0 .0, after.1 .0 - before.1 .0);
    let slow = (after.0 .1 - before.0 .1, after.1 .1 - before.1 .1);
    eprintln!("waits (sched_info, wakeups): {counts:?}, >= 1ms: {slow:?}");
    let close = |a: u64, b: u64| (a as f64) >= 0.9 * b as f64 && (b as f64) >= 0.9 * a as f64;
    assert!(counts.1 > 100, "wakeup variant saw {counts:?}");
    assert!(
        close(counts.0, counts.1),
        "waits (sched_info, wakeups): {counts:?}"
    );
    assert!(slow.1 > 10, "long waits {slow:?}");
    assert!(
        close(slow.0, slow.1),
        "waits >= 1ms (sched_info, wakeups): {slow:?}"
    );
}

fn counts_contention(mode: Mode) {
    let cgroup = TestCgroup::create("cpu", &mode.cgroup_name());
    let options = mode.options(Arc::new(OneContainer(cgroup.id(), "runqlat-test")));
    let templates = Templates::load_with(&["bpf.runqlat"], &BTreeMap::new(), options);
    let status = templates.status();
    assert_eq!(status.len(), 1);
    let st = &status[0];
    assert!(st.loaded, "runqlat did not load: {st:#?}");
    // This kernel has task storage: the main object is used unless the hash maps are forced.
    let hashmap_note = st.notes.iter().any(|n| n.contains("hash-map object"));
    assert_eq!(hashmap_note, mode.force_hashmap, "{:?}", st.notes);
    assert_eq!(st.programs.len(), 3);
    let switch = st.programs[0]
        .attached_variant()
        .expect("sched_switch attached");
    assert_eq!(
        (switch.kind, switch.prog.as_str()),
        (mode.kind, mode.switch_prog().as_str()),
        "{st:#?}"
    );
    for companion in &st.programs[1..] {
        if mode.no_sched_info {
            let variant = companion.attached_variant().expect("companion attached");
            assert_eq!(variant.kind, mode.kind, "{companion:#?}");
        } else {
            assert!(companion.not_needed.is_some(), "{companion:#?}");
            assert!(companion.tried.is_empty(), "{companion:#?}");
        }
    }

    let _stats = BpfStats::enable();
    let before = templates.read_histograms();
    let (host_before, slow_before) = total(&before, None);
    {
        let busy = Busy::start(4);
        for pid in busy.pids() {
            cgroup.add(pid);
        }
        std::thread::sleep(Duration::from_millis(1200));
        let after = templates.read_histograms();
        let (host_after, slow_after) = total(&after, None);
        let (container, container_slow) = total(&after, Some("runqlat-test"));
        assert!(
            host_after > host_before + 100,
            "host count {host_before} -> {host_after}"
        );
        // 4 busy loops on 2 CPUs wait whole time slices (ms) in the run queue.
        assert!(
            slow_after > slow_before,
            "no latency >= 1ms: {slow_before} -> {slow_after}"
        );
        assert!(container > 10, "container samples: {container}");
        assert!(
            container_slow > 0,
            "container latency >= 1ms: {container_slow}"
        );
        assert!(container <= host_after, "{container} > {host_after}");
    }
    let st = &templates.status()[0];
    assert_eq!(st.counters.map_full, 0, "{st:?}");
    let switch = st
        .programs
        .iter()
        .find(|p| p.program == "sched_switch")
        .expect("switch");
    assert!(
        switch.run_count > 100,
        "bpf stats run_count {}",
        switch.run_count
    );
    assert!(switch.run_time_ns > 0);
}

/// A resolver whose containers the test changes (a container going away).
struct Containers(Mutex<BTreeMap<u64, &'static str>>);

impl huatuo_bpf::CgroupResolver for Containers {
    fn container_id(&self, cgroup_id: u64) -> Option<String> {
        let known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        known.get(&cgroup_id).map(|id| id.to_string())
    }
    fn container_hostname(&self, _cgroup_id: u64) -> Option<String> {
        None
    }
}

/// The id and size of the newest loaded map named `name` (the kernel keeps 15 characters).
fn newest_map(name: &str) -> (u32, u32) {
    let short = &name[..name.len().min(15)];
    let info = aya::maps::loaded_maps()
        .filter_map(Result::ok)
        .filter(|m| m.name_as_str() == Some(short))
        .max_by_key(|m| m.id())
        .unwrap_or_else(|| panic!("no loaded map `{short}`"));
    (info.id(), info.max_entries())
}

/// The slot table and the cgroup hash of one loaded runqlat object, by map id.
#[derive(Clone, Copy)]
struct CgroupMaps {
    slots: u32,
    hash: u32,
}

impl CgroupMaps {
    /// The maps of the runqlat object loaded last.
    fn newest() -> CgroupMaps {
        CgroupMaps {
            slots: newest_map("hist_cgroup_slots").0,
            hash: newest_map("hist_cgroup").0,
        }
    }

    /// The owner and number of observations of slot `index` on each CPU.
    fn slot_owners(self, index: u32) -> Vec<(u64, u64)> {
        let data = MapData::from_id(self.slots).expect("open slot table");
        let table: PerCpuArray<MapData, [u64; 1 + SLOTS]> =
            PerCpuArray::try_from(Map::PerCpuArray(data)).expect("slot table");
        let values = table.get(&index, 0).expect("read slot");
        values.iter().map(|v| (v[0], v[1..].iter().sum())).collect()
    }

    /// Observations of cgroup `id` in the shared hash (0 when it has no entry).
    fn hash_count(self, id: u64) -> u64 {
        let data = MapData::from_id(self.hash).expect("open cgroup hash");
        let hash: HashMap<MapData, u64, [u64; SLOTS]> =
            HashMap::try_from(Map::LruHashMap(data)).expect("cgroup hash");
        hash.get(&id, 0).map(|h| h.iter().sum()).unwrap_or(0)
    }
}

/// Arrivals on a CPU of each process so far (`/proc/<pid>/schedstat`, third field): the
/// run queue waits the kernel ended for it.
fn arrivals(pids: &[u32]) -> u64 {
    pids.iter()
        .map(|pid| {
            let text =
                std::fs::read_to_string(format!("/proc/{pid}/schedstat")).expect("schedstat");
            let n = text.split_whitespace().nth(2).expect("pcount");
            n.parse::<u64>().expect("pcount number")
        })
        .sum()
}

/// A container's histogram count against the arrivals the kernel counted for its tasks: never
/// more, and at most 2% fewer (the queue-stamp variant misses an odd wait, with or without
/// slots; here 1-3 of 240-360), so a reader that left out a cgroup's slots or its hash
/// entry fails.
fn assert_matches(what: &str, count: u64, waits: u64) {
    assert!(
        count <= waits && waits - count <= 1 + waits / 50,
        "{what}: histogram count {count} against {waits} arrivals"
    );
}

/// Stops (SIGSTOP) or continues (SIGCONT) the processes; stopping waits until each is
/// stopped and its last switch-out is over.
fn signal(pids: &[u32], stop: bool) {
    for pid in pids {
        let sig = if stop { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: plain kill(2) on our own children.
        unsafe { libc::kill(*pid as i32, sig) };
    }
    if !stop {
        return;
    }
    for pid in pids {
        for _ in 0..200 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The state follows the command in parentheses.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next());
            if state == Some("T") {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    std::thread::sleep(Duration::from_millis(100));
}

/// The CPUs this test may run on.
fn cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    assert_eq!(unsafe { libc::sched_getaffinity(0, size, &mut set) }, 0);
    (0..libc::CPU_SETSIZE as usize)
        .filter(|cpu| unsafe { libc::CPU_ISSET(*cpu, &set) })
        .collect()
}

/// Two busy loops per CPU, each pinned to its CPU, moved while stopped into `cgroup`;
/// returns them stopped with their arrival count at that point.
fn stopped_loops(cgroup: &TestCgroup) -> (Busy, u64) {
    let cpus = cpus();
    let busy = Busy::start(2 * cpus.len());
    signal(&busy.pids(), true);
    for (i, pid) in busy.pids().into_iter().enumerate() {
        // SAFETY: a zeroed cpu_set_t is a valid empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        unsafe { libc::CPU_SET(cpus[i % cpus.len()], &mut set) };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        assert_eq!(
            unsafe { libc::sched_setaffinity(pid as i32, size, &set) },
            0
        );
        cgroup.add(pid);
    }
    let base = arrivals(&busy.pids());
    (busy, base)
}

/// Two cgroups whose ids take the same per-CPU slot: the first to run claims it on every CPU,
/// the other falls back to the shared hash; each container's histogram (slots plus hash) is
/// exactly the run queue waits the kernel counted for its tasks. When the first is no
/// container any more its slots are freed and the other claims them, its totals still exact
/// and growing.
#[test]
fn runqlat_slots_and_hash_sum_per_container() {
    if !kernel_ready("runqlat_slots_and_hash_sum_per_container") {
        return;
    }
    let _serial = serial();
    for kind in [AttachKind::TpBtf, AttachKind::RawTp] {
        slots_and_hash(Mode::new(false, false, kind));
    }
}

fn slots_and_hash(mode: Mode) {
    // Cgroups until two ids share a slot; the others are removed on drop.
    let mut made: Vec<TestCgroup> = vec![];
    let mut bits = 0;
    let (a, b) = loop {
        assert!(
            made.len() < 400,
            "no two of {} cgroups share a slot",
            made.len()
        );
        let cgroup = TestCgroup::create("cpu", &format!("huatuo-runqlat-slot{}", made.len()));
        made.push(cgroup);
        if bits == 0 {
            // the table's size, from a loaded object (the first load is only for this)
            let options = mode.options(Arc::new(NoContainers));
            let probe = Templates::load_with(&["bpf.runqlat"], &BTreeMap::new(), options);
            assert!(probe.status()[0].loaded, "{:#?}", probe.status());
            bits = newest_map("hist_cgroup_slots").1.trailing_zeros();
        }
        let last = made.len() - 1;
        let slot = slot_of(made[last].id(), bits);
        if let Some(first) = made[..last]
            .iter()
            .position(|c| slot_of(c.id(), bits) == slot)
        {
            let b = made.remove(last);
            let a = made.remove(first);
            break (a, b);
        }
    };
    drop(made);
    let index = slot_of(a.id(), bits);
    let containers = Arc::new(Containers(Mutex::new(BTreeMap::from([
        (a.id(), "slot-a"),
        (b.id(), "slot-b"),
    ]))));
    let options = LoadOptions {
        slot_grace: Duration::ZERO,
        ..mode.options(containers.clone())
    };
    let templates = Templates::load_with(&["bpf.runqlat"], &BTreeMap::new(), options);
    assert!(templates.status()[0].loaded, "{:#?}", templates.status());
    let maps = CgroupMaps::newest();
    // A read frees slots other cgroups (no containers to this resolver) may hold.
    let _ = templates.read_histograms();

    // a runs alone first: its slot is free, it claims it on every CPU it runs on.
    let (busy_a, base_a) = stopped_loops(&a);
    signal(&busy_a.pids(), false);
    std::thread::sleep(Duration::from_millis(300));
    let (busy_b, base_b) = stopped_loops(&b);
    signal(&busy_b.pids(), false);
    std::thread::sleep(Duration::from_millis(1000));
    signal(&busy_a.pids(), true);
    signal(&busy_b.pids(), true);
    let waits_a = arrivals(&busy_a.pids()) - base_a;
    let waits_b = arrivals(&busy_b.pids()) - base_b;
    let owners = maps.slot_owners(index);
    let read = templates.read_histograms();
    let (count_a, count_b) = (
        total(&read, Some("slot-a")).0,
        total(&read, Some("slot-b")).0,
    );
    eprintln!(
        "{:?}: slot {index} owners {owners:?}, b in hash {}, a {count_a}/{waits_a}, b {count_b}/{waits_b}",
        mode.kind,
        maps.hash_count(b.id())
    );
    assert!(waits_a > 50 && waits_b > 50, "waits {waits_a} {waits_b}");
    // a ran alone on every CPU first: it holds the slot on each, b went to the hash.
    assert!(
        cpus()
            .iter()
            .all(|cpu| owners[*cpu].0 == a.id() && owners[*cpu].1 > 0),
        "a does not hold slot {index} on every CPU: {owners:?}"
    );
    assert!(owners.iter().all(|(id, _)| *id != b.id()), "{owners:?}");
    assert_eq!(maps.hash_count(a.id()), 0, "a went to the hash");
    assert!(maps.hash_count(b.id()) > 0, "b is not in the hash");
    assert_matches("a (slots)", count_a, waits_a);
    assert_matches("b (hash)", count_b, waits_b);

    // a is no container any more: the next read frees its slots (counts with them).
    drop(busy_a);
    containers
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&a.id());
    let _ = templates.read_histograms();
    let freed = maps.slot_owners(index);
    assert!(
        freed
            .iter()
            .all(|(id, n)| *id != a.id() && (*id != 0 || *n == 0)),
        "slot {index} after a is gone: {freed:?}"
    );
    signal(&busy_b.pids(), false);
    std::thread::sleep(Duration::from_millis(700));
    signal(&busy_b.pids(), true);
    let waits_b = arrivals(&busy_b.pids()) - base_b;
    let owners = maps.slot_owners(index);
    let later = total(&templates.read_histograms(), Some("slot-b")).0;
    eprintln!(
        "{:?}: slot {index} owners {owners:?}, b {later}/{waits_b}",
        mode.kind
    );
    assert!(
        cpus()
            .iter()
            .all(|cpu| owners[*cpu].0 == b.id() && owners[*cpu].1 > 0),
        "b did not claim the freed slot {index} on every CPU: {owners:?}"
    );
    assert!(
        later > count_b,
        "b's total did not grow: {count_b} -> {later}"
    );
    assert_matches("b (hash, then slots)", later, waits_b);
    drop(busy_b);
}
