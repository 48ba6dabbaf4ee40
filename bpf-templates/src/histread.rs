//! Reads a template's scrape-time maps (`[[histogram]]` and `[[counter]]` in schema.toml)
//! into samples: one per entity (labels from the map key, or per CPU), each map published
//! as its field (`Value::Hist` or `Value::Int`), and a histogram's number of observations
//! as its `count_field` (`Value::Int`) when the schema names one. A hash with a slot table
//! (`slots`) is read with it, summed per key.

use crate::cgroup::CgroupResolver;
use crate::decode::dev_text;
use crate::hist::{add_into, to_histogram, SLOTS};
use crate::layout::{offsets, CType, Raw};
use crate::schema::{HistogramMap, KeyFormat, KeyPart, TemplateSchema};
use crate::slots::{free_slots, read_slots, SlotEviction};
use aya::maps::{Array, HashMap, Map, MapData, PerCpuArray, PerCpuHashMap};
use aya::{Ebpf, Pod};
use huatuo_dsl::value::{Sample, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

type Slots = [u64; SLOTS];

/// Raw entries of one map: key bytes and one value per CPU (one value for shared maps).
struct Entries<V> {
    rows: Vec<(Vec<u8>, Vec<V>)>,
    per_cpu: bool,
}

/// A map value that can be summed over CPUs and published as a field.
trait MapValue: Pod + Copy {
    fn zero() -> Self;
    fn add(&mut self, other: &Self);
    fn value(&self) -> Value;
    /// The number of observations (histograms only), for `count_field`.
    fn count(&self) -> Option<i64>;
}

impl MapValue for Slots {
    fn zero() -> Self {
        [0; SLOTS]
    }
    fn add(&mut self, other: &Self) {
        add_into(self, other);
    }
    fn value(&self) -> Value {
        Value::Hist(to_histogram(self))
    }
    fn count(&self) -> Option<i64> {
        Some(self.iter().fold(0u64, |n, c| n.wrapping_add(*c)) as i64)
    }
}

impl MapValue for u64 {
    fn zero() -> Self {
        0
    }
    fn add(&mut self, other: &Self) {
        *self = self.wrapping_add(*other);
    }
    fn value(&self) -> Value {
        Value::Int(*self as i64)
    }
    fn count(&self) -> Option<i64> {
        None
    }
}

type Merged = BTreeMap<BTreeMap<String, String>, Sample>;

/// How one template's maps are read: who is a container, which slots to free, the time.
pub struct ReadContext<'a> {
    /// Attributes cgroup keys to containers.
    pub resolver: &'a dyn CgroupResolver,
    /// Slot owners unpublished across reads (slot tables only).
    pub eviction: &'a mut SlotEviction,
    /// Stamp of the samples.
    pub time_ns: i64,
}

/// Reads every histogram and counter map of a loaded template into samples stamped
/// `ctx.time_ns`. Maps of programs that did not attach read as zeros.
pub fn read_histograms(
    schema: &TemplateSchema,
    ebpf: &Ebpf,
    ctx: &mut ReadContext,
) -> Result<Vec<Sample>, String> {
    let mut samples = Merged::new();
    for hist in &schema.histogram {
        read_map::<Slots>(schema, ebpf, hist, ctx, &mut samples)?;
    }
    for counter in &schema.counter {
        read_map::<u64>(schema, ebpf, counter, ctx, &mut samples)?;
    }
    Ok(samples.into_values().collect())
}

fn read_map<V: MapValue>(
    schema: &TemplateSchema,
    ebpf: &Ebpf,
    spec: &HistogramMap,
    ctx: &mut ReadContext,
    samples: &mut Merged,
) -> Result<(), String> {
    let (resolver, time_ns) = (ctx.resolver, ctx.time_ns);
    let map = ebpf
        .map(&spec.map)
        .ok_or_else(|| format!("map `{}` is not in the object", spec.map))?;
    let mut entries =
        read_entries::<V>(map, spec).map_err(|e| format!("map `{}`: {e}", spec.map))?;
    if let Some(table) = &spec.slots {
        let name = format!("{}/{table}", schema.source.name);
        let slots = ebpf
            .map(table)
            .ok_or_else(|| format!("map `{table}` is not in the object"))?;
        entries = with_slots(entries, slots, &name, spec, ctx)
            .map_err(|e| format!("map `{table}`: {e}"))?;
    }
    for (key, values) in entries.rows {
        let Some(labels) = key_labels(&spec.key, &key, resolver) else {
            continue;
        };
        let groups: Vec<(BTreeMap<String, String>, V)> =
            match (&spec.per_cpu_label, entries.per_cpu) {
                (Some(cpu_label), true) => values
                    .iter()
                    .enumerate()
                    .map(|(cpu, v)| {
                        let mut l = labels.clone();
                        l.insert(cpu_label.clone(), cpu.to_string());
                        (l, *v)
                    })
                    .collect(),
                _ => {
                    let mut sum = V::zero();
                    for v in &values {
                        sum.add(v);
                    }
                    vec![(labels, sum)]
                }
            };
        for (labels, value) in groups {
            let sample = samples.entry(labels.clone()).or_insert_with(|| Sample {
                source: schema.source.name.clone(),
                time_ns,
                labels,
                fields: BTreeMap::new(),
            });
            sample.fields.insert(spec.field.clone(), value.value());
            if let (Some(field), Some(n)) = (&spec.count_field, value.count()) {
                sample.fields.insert(field.clone(), Value::Int(n));
            }
        }
    }
    Ok(())
}

/// The `entries` of a hash summed per key with the claimed slots of its slot table `slots`
/// (named `name` for the eviction state): one value per key. Frees the slots of keys
/// unpublished for the eviction's grace, as the reader does not publish them.
fn with_slots<V: MapValue>(
    entries: Entries<V>,
    slots: &Map,
    name: &str,
    spec: &HistogramMap,
    ctx: &mut ReadContext,
) -> Result<Entries<V>, String> {
    let mut sums: BTreeMap<Vec<u8>, V> = BTreeMap::new();
    for (key, values) in entries.rows {
        let sum = sums.entry(key).or_insert_with(V::zero);
        for v in &values {
            sum.add(v);
        }
    }
    // Summed per key first: a key holds its slot on many CPUs, it is resolved once.
    let mut claimed: BTreeMap<u64, V> = BTreeMap::new();
    for (key, value) in read_slots::<V>(slots)? {
        claimed.entry(key).or_insert_with(V::zero).add(&value);
    }
    let mut unpublished = BTreeSet::new();
    for (key, value) in claimed {
        let bytes = key.to_ne_bytes().to_vec();
        if key_labels(&spec.key, &bytes, ctx.resolver).is_none() {
            unpublished.insert(key);
        }
        sums.entry(bytes).or_insert_with(V::zero).add(&value);
    }
    let due = ctx.eviction.due(name, &unpublished, Instant::now());
    if !due.is_empty() {
        if let Err(e) = free_slots(slots, &due, V::zero()) {
            log::warn!("map `{name}`: freeing the slots of {} keys: {e}", due.len());
        }
    }
    Ok(Entries {
        rows: sums.into_iter().map(|(k, v)| (k, vec![v])).collect(),
        per_cpu: false,
    })
}

/// Labels of one key, or `None` when the entry is not published (unknown enum value,
/// cgroup that is no container).
fn key_labels(
    parts: &[KeyPart],
    key: &[u8],
    resolver: &dyn CgroupResolver,
) -> Option<BTreeMap<String, String>> {
    let types: Vec<CType> = parts.iter().map(|p| p.c).collect();
    let (offs, _) = offsets(&types);
    let mut labels = BTreeMap::new();
    for (part, off) in parts.iter().zip(offs) {
        if part.label.starts_with('_') {
            continue; // padding
        }
        let value = match part.c.decode(key.get(off..)?)? {
            Raw::Unsigned(v) => v,
            Raw::Signed(v) => v as u64,
            Raw::Str(_) | Raw::Array(_) => return None,
        };
        let text = match part.format {
            KeyFormat::Int => value.to_string(),
            KeyFormat::Dev => dev_text(value),
            KeyFormat::Cgroup => resolver.container_id(value)?,
            KeyFormat::Enum => part.names.get(&value.to_string())?.clone(),
        };
        labels.insert(part.label.clone(), text);
    }
    Some(labels)
}

fn read_entries<V: MapValue>(map: &Map, spec: &HistogramMap) -> Result<Entries<V>, String> {
    let err = |e: aya::maps::MapError| e.to_string();
    match map {
        Map::Array(_) | Map::PerCpuArray(_) => {
            let indexed = !spec.key.is_empty();
            if indexed && (spec.key.len() != 1 || spec.key[0].c != CType::Unsigned(4)) {
                return Err("an array's key must be one u32 index".into());
            }
            let mut rows = vec![];
            if let Map::PerCpuArray(_) = map {
                let array: PerCpuArray<&MapData, V> = PerCpuArray::try_from(map).map_err(err)?;
                let len = if indexed { array.len() } else { 1 };
                for index in 0..len {
                    let values = array.get(&index, 0).map_err(err)?;
                    rows.push((
                        index.to_ne_bytes().to_vec(),
                        values.iter().copied().collect(),
                    ));
                }
                return Ok(Entries {
                    rows,
                    per_cpu: true,
                });
            }
            let array: Array<&MapData, V> = Array::try_from(map).map_err(err)?;
            let len = if indexed { array.len() } else { 1 };
            for index in 0..len {
                rows.push((
                    index.to_ne_bytes().to_vec(),
                    vec![array.get(&index, 0).map_err(err)?],
                ));
            }
            Ok(Entries {
                rows,
                per_cpu: false,
            })
        }
        _ => {
            let types: Vec<CType> = spec.key.iter().map(|p| p.c).collect();
            let (_, size) = offsets(&types);
            match size {
                4 => hash_entries::<4, V>(map),
                8 => hash_entries::<8, V>(map),
                12 => hash_entries::<12, V>(map),
                16 => hash_entries::<16, V>(map),
                24 => hash_entries::<24, V>(map),
                32 => hash_entries::<32, V>(map),
                other => Err(format!("unsupported hash key size {other} bytes")),
            }
        }
    }
}

fn hash_entries<const N: usize, V: MapValue>(map: &Map) -> Result<Entries<V>, String> {
    let err = |e: aya::maps::MapError| e.to_string();
    match map {
        Map::HashMap(_) | Map::LruHashMap(_) => {
            let hash: HashMap<&MapData, [u8; N], V> = HashMap::try_from(map).map_err(err)?;
            let rows = hash
                .iter()
                .filter_map(Result::ok)
                .map(|(k, v)| (k.to_vec(), vec![v]))
                .collect();
            Ok(Entries {
                rows,
                per_cpu: false,
            })
        }
        Map::PerCpuHashMap(_) | Map::PerCpuLruHashMap(_) => {
            let hash: PerCpuHashMap<&MapData, [u8; N], V> =
                PerCpuHashMap::try_from(map).map_err(err)?;
            let rows = hash
                .iter()
                .filter_map(Result::ok)
                .map(|(k, v)| (k.to_vec(), v.iter().copied().collect()))
                .collect();
            Ok(Entries {
                rows,
                per_cpu: true,
            })
        }
        _ => Err("not an array or hash map".into()),
    }
}
