//! The catalog: what sources, captures and config keys exist, and their schemas.
//!
//! The checker knows nothing by heart. Kernel templates, procfs/cgroup/netlink readers, the
//! capture engine and the config module each register their schemas here, and the checker
//! resolves every name a rule uses against this data.

use crate::units::Dim;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The label naming a sample's container.
pub const CONTAINER_ID: &str = "container_id";

/// The labels the agent puts on every sample that carries [`CONTAINER_ID`] (FEATURES.md's
/// container series labels), in this order; all are strings, empty when unknown.
pub const CONTAINER_LABELS: &[&str] = &[
    CONTAINER_ID,
    "container_host",
    "container_hostnamespace",
    "container_level",
    "container_name",
    "container_type",
];

/// HUATUO's record field names for container labels (`container_qos` for `container_level`),
/// as `(record field, label)`; config filters such as `AutoTracing.CPUIdle.Filter` use them.
pub const CONTAINER_RECORD_FIELDS: &[(&str, &str)] = &[
    ("container_hostname", "container_host"),
    ("container_host_namespace", "container_hostnamespace"),
    ("container_qos", "container_level"),
];

/// The runtime type of a field or config key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// A signed or unsigned integer.
    Int,
    /// A floating-point number.
    Float,
    /// A string.
    Str,
    /// A boolean.
    Bool,
    /// A histogram of the field's dimension.
    Hist,
    /// A list of strings (a stack, a list of names or patterns).
    List,
    /// Structured data.
    Json,
}

/// One field a source publishes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldSchema {
    /// Field name as rules write it.
    pub name: String,
    /// Runtime type.
    #[serde(rename = "type")]
    pub ty: FieldType,
    /// Dimension of numeric fields (base units: ns, bytes, percent points, counts).
    #[serde(default = "default_dim")]
    pub dim: Dim,
    /// One line for docs and hints.
    #[serde(default)]
    pub description: String,
}

fn default_dim() -> Dim {
    Dim::Count
}

/// How a source produces samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceMode {
    /// Read on an interval (`every` in the rule, else the default here).
    Polled,
    /// Pushes samples as they happen (ring buffer, netlink, kmsg).
    Stream,
}

/// A pushdown tunable of a kernel template: a condition the kernel evaluates itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tunable {
    /// Name of the tunable (the global variable in the BPF object).
    pub name: String,
    /// The field the tunable compares.
    pub field: String,
    /// The comparison it implements: `>`, `>=`, `==`, `!=`.
    pub op: String,
    /// One line for docs.
    #[serde(default)]
    pub description: String,
}

/// The schema of one source: its name, fields, labels and what it can capture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceSchema {
    /// Catalog name (`bpf.runqlat`, `proc.stat`, `cgroup.cpu`, `netlink.link`, `kmsg`).
    pub name: String,
    /// One line for docs.
    #[serde(default)]
    pub description: String,
    /// Polled or stream.
    pub mode: SourceMode,
    /// Default interval of a polled source, in seconds.
    #[serde(default)]
    pub default_interval_s: Option<u64>,
    /// Whether samples come per container (they then carry `container_id`).
    #[serde(default)]
    pub per_container: bool,
    /// Whether every sample is a container's, none the host's (the cgroup readers): a metric
    /// of such a source has no host series.
    #[serde(default)]
    pub container_only: bool,
    /// Labels that identify a sample's entity besides the container.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Fields every sample has.
    #[serde(default)]
    pub fields: Vec<FieldSchema>,
    /// When set, samples also carry fields not listed (vmstat keys); they have this type.
    #[serde(default)]
    pub open_fields: Option<FieldSchema>,
    /// Source-specific captures (beyond the global ones), e.g. `stack` for a template.
    #[serde(default)]
    pub captures: Vec<String>,
    /// Conditions this source can evaluate in the kernel.
    #[serde(default)]
    pub tunables: Vec<Tunable>,
}

impl SourceSchema {
    /// Looks up a field by name, falling back to the open-field type.
    pub fn field(&self, name: &str) -> Option<FieldSchema> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .cloned()
            .or_else(|| {
                self.open_fields.as_ref().map(|open| FieldSchema {
                    name: name.to_string(),
                    ..open.clone()
                })
            })
    }

    /// Whether samples may name a container: per-container sources, and sources that list
    /// `container_id` among their labels (kernel templates attributing events by cgroup).
    pub fn may_carry_container(&self) -> bool {
        self.per_container || self.labels.iter().any(|l| l == CONTAINER_ID)
    }

    /// Whether samples carry the label `name`: one of [`Self::labels`], or one of
    /// [`CONTAINER_LABELS`] when samples may name a container.
    pub fn has_label(&self, name: &str) -> bool {
        self.labels.iter().any(|l| l == name)
            || (self.may_carry_container() && CONTAINER_LABELS.contains(&name))
    }

    /// Every label name samples may carry: [`Self::labels`], then the container labels.
    pub fn label_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.labels.iter().map(String::as_str).collect();
        if self.may_carry_container() {
            for label in CONTAINER_LABELS {
                if !names.contains(label) {
                    names.push(label);
                }
            }
        }
        names
    }
}

/// One argument a capture accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureArg {
    /// Argument name (`scope`, `duration`, `n`).
    pub name: String,
    /// Type of the argument.
    #[serde(rename = "type")]
    pub ty: FieldType,
    /// Dimension of a numeric argument.
    #[serde(default = "default_dim")]
    pub dim: Dim,
    /// Allowed words for an identifier argument (`host`, `container`); empty means any value.
    #[serde(default)]
    pub choices: Vec<String>,
    /// Whether a rule must give it.
    #[serde(default)]
    pub required: bool,
}

/// A capture action: what it takes and which record fields it adds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureSchema {
    /// Name as rules call it (`stack`, `profile`, `tasks`, `file`, `top`).
    pub name: String,
    /// One line for docs.
    #[serde(default)]
    pub description: String,
    /// Arguments, positional in this order or by name.
    #[serde(default)]
    pub args: Vec<CaptureArg>,
    /// Record fields the capture adds.
    #[serde(default)]
    pub produces: Vec<FieldSchema>,
    /// True when only sources that list it in `captures` can supply it.
    #[serde(default)]
    pub source_specific: bool,
}

/// One key of `huatuo-bamai.conf` that rules may read with `config(...)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigKeySchema {
    /// Dotted path, `Section.Sub.Key`.
    pub path: String,
    /// Type of the key.
    #[serde(rename = "type")]
    pub ty: FieldType,
    /// Dimension a rule sees (a `10` in `Interval` is seconds: Time).
    #[serde(default = "default_dim")]
    pub dim: Dim,
    /// One line for docs.
    #[serde(default)]
    pub description: String,
}

/// Every name a rule can refer to, registered by the parts of the system that provide it.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    sources: BTreeMap<String, SourceSchema>,
    captures: BTreeMap<String, CaptureSchema>,
    config_keys: BTreeMap<String, ConfigKeySchema>,
    scripts: BTreeMap<String, usize>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a source; a later registration of the same name replaces the earlier.
    pub fn add_source(&mut self, schema: SourceSchema) {
        self.sources.insert(schema.name.clone(), schema);
    }

    /// Registers a capture action.
    pub fn add_capture(&mut self, schema: CaptureSchema) {
        self.captures.insert(schema.name.clone(), schema);
    }

    /// Registers a config key rules may read.
    pub fn add_config_key(&mut self, schema: ConfigKeySchema) {
        self.config_keys.insert(schema.path.clone(), schema);
    }

    /// Registers a stdlib script function (`file::function`) and its arity.
    pub fn add_script_fn(&mut self, qualified_name: &str, arity: usize) {
        self.scripts.insert(qualified_name.to_string(), arity);
    }

    /// Looks up a source.
    pub fn source(&self, name: &str) -> Option<&SourceSchema> {
        self.sources.get(name)
    }

    /// Looks up a capture.
    pub fn capture(&self, name: &str) -> Option<&CaptureSchema> {
        self.captures.get(name)
    }

    /// Looks up a config key.
    pub fn config_key(&self, path: &str) -> Option<&ConfigKeySchema> {
        self.config_keys.get(path)
    }

    /// Arity of a registered script function.
    pub fn script_fn(&self, qualified_name: &str) -> Option<usize> {
        self.scripts.get(qualified_name).copied()
    }

    /// All sources, sorted by name.
    pub fn sources(&self) -> impl Iterator<Item = &SourceSchema> {
        self.sources.values()
    }

    /// All captures, sorted by name.
    pub fn captures(&self) -> impl Iterator<Item = &CaptureSchema> {
        self.captures.values()
    }

    /// All config keys, sorted by path.
    pub fn config_keys(&self) -> impl Iterator<Item = &ConfigKeySchema> {
        self.config_keys.values()
    }

    /// All script functions with their arity, sorted by name.
    pub fn script_fns(&self) -> impl Iterator<Item = (&str, usize)> {
        self.scripts
            .iter()
            .map(|(name, arity)| (name.as_str(), *arity))
    }
}
