//! The on-demand CPU profiler. On-CPU: loads the `profiler` template, which samples every
//! CPU; off-CPU: loads the `offcpu` template, which sums the time threads spend switched
//! out. Both count by (pid, comm, kernel stack, user stack) in the same maps, so one reader
//! symbolizes the stacks (kernel frames from /proc/kallsyms, user frames from
//! /proc/<pid>/maps and ELF symbols) and renders folded stacks and HUATUO's `flamedata`.

pub mod flame;
pub mod usersym;

use crate::attach::attach_variant;
use crate::decode::strip_bpf_frames;
use crate::kallsyms::Kallsyms;
use crate::schema::{AttachKind, TemplateSchema};
use aya::maps::Map;
use aya::maps::{HashMap as BpfHashMap, MapData, StackTraceMap};
use aya::{Btf, Ebpf, EbpfLoader};
use flame::{CountedStack, FlameFrame};
use std::time::Duration;
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
    /// `cgroup_id` names a cgroup v2 directory.
    pub cgroup_v2: bool,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        ProfileOptions {
            mode: ProfileMode::OnCpu,
            duration: Duration::from_secs(10),
            frequency_hz: 99,
            cgroup_id: 0,
            cgroup_v2: false,
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

/// The key of the `counts` map (`struct profile_key` in profiler.bpf.c and offcpu.bpf.c).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct RawKey {
    pid: u32,
    kstack: i32,
    ustack: i32,
    comm: [u8; 16],
}

// SAFETY: plain old data with no padding (4 + 4 + 4 + 16 bytes, align 4).
unsafe impl aya::Pod for RawKey {}

/// A running profile; `stop` detaches and reads it.
pub struct Profiler {
    ebpf: Ebpf,
    mode: ProfileMode,
}

impl Profiler {
    /// Loads the mode's template and starts counting: on-CPU sampling on every online CPU,
    /// or off-CPU timing at sched_switch through the first attach variant the kernel takes.
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
        // tp_btf attaches need the kernel BTF; a perf_event attach needs none.
        let btf = match opts.mode {
            ProfileMode::OffCpu => Btf::from_sys_fs().ok(),
            ProfileMode::OnCpu => None,
        };
        let cgroup_v2 = u64::from(opts.cgroup_v2);
        // The loader parses the kernel BTF for CO-RE itself (and frees it after the load).
        let mut ebpf = EbpfLoader::new()
            .override_global("cgroup_id", &opts.cgroup_id, true)
            .override_global("cgroup_v2", &cgroup_v2, true)
            .load(template.object)
            .map_err(|e| format!("loading the {name} template: {e}"))?;
        let mut failures = vec![];
        for variant in &variants {
            match attach_variant(&mut ebpf, variant, btf.as_ref()) {
                Ok(()) => {
                    return Ok(Profiler {
                        ebpf,
                        mode: opts.mode,
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

    /// Stops counting and returns the symbolized profile.
    pub fn stop(mut self) -> Result<Profile, String> {
        let counts = take(&mut self.ebpf, "counts")?;
        let stacks = take(&mut self.ebpf, "stacks")?;
        let counters = self.ebpf.take_map("huatuo_counters");
        // Dropping the object detaches its program, so the maps stop changing while read.
        drop(self.ebpf);
        let counts: BpfHashMap<MapData, RawKey, u64> =
            BpfHashMap::try_from(counts).map_err(|e| format!("profile `counts` map: {e}"))?;
        let stacks =
            StackTraceMap::try_from(stacks).map_err(|e| format!("profile `stacks` map: {e}"))?;
        let kernel = Kallsyms::system();
        let mut user = UserSymbolizer::new();
        let mut profile = Profile::default();
        for entry in counts.iter() {
            let (key, count) = entry.map_err(|e| format!("reading profile counts: {e}"))?;
            let mut frames = vec![];
            if key.ustack >= 0 {
                if let Ok(trace) = stacks.get(&(key.ustack as u32), 0) {
                    frames.extend(
                        trace
                            .frames()
                            .iter()
                            .rev()
                            .map(|f| user.symbolize(key.pid, f.ip)),
                    );
                }
            }
            if key.kstack >= 0 {
                if let Ok(trace) = stacks.get(&(key.kstack as u32), 0) {
                    let mut kernel_frames: Vec<String> = trace
                        .frames()
                        .iter()
                        .map(|f| function_name(&kernel.symbolize(f.ip)))
                        .collect();
                    if self.mode == ProfileMode::OffCpu {
                        // Taken inside the sched_switch program: its dispatch frames lead.
                        kernel_frames = strip_bpf_frames(kernel_frames);
                    }
                    frames.extend(kernel_frames.into_iter().rev());
                }
            }
            let end = key.comm.iter().position(|b| *b == 0).unwrap_or(16);
            profile.samples += count;
            profile.stacks.push(CountedStack {
                comm: String::from_utf8_lossy(&key.comm[..end]).into_owned(),
                pid: key.pid,
                frames,
                count,
            });
        }
        profile.lost = counters.map_or(0, lost_samples);
        profile
            .stacks
            .sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.frames.cmp(&b.frames)));
        Ok(profile)
    }
}

/// Takes the map `name` out of the profile's object.
fn take(ebpf: &mut Ebpf, name: &str) -> Result<Map, String> {
    ebpf.take_map(name)
        .ok_or_else(|| format!("the profile object has no `{name}` map"))
}

/// Counts lost because the count map was full (`huatuo_counters[LOST]`, summed over CPUs).
fn lost_samples(map: Map) -> u64 {
    const LOST: u32 = 2;
    aya::maps::PerCpuArray::<MapData, u64>::try_from(map)
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
        assert_eq!(std::mem::size_of::<RawKey>(), 28);
    }
}
