//! The waitrate capture's record value: competing cgroups named as containers.

use huatuo_bpf::waitrate::Contention;
use serde_json::{json, Value};

/// `[{container_id, container_hostname, cgroup_id, cpu_time, slices, cpus}]`, most CPU time
/// first; `container` names a cgroup id's container as (id, hostname) (none: the host's own
/// tasks or a cgroup that is no container, written with an empty id).
pub fn competitors_json(
    contention: &Contention,
    container: impl Fn(u64) -> Option<(String, String)>,
) -> Value {
    let competitors: Vec<Value> = contention
        .competitors
        .iter()
        .map(|c| {
            let (id, hostname) = container(c.cgroup_id).unwrap_or_default();
            json!({
                "container_id": id,
                "container_hostname": hostname,
                "cgroup_id": c.cgroup_id,
                "cpu_time": c.cpu_time_ns,
                "slices": c.slices,
                "cpus": c.cpus,
            })
        })
        .collect();
    Value::Array(competitors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use huatuo_bpf::waitrate::Competitor;

    #[test]
    fn competitors_keep_their_rank_and_name_known_containers() {
        let contention = Contention {
            competitors: vec![
                Competitor {
                    cgroup_id: 42,
                    cpu_time_ns: 900,
                    slices: 3,
                    cpus: vec![0, 1],
                },
                Competitor {
                    cgroup_id: 1,
                    cpu_time_ns: 100,
                    slices: 1,
                    cpus: vec![1],
                },
            ],
            lost: 0,
        };
        let named = |id: u64| (id == 42).then(|| ("abc".to_string(), "rival".to_string()));
        assert_eq!(
            competitors_json(&contention, named),
            json!([
                {"container_id": "abc", "container_hostname": "rival", "cgroup_id": 42,
                 "cpu_time": 900, "slices": 3, "cpus": [0, 1]},
                {"container_id": "", "container_hostname": "", "cgroup_id": 1,
                 "cpu_time": 100, "slices": 1, "cpus": [1]},
            ])
        );
    }
}
