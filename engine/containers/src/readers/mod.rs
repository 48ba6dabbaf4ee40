//! Per-container cgroup readers (v1 and v2) implementing [`Reader`]: one sample per
//! container (per container and device for `cgroup.io`), labelled `container_id`; and the
//! per-container network namespace readers of [`net`] (`container.*`).

mod cpu;
mod io;
mod memory;
pub mod net;
mod tasks;

use crate::cgroupfs::{CgroupVersion, FsError, Layout};
use crate::container::Container;
use crate::discovery::Discovery;
use huatuo_dsl::catalog::{FieldSchema, FieldType, SourceMode, SourceSchema};
use huatuo_dsl::source::{ReadError, Reader};
use huatuo_dsl::units::Dim;
use huatuo_dsl::value::{Sample, Value};
use huatuo_sources::net_dev::NetDevVia;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Settings shared by the cgroup readers.
#[derive(Debug, Clone)]
pub struct ReaderOptions {
    /// procfs root for the task scan of `cgroup.load` (`/proc`).
    pub proc_root: PathBuf,
    /// CPUs a container without a CPU limit may use (`cores` of `cgroup.cpu`).
    pub host_cpus: f64,
    /// At most this many tasks per container are examined by `cgroup.load`.
    pub max_tasks: usize,
    /// How `container.net_dev` reads each namespace (`MetricCollector.NetdevStats.EnableNetlink`).
    pub net_dev_via: NetDevVia,
    /// Recorded netlink JSON (`<dir>/netns/<pid>/link.json` per namespace) instead of
    /// entering the namespaces; for fixture trees.
    pub netlink_recorded: Option<PathBuf>,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        Self {
            proc_root: PathBuf::from("/proc"),
            host_cpus: std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64),
            max_tasks: 100_000,
            net_dev_via: NetDevVia::Procfs,
            netlink_recorded: None,
        }
    }
}

/// What a read function sees besides the container.
pub(crate) struct Ctx<'a> {
    layout: &'a Layout,
    options: &'a ReaderOptions,
    /// The reader's taskstats connection (only `cgroup.load` opens it).
    taskstats: &'a RefCell<tasks::TaskstatsLink>,
}

impl Ctx<'_> {
    fn v2(&self) -> bool {
        self.layout.version == CgroupVersion::V2
    }

    /// The path of `file` in the container's cgroup of `controller` (v1) or its v2 cgroup.
    fn file(&self, controller: &str, c: &Container, file: &str) -> Result<PathBuf, FsError> {
        self.layout
            .dir(controller, &c.cgroup_path)
            .map(|d| d.join(file))
            .ok_or_else(|| FsError {
                path: self.layout.root.join(controller),
                message: format!("cgroup v1 controller {controller} is not mounted"),
                missing: false,
            })
    }
}

/// The samples of one container: extra labels (besides `container_id`) and fields.
pub(crate) type Entity = (BTreeMap<String, String>, BTreeMap<String, Value>);

/// Reads one container.
pub(crate) type ReadFn = fn(&Ctx<'_>, &Container) -> Result<Vec<Entity>, FsError>;

/// A counter as an `Int` value (saturating at `i64::MAX`).
pub(crate) fn int(v: u64) -> Value {
    Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
}

/// A single entity without extra labels.
pub(crate) fn one(fields: BTreeMap<String, Value>) -> Vec<Entity> {
    vec![(BTreeMap::new(), fields)]
}

/// A reader made of a schema and a per-container read function.
struct CgroupReader {
    schema: SourceSchema,
    discovery: Arc<Discovery>,
    options: Arc<ReaderOptions>,
    read_fn: ReadFn,
    taskstats: RefCell<tasks::TaskstatsLink>,
}

impl Reader for CgroupReader {
    fn schema(&self) -> SourceSchema {
        self.schema.clone()
    }

    /// Containers whose files vanished since the scan are skipped. Other per-container
    /// failures are logged; the read fails only when every container failed.
    fn read(&mut self, now_ns: i64) -> Result<Vec<Sample>, ReadError> {
        let snapshot = self.discovery.snapshot().map_err(|e| ReadError {
            source_name: self.schema.name.clone(),
            path: self.discovery.root.display().to_string(),
            message: e.to_string(),
        })?;
        let ctx = Ctx {
            layout: &snapshot.layout,
            options: &self.options,
            taskstats: &self.taskstats,
        };
        let mut samples = Vec::new();
        let mut first_error = None;
        for container in &snapshot.containers {
            match (self.read_fn)(&ctx, container) {
                Ok(entities) => {
                    for (extra, fields) in entities {
                        let mut labels = extra;
                        labels.insert("container_id".to_string(), container.id.clone());
                        samples.push(Sample {
                            source: self.schema.name.clone(),
                            time_ns: now_ns,
                            labels,
                            fields,
                        });
                    }
                }
                Err(e) if e.missing => log::debug!("{}: {e}", self.schema.name),
                Err(e) => {
                    log::warn!("{}: container {}: {e}", self.schema.name, container.id);
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if samples.is_empty() => Err(ReadError {
                source_name: self.schema.name.clone(),
                path: e.path.display().to_string(),
                message: e.message,
            }),
            _ => Ok(samples),
        }
    }
}

/// Builds a field schema.
pub(crate) fn field(name: &str, ty: FieldType, dim: Dim, description: &str) -> FieldSchema {
    FieldSchema {
        name: name.to_string(),
        ty,
        dim,
        description: description.to_string(),
    }
}

/// Builds the schema of a per-container polled source.
pub(crate) fn schema(name: &str, description: &str, fields: Vec<FieldSchema>) -> SourceSchema {
    SourceSchema {
        name: name.to_string(),
        description: description.to_string(),
        mode: SourceMode::Polled,
        default_interval_s: Some(10),
        per_container: true,
        container_only: true,
        labels: Vec::new(),
        fields,
        open_fields: None,
        captures: Vec::new(),
        tunables: Vec::new(),
    }
}

/// Every cgroup source with its read function.
fn catalog() -> Vec<(SourceSchema, ReadFn)> {
    vec![
        (cpu::cpu_schema(), cpu::read_cpu as ReadFn),
        (cpu::cpu_stat_schema(), cpu::read_cpu_stat),
        (memory::memory_stat_schema(), memory::read_memory_stat),
        (memory::memory_events_schema(), memory::read_memory_events),
        (tasks::load_schema(), tasks::read_load),
        (tasks::pids_schema(), tasks::read_pids),
        (io::io_schema(), io::read_io),
    ]
}

/// The schemas of all cgroup and container network sources, for the catalog.
pub fn schemas() -> Vec<SourceSchema> {
    let cgroup = catalog().into_iter().map(|(s, _)| s);
    cgroup.chain(net::schemas()).collect()
}

/// All cgroup readers over `discovery`'s containers, with default options.
pub fn cgroup_readers(discovery: Arc<Discovery>) -> Vec<Box<dyn Reader>> {
    cgroup_readers_with(discovery, ReaderOptions::default())
}

/// All cgroup and container network readers over `discovery`'s containers.
pub fn cgroup_readers_with(
    discovery: Arc<Discovery>,
    options: ReaderOptions,
) -> Vec<Box<dyn Reader>> {
    let net = net::readers(&discovery, &options);
    let options = Arc::new(options);
    let cgroup = catalog().into_iter().map(|(schema, read_fn)| {
        Box::new(CgroupReader {
            schema,
            discovery: discovery.clone(),
            options: options.clone(),
            read_fn,
            taskstats: RefCell::default(),
        }) as Box<dyn Reader>
    });
    cgroup.chain(net).collect()
}
