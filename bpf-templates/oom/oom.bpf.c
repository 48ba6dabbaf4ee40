// SPDX-License-Identifier: GPL-2.0
/*
 * oom: one event per OOM kill, from oom:mark_victim.
 *
 * The tracepoint fires in __oom_kill_process() in the context of the task that ran the OOM
 * killer, i.e. the task whose allocation failed: `current` is the trigger, the argument is
 * the victim. Kernels >= 6.8 pass the victim task (tp_btf/raw_tp read it directly); older
 * kernels pass only the victim pid (the classic tracepoint variant, comm from the record
 * when the kernel has it). Both memcgs are reported as cgroup ids (v1 memory controller, or
 * the v2 cgroup when `cgroup_v2` = 1) so user space resolves them to containers, and by the
 * kernel address of their memory cgroup state (`*_memcg_css`, 0 on the classic tracepoint
 * for the victim, which it names by pid only). Each task's cgroup in the hierarchy container
 * discovery indexes (the v1 cpu controller, or the v2 cgroup) names its container: the
 * victim's becomes the record's container, both are published as `victim_container_*` and
 * `trigger_container_*`.
 */
#include "huatuo.h"

struct oom_event {
	u64 victim_cgroup_id;
	u64 trigger_cgroup_id;
	u64 victim_cpu_cgroup_id;
	u64 trigger_cpu_cgroup_id;
	u64 victim_memcg_css;
	u64 trigger_memcg_css;
	u32 victim_pid;
	u32 trigger_pid;
	char victim_comm[16];
	char trigger_comm[16];
};

static __always_inline int memcg_subsys(void)
{
	return bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);
}

static __always_inline int cpu_subsys(void)
{
	return bpf_core_enum_value(enum cgroup_subsys_id, cpu_cgrp_id);
}

/* The kernel address of the task's memory cgroup state (its memcg's css), as HUATUO reports it. */
static __always_inline u64 memcg_css(struct task_struct *task)
{
	return (u64)BPF_CORE_READ(task, cgroups, subsys[memcg_subsys()]);
}

static __always_inline void fill_trigger(struct oom_event *e)
{
	struct task_struct *cur = (struct task_struct *)bpf_get_current_task();

	e->trigger_pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e->trigger_comm, sizeof(e->trigger_comm));
	e->trigger_cgroup_id = huatuo_task_cgroup_id(cur, memcg_subsys());
	e->trigger_cpu_cgroup_id = huatuo_task_cgroup_id(cur, cpu_subsys());
	e->trigger_memcg_css = memcg_css(cur);
}

static __always_inline int emit_task_victim(void *ctx, struct task_struct *victim)
{
	struct oom_event e = {};

	e.victim_pid = BPF_CORE_READ(victim, tgid);
	BPF_CORE_READ_STR_INTO(&e.victim_comm, victim, comm);
	e.victim_cgroup_id = huatuo_task_cgroup_id(victim, memcg_subsys());
	e.victim_cpu_cgroup_id = huatuo_task_cgroup_id(victim, cpu_subsys());
	e.victim_memcg_css = memcg_css(victim);
	fill_trigger(&e);
	HUATUO_EVENT_OUTPUT(ctx, &e, sizeof(e));
	return 0;
}

/* >= 6.8: mark_victim(struct task_struct *task, uid_t uid) */
SEC("tp_btf/mark_victim")
int BPF_PROG(tp_btf_mark_victim, struct task_struct *victim)
{
	return emit_task_victim(ctx, victim);
}

SEC("raw_tp/mark_victim")
int raw_tp_mark_victim(struct bpf_raw_tracepoint_args *ctx)
{
	return emit_task_victim(ctx, (struct task_struct *)((u64 *)ctx)[0]);
}

/* Any kernel with tracefs: the record has the victim pid (and comm on >= 6.8). */
struct trace_event_raw_mark_victim___compat {
	int pid;
	u32 __data_loc_comm;
} __attribute__((preserve_access_index));

SEC("tracepoint/oom/mark_victim")
int tp_mark_victim(struct trace_event_raw_mark_victim___compat *ctx)
{
	struct oom_event e = {};

	e.victim_pid = BPF_CORE_READ(ctx, pid);
	if (bpf_core_field_exists(ctx->__data_loc_comm)) {
		u32 loc = BPF_CORE_READ(ctx, __data_loc_comm);
		bpf_probe_read_kernel_str(e.victim_comm, sizeof(e.victim_comm),
					  (void *)ctx + (loc & 0xffff));
	}
	fill_trigger(&e);
	HUATUO_EVENT_OUTPUT(ctx, &e, sizeof(e));
	return 0;
}
