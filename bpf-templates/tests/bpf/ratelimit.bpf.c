// SPDX-License-Identifier: GPL-2.0
/* Test-only program: one event per getppid() call of one thread, through huatuo.h's
 * rate limit and output, so a test can check the emitted/shed/lost accounting. */
#include "huatuo.h"

char LICENSE[] SEC("license") = "GPL";

volatile const __u64 target_tid = 0;

struct ev {
	__u64 seq;
};

SEC("raw_tp/sys_enter")
int BPF_PROG(raw_tp_sys_enter, struct pt_regs *regs, long id)
{
	struct ev e = { .seq = id };

	if ((__u32)bpf_get_current_pid_tgid() != target_tid || id != 110 /* getppid */)
		return 0;
	HUATUO_EVENT_OUTPUT(ctx, &e, sizeof(e));
	return 0;
}
