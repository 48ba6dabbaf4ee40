// SPDX-License-Identifier: GPL-2.0
/*
 * Bench baselines on sched_switch, runqlat's hottest hook: an empty program, and one that
 * does nothing but load the incoming task's run queue stamp (`sched_info.last_queued`, the
 * one field of `next` runqlat reads), to tell what that load costs from what the rest does.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

SEC("tp_btf/sched_switch")
int BPF_PROG(tp_btf_sched_switch_empty)
{
	return 0;
}

/* The load's value decides the return value, so the compiler keeps the load. */
SEC("tp_btf/sched_switch")
int BPF_PROG(tp_btf_sched_switch_load_queued, bool preempt, struct task_struct *prev,
	     struct task_struct *next)
{
	return next->sched_info.last_queued == 1;
}

/* runqlat's run queue clock alone: the outgoing task's cfs_rq, its rq, the rq's clock. */
SEC("tp_btf/sched_switch")
int BPF_PROG(tp_btf_sched_switch_load_clock, bool preempt, struct task_struct *prev,
	     struct task_struct *next)
{
	struct cfs_rq *cfs = prev->se.cfs_rq;

	if (!cfs || !cfs->rq)
		return 0;
	return cfs->rq->clock == 1;
}

/* runqlat's cgroup chain alone: the incoming task's cpu cgroup and its level. */
SEC("tp_btf/sched_switch")
int BPF_PROG(tp_btf_sched_switch_load_cgroup, bool preempt, struct task_struct *prev,
	     struct task_struct *next)
{
	int subsys = bpf_core_enum_value(enum cgroup_subsys_id, cpu_cgrp_id);
	struct css_set *cset = next->cgroups;
	struct cgroup_subsys_state *css;

	if (!cset)
		return 0;
	css = cset->subsys[subsys];
	if (!css || !css->cgroup)
		return 0;
	return css->cgroup->level == 1;
}

/*
 * The two parts of the softirq templates' work, apart, on any hook (they read no argument):
 * a per-CPU value updated with no clock read, and the same value set from the clock
 * (bpf_ktime_get_ns), the read softirq_latency does at every raise and entry.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} per_cpu_value SEC(".maps");

static __always_inline __u64 *per_cpu_slot(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&per_cpu_value, &zero);
}

SEC("tp_btf/softirq_raise")
int BPF_PROG(tp_btf_per_cpu_store)
{
	__u64 *value = per_cpu_slot();

	if (value)
		*value += 1;
	return 0;
}

SEC("tp_btf/softirq_raise")
int BPF_PROG(tp_btf_per_cpu_clock)
{
	__u64 *value = per_cpu_slot();

	if (value)
		*value = bpf_ktime_get_ns();
	return 0;
}
