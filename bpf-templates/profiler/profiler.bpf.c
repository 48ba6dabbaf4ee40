// SPDX-License-Identifier: GPL-2.0
/*
 * profiler: on-demand CPU profile. A CPU-clock perf event on every CPU (99 Hz by default)
 * counts samples per (cgroup, pid, comm, kernel stack, user stack) in `counts`; stacks live in the
 * stack map `stacks`. User space starts it for a duration, then reads, symbolizes and folds.
 * Optional filter: only samples of tasks in one cgroup (`profile_filter.cgroup_id`, the v1 cpu
 * controller's cgroup, or the v2 cgroup with `cgroup_v2` = 1); 0 samples everything.
 */
#include "huatuo.h"
#include "profile_maps.h"

SEC("perf_event")
int perf_profile(struct bpf_perf_event_data *ctx)
{
	struct profile_key key = {};
	u64 one = 1, *count;

	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	key.cgroup = huatuo_task_cgroup_id(task, bpf_core_enum_value(enum cgroup_subsys_id,
								      cpu_cgrp_id));
	if (profile_filter.cgroup_id && key.cgroup != profile_filter.cgroup_id)
		return 0;
	key.pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(key.comm, sizeof(key.comm));
	key.kstack = bpf_get_stackid(ctx, &stacks, 0);
	key.ustack = key.pid ? bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK) : -1;
	count = bpf_map_lookup_elem(&counts, &key);
	if (count)
		__sync_fetch_and_add(count, 1);
	else if (bpf_map_update_elem(&counts, &key, &one, BPF_NOEXIST))
		huatuo_count(HUATUO_CNT_LOST);
	return 0;
}
