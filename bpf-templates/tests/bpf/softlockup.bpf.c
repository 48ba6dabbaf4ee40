// SPDX-License-Identifier: GPL-2.0
/* Test-only program: holds the CPU it runs on for a bounded time, so that the kernel's soft
 * lockup detector fires (tests/kernel_softlockup.rs, engine/agent/tests/events_softlockup.rs).
 *
 * It is never attached: the test runs it with BPF_PROG_TEST_RUN, whose raw_tp handler calls
 * it once, in the calling thread, between get_cpu() and put_cpu(): preemption is off (the
 * CPU's watchdog stopper thread cannot run), interrupts are on (the watchdog hrtimer still
 * fires and reports). args[0] is the stall in ns, capped at MAX_STALL_NS; the program spins
 * in nested bpf_loop()s reading bpf_ktime_get_ns() until the deadline has passed, and writes
 * what it did to `stall_result`. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

/* No test needs more; a wrong argument cannot stall a CPU for longer. */
#define MAX_STALL_NS (6ULL * 1000 * 1000 * 1000)
/* bpf_loop's limit is 1 << 23 iterations per call, and a clock read costs about 40 ns here:
 * one loop would last only ~0.34 s, hence two nested ones. The deadline is checked at every
 * iteration; the bounds (2^23 * 2^16 clock reads) only matter if the clock stopped. */
#define OUTER_LOOPS (1U << 23)
#define INNER_LOOPS (1U << 16)

struct stall_result {
	__u64 start_ns;
	__u64 end_ns;
	__u64 iterations; /* inner iterations, one bpf_ktime_get_ns() each */
	__u32 cpu;
	__u32 runs;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stall_result);
} stall_result SEC(".maps");

struct spin {
	__u64 deadline;
	__u64 iterations;
};

static long spin_inner(__u64 index, struct spin *s)
{
	s->iterations++;
	return bpf_ktime_get_ns() >= s->deadline ? 1 : 0;
}

static long spin_outer(__u64 index, struct spin *s)
{
	bpf_loop(INNER_LOOPS, spin_inner, s, 0);
	return bpf_ktime_get_ns() >= s->deadline ? 1 : 0;
}

SEC("raw_tp")
int huatuo_lockup(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 zero = 0;
	__u64 ns = ctx->args[0];
	struct stall_result *r;
	struct spin s = {};
	__u64 start;

	if (ns > MAX_STALL_NS)
		ns = MAX_STALL_NS;
	start = bpf_ktime_get_ns();
	s.deadline = start + ns;
	bpf_loop(OUTER_LOOPS, spin_outer, &s, 0);
	r = bpf_map_lookup_elem(&stall_result, &zero);
	if (!r)
		return 1;
	r->start_ns = start;
	r->end_ns = bpf_ktime_get_ns();
	r->iterations = s.iterations;
	r->cpu = bpf_get_smp_processor_id();
	r->runs++;
	return 0;
}
