// SPDX-License-Identifier: GPL-2.0
/* Test-only program: one event per call of one system call (`target_syscall`) by one thread
 * (`target_tid`) or by every thread of one process (`target_tgid`), through huatuo.h's rate
 * limit and output, so a test can check the emitted/shed/lost accounting. */
#include "huatuo.h"

char LICENSE[] SEC("license") = "GPL";

volatile const __u64 target_tid = 0;
volatile const __u64 target_tgid = 0;
volatile const __u64 target_syscall = 110; /* getppid */

struct ev {
	__u64 seq;
};

SEC("raw_tp/sys_enter")
int BPF_PROG(raw_tp_sys_enter, struct pt_regs *regs, long id)
{
	struct ev e = { .seq = id };
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	if (id != target_syscall)
		return 0;
	if (target_tid && (__u32)pid_tgid != target_tid)
		return 0;
	if (target_tgid && pid_tgid >> 32 != target_tgid)
		return 0;
	HUATUO_EVENT_OUTPUT(ctx, &e, sizeof(e));
	return 0;
}
