// SPDX-License-Identifier: GPL-2.0
/*
 * softlockup: the soft lockup watchdog's report, from add_taint(TAINT_SOFTLOCKUP, ...).
 *
 * There is no tracepoint on the soft lockup path. kernel/watchdog.c watchdog_timer_fn(), the
 * per-CPU watchdog hrtimer, ends every report ("BUG: soft lockup - CPU#N stuck for Ns!
 * [comm:pid]", the registers or stack, the optional all-CPU backtrace) with
 *     add_taint(TAINT_SOFTLOCKUP, LOCKDEP_STILL_OK);
 * and then panics when softlockup_panic is set. The same in 4.18 through 6.x: 4.18..5.13 report
 * a lockup once per task (soft_watchdog_warn); 5.14+ report again every 2 * watchdog_thresh
 * seconds while it lasts (update_report_ts()), each report with its own add_taint. So a
 * probe on add_taint filtered on the flag fires once per report, on the stuck CPU, in its
 * hrtimer interrupt: `current` is the task that held the CPU and the kernel stack runs from
 * add_taint through the timer interrupt into the interrupted code. This is where HUATUO hooks
 * too (kprobe/add_taint, flag == TAINT_SOFTLOCKUP).
 *
 * TAINT_SOFTLOCKUP is a #define (include/linux/panic.h, kernel.h before 5.15), not in BTF:
 * 14 since it was added in 3.17. Other callers of add_taint with it: amdgpu taints 'L' once
 * at device init when loaded with lockup_timeout < 0 (watchdog disabled on purpose); that
 * record shows the modprobe task and amdgpu_device_get_job_timeout_settings in its stack.
 *
 * The stuck duration is a local of watchdog_timer_fn (now - the per-CPU watchdog_touch_ts,
 * a static per-CPU variable): not readable from here without per-CPU ksyms, so it is left
 * out. Variants: fentry (BTF, 5.5+) then kprobe.
 */
#include "huatuo.h"

/* include/linux/panic.h: #define TAINT_SOFTLOCKUP 14 */
#define HUATUO_TAINT_SOFTLOCKUP 14

#define LOCKUP_STACK_DEPTH 64

struct lockup_event {
	u64 stack[LOCKUP_STACK_DEPTH];
	u32 cpu;
	u32 pid;
	u32 tid;
	u32 stack_len;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct lockup_event);
} lockup_scratch SEC(".maps");

static __always_inline int report(void *ctx, u64 flag)
{
	struct task_struct *task;
	struct lockup_event *e;
	u32 zero = 0;
	u64 id;
	long n;

	if (flag != HUATUO_TAINT_SOFTLOCKUP)
		return 0;
	e = bpf_map_lookup_elem(&lockup_scratch, &zero);
	if (!e)
		return 0;
	id = bpf_get_current_pid_tgid();
	e->cpu = bpf_get_smp_processor_id();
	e->pid = id >> 32;
	e->tid = (u32)id;
	task = (struct task_struct *)bpf_get_current_task();
	BPF_CORE_READ_STR_INTO(&e->comm, task, comm);
	n = bpf_get_stack(ctx, e->stack, sizeof(e->stack), 0);
	e->stack_len = n > 0 ? n / sizeof(u64) : 0;
	HUATUO_EVENT_OUTPUT(ctx, e, sizeof(*e));
	return 0;
}

SEC("fentry/add_taint")
int BPF_PROG(fentry_add_taint, unsigned int flag, enum lockdep_ok lockdep_ok)
{
	return report(ctx, flag);
}

SEC("kprobe/add_taint")
int BPF_KPROBE(kp_add_taint, unsigned int flag)
{
	return report(ctx, flag);
}
