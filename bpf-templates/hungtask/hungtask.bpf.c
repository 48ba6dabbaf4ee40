// SPDX-License-Identifier: GPL-2.0
/*
 * hungtask: sched:sched_process_hang, raised by khungtaskd for a task blocked in D state
 * longer than kernel.hung_task_timeout_secs. The event carries the hung task's pid, comm and
 * its own kernel stack (bpf_get_task_stack on the BTF-typed task; the raw tracepoint
 * variant cannot pass an untyped task to that helper and reports no stack).
 */
#include "huatuo.h"

#define HUNG_STACK_DEPTH 32

struct hung_event {
	u64 stack[HUNG_STACK_DEPTH];
	u32 pid;
	u32 tid;
	u32 stack_len;
	u32 _pad;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct hung_event);
} hung_scratch SEC(".maps");

static __always_inline struct hung_event *fill(struct task_struct *task)
{
	u32 zero = 0;
	struct hung_event *e = bpf_map_lookup_elem(&hung_scratch, &zero);

	if (!e)
		return 0;
	e->pid = BPF_CORE_READ(task, tgid);
	e->tid = BPF_CORE_READ(task, pid);
	e->stack_len = 0;
	BPF_CORE_READ_STR_INTO(&e->comm, task, comm);
	return e;
}

SEC("tp_btf/sched_process_hang")
int BPF_PROG(tp_btf_sched_process_hang, struct task_struct *task)
{
	struct hung_event *e = fill(task);
	long n;

	if (!e)
		return 0;
	n = bpf_get_task_stack(task, e->stack, sizeof(e->stack), 0);
	e->stack_len = n > 0 ? n / sizeof(u64) : 0;
	HUATUO_EVENT_OUTPUT(ctx, e, sizeof(*e));
	return 0;
}

SEC("raw_tp/sched_process_hang")
int raw_tp_sched_process_hang(struct bpf_raw_tracepoint_args *ctx)
{
	struct hung_event *e = fill((struct task_struct *)((u64 *)ctx)[0]);

	if (!e)
		return 0;
	HUATUO_EVENT_OUTPUT(ctx, e, sizeof(*e));
	return 0;
}
