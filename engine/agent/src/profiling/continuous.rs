//! The always-on profiler: the `profiler` template (and the `offcpu` template when enabled)
//! stays attached; every interval its maps are drained, the stacks symbolized (user frames
//! through a bounded per-binary cache), attributed to containers, filtered, kept in the
//! [`ProfileStore`] and pushed to Pyroscope. A governor measures what profiling costs (the
//! kernel time of its programs when `kernel.bpf_stats_enabled` is 1, plus this thread's CPU
//! time) and halves the sampling rate while the cost passes the budget, doubling it back
//! towards the configured rate while the cost stays under a quarter of it (the first round,
//! which also loads what later rounds find cached, is not governed on; a rate change reopens
//! the perf events and keeps the loaded program); still over the
//! budget at 1 Hz, it stops off-CPU profiling (whose cost follows context switches, not the
//! rate) until the agent restarts.

use super::packed::PackedProfile;
use super::pyroscope::{Push, Pyroscope};
use super::store::{encode, ContainerTag, IntervalProfile, ProfileStore, StoredStack};
use huatuo_bpf::profiler::usersym::UserSymbolizer;
use huatuo_bpf::profiler::{ProfileMode, ProfileOptions, Profiler};
use huatuo_config::ContinuousProfiling;
use huatuo_containers::Discovery;
use huatuo_dsl::output::{MetricKind, MetricPoint};
use huatuo_eval::thread_cpu::thread_cpu_time;
use huatuo_http::api::profiles::ProfileType;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the profiler reports in `/status` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfilingState {
    /// Sampling frequency in force.
    pub frequency_hz: u64,
    /// Configured frequency.
    pub configured_hz: u64,
    /// Budget, percent of one CPU.
    pub budget_percent: f64,
    /// Measured cost over the last interval, percent of one CPU.
    pub cost_percent: f64,
    /// Whether the kernel's share is in the cost (bpf_stats_enabled).
    pub kernel_cost_measured: bool,
    /// Times the governor lowered the rate.
    pub throttled: u64,
    /// Intervals profiled.
    pub intervals: u64,
    /// Errors reading, starting or pushing (the last one in `last_error`).
    pub errors: u64,
    /// The last error.
    pub last_error: Option<String>,
    /// Samples the kernel could not count (count map full), running total.
    pub lost: u64,
    /// Profiles pushed to Pyroscope.
    pub pushed: u64,
    /// Pushes that failed.
    pub push_failures: u64,
    /// User frames answered from the symbol cache, resolved from files, files read.
    pub symbol_hits: u64,
    /// User frames resolved from their files.
    pub symbol_misses: u64,
    /// Frames in the symbol cache.
    pub symbol_cached: u64,
    /// Heap bytes the symbol cache holds (estimated).
    pub symbol_cached_bytes: u64,
    /// User frames in JIT code named by their process's perf map.
    pub symbol_jit_named: u64,
    /// User frames in JIT code no perf map named (shown as addresses).
    pub symbol_jit_unnamed: u64,
    /// Off-CPU profiling runs.
    pub offcpu: bool,
    /// The governor stopped off-CPU profiling: still over budget at 1 Hz of CPU sampling.
    pub offcpu_paused: bool,
}

/// What the HTTP side reads: the store and the state.
pub struct ProfilingShared {
    /// Kept profiles.
    pub store: Mutex<ProfileStore>,
    /// Governor and counters.
    pub state: Mutex<ProfilingState>,
}

impl ProfilingShared {
    /// The `/status` section.
    pub fn status(&self) -> serde_json::Value {
        let state = self.state.lock().map(|s| s.clone()).unwrap_or_default();
        let (profiles, bytes, dropped) = self
            .store
            .lock()
            .map(|s| (s.size().0, s.size().1, s.dropped))
            .unwrap_or_default();
        serde_json::json!({
            "enabled": true,
            "frequency_hz": state.frequency_hz,
            "configured_hz": state.configured_hz,
            "cpu_budget_percent": state.budget_percent,
            "cpu_cost_percent": state.cost_percent,
            "kernel_cost_measured": state.kernel_cost_measured,
            "throttled": state.throttled,
            "offcpu": state.offcpu,
            "offcpu_paused_by_governor": state.offcpu_paused,
            "intervals": state.intervals,
            "errors": state.errors,
            "last_error": state.last_error,
            "lost_samples": state.lost,
            "pyroscope_pushed": state.pushed,
            "pyroscope_failures": state.push_failures,
            "profiles_kept": profiles,
            "profiles_bytes": bytes,
            "profiles_dropped": dropped,
            "symbol_cache_frames": state.symbol_cached,
            "symbol_cache_bytes": state.symbol_cached_bytes,
        })
    }

    /// The `/metrics` points.
    pub fn points(&self) -> Vec<MetricPoint> {
        let state = self.state.lock().map(|s| s.clone()).unwrap_or_default();
        let (kept, bytes, dropped) = self
            .store
            .lock()
            .map(|s| (s.size().0, s.size().1, s.dropped))
            .unwrap_or_default();
        let point = |family: &str, help: &str, kind, labels: &[(&str, &str)], value: f64| {
            crate::daemon::selfmetrics::point(family, help, kind, labels, value)
        };
        use MetricKind::{Counter, Gauge};
        vec![
            point("agent_profiling_frequency_hz", "continuous CPU profiling: sampling rate in force (the governor lowers it above the CPU budget)", Gauge, &[], state.frequency_hz as f64),
            point("agent_profiling_cpu_cost_percent", "continuous profiling: measured CPU cost over the last interval, percent of one CPU", Gauge, &[], state.cost_percent),
            point("agent_profiling_cpu_budget_percent", "continuous profiling: configured CPU budget, percent of one CPU", Gauge, &[], state.budget_percent),
            point("agent_profiling_throttled_total", "continuous profiling: times the governor lowered the sampling rate", Counter, &[], state.throttled as f64),
            point("agent_profiling_intervals_total", "continuous profiling: intervals profiled", Counter, &[], state.intervals as f64),
            point("agent_profiling_errors_total", "continuous profiling: errors starting, reading or symbolizing", Counter, &[], state.errors as f64),
            point("agent_profiling_lost_samples_total", "continuous profiling: samples the kernel could not count (count map full)", Counter, &[], state.lost as f64),
            point("agent_profiling_pushes_total", "continuous profiling: profiles pushed to Pyroscope, by result", Counter, &[("result", "ok")], state.pushed as f64),
            point("agent_profiling_pushes_total", "continuous profiling: profiles pushed to Pyroscope, by result", Counter, &[("result", "failed")], state.push_failures as f64),
            point("agent_profiling_symbol_frames_total", "continuous profiling: user frames symbolized: from the cache, from their ELF file, from a JIT perf map, or JIT frames no perf map named", Counter, &[("source", "cache")], state.symbol_hits as f64),
            point("agent_profiling_symbol_frames_total", "continuous profiling: user frames symbolized: from the cache, from their ELF file, from a JIT perf map, or JIT frames no perf map named", Counter, &[("source", "file")], state.symbol_misses as f64),
            point("agent_profiling_symbol_frames_total", "continuous profiling: user frames symbolized: from the cache, from their ELF file, from a JIT perf map, or JIT frames no perf map named", Counter, &[("source", "perf_map")], state.symbol_jit_named as f64),
            point("agent_profiling_symbol_frames_total", "continuous profiling: user frames symbolized: from the cache, from their ELF file, from a JIT perf map, or JIT frames no perf map named", Counter, &[("source", "jit_unnamed")], state.symbol_jit_unnamed as f64),
            point("agent_profiling_symbol_cache_frames", "continuous profiling: frames held in the symbol cache", Gauge, &[], state.symbol_cached as f64),
            point("agent_profiling_symbol_cache_bytes", "continuous profiling: heap bytes the symbol cache holds (estimated from its tables and names)", Gauge, &[], state.symbol_cached_bytes as f64),
            point("agent_profiling_profiles_kept", "continuous profiling: aggregated profiles kept in memory", Gauge, &[], kept as f64),
            point("agent_profiling_profiles_bytes", "continuous profiling: memory held by kept profiles", Gauge, &[], bytes as f64),
            point("agent_profiling_profiles_dropped_total", "continuous profiling: oldest profiles dropped to stay within Retained and MaxMemory", Counter, &[], dropped as f64),
        ]
    }
}

/// Everything the profiling thread needs.
pub struct Settings {
    /// `[ContinuousProfiling]`.
    pub config: ContinuousProfiling,
    /// Pyroscope, when configured.
    pub pyroscope: Option<Pyroscope>,
    /// Host label.
    pub host: String,
    /// Region label.
    pub region: String,
    /// Container lookup by cgroup id.
    pub discovery: Option<Arc<Discovery>>,
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

/// The governor's next rate: halve above the budget, double back under a quarter of it.
pub fn next_rate(current: u64, configured: u64, cost: f64, budget: f64) -> u64 {
    if cost > budget && current > 1 {
        (current / 2).max(1)
    } else if cost < budget / 4.0 && current < configured {
        (current * 2).min(configured)
    } else {
        current
    }
}

/// Starts the profiling thread; `None` when `[ContinuousProfiling]` is off.
pub fn spawn(
    settings: Settings,
    stop: Arc<AtomicBool>,
) -> Option<(Arc<ProfilingShared>, std::thread::JoinHandle<()>)> {
    if !settings.config.enable {
        return None;
    }
    let config = &settings.config;
    let shared = Arc::new(ProfilingShared {
        store: Mutex::new(ProfileStore::new(
            config.retained.max(1) as usize,
            (config.max_memory.max(1) as usize) << 20,
        )),
        state: Mutex::new(ProfilingState {
            frequency_hz: config.frequency.max(1) as u64,
            configured_hz: config.frequency.max(1) as u64,
            budget_percent: config.cpu_budget,
            offcpu: config.off_cpu.enable,
            ..Default::default()
        }),
    });
    let for_thread = shared.clone();
    let handle = std::thread::Builder::new()
        .name("huatuo-profiling".into())
        .spawn(move || Runner::new(settings, for_thread).run(&stop))
        .map_err(|e| log::warn!("continuous profiling not started: {e}"))
        .ok()?;
    Some((shared, handle))
}

/// One running profiler and what it measured last.
struct Running {
    profiler: Profiler,
    kind: ProfileType,
    bpf_time: Duration,
    /// The profiler's lost-sample total already added to the state.
    lost_seen: u64,
}

struct Runner {
    settings: Settings,
    shared: Arc<ProfilingShared>,
    symbolizer: UserSymbolizer,
    cgroup_v2: bool,
}

impl Runner {
    fn new(settings: Settings, shared: Arc<ProfilingShared>) -> Runner {
        let frames = settings.config.symbol_cache_frames.max(1024) as usize;
        Runner {
            settings,
            shared,
            symbolizer: UserSymbolizer::with_capacity(frames),
            cgroup_v2: huatuo_bpf::cgroup::unified_hierarchy(),
        }
    }

    fn error(&self, message: String) {
        log::warn!("continuous profiling: {message}");
        if let Ok(mut state) = self.shared.state.lock() {
            state.errors += 1;
            state.last_error = Some(message);
        }
    }

    fn start(&self, kind: ProfileType, frequency_hz: u64) -> Option<Running> {
        let options = ProfileOptions {
            mode: match kind {
                ProfileType::Cpu => ProfileMode::OnCpu,
                ProfileType::OffCpu => ProfileMode::OffCpu,
            },
            frequency_hz,
            cgroup_v2: self.cgroup_v2,
            min_offcpu_us: self.settings.config.off_cpu.min_duration.max(0) as u64 * 1000,
            ..ProfileOptions::default()
        };
        match Profiler::start(&options) {
            Ok(profiler) => {
                let bpf_time = profiler.bpf_cost().map_or(Duration::ZERO, |c| c.0);
                Some(Running {
                    profiler,
                    kind,
                    bpf_time,
                    lost_seen: 0,
                })
            }
            Err(e) => {
                self.error(format!("starting the {kind:?} profiler: {e}"));
                None
            }
        }
    }

    fn run(mut self, stop: &AtomicBool) {
        let interval = Duration::from_secs(self.settings.config.interval.max(1) as u64);
        let configured = self.settings.config.frequency.max(1) as u64;
        let mut frequency = configured;
        let mut running: Vec<Running> = vec![];
        running.extend(self.start(ProfileType::Cpu, frequency));
        if self.settings.config.off_cpu.enable {
            running.extend(self.start(ProfileType::OffCpu, frequency));
        }
        if running.is_empty() {
            return;
        }
        let mut start_ns = now_ns();
        let mut next = Instant::now() + interval;
        let mut first_round = true;
        while !stop.load(Ordering::Relaxed) {
            let left = next.saturating_duration_since(Instant::now());
            if !left.is_zero() {
                std::thread::sleep(left.min(Duration::from_millis(200)));
                continue;
            }
            // A late round (a starved thread, a slow symbolization) moves the schedule instead
            // of catching up with back-to-back rounds that would ship empty ranges.
            let now = Instant::now();
            next = if next + interval > now {
                next + interval
            } else {
                now + interval
            };
            let cpu_before = thread_cpu_time();
            let end_ns = now_ns();
            let mut kernel = Duration::ZERO;
            let mut kernel_measured = false;
            for run in &mut running {
                match self.read(run, start_ns, end_ns, frequency) {
                    Ok((interval_profile, lost)) => {
                        self.ship(&interval_profile);
                        if let Ok(mut state) = self.shared.state.lock() {
                            state.lost += lost.saturating_sub(run.lost_seen);
                        }
                        run.lost_seen = lost;
                        let packed = PackedProfile::pack(&interval_profile);
                        drop(interval_profile);
                        if let Ok(mut store) = self.shared.store.lock() {
                            store.push(packed);
                        }
                    }
                    Err(e) => self.error(format!("reading the {:?} profile: {e}", run.kind)),
                }
                if let Some((total, _)) = run.profiler.bpf_cost() {
                    kernel += total.saturating_sub(run.bpf_time);
                    run.bpf_time = total;
                    kernel_measured = true;
                }
            }
            // The cost over the time this round covered (more than the interval when late).
            let covered =
                Duration::from_nanos(end_ns.saturating_sub(start_ns).max(0) as u64).max(interval);
            start_ns = end_ns;
            let spent = thread_cpu_time().saturating_sub(cpu_before) + kernel;
            let cost = spent.as_secs_f64() * 100.0 / covered.as_secs_f64();
            let budget = self.settings.config.cpu_budget;
            // The first round also pays once for what later rounds find cached (kallsyms,
            // every sampled binary's symbols): its cost is reported, not governed on.
            let rate = if std::mem::take(&mut first_round) {
                frequency
            } else {
                next_rate(frequency, configured, cost, budget)
            };
            let pause_offcpu = cost > budget
                && frequency == 1
                && running.iter().any(|r| r.kind == ProfileType::OffCpu);
            if pause_offcpu {
                running.retain(|r| r.kind != ProfileType::OffCpu);
                log::warn!(
                    "continuous profiling: cost {cost:.2}% of a CPU at 1 Hz is over the budget \
                     of {budget}%: off-CPU profiling stopped"
                );
            }
            let stats = self.symbolizer.stats();
            if let Ok(mut state) = self.shared.state.lock() {
                state.intervals += 1;
                state.cost_percent = cost;
                state.kernel_cost_measured = kernel_measured;
                state.symbol_hits = stats.hits;
                state.symbol_misses = stats.misses;
                state.symbol_cached = stats.cached;
                state.symbol_cached_bytes = stats.cached_bytes;
                state.symbol_jit_named = stats.jit_named;
                state.symbol_jit_unnamed = stats.jit_lookups - stats.jit_named;
                if rate < frequency {
                    state.throttled += 1;
                }
                state.frequency_hz = rate;
                if pause_offcpu {
                    state.offcpu = false;
                    state.offcpu_paused = true;
                    state.throttled += 1;
                }
            }
            if rate != frequency {
                log::info!(
                    "continuous profiling: cost {cost:.2}% of a CPU against a budget of \
                     {budget}%: sampling at {rate} Hz (was {frequency} Hz)"
                );
                frequency = rate;
                if let Some(at) = running.iter().position(|r| r.kind == ProfileType::Cpu) {
                    if let Err(e) = running[at].profiler.set_frequency(frequency) {
                        self.error(format!("changing the sampling rate: {e}"));
                        running.remove(at);
                        running.extend(self.start(ProfileType::Cpu, frequency));
                    }
                }
            }
            crate::daemon::heap::give_back();
        }
    }

    /// The container of a cgroup id, from the discovery snapshot (memoized per interval).
    fn tag_of(
        &self,
        snapshot: Option<&huatuo_containers::discovery::Snapshot>,
        tags: &mut HashMap<u64, Option<Arc<ContainerTag>>>,
        cgroup: u64,
    ) -> Option<Arc<ContainerTag>> {
        tags.entry(cgroup)
            .or_insert_with(|| {
                let c = snapshot?.by_cgroup_id(cgroup)?;
                let pod = c.pod.as_ref();
                Some(Arc::new(ContainerTag {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    pod: pod.map(|p| p.pod_name.clone()).unwrap_or_default(),
                    namespace: pod.map(|p| p.namespace.clone()).unwrap_or_default(),
                }))
            })
            .clone()
    }

    /// Whether a sampled task passes `Containers` and `Processes`.
    fn wanted(
        &self,
        tag: Option<&ContainerTag>,
        pid: u32,
        comm: &str,
        exes: &mut HashMap<u32, String>,
    ) -> bool {
        let config = &self.settings.config;
        if !config.containers.is_empty()
            && !tag.is_some_and(|t| config.containers.iter().any(|w| t.matches(w)))
        {
            return false;
        }
        if config.processes.is_empty() {
            return true;
        }
        let exe = exes.entry(pid).or_insert_with(|| {
            std::fs::read_link(format!("/proc/{pid}/exe"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        config
            .processes
            .iter()
            .any(|p| comm.contains(p.as_str()) || exe.contains(p.as_str()))
    }

    /// Drains one profiler, keeping (before symbolization) only the wanted tasks, and folds
    /// the stacks with their containers.
    fn read(
        &mut self,
        run: &mut Running,
        start_ns: i64,
        end_ns: i64,
        frequency_hz: u64,
    ) -> Result<(IntervalProfile, u64), String> {
        let discovery = self.settings.discovery.clone();
        let snapshot = discovery.as_ref().and_then(|d| d.snapshot().ok());
        let mut tags: HashMap<u64, Option<Arc<ContainerTag>>> = HashMap::new();
        let mut exes: HashMap<u32, String> = HashMap::new();
        let mut symbolizer = std::mem::take(&mut self.symbolizer);
        let profile = run
            .profiler
            .collect(&mut symbolizer, &mut |pid, comm, cgroup| {
                let tag = self.tag_of(snapshot.as_deref(), &mut tags, cgroup);
                self.wanted(tag.as_deref(), pid, comm, &mut exes)
            });
        self.symbolizer = symbolizer;
        let profile = profile?;
        let stacks = profile
            .stacks
            .into_iter()
            .map(|stack| {
                let frames: Vec<String> =
                    stack.frames.iter().map(|f| f.replace(';', "_")).collect();
                StoredStack {
                    container: self.tag_of(snapshot.as_deref(), &mut tags, stack.cgroup),
                    comm: stack.comm,
                    frames: frames.join(";"),
                    count: stack.count,
                }
            })
            .collect();
        Ok((
            IntervalProfile {
                kind: run.kind,
                start_ns,
                end_ns,
                frequency_hz,
                stacks,
            },
            profile.lost,
        ))
    }

    /// Pushes one interval to Pyroscope: one profile per container and one for the host's
    /// own processes.
    fn ship(&self, profile: &IntervalProfile) {
        let Some(pyroscope) = &self.settings.pyroscope else {
            return;
        };
        let mut groups: HashMap<Option<&str>, Vec<&StoredStack>> = HashMap::new();
        for stack in &profile.stacks {
            groups
                .entry(stack.container.as_ref().map(|c| c.id.as_str()))
                .or_default()
                .push(stack);
        }
        let kind = match profile.kind {
            ProfileType::Cpu => "cpu",
            ProfileType::OffCpu => "offcpu",
        };
        for stacks in groups.values() {
            let tag = stacks.first().and_then(|s| s.container.clone());
            let tag = tag.as_deref();
            let labels = [
                ("host", self.settings.host.as_str()),
                ("region", self.settings.region.as_str()),
                ("container", tag.map_or("", |t| t.name.as_str())),
                ("container_id", tag.map_or("", |t| t.id.as_str())),
                ("pod", tag.map_or("", |t| t.pod.as_str())),
                ("namespace", tag.map_or("", |t| t.namespace.as_str())),
            ];
            let push = Push {
                kind,
                labels: &labels,
                from_s: profile.start_ns / 1_000_000_000,
                until_s: profile.end_ns / 1_000_000_000,
                sample_rate: profile.frequency_hz,
                pprof: encode(stacks, profile.units(), profile.start_ns, profile.end_ns),
            };
            let result = pyroscope.push(&push);
            let failed = result.is_err();
            if let Err(e) = result {
                self.error(e);
            }
            if let Ok(mut state) = self.shared.state.lock() {
                if failed {
                    state.push_failures += 1;
                } else {
                    state.pushed += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_governor_halves_above_budget_and_recovers_below_a_quarter() {
        assert_eq!(next_rate(99, 99, 2.0, 1.0), 49);
        assert_eq!(next_rate(49, 99, 0.6, 1.0), 49);
        assert_eq!(next_rate(49, 99, 0.1, 1.0), 98);
        assert_eq!(next_rate(98, 99, 0.1, 1.0), 99);
        assert_eq!(next_rate(1, 99, 5.0, 1.0), 1);
        assert_eq!(next_rate(99, 99, 0.0, 1.0), 99);
    }
}
