// SPDX-License-Identifier: GPL-2.0
/* Bench baseline: an empty program on the same tracepoint as runqlat's hottest one. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

SEC("tp_btf/sched_switch")
int BPF_PROG(tp_btf_sched_switch_empty)
{
	return 0;
}
