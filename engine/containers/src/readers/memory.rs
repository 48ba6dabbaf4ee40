//! `cgroup.memory_stat` (memory.stat as open fields) and `cgroup.memory_events`
//! (memory.events).
//!
//! On cgroup v1 there is no memory.events: `max` is `memory.failcnt` (times the limit was
//! hit) and `oom_kill` comes from `memory.oom_control` (kernel 4.13+); `low`, `high`, `oom`
//! and `oom_group_kill` have no v1 counterpart and are absent. On v2 every key of memory.events
//! is published: kernels with memcg watermark reclaim add `watermark_inc` and `watermark_dec`,
//! which HUATUO's `[MetricCollector.MemoryEvents] Included` selects.

use super::{field, int, one, schema, Ctx, Entity};
use crate::cgroupfs::{read_kv, read_u64, FsError};
use crate::container::Container;
use huatuo_dsl::catalog::{FieldType, SourceSchema};
use huatuo_dsl::units::Dim;
use std::collections::BTreeMap;

/// memory.stat keys that count events or pages rather than bytes (v1 adds a `total_` form).
const COUNT_KEYS: &[&str] = &[
    "pgfault",
    "pgmajfault",
    "pgpgin",
    "pgpgout",
    "pgrefill",
    "pgscan",
    "pgsteal",
    "pgscan_kswapd",
    "pgscan_direct",
    "pgscan_khugepaged",
    "pgsteal_kswapd",
    "pgsteal_direct",
    "pgsteal_khugepaged",
    "pgactivate",
    "pgdeactivate",
    "pglazyfree",
    "pglazyfreed",
    "workingset_refault",
    "workingset_refault_anon",
    "workingset_refault_file",
    "workingset_activate",
    "workingset_activate_anon",
    "workingset_activate_file",
    "workingset_restore",
    "workingset_restore_anon",
    "workingset_restore_file",
    "workingset_nodereclaim",
    "thp_fault_alloc",
    "thp_collapse_alloc",
    "zswpin",
    "zswpout",
];

/// The memory.events keys `cgroup.memory_events` names in its schema (any other key of the
/// file is published too, as a count).
const EVENT_KEYS: &[&str] = &[
    "low",
    "high",
    "max",
    "oom",
    "oom_kill",
    "oom_group_kill",
    "watermark_inc",
    "watermark_dec",
];

/// Schema of `cgroup.memory_stat`: known count keys, everything else bytes.
pub(crate) fn memory_stat_schema() -> SourceSchema {
    let mut fields = Vec::new();
    for key in COUNT_KEYS {
        fields.push(field(
            key,
            FieldType::Int,
            Dim::Count,
            "memory.stat counter",
        ));
        let total = format!("total_{key}");
        fields.push(field(
            &total,
            FieldType::Int,
            Dim::Count,
            "memory.stat counter (v1, hierarchical)",
        ));
    }
    let mut s = schema(
        "cgroup.memory_stat",
        "container memory.stat; sizes in bytes, event counters as counts",
        fields,
    );
    s.open_fields = Some(field("", FieldType::Int, Dim::Bytes, "memory.stat size"));
    s
}

/// Schema of `cgroup.memory_events`.
pub(crate) fn memory_events_schema() -> SourceSchema {
    let describe = |k: &str| match k {
        "low" => "reclaims below memory.low (v2 only)",
        "high" => "throttling over memory.high (v2 only)",
        "max" => "times usage reached the limit (v1: memory.failcnt)",
        "oom" => "times the OOM path was entered (v2 only)",
        "oom_kill" => "processes killed by the OOM killer",
        "oom_group_kill" => "OOM group kills (v2 only)",
        "watermark_inc" => "memcg watermark raised (kernels with memcg watermark reclaim; v2)",
        _ => "memcg watermark lowered (kernels with memcg watermark reclaim; v2)",
    };
    let mut s = schema(
        "cgroup.memory_events",
        "container memory events (memory.events; v1 derives max and oom_kill)",
        EVENT_KEYS
            .iter()
            .map(|k| field(k, FieldType::Int, Dim::Count, describe(k)))
            .collect(),
    );
    s.open_fields = Some(field(
        "",
        FieldType::Int,
        Dim::Count,
        "other memory.events counter of this kernel (v2)",
    ));
    s
}

/// Reads `cgroup.memory_stat` for one container: every key of memory.stat.
pub(crate) fn read_memory_stat(ctx: &Ctx<'_>, c: &Container) -> Result<Vec<Entity>, FsError> {
    let stat = read_kv(&ctx.file("memory", c, "memory.stat")?)?;
    Ok(one(stat.into_iter().map(|(k, v)| (k, int(v))).collect()))
}

/// Reads `cgroup.memory_events` for one container.
pub(crate) fn read_memory_events(ctx: &Ctx<'_>, c: &Container) -> Result<Vec<Entity>, FsError> {
    let mut fields = BTreeMap::new();
    if ctx.v2() {
        let events = read_kv(&ctx.file("memory", c, "memory.events")?)?;
        fields.extend(events.into_iter().map(|(k, v)| (k, int(v))));
    } else {
        if let Some(v) = read_u64(&ctx.file("memory", c, "memory.failcnt")?)? {
            fields.insert("max".to_string(), int(v));
        }
        let oom = read_kv(&ctx.file("memory", c, "memory.oom_control")?)?;
        if let Some(v) = oom.get("oom_kill") {
            fields.insert("oom_kill".to_string(), int(*v));
        }
    }
    Ok(one(fields))
}
