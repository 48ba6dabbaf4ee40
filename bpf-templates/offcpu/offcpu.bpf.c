// SPDX-License-Identifier: GPL-2.0
/*
 * offcpu: on-demand off-CPU profile. At sched_switch the outgoing task (still the current
 * task) has its kernel and user stacks taken and its switch-out time stamped in `start`,
 * keyed by thread id; when that thread is switched back in, the time it spent off the CPU
 * (microseconds) is added to `counts` under (cgroup, process id, comm, kernel stack, user
 * stack, whether it was preempted: run-queue wait rather than blocked time) when at least
 * `profile_filter.min_us`.
 * Stacks live in the stack map `stacks`. Same `counts`/`stacks` layout as the `profiler`
 * template, so user space reads both alike; only an operation loads it, never a rule.
 * Optional filter: only tasks of one cgroup (`profile_filter.cgroup_id`, the v1 cpu controller's cgroup,
 * or the v2 cgroup with `cgroup_v2` = 1); 0 records every task.
 */
#include "huatuo.h"
#include "profile_maps.h"

char LICENSE[] SEC("license") = "GPL";

/* A switched-out thread: when, and where (its process and stacks) it left the CPU. */
struct switched_out {
	u64 ts;
	struct profile_key key;
};

/* LRU: threads that exited while switched out are evicted first when the map fills. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, u32);
	__type(value, struct switched_out);
} start SEC(".maps");

/* `prev` (the current task) leaves the CPU: stamp it with its stacks. */
static __always_inline void switch_out(void *ctx, u32 tid, struct task_struct *prev,
				       bool preempt)
{
	struct switched_out out = {};

	if (!tid)
		return;
	out.key.cgroup = huatuo_task_cgroup_id(prev, bpf_core_enum_value(enum cgroup_subsys_id,
									 cpu_cgrp_id));
	if (profile_filter.cgroup_id && out.key.cgroup != profile_filter.cgroup_id)
		return;
	out.key.runnable = preempt;
	out.ts = bpf_ktime_get_ns();
	out.key.pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(out.key.comm, sizeof(out.key.comm));
	out.key.kstack = bpf_get_stackid(ctx, &stacks, 0);
	out.key.ustack = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);
	if (bpf_map_update_elem(&start, &tid, &out, BPF_ANY))
		huatuo_count(HUATUO_CNT_MAP_FULL);
}

/* Thread `tid` comes back on a CPU: add its time away to its stacks' total. */
static __always_inline void switch_in(u32 tid)
{
	struct switched_out *out;
	u64 us, *total;

	out = bpf_map_lookup_elem(&start, &tid);
	if (!out)
		return;
	us = (bpf_ktime_get_ns() - out->ts) / 1000;
	if (us && us >= profile_filter.min_us) {
		total = bpf_map_lookup_elem(&counts, &out->key);
		if (total)
			__sync_fetch_and_add(total, us);
		else if (bpf_map_update_elem(&counts, &out->key, &us, BPF_NOEXIST))
			huatuo_count(HUATUO_CNT_LOST);
	}
	bpf_map_delete_elem(&start, &tid);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(tp_btf_sched_switch, bool preempt, struct task_struct *prev,
	     struct task_struct *next)
{
	switch_out(ctx, prev->pid, prev, preempt);
	switch_in(next->pid);
	return 0;
}

SEC("raw_tp/sched_switch")
int BPF_PROG(raw_tp_sched_switch, bool preempt, struct task_struct *prev,
	     struct task_struct *next)
{
	switch_out(ctx, BPF_CORE_READ(prev, pid), prev, preempt);
	switch_in(BPF_CORE_READ(next, pid));
	return 0;
}

/* The classic tracepoint passes no task pointers: `prev` is still the current task; its
 * prev_state does not tell preemption apart, so every stretch counts as blocked. */
SEC("tracepoint/sched/sched_switch")
int tp_sched_switch(struct trace_event_raw_sched_switch *ctx)
{
	switch_out(ctx, ctx->prev_pid, (struct task_struct *)bpf_get_current_task(), false);
	switch_in(ctx->next_pid);
	return 0;
}
