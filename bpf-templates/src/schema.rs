//! The `schema.toml` of a template: its catalog schema plus the BPF specifics (event layout,
//! attach chain, histogram maps, extra globals), parsed and checked.

use crate::layout::{offsets, CType};
use crate::needs::Need;
use crate::requires::Requirement;
use huatuo_dsl::catalog::SourceSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Everything a template declares about itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSchema {
    /// The catalog schema (`bpf.<folder>`).
    pub source: SourceSchema,
    /// Layout of the records the template writes to `events` (stream templates).
    #[serde(default)]
    pub event: Option<EventLayout>,
    /// Programs to attach, each with its variants in order of preference.
    #[serde(default)]
    pub attach: Vec<AttachPoint>,
    /// Histogram maps read at scrape time (polled templates).
    #[serde(default)]
    pub histogram: Vec<HistogramMap>,
    /// Counter maps (`__u64` values) read at scrape time, published as `Int` fields.
    #[serde(default)]
    pub counter: Vec<HistogramMap>,
    /// Globals (`volatile const __u64`) a caller may set besides the source's tunables.
    #[serde(default)]
    pub global: Vec<GlobalKnob>,
    /// Services the loader provides at load (`crate::needs`).
    #[serde(default)]
    pub needs: Vec<Need>,
    /// Templates this object can host: its programs on the same hooks also do their work,
    /// into maps of the same names, when the loader sets the hosting global.
    #[serde(default)]
    pub hosts: Vec<Hosting>,
    /// Built twice: the main object keeps per-task state in task storage (≥ 5.11, tp_btf
    /// programs only), `EmbeddedTemplate::hashmap_object` in hash maps for older kernels.
    #[serde(default)]
    pub task_storage: bool,
}

/// The C struct a template emits, member by member, in order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventLayout {
    /// Members in declaration order.
    pub fields: Vec<EventField>,
}

/// Whether an event member becomes a field or a label of the sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A sample field.
    #[default]
    Field,
    /// A sample label (rendered as text).
    Label,
    /// Padding or internal data: not published (members named `_...` are skipped too).
    Skip,
}

/// How an integer member is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// A kernel address: `symbol+0xoff` from /proc/kallsyms.
    Ksym,
    /// A `u64[N]` of kernel addresses: a list of `symbol+0xoff` frames (see `len_field`).
    Kstack,
    /// A `u8[16]` address: IPv4 when v4-mapped or stored in the first 4 bytes, else IPv6.
    Ip,
    /// A kernel `dev_t` (major << 20 | minor): `major:minor`.
    Dev,
    /// An integer flag: `Bool` (non-zero is true).
    Bool,
    /// An integer as hexadecimal text (`0xff4b8d8be3818000`): kernel addresses, which do not
    /// fit a signed 64-bit number.
    Hex,
    /// A bit set: the list of `names[i]` for every set bit i (bits without a name are left
    /// out).
    Bits,
}

/// One member of an event record.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventField {
    /// Field or label name in the sample.
    pub name: String,
    /// C type of the member.
    pub c: CType,
    /// Field, label or skipped.
    #[serde(default)]
    pub role: Role,
    /// Rendering of the value (default: integers as `Int`, `char[N]` as `Str`).
    #[serde(default)]
    pub format: Option<Format>,
    /// Names by value (index) for enumerations; a value past the list stays a number.
    #[serde(default)]
    pub names: Vec<String>,
    /// For arrays: the member holding how many elements are valid.
    #[serde(default)]
    pub len_field: Option<String>,
    /// A cgroup id: besides the field, the first one that names a container sets the
    /// `container_id` label.
    #[serde(default)]
    pub cgroup: bool,
    /// A cgroup id naming whose container it is (`victim`, `trigger`): the container's id and
    /// hostname are published as `<container>_container_id` and `<container>_container_hostname`
    /// (empty for a cgroup that is no container).
    #[serde(default)]
    pub container: Option<String>,
    /// An integer of this kernel enum: its enumerator name (from the running kernel's BTF,
    /// the number when unknown) is published as `name_field`.
    #[serde(default)]
    pub btf_enum: Option<String>,
    /// The field that carries the `btf_enum` name.
    #[serde(default)]
    pub name_field: Option<String>,
}

impl EventField {
    /// Whether the member is published at all.
    pub fn published(&self) -> bool {
        self.role != Role::Skip && !self.name.starts_with('_')
    }
}

/// The kind of a BPF attach point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachKind {
    /// BTF-typed raw tracepoint (`target` = tracepoint name).
    TpBtf,
    /// Raw tracepoint (`target` = tracepoint name).
    RawTp,
    /// Classic tracepoint (`target` = `category/name`; needs tracefs).
    Tracepoint,
    /// kprobe (`target` = kernel function).
    Kprobe,
    /// kretprobe (`target` = kernel function).
    Kretprobe,
    /// fentry (`target` = kernel function).
    Fentry,
    /// CPU-clock sampling on every online CPU (`target` = frequency in Hz).
    PerfEvent,
}

/// One way of attaching a program.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachVariant {
    /// Attach kind.
    pub kind: AttachKind,
    /// What to attach to (see `AttachKind`).
    pub target: String,
    /// Name of the BPF program (the C function).
    pub prog: String,
    /// Kernel facilities checked before the variant is tried (`crate::requires`).
    #[serde(default)]
    pub requires: Vec<Requirement>,
    /// Companion attach points this variant needs attached too (by `program` name).
    #[serde(default)]
    pub with: Vec<String>,
}

/// A logical program of a template and the variants that implement it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachPoint {
    /// Logical name shown in the status.
    pub program: String,
    /// Whether the template is unavailable when no variant attaches.
    #[serde(default = "yes")]
    pub required: bool,
    /// Variants in order of preference.
    pub variants: Vec<AttachVariant>,
    /// Attached only when the variant that attached for another point names it in `with`.
    #[serde(default)]
    pub companion: bool,
}

fn yes() -> bool {
    true
}

/// How a histogram key member becomes a label.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyFormat {
    /// Decimal integer.
    #[default]
    Int,
    /// A kernel `dev_t`: `major:minor`.
    Dev,
    /// A cgroup id resolved to a container id; entries of other cgroups are skipped.
    Cgroup,
    /// A named value from `names`; other values are skipped.
    Enum,
}

/// One member of a histogram map's key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPart {
    /// Label it becomes.
    pub label: String,
    /// C type of the member.
    pub c: CType,
    /// How the value is rendered.
    #[serde(default)]
    pub format: KeyFormat,
    /// Names of values for `format = "enum"`, keyed by the decimal value.
    #[serde(default)]
    pub names: BTreeMap<String, String>,
}

/// A map read at scrape time: `struct huatuo_hist` values (`[[histogram]]`) or `__u64`
/// counters (`[[counter]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistogramMap {
    /// BPF map name (array, per-CPU array, hash or per-CPU hash).
    pub map: String,
    /// Sample field the histogram is published as.
    pub field: String,
    /// Key members (empty: the map is an array read at index 0).
    #[serde(default)]
    pub key: Vec<KeyPart>,
    /// For per-CPU maps: publish one sample per CPU with this label instead of summing.
    #[serde(default)]
    pub per_cpu_label: Option<String>,
    /// `[[histogram]]` only: also publish the histogram's number of observations as this
    /// `Int` field (a count of events that needs no second map in the kernel).
    #[serde(default)]
    pub count_field: Option<String>,
    /// `[[histogram]]` of a hash keyed by one `u64`: the per-CPU array of slots the kernel
    /// side fills before this hash (`crate::slots`), each value the key that holds the slot
    /// (0: free) followed by the histogram. A key's histogram is the sum of both.
    #[serde(default)]
    pub slots: Option<String>,
}

/// A global a caller may set that is not a filter tunable.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalKnob {
    /// Name of the `volatile const __u64` in the object.
    pub name: String,
    /// One line for docs.
    #[serde(default)]
    pub description: String,
}

/// A template another one's object can host (`[[hosts]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hosting {
    /// Folder name of the hosted template (`softirq_latency`).
    pub template: String,
    /// The `volatile const __u64` that switches its work on (0 by default).
    pub global: String,
}

/// Globals every event template has (`include/huatuo.h`).
pub const EVENT_GLOBALS: [&str; 2] = ["rate_per_sec", "burst"];

impl TemplateSchema {
    /// Parses and checks a schema.toml; `folder` is the template's folder name.
    pub fn parse(folder: &str, text: &str) -> Result<TemplateSchema, String> {
        let schema: TemplateSchema =
            toml::from_str(text).map_err(|e| format!("{folder}/schema.toml: {e}"))?;
        schema
            .check(folder)
            .map_err(|e| format!("{folder}/schema.toml: {e}"))?;
        Ok(schema)
    }

    fn check(&self, folder: &str) -> Result<(), String> {
        let expected = format!("bpf.{folder}");
        if self.source.name != expected {
            return Err(format!(
                "source.name is `{}`, expected `{expected}`",
                self.source.name
            ));
        }
        if self.attach.is_empty() {
            return Err("no [[attach]] entry".into());
        }
        for point in &self.attach {
            if point.variants.is_empty() {
                return Err(format!("attach `{}` has no variants", point.program));
            }
            for wanted in point.variants.iter().flat_map(|v| &v.with) {
                if !self
                    .attach
                    .iter()
                    .any(|p| p.companion && &p.program == wanted)
                {
                    return Err(format!(
                        "attach `{}`: `with` names `{wanted}`, which is not a companion point",
                        point.program
                    ));
                }
            }
            if point.companion
                && !self
                    .attach
                    .iter()
                    .flat_map(|p| &p.variants)
                    .any(|v| v.with.contains(&point.program))
            {
                return Err(format!(
                    "companion `{}` is named in no variant's `with`",
                    point.program
                ));
            }
        }
        let has_field = |name: &str| self.source.fields.iter().any(|f| f.name == name);
        if let Some(event) = &self.event {
            let lengths: Vec<&str> = event
                .fields
                .iter()
                .filter_map(|f| f.len_field.as_deref())
                .collect();
            for len in &lengths {
                if !event.fields.iter().any(|f| f.name == *len) {
                    return Err(format!("len_field `{len}` is not an event member"));
                }
            }
            for member in &event.fields {
                if member.btf_enum.is_some() != member.name_field.is_some() {
                    return Err(format!(
                        "event member `{}`: btf_enum and name_field go together",
                        member.name
                    ));
                }
                if let Some(field) = member.name_field.as_deref().filter(|f| !has_field(f)) {
                    return Err(format!(
                        "event member `{}`: name_field `{field}` is not a declared field",
                        member.name
                    ));
                }
                let known = !member.published()
                    || lengths.contains(&member.name.as_str())
                    || match member.role {
                        Role::Field => has_field(&member.name),
                        Role::Label => self.source.labels.contains(&member.name),
                        Role::Skip => true,
                    };
                if !known {
                    return Err(format!(
                        "event member `{}` is not a declared {} of the source",
                        member.name,
                        if member.role == Role::Label {
                            "label"
                        } else {
                            "field"
                        }
                    ));
                }
            }
        }
        let settable = self.settable_globals();
        if let Some(global) = self
            .needs
            .iter()
            .flat_map(|n| n.globals().iter().copied())
            .find(|g| settable.contains(g))
        {
            return Err(format!(
                "global `{global}` is set by the loader (needs), it cannot also be a tunable"
            ));
        }
        for hist in self.histogram.iter().chain(&self.counter) {
            if let Some(field) = std::iter::once(&hist.field)
                .chain(&hist.count_field)
                .find(|f| !has_field(f))
            {
                return Err(format!(
                    "map `{}` publishes undeclared field `{field}`",
                    hist.map
                ));
            }
        }
        if let Some(hist) = self.histogram.iter().find(|h| {
            h.slots.is_some()
                && (h.per_cpu_label.is_some()
                    || !matches!(h.key.as_slice(), [part] if part.c == CType::Unsigned(8)))
        }) {
            return Err(format!(
                "map `{}`: slots need a key of one u64 and no per_cpu_label",
                hist.map
            ));
        }
        if let Some(counter) = self.counter.iter().find(|c| c.slots.is_some()) {
            return Err(format!(
                "counter map `{}`: slots are for [[histogram]] maps",
                counter.map
            ));
        }
        if let Some(counter) = self.counter.iter().find(|c| c.count_field.is_some()) {
            return Err(format!(
                "counter map `{}`: count_field is for [[histogram]] maps",
                counter.map
            ));
        }
        Ok(())
    }

    /// Names a caller may set through the tunables of `Templates::load`.
    pub fn settable_globals(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .source
            .tunables
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        names.extend(self.global.iter().map(|g| g.name.as_str()));
        names.extend(self.hosts.iter().map(|h| h.global.as_str()));
        if self.event.is_some() {
            names.extend(EVENT_GLOBALS);
        }
        names
    }

    /// The per-container counts of the template: `(container label, count field)` of every
    /// histogram map keyed by a cgroup alone that publishes a `count_field`.
    pub fn container_counts(&self) -> Vec<(&str, &str)> {
        self.histogram
            .iter()
            .filter_map(|h| match (h.key.as_slice(), &h.count_field) {
                ([part], Some(field)) if part.format == KeyFormat::Cgroup => {
                    Some((part.label.as_str(), field.as_str()))
                }
                _ => None,
            })
            .collect()
    }

    /// Byte offsets of the event members and the record size (`None` without `[event]`).
    pub fn event_offsets(&self) -> Option<(Vec<usize>, usize)> {
        let event = self.event.as_ref()?;
        let types: Vec<CType> = event.fields.iter().map(|f| f.c).collect();
        Some(offsets(&types))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[source]
name = "bpf.demo"
mode = "stream"
labels = ["cpu"]
[[source.fields]]
name = "offtime"
type = "int"
dim = "time"
[[source.tunables]]
name = "threshold_ns"
field = "offtime"
op = ">"
[event]
fields = [ { name = "offtime", c = "u64" }, { name = "cpu", c = "u32", role = "label" } ]
[[attach]]
program = "p"
variants = [ { kind = "raw_tp", target = "softirq_entry", prog = "raw_tp_p" } ]
"#;

    #[test]
    fn parses_a_good_schema() {
        let schema = TemplateSchema::parse("demo", GOOD).unwrap();
        assert_eq!(schema.source.name, "bpf.demo");
        assert_eq!(schema.attach[0].variants[0].kind, AttachKind::RawTp);
        assert_eq!(schema.event_offsets(), Some((vec![0, 8], 16)));
        assert_eq!(
            schema.settable_globals(),
            vec!["threshold_ns", "rate_per_sec", "burst"]
        );
    }

    #[test]
    fn rejects_mistakes_with_the_place() {
        let err = TemplateSchema::parse("other", GOOD).unwrap_err();
        assert!(
            err.contains("other/schema.toml") && err.contains("bpf.other"),
            "{err}"
        );
        let bad_type = GOOD.replace("c = \"u64\"", "c = \"u65\"");
        let err = TemplateSchema::parse("demo", &bad_type).unwrap_err();
        assert!(err.contains("u65"), "{err}");
        let unknown_member = GOOD.replace("{ name = \"offtime\", c", "{ name = \"offtme\", c");
        let err = TemplateSchema::parse("demo", &unknown_member).unwrap_err();
        assert!(err.contains("offtme"), "{err}");
        let bad_kind = GOOD.replace("raw_tp\"", "uprobe\"");
        assert!(TemplateSchema::parse("demo", &bad_kind).is_err());
    }

    #[test]
    fn count_field_is_declared_and_only_on_histograms() {
        let with_fields = GOOD.replace(
            "[[source.tunables]]",
            "[[source.fields]]\nname = \"lat\"\ntype = \"hist\"\n\
             [[source.fields]]\nname = \"n\"\ntype = \"int\"\n[[source.tunables]]",
        );
        let hist = format!(
            "{with_fields}[[histogram]]\nmap = \"h\"\nfield = \"lat\"\ncount_field = \"n\"\n"
        );
        let schema = TemplateSchema::parse("demo", &hist).unwrap();
        assert_eq!(schema.histogram[0].count_field.as_deref(), Some("n"));
        let undeclared = hist.replace("count_field = \"n\"", "count_field = \"m\"");
        let err = TemplateSchema::parse("demo", &undeclared).unwrap_err();
        assert!(err.contains("undeclared field `m`"), "{err}");
        let counter =
            format!("{with_fields}[[counter]]\nmap = \"c\"\nfield = \"n\"\ncount_field = \"n\"\n");
        let err = TemplateSchema::parse("demo", &counter).unwrap_err();
        assert!(err.contains("count_field is for [[histogram]]"), "{err}");
    }

    #[test]
    fn slots_only_before_a_hash_keyed_by_one_u64() {
        let with_fields = GOOD.replace(
            "[[source.tunables]]",
            "[[source.fields]]\nname = \"lat\"\ntype = \"hist\"\n\
             [[source.fields]]\nname = \"n\"\ntype = \"int\"\n[[source.tunables]]",
        );
        let hist = format!(
            "{with_fields}[[histogram]]\nmap = \"h\"\nslots = \"s\"\nfield = \"lat\"\n\
             key = [{{ label = \"container_id\", c = \"u64\", format = \"cgroup\" }}]\n"
        );
        let schema = TemplateSchema::parse("demo", &hist).unwrap();
        assert_eq!(schema.histogram[0].slots.as_deref(), Some("s"));
        let narrow = hist.replace("c = \"u64\", format", "c = \"u32\", format");
        let err = TemplateSchema::parse("demo", &narrow).unwrap_err();
        assert!(err.contains("slots need a key of one u64"), "{err}");
        let per_cpu = format!("{hist}per_cpu_label = \"cpu\"\n");
        let err = TemplateSchema::parse("demo", &per_cpu).unwrap_err();
        assert!(err.contains("slots need a key of one u64"), "{err}");
        let counter = format!(
            "{with_fields}[[counter]]\nmap = \"c\"\nslots = \"s\"\nfield = \"n\"\n\
             key = [{{ label = \"container_id\", c = \"u64\", format = \"cgroup\" }}]\n"
        );
        let err = TemplateSchema::parse("demo", &counter).unwrap_err();
        assert!(err.contains("slots are for [[histogram]]"), "{err}");
    }

    #[test]
    fn companions_and_requirements() {
        let with = GOOD.replace(
            "prog = \"raw_tp_p\" }",
            "prog = \"raw_tp_p\", requires = [\"sched_info\"], with = [\"q\"] }",
        );
        let companion = format!(
            "{with}[[attach]]\nprogram = \"q\"\ncompanion = true\n\
             variants = [ {{ kind = \"raw_tp\", target = \"sched_wakeup\", prog = \"raw_tp_q\" }} ]\n"
        );
        let schema = TemplateSchema::parse("demo", &companion).unwrap();
        assert_eq!(
            schema.attach[0].variants[0].requires,
            [Requirement::SchedInfo]
        );
        assert!(schema.attach[1].companion);
        let err = TemplateSchema::parse("demo", &with).unwrap_err();
        assert!(err.contains("`q`, which is not a companion"), "{err}");
        let orphan = companion.replace(", with = [\"q\"]", "");
        let err = TemplateSchema::parse("demo", &orphan).unwrap_err();
        assert!(
            err.contains("companion `q` is named in no variant"),
            "{err}"
        );
        let unknown = with.replace("sched_info", "sched_magic");
        assert!(TemplateSchema::parse("demo", &unknown).is_err());
    }
}
