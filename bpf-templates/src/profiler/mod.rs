//! The on-demand CPU profiler. On-CPU: loads the `profiler` template, which samples every
//! CPU; off-CPU: loads the `offcpu` template, which sums the time threads spend switched
//! out. Both count by (pid, comm, kernel stack, user stack) in the same maps, so one reader
//! symbolizes the stacks (kernel frames from /proc/kallsyms, user frames from
//! /proc/<pid>/maps and ELF symbols) and renders folded stacks and HUATUO's `flamedata`.
//! A stopped profile's object is kept loaded for the next one (`parked`), which writes its
//! own filter (`profile_filter`) instead of loading the template again.

pub mod flame;
pub mod gopclntab;
pub mod parked;
pub mod perfmap;
pub mod procmaps;
pub mod usersym;

use crate::attach::{attach_variant, Attachment};
use crate::decode::strip_bpf_frames;
use crate::kallsyms::Kallsyms;
use crate::schema::{AttachKind, AttachVariant, TemplateSchema};
use aya::maps::{Array, HashMap as BpfHashMap, Map, MapData, StackTraceMap};
use aya::{Btf, Ebpf, EbpfLoader};
use flame::{CountedStack, FlameFrame};
use parked::{ObjectKind, Parked};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use usersym::UserSymbolizer;

/// What a profile counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProfileMode {
    /// Samples of running tasks (template `profiler`); counts are samples.
    #[default]
    OnCpu,
    /// Time threads spend switched out (template `offcpu`); counts are microseconds.
    OffCpu,
}

impl ProfileMode {
    /// The template this mode loads.
    pub fn template(self) -> &'static str {
        match self {
            ProfileMode::OnCpu => "profiler",
            ProfileMode::OffCpu => "offcpu",
        }
    }

    /// What one unit of a stack's count is (the flame graph's count name).
    pub fn unit(self) -> &'static str {
        match self {
            ProfileMode::OnCpu => "samples",
            ProfileMode::OffCpu => "us",
        }
    }
}

/// What to profile and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileOptions {
    /// On-CPU samples or off-CPU time.
    pub mode: ProfileMode,
    /// How long `run` samples.
    pub duration: Duration,
    /// Samples per second per CPU.
    pub frequency_hz: u64,
    /// Only sample tasks of this cgroup (v1 cpu controller, or v2); 0 samples all.
    pub cgroup_id: u64,
    /// `cgroup_id` names a cgroup v2 directory, and stacks carry v2 cgroup ids.
    pub cgroup_v2: bool,
    /// Off-CPU only: stretches shorter than this many microseconds are not counted.
    pub min_offcpu_us: u64,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        ProfileOptions {
            mode: ProfileMode::OnCpu,
            duration: Duration::from_secs(10),
            frequency_hz: 99,
            cgroup_id: 0,
            cgroup_v2: false,
            min_offcpu_us: 0,
        }
    }
}

/// A finished profile: counted, symbolized stacks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// Stacks with their sample counts.
    pub stacks: Vec<CountedStack>,
    /// Total counted: samples on-CPU, microseconds off-CPU.
    pub samples: u64,
    /// Samples (on-CPU) or switch-ins (off-CPU) not counted because the count map was full.
    pub lost: u64,
}

impl Profile {
    /// Folded stack lines `comm;frame;...;frame count`, most samples first.
    pub fn folded(&self) -> Vec<String> {
        flame::folded(&self.stacks)
    }

    /// HUATUO's `flamedata`: `[{level, value, self, label}]`.
    pub fn flamedata(&self) -> Vec<FlameFrame> {
        flame::flamedata(&self.stacks)
    }
}

/// The key of the `counts` map (`struct profile_key` in profile_maps.h).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct RawKey {
    cgroup: u64,
    pid: u32,
    kstack: i32,
    ustack: i32,
    comm: [u8; 16],
    runnable: u32,
}

// SAFETY: plain old data with no padding (8 + 4 + 4 + 4 + 16 + 4 bytes, align 8).
unsafe impl aya::Pod for RawKey {}

/// One drained count with its raw stacks (addresses leaf first, as the kernel stores them).
struct RawStack {
    key: RawKey,
    count: u64,
    kernel: Vec<u64>,
    user: Vec<u64>,
}

/// The frame rooting off-CPU time a task spent preempted, waiting in the run queue.
pub const RUN_QUEUE_FRAME: &str = "[run queue]";

/// What the programs of a profile object count (`struct profile_filter` in
/// profile_maps.h, the object's `.bss`), written before each profile.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct ProfileFilter {
    cgroup_id: u64,
    min_us: u64,
}

// SAFETY: two u64, no padding.
unsafe impl aya::Pod for ProfileFilter {}

/// An off-CPU `start` entry (`struct switched_out` in offcpu.bpf.c), read only to empty
/// the map before an object is parked.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct SwitchedOut {
    ts: u64,
    key: RawKey,
}

// SAFETY: plain old data with no padding (8 + 40 bytes, align 8).
unsafe impl aya::Pod for SwitchedOut {}

/// A running profile; `stop` detaches and reads it, `collect` reads and clears it while it
/// keeps counting.
pub struct Profiler {
    ebpf: Ebpf,
    mode: ProfileMode,
    kind: ObjectKind,
    attachment: Option<Attachment>,
    /// Lost samples the object had counted before this profile (a reused object's count
    /// runs on).
    lost_before: u64,
}

impl Profiler {
    /// Starts counting: on-CPU sampling on every online CPU, or off-CPU timing at
    /// sched_switch through the first attach variant the kernel takes. The mode's object
    /// parked by an earlier profile is reused; otherwise its template is loaded.
    pub fn start(opts: &ProfileOptions) -> Result<Profiler, String> {
        let name = opts.mode.template();
        let template = crate::embedded::find(name)
            .ok_or_else(|| format!("the {name} template is not embedded in this build"))?;
        let schema = TemplateSchema::parse(template.name, template.schema)?;
        let mut variants: Vec<_> = schema
            .attach
            .iter()
            .flat_map(|p| p.variants.iter())
            .cloned()
            .collect();
        if opts.mode == ProfileMode::OnCpu {
            if opts.frequency_hz == 0 {
                return Err("profile frequency must be at least 1 Hz".into());
            }
            variants.retain(|v| v.kind == AttachKind::PerfEvent);
            for variant in &mut variants {
                variant.target = opts.frequency_hz.to_string();
            }
        }
        if variants.is_empty() {
            return Err(format!(
                "{name}/schema.toml has no attach variant for this mode"
            ));
        }
        let kind = ObjectKind {
            mode: opts.mode,
            cgroup_v2: opts.cgroup_v2,
        };
        if let Some(parked) = parked::take(kind) {
            // The program that attached before is loaded: try it first, and needs no BTF.
            variants.sort_by_key(|v| v.prog != parked.prog);
            if let Ok(profiler) = Self::attach(parked.ebpf, kind, opts, &variants, None) {
                return Ok(profiler);
            }
        }
        let cgroup_v2 = u64::from(opts.cgroup_v2);
        let mut loader = EbpfLoader::new();
        loader.override_global("cgroup_v2", &cgroup_v2, true);
        // The loader parses the kernel BTF for CO-RE itself (and frees it after the load).
        let ebpf = loader
            .load(template.object)
            .map_err(|e| format!("loading the {name} template: {e}"))?;
        // tp_btf attaches need the kernel BTF; a perf_event attach needs none.
        let btf = match opts.mode {
            ProfileMode::OffCpu => Btf::from_sys_fs().ok(),
            ProfileMode::OnCpu => None,
        };
        Self::attach(ebpf, kind, opts, &variants, btf.as_ref())
    }

    /// Writes the filter into `ebpf` and attaches the first variant that takes.
    fn attach(
        mut ebpf: Ebpf,
        kind: ObjectKind,
        opts: &ProfileOptions,
        variants: &[AttachVariant],
        btf: Option<&Btf>,
    ) -> Result<Profiler, String> {
        let name = opts.mode.template();
        let filter = ProfileFilter {
            cgroup_id: opts.cgroup_id,
            min_us: opts.min_offcpu_us,
        };
        let bss = ebpf
            .map_mut(".bss")
            .ok_or_else(|| format!("the {name} object has no .bss (profile_filter)"))?;
        Array::<&mut MapData, ProfileFilter>::try_from(bss)
            .and_then(|mut array| array.set(0, filter, 0))
            .map_err(|e| format!("setting the {name} filter: {e}"))?;
        let lost_before = ebpf.map("huatuo_counters").map_or(0, lost_samples);
        let mut failures = vec![];
        for variant in variants {
            match attach_variant(&mut ebpf, variant, btf) {
                Ok(attachment) => {
                    return Ok(Profiler {
                        ebpf,
                        mode: opts.mode,
                        kind,
                        attachment: Some(attachment),
                        lost_before,
                    })
                }
                Err(e) => failures.push(format!("{:?} {}: {e}", variant.kind, variant.prog)),
            }
        }
        Err(format!(
            "attaching the {name} template: {}",
            failures.join("; ")
        ))
    }

    /// Samples at `hz` from now on (on-CPU profiles): the perf events are reopened at the new
    /// rate while the loaded program and what it counted so far stay, so a rate change costs
    /// no object load (no kernel BTF parse, no verification).
    pub fn set_frequency(&mut self, hz: u64) -> Result<(), String> {
        if self.mode != ProfileMode::OnCpu || hz == 0 {
            return Err("only an on-CPU profile samples, at 1 Hz or more".into());
        }
        let attachment = self
            .attachment
            .take()
            .ok_or("the profile is not attached")?;
        let variant = AttachVariant {
            kind: AttachKind::PerfEvent,
            target: hz.to_string(),
            prog: attachment.prog().to_string(),
            requires: vec![],
            with: vec![],
        };
        attachment.detach(&mut self.ebpf)?;
        self.attachment = Some(attach_variant(&mut self.ebpf, &variant, None)?);
        Ok(())
    }

    /// Stops counting and returns the symbolized profile; the emptied object is parked for
    /// the next profile of its kind.
    pub fn stop(mut self) -> Result<Profile, String> {
        // Detached first, so the maps stop changing while read.
        let detached = match self.attachment.take() {
            Some(attachment) => {
                let prog = attachment.prog().to_string();
                attachment.detach(&mut self.ebpf).map(|()| prog)
            }
            None => Err("not attached".into()),
        };
        let raw = {
            let (counts, stacks) = self.maps_mut()?;
            drain(counts, stacks, true)?
        };
        let lost = self.lost();
        if let Ok(prog) = detached {
            if self.empty().is_ok() {
                parked::park(Parked {
                    kind: self.kind,
                    ebpf: self.ebpf,
                    prog,
                    since: Instant::now(),
                });
            }
        }
        let mut profile = symbolize(raw, self.mode, &mut UserSymbolizer::new());
        profile.lost = lost;
        Ok(profile)
    }

    /// Removes what a drain leaves behind in a detached object: stacks no count referenced
    /// and off-CPU threads still switched out (their stamps would date from this profile).
    fn empty(&mut self) -> Result<(), String> {
        let (_, stacks) = self.maps_mut()?;
        let mut stacks: StackTraceMap<&mut MapData> =
            StackTraceMap::try_from(stacks).map_err(|e| e.to_string())?;
        let ids: Vec<u32> = stacks.stack_ids().filter_map(Result::ok).collect();
        for id in ids {
            stacks.remove(&id).map_err(|e| e.to_string())?;
        }
        if let Some(start) = self.ebpf.map_mut("start") {
            let mut start: BpfHashMap<&mut MapData, u32, SwitchedOut> =
                BpfHashMap::try_from(start).map_err(|e| e.to_string())?;
            let tids: Vec<u32> = start.keys().filter_map(Result::ok).collect();
            for tid in tids {
                let _ = start.remove(&tid);
            }
        }
        Ok(())
    }

    /// Samples (or switch-ins) this profile lost because the count map was full.
    fn lost(&self) -> u64 {
        let total = self.ebpf.map("huatuo_counters").map_or(0, lost_samples);
        total.saturating_sub(self.lost_before)
    }

    /// Reads what was counted since the last collect, clears it, and symbolizes with `user`
    /// (whose cache carries over between collects) the stacks `keep` accepts by (pid, comm,
    /// cgroup id), so filtered-out processes cost no symbolization; counting goes on. `lost`
    /// is the running total since the start.
    pub fn collect(
        &mut self,
        user: &mut UserSymbolizer,
        keep: &mut dyn FnMut(u32, &str, u64) -> bool,
    ) -> Result<Profile, String> {
        let mut raw = {
            let (counts, stacks) = self.maps_mut()?;
            drain(counts, stacks, true)?
        };
        raw.retain(|r| keep(r.key.pid, &comm_of(&r.key), r.key.cgroup));
        let mut profile = symbolize(raw, self.mode, user);
        profile.lost = self.lost();
        Ok(profile)
    }

    /// The `counts` and `stacks` maps, borrowed together.
    fn maps_mut(&mut self) -> Result<(&mut Map, &mut Map), String> {
        let mut counts = None;
        let mut stacks = None;
        for (name, map) in self.ebpf.maps_mut() {
            match name {
                "counts" => counts = Some(map),
                "stacks" => stacks = Some(map),
                _ => {}
            }
        }
        Ok((
            counts.ok_or("the profile object has no `counts` map")?,
            stacks.ok_or("the profile object has no `stacks` map")?,
        ))
    }

    /// CPU time the kernel spent in this profile's programs so far and how many times they
    /// ran; `None` unless `kernel.bpf_stats_enabled` is 1 (the kernel counts nothing then).
    pub fn bpf_cost(&self) -> Option<(Duration, u64)> {
        let mut total = Duration::ZERO;
        let mut runs = 0;
        for (_, program) in self.ebpf.programs() {
            if let Ok(info) = program.info() {
                total += info.run_time();
                runs += info.run_count();
            }
        }
        (runs > 0).then_some((total, runs))
    }
}

/// Reads every count with its stacks; with `clear`, removes what it read (the stacks a
/// drained count referenced too) so the maps keep room for the next interval.
fn drain(counts: &mut Map, stacks: &mut Map, clear: bool) -> Result<Vec<RawStack>, String> {
    let mut counts: BpfHashMap<&mut MapData, RawKey, u64> =
        BpfHashMap::try_from(counts).map_err(|e| format!("profile `counts` map: {e}"))?;
    let mut stacks: StackTraceMap<&mut MapData> =
        StackTraceMap::try_from(stacks).map_err(|e| format!("profile `stacks` map: {e}"))?;
    let mut entries = vec![];
    for entry in counts.iter() {
        let (key, count) = entry.map_err(|e| format!("reading profile counts: {e}"))?;
        entries.push((key, count));
    }
    let ips = |stacks: &StackTraceMap<&mut MapData>, id: i32| -> Vec<u64> {
        u32::try_from(id)
            .ok()
            .and_then(|id| stacks.get(&id, 0).ok())
            .map(|trace| trace.frames().iter().map(|f| f.ip).collect())
            .unwrap_or_default()
    };
    let mut raw = Vec::with_capacity(entries.len());
    let mut used = std::collections::BTreeSet::new();
    for (key, count) in entries {
        raw.push(RawStack {
            key,
            count,
            kernel: ips(&stacks, key.kstack),
            user: ips(&stacks, key.ustack),
        });
        if clear {
            // A count bumped between the read and this removal is lost to the next interval.
            let _ = counts.remove(&key);
            used.extend([key.kstack, key.ustack].into_iter().filter(|id| *id >= 0));
        }
    }
    for id in used {
        let _ = stacks.remove(&(id as u32));
    }
    Ok(raw)
}

/// The command of a key, up to its NUL.
fn comm_of(key: &RawKey) -> String {
    let end = key.comm.iter().position(|b| *b == 0).unwrap_or(16);
    String::from_utf8_lossy(&key.comm[..end]).into_owned()
}

/// Symbolizes drained stacks: kernel frames from kallsyms, user frames in one batch. Stacks
/// share their frames: each kernel address is named once, and a name is kept once however
/// many stacks hold it (a host profile has thousands of stacks over a few thousand names).
fn symbolize(raw: Vec<RawStack>, mode: ProfileMode, user: &mut UserSymbolizer) -> Profile {
    let kernel = Kallsyms::system();
    let wanted: Vec<(u32, u64)> = raw
        .iter()
        .flat_map(|r| r.user.iter().map(move |ip| (r.key.pid, *ip)))
        .collect();
    let mut user_names = user.symbolize_batch(&wanted).into_iter();
    let mut kernel_names: HashMap<u64, Arc<str>> = HashMap::new();
    let mut kernel_name = |ip: u64| -> Arc<str> {
        kernel_names
            .entry(ip)
            .or_insert_with(|| function_name(&kernel.symbolize(ip)).into())
            .clone()
    };
    let run_queue: Arc<str> = RUN_QUEUE_FRAME.into();
    let mut profile = Profile::default();
    for stack in raw {
        let mut frames = vec![];
        if mode == ProfileMode::OffCpu && stack.key.runnable != 0 {
            frames.push(run_queue.clone());
        }
        let user_frames: Vec<Arc<str>> = user_names.by_ref().take(stack.user.len()).collect();
        frames.extend(user_frames.into_iter().rev());
        let mut kernel_frames: Vec<Arc<str>> =
            stack.kernel.iter().map(|ip| kernel_name(*ip)).collect();
        if mode == ProfileMode::OffCpu {
            // Taken inside the sched_switch program: its dispatch frames lead.
            kernel_frames = strip_bpf_frames(kernel_frames);
        }
        frames.extend(kernel_frames.into_iter().rev());
        frames.shrink_to_fit();
        profile.samples += stack.count;
        profile.stacks.push(CountedStack {
            comm: comm_of(&stack.key),
            pid: stack.key.pid,
            cgroup: stack.key.cgroup,
            frames,
            count: stack.count,
        });
    }
    profile
        .stacks
        .sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.frames.cmp(&b.frames)));
    profile
}

/// Counts lost because a count map was full (`huatuo_counters[LOST]`, summed over CPUs).
pub(crate) fn lost_samples(map: &Map) -> u64 {
    const LOST: u32 = 2;
    aya::maps::PerCpuArray::<&MapData, u64>::try_from(map)
        .ok()
        .and_then(|array| array.get(&LOST, 0).ok())
        .map(|values| values.iter().sum())
        .unwrap_or(0)
}

/// `name+0xoff` -> `name`, so samples in one function merge.
fn function_name(symbolized: &str) -> String {
    match symbolized.split_once("+0x") {
        Some((name, _)) => name.to_string(),
        None => symbolized.to_string(),
    }
}

/// Profiles for `opts.duration` and returns the result (blocking).
pub fn run(opts: &ProfileOptions) -> Result<Profile, String> {
    let profiler = Profiler::start(opts)?;
    std::thread::sleep(opts.duration);
    profiler.stop()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_frames_merge_by_function() {
        assert_eq!(function_name("do_syscall_64+0x5a"), "do_syscall_64");
        assert_eq!(function_name("0xffffffff81000000"), "0xffffffff81000000");
    }

    #[test]
    fn key_layout_matches_the_bpf_struct() {
        assert_eq!(std::mem::size_of::<RawKey>(), 40);
        assert_eq!(std::mem::size_of::<SwitchedOut>(), 48);
        assert_eq!(std::mem::size_of::<ProfileFilter>(), 16);
    }
}
