// SPDX-License-Identifier: GPL-2.0
/*
 * waitrate: on-demand CPU contention capture. While loaded, every sched_switch closes the
 * slice the outgoing task just ran on this CPU. When the target cgroup (`cgroup_id`) still
 * has runnable tasks queued on this CPU at that moment, and the outgoing task is not of the
 * target cgroup itself, the slice's length is added to `competitors` under (the outgoing
 * task's cgroup id, CPU): the CPU time that cgroup took while the target waited for it.
 *
 * The target's queue is read from the scheduler itself: its task group's cfs_rq on this CPU
 * (`h_nr_runnable`, or `h_nr_running` on kernels before 6.14), found from the task group of
 * any target task seen at a switch. Until one is seen, nothing is attributed. A slice belongs
 * to the target when its task's task group is the target's (one pointer compare; the cgroup
 * id of the outgoing task is read only for a slice that is attributed). A slice during
 * which the target started waiting counts whole (at most one scheduler slice too much).
 * Only the capture loads it, for its duration; no rule source of its own.
 */
#include "huatuo.h"

char LICENSE[] SEC("license") = "GPL";

/* The cgroup whose waits are attributed (v1 cpu controller's cgroup, or v2). */
volatile const __u64 cgroup_id = 0;

/* A competitor's time on one CPU. */
struct competitor_key {
	__u64 cgroup_id;
	__u32 cpu;
	__u32 pad;
};

/* CPU time taken (ns) and slices, per competing cgroup and CPU; bounded, full counts lost. */
struct competitor {
	__u64 ns;
	__u64 slices;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct competitor_key);
	__type(value, struct competitor);
} competitors SEC(".maps");

/* When the current slice on this CPU began (the previous switch). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} slice_start SEC(".maps");

/* The target cgroup's task group, once a target task was seen. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} target_group SEC(".maps");

/* Per CPU: the target group's cfs_rq on this CPU (fixed for a task group), found once. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} target_cfs SEC(".maps");

/* cfs_rq before 6.14 counted runnable tasks of the hierarchy in h_nr_running. */
struct cfs_rq___old {
	unsigned int h_nr_running;
} __attribute__((preserve_access_index));

/* Runnable tasks of the target's task group queued (or running) on `cpu`. */
static __always_inline __u32 target_queued(__u64 tg, __u32 cpu)
{
	struct cfs_rq *cfs = NULL, **rqs;
	__u32 zero = 0;
	__u64 *cached = bpf_map_lookup_elem(&target_cfs, &zero);

	if (!cached)
		return 0;
	cfs = (struct cfs_rq *)*cached;
	if (!cfs) {
		rqs = BPF_CORE_READ((struct task_group *)tg, cfs_rq);
		if (!rqs || bpf_probe_read_kernel(&cfs, sizeof(cfs), rqs + cpu) || !cfs)
			return 0;
		*cached = (__u64)cfs;
	}
	if (bpf_core_field_exists(cfs->h_nr_runnable))
		return BPF_CORE_READ(cfs, h_nr_runnable);
	return BPF_CORE_READ((struct cfs_rq___old *)cfs, h_nr_running);
}

/* A task's cgroup id and task group: by direct loads from a BTF pointer, else probe reads. */
#define TASK_CGROUP_ID(btf, task, subsys)                                                  \
	((btf) ? huatuo_task_cgroup_id_btf(task, subsys) : huatuo_task_cgroup_id(task, subsys))
#define TASK_READ(btf, task, field) ((btf) ? (__u64)(task)->field : (__u64)BPF_CORE_READ(task, field))

/*
 * One switch on this CPU, in the order of what it costs: the slice clock and the two array
 * lookups always; the target's queue (one read, its cfs_rq cached per CPU) only for a slice of
 * another task group; the outgoing task's cgroup id and the hash update only when the target
 * was waiting. The target's task group is learned from cgroup ids until it is known.
 */
static __always_inline void on_switch(struct task_struct *prev, struct task_struct *next,
				      bool btf)
{
	int cpu_id = bpf_core_enum_value(enum cgroup_subsys_id, cpu_cgrp_id);
	__u32 zero = 0, cpu = bpf_get_smp_processor_id();
	__u64 now = bpf_ktime_get_ns(), *start, *tg, since, group;
	struct competitor_key key = {};
	struct competitor *c, fresh = {};

	tg = bpf_map_lookup_elem(&target_group, &zero);
	start = bpf_map_lookup_elem(&slice_start, &zero);
	if (!tg || !start)
		return;
	since = *start;
	*start = now;
	if (!*tg) {
		if (TASK_CGROUP_ID(btf, prev, cpu_id) == cgroup_id)
			group = TASK_READ(btf, prev, sched_task_group);
		else if (TASK_CGROUP_ID(btf, next, cpu_id) == cgroup_id)
			group = TASK_READ(btf, next, sched_task_group);
		else
			return;
		*tg = group;
		return;
	}
	if (!since || now <= since || !TASK_READ(btf, prev, pid) ||
	    TASK_READ(btf, prev, sched_task_group) == *tg || !target_queued(*tg, cpu))
		return;
	key.cgroup_id = TASK_CGROUP_ID(btf, prev, cpu_id);
	key.cpu = cpu;
	c = bpf_map_lookup_elem(&competitors, &key);
	if (c) {
		__sync_fetch_and_add(&c->ns, now - since);
		__sync_fetch_and_add(&c->slices, 1);
	} else {
		fresh.ns = now - since;
		fresh.slices = 1;
		if (bpf_map_update_elem(&competitors, &key, &fresh, BPF_NOEXIST))
			huatuo_count(HUATUO_CNT_LOST);
	}
}

SEC("tp_btf/sched_switch")
int BPF_PROG(tp_btf_sched_switch, bool preempt, struct task_struct *prev,
	     struct task_struct *next)
{
	on_switch(prev, next, true);
	return 0;
}

SEC("raw_tp/sched_switch")
int BPF_PROG(raw_tp_sched_switch, bool preempt, struct task_struct *prev,
	     struct task_struct *next)
{
	on_switch(prev, next, false);
	return 0;
}

/* The classic tracepoint passes no task pointers: `prev` is still the current task, `next`
 * is looked up by pid. */
SEC("tracepoint/sched/sched_switch")
int tp_sched_switch(struct trace_event_raw_sched_switch *ctx)
{
	struct task_struct *prev = (struct task_struct *)bpf_get_current_task();

	/* Without `next` only the outgoing side is known: the target's group is learned when
	 * one of its tasks leaves a CPU. */
	on_switch(prev, prev, false);
	return 0;
}
