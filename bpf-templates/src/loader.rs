//! `Templates`: loads the templates the rules need, walks each program's attach chain,
//! starts the event transport, and answers status and histogram reads. Never fails as a
//! whole: every problem is recorded in the template's status.

use crate::attach::attach_variant;
use crate::cgroup::{unified_hierarchy, CgroupResolver, NoContainers};
use crate::decode::EventDecoder;
use crate::embedded;
use crate::histread::{read_histograms, ReadContext};
use crate::needs;
use crate::requires::Requirement;
use crate::schema::{AttachKind, TemplateSchema};
use crate::slots::SlotEviction;
use crate::status::{Counters, ProgramStatus, TemplateStatus, VariantOutcome};
use crate::transport::{spawn_perfbuf, spawn_ringbuf, EventStats, Sink, StopSignal};
use aya::maps::{MapData, MapType, PerCpuArray};
use aya::{Btf, Ebpf, EbpfLoader};
use huatuo_dsl::value::Sample;
use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc::{channel, Receiver, Sender};

/// How templates are loaded; `Default` suits the daemon.
#[derive(Clone)]
pub struct LoadOptions {
    /// Attributes cgroup ids to containers.
    pub resolver: Arc<dyn CgroupResolver>,
    /// Capacity of the event channel (samples waiting for the consumer).
    pub channel_capacity: usize,
    /// Ring buffer size in bytes (a power of two, multiple of the page size).
    pub ringbuf_bytes: Option<u32>,
    /// Pages per CPU of each perf buffer (a power of two).
    pub perf_pages: usize,
    /// Use perf event arrays even where ring buffers exist.
    pub force_perfbuf: bool,
    /// Use the hash-map objects of `task_storage` templates even where task storage exists.
    pub force_hashmap: bool,
    /// Requirements treated as unmet whatever this kernel offers (exercises the fallbacks).
    pub unmet: Vec<Requirement>,
    /// Attach kinds not tried at all (exercises the fallbacks, or pins a kind).
    pub excluded_kinds: Vec<AttachKind>,
    /// Let a template host another on the hooks both use (`[[hosts]]`), one program per
    /// hook; off, each loads its own object (what the cost bench compares against).
    pub share_hooks: bool,
    /// How long a cgroup holding per-CPU histogram slots must be no container, at every
    /// read, before its slots are freed (`crate::slots::SlotEviction`): longer than container
    /// discovery takes to find a new container.
    pub slot_grace: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            resolver: Arc::new(NoContainers),
            channel_capacity: 4096,
            ringbuf_bytes: None,
            perf_pages: 16,
            force_perfbuf: false,
            force_hashmap: false,
            unmet: vec![],
            excluded_kinds: vec![],
            share_hooks: true,
            slot_grace: Duration::from_secs(60),
        }
    }
}

/// Which object of a template built twice to use, as this kernel allows.
#[derive(Clone, Copy)]
struct Objects {
    /// `BPF_MAP_TYPE_RINGBUF` exists (event templates).
    ringbuf: bool,
    /// `BPF_MAP_TYPE_TASK_STORAGE` exists and kernel BTF is there (`task_storage` templates).
    task_storage: bool,
}

struct Loaded {
    schema: Option<TemplateSchema>,
    /// Descriptors the template needs open while loaded (`needs = ["rx_timestamps"]`).
    held: Vec<OwnedFd>,
    ebpf: Option<Ebpf>,
    status: TemplateStatus,
    stats: Arc<EventStats>,
    /// The tunables it was loaded with (`global -> value`; a host's hosting globals too).
    values: BTreeMap<String, u64>,
    /// The template meant to host it when it was loaded (`Plan::host`); whether it is
    /// hosted is `status.hosted_by` (it falls back to its own object when the host failed).
    host: Option<String>,
    /// Stops its event thread.
    stop: Arc<StopSignal>,
    /// Its event thread (event templates).
    thread: Option<JoinHandle<()>>,
}

impl Loaded {
    /// Stops its event thread; dropping it then detaches its programs.
    fn stop(&mut self) {
        self.stop.stop();
        if let Some(handle) = self.thread.take() {
            let _ = handle.join();
        }
    }
}

/// One template as the loader means to load it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    /// Folder name.
    name: String,
    /// Its tunables, plus the hosting globals of the templates it hosts.
    values: BTreeMap<String, u64>,
    /// The template whose object does its work instead of its own.
    host: Option<String>,
}

/// The plans of `needed` (folder or catalog names, repeats skipped) with their tunables. With
/// `share`, a template whose schema can host another needed one (that has no tunables and
/// hosts nothing itself) gets the hosting global set, and the other is planned onto it.
fn plan(
    needed: &[&str],
    tunables: &BTreeMap<String, BTreeMap<String, u64>>,
    share: bool,
) -> Vec<Plan> {
    let mut plans: Vec<Plan> = Vec::new();
    for raw in needed {
        let name = folder(raw);
        if !plans.iter().any(|p| p.name == name) {
            plans.push(Plan {
                name: name.to_string(),
                values: values_of(tunables, name),
                host: None,
            });
        }
    }
    if !share {
        return plans;
    }
    for i in 0..plans.len() {
        let Some(schema) = embedded::find(&plans[i].name)
            .and_then(|t| TemplateSchema::parse(t.name, t.schema).ok())
        else {
            continue;
        };
        if plans[i].host.is_some() {
            continue;
        }
        for hosting in &schema.hosts {
            let guest = plans.iter().position(|p| {
                p.name == hosting.template && p.host.is_none() && p.values.is_empty()
            });
            let Some(j) = guest.filter(|&j| j != i) else {
                continue;
            };
            plans[j].host = Some(plans[i].name.clone());
            plans[i].values.insert(hosting.global.clone(), 1);
        }
    }
    plans
}

/// What [`Templates::reconcile`] changed, by template name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Reconciled {
    /// Newly needed templates that loaded and attached.
    pub attached: Vec<String>,
    /// Templates no longer needed, detached and unloaded.
    pub detached: Vec<String>,
    /// Templates loaded again because their pushed-down values changed.
    pub reloaded: Vec<String>,
    /// Newly needed (or reloaded) templates that failed, with the reason.
    pub failed: Vec<(String, String)>,
}

/// The loaded templates, their status and their event stream.
pub struct Templates {
    templates: Vec<Loaded>,
    resolver: Arc<dyn CgroupResolver>,
    events: Option<Receiver<Sample>>,
    /// The sending side of `events`, for templates loaded later ([`Templates::reconcile`]).
    tx: Sender<Sample>,
    options: LoadOptions,
    /// Slot owners unpublished across histogram reads.
    eviction: Mutex<SlotEviction>,
}

impl Templates {
    /// Loads the named templates (folder names, `runqlat`, or catalog names `bpf.runqlat`)
    /// with their tunables (`template -> global -> value`), default options.
    pub fn load(needed: &[&str], tunables: &BTreeMap<String, BTreeMap<String, u64>>) -> Templates {
        Templates::load_with(needed, tunables, LoadOptions::default())
    }

    /// Like `load`, with explicit options.
    pub fn load_with(
        needed: &[&str],
        tunables: &BTreeMap<String, BTreeMap<String, u64>>,
        options: LoadOptions,
    ) -> Templates {
        let (tx, rx) = channel(options.channel_capacity.max(1));
        let mut templates = Templates {
            templates: vec![],
            resolver: options.resolver.clone(),
            events: Some(rx),
            tx,
            eviction: Mutex::new(SlotEviction::new(options.slot_grace)),
            options,
        };
        templates.load_many(needed, tunables);
        templates
    }

    /// Loads each of `needed` (skipping repeats) with its tunables; returns the names.
    fn load_many(
        &mut self,
        needed: &[&str],
        tunables: &BTreeMap<String, BTreeMap<String, u64>>,
    ) -> Vec<String> {
        let plans = plan(needed, tunables, self.options.share_hooks);
        self.load_plans(&plans)
    }

    /// Loads the planned templates, hosts before the templates they host; returns the names.
    fn load_plans(&mut self, plans: &[Plan]) -> Vec<String> {
        if plans.is_empty() {
            return Vec::new();
        }
        let options = self.options.clone();
        let tx = self.tx.clone();
        let btf = Btf::from_sys_fs().ok();
        let ringbuf =
            !options.force_perfbuf && aya::sys::is_map_supported(MapType::RingBuf).unwrap_or(false);
        let objects = Objects {
            ringbuf,
            task_storage: !options.force_hashmap
                && btf.is_some()
                && aya::sys::is_map_supported(MapType::TaskStorage).unwrap_or(false),
        };
        let v2 = unified_hierarchy();
        let (guests, owners): (Vec<&Plan>, Vec<&Plan>) =
            plans.iter().partition(|p| p.host.is_some());
        for plan in owners.into_iter().chain(guests) {
            let host_up = plan
                .host
                .as_deref()
                .is_some_and(|host| self.is_loaded(host));
            let mut loaded = match (&plan.host, host_up) {
                (Some(host), true) => hosted(&plan.name, host),
                _ => self.load_one(
                    &plan.name,
                    &plan.values,
                    &options,
                    btf.as_ref(),
                    objects,
                    v2,
                    &tx,
                ),
            };
            if let (Some(host), false) = (&plan.host, host_up) {
                loaded.status.notes.insert(
                    0,
                    format!("`{host}` did not load to host it: loaded on its own object"),
                );
            }
            loaded.host = plan.host.clone();
            self.templates.push(loaded);
        }
        // `btf` is dropped here: aya keeps no reference, so the parsed kernel BTF is freed.
        plans.iter().map(|p| p.name.clone()).collect()
    }

    /// Brings the loaded set to `needed` with `tunables` (after a rule reload): templates no
    /// longer needed are detached, new ones loaded and attached, and those whose pushed-down
    /// values changed are detached and loaded again with the new values (const globals
    /// cannot change in a loaded object). Hosting counts as such a value: a host whose guest
    /// comes or goes is loaded again with its hosting global set or cleared, and a guest whose
    /// host comes or goes moves onto it or back to its own object. Templates that stay as
    /// they were keep their maps (a guest's are its host's: reloading the host restarts them).
    pub fn reconcile(
        &mut self,
        needed: &[&str],
        tunables: &BTreeMap<String, BTreeMap<String, u64>>,
    ) -> Reconciled {
        let plans = plan(needed, tunables, self.options.share_hooks);
        let mut done = Reconciled::default();
        let mut reload = Vec::new();
        let mut kept = Vec::new();
        for mut loaded in std::mem::take(&mut self.templates) {
            let name = loaded.status.name.clone();
            match plans.iter().find(|p| p.name == name) {
                None => {
                    loaded.stop();
                    if loaded.status.loaded {
                        done.detached.push(name);
                    }
                }
                Some(p)
                    if loaded.status.loaded
                        && (loaded.values != p.values || loaded.host != p.host) =>
                {
                    loaded.stop();
                    reload.push(name);
                }
                Some(_) => kept.push(loaded),
            }
        }
        self.templates = kept;
        let new: Vec<Plan> = plans
            .iter()
            .filter(|p| !self.templates.iter().any(|t| t.status.name == p.name))
            .cloned()
            .collect();
        let names = self.load_plans(&new);
        self.report(names, &reload, &mut done);
        // A kept guest whose host was reloaded and failed: onto its own object.
        let orphans: Vec<Plan> = plans
            .into_iter()
            .filter(|p| {
                self.templates.iter().any(|t| {
                    t.status.name == p.name
                        && t.status
                            .hosted_by
                            .as_ref()
                            .is_some_and(|h| !self.is_loaded(h))
                })
            })
            .collect();
        if !orphans.is_empty() {
            self.templates
                .retain(|t| !orphans.iter().any(|p| p.name == t.status.name));
            let names: Vec<String> = orphans.iter().map(|p| p.name.clone()).collect();
            let loaded = self.load_plans(&orphans);
            self.report(loaded, &names, &mut done);
        }
        done
    }

    /// Whether template `name` is loaded (on its own object or hosted).
    fn is_loaded(&self, name: &str) -> bool {
        self.templates
            .iter()
            .any(|t| t.status.name == name && t.status.loaded)
    }

    /// Records in `done` how the templates `names` came out of a load (`reload`: the names
    /// that were loaded before).
    fn report(&self, names: Vec<String>, reload: &[String], done: &mut Reconciled) {
        for name in names {
            let Some(t) = self.templates.iter().find(|t| t.status.name == name) else {
                continue;
            };
            match (&t.status.error, reload.contains(&name)) {
                (Some(e), _) => done.failed.push((name, e.clone())),
                (None, true) => done.reloaded.push(name),
                (None, false) => done.attached.push(name),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn load_one(
        &mut self,
        name: &str,
        values: &BTreeMap<String, u64>,
        options: &LoadOptions,
        btf: Option<&Btf>,
        objects: Objects,
        v2: bool,
        tx: &Sender<Sample>,
    ) -> Loaded {
        let mut loaded = Loaded {
            schema: None,
            held: vec![],
            ebpf: None,
            status: TemplateStatus {
                name: name.to_string(),
                loaded: false,
                transport: None,
                error: None,
                programs: vec![],
                counters: Counters::default(),
                notes: vec![],
                hosted_by: None,
            },
            stats: Arc::new(EventStats::default()),
            values: values.clone(),
            host: None,
            stop: Arc::new(StopSignal::new()),
            thread: None,
        };
        let mut result = self.try_load(&mut loaded, values, options, btf, objects, v2, tx);
        let has_hashmap = embedded::find(name).is_some_and(|t| t.hashmap_object.is_some());
        if let (Err(e), true, true) = (&result, objects.task_storage, has_hashmap) {
            // The task-storage object did not load or attach: start over with the hash maps.
            let note = format!("task-storage object failed ({e}); using the hash-map object");
            loaded.status.programs.clear();
            loaded.status.notes.clear();
            let hashmap = Objects {
                task_storage: false,
                ..objects
            };
            result = self.try_load(&mut loaded, values, options, btf, hashmap, v2, tx);
            loaded.status.notes.insert(0, note);
        }
        if let Err(e) = result {
            loaded.status.error = Some(e);
            loaded.status.loaded = false;
            loaded.ebpf = None;
            loaded.held.clear();
        }
        loaded
    }

    #[allow(clippy::too_many_arguments)]
    fn try_load(
        &mut self,
        loaded: &mut Loaded,
        values: &BTreeMap<String, u64>,
        options: &LoadOptions,
        btf: Option<&Btf>,
        objects: Objects,
        v2: bool,
        tx: &Sender<Sample>,
    ) -> Result<(), String> {
        let name = loaded.status.name.clone();
        let embedded = embedded::find(&name).ok_or_else(|| {
            let known: Vec<&str> = embedded::TEMPLATES.iter().map(|t| t.name).collect();
            format!("unknown template `{name}` (known: {})", known.join(", "))
        })?;
        let schema = TemplateSchema::parse(embedded.name, embedded.schema)?;
        let settable = schema.settable_globals();
        for key in values.keys() {
            if !settable.contains(&key.as_str()) {
                return Err(format!(
                    "unknown tunable `{key}` for template `{name}` (settable: {})",
                    settable.join(", ")
                ));
            }
        }
        let is_event = schema.event.is_some();
        let object = match (is_event, objects.ringbuf, embedded.perfbuf_object) {
            (true, false, Some(perf)) => {
                loaded.status.transport = Some("perfbuf");
                perf
            }
            (true, _, _) => {
                loaded.status.transport = Some("ringbuf");
                embedded.object
            }
            (false, _, _) => match embedded.hashmap_object {
                Some(hashmap) if !objects.task_storage => {
                    loaded
                        .status
                        .notes
                        .push("hash-map object (task storage not used)".into());
                    hashmap
                }
                _ => embedded.object,
            },
        };
        if btf.is_none() {
            loaded
                .status
                .notes
                .push("kernel BTF not found: CO-RE and tp_btf variants cannot load".into());
        }
        let provided =
            needs::provide(&schema.needs).map_err(|e| format!("template `{name}`: {e}"))?;
        let v2_flag: u64 = u64::from(v2);
        let mut loader = EbpfLoader::new();
        loader.btf(btf);
        // aya has no typed wrapper for task storage; the map is created all the same.
        loader.allow_unsupported_maps();
        loader.override_global("cgroup_v2", &v2_flag, false);
        for (global, value) in &provided.globals {
            loader.override_global(global, value, true);
        }
        for (key, value) in values {
            loader.override_global(key.as_str(), value, true);
        }
        if let (Some(bytes), Some("ringbuf")) = (options.ringbuf_bytes, loaded.status.transport) {
            loader.map_max_entries("events", bytes);
        }
        let mut ebpf = loader
            .load(object)
            .map_err(|e| format!("cannot load template `{name}`: {e}"))?;

        let (programs, missing) = attach_points(&mut ebpf, &schema, btf, options);
        loaded.status.programs = programs;
        if !missing.is_empty() {
            return Err(format!(
                "template `{name}` is unavailable: no variant of {} attached",
                missing.join(", ")
            ));
        }
        if is_event {
            let decoder = EventDecoder::new(&schema)
                .ok_or_else(|| format!("template `{name}`: [event] layout is empty"))?;
            let map = ebpf
                .take_map("events")
                .ok_or_else(|| format!("template `{name}` has no `events` map"))?;
            let sink = Sink {
                name: name.clone(),
                decoder,
                resolver: self.resolver.clone(),
                tx: tx.clone(),
                stats: loaded.stats.clone(),
                stop: loaded.stop.clone(),
            };
            let handle = if loaded.status.transport == Some("perfbuf") {
                spawn_perfbuf(map, options.perf_pages, sink)?
            } else {
                spawn_ringbuf(map, sink)?
            };
            loaded.thread = Some(handle);
        }
        loaded.status.loaded = true;
        loaded.status.notes.extend(provided.notes);
        loaded.held = provided.held;
        loaded.schema = Some(schema);
        loaded.ebpf = Some(ebpf);
        Ok(())
    }

    /// Takes the stream of decoded event samples of every event template (once).
    pub fn take_events(&mut self) -> Option<Receiver<Sample>> {
        self.events.take()
    }

    /// Names of the templates that loaded.
    pub fn loaded(&self) -> Vec<&str> {
        self.templates
            .iter()
            .filter(|t| t.status.loaded)
            .map(|t| t.status.name.as_str())
            .collect()
    }

    /// The loaded object whose maps and programs serve template `t`: its own, or its host's.
    fn object_of<'a>(&'a self, t: &'a Loaded) -> Option<&'a Loaded> {
        match &t.status.hosted_by {
            Some(host) => self
                .templates
                .iter()
                .find(|h| &h.status.name == host && h.ebpf.is_some()),
            None => Some(t),
        }
    }

    /// Status of every requested template, with current counters and run statistics. A
    /// hosted template shows its host's programs on the hooks it uses.
    pub fn status(&self) -> Vec<TemplateStatus> {
        self.templates
            .iter()
            .map(|t| {
                let mut status = t.status.clone();
                if let (Some(host), Some(schema)) = (self.object_of(t), &t.schema) {
                    if t.status.hosted_by.is_some() {
                        status.programs = host
                            .status
                            .programs
                            .iter()
                            .filter(|p| schema.attach.iter().any(|a| a.program == p.program))
                            .cloned()
                            .collect();
                    }
                }
                if let Some(ebpf) = self.object_of(t).and_then(|o| o.ebpf.as_ref()) {
                    for program in &mut status.programs {
                        let Some(prog) = program
                            .attached_variant()
                            .and_then(|v| ebpf.program(&v.prog))
                        else {
                            continue;
                        };
                        if let Ok(info) = prog.info() {
                            program.run_count = info.run_count();
                            program.run_time_ns = info.run_time().as_nanos() as u64;
                        }
                    }
                }
                if let Some(ebpf) = &t.ebpf {
                    let kernel = kernel_counters(ebpf);
                    status.counters.emitted = kernel[0];
                    status.counters.shed = kernel[1];
                    status.counters.lost = kernel[2];
                    status.counters.map_full = kernel[3];
                }
                status.counters.received = t.stats.received.load(Ordering::Relaxed);
                status.counters.dropped = t.stats.dropped.load(Ordering::Relaxed);
                status.counters.decode_errors = t.stats.decode_errors.load(Ordering::Relaxed);
                status
            })
            .collect()
    }

    /// Reads the histograms of every loaded polled template into samples.
    pub fn read_histograms(&self) -> Vec<Sample> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        let mut samples = vec![];
        for t in &self.templates {
            let ebpf = self.object_of(t).and_then(|o| o.ebpf.as_ref());
            let (Some(schema), Some(ebpf)) = (&t.schema, ebpf) else {
                continue;
            };
            let mut eviction = self.eviction.lock().unwrap_or_else(|e| e.into_inner());
            let mut ctx = ReadContext {
                resolver: self.resolver.as_ref(),
                eviction: &mut eviction,
                time_ns: now,
            };
            match read_histograms(schema, ebpf, &mut ctx) {
                Ok(mut s) => samples.append(&mut s),
                Err(e) => log::warn!("template `{}`: {e}", t.status.name),
            }
        }
        samples
    }
}

impl Drop for Templates {
    fn drop(&mut self) {
        for loaded in &mut self.templates {
            loaded.stop();
        }
    }
}

/// A template whose work the loaded `host` does in its own programs: its schema for reading
/// the maps, no object of its own.
fn hosted(name: &str, host: &str) -> Loaded {
    let schema = embedded::find(name).and_then(|t| TemplateSchema::parse(t.name, t.schema).ok());
    Loaded {
        schema,
        held: vec![],
        ebpf: None,
        status: TemplateStatus {
            name: name.to_string(),
            loaded: true,
            transport: None,
            error: None,
            programs: vec![],
            counters: Counters::default(),
            notes: vec![format!(
                "hosted by `{host}`: its programs on the same hooks do this template's work \
                 (one program per hook)"
            )],
            hosted_by: Some(host.to_string()),
        },
        stats: Arc::new(EventStats::default()),
        values: BTreeMap::new(),
        host: Some(host.to_string()),
        stop: Arc::new(StopSignal::new()),
        thread: None,
    }
}

/// The folder name of a template (`bpf.runqlat` -> `runqlat`).
fn folder(name: &str) -> &str {
    name.strip_prefix("bpf.").unwrap_or(name)
}

/// The tunables of template `name` (keyed by folder or catalog name), none when absent.
fn values_of(
    tunables: &BTreeMap<String, BTreeMap<String, u64>>,
    name: &str,
) -> BTreeMap<String, u64> {
    tunables
        .get(name)
        .or_else(|| tunables.get(&format!("bpf.{name}")))
        .cloned()
        .unwrap_or_default()
}

/// Walks the attach chain of every point: first the ordinary points, then the companions
/// that an attached variant names in `with` (the others are reported as not needed).
/// Returns the outcomes in schema order and the required points that did not attach.
fn attach_points(
    ebpf: &mut Ebpf,
    schema: &TemplateSchema,
    btf: Option<&Btf>,
    options: &LoadOptions,
) -> (Vec<ProgramStatus>, Vec<String>) {
    let mut programs: Vec<ProgramStatus> = schema
        .attach
        .iter()
        .map(|point| ProgramStatus {
            program: point.program.clone(),
            required: point.required,
            attached: None,
            tried: vec![],
            not_needed: None,
            run_count: 0,
            run_time_ns: 0,
        })
        .collect();
    let mut wanted = std::collections::BTreeSet::new();
    let mut missing = vec![];
    for pass_companions in [false, true] {
        for (point, program) in schema.attach.iter().zip(programs.iter_mut()) {
            if point.companion != pass_companions {
                continue;
            }
            if point.companion && !wanted.contains(&point.program) {
                program.not_needed = Some("no attached variant needs it".into());
                continue;
            }
            for variant in &point.variants {
                let result = if options.excluded_kinds.contains(&variant.kind) {
                    Err(format!("{:?} excluded (load options)", variant.kind))
                } else {
                    Ok(())
                };
                let result = result
                    .and_then(|()| {
                        variant.requires.iter().try_for_each(|r| {
                            if options.unmet.contains(r) {
                                Err(format!(
                                    "requires {}: treated as unmet (load options)",
                                    r.name()
                                ))
                            } else {
                                r.check(std::path::Path::new("/proc"))
                            }
                        })
                    })
                    .and_then(|()| attach_variant(ebpf, variant, btf).map(drop));
                let ok = result.is_ok();
                program.tried.push(VariantOutcome {
                    kind: variant.kind,
                    target: variant.target.clone(),
                    prog: variant.prog.clone(),
                    error: result.err(),
                });
                if ok {
                    program.attached = Some(program.tried.len() - 1);
                    wanted.extend(variant.with.iter().cloned());
                    break;
                }
            }
            if program.attached.is_none() && point.required {
                missing.push(point.program.clone());
            }
        }
    }
    (programs, missing)
}

/// Sums `huatuo_counters` over CPUs: [emitted, shed, lost, map_full].
fn kernel_counters(ebpf: &Ebpf) -> [u64; 4] {
    let mut out = [0u64; 4];
    let Some(map) = ebpf.map("huatuo_counters") else {
        return out;
    };
    let Ok(array) = PerCpuArray::<&MapData, u64>::try_from(map) else {
        return out;
    };
    for (idx, slot) in out.iter_mut().enumerate() {
        if let Ok(values) = array.get(&(idx as u32), 0) {
            *slot = values.iter().sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plans(needed: &[&str], tunables: &[(&str, &str, u64)], share: bool) -> Vec<Plan> {
        let mut map: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for (template, global, value) in tunables {
            map.entry(template.to_string())
                .or_default()
                .insert(global.to_string(), *value);
        }
        plan(needed, &map, share)
    }

    #[test]
    fn softirq_off_hosts_softirq_latency_when_both_are_needed() {
        let p = plans(
            &["bpf.softirq_latency", "softirq_off", "softirq_latency"],
            &[("softirq_off", "threshold_ns", 5)],
            true,
        );
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "softirq_latency");
        assert_eq!(p[0].host.as_deref(), Some("softirq_off"));
        assert!(p[0].values.is_empty());
        assert_eq!(p[1].host, None);
        assert_eq!(
            p[1].values,
            BTreeMap::from([("latency_on".into(), 1), ("threshold_ns".into(), 5)])
        );
    }

    #[test]
    fn nothing_is_hosted_alone_or_with_sharing_off() {
        for (needed, share) in [
            (&["softirq_latency"][..], true),
            (&["softirq_off"][..], true),
            (&["softirq_latency", "softirq_off"][..], false),
        ] {
            let p = plans(needed, &[], share);
            assert!(p.iter().all(|p| p.host.is_none()), "{p:?}");
            assert!(p.iter().all(|p| p.values.is_empty()), "{p:?}");
        }
    }

    #[test]
    fn every_hosted_template_exists_and_uses_hooks_of_its_host() {
        let mut hosted = 0;
        for t in embedded::TEMPLATES {
            let host = TemplateSchema::parse(t.name, t.schema).expect("schema");
            for h in &host.hosts {
                let guest = embedded::find(&h.template).expect("hosted template exists");
                let guest = TemplateSchema::parse(guest.name, guest.schema).expect("schema");
                for point in &guest.attach {
                    assert!(
                        host.attach.iter().any(|a| a.program == point.program),
                        "{}: no `{}` on host {}",
                        h.template,
                        point.program,
                        t.name
                    );
                }
                assert!(host.settable_globals().contains(&h.global.as_str()));
                hosted += 1;
            }
        }
        assert!(hosted >= 1);
    }
}
