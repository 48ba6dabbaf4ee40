//! Reads a template's histogram maps (`[[histogram]]` in schema.toml) into samples: one per
//! entity (labels from the map key, or per CPU), each histogram published as its field.

use crate::cgroup::CgroupResolver;
use crate::decode::dev_text;
use crate::hist::{add_into, to_histogram, SLOTS};
use crate::layout::{offsets, CType, Raw};
use crate::schema::{HistogramMap, KeyFormat, KeyPart, TemplateSchema};
use aya::maps::{Array, HashMap, Map, MapData, PerCpuArray, PerCpuHashMap};
use aya::Ebpf;
use huatuo_dsl::value::{Sample, Value};
use std::collections::BTreeMap;

type Slots = [u64; SLOTS];

/// Raw entries of one map: key bytes and one value per CPU (one value for shared maps).
struct Entries {
    rows: Vec<(Vec<u8>, Vec<Slots>)>,
    per_cpu: bool,
}

/// Reads every histogram map of a loaded template into samples stamped `time_ns`.
pub fn read_histograms(
    schema: &TemplateSchema,
    ebpf: &Ebpf,
    resolver: &dyn CgroupResolver,
    time_ns: i64,
) -> Result<Vec<Sample>, String> {
    let mut samples: BTreeMap<BTreeMap<String, String>, Sample> = BTreeMap::new();
    for hist in &schema.histogram {
        let map = ebpf
            .map(&hist.map)
            .ok_or_else(|| format!("histogram map `{}` is not in the object", hist.map))?;
        let entries = read_entries(map, hist).map_err(|e| format!("map `{}`: {e}", hist.map))?;
        for (key, values) in entries.rows {
            let Some(labels) = key_labels(&hist.key, &key, resolver) else {
                continue;
            };
            let groups: Vec<(BTreeMap<String, String>, Slots)> =
                match (&hist.per_cpu_label, entries.per_cpu) {
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
                        let mut sum = [0u64; SLOTS];
                        for v in &values {
                            add_into(&mut sum, v);
                        }
                        vec![(labels, sum)]
                    }
                };
            for (labels, slots) in groups {
                let sample = samples.entry(labels.clone()).or_insert_with(|| Sample {
                    source: schema.source.name.clone(),
                    time_ns,
                    labels,
                    fields: BTreeMap::new(),
                });
                sample
                    .fields
                    .insert(hist.field.clone(), Value::Hist(to_histogram(&slots)));
            }
        }
    }
    Ok(samples.into_values().collect())
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

fn read_entries(map: &Map, hist: &HistogramMap) -> Result<Entries, String> {
    let err = |e: aya::maps::MapError| e.to_string();
    match map {
        Map::Array(_) | Map::PerCpuArray(_) => {
            let indexed = !hist.key.is_empty();
            if indexed && (hist.key.len() != 1 || hist.key[0].c != CType::Unsigned(4)) {
                return Err("an array's key must be one u32 index".into());
            }
            let mut rows = vec![];
            if let Map::PerCpuArray(_) = map {
                let array: PerCpuArray<&MapData, Slots> =
                    PerCpuArray::try_from(map).map_err(err)?;
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
            let array: Array<&MapData, Slots> = Array::try_from(map).map_err(err)?;
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
            let types: Vec<CType> = hist.key.iter().map(|p| p.c).collect();
            let (_, size) = offsets(&types);
            match size {
                4 => hash_entries::<4>(map),
                8 => hash_entries::<8>(map),
                12 => hash_entries::<12>(map),
                16 => hash_entries::<16>(map),
                24 => hash_entries::<24>(map),
                32 => hash_entries::<32>(map),
                other => Err(format!("unsupported hash key size {other} bytes")),
            }
        }
    }
}

fn hash_entries<const N: usize>(map: &Map) -> Result<Entries, String> {
    let err = |e: aya::maps::MapError| e.to_string();
    match map {
        Map::HashMap(_) | Map::LruHashMap(_) => {
            let hash: HashMap<&MapData, [u8; N], Slots> = HashMap::try_from(map).map_err(err)?;
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
            let hash: PerCpuHashMap<&MapData, [u8; N], Slots> =
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
