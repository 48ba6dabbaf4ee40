// SPDX-License-Identifier: GPL-2.0
/*
 * reschedipi: how late rescheduling IPIs are handled. ipi:ipi_send_cpu with no callback is
 * a reschedule IPI (smp_send_reschedule); irq_vectors:reschedule_entry runs when the target
 * CPU takes it. The time between the two is the interrupt's delivery latency: a few
 * microseconds on bare metal and on a VM whose vCPUs have physical CPUs to run on; on a VM
 * whose host runs other work on the target vCPU's physical CPU it grows by however long the
 * host keeps that vCPU descheduled, typically milliseconds.
 *
 * Per target CPU the first send not yet followed by an entry is stamped (later sends to the
 * same CPU before it takes the interrupt are coalesced by the hardware too); the entry on
 * that CPU adds the latency to a per-CPU histogram (summed at read time) and counts it as
 * late when it passes `late_ns`. Cost per event: one array lookup and a store.
 * irq_vectors:reschedule_entry exists on x86 only.
 */
#include "huatuo.h"

char LICENSE[] SEC("license") = "GPL";

/* A delivery later than this counts as late (default 1 ms: no bare-metal delivery is). */
volatile const __u64 late_ns = 1000000;

#define MAX_CPUS 8192

/* Send time of the pending reschedule IPI of each target CPU, 0 when none is pending. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_CPUS);
	__type(key, __u32);
	__type(value, __u64);
} pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct huatuo_hist);
} latency SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} late SEC(".maps");

static __always_inline void on_send(__u32 cpu, void *callback)
{
	__u64 *ts;

	if (callback)
		return; /* a function-call IPI */
	ts = bpf_map_lookup_elem(&pending, &cpu);
	if (!ts) {
		huatuo_count(HUATUO_CNT_MAP_FULL);
		return;
	}
	if (*ts == 0)
		*ts = bpf_ktime_get_ns();
}

static __always_inline void on_entry(void)
{
	__u32 cpu = bpf_get_smp_processor_id(), zero = 0;
	struct huatuo_hist *h;
	__u64 *ts, sent, delta, *count;

	ts = bpf_map_lookup_elem(&pending, &cpu);
	if (!ts || *ts == 0)
		return;
	sent = *ts;
	*ts = 0;
	delta = bpf_ktime_get_ns() - sent;
	if ((__s64)delta < 0)
		return;
	h = bpf_map_lookup_elem(&latency, &zero);
	if (h)
		huatuo_hist_add(h, delta);
	if (delta > late_ns) {
		count = bpf_map_lookup_elem(&late, &zero);
		if (count)
			(*count)++;
	}
}

/*
 * The same handler body as a tp_btf program and as a raw_tp program (named tp_btf_<event>
 * and raw_tp_<event>; the loader attaches whichever the kernel accepts). `call` runs with the
 * tracepoint's typed arguments in scope.
 */
#define BTF_AND_RAW_TP(event, call, args...)      \
	SEC("tp_btf/" #event)                      \
	int BPF_PROG(tp_btf_##event, ##args)       \
	{                                          \
		call;                              \
		return 0;                          \
	}                                          \
	SEC("raw_tp/" #event)                      \
	int BPF_PROG(raw_tp_##event, ##args)       \
	{                                          \
		call;                              \
		return 0;                          \
	}

BTF_AND_RAW_TP(ipi_send_cpu, on_send(cpu, callback), unsigned int cpu, unsigned long callsite,
	       void *callback)
BTF_AND_RAW_TP(reschedule_entry, on_entry(), int vector)

SEC("tracepoint/ipi/ipi_send_cpu")
int tp_ipi_send_cpu(struct trace_event_raw_ipi_send_cpu *ctx)
{
	on_send(ctx->cpu, ctx->callback);
	return 0;
}

SEC("tracepoint/irq_vectors/reschedule_entry")
int tp_reschedule_entry(void *ctx)
{
	on_entry();
	return 0;
}
