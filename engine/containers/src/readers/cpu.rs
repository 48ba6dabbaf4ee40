//! `cgroup.cpu` (usage, user, system, cores) and `cgroup.cpu_stat` (throttling and
//! bursts).
//!
//! v1: `cpuacct.usage` (ns), `cpuacct.usage_user`/`usage_sys` (ns) or else `cpuacct.stat`
//! (USER_HZ ticks), `cpu.cfs_quota_us`/`cpu.cfs_period_us`, `cpu.stat` (ns).
//! v2: `cpu.stat` (`*_usec`), `cpu.max`.

use super::{field, int, one, schema, Ctx, Entity};
use crate::cgroupfs::{read_kv, read_text, read_u64, FsError};
use crate::container::Container;
use huatuo_dsl::catalog::{FieldType, SourceSchema};
use huatuo_dsl::units::Dim;
use huatuo_dsl::value::Value;
use std::collections::BTreeMap;

/// Nanoseconds per USER_HZ tick (USER_HZ is 100 on every Linux architecture).
const NS_PER_TICK: u64 = 10_000_000;

/// Schema of `cgroup.cpu`.
pub(crate) fn cpu_schema() -> SourceSchema {
    schema(
        "cgroup.cpu",
        "container CPU time (cumulative) and CPU limit",
        vec![
            field("usage", FieldType::Int, Dim::Time, "total CPU time used"),
            field("user", FieldType::Int, Dim::Time, "CPU time in user mode"),
            field(
                "system",
                FieldType::Int,
                Dim::Time,
                "CPU time in kernel mode",
            ),
            field(
                "cores",
                FieldType::Float,
                Dim::Count,
                "CPU limit in cores (quota/period), the host's CPUs when unlimited",
            ),
        ],
    )
}

/// Schema of `cgroup.cpu_stat`.
pub(crate) fn cpu_stat_schema() -> SourceSchema {
    schema(
        "cgroup.cpu_stat",
        "container CFS bandwidth statistics (cpu.stat); burst fields where the kernel has them",
        vec![
            field(
                "nr_periods",
                FieldType::Int,
                Dim::Count,
                "enforcement periods elapsed",
            ),
            field(
                "nr_throttled",
                FieldType::Int,
                Dim::Count,
                "periods throttled",
            ),
            field(
                "throttled_time",
                FieldType::Int,
                Dim::Time,
                "total time throttled",
            ),
            field(
                "nr_bursts",
                FieldType::Int,
                Dim::Count,
                "periods that used burst",
            ),
            field(
                "burst_time",
                FieldType::Int,
                Dim::Time,
                "time spent over quota in bursts",
            ),
        ],
    )
}

fn missing_key(path: &std::path::Path, key: &str) -> FsError {
    FsError::parse(path, format!("no `{key}` line"))
}

/// Reads `cgroup.cpu` for one container.
pub(crate) fn read_cpu(ctx: &Ctx<'_>, c: &Container) -> Result<Vec<Entity>, FsError> {
    let mut fields = BTreeMap::new();
    let (usage, user, system, cores) = if ctx.v2() {
        let path = ctx.file("cpu", c, "cpu.stat")?;
        let stat = read_kv(&path)?;
        let usec = |k: &str| {
            stat.get(k)
                .map(|v| v.saturating_mul(1000))
                .ok_or_else(|| missing_key(&path, k))
        };
        let max_path = ctx.file("cpu", c, "cpu.max")?;
        let cores = match read_text(&max_path) {
            Ok(text) => parse_cpu_max(&text).map_err(|m| FsError::parse(&max_path, m))?,
            // No cpu controller enabled for this cgroup: unlimited.
            Err(e) if e.missing => None,
            Err(e) => return Err(e),
        };
        (
            usec("usage_usec")?,
            usec("user_usec")?,
            usec("system_usec")?,
            cores,
        )
    } else {
        let usage = read_u64(&ctx.file("cpuacct", c, "cpuacct.usage")?)?.unwrap_or(0);
        let (user, system) = v1_user_system(ctx, c)?;
        let quota = read_u64(&ctx.file("cpu", c, "cpu.cfs_quota_us")?)?;
        let period = read_u64(&ctx.file("cpu", c, "cpu.cfs_period_us")?)?;
        let cores = match (quota, period) {
            (Some(q), Some(p)) if p > 0 => Some(q as f64 / p as f64),
            _ => None,
        };
        (usage, user, system, cores)
    };
    fields.insert("usage".to_string(), int(usage));
    fields.insert("user".to_string(), int(user));
    fields.insert("system".to_string(), int(system));
    fields.insert(
        "cores".to_string(),
        Value::Float(cores.unwrap_or(ctx.options.host_cpus)),
    );
    Ok(one(fields))
}

/// v1 user and system time: the ns counters when the kernel has them, else ticks.
fn v1_user_system(ctx: &Ctx<'_>, c: &Container) -> Result<(u64, u64), FsError> {
    let user_ns = read_u64(&ctx.file("cpuacct", c, "cpuacct.usage_user")?);
    let sys_ns = read_u64(&ctx.file("cpuacct", c, "cpuacct.usage_sys")?);
    match (user_ns, sys_ns) {
        (Ok(u), Ok(s)) => Ok((u.unwrap_or(0), s.unwrap_or(0))),
        (Err(e), _) | (_, Err(e)) if !e.missing => Err(e),
        _ => {
            let path = ctx.file("cpuacct", c, "cpuacct.stat")?;
            let stat = read_kv(&path)?;
            let ticks = |k: &str| {
                stat.get(k)
                    .map(|t| t.saturating_mul(NS_PER_TICK))
                    .ok_or_else(|| missing_key(&path, k))
            };
            Ok((ticks("user")?, ticks("system")?))
        }
    }
}

/// `cpu.max` is `"<quota|max> <period>"`: the limit in cores, `None` when unlimited.
fn parse_cpu_max(text: &str) -> Result<Option<f64>, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let [quota, period] = words[..] else {
        return Err(format!("expected `<quota|max> <period>`, found {text:?}"));
    };
    let period: f64 = period
        .parse()
        .ok()
        .filter(|p| *p > 0.0)
        .ok_or_else(|| format!("bad period {period:?}"))?;
    if quota == "max" {
        return Ok(None);
    }
    let quota: f64 = quota.parse().map_err(|_| format!("bad quota {quota:?}"))?;
    Ok(Some(quota / period))
}

/// Reads `cgroup.cpu_stat` for one container.
pub(crate) fn read_cpu_stat(ctx: &Ctx<'_>, c: &Container) -> Result<Vec<Entity>, FsError> {
    let stat = read_kv(&ctx.file("cpu", c, "cpu.stat")?)?;
    // (our field, v1 key, v2 key, multiplier of the v2 key to ns)
    let map: [(&str, &str, &str, u64); 5] = [
        ("nr_periods", "nr_periods", "nr_periods", 1),
        ("nr_throttled", "nr_throttled", "nr_throttled", 1),
        ("throttled_time", "throttled_time", "throttled_usec", 1000),
        ("nr_bursts", "nr_bursts", "nr_bursts", 1),
        ("burst_time", "burst_time", "burst_usec", 1000),
    ];
    let fields = map
        .iter()
        .filter_map(|(name, v1, v2, scale)| {
            let value = if ctx.v2() {
                stat.get(*v2)?.saturating_mul(*scale)
            } else {
                *stat.get(*v1)?
            };
            Some((name.to_string(), int(value)))
        })
        .collect();
    Ok(one(fields))
}

#[cfg(test)]
mod tests {
    use super::parse_cpu_max;

    #[test]
    fn cpu_max_forms() {
        assert_eq!(parse_cpu_max("200000 100000\n"), Ok(Some(2.0)));
        assert_eq!(parse_cpu_max("max 100000\n"), Ok(None));
        assert!(parse_cpu_max("garbage").is_err());
        assert!(parse_cpu_max("100 0").is_err());
    }
}
