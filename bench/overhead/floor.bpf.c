// SPDX-License-Identifier: GPL-2.0
/*
 * The floor of the overhead bench: programs that do nothing, attached by `hook_floor` to the
 * hooks the agent attaches (one load per hook), so the bench can tell what attaching there
 * costs at all from what the agent's programs add.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("tp_btf/sched_switch")
int floor_tp_btf(void *ctx)
{
	return 0;
}

SEC("raw_tp/sched_switch")
int floor_raw_tp(void *ctx)
{
	return 0;
}

SEC("tracepoint/sched/sched_switch")
int floor_tracepoint(void *ctx)
{
	return 0;
}

SEC("perf_event")
int floor_perf_event(void *ctx)
{
	return 0;
}
